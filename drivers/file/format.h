/*
 * format.h - the dump formats the file driver understands, and the contract
 * between the driver (drivers/file/file.c: opening, mmap, detection, the
 * frame-reader ops) and each format parser.
 *
 * Every parser works on the whole dump mapped read-only in memory
 * (base, size) and must treat it as hostile: every offset and length is
 * checked against size before use, and a malformed file gets one clear
 * message in `err` (what is wrong, where) and -EINVAL, never a crash.
 * Parsers do not keep pointers into `base` beyond what they document.
 */
#ifndef VMEMFS_DRIVERS_FILE_FORMAT_H
#define VMEMFS_DRIVERS_FILE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/driver.h"

#define DUMP_ERR_LEN 256

/* A piece of guest-physical memory stored verbatim in the file. */
struct dump_segment {
    uint64_t gpa;
    uint64_t len;
    uint64_t file_off;
    unsigned kind;                  /* VMEM_RANGE_RAM / VMEM_RANGE_ROM */
};

/* A format whose frames are not stored verbatim (kdump-compressed) is
 * reached through these ops; verbatim formats leave layout.backend NULL and
 * file.c serves their segments from the mapping. */
struct dump_backend_ops {
    const char *name;
    /* RAM ranges the dump holds, owned by the backend. */
    void (*ranges)(void *b, const struct vmem_range **out, size_t *n);
    /* One 4 KiB frame: 0, -ENOENT (not in the dump), -EIO (corrupt, or a
     * compression the build lacks).  Thread-safe. */
    int (*read_frame)(void *b, uint64_t gfn, void *buf);
    const char *(*describe)(void *b);       /* for info.json */
    void (*close)(void *b);
};

/* What a parser found.  Formats stored verbatim fill segs; others set
 * backend instead and leave segs empty.  Owned by file.c, which frees it
 * (dump_layout_free) whether the parse succeeded or not. */
struct dump_layout {
    const char *format;             /* "raw", "elf", "lime", "kdump" */
    struct dump_segment *segs;      /* malloc'd, sorted by gpa, no overlap */
    size_t nsegs;
    struct vmem_vcpu *vcpus;        /* malloc'd, may be NULL */
    size_t nvcpus;
    const struct dump_backend_ops *backend;  /* NULL: verbatim segments */
    void *backend_priv;
    char detail[128];               /* e.g. "ELF64 core, 12 PT_LOAD" */
};

/* Format probes: return 1 if the first bytes say "this is my format". */
int dump_is_elf(const uint8_t *base, size_t size);
int dump_is_lime(const uint8_t *base, size_t size);
int dump_is_kdump(const uint8_t *base, size_t size);

/* Parsers: 0 on success (layout filled), -EINVAL with err set otherwise. */
int dump_parse_elf(const uint8_t *base, size_t size, struct dump_layout *out,
                   char *err, size_t errlen);
int dump_parse_lime(const uint8_t *base, size_t size, struct dump_layout *out,
                    char *err, size_t errlen);
int dump_parse_kdump(const uint8_t *base, size_t size, struct dump_layout *out,
                     char *err, size_t errlen);
/* Anything else is a raw image: one segment covering the file. */
int dump_parse_raw(const uint8_t *base, size_t size, struct dump_layout *out,
                   char *err, size_t errlen);

/* ELF note parsing shared by ELF cores and kdump (which embeds the same
 * notes): NT_PRSTATUS and QEMU's "QEMU" CPU-state notes become vCPUs.
 * Appends to out->vcpus.  Malformed notes are skipped, not fatal.
 * (notes.c) */
void dump_parse_notes(const uint8_t *notes, size_t len, int is_64bit,
                      struct dump_layout *out);

/* Frees what a parser put in l, also after a failed parse (file.c). */
void dump_layout_free(struct dump_layout *l);

#endif
