/*
 * test_xen.c - the Xen driver's logic (drivers/xen/) over a fake machine in
 * place of the hypercalls (internal.h's struct xen_hv_ops): batching of
 * foreign maps and their per-frame errors, a PV guest's p2m (the
 * frame-list-list tree and the linear list), the m2p check, the driver ops
 * (PV reads by machine frame, CR3 translation, pause counting, gone), the
 * page walker's frame_of_pte hook through core's VM object, the probed
 * HVM/PVH layout, and the discovery's found/lost bookkeeping.  The real
 * hypercalls run in tests/integration/t_xen.sh on a nested Xen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef VMEMFS_HAVE_XEN
#include <xenctrl.h>

#include "core/arch/x86/paging.h"
#include "core/phys/vm.h"
#include "drivers/xen/internal.h"

/* ---- The fake machine -------------------------------------------------- */

#define NFRAMES (1u << 20)

struct fake {
    uint8_t **page;             /* page[frame], NULL: not the domain's */
    uint64_t failing;           /* this frame fails with -EFAULT */
    int map_calls, unmaps;
    size_t max_batch;
    int whole_error;            /* nonzero: map fails whole */
    struct xen_dominfo info;
    int dominfo_rc;
    int pauses, unpauses;
    uint64_t max_gfn;
    struct vmem_vcpu vcpu;
    unsigned long *m2p;
    uint64_t m2p_nr;
    int closed;
};

static uint8_t *frame(struct fake *f, uint64_t fr)
{
    if (!f->page[fr])
        f->page[fr] = calloc(1, 4096);
    return f->page[fr];
}

static void put64(struct fake *f, uint64_t fr, unsigned idx, uint64_t v)
{
    memcpy(frame(f, fr) + idx * 8, &v, 8);
}

static int f_dominfo(void *h, uint32_t domid, struct xen_dominfo *out)
{
    struct fake *f = h;
    if (f->dominfo_rc)
        return f->dominfo_rc;
    *out = f->info;
    out->domid = domid;
    return 0;
}

static void *f_map(void *h, uint32_t domid, const uint64_t *frames, size_t n,
                   int *err, int *whole)
{
    struct fake *f = h;
    f->map_calls++;
    if (n > f->max_batch)
        f->max_batch = n;
    if (f->whole_error) {
        *whole = f->whole_error;
        return NULL;
    }
    uint8_t *m = malloc(n * 4096);
    for (size_t i = 0; i < n; i++) {
        uint64_t fr = frames[i];
        if (fr == f->failing) {
            err[i] = -EFAULT;
        } else if (fr >= NFRAMES || !f->page[fr]) {
            err[i] = -EINVAL;       /* what privcmd says of an empty slot */
        } else {
            err[i] = 0;
            memcpy(m + i * 4096, f->page[fr], 4096);
        }
        if (err[i])
            memset(m + i * 4096, 0xee, 4096);  /* never to be copied */
    }
    return m;
}

static void f_unmap(void *h, void *addr, size_t n)
{
    struct fake *f = h;
    f->unmaps++;
    free(addr);
}

static int f_max_gpfn(void *h, uint32_t domid, uint64_t *out)
{
    *out = ((struct fake *)h)->max_gfn;
    return 0;
}

static int f_pause(void *h, uint32_t domid) { ((struct fake *)h)->pauses++; return 0; }
static int f_unpause(void *h, uint32_t domid) { ((struct fake *)h)->unpauses++; return 0; }

static int f_vcpu(void *h, uint32_t domid, bool hvm, unsigned cpu, struct vmem_vcpu *out)
{
    *out = ((struct fake *)h)->vcpu;
    out->id = cpu;
    return 0;
}

static int f_m2p(void *h, const unsigned long **t, uint64_t *nr)
{
    struct fake *f = h;
    *t = f->m2p;
    *nr = f->m2p_nr;
    return 0;
}

static void f_close(void *h) { ((struct fake *)h)->closed++; }

static const struct xen_hv_ops fake_ops = {
    f_dominfo, f_map, f_unmap, f_max_gpfn, f_pause, f_unpause, f_vcpu, f_m2p, f_close,
};

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof *f);
    f->page = calloc(NFRAMES, sizeof *f->page);
    f->failing = UINT64_MAX;
    f->m2p_nr = NFRAMES;
    f->m2p = calloc(NFRAMES, sizeof *f->m2p);
    for (uint64_t i = 0; i < NFRAMES; i++)
        f->m2p[i] = ~0ul;
    return f;
}

static void fake_free(struct fake *f)
{
    for (uint64_t i = 0; i < NFRAMES; i++)
        free(f->page[i]);
    free(f->page);
    free(f->m2p);
    free(f);
}

/* Frame fr holds its own number in every word, so a copy can be checked. */
static void fill_frame(struct fake *f, uint64_t fr, uint64_t tag)
{
    for (unsigned i = 0; i < 512; i++)
        put64(f, fr, i, fr ^ tag);
}

static uint64_t word0(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---- Batching and per-frame errors ------------------------------------- */

static void test_batch_one_call(void **state)
{
    struct fake *f = fake_new();
    enum { N = VMEM_BATCH_MAX };
    static uint64_t frames[N];
    static uint8_t bufs_mem[N][4096];
    void *bufs[N];
    int status[N];
    for (unsigned i = 0; i < N; i++) {
        frames[i] = 0x1000 + (i * 7919) % 4096;     /* any order, repeats */
        fill_frame(f, frames[i], 0x55);
        bufs[i] = bufs_mem[i];
    }
    assert_int_equal(xen_read_batch(&fake_ops, f, 5, frames, bufs, status, N), 0);
    assert_int_equal(f->map_calls, 1);
    assert_int_equal(f->max_batch, N);
    assert_int_equal(f->unmaps, 1);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(status[i], VMEM_FRAME_OK);
        assert_int_equal(word0(bufs_mem[i]), frames[i] ^ 0x55);
    }
    fake_free(f);
}

static void test_batch_splits_above_max(void **state)
{
    struct fake *f = fake_new();
    enum { N = VMEM_BATCH_MAX + 476 };
    static uint64_t frames[N];
    static uint8_t bufs_mem[N][4096];
    void *bufs[N];
    int status[N];
    for (unsigned i = 0; i < N; i++) {
        frames[i] = 0x2000 + i;
        fill_frame(f, frames[i], 1);
        bufs[i] = bufs_mem[i];
    }
    assert_int_equal(xen_read_batch(&fake_ops, f, 5, frames, bufs, status, N), 0);
    assert_int_equal(f->map_calls, 2);
    assert_int_equal(f->max_batch, VMEM_BATCH_MAX);
    assert_int_equal(word0(bufs_mem[N - 1]), frames[N - 1] ^ 1);
    fake_free(f);
}

static void test_batch_per_frame_errors(void **state)
{
    struct fake *f = fake_new();
    uint64_t frames[5] = { 0x10, 0x11 /* absent */, 0x12 /* fails */,
                           XEN_INVALID_FRAME, 0x13 };
    fill_frame(f, 0x10, 0);
    fill_frame(f, 0x12, 0);
    fill_frame(f, 0x13, 0);
    f->failing = 0x12;
    uint8_t mem[5][4096];
    memset(mem, 0xab, sizeof mem);
    void *bufs[5] = { mem[0], mem[1], mem[2], mem[3], mem[4] };
    int status[5];
    assert_int_equal(xen_read_batch(&fake_ops, f, 5, frames, bufs, status, 5), 0);
    assert_int_equal(f->map_calls, 1);
    assert_int_equal(f->max_batch, 4);        /* the invalid one never asked */
    assert_int_equal(status[0], 0);
    assert_int_equal(status[1], -ENOENT);
    assert_int_equal(status[2], -EIO);
    assert_int_equal(status[3], -ENOENT);
    assert_int_equal(status[4], 0);
    assert_int_equal(word0(mem[4]), 0x13);
    assert_int_equal(mem[1][0], 0xab);        /* failed frames untouched */
    assert_int_equal(mem[2][0], 0xab);
    fake_free(f);
}

static void test_batch_whole_failure(void **state)
{
    struct fake *f = fake_new();
    f->whole_error = -ESRCH;
    uint64_t fr = 1;
    uint8_t mem[4096];
    void *bufs[1] = { mem };
    int status[1];
    assert_int_equal(xen_read_batch(&fake_ops, f, 5, &fr, bufs, status, 1), -ESRCH);
    fake_free(f);
}

/* ---- A PV guest's p2m --------------------------------------------------- */

#define SHINFO 0x7000
#define NPFN 3000u          /* 6 p2m pages, one frame-list page */

static uint64_t mfn_of_pfn(uint64_t pfn)
{
    return 0x40000 + (pfn * 37) % 0x10000;   /* scattered, unique */
}

static bool pfn_is_hole(uint64_t pfn)
{
    return (pfn >= 100 && pfn < 200) || pfn == 2999;
}

static void shinfo(struct fake *f, uint64_t max_pfn, uint64_t fll, uint64_t cr3,
                   uint64_t vaddr)
{
    struct arch_shared_info a;
    memset(&a, 0, sizeof a);
    a.max_pfn = max_pfn;
    a.pfn_to_mfn_frame_list_list = fll;
    a.p2m_cr3 = cr3;
    a.p2m_vaddr = vaddr;
    memcpy(frame(f, SHINFO) + offsetof(shared_info_t, arch), &a, sizeof a);
}

/* The guest's frames, its p2m pages (at mfns 0x9000.., entry values as a
 * Linux PV guest writes them), m2p entries. */
static void pv_guest(struct fake *f)
{
    for (uint64_t pfn = 0; pfn < NPFN; pfn++) {
        if (pfn_is_hole(pfn)) {
            put64(f, 0x9000 + pfn / 512, pfn % 512,
                  pfn == 2999 ? (1ull << 62) | pfn /* identity */ : ~0ull);
            continue;
        }
        uint64_t m = mfn_of_pfn(pfn);
        fill_frame(f, m, 0xabc);
        f->m2p[m] = pfn;
        put64(f, 0x9000 + pfn / 512, pfn % 512, m);
    }
    for (unsigned i = NPFN % 512; i < 512; i++)
        put64(f, 0x9000 + NPFN / 512, i, ~0ull);
}

static void check_p2m(const struct xen_p2m *p)
{
    assert_int_equal(p->npfn, NPFN);
    for (uint64_t pfn = 0; pfn < NPFN; pfn++)
        assert_int_equal(p->mfn[pfn], pfn_is_hole(pfn) ? XEN_INVALID_FRAME
                                                       : mfn_of_pfn(pfn));
}

static void test_p2m_frame_list_list(void **state)
{
    struct fake *f = fake_new();
    pv_guest(f);
    put64(f, 0x8800, 0, 0x8900);                  /* fll -> one list page */
    for (unsigned i = 0; i < 6; i++)
        put64(f, 0x8900, i, 0x9000 + i);          /* list -> p2m pages */
    shinfo(f, NPFN, 0x8800, 0, 0);
    struct xen_p2m p;
    char err[256] = "";
    assert_int_equal(xen_p2m_build(&fake_ops, f, 3, SHINFO, 1 << 20, &p, err,
                                   sizeof err), 0);
    assert_string_equal(p.how, "frame-list-list");
    check_p2m(&p);
    /* Few map calls: shared_info, the tree's two levels, the p2m pages. */
    assert_true(f->map_calls <= 4);

    struct vmem_range *r;
    size_t n;
    assert_int_equal(xen_p2m_ranges(&p, &r, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].end, 100 * 4096);
    assert_int_equal(r[1].start, 200 * 4096);
    assert_int_equal(r[1].end, 2999 * 4096);
    free(r);

    /* m2p, checked against the p2m. */
    uint64_t pfn;
    assert_int_equal(xen_p2m_pfn_of(&p, f->m2p, f->m2p_nr, mfn_of_pfn(1234), &pfn), 0);
    assert_int_equal(pfn, 1234);
    f->m2p[0x5000] = 1234;                          /* another's frame claims it */
    assert_int_equal(xen_p2m_pfn_of(&p, f->m2p, f->m2p_nr, 0x5000, &pfn), -ENOENT);
    f->m2p[0x5001] = 1u << 30;                      /* beyond the p2m */
    assert_int_equal(xen_p2m_pfn_of(&p, f->m2p, f->m2p_nr, 0x5001, &pfn), -ENOENT);
    assert_int_equal(xen_p2m_pfn_of(&p, f->m2p, f->m2p_nr, NFRAMES + 5, &pfn), -ENOENT);
    xen_p2m_free(&p);
    fake_free(f);
}

static void test_p2m_linear(void **state)
{
    struct fake *f = fake_new();
    pv_guest(f);
    /* p2m_vaddr 0xffffc90000000000 mapped by a 4-level table of mfns. */
    uint64_t va = 0xffffc90000000000ull;
    unsigned l4 = (va >> 39) & 511, l3 = (va >> 30) & 511, l2 = (va >> 21) & 511;
    put64(f, 0xa000, l4, (0xa001ull << 12) | 0x67);
    put64(f, 0xa001, l3, (0xa002ull << 12) | 0x67);
    put64(f, 0xa002, l2, (0xa003ull << 12) | 0x67);
    for (unsigned i = 0; i < 6; i++)
        put64(f, 0xa003, i, ((0x9000ull + i) << 12) | 0x67);
    shinfo(f, NPFN, ~0ull, 0xa000ull << 12, va);
    struct xen_p2m p;
    char err[256] = "";
    assert_int_equal(xen_p2m_build(&fake_ops, f, 3, SHINFO, 1 << 20, &p, err,
                                   sizeof err), 0);
    assert_string_equal(p.how, "linear");
    check_p2m(&p);
    xen_p2m_free(&p);
    fake_free(f);
}

static void test_p2m_hostile_size(void **state)
{
    struct fake *f = fake_new();
    shinfo(f, 1ull << 40, 0x8800, 0, 0);
    struct xen_p2m p;
    char err[256] = "";
    assert_int_equal(xen_p2m_build(&fake_ops, f, 3, SHINFO, 1 << 20, &p, err,
                                   sizeof err), -EIO);
    assert_non_null(strstr(err, "pfns"));
    /* No p2m named at all (a guest still booting). */
    shinfo(f, 10, 0, 0, 0);
    err[0] = 0;
    assert_int_equal(xen_p2m_build(&fake_ops, f, 3, SHINFO, 1 << 20, &p, err,
                                   sizeof err), -EAGAIN);
    fake_free(f);
}

/* ---- The driver over a PV domain, and the page walker's hook ------------ */

static struct xen_dom *open_pv(struct fake *f)
{
    pv_guest(f);
    put64(f, 0x8800, 0, 0x8900);
    for (unsigned i = 0; i < 6; i++)
        put64(f, 0x8900, i, 0x9000 + i);
    shinfo(f, NPFN, 0x8800, 0, 0);
    f->info.hvm = false;
    f->info.shared_info_frame = SHINFO;
    f->info.nr_pages = NPFN;
    f->info.max_pages = NPFN;
    f->info.max_vcpu_id = 1;
    struct xen_dom *d = NULL;
    char err[256] = "";
    assert_int_equal(xen_dom_open(&fake_ops, f, 3, "pv1", &d, err, sizeof err), 0);
    return d;
}

static void test_driver_pv(void **state)
{
    struct fake *f = fake_new();
    struct xen_dom *d = open_pv(f);
    const struct vmem_driver_ops *ops = xen_ops_for(d);
    assert_non_null(ops->frame_of_pte);

    const struct vmem_range *r;
    size_t n;
    assert_int_equal(ops->ranges(d, &r, &n), 0);
    assert_int_equal(n, 2);

    uint64_t gfns[3] = { 7, 150 /* hole */, 2000 };
    uint8_t mem[3][4096];
    void *bufs[3] = { mem[0], mem[1], mem[2] };
    int st[3];
    f->map_calls = 0;
    assert_int_equal(ops->read_frames(d, gfns, bufs, st, 3), 0);
    assert_int_equal(f->map_calls, 1);
    assert_int_equal(st[0], 0);
    assert_int_equal(st[1], -ENOENT);
    assert_int_equal(st[2], 0);
    assert_int_equal(word0(mem[0]), mfn_of_pfn(7) ^ 0xabc);
    assert_int_equal(word0(mem[2]), mfn_of_pfn(2000) ^ 0xabc);

    /* CR3 as Xen reports it for PV, a machine frame, comes back as a gfn. */
    f->vcpu.valid = VMEM_VCPU_CRS;
    f->vcpu.cr3 = mfn_of_pfn(42) << 12;
    struct vmem_vcpu v;
    assert_int_equal(ops->vcpu_count(d), 2);
    assert_int_equal(ops->vcpu_state(d, 1, &v), 0);
    assert_int_equal(v.cr3, 42ull << 12);
    assert_int_equal(ops->vcpu_state(d, 2, &v), -EINVAL);

    /* Our pause is one, however often asked. */
    assert_int_equal(ops->pause(d), 0);
    assert_int_equal(ops->pause(d), 0);
    assert_int_equal(f->pauses, 1);
    assert_int_equal(ops->resume(d), 0);
    assert_int_equal(ops->resume(d), 0);
    assert_int_equal(f->unpauses, 1);

    assert_false(ops->gone(d));
    f->info.dying = true;
    assert_true(ops->gone(d));
    f->info.dying = false;
    assert_true(ops->gone(d));                    /* for good */
    ops->close(d);
    assert_int_equal(f->closed, 1);
    fake_free(f);
}

static void test_pv_page_walk(void **state)
{
    struct fake *f = fake_new();
    struct xen_dom *d = open_pv(f);
    /* Page tables in guest pfns 10..13, entries holding machine frames. */
    uint64_t va = 0x00007f0000201000ull;
    unsigned i4 = (va >> 39) & 511, i3 = (va >> 30) & 511, i2 = (va >> 21) & 511,
             i1 = (va >> 12) & 511;
    put64(f, mfn_of_pfn(10), i4, (mfn_of_pfn(11) << 12) | 0x67);
    put64(f, mfn_of_pfn(11), i3, (mfn_of_pfn(12) << 12) | 0x67);
    put64(f, mfn_of_pfn(12), i2, (mfn_of_pfn(13) << 12) | 0x67);
    put64(f, mfn_of_pfn(13), i1, (mfn_of_pfn(500) << 12) | 0x67);
    put64(f, mfn_of_pfn(13), i1 + 1, (0x5000ull << 12) | 0x67);   /* foreign */

    struct vmem_driver drv = { xen_ops_for(d), d, VMEM_CAP_SLOW };
    struct vm_options o;
    vm_options_default(&o);
    char err[256];
    struct vm *vm = vm_new("pv1", "xen:3", drv, &o, err, sizeof err);
    assert_non_null(vm);
    struct vmem_phys_reader rd;
    vm_phys_reader(vm, &rd);
    assert_non_null(rd.frame);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, 10ull << 12, &rd);
    uint64_t gpa = 0;
    assert_int_equal(vmem_as_translate(as, va + 0x18, &gpa, NULL), 0);
    assert_int_equal(gpa, (500ull << 12) + 0x18);
    /* A machine frame the guest does not own is not mapped. */
    assert_int_equal(vmem_as_translate(as, va + 4096, &gpa, NULL), -EFAULT);
    /* And the bytes through the walk are the guest frame's. */
    struct vm_reply *rep = vm_thread_reply();
    assert_int_equal(vm_read_virt_iov(vm, as, va, 8, rep), 8);
    assert_int_equal(word0(rep->iov[0].iov_base), mfn_of_pfn(500) ^ 0xabc);
    vmem_as_free(as);
    vm_put(vm);
    fake_free(f);
}

/* ---- The probed layout of an HVM/PVH domain ------------------------------ */

static void test_probe_ranges(void **state)
{
    struct fake *f = fake_new();
    /* RAM [0, 0xa0) and [0xc0, 0x5123), special pages at 0xfeff0.. (not at
     * a chunk start: left out), RAM [0x100000 - 512*3, ...) beyond max. */
    for (uint64_t g = 0; g < 0x5123; g++)
        if (g < 0xa0 || g >= 0xc0)
            frame(f, g);
    for (uint64_t g = 0xfeff0; g < 0xff000; g++)
        frame(f, g);
    f->max_gfn = 0xfefff;
    struct vmem_range *r;
    size_t n;
    assert_int_equal(xen_probe_ranges(&fake_ops, f, 7, f->max_gfn, &r, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].end, 0x5123ull << 12);
    free(r);
    /* 2040 chunk starts in two calls, then one for the run's end. */
    assert_int_equal(f->map_calls, 3);
    fake_free(f);
}

/* ---- Discovery bookkeeping --------------------------------------------- */

struct events { char log[1024]; };

static void ev_found(void *ctx, const char *name, const char *spec)
{
    struct events *e = ctx;
    snprintf(e->log + strlen(e->log), sizeof e->log - strlen(e->log), "+%s=%s ",
             name, spec);
}

static void ev_lost(void *ctx, const char *name)
{
    struct events *e = ctx;
    snprintf(e->log + strlen(e->log), sizeof e->log - strlen(e->log), "-%s ", name);
}

static void test_discovery_steps(void **state)
{
    struct events ev = { "" };
    struct vmem_discovery_sink sink = { &ev, ev_found, ev_lost };
    struct xen_disc_state st = { 0 };
    struct xen_dom_entry a[3] = { { 1, "web1" }, { 2, "" }, { 3, "bad/name" } };
    xen_disc_step(&st, a, 3, &sink);
    assert_string_equal(ev.log, "+web1=xen:1 +dom3=xen:3 ");
    ev.log[0] = 0;
    xen_disc_step(&st, a, 3, &sink);              /* nothing changed */
    assert_string_equal(ev.log, "");
    /* Announced again after 4 polls (one that could not open while it
     * booted gets another chance), not in between. */
    xen_disc_step(&st, a, 3, &sink);
    xen_disc_step(&st, a, 3, &sink);
    assert_string_equal(ev.log, "");
    xen_disc_step(&st, a, 3, &sink);
    assert_string_equal(ev.log, "+web1=xen:1 +dom3=xen:3 ");
    ev.log[0] = 0;
    xen_disc_step(&st, a, 3, &sink);
    assert_string_equal(ev.log, "");
    struct xen_dom_entry b[2] = { { 2, "db" }, { 4, "web1" } };
    xen_disc_step(&st, b, 2, &sink);              /* 1 destroyed, name reused */
    assert_string_equal(ev.log, "-web1 -dom3 +db=xen:2 +web1=xen:4 ");
    xen_disc_state_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_one_call),
        cmocka_unit_test(test_batch_splits_above_max),
        cmocka_unit_test(test_batch_per_frame_errors),
        cmocka_unit_test(test_batch_whole_failure),
        cmocka_unit_test(test_p2m_frame_list_list),
        cmocka_unit_test(test_p2m_linear),
        cmocka_unit_test(test_p2m_hostile_size),
        cmocka_unit_test(test_driver_pv),
        cmocka_unit_test(test_pv_page_walk),
        cmocka_unit_test(test_probe_ranges),
        cmocka_unit_test(test_discovery_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else
int main(void)
{
    printf("SKIP: vmemfs built without the Xen driver (libxen-dev missing)\n");
    return 77;
}
#endif
