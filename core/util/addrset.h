/*
 * addrset.h - a visited set of guest addresses (open addressing, grows), the
 * cycle guard of every walk over guest structures.
 */
#ifndef VMEMFS_CORE_UTIL_ADDRSET_H
#define VMEMFS_CORE_UTIL_ADDRSET_H

#include <stddef.h>
#include <stdint.h>

struct addrset {
    uint64_t *slot;
    size_t cap, n;
};

/* 1 when added, 0 when already there, -1 on ENOMEM.  0 is never stored
 * (callers never add a NULL pointer). */
int addrset_add(struct addrset *s, uint64_t a);
void addrset_free(struct addrset *s);

#endif
