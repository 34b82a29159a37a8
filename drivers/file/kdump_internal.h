/*
 * kdump_internal.h - what the pieces of the kdump-compressed backend share,
 * and nobody else: struct kdump, the format's constants, the byte loaders
 * in the dump's byte order, and the helpers that cross files.  Not a public
 * interface: file.c and the tests see kdump.h only.
 *
 * The pieces, one concern each:
 *   kdump.c        detection, the header parse (both word sizes and byte
 *                  orders), the public functions and the backend ops
 *   kdump_flat.c   the logical file: the dump itself, or the flattened
 *                  makedumpfile stream's records indexed into extents
 *   kdump_pages.c  bitmaps (rank index, RAM ranges), page descriptors,
 *                  compression methods, and one frame read
 *
 * The format: signature "KDUMP   ", written
 * by makedumpfile, by QEMU's dump-guest-memory format=kdump-{zlib,lzo,snappy}
 * and by `virsh dump --memory-only --format=kdump-*`.
 *
 * Layout of the dump (one block = block_size bytes; only 4096 is accepted,
 * the guest page size vmemfs serves):
 *
 *   block 0          disk_dump_header (target word size and byte order)
 *   block 1          kdump_sub_header, then ELF notes and vmcoreinfo;
 *                    sub_hdr_size blocks in all
 *   bitmap_blocks    1st bitmap (pages that exist in RAM), then 2nd bitmap
 *                    (pages dumped); one bit per pfn, least significant first
 *   then             page_desc[]: the i-th set bit of the 2nd bitmap owns
 *                    page_desc[i] (offset, size, flags, page_flags)
 *   then             page data wherever the descriptors point; pages are
 *                    stored compressed, or verbatim when that is no smaller
 *
 * QEMU before 8.2 (and makedumpfile -F) write the same bytes as a
 * "flattened" stream instead: a 4 KiB "makedumpfile" header, then records
 * {be64 offset, be64 size, data} that say where each piece belongs, ending
 * with {-1, -1}.  Such a file is read through an index of its records built
 * at open time (the "logical file"); later records win where they overlap,
 * as `makedumpfile -R` would rebuild it.
 *
 * Descriptor lookup is a rank query on the 2nd bitmap: a cumulative popcount
 * per RANK_BITS bits, computed at open, turns pfn -> descriptor index into
 * one table read plus at most RANK_BITS/64 word popcounts.
 *
 * Everything in the file is hostile: every offset and size is checked
 * against the (logical) file size and for overflow before use; a malformed
 * header is -EINVAL with one message, a bad page is -EIO for that frame.
 */
#ifndef VMEMFS_DRIVERS_FILE_KDUMP_INTERNAL_H
#define VMEMFS_DRIVERS_FILE_KDUMP_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/bytes.h"
#include "drivers/file/kdump.h"

#define KDUMP_SIGNATURE    "KDUMP   "
#define DISKDUMP_SIGNATURE "DISKDUMP"
#define SIG_LEN            8

/* Flattened makedumpfile stream. */
#define FLAT_SIGNATURE     "makedumpfile"
#define FLAT_HEADER_SIZE   4096u
#define FLAT_TYPE          1u
#define FLAT_RECORD_HEAD   16u

/* disk_dump_header: the 64-bit and 32-bit layouts differ only in the
 * padding of the timestamp; the fields after it keep their order. */
#define HDR_VERSION_OFF    8
#define HDR_MACHINE_OFF    (12 + 4 * 65)    /* utsname.machine */
#define HDR_UTS_FIELD      65
#define HDR64_STATUS_OFF   424
#define HDR32_STATUS_OFF   412
#define HDR64_SIZE         464
#define HDR32_SIZE         452
/* Offsets after `status`. */
#define HDR_BLOCK_SIZE     4
#define HDR_SUB_HDR_SIZE   8
#define HDR_BITMAP_BLOCKS  12
#define HDR_MAX_MAPNR      16
#define HDR_NR_CPUS        36

#define SUB_MAX_SIZE       104

/* Page descriptor: i64 offset, u32 size, u32 flags, u64 page_flags; the
 * same 24 bytes in both word sizes. */
#define DESC_SIZE          24u

/* Compression flags (page_desc.flags, and header status). */
#define COMP_ZLIB          0x01u
#define COMP_LZO           0x02u
#define COMP_SNAPPY        0x04u
#define STATUS_INCOMPLETE  0x08u
#define COMP_ZSTD          0x20u
#define COMP_ALL           (COMP_ZLIB | COMP_LZO | COMP_SNAPPY | COMP_ZSTD)
#define SEEN_RAW           0x100u           /* our own: a verbatim page */

#define KD_BLOCK_SIZE      4096u
/* A compressed page larger than this is corrupt: compressors fall back to
 * storing the page verbatim long before. */
#define KD_MAX_COMPRESSED  (2 * KD_BLOCK_SIZE)

/* Rank index granularity: one cumulative count per 1024 bits (16 words). */
#define RANK_SHIFT         10
#define RANK_WORDS         (1u << (RANK_SHIFT - 6))

/* Physical addresses are at most 52 bits on x86-64 (and every other
 * architecture we might meet); a larger max_mapnr is a corrupt header. */
#define KD_MAX_PFN         (1ull << (52 - VMEM_PAGE_SHIFT))
/* RAM ranges come from runs in the 1st bitmap: a handful in real dumps.
 * The cap keeps a hostile alternating bitmap from costing gigabytes. */
#define KD_MAX_RANGES      (1u << 22)
/* Descriptors sampled at open to name the compression methods in use. */
#define KD_METHOD_SAMPLES  4096u

/* A piece of the logical file stored contiguously in the flattened file. */
struct flat_extent {
    uint64_t loff;                  /* offset in the logical (rebuilt) file */
    uint64_t len;
    uint64_t foff;                  /* offset in the flattened file */
};

/* One record of the flattened stream, while the index is being built. */
struct flat_record {
    uint64_t loff, len, foff;
    size_t seq;                     /* write order: later wins */
};

struct kdump {
    const uint8_t *base;            /* the whole file, mapped by the caller */
    size_t size;

    /* Flattened stream: the extents of the logical file, sorted by loff,
     * not overlapping; gaps between them read as zeros (never written). */
    int flattened;
    int flat_truncated;             /* no end marker, or a cut record */
    struct flat_extent *ext;
    size_t next;
    uint64_t lsize;                 /* logical file size */
    /* Scratch while indexing; kept here so a SIGBUS that abandons the
     * parse still leaves them reachable for kdump_close. */
    struct flat_record *recs;
    size_t *heap;

    int big_endian;
    int is32;
    unsigned version;
    uint32_t status;
    uint32_t nr_cpus;
    uint64_t phys_base;

    uint64_t max_mapnr;             /* bits used in each bitmap */
    const uint8_t *bm_ram;          /* 1st bitmap: pages that exist */
    const uint8_t *bm_dumped;       /* 2nd bitmap: pages with a descriptor */
    uint8_t *bm_copy;               /* flattened: both bitmaps, rebuilt */
    int single_bitmap;              /* old layout: one bitmap for both */

    /* Split dumps (makedumpfile --split) hold pfns [start_pfn, end_pfn). */
    int split;
    uint64_t start_pfn, end_pfn;
    uint64_t rank_start;            /* set bits of bm_dumped before start_pfn */
    uint64_t *rank;                 /* set bits of bm_dumped before chunk c */

    uint64_t desc_off;              /* logical offset of page_desc[0] */
    uint64_t ndesc;                 /* descriptors the bitmap promises */
    uint64_t ndesc_in_file;         /* of those, how many the file holds */

    int x86;                        /* utsname.machine is an x86 */
    uint64_t nram;                  /* pages set in bm_ram */
    struct vmem_range *ranges;
    size_t nranges;

    unsigned methods_seen;          /* COMP_* and SEEN_RAW, from sampling */
    char describe[256];
};

struct page_desc {
    uint64_t offset;
    uint32_t size;
    uint32_t flags;
};

/* The dump's own byte order (the header says which). */
static inline uint32_t ld32(const uint8_t *p, int be)
{
    return be ? vmem_ld_be32(p) : vmem_ld_le32(p);
}
static inline uint64_t ld64(const uint8_t *p, int be)
{
    return be ? vmem_ld_be64(p) : vmem_ld_le64(p);
}
static inline unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* kdump.c */
int kd_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* kdump_flat.c: the logical file */
int kd_src_read(const struct kdump *kd, uint64_t loff, uint64_t len, void *dst);
const uint8_t *kd_src_ptr(const struct kdump *kd, uint64_t loff, uint64_t len);
int kd_flat_index(struct kdump *kd, char *err, size_t errlen);

/* kdump_pages.c: bitmaps, descriptors, compression */
uint64_t kd_rank_of(const struct kdump *kd, uint64_t pfn);
int kd_build_rank(struct kdump *kd, char *err, size_t errlen);
int kd_build_ranges(struct kdump *kd, char *err, size_t errlen);
void kd_sample_methods(struct kdump *kd);
void kd_build_describe(struct kdump *kd);

#endif
