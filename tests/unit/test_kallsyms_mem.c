/*
 * test_kallsyms_mem.c - the kallsyms decoder (core/profile/kallsyms_mem.c)
 * on tables laid out the way scripts/kallsyms.c lays them out, written here
 * from a symbol list: every order (offsets first, with or without
 * seqs_of_names before the token table; the 6.4+ order with offsets after
 * the token index), absolute per-CPU offsets or plain relative ones or
 * kallsyms_addresses, 64- and 32-bit, names over 127 bytes (two-byte
 * lengths), tokens of several characters; then damaged tables, which must
 * be refused.  The real kernels (Debian's 6.1 and 6.12) are covered by
 * tests/integration/t_noprofile.sh.
 *
 * KALLSYMS_WRITE_CORPUS=DIR writes the tables built here as seeds for
 * tests/fuzz/fuzz_kallsyms.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/profile/kallsyms_mem.h"

enum order { ORDER_61, ORDER_62, ORDER_64 };
enum addrs { ADDR_ABS_PERCPU, ADDR_RELATIVE, ADDR_ABSOLUTE };

struct sym {
    char name[300];     /* type letter first */
    uint64_t addr;
};

struct buf {
    uint8_t *d;
    size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 4096;
        b->d = realloc(b->d, b->cap);
        assert_non_null(b->d);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void putptr(struct buf *b, uint64_t v, unsigned psize) { put(b, &v, psize); }
static void align(struct buf *b, unsigned a)
{
    static const uint8_t z[8];
    while (b->n % a)
        put(b, z, 1);
}

#define NSYM 700

static void make_syms(struct sym *s, unsigned psize, bool percpu)
{
    uint64_t text = psize == 8 ? 0xffffffffac800000ull : 0xc5000000ull;
    size_t i = 0;
    if (percpu) {               /* per-CPU symbols: small absolute values */
        snprintf(s[i].name, sizeof s[i].name, "Afixed_percpu_data");
        s[i++].addr = 0;
        snprintf(s[i].name, sizeof s[i].name, "Acpu_tss_rw");
        s[i++].addr = 0x6000;
    }
    snprintf(s[i].name, sizeof s[i].name, "T_text");
    s[i++].addr = text;
    for (; i < NSYM; i++) {
        if (i == 300)
            snprintf(s[i].name, sizeof s[i].name, "Dlinux_banner");
        else if (i == 400) {    /* a name over 127 bytes: two-byte length */
            memset(s[i].name, 'x', 200);
            s[i].name[0] = 't';
            s[i].name[200] = 0;
        } else
            snprintf(s[i].name, sizeof s[i].name, "%csym_%zu_%s", i % 3 ? 'T' : 'd', i,
                     i % 5 ? "trace_event" : "init");
        s[i].addr = text + 0x10 * i;
    }
}

/* Compress: single characters at their own index; tokens "_e", "trace_",
 * "sym_" at indexes no name uses. */
static const char *tokens[256];
static char single[256][2];

static void make_tokens(const struct sym *s)
{
    bool used[256] = {0};
    for (size_t i = 0; i < NSYM; i++)
        for (const char *p = s[i].name; *p; p++)
            used[(uint8_t)*p] = true;
    static const char *multi[] = {"trace_", "sym_", "_e", "ini"};
    size_t m = 0;
    for (int c = 255; c >= 0; c--) {
        if (used[c]) {
            single[c][0] = (char)c;
            tokens[c] = single[c];
        } else if (m < 4 && c > 0) {
            tokens[c] = multi[m++];
        } else {
            tokens[c] = "~";        /* unused slot, still a string */
        }
    }
    assert_int_equal(m, 4);
}

static size_t compress(const char *name, uint8_t *out)
{
    size_t n = 0;
    while (*name) {
        int best = (uint8_t)*name;
        size_t bl = 1;
        for (int c = 0; c < 256; c++) {
            size_t l = strlen(tokens[c]);
            if (l > bl && strncmp(name, tokens[c], l) == 0 && tokens[c] != single[c]) {
                best = c;
                bl = l;
            }
        }
        out[n++] = (uint8_t)best;
        name += bl;
    }
    return n;
}

static void write_tokens(struct buf *b, unsigned a)
{
    uint16_t idx[256];
    align(b, a);
    size_t start = b->n;
    for (int c = 0; c < 256; c++) {
        idx[c] = (uint16_t)(b->n - start);
        put(b, tokens[c], strlen(tokens[c]) + 1);
    }
    align(b, a);
    put(b, idx, sizeof idx);
}

static void write_addrs(struct buf *b, const struct sym *s, unsigned psize, enum addrs mode)
{
    align(b, psize);
    uint64_t base = 0;
    for (size_t i = 0; i < NSYM; i++)
        if (s[i].name[0] != 'A') {
            base = s[i].addr;
            break;
        }
    for (size_t i = 0; i < NSYM; i++) {
        if (mode == ADDR_ABSOLUTE)
            putptr(b, s[i].addr, psize);
        else if (mode == ADDR_RELATIVE)
            put32(b, (uint32_t)(s[i].addr - base));
        else if (s[i].name[0] == 'A')
            put32(b, (uint32_t)s[i].addr);
        else
            put32(b, (uint32_t)(int32_t)(base - s[i].addr - 1));
    }
    if (mode != ADDR_ABSOLUTE) {
        align(b, psize);
        putptr(b, base, psize);
    }
}

static uint8_t *build(enum order order, enum addrs mode, unsigned psize, size_t *len,
                      struct sym *s)
{
    make_syms(s, psize, mode == ADDR_ABS_PERCPU);
    make_tokens(s);
    struct buf b = {0};
    static const uint8_t junk[] = "some rodata before the tables\0\1\2\3";
    put(&b, junk, sizeof junk);
    if (order != ORDER_64)
        write_addrs(&b, s, psize, mode);
    align(&b, psize);
    put32(&b, NSYM);
    align(&b, psize);
    size_t names = b.n;
    uint32_t markers[(NSYM + 255) / 256];
    for (size_t i = 0; i < NSYM; i++) {
        uint8_t c[300];
        size_t l = compress(s[i].name, c);
        if (i % 256 == 0)
            markers[i / 256] = (uint32_t)(b.n - names);
        uint8_t hdr[2] = {(uint8_t)l, 0};
        if (l > 0x7f) {
            hdr[0] = (uint8_t)((l & 0x7f) | 0x80);
            hdr[1] = (uint8_t)(l >> 7);
        }
        put(&b, hdr, l > 0x7f ? 2 : 1);
        put(&b, c, l);
    }
    align(&b, psize);
    put(&b, markers, sizeof markers);
    if (order == ORDER_62) {    /* seqs_of_names, 3 bytes each */
        align(&b, psize);
        for (size_t i = 0; i < NSYM; i++) {
            uint8_t q[3] = {0, (uint8_t)(i >> 8), (uint8_t)i};
            put(&b, q, 3);
        }
    }
    write_tokens(&b, psize);
    if (order == ORDER_64) {
        write_addrs(&b, s, psize, mode);
        align(&b, psize);
        for (size_t i = 0; i < NSYM; i++) {
            uint8_t q[3] = {0, (uint8_t)(i >> 8), (uint8_t)i};
            put(&b, q, 3);
        }
    }
    put(&b, junk, sizeof junk);
    *len = b.n;
    const char *dir = getenv("KALLSYMS_WRITE_CORPUS");
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/order%d-addr%d-p%u", dir, (int)order, (int)mode, psize);
        FILE *f = fopen(path, "wb");
        if (f) {
            uint8_t p = (uint8_t)psize;
            fwrite(&p, 1, 1, f);        /* the fuzz target's first byte */
            fwrite(b.d, 1, b.n, f);
            fclose(f);
        }
    }
    return b.d;
}

static void check_layout(enum order order, enum addrs mode, unsigned psize)
{
    static struct sym s[NSYM];
    size_t len;
    uint8_t *d = build(order, mode, psize, &len, s);
    struct kallsyms_mem k;
    char why[256];
    int rc = kallsyms_parse(d, len, psize, &k, why, sizeof why);
    if (rc)
        fail_msg("order %d addr %d psize %u: %s", order, mode, psize, why);
    assert_int_equal(k.n, NSYM);
    assert_string_equal(k.layout, order == ORDER_61 ? "6.1" : order == ORDER_62 ? "6.2-6.3"
                                                                                : "6.4+");
    assert_int_equal(k.absolute_percpu, mode == ADDR_ABS_PERCPU);
    assert_int_equal(k.base_relative, mode != ADDR_ABSOLUTE);
    for (size_t i = 0; i < NSYM; i++) {
        assert_string_equal(kallsyms_name(&k, i), s[i].name + 1);
        assert_int_equal(k.type[i], s[i].name[0]);
        assert_int_equal(k.addr[i], s[i].addr);
    }
    uint64_t a;
    assert_int_equal(kallsyms_lookup(&k, "linux_banner", &a), 0);
    assert_int_equal(a, s[300].addr);
    assert_int_equal(kallsyms_lookup(&k, "no_such_symbol", &a), -1);

    /* Damage: a marker off by one, a name length past the table, the
     * buffer cut inside the names: each refused, never a crash. */
    size_t at_names = (size_t)k.at_names, mk = (size_t)k.at_markers + 4;
    kallsyms_mem_free(&k);
    uint8_t *bad = malloc(len);
    memcpy(bad, d, len);
    bad[mk] ^= 1;
    if (kallsyms_parse(bad, len, psize, &k, why, sizeof why) == 0)
        fail_msg("damaged marker accepted: order %d addr %d layout %s n %zu markers at %#llx (was %#zx)",
                 order, mode, k.layout, k.n, (unsigned long long)k.at_markers, mk - 4);
    memcpy(bad, d, len);
    bad[at_names] = 0xff;
    bad[at_names + 1] = 0x7f;
    assert_int_equal(kallsyms_parse(bad, len, psize, &k, why, sizeof why), -1);
    free(bad);
    struct kallsyms_mem k2;
    size_t cut = at_names + 100;
    assert_int_equal(kallsyms_parse(d, cut, psize, &k2, why, sizeof why), -1);
    free(d);
}

static void test_orders_64(void **state)
{
    (void)state;
    for (int o = ORDER_61; o <= ORDER_64; o++)
        for (int a = ADDR_ABS_PERCPU; a <= ADDR_ABSOLUTE; a++)
            check_layout((enum order)o, (enum addrs)a, 8);
}

static void test_orders_32(void **state)
{
    (void)state;
    for (int o = ORDER_61; o <= ORDER_64; o++) {
        check_layout((enum order)o, ADDR_RELATIVE, 4);
        check_layout((enum order)o, ADDR_ABSOLUTE, 4);
    }
}

static void test_nothing_there(void **state)
{
    (void)state;
    /* ASCII tables of u16 look like the token table's digits: refused. */
    uint8_t b[4096];
    for (size_t i = 0; i < sizeof b / 2; i++) {
        b[2 * i] = (uint8_t)(i & 0x7f);
        b[2 * i + 1] = 0;
    }
    struct kallsyms_mem k;
    char why[256];
    assert_int_equal(kallsyms_parse(b, sizeof b, 8, &k, why, sizeof why), -1);
    assert_int_equal(kallsyms_parse(b, 0, 8, &k, why, sizeof why), -1);
    assert_int_equal(kallsyms_parse(b, sizeof b, 2, &k, why, sizeof why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders_64),
        cmocka_unit_test(test_orders_32),
        cmocka_unit_test(test_nothing_there),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
