/*
 * watch.h - VMs that come and go while mounted (see watch.c): discoveries
 * started from the command line (--qemu-dir DIR, --libvirt [NAME=]URI,
 * --xen), each a driver class's discovery (core/driver.h), and a liveness
 * sweep that takes any VM whose source has gone out of the mount.
 */
#ifndef VMEMFS_FS_WATCH_H
#define VMEMFS_FS_WATCH_H

#include "core/driver.h"
#include "fs/fs.h"

struct vmemfs_watch;

/* Start the watcher (the sweep and the revisits of live VMs).  Call after
 * the session exists, before the loop.  NULL on failure. */
struct vmemfs_watch *vmemfs_watch_start(struct vmemfs *fs,
                                        const struct vm_options *vopt);
/* Start a driver class's discovery on arg; what it finds goes under the
 * directory `group` (NULL: the root).  0, or -errno with one line in err. */
int vmemfs_watch_discover(struct vmemfs_watch *w, const struct vmem_driver_class *c,
                          const char *group, const char *arg, char *err,
                          size_t errlen);
/* Stop every discovery, wait for the VMs being opened, stop the thread. */
void vmemfs_watch_stop(struct vmemfs_watch *w);

#endif
