/*
 * isf.c - Volatility 3 ISF kernel profiles: the store and its lookups (see
 * isf_internal.h for the pieces).
 *
 * Owns: the compact, immutable form of a loaded profile (names interned in
 * one arena, type descriptors hash-consed, name -> index maps), its life
 * (new, shrink once loaded, free), and the lookups isf.h offers: symbols,
 * type sizes, members, enum values, banner, format, stats.
 */
#include "core/profile/isf_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

void *isfi_grow(void *p, size_t *cap, size_t need, size_t elsz)
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

const char *isfi_str_of(const struct isf *f, uint32_t id)
{
    return id == NONE ? NULL : f->arena + id;
}

/* The id of string s[n] if interned, else NONE. */
uint32_t isfi_find_str(const struct isf *f, const char *s, size_t n)
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
uint32_t isfi_intern(struct isf *f, const char *s, size_t n)
{
    uint32_t id = isfi_find_str(f, s, n);
    if (id != NONE)
        return id;
    if ((f->intern_n + 1) * 2 > f->intern_cap && intern_rehash(f) != 0)
        return NONE;
    if (n >= (size_t)NONE - 1 || f->arena_len + n + 1 >= (size_t)NONE)
        return NONE;
    char *a = isfi_grow(f->arena, &f->arena_cap, f->arena_len + n + 1, 1);
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

int isfi_idmap_put(struct idmap *m, uint32_t key, uint32_t val)
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
uint32_t isfi_desc_intern(struct isf *f, const struct desc *d)
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

void isfi_shrink(struct isf *f)
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

struct isf *isfi_new(void)
{
    struct isf *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->format = NONE;
    f->pointer_size = 8;
    if (isfi_intern(f, "", 0) == NONE) {
        isf_free(f);
        return NULL;
    }
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
    return s ? isfi_find_str(f, s, strlen(s)) : NONE;
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
        info->type_name = isfi_str_of(f, d->name);
        return;
    }
    if (d->sub == NONE || d->sub >= f->ndescs)
        return;
    const struct desc *s = &f->descs[d->sub];
    info->target_kind = (enum isf_kind)s->kind;
    info->type_name = named_kind(info->target_kind) ? isfi_str_of(f, s->name) : NULL;
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
        uint32_t id = isfi_find_str(f, p, n);
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
    return f && f->format != NONE ? isfi_str_of(f, f->format) : "";
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
