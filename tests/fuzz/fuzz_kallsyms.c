/*
 * fuzz_kallsyms.c - libFuzzer target for the kallsyms decoder
 * (core/profile/kallsyms_mem.c): the guest controls every byte of the
 * tables it reads.  Input: one byte choosing the pointer size (4 when it
 * is 4, else 8), then the memory to decode.  A decoded
 * table must be self-consistent: sorted addresses, every name looked up
 * finds an entry with that name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/profile/kallsyms_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned psize = data[0] == 4 ? 4 : 8;
    /* A copy of exactly the input, so ASan sees every read past it. */
    uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    struct kallsyms_mem k;
    char why[256];
    if (kallsyms_parse(buf, size - 1, psize, &k, why, sizeof why) == 0) {
        for (size_t i = 0; i < k.n; i++) {
            if (i && k.addr[i] < k.addr[i - 1])
                abort();
            uint64_t a;
            if (kallsyms_lookup(&k, kallsyms_name(&k, i), &a) != 0)
                abort();
        }
        kallsyms_mem_free(&k);
    }
    free(buf);
    return 0;
}
