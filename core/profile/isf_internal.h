/*
 * isf_internal.h - what the pieces of the ISF profile code share, and
 * nobody else: the compact form of a loaded profile (struct isf), the
 * loader's state, and the helpers that cross files.  Not a public
 * interface: callers see isf.h only.
 *
 * The pieces, one concern each:
 *   isf.c          the store: interned names, hash-consed type descriptors,
 *                  id maps, the object's life, and the lookups of isf.h
 *                  (types, members, symbols, enums, stats)
 *   isf_scan.c     the scanner over the top level of the document: strings,
 *                  skipped values, members, one entry handed to json-c
 *   isf_load.c     the loader: each entry converted into the store, the
 *                  document (decompressed, checked), files and buffers, the
 *                  banner of a buffer
 *   isf_catalog.c  banners compared, a symbols directory's catalog, and
 *                  the profile found there by banner
 *   isf_banner.c   the banner of a file, streamed (isf_read_banner)
 *
 * The document is never held as one json-c tree (a kernel profile would
 * cost ~500 MB that way).  A small scanner walks the top-level object and
 * the four big sections, finds the byte span of each entry, and json-c
 * parses and validates that one entry, which is converted and dropped
 * before the next.  Names are interned into one arena, addressed by 32-bit
 * offsets; type descriptors are hash-consed, so the tens of thousands of
 * {"kind": "base", "name": "int"} in a kernel profile are stored once.
 */
#ifndef VMEMFS_CORE_PROFILE_ISF_INTERNAL_H
#define VMEMFS_CORE_PROFILE_ISF_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/profile/isf.h"
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

/* One message line: vmem_errf (core/util/log.h). */
#define say vmem_errf

/* Make room for one more element of array `a` holding `n` of capacity `cap`:
 * evaluates to 0 on success, -1 on ENOMEM (array unchanged). */
#define RESERVE(a, n, cap)                                                   \
    __extension__({                                                          \
        void *q_ = isfi_grow((a), &(cap), (n) + 1, sizeof *(a));             \
        int r_ = -1;                                                         \
        if (q_) {                                                            \
            (a) = q_;                                                        \
            r_ = 0;                                                          \
        }                                                                    \
        r_;                                                                  \
    })

/* The store (isf.c). */
void *isfi_grow(void *p, size_t *cap, size_t need, size_t elsz);
const char *isfi_str_of(const struct isf *f, uint32_t id);
uint32_t isfi_find_str(const struct isf *f, const char *s, size_t n);
uint32_t isfi_intern(struct isf *f, const char *s, size_t n);
int isfi_idmap_put(struct idmap *m, uint32_t key, uint32_t val);
uint32_t isfi_desc_intern(struct isf *f, const struct desc *d);
struct isf *isfi_new(void);
void isfi_shrink(struct isf *f);

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

/* The scanner (isf_scan.c). */
void isfi_clean(char *dst, size_t dstlen, const char *s);
void isfi_fail(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void isfi_ws(struct loader *L);
int isfi_skip_value(struct loader *L);
json_object *isfi_take_object(struct loader *L, const char *what);
int isfi_for_each_member(struct loader *L, const char *what,
                         int (*fn)(struct loader *, void *), void *ctx);

#endif
