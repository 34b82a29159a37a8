/*
 * test_kdump.c - unit tests of the kdump-compressed parser
 * (drivers/file/kdump.c, kdump_flat.c, kdump_pages.c).
 *
 * The tests carry their own small kdump writer, following the layout
 * makedumpfile and QEMU write (64- and 32-bit headers, either byte order,
 * one or two bitmaps, split parts, the flattened stream), so every case is
 * built in memory with exactly the pages, holes and damage it needs.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#if __has_include(<lzo/lzo1x.h>)
#include <lzo/lzo1x.h>
#define TEST_LZO 1
#endif
#if __has_include(<snappy-c.h>)
#include <snappy-c.h>
#define TEST_SNAPPY 1
#endif

#include "drivers/file/kdump.h"

/* ---- a stand-in for the notes parser ----
 * drivers/file/notes.c owns dump_parse_notes.  From the static library
 * the linker takes notes.o only when a symbol of it is still undefined, so
 * this weak definition normally serves, recording what the kdump parser
 * handed over; when the real one is linked it wins and the notes test
 * checks its result instead. */
static const uint8_t *stub_notes;
static size_t stub_notes_len;
static int stub_notes_64;
static int stub_notes_calls;

__attribute__((weak)) void dump_parse_notes(const uint8_t *notes, size_t len,
                                            int is_64bit, struct dump_layout *out)
{
    (void)out;
    stub_notes = notes;
    stub_notes_len = len;
    stub_notes_64 = is_64bit;
    stub_notes_calls++;
}

/* ---- the writer ---- */

#define PAGE 4096u

/* Per-page storage methods (the kdump flags, plus test-only ones). */
#define M_RAW        0x00u
#define M_ZLIB       0x01u
#define M_LZO        0x02u
#define M_SNAPPY     0x04u
#define M_ZSTD_RLE   0x20u     /* a hand-made zstd frame: one RLE block */
#define M_UNWRITTEN  0x1000u   /* incomplete dump: descriptor left zero */

struct wspec {
    uint64_t max_mapnr;
    unsigned version;
    int is32, be;
    int single_bitmap;
    int split;
    uint64_t start_pfn, end_pfn;
    int incomplete;
    int share_zero;             /* zero pages share one stored page (QEMU) */
    uint32_t block_size;        /* header value; 0 means 4096 */
    const uint8_t *notes;
    size_t notes_len;
    uint8_t *ram;               /* [max_mapnr]: bit in the 1st bitmap */
    uint8_t *dumped;            /* [max_mapnr]: bit in the 2nd bitmap */
    unsigned *method;           /* [max_mapnr]: M_* */
};

struct wout {
    uint8_t *p;
    size_t len, cap;
    uint8_t *expect;            /* [max_mapnr * PAGE]: what a frame must read */
    uint64_t *desc_at;          /* [max_mapnr]: file offset of its descriptor */
    uint64_t *data_at;          /* [max_mapnr]: file offset of its data */
    uint32_t *data_len;
    uint32_t *flags;
    uint64_t bm_off, desc_off;
};

static void w_at(struct wout *o, uint64_t off, const void *d, size_t n)
{
    if (off + n > o->cap) {
        size_t ncap = o->cap ? o->cap : 65536;
        while (ncap < off + n)
            ncap *= 2;
        o->p = realloc(o->p, ncap);
        assert_non_null(o->p);
        memset(o->p + o->cap, 0, ncap - o->cap);
        o->cap = ncap;
    }
    memcpy(o->p + off, d, n);
    if (off + n > o->len)
        o->len = off + n;
}

static void w32(struct wout *o, uint64_t off, uint32_t v, int be)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[be ? 3 - i : i] = (uint8_t)(v >> (8 * i));
    w_at(o, off, b, 4);
}

static void w64(struct wout *o, uint64_t off, uint64_t v, int be)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[be ? 7 - i : i] = (uint8_t)(v >> (8 * i));
    w_at(o, off, b, 8);
}

/* Deterministic page contents: zero pages, incompressible pages (stored
 * verbatim even when compression is asked for) and compressible ones. */
static void page_content(uint64_t pfn, uint8_t *p)
{
    if (pfn % 7 == 3) {
        memset(p, 0, PAGE);
        return;
    }
    if (pfn % 11 == 5) {
        uint64_t x = pfn * 0x9E3779B97F4A7C15ull + 1;
        for (unsigned i = 0; i < PAGE; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p[i] = (uint8_t)x;
        }
        return;
    }
    for (unsigned i = 0; i < PAGE; i++)
        p[i] = (uint8_t)(pfn * 31 + i / 64);
    memcpy(p, &pfn, sizeof pfn);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Compress a page with `method`; 0 if the method is not available here or
 * does not shrink the page (the caller then stores it verbatim). */
static size_t compress_page(unsigned method, const uint8_t *page, uint8_t *out,
                            size_t cap)
{
    switch (method) {
    case M_ZLIB: {
        uLongf n = cap;
        if (compress2(out, &n, page, PAGE, 1) != Z_OK)
            return 0;
        return n < PAGE ? n : 0;
    }
#ifdef TEST_LZO
    case M_LZO: {
        static uint8_t wrk[LZO1X_1_MEM_COMPRESS];
        lzo_uint n = cap;
        assert_int_equal(lzo_init(), LZO_E_OK);
        if (lzo1x_1_compress(page, PAGE, out, &n, wrk) != LZO_E_OK)
            return 0;
        return n < PAGE ? n : 0;
    }
#endif
#ifdef TEST_SNAPPY
    case M_SNAPPY: {
        size_t n = cap;
        if (snappy_compress((const char *)page, PAGE, (char *)out, &n) != SNAPPY_OK)
            return 0;
        return n < PAGE ? n : 0;
    }
#endif
    case M_ZSTD_RLE: {
        /* Frame: magic, descriptor (single segment, 2-byte content size),
         * content size - 256, one last RLE block of 4096 bytes. */
        const uint8_t frame[] = {0x28, 0xb5, 0x2f, 0xfd, 0x60,
                                 (PAGE - 256) & 0xff, (PAGE - 256) >> 8,
                                 0x03, 0x80, 0x00, page[0]};
        memcpy(out, frame, sizeof frame);
        return sizeof frame;
    }
    default:
        return 0;
    }
}

static void wout_free(struct wout *o)
{
    free(o->p);
    free(o->expect);
    free(o->desc_at);
    free(o->data_at);
    free(o->data_len);
    free(o->flags);
    memset(o, 0, sizeof *o);
}

static void write_kdump(const struct wspec *s, struct wout *o)
{
    memset(o, 0, sizeof *o);
    uint64_t n = s->max_mapnr;
    int be = s->be;
    o->expect = calloc(n ? n : 1, PAGE);
    o->desc_at = calloc(n ? n : 1, sizeof *o->desc_at);
    o->data_at = calloc(n ? n : 1, sizeof *o->data_at);
    o->data_len = calloc(n ? n : 1, sizeof *o->data_len);
    o->flags = calloc(n ? n : 1, sizeof *o->flags);
    assert_non_null(o->expect);

    uint64_t start = s->split ? s->start_pfn : 0, end = s->split ? s->end_pfn : n;
    size_t sub_size = s->is32 ? 80 : 104;
    uint32_t sub_hdr_size = (uint32_t)((sub_size + s->notes_len + PAGE - 1) / PAGE);
    uint64_t one_bm = ((n + 7) / 8 + PAGE - 1) / PAGE * PAGE;
    uint32_t bitmap_blocks = (uint32_t)((s->single_bitmap ? one_bm : 2 * one_bm) / PAGE);
    o->bm_off = (uint64_t)PAGE * (1 + sub_hdr_size);
    o->desc_off = o->bm_off + (uint64_t)bitmap_blocks * PAGE;

    /* Main header. */
    unsigned status_off = s->is32 ? 412 : 424;
    w_at(o, 0, "KDUMP   ", 8);
    w32(o, 8, s->version, be);
    const char *machine = s->is32 ? "i686" : "x86_64";
    w_at(o, 12 + 4 * 65, machine, strlen(machine));
    /* status names the methods asked for, as writers do. */
    uint32_t status = s->incomplete ? 0x8u : 0;
    for (uint64_t pfn = 0; pfn < n; pfn++)
        status |= s->method[pfn] & (M_ZLIB | M_LZO | M_SNAPPY | M_ZSTD_RLE);
    w32(o, status_off, status, be);
    w32(o, status_off + 4, s->block_size ? s->block_size : PAGE, be);
    w32(o, status_off + 8, sub_hdr_size, be);
    w32(o, status_off + 12, bitmap_blocks, be);
    w32(o, status_off + 16, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, be);
    w32(o, status_off + 36, 1, be);                 /* nr_cpus */
    /* Make the file cover the header blocks and bitmaps even when empty. */
    uint8_t zero = 0;
    w_at(o, o->desc_off - 1, &zero, 1);

    /* Sub header. */
    uint64_t sub = PAGE, note_off = PAGE + sub_size;
    if (s->is32) {
        w32(o, sub + 0, 0x1000000, be);             /* phys_base */
        w32(o, sub + 4, 1, be);                     /* dump_level */
        w32(o, sub + 8, (uint32_t)s->split, be);
        w32(o, sub + 12, (uint32_t)start, be);
        w32(o, sub + 16, (uint32_t)end, be);
        w64(o, sub + 32, s->notes_len ? note_off : 0, be);
        w32(o, sub + 40, (uint32_t)s->notes_len, be);
        w64(o, sub + 56, start, be);
        w64(o, sub + 64, end, be);
        w64(o, sub + 72, n, be);
    } else {
        w64(o, sub + 0, 0x1000000, be);
        w32(o, sub + 8, 1, be);
        w32(o, sub + 12, (uint32_t)s->split, be);
        w64(o, sub + 16, start, be);
        w64(o, sub + 24, end, be);
        w64(o, sub + 48, s->notes_len ? note_off : 0, be);
        w64(o, sub + 56, s->notes_len, be);
        w64(o, sub + 80, start, be);
        w64(o, sub + 88, end, be);
        w64(o, sub + 96, n, be);
    }
    if (s->notes_len)
        w_at(o, note_off, s->notes, s->notes_len);

    /* Bitmaps. */
    uint64_t bm2 = s->single_bitmap ? o->bm_off : o->bm_off + one_bm;
    for (uint64_t pfn = 0; pfn < n; pfn++) {
        if (s->ram[pfn]) {
            uint8_t b = o->p[o->bm_off + pfn / 8] | (uint8_t)(1u << (pfn % 8));
            w_at(o, o->bm_off + pfn / 8, &b, 1);
        }
        if (s->dumped[pfn]) {
            uint8_t b = o->p[bm2 + pfn / 8] | (uint8_t)(1u << (pfn % 8));
            w_at(o, bm2 + pfn / 8, &b, 1);
        }
    }

    /* Descriptors in pfn order, then data. */
    uint64_t ndesc = 0;
    for (uint64_t pfn = start; pfn < end; pfn++)
        ndesc += s->dumped[pfn] != 0;
    uint64_t data = o->desc_off + ndesc * 24, zero_page = 0;
    if (s->share_zero) {
        uint8_t zp[PAGE] = {0};
        zero_page = data;
        w_at(o, data, zp, PAGE);
        data += PAGE;
    }
    uint64_t d = o->desc_off;
    for (uint64_t pfn = start; pfn < end; pfn++) {
        if (!s->dumped[pfn])
            continue;
        uint8_t *page = o->expect + pfn * PAGE;
        unsigned m = s->method[pfn];
        page_content(pfn, page);
        if (m == M_ZSTD_RLE)
            memset(page, (int)(pfn & 0xff) | 1, PAGE);
        o->desc_at[pfn] = d;
        if (m == M_UNWRITTEN) {
            uint8_t zd[24] = {0};
            w_at(o, d, zd, 24);
            memset(page, 0, PAGE);
            d += 24;
            continue;
        }
        uint64_t off;
        uint32_t size, flags;
        uint8_t cbuf[2 * PAGE];
        size_t clen = compress_page(m, page, cbuf, sizeof cbuf);
        if (s->share_zero && all_zero(page, PAGE)) {
            off = zero_page;
            size = PAGE;
            flags = 0;
        } else if (clen) {
            off = data;
            size = (uint32_t)clen;
            flags = m;
            w_at(o, data, cbuf, clen);
            data += clen;
        } else {
            off = data;
            size = PAGE;
            flags = 0;
            w_at(o, data, page, PAGE);
            data += PAGE;
        }
        o->data_at[pfn] = off;
        o->data_len[pfn] = size;
        o->flags[pfn] = flags;
        w64(o, d, off, be);
        w32(o, d + 8, size, be);
        w32(o, d + 12, flags, be);
        w64(o, d + 16, 0, be);
        d += 24;
    }
}

/* The same dump as a flattened makedumpfile stream: records of assorted
 * sizes in shuffled order; all-zero records left out (the holes must read
 * as zeros: bitmap tails, the shared zero page); with `overlap`, garbage records written first and the real data
 * over them later, and one record written twice. */
static void flatten(const struct wout *plain, unsigned seed, int overlap, struct wout *o)
{
    memset(o, 0, sizeof *o);
    uint8_t hdr[4096] = {0};
    memcpy(hdr, "makedumpfile", 12);
    hdr[23] = 1;                                    /* type, big-endian */
    hdr[31] = 1;                                    /* version */
    w_at(o, 0, hdr, sizeof hdr);

    struct { uint64_t off, len; } *chunks = NULL;
    size_t nch = 0;
    for (uint64_t pos = 0; pos < plain->len;) {
        seed = seed * 1103515245u + 12345u;
        uint64_t len = 1 + (seed >> 8) % 3000;
        if (len > plain->len - pos)
            len = plain->len - pos;
        chunks = realloc(chunks, (nch + 1) * sizeof *chunks);
        chunks[nch].off = pos;
        chunks[nch].len = len;
        nch++;
        pos += len;
    }
    for (size_t i = nch - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        size_t j = (seed >> 8) % (i + 1);
        __typeof__(*chunks) t = chunks[i];
        chunks[i] = chunks[j];
        chunks[j] = t;
    }
    uint64_t at = o->len;
    uint8_t rh[16];
    if (overlap) {
        /* Garbage over the header and the start of the bitmaps. */
        uint8_t junk[9000];
        memset(junk, 0xa5, sizeof junk);
        for (int i = 0; i < 8; i++) {
            rh[i] = 0;
            rh[8 + i] = (uint8_t)((uint64_t)sizeof junk >> (56 - 8 * i));
        }
        w_at(o, at, rh, 16);
        w_at(o, at + 16, junk, sizeof junk);
        at += 16 + sizeof junk;
    }
    for (size_t i = 0; i < nch; i++) {
        const uint8_t *data = plain->p + chunks[i].off;
        int last = chunks[i].off + chunks[i].len == plain->len;
        /* Never skip what must overwrite the garbage. */
        if (!last && all_zero(data, chunks[i].len) &&
            (!overlap || chunks[i].off >= 9000))
            continue;
        int times = overlap && i == nch / 2 ? 2 : 1;
        for (int t = 0; t < times; t++) {
            for (int k = 0; k < 8; k++) {
                rh[k] = (uint8_t)(chunks[i].off >> (56 - 8 * k));
                rh[8 + k] = (uint8_t)(chunks[i].len >> (56 - 8 * k));
            }
            w_at(o, at, rh, 16);
            w_at(o, at + 16, data, chunks[i].len);
            at += 16 + chunks[i].len;
        }
    }
    memset(rh, 0xff, 16);
    w_at(o, at, rh, 16);
    free(chunks);
}

/* A spec with every page of max_mapnr in RAM and dumped, one method. */
static struct wspec spec_new(uint64_t max_mapnr, unsigned method)
{
    struct wspec s = {.max_mapnr = max_mapnr, .version = 6};
    s.ram = calloc(max_mapnr ? max_mapnr : 1, 1);
    s.dumped = calloc(max_mapnr ? max_mapnr : 1, 1);
    s.method = calloc(max_mapnr ? max_mapnr : 1, sizeof *s.method);
    for (uint64_t i = 0; i < max_mapnr; i++) {
        s.ram[i] = s.dumped[i] = 1;
        s.method[i] = method;
    }
    return s;
}

static void spec_free(struct wspec *s)
{
    free(s->ram);
    free(s->dumped);
    free(s->method);
}

/* The standard small dump: 300 pages, holes in RAM at pfn 10-19 and
 * 200-209 (plus 299 past the last range), pages 50, 51 and 100 left out by
 * filtering, zlib with a few verbatim pages. */
static struct wspec spec_standard(void)
{
    struct wspec s = spec_new(300, M_ZLIB);
    for (uint64_t p = 10; p < 20; p++)
        s.ram[p] = s.dumped[p] = 0;
    for (uint64_t p = 200; p < 210; p++)
        s.ram[p] = s.dumped[p] = 0;
    s.ram[299] = s.dumped[299] = 0;
    s.dumped[50] = s.dumped[51] = s.dumped[100] = 0;
    s.method[60] = s.method[61] = M_RAW;
    return s;
}

/* ---- checking ---- */

struct opened {
    struct dump_layout layout;
    char err[DUMP_ERR_LEN];
    int rc;
};

static int open_dump(const uint8_t *p, size_t len, struct opened *o)
{
    memset(o, 0, sizeof *o);
    o->rc = dump_parse_kdump(p, len, &o->layout, o->err, sizeof o->err);
    return o->rc;
}

static void close_dump(struct opened *o)
{
    if (o->layout.backend)
        o->layout.backend->close(o->layout.backend_priv);
    free(o->layout.vcpus);
    memset(o, 0, sizeof *o);
}

/* Every frame 0..max_mapnr+2: the page for dumped pfns, ENOENT else. */
static void check_frames(struct kdump *kd, const struct wspec *s, const struct wout *w)
{
    uint64_t start = s->split ? s->start_pfn : 0, end = s->split ? s->end_pfn : s->max_mapnr;
    uint8_t buf[PAGE];
    for (uint64_t pfn = 0; pfn < s->max_mapnr + 3; pfn++) {
        int rc = kdump_read_frame(kd, pfn, buf);
        int present = pfn < s->max_mapnr && pfn >= start && pfn < end &&
                      s->dumped[pfn] && s->method[pfn] != M_UNWRITTEN;
        if (!present) {
            if (rc != -ENOENT)
                fail_msg("pfn %llu: expected -ENOENT, got %d",
                         (unsigned long long)pfn, rc);
            continue;
        }
        if (rc != 0)
            fail_msg("pfn %llu: read failed %d", (unsigned long long)pfn, rc);
        if (memcmp(buf, w->expect + pfn * PAGE, PAGE) != 0)
            fail_msg("pfn %llu: content differs", (unsigned long long)pfn);
    }
}

/* Ranges must be exactly the runs of the spec's RAM bits. */
static void check_ranges(struct kdump *kd, const struct wspec *s)
{
    const struct vmem_range *r;
    size_t n, k = 0;
    kdump_ranges(kd, &r, &n);
    for (uint64_t pfn = 0; pfn < s->max_mapnr;) {
        if (!s->ram[pfn]) {
            pfn++;
            continue;
        }
        uint64_t e = pfn;
        while (e < s->max_mapnr && s->ram[e])
            e++;
        assert_true(k < n);
        assert_int_equal(r[k].start, pfn * PAGE);
        assert_int_equal(r[k].end, e * PAGE);
        assert_int_equal(r[k].kind, VMEM_RANGE_RAM);
        k++;
        pfn = e;
    }
    assert_int_equal(k, n);
}

static void expect_ok(const struct wspec *s, const struct wout *w)
{
    struct opened o;
    if (open_dump(w->p, w->len, &o) != 0)
        fail_msg("open failed: %d %s", o.rc, o.err);
    assert_non_null(dump_layout_kdump(&o.layout));
    assert_string_equal(o.layout.format, "kdump");
    assert_int_equal(o.layout.nsegs, 0);
    check_ranges(dump_layout_kdump(&o.layout), s);
    check_frames(dump_layout_kdump(&o.layout), s, w);
    close_dump(&o);
}

static void expect_einval(const uint8_t *p, size_t len, const char *needle)
{
    struct opened o;
    int rc = open_dump(p, len, &o);
    if (rc != -EINVAL)
        fail_msg("expected -EINVAL (%s), got %d", needle, rc);
    assert_null(dump_layout_kdump(&o.layout));
    assert_true(strncmp(o.err, "kdump: ", 7) == 0);
    if (needle && !strstr(o.err, needle))
        fail_msg("message \"%s\" lacks \"%s\"", o.err, needle);
}

/* ---- tests ---- */

static void test_probe(void **state)
{
    (void)state;
    uint8_t buf[64] = {0};
    assert_int_equal(dump_is_kdump(buf, sizeof buf), 0);
    memcpy(buf, "KDUMP   ", 8);
    assert_int_equal(dump_is_kdump(buf, sizeof buf), 1);
    assert_int_equal(dump_is_kdump(buf, 4), 0);
    memcpy(buf, "makedumpfile\0\0\0\0", 16);
    assert_int_equal(dump_is_kdump(buf, sizeof buf), 1);
    memcpy(buf, "\177ELF", 4);
    assert_int_equal(dump_is_kdump(buf, sizeof buf), 0);
}

static void test_basic_zlib(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);

    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    const char *d = kdump_describe(dump_layout_kdump(&o.layout));
    assert_non_null(strstr(d, "kdump-compressed v6"));
    assert_non_null(strstr(d, "block 4096"));
    assert_non_null(strstr(d, "279 pages"));        /* 300 - 21 not in RAM */
    assert_non_null(strstr(d, "276 dumped"));
    assert_non_null(strstr(d, "zlib"));
    assert_null(strstr(d, "flattened"));
    /* Ranges: [0,10) [20,200) [210,299). */
    const struct vmem_range *r;
    size_t n;
    kdump_ranges(dump_layout_kdump(&o.layout), &r, &n);
    assert_int_equal(n, 3);
    assert_int_equal(r[1].start, 20 * PAGE);
    assert_int_equal(r[2].end, 299 * PAGE);
    /* In RAM but filtered, in a hole, past the end. */
    uint8_t buf[PAGE];
    assert_int_equal(kdump_read_frame(dump_layout_kdump(&o.layout), 50, buf), -ENOENT);
    assert_int_equal(kdump_read_frame(dump_layout_kdump(&o.layout), 15, buf), -ENOENT);
    assert_int_equal(kdump_read_frame(dump_layout_kdump(&o.layout), 1ull << 40, buf), -ENOENT);
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

/* Many pages, a dumped pattern that is not periodic in 64 or 1024: the
 * rank index must give every page its own descriptor. */
static void test_rank_large(void **state)
{
    (void)state;
    struct wspec s = spec_new(5000, M_ZLIB);
    for (uint64_t p = 0; p < 5000; p++) {
        s.dumped[p] = (p * 2654435761u >> 7) % 3 != 0;
        if (p >= 1000 && p < 1100)
            s.ram[p] = s.dumped[p] = 0;
        if (p % 4 == 0)
            s.method[p] = M_RAW;
    }
    s.share_zero = 1;
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);
    wout_free(&w);
    spec_free(&s);
}

/* 32-bit and big-endian headers, all four combinations. */
static void test_layouts(void **state)
{
    (void)state;
    for (int is32 = 0; is32 < 2; is32++) {
        for (int be = 0; be < 2; be++) {
            struct wspec s = spec_standard();
            s.is32 = is32;
            s.be = be;
            struct wout w;
            write_kdump(&s, &w);
            expect_ok(&s, &w);
            struct opened o;
            assert_int_equal(open_dump(w.p, w.len, &o), 0);
            const char *d = kdump_describe(dump_layout_kdump(&o.layout));
            assert_int_equal(strstr(d, "32-bit") != NULL, is32);
            assert_int_equal(strstr(d, "big-endian") != NULL, be);
            close_dump(&o);
            wout_free(&w);
            spec_free(&s);
        }
    }
}

/* Older header versions: v1 has no split/notes/64-bit max_mapnr fields,
 * so the 32-bit max_mapnr of the main header counts. */
static void test_old_version(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    s.version = 1;
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);
    wout_free(&w);
    spec_free(&s);
}

static void test_flattened(void **state)
{
    (void)state;
    for (int overlap = 0; overlap < 2; overlap++) {
        for (unsigned seed = 1; seed <= 3; seed++) {
            struct wspec s = spec_standard();
            s.share_zero = 1;
            struct wout w, f;
            write_kdump(&s, &w);
            flatten(&w, seed, overlap, &f);
            f.expect = w.expect;
            expect_ok(&s, &f);
            struct opened o;
            assert_int_equal(open_dump(f.p, f.len, &o), 0);
            assert_non_null(strstr(kdump_describe(dump_layout_kdump(&o.layout)), "(flattened)"));
            close_dump(&o);
            f.expect = NULL;
            wout_free(&f);
            wout_free(&w);
            spec_free(&s);
        }
    }
}

static void test_flattened_bad(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    struct wout w, f;
    write_kdump(&s, &w);
    flatten(&w, 7, 0, &f);

    /* A negative record size. */
    uint8_t *bad = malloc(f.len);
    memcpy(bad, f.p, f.len);
    bad[4096 + 8] = 0x80;
    expect_einval(bad, f.len, "flattened record");
    /* Wrong type in the stream header. */
    memcpy(bad, f.p, f.len);
    bad[23] = 2;
    expect_einval(bad, f.len, "type");
    /* Cut short: opens when the header survives, never crashes. */
    for (size_t cut = 0; cut < f.len; cut += 997) {
        struct opened o;
        int rc = open_dump(f.p, cut, &o);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0) {
            uint8_t buf[PAGE];
            for (uint64_t p = 0; p < s.max_mapnr; p++) {
                int r = kdump_read_frame(dump_layout_kdump(&o.layout), p, buf);
                assert_true(r == 0 || r == -ENOENT || r == -EIO);
            }
        }
        close_dump(&o);
    }
    /* A flattened ELF core is refused with a hint. */
    uint8_t elf[4096 + 16 + 64 + 16] = {0};
    memcpy(elf, "makedumpfile", 12);
    elf[23] = 1;
    elf[31] = 1;
    elf[4096 + 15] = 64;                            /* record: offset 0, 64 bytes */
    memcpy(elf + 4096 + 16, "\177ELF", 4);
    memset(elf + 4096 + 16 + 64, 0xff, 16);
    expect_einval(elf, sizeof elf, "makedumpfile -R");
    free(bad);
    wout_free(&f);
    wout_free(&w);
    spec_free(&s);
}

static void test_corrupt_pages(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    struct wout w;
    write_kdump(&s, &w);
    uint8_t *p = w.p;
    uint8_t buf[PAGE];

    /* Pick compressed and verbatim victims. */
    uint64_t zl[6], nz = 0, raw = 0;
    for (uint64_t pfn = 0; pfn < s.max_mapnr && nz < 6; pfn++)
        if (s.dumped[pfn] && w.flags[pfn] == M_ZLIB)
            zl[nz++] = pfn;
    assert_int_equal(nz, 6);
    for (uint64_t pfn = 0; pfn < s.max_mapnr; pfn++)
        if (s.dumped[pfn] && w.flags[pfn] == 0 && pfn > 30 && !raw)
            raw = pfn;
    assert_true(raw != 0);

    /* 1: damaged deflate stream. */
    for (uint32_t i = 2; i < w.data_len[zl[0]]; i++)
        p[w.data_at[zl[0]] + i] ^= 0x5a;
    /* 2: descriptor offset past the end of the file. */
    uint64_t far = w.len + 100;
    memcpy(p + w.desc_at[zl[1]], &far, 8);
    /* 3: size zero. */
    memset(p + w.desc_at[zl[2]] + 8, 0, 4);
    /* 4: compressed size beyond two blocks. */
    uint32_t big = 3 * PAGE;
    memcpy(p + w.desc_at[zl[3]] + 8, &big, 4);
    /* 5: a verbatim page whose size is not a block. */
    uint32_t odd = PAGE - 96;
    memcpy(p + w.desc_at[raw] + 8, &odd, 4);
    /* 6: unknown flag bit. */
    uint32_t fl = 0x41;
    memcpy(p + w.desc_at[zl[4]] + 12, &fl, 4);
    /* 7: a valid zlib stream of only 2048 bytes. */
    {
        uint8_t half[PAGE / 2], c[PAGE];
        memset(half, 7, sizeof half);
        uLongf cl = sizeof c;
        assert_int_equal(compress2(c, &cl, half, sizeof half, 1), Z_OK);
        assert_true(cl <= w.data_len[zl[5]]);
        memcpy(p + w.data_at[zl[5]], c, cl);
        uint32_t cl32 = (uint32_t)cl;
        memcpy(p + w.desc_at[zl[5]] + 8, &cl32, 4);
    }

    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    struct kdump *kd = dump_layout_kdump(&o.layout);
    for (int i = 0; i < 6; i++)
        if (kdump_read_frame(kd, zl[i], buf) != -EIO)
            fail_msg("victim %d (pfn %llu) did not read -EIO", i, (unsigned long long)zl[i]);
    assert_int_equal(kdump_read_frame(kd, raw, buf), -EIO);
    /* Everything else still reads right. */
    for (uint64_t pfn = 0; pfn < s.max_mapnr; pfn++) {
        int victim = pfn == raw;
        for (int i = 0; i < 6; i++)
            victim |= pfn == zl[i];
        if (victim || !s.dumped[pfn])
            continue;
        assert_int_equal(kdump_read_frame(kd, pfn, buf), 0);
        assert_memory_equal(buf, w.expect + pfn * PAGE, PAGE);
    }
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

/* A dump cut inside the descriptor table or the data opens; the pages
 * whose descriptor or data is gone read -EIO, the others read fine. */
static void test_truncated_data(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    struct wout w;
    write_kdump(&s, &w);
    uint8_t buf[PAGE];

    /* Cut after the 100th descriptor. */
    size_t cut = w.desc_off + 100 * 24;
    struct opened o;
    assert_int_equal(open_dump(w.p, cut, &o), 0);
    assert_non_null(strstr(kdump_describe(dump_layout_kdump(&o.layout)), "truncated: 100 of 276"));
    for (uint64_t pfn = 0; pfn < s.max_mapnr; pfn++) {
        int rc = kdump_read_frame(dump_layout_kdump(&o.layout), pfn, buf);
        if (!s.dumped[pfn])
            assert_int_equal(rc, -ENOENT);
        else if (w.desc_at[pfn] + 24 > cut)
            assert_int_equal(rc, -EIO);
    }
    close_dump(&o);

    /* Cut in the middle of the data. */
    cut = w.len - w.len / 4;
    assert_int_equal(open_dump(w.p, cut, &o), 0);
    for (uint64_t pfn = 0; pfn < s.max_mapnr; pfn++) {
        if (!s.dumped[pfn])
            continue;
        int rc = kdump_read_frame(dump_layout_kdump(&o.layout), pfn, buf);
        if (w.data_at[pfn] + w.data_len[pfn] > cut) {
            assert_int_equal(rc, -EIO);
        } else {
            assert_int_equal(rc, 0);
            assert_memory_equal(buf, w.expect + pfn * PAGE, PAGE);
        }
    }
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

static void set32(uint8_t *p, size_t off, uint32_t v)
{
    memcpy(p + off, &v, 4);
}

static void set64(uint8_t *p, size_t off, uint64_t v)
{
    memcpy(p + off, &v, 8);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    struct wout w;
    write_kdump(&s, &w);
    uint8_t *bad = malloc(w.len);

    /* Truncated: inside the header, the sub header, the bitmaps. */
    expect_einval(w.p, 100, "too small");
    expect_einval(w.p, 460, "too small");
    expect_einval(w.p, PAGE + 40, "sub header");
    expect_einval(w.p, w.bm_off + 10, "bitmap (offset 0x2000");
    expect_einval(w.p, w.bm_off + 10, "runs past end of file");

    /* Block size other than 4096. */
    memcpy(bad, w.p, w.len);
    set32(bad, 428, 8192);
    expect_einval(bad, w.len, "block size 8192");
    /* Nonsense block size in both layouts. */
    memcpy(bad, w.p, w.len);
    set32(bad, 428, 12345);
    expect_einval(bad, w.len, "block_size");
    /* Version that is no number in either byte order. */
    memcpy(bad, w.p, w.len);
    set32(bad, 8, 0x12345678);
    expect_einval(bad, w.len, "header_version");
    /* Huge max_mapnr with a tiny bitmap: refused before any allocation. */
    memcpy(bad, w.p, w.len);
    set64(bad, PAGE + 96, 1ull << 40);
    expect_einval(bad, w.len, "too small for max_mapnr");
    memcpy(bad, w.p, w.len);
    set64(bad, PAGE + 96, ~0ull);
    expect_einval(bad, w.len, "max_mapnr");
    /* bitmap_blocks and sub_hdr_size far past the file. */
    memcpy(bad, w.p, w.len);
    set32(bad, 436, 0xffffffffu);
    expect_einval(bad, w.len, "runs past end of file");
    memcpy(bad, w.p, w.len);
    set32(bad, 432, 0xffffffffu);
    expect_einval(bad, w.len, "runs past end of file");
    /* Sub header too small for its version. */
    memcpy(bad, w.p, w.len);
    set32(bad, 432, 0);
    expect_einval(bad, w.len, "too small for header version");
    /* Split range beyond max_mapnr. */
    memcpy(bad, w.p, w.len);
    set32(bad, PAGE + 12, 1);
    set64(bad, PAGE + 80, 10);
    set64(bad, PAGE + 88, 100000);
    expect_einval(bad, w.len, "split");
    /* Other signatures. */
    memcpy(bad, w.p, w.len);
    memcpy(bad, "DISKDUMP", 8);
    expect_einval(bad, w.len, "DISKDUMP");

    /* Every prefix: -EINVAL or a dump that answers without crashing. */
    for (size_t cut = 0; cut < w.len; cut += 331) {
        struct opened o;
        int rc = open_dump(w.p, cut, &o);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0)
            for (uint64_t p = 0; p < s.max_mapnr; p++)
                (void)kdump_read_frame(dump_layout_kdump(&o.layout), p, bad);
        close_dump(&o);
    }
    free(bad);
    wout_free(&w);
    spec_free(&s);
}

static void test_split(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    s.split = 1;
    s.start_pfn = 40;
    s.end_pfn = 220;
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);
    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    assert_non_null(strstr(kdump_describe(dump_layout_kdump(&o.layout)), "split part pfn 0x28-0xdc"));
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

static void test_single_bitmap(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    s.single_bitmap = 1;
    /* One bitmap: the RAM ranges are the dumped pages. */
    memcpy(s.ram, s.dumped, s.max_mapnr);
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);
    wout_free(&w);
    spec_free(&s);
}

static void test_incomplete(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    s.incomplete = 1;
    for (uint64_t p = 250; p < 299; p++)
        s.method[p] = M_UNWRITTEN;
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);
    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    assert_non_null(strstr(kdump_describe(dump_layout_kdump(&o.layout)), "incomplete"));
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

/* lzo, snappy and zstd pages: read back when the library is built in,
 * -EIO with "<method>: not built in" in the description otherwise. */
static void check_method(unsigned method, const char *name)
{
    struct wspec s = spec_new(64, method);
    struct wout w;
    write_kdump(&s, &w);
    int compressed = 0;
    for (uint64_t p = 0; p < 64; p++)
        compressed += w.flags[p] == method;
    if (!compressed) {
        print_message("%s: no compressor in the test build, skipped\n", name);
        wout_free(&w);
        spec_free(&s);
        return;
    }
    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    const char *d = kdump_describe(dump_layout_kdump(&o.layout));
    char missing[64];
    snprintf(missing, sizeof missing, "%s: not built in", name);
    int built_in = strstr(d, missing) == NULL;
    assert_non_null(strstr(d, name));
    uint8_t buf[PAGE];
    for (uint64_t p = 0; p < 64; p++) {
        int rc = kdump_read_frame(dump_layout_kdump(&o.layout), p, buf);
        if (w.flags[p] == method && !built_in) {
            assert_int_equal(rc, -EIO);
        } else {
            assert_int_equal(rc, 0);
            assert_memory_equal(buf, w.expect + p * PAGE, PAGE);
        }
    }
    print_message("%s: %d compressed pages, %s\n", name, compressed,
                  built_in ? "read back" : "EIO (not built in)");
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

static void test_other_methods(void **state)
{
    (void)state;
    check_method(M_LZO, "lzo");
    check_method(M_SNAPPY, "snappy");
    check_method(M_ZSTD_RLE, "zstd");
}

/* x86-64 NT_PRSTATUS note, "CORE", with rip set: what the notes parser
 * turns into a vCPU. */
static size_t make_prstatus_note(uint8_t *n, uint64_t rip)
{
    const uint32_t namesz = 5, descsz = 336, type = 1;
    memcpy(n, &namesz, 4);
    memcpy(n + 4, &descsz, 4);
    memcpy(n + 8, &type, 4);
    memcpy(n + 12, "CORE\0\0\0", 8);
    memset(n + 20, 0, descsz);
    memcpy(n + 20 + 112 + 16 * 8, &rip, 8);        /* pr_reg.rip */
    return 20 + descsz;
}

static void test_notes(void **state)
{
    (void)state;
    uint8_t note[512];
    size_t nl = make_prstatus_note(note, 0xffffffff81000123ull);
    struct wspec s = spec_standard();
    s.notes = note;
    s.notes_len = nl;
    struct wout w;
    write_kdump(&s, &w);
    stub_notes_calls = 0;
    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    if (stub_notes_calls) {
        assert_int_equal(stub_notes_calls, 1);
        assert_int_equal(stub_notes_len, nl);
        assert_int_equal(stub_notes_64, 1);
        assert_memory_equal(stub_notes, note, nl);
    } else {
        /* The real parser is linked: it must have found the vCPU. */
        assert_int_equal(o.layout.nvcpus, 1);
        assert_int_equal(o.layout.vcpus[0].rip, 0xffffffff81000123ull);
    }
    close_dump(&o);

    /* Notes pointing outside the file are left out, not fatal. */
    set64(w.p, PAGE + 48, w.len + 5);
    stub_notes_calls = 0;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    assert_int_equal(stub_notes_calls, 0);
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

struct thread_arg {
    struct kdump *kd;
    const struct wspec *s;
    const struct wout *w;
    int bad;
};

static void *reader(void *p)
{
    struct thread_arg *a = p;
    uint8_t buf[PAGE];
    for (int round = 0; round < 20; round++) {
        for (uint64_t pfn = 0; pfn < a->s->max_mapnr; pfn++) {
            int rc = kdump_read_frame(a->kd, pfn, buf);
            if (!a->s->dumped[pfn])
                a->bad += rc != -ENOENT;
            else
                a->bad += rc != 0 || memcmp(buf, a->w->expect + pfn * PAGE, PAGE) != 0;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct wspec s = spec_standard();
    for (uint64_t p = 0; p < s.max_mapnr; p++)
        if (p % 3 == 1)
            s.method[p] = M_LZO;
        else if (p % 3 == 2)
            s.method[p] = M_SNAPPY;
    struct wout w;
    write_kdump(&s, &w);
    struct opened o;
    assert_int_equal(open_dump(w.p, w.len, &o), 0);
    const char *d = kdump_describe(dump_layout_kdump(&o.layout));
    if (strstr(d, "not built in")) {
        /* Threads on zlib alone then. */
        close_dump(&o);
        wout_free(&w);
        for (uint64_t p = 0; p < s.max_mapnr; p++)
            s.method[p] = M_ZLIB;
        write_kdump(&s, &w);
        assert_int_equal(open_dump(w.p, w.len, &o), 0);
    }
    pthread_t t[4];
    struct thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thread_arg){dump_layout_kdump(&o.layout), &s, &w, 0};
        assert_int_equal(pthread_create(&t[i], NULL, reader, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
    close_dump(&o);
    wout_free(&w);
    spec_free(&s);
}

/* An empty bitmap: opens, no ranges, every frame ENOENT. */
static void test_empty(void **state)
{
    (void)state;
    struct wspec s = spec_new(100, M_ZLIB);
    memset(s.ram, 0, 100);
    memset(s.dumped, 0, 100);
    struct wout w;
    write_kdump(&s, &w);
    expect_ok(&s, &w);
    wout_free(&w);
    spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_basic_zlib),
        cmocka_unit_test(test_rank_large),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_old_version),
        cmocka_unit_test(test_flattened),
        cmocka_unit_test(test_flattened_bad),
        cmocka_unit_test(test_corrupt_pages),
        cmocka_unit_test(test_truncated_data),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_single_bitmap),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_other_methods),
        cmocka_unit_test(test_notes),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
