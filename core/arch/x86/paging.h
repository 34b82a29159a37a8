/*
 * paging.h - x86 address translation: one guest virtual address space
 * (struct vmem_as) walked through its page tables in guest-physical memory,
 * with a small per-space translation cache.  Owns the page-table formats
 * (32-bit, PAE, x86-64 4- and 5-level), the virtual-address model of the
 * vmem files, and nothing else: guest-physical reads come from the caller.
 *
 * The guest controls its page tables, so every walk is defensive: an entry
 * that points outside RAM, has reserved bits set, or describes a misaligned
 * large page makes that page "not mapped"; loops cannot recurse (the walk
 * has a fixed depth) and the range scans have a bounded amount of work per
 * call.  The walker only reads: it never sets Accessed/Dirty bits.
 *
 * Virtual-address model (the vmem files).  Each space has a linear span:
 *     32-bit, PAE: 2^32      4-level: 2^48      5-level: 2^57
 * A position in it is a "va": a gva with its canonical sign extension
 * stripped, va = gva & (span - 1).  For user (lower-half) addresses va == gva.
 *   - kernel/vmem covers the whole span, [0, vmem_as_span()): file offset o is
 *     va o, i.e. gva = sign-extended o.  On 4-level the kernel text at
 *     0xffffffff81000000 is at offset 0xffff81000000; the non-canonical hole
 *     does not exist in this view (the upper half starts at offset 2^47).
 *   - proc/<pid>/vmem covers the lower canonical half, [0, vmem_as_size()):
 *     offset == gva.  (2^47 or 2^56; 32-bit and PAE spaces: all of 2^32.)
 * Every function taking a `gva` accepts either form: a value below the span
 * is a va; a value at or above it must be a canonical upper-half gva (bits
 * above the top index bit all equal to it) and is reduced to its va.  Any
 * other value is non-canonical: never mapped.  The two forms cannot collide
 * (canonical upper-half addresses are >= 2^63 > span).  Range results
 * (next_mapped) are vas, i.e. file offsets; vmem_as_gva() makes them gvas.
 *
 * Architectural assumptions, since we see memory and not control registers:
 * MAXPHYADDR is 52 (entries' address bits 12..51; bits 52..62 are reserved
 * in PAE PDEs/PTEs, ignored or protection keys in 64-bit ones), EFER.NXE is
 * set (bit 63 is XD, not reserved, except in PAE PDPTEs), and in 32-bit
 * paging CR4.PSE is set with PSE-36 (4 MiB PDE bits 20:13 are physical
 * address bits 39:32, bit 21 reserved).
 *
 * Threads: all vmem_as_* calls on one space may run concurrently from any
 * number of threads, except vmem_as_free.  The cache is a per-entry seqlock
 * (lock-free readers); vmem_as_flush is O(1) and safe against walks in
 * flight: a translation computed before a flush is never returned after it.
 *
 * Errors are negative errno values.
 */
#ifndef VMEMFS_CORE_PAGING_H
#define VMEMFS_CORE_PAGING_H

#include <stddef.h>
#include <stdint.h>

#include "core/driver.h"

/* How the walker reads guest-physical memory: fill buf with the len bytes at
 * gpa and return 0, or return -errno.  -ENOENT means "no RAM there": the
 * entry pointing there is treated as not present.  Any other error (-EIO:
 * the source failed) also leaves the page unmapped, but is reported to the
 * caller where the call can carry it (translate, translate_range).  Reads
 * are at most 4096 bytes, naturally aligned to the entry size, and never
 * cross a 4 KiB boundary.  Answer per page: whether a read succeeds must not
 * depend on which part of a table page is asked for (translate reads one
 * entry, the range walks a slice), or they may disagree on a page.  Called
 * concurrently from several threads.
 * Supplied by core/vm.c (through the page cache), by tests directly. */
struct vmem_phys_reader {
    int (*read)(void *ctx, uint64_t gpa, void *buf, size_t len);
    void *ctx;
    /* Optional (NULL for every source but Xen PV guests): the frame number
     * each table entry holds is not a guest frame but a frame of another
     * space (a PV guest's page tables hold machine frames).  Applied to
     * every present entry's frame (next-table pointers and leaves) before
     * it is used: 0 with *gfn the guest frame, or -errno (the entry then
     * counts as not present).  The dtb is a guest frame already.  A large
     * leaf's base frame is translated and its pages assumed contiguous in
     * guest frames too (PV guests have no superpages). */
    int (*frame)(void *ctx, uint64_t frame, uint64_t *gfn);
};

enum vmem_paging_mode {
    VMEM_PAGING_X86_32,     /* 2-level, 4-byte entries, 4 KiB / 4 MiB pages */
    VMEM_PAGING_PAE,        /* 3-level, 4-entry PDPT, 4 KiB / 2 MiB pages */
    VMEM_PAGING_X86_64_4L,  /* PML4, 48-bit, 4 KiB / 2 MiB / 1 GiB pages */
    VMEM_PAGING_X86_64_5L,  /* PML5 (LA57), 57-bit, same page sizes */
};

/* translate_range's "this page is not mapped". */
#define VMEM_GPA_NONE UINT64_MAX
/* vmem_as_va's "not a canonical address of this space". */
#define VMEM_VA_NONE UINT64_MAX

/* Most page-table reads (each at most one table page) that one
 * vmem_as_next_mapped call does before it gives up with -EAGAIN.  Bounds
 * the time a hostile table (e.g. a PML4 whose every entry points to itself,
 * which maps all 2^36 pages) can cost one lseek.  A sparse Linux process
 * needs a few dozen reads; a fully 4 KiB-mapped 8 GiB run about 4100. */
#define VMEM_AS_WALK_BUDGET 4096u

/* One address space: mode, dtb and translation cache. */
struct vmem_as;

/* A new space rooted at dtb (the page-table root from CR3: the low flag /
 * PCID bits and, on x86-64, bit 63 and the LAM bits are masked here; PAE
 * keeps bits 31:5, 32-bit bits 31:12).  rd is copied; its ctx must outlive
 * the space.  NULL on a bad mode, NULL rd->read or no memory (errno set). */
struct vmem_as *vmem_as_new(enum vmem_paging_mode mode, uint64_t dtb,
                            const struct vmem_phys_reader *rd);
void vmem_as_free(struct vmem_as *as);

enum vmem_paging_mode vmem_as_mode(const struct vmem_as *as);
uint64_t vmem_as_dtb(const struct vmem_as *as);   /* as masked */

/* Size of proc/<pid>/vmem: the lower canonical half (2^47, 2^56) or 2^32. */
uint64_t vmem_as_size(const struct vmem_as *as);
/* Size of kernel/vmem: the whole span (2^48, 2^57) or 2^32. */
uint64_t vmem_as_span(const struct vmem_as *as);
/* gva (canonical, or already a va) -> va, or VMEM_VA_NONE if non-canonical. */
uint64_t vmem_as_va(const struct vmem_as *as, uint64_t gva);
/* va (< span) -> canonical gva (sign-extended on x86-64). */
uint64_t vmem_as_gva(const struct vmem_as *as, uint64_t va);

/* Translate one address.  On success *gpa is the guest-physical address of
 * gva itself (page offset included) and *page_size (if not NULL) the size of
 * the page mapping it: 4 KiB, 2 MiB, 4 MiB or 1 GiB.  Returns 0, -EFAULT
 * when gva is not mapped (or non-canonical), or the reader's error (e.g.
 * -EIO) when a table could not be read; -ENOENT reads count as not mapped.
 * Goes through the translation cache; only successes are cached. */
int vmem_as_translate(struct vmem_as *as, uint64_t gva, uint64_t *gpa,
                      uint64_t *page_size);

/* Translate npages 4 KiB pages starting at the page containing gva (its low
 * 12 bits are ignored): gpas[i] = page-aligned gpa of page i, or
 * VMEM_GPA_NONE when not mapped (also for pages past the end of the span or
 * when gva is non-canonical).  One walk over the range: each page-table
 * page is read once per call (only the entries the range needs), not once
 * per page.  Returns 0, or the first reader error other than -ENOENT (the
 * affected pages are VMEM_GPA_NONE, the others are still filled in).
 * Does not use the cache (the walk is already amortised). */
int vmem_as_translate_range(struct vmem_as *as, uint64_t gva, size_t npages,
                            uint64_t *gpas);

/* The first run of mapped pages at or after gva and below limit: runs are
 * contiguous in va, any gpa (4 KiB, 2 MiB and 1 GiB pages merge into one
 * run).  gva may be a canonical gva or a va; limit is an exclusive va,
 * clipped to the span; *start and *end are vas, page-aligned, *start >=
 * the page of gva and *end <= limit rounded up to a page.  Empty upper-level
 * entries are skipped wholesale (an empty PML4 slot skips 512 GiB): this is
 * SEEK_DATA/SEEK_HOLE on a 128 TiB file.  Tables that cannot be read
 * (any reader error) count as holes.  Returns:
 *   0        [*start, *end) is the run; *end is unmapped or the limit.
 *   -ENXIO   nothing is mapped in [gva, limit) (or gva non-canonical).
 *   -EAGAIN  VMEM_AS_WALK_BUDGET table reads were spent: nothing is mapped in
 *            [gva, *start); if *end > *start, [*start, *end) is mapped and
 *            the run may continue past *end; if *end == *start, no mapping
 *            was found yet.  Call again from *end to go on.
 *   -EFAULT  bad arguments (NULL). */
int vmem_as_next_mapped(struct vmem_as *as, uint64_t gva, uint64_t limit,
                        uint64_t *start, uint64_t *end);

/* Drop every cached translation (the guest changed its page tables: live
 * sources call this when they may have).  O(1): bumps a generation. */
void vmem_as_flush(struct vmem_as *as);

/* Counters since creation, for info.json and tests; approximate under
 * concurrency only in that they are read without a snapshot. */
struct vmem_as_stats {
    uint64_t cache_hits;
    uint64_t cache_misses;
    uint64_t table_reads;    /* calls to the phys reader */
};
void vmem_as_get_stats(const struct vmem_as *as, struct vmem_as_stats *out);

#endif
