/*
 * p2m.c - the Xen driver's frame logic: batched foreign reads with
 * per-frame errors, and a PV guest's physical-to-machine table (see
 * internal.h).  No hypercall here but through struct xen_hv_ops.
 *
 * The p2m lives in the guest, so everything read from it is hostile: its
 * size is bounded by the domain's own size, every tree page is read through
 * the foreign map (which only maps the domain's own frames), and a frame
 * that cannot be read leaves its entries invalid instead of failing.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <xenctrl.h>  /* the public headers, types first */

#include "core/arch/x86/paging.h"
#include "drivers/xen/internal.h"

/* Entries per p2m page (and per tree page): 64-bit PV guests only. */
#define P2M_PER_PAGE (VMEM_PAGE_SIZE / 8)

int xen_read_batch(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                   const uint64_t *frames, void *const *bufs, int *status,
                   size_t n)
{
    uint64_t want[VMEM_BATCH_MAX];
    size_t slot[VMEM_BATCH_MAX];
    int err[VMEM_BATCH_MAX];

    for (size_t done = 0; done < n;) {
        /* One map call per VMEM_BATCH_MAX frames; invalid frames are
         * holes without asking the hypervisor. */
        size_t k = 0;
        size_t i = done;
        for (; i < n && k < VMEM_BATCH_MAX; i++) {
            if (frames[i] == XEN_INVALID_FRAME) {
                status[i] = -ENOENT;
                continue;
            }
            want[k] = frames[i];
            slot[k] = i;
            k++;
        }
        done = i;
        if (k == 0)
            continue;
        int whole = 0;
        void *map = hv->map(h, domid, want, k, err, &whole);
        if (!map)
            return whole < 0 ? whole : -EIO;
        for (size_t j = 0; j < k; j++) {
            size_t at = slot[j];
            if (err[j] == 0) {
                memcpy(bufs[at], (const uint8_t *)map + j * VMEM_PAGE_SIZE,
                       VMEM_PAGE_SIZE);
                status[at] = VMEM_FRAME_OK;
            } else if (err[j] == -EINVAL || err[j] == -ENOENT ||
                       err[j] == -ENXIO) {
                /* No page behind that frame (never populated, ballooned
                 * out, paged out): a hole, not a failure. */
                status[at] = -ENOENT;
            } else {
                status[at] = -EIO;
            }
        }
        hv->unmap(h, map, k);
    }
    return 0;
}

/* Read n machine frames' worth of 8-byte entries into dst (n pages):
 * frames that cannot be read give XEN_INVALID_FRAME entries. */
static int read_entries(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                        const uint64_t *mfns, size_t n, uint64_t *dst)
{
    static const size_t chunk = 256;
    void *bufs[256];
    int status[256];
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        for (size_t i = 0; i < k; i++)
            bufs[i] = dst + (at + i) * P2M_PER_PAGE;
        int rc = xen_read_batch(hv, h, domid, mfns + at, bufs, status, k);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < k; i++)
            if (status[i] != VMEM_FRAME_OK)
                for (size_t e = 0; e < P2M_PER_PAGE; e++)
                    dst[(at + i) * P2M_PER_PAGE + e] = XEN_INVALID_FRAME;
    }
    return 0;
}

/* Entries as the guest writes them: ~0 (INVALID_P2M_ENTRY) and the
 * identity/foreign marker bits mean "no frame of this guest". */
static uint64_t clean_mfn(uint64_t e)
{
    /* Linux's IDENTITY_FRAME_BIT and FOREIGN_FRAME_BIT: top two bits. */
    if (e == XEN_INVALID_FRAME || (e >> 62) != 0)
        return XEN_INVALID_FRAME;
    return e;
}

static int p2m_from_tree(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                         uint64_t fll_mfn, struct xen_p2m *p, char *err,
                         size_t errlen)
{
    uint64_t npages = (p->npfn + P2M_PER_PAGE - 1) / P2M_PER_PAGE;
    uint64_t nlists = (npages + P2M_PER_PAGE - 1) / P2M_PER_PAGE;
    uint64_t *top = malloc(VMEM_PAGE_SIZE);
    uint64_t *lists = malloc(nlists * VMEM_PAGE_SIZE);
    int rc = -ENOMEM;
    if (!top || !lists)
        goto out;
    rc = read_entries(hv, h, domid, &fll_mfn, 1, top);
    if (rc < 0)
        goto out;
    if (top[0] == XEN_INVALID_FRAME && nlists) {
        snprintf(err, errlen, "domain %u: its p2m frame-list-list (mfn 0x%llx) "
                 "cannot be read", domid, (unsigned long long)fll_mfn);
        rc = -EIO;
        goto out;
    }
    for (uint64_t i = 0; i < nlists; i++)
        top[i] = clean_mfn(top[i]);
    rc = read_entries(hv, h, domid, top, nlists, lists);
    if (rc < 0)
        goto out;
    for (uint64_t i = 0; i < npages; i++)
        lists[i] = clean_mfn(lists[i]);
    rc = read_entries(hv, h, domid, lists, npages, p->mfn);
out:
    free(top);
    free(lists);
    return rc;
}

/* The linear list: the guest maps it at p2m_vaddr in the space p2m_cr3
 * roots, whose tables hold machine frames: walk them with core's walker
 * reading machine frames directly. */
struct mread {
    const struct xen_hv_ops *hv;
    void *h;
    uint32_t domid;
};

static int mread(void *ctx, uint64_t maddr, void *buf, size_t len)
{
    struct mread *m = ctx;
    uint8_t page[VMEM_PAGE_SIZE];
    void *bufs[1] = { page };
    uint64_t mfn = maddr >> VMEM_PAGE_SHIFT;
    int status = 0;
    int rc = xen_read_batch(m->hv, m->h, m->domid, &mfn, bufs, &status, 1);
    if (rc < 0)
        return rc;
    if (status != VMEM_FRAME_OK)
        return status;
    memcpy(buf, page + (maddr & (VMEM_PAGE_SIZE - 1)), len);
    return 0;
}

static int p2m_from_linear(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                           uint64_t cr3, uint64_t vaddr, struct xen_p2m *p)
{
    struct mread m = { hv, h, domid };
    struct vmem_phys_reader rd = { mread, &m, NULL };
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, cr3, &rd);
    if (!as)
        return -ENOMEM;
    uint64_t npages = (p->npfn + P2M_PER_PAGE - 1) / P2M_PER_PAGE;
    uint64_t *maddr = malloc(npages * sizeof *maddr);
    int rc = -ENOMEM;
    if (maddr) {
        vmem_as_translate_range(as, vaddr, npages, maddr);
        for (uint64_t i = 0; i < npages; i++)
            maddr[i] = maddr[i] == VMEM_GPA_NONE ? XEN_INVALID_FRAME
                                                 : maddr[i] >> VMEM_PAGE_SHIFT;
        rc = read_entries(hv, h, domid, maddr, npages, p->mfn);
    }
    free(maddr);
    vmem_as_free(as);
    return rc;
}

int xen_p2m_build(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                  uint64_t shinfo_mfn, uint64_t limit_pfn, struct xen_p2m *out,
                  char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    uint8_t page[VMEM_PAGE_SIZE];
    void *bufs[1] = { page };
    int status = 0;
    int rc = xen_read_batch(hv, h, domid, &shinfo_mfn, bufs, &status, 1);
    if (rc == 0 && status != VMEM_FRAME_OK)
        rc = status;
    if (rc < 0) {
        snprintf(err, errlen, "domain %u: cannot map its shared_info (mfn 0x%llx): %s",
                 domid, (unsigned long long)shinfo_mfn, strerror(-rc));
        return rc;
    }
    struct arch_shared_info a;
    memcpy(&a, page + offsetof(shared_info_t, arch), sizeof a);
    uint64_t max_pfn = a.max_pfn;
    if (limit_pfn > XEN_P2M_MAX_PFN)
        limit_pfn = XEN_P2M_MAX_PFN;
    if (max_pfn == 0 || max_pfn > limit_pfn) {
        snprintf(err, errlen, "domain %u: its shared_info claims %llu pfns "
                 "(expected 1..%llu): no usable p2m yet", domid,
                 (unsigned long long)max_pfn, (unsigned long long)limit_pfn);
        return -EIO;
    }
    uint64_t npages = (max_pfn + P2M_PER_PAGE - 1) / P2M_PER_PAGE;
    out->npfn = max_pfn;
    out->mfn = malloc(npages * VMEM_PAGE_SIZE);
    if (!out->mfn)
        return -ENOMEM;
    uint64_t fll = a.pfn_to_mfn_frame_list_list;
    if (fll != 0 && fll != (xen_pfn_t)~0ul) {
        out->how = "frame-list-list";
        rc = p2m_from_tree(hv, h, domid, fll, out, err, errlen);
    } else if (a.p2m_cr3 != 0) {
        out->how = "linear";
        rc = p2m_from_linear(hv, h, domid, a.p2m_cr3, a.p2m_vaddr, out);
    } else {
        snprintf(err, errlen, "domain %u: its shared_info names no p2m yet "
                 "(still booting?)", domid);
        rc = -EAGAIN;
    }
    if (rc < 0) {
        if (!err[0])
            snprintf(err, errlen, "domain %u: cannot read its p2m: %s", domid,
                     strerror(-rc));
        xen_p2m_free(out);
        return rc;
    }
    for (uint64_t i = 0; i < max_pfn; i++)
        out->mfn[i] = clean_mfn(out->mfn[i]);
    return 0;
}

void xen_p2m_free(struct xen_p2m *p)
{
    free(p->mfn);
    p->mfn = NULL;
    p->npfn = 0;
}

int xen_p2m_pfn_of(const struct xen_p2m *p, const unsigned long *m2p,
                   uint64_t m2p_nr, uint64_t mfn, uint64_t *pfn)
{
    if (!p || !m2p || mfn >= m2p_nr)
        return -ENOENT;
    uint64_t g = m2p[mfn];
    /* The m2p says which pfn a frame is for its owner; only frames this
     * guest's p2m maps back are the guest's (a foreign or stale frame is
     * not). */
    if (g >= p->npfn || p->mfn[g] != mfn)
        return -ENOENT;
    *pfn = g;
    return 0;
}

int xen_p2m_ranges(const struct xen_p2m *p, struct vmem_range **out, size_t *n)
{
    size_t cap = 8, k = 0;
    struct vmem_range *r = malloc(cap * sizeof *r);
    if (!r)
        return -ENOMEM;
    for (uint64_t i = 0; i < p->npfn;) {
        if (p->mfn[i] == XEN_INVALID_FRAME) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < p->npfn && p->mfn[j] != XEN_INVALID_FRAME)
            j++;
        if (k == cap) {
            cap *= 2;
            struct vmem_range *nr = realloc(r, cap * sizeof *r);
            if (!nr) {
                free(r);
                return -ENOMEM;
            }
            r = nr;
        }
        r[k].start = i << VMEM_PAGE_SHIFT;
        r[k].end = j << VMEM_PAGE_SHIFT;
        r[k].kind = VMEM_RANGE_RAM;
        k++;
        i = j;
    }
    *out = r;
    *n = k;
    return 0;
}

/* ok[i] = frame frames[i] of the domain can be mapped (n <= VMEM_BATCH_MAX). */
static int probe(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                 const uint64_t *frames, size_t n, bool *ok)
{
    int err[VMEM_BATCH_MAX];
    int whole = 0;
    void *map = hv->map(h, domid, frames, n, err, &whole);
    if (!map)
        return whole < 0 ? whole : -EIO;
    for (size_t i = 0; i < n; i++)
        ok[i] = err[i] == 0;
    hv->unmap(h, map, n);
    return 0;
}

#define CHUNK_FRAMES 512u   /* 2 MiB */
/* Probing stops at 1 TiB of guest-physical space: 512 map calls. */
#define XEN_PROBE_MAX_GFN ((uint64_t)1 << 28)

static int add_range(struct vmem_range **r, size_t *k, size_t *cap,
                     uint64_t s, uint64_t e)
{
    if (*k == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        struct vmem_range *nr = realloc(*r, nc * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        *r = nr;
        *cap = nc;
    }
    (*r)[*k] = (struct vmem_range){ s << VMEM_PAGE_SHIFT, e << VMEM_PAGE_SHIFT,
                                    VMEM_RANGE_RAM };
    (*k)++;
    return 0;
}

/* The exact end of a run whose last chunk is `last`: one past its last
 * frame that maps. */
static int run_end(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                   uint64_t last, uint64_t max_gfn, uint64_t *end)
{
    uint64_t f[CHUNK_FRAMES];
    bool ok[CHUNK_FRAMES];
    uint64_t lf = last * CHUNK_FRAMES;
    size_t cnt = CHUNK_FRAMES;
    if (lf + cnt > max_gfn + 1)
        cnt = (size_t)(max_gfn + 1 - lf);
    for (size_t j = 0; j < cnt; j++)
        f[j] = lf + j;
    int rc = probe(hv, h, domid, f, cnt, ok);
    if (rc < 0)
        return rc;
    *end = lf + 1;
    for (size_t j = 0; j < cnt; j++)
        if (ok[j])
            *end = lf + j + 1;
    return 0;
}

int xen_probe_ranges(const struct xen_hv_ops *hv, void *h, uint32_t domid,
                     uint64_t max_gfn, struct vmem_range **out, size_t *n)
{
    if (max_gfn >= XEN_PROBE_MAX_GFN)
        max_gfn = XEN_PROBE_MAX_GFN - 1;
    uint64_t nchunks = max_gfn / CHUNK_FRAMES + 1;
    bool *present = calloc(nchunks, sizeof *present);
    if (!present)
        return -ENOMEM;
    uint64_t frames[VMEM_BATCH_MAX];
    int rc = 0;
    for (uint64_t c0 = 0; c0 < nchunks && rc == 0; c0 += VMEM_BATCH_MAX) {
        size_t m = 0;
        for (uint64_t c = c0; c < nchunks && m < VMEM_BATCH_MAX; c++)
            frames[m++] = c * CHUNK_FRAMES;
        rc = probe(hv, h, domid, frames, m, present + c0);
    }
    struct vmem_range *r = NULL;
    size_t k = 0, cap = 0;
    for (uint64_t c = 0; c < nchunks && rc == 0;) {
        if (!present[c]) {
            c++;
            continue;
        }
        uint64_t e = c;
        while (e < nchunks && present[e])
            e++;
        uint64_t end;
        rc = run_end(hv, h, domid, e - 1, max_gfn, &end);
        if (rc == 0)
            rc = add_range(&r, &k, &cap, c * CHUNK_FRAMES, end);
        c = e;
    }
    free(present);
    if (rc < 0) {
        free(r);
        return rc;
    }
    *out = r;
    *n = k;
    return 0;
}
