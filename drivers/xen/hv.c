/*
 * hv.c - the Xen driver's hypercalls (internal.h's struct xen_hv_ops) over
 * libxenctrl, libxenforeignmemory, libxenguest (the m2p) and libxenstore.
 * Nothing here decides anything: it translates library calls and their
 * errors (-1 with errno) into the table's -errno contract.
 *
 * fork: xenctrl.h says a child must not use the handles of its parent, and
 * with reason: privcmd mappings (hypercall buffers that libxencall caches,
 * the m2p) are VM_DONTCOPY, so in the child they are simply gone and the
 * next hypercall touches an unmapped buffer.  vmemfs opens --vm sources
 * before it daemonises (fork), so every operation first makes sure the
 * handles were opened by this process (a generation bumped by an atfork
 * handler) and opens new ones if not.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>
#include <xen/hvm/save.h>

#include "drivers/xen/internal.h"

struct hv {
    pthread_mutex_t lock;           /* the reopen after a fork */
    unsigned gen;                   /* fork_gen when the handles were opened */
    xentoollog_logger *log;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    struct xs_handle *xs;
    xen_pfn_t *m2p;
    size_t m2p_bytes;
    unsigned long m2p_nr;
};

static int neg_errno(void)
{
    return errno ? -errno : -EIO;
}

/* Bumped in the child of every fork: handles of an older generation are
 * the parent's. */
static unsigned fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { __atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED); }
static void atfork_init(void) { pthread_atfork(NULL, NULL, on_fork_child); }

/* The parent's handles in a child are dropped, not closed: closing would
 * munmap addresses that in the child are unmapped, and may by now hold a
 * mapping of ours.  What they leak is a few descriptors, once. */
static void handles_drop(struct hv *x)
{
    x->m2p = NULL;
    x->xs = NULL;
    x->fmem = NULL;
    x->xch = NULL;
    x->log = NULL;
}

static void handles_close(struct hv *x)
{
    if (x->gen != __atomic_load_n(&fork_gen, __ATOMIC_RELAXED)) {
        handles_drop(x);
        return;
    }
    if (x->m2p)
        munmap(x->m2p, x->m2p_bytes);
    if (x->xs)
        xs_close(x->xs);
    if (x->fmem)
        xenforeignmemory_close(x->fmem);
    if (x->xch)
        xc_interface_close(x->xch);
    if (x->log)
        xtl_logger_destroy(x->log);
    handles_drop(x);
}

/* Open the handles (x->gen is the caller's to set, once they work). */
static int handles_open(struct hv *x, char *err, size_t errlen)
{
    /* Library errors become our -errno and one line; its own logger would
     * print a second, less clear one. */
    x->log = (xentoollog_logger *)xtl_createlogger_stdiostream(stderr, XTL_CRITICAL, 0);
    x->xch = xc_interface_open(x->log, NULL, 0);
    if (!x->xch) {
        int rc = neg_errno();
        snprintf(err, errlen, "xen: cannot open the hypervisor interface "
                 "(/dev/xen/privcmd: not dom0, or xen-privcmd not loaded?): %s",
                 strerror(-rc));
        return rc;
    }
    x->fmem = xenforeignmemory_open(x->log, 0);
    if (!x->fmem) {
        int rc = neg_errno();
        snprintf(err, errlen, "xen: cannot open foreign memory: %s", strerror(-rc));
        return rc;
    }
    x->xs = xs_open(XS_OPEN_READONLY);
    if (!x->xs)
        x->xs = xs_open(0);
    if (!x->xs) {
        int rc = neg_errno();
        snprintf(err, errlen, "xen: cannot reach xenstore: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

static void hv_close(void *h)
{
    struct hv *x = h;
    if (!x)
        return;
    handles_close(x);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

int xen_hv_open(void **out, char *err, size_t errlen)
{
    pthread_once(&atfork_once, atfork_init);
    struct hv *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    pthread_mutex_init(&x->lock, NULL);
    x->gen = __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
    int rc = handles_open(x, err, errlen);
    if (rc < 0) {
        hv_close(x);
        return rc;
    }
    *out = x;
    return 0;
}

/* h with handles of this process (see the top of the file), or NULL when
 * they cannot be opened again (the next call retries). */
static struct hv *live(void *h)
{
    struct hv *x = h;
    unsigned gen = __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
    if (__atomic_load_n(&x->gen, __ATOMIC_ACQUIRE) == gen)
        return x;
    pthread_mutex_lock(&x->lock);
    bool ok = true;
    if (x->gen != gen) {
        handles_drop(x);
        char err[256] = "";
        x->gen = gen;       /* handles_close below closes what did open */
        if (handles_open(x, err, sizeof err) < 0) {
            fprintf(stderr, "vmemfs: xen, after fork: %s\n", err);
            handles_close(x);
            ok = false;
        }
        __atomic_store_n(&x->gen, ok ? gen : gen - 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&x->lock);
    return ok ? x : NULL;
}

static int hv_dominfo(void *h, uint32_t domid, struct xen_dominfo *out)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    xc_dominfo_t info;
    int n = xc_domain_getinfo(x->xch, domid, 1, &info);
    if (n < 0)
        return neg_errno();
    if (n != 1 || info.domid != domid)
        return -ESRCH;
    memset(out, 0, sizeof *out);
    out->domid = info.domid;
    out->hvm = info.hvm;
    out->dying = info.dying;
    out->shutdown = info.shutdown;
    out->paused = info.paused;
    out->shared_info_frame = info.shared_info_frame;
    out->nr_pages = info.nr_pages;
    out->max_pages = info.max_memkb / 4;
    out->max_vcpu_id = info.max_vcpu_id;
    return 0;
}

static void *hv_map(void *h, uint32_t domid, const uint64_t *frames, size_t n,
                    int *err, int *whole)
{
    struct hv *x = live(h);
    if (!x) {
        *whole = -EIO;
        return NULL;
    }
    _Static_assert(sizeof(xen_pfn_t) == sizeof(uint64_t), "64-bit dom0 only");
    void *p = xenforeignmemory_map(x->fmem, domid, PROT_READ, n,
                                   (const xen_pfn_t *)frames, err);
    if (!p) {
        *whole = neg_errno();
        return NULL;
    }
    /* err[] holds negative errno values already (privcmd's). */
    return p;
}

static void hv_unmap(void *h, void *addr, size_t n)
{
    /* A mapping made before a fork is not in the child: nothing to undo. */
    struct hv *x = live(h);
    if (!x)
        return;
    xenforeignmemory_unmap(x->fmem, addr, n);
}

static int hv_max_gpfn(void *h, uint32_t domid, uint64_t *out)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    xen_pfn_t g = 0;
    if (xc_domain_maximum_gpfn(x->xch, domid, &g) < 0)
        return neg_errno();
    *out = g;
    return 0;
}

static int hv_pause(void *h, uint32_t domid)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    return xc_domain_pause(x->xch, domid) < 0 ? neg_errno() : 0;
}

static int hv_unpause(void *h, uint32_t domid)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    return xc_domain_unpause(x->xch, domid) < 0 ? neg_errno() : 0;
}

static int hv_vcpu(void *h, uint32_t domid, bool hvm, unsigned cpu,
                   struct vmem_vcpu *out)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    memset(out, 0, sizeof *out);
    out->id = cpu;
    if (hvm) {
        /* HVM and PVH: the architectural state Xen saves for the vCPU. */
        struct hvm_hw_cpu c;
        if (xc_domain_hvm_getcontext_partial(x->xch, domid, HVM_SAVE_CODE(CPU),
                                             (uint16_t)cpu, &c, sizeof c) < 0)
            return neg_errno();
        uint64_t g[16] = { c.rax, c.rbx, c.rcx, c.rdx, c.rsi, c.rdi, c.rbp, c.rsp,
                           c.r8, c.r9, c.r10, c.r11, c.r12, c.r13, c.r14, c.r15 };
        memcpy(out->gpr, g, sizeof g);
        out->rip = c.rip;
        out->rflags = c.rflags;
        out->cs = (uint16_t)c.cs_sel; out->ss = (uint16_t)c.ss_sel;
        out->ds = (uint16_t)c.ds_sel; out->es = (uint16_t)c.es_sel;
        out->fs = (uint16_t)c.fs_sel; out->gs = (uint16_t)c.gs_sel;
        out->cr0 = c.cr0; out->cr2 = c.cr2; out->cr3 = c.cr3; out->cr4 = c.cr4;
        out->efer = c.msr_efer;
        out->fs_base = c.fs_base;
        out->gs_base = c.gs_base;
        out->kernel_gs_base = c.shadow_gs;
        out->gdt_base = c.gdtr_base;
        out->idt_base = c.idtr_base;
        out->valid = VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES;
        return 0;
    }
    vcpu_guest_context_any_t ctx;
    if (xc_vcpu_getcontext(x->xch, domid, cpu, &ctx) < 0)
        return neg_errno();
    const struct vcpu_guest_context_x86_64 *c = &ctx.x64;
    const struct cpu_user_regs_x86_64 *r = &c->user_regs;
    uint64_t g[16] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp,
                       r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15 };
    memcpy(out->gpr, g, sizeof g);
    out->rip = r->rip;
    out->rflags = r->rflags;
    out->cs = r->cs; out->ss = r->ss; out->ds = r->ds; out->es = r->es;
    out->fs = r->fs; out->gs = r->gs;
    out->cr0 = c->ctrlreg[0];
    out->cr2 = c->ctrlreg[2];
    /* 64-bit PV: xen_pfn_to_cr3(mfn) is mfn << 12 (the kernel's table). */
    out->cr3 = c->ctrlreg[3] & ~(uint64_t)0xfff;
    out->cr4 = c->ctrlreg[4];
    /* A 64-bit PV guest runs in long mode with NX, whatever it may see. */
    out->efer = 0x500 | 0x800;      /* LME|LMA, NXE */
    out->fs_base = c->fs_base;
    out->gs_base = c->gs_base_kernel;
    out->kernel_gs_base = c->gs_base_user;
    out->valid = VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES;
    return 0;
}

/* Mapped once per handle, on first use; callers may ask on every page-table
 * entry (frame_of_pte), so the answer after that is one load. */
static int hv_m2p(void *h, const unsigned long **table, uint64_t *nr)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    xen_pfn_t *m2p = __atomic_load_n(&x->m2p, __ATOMIC_ACQUIRE);
    if (!m2p) {
        pthread_mutex_lock(&x->lock);
        if (!x->m2p) {
            unsigned long max_mfn = 0;
            if (xc_maximum_ram_page(x->xch, &max_mfn) < 0 ||
                !(m2p = xc_map_m2p(x->xch, max_mfn, PROT_READ, NULL))) {
                int rc = neg_errno();
                pthread_mutex_unlock(&x->lock);
                return rc;
            }
            /* xc_map_m2p maps whole 2 MiB chunks of entries. */
            size_t chunk = (size_t)2 << 20;
            x->m2p_bytes = ((size_t)max_mfn * sizeof(xen_pfn_t) + chunk - 1) / chunk * chunk;
            x->m2p_nr = max_mfn;
            __atomic_store_n(&x->m2p, m2p, __ATOMIC_RELEASE);
        }
        m2p = x->m2p;
        pthread_mutex_unlock(&x->lock);
    }
    *table = (const unsigned long *)m2p;
    *nr = x->m2p_nr;
    return 0;
}

const struct xen_hv_ops xen_hv_real = {
    .dominfo = hv_dominfo,
    .map = hv_map,
    .unmap = hv_unmap,
    .max_gpfn = hv_max_gpfn,
    .pause = hv_pause,
    .unpause = hv_unpause,
    .vcpu = hv_vcpu,
    .m2p = hv_m2p,
    .close = hv_close,
};

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static bool name_of(struct hv *x, uint32_t domid, char *name, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/local/domain/%u/name", domid);
    unsigned int n = 0;
    char *v = xs_read(x->xs, XBT_NULL, path, &n);
    if (!v)
        return false;
    snprintf(name, len, "%.*s", (int)n, v);
    free(v);
    return true;
}

int xen_hv_lookup(void *h, const char *name, uint32_t *domid)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    if (all_digits(name)) {
        unsigned long v = strtoul(name, NULL, 10);
        if (v >= DOMID_FIRST_RESERVED)
            return -EINVAL;
        *domid = (uint32_t)v;
        return 0;
    }
    unsigned int n = 0;
    char **ids = xs_directory(x->xs, XBT_NULL, "/local/domain", &n);
    if (!ids)
        return -ENOENT;
    int rc = -ENOENT;
    for (unsigned i = 0; i < n && rc < 0; i++) {
        char got[65];
        if (!all_digits(ids[i]))
            continue;
        uint32_t id = (uint32_t)strtoul(ids[i], NULL, 10);
        if (name_of(x, id, got, sizeof got) && strcmp(got, name) == 0) {
            *domid = id;
            rc = 0;
        }
    }
    free(ids);
    return rc;
}

int xen_hv_list(void *h, struct xen_dom_entry *out, size_t max)
{
    struct hv *x = live(h);
    if (!x)
        return -EIO;
    xc_dominfo_t info[64];
    size_t k = 0;
    uint32_t next = 1;      /* dom0 is the host */
    for (;;) {
        int n = xc_domain_getinfo(x->xch, next, 64, info);
        if (n < 0)
            return neg_errno();
        for (int i = 0; i < n && k < max; i++) {
            if (info[i].domid == 0 || info[i].dying)
                continue;
            out[k].domid = info[i].domid;
            if (!name_of(x, info[i].domid, out[k].name, sizeof out[k].name))
                out[k].name[0] = 0;
            k++;
        }
        if (n < 64 || k == max)
            break;
        next = info[n - 1].domid + 1;
    }
    return (int)k;
}
