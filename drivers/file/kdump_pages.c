/*
 * kdump_pages.c - the pages of a kdump-compressed dump (see
 * kdump_internal.h): the two bitmaps (the rank index that turns a pfn
 * into a descriptor index, RAM ranges from runs of the 1st), the page
 * descriptors, the compression methods seen and built in, and one frame
 * read: checked, then copied or decompressed.  A bad page is -EIO for
 * that frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/decompress.h"
#include "core/phys/ranges.h"
#include "drivers/file/kdump_internal.h"

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
uint64_t kd_rank_of(const struct kdump *kd, uint64_t pfn)
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

int kd_build_rank(struct kdump *kd, char *err, size_t errlen)
{
    uint64_t nchunks = (kd->max_mapnr >> RANK_SHIFT) + 1;
    uint64_t nwords = (kd->max_mapnr + 63) / 64;
    kd->rank = malloc(nchunks * sizeof *kd->rank);
    if (!kd->rank)
        return kd_fail(err, errlen, -ENOMEM, "kdump: out of memory for the page index "
                    "(%llu pages)", ull(kd->max_mapnr));
    uint64_t total = 0;
    for (uint64_t c = 0; c < nchunks; c++) {
        kd->rank[c] = total;
        for (uint64_t w = c * RANK_WORDS; w < (c + 1) * RANK_WORDS && w < nwords; w++)
            total += (uint64_t)__builtin_popcountll(bm_word(kd, kd->bm_dumped, w));
    }
    return 0;
}

int kd_build_ranges(struct kdump *kd, char *err, size_t errlen)
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
                return kd_fail(err, errlen, -EINVAL,
                            "kdump: 1st bitmap too fragmented (more than %u RAM "
                            "ranges below pfn 0x%llx)", KD_MAX_RANGES, ull(start));
            size_t ncap = cap ? cap * 2 : 16;
            struct vmem_range *nr = realloc(kd->ranges, ncap * sizeof *nr);
            if (!nr)
                return kd_fail(err, errlen, -ENOMEM, "kdump: out of memory for RAM ranges");
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

static int read_desc(const struct kdump *kd, uint64_t idx, struct page_desc *pd)
{
    uint8_t raw[DESC_SIZE];
    if (idx >= kd->ndesc_in_file ||
        kd_src_read(kd, kd->desc_off + idx * DESC_SIZE, DESC_SIZE, raw) != 0)
        return -EIO;
    pd->offset = ld64(raw, kd->big_endian);
    pd->size = ld32(raw + 8, kd->big_endian);
    pd->flags = ld32(raw + 12, kd->big_endian);
    return 0;
}

/* Which compressions the dump uses: makedumpfile and QEMU use one method
 * per dump (plus verbatim pages where it does not pay), so an even sample
 * of the descriptors names them without reading the whole table. */
void kd_sample_methods(struct kdump *kd)
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

void kd_build_describe(struct kdump *kd)
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

/* ---- reading a frame ---- */

int kdump_read_frame(struct kdump *kd, uint64_t gfn, void *buf)
{
    if (gfn >= kd->max_mapnr || gfn < kd->start_pfn || gfn >= kd->end_pfn ||
        !bm_test(kd->bm_dumped, gfn))
        return -ENOENT;
    struct page_desc pd;
    if (read_desc(kd, kd_rank_of(kd, gfn) - kd->rank_start, &pd) != 0)
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
        return kd_src_read(kd, pd.offset, KD_BLOCK_SIZE, buf) == 0 ? 0 : -EIO;
    }
    if (pd.size == 0 || pd.size > KD_MAX_COMPRESSED)
        return -EIO;
    if (!(methods_built_in() & method))
        return -EIO;
    /* Copy the compressed bytes off the mapping first (see decompress_page). */
    uint8_t src[KD_MAX_COMPRESSED];
    if (kd_src_read(kd, pd.offset, pd.size, src) != 0)
        return -EIO;
    return decompress_page(method, src, pd.size, buf);
}
