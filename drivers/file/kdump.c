/*
 * kdump.c - the kdump-compressed dump format: signature "KDUMP   ", written
 * by makedumpfile, by QEMU's dump-guest-memory format=kdump-{zlib,lzo,snappy}
 * and by `virsh dump --memory-only --format=kdump-*`.
 *
 * Owns struct kdump: header parsing, the two page bitmaps, the page
 * descriptor lookup and per-page decompression.  It reads the dump through
 * the caller's read-only mapping and never keeps a copy of page data.
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
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/bytes.h"
#include "core/util/decompress.h"
#include "drivers/file/kdump.h"
#include "core/phys/ranges.h"

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

/* ---- small helpers ---- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The dump's own byte order (the header says which). */
static uint32_t ld32(const uint8_t *p, int be)
{
    return be ? vmem_ld_be32(p) : vmem_ld_le32(p);
}
static uint64_t ld64(const uint8_t *p, int be)
{
    return be ? vmem_ld_be64(p) : vmem_ld_le64(p);
}
static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* ---- the logical file: the dump itself, or rebuilt from flat records ---- */

/* Index of the first extent that ends after loff (may be next). */
static size_t ext_lower(const struct kdump *kd, uint64_t loff)
{
    size_t lo = 0, hi = kd->next;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kd->ext[mid].loff + kd->ext[mid].len <= loff)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Copy [loff, loff+len) of the logical file to dst.  -1 if any of it lies
 * past the logical end of file.  Holes between flat records read as zeros,
 * as they would in the rebuilt file. */
static int src_read(const struct kdump *kd, uint64_t loff, uint64_t len, void *dst)
{
    if (len > kd->lsize || loff > kd->lsize - len)
        return -1;
    if (!kd->flattened) {
        memcpy(dst, kd->base + loff, (size_t)len);
        return 0;
    }
    uint8_t *d = dst;
    size_t i = ext_lower(kd, loff);
    while (len) {
        uint64_t n;
        if (i < kd->next && kd->ext[i].loff <= loff) {
            const struct flat_extent *e = &kd->ext[i];
            n = e->loff + e->len - loff;
            if (n > len)
                n = len;
            memcpy(d, kd->base + e->foff + (loff - e->loff), (size_t)n);
            if (loff + n == e->loff + e->len)
                i++;
        } else {
            n = i < kd->next ? kd->ext[i].loff - loff : len;
            if (n > len)
                n = len;
            memset(d, 0, (size_t)n);
        }
        d += n;
        loff += n;
        len -= n;
    }
    return 0;
}

/* A direct pointer to [loff, loff+len) when it is stored contiguously in
 * the file, else NULL (past the end, or split across flat records). */
static const uint8_t *src_ptr(const struct kdump *kd, uint64_t loff, uint64_t len)
{
    if (len > kd->lsize || loff > kd->lsize - len)
        return NULL;
    if (!kd->flattened)
        return kd->base + loff;
    size_t i = ext_lower(kd, loff);
    if (i >= kd->next)
        return NULL;
    const struct flat_extent *e = &kd->ext[i];
    if (e->loff > loff || loff + len > e->loff + e->len)
        return NULL;
    return kd->base + e->foff + (loff - e->loff);
}

/* ---- flattened stream index ---- */

static int rec_cmp(const void *a, const void *b)
{
    const struct flat_record *x = a, *y = b;
    if (x->loff != y->loff)
        return x->loff < y->loff ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Max-heap of record indexes keyed by write order. */
static void heap_push(size_t *h, size_t *n, size_t v, const struct flat_record *r)
{
    size_t i = (*n)++;
    h[i] = v;
    while (i) {
        size_t p = (i - 1) / 2;
        if (r[h[p]].seq >= r[h[i]].seq)
            break;
        size_t t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

static void heap_pop(size_t *h, size_t *n, const struct flat_record *r)
{
    h[0] = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, rr = l + 1, m = i;
        if (l < *n && r[h[l]].seq > r[h[m]].seq)
            m = l;
        if (rr < *n && r[h[rr]].seq > r[h[m]].seq)
            m = rr;
        if (m == i)
            break;
        size_t t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
}

/* Read the record headers of a flattened stream and build kd->ext: for
 * every logical byte, the last record that wrote it. */
static int flat_index(struct kdump *kd, char *err, size_t errlen)
{
    const uint8_t *b = kd->base;
    size_t size = kd->size;
    if (size < FLAT_HEADER_SIZE)
        return fail(err, errlen, -EINVAL,
                    "kdump: flattened makedumpfile header truncated "
                    "(file size 0x%zx, header 0x%x bytes)", size, FLAT_HEADER_SIZE);
    uint64_t type = ld64(b + 16, 1);
    if (type != FLAT_TYPE)
        return fail(err, errlen, -EINVAL,
                    "kdump: flattened makedumpfile header has type %llu, "
                    "expected %u", ull(type), FLAT_TYPE);

    size_t n = 0, cap = 0;
    size_t pos = FLAT_HEADER_SIZE;
    for (;;) {
        if (size - pos < FLAT_RECORD_HEAD) {
            /* No end marker: a dump cut short.  Keep what is there. */
            kd->flat_truncated = 1;
            break;
        }
        int64_t off = (int64_t)ld64(b + pos, 1);
        int64_t len = (int64_t)ld64(b + pos + 8, 1);
        if (off == -1 && len == -1)
            break;
        if (off < 0 || len < 0)
            return fail(err, errlen, -EINVAL,
                        "kdump: flattened record at file offset 0x%zx has "
                        "offset %lld, size %lld", pos, (long long)off,
                        (long long)len);
        pos += FLAT_RECORD_HEAD;
        uint64_t avail = size - pos, take = (uint64_t)len;
        if (take > avail) {
            take = avail;
            kd->flat_truncated = 1;
        }
        if (take) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                struct flat_record *nr = realloc(kd->recs, ncap * sizeof *nr);
                if (!nr)
                    return fail(err, errlen, -ENOMEM,
                                "kdump: out of memory indexing flattened records");
                kd->recs = nr;
                cap = ncap;
            }
            /* off and len are both below 2^63: their sum cannot wrap. */
            kd->recs[n] = (struct flat_record){(uint64_t)off, take, pos, n};
            n++;
        }
        if ((uint64_t)len > avail)
            break;
        pos += (size_t)len;
    }

    if (n == 0)
        return fail(err, errlen, -EINVAL,
                    "kdump: flattened makedumpfile file holds no data records");
    struct flat_record *r = kd->recs;
    qsort(r, n, sizeof *r, rec_cmp);

    /* Sweep by logical offset with a heap of the records covering the
     * current position; the newest one supplies the bytes until it ends or
     * another record starts.  Each step ends at a record boundary, so the
     * result has at most 2n extents. */
    kd->heap = malloc(n * sizeof *kd->heap);
    kd->ext = malloc((2 * n + 1) * sizeof *kd->ext);
    if (!kd->heap || !kd->ext)
        return fail(err, errlen, -ENOMEM,
                    "kdump: out of memory indexing flattened records");
    size_t i = 0, hn = 0, ne = 0;
    uint64_t cur = 0;
    while (i < n || hn) {
        if (hn == 0)
            cur = r[i].loff;
        while (i < n && r[i].loff <= cur)
            heap_push(kd->heap, &hn, i++, r);
        while (hn && r[kd->heap[0]].loff + r[kd->heap[0]].len <= cur)
            heap_pop(kd->heap, &hn, r);
        if (hn == 0)
            continue;
        const struct flat_record *top = &r[kd->heap[0]];
        uint64_t stop = top->loff + top->len;
        if (i < n && r[i].loff < stop)
            stop = r[i].loff;
        uint64_t foff = top->foff + (cur - top->loff);
        struct flat_extent *last = ne ? &kd->ext[ne - 1] : NULL;
        if (last && last->loff + last->len == cur && last->foff + last->len == foff)
            last->len += stop - cur;
        else
            kd->ext[ne++] = (struct flat_extent){cur, stop - cur, foff};
        cur = stop;
    }
    kd->next = ne;
    kd->lsize = kd->ext[ne - 1].loff + kd->ext[ne - 1].len;
    free(kd->heap);
    kd->heap = NULL;
    free(kd->recs);
    kd->recs = NULL;
    return 0;
}

/* ---- bitmaps ---- */

/* Word w of a bitmap (bits w*64 .. w*64+63, pfn order), with the bits at
 * and beyond max_mapnr cleared.  Callers keep w*64 < max_mapnr. */
static uint64_t bm_word(const struct kdump *kd, const uint8_t *bm, uint64_t w)
{
    uint64_t v = ld64(bm + w * 8, 0);
    uint64_t left = kd->max_mapnr - w * 64;
    if (left < 64)
        v &= (1ull << left) - 1;
    return v;
}

static int bm_test(const uint8_t *bm, uint64_t pfn)
{
    return bm[pfn >> 3] >> (pfn & 7) & 1;
}

/* Set bits of the 2nd bitmap before pfn (pfn <= max_mapnr). */
static uint64_t rank_of(const struct kdump *kd, uint64_t pfn)
{
    uint64_t r = kd->rank[pfn >> RANK_SHIFT];
    uint64_t w = (pfn >> RANK_SHIFT) * RANK_WORDS, wend = pfn >> 6;
    for (; w < wend; w++)
        r += (uint64_t)__builtin_popcountll(bm_word(kd, kd->bm_dumped, w));
    if (pfn & 63)
        r += (uint64_t)__builtin_popcountll(bm_word(kd, kd->bm_dumped, wend) &
                                            ((1ull << (pfn & 63)) - 1));
    return r;
}

/* First pfn >= from whose bit equals `want`, or max_mapnr. */
static uint64_t bm_next(const struct kdump *kd, const uint8_t *bm, uint64_t from, int want)
{
    if (from >= kd->max_mapnr)
        return kd->max_mapnr;
    uint64_t w = from >> 6;
    uint64_t x = bm_word(kd, bm, w);
    if (!want)
        x = ~x;
    x &= ~0ull << (from & 63);
    while (!x) {
        w++;
        if (w * 64 >= kd->max_mapnr)
            return kd->max_mapnr;
        x = bm_word(kd, bm, w);
        if (!want)
            x = ~x;
    }
    uint64_t pfn = w * 64 + (uint64_t)__builtin_ctzll(x);
    return pfn < kd->max_mapnr ? pfn : kd->max_mapnr;
}

static int build_rank(struct kdump *kd, char *err, size_t errlen)
{
    uint64_t nchunks = (kd->max_mapnr >> RANK_SHIFT) + 1;
    uint64_t nwords = (kd->max_mapnr + 63) / 64;
    kd->rank = malloc(nchunks * sizeof *kd->rank);
    if (!kd->rank)
        return fail(err, errlen, -ENOMEM, "kdump: out of memory for the page index "
                    "(%llu pages)", ull(kd->max_mapnr));
    uint64_t total = 0;
    for (uint64_t c = 0; c < nchunks; c++) {
        kd->rank[c] = total;
        for (uint64_t w = c * RANK_WORDS; w < (c + 1) * RANK_WORDS && w < nwords; w++)
            total += (uint64_t)__builtin_popcountll(bm_word(kd, kd->bm_dumped, w));
    }
    return 0;
}

static int build_ranges(struct kdump *kd, char *err, size_t errlen)
{
    size_t cap = 0;
    uint64_t nwords = (kd->max_mapnr + 63) / 64;
    for (uint64_t w = 0; w < nwords; w++)
        kd->nram += (uint64_t)__builtin_popcountll(bm_word(kd, kd->bm_ram, w));
    uint64_t pfn = 0;
    for (;;) {
        uint64_t start = bm_next(kd, kd->bm_ram, pfn, 1);
        if (start >= kd->max_mapnr)
            break;
        uint64_t end = bm_next(kd, kd->bm_ram, start, 0);
        if (kd->nranges == cap) {
            if (cap >= KD_MAX_RANGES)
                return fail(err, errlen, -EINVAL,
                            "kdump: 1st bitmap too fragmented (more than %u RAM "
                            "ranges below pfn 0x%llx)", KD_MAX_RANGES, ull(start));
            size_t ncap = cap ? cap * 2 : 16;
            struct vmem_range *nr = realloc(kd->ranges, ncap * sizeof *nr);
            if (!nr)
                return fail(err, errlen, -ENOMEM, "kdump: out of memory for RAM ranges");
            kd->ranges = nr;
            cap = ncap;
        }
        uint64_t gpa = start << VMEM_PAGE_SHIFT, gpa_end = end << VMEM_PAGE_SHIFT;
        /* The bitmap says present, not what: on x86 the firmware window
         * below 4 GiB is ROM, and a run across it is ROM and RAM glued. */
        uint64_t piece = kd->x86 ? vmem_x86_piece_end(gpa, gpa_end) : gpa_end;
        kd->ranges[kd->nranges++] = (struct vmem_range){
            gpa, piece, kd->x86 ? vmem_x86_range_kind(gpa, piece) : VMEM_RANGE_RAM};
        pfn = piece >> VMEM_PAGE_SHIFT;
    }
    return 0;
}

/* ---- compression ---- */

static unsigned methods_built_in(void)
{
    unsigned m = COMP_ZLIB;
    if (vmem_block_codec_built(VMEM_BLOCK_LZO))
        m |= COMP_LZO;
    if (vmem_block_codec_built(VMEM_BLOCK_SNAPPY))
        m |= COMP_SNAPPY;
    if (vmem_block_codec_built(VMEM_BLOCK_ZSTD))
        m |= COMP_ZSTD;
    return m;
}

/* Decompress one page into dst (KD_BLOCK_SIZE bytes).  src is a private
 * copy, never the mapping: the allocations zlib and zstd make must not be
 * abandoned by a SIGBUS on a truncated file.  0 or -EIO. */
static int decompress_page(unsigned method, const uint8_t *src, size_t len, uint8_t *dst)
{
    switch (method) {
    case COMP_ZLIB:
        return vmem_decompress_block(VMEM_BLOCK_ZLIB, src, len, dst, KD_BLOCK_SIZE);
    case COMP_LZO:
        return vmem_decompress_block(VMEM_BLOCK_LZO, src, len, dst, KD_BLOCK_SIZE);
    case COMP_SNAPPY:
        return vmem_decompress_block(VMEM_BLOCK_SNAPPY, src, len, dst, KD_BLOCK_SIZE);
    case COMP_ZSTD:
        return vmem_decompress_block(VMEM_BLOCK_ZSTD, src, len, dst, KD_BLOCK_SIZE);
    default:
        return -EIO;            /* several bits at once */
    }
}

/* ---- descriptors ---- */

struct page_desc {
    uint64_t offset;
    uint32_t size;
    uint32_t flags;
};

static int read_desc(const struct kdump *kd, uint64_t idx, struct page_desc *pd)
{
    uint8_t raw[DESC_SIZE];
    if (idx >= kd->ndesc_in_file ||
        src_read(kd, kd->desc_off + idx * DESC_SIZE, DESC_SIZE, raw) != 0)
        return -EIO;
    pd->offset = ld64(raw, kd->big_endian);
    pd->size = ld32(raw + 8, kd->big_endian);
    pd->flags = ld32(raw + 12, kd->big_endian);
    return 0;
}

/* Which compressions the dump uses: makedumpfile and QEMU use one method
 * per dump (plus verbatim pages where it does not pay), so an even sample
 * of the descriptors names them without reading the whole table. */
static void sample_methods(struct kdump *kd)
{
    /* The header's status names the method the writer was asked for. */
    kd->methods_seen = kd->status & COMP_ALL;
    uint64_t n = kd->ndesc_in_file;
    uint64_t samples = n < KD_METHOD_SAMPLES ? n : KD_METHOD_SAMPLES;
    for (uint64_t k = 0; k < samples; k++) {
        struct page_desc pd;
        /* k * n stays far below 2^64: n < 2^52, k < 2^12. */
        if (read_desc(kd, k * n / samples, &pd) != 0)
            continue;
        kd->methods_seen |= pd.flags ? pd.flags : SEEN_RAW;
    }
}

static void build_describe(struct kdump *kd)
{
    char *p = kd->describe;
    size_t left = sizeof kd->describe;
#define PUT(...)                                                              \
    do {                                                                      \
        int w_ = snprintf(p, left, __VA_ARGS__);                              \
        if (w_ < 0 || (size_t)w_ >= left) {                                   \
            return;                                                           \
        }                                                                     \
        p += w_;                                                              \
        left -= (size_t)w_;                                                   \
    } while (0)

    PUT("kdump-compressed v%u%s%s%s, block %u, %llu pages, %llu dumped",
        kd->version, kd->flattened ? " (flattened)" : "",
        kd->is32 ? ", 32-bit" : "", kd->big_endian ? ", big-endian" : "",
        KD_BLOCK_SIZE, ull(kd->nram), ull(kd->ndesc));

    static const struct { unsigned bit; const char *name; } methods[] = {
        {COMP_ZLIB, "zlib"}, {COMP_LZO, "lzo"}, {COMP_SNAPPY, "snappy"},
        {COMP_ZSTD, "zstd"},
    };
    unsigned have = methods_built_in();
    int named = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (!(kd->methods_seen & methods[i].bit))
            continue;
        if (have & methods[i].bit)
            PUT(", %s", methods[i].name);
        else
            PUT(", %s: not built in", methods[i].name);
        named = 1;
    }
    unsigned unknown = kd->methods_seen & ~(COMP_ALL | SEEN_RAW);
    if (unknown)
        PUT(", unknown page flags 0x%x", unknown);
    else if (!named && (kd->methods_seen & SEEN_RAW))
        PUT(", uncompressed");
    if (kd->single_bitmap)
        PUT(", single bitmap");
    if (kd->split)
        PUT(", split part pfn 0x%llx-0x%llx", ull(kd->start_pfn), ull(kd->end_pfn));
    if (kd->status & STATUS_INCOMPLETE)
        PUT(", incomplete");
    if (kd->ndesc_in_file < kd->ndesc)
        PUT(", truncated: %llu of %llu descriptors", ull(kd->ndesc_in_file),
            ull(kd->ndesc));
    else if (kd->flat_truncated)
        PUT(", truncated flattened stream");
#undef PUT
}

/* ---- public interface ---- */

int dump_is_kdump(const uint8_t *base, size_t size)
{
    if (size >= SIG_LEN && (memcmp(base, KDUMP_SIGNATURE, SIG_LEN) == 0 ||
                            memcmp(base, DISKDUMP_SIGNATURE, SIG_LEN) == 0))
        return 1;
    /* A flattened stream is claimed too, so that one which does not hold
     * a kdump (makedumpfile -E -F) is refused with a message rather than
     * read as a raw image. */
    return size >= sizeof FLAT_SIGNATURE &&
           memcmp(base, FLAT_SIGNATURE, sizeof FLAT_SIGNATURE) == 0;
}

static int plausible_block_size(uint32_t bs)
{
    return bs >= 512 && bs <= (1u << 20) && (bs & (bs - 1)) == 0;
}

/* Bytes of the sub header that exist in a given header version. */
static size_t sub_header_size(unsigned version, int is32)
{
    static const size_t s64[] = {0, 12, 32, 48, 64, 80, 104};
    static const size_t s32[] = {0, 8, 20, 32, 44, 56, 80};
    unsigned v = version > 6 ? 6 : version;
    return is32 ? s32[v] : s64[v];
}

static int parse(struct kdump *kd, struct dump_layout *out, char *err, size_t errlen)
{
    int rc;
    if (kd->size >= sizeof FLAT_SIGNATURE &&
        memcmp(kd->base, FLAT_SIGNATURE, sizeof FLAT_SIGNATURE) == 0) {
        kd->flattened = 1;
        if ((rc = flat_index(kd, err, errlen)) != 0)
            return rc;
    } else {
        kd->lsize = kd->size;
    }

    /* ---- main header ---- */
    uint8_t h[HDR64_SIZE] = {0};
    src_read(kd, 0, kd->lsize < HDR64_SIZE ? kd->lsize : HDR64_SIZE, h);
    if (memcmp(h, KDUMP_SIGNATURE, SIG_LEN) != 0) {
        if (memcmp(h, DISKDUMP_SIGNATURE, SIG_LEN) == 0)
            return fail(err, errlen, -EINVAL,
                        "kdump: old diskdump format (\"DISKDUMP\") not supported");
        if (kd->flattened && memcmp(h, "\177ELF", 4) == 0)
            return fail(err, errlen, -EINVAL,
                        "kdump: flattened makedumpfile file holds an ELF core; "
                        "rebuild it with `makedumpfile -R out.elf < file`");
        return fail(err, errlen, -EINVAL,
                    "kdump: no \"KDUMP   \" signature at logical offset 0%s",
                    kd->flattened ? " of the flattened stream" : "");
    }
    if (kd->lsize < HDR32_SIZE)
        return fail(err, errlen, -EINVAL,
                    "kdump: file too small for the disk_dump_header "
                    "(0x%llx bytes, need 0x%x)", ull(kd->lsize), HDR32_SIZE);

    /* QEMU writes the header in the target's byte order; a version number
     * is small, which tells the order apart. */
    uint32_t v_le = ld32(h + HDR_VERSION_OFF, 0), v_be = ld32(h + HDR_VERSION_OFF, 1);
    if (v_le <= 0xffff)
        kd->big_endian = 0;
    else if (v_be <= 0xffff)
        kd->big_endian = 1;
    else
        return fail(err, errlen, -EINVAL,
                    "kdump: header_version 0x%x at offset 0x%x is not a version",
                    v_le, HDR_VERSION_OFF);
    kd->version = kd->big_endian ? v_be : v_le;

    /* 64- or 32-bit layout: block_size sits at a different offset; where
     * both look valid, the utsname machine decides. */
    int be = kd->big_endian;
    uint32_t bs64 = ld32(h + HDR64_STATUS_OFF + HDR_BLOCK_SIZE, be);
    uint32_t bs32 = ld32(h + HDR32_STATUS_OFF + HDR_BLOCK_SIZE, be);
    int ok64 = plausible_block_size(bs64), ok32 = plausible_block_size(bs32);
    char machine[HDR_UTS_FIELD + 1] = {0};
    memcpy(machine, h + HDR_MACHINE_OFF, HDR_UTS_FIELD);
    /* x86_64, i386, i686 (QEMU writes its target's name). */
    kd->x86 = strstr(machine, "86") != NULL;
    if (ok64 && ok32) {
        kd->is32 = !(strstr(machine, "64") || strstr(machine, "s390x"));
    } else if (ok64 || ok32) {
        kd->is32 = ok32;
    } else {
        return fail(err, errlen, -EINVAL,
                    "kdump: header block_size %u (offset 0x%x) is not a power "
                    "of two between 512 and 1 MiB", bs64,
                    HDR64_STATUS_OFF + HDR_BLOCK_SIZE);
    }
    if (!kd->is32 && kd->lsize < HDR64_SIZE)
        return fail(err, errlen, -EINVAL,
                    "kdump: file too small for the 64-bit disk_dump_header "
                    "(0x%llx bytes, need 0x%x)", ull(kd->lsize), HDR64_SIZE);
    const uint8_t *st = h + (kd->is32 ? HDR32_STATUS_OFF : HDR64_STATUS_OFF);
    kd->status = ld32(st, be);
    uint32_t block_size = ld32(st + HDR_BLOCK_SIZE, be);
    uint32_t sub_hdr_size = ld32(st + HDR_SUB_HDR_SIZE, be);
    uint32_t bitmap_blocks = ld32(st + HDR_BITMAP_BLOCKS, be);
    uint32_t max_mapnr32 = ld32(st + HDR_MAX_MAPNR, be);
    kd->nr_cpus = ld32(st + HDR_NR_CPUS, be);
    if (block_size != KD_BLOCK_SIZE)
        return fail(err, errlen, -EINVAL,
                    "kdump: block size %u not supported (only %u-byte pages)",
                    block_size, KD_BLOCK_SIZE);

    /* ---- sub header ---- */
    uint8_t s[SUB_MAX_SIZE] = {0};
    size_t need = sub_header_size(kd->version, kd->is32);
    uint64_t sub_off = KD_BLOCK_SIZE, sub_len = (uint64_t)sub_hdr_size * KD_BLOCK_SIZE;
    if (need > sub_len)
        return fail(err, errlen, -EINVAL,
                    "kdump: sub header (%u blocks) too small for header version %u "
                    "(needs 0x%zx bytes)", sub_hdr_size, kd->version, need);
    if (need && src_read(kd, sub_off, need, s) != 0)
        return fail(err, errlen, -EINVAL,
                    "kdump: sub header (offset 0x%llx, 0x%zx bytes) runs past end "
                    "of file (size 0x%llx)", ull(sub_off), need, ull(kd->lsize));
    uint64_t max_mapnr = max_mapnr32, note_off = 0, note_len = 0;
    uint32_t split = 0;
    uint64_t start_pfn = 0, end_pfn = 0;
    if (kd->is32) {
        kd->phys_base = ld32(s, be);
        split = ld32(s + 8, be);
        start_pfn = ld32(s + 12, be);
        end_pfn = ld32(s + 16, be);
        note_off = ld64(s + 32, be);
        note_len = ld32(s + 40, be);
        if (kd->version >= 6) {
            start_pfn = ld64(s + 56, be);
            end_pfn = ld64(s + 64, be);
            if (ld64(s + 72, be))
                max_mapnr = ld64(s + 72, be);
        }
    } else {
        kd->phys_base = ld64(s, be);
        split = ld32(s + 12, be);
        start_pfn = ld64(s + 16, be);
        end_pfn = ld64(s + 24, be);
        note_off = ld64(s + 48, be);
        note_len = ld64(s + 56, be);
        if (kd->version >= 6) {
            start_pfn = ld64(s + 80, be);
            end_pfn = ld64(s + 88, be);
            if (ld64(s + 96, be))
                max_mapnr = ld64(s + 96, be);
        }
    }
    if (kd->version < 2)
        split = 0;
    if (kd->version < 4)
        note_off = note_len = 0;

    /* ---- bitmaps ---- */
    uint64_t bm_off = (1 + (uint64_t)sub_hdr_size) * KD_BLOCK_SIZE;
    uint64_t bm_len = (uint64_t)bitmap_blocks * KD_BLOCK_SIZE;
    if (bm_off > kd->lsize || bm_len > kd->lsize - bm_off)
        return fail(err, errlen, -EINVAL,
                    "kdump: bitmap (offset 0x%llx, 0x%llx bytes) runs past end of "
                    "file (size 0x%llx)", ull(bm_off), ull(bm_len), ull(kd->lsize));
    if (max_mapnr > KD_MAX_PFN)
        return fail(err, errlen, -EINVAL,
                    "kdump: max_mapnr 0x%llx is beyond 52-bit physical addresses",
                    ull(max_mapnr));
    /* Each bitmap takes whole blocks; two of them mean the 1st/2nd layout
     * (as the crash utility decides), exactly one the old single bitmap. */
    uint64_t bm_need = (max_mapnr + 7) / 8;
    uint64_t bm_need_blocks = (bm_need + KD_BLOCK_SIZE - 1) / KD_BLOCK_SIZE * KD_BLOCK_SIZE;
    kd->max_mapnr = max_mapnr;
    if (kd->flattened) {
        /* Rebuild the bitmaps in memory; they are real data in the file,
         * so this costs no more than the file holds. */
        if (bm_len > kd->size)
            return fail(err, errlen, -EINVAL,
                        "kdump: bitmap (0x%llx bytes) larger than the whole "
                        "flattened file (0x%zx bytes)", ull(bm_len), kd->size);
        kd->bm_copy = malloc(bm_len ? (size_t)bm_len : 1);
        if (!kd->bm_copy)
            return fail(err, errlen, -ENOMEM, "kdump: out of memory for the bitmap "
                        "(0x%llx bytes)", ull(bm_len));
        src_read(kd, bm_off, bm_len, kd->bm_copy);
        kd->bm_ram = kd->bm_copy;
    } else {
        kd->bm_ram = kd->base + bm_off;
    }
    if (bm_len >= 2 * bm_need_blocks) {
        kd->bm_dumped = kd->bm_ram + bm_len / 2;
    } else if (bm_len >= bm_need) {
        kd->bm_dumped = kd->bm_ram;
        kd->single_bitmap = 1;
    } else {
        return fail(err, errlen, -EINVAL,
                    "kdump: bitmap (0x%llx bytes at offset 0x%llx) too small for "
                    "max_mapnr %llu (needs 0x%llx bytes per bitmap)", ull(bm_len),
                    ull(bm_off), ull(max_mapnr), ull(bm_need));
    }

    if (split) {
        if (start_pfn > end_pfn || end_pfn > max_mapnr)
            return fail(err, errlen, -EINVAL,
                        "kdump: split part pfn range 0x%llx-0x%llx outside "
                        "max_mapnr 0x%llx", ull(start_pfn), ull(end_pfn),
                        ull(max_mapnr));
        kd->split = 1;
        kd->start_pfn = start_pfn;
        kd->end_pfn = end_pfn;
    } else {
        kd->start_pfn = 0;
        kd->end_pfn = max_mapnr;
    }

    if ((rc = build_rank(kd, err, errlen)) != 0)
        return rc;
    kd->rank_start = rank_of(kd, kd->start_pfn);
    kd->ndesc = rank_of(kd, kd->end_pfn) - kd->rank_start;
    kd->desc_off = bm_off + bm_len;
    /* A table cut short (an interrupted dump) still serves the pages whose
     * descriptors made it; the rest read as EIO. */
    uint64_t room = (kd->lsize - kd->desc_off) / DESC_SIZE;
    kd->ndesc_in_file = kd->ndesc < room ? kd->ndesc : room;

    if ((rc = build_ranges(kd, err, errlen)) != 0)
        return rc;
    sample_methods(kd);
    build_describe(kd);

    /* ---- ELF notes (vCPU registers) ---- */
    /* Optional: notes out of bounds are left out, not fatal.  Notes of a
     * big-endian target are left to a parser that knows that order. */
    if (note_len && !kd->big_endian && note_off <= kd->lsize &&
        note_len <= kd->lsize - note_off && note_len <= kd->size) {
        const uint8_t *notes = src_ptr(kd, note_off, note_len);
        uint8_t *copy = NULL;
        if (!notes) {
            copy = malloc((size_t)note_len);
            if (copy && src_read(kd, note_off, note_len, copy) == 0)
                notes = copy;
        }
        if (notes)
            dump_parse_notes(notes, (size_t)note_len, !kd->is32, out);
        free(copy);
    }
    return 0;
}

int dump_parse_kdump(const uint8_t *base, size_t size, struct dump_layout *out,
                     char *err, size_t errlen)
{
    struct kdump *kd = calloc(1, sizeof *kd);
    if (!kd)
        return fail(err, errlen, -ENOMEM, "kdump: out of memory");
    kd->base = base;
    kd->size = size;
    /* Published before the first access to the mapping: if a SIGBUS
     * abandons the parse, dump_layout_free still reaches and frees it. */
    out->backend = &kdump_backend;
    out->backend_priv = kd;
    int rc = parse(kd, out, err, errlen);
    if (rc != 0) {
        out->backend = NULL;
        out->backend_priv = NULL;
        kdump_close(kd);
        return rc;
    }
    out->format = "kdump";
    out->segs = NULL;
    out->nsegs = 0;
    /* detail is shorter than describe: cut, on purpose. */
    size_t dn = strnlen(kd->describe, sizeof out->detail - 1);
    memcpy(out->detail, kd->describe, dn);
    out->detail[dn] = '\0';
    return 0;
}

void kdump_ranges(struct kdump *kd, const struct vmem_range **out, size_t *n)
{
    *out = kd->ranges;
    *n = kd->nranges;
}

int kdump_read_frame(struct kdump *kd, uint64_t gfn, void *buf)
{
    if (gfn >= kd->max_mapnr || gfn < kd->start_pfn || gfn >= kd->end_pfn ||
        !bm_test(kd->bm_dumped, gfn))
        return -ENOENT;
    struct page_desc pd;
    if (read_desc(kd, rank_of(kd, gfn) - kd->rank_start, &pd) != 0)
        return -EIO;
    /* An interrupted makedumpfile leaves unwritten descriptors zero: the
     * page is missing, not corrupt. */
    if ((kd->status & STATUS_INCOMPLETE) && pd.offset == 0 && pd.size == 0)
        return -ENOENT;

    unsigned method = pd.flags & COMP_ALL;
    if (pd.flags & ~COMP_ALL)
        return -EIO;
    if (!method) {
        if (pd.size != KD_BLOCK_SIZE)
            return -EIO;
        return src_read(kd, pd.offset, KD_BLOCK_SIZE, buf) == 0 ? 0 : -EIO;
    }
    if (pd.size == 0 || pd.size > KD_MAX_COMPRESSED)
        return -EIO;
    if (!(methods_built_in() & method))
        return -EIO;
    /* Copy the compressed bytes off the mapping first (see decompress_page). */
    uint8_t src[KD_MAX_COMPRESSED];
    if (src_read(kd, pd.offset, pd.size, src) != 0)
        return -EIO;
    return decompress_page(method, src, pd.size, buf);
}

const char *kdump_describe(struct kdump *kd)
{
    return kd->describe;
}

void kdump_close(struct kdump *kd)
{
    if (!kd)
        return;
    free(kd->ext);
    free(kd->recs);
    free(kd->heap);
    free(kd->bm_copy);
    free(kd->rank);
    free(kd->ranges);
    free(kd);
}

static void backend_ranges(void *b, const struct vmem_range **out, size_t *n)
{
    kdump_ranges(b, out, n);
}
static int backend_read_frame(void *b, uint64_t gfn, void *buf)
{
    return kdump_read_frame(b, gfn, buf);
}
static const char *backend_describe(void *b) { return kdump_describe(b); }
static void backend_close(void *b) { kdump_close(b); }

const struct dump_backend_ops kdump_backend = {
    .name = "kdump",
    .ranges = backend_ranges,
    .read_frame = backend_read_frame,
    .describe = backend_describe,
    .close = backend_close,
};
