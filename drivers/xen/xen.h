/*
 * xen.h - the Xen driver ("xen:DOMID|NAME", and "--xen": every domain of
 * the local Xen host but dom0, as domains come and go).  Runs in dom0 (or a
 * domain with the same privileges): needs /dev/xen/privcmd and xenstore.
 *
 * HVM and PVH domains are read by guest frame; PV domains through their p2m
 * (machine frames), and their page tables' machine frames go back to guest
 * frames through the m2p (driver.h's frame_of_pte).  Read-only always.
 * The insides are in internal.h.
 */
#ifndef VMEMFS_DRIVERS_XEN_XEN_H
#define VMEMFS_DRIVERS_XEN_XEN_H

#include "core/driver.h"

extern const struct vmem_driver_class xen_driver_class;

/* The discovery (discover.c): a thread polling the domain list once a
 * second, names from xenstore, found(name, "xen:<domid>") / lost(name). */
int xen_discover_start(const char *arg, const struct vmem_discovery_sink *sink,
                       struct vmem_discovery **out, char *err, size_t errlen);
void xen_discover_stop(struct vmem_discovery *d);

#endif
