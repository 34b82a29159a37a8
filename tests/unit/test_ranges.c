/* test_ranges.c - range lookup and SEEK_DATA/SEEK_HOLE arithmetic. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/phys/ranges.h"

static const struct vmem_range R[] = {
    {0x0, 0xa0000, VMEM_RANGE_RAM},
    {0x100000, 0x200000, VMEM_RANGE_RAM},
    {0x200000, 0x300000, VMEM_RANGE_RAM},     /* touches the previous one */
    {0x100000000ull, 0x100001000ull, VMEM_RANGE_RAM},
};
#define N (sizeof R / sizeof R[0])
#define SIZE 0x100001000ull

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(vmem_ranges_find(R, N, 0), &R[0]);
    assert_ptr_equal(vmem_ranges_find(R, N, 0x9ffff), &R[0]);
    assert_null(vmem_ranges_find(R, N, 0xa0000));
    assert_ptr_equal(vmem_ranges_find(R, N, 0x200000), &R[2]);
    assert_null(vmem_ranges_find(R, N, 0xffffffff));
    assert_ptr_equal(vmem_ranges_find(R, N, 0x100000fffull), &R[3]);
    assert_null(vmem_ranges_find(R, N, SIZE));
    assert_null(vmem_ranges_find(R, 0, 0));
    assert_int_equal(vmem_ranges_upper(R, N, 0xa0000), 1);
    assert_int_equal(vmem_ranges_upper(R, N, SIZE), N);
}

static void test_seek(void **state)
{
    (void)state;
    assert_int_equal(vmem_ranges_seek_data(R, N, 0, SIZE), 0);
    assert_int_equal(vmem_ranges_seek_hole(R, N, 0, SIZE), 0xa0000);
    assert_int_equal(vmem_ranges_seek_data(R, N, 0xa0000, SIZE), 0x100000);
    assert_int_equal(vmem_ranges_seek_hole(R, N, 0xa0000, SIZE), 0xa0000);
    /* Adjacent ranges form one data run. */
    assert_int_equal(vmem_ranges_seek_hole(R, N, 0x100000, SIZE), 0x300000);
    assert_int_equal(vmem_ranges_seek_data(R, N, 0x300000, SIZE), 0x100000000ll);
    /* The end of the file counts as a hole. */
    assert_int_equal(vmem_ranges_seek_hole(R, N, 0x100000000ull, SIZE), (int64_t)SIZE);
    assert_int_equal(vmem_ranges_seek_data(R, N, SIZE - 1, SIZE), (int64_t)SIZE - 1);
    assert_int_equal(vmem_ranges_seek_data(R, N, SIZE, SIZE), -1);
    assert_int_equal(vmem_ranges_seek_hole(R, N, SIZE, SIZE), -1);
    /* Data past the size limit is not reported. */
    assert_int_equal(vmem_ranges_seek_data(R, N, 0x300000, 0x200000000ull), 0x100000000ll);
    assert_int_equal(vmem_ranges_seek_data(R, N, 0x300000, 0x100000000ull), -1);
}

static void test_normalize_merge(void **state)
{
    (void)state;
    struct vmem_range r[] = {
        {0x300000, 0x400000, 0}, {0x0, 0x1000, 0}, {0x1000, 0x2000, 0},
        {0x2000, 0x3000, VMEM_RANGE_ROM},
    };
    assert_int_equal(vmem_ranges_normalize(r, 4), 0);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[3].start, 0x300000);
    struct vmem_range out[4];
    size_t m = vmem_ranges_merge(r, 4, out);
    assert_int_equal(m, 3);            /* RAM+RAM merged; ROM kept apart */
    assert_int_equal(out[0].end, 0x2000);
    assert_int_equal(out[1].kind, VMEM_RANGE_ROM);
    assert_int_equal(vmem_ranges_end(r, 4), 0x400000);

    struct vmem_range overlap[] = {{0, 0x2000, 0}, {0x1000, 0x3000, 0}};
    assert_int_equal(vmem_ranges_normalize(overlap, 2), -EINVAL);
    struct vmem_range empty[] = {{0x1000, 0x1000, 0}};
    assert_int_equal(vmem_ranges_normalize(empty, 1), -EINVAL);
}

/* x86 firmware window: QEMU's BIOS (256 KiB below 4 GiB) is ROM, RAM below
 * it and from 4 GiB is RAM, and a run glued across either edge is split. */
static void test_x86_firmware(void **state)
{
    (void)state;
    assert_int_equal(vmem_x86_range_kind(0xfffc0000, 0x100000000), VMEM_RANGE_ROM);
    assert_int_equal(vmem_x86_range_kind(0xff000000, 0xff001000), VMEM_RANGE_ROM);
    assert_int_equal(vmem_x86_range_kind(0x0, 0x80000000), VMEM_RANGE_RAM);
    assert_int_equal(vmem_x86_range_kind(0x100000000, 0x180000000), VMEM_RANGE_RAM);
    assert_int_equal(vmem_x86_range_kind(0xfffc0000, 0x180000000), VMEM_RANGE_RAM);
    assert_int_equal(vmem_x86_range_kind(0xfeff0000, 0xff010000), VMEM_RANGE_RAM);
    assert_int_equal(vmem_x86_range_kind(0xfffff000, 0xfffff000), VMEM_RANGE_RAM);

    /* A bitmap run from the BIOS into RAM at 4 GiB: ROM up to 4 GiB. */
    assert_int_equal(vmem_x86_piece_end(0xfffc0000, 0x180000000), 0x100000000);
    assert_int_equal(vmem_x86_piece_end(0x100000000, 0x180000000), 0x180000000);
    /* A run from below the window into it: split at its start. */
    assert_int_equal(vmem_x86_piece_end(0xfe000000, 0x100000000), 0xff000000);
    assert_int_equal(vmem_x86_piece_end(0x0, 0x10000000), 0x10000000);
    assert_int_equal(vmem_x86_piece_end(0xff000000, 0x100000000), 0x100000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_normalize_merge),
        cmocka_unit_test(test_x86_firmware),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
