/*
 * btf_isf.h - a Volatility 3 profile (ISF 6.2.0 JSON, see isf.h) made from
 * what every modern kernel carries: its BTF type information and its symbol
 * table (/proc/kallsyms or System.map), for kernels nobody ran dwarf2json
 * on.
 *
 * Three steps, each usable alone:
 *   - a symbol list: parsed from System.map / kallsyms text, or built one
 *     symbol at a time (a kallsyms table read out of guest memory);
 *   - a kernel: BTF (with libbpf) plus, where the input has them, the banner
 *     and the link-time address of _text, from a raw BTF blob
 *     (/sys/kernel/btf/vmlinux), a vmlinux ELF with a .BTF section, a
 *     compressed vmlinux (gzip, xz, lzma, lz4, and zstd when vmemcore has
 *     libzstd: HAVE_ZSTD), or a bzImage/vmlinuz whose embedded vmlinux is
 *     one of those (bzip2 and lzo are refused with a hint);
 *   - the ISF: written as JSON text to a stream (or a malloc'd buffer that
 *     isf_load_buffer takes as is).
 *
 * What the ISF holds (and how it differs from dwarf2json's, which it
 * mirrors where BTF allows):
 *   base_types  BTF ints and floats under their C names, plus "pointer"
 *               and "void" and the int types enums need;
 *   user_types  every struct and union: named ones under their name,
 *               anonymous ones as "unnamed_<16 hex>", members without a
 *               name as "unnamed_field_N" with "anonymous": true (which
 *               Volatility 6.2+ and isf_member flatten); a typedef of a
 *               struct/union is a copy under the typedef's name (cpumask_t,
 *               atomic_t), as dwarf2json does (a typedef of such a typedef
 *               refers to the inner one); typedefs of anything else
 *               are resolved away; bitfields as ISF bitfields (offset =
 *               bit offset / 8, bit_position = bit offset % 8);
 *   enums       every enum (typedef copies too);
 *   symbols     every symbol of the list except module symbols, with the
 *               type BTF gives (per-CPU variables) or a built-in table
 *               gives (init_task, init_mm, init_top_pgt, linux_banner, ...),
 *               else "void" - BTF has no types for most globals;
 *               linux_banner carries the banner as base64 constant_data
 *               ("...\n\0"), which is how Volatility and isf_find_by_banner
 *               match a profile to a memory image.
 * Symbol addresses are link-time addresses, as in dwarf2json profiles: a
 * list taken from a running kernel with KASLR is shifted back by
 * (its _text - the link-time _text) for every symbol in the 1 GiB from its
 * _text on, the kernel image (per-CPU offsets and absolute symbols lie
 * elsewhere and are left alone).
 *
 * What BTF cannot say, and so differs from dwarf2json: multi-dimensional
 * arrays come flattened (pahole stores int a[2][4] as int a[8]: same bytes,
 * one dimension); when BTF holds two different definitions under one name
 * (static structs of two files) the first is written and references go to
 * it (stats.name_clashes); types of non-per-CPU globals beyond the built-in
 * table are "void".  Descriptors nested deeper than 16 (only a damaged BTF
 * has them: pointer cycles) are cut to "void".
 *
 * Errors: functions that can fail take err/errlen and put one line there
 * ("what: why").  Input files are untrusted: corrupt input fails cleanly.
 *
 * Linking: this needs libbpf (vmemcore built with VMEMFS_HAVE_LIBBPF).
 */
#ifndef VMEMFS_CORE_BTF_ISF_H
#define VMEMFS_CORE_BTF_ISF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct btf;                     /* libbpf's */

/* ---- symbol lists ---------------------------------------------------- */

struct btf_isf_symbols;

struct btf_isf_symbols *btf_isf_symbols_new(void);
void btf_isf_symbols_free(struct btf_isf_symbols *s);

/* Add one symbol; `type` is the nm letter ('T', 'd', ...; 0 if unknown).
 * A name already present is ignored (the first address wins), as are
 * empty names.  0, or -1 on ENOMEM. */
int btf_isf_symbols_add(struct btf_isf_symbols *s, const char *name,
                        uint64_t addr, char type);

/* Parse System.map / /proc/kallsyms text: "ADDR TYPE NAME[\t[MODULE]]"
 * lines.  Module symbols are skipped; so are lines of another shape, but
 * a text with no valid line, or whose addresses are all 0 (kallsyms read
 * without privilege), is an error.  `name` names the text in errors. */
struct btf_isf_symbols *btf_isf_symbols_parse(const char *text, size_t len,
                                              const char *name, char *err,
                                              size_t errlen);
struct btf_isf_symbols *btf_isf_symbols_load(const char *path, char *err,
                                             size_t errlen);

size_t btf_isf_symbols_count(const struct btf_isf_symbols *s);
/* 0 and *addr when present, -1 otherwise. */
int btf_isf_symbols_lookup(const struct btf_isf_symbols *s, const char *name,
                           uint64_t *addr);

/* ---- kernels ------------------------------------------------------- */

struct btf_isf_kernel {
    struct btf *btf;            /* owned; free with btf_isf_kernel_close */
    /* The banner found in the image ("Linux version ...", no newline), or
     * NULL (raw BTF has none).  With a symbol list holding linux_banner
     * the exact string at that address is taken; otherwise the
     * "Linux version" string of the image that looks like a finished
     * build's ("#<digits>"). */
    char *banner;
    /* Link-time address of _text from the ELF image (.text), 0 when the
     * input has no ELF (raw BTF). */
    uint64_t text_addr;
    /* What the input was, for messages: "raw BTF", "vmlinux ELF",
     * "bzImage, lz4-compressed vmlinux", ... */
    char format[64];
};

/* Open the kernel image in `path` (any of the forms above, recognised by
 * content).  `syms` may be NULL; when given it is used only to locate
 * linux_banner exactly.  0, or -1 with err set (nothing to close). */
int btf_isf_kernel_open(const char *path, const struct btf_isf_symbols *syms,
                        struct btf_isf_kernel *out, char *err, size_t errlen);
/* Same from memory (only read during the call). */
int btf_isf_kernel_from_buffer(const void *data, size_t len, const char *name,
                               const struct btf_isf_symbols *syms,
                               struct btf_isf_kernel *out, char *err,
                               size_t errlen);
void btf_isf_kernel_close(struct btf_isf_kernel *k);

/* ---- the ISF ------------------------------------------------------- */

struct btf_isf_options {
    /* The kernel banner; a missing trailing newline is added.  NULL: no
     * constant_data (the profile then cannot be found by banner). */
    const char *banner;
    /* Link-time _text, for undoing KASLR in the symbol list (see above);
     * 0: addresses are written as given. */
    uint64_t link_text;
    /* Names recorded in metadata (e.g. file names); NULL to leave out. */
    const char *types_source;
    const char *symbols_source;
};

struct btf_isf_stats {
    size_t base_types, user_types, typedef_copies, anonymous_types,
        forward_only, enums, symbols, typed_symbols;
    size_t name_clashes;        /* BTF types left out: name already taken */
    int64_t kaslr_shift;        /* subtracted from the image's symbols */
    bool banner_symbol;         /* linux_banner got constant_data */
};

/* Write the ISF of `btf` and `syms` (may be NULL: no symbols) to `out`.
 * stats may be NULL.  0, or -1 with err set (a write error, or ENOMEM). */
int btf_isf_write(FILE *out, const struct btf *btf,
                  const struct btf_isf_symbols *syms,
                  const struct btf_isf_options *opt,
                  struct btf_isf_stats *stats, char *err, size_t errlen);

/* The same into a malloc'd, NUL-terminated buffer (*len bytes without the
 * NUL), ready for isf_load_buffer.  NULL with err set on failure. */
char *btf_isf_generate(const struct btf *btf,
                       const struct btf_isf_symbols *syms,
                       const struct btf_isf_options *opt, size_t *len,
                       struct btf_isf_stats *stats, char *err, size_t errlen);

#endif
