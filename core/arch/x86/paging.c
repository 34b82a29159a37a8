/*
 * paging.c - x86 page-table walks (32-bit, PAE, 4- and 5-level) and the
 * per-space translation cache.  See paging.h for the contracts and the
 * virtual-address model.
 *
 * One walker does everything: walk_table() visits a va range [lo, hi) in
 * ascending order, reading from each table only the slice of entries the
 * range needs (one read per table visit), and reports every sub-range as a
 * leaf (mapped) or a hole.  translate is that walk over one page (one
 * 8-byte read per level), translate_range over many, next_mapped stops at
 * the first hole after a leaf.  The depth is fixed by the mode, so hostile
 * loops cannot recurse; a read budget bounds the breadth.
 */
#include "core/arch/x86/paging.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- Page-table formats ------------------------------------------------ */

#define ADDR_MASK_52    0x000ffffffffff000ull   /* entry bits 51:12 */
#define ENT_P           0x1ull
#define ENT_PS          0x80ull
/* PAE PDPTE: bits 2:1, 8:5 and 63:52 (63:MAXPHYADDR) must be zero; there is
 * no XD bit at this level.  Bit 5 (Accessed) is not checked: QEMU's TCG sets
 * it in PDPTEs as at every other level, and Linux PAE guests run with it. */
#define PAE_PDPTE_RSVD  0xfff00000000001c6ull
/* PAE PDE/PTE: bits 62:52 are reserved (no protection keys in PAE). */
#define PAE_RSVD_HIGH   0x7ff0000000000000ull
/* Large-page entries: bits (shift-1):13 must be zero (bit 12 is PAT); a set
 * one is a misaligned frame address. */
#define LARGE_RSVD(shift) ((((uint64_t)1 << (shift)) - 1) & ~0x1fffull)
/* 32-bit 4 MiB PDE: bit 21 reserved; bits 20:13 are PA bits 39:32 (PSE-36,
 * taken at its widest, MAXPHYADDR 40). */
#define PSE_RSVD        (1ull << 21)

struct level {
    uint8_t shift;      /* lowest va bit this level's index covers */
    uint8_t bits;       /* index width: entries per table = 1 << bits */
};

struct mode_desc {
    uint8_t nlevels;
    uint8_t esz;            /* entry size, bytes */
    uint8_t span_bits;      /* linear address width */
    uint8_t nclasses;       /* leaf page sizes the mode has ... */
    uint8_t leaf_shift[3];  /* ... smallest first (cache probe order) */
    struct level lv[5];     /* top level first */
};

static const struct mode_desc modes[] = {
    [VMEM_PAGING_X86_32] = { 2, 4, 32, 2, { 12, 22 },
                             { { 22, 10 }, { 12, 10 } } },
    [VMEM_PAGING_PAE] = { 3, 8, 32, 2, { 12, 21 },
                          { { 30, 2 }, { 21, 9 }, { 12, 9 } } },
    [VMEM_PAGING_X86_64_4L] = { 4, 8, 48, 3, { 12, 21, 30 },
                                { { 39, 9 }, { 30, 9 }, { 21, 9 }, { 12, 9 } } },
    [VMEM_PAGING_X86_64_5L] = { 5, 8, 57, 3, { 12, 21, 30 },
                                { { 48, 9 }, { 39, 9 }, { 30, 9 }, { 21, 9 },
                                  { 12, 9 } } },
};

enum { ENT_HOLE, ENT_TABLE, ENT_LEAF };

/* Classify entry e of level lvl: a hole (not present or malformed), a
 * pointer to the next table, or a leaf.  *addr gets the next table's gpa or
 * the leaf frame's base gpa. */
static int decode(enum vmem_paging_mode mode, const struct mode_desc *md,
                  unsigned lvl, uint64_t e, uint64_t *addr)
{
    if (!(e & ENT_P))
        return ENT_HOLE;
    bool last = lvl + 1 == md->nlevels;
    unsigned shift = md->lv[lvl].shift;

    switch (mode) {
    case VMEM_PAGING_X86_32:
        if (last) {
            *addr = e & 0xfffff000u;
            return ENT_LEAF;
        }
        if (e & ENT_PS) {
            if (e & PSE_RSVD)
                return ENT_HOLE;
            *addr = (e & 0xffc00000u) | ((e >> 13) & 0xffu) << 32;
            return ENT_LEAF;
        }
        *addr = e & 0xfffff000u;
        return ENT_TABLE;
    case VMEM_PAGING_PAE:
        if (lvl == 0) {
            if (e & PAE_PDPTE_RSVD)
                return ENT_HOLE;
            *addr = e & ADDR_MASK_52;
            return ENT_TABLE;
        }
        if (e & PAE_RSVD_HIGH)
            return ENT_HOLE;
        break;
    default:
        /* PS is reserved in PML5Es and PML4Es: only 1 GiB and 2 MiB pages. */
        if (!last && (e & ENT_PS) && shift > 30)
            return ENT_HOLE;
        break;
    }
    /* 64-bit entry format, shared by PAE levels 1-2 and x86-64. */
    if (last) {
        *addr = e & ADDR_MASK_52;
        return ENT_LEAF;
    }
    if (e & ENT_PS) {
        if (e & LARGE_RSVD(shift))
            return ENT_HOLE;
        *addr = e & ADDR_MASK_52 & ~(((uint64_t)1 << shift) - 1);
        return ENT_LEAF;
    }
    *addr = e & ADDR_MASK_52;
    return ENT_TABLE;
}

/* ---- The space and its translation cache ------------------------------- */

#define TC_BITS 9
#define TC_SIZE (1u << TC_BITS)

/* One cache slot, a seqlock: the writer makes seq odd, stores, makes it even
 * again; a reader retries nothing, it just misses if seq moved or was odd.
 * tag = vpn << 3 | class << 1 | 1 (0: empty); gen must equal the space's
 * generation, which vmem_as_flush bumps. */
struct tc_entry {
    atomic_uint seq;
    _Atomic uint64_t tag;
    _Atomic uint64_t gpa;       /* base gpa of the leaf page */
    _Atomic uint64_t gen;
};

struct vmem_as {
    enum vmem_paging_mode mode;
    const struct mode_desc *md;
    uint64_t dtb;               /* masked root: first table's gpa */
    struct vmem_phys_reader rd;
    _Atomic uint64_t gen;
    _Atomic uint64_t hits, misses, reads;
    struct tc_entry tc[TC_SIZE];
};

static unsigned tc_index(uint64_t vpn, unsigned cls)
{
    return (unsigned)(((vpn ^ ((uint64_t)cls << 58)) * 0x9e3779b97f4a7c15ull)
                      >> (64 - TC_BITS));
}

static bool tc_lookup(struct vmem_as *as, uint64_t va, uint64_t gen,
                      uint64_t *gpa, uint64_t *size)
{
    const struct mode_desc *md = as->md;
    for (unsigned c = 0; c < md->nclasses; c++) {
        unsigned shift = md->leaf_shift[c];
        uint64_t vpn = va >> shift;
        uint64_t want = vpn << 3 | (uint64_t)c << 1 | 1;
        struct tc_entry *e = &as->tc[tc_index(vpn, c)];
        unsigned s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        uint64_t tag = atomic_load_explicit(&e->tag, memory_order_relaxed);
        uint64_t base = atomic_load_explicit(&e->gpa, memory_order_relaxed);
        uint64_t egen = atomic_load_explicit(&e->gen, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1)
            continue;
        if (tag == want && egen == gen) {
            uint64_t sz = (uint64_t)1 << shift;
            *gpa = base + (va & (sz - 1));
            *size = sz;
            return true;
        }
    }
    return false;
}

static void tc_insert(struct vmem_as *as, uint64_t va, uint64_t size,
                      uint64_t base, uint64_t gen)
{
    const struct mode_desc *md = as->md;
    unsigned c = 0;
    while (c < md->nclasses && ((uint64_t)1 << md->leaf_shift[c]) != size)
        c++;
    if (c == md->nclasses)
        return;
    uint64_t vpn = va >> md->leaf_shift[c];
    struct tc_entry *e = &as->tc[tc_index(vpn, c)];
    unsigned s = atomic_load_explicit(&e->seq, memory_order_relaxed);
    /* Another writer on this slot: skip caching rather than wait. */
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(
                       &e->seq, &s, s + 1, memory_order_relaxed,
                       memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->tag, vpn << 3 | (uint64_t)c << 1 | 1,
                          memory_order_relaxed);
    atomic_store_explicit(&e->gpa, base, memory_order_relaxed);
    atomic_store_explicit(&e->gen, gen, memory_order_relaxed);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

struct vmem_as *vmem_as_new(enum vmem_paging_mode mode, uint64_t dtb,
                            const struct vmem_phys_reader *rd)
{
    if ((unsigned)mode > VMEM_PAGING_X86_64_5L || !rd || !rd->read) {
        errno = EINVAL;
        return NULL;
    }
    struct vmem_as *as = calloc(1, sizeof *as);
    if (!as)
        return NULL;
    as->mode = mode;
    as->md = &modes[mode];
    as->rd = *rd;
    switch (mode) {
    case VMEM_PAGING_X86_32:
        as->dtb = dtb & 0xfffff000u;
        break;
    case VMEM_PAGING_PAE:
        as->dtb = dtb & 0xffffffe0u;    /* PDPT: 32-byte aligned, below 4G */
        break;
    default:
        as->dtb = dtb & ADDR_MASK_52;   /* drops PCID, bit 63, LAM bits */
        break;
    }
    atomic_init(&as->gen, 1);
    atomic_init(&as->hits, 0);
    atomic_init(&as->misses, 0);
    atomic_init(&as->reads, 0);
    for (unsigned i = 0; i < TC_SIZE; i++) {
        atomic_init(&as->tc[i].seq, 0);
        atomic_init(&as->tc[i].tag, 0);
        atomic_init(&as->tc[i].gpa, 0);
        atomic_init(&as->tc[i].gen, 0);
    }
    return as;
}

void vmem_as_free(struct vmem_as *as)
{
    free(as);
}

enum vmem_paging_mode vmem_as_mode(const struct vmem_as *as)
{
    return as->mode;
}

uint64_t vmem_as_dtb(const struct vmem_as *as)
{
    return as->dtb;
}

uint64_t vmem_as_span(const struct vmem_as *as)
{
    return (uint64_t)1 << as->md->span_bits;
}

uint64_t vmem_as_size(const struct vmem_as *as)
{
    unsigned sb = as->md->span_bits;
    /* 32-bit spaces have no canonical halves: the whole 4 GiB. */
    return (uint64_t)1 << (sb == 32 ? 32 : sb - 1);
}

uint64_t vmem_as_va(const struct vmem_as *as, uint64_t gva)
{
    unsigned sb = as->md->span_bits;
    if ((gva >> sb) == 0)
        return gva;
    /* Canonical upper half: bits 63..sb-1 all set. */
    if (sb < 64 && sb != 32 && (gva >> (sb - 1)) == (UINT64_MAX >> (sb - 1)))
        return gva & (((uint64_t)1 << sb) - 1);
    return VMEM_VA_NONE;
}

uint64_t vmem_as_gva(const struct vmem_as *as, uint64_t va)
{
    va = vmem_as_va(as, va);
    unsigned sb = as->md->span_bits;
    if (va == VMEM_VA_NONE || sb == 32)
        return va;
    if (va & ((uint64_t)1 << (sb - 1)))
        va |= ~(((uint64_t)1 << sb) - 1);
    return va;
}

void vmem_as_flush(struct vmem_as *as)
{
    atomic_fetch_add_explicit(&as->gen, 1, memory_order_acq_rel);
}

void vmem_as_get_stats(const struct vmem_as *as, struct vmem_as_stats *out)
{
    out->cache_hits = atomic_load_explicit(&as->hits, memory_order_relaxed);
    out->cache_misses = atomic_load_explicit(&as->misses, memory_order_relaxed);
    out->table_reads = atomic_load_explicit(&as->reads, memory_order_relaxed);
}

/* ---- The range walker -------------------------------------------------- */

struct walk;
/* Visitors get a clipped sub-range [from, to) of [lo, hi); nonzero stops. */
typedef int (*leaf_fn)(struct walk *w, uint64_t from, uint64_t to,
                       uint64_t gpa_from, uint64_t page_size);
typedef int (*hole_fn)(struct walk *w, uint64_t from, uint64_t to);

struct walk {
    struct vmem_as *as;
    uint64_t lo, hi;        /* page-aligned va range, hi <= span */
    uint64_t pos;           /* [lo, pos) has been visited */
    unsigned budget;        /* table reads left */
    bool out_of_budget;
    int err;                /* first reader error other than -ENOENT */
    leaf_fn leaf;
    hole_fn hole;
    /* visitor state */
    uint64_t *gpas;                         /* translate_range */
    bool found;                             /* next_mapped, translate */
    uint64_t start, end, gpa, page_size;
};

#define WALK_STOP 1

static int visit_hole(struct walk *w, uint64_t from, uint64_t to)
{
    w->pos = to;
    return w->hole ? w->hole(w, from, to) : 0;
}

static int walk_table(struct walk *w, unsigned lvl, uint64_t table,
                      uint64_t base)
{
    const struct mode_desc *md = w->as->md;
    unsigned shift = md->lv[lvl].shift;
    unsigned esz = md->esz;
    uint64_t n = (uint64_t)1 << md->lv[lvl].bits;
    uint64_t from = w->lo > base ? w->lo : base;
    uint64_t top = base + (n << shift);
    uint64_t to = w->hi < top ? w->hi : top;
    if (from >= to)
        return 0;
    uint64_t i0 = (from - base) >> shift, i1 = (to - 1 - base) >> shift;

    if (w->budget == 0) {
        w->out_of_budget = true;
        w->pos = from;
        return WALK_STOP;
    }
    w->budget--;

    /* Only the entries the range needs, in one read: one 8-byte entry per
     * level for a single translation, a whole table for a wide scan. */
    uint8_t buf[4096];
    size_t len = (size_t)(i1 - i0 + 1) * esz;
    atomic_fetch_add_explicit(&w->as->reads, 1, memory_order_relaxed);
    int rc = w->as->rd.read(w->as->rd.ctx, table + i0 * esz, buf, len);
    if (rc != 0) {
        if (rc > 0)
            rc = -EIO;      /* a reader breaking its contract */
        if (rc != -ENOENT && w->err == 0)
            w->err = rc;
        return visit_hole(w, from, to);
    }

    uint64_t esize = (uint64_t)1 << shift;
    for (uint64_t i = i0; i <= i1; i++) {
        uint64_t e;
        if (esz == 8) {
            uint64_t raw;
            memcpy(&raw, buf + (i - i0) * 8, 8);
            e = le64toh(raw);
        } else {
            uint32_t raw;
            memcpy(&raw, buf + (i - i0) * 4, 4);
            e = le32toh(raw);
        }
        uint64_t ebase = base + (i << shift);
        uint64_t efrom = ebase > from ? ebase : from;
        uint64_t eto = ebase + esize < to ? ebase + esize : to;
        uint64_t addr = 0;
        int r;
        int kind = decode(w->as->mode, md, lvl, e, &addr);
        if (kind != ENT_HOLE && w->as->rd.frame) {
            /* Entries hold frames of another space (Xen PV: machine
             * frames): the guest frame, or not present. */
            uint64_t gfn;
            if (w->as->rd.frame(w->as->rd.ctx, addr >> VMEM_PAGE_SHIFT, &gfn) == 0)
                addr = gfn << VMEM_PAGE_SHIFT | (addr & (VMEM_PAGE_SIZE - 1));
            else
                kind = ENT_HOLE;
        }
        switch (kind) {
        case ENT_LEAF:
            w->pos = eto;
            r = w->leaf ? w->leaf(w, efrom, eto, addr + (efrom - ebase), esize)
                        : 0;
            break;
        case ENT_TABLE:
            r = walk_table(w, lvl + 1, addr, ebase);
            break;
        default:
            r = visit_hole(w, efrom, eto);
            break;
        }
        if (r)
            return r;
    }
    return 0;
}

static void walk_init(struct walk *w, struct vmem_as *as, uint64_t lo,
                      uint64_t hi, unsigned budget)
{
    memset(w, 0, sizeof *w);
    w->as = as;
    w->lo = w->pos = lo;
    w->hi = hi;
    w->budget = budget;
}

static int walk_run(struct walk *w)
{
    return walk_table(w, 0, w->as->dtb, 0);
}

/* ---- translate ---------------------------------------------------------- */

static int one_leaf(struct walk *w, uint64_t from, uint64_t to,
                    uint64_t gpa_from, uint64_t page_size)
{
    w->found = true;
    w->gpa = gpa_from;
    w->page_size = page_size;
    return WALK_STOP;
}

int vmem_as_translate(struct vmem_as *as, uint64_t gva, uint64_t *gpa,
                      uint64_t *page_size)
{
    uint64_t va = vmem_as_va(as, gva);
    if (va == VMEM_VA_NONE || !gpa)
        return -EFAULT;
    uint64_t gen = atomic_load_explicit(&as->gen, memory_order_acquire);
    uint64_t g, sz;
    if (tc_lookup(as, va, gen, &g, &sz)) {
        atomic_fetch_add_explicit(&as->hits, 1, memory_order_relaxed);
        *gpa = g;
        if (page_size)
            *page_size = sz;
        return 0;
    }
    atomic_fetch_add_explicit(&as->misses, 1, memory_order_relaxed);

    struct walk w;
    uint64_t page = va & VMEM_PAGE_MASK;
    walk_init(&w, as, page, page + VMEM_PAGE_SIZE, as->md->nlevels);
    w.leaf = one_leaf;
    walk_run(&w);
    if (!w.found)
        return w.err ? w.err : -EFAULT;
    /* w.gpa is the gpa of `page`; the leaf's base is below it. */
    uint64_t base = w.gpa - (page & (w.page_size - 1));
    tc_insert(as, va, w.page_size, base, gen);
    *gpa = w.gpa + (va & (VMEM_PAGE_SIZE - 1));
    if (page_size)
        *page_size = w.page_size;
    return 0;
}

/* ---- translate_range ---------------------------------------------------- */

static int range_leaf(struct walk *w, uint64_t from, uint64_t to,
                      uint64_t gpa_from, uint64_t page_size)
{
    for (uint64_t p = from; p < to; p += VMEM_PAGE_SIZE)
        w->gpas[(p - w->lo) >> VMEM_PAGE_SHIFT] = gpa_from + (p - from);
    return 0;
}

int vmem_as_translate_range(struct vmem_as *as, uint64_t gva, size_t npages,
                            uint64_t *gpas)
{
    if (npages && !gpas)
        return -EFAULT;
    for (size_t i = 0; i < npages; i++)
        gpas[i] = VMEM_GPA_NONE;
    uint64_t va = vmem_as_va(as, gva);
    if (va == VMEM_VA_NONE || npages == 0)
        return 0;
    uint64_t lo = va & VMEM_PAGE_MASK, span = vmem_as_span(as);
    uint64_t hi = span;
    if ((uint64_t)npages < (span - lo) >> VMEM_PAGE_SHIFT)
        hi = lo + ((uint64_t)npages << VMEM_PAGE_SHIFT);
    /* No budget: every table read covers at least one page of the range, so
     * the work is bounded by npages already. */
    struct walk w;
    walk_init(&w, as, lo, hi, UINT_MAX);
    w.leaf = range_leaf;
    w.gpas = gpas;
    walk_run(&w);
    return w.err;
}

/* ---- next_mapped --------------------------------------------------------- */

static int scan_leaf(struct walk *w, uint64_t from, uint64_t to,
                     uint64_t gpa_from, uint64_t page_size)
{
    if (!w->found) {
        w->found = true;
        w->start = from;
    }
    /* Visits are in order and cover every sub-range, so a leaf after a
     * leaf with no hole between is contiguous. */
    w->end = to;
    return 0;
}

static int scan_hole(struct walk *w, uint64_t from, uint64_t to)
{
    return w->found ? WALK_STOP : 0;
}

int vmem_as_next_mapped(struct vmem_as *as, uint64_t gva, uint64_t limit,
                        uint64_t *start, uint64_t *end)
{
    if (!start || !end)
        return -EFAULT;
    uint64_t va = vmem_as_va(as, gva);
    if (va == VMEM_VA_NONE)
        return -ENXIO;
    uint64_t span = vmem_as_span(as);
    uint64_t lo = va & VMEM_PAGE_MASK;
    uint64_t hi = limit < span ? limit : span;
    hi = (hi + VMEM_PAGE_SIZE - 1) & VMEM_PAGE_MASK;   /* span <= 2^57 */
    if (lo >= hi)
        return -ENXIO;

    struct walk w;
    walk_init(&w, as, lo, hi, VMEM_AS_WALK_BUDGET);
    w.leaf = scan_leaf;
    w.hole = scan_hole;
    walk_run(&w);
    if (w.found) {
        *start = w.start;
        *end = w.end;
        return w.out_of_budget ? -EAGAIN : 0;
    }
    if (w.out_of_budget) {
        *start = *end = w.pos;
        return -EAGAIN;
    }
    return -ENXIO;
}
