/*
 * drivers.c - scheme -> driver table (see drivers.h).
 */
#include "drivers/drivers.h"

#include <string.h>

#include "drivers/qemu/qemu.h"
#ifdef VMEMFS_HAVE_LIBVIRT
#include "drivers/libvirt/libvirt.h"
#endif

/* Dumps are evidence: the file driver never writes, whatever the flags. */
static int open_file(const char *arg, unsigned flags, struct vmem_driver *out,
                     char *err, size_t errlen)
{
    (void)flags;
    return file_driver_open(arg, out, err, errlen);
}

static int open_qemu(const char *arg, unsigned flags, struct vmem_driver *out,
                     char *err, size_t errlen)
{
    return qemu_driver_open_flags(arg, (flags & VMEM_OPEN_RW) ? QEMU_OPEN_RW : 0,
                                  out, err, errlen);
}

static const struct {
    const char *scheme;
    vmem_driver_open_fn open;
} driver_table[] = {
    {"file", open_file},
    {"qemu", open_qemu},
#ifdef VMEMFS_HAVE_LIBVIRT
    {"libvirt", libvirt_driver_open},
#endif
};

vmem_driver_open_fn vmem_driver_lookup(const char *scheme)
{
    for (size_t i = 0; i < sizeof driver_table / sizeof driver_table[0]; i++)
        if (strcmp(driver_table[i].scheme, scheme) == 0)
            return driver_table[i].open;
    return NULL;
}

const char *vmem_driver_names(void)
{
#ifdef VMEMFS_HAVE_LIBVIRT
    return "file qemu libvirt";
#else
    return "file qemu";
#endif
}
