/*
 * isf_load.c - the ISF loader (see isf_internal.h): each entry of the
 * base_types, user_types, enums and symbols sections, parsed by json-c,
 * checked and converted into the store; metadata; the document itself
 * (decompressed when it is .xz or .gz, its shape and format checked); a
 * file or a buffer loaded; the banner of a buffer.
 */
#include "core/util/file.h"
#include "core/profile/isf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/decompress.h"

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
    uint32_t id = isfi_intern(L->f, p, n);
    if (id == NONE)
        isfi_fail(L, "out of memory");
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
    isfi_clean(w, sizeof w, where);
    if (depth > 64) {
        isfi_fail(L, "%s: type descriptor nested too deep", w);
        return -1;
    }
    if (!json_object_is_type(o, json_type_object)) {
        isfi_fail(L, "%s: type descriptor is not an object", w);
        return -1;
    }
    const char *ks = get_str(o, "kind");
    if (!ks) {
        isfi_fail(L, "%s: type descriptor without a \"kind\" string", w);
        return -1;
    }
    struct desc d = {.name = NONE, .sub = NONE};
    d.kind = (uint8_t)kind_of(ks);
    json_object *v;
    switch ((enum isf_kind)d.kind) {
    case ISF_KIND_UNKNOWN: {
        char k[40];
        isfi_clean(k, sizeof k, ks);
        isfi_fail(L, "%s: unknown type kind \"%s\"", w, k);
        return -1;
    }
    case ISF_KIND_BASE:
    case ISF_KIND_STRUCT:
    case ISF_KIND_UNION:
    case ISF_KIND_CLASS:
    case ISF_KIND_ENUM:
        if (!json_object_object_get_ex(o, "name", &v) || !v ||
            !json_object_is_type(v, json_type_string)) {
            isfi_fail(L, "%s: %s type without a \"name\" string", w, ks);
            return -1;
        }
        d.name = intern_json(L, v);
        if (d.name == NONE)
            return -1;
        if (d.name == NONE - 1) {
            isfi_fail(L, "%s: type name contains a NUL character", w);
            return -1;
        }
        break;
    case ISF_KIND_POINTER:
    case ISF_KIND_ARRAY:
        if (!json_object_object_get_ex(o, "subtype", &v) || !v) {
            isfi_fail(L, "%s: %s without a \"subtype\"", w, ks);
            return -1;
        }
        if (conv_desc(L, v, &d.sub, where, depth + 1) != 0)
            return -1;
        if (d.kind == ISF_KIND_ARRAY && get_u64(o, "count", &d.count) != 0) {
            isfi_fail(L, "%s: array without an unsigned integer \"count\"", w);
            return -1;
        }
        break;
    case ISF_KIND_BITFIELD: {
        uint64_t bp, bl;
        if (!json_object_object_get_ex(o, "type", &v) || !v) {
            isfi_fail(L, "%s: bitfield without a \"type\"", w);
            return -1;
        }
        if (conv_desc(L, v, &d.sub, where, depth + 1) != 0)
            return -1;
        if (get_u64(o, "bit_position", &bp) != 0 ||
            get_u64(o, "bit_length", &bl) != 0 || bp > 65535 || bl > 65535) {
            isfi_fail(L, "%s: bitfield without a valid \"bit_position\" and "
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
    *out = isfi_desc_intern(L->f, &d);
    if (*out == NONE) {
        isfi_fail(L, "out of memory");
        return -1;
    }
    return 0;
}

/* Intern L->key; NONE after a failure. */
static uint32_t key_id(struct loader *L)
{
    uint32_t id = isfi_intern(L->f, L->key, strlen(L->key));
    if (id == NONE)
        isfi_fail(L, "out of memory");
    return id;
}

static int on_base_type(struct loader *L, void *ctx)
{
    struct isf *f = L->f;
    json_object *o = isfi_take_object(L, "base_types");
    if (!o)
        return -1;
    char k[80], where[128];
    isfi_clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "base_types \"%s\"", k);
    struct btype bt = {0};
    const char *kind = get_str(o, "kind");
    const char *endian = get_str(o, "endian");
    json_object *sg;
    int rc = -1;
    if (get_u64(o, "size", &bt.size) != 0)
        isfi_fail(L, "%s: no unsigned integer \"size\"", where);
    else if (!kind || (strcmp(kind, "int") && strcmp(kind, "char") &&
                       strcmp(kind, "bool") && strcmp(kind, "float") &&
                       strcmp(kind, "void")))
        isfi_fail(L, "%s: \"kind\" is not one of void, int, float, char, bool",
             where);
    else if (has(o, "endian") && (!endian || (strcmp(endian, "little") &&
                                              strcmp(endian, "big"))))
        isfi_fail(L, "%s: \"endian\" is not \"little\" or \"big\"", where);
    else if (json_object_object_get_ex(o, "signed", &sg) && sg &&
             !json_object_is_type(sg, json_type_boolean))
        isfi_fail(L, "%s: \"signed\" is not a boolean", where);
    else if ((bt.name = key_id(L)) == NONE)
        ;
    else if (RESERVE(f->btypes, f->nbtypes, f->btypes_cap) ||
             isfi_idmap_put(&f->btype_map, bt.name, (uint32_t)f->nbtypes))
        isfi_fail(L, "out of memory");
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
    json_object *o = isfi_take_object(L, "user_types");
    if (!o)
        return -1;
    char k[80], where[160];
    isfi_clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "user_types \"%s\"", k);
    struct utype ut = {.first_field = (uint32_t)f->nfields};
    const char *kind = get_str(o, "kind");
    json_object *fields;
    int rc = -1;
    if (!kind || !(ut.kind = (uint8_t)kind_of(kind)) ||
        (ut.kind != ISF_KIND_STRUCT && ut.kind != ISF_KIND_UNION &&
         ut.kind != ISF_KIND_CLASS)) {
        isfi_fail(L, "%s: \"kind\" is not struct, union or class", where);
        goto out;
    }
    if (get_u64(o, "size", &ut.size) != 0) {
        isfi_fail(L, "%s: no unsigned integer \"size\"", where);
        goto out;
    }
    if (!json_object_object_get_ex(o, "fields", &fields) || !fields ||
        !json_object_is_type(fields, json_type_object)) {
        isfi_fail(L, "%s: no \"fields\" object", where);
        goto out;
    }
    if ((ut.name = key_id(L)) == NONE)
        goto out;
    json_object_object_foreach(fields, fname, fval)
    {
        char fn[64], fwhere[256];
        isfi_clean(fn, sizeof fn, fname);
        snprintf(fwhere, sizeof fwhere, "%s field \"%s\"", where, fn);
        struct field fd = {0};
        json_object *t, *an;
        if (!fval || !json_object_is_type(fval, json_type_object)) {
            isfi_fail(L, "%s: not an object", fwhere);
            goto out;
        }
        if (get_u64(fval, "offset", &fd.offset) != 0) {
            isfi_fail(L, "%s: no unsigned integer \"offset\"", fwhere);
            goto out;
        }
        if (!json_object_object_get_ex(fval, "type", &t) || !t) {
            isfi_fail(L, "%s: no \"type\"", fwhere);
            goto out;
        }
        if (conv_desc(L, t, &fd.desc, fwhere, 0) != 0)
            goto out;
        if (json_object_object_get_ex(fval, "anonymous", &an) && an) {
            if (!json_object_is_type(an, json_type_boolean)) {
                isfi_fail(L, "%s: \"anonymous\" is not a boolean", fwhere);
                goto out;
            }
            fd.anonymous = json_object_get_boolean(an) ? 1 : 0;
        }
        /* json-c keys hold no NUL: they come from the tokener's strings
         * only when the name had none (checked below by length). */
        fd.name = isfi_intern(f, fname, strlen(fname));
        if (fd.name == NONE || f->nfields >= NONE - 1 ||
            RESERVE(f->fields, f->nfields, f->fields_cap)) {
            isfi_fail(L, "out of memory");
            goto out;
        }
        f->fields[f->nfields++] = fd;
    }
    ut.nfields = (uint32_t)(f->nfields - ut.first_field);
    if (f->nutypes >= NONE - 1 || RESERVE(f->utypes, f->nutypes, f->utypes_cap) ||
        isfi_idmap_put(&f->utype_map, ut.name, (uint32_t)f->nutypes)) {
        isfi_fail(L, "out of memory");
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
    json_object *o = isfi_take_object(L, "enums");
    if (!o)
        return -1;
    char k[80], where[128];
    isfi_clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "enums \"%s\"", k);
    struct enumt en = {.first = (uint32_t)f->nconsts};
    json_object *cs, *base;
    int rc = -1;
    if (get_u64(o, "size", &en.size) != 0) {
        isfi_fail(L, "%s: no unsigned integer \"size\"", where);
        goto out;
    }
    if (!json_object_object_get_ex(o, "base", &base) || !base ||
        !json_object_is_type(base, json_type_string)) {
        isfi_fail(L, "%s: no \"base\" string", where);
        goto out;
    }
    if ((en.base = intern_json(L, base)) >= NONE - 1) {
        if (en.base == NONE - 1)
            isfi_fail(L, "%s: \"base\" contains a NUL character", where);
        goto out;
    }
    if (!json_object_object_get_ex(o, "constants", &cs) || !cs ||
        !json_object_is_type(cs, json_type_object)) {
        isfi_fail(L, "%s: no \"constants\" object", where);
        goto out;
    }
    if ((en.name = key_id(L)) == NONE)
        goto out;
    json_object_object_foreach(cs, cname, cval)
    {
        struct econst c;
        if (!cval || !json_object_is_type(cval, json_type_int)) {
            char cn[64];
            isfi_clean(cn, sizeof cn, cname);
            isfi_fail(L, "%s: constant \"%s\" is not an integer", where, cn);
            goto out;
        }
        int64_t sv = json_object_get_int64(cval);
        c.value = sv < 0 ? sv : (int64_t)json_object_get_uint64(cval);
        c.name = isfi_intern(f, cname, strlen(cname));
        if (c.name == NONE || f->nconsts >= NONE - 1 ||
            RESERVE(f->consts, f->nconsts, f->consts_cap)) {
            isfi_fail(L, "out of memory");
            goto out;
        }
        f->consts[f->nconsts++] = c;
    }
    en.n = (uint32_t)(f->nconsts - en.first);
    if (f->nenums >= NONE - 1 || RESERVE(f->enums, f->nenums, f->enums_cap) ||
        isfi_idmap_put(&f->enum_map, en.name, (uint32_t)f->nenums)) {
        isfi_fail(L, "out of memory");
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
        isfi_fail(L, "%s: \"constant_data\" is not a string", where);
        return -1;
    }
    char *b = b64_banner(json_object_get_string(cd),
                         (size_t)json_object_get_string_len(cd));
    if (!b) {
        isfi_fail(L, "%s: \"constant_data\" is not valid base64", where);
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
        return isfi_skip_value(L);
    json_object *o = isfi_take_object(L, "symbols");
    if (!o)
        return -1;
    char k[80], where[128];
    isfi_clean(k, sizeof k, L->key);
    snprintf(where, sizeof where, "symbols \"%s\"", k);
    struct sym s = {.desc = NONE};
    json_object *t;
    int rc = -1;
    if (get_u64(o, "address", &s.addr) != 0) {
        isfi_fail(L, "%s: no unsigned integer \"address\"", where);
        goto out;
    }
    if (is_banner && take_banner(L, o, where) != 0)
        goto out;
    if (L->banner_only) {
        rc = 1;                 /* found it: stop */
        goto out;
    }
    if (has(o, "constant_data") && !get_str(o, "constant_data")) {
        isfi_fail(L, "%s: \"constant_data\" is not a string", where);
        goto out;
    }
    if (json_object_object_get_ex(o, "type", &t) && t &&
        conv_desc(L, t, &s.desc, where, 0) != 0)
        goto out;
    if ((s.name = key_id(L)) == NONE)
        goto out;
    if (f->nsyms >= NONE - 1 || RESERVE(f->syms, f->nsyms, f->syms_cap) ||
        isfi_idmap_put(&f->sym_map, s.name, (uint32_t)f->nsyms)) {
        isfi_fail(L, "out of memory");
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
    json_object *o = isfi_take_object(L, "metadata");
    if (!o)
        return -1;
    int rc = -1;
    json_object *fmt;
    L->have_metadata = true;
    if (!json_object_object_get_ex(o, "format", &fmt) || !fmt ||
        !json_object_is_type(fmt, json_type_string)) {
        isfi_fail(L, "metadata: no \"format\" string");
    } else {
        uint32_t id = intern_json(L, fmt);
        if (id == NONE - 1)
            isfi_fail(L, "metadata: \"format\" contains a NUL character");
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
            return isfi_for_each_member(L, "symbols", on_symbol, NULL);
        }
        return isfi_skip_value(L);
    }
    if (strcmp(k, "metadata") == 0)
        return on_metadata(L);
    if (strcmp(k, "base_types") == 0)
        return isfi_for_each_member(L, "base_types", on_base_type, NULL) < 0 ? -1 : 0;
    if (strcmp(k, "user_types") == 0)
        return isfi_for_each_member(L, "user_types", on_user_type, NULL) < 0 ? -1 : 0;
    if (strcmp(k, "enums") == 0)
        return isfi_for_each_member(L, "enums", on_enum, NULL) < 0 ? -1 : 0;
    if (strcmp(k, "symbols") == 0)
        return isfi_for_each_member(L, "symbols", on_symbol, NULL) < 0 ? -1 : 0;
    return isfi_skip_value(L);       /* a later producer's addition */
}

/* Walk a decompressed document.  banner_only: stop at the banner. */
static struct isf *load_document(const char *doc, size_t len, const char *name,
                                 bool banner_only, char *err, size_t errlen)
{
    struct loader L = {.name = name, .err = err, .errlen = errlen, .doc = doc,
                       .len = len, .banner_only = banner_only};
    L.f = isfi_new();
    L.tok = json_tokener_new_ex(32);
    if (!L.f || !L.tok) {
        isfi_fail(&L, "out of memory");
        goto bad;
    }
    json_tokener_set_flags(L.tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    isfi_ws(&L);
    if (L.pos >= len || doc[L.pos] != '{') {
        isfi_fail(&L, "not an ISF: the document is not a JSON object");
        goto bad;
    }
    int r = isfi_for_each_member(&L, "document", on_top, NULL);
    if (r < 0)
        goto bad;
    if (banner_only) {
        if (!L.banner_found) {
            isfi_fail(&L, "no linux_banner constant_data: the profile does not "
                 "say which kernel it is for");
            goto bad;
        }
    } else {
        isfi_ws(&L);
        if (L.pos != len) {
            isfi_fail(&L, "JSON syntax error at byte %zu: data after the document",
                 L.pos);
            goto bad;
        }
        if (!L.have_metadata) {
            isfi_fail(&L, "not an ISF: no \"metadata\"");
            goto bad;
        }
        const char *fmt = isfi_str_of(L.f, L.f->format);
        char *end;
        errno = 0;
        long major = strtol(fmt, &end, 10);
        if (end == fmt || *end != '.' || major < 2 || errno) {
            char fc[40];
            isfi_clean(fc, sizeof fc, fmt);
            isfi_fail(&L, "unsupported ISF format \"%s\" (need 2.0.0 or later)", fc);
            goto bad;
        }
    }
    json_tokener_free(L.tok);
    free(L.key);
    if (!banner_only)
        isfi_shrink(L.f);
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
    struct stat st;
    int fd = vmem_open_regular(path, "an ISF", &st, err, errlen);
    if (fd < 0)
        return NULL;
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
