/* fuzz_lime.c - the LiME parser on any input. */
#include <stdint.h>
#include <stdlib.h>

#include "drivers/file/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dump_layout l = {0};
    char err[DUMP_ERR_LEN];
    if (!dump_is_lime(data, size))
        return 0;
    if (dump_parse_lime(data, size, &l, err, sizeof err) == 0) {
        for (size_t i = 0; i < l.nsegs; i++) {
            if (l.segs[i].file_off > size || l.segs[i].len > size - l.segs[i].file_off)
                abort();
            if (i && l.segs[i].gpa < l.segs[i - 1].gpa + l.segs[i - 1].len)
                abort();
        }
    }
    dump_layout_free(&l);           /* the owner frees, parsed or not */
    return 0;
}
