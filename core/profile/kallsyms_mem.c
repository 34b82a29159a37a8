/*
 * kallsyms_mem.c - decoding the kernel's kallsyms tables from guest memory
 * (see kallsyms_mem.h for the layouts and how they are found).
 */
#include "core/util/log.h"
#include "core/profile/kallsyms_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/phys/vm.h"
#include "core/driver.h"

#define SIG_TRIES 512               /* token-table signatures tried per buffer */
#define NAMES_BACK_MAX (256u * 600u) /* bytes the last 256 names may take */

/* One message line: vmem_errf (core/util/log.h). */
#define say vmem_errf

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rdptr(const uint8_t *p, unsigned psize)
{
    return psize == 8 ? (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32 : rd32(p);
}
static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

/* What one candidate established so far. */
struct cand {
    const uint8_t *b;
    size_t len;
    unsigned a;                     /* alignment = pointer size */
    size_t tt, tt_end, ti;          /* token table [tt, tt_end), index at ti */
    uint16_t tok_off[256];
    uint8_t tok_len[256];
    size_t ms, m;                   /* markers at ms, m of them */
    size_t seqs;                    /* seqs_of_names (0: none before tt) */
    size_t ns, ne, nsp;             /* names [ns, ne), num_syms at nsp */
    uint32_t n;
};

/* A token: printable, non-empty, short. */
static size_t token_at(const uint8_t *b, size_t len, size_t p)
{
    for (size_t i = p; i < len && i - p <= 255; i++) {
        if (b[i] == 0)
            return i > p ? i - p : 0;
        if (b[i] < 0x20 || b[i] > 0x7e)
            return 0;
    }
    return 0;
}

/* The token table whose "0" is at d, and its index right after it. */
static bool find_tokens(struct cand *c, size_t d, char *why, size_t whylen)
{
    const uint8_t *b = c->b;
    size_t p = d;
    for (unsigned i = 0x30; i < 256; i++) {
        size_t l = token_at(b, c->len, p);
        if (!l) {
            say(why, whylen, "token %#x at +%#zx is not a string", i, p);
            return false;
        }
        p += l + 1;
    }
    size_t end = p;
    /* token_index follows, aligned; allow a little slack for padding. */
    for (size_t ti = align_up(end, c->a); ti <= end + 16 && ti + 512 <= c->len; ti += c->a) {
        const uint8_t *ix = b + ti;
        if (rd16(ix) != 0)
            continue;
        size_t off30 = rd16(ix + 2 * 0x30);
        if (off30 > d)
            continue;
        size_t tt = d - off30;
        if (tt % c->a)
            continue;
        bool ok = true;
        for (unsigned i = 0; i < 256 && ok; i++) {
            size_t o = rd16(ix + 2 * i);
            size_t l = tt + o < c->len ? token_at(b, c->len, tt + o) : 0;
            size_t next = i < 255 ? rd16(ix + 2 * (i + 1)) : end - tt;
            if (!l || o + l + 1 != next)
                ok = false;
            else {
                c->tok_off[i] = (uint16_t)o;
                c->tok_len[i] = (uint8_t)l;
            }
        }
        if (ok) {
            c->tt = tt;
            c->tt_end = end;
            c->ti = ti;
            return true;
        }
    }
    say(why, whylen, "no token index after the token table at +%#zx", d);
    return false;
}

/* Decode the name entry at *p (bounded by lim) into out (may be NULL);
 * returns the expanded length, or -1.  *p moves past the entry. */
static long name_at(const struct cand *c, size_t *p, size_t lim, char *out)
{
    if (*p >= lim)
        return -1;
    size_t l = c->b[*p];
    size_t q = *p + 1;
    if (l & 0x80) {
        if (q >= lim || (c->b[q] & 0x80))
            return -1;
        l = (l & 0x7f) | (size_t)c->b[q] << 7;
        q++;
    }
    if (l == 0 || l > lim - q)
        return -1;
    size_t xl = 0;
    for (size_t i = 0; i < l; i++) {
        uint8_t t = c->b[q + i];
        size_t tl = c->tok_len[t];
        if (xl + tl > KALLSYMS_NAME_MAX)
            return -1;
        if (out)
            memcpy(out + xl, c->b + c->tt + c->tok_off[t], tl);
        xl += tl;
    }
    if (out)
        out[xl] = 0;
    *p = q + l;
    return (long)xl;
}

/* Markers [ms, ms + 4m): 0 first, strictly increasing. */
static bool markers_ok(const struct cand *c, size_t ms, size_t m)
{
    if (ms % c->a || ms + 4 * m > c->len || rd32(c->b + ms) != 0)
        return false;
    for (size_t k = 1; k < m; k++)
        if (rd32(c->b + ms + 4 * k) <= rd32(c->b + ms + 4 * (k - 1)))
            return false;
    return true;
}

/* Given markers, find num_syms and names before them. */
static bool find_names(struct cand *c, uint32_t want_n)
{
    size_t ms = c->ms, m = c->m;
    uint32_t last = rd32(c->b + ms + 4 * (m - 1));
    if (last >= ms)
        return false;
    size_t hi = (ms - last) & ~(size_t)(c->a - 1);
    size_t lo = hi > NAMES_BACK_MAX ? hi - NAMES_BACK_MAX : 0;
    for (size_t ns = hi; ns >= lo + c->a && ns >= c->a; ns -= c->a) {
        size_t nsp = ns - c->a;
        uint32_t n = rd32(c->b + nsp);
        if (n == 0 || n > KALLSYMS_MAX_SYMS || (n + 255) / 256 != m || (want_n && n != want_n))
            continue;
        if (ns + last >= ms)
            continue;
        /* The last block decodes to the end of the names. */
        size_t p = ns + last;
        bool ok = true;
        for (uint32_t i = 256 * (uint32_t)(m - 1); i < n && ok; i++)
            ok = name_at(c, &p, ms, NULL) > 0;
        if (!ok || p > ms || ms - p >= c->a)
            continue;
        c->ns = ns;
        c->ne = p;
        c->nsp = nsp;
        c->n = n;
        return true;
    }
    return false;
}

/* Markers and names before the token table: directly (6.1, 6.4+), or with
 * seqs_of_names between them (6.2, 6.3). */
static bool find_markers(struct cand *c, char *why, size_t whylen)
{
    size_t tt = c->tt;
    /* Directly before, maybe after 4 bytes of zero padding. */
    for (size_t pad = 0; pad < c->a; pad += 4) {
        if (tt < pad + 4)
            break;
        size_t me = tt - pad;
        if (pad && rd32(c->b + me) != 0)
            continue;
        size_t m = 0;
        uint32_t prev = UINT32_MAX;
        for (size_t j = 1; j <= KALLSYMS_MAX_SYMS / 256 && me >= 4 * j; j++) {
            uint32_t w = rd32(c->b + me - 4 * j);
            if (w >= prev)
                break;
            prev = w;
            if (w == 0) {
                m = j;
                break;
            }
        }
        if (m && markers_ok(c, me - 4 * m, m)) {
            c->ms = me - 4 * m;
            c->m = m;
            c->seqs = 0;
            if (find_names(c, 0))
                return true;
        }
    }
    /* seqs_of_names between: for m markers, n in (256(m-1), 256m]; its
     * entries are u32 (6.2's first form) or 3 bytes, big-endian (since). */
    for (unsigned w = 3; w <= 4; w++) {
        for (size_t m = 1; m <= KALLSYMS_MAX_SYMS / 256; m++) {
            size_t nmin = 256 * (m - 1) + 1;
            if (w * nmin + 4 * m > tt)
                break;
            for (size_t n = nmin; n <= 256 * m; n++) {
                size_t sz = align_up(w * n, c->a);
                if (sz + 4 * m > tt)
                    break;
                size_t seqs = tt - sz;
                if (seqs % c->a)
                    continue;
                size_t ms = (seqs - 4 * m) & ~(size_t)(c->a - 1);
                if (align_up(ms + 4 * m, c->a) != seqs || !markers_ok(c, ms, m))
                    continue;
                /* A permutation of 0..n-1: spot-check the first ones. */
                bool ok = true;
                for (size_t k = 0; k < n && k < 64 && ok; k++) {
                    const uint8_t *q = c->b + seqs + w * k;
                    uint32_t v = w == 4 ? rd32(q)
                                        : (uint32_t)q[0] << 16 | (uint32_t)q[1] << 8 | q[2];
                    ok = v < n;
                }
                if (!ok)
                    continue;
                c->ms = ms;
                c->m = m;
                c->seqs = seqs;
                if (find_names(c, (uint32_t)n))
                    return true;
            }
        }
    }
    say(why, whylen, "token table at +%#zx: no markers and names before it", c->tt);
    return false;
}

/* Addresses from offsets at `off` (relative base at rb) or absolute at
 * `off` (rb == SIZE_MAX): 0 when they decode and are sorted. */
static int addresses(const struct cand *c, size_t off, size_t rb,
                     struct kallsyms_mem *k)
{
    size_t n = c->n;
    bool rel = rb != SIZE_MAX;
    size_t need = rel ? 4 * n : (size_t)c->a * n;
    if (off % c->a || off > c->len || need > c->len - off)
        return -1;
    if (rel && (rb % c->a || rb > c->len || c->len - rb < c->a))
        return -1;
    uint64_t base = rel ? rdptr(c->b + rb, c->a) : 0;
    uint64_t kmin = c->a == 8 ? 0xffff800000000000ull : 0x80000000ull;
    if (rel && base < kmin)
        return -1;
    bool abs_pcpu = false;
    if (rel)
        abs_pcpu = (int32_t)rd32(c->b + off + 4 * (n - 1)) < 0;
    uint64_t *a = malloc(n * sizeof *a);
    if (!a)
        return -1;
    uint64_t prev = 0;
    size_t kernel = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        if (!rel) {
            v = rdptr(c->b + off + c->a * i, c->a);
        } else {
            int32_t o = (int32_t)rd32(c->b + off + 4 * i);
            if (!abs_pcpu)
                v = base + (uint32_t)o;
            else if (o >= 0)
                v = (uint64_t)o;
            else
                v = base - 1 - (uint64_t)(int64_t)o;
            if (c->a == 4)
                v &= 0xffffffffull;
        }
        if (v < prev) {
            free(a);
            return -1;
        }
        prev = v;
        kernel += v >= kmin;
        a[i] = v;
    }
    if (kernel < n / 2) {       /* a kernel's symbols are mostly its own */
        free(a);
        return -1;
    }
    k->addr = a;
    k->relative_base = base;
    k->base_relative = rel;
    k->absolute_percpu = abs_pcpu;
    k->at_offsets = off;
    return 0;
}

static uint64_t hname(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int build_index(struct kallsyms_mem *k)
{
    size_t cap = 16;
    while (cap < 2 * k->n)
        cap <<= 1;
    k->hidx = malloc(cap * sizeof *k->hidx);
    if (!k->hidx)
        return -1;
    memset(k->hidx, 0xff, cap * sizeof *k->hidx);
    k->hcap = cap;
    for (size_t i = 0; i < k->n; i++) {
        size_t h = hname(kallsyms_name(k, i)) & (cap - 1);
        while (k->hidx[h] != UINT32_MAX) {
            if (strcmp(kallsyms_name(k, k->hidx[h]), kallsyms_name(k, i)) == 0)
                break;          /* first one wins, as in btf_isf */
            h = (h + 1) & (cap - 1);
        }
        if (k->hidx[h] == UINT32_MAX)
            k->hidx[h] = (uint32_t)i;
    }
    return 0;
}

int kallsyms_lookup(const struct kallsyms_mem *k, const char *name, uint64_t *addr)
{
    if (!k->hcap)
        return -1;
    size_t h = hname(name) & (k->hcap - 1);
    for (size_t probes = 0; probes < k->hcap && k->hidx[h] != UINT32_MAX; probes++) {
        if (strcmp(kallsyms_name(k, k->hidx[h]), name) == 0) {
            *addr = k->addr[k->hidx[h]];
            return 0;
        }
        h = (h + 1) & (k->hcap - 1);
    }
    return -1;
}

/* Decode every name; check that every marker points at its entry. */
static int decode_names(const struct cand *c, struct kallsyms_mem *k,
                        char *why, size_t whylen)
{
    size_t n = c->n;
    k->name = malloc(n * sizeof *k->name);
    k->type = malloc(n);
    /* Expanded names are longer than compressed ones: grow as needed. */
    size_t cap = (c->ne - c->ns) * 3 + 64, used = 0;
    k->pool = malloc(cap);
    if (!k->name || !k->type || !k->pool) {
        say(why, whylen, "out of memory");
        return -1;
    }
    char tmp[KALLSYMS_NAME_MAX + 1];
    size_t p = c->ns;
    for (size_t i = 0; i < n; i++) {
        if ((i & 255) == 0 && p - c->ns != rd32(c->b + c->ms + 4 * (i >> 8))) {
            say(why, whylen, "kallsyms at +%#zx: marker %zu does not match the names",
                c->tt, i >> 8);
            return -1;
        }
        long xl = name_at(c, &p, c->ne, tmp);
        if (xl < 1) {
            say(why, whylen, "kallsyms at +%#zx: name %zu does not decode", c->tt, i);
            return -1;
        }
        if (used + (size_t)xl + 1 > cap) {
            size_t nc = cap * 2 + (size_t)xl;
            char *np = realloc(k->pool, nc);
            if (!np) {
                say(why, whylen, "out of memory");
                return -1;
            }
            k->pool = np;
            cap = nc;
        }
        k->type[i] = tmp[0];
        k->name[i] = (uint32_t)used;
        memcpy(k->pool + used, tmp + 1, (size_t)xl);   /* includes the NUL */
        used += (size_t)xl;
    }
    k->pool_len = used;
    return 0;
}

static void reset(struct kallsyms_mem *k)
{
    free(k->addr);
    free(k->name);
    free(k->type);
    free(k->pool);
    free(k->hidx);
    memset(k, 0, sizeof *k);
}

static int try_candidate(const uint8_t *buf, size_t len, unsigned psize, size_t d,
                         struct kallsyms_mem *k, char *why, size_t whylen)
{
    struct cand *c = calloc(1, sizeof *c);
    if (!c) {
        say(why, whylen, "out of memory");
        return -1;
    }
    c->b = buf;
    c->len = len;
    c->a = psize;
    int rc = -1;
    if (!find_tokens(c, d, why, whylen) || !find_markers(c, why, whylen))
        goto out;
    k->n = c->n;
    k->psize = psize;
    k->seqs_of_names = c->seqs != 0;
    /* Before 6.4: offsets, relative_base, num_syms.  From 6.4: after the
     * token index: offsets, relative_base, seqs_of_names. */
    size_t offsz = align_up(4 * (size_t)c->n, psize);
    size_t ti_end = align_up(c->ti + 512, psize);
    bool found = false;
    if (c->nsp >= psize + offsz &&
        addresses(c, c->nsp - psize - offsz, c->nsp - psize, k) == 0) {
        k->layout = c->seqs ? "6.2-6.3" : "6.1";
        found = true;
    } else if (addresses(c, ti_end, ti_end + offsz, k) == 0) {
        k->layout = "6.4+";
        k->seqs_of_names = true;
        found = true;
    } else if (c->nsp >= (size_t)psize * c->n &&
               addresses(c, c->nsp - (size_t)psize * c->n, SIZE_MAX, k) == 0) {
        k->layout = c->seqs ? "6.2-6.3" : "6.1";
        found = true;
    } else if (addresses(c, ti_end, SIZE_MAX, k) == 0) {
        k->layout = "6.4+";
        found = true;
    }
    if (!found) {
        say(why, whylen, "kallsyms at +%#zx: no sorted kernel addresses for its %" PRIu32
            " names (offsets or addresses)", c->tt, c->n);
        goto out;
    }
    if (decode_names(c, k, why, whylen) < 0 || build_index(k) < 0)
        goto out;
    k->at_token_table = c->tt;
    k->at_token_index = c->ti;
    k->at_markers = c->ms;
    k->at_names = c->ns;
    k->at_num_syms = c->nsp;
    rc = 0;
out:
    if (rc < 0)
        reset(k);
    free(c);
    return rc;
}

int kallsyms_parse(const uint8_t *buf, size_t len, unsigned psize,
                   struct kallsyms_mem *out, char *why, size_t whylen)
{
    static const char sig[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";
    memset(out, 0, sizeof *out);
    if (psize != 4 && psize != 8) {
        say(why, whylen, "pointer size %u is neither 4 nor 8", psize);
        return -1;
    }
    say(why, whylen, "no kallsyms token table");
    const uint8_t *p = buf;
    for (unsigned tries = 0; tries < SIG_TRIES && len >= sizeof sig; tries++) {
        p = memmem(p, len - (size_t)(p - buf), sig, sizeof sig);
        if (!p)
            break;
        if (try_candidate(buf, len, psize, (size_t)(p - buf), out, why, whylen) == 0)
            return 0;
        p++;
    }
    return -1;
}

void kallsyms_mem_free(struct kallsyms_mem *k)
{
    if (k)
        reset(k);
}

/* ---- in a VM --------------------------------------------------------------- */

#define CHUNK (4u << 20)
#define WIN_BACK (24u << 20)    /* offsets + names + markers + seqs before it */
#define WIN_FWD (4u << 20)      /* index, 6.4+'s offsets and seqs after it */
#define OVERLAP (64u << 10)     /* a token table and index starting in a chunk */

static bool tokens_plausible(const uint8_t *buf, size_t len, size_t d, unsigned psize)
{
    struct cand *c = calloc(1, sizeof *c);
    if (!c)
        return false;
    c->b = buf;
    c->len = len;
    c->a = psize;
    bool ok = find_tokens(c, d, NULL, 0);
    free(c);
    return ok;
}

static bool in_ram(struct vm *vm, uint64_t gpa, uint64_t *end)
{
    const struct vmem_range *r;
    size_t nr;
    vm_ranges(vm, &r, &nr);
    for (size_t i = 0; i < nr; i++)
        if (r[i].kind == VMEM_RANGE_RAM && gpa >= r[i].start && gpa < r[i].end) {
            *end = r[i].end;
            return true;
        }
    return false;
}

static int decode_window(struct vm *vm, uint64_t hit, unsigned psize,
                         struct kallsyms_mem *out, char *why, size_t whylen)
{
    /* Page-aligned: the tables' alignment is checked relative to it. */
    uint64_t start = hit > WIN_BACK ? (hit - WIN_BACK) & ~0xfffull : 0;
    size_t len = (size_t)(hit + WIN_FWD - start);
    uint8_t *w = malloc(len);
    if (!w) {
        say(why, whylen, "out of memory");
        return -1;
    }
    ssize_t got = vm_read_phys(vm, start, w, len, VM_READ_PAD);
    int rc = -1;
    if (got <= 0)
        say(why, whylen, "reading guest-physical 0x%" PRIx64 ": %s", start,
            strerror(got < 0 ? (int)-got : EIO));
    else
        rc = kallsyms_parse(w, (size_t)got, psize, out, why, whylen);
    free(w);
    if (rc == 0) {
        out->at_token_table += start;
        out->at_token_index += start;
        out->at_markers += start;
        out->at_names += start;
        out->at_num_syms += start;
        out->at_offsets += start;
    }
    return rc;
}

int kallsyms_from_vm(struct vm *vm, uint64_t near_gpa, uint64_t back, uint64_t fwd,
                     unsigned psize, struct kallsyms_mem *out, char *why, size_t whylen)
{
    static const char sig[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";
    memset(out, 0, sizeof *out);
    uint8_t *buf = malloc(CHUNK + OVERLAP);
    if (!buf) {
        say(why, whylen, "out of memory");
        return -1;
    }
    char last[256] = "";
    unsigned windows = 0;
    uint64_t lo = near_gpa > back ? (near_gpa - back) & ~(uint64_t)(CHUNK - 1) : 0;
    uint64_t base = near_gpa & ~(uint64_t)(CHUNK - 1);
    uint64_t nf = (fwd + CHUNK - 1) / CHUNK, nb = (base - lo) / CHUNK;
    /* Forward chunks first, then backward ones, nearest first. */
    for (uint64_t i = 0; i < nf + nb && windows < 8; i++) {
        uint64_t gpa = i < nf ? base + i * CHUNK : base - (i - nf + 1) * CHUNK;
        uint64_t rend;
        if (!in_ram(vm, gpa, &rend) && !in_ram(vm, gpa + CHUNK - 1, &rend))
            continue;
        ssize_t got = vm_read_phys(vm, gpa, buf, CHUNK + OVERLAP, VM_READ_PAD);
        if (got < (ssize_t)sizeof sig)
            continue;
        const uint8_t *p = buf;
        while ((p = memmem(p, (size_t)got - (size_t)(p - buf), sig, sizeof sig)) &&
               p < buf + CHUNK && windows < 8) {
            /* Many u16 tables of ASCII look alike: only a token table
             * followed by its index opens a window. */
            if (!tokens_plausible(buf, (size_t)got, (size_t)(p - buf), psize)) {
                p++;
                continue;
            }
            windows++;
            if (decode_window(vm, gpa + (uint64_t)(p - buf), psize, out, last,
                              sizeof last) == 0) {
                free(buf);
                return 0;
            }
            p++;
        }
    }
    free(buf);
    if (windows)
        say(why, whylen, "%s", last);
    else
        say(why, whylen, "no kallsyms token table in guest-physical 0x%" PRIx64
            "-0x%" PRIx64, lo, base + nf * CHUNK);
    return -1;
}
