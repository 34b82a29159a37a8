/*
 * test_paging.c - unit tests of core/paging: page tables of every mode and
 * page size built by hand in a synthetic guest-physical memory (a malloc'd
 * array), checked through translate, translate_range and next_mapped, plus
 * hostile tables (loops, pointers out of RAM, reserved bits, failing reads)
 * and the translation cache (hits, flush, concurrent use).
 *
 * The table builders below encode entries independently of paging.c, from
 * the SDM's formats, so the two check each other.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/arch/x86/paging.h"

/* ---- Synthetic guest-physical memory ------------------------------------ */

#define RAM_SIZE (4u << 20)

struct fake {
    uint8_t *mem;
    uint64_t size;              /* RAM is [0, size) */
    uint64_t next;              /* bump allocator for table pages */
    uint64_t eio_lo, eio_hi;    /* reads in [eio_lo, eio_hi) fail with -EIO */
    unsigned violations;        /* reads breaking the reader contract */
};

static int fake_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    struct fake *f = ctx;
    /* The walker promises: at most a page, never across a page boundary. */
    if (len == 0 || len > 4096 || (gpa & 4095) + len > 4096)
        __atomic_add_fetch(&f->violations, 1, __ATOMIC_RELAXED);
    if (gpa < f->eio_hi && gpa + len > f->eio_lo)
        return -EIO;
    if (gpa >= f->size || len > f->size - gpa)
        return -ENOENT;
    memcpy(buf, f->mem + gpa, len);
    return 0;
}

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem = calloc(1, RAM_SIZE);
    assert_non_null(f->mem);
    f->size = RAM_SIZE;
    f->next = 0x10000;      /* leave low memory free for data "frames" */
    return f;
}

static void fake_free(struct fake *f)
{
    assert_int_equal(f->violations, 0);
    free(f->mem);
    free(f);
}

static uint64_t alloc_page(struct fake *f)
{
    uint64_t p = f->next;
    f->next += 4096;
    assert_true(f->next <= f->size);
    memset(f->mem + p, 0, 4096);
    return p;
}

static void put64(struct fake *f, uint64_t gpa, uint64_t v)
{
    memcpy(f->mem + gpa, &v, 8);
}

static uint64_t get64(struct fake *f, uint64_t gpa)
{
    uint64_t v;
    memcpy(&v, f->mem + gpa, 8);
    return v;
}

static void put32(struct fake *f, uint64_t gpa, uint32_t v)
{
    memcpy(f->mem + gpa, &v, 4);
}

static struct vmem_phys_reader reader_of(struct fake *f)
{
    struct vmem_phys_reader rd = { fake_read, f, NULL };
    return rd;
}

/* ---- Table builders -------------------------------------------------------- */

#define P_RW_US 0x7ull          /* present, writable, user */
#define PS      0x80ull
#define NX      (1ull << 63)
#define A52     0x000ffffffffff000ull

/* x86-64 (nlevels 4 or 5): map va (canonical or not, only index bits are
 * used) to gpa with a leaf at leaf_shift 12, 21 or 30; returns the slot. */
static uint64_t map64(struct fake *f, unsigned nlevels, uint64_t root,
                      uint64_t va, uint64_t gpa, unsigned leaf_shift,
                      uint64_t extra)
{
    uint64_t table = root;
    for (unsigned l = 0; l < nlevels; l++) {
        unsigned shift = 12 + 9 * (nlevels - 1 - l);
        uint64_t slot = table + ((va >> shift) & 511) * 8;
        if (shift == leaf_shift) {
            put64(f, slot, gpa | P_RW_US | (shift > 12 ? PS : 0) | extra);
            return slot;
        }
        uint64_t e = get64(f, slot);
        if (!(e & 1)) {
            e = alloc_page(f) | P_RW_US;
            put64(f, slot, e);
        }
        table = e & A52;
    }
    fail();
    return 0;
}

/* PAE: pdpt is the 32-byte root; leaf_shift 12 or 21. */
static uint64_t map_pae(struct fake *f, uint64_t pdpt, uint32_t va,
                        uint64_t gpa, unsigned leaf_shift, uint64_t extra)
{
    uint64_t slot = pdpt + (va >> 30) * 8;
    uint64_t e = get64(f, slot);
    if (!(e & 1)) {
        e = alloc_page(f) | 1;      /* PDPTE: only P, other low bits reserved */
        put64(f, slot, e);
    }
    slot = (e & A52) + ((va >> 21) & 511) * 8;
    if (leaf_shift == 21) {
        put64(f, slot, gpa | P_RW_US | PS | extra);
        return slot;
    }
    e = get64(f, slot);
    if (!(e & 1)) {
        e = alloc_page(f) | P_RW_US;
        put64(f, slot, e);
    }
    slot = (e & A52) + ((va >> 12) & 511) * 8;
    put64(f, slot, gpa | P_RW_US | extra);
    return slot;
}

/* 32-bit: leaf_shift 12 or 22 (4 MiB, PSE-36 for gpa bits 39:32). */
static uint64_t map32(struct fake *f, uint64_t pd, uint32_t va, uint64_t gpa,
                      unsigned leaf_shift, uint32_t extra)
{
    uint64_t slot = pd + (va >> 22) * 4;
    if (leaf_shift == 22) {
        put32(f, slot, (uint32_t)(gpa & 0xffc00000u) |
                           (uint32_t)((gpa >> 32) & 0xff) << 13 | 0x87u | extra);
        return slot;
    }
    uint32_t e;
    memcpy(&e, f->mem + slot, 4);
    if (!(e & 1)) {
        e = (uint32_t)alloc_page(f) | 0x7u;
        put32(f, slot, e);
    }
    slot = (e & 0xfffff000u) + ((va >> 12) & 1023) * 4;
    put32(f, slot, (uint32_t)gpa | 0x7u | extra);
    return slot;
}

/* ---- Assertions -------------------------------------------------------------- */

static void expect_tr(struct vmem_as *as, uint64_t gva, uint64_t want_gpa,
                      uint64_t want_size)
{
    uint64_t gpa = 0, size = 0;
    int rc = vmem_as_translate(as, gva, &gpa, &size);
    if (rc != 0 || gpa != want_gpa || size != want_size)
        fail_msg("translate(%#llx) = %d gpa %#llx size %#llx, want gpa %#llx"
                 " size %#llx", (unsigned long long)gva, rc,
                 (unsigned long long)gpa, (unsigned long long)size,
                 (unsigned long long)want_gpa, (unsigned long long)want_size);
}

static void expect_unmapped(struct vmem_as *as, uint64_t gva)
{
    uint64_t gpa = 0;
    int rc = vmem_as_translate(as, gva, &gpa, NULL);
    if (rc != -EFAULT)
        fail_msg("translate(%#llx) = %d gpa %#llx, want -EFAULT",
                 (unsigned long long)gva, rc, (unsigned long long)gpa);
}

static void expect_run(struct vmem_as *as, uint64_t gva, uint64_t limit,
                       uint64_t want_start, uint64_t want_end)
{
    uint64_t s = 0, e = 0;
    int rc = vmem_as_next_mapped(as, gva, limit, &s, &e);
    if (rc != 0 || s != want_start || e != want_end)
        fail_msg("next_mapped(%#llx, %#llx) = %d [%#llx, %#llx), want "
                 "[%#llx, %#llx)", (unsigned long long)gva,
                 (unsigned long long)limit, rc, (unsigned long long)s,
                 (unsigned long long)e, (unsigned long long)want_start,
                 (unsigned long long)want_end);
}

static void expect_no_run(struct vmem_as *as, uint64_t gva, uint64_t limit)
{
    uint64_t s = 0, e = 0;
    int rc = vmem_as_next_mapped(as, gva, limit, &s, &e);
    if (rc != -ENXIO)
        fail_msg("next_mapped(%#llx, %#llx) = %d [%#llx, %#llx), want -ENXIO",
                 (unsigned long long)gva, (unsigned long long)limit, rc,
                 (unsigned long long)s, (unsigned long long)e);
}

/* translate_range must agree with translate, page by page. */
static void check_range_vs_translate(struct vmem_as *as, uint64_t gva,
                                     size_t npages)
{
    uint64_t *gpas = malloc(npages * sizeof *gpas);
    assert_non_null(gpas);
    assert_int_equal(vmem_as_translate_range(as, gva, npages, gpas), 0);
    uint64_t va = vmem_as_va(as, gva) & VMEM_PAGE_MASK;
    for (size_t i = 0; i < npages; i++) {
        uint64_t p = va + ((uint64_t)i << 12), gpa = VMEM_GPA_NONE;
        if (p >= vmem_as_span(as) || vmem_as_translate(as, p, &gpa, NULL) != 0)
            gpa = VMEM_GPA_NONE;
        if (gpas[i] != gpa)
            fail_msg("range page %zu (va %#llx): %#llx, translate %#llx", i,
                     (unsigned long long)p, (unsigned long long)gpas[i],
                     (unsigned long long)gpa);
    }
    free(gpas);
}

static uint64_t reads_of(struct vmem_as *as)
{
    struct vmem_as_stats st;
    vmem_as_get_stats(as, &st);
    return st.table_reads;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- x86-64 ---------------------------------------------------------------- */

static void build_64(struct fake *f, unsigned nlevels, uint64_t root)
{
    map64(f, nlevels, root, 0x400000, 0x1234000, 12, 0);
    map64(f, nlevels, root, 0x401000, 0x5000, 12, NX);
    map64(f, nlevels, root, 0x200000, 0x80000000, 21, 0);
    map64(f, nlevels, root, 0x8000000000, 0x40000000, 30, 0);
    map64(f, nlevels, root, 0xffffffff81000000, 0x1000000, 21, 0);
    /* The very top of the user half. */
    uint64_t top = nlevels == 5 ? (1ull << 56) : (1ull << 47);
    map64(f, nlevels, root, top - 4096, 0x9000, 12, 0);
}

static void check_64(struct vmem_as *as, unsigned nlevels)
{
    uint64_t half = nlevels == 5 ? 1ull << 56 : 1ull << 47;
    expect_tr(as, 0x400123, 0x1234123, 4096);
    expect_tr(as, 0x401fff, 0x5fff, 4096);
    expect_unmapped(as, 0x402000);
    expect_unmapped(as, 0);
    expect_tr(as, 0x212345, 0x80012345, 2 << 20);
    expect_tr(as, 0x8003456789, 0x43456789, 1 << 30);
    expect_tr(as, 0x803fffffff, 0x7fffffff, 1 << 30);
    expect_unmapped(as, 0x8040000000);
    expect_tr(as, half - 1, 0x9fff, 4096);
    /* Kernel text: canonical gva and its va (file offset) form agree. */
    expect_tr(as, 0xffffffff81123456, 0x1123456, 2 << 20);
    uint64_t span = vmem_as_span(as);
    expect_tr(as, 0xffffffff81123456 & (span - 1), 0x1123456, 2 << 20);
    /* Non-canonical: bits above the span that are not a sign extension. */
    expect_unmapped(as, 0x8000000000000000);
    expect_unmapped(as, span | 0x400000);
    expect_unmapped(as, 0x7fffffff81234567);

    assert_int_equal(vmem_as_size(as), half);
    assert_int_equal(span, half * 2);
    assert_int_equal(vmem_as_va(as, 0x400000), 0x400000);
    assert_int_equal(vmem_as_va(as, 0xffffffffffffffff), span - 1);
    assert_int_equal(vmem_as_va(as, span), VMEM_VA_NONE);
    assert_int_equal(vmem_as_gva(as, half), (uint64_t)0 - half);
    assert_int_equal(vmem_as_gva(as, half - 1), half - 1);
    assert_int_equal(vmem_as_gva(as, 0xffffffff81000000), 0xffffffff81000000);
    assert_int_equal(vmem_as_gva(as, vmem_as_va(as, 0xffffffff81000000)),
                     0xffffffff81000000);
}

static void test_x86_64_4l(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    build_64(f, 4, root);
    struct vmem_phys_reader rd = reader_of(f);
    /* CR3 as the CPU holds it: PCID in 11:0, no-flush bit 63. */
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L,
                                     root | 0x123 | (1ull << 63), &rd);
    assert_non_null(as);
    assert_int_equal(vmem_as_dtb(as), root);
    assert_int_equal(vmem_as_mode(as), VMEM_PAGING_X86_64_4L);
    check_64(as, 4);
    check_64(as, 4);    /* again, now from the cache */
    struct vmem_as_stats st;
    vmem_as_get_stats(as, &st);
    assert_int_equal(st.cache_hits, 10);
    vmem_as_free(as);
    fake_free(f);
}

static void test_x86_64_5l(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    build_64(f, 5, root);
    /* Above 2^48: only 5-level reaches these. */
    map64(f, 5, root, 0x00f0123456000000, 0x2000, 12, 0);
    map64(f, 5, root, 0xff00000000000000, 0x40000000, 30, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_5L, root, &rd);
    assert_non_null(as);
    check_64(as, 5);
    expect_tr(as, 0x00f0123456000abc, 0x2abc, 4096);
    expect_tr(as, 0xff00000000000010, 0x40000010, 1 << 30);
    /* Its va: the first byte of the upper half, file offset 2^56. */
    assert_int_equal(vmem_as_va(as, 0xff00000000000000), 1ull << 56);
    /* On 4-level the same tables read differently: bits 56:48 are ignored
     * only if canonical, and 0x00f0... is not. */
    struct vmem_as *as4 = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    expect_unmapped(as4, 0x00f0123456000abc);
    vmem_as_free(as4);
    vmem_as_free(as);
    fake_free(f);
}

static void test_x86_64_huge_merged_run(void **state)
{
    /* 4K, 2M, 4K contiguous in va, then 1G + 2M, then the top user page and
     * kernel text; everything else empty. */
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    map64(f, 4, root, 0x1ff000, 0x3000, 12, 0);
    map64(f, 4, root, 0x200000, 0x600000, 21, 0);
    map64(f, 4, root, 0x400000, 0x4000, 12, 0);
    map64(f, 4, root, 0x401000, 0x7000, 12, 0);
    map64(f, 4, root, 0x40000000, 0x80000000, 30, 0);
    map64(f, 4, root, 0x80000000, 0x200000, 21, 0);
    map64(f, 4, root, 0x7ffffffff000, 0x8000, 12, 0);
    map64(f, 4, root, 0xffffffff81000000, 0x1000000, 21, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    uint64_t size = vmem_as_size(as), span = vmem_as_span(as);

    expect_run(as, 0, size, 0x1ff000, 0x402000);
    expect_run(as, 0x300abc, size, 0x300000, 0x402000);
    expect_run(as, 0, 0x300000, 0x1ff000, 0x300000);   /* cut by limit */
    expect_run(as, 0, 0x2ff001, 0x1ff000, 0x300000);   /* limit rounds up */
    expect_run(as, 0x402000, size, 0x40000000, 0x80200000);
    expect_no_run(as, 0x402000, 0x40000000);
    /* From just after run B to the top of the user half: skipping ~128 TiB
     * of empty PML4 slots must take a handful of reads, not millions. */
    uint64_t r0 = reads_of(as);
    expect_run(as, 0x80200000, size, 0x7ffffffff000, 0x800000000000);
    assert_true(reads_of(as) - r0 <= 8);
    expect_no_run(as, 0x800000000000, size);
    /* The kernel view goes on into the upper half, by va or by gva. */
    expect_run(as, 0x800000000000, span, 0xffff81000000, 0xffff81200000);
    expect_run(as, 0xffff800000000000, span, 0xffff81000000, 0xffff81200000);
    expect_no_run(as, 0xffff81200000, span);
    expect_no_run(as, span, span);
    expect_no_run(as, 0x0001000000000000 | 0x400000, span);  /* non-canonical */
    /* Run spanning the canonical hole in va space. */
    map64(f, 4, root, 0xffff800000000000, 0x9000, 12, 0);
    vmem_as_flush(as);
    expect_run(as, 0x80200000, span, 0x7ffffffff000, 0x800000001000);

    check_range_vs_translate(as, 0x1fe000, 520);
    check_range_vs_translate(as, 0x7fffffffe000, 4);
    check_range_vs_translate(as, 0xffffffff80fff000, 600);
    check_range_vs_translate(as, span - 2 * 4096, 5);  /* past the span */
    check_range_vs_translate(as, 0xfffffffffffff000, 3);
    vmem_as_free(as);
    fake_free(f);
}

static void test_x86_64_5l_sparse_top(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    map64(f, 5, root, (1ull << 56) - 4096, 0x5000, 12, 0);
    map64(f, 5, root, 0x1000, 0x6000, 12, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_5L, root, &rd);
    uint64_t r0 = reads_of(as);
    expect_run(as, 0x2000, vmem_as_size(as), (1ull << 56) - 4096, 1ull << 56);
    assert_true(reads_of(as) - r0 <= 10);
    expect_run(as, 0, vmem_as_size(as), 0x1000, 0x2000);
    expect_no_run(as, 1ull << 56, vmem_as_span(as));
    vmem_as_free(as);
    fake_free(f);
}

/* ---- PAE and 32-bit ------------------------------------------------------ */

static void test_pae(void **state)
{
    struct fake *f = fake_new();
    uint64_t pdpt = alloc_page(f) + 0x60;   /* 32-byte aligned, not 4K */
    map_pae(f, pdpt, 0x08048000, 0x123000, 12, 0);
    map_pae(f, pdpt, 0x08049000, 0x123456789000, 12, NX);   /* > 4G, NX */
    map_pae(f, pdpt, 0xc0000000, 0x200000, 21, 0);
    map_pae(f, pdpt, 0xc0200000, 0x7ffe00000, 21, NX);
    map_pae(f, pdpt, 0xfffff000, 0x9000, 12, 0);
    /* Reserved bits: PTE bit 52, PDE (2M) bit 13 = misaligned frame. */
    map_pae(f, pdpt, 0x0804a000, 0x4000 | (1ull << 52), 12, 0);
    map_pae(f, pdpt, 0xc0400000, 0x400000 | (1ull << 13), 21, 0);
    /* A PDPTE with reserved bit 1 takes out its whole GiB. */
    map_pae(f, pdpt, 0x40000000, 0xa000, 12, 0);
    uint64_t e = get64(f, pdpt + 8);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_PAE, pdpt | 0x18, &rd);
    assert_int_equal(vmem_as_dtb(as), pdpt);
    expect_tr(as, 0x40000123, 0xa123, 4096);
    put64(f, pdpt + 8, e | 2);
    vmem_as_flush(as);
    expect_unmapped(as, 0x40000123);

    expect_tr(as, 0x08048abc, 0x123abc, 4096);
    expect_tr(as, 0x08049abc, 0x123456789abc, 4096);
    expect_tr(as, 0xc0012345, 0x212345, 2 << 20);
    expect_tr(as, 0xc03fffff, 0x7ffffffff, 2 << 20);
    expect_tr(as, 0xffffffff, 0x9fff, 4096);
    expect_unmapped(as, 0x0804a000);
    expect_unmapped(as, 0xc0400000);
    expect_unmapped(as, 0x100000000);
    expect_unmapped(as, 0xffffffffc0000000);   /* no sign extension in PAE */
    assert_int_equal(vmem_as_size(as), 1ull << 32);
    assert_int_equal(vmem_as_span(as), 1ull << 32);
    assert_int_equal(vmem_as_gva(as, 0xc0000000), 0xc0000000);

    expect_run(as, 0, 1ull << 32, 0x08048000, 0x0804a000);
    expect_run(as, 0x0804a000, 1ull << 32, 0xc0000000, 0xc0400000);
    expect_run(as, 0xc0400000, 1ull << 32, 0xfffff000, 1ull << 32);
    expect_run(as, 0xc0400000, 1ull << 40, 0xfffff000, 1ull << 32);
    check_range_vs_translate(as, 0x08047000, 8);
    check_range_vs_translate(as, 0xc01ff000, 1030);
    check_range_vs_translate(as, 0xffffe000, 4);
    vmem_as_free(as);
    fake_free(f);
}

static void test_x86_32(void **state)
{
    struct fake *f = fake_new();
    uint64_t pd = alloc_page(f);
    map32(f, pd, 0x08048000, 0x3000, 12, 0);
    map32(f, pd, 0x08049000, 0xfffff000, 12, 0);
    map32(f, pd, 0xc0000000, 0x00400000, 22, 0);
    map32(f, pd, 0xc0400000, 0x1234400000ull, 22, 0);   /* PSE-36 */
    map32(f, pd, 0xc0800000, 0x800000, 22, 1u << 21);   /* reserved bit */
    map32(f, pd, 0xfffff000, 0x5000, 12, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_32, pd | 0x18, &rd);
    assert_int_equal(vmem_as_dtb(as), pd);
    expect_tr(as, 0x08048123, 0x3123, 4096);
    expect_tr(as, 0x08049fff, 0xffffffff, 4096);
    expect_unmapped(as, 0x0804a000);
    expect_tr(as, 0xc0123456, 0x523456, 4 << 20);
    expect_tr(as, 0xc0412345, 0x1234412345ull, 4 << 20);
    expect_unmapped(as, 0xc0800000);
    expect_tr(as, 0xfffff001, 0x5001, 4096);
    expect_unmapped(as, 0x100000000);
    assert_int_equal(vmem_as_size(as), 1ull << 32);

    expect_run(as, 0, 1ull << 32, 0x08048000, 0x0804a000);
    expect_run(as, 0x0804a000, 1ull << 32, 0xc0000000, 0xc0800000);
    expect_run(as, 0xc0800000, 1ull << 32, 0xfffff000, 1ull << 32);
    check_range_vs_translate(as, 0x08047000, 4);
    check_range_vs_translate(as, 0xc03ff000, 1030);
    check_range_vs_translate(as, 0xffffe000, 3);
    vmem_as_free(as);
    fake_free(f);
}

/* ---- translate_range ------------------------------------------------------ */

static void test_translate_range_reads(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    /* 1000 scattered 4K pages, a 2M page, a gap, 4K pages in the next PT. */
    for (unsigned i = 0; i < 1000; i++)
        map64(f, 4, root, 0x10000000 + i * 4096ull, (i * 7ull) << 12, 12, 0);
    map64(f, 4, root, 0x10400000, 0x600000, 21, 0);
    for (unsigned i = 0; i < 10; i++)
        map64(f, 4, root, 0x10800000 + i * 8192ull, 0x100000 + i * 4096ull,
              12, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    size_t n = 0x10900000 - 0x0fffe000;
    n >>= 12;
    uint64_t *gpas = malloc(n * sizeof *gpas);
    uint64_t r0 = reads_of(as);
    assert_int_equal(vmem_as_translate_range(as, 0x0fffe123, n, gpas), 0);
    /* PML4, PDPT, PD once each; the three page tables once each. */
    assert_int_equal(reads_of(as) - r0, 6);
    assert_int_equal(gpas[0], VMEM_GPA_NONE);
    assert_int_equal(gpas[2], 0);
    assert_int_equal(gpas[3], 7 << 12);
    assert_int_equal(gpas[2 + 999], (999ull * 7) << 12);
    assert_int_equal(gpas[2 + 1000], VMEM_GPA_NONE);
    assert_int_equal(gpas[2 + 1024 + 5], 0x605000);
    assert_int_equal(gpas[2 + 2048 + 2], 0x101000);
    assert_int_equal(gpas[2 + 2048 + 3], VMEM_GPA_NONE);
    free(gpas);
    check_range_vs_translate(as, 0x0fffe000, n);
    /* Zero pages, NULL array: nothing to do. */
    assert_int_equal(vmem_as_translate_range(as, 0, 0, NULL), 0);
    vmem_as_free(as);
    fake_free(f);
}

/* ---- Hostile tables ------------------------------------------------------- */

static void test_hostile_self_loop(void **state)
{
    /* PML4[0] points to the PML4 itself: walking va 0 goes PML4 -> PML4 ->
     * PML4 -> PML4-as-PT, and PTE 0 is that same entry: va 0 maps the PML4
     * page (the "recursive mapping" trick, legitimately used by Windows). */
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    put64(f, root, root | P_RW_US);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    expect_tr(as, 0x10, root + 0x10, 4096);
    expect_unmapped(as, 0x1000);
    expect_run(as, 0, vmem_as_size(as), 0, 0x1000);
    expect_no_run(as, 0x1000, vmem_as_size(as));
    /* Loop to a higher level from below: a PT entry pointing at the PML4. */
    uint64_t pt = map64(f, 4, root, 0x8000000000, 0x2000, 12, 0) & ~4095ull;
    put64(f, pt + 8, root | P_RW_US);
    vmem_as_flush(as);
    expect_tr(as, 0x8000001008, root + 8, 4096);
    check_range_vs_translate(as, 0x7fffffe000, 16);
    vmem_as_free(as);
    fake_free(f);
}

static void test_hostile_all_self(void **state)
{
    /* Every PML4 entry points to the PML4: all 2^36 pages are "mapped" (to
     * the PML4 page).  next_mapped must stop after its budget, not walk
     * 2^27 tables; repeated calls make progress. */
    for (int five = 0; five <= 1; five++) {
        struct fake *f = fake_new();
        uint64_t root = alloc_page(f);
        for (unsigned i = 0; i < 512; i++)
            put64(f, root + i * 8, root | P_RW_US);
        struct vmem_phys_reader rd = reader_of(f);
        struct vmem_as *as = vmem_as_new(
            five ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L, root, &rd);
        expect_tr(as, 0x123456789abc & (vmem_as_size(as) - 1),
                  root + 0xabc, 4096);
        expect_tr(as, 0xffffffff81000abc, root + 0xabc, 4096);
        double t0 = now_s();
        uint64_t s = 0, e = 0, r0 = reads_of(as);
        int rc = vmem_as_next_mapped(as, 0, vmem_as_span(as), &s, &e);
        assert_int_equal(rc, -EAGAIN);
        assert_int_equal(s, 0);
        assert_true(e > 0);
        assert_true(reads_of(as) - r0 <= VMEM_AS_WALK_BUDGET);
        uint64_t s2 = 0, e2 = 0;
        rc = vmem_as_next_mapped(as, e, vmem_as_span(as), &s2, &e2);
        assert_int_equal(rc, -EAGAIN);
        assert_int_equal(s2, e);
        assert_true(e2 > e);
        /* With a near limit the run is complete. */
        expect_run(as, 0x5000, 0x9000, 0x5000, 0x9000);
        check_range_vs_translate(as, 0xfffffffffff00000, 4096);
        assert_true(now_s() - t0 < 2.0);
        vmem_as_free(as);
        fake_free(f);
    }
}

static void test_hostile_empty_tree(void **state)
{
    /* Every PML4E -> one PDPT whose every entry -> one PD whose every entry
     * -> one empty PT: 2^27 table visits to prove emptiness.  The search
     * must give up with -EAGAIN and report where it got to. */
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f), pdpt = alloc_page(f), pd = alloc_page(f),
             pt = alloc_page(f);
    for (unsigned i = 0; i < 512; i++) {
        put64(f, root + i * 8, pdpt | P_RW_US);
        put64(f, pdpt + i * 8, pd | P_RW_US);
        put64(f, pd + i * 8, pt | P_RW_US);
    }
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    double t0 = now_s();
    uint64_t pos = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t s = 0, e = 0;
        int rc = vmem_as_next_mapped(as, pos, vmem_as_span(as), &s, &e);
        assert_int_equal(rc, -EAGAIN);
        assert_int_equal(s, e);
        assert_true(s > pos);
        pos = s;
    }
    assert_true(now_s() - t0 < 2.0);
    /* A real mapping beyond the scanned part is still found once reached. */
    put64(f, pt + 8, 0x5000 | P_RW_US);
    uint64_t s = 0, e = 0;
    assert_int_equal(vmem_as_next_mapped(as, 0, vmem_as_span(as), &s, &e), 0);
    assert_int_equal(s, 0x1000);
    assert_int_equal(e, 0x2000);
    vmem_as_free(as);
    fake_free(f);
}

static void test_hostile_outside_ram(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    put64(f, root + 0 * 8, 0x7ffff000000ull | P_RW_US);   /* beyond RAM */
    put64(f, root + 2 * 8, (A52 & ~4095ull) | P_RW_US);   /* max address */
    put64(f, root + 3 * 8, (RAM_SIZE - 4096 + 4096) | P_RW_US); /* just past */
    map64(f, 4, root, 0x8000001000, 0x2000, 12, 0);
    /* A PT whose leaf frame is outside RAM: still a translation (the walker
     * does not read leaf frames; the data read reports the hole). */
    map64(f, 4, root, 0x8000002000, 0xfffffffff000ull, 12, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    expect_unmapped(as, 0x1000);
    expect_unmapped(as, 0x10000000000);
    expect_unmapped(as, 0x18000000000);
    expect_tr(as, 0x8000001004, 0x2004, 4096);
    expect_tr(as, 0x8000002004, 0xfffffffff004ull, 4096);
    expect_run(as, 0, vmem_as_size(as), 0x8000001000, 0x8000003000);
    expect_no_run(as, 0x8000003000, vmem_as_span(as));
    check_range_vs_translate(as, 0x7ffffff000, 8);
    vmem_as_free(as);

    /* The root itself outside RAM. */
    as = vmem_as_new(VMEM_PAGING_X86_64_4L, 1ull << 40, &rd);
    expect_unmapped(as, 0);
    expect_no_run(as, 0, vmem_as_span(as));
    vmem_as_free(as);
    /* A PAE PDPT at the very end of RAM, and just past it. */
    as = vmem_as_new(VMEM_PAGING_PAE, RAM_SIZE - 32, &rd);
    expect_unmapped(as, 0);
    vmem_as_free(as);
    as = vmem_as_new(VMEM_PAGING_PAE, 0xffffffe0, &rd);
    expect_no_run(as, 0, 1ull << 32);
    vmem_as_free(as);
    fake_free(f);
}

static void test_hostile_reserved_bits(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    /* PS in a PML4E: reserved, the whole 512 GiB unmapped. */
    map64(f, 4, root, 0x0000001000, 0x3000, 12, 0);
    put64(f, root, get64(f, root) | PS);
    /* 1 GiB page with bit 13 set (misaligned), 2 MiB page with bit 20. */
    map64(f, 4, root, 0x8000000000, 0x40000000 | (1ull << 13), 30, 0);
    map64(f, 4, root, 0x8040000000, 0x200000 | (1ull << 20), 21, 0);
    /* 1 GiB page with only the PAT bit (12): fine. */
    map64(f, 4, root, 0x8080000000, 0x80000000 | (1ull << 12), 30, 0);
    /* A PTE with software bits 52..58 and protection key 59..62 and XD:
     * not reserved in 64-bit mode, and masked out of the address. */
    map64(f, 4, root, 0x80c0000000, 0x7000 | (0x7ffull << 52), 12, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    expect_unmapped(as, 0x1000);
    expect_unmapped(as, 0x8000000000);
    expect_unmapped(as, 0x8040000000);
    expect_tr(as, 0x8080000123, 0x80000123, 1 << 30);
    expect_tr(as, 0x80c0000123, 0x7123, 4096);
    expect_run(as, 0, vmem_as_size(as), 0x8080000000, 0x80c0001000);
    vmem_as_free(as);
    fake_free(f);
}

static void test_hostile_eio(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    map64(f, 4, root, 0x400000, 0x3000, 12, 0);
    uint64_t pt = map64(f, 4, root, 0x401000, 0x4000, 12, 0) & ~4095ull;
    map64(f, 4, root, 0x600000, 0x5000, 12, 0);    /* another PT */
    map64(f, 4, root, 0x8000000000, 0x6000, 12, 0);
    f->eio_lo = pt;
    f->eio_hi = pt + 4096;
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    uint64_t gpa = 0;
    assert_int_equal(vmem_as_translate(as, 0x400000, &gpa, NULL), -EIO);
    expect_tr(as, 0x600000, 0x5000, 4096);
    uint64_t gpas[0x201];
    assert_int_equal(vmem_as_translate_range(as, 0x400000, 0x201, gpas), -EIO);
    assert_int_equal(gpas[0], VMEM_GPA_NONE);
    assert_int_equal(gpas[1], VMEM_GPA_NONE);
    assert_int_equal(gpas[0x200], 0x5000);
    /* The scan counts unreadable tables as holes. */
    expect_run(as, 0, vmem_as_size(as), 0x600000, 0x601000);
    /* Errors are not cached: once the source recovers, so does translate. */
    f->eio_lo = f->eio_hi = 0;
    expect_tr(as, 0x401000, 0x4000, 4096);
    /* A failing root. */
    f->eio_lo = root;
    f->eio_hi = root + 4096;
    vmem_as_flush(as);
    assert_int_equal(vmem_as_translate(as, 0x8000000000, &gpa, NULL), -EIO);
    expect_no_run(as, 0, vmem_as_span(as));
    vmem_as_free(as);
    fake_free(f);
}

static int broken_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    return 1;   /* breaks the contract: neither 0 nor -errno */
}

static void test_bad_arguments(void **state)
{
    struct vmem_phys_reader rd = { broken_read, NULL, NULL };
    assert_null(vmem_as_new((enum vmem_paging_mode)7, 0, &rd));
    assert_null(vmem_as_new(VMEM_PAGING_PAE, 0, NULL));
    struct vmem_phys_reader none = { NULL, NULL, NULL };
    assert_null(vmem_as_new(VMEM_PAGING_PAE, 0, &none));
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, 0x1000, &rd);
    uint64_t gpa, s, e;
    assert_int_equal(vmem_as_translate(as, 0, &gpa, NULL), -EIO);
    assert_int_equal(vmem_as_translate(as, 0, NULL, NULL), -EFAULT);
    assert_int_equal(vmem_as_next_mapped(as, 0, 1ull << 47, NULL, &e), -EFAULT);
    assert_int_equal(vmem_as_next_mapped(as, 0, 1ull << 47, &s, &e), -ENXIO);
    assert_int_equal(vmem_as_next_mapped(as, 0x5000, 0x5000, &s, &e), -ENXIO);
    assert_int_equal(vmem_as_translate_range(as, 0, 1, NULL), -EFAULT);
    vmem_as_free(as);
}

/* ---- The translation cache -------------------------------------------------- */

static void test_cache_and_flush(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    uint64_t slot = map64(f, 4, root, 0x400000, 0x3000, 12, 0);
    map64(f, 4, root, 0x40000000, 0x40000000, 30, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    expect_tr(as, 0x400010, 0x3010, 4096);
    uint64_t r0 = reads_of(as);
    expect_tr(as, 0x400020, 0x3020, 4096);
    assert_int_equal(reads_of(as), r0);     /* a hit: no table read */
    /* One cached 1 GiB translation serves every page in it. */
    expect_tr(as, 0x40000000, 0x40000000, 1 << 30);
    r0 = reads_of(as);
    expect_tr(as, 0x7fffffff, 0x7fffffff, 1 << 30);
    expect_tr(as, 0x55555555, 0x55555555, 1 << 30);
    assert_int_equal(reads_of(as), r0);
    /* The guest remaps: stale until flushed, correct after. */
    put64(f, slot, 0x9000 | P_RW_US);
    expect_tr(as, 0x400020, 0x3020, 4096);
    vmem_as_flush(as);
    expect_tr(as, 0x400020, 0x9020, 4096);
    /* Unmapped results are not cached: a new mapping shows without flush. */
    expect_unmapped(as, 0x401000);
    map64(f, 4, root, 0x401000, 0xa000, 12, 0);
    expect_tr(as, 0x401000, 0xa000, 4096);
    struct vmem_as_stats st;
    vmem_as_get_stats(as, &st);
    assert_true(st.cache_hits >= 4);
    assert_true(st.cache_misses >= 4);
    vmem_as_free(as);
    fake_free(f);
}

#define MT_PAGES 4096u
#define MT_THREADS 4

struct mt_arg {
    struct vmem_as *as;
    unsigned seed;
    unsigned bad;
    atomic_int *stop;
};

static void *mt_worker(void *p)
{
    struct mt_arg *a = p;
    for (unsigned n = 0; n < 200000 && !atomic_load(a->stop); n++) {
        a->seed = a->seed * 1103515245u + 12345u;
        unsigned i = (a->seed >> 8) % MT_PAGES;
        uint64_t gpa = 0, size = 0;
        int rc = vmem_as_translate(a->as, 0x10000000 + (uint64_t)i * 4096 + 8,
                                   &gpa, &size);
        /* Page i maps frame (i * 31 mod 2^16) + 0x100: any torn or
         * misattributed cache entry shows up as a wrong gpa. */
        if (rc != 0 || size != 4096 ||
            gpa != (((i * 31u) & 0xffff) + 0x100ull) * 4096 + 8)
            a->bad++;
    }
    return NULL;
}

static void test_cache_threads(void **state)
{
    struct fake *f = fake_new();
    uint64_t root = alloc_page(f);
    for (unsigned i = 0; i < MT_PAGES; i++)
        map64(f, 4, root, 0x10000000 + (uint64_t)i * 4096,
              (((i * 31u) & 0xffff) + 0x100ull) * 4096, 12, 0);
    struct vmem_phys_reader rd = reader_of(f);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, root, &rd);
    pthread_t th[MT_THREADS];
    struct mt_arg args[MT_THREADS];
    atomic_int stop = 0;
    for (int t = 0; t < MT_THREADS; t++) {
        args[t] = (struct mt_arg){ as, 77u * (t + 1), 0, &stop };
        assert_int_equal(pthread_create(&th[t], NULL, mt_worker, &args[t]), 0);
    }
    /* Flushes racing with lookups and inserts (tables stay valid). */
    for (int k = 0; k < 2000; k++) {
        vmem_as_flush(as);
        struct timespec ts = { 0, 20000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < MT_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].bad, 0);
    }
    struct vmem_as_stats st;
    vmem_as_get_stats(as, &st);
    assert_true(st.cache_hits > 0);
    vmem_as_free(as);
    fake_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x86_64_4l),
        cmocka_unit_test(test_x86_64_5l),
        cmocka_unit_test(test_x86_64_huge_merged_run),
        cmocka_unit_test(test_x86_64_5l_sparse_top),
        cmocka_unit_test(test_pae),
        cmocka_unit_test(test_x86_32),
        cmocka_unit_test(test_translate_range_reads),
        cmocka_unit_test(test_hostile_self_loop),
        cmocka_unit_test(test_hostile_all_self),
        cmocka_unit_test(test_hostile_empty_tree),
        cmocka_unit_test(test_hostile_outside_ram),
        cmocka_unit_test(test_hostile_reserved_bits),
        cmocka_unit_test(test_hostile_eio),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_cache_and_flush),
        cmocka_unit_test(test_cache_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
