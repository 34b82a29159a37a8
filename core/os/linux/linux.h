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

/* The profile built from guest memory (core/profile/btf_mem.h) when that is
 * where the profile came from, else NULL: it is offered as a Volatility
 * symbols file (symbols/linux/<release>.json). */
struct mem_profile;
const struct mem_profile *linux_os_mem_profile(const struct linux_os *os);

/* The paging mode of the guest and the kernel's page-table root (gpa). */
enum vmem_paging_mode linux_os_paging_mode(const struct linux_os *os);
uint64_t linux_os_kernel_dtb(const struct linux_os *os);

/* The process list (core/os/os.h's snapshot contract): immutable sources
 * are walked once; live ones again when the snapshot is older than
 * tasks_max_age_ns or after linux_os_flush. */
struct vmem_procs *linux_os_tasks(struct linux_os *os);    /* +1 reference */
void linux_tasks_put(struct linux_os *os, struct vmem_procs *t);
/* Linux's reasons for VMEM_PROC_HIDDEN (set with it): found in the pid
 * table (init_pid_ns.idr) but not on the task list, a classic way to hide
 * a process; or on the task list but not in the pid table (only said when
 * the pid table could be read whole). */
#define LINUX_TASK_HIDDEN_FROM_LIST   0x100u
#define LINUX_TASK_NOT_IN_PID_TABLE   0x200u

/* Forget the snapshot (the guest ran). */
void linux_os_flush(struct linux_os *os);

/* Text of proc/<pid>/maps (the guest's /proc/<pid>/maps format, file names
 * included) and proc/<pid>/status ("Name:", "State:", "Tgid:", "Pid:",
 * "PPid:", "Uid:", "Threads:", "Dtb:", ...).  malloc'd, *len set; NULL on
 * ENOMEM.  A task whose structures cannot be read gives what could be read. */
char *linux_os_maps(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_status(struct linux_os *os, const struct vmem_proc *t, size_t *len);

/* The responder's files (issue 11), same contract: malloc'd text, *len set;
 * NULL with errno set (EIO: nothing of it could be read; ENOENT: the
 * profile lacks what it needs; ENOMEM).  What could be read only in part
 * gives that part (a page of arguments swapped out ends cmdline there).
 *   cmdline, environ  NUL-separated strings from the process's memory
 *   exe, cwd, root    the guest path, one line ("" for kernel threads)
 *   fds               "<fd>\t<pos>\t<flags octal>\t<path>" per descriptor
 *   threads           "<tid>\t<state letter>\t<name>" per thread
 */
char *linux_os_cmdline(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_environ(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_exe(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_cwd(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_root(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_fds(struct linux_os *os, const struct vmem_proc *t, size_t *len);
char *linux_os_threads(struct linux_os *os, const struct vmem_proc *t, size_t *len);

/* Kernel-wide files, in the guest's /proc formats where one exists:
 *   modules   /proc/modules          dmesg     what `dmesg` prints
 *   cmdline   /proc/cmdline          mounts    /proc/mounts (init's
 *                                              namespace; file-system
 *                                              specific options left out)
 *   net_tcp, net_tcp6, net_udp, net_udp6, net_unix   /proc/net/... of the
 *             sockets reachable from the processes' descriptors
 *   processes_json, processes_csv   one row per process (README) */
char *linux_os_modules(struct linux_os *os, size_t *len);
char *linux_os_dmesg(struct linux_os *os, size_t *len);
char *linux_os_kcmdline(struct linux_os *os, size_t *len);
char *linux_os_mounts(struct linux_os *os, size_t *len);
char *linux_os_net(struct linux_os *os, const char *which, size_t *len);
char *linux_os_processes_json(struct linux_os *os, size_t *len);
char *linux_os_processes_csv(struct linux_os *os, size_t *len);

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
