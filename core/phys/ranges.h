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

/* x86 PCs map their firmware flash (BIOS, OVMF) in the 16 MiB below 4 GiB,
 * around the CPU's reset vector; RAM never reaches there, and the guest's
 * own /proc/iomem calls it Reserved.  QEMU's ELF and kdump dumps of x86
 * guests carry that ROM (pc.bios) as if it were memory, touching the RAM
 * QEMU puts at 4 GiB.  Dump parsers of x86 guests call these: */
#define VMEM_X86_FIRMWARE_START 0xff000000ull
#define VMEM_X86_4GIB           0x100000000ull
/* VMEM_RANGE_ROM if [start, end) lies in the firmware window, else _RAM. */
unsigned vmem_x86_range_kind(uint64_t start, uint64_t end);
/* Where a piece of memory starting at start must end at the latest so that
 * it does not run into or out of the firmware window (start < the result
 * <= end): a run of pages the source does not label is split there. */
uint64_t vmem_x86_piece_end(uint64_t start, uint64_t end);

/* End of the highest range (0 if none). */
uint64_t vmem_ranges_end(const struct vmem_range *r, size_t n);

#endif
