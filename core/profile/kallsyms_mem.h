/*
 * kallsyms_mem.h - the kernel's own symbol table (kallsyms), read out of
 * the bytes of its image in guest memory, for guests nobody has a
 * System.map or a profile for.
 *
 * Owns: recognising the compressed kallsyms tables (kernel/kallsyms.c,
 * written by scripts/kallsyms.c at link time) in a buffer, decoding them
 * into (name, type letter, runtime address) triples, and finding that
 * buffer in a VM's physical memory near the kernel banner.
 * Does not own: what the symbols are used for (btf_mem.c builds a profile
 * from them), the banner scan or KASLR (core/os/linux).
 *
 * The tables, all in .rodata, each label aligned to the pointer size:
 *   kallsyms_num_syms        u32 n
 *   kallsyms_names           n entries: a length (one byte; from 6.1/6.2 a
 *                            two-byte ULEB128 when > 0x7f), then that many
 *                            token indexes; expanded, the first char is the
 *                            nm type letter, the rest the name
 *   kallsyms_markers         u32 per 256 entries: offset of entry 256*k
 *   kallsyms_seqs_of_names   u32 n (6.2 on; name-sorted order)
 *   kallsyms_token_table     256 NUL-terminated strings
 *   kallsyms_token_index     256 u16: offset of each token in the table
 *   kallsyms_offsets         s32 n (CONFIG_KALLSYMS_BASE_RELATIVE) with
 *   kallsyms_relative_base   a pointer; or kallsyms_addresses, n pointers
 * Orders: up to 6.3 offsets/relative_base come first, then num_syms, names,
 * markers, (6.2-6.3: seqs_of_names,) token table and index; from 6.4 on
 * num_syms, names, markers, token table and index, offsets, relative_base,
 * seqs_of_names.  An offset is relative_base + (u32)offset, except with
 * CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP), where a non-negative offset
 * is an absolute value (per-CPU symbols) and a negative one means
 * relative_base - 1 - offset.  Addresses are the running kernel's (after
 * KASLR's relocation).
 *
 * How they are found: the token table holds the single characters that
 * symbol names use at their own index, so "0\0" "1\0" ... "9\0" sits at
 * index 0x30 of it; from there the token index (right after the table)
 * gives the table's start, and the other tables are located by their sizes
 * and checked: markers increasing from 0, every name decoding to exactly
 * the space up to the markers, every marker matching, addresses sorted.
 *
 * The guest controls every byte: every count and offset is checked against
 * the buffer before use, scans are bounded, and a table that fails a check
 * is refused with the reason ("kallsyms at +0x...: markers do not match
 * the names").
 */
#ifndef VMEMFS_CORE_KALLSYMS_MEM_H
#define VMEMFS_CORE_KALLSYMS_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

/* More symbols than this is not a kernel (6.12 allyesconfig has ~1.5 M). */
#define KALLSYMS_MAX_SYMS (4u << 20)
/* Longest expanded name accepted (KSYM_NAME_LEN is 512 from 6.1 on). */
#define KALLSYMS_NAME_MAX 1024

struct kallsyms_mem {
    size_t n;
    uint64_t *addr;             /* runtime addresses, in table order (sorted) */
    uint32_t *name;             /* offsets into pool of NUL-terminated names */
    char *type;                 /* nm type letter of each */
    char *pool;
    size_t pool_len;
    uint64_t relative_base;     /* 0 for kallsyms_addresses */
    unsigned psize;             /* 4 or 8 */
    bool absolute_percpu;
    bool base_relative;
    bool seqs_of_names;         /* 6.2 on */
    /* "6.1", "6.2-6.3", "6.4+" (the order of the tables) */
    const char *layout;
    /* Offsets in the buffer (or, after kallsyms_from_vm, guest-physical
     * addresses) of the tables. */
    uint64_t at_token_table, at_token_index, at_markers, at_names,
        at_num_syms, at_offsets;
    /* name -> index, open addressing (built by kallsyms_parse) */
    uint32_t *hidx;
    size_t hcap;
};

/* Find and decode kallsyms in buf[0, len), which starts at a guest address
 * aligned to psize (alignment is checked relative to buf).  psize is the guest's pointer
 * size (8 for x86-64, 4 for i386).  Every occurrence of the token-table
 * signature is tried (at most a few hundred) until one decodes and checks.
 * 0, or -1 with why set to the reason the last candidate failed (or "no
 * kallsyms token table"). */
int kallsyms_parse(const uint8_t *buf, size_t len, unsigned psize,
                   struct kallsyms_mem *out, char *why, size_t whylen);

/* The same in a VM: looks for the token table in guest-physical
 * [near - back, near + fwd) (clipped to RAM; forward first: kallsyms is in
 * .rodata after the banner), then decodes a window around it.  The at_*
 * fields are guest-physical.  0, or -1 with why. */
int kallsyms_from_vm(struct vm *vm, uint64_t near_gpa, uint64_t back,
                     uint64_t fwd, unsigned psize, struct kallsyms_mem *out,
                     char *why, size_t whylen);

/* The runtime address of `name`: 0 and *addr, or -1. */
int kallsyms_lookup(const struct kallsyms_mem *k, const char *name,
                    uint64_t *addr);
static inline const char *kallsyms_name(const struct kallsyms_mem *k, size_t i)
{
    return k->pool + k->name[i];
}

void kallsyms_mem_free(struct kallsyms_mem *k);

#endif
