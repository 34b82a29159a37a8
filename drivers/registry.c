/*
 * registry.c - the table of driver classes (see registry.h).  Adding a
 * driver is one row here and its folder under drivers/.
 */
#include "drivers/registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "drivers/file/file.h"
#include "drivers/qemu/qemu.h"
#ifdef VMEMFS_HAVE_LIBVIRT
#include "drivers/libvirt/libvirt.h"
#endif
#ifdef VMEMFS_HAVE_XEN
#include "drivers/xen/xen.h"
#endif

static const struct vmem_driver_class *const classes[] = {
    &file_driver_class,
    &qemu_driver_class,
#ifdef VMEMFS_HAVE_LIBVIRT
    &libvirt_driver_class,
#endif
#ifdef VMEMFS_HAVE_XEN
    &xen_driver_class,
#endif
};
#define NCLASSES (sizeof classes / sizeof classes[0])

const struct vmem_driver_class *const *vmem_driver_classes(size_t *n)
{
    *n = NCLASSES;
    return classes;
}

const struct vmem_driver_class *vmem_driver_class_find(const char *scheme)
{
    for (size_t i = 0; i < NCLASSES; i++)
        if (strcmp(classes[i]->scheme, scheme) == 0)
            return classes[i];
    return NULL;
}

const struct vmem_driver_class *vmem_driver_class_for_option(const char *option)
{
    for (size_t i = 0; i < NCLASSES; i++)
        if (classes[i]->discover_option &&
            strcmp(classes[i]->discover_option, option) == 0)
            return classes[i];
    return NULL;
}

const char *vmem_driver_schemes(void)
{
    static char names[128];
    if (!names[0]) {
        size_t at = 0;
        for (size_t i = 0; i < NCLASSES && at < sizeof names; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s",
                                   i ? " " : "", classes[i]->scheme);
    }
    return names;
}

int vmem_driver_open_spec(const char *spec, unsigned flags,
                          struct vmem_driver *out, char *err, size_t errlen)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec) {
        snprintf(err, errlen, "spec '%s' has no driver (try file:PATH)", spec);
        return -EINVAL;
    }
    char scheme[32];
    size_t sl = (size_t)(colon - spec);
    if (sl >= sizeof scheme)
        sl = sizeof scheme - 1;
    memcpy(scheme, spec, sl);
    scheme[sl] = 0;
    const struct vmem_driver_class *c = vmem_driver_class_find(scheme);
    if (!c) {
        snprintf(err, errlen, "unknown driver '%s' (built in: %s)", scheme,
                 vmem_driver_schemes());
        return -ENOENT;
    }
    memset(out, 0, sizeof *out);
    err[0] = 0;
    int rc = c->open(colon + 1, flags, out, err, errlen);
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "%s: %s", spec, strerror(-rc));
    return rc;
}

struct vm *vmem_vm_open(const char *name, const char *spec,
                        const struct vm_options *opt, char *err, size_t errlen)
{
    if (!vm_name_valid(name)) {
        snprintf(err, errlen,
                 "VM name '%s' is not valid: use 1-64 of [A-Za-z0-9._-]", name);
        return NULL;
    }
    struct vmem_driver drv;
    char derr[512] = "";
    int rc = vmem_driver_open_spec(spec, opt->writable ? VMEM_OPEN_RW : 0, &drv,
                                   derr, sizeof derr);
    if (rc < 0) {
        snprintf(err, errlen, "VM '%s': %s", name, derr);
        return NULL;
    }
    return vm_new(name, spec, drv, opt, err, errlen);
}
