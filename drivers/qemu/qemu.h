/*
 * qemu.h - the qemu driver ("qemu:QMP_SOCKET"): a running QEMU as a frame
 * reader, reached through a monitor (monitor.h): its own QMP socket, or one
 * another driver provides (libvirt's monitor passthrough).  Also the
 * driver's class (scheme "qemu", discovery "--qemu-dir DIR") for
 * drivers/registry.c.
 */
#ifndef VMEMFS_DRIVERS_QEMU_QEMU_H
#define VMEMFS_DRIVERS_QEMU_QEMU_H

#include <stddef.h>
#include <sys/types.h>

#include "core/driver.h"

struct qemu_monitor;

/* The class: scheme "qemu", open = qemu_driver_open_flags with VMEM_OPEN_*
 * flags, discovery "--qemu-dir DIR" (discover.h). */
extern const struct vmem_driver_class qemu_driver_class;

/* Open flags (the same bit as VMEM_OPEN_RW). */
#define QEMU_OPEN_RW 0x1u   /* -o rw: open the shared RAM file / the process
                               memory for writing too, and offer
                               write_frames and write.  Without it the driver
                               never holds a writable handle on guest RAM. */

/* qemu_driver_open(arg, ...) is qemu_driver_open_flags(arg, 0, ...). */
int qemu_driver_open(const char *arg, struct vmem_driver *out, char *err,
                     size_t errlen);
/* The QEMU whose QMP socket is `arg`: opens its monitor
 * (qemu_qmp_monitor_open), then as qemu_driver_open_monitor.  Bounded: a
 * peer that stops answering fails the open within a few seconds. */
int qemu_driver_open_flags(const char *arg, unsigned flags,
                           struct vmem_driver *out, char *err, size_t errlen);

/*
 * A qemu driver instance on a monitor the caller provides (libvirt: one
 * that passes QMP JSON through virDomainQemuMonitorCommand).
 *
 * mon: taken over in all cases (closed by the driver's close, or before a
 * failed open returns).  qemu_pid: the QEMU process whose memory is read,
 * as the caller knows it (libvirt's domain pid); 0 means the monitor's own
 * pid().  It must be a live process this host's /proc shows; the driver
 * pins it with a pidfd at once (the monitor's pidfd() when the pids agree),
 * and reads only what that process maps: a RAM file (memory-backend-file,
 * -memfd) is opened only when the very inode (device and inode number) is
 * in the process's /proc/PID/maps, or through its /proc/PID/map_files;
 * otherwise the process's memory, each block located and checked against
 * guest pages read through the monitor ("xp").  flags: VMEM_OPEN_RW or 0.
 *
 * Blocks on the monitor for a bounded time: every command within the
 * monitor's timeout, and the first timeout ends the open (-ETIMEDOUT).
 * 0 and *out, or -errno with one line in err:
 *   -ENODEV  QEMU has exited; -EACCES the process cannot be checked
 *   (unknown pid, unreadable maps, a backend file it does not map);
 *   -ETIMEDOUT, -EIO as the monitor says; -ENOMEM.
 * After open, QEMU's exit is learned from the pidfd (and the monitor's
 * alive(), if any): the instance's gone() turns true.
 */
int qemu_driver_open_monitor(struct qemu_monitor *mon, pid_t qemu_pid, unsigned flags,
                             struct vmem_driver *out, char *err, size_t errlen);

/* The instance's monitor (drv->priv of a qemu driver), for tests and tools
 * that need another command; owned by the instance. */
struct qemu_monitor *qemu_driver_monitor(void *priv);

#endif
