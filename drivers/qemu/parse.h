/*
 * parse.h - parsers for the text the qemu driver reads: HMP output
 * ("info mtree -f", "info registers", "info ramblock", "xp") and
 * /proc/PID/maps.  Pure functions on strings, no I/O, so that they are
 * tested on real captured output (tests/unit/data/qemu72-*.txt).
 *
 * Every parser treats its input as untrusted text: unknown lines are
 * skipped, malformed numbers end a line's parse, nothing overflows.
 */
#ifndef VMEMFS_DRIVERS_QEMU_PARSE_H
#define VMEMFS_DRIVERS_QEMU_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/driver.h"

/* One line of a flat view: [start, last] (inclusive, as printed),
 * the type ("ram", "rom", "romd", "i/o", "nv-ram", ...), the memory
 * region's name and the offset of `start` within that region. */
struct qemu_flat {
    uint64_t start, last;
    char type[16];
    char name[128];
    uint64_t offset;
};

/* The flat view that lists address space `as` ("memory": the system
 * address space) in `info mtree -f` output.  0 with a malloc'd array
 * (possibly empty), -ENOENT if no flat view lists that address space,
 * -ENOMEM. */
int qemu_parse_flatview(const char *text, const char *as, struct qemu_flat **out,
                        size_t *n);

/* A piece of guest RAM: gpa [gpa, gpa+len) is bytes [block_off,
 * block_off+len) of RAM block `block` (an index into the names given). */
struct qemu_ram_seg {
    uint64_t gpa, len;
    size_t block;
    uint64_t block_off;
};

/* Guest RAM from a flat view: every entry whose region is one of the RAM
 * blocks `blocks` (backend ids; "/objects/ID" also matches ID), shown as
 * ram or rom (read-only PAM shadows are still RAM), merged where both the
 * gpa and the block offset continue.  Sorted by gpa.  0, or -ENOENT (no
 * RAM at all), -ENOMEM. */
int qemu_ram_layout(const struct qemu_flat *flat, size_t nflat,
                    const char *const *blocks, size_t nblocks,
                    struct qemu_ram_seg **out, size_t *n);

/* "info registers" of one x86 CPU (64-bit, or 32-bit/real mode, which
 * prints EAX.. EIP EFL): fills out (id left alone) and sets out->valid.
 * 0, or -EINVAL if the text holds no register dump. */
int qemu_parse_registers(const char *text, struct vmem_vcpu *out);

/* One line of /proc/PID/maps. */
struct qemu_map {
    uint64_t start, end;
    char perms[5];
    uint64_t offset;
    unsigned dev_major, dev_minor;
    uint64_t inode;
    char path[256];                 /* "" for anonymous mappings */
};
/* All lines; 0 with a malloc'd array, or -ENOMEM. */
int qemu_parse_maps(const char *text, struct qemu_map **out, size_t *n);

/* "info ramblock": one entry per block. */
struct qemu_ramblock {
    char name[128];
    uint64_t offset, used, total;
};
int qemu_parse_ramblock(const char *text, struct qemu_ramblock **out, size_t *n);

/* HMP "xp /Nxg ADDR" output ("ADDR: 0xWORD 0xWORD" lines) into buf, which
 * stands for [base, base+len): every word must fall inside and every byte
 * of buf be covered.  0, or -EINVAL (text is an error message or
 * incomplete). */
int qemu_parse_xp(const char *text, uint64_t base, void *buf, size_t len);

#endif
