/*
 * btf_mem.h - a kernel profile (Volatility 3 ISF) made from nothing but the
 * guest's memory: the kernel's own BTF (CONFIG_DEBUG_INFO_BTF, the .BTF
 * section between __start_BTF and __stop_BTF) for the types and its own
 * kallsyms (kallsyms_mem.h) for the symbols, for Linux guests no --symbols
 * or --profile fits.
 *
 * Owns: finding the BTF blob (through __start_BTF/__stop_BTF, else by its
 * header in the kernel image), the cross-checks that tie what was decoded
 * to the banner found in physical memory, the ISF built with btf_isf.c's
 * generator (reused as is: BTF + a symbol list + the banner), its JSON
 * text for the mount's symbols/linux/ directory and vmemfs-profile
 * --from-image, and saying where types and symbols came from, or which
 * step failed and why.
 * Does not own: the banner scan and KASLR (core/os/linux; the ISF built
 * here is then used exactly like one from --profile), decoding kallsyms
 * (kallsyms_mem.c), generating the ISF (btf_isf.c).
 *
 * The steps (mem_profile_build):
 *   1. kallsyms near the banner (physical memory: the image is one piece);
 *   2. cross-checks: linux_banner's address, moved to the banner's
 *      physical place, must put kallsyms_token_table where it was found
 *      (so this copy of the banner is linux_banner and the decode is
 *      right); init_top_pgt's physical place must be a page-table root
 *      under which linux_banner translates to the banner; VMCOREINFO, when
 *      the kernel kept it (vmcoreinfo_data), must agree on OSRELEASE and
 *      init_top_pgt, and gives KERNELOFFSET;
 *   3. BTF: [__start_BTF, __stop_BTF) read and parsed by libbpf;
 *   4. the ISF: link-time addresses (KASLR undone: _text - KERNELOFFSET,
 *      else x86-64's default __START_KERNEL 0xffffffff81000000, i386's
 *      0xc1000000), loaded with isf_load_buffer.
 *
 * The guest controls every byte read: sizes are checked before use, reads
 * are bounded (BTF at most BTF_MEM_MAX, kallsyms scans at most 64 MiB each
 * way), a damaged table is refused with the reason.
 *
 * Threads: a built mem_profile is immutable.
 */
#ifndef VMEMFS_CORE_BTF_MEM_H
#define VMEMFS_CORE_BTF_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct isf;
struct json_object;

#define BTF_MEM_MAX ((size_t)256 << 20)

/* A BTF header at d[0, n): magic 0xEB9F, version 1, header length 24..256,
 * type and string sections inside n, type section 4-byte aligned.  The
 * blob's total length, or 0. */
size_t btf_mem_blob_len(const uint8_t *d, size_t n);

/* The first offset in d[0, n) (4-byte aligned) where a BTF blob starts
 * whose header checks and whose string section starts with a NUL (as every
 * BTF's does); -1 when none.  *blob_len set. */
long btf_mem_scan(const uint8_t *d, size_t n, size_t *blob_len);

/* Times of each step, nanoseconds (the benchmark reports them). */
struct mem_profile_times {
    uint64_t kallsyms, checks, btf, isf_json, isf_load;
};

struct mem_profile;
/* What one Linux open learnt about kallsyms, kept across the banner copies
 * it tries (the scan is the costly part): NULL at first, freed after. */
struct mem_profile_scan;
void mem_profile_scan_free(struct mem_profile_scan *s);

/* Build the profile of the kernel whose banner (as in memory, no newline)
 * is at banner_gpa.  A copy of the banner (the printk log's, and others)
 * is refused quickly: linux_banner ends in "\n\0" and lies where
 * kallsyms's linux_banner can be (the same offset in its 2 MiB).  NULL with
 * why set
 * to the step that failed and why ("no BTF: this kernel was built without
 * CONFIG_DEBUG_INFO_BTF; give --symbols"). */
struct mem_profile *mem_profile_build(struct vm *vm, struct mem_profile_scan **scan,
                                      uint64_t *banner_gpa, const char *banner,
                                      char *why, size_t whylen);
void mem_profile_free(struct mem_profile *mp);

const struct isf *mem_profile_isf(const struct mem_profile *mp);

/* The ISF as Volatility 3 reads it (plain JSON: its symbol finder takes
 * *.json as well as *.json.xz), and the file name for it
 * ("<release>.json", the release made safe for a file name). */
const char *mem_profile_json(const struct mem_profile *mp, size_t *len);
const char *mem_profile_file_name(const struct mem_profile *mp);

/* For info.json: "profile_source", "profile_symbols" (where kallsyms was,
 * its layout and count), "profile_types" (where BTF was, its size),
 * "profile_checks", "profile_build_ms". */
void mem_profile_describe(const struct mem_profile *mp, struct json_object *out);
/* One line for the log. */
const char *mem_profile_summary(const struct mem_profile *mp);
void mem_profile_times(const struct mem_profile *mp, struct mem_profile_times *t);

#endif
