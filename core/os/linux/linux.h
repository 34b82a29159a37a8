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
#include "core/os/os.h"

struct vm;
struct json_object;

struct isf;

struct linux_os;

/* The OS-layer implementation (core/os/os.h) over the functions below. */
extern const struct vmem_os_ops linux_os_ops;

/* Recognise a Linux guest in vm and load its profile.  NULL when that is not
 * possible, with `why` saying so in one line for the log and info.json
 * ("no Linux kernel banner in physical memory", "no profile in DIR matches
 * 'Linux version 6.1.0-50-cloud-amd64 ...'", ...).  Keeps a reference to vm. */
struct linux_os *linux_os_open(struct vm *vm, const struct vmem_os_options *opt,
                               char *why, size_t whylen);
void linux_os_close(struct linux_os *os);

/* The paging mode of the guest and the kernel's page-table root (gpa). */
enum vmem_paging_mode linux_os_paging_mode(const struct linux_os *os);
uint64_t linux_os_kernel_dtb(const struct linux_os *os);

/* The process list (core/os/os.h's snapshot contract): immutable sources
 * are walked once; live ones again when the snapshot is older than
 * tasks_max_age_ns or after linux_os_flush. */
struct vmem_procs *linux_os_tasks(struct linux_os *os);    /* +1 reference */
void linux_tasks_put(struct linux_os *os, struct vmem_procs *t);

/* Forget the snapshot (the guest ran). */
void linux_os_flush(struct linux_os *os);

/* Text of proc/<pid>/maps (the guest's /proc/<pid>/maps format, file names
 * included) and proc/<pid>/status ("Name:", "State:", "Tgid:", "Pid:",
 * "PPid:", "Uid:", "Threads:", "Dtb:", ...).  malloc'd, *len set; NULL on
 * ENOMEM.  A task whose structures cannot be read gives what could be read. */
char *linux_os_maps(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_status(struct linux_os *os, const struct vmem_proc *t, size_t *len);

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
