/* test_vm.c - the physical read path: strict vs padded views at hole edges
 * (page-aligned and byte-granular), frames the source lacks or fails, the
 * zero-copy map path against the frame path, ONE batched driver call per
 * read, readahead into the cache on sequential reads, EOF, SEEK_DATA/HOLE.
 *
 * The driver here is a real in-memory frame reader (an array standing for
 * guest RAM), not a mock: it implements the contract of core/driver.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/phys/guard.h"
#include "core/arch/x86/paging.h"
#include "core/phys/vm.h"
#include "drivers/registry.h"

#define MEM_SIZE 0x40000u
#define GFN_MISSING 0x6u       /* inside a range, but the source lacks it */
#define GFN_FAILING 0x7u       /* inside a range, and the source fails */

struct memdrv {
    uint8_t mem[MEM_SIZE];
    struct vmem_range ranges[4];
    size_t nranges;
    int use_map;
    unsigned calls;            /* read_frames calls */
    unsigned frames;           /* frames asked for */
};

static int md_ranges(void *d, const struct vmem_range **out, size_t *n)
{
    struct memdrv *m = d;
    *out = m->ranges;
    *n = m->nranges;
    return 0;
}

static void *md_map(void *d, uint64_t gpa, size_t len)
{
    struct memdrv *m = d;
    if (!m->use_map || gpa + len > MEM_SIZE)
        return NULL;
    /* Only frames the source fully has are mappable. */
    for (uint64_t g = gpa >> 12; g <= (gpa + len - 1) >> 12; g++)
        if (g == GFN_MISSING || g == GFN_FAILING)
            return NULL;
    return m->mem + gpa;
}

static int md_read_frames(void *d, const uint64_t *gfns, void *const *bufs,
                          int *status, size_t n)
{
    struct memdrv *m = d;
    m->calls++;
    m->frames += (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        if (gfns[i] == GFN_MISSING || (gfns[i] << 12) >= MEM_SIZE)
            status[i] = -ENOENT;
        else if (gfns[i] == GFN_FAILING)
            status[i] = -EIO;
        else {
            memcpy(bufs[i], m->mem + (gfns[i] << 12), 4096);
            status[i] = 0;
        }
    }
    return 0;
}

static void md_close(void *d) { (void)d; }

static const struct vmem_driver_ops md_ops_slow = {
    .name = "mem",
    .ranges = md_ranges, .map = md_map, .read_frames = md_read_frames,
    .close = md_close,
};

static struct memdrv *md_new(int use_map)
{
    struct memdrv *m = calloc(1, sizeof *m);
    for (size_t i = 0; i < MEM_SIZE; i++)
        m->mem[i] = (uint8_t)(i * 7 + (i >> 12));
    /* [0, 0x3000) RAM, hole, [0x5000, 0x9000) with the missing and failing
     * frames, hole, [0x9800, 0x20c00) byte-granular on both ends. */
    m->ranges[0] = (struct vmem_range){0x0, 0x3000, 0};
    m->ranges[1] = (struct vmem_range){0x5000, 0x9000, 0};
    m->ranges[2] = (struct vmem_range){0x9800, 0x20c00, 0};
    m->nranges = 3;
    m->use_map = use_map;
    return m;
}

static struct vm *vm_for(struct memdrv *m)
{
    struct vm_options o;
    vm_options_default(&o);
    o.cache_pages = 4096;
    char err[128];
    struct vm *vm = vm_new("t", "mem:", (struct vmem_driver){&md_ops_slow, m, VMEM_CAP_SLOW | VMEM_CAP_IMMUTABLE}, &o,
                           err, sizeof err);
    assert_non_null(vm);
    return vm;
}

/* Flatten a reply into a buffer. */
static size_t gather(const struct vm_reply *r, uint8_t *out)
{
    size_t n = 0;
    for (int i = 0; i < r->niov; i++) {
        memcpy(out + n, r->iov[i].iov_base, r->iov[i].iov_len);
        n += r->iov[i].iov_len;
    }
    assert_int_equal(n, r->len);
    return n;
}

static void run_edges(int use_map)
{
    struct memdrv *m = md_new(use_map);
    struct vm *vm = vm_for(m);
    struct vm_reply r;
    vm_reply_init(&r);
    static uint8_t buf[0x40000];

    assert_int_equal(vm_phys_size(vm), 0x20c00);

    /* Padded: across the first hole, zeros in [0x3000, 0x5000). */
    assert_int_equal(vm_read_phys_iov(vm, 0x2000, 0x4000, VM_READ_PAD, NULL, &r), 0x4000);
    gather(&r, buf);
    assert_memory_equal(buf, m->mem + 0x2000, 0x1000);
    for (int i = 0x1000; i < 0x3000; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 0x3000, m->mem + 0x5000, 0x1000);

    /* Strict: short read up to the hole; EIO when starting in it. */
    assert_int_equal(vm_read_phys_iov(vm, 0x2000, 0x4000, VM_READ_STRICT, NULL, &r), 0x1000);
    gather(&r, buf);
    assert_memory_equal(buf, m->mem + 0x2000, 0x1000);
    assert_int_equal(vm_read_phys_iov(vm, 0x3000, 0x100, VM_READ_STRICT, NULL, &r), -ENOENT);
    assert_int_equal(vm_read_phys_iov(vm, 0x4fff, 2, VM_READ_STRICT, NULL, &r), -ENOENT);
    /* Last byte before a hole, first byte after one. */
    assert_int_equal(vm_read_phys_iov(vm, 0x2fff, 1, VM_READ_STRICT, NULL, &r), 1);
    assert_int_equal(vm_read_phys_iov(vm, 0x5000, 1, VM_READ_STRICT, NULL, &r), 1);

    /* Byte-granular range edges: [0x9800, ...) starts mid-frame. */
    assert_int_equal(vm_read_phys_iov(vm, 0x9000, 0x1000, VM_READ_STRICT, NULL, &r), -ENOENT);
    assert_int_equal(vm_read_phys_iov(vm, 0x9000, 0x1000, VM_READ_PAD, NULL, &r), 0x1000);
    gather(&r, buf);
    for (int i = 0; i < 0x800; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 0x800, m->mem + 0x9800, 0x800);
    assert_int_equal(vm_read_phys_iov(vm, 0x9800, 0x10, VM_READ_STRICT, NULL, &r), 0x10);

    /* A frame the source lacks: a hole (strict), zeros (padded). */
    assert_int_equal(vm_read_phys_iov(vm, 0x5000, 0x3000, VM_READ_STRICT, NULL, &r), 0x1000);
    assert_int_equal(vm_read_phys_iov(vm, 0x6000, 0x10, VM_READ_STRICT, NULL, &r), -ENOENT);
    assert_int_equal(vm_read_phys_iov(vm, 0x5000, 0x2000, VM_READ_PAD, NULL, &r), 0x2000);
    gather(&r, buf);
    assert_memory_equal(buf, m->mem + 0x5000, 0x1000);
    for (int i = 0x1000; i < 0x2000; i++)
        assert_int_equal(buf[i], 0);
    /* A frame the source fails: the padded read fails whole (no short read
     * the kernel would take for EOF); the strict one stops before it. */
    assert_int_equal(vm_read_phys_iov(vm, 0x5000, 0x4000, VM_READ_PAD, NULL, &r), -EIO);
    assert_int_equal(vm_read_phys_iov(vm, 0x7000, 0x1000, VM_READ_STRICT, NULL, &r), -EIO);

    /* End of the space. */
    assert_int_equal(vm_read_phys_iov(vm, 0x20c00, 0x1000, VM_READ_PAD, NULL, &r), 0);
    assert_int_equal(vm_read_phys_iov(vm, 0x20000, 0x4000, VM_READ_PAD, NULL, &r), 0xc00);
    gather(&r, buf);
    assert_memory_equal(buf, m->mem + 0x20000, 0xc00);

    /* The copying variant agrees. */
    assert_int_equal(vm_read_phys(vm, 0x9800, buf, 0x8000, VM_READ_STRICT), 0x8000);
    assert_memory_equal(buf, m->mem + 0x9800, 0x8000);
    assert_int_equal(vm_read_phys(vm, 0x0, buf, 0x20c00, VM_READ_PAD), -EIO);

    vm_reply_fini(&r);
    vm_put(vm);
    free(m);
}

static void test_edges_frames(void **s) { (void)s; run_edges(0); }
static void test_edges_map(void **s) { (void)s; run_edges(1); }

static void test_one_batch_per_read(void **state)
{
    (void)state;
    struct memdrv *m = md_new(0);
    struct vm *vm = vm_for(m);
    struct vm_reply r;
    vm_reply_init(&r);
    /* 64 KiB over 16 uncached frames: one driver call, 16 frames. */
    assert_int_equal(vm_read_phys_iov(vm, 0xa000, 0x10000, VM_READ_PAD, NULL, &r), 0x10000);
    assert_int_equal(m->calls, 1);
    assert_int_equal(m->frames, 16);
    /* Again: all from the cache, no driver call. */
    assert_int_equal(vm_read_phys_iov(vm, 0xa000, 0x10000, VM_READ_PAD, NULL, &r), 0x10000);
    assert_int_equal(m->calls, 1);
    uint8_t buf[0x10000];
    gather(&r, buf);
    assert_memory_equal(buf, m->mem + 0xa000, 0x10000);
    vm_reply_fini(&r);
    vm_put(vm);
    free(m);
}

/* Core's own small reads of a slow live source (page tables over a remote
 * peek): one call fetches the aligned 64 KiB around a miss, so the next
 * structure nearby costs no second round trip; a dump is not read ahead. */
static void test_cluster_slow_live(void **state)
{
    (void)state;
    struct memdrv *m = md_new(0);
    struct vm_options o;
    vm_options_default(&o);
    o.cache_pages = 4096;
    o.cache_ttl_ns = 60ull * 1000000000ull;
    char err[128];
    struct vm *vm = vm_new("live", "mem:", (struct vmem_driver){&md_ops_slow, m, VMEM_CAP_SLOW},
                           &o, err, sizeof err);
    assert_non_null(vm);
    uint8_t buf[16];
    assert_int_equal(vm_read_phys(vm, 0x12008, buf, 8, VM_READ_STRICT), 8);
    assert_int_equal(m->calls, 1);
    assert_int_equal(m->frames, 16);          /* frames 0x10..0x1f */
    assert_int_equal(vm_read_phys(vm, 0x1f000, buf, 16, VM_READ_STRICT), 16);
    assert_memory_equal(buf, m->mem + 0x1f000, 16);
    assert_int_equal(m->calls, 1);            /* from the cache */
    assert_int_equal(vm_read_phys(vm, 0x20000, buf, 8, VM_READ_STRICT), 8);
    assert_int_equal(m->calls, 2);            /* the next cluster */
    vm_put(vm);
    /* The same source as a dump (immutable): exactly what was asked. */
    m->calls = m->frames = 0;
    vm = vm_for(m);
    assert_int_equal(vm_read_phys(vm, 0x12008, buf, 8, VM_READ_STRICT), 8);
    assert_int_equal(m->frames, 1);
    vm_put(vm);
    free(m);
}

static void test_readahead(void **state)
{
    (void)state;
    struct memdrv *m = md_new(0);
    struct vm *vm = vm_for(m);
    struct vm_reply r;
    vm_reply_init(&r);
    struct vm_stream st = {0};
    uint8_t buf[0x1000];
    /* 4 KiB sequential reads over [0xa000, 0x20000): 22 frames.  Without
     * readahead that is 22 driver calls; with it, far fewer. */
    for (uint64_t a = 0xa000; a < 0x20000; a += 0x1000) {
        assert_int_equal(vm_read_phys_iov(vm, a, 0x1000, VM_READ_PAD, &st, &r), 0x1000);
        gather(&r, buf);
        assert_memory_equal(buf, m->mem + a, 0x1000);
    }
    assert_true(m->calls <= 4);
    assert_true(m->frames >= 22);
    /* A random (non-sequential) read resets the window. */
    assert_int_equal(vm_read_phys_iov(vm, 0x1000, 0x1000, VM_READ_PAD, &st, &r), 0x1000);
    assert_int_equal(st.ra_pages, 0);
    vm_reply_fini(&r);
    vm_put(vm);
    free(m);
}

static void test_seek(void **state)
{
    (void)state;
    struct memdrv *m = md_new(1);
    struct vm *vm = vm_for(m);
    assert_int_equal(vm_seek_phys(vm, 0, SEEK_DATA), 0);
    assert_int_equal(vm_seek_phys(vm, 0, SEEK_HOLE), 0x3000);
    assert_int_equal(vm_seek_phys(vm, 0x3000, SEEK_DATA), 0x5000);
    assert_int_equal(vm_seek_phys(vm, 0x9000, SEEK_DATA), 0x9800);
    assert_int_equal(vm_seek_phys(vm, 0x9800, SEEK_HOLE), 0x20c00);
    assert_int_equal(vm_seek_phys(vm, 0x20c00, SEEK_DATA), -ENXIO);
    assert_int_equal(vm_seek_phys(vm, -1, SEEK_DATA), -ENXIO);
    vm_put(vm);
    free(m);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(vm_name_valid("web1"));
    assert_true(vm_name_valid("a.b_c-D9"));
    assert_false(vm_name_valid(""));
    assert_false(vm_name_valid("."));
    assert_false(vm_name_valid(".."));
    assert_false(vm_name_valid("a/b"));
    assert_false(vm_name_valid("a b"));
    assert_false(vm_name_valid("x123456789012345678901234567890123456789012345678901234567890abcd"));
    struct vm_options o;
    vm_options_default(&o);
    char err[256];
    assert_null(vmem_vm_open("../x", "file:/dev/null", &o, err, sizeof err));
    assert_non_null(strstr(err, "not valid"));
    assert_null(vmem_vm_open("x", "nosuch:thing", &o, err, sizeof err));
    assert_non_null(strstr(err, "unknown driver"));
    assert_null(vmem_vm_open("x", "noscheme", &o, err, sizeof err));
}

/* Virtual reads: a 4-level page table built in the in-memory guest maps
 * va 0x400000.. page by page: to RAM, to nothing, to a hole in the range
 * map, to the frame the source lacks, to the frame the source fails. */
static void put64(struct memdrv *m, uint64_t gpa, uint64_t v)
{
    memcpy(m->mem + gpa, &v, 8);
}

static void test_virtual_read(void **state)
{
    (void)state;
    struct memdrv *m = md_new(1);
    struct vm *vm = vm_for(m);
    /* Tables in [0xc000, 0x10000): PML4 0xc000, PDPT 0xd000, PD 0xe000,
     * PT 0xf000.  va 0x400000 = PML4[0] PDPT[0] PD[2] PT[0..]. */
    memset(m->mem + 0xc000, 0, 0x4000);
    put64(m, 0xc000, 0xd000 | 3);
    put64(m, 0xd000, 0xe000 | 3);
    put64(m, 0xe000 + 2 * 8, 0xf000 | 3);
    put64(m, 0xf000 + 0 * 8, 0x11000 | 3);   /* RAM */
    put64(m, 0xf000 + 1 * 8, 0x12000 | 3);   /* RAM, not contiguous with 0 */
    /* PT[2] not present */
    put64(m, 0xf000 + 3 * 8, 0x3000 | 3);    /* a hole in the range map */
    put64(m, 0xf000 + 4 * 8, (GFN_MISSING << 12) | 3);
    put64(m, 0xf000 + 5 * 8, 0x10000 | 3);   /* RAM again */
    put64(m, 0xf000 + 6 * 8, (GFN_FAILING << 12) | 3);
    struct vmem_phys_reader rd;
    vm_phys_reader(vm, &rd);
    struct vmem_as *as = vmem_as_new(VMEM_PAGING_X86_64_4L, 0xc000, &rd);
    assert_non_null(as);
    struct vm_reply r;
    vm_reply_init(&r);
    static uint8_t buf[0x8000];

    /* Six pages from va 0x400800: unaligned start and end. */
    assert_int_equal(vm_read_virt_iov(vm, as, 0x400800, 0x5000, &r), 0x5000);
    gather(&r, buf);
    assert_memory_equal(buf, m->mem + 0x11800, 0x800);
    assert_memory_equal(buf + 0x800, m->mem + 0x12000, 0x1000);
    for (int i = 0x1800; i < 0x4800; i++)           /* unmapped, hole, missing */
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 0x4800, m->mem + 0x10000, 0x800);
    /* The failing frame fails the read. */
    assert_int_equal(vm_read_virt_iov(vm, as, 0x405000, 0x2000, &r), -EIO);
    /* Far away, nothing mapped: zeros, and no error. */
    assert_int_equal(vm_read_virt_iov(vm, as, 0x7f0000000000, 0x3000, &r), 0x3000);
    gather(&r, buf);
    for (int i = 0; i < 0x3000; i++)
        assert_int_equal(buf[i], 0);
    vm_reply_fini(&r);
    vmem_as_free(as);
    vm_put(vm);
    free(m);
}

int main(void)
{
    vmem_guard_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_frames),
        cmocka_unit_test(test_edges_map),
        cmocka_unit_test(test_one_batch_per_read),
        cmocka_unit_test(test_readahead),
        cmocka_unit_test(test_cluster_slow_live),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_virtual_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
