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

/* What a parser found.  Formats stored verbatim fill segs; kdump fills
 * kdump instead and leaves segs empty. */
struct dump_layout {
    const char *format;             /* "raw", "elf", "lime", "kdump" */
    struct dump_segment *segs;      /* malloc'd, sorted by gpa, no overlap */
    size_t nsegs;
    struct vmem_vcpu *vcpus;        /* malloc'd, may be NULL */
    size_t nvcpus;
    struct kdump *kdump;            /* kdump-compressed only */
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
 * Appends to out->vcpus.  Malformed notes are skipped, not fatal. */
void dump_parse_notes(const uint8_t *notes, size_t len, int is_64bit,
                      struct dump_layout *out);

/* kdump-compressed ("KDUMP   " / diskdump) page access.  `base` must stay
 * mapped while the struct kdump lives. */
struct kdump;
/* RAM ranges the dump describes (pages present in memory at dump time),
 * derived from its bitmaps; owned by the kdump object. */
void kdump_ranges(struct kdump *kd, const struct vmem_range **out, size_t *n);
/* Read one 4 KiB frame: 0, -ENOENT (page not in the dump: filtered or not
 * RAM), -EIO (corrupt compressed data, or a compression the build lacks).
 * Thread-safe. */
int kdump_read_frame(struct kdump *kd, uint64_t gfn, void *buf);
/* The compression methods seen / supported, for info.json. */
const char *kdump_describe(struct kdump *kd);
void kdump_close(struct kdump *kd);

void dump_layout_free(struct dump_layout *l);

#endif
