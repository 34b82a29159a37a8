/*
 * btf_isf.c - Volatility 3 ISF profiles from a kernel's BTF (see btf_isf.h,
 * and btf_isf_internal.h for the pieces): the conversion of types.
 *
 * Owns: the ISF name of every struct, union, enum and typedef (planned
 * once, unique per section), type descriptors, and the user types and
 * enums written as JSON text, a stream with no tree (the kernel's ~100k
 * BTF types become ~40 MB of JSON); the helpers the pieces share.
 */
#include "core/profile/btf_isf_internal.h"

#ifdef BTF_ISF_BUILD

void bti_say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

uint64_t bti_hash64(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ------------------------------------------------------------------ */
/* A set of strings (names already used in one ISF section)            */

bool bti_strset_has(const struct strset *s, const char *k)
{
    if (!s->cap)
        return false;
    size_t mask = s->cap - 1;
    for (size_t i = bti_hash64(k, strlen(k), HASH_INIT) & mask; s->slots[i];
         i = (i + 1) & mask)
        if (strcmp(s->slots[i], k) == 0)
            return true;
    return false;
}

/* 1 added, 0 already there, -1 ENOMEM.  The set keeps its own copy. */
int bti_strset_add(struct strset *s, const char *k)
{
    if (bti_strset_has(s, k))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        char **t = calloc(nc, sizeof *t);
        if (!t)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            size_t j = bti_hash64(s->slots[i], strlen(s->slots[i]), HASH_INIT) & (nc - 1);
            while (t[j])
                j = (j + 1) & (nc - 1);
            t[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = t;
        s->cap = nc;
    }
    char *c = strdup(k);
    if (!c)
        return -1;
    size_t i = bti_hash64(k, strlen(k), HASH_INIT) & (s->cap - 1);
    while (s->slots[i])
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = c;
    s->n++;
    return 1;
}

void bti_strset_free(struct strset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ */
/* BTF -> ISF                                                          */

void bti_jstr(FILE *o, const char *s)
{
    putc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(o, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(o, "\\u%04x", *p);
        else
            putc(*p, o);
    }
    putc('"', o);
}

/* Through const/volatile/restrict/type tags. */
static uint32_t skip_mods(const struct gen *g, uint32_t id)
{
    for (int i = 0; i < 32; i++) {
        const struct btf_type *t = T(g, id);
        if (!t || !(btf_is_mod(t) || btf_is_type_tag(t)))
            return id;
        id = t->type;
    }
    return 0;
}

/* Through modifiers and typedefs. */
uint32_t bti_skip_typedefs(const struct gen *g, uint32_t id)
{
    for (int i = 0; i < 64; i++) {
        id = skip_mods(g, id);
        const struct btf_type *t = T(g, id);
        if (!t || !btf_is_typedef(t))
            return id;
        id = t->type;
    }
    return 0;
}

const char *bti_int_name_for(unsigned size, bool is_signed)
{
    switch (size) {
    case 1: return is_signed ? "signed char" : "unsigned char";
    case 2: return is_signed ? "short int" : "short unsigned int";
    case 8: return is_signed ? "long int" : "long unsigned int";
    default: return is_signed ? "int" : "unsigned int";
    }
}

static void wdesc_named(struct gen *g, const char *kind, const char *name)
{
    fprintf(g->o, "{\"kind\": \"%s\", \"name\": ", kind);
    bti_jstr(g->o, name);
    putc('}', g->o);
}

static const char *ref_kind_name(uint8_t k)
{
    k &= 0x7f;                  /* without the "duplicate" mark */
    return k == BTF_KIND_UNION ? "union" : k == BTF_KIND_ENUM ? "enum" : "struct";
}

void bti_wdesc(struct gen *g, uint32_t id, int depth)
{
    id = skip_mods(g, id);
    const struct btf_type *t = T(g, id);
    /* Real types nest a few levels (a pointer to an array of pointers);
     * only a damaged BTF goes deeper (a pointer cycle), and the ISF loader
     * takes entries nested at most 32 deep. */
    if (!t || depth > 16) {
        wdesc_named(g, "base", "void");
        return;
    }
    switch (btf_kind(t)) {
    case BTF_KIND_INT:
    case BTF_KIND_FLOAT: {
        const char *nm = NAME(g, t);
        wdesc_named(g, "base", *nm ? nm : bti_int_name_for(t->size, true));
        return;
    }
    case BTF_KIND_PTR:
        fputs("{\"kind\": \"pointer\", \"subtype\": ", g->o);
        bti_wdesc(g, t->type, depth + 1);
        putc('}', g->o);
        return;
    case BTF_KIND_ARRAY: {
        const struct btf_array *a = btf_array(t);
        fprintf(g->o, "{\"count\": %u, \"kind\": \"array\", \"subtype\": ",
                a->nelems);
        bti_wdesc(g, a->type, depth + 1);
        putc('}', g->o);
        return;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
    case BTF_KIND_TYPEDEF:
        if (g->ref[id]) {
            wdesc_named(g, ref_kind_name(g->ref_kind[id]), g->ref[id]);
            return;
        }
        if (btf_is_typedef(t)) {
            bti_wdesc(g, t->type, depth + 1);
            return;
        }
        wdesc_named(g, "base", "void");     /* unnamed and unlisted: cannot be */
        return;
    case BTF_KIND_FWD:
        wdesc_named(g, btf_kflag(t) ? "union" : "struct", NAME(g, t));
        return;
    case BTF_KIND_FUNC_PROTO:
    case BTF_KIND_FUNC:
        fputs("{\"kind\": \"function\"}", g->o);
        return;
    default:
        wdesc_named(g, "base", "void");
        return;
    }
}

/* The storage type of a bitfield: a base type or an enum (the schema
 * allows only those), wide enough for bit_position + bit_length. */
static void wbitfield_type(struct gen *g, uint32_t id, unsigned bits_needed)
{
    for (int i = 0; i < 64; i++) {
        id = skip_mods(g, id);
        const struct btf_type *t = T(g, id);
        if (!t)
            break;
        if (btf_is_typedef(t) && g->ref[id] && g->ref_kind[id] == BTF_KIND_ENUM) {
            wdesc_named(g, "enum", g->ref[id]);
            return;
        }
        if (btf_is_typedef(t)) {
            id = t->type;
            continue;
        }
        if (btf_is_any_enum(t) && g->ref[id] && t->size * 8u >= bits_needed) {
            wdesc_named(g, "enum", g->ref[id]);
            return;
        }
        if (btf_is_int(t) && t->size * 8u >= bits_needed && *NAME(g, t)) {
            wdesc_named(g, "base", NAME(g, t));
            return;
        }
        if (btf_is_int(t) || btf_is_any_enum(t)) {
            /* Too narrow for where the bits sit: a wider int of the same
             * signedness. */
            bool sg = btf_is_int(t) && (btf_int_encoding(t) & BTF_INT_SIGNED);
            unsigned sz = t->size ? t->size : 1;
            while (sz * 8 < bits_needed && sz < 8)
                sz *= 2;
            wdesc_named(g, "base", bti_int_name_for(sz, sg));
            return;
        }
        break;
    }
    wdesc_named(g, "base", bti_int_name_for(bits_needed > 32 ? 8 : 4, false));
}

/* The fields of struct/union `id` as an ISF user type named `name`. */
void bti_wcomposite(struct gen *g, uint32_t id, const char *name, bool *first)
{
    const struct btf_type *t = T(g, id);
    fputs(*first ? "\n  " : ",\n  ", g->o);
    *first = false;
    bti_jstr(g->o, name);
    fputs(": {\"fields\": {", g->o);
    const struct btf_member *m = btf_members(t);
    unsigned anon = 0;
    bool f1 = true;
    for (unsigned i = 0; i < btf_vlen(t); i++) {
        const char *mn = btf__name_by_offset(g->btf, m[i].name_off);
        uint32_t boff = btf_member_bit_offset(t, i);
        uint32_t bsz = btf_member_bitfield_size(t, i);
        uint32_t mt = skip_mods(g, m[i].type);
        const struct btf_type *mtt = T(g, mt);
        char anon_name[32];
        bool is_anon = false;
        if (!mn || !*mn) {
            uint32_t inner = bti_skip_typedefs(g, m[i].type);
            const struct btf_type *it = T(g, inner);
            if (!it || !btf_is_composite(it))
                continue;       /* unnamed padding bitfield */
            snprintf(anon_name, sizeof anon_name, "unnamed_field_%u", anon++);
            mn = anon_name;
            is_anon = true;
        }
        /* Old-style BTF (kflag 0): an int member narrower than its type. */
        if (!bsz && mtt && btf_is_int(mtt) &&
            (btf_int_bits(mtt) != mtt->size * 8 || btf_int_offset(mtt))) {
            boff += btf_int_offset(mtt);
            bsz = btf_int_bits(mtt);
        }
        fputs(f1 ? "" : ", ", g->o);
        f1 = false;
        bti_jstr(g->o, mn);
        if (bsz) {
            unsigned pos = boff % 8;
            fprintf(g->o, ": {\"offset\": %u, \"type\": {\"bit_length\": %u, "
                    "\"bit_position\": %u, \"kind\": \"bitfield\", \"type\": ",
                    boff / 8, bsz, pos);
            wbitfield_type(g, m[i].type, pos + bsz);
            fputs("}}", g->o);
        } else {
            fprintf(g->o, ": {%s\"offset\": %u, \"type\": ",
                    is_anon ? "\"anonymous\": true, " : "", boff / 8);
            bti_wdesc(g, m[i].type, 0);
            putc('}', g->o);
        }
    }
    fprintf(g->o, "}, \"kind\": \"%s\", \"size\": %u}",
            btf_is_union(t) ? "union" : "struct", t->size);
}

void bti_wenum(struct gen *g, uint32_t id, const char *name, bool *first)
{
    const struct btf_type *t = T(g, id);
    bool sg = btf_kflag(t);
    unsigned vlen = btf_vlen(t);
    /* BTF from pahole >= 1.24 flags signed enums (kflag), and then a
     * "negative" 32-bit value of an unflagged enum is a large unsigned one
     * (0xefffffff).  Older BTF has no flag: a negative value then means a
     * signed enum, as the compiler would have made it. */
    if (!sg && !g->enum_signedness && btf_is_enum(t))
        for (unsigned i = 0; i < vlen; i++)
            if (btf_enum(t)[i].val < 0)
                sg = true;
    fputs(*first ? "\n  " : ",\n  ", g->o);
    *first = false;
    bti_jstr(g->o, name);
    fprintf(g->o, ": {\"base\": \"%s\", \"constants\": {",
            bti_int_name_for(t->size, sg));
    bool c1 = true;
    for (unsigned i = 0; i < vlen; i++) {
        const char *cn;
        if (btf_is_enum(t)) {
            const struct btf_enum *e = &btf_enum(t)[i];
            cn = btf__name_by_offset(g->btf, e->name_off);
            if (!cn || !*cn)
                continue;
            fputs(c1 ? "" : ", ", g->o);
            c1 = false;
            bti_jstr(g->o, cn);
            if (sg)
                fprintf(g->o, ": %d", e->val);
            else
                fprintf(g->o, ": %u", (uint32_t)e->val);
        } else {
            const struct btf_enum64 *e = &btf_enum64(t)[i];
            cn = btf__name_by_offset(g->btf, e->name_off);
            if (!cn || !*cn)
                continue;
            fputs(c1 ? "" : ", ", g->o);
            c1 = false;
            bti_jstr(g->o, cn);
            uint64_t v = btf_enum64_value(e);
            if (sg)
                fprintf(g->o, ": %lld", (long long)(int64_t)v);
            else
                fprintf(g->o, ": %llu", (unsigned long long)v);
        }
    }
    fprintf(g->o, "}, \"size\": %u}", t->size);
}

/* "unnamed_<16 hex>" for an anonymous type, stable for a given BTF. */
static char *unnamed(const struct gen *g, uint32_t id)
{
    const struct btf_type *t = T(g, id);
    uint64_t h = bti_hash64(&id, sizeof id, HASH_INIT);
    uint32_t kv[2] = {t->info, t->size};
    h = bti_hash64(kv, sizeof kv, h);
    if (btf_is_composite(t)) {
        const struct btf_member *m = btf_members(t);
        for (unsigned i = 0; i < btf_vlen(t); i++) {
            const char *mn = btf__name_by_offset(g->btf, m[i].name_off);
            if (mn)
                h = bti_hash64(mn, strlen(mn) + 1, h);
            h = bti_hash64(&m[i].offset, sizeof m[i].offset, h);
        }
    }
    char *s = malloc(32);
    if (s)
        snprintf(s, 32, "unnamed_%016llx", (unsigned long long)h);
    return s;
}

/* Decide the ISF name of every struct, union, enum and of the typedefs
 * that get a copy, in the order they are written. */
int bti_plan_names(struct gen *g)
{
    /* 1. named structs/unions, 2. named enums: first of a name wins. */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!*nm || !(btf_is_composite(t) || btf_is_any_enum(t)))
            continue;
        struct strset *set = btf_is_composite(t) ? &g->ut : &g->en;
        int r = bti_strset_add(set, nm);
        if (r < 0)
            return -1;
        if (r == 0) {
            g->st.name_clashes++;
            /* References by name reach the first definition. */
        }
        if (!(g->ref[id] = strdup(nm)))
            return -1;
        g->ref_kind[id] = btf_is_union(t) ? BTF_KIND_UNION
                          : btf_is_composite(t) ? BTF_KIND_STRUCT : BTF_KIND_ENUM;
        if (r == 0)
            g->ref_kind[id] |= 0x80;        /* not written: a duplicate */
    }
    /* 3. anonymous ones. */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        if (*NAME(g, t) || !(btf_is_composite(t) || btf_is_any_enum(t)))
            continue;
        char *nm = unnamed(g, id);
        if (!nm)
            return -1;
        struct strset *set = btf_is_composite(t) ? &g->ut : &g->en;
        if (bti_strset_add(set, nm) != 1) {
            /* A hash clash: fall back on the id, unique by construction. */
            snprintf(nm, 32, "unnamed_btf_%u", id);
            if (bti_strset_add(set, nm) < 0) {
                free(nm);
                return -1;
            }
        }
        g->ref[id] = nm;
        g->ref_kind[id] = btf_is_union(t) ? BTF_KIND_UNION
                          : btf_is_composite(t) ? BTF_KIND_STRUCT : BTF_KIND_ENUM;
    }
    /* 4. typedefs of structs/unions/enums: a copy under the typedef's name,
     * unless the name is taken (typedef struct foo foo: the same thing). */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!btf_is_typedef(t) || !*nm)
            continue;
        /* Only a typedef of the struct itself: one of another typedef
         * (atomic_long_t of atomic64_t) refers to that one, as in
         * dwarf2json's profiles. */
        uint32_t target = skip_mods(g, t->type);
        const struct btf_type *tt = T(g, target);
        if (!tt || !(btf_is_composite(tt) || btf_is_any_enum(tt)))
            continue;
        struct strset *set = btf_is_composite(tt) ? &g->ut : &g->en;
        int r = bti_strset_add(set, nm);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (!g->ref[target] || strcmp(g->ref[target], nm) != 0)
                g->st.name_clashes++;
            continue;           /* references go to the target's name */
        }
        if (!(g->ref[id] = strdup(nm)))
            return -1;
        g->ref_kind[id] = btf_is_union(tt) ? BTF_KIND_UNION
                          : btf_is_composite(tt) ? BTF_KIND_STRUCT : BTF_KIND_ENUM;
    }
    return 0;
}

#endif /* BTF_ISF_BUILD */
