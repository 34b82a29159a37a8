/*
 * isf.h - kernel profiles in Volatility 3's Intermediate Symbol Format (ISF).
 *
 * An ISF is one JSON document (plain, xz- or gzip-compressed) with five
 * sections: metadata, base_types, user_types (structs and unions with their
 * fields), enums and symbols.  This module reads one into a compact,
 * immutable in-memory form - interned names, hash indexes, type descriptors
 * shared between fields - and answers the questions the guest-OS walkers
 * ask: where is symbol S, how big is type T, at what offset is member M of T.
 * The JSON tree is never kept: each entry of a section is parsed (json-c) and
 * converted on its own, so a 35 MB profile costs tens of MB, not hundreds.
 *
 * Input is untrusted: a malformed file gives NULL and one error line naming
 * the file and what is wrong with it, never a crash.  What is checked is the
 * shape this module relies on (the schema of ISF 6.x: every entry an object,
 * kinds known, offsets and sizes unsigned integers, names free of NUL bytes);
 * references to types that the file does not define are not errors (they
 * are legal in ISF; lookups through them report "unknown").  Unknown keys are
 * ignored, for files written by later producers.
 *
 * Threads: a loaded struct isf is immutable; every lookup may run from any
 * number of threads at once.  Strings returned point into the struct isf and
 * live until isf_free.
 */
#ifndef VMEMFS_CORE_ISF_H
#define VMEMFS_CORE_ISF_H

#include <stddef.h>
#include <stdint.h>

struct isf;

/* Decompressed documents larger than this are refused (a decompression bomb
 * must not take the daemon's memory).  Real kernel profiles are ~40 MB. */
#define ISF_MAX_DOCUMENT_SIZE ((size_t)1 << 30)

/* Load the ISF in file `path`.  The compression is recognised by content,
 * not by name: xz, gzip, or none.  On failure: NULL, and when err is not
 * NULL one line (no newline) "PATH: what failed" in err[errlen]. */
struct isf *isf_load(const char *path, char *err, size_t errlen);

/* Same from a buffer in memory (plain, xz or gzip), which is only read and
 * may be freed after the call.  `name` names the buffer in error messages
 * (NULL: "ISF buffer"). */
struct isf *isf_load_buffer(const void *data, size_t len, const char *name,
                            char *err, size_t errlen);

/* Free everything; NULL is fine. */
void isf_free(struct isf *isf);

/* The address of symbol `name` (its "address" as written: a link-time
 * address for kernel profiles, before any KASLR shift).  0 and *addr set
 * when found; -1 (and *addr untouched) when the profile has no such
 * symbol. */
int isf_symbol(const struct isf *isf, const char *name, uint64_t *addr);

/* The size in bytes of a type: a user type (struct/union/class), else a base
 * type ("int", "pointer", ...), else an enum.  `type` may carry a "struct ",
 * "union " or "enum " prefix, which then also restricts the lookup to that
 * kind.  0 when found; -1 when unknown. */
int isf_type_size(const struct isf *isf, const char *type, uint64_t *size);

/* What a member (or a symbol's type) is. */
enum isf_kind {
    ISF_KIND_UNKNOWN = 0,
    ISF_KIND_BASE,          /* a base type: int, char, pointer, void, ... */
    ISF_KIND_POINTER,
    ISF_KIND_ARRAY,
    ISF_KIND_STRUCT,
    ISF_KIND_UNION,
    ISF_KIND_CLASS,
    ISF_KIND_ENUM,
    ISF_KIND_FUNCTION,
    ISF_KIND_BITFIELD,
};

/* A type descriptor, flattened one level. */
struct isf_member_info {
    enum isf_kind kind;
    /* base/struct/union/class/enum: the type's name.  bitfield: the name of
     * the storage type (a base type or an enum).  pointer/array: the name of
     * the pointed-to / element type when that is named (NULL when it is
     * itself a pointer, array or function).  function: NULL. */
    const char *type_name;
    /* pointer/array: the kind of the pointed-to / element type.  bitfield:
     * the kind of the storage type.  Otherwise equal to kind. */
    enum isf_kind target_kind;
    /* The member's size in bytes: a pointer's is the "pointer" base type's
     * (8 when the profile does not say); an array's is count x element size;
     * a bitfield's is its storage type's.  0 when not known (an undefined
     * type, a function, void). */
    uint64_t size;
    /* pointer/array: the size of one pointed-to / element object (0 when
     * not known). */
    uint64_t target_size;
    uint64_t count;             /* array: element count (0 for "[]") */
    unsigned bit_position;      /* bitfield: first bit within the storage */
    unsigned bit_length;        /* bitfield: number of bits */
    int anonymous;              /* the member is an anonymous struct/union */
};

/* The byte offset of `member` within user type `type` ("struct "/"union "
 * prefix allowed).  Members of anonymous structs and unions are found as if
 * they were members of the enclosing type, with their offsets added up (the
 * way Volatility flattens them).  `member` may be a dotted path through
 * embedded, non-pointer struct/union members ("se.vruntime",
 * "mm_mt.ma_root"), offsets adding up.  0 when found, with *offset set and,
 * when info is not NULL, *info describing the (last) member; -1 when the
 * type or member is unknown (nothing written). */
int isf_member(const struct isf *isf, const char *type, const char *member,
               uint64_t *offset, struct isf_member_info *info);

/* The type of symbol `name` as a descriptor (kind ISF_KIND_UNKNOWN when the
 * profile gives none).  0 when the symbol exists, -1 otherwise. */
int isf_symbol_type(const struct isf *isf, const char *name,
                    struct isf_member_info *info);

/* The value of constant `constant` of enum `enum_name`.  Values above
 * INT64_MAX (64-bit unsigned enums) come back as their two's complement bit
 * pattern.  0 when found, -1 otherwise. */
int isf_enum_value(const struct isf *isf, const char *enum_name,
                   const char *constant, int64_t *value);

/* The kernel banner the profile is for: the decoded "constant_data" of the
 * linux_banner symbol, as stored up to its first NUL byte (normally
 * "Linux version ...\n", with the newline).  NULL when the profile carries
 * none. */
const char *isf_banner(const struct isf *isf);

/* metadata.format, e.g. "6.2.0" (never NULL; "" when absent). */
const char *isf_format(const struct isf *isf);

struct isf_stats {
    size_t base_types, user_types, fields, enums, symbols;
    size_t descriptors;     /* distinct type descriptors after sharing */
    size_t bytes;           /* memory held by the struct isf */
};
void isf_get_stats(const struct isf *isf, struct isf_stats *out);

/* Compare two banners the way a profile is matched to a kernel: equal when
 * they are the same bytes once trailing NULs, newlines and spaces are
 * removed from both (memory holds "...\n\0", /proc/version "...\n", a
 * shell variable neither).  Returns 1 when equal. */
int isf_banner_equal(const char *a, const char *b);

/* Read just the banner of the ISF in `path` (decompressing it, but without
 * converting the document): a malloc'd string the caller frees, or NULL
 * (err set; an ISF without a banner is an error here). */
char *isf_read_banner(const char *path, char *err, size_t errlen);
/* Same from a buffer (plain, xz or gzip); `name` as for isf_load_buffer. */
char *isf_banner_of_buffer(const void *data, size_t len, const char *name,
                           char *err, size_t errlen);

/* The ISF files of a symbols directory and their banners: `dir` and its
 * subdirectories (to depth 16), regular files named *.json, *.json.xz or
 * *.json.gz (links to files followed, to directories not), in name order,
 * at most ISF_CATALOG_MAX.  Only banners are read.  An entry whose banner
 * could not be read has banner NULL. */
#define ISF_CATALOG_MAX 4096
struct isf_catalog_entry {
    char *path;
    char *banner;
};
struct isf_catalog {
    struct isf_catalog_entry *entry;
    size_t n, cap;
};
/* 0, or -1 with err set when dir is not a directory. */
int isf_catalog_load(struct isf_catalog *c, const char *dir, char *err,
                     size_t errlen);
/* The path of the first entry whose banner equals `banner`, or NULL. */
const char *isf_catalog_find(const struct isf_catalog *c, const char *banner);
void isf_catalog_free(struct isf_catalog *c);

/* Find, in `dir` and its subdirectories (Volatility's symbols directory, or
 * its linux/ folder, works as is), the ISF whose banner equals `banner`
 * (isf_banner_equal) and load it.  Candidates are regular files named
 * *.json, *.json.xz or *.json.gz (symbolic links to files are followed, to
 * directories not); for each, only its banner is read (isf_read_banner) and
 * only the match is fully loaded.  When several match, the first in name
 * order wins.  Unreadable or malformed candidates are skipped.  NULL when
 * none matches, err saying how many files were looked at. */
struct isf *isf_find_by_banner(const char *dir, const char *banner,
                               char *err, size_t errlen);

#endif
