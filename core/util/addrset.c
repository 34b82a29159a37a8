/*
 * addrset.c - visited sets (see addrset.h).
 */
#include "core/util/addrset.h"

#include <stdlib.h>

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

int addrset_add(struct addrset *s, uint64_t a)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i])
                continue;
            size_t j = mix64(s->slot[i]) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    size_t j = mix64(a) & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == a)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slot[j] = a;
    s->n++;
    return 1;
}

void addrset_free(struct addrset *s)
{
    free(s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}
