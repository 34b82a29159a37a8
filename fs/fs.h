/*
 * fs.h - the FUSE front end: the file tree users see, inode numbering, file
 * handles, and the libfuse low-level operations.  No memory logic lives
 * here: reads go to core (vm_read_phys_iov, vm_read_virt_iov) and the guest OS
 * (core/os/os.h: processes, address spaces, the rows of its file tables).
 *
 * Inodes are computed, not allocated: ino = slot << 40 | kind << 32 | pid,
 * where slot is the VM's index in the mount (+1), kind the file's role and
 * pid the guest process for proc/<pid>/...  Nothing needs freeing on
 * forget, and a VM that leaves the mount makes its inodes fail cleanly (the
 * slot's generation changes).
 */
#ifndef VMEMFS_FS_FS_H
#define VMEMFS_FS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define FUSE_USE_VERSION 312   /* >= 312 or the MT loop misreads its config */
#include <fuse_lowlevel.h>

#include "core/os/os.h"
#include "core/phys/vm.h"

#define VMEMFS_MAX_VMS 4096
#define VMEMFS_MAX_GROUPS 64

struct vmemfs_options {
    bool writable;             /* -o rw */
    bool allow_other;          /* -o allow_other: others may read */
    bool foreground, debug;
    bool freeze_on_open;       /* opening pmem.raw pauses a live guest */
    bool direct_io;            /* pmem.raw of dumps too: no kernel caching */
    struct vmem_os_options os_opt;
};

/* A VM as the mount holds it: the memory source and, when one was
 * recognised, its guest OS.  Counted: open files hold a reference, so a VM
 * removed from the mount stays valid (and fails cleanly) until they close. */
struct fs_vm {
    atomic_int refs;
    struct vm *vm;
    /* NULL: no proc/ (os_why says why).  A live guest found before its
     * kernel ran gets it later: the watcher retries and sets it once. */
    struct vmem_os *_Atomic os;
    char os_why[256];
    int group;                 /* index in vmemfs.groups, -1: at the root */
    uint64_t os_retry_ns;      /* watcher only: when to try again */
    unsigned os_retries;
    uint64_t added_ns;         /* watcher only: when it was first revisited */
    uint64_t refresh_ns;       /* watcher only: next layout refresh */
    pthread_mutex_t freeze_lock;   /* guards the three below */
    unsigned freezers;         /* open pmem.raw handles holding it paused */
    bool froze_it;             /* the freezers paused it (so they resume it) */
    bool user_paused;          /* paused through control: freezers leave it so */
};

struct vmemfs {
    struct vmemfs_options opt;
    struct fuse_session *se;
    pthread_rwlock_t lock;     /* guards slots */
    struct fs_vm *slots[VMEMFS_MAX_VMS];
    uint32_t generation[VMEMFS_MAX_VMS];
    size_t nslots;
    /* Named discoveries (--libvirt h1=URI) put their VMs under a directory
     * of that name; groups are never removed (an empty one stays listed). */
    char groups[VMEMFS_MAX_GROUPS][65];
    size_t ngroups;
    char *mountpoint;
    char bdi_path[96];         /* /sys/class/bdi/MAJ:MIN/read_ahead_kb */
    time_t started;
};

/* Wrap an open VM for the mount: recognises its guest OS (logging what was
 * found, or why nothing was).  Takes the vm reference.  NULL on ENOMEM. */
struct fs_vm *fs_vm_new(struct vmemfs *fs, struct vm *vm);
struct fs_vm *fs_vm_get(struct fs_vm *fv);
void fs_vm_put(struct fs_vm *fv);
/* Live VMs: re-read the layout and, when proc/ is missing, try to recognise
 * the guest OS again (with growing pauses).  For the watcher thread. */
void fs_vm_revisit(struct vmemfs *fs, struct fs_vm *fv, uint64_t now_ns);

/* Add a VM to the mount (takes the reference), at the root (group NULL) or
 * under the directory `group` (created on first use).  0, -EEXIST if the
 * name is taken there (VM and group names share the root), -ENOSPC if the
 * mount is full. */
int vmemfs_add_vm(struct vmemfs *fs, const char *group, struct fs_vm *fv);
/* The directory of a group, empty until VMs come (a named discovery shows
 * its host at once).  0, -EEXIST if a VM at the root has that name,
 * -ENOSPC when there are too many groups. */
int vmemfs_add_group(struct vmemfs *fs, const char *group);
/* Take a VM out of the mount by group and name: its directory goes, open
 * files keep failing cleanly.  0 or -ENOENT. */
int vmemfs_remove_vm(struct vmemfs *fs, const char *group, const char *name);
/* At exit, once no request runs: release every file still open (the kernel
 * will not), which resumes a guest --freeze-on-open paused. */
void vmemfs_release_open_files(struct vmemfs *fs);

extern const struct fuse_lowlevel_ops vmemfs_ops;

#endif
