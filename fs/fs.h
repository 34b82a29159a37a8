/*
 * fs.h - the FUSE front end: the file tree users see, inode numbering, file
 * handles, and the libfuse low-level operations.  No memory logic lives
 * here: reads go to core (vm_read_phys_iov and friends).
 *
 * Inodes are computed, not allocated: ino = slot << 40 | kind << 32 | pid,
 * where slot is the VM's index in the mount (+1) and kind the file's role.
 * Nothing needs freeing on forget, and a VM that leaves the mount makes its
 * inodes fail cleanly (the slot's generation changes).
 */
#ifndef VMEMFS_FS_FS_H
#define VMEMFS_FS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUSE_USE_VERSION 312   /* >= 312 or the MT loop misreads its config */
#include <fuse_lowlevel.h>

#include "core/vm.h"

#define VMEMFS_MAX_VMS 4096

struct vmemfs_options {
    bool writable;             /* -o rw */
    bool allow_other;          /* -o allow_other: others may read */
    bool foreground, debug;
};

struct vmemfs {
    struct vmemfs_options opt;
    pthread_rwlock_t lock;     /* guards slots */
    struct vm *slots[VMEMFS_MAX_VMS];
    uint32_t generation[VMEMFS_MAX_VMS];
    size_t nslots;
    char *mountpoint;
    char bdi_path[96];         /* /sys/class/bdi/MAJ:MIN/read_ahead_kb */
    time_t started;
};

/* Add a VM to the mount (takes the reference).  0, -EEXIST if the name is
 * taken, -ENOSPC if the mount is full. */
int vmemfs_add_vm(struct vmemfs *fs, struct vm *vm);

extern const struct fuse_lowlevel_ops vmemfs_ops;

#endif
