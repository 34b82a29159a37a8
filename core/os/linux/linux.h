/*
 * linux.h - Linux guest introspection: from a VM's physical memory and a
 * kernel profile (Volatility 3 ISF) to the guest's processes, their
 * address spaces and memory areas.
 *
 * Owns: finding the kernel banner in physical memory, choosing the profile
 * whose banner matches (or the forced one), KASLR (the physical and virtual
 * shifts) and the kernel page-table root, the paging mode, the task list
 * walk (init_task.tasks, threads folded into their thread group), mm and its
 * pgd, and the memory areas (maple tree on 6.1+, the mmap list before).
 * Does not own: FUSE, the file tree, caching of frames (core/vm.c does that)
 * or the page-table walk itself (core/paging.c).
 *
 * The guest controls every byte read here: lists may loop, pointers may be
 * wild, counts may be huge.  Every walk is bounded (a maximum number of
 * tasks, VMAs, tree nodes, string bytes) and cycle-safe; a bad structure
 * ends that walk with what was read so far, never a crash or a hang.
 *
 * Threads: every function is safe to call concurrently once linux_os_open
 * has returned.
 */
#ifndef VMEMFS_CORE_LINUX_H
#define VMEMFS_CORE_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arch/x86/paging.h"

struct vm;
struct json_object;

struct isf;

struct linux_options {
    const char *symbols_dir;    /* --symbols DIR: ISF chosen by banner (NULL: none) */
    const char *profile;        /* --profile FILE: this ISF, banner unchecked */
    /* A profile already loaded (isf.h), used as --profile is (banner
     * unchecked), borrowed: the caller keeps it alive until linux_os_close.
     * Lets VMs running one kernel share one profile, and tests and fuzz
     * targets use one built in memory.  Wins over profile and symbols_dir. */
    const struct isf *isf;
    /* No profile from the guest's own BTF and kallsyms when no ISF matches
     * (core/profile/btf_mem.h; the default is to build one). */
    bool no_guest_profile;
    uint64_t tasks_max_age_ns;  /* live VMs: re-walk the task list when older
                                   (0: 1 s); dumps are walked once */
};

struct linux_os;

/* Recognise a Linux guest in vm and load its profile.  NULL when that is not
 * possible, with `why` saying so in one line for the log and info.json
 * ("no Linux kernel banner in physical memory", "no profile in DIR matches
 * 'Linux version 6.1.0-50-cloud-amd64 ...'", ...).  Keeps a reference to vm. */
struct linux_os *linux_os_open(struct vm *vm, const struct linux_options *opt,
                               char *why, size_t whylen);
void linux_os_close(struct linux_os *os);

/* The profile built from guest memory (btf_mem.h) when that is where the
 * profile came from, else NULL: the fs offers its JSON under symbols/. */
struct mem_profile;
const struct mem_profile *linux_os_mem_profile(const struct linux_os *os);

/* The paging mode of the guest and the kernel's page-table root (gpa). */
enum vmem_paging_mode linux_os_paging_mode(const struct linux_os *os);
uint64_t linux_os_kernel_dtb(const struct linux_os *os);

/* One process (thread-group leader) as read from the guest. */
struct linux_task {
    uint32_t pid;               /* tgid of the group: the /proc number */
    uint32_t ppid;              /* real_parent's tgid */
    uint32_t uid, euid;
    uint32_t nthreads;          /* threads in the group (>= 1) */
    char comm[17];              /* NUL-terminated, printable */
    char state;                 /* 'R' 'S' 'D' 'T' 't' 'Z' 'X' 'P' 'I' as /proc shows */
    bool kernel_thread;         /* no mm: no vmem, no maps */
    uint64_t task_gva;          /* the leader's task_struct */
    uint64_t mm_gva;            /* its mm_struct, 0 for kernel threads */
    uint64_t dtb;               /* gpa of mm->pgd (the kernel copy, which maps
                                   user space too; PTI's user copy is +4 KiB),
                                   0 for kernel threads */
};

/* A snapshot of the process list, sorted by pid, counted: the fs layer holds
 * one while it answers a readdir or a lookup.  Immutable sources are walked
 * once; live ones again when the snapshot is older than tasks_max_age_ns or
 * after linux_os_flush. */
struct linux_tasks {
    size_t n;
    struct linux_task *task;
    bool truncated;             /* the walk hit a bound or a bad pointer */
};
struct linux_tasks *linux_os_tasks(struct linux_os *os);    /* +1 reference */
void linux_tasks_put(struct linux_os *os, struct linux_tasks *t);
const struct linux_task *linux_tasks_find(const struct linux_tasks *t, uint32_t pid);

/* Forget the snapshot (the guest ran). */
void linux_os_flush(struct linux_os *os);

/* Text of proc/<pid>/maps (the guest's /proc/<pid>/maps format, file names
 * included) and proc/<pid>/status ("Name:", "State:", "Tgid:", "Pid:",
 * "PPid:", "Uid:", "Threads:", "Dtb:", ...).  malloc'd, *len set; NULL on
 * ENOMEM.  A task whose structures cannot be read gives what could be read. */
char *linux_os_maps(struct linux_os *os, const struct linux_task *t, size_t *len);
char *linux_os_status(struct linux_os *os, const struct linux_task *t, size_t *len);

/* OS facts for info.json, added as keys of `out` (the caller decides where
 * that object goes): "os": "linux", "kernel_release", "banner",
 * "banner_gpa", "profile" (path; absent when handed over loaded),
 * "profile_chosen_by", "kaslr_virtual_shift", "kaslr_physical_shift"
 * (hex strings, "-0x..." when negative), "kernel_dtb", "paging"
 * ("x86-64 4-level" / "x86-64 5-level"), "paging_from", "cr3_check" (how a
 * vCPU's CR3 relates to the kernel dtb), "init_task", "processes",
 * "process_list_truncated", "vma_source".  Walks the task list if no
 * snapshot is held. */
void linux_os_describe(struct linux_os *os, struct json_object *out);

#endif
