/*
 * btf_isf_internal.h - what the pieces of the BTF -> ISF code share, and
 * nobody else: the symbol list, the generator's state, the helpers that
 * cross files.  Not a public interface: callers see btf_isf.h only.
 *
 * The pieces, one concern each:
 *   btf_isf.c        the conversion of types: names planned, descriptors,
 *                    structs, unions and enums written as ISF
 *   btf_isf_write.c  the document: symbol types (BTF's VARs and the
 *                    well-known globals BTF does not describe), base types,
 *                    metadata, and the public writers
 *   kimage.c         kernel images: raw BTF, ELF vmlinux, bzImage and
 *                    compressed payloads (core/util/decompress.h), the banner
 *   ksyms_text.c     symbol text: System.map and /proc/kallsyms parsed into
 *                    a symbol list
 *
 * Built only where libbpf's headers are (Debian: libbpf-dev): every piece
 * is empty without BTF_ISF_BUILD; its users must then link libbpf (and
 * through it libelf).  Unused, it costs nothing.
 */
#ifndef VMEMFS_CORE_PROFILE_BTF_ISF_INTERNAL_H
#define VMEMFS_CORE_PROFILE_BTF_ISF_INTERNAL_H

#if defined(__has_include)
#if __has_include(<bpf/btf.h>)
#define BTF_ISF_BUILD 1
#endif
#endif

#ifdef BTF_ISF_BUILD

#include "core/profile/btf_isf.h"

#include "core/util/bytes.h"
#include "core/util/decompress.h"
#include "core/util/log.h"
#include "core/util/version.h"
#include "core/profile/isf.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A decompressed kernel is ~50-100 MB; refuse anything absurd. */
#define MAX_IMAGE ((size_t)1 << 30)

#define HASH_INIT 14695981039346656037ull

/* Shared helpers (btf_isf.c). */
void bti_say(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t bti_hash64(const void *p, size_t n, uint64_t h);

/* ------------------------------------------------------------------ */
/* Symbol lists (ksyms_text.c)                                         */

struct bsym {
    char *name;
    uint64_t addr;
    char type;
};

struct btf_isf_symbols {
    struct bsym *v;
    size_t n, cap;
    uint32_t *index;            /* open addressing over v; UINT32_MAX empty */
    size_t index_cap;
};

const struct bsym *bti_sym_find(const struct btf_isf_symbols *s,
                                const char *name);
void *bti_read_whole(const char *path, size_t max, size_t *len, char *err,
                     size_t errlen);

/* ------------------------------------------------------------------ */
/* BTF -> ISF (btf_isf.c, btf_isf_write.c)                             */

/* A set of strings (names already used in one ISF section). */
struct strset {
    char **slots;
    size_t cap, n;
};

struct gen {
    const struct btf *btf;
    FILE *o;
    uint32_t n;                 /* type count (ids 1..n-1) */
    char **ref;                 /* per id: the ISF name a reference uses */
    uint8_t *ref_kind;          /* per id: BTF_KIND_STRUCT/UNION/ENUM of ref */
    struct strset ut, en, bt;   /* names taken in user_types, enums, base */
    struct btf_isf_stats st;
    int32_t *var_type;          /* per symbol index: BTF type of a VAR, or 0 */
    bool enum_signedness;       /* some enum has kflag: BTF records signs */
    uint64_t *sorted;           /* symbol addresses, sorted, made on demand */
};

static inline const struct btf_type *T(const struct gen *g, uint32_t id)
{
    return id && id < g->n ? btf__type_by_id(g->btf, id) : NULL;
}

static inline const char *NAME(const struct gen *g, const struct btf_type *t)
{
    const char *s = t ? btf__name_by_offset(g->btf, t->name_off) : NULL;
    return s ? s : "";
}

bool bti_strset_has(const struct strset *s, const char *k);
int bti_strset_add(struct strset *s, const char *k);
void bti_strset_free(struct strset *s);
void bti_jstr(FILE *o, const char *s);
uint32_t bti_skip_typedefs(const struct gen *g, uint32_t id);
const char *bti_int_name_for(unsigned size, bool is_signed);
void bti_wdesc(struct gen *g, uint32_t id, int depth);
void bti_wcomposite(struct gen *g, uint32_t id, const char *name, bool *first);
void bti_wenum(struct gen *g, uint32_t id, const char *name, bool *first);
int bti_plan_names(struct gen *g);

#endif /* BTF_ISF_BUILD */
#endif
