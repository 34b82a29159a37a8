/*
 * fuzz_linux_guest.h - a small synthetic Linux guest for core/linux.c's
 * unit test (tests/unit/test_linux.c) and fuzz target (fuzz_linux.c): 4 MiB
 * of guest RAM in an in-memory frame reader (a real driver per
 * core/driver.h, not a mock), with
 *   - a kernel image at a KASLR'd place (physical shift FG_PSHIFT, virtual
 *     shift FG_VSHIFT) holding init_top_pgt (4- or 5-level), the banner,
 *     init_task, __pgtable_l5_enabled and a fake special_mapping_name;
 *   - a direct map of all RAM (one 1 GiB page) where a bump allocator puts
 *     task_structs, creds, mm_structs, VMAs, maple nodes, files, dentries;
 *   - a profile (ISF JSON, built here) describing compact, made-up layouts
 *     of those structures - the walkers must only rely on the profile;
 *     either the 6.1+ shape (mm->mm_mt maple tree) or the older one
 *     (mm->mmap, vma->vm_next).
 * Header-only (static functions) so both programs include it as is.
 */
#ifndef VMEMFS_TESTS_FUZZ_LINUX_GUEST_H
#define VMEMFS_TESTS_FUZZ_LINUX_GUEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/driver.h"
#include "core/profile/isf.h"
#include "core/phys/vm.h"

/* Not every includer uses every helper. */
#define FG_FN static __attribute__((unused))

#define FG_MEM          (4u << 20)
#define FG_KMAP         0xffffffff80000000ull
#define FG_PSHIFT       0x200000ull         /* image link offset 0 -> phys 2 MiB */
#define FG_VSHIFT       0x600000ull
#define FG_IMG          FG_PSHIFT           /* physical start of the image */
#define FG_DIRECT4      0xffff888000000000ull
#define FG_DIRECT5      0xff11000000000000ull
#define FG_SLAB         0x10000ull          /* bump allocator [FG_SLAB, FG_IMG) */

/* Offsets inside the image (link address = FG_KMAP + offset). */
#define FG_X_PGT        0x0000ull           /* init_top_pgt */
#define FG_X_PDPT       0x1000ull
#define FG_X_PD         0x2000ull
#define FG_X_PML4K      0x3000ull           /* 5-level: PML4 of the image */
#define FG_X_DMPDPT     0x4000ull
#define FG_X_DMPML4     0x5000ull           /* 5-level: PML4 of the direct map */
#define FG_X_BANNER     0x6000ull
#define FG_X_INIT_TASK  0x7000ull
#define FG_X_L5         0x8000ull
#define FG_X_SMN        0x9000ull           /* "special_mapping_name" */
#define FG_X_MODULES    0xa000ull           /* the `modules` list head */
#define FG_X_END        0xb000ull

#define FG_BANNER "Linux version 9.9.9-vmemfs-fake (test@vmemfs) (gcc) #1 SMP\n"

/* The made-up layouts (offsets the ISF below declares). */
#define T_STATE     0x10
#define T_FLAGS     0x14
#define T_TASKS     0x20
#define T_MM        0x30
#define T_EXIT      0x38
#define T_PID       0x40
#define T_TGID      0x44
#define T_PARENT    0x48
#define T_LEADER    0x50
#define T_CRED      0x58
#define T_COMM      0x60
#define T_SIGNAL    0x70
#define T_FILES     0x80
#define T_SIZE      0x100
#define MOD_LIST    0x08            /* module: state@0, name@0x18[56], refcnt@0x60 */
#define MOD_NAME    0x18
#define MOD_REFCNT  0x60
#define MOD_SIZE    0x80
#define FS_FDT      0x20            /* files_struct.fdt; fdtable: max_fds@0, fd@8 */
#define MM_MT       0x00            /* maple_tree: root @8, flags @16 */
#define MM_MMAP     0x20            /* old layout only */
#define MM_PGD      0x48
#define MM_START_BRK 0x100
#define MM_BRK      0x108
#define MM_START_STACK 0x110
#define MM_SIZE     0x180
#define V_START     0x00
#define V_END       0x08
#define V_MM        0x10
#define V_FLAGS     0x20
#define V_NEXT      0x28            /* old layout only */
#define V_OPS       0x60
#define V_PGOFF     0x68
#define V_FILE      0x70
#define V_PRIV      0x78
#define V_SIZE      0x98
#define F_MNT       0x10
#define F_DENTRY    0x18
#define F_INODE     0x20
#define D_HASH_PPREV 0x10
#define D_PARENT    0x18
#define D_NAME_LEN  0x24
#define D_NAME      0x28
#define I_SB        0x28
#define I_INO       0x40
#define SB_DEV      0x10
#define MNT_PARENT  0x10
#define MNT_MOUNTPOINT 0x18
#define MNT_MNT     0x20            /* struct vfsmount: mnt_root @0 */
#define OPS_NAME    0x60

struct fg {
    uint8_t *mem;
    bool la57, mmap_list;
    uint64_t slab;                  /* next free physical byte */
    uint64_t direct;                /* direct-map base */
    uint64_t init_task;             /* runtime gva */
    char *isf_json;
    size_t isf_len;
    struct isf *isf;
    /* Things the builders share. */
    uint64_t root_mount, root_dentry, special_ops;
    /* Extra profile text for fg_reload_isf (a test's own structures):
     * members appended to task_struct and file, types to user_types,
     * symbols. */
    const char *x_task, *x_file, *x_types, *x_syms;
};

/* ---- the driver --------------------------------------------------------- */

struct fg_drv {
    uint8_t *mem;
    struct vmem_range range;
    struct vmem_vcpu vcpu;
    int nvcpu;
};

FG_FN int fgd_ranges(void *d, const struct vmem_range **out, size_t *n)
{
    struct fg_drv *m = d;
    *out = &m->range;
    *n = 1;
    return 0;
}

FG_FN void *fgd_map(void *d, uint64_t gpa, size_t len)
{
    struct fg_drv *m = d;
    return gpa < FG_MEM && len <= FG_MEM - gpa ? m->mem + gpa : NULL;
}

FG_FN int fgd_read_frames(void *d, const uint64_t *gfns, void *const *bufs,
                           int *status, size_t n)
{
    struct fg_drv *m = d;
    for (size_t i = 0; i < n; i++) {
        if (gfns[i] >= FG_MEM / 4096) {
            status[i] = -ENOENT;
        } else {
            memcpy(bufs[i], m->mem + gfns[i] * 4096, 4096);
            status[i] = 0;
        }
    }
    return 0;
}

FG_FN int fgd_vcpu_count(void *d)
{
    return ((struct fg_drv *)d)->nvcpu;
}

FG_FN int fgd_vcpu_state(void *d, unsigned cpu, struct vmem_vcpu *out)
{
    struct fg_drv *m = d;
    if ((int)cpu >= m->nvcpu)
        return -EINVAL;
    *out = m->vcpu;
    return 0;
}

FG_FN void fgd_close(void *d)
{
    free(d);
}

static const struct vmem_driver_ops fg_ops = {
    .name = "fake",
    .ranges = fgd_ranges, .map = fgd_map, .read_frames = fgd_read_frames,
    .vcpu_count = fgd_vcpu_count, .vcpu_state = fgd_vcpu_state,
    .close = fgd_close,
};

/* A VM over fg's memory (shared, not copied: keep fg alive).  cr3 != 0
 * gives the source one vCPU with that CR3 (and CR4.LA57 as fg is). */
FG_FN struct vm *fg_vm(struct fg *g, uint64_t cr3)
{
    struct fg_drv *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->mem = g->mem;
    d->range = (struct vmem_range){0, FG_MEM, VMEM_RANGE_RAM};
    if (cr3) {
        d->nvcpu = 1;
        d->vcpu.valid = VMEM_VCPU_CRS;
        d->vcpu.cr0 = 0x80050033;
        d->vcpu.cr3 = cr3;
        d->vcpu.cr4 = 0x20 | (g->la57 ? 0x1000 : 0);
        d->vcpu.efer = 0xd01;
    }
    struct vm_options o;
    vm_options_default(&o);
    char err[256];
    return vm_new("fake", "fake:", (struct vmem_driver){&fg_ops, d, VMEM_CAP_IMMUTABLE}, &o, err, sizeof err);
}

/* ---- memory helpers ----------------------------------------------------- */

FG_FN void fg_w64(struct fg *g, uint64_t gpa, uint64_t v)
{
    if (gpa + 8 <= FG_MEM)
        memcpy(g->mem + gpa, &v, 8);
}

FG_FN void fg_w32(struct fg *g, uint64_t gpa, uint32_t v)
{
    if (gpa + 4 <= FG_MEM)
        memcpy(g->mem + gpa, &v, 4);
}

FG_FN uint64_t fg_r64(const struct fg *g, uint64_t gpa)
{
    uint64_t v = 0;
    if (gpa + 8 <= FG_MEM)
        memcpy(&v, g->mem + gpa, 8);
    return v;
}

/* Direct-map gva <-> gpa. */
FG_FN uint64_t fg_va(const struct fg *g, uint64_t gpa) { return g->direct + gpa; }
FG_FN uint64_t fg_pa(const struct fg *g, uint64_t gva)
{
    if (gva >= FG_KMAP)
        return gva - FG_KMAP - FG_VSHIFT + FG_PSHIFT;
    return gva - g->direct;
}
FG_FN void fg_wv64(struct fg *g, uint64_t gva, uint64_t v) { fg_w64(g, fg_pa(g, gva), v); }
FG_FN void fg_wv32(struct fg *g, uint64_t gva, uint32_t v) { fg_w32(g, fg_pa(g, gva), v); }
FG_FN uint64_t fg_rv64(const struct fg *g, uint64_t gva) { return fg_r64(g, fg_pa(g, gva)); }

/* Runtime gva of image offset x. */
FG_FN uint64_t fg_kva(uint64_t x) { return FG_KMAP + FG_VSHIFT + x; }

/* Allocate zeroed slab memory; returns its direct-map gva (0: full). */
FG_FN uint64_t fg_alloc(struct fg *g, size_t size, size_t align)
{
    uint64_t p = (g->slab + align - 1) & ~(uint64_t)(align - 1);
    if (p + size > FG_IMG)
        return 0;
    g->slab = p + size;
    memset(g->mem + p, 0, size);
    return fg_va(g, p);
}

FG_FN uint64_t fg_str(struct fg *g, const char *s)
{
    size_t n = strlen(s) + 1;
    uint64_t va = fg_alloc(g, n, 8);
    if (va)
        memcpy(g->mem + fg_pa(g, va), s, n);
    return va;
}

/* ---- the profile -------------------------------------------------------- */

struct fg_json {
    char *p;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
FG_FN void fj(struct fg_json *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        abort();
    if (j->len + (size_t)n + 1 > j->cap) {
        j->cap = (j->len + (size_t)n + 1) * 2;
        j->p = realloc(j->p, j->cap);
        if (!j->p)
            abort();
    }
    memcpy(j->p + j->len, tmp, (size_t)n + 1);
    j->len += (size_t)n;
}

/* Text of any length, as is (fj's buffer is bounded); NULL: nothing. */
FG_FN void fg_raw(struct fg_json *j, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!n)
        return;
    if (j->len + n + 1 > j->cap) {
        j->cap = (j->len + n + 1) * 2;
        j->p = realloc(j->p, j->cap);
        if (!j->p)
            abort();
    }
    memcpy(j->p + j->len, s, n + 1);
    j->len += n;
}

FG_FN void fg_b64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

#define PTR(t) "{\"kind\":\"pointer\",\"subtype\":{\"kind\":\"struct\",\"name\":\"" t "\"}}"
#define VPTR "{\"kind\":\"pointer\",\"subtype\":{\"kind\":\"base\",\"name\":\"void\"}}"
#define BASE(t) "{\"kind\":\"base\",\"name\":\"" t "\"}"
#define STRUCT(t) "{\"kind\":\"struct\",\"name\":\"" t "\"}"
#define ARR(n, sub) "{\"kind\":\"array\",\"count\":" #n ",\"subtype\":" sub "}"
#define UL BASE("long unsigned int")
#define UI BASE("unsigned int")

FG_FN void fg_field(struct fg_json *j, bool *first, const char *name, int off,
                     const char *type)
{
    fj(j, "%s\"%s\":{\"offset\":%d,\"type\":%s}", *first ? "" : ",", name, off, type);
    *first = false;
}

FG_FN void fg_type_begin(struct fg_json *j, bool *first_type, const char *name,
                          int size, bool *first_field)
{
    fj(j, "%s\"%s\":{\"kind\":\"struct\",\"size\":%d,\"fields\":{",
       *first_type ? "" : ",", name, size);
    *first_type = false;
    *first_field = true;
}

FG_FN void fg_build_isf(struct fg *g)
{
    struct fg_json j = {0};
    bool ft = true, ff;
    fj(&j, "{\"metadata\":{\"format\":\"6.2.0\"},\"base_types\":{");
    fj(&j, "\"char\":{\"size\":1,\"signed\":true,\"kind\":\"char\",\"endian\":\"little\"},"
           "\"int\":{\"size\":4,\"signed\":true,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"unsigned int\":{\"size\":4,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"unsigned char\":{\"size\":1,\"signed\":false,\"kind\":\"char\",\"endian\":\"little\"},"
           "\"long unsigned int\":{\"size\":8,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"pointer\":{\"size\":8,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"void\":{\"size\":0,\"signed\":false,\"kind\":\"void\",\"endian\":\"little\"}},");
    fj(&j, "\"user_types\":{");
    fg_type_begin(&j, &ft, "list_head", 16, &ff);
    fg_field(&j, &ff, "next", 0, PTR("list_head"));
    fg_field(&j, &ff, "prev", 8, PTR("list_head"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "task_struct", T_SIZE, &ff);
    fg_field(&j, &ff, "__state", T_STATE, UI);
    fg_field(&j, &ff, "flags", T_FLAGS, UI);
    fg_field(&j, &ff, "tasks", T_TASKS, STRUCT("list_head"));
    fg_field(&j, &ff, "mm", T_MM, PTR("mm_struct"));
    fg_field(&j, &ff, "exit_state", T_EXIT, BASE("int"));
    fg_field(&j, &ff, "pid", T_PID, BASE("int"));
    fg_field(&j, &ff, "tgid", T_TGID, BASE("int"));
    fg_field(&j, &ff, "real_parent", T_PARENT, PTR("task_struct"));
    fg_field(&j, &ff, "group_leader", T_LEADER, PTR("task_struct"));
    fg_field(&j, &ff, "real_cred", T_CRED, PTR("cred"));
    fg_field(&j, &ff, "comm", T_COMM, ARR(16, BASE("char")));
    fg_field(&j, &ff, "signal", T_SIGNAL, PTR("signal_struct"));
    fg_field(&j, &ff, "files", T_FILES, PTR("files_struct"));
    fg_raw(&j, g->x_task);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "module", MOD_SIZE, &ff);
    fg_field(&j, &ff, "state", 0, UI);
    fg_field(&j, &ff, "list", MOD_LIST, STRUCT("list_head"));
    fg_field(&j, &ff, "name", MOD_NAME, ARR(56, BASE("char")));
    fg_field(&j, &ff, "refcnt", MOD_REFCNT, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "files_struct", 0x40, &ff);
    fg_field(&j, &ff, "fdt", FS_FDT, PTR("fdtable"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "fdtable", 0x20, &ff);
    fg_field(&j, &ff, "max_fds", 0, UI);
    fg_field(&j, &ff, "fd", 8, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "signal_struct", 0x40, &ff);
    fg_field(&j, &ff, "nr_threads", 8, BASE("int"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "kuid_t", 4, &ff);
    fg_field(&j, &ff, "val", 0, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "cred", 0x40, &ff);
    fg_field(&j, &ff, "uid", 8, STRUCT("kuid_t"));
    fg_field(&j, &ff, "gid", 12, STRUCT("kuid_t"));
    fg_field(&j, &ff, "suid", 16, STRUCT("kuid_t"));
    fg_field(&j, &ff, "sgid", 20, STRUCT("kuid_t"));
    fg_field(&j, &ff, "euid", 24, STRUCT("kuid_t"));
    fg_field(&j, &ff, "egid", 28, STRUCT("kuid_t"));
    fg_field(&j, &ff, "fsuid", 32, STRUCT("kuid_t"));
    fg_field(&j, &ff, "fsgid", 36, STRUCT("kuid_t"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_tree", 24, &ff);
    fg_field(&j, &ff, "ma_root", 8, VPTR);
    fg_field(&j, &ff, "ma_flags", 16, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_metadata", 2, &ff);
    fg_field(&j, &ff, "end", 0, BASE("unsigned char"));
    fg_field(&j, &ff, "gap", 1, BASE("unsigned char"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_range_64", 256, &ff);
    fg_field(&j, &ff, "parent", 0, VPTR);
    fg_field(&j, &ff, "pivot", 8, ARR(15, UL));
    fg_field(&j, &ff, "slot", 128, ARR(16, VPTR));
    fg_field(&j, &ff, "meta", 248, STRUCT("maple_metadata"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_arange_64", 248, &ff);
    fg_field(&j, &ff, "parent", 0, VPTR);
    fg_field(&j, &ff, "pivot", 8, ARR(9, UL));
    fg_field(&j, &ff, "slot", 80, ARR(10, VPTR));
    fg_field(&j, &ff, "gap", 160, ARR(10, UL));
    fg_field(&j, &ff, "meta", 240, STRUCT("maple_metadata"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "mm_struct", MM_SIZE, &ff);
    if (g->mmap_list)
        fg_field(&j, &ff, "mmap", MM_MMAP, PTR("vm_area_struct"));
    else
        fg_field(&j, &ff, "mm_mt", MM_MT, STRUCT("maple_tree"));
    fg_field(&j, &ff, "pgd", MM_PGD, VPTR);
    fg_field(&j, &ff, "start_brk", MM_START_BRK, UL);
    fg_field(&j, &ff, "brk", MM_BRK, UL);
    fg_field(&j, &ff, "start_stack", MM_START_STACK, UL);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "vm_area_struct", V_SIZE, &ff);
    fg_field(&j, &ff, "vm_start", V_START, UL);
    fg_field(&j, &ff, "vm_end", V_END, UL);
    fg_field(&j, &ff, "vm_mm", V_MM, PTR("mm_struct"));
    fg_field(&j, &ff, "vm_flags", V_FLAGS, UL);
    if (g->mmap_list)
        fg_field(&j, &ff, "vm_next", V_NEXT, PTR("vm_area_struct"));
    fg_field(&j, &ff, "vm_ops", V_OPS, PTR("vm_operations_struct"));
    fg_field(&j, &ff, "vm_pgoff", V_PGOFF, UL);
    fg_field(&j, &ff, "vm_file", V_FILE, PTR("file"));
    fg_field(&j, &ff, "vm_private_data", V_PRIV, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "path", 16, &ff);
    fg_field(&j, &ff, "mnt", 0, PTR("vfsmount"));
    fg_field(&j, &ff, "dentry", 8, PTR("dentry"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "file", 0x40, &ff);
    fg_field(&j, &ff, "f_path", F_MNT, STRUCT("path"));
    fg_field(&j, &ff, "f_inode", F_INODE, PTR("inode"));
    fg_raw(&j, g->x_file);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "hlist_bl_node", 16, &ff);
    fg_field(&j, &ff, "next", 0, PTR("hlist_bl_node"));
    fg_field(&j, &ff, "pprev", 8, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "qstr", 16, &ff);
    fg_field(&j, &ff, "hash", 0, UI);
    fg_field(&j, &ff, "len", 4, UI);
    fg_field(&j, &ff, "name", 8, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "dentry", 0xc0, &ff);
    fg_field(&j, &ff, "d_hash", D_HASH_PPREV - 8, STRUCT("hlist_bl_node"));
    fg_field(&j, &ff, "d_parent", D_PARENT, PTR("dentry"));
    fg_field(&j, &ff, "d_name", D_NAME_LEN - 4, STRUCT("qstr"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "inode", 0x80, &ff);
    fg_field(&j, &ff, "i_sb", I_SB, PTR("super_block"));
    fg_field(&j, &ff, "i_ino", I_INO, UL);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "super_block", 0x40, &ff);
    fg_field(&j, &ff, "s_dev", SB_DEV, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "vfsmount", 0x20, &ff);
    fg_field(&j, &ff, "mnt_root", 0, PTR("dentry"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "mount", 0x80, &ff);
    fg_field(&j, &ff, "mnt_parent", MNT_PARENT, PTR("mount"));
    fg_field(&j, &ff, "mnt_mountpoint", MNT_MOUNTPOINT, PTR("dentry"));
    fg_field(&j, &ff, "mnt", MNT_MNT, STRUCT("vfsmount"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "vm_operations_struct", 0x80, &ff);
    fg_field(&j, &ff, "name", OPS_NAME, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "vm_special_mapping", 0x20, &ff);
    fg_field(&j, &ff, "name", 0, VPTR);
    fj(&j, "}}");
    fg_raw(&j, g->x_types);
    fj(&j, "},\"enums\":{},\"symbols\":{");
    uint8_t banner[sizeof FG_BANNER + 1];
    memcpy(banner, FG_BANNER, sizeof FG_BANNER);     /* "...\n\0" */
    char b64[2 * sizeof banner + 8];
    fg_b64(banner, sizeof FG_BANNER, b64);
    fj(&j, "\"linux_banner\":{\"address\":%llu,\"constant_data\":\"%s\"},",
       (unsigned long long)(FG_KMAP + FG_X_BANNER), b64);
    fj(&j, "\"init_top_pgt\":{\"address\":%llu},", (unsigned long long)(FG_KMAP + FG_X_PGT));
    fj(&j, "\"init_task\":{\"address\":%llu},", (unsigned long long)(FG_KMAP + FG_X_INIT_TASK));
    fj(&j, "\"__pgtable_l5_enabled\":{\"address\":%llu},", (unsigned long long)(FG_KMAP + FG_X_L5));
    fj(&j, "\"special_mapping_name\":{\"address\":%llu},", (unsigned long long)(FG_KMAP + FG_X_SMN));
    fj(&j, "\"modules\":{\"address\":%llu}", (unsigned long long)(FG_KMAP + FG_X_MODULES));
    fg_raw(&j, g->x_syms);
    fj(&j, "}}");
    g->isf_json = j.p;
    g->isf_len = j.len;
}

/* ---- the guest ---------------------------------------------------------- */

#define PTE_P   0x1ull
#define PTE_RW  0x2ull
#define PTE_PS  0x80ull

FG_FN uint64_t fg_task_new(struct fg *g, uint32_t pid, uint64_t parent,
                            const char *comm, uint64_t mm, uint32_t state, uint32_t uid);

/* Build the base guest: page tables, banner, init_task (swapper/0) with an
 * empty task list, the profile.  Returns false on allocation failure. */
FG_FN bool fg_init(struct fg *g, bool la57, bool mmap_list)
{
    memset(g, 0, sizeof *g);
    g->mem = calloc(1, FG_MEM);
    if (!g->mem)
        return false;
    g->la57 = la57;
    g->mmap_list = mmap_list;
    g->slab = FG_SLAB;
    g->direct = la57 ? FG_DIRECT5 : FG_DIRECT4;
    const uint64_t I = FG_IMG;
    /* Kernel image: FG_KMAP + FG_VSHIFT + x -> FG_IMG + x, one 2 MiB page.
     * VA 0xffffffff80600000: PML4 511, PDPT 510, PD 3. */
    uint64_t pml4k = la57 ? I + FG_X_PML4K : I + FG_X_PGT;
    if (la57) {
        fg_w64(g, I + FG_X_PGT + 511 * 8, pml4k | PTE_P | PTE_RW);
        fg_w64(g, I + FG_X_PGT + 273 * 8, (I + FG_X_DMPML4) | PTE_P | PTE_RW);
        fg_w64(g, I + FG_X_DMPML4 + 0 * 8, (I + FG_X_DMPDPT) | PTE_P | PTE_RW);
    } else {
        fg_w64(g, I + FG_X_PGT + 273 * 8, (I + FG_X_DMPDPT) | PTE_P | PTE_RW);
    }
    fg_w64(g, pml4k + 511 * 8, (I + FG_X_PDPT) | PTE_P | PTE_RW);
    fg_w64(g, I + FG_X_PDPT + 510 * 8, (I + FG_X_PD) | PTE_P | PTE_RW);
    fg_w64(g, I + FG_X_PD + ((FG_VSHIFT >> 21) & 511) * 8, I | PTE_P | PTE_RW | PTE_PS);
    /* Direct map: one 1 GiB page at 0. */
    fg_w64(g, I + FG_X_DMPDPT + 0, 0 | PTE_P | PTE_RW | PTE_PS);
    memcpy(g->mem + I + FG_X_BANNER, FG_BANNER, sizeof FG_BANNER);
    /* A copy of the banner as the printk log holds it, lower in memory and
     * not where linux_banner is: the scan must skip it. */
    memcpy(g->mem + 0x8123, FG_BANNER, sizeof FG_BANNER - 2);
    fg_w32(g, I + FG_X_L5, la57 ? 1 : 0);

    /* init_task: pid 0, its own parent and leader, tasks list empty. */
    uint64_t it = fg_kva(FG_X_INIT_TASK);
    g->init_task = it;
    fg_wv64(g, it + T_TASKS, it + T_TASKS);
    fg_wv64(g, it + T_TASKS + 8, it + T_TASKS);
    fg_wv64(g, it + T_PARENT, it);
    fg_wv64(g, it + T_LEADER, it);
    memcpy(g->mem + fg_pa(g, it + T_COMM), "swapper/0", 10);
    fg_wv32(g, it + T_FLAGS, 0x00200000);

    /* A root file system: one mount, its root dentry "/". */
    uint64_t root = fg_alloc(g, 0xc0, 64);
    uint64_t mnt = fg_alloc(g, 0x80, 64);
    if (!root || !mnt)
        return false;
    fg_wv64(g, root + D_PARENT, root);
    fg_wv32(g, root + D_NAME_LEN, 1);
    fg_wv64(g, root + D_NAME, fg_str(g, "/"));
    fg_wv64(g, mnt + MNT_PARENT, mnt);
    fg_wv64(g, mnt + MNT_MOUNTPOINT, root);
    fg_wv64(g, mnt + MNT_MNT, root);
    g->root_mount = mnt;
    g->root_dentry = root;
    /* The special-mapping vm_ops ([vdso] etc.). */
    g->special_ops = fg_alloc(g, 0x80, 64);
    fg_wv64(g, g->special_ops + OPS_NAME, fg_kva(FG_X_SMN));
    /* An empty module list (LIST_HEAD(modules)). */
    fg_wv64(g, fg_kva(FG_X_MODULES), fg_kva(FG_X_MODULES));
    fg_wv64(g, fg_kva(FG_X_MODULES) + 8, fg_kva(FG_X_MODULES));

    fg_build_isf(g);
    char err[256];
    g->isf = isf_load_buffer(g->isf_json, g->isf_len, "fake.json", err, sizeof err);
    if (!g->isf) {
        fprintf(stderr, "fake ISF: %s\n", err);
        return false;
    }
    return true;
}

/* The profile again, with g->x_task, x_file, x_types, x_syms (each starting with
 * a comma: they follow the base profile's last member, type, symbol). */
FG_FN bool fg_reload_isf(struct fg *g)
{
    isf_free(g->isf);
    free(g->isf_json);
    fg_build_isf(g);
    char err[256];
    g->isf = isf_load_buffer(g->isf_json, g->isf_len, "fake.json", err, sizeof err);
    if (!g->isf)
        fprintf(stderr, "fake ISF: %s\n", err);
    return g->isf != NULL;
}

FG_FN void fg_fini(struct fg *g)
{
    isf_free(g->isf);
    free(g->isf_json);
    free(g->mem);
    memset(g, 0, sizeof *g);
}

/* The kernel page-table root (gpa). */
FG_FN uint64_t fg_dtb(void) { return FG_IMG + FG_X_PGT; }

/* A task appended to init_task.tasks; parent 0 means init_task. */
FG_FN uint64_t fg_task_new(struct fg *g, uint32_t pid, uint64_t parent,
                            const char *comm, uint64_t mm, uint32_t state, uint32_t uid)
{
    uint64_t t = fg_alloc(g, T_SIZE, 64);
    uint64_t cred = fg_alloc(g, 0x40, 64);
    uint64_t sig = fg_alloc(g, 0x40, 64);
    if (!t || !cred || !sig)
        return 0;
    fg_wv32(g, t + T_PID, pid);
    fg_wv32(g, t + T_TGID, pid);
    fg_wv32(g, t + T_STATE, state);
    fg_wv64(g, t + T_PARENT, parent ? parent : g->init_task);
    fg_wv64(g, t + T_LEADER, t);
    fg_wv64(g, t + T_MM, mm);
    if (!mm)
        fg_wv32(g, t + T_FLAGS, 0x00200000);          /* PF_KTHREAD */
    size_t cl = strlen(comm);
    memcpy(g->mem + fg_pa(g, t + T_COMM), comm, cl > 16 ? 16 : cl);
    for (int i = 0; i < 8; i++)      /* uid gid suid sgid euid egid fsuid fsgid */
        fg_wv32(g, cred + 8 + 4 * (uint64_t)i, uid + (i & 1 ? 100 : 0));
    fg_wv64(g, t + T_CRED, cred);
    fg_wv32(g, sig + 8, 1);
    fg_wv64(g, t + T_SIGNAL, sig);
    /* list_add_tail(&t->tasks, &init_task.tasks) */
    uint64_t head = g->init_task + T_TASKS;
    uint64_t last = fg_rv64(g, head + 8);
    fg_wv64(g, t + T_TASKS, head);
    fg_wv64(g, t + T_TASKS + 8, last);
    fg_wv64(g, last, t + T_TASKS);
    fg_wv64(g, head + 8, t + T_TASKS);
    return t;
}

/* A module appended to the `modules` list. */
FG_FN uint64_t fg_module_new(struct fg *g, const char *name, uint32_t refcnt)
{
    uint64_t m = fg_alloc(g, MOD_SIZE, 64), head = fg_kva(FG_X_MODULES);
    if (!m)
        return 0;
    memcpy(g->mem + fg_pa(g, m + MOD_NAME), name, strlen(name) < 55 ? strlen(name) : 55);
    fg_wv32(g, m + MOD_REFCNT, refcnt);
    uint64_t last = fg_rv64(g, head + 8);
    fg_wv64(g, m + MOD_LIST, head);
    fg_wv64(g, m + MOD_LIST + 8, last);
    fg_wv64(g, last, m + MOD_LIST);
    fg_wv64(g, head + 8, m + MOD_LIST);
    return m;
}

/* A descriptor table of max_fds slots for task t; the fd array returned. */
FG_FN uint64_t fg_files_new(struct fg *g, uint64_t t, uint32_t max_fds, uint32_t slots)
{
    uint64_t fs = fg_alloc(g, 0x40, 64), fdt = fg_alloc(g, 0x20, 64);
    uint64_t arr = fg_alloc(g, (size_t)slots * 8, 64);
    if (!fs || !fdt || !arr)
        return 0;
    fg_wv64(g, fs + FS_FDT, fdt);
    fg_wv32(g, fdt, max_fds);
    fg_wv64(g, fdt + 8, arr);
    fg_wv64(g, t + T_FILES, fs);
    return arr;
}

/* An mm with a pgd page (returned in *pgd_gpa when not NULL). */
FG_FN uint64_t fg_mm_new(struct fg *g, uint64_t start_brk, uint64_t brk,
                          uint64_t start_stack, uint64_t *pgd_gpa)
{
    uint64_t mm = fg_alloc(g, MM_SIZE, 64);
    uint64_t pgd = fg_alloc(g, 8192, 8192);
    if (!mm || !pgd)
        return 0;
    fg_wv64(g, mm + MM_PGD, pgd);
    fg_wv64(g, mm + MM_START_BRK, start_brk);
    fg_wv64(g, mm + MM_BRK, brk);
    fg_wv64(g, mm + MM_START_STACK, start_stack);
    if (pgd_gpa)
        *pgd_gpa = fg_pa(g, pgd);
    return mm;
}

/* A file at path "/a/b/c" on the root mount, inode ino on device dev. */
FG_FN uint64_t fg_file_new(struct fg *g, const char *path, uint64_t ino, uint32_t dev)
{
    uint64_t parent = g->root_dentry, d = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *c = strtok_r(buf, "/", &save); c;
         c = strtok_r(NULL, "/", &save)) {
        d = fg_alloc(g, 0xc0, 64);
        if (!d)
            return 0;
        fg_wv64(g, d + D_PARENT, parent);
        fg_wv32(g, d + D_NAME_LEN, (uint32_t)strlen(c));
        fg_wv64(g, d + D_NAME, fg_str(g, c));
        fg_wv64(g, d + D_HASH_PPREV, parent + 0x40);   /* hashed */
        parent = d;
    }
    uint64_t sb = fg_alloc(g, 0x40, 64), in = fg_alloc(g, 0x80, 64);
    uint64_t f = fg_alloc(g, 0x40, 64);
    if (!sb || !in || !f)
        return 0;
    fg_wv32(g, sb + SB_DEV, dev);
    fg_wv64(g, in + I_SB, sb);
    fg_wv64(g, in + I_INO, ino);
    fg_wv64(g, f + F_MNT, g->root_mount + MNT_MNT);
    fg_wv64(g, f + F_DENTRY, d);
    fg_wv64(g, f + F_INODE, in);
    return f;
}

FG_FN uint64_t fg_vma_new(struct fg *g, uint64_t mm, uint64_t start, uint64_t end,
                           uint64_t flags, uint64_t file, uint64_t pgoff)
{
    uint64_t v = fg_alloc(g, V_SIZE, 64);
    if (!v)
        return 0;
    fg_wv64(g, v + V_START, start);
    fg_wv64(g, v + V_END, end);
    fg_wv64(g, v + V_MM, mm);
    fg_wv64(g, v + V_FLAGS, flags);
    fg_wv64(g, v + V_FILE, file);
    fg_wv64(g, v + V_PGOFF, pgoff);
    return v;
}

/* A special mapping ("[vdso]", "[vvar]"): vm_ops->name is
 * special_mapping_name, vm_private_data a vm_special_mapping. */
FG_FN void fg_vma_special(struct fg *g, uint64_t vma, const char *name)
{
    uint64_t sm = fg_alloc(g, 0x20, 32);
    fg_wv64(g, sm, fg_str(g, name));
    fg_wv64(g, vma + V_OPS, g->special_ops);
    fg_wv64(g, vma + V_PRIV, sm);
}

/* maple_enode of a node: node | type << 3 | MAPLE_ENODE_NULL. */
FG_FN uint64_t fg_enode(uint64_t node, unsigned type) { return node | (uint64_t)type << 3 | 4; }

/* Attach sorted, non-overlapping VMAs to mm: a maple tree (leaves of at
 * most `per_leaf` VMAs under one maple_arange_64 root when they do not fit
 * one leaf), or the old vm_next list.  Returns false when out of room. */
FG_FN bool fg_mm_set_vmas(struct fg *g, uint64_t mm, const uint64_t *vmas, size_t n,
                           size_t per_leaf)
{
    if (g->mmap_list) {
        fg_wv64(g, mm + MM_MMAP, n ? vmas[0] : 0);
        for (size_t i = 0; i < n; i++)
            fg_wv64(g, vmas[i] + V_NEXT, i + 1 < n ? vmas[i + 1] : 0);
        return true;
    }
    uint64_t tree = mm + MM_MT;
    if (n == 0) {
        fg_wv64(g, tree + 8, 0);
        return true;
    }
    if (per_leaf < 1 || per_leaf > 7)
        per_leaf = 5;
    size_t nleaves = (n + per_leaf - 1) / per_leaf;
    if (nleaves > 10)
        return false;
    uint64_t root = 0;
    if (nleaves > 1) {
        root = fg_alloc(g, 256, 256);
        if (!root)
            return false;
        fg_wv64(g, root, tree | 1);                  /* MA_ROOT_PARENT */
        fg_wv64(g, tree + 8, fg_enode(root, 3) | 2); /* xa_mk_node */
        fg_wv32(g, tree + 16, 2u << 2);              /* height 2 */
        g->mem[fg_pa(g, root + 240)] = (uint8_t)(nleaves - 1);
    }
    uint64_t min = 0;
    for (size_t l = 0; l < nleaves; l++) {
        uint64_t leaf = fg_alloc(g, 256, 256);
        if (!leaf)
            return false;
        size_t a = l * per_leaf, b = a + per_leaf < n ? a + per_leaf : n;
        bool last = l == nleaves - 1;
        uint64_t max = last ? UINT64_MAX : fg_rv64(g, vmas[b - 1] + V_END) - 1;
        unsigned s = 0;
        uint64_t cur = min;
        for (size_t i = a; i < b; i++) {
            uint64_t st = fg_rv64(g, vmas[i] + V_START), en = fg_rv64(g, vmas[i] + V_END);
            if (st > cur) {
                fg_wv64(g, leaf + 8 + 8 * s, st - 1);            /* gap */
                s++;
            }
            fg_wv64(g, leaf + 128 + 8 * s, vmas[i]);
            fg_wv64(g, leaf + 8 + 8 * s, en - 1);
            s++;
            cur = en;
        }
        if (last && cur != 0) {
            fg_wv64(g, leaf + 8 + 8 * s, UINT64_MAX);            /* tail gap */
            s++;
        }
        /* The last used slot's pivot is the node's max; meta.end = last slot. */
        g->mem[fg_pa(g, leaf + 248)] = (uint8_t)(s - 1);
        if (s - 1 < 15)
            fg_wv64(g, leaf + 8 + 8 * (s - 1), max == UINT64_MAX ? 0 : max);
        if (nleaves > 1) {
            fg_wv64(g, leaf, root | (uint64_t)l << 3 | 6);
            fg_wv64(g, root + 80 + 8 * l, fg_enode(leaf, 1));
            if (!last)
                fg_wv64(g, root + 8 + 8 * l, max);
        } else {
            fg_wv64(g, leaf, tree | 1);
            fg_wv64(g, tree + 8, fg_enode(leaf, 1) | 2);
            fg_wv32(g, tree + 16, 1u << 2);
        }
        min = max + 1;
    }
    return true;
}

/* The standard population: kthreadd (2) and a kworker (3) as kernel
 * threads; init (1), sh (5, child of 1), app (7, child of 5, uid 1000,
 * several threads) with memory areas; a zombie (9).  *app_out gets the
 * app's task gva, *app_dtb its pgd's gpa. */
FG_FN bool fg_populate(struct fg *g, uint64_t *app_out, uint64_t *app_dtb)
{
    uint64_t kthreadd = fg_task_new(g, 2, 0, "kthreadd", 0, 1, 0);
    uint64_t kw = fg_task_new(g, 3, kthreadd, "kworker/0:0", 0, 0x402, 0);
    uint64_t pgd1, pgd5, pgd7;
    uint64_t mm1 = fg_mm_new(g, 0x600000, 0x621000, 0x7ffc00001000, &pgd1);
    uint64_t init = fg_task_new(g, 1, 0, "init", mm1, 1, 0);
    uint64_t mm5 = fg_mm_new(g, 0, 0, 0x7ffd00001000, &pgd5);
    uint64_t sh = fg_task_new(g, 5, init, "sh", mm5, 1, 0);
    uint64_t mm7 = fg_mm_new(g, 0x1000000, 0x1100000, 0x7ffe00002000, &pgd7);
    uint64_t app = fg_task_new(g, 7, sh, "app", mm7, 0, 1000);
    uint64_t zombie = fg_task_new(g, 9, sh, "gone", 0, 0, 0);
    if (!kthreadd || !kw || !init || !sh || !app || !zombie || !mm1 || !mm5 || !mm7)
        return false;
    fg_wv32(g, zombie + T_EXIT, 0x20);                 /* EXIT_ZOMBIE */
    fg_wv32(g, zombie + T_FLAGS, 0);
    fg_wv32(g, fg_rv64(g, app + T_SIGNAL) + 8, 3);     /* 3 threads */

    uint64_t bin = fg_file_new(g, "/bin/app", 53, 2);
    uint64_t lib = fg_file_new(g, "/usr/lib/libc.so.6", 1234, (8u << 20) | 1);
    uint64_t v7[] = {
        fg_vma_new(g, mm7, 0x400000, 0x401000, 0x71, bin, 0),
        fg_vma_new(g, mm7, 0x401000, 0x47a000, 0x75, bin, 1),
        fg_vma_new(g, mm7, 0x4a6000, 0x4a9000, 0x73, bin, 0xa5),
        fg_vma_new(g, mm7, 0xff0000, 0x1100000, 0x73, 0, 0),             /* heap */
        fg_vma_new(g, mm7, 0x7f0000000000, 0x7f0000200000, 0xfb, 0, 0),  /* shared anon */
        fg_vma_new(g, mm7, 0x7f0000400000, 0x7f0000420000, 0x75, lib, 0),
        fg_vma_new(g, mm7, 0x7f0000420000, 0x7f0000421000, 0x73, lib, 0x20),
        fg_vma_new(g, mm7, 0x7ffe00000000, 0x7ffe00021000, 0x173, 0, 0), /* stack */
        fg_vma_new(g, mm7, 0x7ffe00100000, 0x7ffe00104000, 0x71, 0, 0),  /* vvar */
        fg_vma_new(g, mm7, 0x7ffe00104000, 0x7ffe00106000, 0x75, 0, 0),  /* vdso */
    };
    for (size_t i = 0; i < sizeof v7 / sizeof v7[0]; i++)
        if (!v7[i])
            return false;
    fg_vma_special(g, v7[8], "[vvar]");
    fg_vma_special(g, v7[9], "[vdso]");
    if (!fg_mm_set_vmas(g, mm7, v7, sizeof v7 / sizeof v7[0], 3))
        return false;
    uint64_t v1[] = {
        fg_vma_new(g, mm1, 0x400000, 0x500000, 0x75, bin, 0),
        fg_vma_new(g, mm1, 0x600000, 0x621000, 0x73, 0, 0),
    };
    if (!v1[0] || !v1[1] || !fg_mm_set_vmas(g, mm1, v1, 2, 5))
        return false;
    if (!fg_mm_set_vmas(g, mm5, NULL, 0, 5))
        return false;
    if (app_out)
        *app_out = app;
    if (app_dtb)
        *app_dtb = pgd7;
    return true;
}

/* What the app's maps must read. */
__attribute__((unused)) static const char fg_app_maps[] =
    "00400000-00401000 r--p 00000000 00:02 53                                 /bin/app\n"
    "00401000-0047a000 r-xp 00001000 00:02 53                                 /bin/app\n"
    "004a6000-004a9000 rw-p 000a5000 00:02 53                                 /bin/app\n"
    "00ff0000-01100000 rw-p 00000000 00:00 0                                  [heap]\n"
    "7f0000000000-7f0000200000 rw-s 00000000 00:00 0 \n"
    "7f0000400000-7f0000420000 r-xp 00000000 08:01 1234                       /usr/lib/libc.so.6\n"
    "7f0000420000-7f0000421000 rw-p 00020000 08:01 1234                       /usr/lib/libc.so.6\n"
    "7ffe00000000-7ffe00021000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffe00100000-7ffe00104000 r--p 00000000 00:00 0                          [vvar]\n"
    "7ffe00104000-7ffe00106000 r-xp 00000000 00:00 0                          [vdso]\n";

#endif
