/*
 * isf.c - Volatility 3 ISF kernel profiles, loaded into a compact form.
 *
 * Owns: reading and decompressing the document, checking its shape, and
 * the immutable lookup structure of isf.h.
 *
 * The document is never held as one json-c tree (a kernel profile would
 * cost ~500 MB that way).  A small scanner walks the top-level object and
 * the four big sections, finds the byte span of each entry, and json-c
 * parses and validates that one entry, which is converted and dropped
 * before the next.  Names are interned into one arena, addressed by 32-bit
 * offsets; type descriptors are hash-consed, so the tens of thousands of
 * {"kind": "base", "name": "int"} in a kernel profile are stored once.
 */
#include "core/profile/isf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/decompress.h"
#include "core/util/log.h"

#define NONE UINT32_MAX

/* ------------------------------------------------------------------ */
/* The compact form                                                    */

struct desc {                   /* one type descriptor, hash-consed */
    uint64_t count;             /* array */
    uint32_t name;              /* base/struct/union/class/enum: string id */
    uint32_t sub;               /* pointer/array subtype, bitfield type */
    uint32_t bitpos, bitlen;    /* bitfield */
    uint8_t kind;               /* enum isf_kind */
};

struct utype {
    uint64_t size;
    uint32_t name, first_field, nfields;
    uint8_t kind;
};

struct field {
    uint64_t offset;
    uint32_t name, desc;
    uint8_t anonymous;
};

struct btype {
    uint64_t size;
    uint32_t name;
};

struct enumt {
    uint64_t size;
    uint32_t name, base, first, n;
};

struct econst {
    int64_t value;
    uint32_t name;
};

struct sym {
    uint64_t addr;
    uint32_t name, desc;
};

struct strslot { uint32_t hash, str; };   /* intern table; str NONE: empty */
struct idslot { uint32_t key, val; };     /* name id -> index; key NONE: empty */

struct idmap {
    struct idslot *slots;
    size_t cap, n;
};

struct isf {
    char *arena;
    size_t arena_len, arena_cap;
    struct strslot *intern;
    size_t intern_cap, intern_n;

    struct desc *descs;
    size_t ndescs, descs_cap;
    uint32_t *desc_table;       /* hash-cons index of descs; NONE: empty */
    size_t desc_table_cap;

    struct utype *utypes;
    size_t nutypes, utypes_cap;
    struct field *fields;
    size_t nfields, fields_cap;
    struct btype *btypes;
    size_t nbtypes, btypes_cap;
    struct enumt *enums;
    size_t nenums, enums_cap;
    struct econst *consts;
    size_t nconsts, consts_cap;
    struct sym *syms;
    size_t nsyms, syms_cap;

    struct idmap utype_map, btype_map, enum_map, sym_map;

    char *banner;
    uint32_t format;            /* string id */
    uint64_t pointer_size;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static void *grow(void *p, size_t *cap, size_t need, size_t elsz)
{
    if (need <= *cap)
        return p;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return NULL;
        nc *= 2;
    }
    if (nc > SIZE_MAX / elsz)
        return NULL;
    void *q = realloc(p, nc * elsz);
    if (!q)
        return NULL;
    *cap = nc;
    return q;
}
/* Make room for one more element of array `a` holding `n` of capacity `cap`:
 * evaluates to 0 on success, -1 on ENOMEM (array unchanged). */
#define RESERVE(a, n, cap)                                                   \
    __extension__({                                                          \
        void *q_ = grow((a), &(cap), (n) + 1, sizeof *(a));                  \
        int r_ = -1;                                                         \
        if (q_) {                                                            \
            (a) = q_;                                                        \
            r_ = 0;                                                          \
        }                                                                    \
        r_;                                                                  \
    })

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t hash_u32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static const char *str_of(const struct isf *f, uint32_t id)
{
    return id == NONE ? NULL : f->arena + id;
}

/* The id of string s[n] if interned, else NONE. */
static uint32_t find_str(const struct isf *f, const char *s, size_t n)
{
    if (!f->intern_cap)
        return NONE;
    uint32_t h = hash_bytes(s, n);
    size_t mask = f->intern_cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct strslot *sl = &f->intern[i];
        if (sl->str == NONE)
            return NONE;
        if (sl->hash == h && memcmp(f->arena + sl->str, s, n) == 0 &&
            f->arena[sl->str + n] == '\0')
            return sl->str;
    }
}

static int intern_rehash(struct isf *f)
{
    size_t nc = f->intern_cap ? f->intern_cap * 2 : 1024;
    struct strslot *t = malloc(nc * sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < nc; i++)
        t[i].str = NONE;
    for (size_t i = 0; i < f->intern_cap; i++) {
        struct strslot sl = f->intern[i];
        if (sl.str == NONE)
            continue;
        size_t j = sl.hash & (nc - 1);
        while (t[j].str != NONE)
            j = (j + 1) & (nc - 1);
        t[j] = sl;
    }
    free(f->intern);
    f->intern = t;
    f->intern_cap = nc;
    return 0;
}

/* Intern s[n] (no NUL inside): its id, or NONE when out of memory or the
 * arena would pass 4 GiB. */
static uint32_t intern(struct isf *f, const char *s, size_t n)
{
    uint32_t id = find_str(f, s, n);
    if (id != NONE)
        return id;
    if ((f->intern_n + 1) * 2 > f->intern_cap && intern_rehash(f) != 0)
        return NONE;
    if (n >= (size_t)NONE - 1 || f->arena_len + n + 1 >= (size_t)NONE)
        return NONE;
    char *a = grow(f->arena, &f->arena_cap, f->arena_len + n + 1, 1);
    if (!a)
        return NONE;
    f->arena = a;
    id = (uint32_t)f->arena_len;
    memcpy(a + id, s, n);
    a[id + n] = '\0';
    f->arena_len += n + 1;
    uint32_t h = hash_bytes(s, n);
    size_t mask = f->intern_cap - 1;
    size_t i = h & mask;
    while (f->intern[i].str != NONE)
        i = (i + 1) & mask;
    f->intern[i].hash = h;
    f->intern[i].str = id;
    f->intern_n++;
    return id;
}

static int idmap_put(struct idmap *m, uint32_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        struct idslot *t = malloc(nc * sizeof *t);
        if (!t)
            return -1;
        for (size_t i = 0; i < nc; i++)
            t[i].key = NONE;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].key == NONE)
                continue;
            size_t j = hash_u32(m->slots[i].key) & (nc - 1);
            while (t[j].key != NONE)
                j = (j + 1) & (nc - 1);
            t[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = t;
        m->cap = nc;
    }
    size_t mask = m->cap - 1;
    for (size_t i = hash_u32(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {   /* a duplicate key: the last wins */
            m->slots[i].val = val;
            return 0;
        }
        if (m->slots[i].key == NONE) {
            m->slots[i].key = key;
            m->slots[i].val = val;
            m->n++;
            return 0;
        }
    }
}

static uint32_t idmap_get(const struct idmap *m, uint32_t key)
{
    if (!m->cap || key == NONE)
        return NONE;
    size_t mask = m->cap - 1;
    for (size_t i = hash_u32(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == key)
            return m->slots[i].val;
        if (m->slots[i].key == NONE)
            return NONE;
    }
}

static uint32_t desc_hash(const struct desc *d)
{
    uint32_t h = hash_u32(d->kind * 0x9e3779b9u ^ d->name);
    h = hash_u32(h ^ d->sub);
    h = hash_u32(h ^ (uint32_t)d->count ^ (uint32_t)(d->count >> 32));
    h = hash_u32(h ^ d->bitpos ^ (d->bitlen << 16) ^ (d->bitlen >> 16));
    return h;
}

static bool desc_eq(const struct desc *a, const struct desc *b)
{
    return a->kind == b->kind && a->name == b->name && a->sub == b->sub &&
           a->count == b->count && a->bitpos == b->bitpos &&
           a->bitlen == b->bitlen;
}

/* The index of a descriptor equal to *d, added if new; NONE on ENOMEM. */
static uint32_t desc_intern(struct isf *f, const struct desc *d)
{
    if ((f->ndescs + 1) * 2 > f->desc_table_cap) {
        size_t nc = f->desc_table_cap ? f->desc_table_cap * 2 : 1024;
        uint32_t *t = malloc(nc * sizeof *t);
        if (!t)
            return NONE;
        for (size_t i = 0; i < nc; i++)
            t[i] = NONE;
        for (size_t i = 0; i < f->ndescs; i++) {
            size_t j = desc_hash(&f->descs[i]) & (nc - 1);
            while (t[j] != NONE)
                j = (j + 1) & (nc - 1);
            t[j] = (uint32_t)i;
        }
        free(f->desc_table);
        f->desc_table = t;
        f->desc_table_cap = nc;
    }
    size_t mask = f->desc_table_cap - 1;
    size_t i = desc_hash(d) & mask;
    for (; f->desc_table[i] != NONE; i = (i + 1) & mask)
        if (desc_eq(&f->descs[f->desc_table[i]], d))
            return f->desc_table[i];
    if (f->ndescs >= NONE - 1 || RESERVE(f->descs, f->ndescs, f->descs_cap))
        return NONE;
    f->descs[f->ndescs] = *d;
    f->desc_table[i] = (uint32_t)f->ndescs;
    return (uint32_t)f->ndescs++;
}

/* ------------------------------------------------------------------ */
/* Decompression                                                       */

/* One message line: vmem_errf (core/util/log.h). */
#define say vmem_errf

/* ------------------------------------------------------------------ */
/* The loader: a scanner over the top level, json-c for each entry     */

enum { SEC_NONE, SEC_BASE, SEC_USER, SEC_ENUMS, SEC_SYMBOLS };

struct loader {
    struct isf *f;
    const char *name;           /* for messages */
    char *err;
    size_t errlen;
    bool failed;
    json_tokener *tok;
    const char *doc;
    size_t len, pos;
    bool banner_only;           /* isf_read_banner: stop at the banner */
    bool banner_found;
    bool have_metadata;
    char *key;                  /* the current member's decoded name */
    size_t key_cap;
};

/* A name as it may appear in a one-line message: printable, bounded. */
static void clean(char *dst, size_t dstlen, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 4 < dstlen; i++)
        dst[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    if (s[i] && dstlen >= 4) {
        memcpy(dst + (i < dstlen - 4 ? i : dstlen - 4), "...", 4);
        return;
    }
    dst[i] = '\0';
}

static void fail(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct loader *L, const char *fmt, ...)
{
    if (L->failed)
        return;
    L->failed = true;
    if (!L->err || !L->errlen)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    snprintf(L->err, L->errlen, "%s: %s", L->name, msg);
}

static void ws(struct loader *L)
{
    while (L->pos < L->len) {
        char c = L->doc[L->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        L->pos++;
    }
}

/* At a '"': find the closing quote; *b..*e is the content, pos moves past
 * it, *esc says whether it holds escapes. */
static int scan_string(struct loader *L, size_t *b, size_t *e, bool *esc)
{
    size_t i = L->pos + 1;
    *esc = false;
    while (i < L->len) {
        unsigned char c = (unsigned char)L->doc[i];
        if (c == '"') {
            *b = L->pos + 1;
            *e = i;
            L->pos = i + 1;
            return 0;
        }
        if (c == '\\') {
            *esc = true;
            i += 2;
            continue;
        }
        if (c < 0x20) {
            fail(L, "JSON syntax error at byte %zu: control character in a "
                 "string", i);
            return -1;
        }
        i++;
    }
    fail(L, "JSON syntax error: string at byte %zu is not terminated",
         L->pos);
    return -1;
}

#define MAX_DEPTH 256

/* Skip one value (lax inside containers: json-c checks what is kept). */
static int skip_value(struct loader *L)
{
    size_t b, e;
    bool esc;
    if (L->pos >= L->len) {
        fail(L, "JSON syntax error: unexpected end of document");
        return -1;
    }
    char c = L->doc[L->pos];
    if (c == '"')
        return scan_string(L, &b, &e, &esc);
    if (c == '{' || c == '[') {
        char stack[MAX_DEPTH];
        int depth = 0;
        while (L->pos < L->len) {
            c = L->doc[L->pos];
            if (c == '"') {
                if (scan_string(L, &b, &e, &esc) != 0)
                    return -1;
                continue;
            }
            if (c == '{' || c == '[') {
                if (depth == MAX_DEPTH) {
                    fail(L, "JSON nested more than %d deep at byte %zu",
                         MAX_DEPTH, L->pos);
                    return -1;
                }
                stack[depth++] = c == '{' ? '}' : ']';
            } else if (c == '}' || c == ']') {
                if (depth == 0 || stack[depth - 1] != c) {
                    fail(L, "JSON syntax error at byte %zu: unbalanced '%c'",
                         L->pos, c);
                    return -1;
                }
                if (--depth == 0) {
                    L->pos++;
                    return 0;
                }
            }
            L->pos++;
        }
        fail(L, "JSON syntax error: document ends inside a value");
        return -1;
    }
    size_t start = L->pos;
    while (L->pos < L->len && !strchr(",:}]{[\" \t\r\n", L->doc[L->pos]))
        L->pos++;
    if (L->pos == start) {
        fail(L, "JSON syntax error at byte %zu: unexpected '%c'", L->pos, c);
        return -1;
    }
    return 0;
}

/* Parse the object value at pos with json-c (and move past it). */
static json_object *take_object(struct loader *L, const char *what)
{
    size_t b = L->pos;
    if (b >= L->len || L->doc[b] != '{') {
        char k[80];
        clean(k, sizeof k, L->key ? L->key : "");
        fail(L, "%s \"%s\": expected a JSON object", what, k);
        return NULL;
    }
    if (skip_value(L) != 0)
        return NULL;
    size_t n = L->pos - b;
    if (n > INT32_MAX) {
        fail(L, "%s: an entry larger than 2 GiB", what);
        return NULL;
    }
    json_tokener_reset(L->tok);
    json_object *o = json_tokener_parse_ex(L->tok, L->doc + b, (int)n);
    if (!o || json_tokener_get_parse_end(L->tok) != n) {
        enum json_tokener_error je = json_tokener_get_error(L->tok);
        char k[80];
        clean(k, sizeof k, L->key ? L->key : "");
        fail(L, "%s \"%s\": invalid JSON at byte %zu: %s", what, k,
             b + json_tokener_get_parse_end(L->tok),
             o ? "trailing data" : json_tokener_error_desc(je));
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Decode the member name scanned at [b, e) into L->key. */
static int set_key(struct loader *L, size_t b, size_t e, bool esc)
{
    const char *s = L->doc + b;
    size_t n = e - b;
    json_object *str = NULL;
    if (esc) {
        if (e + 1 - (b - 1) > INT32_MAX) {
            fail(L, "a member name larger than 2 GiB");
            return -1;
        }
        json_tokener_reset(L->tok);
        str = json_tokener_parse_ex(L->tok, L->doc + b - 1, (int)(e + 1 - (b - 1)));
        if (!str || !json_object_is_type(str, json_type_string)) {
            json_object_put(str);
            fail(L, "JSON syntax error: bad escape in the name at byte %zu",
                 b);
            return -1;
        }
        s = json_object_get_string(str);
        n = (size_t)json_object_get_string_len(str);
        if (strlen(s) != n) {
            json_object_put(str);
            fail(L, "a name at byte %zu contains a NUL character", b);
            return -1;
        }
    }
    char *k = grow(L->key, &L->key_cap, n + 1, 1);
    if (!k) {
        json_object_put(str);
        fail(L, "out of memory");
        return -1;
    }
    L->key = k;
    memcpy(k, s, n);
    k[n] = '\0';
    json_object_put(str);
    return 0;
}

/* Walk the object at pos: for each member, set L->key and call fn with pos
 * at the value; fn consumes the value.  fn returns 0 to go on, 1 to stop
 * early (success), -1 on failure. */
static int for_each_member(struct loader *L, const char *what,
                           int (*fn)(struct loader *, void *), void *ctx)
{
    ws(L);
    if (L->pos >= L->len || L->doc[L->pos] != '{') {
        fail(L, "%s: expected a JSON object at byte %zu", what, L->pos);
        return -1;
    }
    L->pos++;
    ws(L);
    if (L->pos < L->len && L->doc[L->pos] == '}') {
        L->pos++;
        return 0;
    }
    for (;;) {
        size_t b, e;
        bool esc;
        ws(L);
        if (L->pos >= L->len || L->doc[L->pos] != '"') {
            fail(L, "%s: JSON syntax error at byte %zu: expected a member "
                 "name", what, L->pos);
            return -1;
        }
        if (scan_string(L, &b, &e, &esc) != 0 || set_key(L, b, e, esc) != 0)
            return -1;
        ws(L);
        if (L->pos >= L->len || L->doc[L->pos] != ':') {
            fail(L, "%s: JSON syntax error at byte %zu: expected ':'", what,
                 L->pos);
            return -1;
        }
        L->pos++;
        ws(L);
        int r = fn(L, ctx);
        if (r != 0)
            return r;
        ws(L);
        if (L->pos < L->len && L->doc[L->pos] == ',') {
            L->pos++;
            continue;
        }
        if (L->pos < L->len && L->doc[L->pos] == '}') {
            L->pos++;
            return 0;
        }
        fail(L, "%s: JSON syntax error at byte %zu: expected ',' or '}'",
             what, L->pos);
        return -1;
    }
}

/* --- typed getters on one parsed entry ---------------------------- */

/* 0: *out set; 1: absent; -1: present but not an unsigned integer. */
static int get_u64(json_object *o, const char *k, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !v)
        return 1;
    if (!json_object_is_type(v, json_type_int))
        return -1;
    if (json_object_get_int64(v) < 0)
        return -1;
    *out = json_object_get_uint64(v);
    return 0;
}

static const char *get_str(json_object *o, const char *k)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !v ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool has(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v;
}

/* Intern a json-c string value, refusing NUL bytes inside. */
static uint32_t intern_json(struct loader *L, json_object *s)
{
    const char *p = json_object_get_string(s);
    size_t n = (size_t)json_object_get_string_len(s);
    if (strlen(p) != n)
        return NONE - 1;        /* caller reports "contains NUL" */
    uint32_t id = intern(L->f, p, n);
    if (id == NONE)
        fail(L, "out of memory");
    return id;
}

static const struct {
    const char *name;
    enum isf_kind kind;
} kinds[] = {
    {"base", ISF_KIND_BASE},     {"pointer", ISF_KIND_POINTER},
    {"array", ISF_KIND_ARRAY},   {"struct", ISF_KIND_STRUCT},
    {"union", ISF_KIND_UNION},   {"class", ISF_KIND_CLASS},
    {"enum", ISF_KIND_ENUM},     {"function", ISF_KIND_FUNCTION},
    {"bitfield", ISF_KIND_BITFIELD},
};

static enum isf_kind kind_of(const char *s)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(s, kinds[i].name) == 0)
            return kinds[i].kind;
    return ISF_KIND_UNKNOWN;
}

/* Convert a type descriptor; *out its index.  `where` names it. */
static int conv_desc(struct loader *L, json_object *o, uint32_t *out,
                     const char *where, int depth)
{
    char w[96];
    clean(w, sizeof w, where);
    if (depth > 64) {
        fail(L, "%s: type descriptor nested too deep", w);
        return -1;
    }
    if (!json_object_is_type(o, json_type_object)) {
        fail(L, "%s: type descriptor is not an object", w);
        return -1;
    }
    const char *ks = get_str(o, "kind");
    if (!ks) {
        fail(L, "%s: type descriptor without a \"kind\" string", w);
        return -1;
    }
    struct desc d = {.name = NONE, .sub = NONE};
    d.kind = (uint8_t)kind_of(ks);
    json_object *v;
    switch ((enum isf_kind)d.kind) {
    case ISF_KIND_UNKNOWN: {
        char k[40];
        clean(k, sizeof k, ks);
        fail(L, "%s: unknown type kind \"%s\"", w, k);
        return -1;
    }
    case ISF_KIND_BASE:
    case ISF_KIND_STRUCT:
    case ISF_KIND_UNION:
    case ISF_KIND_CLASS:
    case ISF_KIND_ENUM:
        if (!json_object_object_get_ex(o, "name", &v) || !v ||
            !json_object_is_type(v, json_type_string)) {
            fail(L, "%s: %s type without a \"name\" string", w, ks);
            return -1;
        }
        d.name = intern_json(L, v);
        if (d.name == NONE)
            return -1;
        if (d.name == NONE - 1) {
            fail(L, "%s: type name contains a NUL character", w);
            return -1;
        }
        break;
    case ISF_KIND_POINTER:
    case ISF_KIND_ARRAY:
        if (!json_object_object_get_ex(o, "subtype", &v) || !v) {
            fail(L, "%s: %s without a \"subtype\"", w, ks);
            return -1;
        }
        if (conv_desc(L, v, &d.sub, where, depth + 1) != 0)
            return -1;
        if (d.kind == ISF_KIND_ARRAY && get_u64(o, "count", &d.count) != 0) {
            fail(L, "%s: array without an unsigned integer \"count\"", w);
            return -1;
        }
        break;
    case ISF_KIND_BITFIELD: {
        uint64_t bp, bl;
        if (!json_object_object_get_ex(o, "type", &v) || !v) {
            fail(L, "%s: bitfield without a \"type\"", w);
            return -1;
        }
        if (conv_desc(L, v, &d.sub, where, depth + 1) != 0)
            return -1;
        if (get_u64(o, "bit_position", &bp) != 0 ||
            get_u64(o, "bit_length", &bl) != 0 || bp > 65535 || bl > 65535) {
            fail(L, "%s: bitfield without a valid \"bit_position\" and "
                 "\"bit_length\"", w);
            return -1;
        }
        d.bitpos = (uint32_t)bp;
        d.bitlen = (uint32_t)bl;
        break;
    }
    case ISF_KIND_FUNCTION:
        break;
    }
    *out = desc_intern(L->f, &d);
    if (*out == NONE) {
        fail(L, "out of memory");
        return -1;
    }
    return 0;
}

/* Intern L->key; NONE after a failure. */
static uint32_t key_id(struct loader *L)
{
    uint32_t id = intern(L->f, L->key, strlen(L->key));
    if (id == NONE)
        fail(L, "out of memory");
    return id;
}

static int on_base_type(struct loader *L, void *ctx)
{
    struct isf *f = L->f;
    json_object *o = take_object(L, "base_types");
    if (!o)
        return -1;
    char k[80], where[128];
    clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "base_types \"%s\"", k);
    struct btype bt = {0};
    const char *kind = get_str(o, "kind");
    const char *endian = get_str(o, "endian");
    json_object *sg;
    int rc = -1;
    if (get_u64(o, "size", &bt.size) != 0)
        fail(L, "%s: no unsigned integer \"size\"", where);
    else if (!kind || (strcmp(kind, "int") && strcmp(kind, "char") &&
                       strcmp(kind, "bool") && strcmp(kind, "float") &&
                       strcmp(kind, "void")))
        fail(L, "%s: \"kind\" is not one of void, int, float, char, bool",
             where);
    else if (has(o, "endian") && (!endian || (strcmp(endian, "little") &&
                                              strcmp(endian, "big"))))
        fail(L, "%s: \"endian\" is not \"little\" or \"big\"", where);
    else if (json_object_object_get_ex(o, "signed", &sg) && sg &&
             !json_object_is_type(sg, json_type_boolean))
        fail(L, "%s: \"signed\" is not a boolean", where);
    else if ((bt.name = key_id(L)) == NONE)
        ;
    else if (RESERVE(f->btypes, f->nbtypes, f->btypes_cap) ||
             idmap_put(&f->btype_map, bt.name, (uint32_t)f->nbtypes))
        fail(L, "out of memory");
    else {
        f->btypes[f->nbtypes++] = bt;
        if (strcmp(L->key, "pointer") == 0)
            f->pointer_size = bt.size;
        rc = 0;
    }
    json_object_put(o);
    (void)ctx;
    return rc;
}

static int on_user_type(struct loader *L, void *ctx)
{
    struct isf *f = L->f;
    json_object *o = take_object(L, "user_types");
    if (!o)
        return -1;
    char k[80], where[160];
    clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "user_types \"%s\"", k);
    struct utype ut = {.first_field = (uint32_t)f->nfields};
    const char *kind = get_str(o, "kind");
    json_object *fields;
    int rc = -1;
    if (!kind || !(ut.kind = (uint8_t)kind_of(kind)) ||
        (ut.kind != ISF_KIND_STRUCT && ut.kind != ISF_KIND_UNION &&
         ut.kind != ISF_KIND_CLASS)) {
        fail(L, "%s: \"kind\" is not struct, union or class", where);
        goto out;
    }
    if (get_u64(o, "size", &ut.size) != 0) {
        fail(L, "%s: no unsigned integer \"size\"", where);
        goto out;
    }
    if (!json_object_object_get_ex(o, "fields", &fields) || !fields ||
        !json_object_is_type(fields, json_type_object)) {
        fail(L, "%s: no \"fields\" object", where);
        goto out;
    }
    if ((ut.name = key_id(L)) == NONE)
        goto out;
    json_object_object_foreach(fields, fname, fval)
    {
        char fn[64], fwhere[256];
        clean(fn, sizeof fn, fname);
        snprintf(fwhere, sizeof fwhere, "%s field \"%s\"", where, fn);
        struct field fd = {0};
        json_object *t, *an;
        if (!fval || !json_object_is_type(fval, json_type_object)) {
            fail(L, "%s: not an object", fwhere);
            goto out;
        }
        if (get_u64(fval, "offset", &fd.offset) != 0) {
            fail(L, "%s: no unsigned integer \"offset\"", fwhere);
            goto out;
        }
        if (!json_object_object_get_ex(fval, "type", &t) || !t) {
            fail(L, "%s: no \"type\"", fwhere);
            goto out;
        }
        if (conv_desc(L, t, &fd.desc, fwhere, 0) != 0)
            goto out;
        if (json_object_object_get_ex(fval, "anonymous", &an) && an) {
            if (!json_object_is_type(an, json_type_boolean)) {
                fail(L, "%s: \"anonymous\" is not a boolean", fwhere);
                goto out;
            }
            fd.anonymous = json_object_get_boolean(an) ? 1 : 0;
        }
        /* json-c keys hold no NUL: they come from the tokener's strings
         * only when the name had none (checked below by length). */
        fd.name = intern(f, fname, strlen(fname));
        if (fd.name == NONE || f->nfields >= NONE - 1 ||
            RESERVE(f->fields, f->nfields, f->fields_cap)) {
            fail(L, "out of memory");
            goto out;
        }
        f->fields[f->nfields++] = fd;
    }
    ut.nfields = (uint32_t)(f->nfields - ut.first_field);
    if (f->nutypes >= NONE - 1 || RESERVE(f->utypes, f->nutypes, f->utypes_cap) ||
        idmap_put(&f->utype_map, ut.name, (uint32_t)f->nutypes)) {
        fail(L, "out of memory");
        goto out;
    }
    f->utypes[f->nutypes++] = ut;
    rc = 0;
out:
    if (rc != 0)
        f->nfields = ut.first_field;
    json_object_put(o);
    (void)ctx;
    return rc;
}

static int on_enum(struct loader *L, void *ctx)
{
    struct isf *f = L->f;
    json_object *o = take_object(L, "enums");
    if (!o)
        return -1;
    char k[80], where[128];
    clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "enums \"%s\"", k);
    struct enumt en = {.first = (uint32_t)f->nconsts};
    json_object *cs, *base;
    int rc = -1;
    if (get_u64(o, "size", &en.size) != 0) {
        fail(L, "%s: no unsigned integer \"size\"", where);
        goto out;
    }
    if (!json_object_object_get_ex(o, "base", &base) || !base ||
        !json_object_is_type(base, json_type_string)) {
        fail(L, "%s: no \"base\" string", where);
        goto out;
    }
    if ((en.base = intern_json(L, base)) >= NONE - 1) {
        if (en.base == NONE - 1)
            fail(L, "%s: \"base\" contains a NUL character", where);
        goto out;
    }
    if (!json_object_object_get_ex(o, "constants", &cs) || !cs ||
        !json_object_is_type(cs, json_type_object)) {
        fail(L, "%s: no \"constants\" object", where);
        goto out;
    }
    if ((en.name = key_id(L)) == NONE)
        goto out;
    json_object_object_foreach(cs, cname, cval)
    {
        struct econst c;
        if (!cval || !json_object_is_type(cval, json_type_int)) {
            char cn[64];
            clean(cn, sizeof cn, cname);
            fail(L, "%s: constant \"%s\" is not an integer", where, cn);
            goto out;
        }
        int64_t sv = json_object_get_int64(cval);
        c.value = sv < 0 ? sv : (int64_t)json_object_get_uint64(cval);
        c.name = intern(f, cname, strlen(cname));
        if (c.name == NONE || f->nconsts >= NONE - 1 ||
            RESERVE(f->consts, f->nconsts, f->consts_cap)) {
            fail(L, "out of memory");
            goto out;
        }
        f->consts[f->nconsts++] = c;
    }
    en.n = (uint32_t)(f->nconsts - en.first);
    if (f->nenums >= NONE - 1 || RESERVE(f->enums, f->nenums, f->enums_cap) ||
        idmap_put(&f->enum_map, en.name, (uint32_t)f->nenums)) {
        fail(L, "out of memory");
        goto out;
    }
    f->enums[f->nenums++] = en;
    rc = 0;
out:
    if (rc != 0)
        f->nconsts = en.first;
    json_object_put(o);
    (void)ctx;
    return rc;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode base64 (padding optional) into a malloc'd NUL-terminated string
 * cut at the first NUL; NULL when malformed or out of memory. */
static char *b64_banner(const char *s, size_t n)
{
    char *out = malloc(n / 4 * 3 + 4);
    if (!out)
        return NULL;
    size_t o = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64val(c);
        if (v < 0 || pad) {     /* junk, or data after padding */
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (pad > 2 || bits >= 6) {
        free(out);
        return NULL;
    }
    out[o] = '\0';
    return out;                 /* strlen stops at an embedded NUL */
}

static int take_banner(struct loader *L, json_object *o, const char *where)
{
    json_object *cd;
    if (!json_object_object_get_ex(o, "constant_data", &cd) || !cd)
        return 0;
    if (!json_object_is_type(cd, json_type_string)) {
        fail(L, "%s: \"constant_data\" is not a string", where);
        return -1;
    }
    char *b = b64_banner(json_object_get_string(cd),
                         (size_t)json_object_get_string_len(cd));
    if (!b) {
        fail(L, "%s: \"constant_data\" is not valid base64", where);
        return -1;
    }
    free(L->f->banner);
    L->f->banner = b;
    L->banner_found = true;
    return 0;
}

static int on_symbol(struct loader *L, void *ctx)
{
    struct isf *f = L->f;
    bool is_banner = strcmp(L->key, "linux_banner") == 0;
    if (L->banner_only && !is_banner)
        return skip_value(L);
    json_object *o = take_object(L, "symbols");
    if (!o)
        return -1;
    char k[80], where[128];
    clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "symbols \"%s\"", k);
    struct sym s = {.desc = NONE};
    json_object *t;
    int rc = -1;
    if (get_u64(o, "address", &s.addr) != 0) {
        fail(L, "%s: no unsigned integer \"address\"", where);
        goto out;
    }
    if (is_banner && take_banner(L, o, where) != 0)
        goto out;
    if (L->banner_only) {
        rc = 1;                 /* found it: stop */
        goto out;
    }
    if (has(o, "constant_data") && !get_str(o, "constant_data")) {
        fail(L, "%s: \"constant_data\" is not a string", where);
        goto out;
    }
    if (json_object_object_get_ex(o, "type", &t) && t &&
        conv_desc(L, t, &s.desc, where, 0) != 0)
        goto out;
    if ((s.name = key_id(L)) == NONE)
        goto out;
    if (f->nsyms >= NONE - 1 || RESERVE(f->syms, f->nsyms, f->syms_cap) ||
        idmap_put(&f->sym_map, s.name, (uint32_t)f->nsyms)) {
        fail(L, "out of memory");
        goto out;
    }
    f->syms[f->nsyms++] = s;
    rc = 0;
out:
    json_object_put(o);
    (void)ctx;
    return rc;
}

static int on_metadata(struct loader *L)
{
    json_object *o = take_object(L, "metadata");
    if (!o)
        return -1;
    int rc = -1;
    json_object *fmt;
    L->have_metadata = true;
    if (!json_object_object_get_ex(o, "format", &fmt) || !fmt ||
        !json_object_is_type(fmt, json_type_string)) {
        fail(L, "metadata: no \"format\" string");
    } else {
        uint32_t id = intern_json(L, fmt);
        if (id == NONE - 1)
            fail(L, "metadata: \"format\" contains a NUL character");
        else if (id != NONE) {
            L->f->format = id;
            rc = 0;
        }
    }
    json_object_put(o);
    return rc;
}

static int on_top(struct loader *L, void *ctx)
{
    (void)ctx;
    const char *k = L->key;
    if (L->banner_only) {
        if (strcmp(k, "symbols") == 0) {
            /* 1: on_symbol stopped at linux_banner (with or without
             * constant_data); stop the whole walk there too. */
            return for_each_member(L, "symbols", on_symbol, NULL);
        }
        return skip_value(L);
    }
    if (strcmp(k, "metadata") == 0)
        return on_metadata(L);
    if (strcmp(k, "base_types") == 0)
        return for_each_member(L, "base_types", on_base_type, NULL) < 0 ? -1 : 0;
    if (strcmp(k, "user_types") == 0)
        return for_each_member(L, "user_types", on_user_type, NULL) < 0 ? -1 : 0;
    if (strcmp(k, "enums") == 0)
        return for_each_member(L, "enums", on_enum, NULL) < 0 ? -1 : 0;
    if (strcmp(k, "symbols") == 0)
        return for_each_member(L, "symbols", on_symbol, NULL) < 0 ? -1 : 0;
    return skip_value(L);       /* a later producer's addition */
}

/* Give back the slack of the doubling growth: the profile lives as long as
 * the mount. */
#define SHRINK(a, n, cap)                                                    \
    do {                                                                     \
        if ((n) && (n) < (cap)) {                                            \
            void *q_ = realloc((a), (n) * sizeof *(a));                      \
            if (q_) {                                                        \
                (a) = q_;                                                    \
                (cap) = (n);                                                 \
            }                                                                \
        }                                                                    \
    } while (0)

static void shrink(struct isf *f)
{
    SHRINK(f->arena, f->arena_len, f->arena_cap);
    SHRINK(f->descs, f->ndescs, f->descs_cap);
    SHRINK(f->utypes, f->nutypes, f->utypes_cap);
    SHRINK(f->fields, f->nfields, f->fields_cap);
    SHRINK(f->btypes, f->nbtypes, f->btypes_cap);
    SHRINK(f->enums, f->nenums, f->enums_cap);
    SHRINK(f->consts, f->nconsts, f->consts_cap);
    SHRINK(f->syms, f->nsyms, f->syms_cap);
    /* The hash-cons table is only needed while loading. */
    free(f->desc_table);
    f->desc_table = NULL;
    f->desc_table_cap = 0;
}

static struct isf *isf_new(void)
{
    struct isf *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->format = NONE;
    f->pointer_size = 8;
    if (intern(f, "", 0) == NONE) {
        isf_free(f);
        return NULL;
    }
    return f;
}

/* Walk a decompressed document.  banner_only: stop at the banner. */
static struct isf *load_document(const char *doc, size_t len, const char *name,
                                 bool banner_only, char *err, size_t errlen)
{
    struct loader L = {.name = name, .err = err, .errlen = errlen, .doc = doc,
                       .len = len, .banner_only = banner_only};
    L.f = isf_new();
    L.tok = json_tokener_new_ex(32);
    if (!L.f || !L.tok) {
        fail(&L, "out of memory");
        goto bad;
    }
    json_tokener_set_flags(L.tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    ws(&L);
    if (L.pos >= len || doc[L.pos] != '{') {
        fail(&L, "not an ISF: the document is not a JSON object");
        goto bad;
    }
    int r = for_each_member(&L, "document", on_top, NULL);
    if (r < 0)
        goto bad;
    if (banner_only) {
        if (!L.banner_found) {
            fail(&L, "no linux_banner constant_data: the profile does not "
                 "say which kernel it is for");
            goto bad;
        }
    } else {
        ws(&L);
        if (L.pos != len) {
            fail(&L, "JSON syntax error at byte %zu: data after the document",
                 L.pos);
            goto bad;
        }
        if (!L.have_metadata) {
            fail(&L, "not an ISF: no \"metadata\"");
            goto bad;
        }
        const char *fmt = str_of(L.f, L.f->format);
        char *end;
        errno = 0;
        long major = strtol(fmt, &end, 10);
        if (end == fmt || *end != '.' || major < 2 || errno) {
            char fc[40];
            clean(fc, sizeof fc, fmt);
            fail(&L, "unsupported ISF format \"%s\" (need 2.0.0 or later)", fc);
            goto bad;
        }
    }
    json_tokener_free(L.tok);
    free(L.key);
    if (!banner_only)
        shrink(L.f);
    return L.f;
bad:
    if (L.tok)
        json_tokener_free(L.tok);
    free(L.key);
    isf_free(L.f);
    return NULL;
}

/* Decompress if needed: *doc is `data` itself or a malloc'd *owned. */
static int open_document(const void *data, size_t len, const char *name,
                         const char **doc, size_t *doclen, void **owned,
                         char *err, size_t errlen)
{
    char why[200];
    *owned = NULL;
    /* An ISF is JSON, plain or as Volatility ships it (.xz, .gz); the legacy
     * .lzma header has no magic and is not accepted here. */
    enum vmem_codec c = vmem_codec_detect(data, len, false);
    int r = 0;
    if (c == VMEM_CODEC_BZIP2 || c == VMEM_CODEC_ZSTD || c == VMEM_CODEC_LZOP ||
        c == VMEM_CODEC_LZ4_LEGACY) {
        say(err, errlen, "%s: %s-compressed: not supported (decompress it, or "
            "recompress with xz)", name, vmem_codec_name(c));
        return -1;
    }
    if (c != VMEM_CODEC_NONE)
        r = vmem_decompress(c, data, len, ISF_MAX_DOCUMENT_SIZE, 0, owned, doclen,
                            why, sizeof why);
    if (r < 0) {
        say(err, errlen, "%s: %s", name, why);
        return -1;
    }
    if (r == 0) {
        *doc = data;
        *doclen = len;
        return 0;
    }
    *doc = *owned;
    return 0;
}

struct isf *isf_load_buffer(const void *data, size_t len, const char *name,
                            char *err, size_t errlen)
{
    const char *doc;
    size_t doclen;
    void *owned;
    if (!name)
        name = "ISF buffer";
    if (!data && len) {
        say(err, errlen, "%s: no data", name);
        return NULL;
    }
    if (open_document(data ? data : "", len, name, &doc, &doclen, &owned,
                      err, errlen) != 0)
        return NULL;
    struct isf *f = load_document(doc, doclen, name, false, err, errlen);
    free(owned);
    return f;
}

static void *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO must not hold the caller in open(); it has no
     * effect on the regular file that is all we accept. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        say(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        say(err, errlen, "%s: not a regular file (a FIFO, a device or a "
            "directory): an ISF must be one", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > ISF_MAX_DOCUMENT_SIZE) {
        say(err, errlen, "%s: larger than %zu bytes", path,
            ISF_MAX_DOCUMENT_SIZE);
        close(fd);
        return NULL;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = malloc(n + 1);
    if (!buf) {
        say(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            say(err, errlen, "%s: %s", path, r < 0 ? strerror(errno)
                                                   : "file shrank while read");
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct isf *isf_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    void *data = read_file(path, &len, err, errlen);
    if (!data)
        return NULL;
    struct isf *f = isf_load_buffer(data, len, path, err, errlen);
    free(data);
    return f;
}

void isf_free(struct isf *f)
{
    if (!f)
        return;
    free(f->arena);
    free(f->intern);
    free(f->descs);
    free(f->desc_table);
    free(f->utypes);
    free(f->fields);
    free(f->btypes);
    free(f->enums);
    free(f->consts);
    free(f->syms);
    free(f->utype_map.slots);
    free(f->btype_map.slots);
    free(f->enum_map.slots);
    free(f->sym_map.slots);
    free(f->banner);
    free(f);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */

static uint32_t name_id(const struct isf *f, const char *s)
{
    return s ? find_str(f, s, strlen(s)) : NONE;
}

/* Strip a "struct "/"union "/"class "/"enum " prefix; *kind_out says which
 * (ISF_KIND_UNKNOWN: none). */
static const char *strip_prefix(const char *type, enum isf_kind *kind_out)
{
    static const struct { const char *p; enum isf_kind k; } pre[] = {
        {"struct ", ISF_KIND_STRUCT}, {"union ", ISF_KIND_UNION},
        {"class ", ISF_KIND_CLASS},   {"enum ", ISF_KIND_ENUM},
    };
    *kind_out = ISF_KIND_UNKNOWN;
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        size_t n = strlen(pre[i].p);
        if (strncmp(type, pre[i].p, n) == 0) {
            *kind_out = pre[i].k;
            return type + n;
        }
    }
    return type;
}

static const struct utype *find_utype(const struct isf *f, uint32_t name)
{
    uint32_t i = idmap_get(&f->utype_map, name);
    return i == NONE ? NULL : &f->utypes[i];
}

static const struct btype *find_btype(const struct isf *f, uint32_t name)
{
    uint32_t i = idmap_get(&f->btype_map, name);
    return i == NONE ? NULL : &f->btypes[i];
}

static const struct enumt *find_enum(const struct isf *f, uint32_t name)
{
    uint32_t i = idmap_get(&f->enum_map, name);
    return i == NONE ? NULL : &f->enums[i];
}

static const struct sym *find_sym(const struct isf *f, const char *name)
{
    uint32_t i = idmap_get(&f->sym_map, name_id(f, name));
    return i == NONE ? NULL : &f->syms[i];
}

int isf_symbol(const struct isf *f, const char *name, uint64_t *addr)
{
    const struct sym *s = f && name ? find_sym(f, name) : NULL;
    if (!s)
        return -1;
    if (addr)
        *addr = s->addr;
    return 0;
}

int isf_type_size(const struct isf *f, const char *type, uint64_t *size)
{
    if (!f || !type)
        return -1;
    enum isf_kind want;
    uint32_t id = name_id(f, strip_prefix(type, &want));
    if (id == NONE)
        return -1;
    if (want != ISF_KIND_ENUM) {
        const struct utype *u = find_utype(f, id);
        if (u && (want == ISF_KIND_UNKNOWN || u->kind == want)) {
            if (size)
                *size = u->size;
            return 0;
        }
    }
    if (want == ISF_KIND_UNKNOWN) {
        const struct btype *b = find_btype(f, id);
        if (b) {
            if (size)
                *size = b->size;
            return 0;
        }
    }
    if (want == ISF_KIND_UNKNOWN || want == ISF_KIND_ENUM) {
        const struct enumt *e = find_enum(f, id);
        if (e) {
            if (size)
                *size = e->size;
            return 0;
        }
    }
    return -1;
}

/* Size of the object a descriptor describes; 0 when not known. */
static uint64_t desc_size(const struct isf *f, uint32_t di, int depth)
{
    if (di == NONE || di >= f->ndescs || depth > 32)
        return 0;
    const struct desc *d = &f->descs[di];
    switch ((enum isf_kind)d->kind) {
    case ISF_KIND_BASE: {
        const struct btype *b = find_btype(f, d->name);
        return b ? b->size : 0;
    }
    case ISF_KIND_STRUCT:
    case ISF_KIND_UNION:
    case ISF_KIND_CLASS: {
        const struct utype *u = find_utype(f, d->name);
        return u ? u->size : 0;
    }
    case ISF_KIND_ENUM: {
        const struct enumt *e = find_enum(f, d->name);
        return e ? e->size : 0;
    }
    case ISF_KIND_POINTER:
        return f->pointer_size;
    case ISF_KIND_ARRAY: {
        uint64_t el = desc_size(f, d->sub, depth + 1);
        if (el && d->count > UINT64_MAX / el)
            return 0;
        return el * d->count;
    }
    case ISF_KIND_BITFIELD:
        return desc_size(f, d->sub, depth + 1);
    default:
        return 0;
    }
}

static bool named_kind(enum isf_kind k)
{
    return k == ISF_KIND_BASE || k == ISF_KIND_STRUCT || k == ISF_KIND_UNION ||
           k == ISF_KIND_CLASS || k == ISF_KIND_ENUM;
}

static void fill_info(const struct isf *f, uint32_t di,
                      struct isf_member_info *info)
{
    memset(info, 0, sizeof *info);
    if (di == NONE || di >= f->ndescs)
        return;
    const struct desc *d = &f->descs[di];
    info->kind = (enum isf_kind)d->kind;
    info->target_kind = info->kind;
    info->size = desc_size(f, di, 0);
    if (named_kind(info->kind)) {
        info->type_name = str_of(f, d->name);
        return;
    }
    if (d->sub == NONE || d->sub >= f->ndescs)
        return;
    const struct desc *s = &f->descs[d->sub];
    info->target_kind = (enum isf_kind)s->kind;
    info->type_name = named_kind(info->target_kind) ? str_of(f, s->name) : NULL;
    switch (info->kind) {
    case ISF_KIND_POINTER:
        info->target_size = desc_size(f, d->sub, 0);
        break;
    case ISF_KIND_ARRAY:
        info->target_size = desc_size(f, d->sub, 0);
        info->count = d->count;
        break;
    case ISF_KIND_BITFIELD:
        info->bit_position = d->bitpos;
        info->bit_length = d->bitlen;
        break;
    default:
        break;
    }
}

/* Find member `name` (interned id) in u, descending into anonymous
 * members; *off accumulates. */
static const struct field *find_field(const struct isf *f,
                                      const struct utype *u, uint32_t name,
                                      uint64_t *off, int depth)
{
    if (depth > 16)
        return NULL;
    const struct field *fl = f->fields + u->first_field;
    for (uint32_t i = 0; i < u->nfields; i++)
        if (fl[i].name == name) {
            *off += fl[i].offset;
            return &fl[i];
        }
    for (uint32_t i = 0; i < u->nfields; i++) {
        if (!fl[i].anonymous || fl[i].desc >= f->ndescs)
            continue;
        const struct desc *d = &f->descs[fl[i].desc];
        if (d->kind != ISF_KIND_STRUCT && d->kind != ISF_KIND_UNION &&
            d->kind != ISF_KIND_CLASS)
            continue;
        const struct utype *inner = find_utype(f, d->name);
        if (!inner || inner == u)
            continue;
        uint64_t o = *off + fl[i].offset;
        const struct field *hit = find_field(f, inner, name, &o, depth + 1);
        if (hit) {
            *off = o;
            return hit;
        }
    }
    return NULL;
}

int isf_member(const struct isf *f, const char *type, const char *member,
               uint64_t *offset, struct isf_member_info *info)
{
    if (!f || !type || !member)
        return -1;
    enum isf_kind want;
    const struct utype *u = find_utype(f, name_id(f, strip_prefix(type, &want)));
    if (!u || (want != ISF_KIND_UNKNOWN && want != u->kind))
        return -1;
    uint64_t off = 0;
    const struct field *hit = NULL;
    const char *p = member;
    for (int hops = 0; hops < 64; hops++) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        uint32_t id = find_str(f, p, n);
        if (id == NONE)
            return -1;
        hit = find_field(f, u, id, &off, 0);
        if (!hit)
            return -1;
        if (!dot)
            break;
        const struct desc *d = hit->desc < f->ndescs ? &f->descs[hit->desc] : NULL;
        if (!d || (d->kind != ISF_KIND_STRUCT && d->kind != ISF_KIND_UNION &&
                   d->kind != ISF_KIND_CLASS))
            return -1;
        if (!(u = find_utype(f, d->name)))
            return -1;
        p = dot + 1;
        hit = NULL;
    }
    if (!hit)
        return -1;
    if (offset)
        *offset = off;
    if (info) {
        fill_info(f, hit->desc, info);
        info->anonymous = hit->anonymous;
    }
    return 0;
}

int isf_symbol_type(const struct isf *f, const char *name,
                    struct isf_member_info *info)
{
    const struct sym *s = f && name ? find_sym(f, name) : NULL;
    if (!s)
        return -1;
    if (info)
        fill_info(f, s->desc, info);
    return 0;
}

int isf_enum_value(const struct isf *f, const char *enum_name,
                   const char *constant, int64_t *value)
{
    if (!f || !enum_name || !constant)
        return -1;
    enum isf_kind want;
    const struct enumt *e = find_enum(f, name_id(f, strip_prefix(enum_name, &want)));
    uint32_t cid = name_id(f, constant);
    if (!e || cid == NONE || (want != ISF_KIND_UNKNOWN && want != ISF_KIND_ENUM))
        return -1;
    for (uint32_t i = 0; i < e->n; i++)
        if (f->consts[e->first + i].name == cid) {
            if (value)
                *value = f->consts[e->first + i].value;
            return 0;
        }
    return -1;
}

const char *isf_banner(const struct isf *f)
{
    return f ? f->banner : NULL;
}

const char *isf_format(const struct isf *f)
{
    return f && f->format != NONE ? str_of(f, f->format) : "";
}

void isf_get_stats(const struct isf *f, struct isf_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!f)
        return;
    out->base_types = f->nbtypes;
    out->user_types = f->nutypes;
    out->fields = f->nfields;
    out->enums = f->nenums;
    out->symbols = f->nsyms;
    out->descriptors = f->ndescs;
    out->bytes = sizeof *f + f->arena_cap + f->intern_cap * sizeof *f->intern +
                 f->descs_cap * sizeof *f->descs +
                 f->desc_table_cap * sizeof *f->desc_table +
                 f->utypes_cap * sizeof *f->utypes +
                 f->fields_cap * sizeof *f->fields +
                 f->btypes_cap * sizeof *f->btypes +
                 f->enums_cap * sizeof *f->enums +
                 f->consts_cap * sizeof *f->consts +
                 f->syms_cap * sizeof *f->syms +
                 (f->utype_map.cap + f->btype_map.cap + f->enum_map.cap +
                  f->sym_map.cap) * sizeof(struct idslot) +
                 (f->banner ? strlen(f->banner) + 1 : 0);
}

/* ------------------------------------------------------------------ */
/* Banners                                                             */

static size_t trimmed_len(const char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                 s[n - 1] == '\t'))
        n--;
    return n;
}

int isf_banner_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t na = trimmed_len(a), nb = trimmed_len(b);
    return na == nb && memcmp(a, b, na) == 0;
}

char *isf_banner_of_buffer(const void *data, size_t len, const char *name,
                           char *err, size_t errlen)
{
    size_t doclen;
    const char *doc;
    void *owned;
    if (!name)
        name = "ISF buffer";
    if (open_document(data ? data : "", data ? len : 0, name, &doc, &doclen,
                      &owned, err, errlen) != 0)
        return NULL;
    struct isf *f = load_document(doc, doclen, name, true, err, errlen);
    free(owned);
    if (!f)
        return NULL;
    char *b = f->banner;
    f->banner = NULL;
    isf_free(f);
    return b;
}

/* isf_read_banner: isf_banner.c, which streams the file. */

static bool isf_name(const char *n)
{
    static const char *const ext[] = {".json", ".json.xz", ".json.gz"};
    size_t ln = strlen(n);
    for (size_t i = 0; i < 3; i++) {
        size_t le = strlen(ext[i]);
        if (ln > le && strcmp(n + ln - le, ext[i]) == 0)
            return true;
    }
    return false;
}

static void catalog_add(struct isf_catalog *c, char *path, char *banner)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        struct isf_catalog_entry *ne = realloc(c->entry, nc * sizeof *ne);
        if (!ne) {
            free(path);
            free(banner);
            return;
        }
        c->entry = ne;
        c->cap = nc;
    }
    c->entry[c->n++] = (struct isf_catalog_entry){path, banner};
}

static void catalog_dir(struct isf_catalog *c, const char *dir, int depth)
{
    struct dirent **ents;
    if (depth > 16 || c->n >= ISF_CATALOG_MAX)
        return;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        return;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        char *path = NULL;
        struct stat lst, st;
        if (nm[0] != '.' && c->n < ISF_CATALOG_MAX &&
            asprintf(&path, "%s/%s", dir, nm) >= 0 && lstat(path, &lst) == 0) {
            if (S_ISDIR(lst.st_mode)) {
                catalog_dir(c, path, depth + 1);
            } else if (isf_name(nm) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                char e[512];
                char *b = isf_read_banner(path, e, sizeof e);
                catalog_add(c, path, b);
                path = NULL;                /* the catalog owns it now */
            }
        }
        free(path);
        free(ents[i]);
    }
    free(ents);
}

int isf_catalog_load(struct isf_catalog *c, const char *dir, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        say(err, errlen, "%s: not a directory", dir ? dir : "(null)");
        return -1;
    }
    catalog_dir(c, dir, 0);
    return 0;
}

const char *isf_catalog_find(const struct isf_catalog *c, const char *banner)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->entry[i].banner && isf_banner_equal(c->entry[i].banner, banner))
            return c->entry[i].path;
    return NULL;
}

void isf_catalog_free(struct isf_catalog *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->entry[i].path);
        free(c->entry[i].banner);
    }
    free(c->entry);
    memset(c, 0, sizeof *c);
}

struct isf *isf_find_by_banner(const char *dir, const char *banner,
                               char *err, size_t errlen)
{
    if (!dir || !banner) {
        say(err, errlen, "isf_find_by_banner: no directory or banner given");
        return NULL;
    }
    struct isf_catalog c;
    if (isf_catalog_load(&c, dir, err, errlen) != 0)
        return NULL;
    const char *path = isf_catalog_find(&c, banner);
    struct isf *found = NULL;
    if (path) {
        char e[512];
        found = isf_load(path, e, sizeof e);
        if (!found)
            say(err, errlen, "%s: the profile matching the banner does not load: "
                "%s", dir, e);
    } else {
        char b[100];
        clean(b, sizeof b, banner);
        say(err, errlen, "%s: none of %zu ISF files is for \"%.*s\"", dir,
            c.n, (int)trimmed_len(b), b);
    }
    isf_catalog_free(&c);
    return found;
}
