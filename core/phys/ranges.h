/*
 * ranges.h - arithmetic on sorted lists of guest-physical ranges: lookup,
 * the next byte of data or hole (SEEK_DATA/SEEK_HOLE), merging for display.
 */
#ifndef VMEMFS_CORE_RANGES_H
#define VMEMFS_CORE_RANGES_H

#include <stddef.h>
#include <stdint.h>

#include "core/driver.h"

/* Index of the first range whose end is > addr (the range holding addr, or
 * the next one above it); n if there is none.  Ranges sorted, disjoint. */
size_t vmem_ranges_upper(const struct vmem_range *r, size_t n, uint64_t addr);

/* Does [addr, addr+1) lie in a range?  Returns the range or NULL. */
const struct vmem_range *vmem_ranges_find(const struct vmem_range *r, size_t n,
                                          uint64_t addr);

/* SEEK_DATA: the first address >= addr inside a range, or -1 if none below
 * `size`.  SEEK_HOLE: the first address >= addr outside every range, or
 * `size` (the end of a file counts as a hole); -1 if addr >= size. */
int64_t vmem_ranges_seek_data(const struct vmem_range *r, size_t n,
                              uint64_t addr, uint64_t size);
int64_t vmem_ranges_seek_hole(const struct vmem_range *r, size_t n,
                              uint64_t addr, uint64_t size);

/* Sort by start and check: no overlap, no empty range.  0 or -EINVAL. */
int vmem_ranges_normalize(struct vmem_range *r, size_t n);

/* Write touching ranges of the same kind merged into out (capacity >= n);
 * returns how many. */
size_t vmem_ranges_merge(const struct vmem_range *r, size_t n,
                         struct vmem_range *out);

/* End of the highest range (0 if none). */
uint64_t vmem_ranges_end(const struct vmem_range *r, size_t n);

#endif
