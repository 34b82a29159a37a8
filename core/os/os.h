/*
 * os.h - the OS-layer interface: how fs/ sees a guest operating system.
 *
 * An OS implementation (core/os/linux/ today) recognises its OS in a VM's
 * memory and then answers, through one ops table: the process list, a
 * process's address space and the kernel's, refresh, what it adds to
 * info.json, and the files it offers per process, for the kernel and per
 * VM, as rows of tables (the way the kernel's fs/proc/base.c declares a
 * process's entries).  fs/ talks to guests only through this header: it
 * never sees an OS's own types.  Adding a per-process file is one row and
 * one renderer in the OS; fs/ needs no change.
 *
 * Owns: choosing which OS a VM runs (vmem_os_open tries each built-in
 * implementation), the handle, and the generic process record.  Does not
 * own: how an OS is found or walked (core/os/<name>/), files that belong to
 * the VM itself (pmem, info.json: fs/ and core/phys/).
 *
 * Invariants:
 *  1. A handle is used by many FUSE threads at once; every op is
 *     thread-safe once vmem_os_open has returned.
 *  2. A process snapshot is immutable and counted: fs/ holds one while it
 *     answers a readdir or a lookup; the OS builds a new one when the old
 *     one is stale (live guests) or flushed.
 *  3. Renderers treat the guest as hostile: bounded, cycle-safe, and a part
 *     that cannot be read gives a partial answer saying so, never a wrong
 *     one and never a crash.
 */
#ifndef VMEMFS_CORE_OS_OS_H
#define VMEMFS_CORE_OS_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct vmem_as;
struct json_object;
struct isf;

/* What the user told vmemfs about guest OSes. */
struct vmem_os_options {
    const char *symbols_dir;    /* --symbols DIR: ISF chosen by banner (NULL: none) */
    const char *profile;        /* --profile FILE: this ISF, banner unchecked */
    /* A profile already loaded (core/profile/isf.h), used as --profile is
     * (banner unchecked), borrowed: the caller keeps it alive until the OS
     * closes.  Lets VMs running one kernel share one profile, and tests and
     * fuzz targets use one built in memory.  Wins over profile and
     * symbols_dir. */
    const struct isf *isf;
    /* When no ISF matches, an OS may build its profile from the guest's own
     * memory (Linux: its BTF and kallsyms); true turns that off. */
    bool no_guest_profile;
    uint64_t tasks_max_age_ns;  /* live VMs: re-walk the process list when
                                   older (0: 1 s); dumps are walked once */
};

/* One process (thread-group leader) as read from the guest. */
struct vmem_proc {
    uint32_t pid;               /* the number the guest's /proc shows */
    uint32_t ppid;              /* the parent's pid */
    uint32_t uid, euid;
    uint32_t nthreads;          /* threads in the group (>= 1) */
    char comm[17];              /* NUL-terminated, printable */
    char state;                 /* 'R' 'S' 'D' 'T' 't' 'Z' 'X' 'P' 'I' as /proc shows */
    bool kernel_thread;         /* no user address space: no vmem, no maps */
    unsigned flags;             /* VMEM_PROC_* */
    uint64_t task_gva;          /* the OS's process object (Linux: task_struct) */
    uint64_t mm_gva;            /* its address-space object, 0 if none */
    uint64_t dtb;               /* gpa of its page-table root, 0 if none */
};
#define VMEM_PROC_DUPLICATE 0x1u    /* a second record with this pid was dropped */
#define VMEM_PROC_HIDDEN    0x2u    /* found by one kernel list but not another */

/* A snapshot of the process list, sorted by pid, pids unique (invariant 2). */
struct vmem_procs {
    size_t n;
    struct vmem_proc *proc;
    bool truncated;             /* the walk hit a bound or a bad pointer */
};
/* The process with this pid, or NULL (binary search). */
const struct vmem_proc *vmem_procs_find(const struct vmem_procs *t, uint32_t pid);

/* One file an OS offers: a row of a table.  Text files are rendered when
 * opened (a snapshot for that open file, like /proc); address-space files
 * are served by core's virtual read path. */
struct vmem_os_file {
    /* Kernel and VM rows may sit in directories ("net/tcp"); a directory
     * exists while one of its rows does. */
    const char *name;
    unsigned flags;             /* VMEM_OSF_* */
    /* Text rows: the file's bytes (malloc'd, *len set), or NULL with *err
     * set to a positive errno (ENOENT: not for this process; EIO: could
     * not be read).  p is NULL for kernel and VM rows. */
    char *(*render)(void *os, const struct vmem_proc *p, size_t *len, int *err);
    /* A name known only at run time (symbols/linux/<release>.json), used
     * when set: NULL means the row is absent now. */
    const char *(*name_of)(void *os);
};
#define VMEM_OSF_TEXT     0x1u  /* render() gives its bytes */
#define VMEM_OSF_VMEM     0x2u  /* an address space: the process's, or the
                                   kernel's in the kernel table */
#define VMEM_OSF_USER     0x4u  /* only for processes with an address space */

/* One OS implementation. */
struct vmem_os_ops {
    const char *name;                                   /* "linux" */
    /* Recognise the OS in vm: a handle (keeps a reference to vm), or NULL
     * with one line in why ("no Linux kernel banner in physical memory"). */
    void *(*open)(struct vm *vm, const struct vmem_os_options *opt, char *why,
                  size_t whylen);
    void (*close)(void *os);
    struct vmem_procs *(*procs)(void *os);              /* +1 reference, or NULL */
    void (*procs_put)(void *os, struct vmem_procs *t);
    /* A new address space (core/arch/x86/paging.h) of a process, or of the
     * kernel when p is NULL; NULL when there is none (kernel thread) or on
     * ENOMEM.  *size: the size of its vmem file. */
    struct vmem_as *(*address_space)(void *os, const struct vmem_proc *p,
                                     uint64_t *size);
    /* The same size without building anything (for stat); 0: none. */
    uint64_t (*address_space_size)(void *os, const struct vmem_proc *p);
    void (*flush)(void *os);                            /* forget snapshots */
    void (*describe)(void *os, struct json_object *out);/* info.json "guest" */
    const struct vmem_os_file *proc_files;   size_t nproc_files;
    const struct vmem_os_file *kernel_files; size_t nkernel_files;
    const struct vmem_os_file *vm_files;     size_t nvm_files;
};

/* A recognised OS: its ops and its state. */
struct vmem_os {
    const struct vmem_os_ops *ops;
    void *priv;
};

/* Try each built-in OS on vm: a handle (malloc'd), or NULL with why saying
 * what each implementation answered. */
struct vmem_os *vmem_os_open(struct vm *vm, const struct vmem_os_options *opt,
                             char *why, size_t whylen);
void vmem_os_close(struct vmem_os *os);

static inline struct vmem_procs *vmem_os_procs(struct vmem_os *os)
{
    return os->ops->procs(os->priv);
}
static inline void vmem_os_procs_put(struct vmem_os *os, struct vmem_procs *t)
{
    os->ops->procs_put(os->priv, t);
}
/* Copy of the process with this pid from a current snapshot: true if found. */
bool vmem_os_proc(struct vmem_os *os, uint32_t pid, struct vmem_proc *out);
static inline struct vmem_as *vmem_os_address_space(struct vmem_os *os,
                                                    const struct vmem_proc *p,
                                                    uint64_t *size)
{
    return os->ops->address_space(os->priv, p, size);
}
static inline uint64_t vmem_os_address_space_size(struct vmem_os *os,
                                                  const struct vmem_proc *p)
{
    return os->ops->address_space_size(os->priv, p);
}
static inline void vmem_os_flush(struct vmem_os *os)
{
    if (os->ops->flush)
        os->ops->flush(os->priv);
}
static inline void vmem_os_describe(struct vmem_os *os, struct json_object *out)
{
    os->ops->describe(os->priv, out);
}
/* Is this row offered for p (NULL: kernel/VM rows)? */
static inline bool vmem_os_file_applies(const struct vmem_os_file *f,
                                        const struct vmem_proc *p)
{
    return !(p && (f->flags & (VMEM_OSF_USER | VMEM_OSF_VMEM)) && p->kernel_thread);
}

#endif
