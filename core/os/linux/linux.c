/*
 * linux.c - Linux guest introspection (see linux.h): the kernel banner in
 * physical memory, the profile that matches it, KASLR and the kernel's
 * page-table root, the task list, and each process's memory areas as the
 * guest's /proc/<pid>/maps and /proc/<pid>/status would show them.
 *
 * How a kernel is found (x86-64; i386 differs where noted below):
 *   1. scan guest RAM in 1 MiB chunks for "Linux version " followed by a
 *      plausible banner; each distinct banner is matched against the
 *      profiles of --symbols DIR (or a forced --profile is tried as is).
 *      Cheaper places go first: with a forced profile, the one offset of
 *      every 2 MiB where its linux_banner can be; with a vCPU's CR3, the
 *      frames the kernel image is mapped to; then all of RAM, in order;
 *   2. the profile's linux_banner symbol (a link-time address S) and where
 *      the banner sits physically (P) give the physical shift: a kernel
 *      image symbol X lives at X - __START_KERNEL_map + pshift, pshift =
 *      P - (S - __START_KERNEL_map), a multiple of CONFIG_PHYSICAL_ALIGN
 *      (2 MiB); the printk log's copy of the banner fails that test;
 *   3. the kernel page-table root is init_top_pgt at that physical place;
 *      the paging mode comes from a vCPU's CR4.LA57 when the source has
 *      vCPU state, else from the kernel's own __pgtable_l5_enabled, else by
 *      trying both;
 *   4. the virtual shift: init_task.real_parent points to init_task
 *      itself, so its value minus init_task's link address is the shift
 *      (Volatility uses init_task.files the same way); failing that, every
 *      2 MiB-aligned shift the kernel can choose is tried.  Either way the
 *      result is proven by translating linux_banner + vshift through the
 *      root and landing on P;
 *   5. a vCPU's CR3, when known, is checked against that root (equal, PTI's
 *      user copy at +4 KiB, or a process page table that maps the kernel
 *      the same way) and reported.
 *
 * i386 (a profile whose linux_banner lies below 4 GiB; pointers, longs and
 * maple-tree slots and pivots of 4 bytes): the kernel image lives in the
 * linear map, virtual = PAGE_OFFSET + physical, so KASLR moves both by the
 * same amount (vshift == pshift, CONFIG_PHYSICAL_ALIGN steps) and PAGE_OFFSET
 * (0xc0000000 with the usual 3G/1G split) follows from the banner's
 * virtual and physical places.  The root is swapper_pg_dir; the paging mode
 * is PAE or 2-level 32-bit, from a vCPU's CR4.PAE, else the profile's
 * pgd_t size (8 bytes with PAE), and is proven by translation like the
 * shift.  User space ends at PAGE_OFFSET.
 *
 * Every read of kernel memory goes through the kernel address space (its
 * translation cache) and the VM's physical read path.  The guest controls
 * all of it: lists and trees are walked with bounds and visited sets, and
 * every pointer is checked to be a canonical kernel address before use.
 */
#include "core/os/linux/linux.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/profile/isf.h"
#include "core/util/log.h"
#include "core/phys/vm.h"

#define KMAP_X64        0xffffffff80000000ull   /* __START_KERNEL_map */
#define X86_32_TOP      0x100000000ull          /* i386: 4 GiB of address space */
#define PHYS_ALIGN      0x200000ull             /* CONFIG_PHYSICAL_ALIGN min */
#define PHYS_ALIGN32    0x2000ull               /* the same on i386 */
#define KIMAGE_MAX      0x40000000ull           /* KERNEL_IMAGE_SIZE, KASLR */

#define SCAN_CHUNK      (1u << 20)
#define SCAN_OVERLAP    1024u
#define BANNER_MAX      512u
#define BANNER_TRIES    4096u                   /* candidates examined */
/* The scan of RAM from its start stops after this many bytes: a kernel
 * without physical KASLR sits at 16 MiB, and what has no banner in its first
 * GiBs (a Windows guest, an empty image) is not read whole before mounting.
 * A kernel placed higher is found by a vCPU's CR3 (ELF and kdump dumps,
 * live guests) or, with --profile, by the stride probe over all of RAM. */
#define SCAN_RAM_MAX    (4ull << 30)

#define TASKS_MAX       (1u << 17)
#define THREADS_MAX     4096u                   /* thread_group ring walk */
#define VMAS_MAX        (1u << 17)
#define MAPLE_NODES_MAX (1u << 16)
#define MAPLE_DEPTH_MAX 31u                     /* MAPLE_HEIGHT_MAX */
#define TASK_BLOCK_MAX  (32u << 10)
#define PATH_COMPS_MAX  256u
#define NAME_MAX_READ   255u
#define PATH_OUT_MAX    4096u
#define LIVE_MAX_AGE_NS 1000000000ull

#define PF_KTHREAD      0x00200000u
#define VM_READ         0x1ul
#define VM_WRITE        0x2ul
#define VM_EXEC         0x4ul
#define VM_MAYSHARE     0x80ul

#define NONE (-1L)

/* Offsets of what the walkers read, from the profile; NONE when the profile
 * does not have the member (optional ones then degrade gracefully). */
struct lx_offsets {
    unsigned psize;                 /* pointer and long size: 8, or 4 (i386) */
    long task_tasks, task_pid, task_tgid, task_comm, task_state, task_exit_state,
         task_flags, task_mm, task_real_parent, task_real_cred, task_signal,
         task_thread_group, task_group_leader;
    unsigned task_state_size;
    long signal_nr_threads;
    long cred_uid, cred_gid, cred_suid, cred_sgid, cred_euid, cred_egid,
         cred_fsuid, cred_fsgid;
    long mm_pgd, mm_mt, mm_mt_root, mm_mmap, mm_start_brk, mm_brk,
         mm_start_stack, mm_vdso;
    long vma_start, vma_end, vma_mm, vma_flags, vma_next, vma_ops, vma_pgoff,
         vma_file, vma_private, vma_anon_name;
    long r64_pivot, r64_slot, r64_meta;
    unsigned r64_npivots, r64_nslots;
    long a64_pivot, a64_slot, a64_meta;
    unsigned a64_npivots, a64_nslots;
    long dense_slot;
    unsigned dense_nslots;
    long file_mnt, file_dentry, file_inode;
    long dentry_parent, dentry_name_len, dentry_name, dentry_hash_pprev;
    long inode_ino, inode_sb, sb_dev;
    long mount_mnt, mount_parent, mount_mountpoint, vfsmnt_root;
    long vmops_name, special_name, anon_vma_name_name;
};

struct snap {
    struct linux_tasks pub;
    atomic_int refs;
    uint64_t taken_ns;
};

struct linux_os {
    struct vm *vm;
    struct isf *isf_owned;
    const struct isf *isf;
    char *profile_path;             /* NULL when handed over loaded */
    const char *chosen_by;
    char *banner;                   /* as in memory, without the newline */
    char release[128];
    uint64_t banner_gpa;
    uint64_t pshift, vshift;        /* two's complement when negative */
    uint64_t kmap;                  /* link address of physical 0 before the
                                       shift: __START_KERNEL_map, or i386's
                                       PAGE_OFFSET */
    uint64_t kptr_lo;               /* lowest kernel address (i386: PAGE_OFFSET) */
    unsigned psize;                 /* 8, or 4 on i386 */
    enum vmem_paging_mode mode;
    const char *mode_source;
    uint64_t dtb;
    struct vmem_phys_reader rd;
    struct vmem_as *kas;
    char cr3_check[200];
    struct lx_offsets o;
    uint64_t init_task;             /* runtime gvas */
    uint64_t sym_special_mapping_name, sym_gate_vma_name, gate_vma;
    bool have_anon_vma_name;
    bool vsyscall_on;
    bool immutable;
    uint64_t max_age_ns;
    pthread_mutex_t lock;
    struct snap *snap;
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Visited set of guest addresses: open addressing, grows. */
struct addrset {
    uint64_t *slot;
    size_t cap, n;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* 1 when added, 0 when already there, -1 on ENOMEM.  0 is never stored
 * (callers never add a NULL pointer). */
static int addrset_add(struct addrset *s, uint64_t a)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i])
                continue;
            size_t j = mix64(s->slot[i]) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    size_t j = mix64(a) & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == a)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slot[j] = a;
    s->n++;
    return 1;
}

static void addrset_free(struct addrset *s)
{
    free(s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}

/* A growable text buffer. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + more + 1)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = ncap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    sb_reserve(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static char *sb_finish(struct sbuf *b, size_t *len)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) {
        b->p = malloc(1);
        if (!b->p)
            return NULL;
        b->p[0] = 0;
    }
    *len = b->len;
    return b->p;
}

/* ---- kernel memory ------------------------------------------------------ */

static bool is_32bit(const struct linux_os *os)
{
    return os->psize == 4;
}

/* A canonical kernel (upper-half) address of this paging mode; on i386 an
 * address from PAGE_OFFSET up (the top 64 KiB, like x86-64's, excluded:
 * ERR_PTR values live there). */
static bool kptr_ok(const struct linux_os *os, uint64_t v)
{
    if (is_32bit(os))
        return v >= os->kptr_lo && v < X86_32_TOP - 0x10000;
    uint64_t lo = os->mode == VMEM_PAGING_X86_64_5L ? 0xff00000000000000ull
                                                    : 0xffff800000000000ull;
    return v >= lo && v < UINT64_MAX - 0xffff;
}

/* TASK_SIZE: the end of user space. */
static uint64_t user_limit(const struct linux_os *os)
{
    if (is_32bit(os))
        return os->kptr_lo;
    return os->mode == VMEM_PAGING_X86_64_5L ? (1ull << 56) : (1ull << 47);
}

/* ULONG_MAX of the guest: the maple tree's largest index. */
static uint64_t ulong_max(const struct linux_os *os)
{
    return is_32bit(os) ? 0xffffffffull : UINT64_MAX;
}

/* Read len bytes of kernel virtual memory at gva (crossing pages).  0, or
 * -EFAULT (not mapped) / -EIO (no data there or the source failed). */
static int kread(struct linux_os *os, uint64_t gva, void *buf, size_t len)
{
    uint8_t *dst = buf;
    while (len) {
        uint64_t gpa, psz;
        int rc = vmem_as_translate(os->kas, gva, &gpa, &psz);
        if (rc < 0)
            return rc == -EFAULT ? -EFAULT : -EIO;
        size_t in_page = (size_t)(psz - (gpa & (psz - 1)));
        size_t n = len < in_page ? len : in_page;
        ssize_t got = vm_read_phys(os->vm, gpa, dst, n, VM_READ_STRICT);
        if (got != (ssize_t)n)
            return -EIO;
        dst += n;
        gva += n;
        len -= n;
    }
    return 0;
}

/* A pointer or an unsigned long of the guest: 8 bytes, or 4 on i386. */
static uint64_t ldptr(const struct linux_os *os, const uint8_t *p)
{
    return is_32bit(os) ? ld32(p) : ld64(p);
}

static int kreadptr(struct linux_os *os, uint64_t gva, uint64_t *v)
{
    uint8_t b[8];
    int rc = kread(os, gva, b, os->psize);
    if (rc == 0)
        *v = ldptr(os, b);
    return rc;
}

static int kread32(struct linux_os *os, uint64_t gva, uint32_t *v)
{
    uint8_t b[4];
    int rc = kread(os, gva, b, 4);
    if (rc == 0)
        *v = ld32(b);
    return rc;
}

/* A field at base+off when both are known: a pointer or (unsigned) long,
 * guest-sized. */
static int kfieldptr(struct linux_os *os, uint64_t base, long off, uint64_t *v)
{
    if (off == NONE || !base)
        return -ENOENT;
    return kreadptr(os, base + (uint64_t)off, v);
}

static int kfield32(struct linux_os *os, uint64_t base, long off, uint32_t *v)
{
    if (off == NONE || !base)
        return -ENOENT;
    return kread32(os, base + (uint64_t)off, v);
}

/* Read a NUL-terminated string of at most max bytes into out[max+1];
 * bytes are taken as they are (callers escape).  Length, or -errno. */
static long kread_str(struct linux_os *os, uint64_t gva, char *out, size_t max)
{
    size_t n = 0;
    while (n < max) {
        size_t chunk = 64 - (size_t)((gva + n) & 63);     /* never past a page */
        if (chunk > max - n)
            chunk = max - n;
        int rc = kread(os, gva + n, out + n, chunk);
        if (rc < 0) {
            out[n] = 0;
            return n ? (long)n : rc;
        }
        void *z = memchr(out + n, 0, chunk);
        if (z)
            return (long)((char *)z - out);
        n += chunk;
    }
    out[n] = 0;
    return (long)n;
}

/* ---- profile offsets ---------------------------------------------------- */

static long off_of(const struct isf *f, const char *type, const char *member)
{
    uint64_t o;
    if (isf_member(f, type, member, &o, NULL) < 0 || o > (1u << 20))
        return NONE;
    return (long)o;
}

static long off_arr(const struct isf *f, const char *type, const char *member,
                    unsigned *count, unsigned dflt)
{
    uint64_t o;
    struct isf_member_info in;
    if (isf_member(f, type, member, &o, &in) < 0 || o > 4096)
        return NONE;
    *count = dflt;
    if (in.kind == ISF_KIND_ARRAY && in.count > 0 && in.count <= 64)
        *count = (unsigned)in.count;
    return (long)o;
}

/* The guest's pointer size: the profile's "pointer" base type, else what
 * linux_banner's address says (below 4 GiB: i386). */
static unsigned profile_psize(const struct isf *f)
{
    uint64_t sz, banner;
    if (isf_type_size(f, "pointer", &sz) == 0 && (sz == 4 || sz == 8))
        return (unsigned)sz;
    if (isf_symbol(f, "linux_banner", &banner) == 0 && banner < X86_32_TOP)
        return 4;
    return 8;
}

static int load_offsets(const struct isf *f, struct lx_offsets *o,
                        char *why, size_t whylen)
{
    o->psize = profile_psize(f);
    o->task_tasks = off_of(f, "task_struct", "tasks");
    o->task_pid = off_of(f, "task_struct", "pid");
    o->task_tgid = off_of(f, "task_struct", "tgid");
    o->task_comm = off_of(f, "task_struct", "comm");
    o->task_mm = off_of(f, "task_struct", "mm");
    o->task_state_size = 4;
    o->task_state = off_of(f, "task_struct", "__state");
    if (o->task_state == NONE) {
        struct isf_member_info in;
        uint64_t so;
        if (isf_member(f, "task_struct", "state", &so, &in) == 0 && so < (1u << 20)) {
            o->task_state = (long)so;
            o->task_state_size = in.size == 8 ? 8 : 4;
        }
    }
    o->task_exit_state = off_of(f, "task_struct", "exit_state");
    o->task_flags = off_of(f, "task_struct", "flags");
    o->task_real_parent = off_of(f, "task_struct", "real_parent");
    o->task_group_leader = off_of(f, "task_struct", "group_leader");
    o->task_real_cred = off_of(f, "task_struct", "real_cred");
    o->task_signal = off_of(f, "task_struct", "signal");
    o->task_thread_group = off_of(f, "task_struct", "thread_group");
    o->signal_nr_threads = off_of(f, "signal_struct", "nr_threads");
    o->cred_uid = off_of(f, "cred", "uid");
    o->cred_gid = off_of(f, "cred", "gid");
    o->cred_suid = off_of(f, "cred", "suid");
    o->cred_sgid = off_of(f, "cred", "sgid");
    o->cred_euid = off_of(f, "cred", "euid");
    o->cred_egid = off_of(f, "cred", "egid");
    o->cred_fsuid = off_of(f, "cred", "fsuid");
    o->cred_fsgid = off_of(f, "cred", "fsgid");

    o->mm_pgd = off_of(f, "mm_struct", "pgd");
    o->mm_mt = off_of(f, "mm_struct", "mm_mt");
    o->mm_mt_root = off_of(f, "mm_struct", "mm_mt.ma_root");
    if (o->mm_mt == NONE)
        o->mm_mt_root = NONE;
    o->mm_mmap = off_of(f, "mm_struct", "mmap");
    o->mm_start_brk = off_of(f, "mm_struct", "start_brk");
    o->mm_brk = off_of(f, "mm_struct", "brk");
    o->mm_start_stack = off_of(f, "mm_struct", "start_stack");
    o->mm_vdso = off_of(f, "mm_struct", "context.vdso");

    o->vma_start = off_of(f, "vm_area_struct", "vm_start");
    o->vma_end = off_of(f, "vm_area_struct", "vm_end");
    o->vma_mm = off_of(f, "vm_area_struct", "vm_mm");
    o->vma_flags = off_of(f, "vm_area_struct", "vm_flags");
    o->vma_next = off_of(f, "vm_area_struct", "vm_next");
    o->vma_ops = off_of(f, "vm_area_struct", "vm_ops");
    o->vma_pgoff = off_of(f, "vm_area_struct", "vm_pgoff");
    o->vma_file = off_of(f, "vm_area_struct", "vm_file");
    o->vma_private = off_of(f, "vm_area_struct", "vm_private_data");
    o->vma_anon_name = off_of(f, "vm_area_struct", "anon_name");

    /* Maple nodes: 256 bytes, layout fixed by the kernel's design
     * (include/linux/maple_tree.h: 64-bit MAPLE_RANGE64_SLOTS 16,
     * MAPLE_ARANGE64_SLOTS 10, MAPLE_NODE_SLOTS 31; 32-bit 32, 21, 63); the
     * profile's numbers win where it has them. */
    if (o->psize == 4) {
        o->r64_pivot = off_arr(f, "maple_range_64", "pivot", &o->r64_npivots, 31);
        o->r64_slot = off_arr(f, "maple_range_64", "slot", &o->r64_nslots, 32);
        o->r64_meta = off_of(f, "maple_range_64", "meta");
        o->a64_pivot = off_arr(f, "maple_arange_64", "pivot", &o->a64_npivots, 20);
        o->a64_slot = off_arr(f, "maple_arange_64", "slot", &o->a64_nslots, 21);
        o->a64_meta = off_of(f, "maple_arange_64", "meta");
        o->dense_slot = off_arr(f, "maple_node", "slot", &o->dense_nslots, 63);
        if (o->r64_pivot == NONE) { o->r64_pivot = 4; o->r64_npivots = 31; }
        if (o->r64_slot == NONE) { o->r64_slot = 128; o->r64_nslots = 32; }
        if (o->r64_meta == NONE) o->r64_meta = 252;
        if (o->a64_pivot == NONE) { o->a64_pivot = 4; o->a64_npivots = 20; }
        if (o->a64_slot == NONE) { o->a64_slot = 84; o->a64_nslots = 21; }
        if (o->a64_meta == NONE) o->a64_meta = 252;
        if (o->dense_slot == NONE) { o->dense_slot = 4; o->dense_nslots = 63; }
    } else {
        o->r64_pivot = off_arr(f, "maple_range_64", "pivot", &o->r64_npivots, 15);
        o->r64_slot = off_arr(f, "maple_range_64", "slot", &o->r64_nslots, 16);
        o->r64_meta = off_of(f, "maple_range_64", "meta");
        o->a64_pivot = off_arr(f, "maple_arange_64", "pivot", &o->a64_npivots, 9);
        o->a64_slot = off_arr(f, "maple_arange_64", "slot", &o->a64_nslots, 10);
        o->a64_meta = off_of(f, "maple_arange_64", "meta");
        o->dense_slot = off_arr(f, "maple_node", "slot", &o->dense_nslots, 31);
        if (o->r64_pivot == NONE) { o->r64_pivot = 8; o->r64_npivots = 15; }
        if (o->r64_slot == NONE) { o->r64_slot = 128; o->r64_nslots = 16; }
        if (o->r64_meta == NONE) o->r64_meta = 248;
        if (o->a64_pivot == NONE) { o->a64_pivot = 8; o->a64_npivots = 9; }
        if (o->a64_slot == NONE) { o->a64_slot = 80; o->a64_nslots = 10; }
        if (o->a64_meta == NONE) o->a64_meta = 240;
        if (o->dense_slot == NONE) { o->dense_slot = 8; o->dense_nslots = 31; }
    }

    o->file_mnt = off_of(f, "file", "f_path.mnt");
    o->file_dentry = off_of(f, "file", "f_path.dentry");
    o->file_inode = off_of(f, "file", "f_inode");
    o->dentry_parent = off_of(f, "dentry", "d_parent");
    o->dentry_name_len = off_of(f, "dentry", "d_name.len");
    o->dentry_name = off_of(f, "dentry", "d_name.name");
    o->dentry_hash_pprev = off_of(f, "dentry", "d_hash.pprev");
    o->inode_ino = off_of(f, "inode", "i_ino");
    o->inode_sb = off_of(f, "inode", "i_sb");
    o->sb_dev = off_of(f, "super_block", "s_dev");
    o->mount_mnt = off_of(f, "mount", "mnt");
    o->mount_parent = off_of(f, "mount", "mnt_parent");
    o->mount_mountpoint = off_of(f, "mount", "mnt_mountpoint");
    o->vfsmnt_root = off_of(f, "vfsmount", "mnt_root");
    o->vmops_name = off_of(f, "vm_operations_struct", "name");
    o->special_name = off_of(f, "vm_special_mapping", "name");
    o->anon_vma_name_name = off_of(f, "anon_vma_name", "name");

    const char *missing = NULL;
    if (o->task_tasks == NONE) missing = "task_struct.tasks";
    else if (o->task_pid == NONE) missing = "task_struct.pid";
    else if (o->task_tgid == NONE) missing = "task_struct.tgid";
    else if (o->task_comm == NONE) missing = "task_struct.comm";
    else if (o->task_mm == NONE) missing = "task_struct.mm";
    else if (o->mm_pgd == NONE) missing = "mm_struct.pgd";
    if (missing) {
        snprintf(why, whylen, "the profile has no %s", missing);
        return -1;
    }
    return 0;
}

/* ---- KASLR -------------------------------------------------------------- */

/* The vCPU facts that help: CR4's paging bits and CR3 of the first vCPU
 * with paging on.  (EFER is not in every dump's notes, so long mode is not
 * told from it: the profile says whether the kernel is 64- or 32-bit.) */
struct vcpu_hint {
    bool have;
    bool la57;
    bool pae;
    uint64_t cr3;
    unsigned id;
};

static void vcpu_hint(struct vm *vm, struct vcpu_hint *h)
{
    memset(h, 0, sizeof *h);
    int n = vm_vcpu_count(vm);
    /* Paging on (CR0.PG) with a root: one with CR4.PAE first (every vCPU
     * of an x86-64 or PAE guest), else any (a 2-level 32-bit guest). */
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < n && c < 1024; c++) {
            struct vmem_vcpu v;
            if (vm_vcpu_state(vm, (unsigned)c, &v) < 0 || !(v.valid & VMEM_VCPU_CRS))
                continue;
            if (!(v.cr0 & (1ull << 31)) || !v.cr3 || (pass == 0 && !(v.cr4 & (1ull << 5))))
                continue;
            h->have = true;
            h->pae = (v.cr4 >> 5) & 1;
            h->la57 = (v.cr4 >> 12) & 1;
            h->cr3 = v.cr3;
            h->id = v.id;
            return;
        }
    }
}

static bool phys_read_u32(struct vm *vm, uint64_t gpa, uint32_t *v)
{
    uint8_t b[4];
    if (vm_read_phys(vm, gpa, b, 4, VM_READ_STRICT) != 4)
        return false;
    *v = ld32(b);
    return true;
}

/* A guest pointer (psize bytes) in physical memory. */
static bool phys_read_ptr(struct vm *vm, uint64_t gpa, unsigned psize, uint64_t *v)
{
    uint8_t b[8];
    if (vm_read_phys(vm, gpa, b, psize, VM_READ_STRICT) != (ssize_t)psize)
        return false;
    *v = psize == 4 ? ld32(b) : ld64(b);
    return true;
}

static bool maps_to(struct vmem_as *as, uint64_t gva, uint64_t gpa)
{
    uint64_t got;
    return vmem_as_translate(as, gva, &got, NULL) == 0 && got == gpa;
}

static const char *mode_name(enum vmem_paging_mode m)
{
    switch (m) {
    case VMEM_PAGING_X86_64_5L: return "x86-64 5-level";
    case VMEM_PAGING_X86_64_4L: return "x86-64 4-level";
    case VMEM_PAGING_PAE: return "x86 PAE";
    case VMEM_PAGING_X86_32: return "x86 32-bit";
    }
    return "?";
}

/* Sign-extend a 32-bit difference: i386 shifts as two's complement. */
static uint64_t sext32(uint64_t v)
{
    return (uint64_t)(int64_t)(int32_t)(uint32_t)v;
}

/* kaslr_try for an i386 kernel (see the header comment): every link
 * address X of the image runs at X + vshift and sits physically at
 * X + vshift - PAGE_OFFSET. */
static bool kaslr_try32(struct linux_os *os, const struct isf *f, uint64_t banner_gpa,
                        const struct vcpu_hint *hint, uint64_t s_banner, uint64_t s_dtb,
                        uint64_t s_init_task, char *why, size_t whylen)
{
    if (((banner_gpa - s_banner) & (PHYS_ALIGN32 - 1)) != 0) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 " gives a physical shift "
                 "that is not 8 KiB aligned (the printk log's copy?)", banner_gpa);
        return false;
    }
    /* The image is one piece: physical places relative to the banner's
     * (all below 4 GiB: a 32-bit CR3 must reach the root). */
    if (banner_gpa + s_dtb < s_banner || banner_gpa + s_init_task < s_banner ||
        banner_gpa + s_dtb - s_banner >= X86_32_TOP ||
        banner_gpa + s_init_task - s_banner >= X86_32_TOP) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 ": the profile's symbols do "
                 "not fit below it", banner_gpa);
        return false;
    }
    uint64_t dtb = banner_gpa + s_dtb - s_banner;
    uint64_t it_phys = banner_gpa + s_init_task - s_banner;

    /* PAE or not: a vCPU's CR4.PAE, else the profile's pgd_t (8 bytes
     * with PAE); both are tried. */
    enum vmem_paging_mode modes[2];
    const char *source[2];
    uint64_t pgd_size = 0;
    bool pae_first = true;
    if (hint->have) {
        pae_first = hint->pae;
        source[0] = "vCPU CR4.PAE";
        source[1] = "tried (vCPU CR4 disagreed)";
    } else if (isf_type_size(f, "pgd_t", &pgd_size) == 0 && (pgd_size == 4 || pgd_size == 8)) {
        pae_first = pgd_size == 8;
        source[0] = "the profile's pgd_t size";
        source[1] = "tried (pgd_t size disagreed)";
    } else {
        source[0] = source[1] = "tried";
    }
    modes[0] = pae_first ? VMEM_PAGING_PAE : VMEM_PAGING_X86_32;
    modes[1] = pae_first ? VMEM_PAGING_X86_32 : VMEM_PAGING_PAE;

    /* Virtual shift candidates: init_task's self pointers, then the usual
     * PAGE_OFFSETs (3G/1G and the other VMSPLIT choices). */
    uint64_t cand[7];
    int ncand = 0;
    uint64_t ptr;
    if (os->o.task_real_parent != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_real_parent, 4, &ptr))
        cand[ncand++] = sext32(ptr - s_init_task);
    if (os->o.task_group_leader != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_group_leader, 4, &ptr))
        cand[ncand++] = sext32(ptr - s_init_task);
    static const uint64_t page_offsets[] = {
        0xc0000000ull, 0xb0000000ull, 0x80000000ull, 0x78000000ull, 0x40000000ull,
    };
    for (size_t i = 0; i < sizeof page_offsets / sizeof page_offsets[0]; i++)
        cand[ncand++] = sext32(banner_gpa + page_offsets[i] - s_banner);

    for (int m = 0; m < 2; m++) {
        struct vmem_as *as = vmem_as_new(modes[m], dtb, &os->rd);
        if (!as) {
            snprintf(why, whylen, "out of memory");
            return false;
        }
        for (int c = 0; c < ncand; c++) {
            uint64_t vshift = cand[c];
            uint64_t va = s_banner + vshift;
            /* PAGE_OFFSET = the banner's virtual minus physical place: at
             * least 1 GiB (VMSPLIT_1G), 16 MiB aligned. */
            uint64_t page_offset = va - banner_gpa;
            if ((vshift & (PHYS_ALIGN32 - 1)) || va >= X86_32_TOP ||
                page_offset < 0x40000000ull || page_offset > 0xc0000000ull ||
                (page_offset & 0xffffff) || !maps_to(as, va, banner_gpa))
                continue;
            os->pshift = vshift;
            os->vshift = vshift;
            os->kmap = page_offset;
            os->kptr_lo = page_offset;
            os->dtb = dtb;
            os->mode = modes[m];
            os->mode_source = source[m];
            os->kas = as;
            os->banner_gpa = banner_gpa;
            return true;
        }
        vmem_as_free(as);
    }
    snprintf(why, whylen, "banner at 0x%" PRIx64 ": linux_banner does not translate "
             "to it through swapper_pg_dir at 0x%" PRIx64 " with any virtual shift "
             "(PAE or 32-bit paging)", banner_gpa, dtb);
    return false;
}

/* Try to establish the kernel's layout with profile f and the banner found
 * at banner_gpa.  On success fills os->{pshift, vshift, kmap, dtb, mode, kas}. */
static bool kaslr_try(struct linux_os *os, const struct isf *f, uint64_t banner_gpa,
                      const struct vcpu_hint *hint, char *why, size_t whylen)
{
    uint64_t s_banner, s_dtb, s_init_task;
    if (isf_symbol(f, "linux_banner", &s_banner) < 0) {
        snprintf(why, whylen, "the profile has no linux_banner symbol");
        return false;
    }
    bool i386 = s_banner < X86_32_TOP;
    if (!i386 && s_banner < KMAP_X64) {
        snprintf(why, whylen, "the profile is for no x86 kernel layout known here "
                 "(linux_banner at 0x%" PRIx64 ")", s_banner);
        return false;
    }
    if (i386 != (os->o.psize == 4)) {
        snprintf(why, whylen, "the profile's pointer size (%u) does not fit its "
                 "linux_banner at 0x%" PRIx64, os->o.psize, s_banner);
        return false;
    }
    if (isf_symbol(f, "init_top_pgt", &s_dtb) < 0 &&
        isf_symbol(f, "init_level4_pgt", &s_dtb) < 0 &&
        isf_symbol(f, "swapper_pg_dir", &s_dtb) < 0) {
        snprintf(why, whylen, i386 ? "the profile has no swapper_pg_dir symbol"
                                   : "the profile has no init_top_pgt symbol");
        return false;
    }
    if (isf_symbol(f, "init_task", &s_init_task) < 0) {
        snprintf(why, whylen, "the profile has no init_task symbol");
        return false;
    }
    if ((banner_gpa & 0xfff) != (s_banner & 0xfff)) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 " is not where linux_banner "
                 "would be (page offset differs)", banner_gpa);
        return false;
    }
    os->psize = os->o.psize;
    if (i386)
        return kaslr_try32(os, f, banner_gpa, hint, s_banner, s_dtb, s_init_task,
                           why, whylen);
    uint64_t pshift = banner_gpa - (s_banner - KMAP_X64);
    if (pshift & (PHYS_ALIGN - 1)) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 " gives a physical shift "
                 "that is not 2 MiB aligned (the printk log's copy?)", banner_gpa);
        return false;
    }
    uint64_t dtb = s_dtb - KMAP_X64 + pshift;
    uint64_t it_phys = s_init_task - KMAP_X64 + pshift;

    /* Paging mode candidates, the likeliest first. */
    enum vmem_paging_mode modes[2];
    const char *source[2];
    int nmodes = 0;
    uint64_t s_l5;
    uint32_t l5 = 0;
    if (hint->have) {
        modes[0] = hint->la57 ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L;
        modes[1] = hint->la57 ? VMEM_PAGING_X86_64_4L : VMEM_PAGING_X86_64_5L;
        source[0] = "vCPU CR4.LA57";
        source[1] = "tried (vCPU CR4 disagreed)";
        nmodes = 2;
    } else if (isf_symbol(f, "__pgtable_l5_enabled", &s_l5) == 0 &&
               s_l5 >= KMAP_X64 &&
               phys_read_u32(os->vm, s_l5 - KMAP_X64 + pshift, &l5) && l5 <= 1) {
        modes[0] = l5 ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L;
        modes[1] = l5 ? VMEM_PAGING_X86_64_4L : VMEM_PAGING_X86_64_5L;
        source[0] = "kernel's __pgtable_l5_enabled";
        source[1] = "tried (__pgtable_l5_enabled disagreed)";
        nmodes = 2;
    } else {
        modes[0] = VMEM_PAGING_X86_64_4L;
        modes[1] = VMEM_PAGING_X86_64_5L;
        source[0] = source[1] = "tried";
        nmodes = 2;
    }

    /* Virtual shift candidates from init_task's self pointers. */
    uint64_t cand[2];
    int ncand = 0;
    uint64_t ptr;
    if (os->o.task_real_parent != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_real_parent, 8, &ptr))
        cand[ncand++] = ptr - s_init_task;
    if (os->o.task_group_leader != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_group_leader, 8, &ptr))
        cand[ncand++] = ptr - s_init_task;

    for (int m = 0; m < nmodes; m++) {
        struct vmem_as *as = vmem_as_new(modes[m], dtb, &os->rd);
        if (!as) {
            snprintf(why, whylen, "out of memory");
            return false;
        }
        bool found = false;
        uint64_t vshift = 0;
        for (int c = 0; c < ncand && !found; c++) {
            if ((cand[c] & (PHYS_ALIGN - 1)) == 0 &&
                maps_to(as, s_banner + cand[c], banner_gpa)) {
                found = true;
                vshift = cand[c];
            }
        }
        /* Every shift KASLR can choose: 2 MiB steps over the 1 GiB image
         * area (and a little below the link address). */
        for (int64_t k = -8; !found && k < (int64_t)(KIMAGE_MAX / PHYS_ALIGN); k++) {
            uint64_t vs = (uint64_t)(k * (int64_t)PHYS_ALIGN);
            if (maps_to(as, s_banner + vs, banner_gpa)) {
                found = true;
                vshift = vs;
            }
        }
        if (found) {
            os->pshift = pshift;
            os->vshift = vshift;
            os->kmap = KMAP_X64;
            os->dtb = dtb;
            os->mode = modes[m];
            os->mode_source = source[m];
            os->kas = as;
            os->banner_gpa = banner_gpa;
            return true;
        }
        vmem_as_free(as);
    }
    snprintf(why, whylen, "banner at 0x%" PRIx64 ": linux_banner does not translate "
             "to it through init_top_pgt at 0x%" PRIx64 " with any virtual shift",
             banner_gpa, dtb);
    return false;
}

/* The page-table root a CR3 value names in this paging mode. */
static uint64_t cr3_root(enum vmem_paging_mode mode, uint64_t cr3)
{
    switch (mode) {
    case VMEM_PAGING_PAE: return cr3 & 0xffffffe0ull;
    case VMEM_PAGING_X86_32: return cr3 & 0xfffff000ull;
    default: return cr3 & 0x000ffffffffff000ull;     /* PCID/flags, bit 63 */
    }
}

/* Compare a vCPU's CR3 with what we derived and say how it relates. */
static void cr3_crosscheck(struct linux_os *os, const struct vcpu_hint *h,
                           uint64_t s_banner)
{
    if (!h->have) {
        snprintf(os->cr3_check, sizeof os->cr3_check, "no vCPU state in the source");
        return;
    }
    uint64_t root = cr3_root(os->mode, h->cr3);
    if (root == os->dtb) {
        snprintf(os->cr3_check, sizeof os->cr3_check,
                 "vCPU %u CR3 0x%" PRIx64 " is the kernel page-table root", h->id, h->cr3);
        return;
    }
    if (root == os->dtb + 0x1000) {
        snprintf(os->cr3_check, sizeof os->cr3_check,
                 "vCPU %u CR3 0x%" PRIx64 " is the kernel root's PTI user copy", h->id,
                 h->cr3);
        return;
    }
    /* A process's root: PTI's user copy (+4 KiB of a page-aligned kernel
     * copy) maps little of the kernel, so look at the kernel copy. */
    uint64_t kroot = (root & 0xfff) ? root : root & ~0x1000ull;
    struct vmem_as *as = vmem_as_new(os->mode, kroot, &os->rd);
    bool same = as && maps_to(as, s_banner + os->vshift, os->banner_gpa);
    vmem_as_free(as);
    snprintf(os->cr3_check, sizeof os->cr3_check,
             same ? "vCPU %u CR3 0x%" PRIx64 " is a process page table; it maps the kernel the same way"
                  : "vCPU %u CR3 0x%" PRIx64 " does NOT map linux_banner where the kernel root does",
             h->id, h->cr3);
    if (!same)
        vmem_log(LOG_WARNING, "VM '%s': %s", vm_name(os->vm), os->cr3_check);
}

/* ---- profiles in a directory -------------------------------------------- */

/* ---- the banner scan ------------------------------------------------------ */

/* A banner candidate at p (which starts with "Linux version "): its length
 * up to '\n' or NUL, or 0 when it does not look like a kernel banner. */
static size_t banner_len(const uint8_t *p, size_t avail)
{
    static const char pfx[] = "Linux version ";
    size_t pl = sizeof pfx - 1;
    if (avail <= pl + 1 || p[pl] < '0' || p[pl] > '9')
        return 0;
    size_t max = avail < BANNER_MAX ? avail : BANNER_MAX;
    for (size_t i = pl; i < max; i++) {
        if (p[i] == '\n' || p[i] == 0)
            return i >= pl + 8 ? i : 0;
        if (p[i] < 0x20 || p[i] > 0x7e)
            return 0;
    }
    return 0;
}

struct scan_state {
    struct isf_catalog dir;         /* --symbols DIR, read on first need */
    bool dir_loaded;
    char **seen;            /* distinct banners already judged */
    size_t nseen;
    char first_unmatched[BANNER_MAX + 1];
    char last_why[256];
    bool why_at_banner;     /* last_why is about a copy where linux_banner can be */
    bool scan_cut;          /* RAM past SCAN_RAM_MAX was left unscanned */
    unsigned tries;
    struct isf *loaded;     /* the profile loaded from the dir, kept */
    char *loaded_path;
};

static bool seen_banner(struct scan_state *s, const char *b)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i], b) == 0)
            return true;
    return false;
}

static void remember_banner(struct scan_state *s, const char *b)
{
    char **n = realloc(s->seen, (s->nseen + 1) * sizeof *n);
    if (!n)
        return;
    s->seen = n;
    s->seen[s->nseen] = strdup(b);
    if (s->seen[s->nseen])
        s->nseen++;
}

/* One banner occurrence.  Returns true when the OS is established. */
static bool try_banner(struct linux_os *os, const struct linux_options *opt,
                       struct scan_state *s, uint64_t gpa, const char *banner,
                       const struct vcpu_hint *hint)
{
    if (s->tries++ >= BANNER_TRIES)
        return false;
    const struct isf *f = os->isf;
    if (!f) {
        /* Choose by banner from the symbols directory. */
        if (!opt->symbols_dir)
            return false;
        if (s->loaded && isf_banner_equal(isf_banner(s->loaded), banner)) {
            f = s->loaded;
        } else {
            if (seen_banner(s, banner))
                return false;        /* judged before: no profile */
            remember_banner(s, banner);
            if (!s->dir_loaded) {
                char err[256];
                s->dir_loaded = true;
                if (isf_catalog_load(&s->dir, opt->symbols_dir, err, sizeof err) != 0)
                    snprintf(s->last_why, sizeof s->last_why, "%s", err);
            }
            const char *path = isf_catalog_find(&s->dir, banner);
            if (!path) {
                if (!s->first_unmatched[0])
                    snprintf(s->first_unmatched, sizeof s->first_unmatched, "%s", banner);
                return false;
            }
            char err[256];
            struct isf *nf = isf_load(path, err, sizeof err);
            if (!nf) {
                snprintf(s->last_why, sizeof s->last_why, "%s", err);
                return false;
            }
            isf_free(s->loaded);
            free(s->loaded_path);
            s->loaded = nf;
            s->loaded_path = strdup(path);
            f = nf;
        }
    }
    char why[256];
    if (load_offsets(f, &os->o, why, sizeof why) < 0 ||
        !kaslr_try(os, f, gpa, hint, why, sizeof why)) {
        /* Why a copy of the banner at linux_banner's page offset failed
         * says more than why a later one elsewhere (the printk log's)
         * did: keep the former. */
        uint64_t sb;
        bool at_banner = isf_symbol(f, "linux_banner", &sb) == 0 && (gpa & 0xfff) == (sb & 0xfff);
        if (at_banner || !s->why_at_banner) {
            snprintf(s->last_why, sizeof s->last_why, "%s", why);
            s->why_at_banner = at_banner;
        }
        return false;
    }
    if (!os->isf) {
        os->isf = os->isf_owned = s->loaded;
        os->profile_path = s->loaded_path;
        s->loaded = NULL;
        s->loaded_path = NULL;
        os->chosen_by = "banner match in the symbols directory";
    }
    os->banner = strdup(banner);
    return true;
}

/* Look for banners in buf[0, n) (physically contiguous from gpa), at
 * starts below limit (the rest is overlap to finish a banner). */
static bool scan_buf(struct linux_os *os, const struct linux_options *opt,
                     struct scan_state *s, const struct vcpu_hint *hint,
                     const uint8_t *buf, size_t n, size_t limit, uint64_t gpa)
{
    static const char pfx[] = "Linux version ";
    const size_t pl = sizeof pfx - 1;
    const uint8_t *p = buf;
    while (s->tries < BANNER_TRIES) {
        size_t off = (size_t)(p - buf);
        if (off >= limit)
            break;
        p = memmem(p, n - off, pfx, pl);
        if (!p || (size_t)(p - buf) >= limit)
            break;
        size_t blen = banner_len(p, n - (size_t)(p - buf));
        if (blen) {
            char b[BANNER_MAX + 1];
            memcpy(b, p, blen);
            b[blen] = 0;
            if (try_banner(os, opt, s, gpa + (uint64_t)(p - buf), b, hint))
                return true;
        }
        p += pl;
    }
    return false;
}

/* Scan guest-physical [start, end) in SCAN_CHUNK pieces. */
static bool scan_phys(struct linux_os *os, const struct linux_options *opt,
                      struct scan_state *s, const struct vcpu_hint *hint,
                      uint64_t start, uint64_t end, uint8_t *buf)
{
    for (uint64_t gpa = start; gpa < end && s->tries < BANNER_TRIES; gpa += SCAN_CHUNK) {
        uint64_t left = end - gpa;
        size_t want = left < SCAN_CHUNK + SCAN_OVERLAP ? (size_t)left
                                                       : SCAN_CHUNK + SCAN_OVERLAP;
        ssize_t got = vm_read_phys(os->vm, gpa, buf, want, VM_READ_PAD);
        if (got <= 0)
            continue;
        size_t n = (size_t)got;
        if (scan_buf(os, opt, s, hint, buf, n, n < SCAN_CHUNK ? n : SCAN_CHUNK, gpa))
            return true;
        if (end - gpa <= SCAN_CHUNK)
            break;
    }
    return false;
}

/* A forced profile says where, modulo CONFIG_PHYSICAL_ALIGN, the banner
 * must be: probe that one spot of every 2 MiB of RAM first. */
static bool scan_stride(struct linux_os *os, const struct linux_options *opt,
                        struct scan_state *s, const struct vcpu_hint *hint)
{
    uint64_t sym;
    if (!os->isf || isf_symbol(os->isf, "linux_banner", &sym) < 0 ||
        (sym < KMAP_X64 && sym >= X86_32_TOP))
        return false;
    /* __START_KERNEL_map (and i386's PAGE_OFFSET) are 2 MiB multiples: the
     * banner's offset in its 2 MiB is the link address's. */
    uint64_t rem = sym & (PHYS_ALIGN - 1);
    const struct vmem_range *r;
    size_t nr;
    vm_ranges(os->vm, &r, &nr);
    uint8_t b[BANNER_MAX];
    for (size_t i = 0; i < nr; i++) {
        if (r[i].kind != VMEM_RANGE_RAM)
            continue;
        uint64_t p = (r[i].start & ~(PHYS_ALIGN - 1)) + rem;
        for (; p < r[i].end && s->tries < BANNER_TRIES; p += PHYS_ALIGN) {
            if (p < r[i].start)
                continue;
            size_t want = r[i].end - p < BANNER_MAX ? (size_t)(r[i].end - p) : BANNER_MAX;
            ssize_t got = vm_read_phys(os->vm, p, b, want, VM_READ_PAD);
            if (got > 14 && memcmp(b, "Linux version ", 14) == 0 &&
                scan_buf(os, opt, s, hint, b, (size_t)got, 1, p))
                return true;
        }
    }
    return false;
}

/* With a vCPU's CR3, the kernel image is where the kernel mapped it:
 * [__START_KERNEL_map, +1 GiB) virtually.  Scan those frames first (tens of
 * MiB, not all of RAM).  The root may be PTI's user copy (+4 KiB), which
 * maps little of the kernel: try the kernel copy too. */
static bool scan_cr3(struct linux_os *os, const struct linux_options *opt,
                     struct scan_state *s, const struct vcpu_hint *hint, uint8_t *buf)
{
    if (!hint->have || !hint->pae)      /* no x86-64 root without PAE */
        return false;
    uint64_t root = hint->cr3 & 0x000ffffffffff000ull;
    uint64_t roots[2] = {root & ~0x1000ull, root};
    for (int k = 0; k < (root & 0x1000 ? 2 : 1); k++) {
        struct vmem_as *as = vmem_as_new(hint->la57 ? VMEM_PAGING_X86_64_5L
                                                    : VMEM_PAGING_X86_64_4L,
                                         roots[k], &os->rd);
        if (!as)
            return false;
        uint64_t va = vmem_as_va(as, KMAP_X64), limit = va + KIMAGE_MAX;
        unsigned rounds = 0, chunks = 0;
        bool mapped_any = false, found = false;
        while (va < limit && rounds++ < 64 && !found) {
            uint64_t rs, re;
            int rc = vmem_as_next_mapped(as, va, limit, &rs, &re);
            if (rc == -ENXIO || (rc < 0 && rc != -EAGAIN))
                break;
            if (re <= rs) {
                va = re > va ? re : va + VMEM_PAGE_SIZE;
                continue;
            }
            mapped_any = true;
            /* Physically contiguous 1 MiB pieces where they are. */
            for (uint64_t c = rs; c < re && !found && chunks++ < 4096; c += SCAN_CHUNK) {
                uint64_t ce = re - c < SCAN_CHUNK ? re : c + SCAN_CHUNK;
                uint64_t g0, g1;
                if (vmem_as_translate(as, vmem_as_gva(as, c), &g0, NULL) < 0 ||
                    vmem_as_translate(as, vmem_as_gva(as, ce - 1), &g1, NULL) < 0)
                    continue;
                if (g1 - g0 == ce - 1 - c) {
                    found = scan_phys(os, opt, s, hint, g0, g1 + 1, buf);
                    continue;
                }
                for (uint64_t pg = c; pg < ce && !found; pg += VMEM_PAGE_SIZE) {
                    if (vmem_as_translate(as, vmem_as_gva(as, pg), &g0, NULL) == 0)
                        found = scan_phys(os, opt, s, hint, g0 & ~0xfffull,
                                          (g0 & ~0xfffull) + VMEM_PAGE_SIZE, buf);
                }
            }
            va = re;
        }
        vmem_as_free(as);
        if (found)
            return true;
        if (mapped_any)
            break;
    }
    return false;
}

static bool scan_for_kernel(struct linux_os *os, const struct linux_options *opt,
                            struct scan_state *s, const struct vcpu_hint *hint)
{
    if (scan_stride(os, opt, s, hint))
        return true;
    uint8_t *buf = malloc(SCAN_CHUNK + SCAN_OVERLAP);
    if (!buf)
        return false;
    bool found = scan_cr3(os, opt, s, hint, buf);
    const struct vmem_range *r;
    size_t nr;
    vm_ranges(os->vm, &r, &nr);
    uint64_t budget = SCAN_RAM_MAX;
    for (size_t i = 0; i < nr && !found && budget && s->tries < BANNER_TRIES; i++) {
        if (r[i].kind != VMEM_RANGE_RAM)
            continue;
        uint64_t len = r[i].end - r[i].start < budget ? r[i].end - r[i].start : budget;
        found = scan_phys(os, opt, s, hint, r[i].start, r[i].start + len, buf);
        budget -= len;
        s->scan_cut = !found && !budget && (len < r[i].end - r[i].start || i + 1 < nr);
    }
    free(buf);
    return found;
}

/* ---- open / close ---------------------------------------------------------- */

static uint64_t runtime_sym(const struct linux_os *os, const char *name)
{
    uint64_t a;
    if (isf_symbol(os->isf, name, &a) < 0 || a < os->kmap)
        return 0;
    return a + os->vshift;
}

struct linux_os *linux_os_open(struct vm *vm, const struct linux_options *opt,
                               char *why, size_t whylen)
{
    struct linux_os *os = calloc(1, sizeof *os);
    if (!os) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    os->vm = vm_get(vm);
    vm_phys_reader(vm, &os->rd);
    pthread_mutex_init(&os->lock, NULL);
    os->immutable = vm_immutable(vm);
    os->max_age_ns = opt->tasks_max_age_ns ? opt->tasks_max_age_ns : LIVE_MAX_AGE_NS;

    if (opt->isf) {
        os->isf = opt->isf;
        os->chosen_by = "profile handed over by the caller (banner not checked)";
    } else if (opt->profile) {
        char err[256];
        os->isf_owned = isf_load(opt->profile, err, sizeof err);
        if (!os->isf_owned) {
            snprintf(why, whylen, "profile %s", err);
            linux_os_close(os);
            return NULL;
        }
        os->isf = os->isf_owned;
        os->profile_path = strdup(opt->profile);
        os->chosen_by = "--profile (banner not checked)";
    } else if (!opt->symbols_dir) {
        snprintf(why, whylen, "no kernel profile: give --symbols DIR or --profile FILE");
        linux_os_close(os);
        return NULL;
    }

    struct vcpu_hint hint;
    vcpu_hint(vm, &hint);
    struct scan_state s;
    memset(&s, 0, sizeof s);
    bool ok = scan_for_kernel(os, opt, &s, &hint);
    if (!ok) {
        if (s.tries == 0 && s.scan_cut)
            snprintf(why, whylen, "no Linux kernel banner where a vCPU's page "
                     "tables map the kernel, nor in the first %llu GiB of RAM "
                     "(not scanned further; a kernel loaded higher is found "
                     "with --profile)", (unsigned long long)(SCAN_RAM_MAX >> 30));
        else if (s.tries == 0)
            snprintf(why, whylen, "no Linux kernel banner in physical memory");
        else if (!os->isf && s.first_unmatched[0] && !s.last_why[0])
            snprintf(why, whylen, "no profile in %s (%zu files) matches '%.200s'",
                     opt->symbols_dir, s.dir.n, s.first_unmatched);
        else
            snprintf(why, whylen, "Linux banner found but the kernel could not be "
                     "located: %s", s.last_why[0] ? s.last_why : "no usable banner");
    }
    isf_free(s.loaded);
    free(s.loaded_path);
    for (size_t i = 0; i < s.nseen; i++)
        free(s.seen[i]);
    free(s.seen);
    isf_catalog_free(&s.dir);
    if (!ok) {
        linux_os_close(os);
        return NULL;
    }

    /* Release: the word after "Linux version ". */
    const char *rel = os->banner + strlen("Linux version ");
    size_t rl = strcspn(rel, " ");
    if (rl >= sizeof os->release)
        rl = sizeof os->release - 1;
    memcpy(os->release, rel, rl);
    os->release[rl] = 0;

    uint64_t s_banner = 0;
    isf_symbol(os->isf, "linux_banner", &s_banner);
    cr3_crosscheck(os, &hint, s_banner);

    os->init_task = runtime_sym(os, "init_task");
    os->sym_special_mapping_name = runtime_sym(os, "special_mapping_name");
    os->sym_gate_vma_name = runtime_sym(os, "gate_vma_name");
    os->gate_vma = runtime_sym(os, "gate_vma");
    uint64_t vm_mode_sym = runtime_sym(os, "vsyscall_mode");
    uint32_t vmode;
    /* enum { EMULATE, XONLY, NONE }: the gate VMA is shown unless NONE. */
    os->vsyscall_on = os->gate_vma && vm_mode_sym &&
                      kread32(os, vm_mode_sym, &vmode) == 0 && vmode < 2;
    os->have_anon_vma_name = runtime_sym(os, "anon_vma_name_alloc") != 0 &&
                             os->o.anon_vma_name_name != NONE;

    /* init_task must be swapper: otherwise the profile does not fit. */
    char comm[17] = "";
    if (kread(os, os->init_task + (uint64_t)os->o.task_comm, comm, 16) < 0 ||
        strncmp(comm, "swapper", 7) != 0) {
        snprintf(why, whylen, "the profile does not fit this kernel: init_task at "
                 "0x%" PRIx64 " is not 'swapper'", os->init_task);
        linux_os_close(os);
        return NULL;
    }
    vmem_log(LOG_INFO, "VM '%s': Linux %s, KASLR virtual shift 0x%" PRIx64
             ", physical shift 0x%" PRIx64 ", dtb 0x%" PRIx64 ", %s paging",
             vm_name(vm), os->release, os->vshift, os->pshift, os->dtb,
             is_32bit(os) ? mode_name(os->mode)
             : os->mode == VMEM_PAGING_X86_64_5L ? "5-level" : "4-level");
    return os;
}

static void snap_put(struct snap *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->pub.task);
        free(s);
    }
}

void linux_os_close(struct linux_os *os)
{
    if (!os)
        return;
    snap_put(os->snap);
    vmem_as_free(os->kas);
    isf_free(os->isf_owned);
    free(os->profile_path);
    free(os->banner);
    pthread_mutex_destroy(&os->lock);
    vm_put(os->vm);
    free(os);
}

enum vmem_paging_mode linux_os_paging_mode(const struct linux_os *os)
{
    return os->mode;
}

uint64_t linux_os_kernel_dtb(const struct linux_os *os)
{
    return os->dtb;
}

/* ---- tasks --------------------------------------------------------------- */

/* fs/proc/array.c task_state_array, indexed as task_state_index() does. */
static const char *const state_names[] = {
    "R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
    "t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)", "I (idle)",
};

static char state_letter(uint64_t state, uint32_t exit_state)
{
    const uint64_t TASK_REPORT = 0x7f, TASK_IDLE = 0x402, TASK_RTLOCK_WAIT = 0x1000;
    uint64_t s = (state | exit_state) & TASK_REPORT;
    if (state == TASK_IDLE)
        s = TASK_REPORT + 1;
    else if (state == TASK_RTLOCK_WAIT)
        s = 2;
    unsigned idx = 0;
    while (s) {
        idx++;
        s >>= 1;
    }
    return state_names[idx][0];
}

static const char *state_name(char letter)
{
    for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
        if (state_names[i][0] == letter)
            return state_names[i];
    return "? (unknown)";
}

static void sanitize_comm(const char *in, char out[17])
{
    size_t i = 0;
    for (; i < 16 && in[i]; i++)
        out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[i] = 0;
}

/* One task_struct at gva into t.  False when its block cannot be read. */
static bool read_task(struct linux_os *os, uint64_t gva, struct linux_task *t)
{
    const struct lx_offsets *o = &os->o;
    long fields[] = { o->task_pid, o->task_tgid, o->task_comm + 16, o->task_mm + 8,
                      o->task_state, o->task_exit_state, o->task_flags,
                      o->task_real_parent, o->task_real_cred, o->task_signal };
    long lo = o->task_comm, hi = o->task_comm + 16;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i] == NONE)
            continue;
        if (fields[i] < lo)
            lo = fields[i];
        if (fields[i] + 8 > hi)
            hi = fields[i] + 8;
    }
    if (hi - lo > (long)TASK_BLOCK_MAX)
        return false;
    uint8_t blk[TASK_BLOCK_MAX];
    if (kread(os, gva + (uint64_t)lo, blk, (size_t)(hi - lo)) < 0)
        return false;
#define AT(off) (blk + ((off) - lo))
    memset(t, 0, sizeof *t);
    t->task_gva = gva;
    uint32_t pid = ld32(AT(o->task_pid)), tgid = ld32(AT(o->task_tgid));
    t->pid = tgid ? tgid : pid;
    char comm[17];
    memcpy(comm, AT(o->task_comm), 16);
    comm[16] = 0;
    sanitize_comm(comm, t->comm);
    uint64_t state = 0;
    if (o->task_state != NONE)
        state = o->task_state_size == 8 ? ld64(AT(o->task_state)) : ld32(AT(o->task_state));
    uint32_t exit_state = o->task_exit_state != NONE ? ld32(AT(o->task_exit_state)) : 0;
    t->state = state_letter(state, exit_state);
    uint32_t flags = o->task_flags != NONE ? ld32(AT(o->task_flags)) : 0;
    uint64_t mm = ldptr(os, AT(o->task_mm));
    uint64_t parent = o->task_real_parent != NONE ? ldptr(os, AT(o->task_real_parent)) : 0;
    uint64_t cred = o->task_real_cred != NONE ? ldptr(os, AT(o->task_real_cred)) : 0;
    uint64_t signal = o->task_signal != NONE ? ldptr(os, AT(o->task_signal)) : 0;
#undef AT
    uint32_t v;
    if (kptr_ok(os, parent) && kfield32(os, parent, o->task_tgid, &v) == 0)
        t->ppid = v;
    if (kptr_ok(os, cred)) {
        if (kfield32(os, cred, o->cred_uid, &v) == 0)
            t->uid = v;
        if (kfield32(os, cred, o->cred_euid, &v) == 0)
            t->euid = v;
    }
    t->nthreads = 1;
    if (kptr_ok(os, signal) && kfield32(os, signal, o->signal_nr_threads, &v) == 0 &&
        v >= 1 && v < (1u << 22)) {
        t->nthreads = v;                 /* what /proc's Threads: shows */
    } else if (o->task_thread_group != NONE) {
        /* Count the thread_group ring; a ring that does not come back to
         * its head within the bound (a loop into its middle) stops there. */
        uint64_t head = gva + (uint64_t)o->task_thread_group, p = 0;
        unsigned n = 1;
        if (kreadptr(os, head, &p) == 0)
            while (p != head && n < THREADS_MAX && kptr_ok(os, p) &&
                   kreadptr(os, p, &p) == 0)
                n++;
        t->nthreads = n;
    }
    t->kernel_thread = !kptr_ok(os, mm) || (flags & PF_KTHREAD);
    if (!t->kernel_thread) {
        uint64_t pgd, gpa;
        t->mm_gva = mm;
        if (kfieldptr(os, mm, o->mm_pgd, &pgd) == 0 && kptr_ok(os, pgd) &&
            vmem_as_translate(os->kas, pgd, &gpa, NULL) == 0)
            t->dtb = gpa;
    }
    return true;
}

static int cmp_task(const void *a, const void *b)
{
    const struct linux_task *x = a, *y = b;
    return x->pid < y->pid ? -1 : x->pid > y->pid ? 1 :
           x->task_gva < y->task_gva ? -1 : x->task_gva > y->task_gva;
}

/* Walk init_task.tasks: bounded, cycle-safe. */
static struct snap *walk_tasks(struct linux_os *os)
{
    struct snap *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->taken_ns = now_ns();
    size_t cap = 256;
    s->pub.task = malloc(cap * sizeof *s->pub.task);
    if (!s->pub.task) {
        free(s);
        return NULL;
    }
    struct addrset seen = {0}, pids = {0};
    uint32_t dup_pid = 0;
    const uint64_t off = (uint64_t)os->o.task_tasks;
    const uint64_t head = os->init_task + off;
    uint64_t next = 0;
    addrset_add(&seen, head);
    if (kreadptr(os, head, &next) < 0)
        s->pub.truncated = true;
    else {
        for (unsigned n = 0;; n++) {
            if (next == head)
                break;
            if (n >= TASKS_MAX || !kptr_ok(os, next) || (next & (os->psize - 1)) ||
                addrset_add(&seen, next) != 1) {
                s->pub.truncated = true;
                break;
            }
            struct linux_task t;
            if (!read_task(os, next - off, &t)) {
                s->pub.truncated = true;
                break;
            }
            /* A pid listed twice (a hostile or torn list) would show twice
             * in proc/: the first one walked stays. */
            int fresh = t.pid != 0 ? addrset_add(&pids, t.pid) : 0;
            if (fresh == 0 && t.pid != 0)
                dup_pid = dup_pid ? dup_pid : t.pid;
            if (fresh == 1) {          /* /proc does not show the idle task */
                if (s->pub.n == cap) {
                    struct linux_task *nt = realloc(s->pub.task, cap * 2 * sizeof *nt);
                    if (!nt) {
                        s->pub.truncated = true;
                        break;
                    }
                    s->pub.task = nt;
                    cap *= 2;
                }
                s->pub.task[s->pub.n++] = t;
            }
            if (kreadptr(os, next, &next) < 0) {
                s->pub.truncated = true;
                break;
            }
        }
    }
    addrset_free(&seen);
    addrset_free(&pids);
    if (dup_pid)
        vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': the task list names pid %u "
                             "more than once (a corrupt or hostile list): the "
                             "first one stays", vm_name(os->vm), dup_pid);
    qsort(s->pub.task, s->pub.n, sizeof *s->pub.task, cmp_task);
    if (s->pub.truncated)
        vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': the task list walk stopped "
                             "early after %zu tasks (bad pointer, loop or bound)",
                             vm_name(os->vm), s->pub.n);
    return s;
}

struct linux_tasks *linux_os_tasks(struct linux_os *os)
{
    pthread_mutex_lock(&os->lock);
    struct snap *s = os->snap;
    if (s && !os->immutable && now_ns() - s->taken_ns > os->max_age_ns) {
        os->snap = NULL;
        snap_put(s);
        s = NULL;
    }
    if (!s) {
        if (!os->immutable)
            vmem_as_flush(os->kas);
        s = walk_tasks(os);
        os->snap = s;
    }
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&os->lock);
    return s ? &s->pub : NULL;
}

void linux_tasks_put(struct linux_os *os, struct linux_tasks *t)
{
    (void)os;
    if (t)
        snap_put((struct snap *)((char *)t - offsetof(struct snap, pub)));
}

const struct linux_task *linux_tasks_find(const struct linux_tasks *t, uint32_t pid)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->task[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && t->task[lo].pid == pid ? &t->task[lo] : NULL;
}

void linux_os_flush(struct linux_os *os)
{
    pthread_mutex_lock(&os->lock);
    struct snap *s = os->snap;
    os->snap = NULL;
    pthread_mutex_unlock(&os->lock);
    snap_put(s);
    vmem_as_flush(os->kas);
}

/* ---- memory areas ----------------------------------------------------------- */

struct vma {
    uint64_t gva, start, end, flags, pgoff, file, ops, priv, anon_name;
};

struct vma_list {
    struct vma *v;
    size_t n, cap;
    struct addrset seen;
    bool truncated;
};

/* Read and check one vm_area_struct; add it when sane. */
static void vma_add(struct linux_os *os, uint64_t mm, struct vma_list *l, uint64_t gva)
{
    const struct lx_offsets *o = &os->o;
    if (!kptr_ok(os, gva) || (gva & (os->psize - 1)))
        return;
    if (l->n >= VMAS_MAX) {
        l->truncated = true;
        return;
    }
    int a = addrset_add(&l->seen, gva);
    if (a <= 0) {
        if (a < 0)
            l->truncated = true;
        return;
    }
    struct vma v = {.gva = gva};
    uint64_t vm_mm = 0;
    if (kfieldptr(os, gva, o->vma_start, &v.start) < 0 ||
        kfieldptr(os, gva, o->vma_end, &v.end) < 0 ||
        kfieldptr(os, gva, o->vma_flags, &v.flags) < 0)
        return;
    if (v.start >= v.end || (v.start & 0xfff) || (v.end & 0xfff) ||
        v.end > user_limit(os))
        return;
    if (o->vma_mm != NONE && (kfieldptr(os, gva, o->vma_mm, &vm_mm) < 0 || vm_mm != mm))
        return;
    kfieldptr(os, gva, o->vma_pgoff, &v.pgoff);
    kfieldptr(os, gva, o->vma_file, &v.file);
    kfieldptr(os, gva, o->vma_ops, &v.ops);
    kfieldptr(os, gva, o->vma_private, &v.priv);
    if (os->have_anon_vma_name && !v.file)
        kfieldptr(os, gva, o->vma_anon_name, &v.anon_name);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        struct vma *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) {
            l->truncated = true;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
}

/* xa_is_node(): ma_root holding a node (an encoded node pointer tagged
 * as an XArray internal entry).  Inside the tree, slots of internal nodes
 * hold maple_enodes: node | type << 3 | MAPLE_ENODE_NULL (4), untagged. */
static bool mt_root_is_node(uint64_t e)
{
    return (e & 3) == 2 && e > 4096;
}

struct mt_frame {
    uint64_t enode, min, max, parent;
    unsigned depth;
};

/* Collect the VMAs of a maple tree (mm->mm_mt).  Every node's parent
 * pointer must name the node we came from (dead nodes point to
 * themselves); depth, node count and the visited set bound the walk. */
static void maple_collect(struct linux_os *os, uint64_t mm, struct vma_list *l)
{
    const struct lx_offsets *o = &os->o;
    const unsigned ps = os->psize;          /* slots and pivots: 8 or 4 bytes */
    uint64_t tree = mm + (uint64_t)o->mm_mt_root;     /* maple_tree.ma_root */
    uint64_t root = 0;
    if (kreadptr(os, tree, &root) < 0) {
        l->truncated = true;
        return;
    }
    if (!root)
        return;
    if (!mt_root_is_node(root)) {
        vma_add(os, mm, l, root);            /* a single entry at index 0 */
        return;
    }
    /* The root node's parent is &mm->mm_mt | MA_ROOT_PARENT: compared
     * masked, like every parent pointer. */
    uint64_t mt_base = mm + (uint64_t)o->mm_mt;
    struct mt_frame stack[MAPLE_DEPTH_MAX * 16 + 16];
    size_t sp = 0;
    stack[sp++] = (struct mt_frame){root, 0, ulong_max(os), mt_base & ~0xffull, 1};
    struct addrset seen = {0};
    unsigned nodes = 0;
    uint8_t nb[256];
    while (sp) {
        struct mt_frame f = stack[--sp];
        uint64_t node = f.enode & ~0xffull;
        unsigned type = (unsigned)(f.enode >> 3) & 0xf;
        if (++nodes > MAPLE_NODES_MAX || !kptr_ok(os, node) ||
            addrset_add(&seen, node) != 1) {
            l->truncated = true;
            if (nodes > MAPLE_NODES_MAX)
                break;
            continue;
        }
        if (kread(os, node, nb, sizeof nb) < 0) {
            l->truncated = true;
            continue;
        }
        if ((ldptr(os, nb) & ~0xffull) != f.parent) {
            l->truncated = true;     /* stale or foreign node */
            continue;
        }
        long piv_off, slot_off;
        unsigned npiv, nslot, end;
        switch (type) {
        case 0:                      /* maple_dense: slots only */
            slot_off = o->dense_slot;
            nslot = o->dense_nslots;
            for (unsigned i = 0; i < nslot && slot_off + ps * (i + 1) <= 256; i++) {
                uint64_t e = ldptr(os, nb + slot_off + ps * i);
                if (e)
                    vma_add(os, mm, l, e);
            }
            continue;
        case 1:                      /* maple_leaf_64 */
        case 2:                      /* maple_range_64 */
            piv_off = o->r64_pivot;
            slot_off = o->r64_slot;
            npiv = o->r64_npivots;
            nslot = o->r64_nslots;
            if (piv_off + (long)ps * npiv > 256 || slot_off + (long)ps * nslot > 256 ||
                npiv == 0) {
                l->truncated = true;
                continue;
            }
            /* ma_data_end() */
            {
                uint64_t lastp = ldptr(os, nb + piv_off + ps * (npiv - 1));
                if (!lastp)
                    end = o->r64_meta >= 0 && o->r64_meta < 256 ? nb[o->r64_meta] : npiv;
                else if (lastp == f.max)
                    end = npiv - 1;
                else
                    end = npiv;
            }
            break;
        case 3:                      /* maple_arange_64 */
            piv_off = o->a64_pivot;
            slot_off = o->a64_slot;
            npiv = o->a64_npivots;
            nslot = o->a64_nslots;
            if (piv_off + (long)ps * npiv > 256 || slot_off + (long)ps * nslot > 256 ||
                npiv == 0) {
                l->truncated = true;
                continue;
            }
            end = o->a64_meta >= 0 && o->a64_meta < 256 ? nb[o->a64_meta] : npiv;
            break;
        default:
            l->truncated = true;
            continue;
        }
        if (end >= nslot)
            end = nslot - 1;
        bool leaf = type < 2;
        /* Children in reverse so the walk visits them in address order. */
        for (int i = (int)end; i >= 0; i--) {
            uint64_t e = ldptr(os, nb + slot_off + ps * (unsigned)i);
            if (!e)
                continue;
            if (leaf) {
                vma_add(os, mm, l, e);
                continue;
            }
            if (!kptr_ok(os, e & ~0xffull) || f.depth >= MAPLE_DEPTH_MAX ||
                sp >= sizeof stack / sizeof stack[0]) {
                l->truncated = true;
                continue;
            }
            uint64_t cmin = i == 0 || (unsigned)(i - 1) >= npiv
                                ? f.min : ldptr(os, nb + piv_off + ps * (unsigned)(i - 1)) + 1;
            uint64_t cmax = f.max;
            if ((unsigned)i < npiv) {
                uint64_t p = ldptr(os, nb + piv_off + ps * (unsigned)i);
                if (p)
                    cmax = p;
            }
            stack[sp++] = (struct mt_frame){e, cmin, cmax, node, f.depth + 1};
        }
    }
    addrset_free(&seen);
}

/* Pre-6.1: mm->mmap, vma->vm_next. */
static void mmap_list_collect(struct linux_os *os, uint64_t mm, struct vma_list *l)
{
    uint64_t v = 0;
    if (kfieldptr(os, mm, os->o.mm_mmap, &v) < 0) {
        l->truncated = true;
        return;
    }
    for (unsigned n = 0; v; n++) {
        size_t before = l->seen.n;
        if (n >= VMAS_MAX || !kptr_ok(os, v)) {
            l->truncated = true;
            return;
        }
        vma_add(os, mm, l, v);
        if (l->seen.n == before) {      /* a repeat: the list loops */
            l->truncated = true;
            return;
        }
        if (kfieldptr(os, v, os->o.vma_next, &v) < 0) {
            l->truncated = true;
            return;
        }
    }
}

static int cmp_vma(const void *a, const void *b)
{
    const struct vma *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* d_path() of a file, as far as memory allows: dentry names up through the
 * mounts to the global root.  Pseudo files (memfd, shared anonymous
 * memory: a root dentry that is not its mount's root) read as "/name
 * (deleted)", as simple_dname() writes them; unlinked files get
 * " (deleted)". */
static void file_path(struct linux_os *os, uint64_t file, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t dentry = 0, vfsmnt = 0;
    if (kfieldptr(os, file, o->file_dentry, &dentry) < 0 || !kptr_ok(os, dentry)) {
        sb_printf(out, "[file 0x%" PRIx64 "]", file);
        return;
    }
    kfieldptr(os, file, o->file_mnt, &vfsmnt);
    const uint64_t first = dentry;
    char *comp[PATH_COMPS_MAX];
    unsigned nc = 0;
    bool pseudo = false;
    size_t total = 0;
    for (unsigned steps = 0; steps < PATH_COMPS_MAX * 2 && nc < PATH_COMPS_MAX; steps++) {
        uint64_t mnt_root = 0;
        if (kptr_ok(os, vfsmnt))
            kfieldptr(os, vfsmnt, o->vfsmnt_root, &mnt_root);
        if (mnt_root && dentry == mnt_root && o->mount_mnt != NONE) {
            uint64_t mnt = vfsmnt - (uint64_t)o->mount_mnt, parent = 0, mp = 0;
            if (kfieldptr(os, mnt, o->mount_parent, &parent) < 0 || parent == mnt ||
                !kptr_ok(os, parent) ||
                kfieldptr(os, mnt, o->mount_mountpoint, &mp) < 0 || !kptr_ok(os, mp))
                break;                   /* the global root */
            dentry = mp;
            vfsmnt = parent + (uint64_t)o->mount_mnt;
            continue;
        }
        uint64_t parent = 0, nameptr = 0;
        uint32_t nlen = 0;
        if (kfieldptr(os, dentry, o->dentry_parent, &parent) < 0 ||
            kfield32(os, dentry, o->dentry_name_len, &nlen) < 0 ||
            kfieldptr(os, dentry, o->dentry_name, &nameptr) < 0)
            break;
        char name[NAME_MAX_READ + 1];
        long got = kptr_ok(os, nameptr)
                       ? kread_str(os, nameptr, name,
                                   nlen < NAME_MAX_READ ? nlen : NAME_MAX_READ)
                       : -EFAULT;
        if (got < 0)
            break;
        if (parent == dentry) {          /* IS_ROOT, not the mount's root */
            if (!(got == 1 && name[0] == '/')) {
                comp[nc] = strdup(name);
                if (comp[nc])
                    total += (size_t)got + 1, nc++;
            }
            pseudo = true;
            break;
        }
        comp[nc] = strdup(name);
        if (!comp[nc])
            break;
        total += (size_t)got + 1;
        nc++;
        if (total > PATH_OUT_MAX || !kptr_ok(os, parent))
            break;
        dentry = parent;
    }
    if (nc == 0)
        sb_put(out, "/", 1);
    for (unsigned i = nc; i-- > 0;) {
        sb_put(out, "/", 1);
        /* seq_file_path(m, file, "\n") escapes newlines as octal. */
        for (const char *c = comp[i]; *c; c++) {
            if (*c == '\n')
                sb_put(out, "\\012", 4);
            else
                sb_put(out, c, 1);
        }
        free(comp[i]);
    }
    uint64_t pprev = 1, fparent = 0;
    bool deleted = pseudo;
    if (!pseudo && o->dentry_hash_pprev != NONE &&
        kfieldptr(os, first, o->dentry_hash_pprev, &pprev) == 0 &&
        kfieldptr(os, first, o->dentry_parent, &fparent) == 0 &&
        pprev == 0 && fparent != first)
        deleted = true;
    if (deleted)
        sb_put(out, " (deleted)", 10);
}

/* The name column of one VMA, like show_map_vma(). */
static void vma_name(struct linux_os *os, const struct vma *v, uint64_t start_brk,
                     uint64_t brk, uint64_t start_stack, uint64_t vdso, struct sbuf *name)
{
    const struct lx_offsets *o = &os->o;
    if (v->file) {
        if (kptr_ok(os, v->file))
            file_path(os, v->file, name);
        return;
    }
    if (v->ops && kptr_ok(os, v->ops) && o->vmops_name != NONE) {
        uint64_t fn = 0;
        if (kreadptr(os, v->ops + (uint64_t)o->vmops_name, &fn) == 0 && fn) {
            bool special = os->sym_special_mapping_name ? fn == os->sym_special_mapping_name
                                                        : true;
            if (os->sym_gate_vma_name && fn == os->sym_gate_vma_name) {
                sb_put(name, "[vsyscall]", 10);
                return;
            }
            uint64_t np;
            char s[65];
            if (special && kptr_ok(os, v->priv) && o->special_name != NONE &&
                kreadptr(os, v->priv + (uint64_t)o->special_name, &np) == 0 &&
                kptr_ok(os, np) && kread_str(os, np, s, 64) > 0 &&
                (os->sym_special_mapping_name || s[0] == '[')) {
                for (char *c = s; *c; c++)
                    if (*c < 0x20 || *c > 0x7e)
                        *c = '?';
                sb_put(name, s, strlen(s));
                return;
            }
        }
    }
    if (v->start <= brk && v->end >= start_brk) {
        sb_put(name, "[heap]", 6);
        return;
    }
    if (v->start <= start_stack && v->end >= start_stack) {
        sb_put(name, "[stack]", 7);
        return;
    }
    if (vdso && v->start == vdso && !v->ops) {
        sb_put(name, "[vdso]", 6);
        return;
    }
    if (v->anon_name && kptr_ok(os, v->anon_name)) {
        char s[81];
        if (kread_str(os, v->anon_name + (uint64_t)o->anon_vma_name_name, s, 80) >= 0) {
            sb_put(name, "[anon:", 6);
            sb_put(name, s, strlen(s));
            sb_put(name, "]", 1);
        }
    }
}

static void maps_line(struct linux_os *os, const struct vma *v, uint64_t start_brk,
                      uint64_t brk, uint64_t start_stack, uint64_t vdso, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t pgoff = 0, ino = 0;
    uint32_t dev = 0;
    if (v->file && kptr_ok(os, v->file)) {
        uint64_t inode = 0, sb = 0;
        pgoff = v->pgoff << 12;
        if (kfieldptr(os, v->file, o->file_inode, &inode) == 0 && kptr_ok(os, inode)) {
            kfieldptr(os, inode, o->inode_ino, &ino);
            if (kfieldptr(os, inode, o->inode_sb, &sb) == 0 && kptr_ok(os, sb))
                kfield32(os, sb, o->sb_dev, &dev);
        }
    }
    size_t line_start = out->len;
    sb_printf(out, "%08" PRIx64 "-%08" PRIx64 " %c%c%c%c %08" PRIx64 " %02x:%02x %" PRIu64 " ",
              v->start, v->end, v->flags & VM_READ ? 'r' : '-',
              v->flags & VM_WRITE ? 'w' : '-', v->flags & VM_EXEC ? 'x' : '-',
              v->flags & VM_MAYSHARE ? 's' : 'p', pgoff, dev >> 20, dev & 0xfffff, ino);
    struct sbuf name = {0};
    vma_name(os, v, start_brk, brk, start_stack, vdso, &name);
    if (name.len) {
        /* seq_pad(m, ' '): spaces up to 25 + 6 * sizeof(void *) - 1 = 72
         * columns (48 on i386), then one more space. */
        size_t col = out->len - line_start, width = 25 + 6 * (size_t)os->psize - 1;
        while (col < width) {
            sb_put(out, " ", 1);
            col++;
        }
        sb_put(out, " ", 1);
        sb_put(out, name.p, name.len);
    }
    free(name.p);
    sb_put(out, "\n", 1);
}

char *linux_os_maps(struct linux_os *os, const struct linux_task *t, size_t *len)
{
    struct sbuf out = {0};
    if (t->kernel_thread || !t->mm_gva)
        return sb_finish(&out, len);
    const struct lx_offsets *o = &os->o;
    uint64_t mm = t->mm_gva;
    struct vma_list l = {0};
    if (o->mm_mt_root != NONE)
        maple_collect(os, mm, &l);
    else if (o->mm_mmap != NONE && o->vma_next != NONE)
        mmap_list_collect(os, mm, &l);
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_vma);
    uint64_t start_brk = 0, brk = 0, start_stack = 0, vdso = 0;
    kfieldptr(os, mm, o->mm_start_brk, &start_brk);
    kfieldptr(os, mm, o->mm_brk, &brk);
    kfieldptr(os, mm, o->mm_start_stack, &start_stack);
    kfieldptr(os, mm, o->mm_vdso, &vdso);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].start < prev_end)    /* overlapping: a stale entry */
            continue;
        maps_line(os, &l.v[i], start_brk, brk, start_stack, vdso, &out);
        prev_end = l.v[i].end;
    }
    if (os->vsyscall_on) {
        struct vma g = {.gva = os->gate_vma};
        if (kfieldptr(os, g.gva, o->vma_start, &g.start) == 0 &&
            kfieldptr(os, g.gva, o->vma_end, &g.end) == 0 &&
            kfieldptr(os, g.gva, o->vma_flags, &g.flags) == 0 && g.start < g.end) {
            kfieldptr(os, g.gva, o->vma_ops, &g.ops);
            maps_line(os, &g, 0, 0, 0, 0, &out);
        }
    }
    if (l.truncated)
        vmem_log_ratelimited(os->kas, LOG_WARNING, "VM '%s': pid %u: the memory-area "
                             "walk skipped bad nodes or hit a bound", vm_name(os->vm),
                             t->pid);
    free(l.v);
    addrset_free(&l.seen);
    return sb_finish(&out, len);
}

char *linux_os_status(struct linux_os *os, const struct linux_task *t, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct sbuf out = {0};
    uint32_t id[8] = {t->uid, t->euid, t->uid, t->uid, 0, 0, 0, 0};
    bool have_gid = false;
    uint64_t cred = 0;
    if (kfieldptr(os, t->task_gva, o->task_real_cred, &cred) == 0 && kptr_ok(os, cred)) {
        long offs[8] = {o->cred_uid, o->cred_euid, o->cred_suid, o->cred_fsuid,
                        o->cred_gid, o->cred_egid, o->cred_sgid, o->cred_fsgid};
        for (int i = 0; i < 8; i++) {
            uint32_t v;
            if (kfield32(os, cred, offs[i], &v) == 0) {
                id[i] = v;
                if (i >= 4)
                    have_gid = true;
            }
        }
    }
    uint32_t tid = t->pid;
    kfield32(os, t->task_gva, o->task_pid, &tid);
    sb_printf(&out, "Name:\t%s\n", t->comm);
    sb_printf(&out, "State:\t%s\n", state_name(t->state));
    sb_printf(&out, "Tgid:\t%u\n", t->pid);
    sb_printf(&out, "Pid:\t%u\n", tid);
    sb_printf(&out, "PPid:\t%u\n", t->ppid);
    sb_printf(&out, "Uid:\t%u\t%u\t%u\t%u\n", id[0], id[1], id[2], id[3]);
    if (have_gid)
        sb_printf(&out, "Gid:\t%u\t%u\t%u\t%u\n", id[4], id[5], id[6], id[7]);
    sb_printf(&out, "Threads:\t%u\n", t->nthreads);
    sb_printf(&out, "Kthread:\t%d\n", t->kernel_thread ? 1 : 0);
    sb_printf(&out, "Dtb:\t0x%" PRIx64 "\n", t->dtb);
    sb_printf(&out, "Task:\t0x%" PRIx64 "\n", t->task_gva);
    sb_printf(&out, "Mm:\t0x%" PRIx64 "\n", t->mm_gva);
    return sb_finish(&out, len);
}

/* ---- info.json ---------------------------------------------------------- */

static json_object *hexobj(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "0x%" PRIx64, v);
    return json_object_new_string(s);
}

static json_object *shiftobj(uint64_t v)
{
    char s[24];
    if ((int64_t)v < 0)
        snprintf(s, sizeof s, "-0x%" PRIx64, (uint64_t)0 - v);
    else
        snprintf(s, sizeof s, "0x%" PRIx64, v);
    return json_object_new_string(s);
}

void linux_os_describe(struct linux_os *os, struct json_object *out)
{
    json_object_object_add(out, "os", json_object_new_string("linux"));
    json_object_object_add(out, "kernel_release", json_object_new_string(os->release));
    json_object_object_add(out, "banner", json_object_new_string(os->banner));
    json_object_object_add(out, "banner_gpa", hexobj(os->banner_gpa));
    if (os->profile_path)
        json_object_object_add(out, "profile", json_object_new_string(os->profile_path));
    json_object_object_add(out, "profile_chosen_by", json_object_new_string(os->chosen_by));
    json_object_object_add(out, "kaslr_virtual_shift", shiftobj(os->vshift));
    json_object_object_add(out, "kaslr_physical_shift", shiftobj(os->pshift));
    json_object_object_add(out, "kernel_dtb", hexobj(os->dtb));
    json_object_object_add(out, "paging", json_object_new_string(mode_name(os->mode)));
    json_object_object_add(out, "paging_from", json_object_new_string(os->mode_source));
    json_object_object_add(out, "cr3_check", json_object_new_string(os->cr3_check));
    json_object_object_add(out, "init_task", hexobj(os->init_task));
    struct linux_tasks *t = linux_os_tasks(os);
    if (t) {
        json_object_object_add(out, "processes", json_object_new_int64((int64_t)t->n));
        json_object_object_add(out, "process_list_truncated",
                               json_object_new_boolean(t->truncated));
        linux_tasks_put(os, t);
    }
    json_object_object_add(out, "vma_source", json_object_new_string(
        os->o.mm_mt_root != NONE ? "maple tree (mm->mm_mt)" :
        os->o.mm_mmap != NONE ? "mmap list (mm->mmap)" : "none"));
}
