/*
 * kdump_flat.c - the logical file of a kdump-compressed dump (see
 * kdump_internal.h): the dump's own bytes, or, for QEMU before 8.2 and
 * makedumpfile -F, the flattened stream's records indexed into extents of
 * the file they rebuild (later records win where they overlap).  Every
 * record is checked against the file's size and for overflow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/kdump_internal.h"

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
int kd_src_read(const struct kdump *kd, uint64_t loff, uint64_t len, void *dst)
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
const uint8_t *kd_src_ptr(const struct kdump *kd, uint64_t loff, uint64_t len)
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
int kd_flat_index(struct kdump *kd, char *err, size_t errlen)
{
    const uint8_t *b = kd->base;
    size_t size = kd->size;
    if (size < FLAT_HEADER_SIZE)
        return kd_fail(err, errlen, -EINVAL,
                    "kdump: flattened makedumpfile header truncated "
                    "(file size 0x%zx, header 0x%x bytes)", size, FLAT_HEADER_SIZE);
    uint64_t type = ld64(b + 16, 1);
    if (type != FLAT_TYPE)
        return kd_fail(err, errlen, -EINVAL,
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
            return kd_fail(err, errlen, -EINVAL,
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
                    return kd_fail(err, errlen, -ENOMEM,
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
        return kd_fail(err, errlen, -EINVAL,
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
        return kd_fail(err, errlen, -ENOMEM,
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
