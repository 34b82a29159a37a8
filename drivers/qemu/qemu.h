/*
 * qemu.h - the qemu driver ("qemu:QMP_SOCKET"): a running QEMU as a frame
 * reader.  drivers.h declares qemu_driver_open (read-only, the scheme
 * table's entry); this header adds what the table's signature cannot say.
 */
#ifndef VMEMFS_DRIVERS_QEMU_QEMU_H
#define VMEMFS_DRIVERS_QEMU_QEMU_H

#include <stddef.h>

#include "core/driver.h"

struct qmp;

/* Open flags. */
#define QEMU_OPEN_RW 0x1u   /* -o rw: open the shared RAM file / the process
                               memory for writing too, and offer
                               write_frames and write.  Without it the driver
                               never holds a writable handle on guest RAM. */

/* qemu_driver_open(arg, ...) is qemu_driver_open_flags(arg, 0, ...). */
int qemu_driver_open(const char *arg, struct vmem_driver *out, char *err,
                     size_t errlen);
int qemu_driver_open_flags(const char *arg, unsigned flags,
                           struct vmem_driver *out, char *err, size_t errlen);

/* The driver's QMP connection (drv->priv of a qemu driver), for tests and
 * tools that need another QMP command: QEMU serves one QMP client per
 * socket, and the driver holds it while open. */
struct qmp *qemu_driver_qmp(void *priv);

extern const struct vmem_driver_class qemu_driver_class;

#endif
