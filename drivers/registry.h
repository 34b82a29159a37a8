/*
 * registry.h - the table of driver classes (core/driver.h's struct
 * vmem_driver_class), keyed by the scheme of a VM spec ("file:PATH",
 * "qemu:SOCK", "libvirt:DOM[@URI]", "xen:DOMID|NAME") and by the option that
 * starts a class's discovery ("--qemu-dir DIR", "--libvirt URI", "--xen").
 *
 * Owns: the list of classes built in (a driver whose library was missing at
 * build time is simply absent, and a spec naming it gets an error saying
 * so), spec parsing, and opening a VM from a spec.  Does not own: what a
 * driver does (drivers/<name>/), or the VM object (core/phys/vm.h).
 */
#ifndef VMEMFS_DRIVERS_REGISTRY_H
#define VMEMFS_DRIVERS_REGISTRY_H

#include <stddef.h>

#include "core/driver.h"
#include "core/phys/vm.h"

/* Every class built in, in --help order; *n set. */
const struct vmem_driver_class *const *vmem_driver_classes(size_t *n);
/* The class of a scheme, or of a discovery option ("qemu-dir"); NULL if
 * unknown or not built. */
const struct vmem_driver_class *vmem_driver_class_find(const char *scheme);
const struct vmem_driver_class *vmem_driver_class_for_option(const char *option);
/* Space-separated schemes built in, for messages. */
const char *vmem_driver_schemes(void);

/* Open the source of `spec` ("scheme:arg") with VMEM_OPEN_* flags: 0 and
 * *out filled, or -errno with one line in err naming the source and the
 * problem (an unknown scheme lists the ones built in). */
int vmem_driver_open_spec(const char *spec, unsigned flags,
                          struct vmem_driver *out, char *err, size_t errlen);

/* Open a VM named `name` (vm_name_valid) on `spec`: the driver, then the VM
 * object over it.  NULL on failure, with one line in err ("VM 'x': ..."). */
struct vm *vmem_vm_open(const char *name, const char *spec,
                        const struct vm_options *opt, char *err, size_t errlen);

#endif
