/* fuzz_elf.c - the ELF core parser (and its note parser) on any input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dump_layout l = {0};
    char err[DUMP_ERR_LEN];
    if (!dump_is_elf(data, size))
        return 0;
    if (dump_parse_elf(data, size, &l, err, sizeof err) == 0) {
        /* Every segment the parser accepts must lie inside the input. */
        for (size_t i = 0; i < l.nsegs; i++)
            if (l.segs[i].file_off > size || l.segs[i].len > size - l.segs[i].file_off)
                abort();
    }
    dump_layout_free(&l);           /* the owner frees, parsed or not */
    /* The notes parser alone, on the raw bytes. */
    struct dump_layout n = {0};
    dump_parse_notes(data, size, 1, &n);
    dump_layout_free(&n);
    return 0;
}
