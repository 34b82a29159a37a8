/*
 * xen.c - the Xen driver ("xen:DOMID|NAME"): one domain of the local Xen
 * host as a frame reader (core/driver.h), through the hypercall table of
 * internal.h.  Reads need nothing enabled on the domain: no vm_event ring,
 * no altp2m, only foreign maps, so another introspection tool on the same
 * domain is not disturbed.
 *
 * Layout: HVM/PVH domains, the populated gfns up to the highest one
 * (probed, internal.h's xen_probe_ranges); PV domains,
 * the runs of frames their p2m maps.  refresh() re-reads it (and a PV
 * guest's p2m): old arrays stay until close (driver.h invariant 4).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "drivers/xen/internal.h"
#include "drivers/xen/xen.h"

static void lock(struct xen_dom *d) { pthread_mutex_lock(&d->lock); }
static void unlock(struct xen_dom *d) { pthread_mutex_unlock(&d->lock); }

/* A new layout (and, PV, p2m) read from the hypervisor, not yet installed. */
static int read_layout(struct xen_dom *d, struct vmem_range **out, size_t *n,
                       struct xen_p2m **p2m_out, char *err, size_t errlen)
{
    struct xen_dominfo info;
    int rc = d->hv->dominfo(d->h, d->domid, &info);
    if (rc < 0) {
        snprintf(err, errlen, "domain %u: %s", d->domid, strerror(-rc));
        return rc;
    }
    *p2m_out = NULL;
    if (!info.hvm) {
        struct xen_p2m *p = calloc(1, sizeof *p);
        if (!p)
            return -ENOMEM;
        /* A p2m bigger than twice the domain plus 4 GiB of holes is not
         * one the guest needs: refuse what a hostile max_pfn asks. */
        uint64_t pages = info.max_pages > info.nr_pages ? info.max_pages : info.nr_pages;
        rc = xen_p2m_build(d->hv, d->h, d->domid, info.shared_info_frame,
                           2 * pages + (1u << 20), p, err, errlen);
        if (rc == 0)
            rc = xen_p2m_ranges(p, out, n);
        if (rc < 0) {
            xen_p2m_free(p);
            free(p);
            return rc;
        }
        *p2m_out = p;
        return 0;
    }
    uint64_t max_gfn = 0;
    rc = d->hv->max_gpfn(d->h, d->domid, &max_gfn);
    if (rc < 0) {
        snprintf(err, errlen, "domain %u: cannot read its highest gfn: %s",
                 d->domid, strerror(-rc));
        return rc;
    }
    if (max_gfn >= VMEM_GPA_LIMIT >> VMEM_PAGE_SHIFT)
        max_gfn = (VMEM_GPA_LIMIT >> VMEM_PAGE_SHIFT) - 1;
    rc = xen_probe_ranges(d->hv, d->h, d->domid, max_gfn, out, n);
    if (rc < 0)
        snprintf(err, errlen, "domain %u: cannot probe its RAM: %s", d->domid,
                 strerror(-rc));
    return rc;
}

static int keep_old(void ***list, size_t *n, void *p)
{
    void **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (!nl)
        return -ENOMEM;
    nl[(*n)++] = p;
    *list = nl;
    return 0;
}

static bool same_ranges(const struct vmem_range *a, size_t na,
                        const struct vmem_range *b, size_t nb)
{
    return na == nb && memcmp(a, b, na * sizeof *a) == 0;
}

static int xen_refresh(void *priv)
{
    struct xen_dom *d = priv;
    struct vmem_range *r;
    size_t n;
    struct xen_p2m *p2m;
    char err[256] = "";
    int rc = read_layout(d, &r, &n, &p2m, err, sizeof err);
    if (rc < 0) {
        if (rc == -ESRCH) {
            lock(d);
            d->gone = true;
            unlock(d);
        }
        return rc;
    }
    lock(d);
    bool changed = !same_ranges(r, n, d->ranges, d->nranges);
    if (p2m && d->p2m && p2m->npfn == d->p2m->npfn &&
        memcmp(p2m->mfn, d->p2m->mfn, p2m->npfn * sizeof *p2m->mfn) == 0) {
        /* Unchanged (the usual case, refreshed every few seconds): keeping
         * each copy until close would grow without end. */
        xen_p2m_free(p2m);
        free(p2m);
        p2m = NULL;
    }
    if (p2m) {
        /* A PV guest's p2m changes without its layout changing (balloon,
         * grant transfers): install the new snapshot. */
        if (!d->p2m || keep_old((void ***)&d->old_p2m, &d->nold_p2m, d->p2m) == 0)
            __atomic_store_n(&d->p2m, p2m, __ATOMIC_RELEASE);
        else {
            xen_p2m_free(p2m);
            free(p2m);
        }
    }
    if (changed && keep_old((void ***)&d->old_ranges, &d->nold_ranges, d->ranges) == 0) {
        d->ranges = r;
        d->nranges = n;
    } else {
        free(r);
        changed = false;
    }
    unlock(d);
    return changed ? 1 : 0;
}

static int xen_ranges(void *priv, const struct vmem_range **out, size_t *n)
{
    struct xen_dom *d = priv;
    lock(d);
    *out = d->ranges;
    *n = d->nranges;
    unlock(d);
    return 0;
}

static int xen_read_frames(void *priv, const uint64_t *gfns, void *const *bufs,
                           int *status, size_t n)
{
    struct xen_dom *d = priv;
    if (n > VMEM_BATCH_MAX)
        return -EINVAL;
    if (d->hvm)
        return xen_read_batch(d->hv, d->h, d->domid, gfns, bufs, status, n);
    /* PV: the foreign map takes machine frames. */
    const struct xen_p2m *p = __atomic_load_n(&d->p2m, __ATOMIC_ACQUIRE);
    uint64_t mfns[VMEM_BATCH_MAX];
    for (size_t i = 0; i < n; i++)
        mfns[i] = gfns[i] < p->npfn ? p->mfn[gfns[i]] : XEN_INVALID_FRAME;
    return xen_read_batch(d->hv, d->h, d->domid, mfns, bufs, status, n);
}

static int xen_frame_of_pte(void *priv, uint64_t frame, uint64_t *gfn)
{
    struct xen_dom *d = priv;
    const struct xen_p2m *p = __atomic_load_n(&d->p2m, __ATOMIC_ACQUIRE);
    /* Asked of the handle each time, not kept: after a fork (vmemfs
     * daemonising) the handle maps it anew, elsewhere. */
    const unsigned long *m2p;
    uint64_t m2p_nr;
    if (d->hv->m2p(d->h, &m2p, &m2p_nr) < 0)
        return -ENOENT;
    return xen_p2m_pfn_of(p, m2p, m2p_nr, frame, gfn);
}

static int xen_vcpu_count(void *priv)
{
    struct xen_dom *d = priv;
    return (int)d->nvcpus;
}

static int xen_vcpu_state(void *priv, unsigned cpu, struct vmem_vcpu *out)
{
    struct xen_dom *d = priv;
    if (cpu >= d->nvcpus)
        return -EINVAL;
    int rc = d->hv->vcpu(d->h, d->domid, d->hvm, cpu, out);
    if (rc < 0 || d->hvm || !(out->valid & VMEM_VCPU_CRS))
        return rc;
    /* A PV vCPU's CR3 names a machine frame: the guest frame it is. */
    uint64_t gfn;
    if (xen_frame_of_pte(d, out->cr3 >> VMEM_PAGE_SHIFT, &gfn) == 0)
        out->cr3 = gfn << VMEM_PAGE_SHIFT | (out->cr3 & (VMEM_PAGE_SIZE - 1));
    else
        out->cr3 = 0;   /* not one of the guest's frames: unknown */
    return 0;
}

static int xen_pause(void *priv)
{
    struct xen_dom *d = priv;
    int rc = 0;
    lock(d);
    /* Xen counts pauses; ours is one, whatever the number of calls. */
    if (!d->paused) {
        rc = d->hv->pause(d->h, d->domid);
        if (rc == 0)
            d->paused = true;
    }
    unlock(d);
    return rc;
}

static int xen_resume(void *priv)
{
    struct xen_dom *d = priv;
    int rc = 0;
    lock(d);
    if (d->paused) {
        rc = d->hv->unpause(d->h, d->domid);
        if (rc == 0 || rc == -ESRCH)
            d->paused = false;
    }
    unlock(d);
    return rc;
}

static bool xen_gone(void *priv)
{
    struct xen_dom *d = priv;
    lock(d);
    bool g = d->gone;
    unlock(d);
    if (g)
        return true;
    /* One domctl: cheap, bounded, and the only way to know. */
    struct xen_dominfo info;
    int rc = d->hv->dominfo(d->h, d->domid, &info);
    g = rc == -ESRCH || (rc == 0 && info.dying);
    if (g) {
        lock(d);
        d->gone = true;
        unlock(d);
    }
    return g;
}

static void xen_describe(void *priv, struct json_object *out)
{
    struct xen_dom *d = priv;
    json_object_object_add(out, "domid", json_object_new_int64(d->domid));
    json_object_object_add(out, "domain", json_object_new_string(d->name));
    json_object_object_add(out, "guest_type",
                           json_object_new_string(d->hvm ? "hvm/pvh" : "pv"));
    json_object_object_add(out, "frames", json_object_new_string(
                               d->hvm ? "gfn" : "mfn via the guest's p2m"));
    if (!d->hvm) {
        const struct xen_p2m *p = __atomic_load_n(&d->p2m, __ATOMIC_ACQUIRE);
        json_object_object_add(out, "p2m", json_object_new_string(p->how));
        json_object_object_add(out, "p2m_pfns", json_object_new_int64((int64_t)p->npfn));
    }
}

static void xen_close(void *priv)
{
    struct xen_dom *d = priv;
    if (d->paused)
        d->hv->unpause(d->h, d->domid);
    free(d->ranges);
    for (size_t i = 0; i < d->nold_ranges; i++)
        free(d->old_ranges[i]);
    free(d->old_ranges);
    if (d->p2m) {
        xen_p2m_free(d->p2m);
        free(d->p2m);
    }
    for (size_t i = 0; i < d->nold_p2m; i++) {
        xen_p2m_free(d->old_p2m[i]);
        free(d->old_p2m[i]);
    }
    free(d->old_p2m);
    d->hv->close(d->h);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

const struct vmem_driver_ops xen_driver_ops = {
    .name = "xen",
    .ranges = xen_ranges,
    .refresh = xen_refresh,
    .read_frames = xen_read_frames,
    .vcpu_count = xen_vcpu_count,
    .vcpu_state = xen_vcpu_state,
    .pause = xen_pause,
    .resume = xen_resume,
    .gone = xen_gone,
    .describe = xen_describe,
    .close = xen_close,
};

/* PV domains also translate their page tables' frames. */
static const struct vmem_driver_ops xen_pv_driver_ops = {
    .name = "xen",
    .ranges = xen_ranges,
    .refresh = xen_refresh,
    .read_frames = xen_read_frames,
    .vcpu_count = xen_vcpu_count,
    .vcpu_state = xen_vcpu_state,
    .pause = xen_pause,
    .resume = xen_resume,
    .gone = xen_gone,
    .frame_of_pte = xen_frame_of_pte,
    .describe = xen_describe,
    .close = xen_close,
};

const struct vmem_driver_ops *xen_ops_for(const struct xen_dom *d)
{
    return d->hvm ? &xen_driver_ops : &xen_pv_driver_ops;
}

int xen_dom_open(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                 const char *name, struct xen_dom **out, char *err, size_t errlen)
{
    struct xen_dom *d = calloc(1, sizeof *d);
    if (!d) {
        hv->close(h);
        return -ENOMEM;
    }
    d->hv = hv;
    d->h = h;
    d->domid = domid;
    snprintf(d->name, sizeof d->name, "%s", name ? name : "");
    pthread_mutex_init(&d->lock, NULL);
    struct xen_dominfo info;
    int rc = hv->dominfo(h, domid, &info);
    if (rc < 0) {
        snprintf(err, errlen, "xen domain %u: %s", domid,
                 rc == -ESRCH ? "no such domain" : strerror(-rc));
        goto fail;
    }
    if (info.dying) {
        snprintf(err, errlen, "xen domain %u: it is being destroyed", domid);
        rc = -ESRCH;
        goto fail;
    }
    d->hvm = info.hvm;
    d->nvcpus = info.max_vcpu_id + 1;
    if (!d->hvm) {
        const unsigned long *m2p;
        uint64_t m2p_nr;
        rc = hv->m2p(h, &m2p, &m2p_nr);
        if (rc < 0) {
            snprintf(err, errlen, "xen domain %u (PV): cannot map the m2p: %s",
                     domid, strerror(-rc));
            goto fail;
        }
    }
    rc = read_layout(d, &d->ranges, &d->nranges, &d->p2m, err, errlen);
    if (rc < 0) {
        if (!err[0])
            snprintf(err, errlen, "xen domain %u: %s", domid, strerror(-rc));
        goto fail;
    }
    *out = d;
    return 0;
fail:
    d->paused = false;
    xen_close(d);
    return rc;
}

/* "DOMID" or a name xenstore knows. */
static int xen_open(const char *arg, unsigned flags, struct vmem_driver *out,
                    char *err, size_t errlen)
{
    (void)flags;   /* read-only always: foreign maps are mapped PROT_READ */
    void *h;
    int rc = xen_hv_open(&h, err, errlen);
    if (rc < 0)
        return rc;
    uint32_t domid;
    rc = xen_hv_lookup(h, arg, &domid);
    if (rc < 0) {
        snprintf(err, errlen, "xen:%s: no such domain (by id or xenstore name)", arg);
        xen_hv_real.close(h);
        return rc;
    }
    if (domid == 0) {
        snprintf(err, errlen, "xen:%s: dom0 is the host, not a guest", arg);
        xen_hv_real.close(h);
        return -EINVAL;
    }
    char name[65];
    snprintf(name, sizeof name, "%s", arg);
    struct xen_dom *d;
    rc = xen_dom_open(&xen_hv_real, h, domid, name, &d, err, errlen);
    if (rc < 0)
        return rc;
    out->ops = xen_ops_for(d);
    out->priv = d;
    out->caps = VMEM_CAP_SLOW;
    return 0;
}

const struct vmem_driver_class xen_driver_class = {
    .scheme = "xen",
    .usage = "xen:DOMID|NAME",
    .summary = "a domain of the local Xen host (run in dom0): HVM, PVH or PV",
    .open = xen_open,
    .discover_option = "xen",
    .discover_usage = "--xen                  every domain of the local Xen host "
                      "but dom0",
    .discover_start = xen_discover_start,
    .discover_stop = xen_discover_stop,
};
