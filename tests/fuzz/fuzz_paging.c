/*
 * fuzz_paging.c - libFuzzer target for core/paging: the input is a guest
 * (paging mode, dtb, query addresses, guest-physical memory image) and the
 * target translates, batch-translates and scans it, checking the three
 * against each other (any disagreement aborts) besides surviving.
 *
 * Input layout (little-endian):
 *   byte 0      bits 1:0 paging mode (enum vmem_paging_mode),
 *               bit 2: reads touching the image's last page fail with -EIO
 *   bytes 1-8   dtb (CR3 as the guest holds it)
 *   bytes 9-40  four query addresses
 *   rest        guest-physical memory from gpa 0, zero-padded to a page;
 *               everything above it is "no RAM" (-ENOENT)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arch/x86/paging.h"

#define HDR 41
#define NQ 4
#define RANGE_PAGES 64

struct image {
    uint8_t *mem;
    uint64_t size;          /* whole pages */
    uint64_t eio_page;      /* gpa of the failing page, or UINT64_MAX */
};

static int image_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    const struct image *im = ctx;
    /* The walker's contract with its reader: a page at most, no crossing. */
    if (len == 0 || len > 4096 || (gpa & 4095) + len > 4096)
        abort();
    if ((gpa & ~4095ull) == im->eio_page)
        return -EIO;
    if (gpa >= im->size || len > im->size - gpa)
        return -ENOENT;
    memcpy(buf, im->mem + gpa, len);
    return 0;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* translate(page) as translate_range reports it: page gpa or NONE. */
static uint64_t page_gpa(struct vmem_as *as, uint64_t va)
{
    uint64_t gpa;
    if (va >= vmem_as_span(as) || vmem_as_translate(as, va, &gpa, NULL) != 0)
        return VMEM_GPA_NONE;
    return gpa & VMEM_PAGE_MASK;
}

static void check_query(struct vmem_as *as, uint64_t q, int wide)
{
    uint64_t span = vmem_as_span(as);
    uint64_t gpa = 0, size = 0;
    int rc = vmem_as_translate(as, q, &gpa, &size);
    uint64_t va = vmem_as_va(as, q);
    if (va == VMEM_VA_NONE) {
        if (rc != -EFAULT)
            abort();
    } else {
        if (vmem_as_va(as, vmem_as_gva(as, va)) != va)
            abort();
        if (rc == 0 && (size < 4096 || (size & (size - 1)) ||
                        (gpa & (VMEM_PAGE_SIZE - 1)) != (va & (VMEM_PAGE_SIZE - 1))))
            abort();
        /* Twice: the second answer comes from the cache. */
        uint64_t gpa2 = 0, size2 = 0;
        int rc2 = vmem_as_translate(as, q, &gpa2, &size2);
        if (rc2 != rc || (rc == 0 && (gpa2 != gpa || size2 != size)))
            abort();
    }

    /* The batch walk agrees with single translations, page by page. */
    uint64_t gpas[RANGE_PAGES];
    vmem_as_translate_range(as, q, RANGE_PAGES, gpas);
    for (unsigned i = 0; i < RANGE_PAGES; i++) {
        uint64_t want = VMEM_GPA_NONE;
        if (va != VMEM_VA_NONE)
            want = page_gpa(as, (va & VMEM_PAGE_MASK) + i * 4096ull);
        if (gpas[i] != want)
            abort();
    }

    /* The scan's run is mapped at both ends and bounded by holes. */
    if (va == VMEM_VA_NONE)
        return;
    uint64_t lo = va & VMEM_PAGE_MASK;
    uint64_t limit = wide ? span : lo + RANGE_PAGES * 4096ull;
    uint64_t hi = limit < span ? limit : span;
    uint64_t s = 0, e = 0;
    rc = vmem_as_next_mapped(as, q, limit, &s, &e);
    if (rc == -ENXIO)
        return;
    if (rc != 0 && rc != -EAGAIN)
        abort();
    if (s < lo || e < s || e > hi || (s | e) & (VMEM_PAGE_SIZE - 1))
        abort();
    if (rc == 0 && e == s)
        abort();
    if (e > s) {
        if (page_gpa(as, s) == VMEM_GPA_NONE ||
            page_gpa(as, e - 4096) == VMEM_GPA_NONE)
            abort();
        if (s > lo && page_gpa(as, s - 4096) != VMEM_GPA_NONE)
            abort();
    }
    if (rc == 0 && e < hi && page_gpa(as, e) != VMEM_GPA_NONE)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    /* Keep images small enough that one run stays fast. */
    if (size - HDR > (1u << 20))
        return 0;
    struct image im;
    size_t len = size - HDR;
    im.size = (len + 4095) & ~(size_t)4095;
    im.mem = calloc(1, im.size ? im.size : 1);
    if (!im.mem)
        return 0;
    memcpy(im.mem, data + HDR, len);
    im.eio_page = (data[0] & 4) && im.size ? im.size - 4096 : UINT64_MAX;

    struct vmem_phys_reader rd = { image_read, &im, NULL };
    struct vmem_as *as = vmem_as_new((enum vmem_paging_mode)(data[0] & 3),
                                     le64(data + 1), &rd);
    if (as) {
        for (int i = 0; i < NQ; i++) {
            uint64_t q = le64(data + 9 + 8 * i);
            check_query(as, q, i & 1);
            /* The same query as a canonical gva / as a va. */
            check_query(as, vmem_as_gva(as, q), !(i & 1));
        }
        vmem_as_flush(as);
        check_query(as, le64(data + 9), 1);
        vmem_as_free(as);
    }
    free(im.mem);
    return 0;
}
