/*
 * lime.c - LiME dumps (Linux Memory Extractor, format "lime"): a sequence of
 * 32-byte headers, each followed by the bytes of one physical range.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/format.h"

#define LIME_MAGIC 0x4C694D45u      /* "EMiL" on disk */
#define LIME_HDR   32

struct lime_header {
    uint32_t magic;
    uint32_t version;
    uint64_t s_addr;                /* first byte */
    uint64_t e_addr;                /* last byte, inclusive */
    uint8_t reserved[8];
};

int dump_is_lime(const uint8_t *base, size_t size)
{
    uint32_t magic;
    if (size < LIME_HDR)
        return 0;
    memcpy(&magic, base, 4);
    return magic == LIME_MAGIC;
}

int dump_parse_lime(const uint8_t *base, size_t size, struct dump_layout *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->format = "lime";
    size_t cap = 16, off = 0;
    out->segs = calloc(cap, sizeof *out->segs);
    if (!out->segs)
        return -ENOMEM;
    while (off < size) {
        struct lime_header h;
        if (size - off < LIME_HDR) {
            snprintf(err, errlen, "LiME: header at offset 0x%zx truncated "
                     "(file size 0x%zx)", off, size);
            goto bad;
        }
        memcpy(&h, base + off, sizeof h);
        if (h.magic != LIME_MAGIC) {
            snprintf(err, errlen, "LiME: bad magic 0x%08x at offset 0x%zx",
                     h.magic, off);
            goto bad;
        }
        if (h.version != 1) {
            snprintf(err, errlen, "LiME: unsupported version %u at offset 0x%zx",
                     h.version, off);
            goto bad;
        }
        if (h.e_addr < h.s_addr || h.e_addr == UINT64_MAX) {
            snprintf(err, errlen, "LiME: range 0x%" PRIx64 "-0x%" PRIx64
                     " at offset 0x%zx is empty or wraps", h.s_addr, h.e_addr, off);
            goto bad;
        }
        uint64_t len = h.e_addr - h.s_addr + 1;
        off += LIME_HDR;
        if (len > size - off) {
            snprintf(err, errlen, "LiME: range 0x%" PRIx64 "-0x%" PRIx64
                     " needs 0x%" PRIx64 " bytes at offset 0x%zx but the file "
                     "ends at 0x%zx: truncated dump?", h.s_addr, h.e_addr, len,
                     off, size);
            goto bad;
        }
        if (out->nsegs > 0) {
            struct dump_segment *prev = &out->segs[out->nsegs - 1];
            if (h.s_addr < prev->gpa + prev->len) {
                snprintf(err, errlen, "LiME: range at 0x%" PRIx64 " overlaps or "
                         "precedes the previous one", h.s_addr);
                goto bad;
            }
        }
        if (out->nsegs == cap) {
            cap *= 2;
            struct dump_segment *s = realloc(out->segs, cap * sizeof *s);
            if (!s)
                goto bad;
            out->segs = s;
        }
        out->segs[out->nsegs++] = (struct dump_segment){
            .gpa = h.s_addr, .len = len, .file_off = off, .kind = VMEM_RANGE_RAM};
        off += len;
    }
    snprintf(out->detail, sizeof out->detail, "LiME v1, %zu ranges", out->nsegs);
    return 0;
bad:
    return -EINVAL;
}
