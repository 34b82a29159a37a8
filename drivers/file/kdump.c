/*
 * kdump.c - the kdump-compressed dump format: signature "KDUMP   ", written
 * by makedumpfile, by QEMU's dump-guest-memory format=kdump-{zlib,lzo,snappy}
 * and by `virsh dump --memory-only --format=kdump-*`.
 *
 * Owns struct kdump's life (see kdump_internal.h for the layout of a dump
 * and the pieces): detection, the header parse (block size, sub header,
 * bitmaps, descriptors checked against the logical file), the public
 * functions of kdump.h and the backend ops.  It reads the dump through the
 * caller's read-only mapping and never keeps a copy of page data.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/kdump_internal.h"

/* ---- small helpers ---- */

int kd_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
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
        if ((rc = kd_flat_index(kd, err, errlen)) != 0)
            return rc;
    } else {
        kd->lsize = kd->size;
    }

    /* ---- main header ---- */
    uint8_t h[HDR64_SIZE] = {0};
    kd_src_read(kd, 0, kd->lsize < HDR64_SIZE ? kd->lsize : HDR64_SIZE, h);
    if (memcmp(h, KDUMP_SIGNATURE, SIG_LEN) != 0) {
        if (memcmp(h, DISKDUMP_SIGNATURE, SIG_LEN) == 0)
            return kd_fail(err, errlen, -EINVAL,
                        "kdump: old diskdump format (\"DISKDUMP\") not supported");
        if (kd->flattened && memcmp(h, "\177ELF", 4) == 0)
            return kd_fail(err, errlen, -EINVAL,
                        "kdump: flattened makedumpfile file holds an ELF core; "
                        "rebuild it with `makedumpfile -R out.elf < file`");
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: no \"KDUMP   \" signature at logical offset 0%s",
                    kd->flattened ? " of the flattened stream" : "");
    }
    if (kd->lsize < HDR32_SIZE)
        return kd_fail(err, errlen, -EINVAL,
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
        return kd_fail(err, errlen, -EINVAL,
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
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: header block_size %u (offset 0x%x) is not a power "
                    "of two between 512 and 1 MiB", bs64,
                    HDR64_STATUS_OFF + HDR_BLOCK_SIZE);
    }
    if (!kd->is32 && kd->lsize < HDR64_SIZE)
        return kd_fail(err, errlen, -EINVAL,
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
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: block size %u not supported (only %u-byte pages)",
                    block_size, KD_BLOCK_SIZE);

    /* ---- sub header ---- */
    uint8_t s[SUB_MAX_SIZE] = {0};
    size_t need = sub_header_size(kd->version, kd->is32);
    uint64_t sub_off = KD_BLOCK_SIZE, sub_len = (uint64_t)sub_hdr_size * KD_BLOCK_SIZE;
    if (need > sub_len)
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: sub header (%u blocks) too small for header version %u "
                    "(needs 0x%zx bytes)", sub_hdr_size, kd->version, need);
    if (need && kd_src_read(kd, sub_off, need, s) != 0)
        return kd_fail(err, errlen, -EINVAL,
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
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: bitmap (offset 0x%llx, 0x%llx bytes) runs past end of "
                    "file (size 0x%llx)", ull(bm_off), ull(bm_len), ull(kd->lsize));
    if (max_mapnr > KD_MAX_PFN)
        return kd_fail(err, errlen, -EINVAL,
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
            return kd_fail(err, errlen, -EINVAL,
                        "kdump: bitmap (0x%llx bytes) larger than the whole "
                        "flattened file (0x%zx bytes)", ull(bm_len), kd->size);
        kd->bm_copy = malloc(bm_len ? (size_t)bm_len : 1);
        if (!kd->bm_copy)
            return kd_fail(err, errlen, -ENOMEM, "kdump: out of memory for the bitmap "
                        "(0x%llx bytes)", ull(bm_len));
        kd_src_read(kd, bm_off, bm_len, kd->bm_copy);
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
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: bitmap (0x%llx bytes at offset 0x%llx) too small for "
                    "max_mapnr %llu (needs 0x%llx bytes per bitmap)", ull(bm_len),
                    ull(bm_off), ull(max_mapnr), ull(bm_need));
    }

    if (split) {
        if (start_pfn > end_pfn || end_pfn > max_mapnr)
            return kd_fail(err, errlen, -EINVAL,
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

    if ((rc = kd_build_rank(kd, err, errlen)) != 0)
        return rc;
    kd->rank_start = kd_rank_of(kd, kd->start_pfn);
    kd->ndesc = kd_rank_of(kd, kd->end_pfn) - kd->rank_start;
    kd->desc_off = bm_off + bm_len;
    /* A table cut short (an interrupted dump) still serves the pages whose
     * descriptors made it; the rest read as EIO. */
    uint64_t room = (kd->lsize - kd->desc_off) / DESC_SIZE;
    kd->ndesc_in_file = kd->ndesc < room ? kd->ndesc : room;

    if ((rc = kd_build_ranges(kd, err, errlen)) != 0)
        return rc;
    kd_sample_methods(kd);
    kd_build_describe(kd);

    /* ---- ELF notes (vCPU registers) ---- */
    /* Optional: notes out of bounds are left out, not fatal.  Notes of a
     * big-endian target are left to a parser that knows that order. */
    if (note_len && !kd->big_endian && note_off <= kd->lsize &&
        note_len <= kd->lsize - note_off && note_len <= kd->size) {
        const uint8_t *notes = kd_src_ptr(kd, note_off, note_len);
        uint8_t *copy = NULL;
        if (!notes) {
            copy = malloc((size_t)note_len);
            if (copy && kd_src_read(kd, note_off, note_len, copy) == 0)
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
        return kd_fail(err, errlen, -ENOMEM, "kdump: out of memory");
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
