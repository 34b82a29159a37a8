/*
 * watch.h - the thread that adds VMs as their QMP sockets appear in a
 * directory and removes VMs whose source has gone (see watch.c).
 */
#ifndef VMEMFS_FS_WATCH_H
#define VMEMFS_FS_WATCH_H

#include "fs/fs.h"

struct vmemfs_watch;

/* Start watching: qemu_dir may be NULL (then only the liveness sweep runs).
 * Call after the session exists, before the loop.  NULL on failure. */
struct vmemfs_watch *vmemfs_watch_start(struct vmemfs *fs, const char *qemu_dir,
                                        const struct vm_options *vopt);
void vmemfs_watch_stop(struct vmemfs_watch *w);

#endif
