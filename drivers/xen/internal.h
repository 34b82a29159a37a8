/*
 * internal.h - the Xen driver's insides, shared by its files and its unit
 * test (tests/unit/test_xen.c).
 *
 * Owns: the table of hypervisor calls the driver makes (struct xen_hv_ops:
 * hv.c implements it with libxenctrl, libxenforeignmemory and libxenstore;
 * the unit test with a fake machine), the open domain's state, the PV
 * guest's physical-to-machine table (p2m.c) and the discovery's bookkeeping
 * (discover.c).  Everything above the table is plain logic the test runs
 * without a hypervisor.
 *
 * Frames: HVM and PVH domains are read by guest frame (gfn); a PV domain is
 * read by machine frame (mfn), so its gfns (its "pseudo-physical" frames)
 * go through the p2m snapshot first, and the frames its page tables hold go
 * back through the m2p (checked against the p2m, so only the guest's own
 * frames translate).
 */
#ifndef VMEMFS_DRIVERS_XEN_INTERNAL_H
#define VMEMFS_DRIVERS_XEN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/driver.h"

#define XEN_INVALID_FRAME UINT64_MAX

/* What the hypervisor says of a domain (xc_domain_getinfo). */
struct xen_dominfo {
    uint32_t domid;
    bool hvm;                       /* HVM or PVH: read by gfn; else PV */
    bool dying, shutdown, paused;
    uint64_t shared_info_frame;     /* PV: mfn of its shared_info page */
    uint64_t nr_pages, max_pages;
    unsigned max_vcpu_id;
};

/* The hypercalls, as a table (hv.c: the real ones). Errors are -errno;
 * -ESRCH means no such domain. */
struct xen_hv_ops {
    int (*dominfo)(void *h, uint32_t domid, struct xen_dominfo *out);
    /* Map frames[0..n) of domid read-only in one call (one foreign-map
     * hypercall batch).  Returns the address of n pages, err[i] 0 or -errno
     * for each (a failed page must not be touched); NULL and -errno in
     * *whole when nothing could be mapped. */
    void *(*map)(void *h, uint32_t domid, const uint64_t *frames, size_t n,
                 int *err, int *whole);
    void (*unmap)(void *h, void *addr, size_t n);
    /* Highest gfn the domain has (xc_domain_maximum_gpfn). */
    int (*max_gpfn)(void *h, uint32_t domid, uint64_t *out);
    int (*pause)(void *h, uint32_t domid);
    int (*unpause)(void *h, uint32_t domid);
    /* vCPU state; *cr3_frame the frame of CR3 as the hypervisor holds it
     * (PV: a machine frame). */
    int (*vcpu)(void *h, uint32_t domid, bool hvm, unsigned cpu,
                struct vmem_vcpu *out);
    /* The machine-to-phys table (read-only mapping) and its entry count. */
    int (*m2p)(void *h, const unsigned long **table, uint64_t *nr);
    void (*close)(void *h);
};

/* A PV guest's p2m snapshot and the m2p it is checked against. */
struct xen_p2m {
    uint64_t *mfn;                  /* mfn[pfn], XEN_INVALID_FRAME if none */
    uint64_t npfn;
    const char *how;                /* "frame-list-list" or "linear" */
};

/* Most pfns a PV p2m may claim (512 GiB): bounds what a hostile
 * shared_info can make us allocate, together with the domain's size. */
#define XEN_P2M_MAX_PFN ((uint64_t)1 << 27)

/* Build the p2m of PV domain `domid` from its shared_info (frame
 * `shinfo_mfn`): the frame-list-list tree, or the linear list the guest maps
 * at p2m_vaddr under p2m_cr3.  limit_pfn bounds max_pfn.  0, or -errno with
 * one line in err. */
int xen_p2m_build(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                  uint64_t shinfo_mfn, uint64_t limit_pfn, struct xen_p2m *out,
                  char *err, size_t errlen);
void xen_p2m_free(struct xen_p2m *p);
/* mfn -> pfn through the m2p, accepted only when the p2m maps it back. */
int xen_p2m_pfn_of(const struct xen_p2m *p, const unsigned long *m2p,
                   uint64_t m2p_nr, uint64_t mfn, uint64_t *pfn);
/* Runs of valid p2m entries as ranges (malloc'd). */
int xen_p2m_ranges(const struct xen_p2m *p, struct vmem_range **out, size_t *n);

/* Read n frames of a domain: frames[] already machine frames (PV) or gfns;
 * XEN_INVALID_FRAME reads as -ENOENT.  One map call for up to
 * VMEM_BATCH_MAX frames, per-frame errors into status (-ENOENT for a frame
 * the domain lacks, -EIO for the rest).  0, or -errno when the whole batch
 * failed. */
int xen_read_batch(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                   const uint64_t *frames, void *const *bufs, int *status,
                   size_t n);

/* The RAM of an HVM/PVH domain up to max_gfn, found by probing: libxenctrl
 * 4.17 offers no domain's memory map, so one foreign-map batch asks for the
 * first frame of every 2 MiB (the toolstack populates RAM in such chunks),
 * and the last chunk of each run is probed frame by frame for its exact
 * end.  Frames missing inside a run (the VGA hole) read as -ENOENT.
 * Ranges malloc'd; 0 or -errno. */
int xen_probe_ranges(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                     uint64_t max_gfn, struct vmem_range **out, size_t *n);

/* An open domain. */
struct xen_dom {
    const struct xen_hv_ops *hv;
    void *h;
    uint32_t domid;
    char name[65];
    bool hvm;
    unsigned nvcpus;

    pthread_mutex_t lock;           /* layout, p2m swap, paused */
    struct vmem_range *ranges;      /* current layout */
    size_t nranges;
    /* Old layouts and p2ms stay until close (driver.h invariant 4; a read
     * in flight may hold the previous p2m). */
    struct vmem_range **old_ranges;
    size_t nold_ranges;
    struct xen_p2m *p2m;            /* PV only: current snapshot */
    struct xen_p2m **old_p2m;
    size_t nold_p2m;
    bool paused;                    /* by us */
    bool gone;
};

/* The driver ops over an xen_dom (xen.c), and its constructor from an
 * open hypervisor handle: takes h (closes it on failure). */
extern const struct vmem_driver_ops xen_driver_ops;
/* The ops for an open domain: PV ones add frame_of_pte. */
const struct vmem_driver_ops *xen_ops_for(const struct xen_dom *d);
int xen_dom_open(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                 const char *name, struct xen_dom **out, char *err, size_t errlen);

/* hv.c: the real hypervisor, or -errno with one line in err. */
extern const struct xen_hv_ops xen_hv_real;
int xen_hv_open(void **h, char *err, size_t errlen);
/* Domain names from xenstore: domid of `name` (or the number it is). */
int xen_hv_lookup(void *h, const char *name, uint32_t *domid);
/* Every domain but dom0 (ids ascending) and its name ("" when xenstore has
 * none yet), at most max; the count or -errno. */
struct xen_dom_entry {
    uint32_t domid;
    char name[65];
};
int xen_hv_list(void *h, struct xen_dom_entry *out, size_t max);

/* Discovery bookkeeping (discover.c): given the domains present now,
 * announce new ones and lost ones to the sink, and known ones again now and
 * then (one that failed to open while booting); state is what was
 * announced, and how many polls ago. */
struct xen_disc_state {
    struct xen_dom_entry *known;
    unsigned *age;
    size_t nknown;
};
void xen_disc_step(struct xen_disc_state *st, const struct xen_dom_entry *now,
                   size_t n, const struct vmem_discovery_sink *sink);
void xen_disc_state_free(struct xen_disc_state *st);

#endif
