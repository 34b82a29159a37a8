/*
 * ranges.c - binary search and seek arithmetic over sorted range lists.
 */
#include "core/phys/ranges.h"

#include <errno.h>
#include <stdlib.h>

size_t vmem_ranges_upper(const struct vmem_range *r, size_t n, uint64_t addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct vmem_range *vmem_ranges_find(const struct vmem_range *r, size_t n,
                                          uint64_t addr)
{
    size_t i = vmem_ranges_upper(r, n, addr);
    if (i < n && r[i].start <= addr)
        return &r[i];
    return NULL;
}

int64_t vmem_ranges_seek_data(const struct vmem_range *r, size_t n,
                              uint64_t addr, uint64_t size)
{
    if (addr >= size)
        return -1;
    size_t i = vmem_ranges_upper(r, n, addr);
    if (i == n)
        return -1;
    uint64_t at = r[i].start > addr ? r[i].start : addr;
    return at < size ? (int64_t)at : -1;
}

int64_t vmem_ranges_seek_hole(const struct vmem_range *r, size_t n,
                              uint64_t addr, uint64_t size)
{
    if (addr >= size)
        return -1;
    size_t i = vmem_ranges_upper(r, n, addr);
    uint64_t at = addr;
    /* Walk over ranges that touch each other: the hole starts where the
     * chain of adjacent ranges ends. */
    while (i < n && r[i].start <= at) {
        at = r[i].end;
        i++;
    }
    return (int64_t)(at < size ? at : size);
}

static int cmp_start(const void *a, const void *b)
{
    const struct vmem_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int vmem_ranges_normalize(struct vmem_range *r, size_t n)
{
    qsort(r, n, sizeof *r, cmp_start);
    for (size_t i = 0; i < n; i++) {
        if (r[i].end <= r[i].start)
            return -EINVAL;
        if (i > 0 && r[i].start < r[i - 1].end)
            return -EINVAL;
    }
    return 0;
}

size_t vmem_ranges_merge(const struct vmem_range *r, size_t n,
                         struct vmem_range *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && out[m - 1].end == r[i].start && out[m - 1].kind == r[i].kind)
            out[m - 1].end = r[i].end;
        else
            out[m++] = r[i];
    }
    return m;
}

unsigned vmem_x86_range_kind(uint64_t start, uint64_t end)
{
    return start >= VMEM_X86_FIRMWARE_START && end <= VMEM_X86_4GIB && start < end
               ? VMEM_RANGE_ROM : VMEM_RANGE_RAM;
}

uint64_t vmem_x86_piece_end(uint64_t start, uint64_t end)
{
    if (start < VMEM_X86_FIRMWARE_START && end > VMEM_X86_FIRMWARE_START)
        return VMEM_X86_FIRMWARE_START;
    if (start < VMEM_X86_4GIB && end > VMEM_X86_4GIB)
        return VMEM_X86_4GIB;
    return end;
}

uint64_t vmem_ranges_end(const struct vmem_range *r, size_t n)
{
    return n ? r[n - 1].end : 0;
}
