/*
 * drivers.h - the table of frame-reader drivers, keyed by the scheme of a
 * VM spec ("file:PATH", "qemu:SOCK"; later "libvirt:URI/DOM", "xen:DOMID").
 * Drivers whose library was missing at build time are simply absent, and a
 * spec naming them gets an error saying so.
 */
#ifndef VMEMFS_DRIVERS_DRIVERS_H
#define VMEMFS_DRIVERS_DRIVERS_H

#include <stddef.h>

#include "core/driver.h"

/* Open the source `arg` (the spec after "scheme:") with VMEM_OPEN_* flags:
 * 0 and *out filled, or -errno with one line in err (naming the source and
 * the problem). */
typedef int (*vmem_driver_open_fn)(const char *arg, unsigned flags,
                                   struct vmem_driver *out, char *err,
                                   size_t errlen);

int file_driver_open(const char *path, struct vmem_driver *out, char *err,
                     size_t errlen);
int qemu_driver_open(const char *arg, struct vmem_driver *out, char *err,
                     size_t errlen);

/* Look up a scheme; NULL if unknown or not built. */
vmem_driver_open_fn vmem_driver_lookup(const char *scheme);
/* Space-separated names of the drivers built in, for --help. */
const char *vmem_driver_names(void);

#endif
