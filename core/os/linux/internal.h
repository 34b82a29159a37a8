/*
 * internal.h - what the pieces of core/os/linux/ share, and nobody else:
 * the offsets read from the profile, the linux_os object, the bounds of
 * every walk, and the kernel-memory readers.  Not a public interface: the
 * OS layer above sees linux.h only.
 *
 * The pieces, one concern each:
 *   linux.c    open/close, the OS-layer glue, info.json
 *   locate.c   finding the kernel: the banner, KASLR shifts, the kernel
 *              page-table root and paging mode, CR3 cross-check
 *   symbols.c  where types and symbols come from (an ISF chosen by banner,
 *              a forced one, one handed over) and the member offsets
 *   kmem.c     reads of kernel memory: pointers checked, strings bounded
 *   tasks.c    the task list walk and its snapshot
 *   vma.c      memory areas: the maple tree, the mmap list
 *   procfs.c   guest paths (dentries) and the text of maps and status
 */
#ifndef VMEMFS_CORE_OS_LINUX_INTERNAL_H
#define VMEMFS_CORE_OS_LINUX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/arch/x86/paging.h"
#include "core/os/linux/linux.h"
#include "core/profile/btf_mem.h"
#include "core/profile/isf.h"
#include "core/util/addrset.h"
#include "core/util/bytes.h"
#include "core/util/sbuf.h"

struct vm;

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
#define ARGS_MAX        (4u << 20)              /* cmdline, environ bytes */
#define FDS_MAX         (1u << 16)              /* descriptors examined */
#define MODULES_MAX     8192u
#define MOUNTS_MAX      16384u
#define PRB_RECORDS_MAX (1u << 20)
#define PRB_TEXT_MAX    (16u << 20)             /* dmesg text rendered */
#define PIDTABLE_MAX    (1u << 22)              /* struct pids visited */

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

    /* The responder's files (issue 11): all optional, NONE when absent. */
    long mm_arg_start, mm_arg_end, mm_env_start, mm_env_end, mm_exe_file,
         mm_total_vm, mm_hiwater_vm, mm_hiwater_rss, mm_rss_stat, mm_locked_vm,
         mm_data_vm, mm_stack_vm, mm_exec_vm, mm_pinned_vm;
    long task_files, task_fs, task_nsproxy, task_start_boottime, task_thread_pid,
         task_pid_links, task_thread_node, signal_thread_head;
    long files_fdt, fdt_max_fds, fdt_fd, fdt_close_on_exec;
    long file_pos, file_flags, file_op, file_private, dentry_d_op;
    long fs_root, fs_pwd, path_mnt, path_dentry;
    long cred_cap_inh, cred_cap_prm, cred_cap_eff, cred_cap_bnd, cred_cap_amb;
    unsigned cap_size;              /* kernel_cap_t: 8 (u32[2] or u64) */
    long nsproxy_mnt_ns, nsproxy_net_ns, mntns_ns, net_ns, pidns_ns, ns_inum;
    long pid_level, pid_numbers, pid_tasks, upid_ns, upid_nr;
    unsigned upid_size;
    long pidns_idr, xa_head, xa_node_shift, xa_node_slots;
    unsigned xa_chunk;              /* slots per xa_node: 64 (or 16) */
    long mod_list, mod_name, mod_state, mod_refcnt, mod_core_base, mod_core_size,
         mod_init_size, mod_taints, mod_source_list, mod_init, mod_exit,
         use_source_list, use_source;
    unsigned mod_name_len;
    long prb_desc_ring, prb_text_ring, dr_count_bits, dr_descs, dr_infos,
         dr_head_id, dr_tail_id, tr_size_bits, tr_data, desc_state_var,
         desc_text_begin, desc_text_next, info_seq, info_ts_nsec, info_text_len,
         info_facility, info_flags_level, info_caller_id;
    unsigned desc_size, info_size;
    long mnt_list, mnt_devname, mnt_mnt_ns, mntns_list, vfsmnt_flags, vfsmnt_sb,
         sb_flags, sb_type, sb_subtype, fstype_name;
    long socket_sk, socket_type, sk_family, sk_state, sk_type, sk_protocol,
         sk_daddr, sk_rcv_saddr, sk_dport, sk_num, sk_v6_daddr, sk_v6_rcv_saddr,
         sk_uid, sk_rqueue_len, skc_refcnt_off, unix_addr, unix_peer, uaddr_len, uaddr_name;
};

struct snap {
    struct vmem_procs pub;
    atomic_int refs;
    uint64_t taken_ns;
    int pidtable;                   /* lx_pidtable_compare's answer */
};

struct linux_os {
    struct vm *vm;
    struct isf *isf_owned;
    struct mem_profile *mem_profile;    /* the profile built from guest memory */
    char symbols_path[128];             /* "symbols/linux/<release>.json", or "" */
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

static inline uint64_t lx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct vcpu_hint {
    bool have;
    bool la57;
    bool pae;
    uint64_t cr3;
    unsigned id;
};

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
    /* The profile built from guest memory when no ISF matches
     * (core/profile/btf_mem.h): kallsyms is scanned for once. */
    struct mem_profile *mp;
    struct mem_profile_scan *mps;
    unsigned mp_tries;
    char mp_why[384];
};

struct vma {
    uint64_t gva, start, end, flags, pgoff, file, ops, priv, anon_name;
};

struct vma_list {
    struct vma *v;
    size_t n, cap;
    struct addrset seen;
    bool truncated;
};

/* ---- kmem.c: kernel memory --------------------------------------------- */
bool lx_is_32bit(const struct linux_os *os);
bool lx_kptr_ok(const struct linux_os *os, uint64_t v);
uint64_t lx_user_limit(const struct linux_os *os);
uint64_t lx_ulong_max(const struct linux_os *os);
int lx_kread(struct linux_os *os, uint64_t gva, void *buf, size_t len);
uint64_t lx_ldptr(const struct linux_os *os, const uint8_t *p);
int lx_kreadptr(struct linux_os *os, uint64_t gva, uint64_t *v);
int lx_kread32(struct linux_os *os, uint64_t gva, uint32_t *v);
int lx_kfieldptr(struct linux_os *os, uint64_t base, long off, uint64_t *v);
int lx_kfield32(struct linux_os *os, uint64_t base, long off, uint32_t *v);
long lx_kread_str(struct linux_os *os, uint64_t gva, char *out, size_t max);

/* ---- symbols.c: profile offsets ---------------------------------------- */
int lx_load_offsets(const struct isf *f, struct lx_offsets *o, char *why, size_t whylen);
void lx_load_forensic_offsets(const struct isf *f, struct lx_offsets *o);

/* ---- linux.c ----------------------------------------------------------- */
/* A symbol's runtime address (the KASLR shift applied), 0 when absent. */
uint64_t lx_sym(const struct linux_os *os, const char *name);

/* ---- procfs.c: paths ----------------------------------------------------- */
/* The guest path of (vfsmount, dentry) as d_path shows it, into out. */
void lx_path_text(struct linux_os *os, uint64_t vfsmnt, uint64_t dentry, struct sbuf *out);
/* A struct file's path as /proc/<pid>/fd shows it: pipes, sockets and
 * anonymous inodes by their d_dname names ("pipe:[ino]", ...). */
void lx_file_name(struct linux_os *os, uint64_t file, struct sbuf *out);

/* ---- creds.c: status lines ----------------------------------------------- */
void lx_status_mem(struct linux_os *os, const struct vmem_proc *t, struct sbuf *out);
void lx_status_more(struct linux_os *os, const struct vmem_proc *t, struct sbuf *out);

/* ---- files.c: descriptor tables ---------------------------------------- */
int lx_fd_walk(struct linux_os *os, uint64_t task,
               void (*fn)(void *ctx, unsigned fd, uint64_t file, bool cloexec), void *ctx,
               bool *cut);

/* ---- umem.c: a process's own memory ------------------------------------- */
/* Read [gva, gva+len) of the process whose page-table root is dtb; bytes up
 * to the first page that is not present.  The count read. */
size_t lx_uread(struct linux_os *os, uint64_t dtb, uint64_t gva, void *buf, size_t len);

/* ---- locate.c: the kernel in memory ------------------------------------ */
void lx_vcpu_hint(struct vm *vm, struct vcpu_hint *h);
const char *lx_mode_name(enum vmem_paging_mode m);
void lx_cr3_crosscheck(struct linux_os *os, const struct vcpu_hint *h, uint64_t s_banner);
bool lx_scan_for_kernel(struct linux_os *os, const struct vmem_os_options *opt,
                        struct scan_state *s, const struct vcpu_hint *hint);

/* ---- tasks.c ----------------------------------------------------------- */
void lx_snap_put(struct snap *s);
const char *lx_state_name(char letter);
char lx_state_letter(uint64_t state, uint32_t exit_state);
/* One task_struct at gva into t.  False when its block cannot be read. */
bool lx_read_task(struct linux_os *os, uint64_t gva, struct vmem_proc *t);

/* ---- pidns.c ------------------------------------------------------------ */
/* Compare the task list in l with init_pid_ns's pid table: flag the tasks
 * the table lacks, add (flagged) the leaders only the table has.  1: the
 * table was read whole; 0: not (a bad node, a loop, a bound: only what was
 * found is compared, nothing is flagged as missing from it); -1: the
 * profile has no pid table. */
int lx_pidtable_compare(struct linux_os *os, struct vmem_procs *l);
/* The snapshot l is (linux_os_tasks's), as the struct holding it. */
static inline const struct snap *lx_snap_of(const struct vmem_procs *l)
{
    return (const struct snap *)((const char *)l - offsetof(struct snap, pub));
}
/* Every struct pid in init_pid_ns.idr, in index order; false when the
 * tree could not be read whole (a bad node, a loop, a bound). */
bool lx_pidtable_walk(struct linux_os *os, void (*fn)(void *ctx, uint64_t pid), void *ctx);

/* ---- vma.c ------------------------------------------------------------- */
void lx_maple_collect(struct linux_os *os, uint64_t mm, struct vma_list *l);
void lx_mmap_list_collect(struct linux_os *os, uint64_t mm, struct vma_list *l);
int lx_cmp_vma(const void *a, const void *b);

#endif
