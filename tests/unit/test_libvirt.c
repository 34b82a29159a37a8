/*
 * test_libvirt.c - the libvirt driver's pure logic (drivers/libvirt): the
 * spec "DOMAIN[@URI]", which URIs are local, the RAM layout QEMU's boards
 * give a domain (checked against the layouts QEMU 7.2 itself printed in
 * `info mtree -f`: q35 256 MiB, q35 4608 MiB split at 2 GiB, pc 4 GiB split
 * at 3 GiB), and how a batch of frames is cut into peeks: sorted, repeated
 * frames served once, runs broken at gaps and at 4 MiB-aligned windows.
 * Talking to a real libvirtd is t_libvirt.sh's part.
 *
 * Needs vmemcore built with libvirt (VMEMFS_HAVE_LIBVIRT); without it the
 * one test says so and is skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#ifdef VMEMFS_HAVE_LIBVIRT

#include <stdlib.h>
#include <string.h>

#include "drivers/libvirt/libvirt.h"

static void test_split_spec(void **state)
{
    (void)state;
    char *d, *u, err[200];
    assert_int_equal(lv_split_spec("web1", &d, &u, err, sizeof err), 0);
    assert_string_equal(d, "web1");
    assert_string_equal(u, LV_DEFAULT_URI);
    free(d), free(u);
    /* The URI's own user@host stays in the URI. */
    assert_int_equal(lv_split_spec("db@qemu+ssh://root@host2/system", &d, &u, err,
                                   sizeof err), 0);
    assert_string_equal(d, "db");
    assert_string_equal(u, "qemu+ssh://root@host2/system");
    free(d), free(u);
    /* An '@' not followed by a scheme belongs to the domain name. */
    assert_int_equal(lv_split_spec("a@b@qemu:///session", &d, &u, err, sizeof err), 0);
    assert_string_equal(d, "a@b");
    assert_string_equal(u, "qemu:///session");
    free(d), free(u);
    assert_int_equal(lv_split_spec("@qemu:///system", &d, &u, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "no domain name"));
    assert_int_equal(lv_split_spec("", &d, &u, err, sizeof err), -EINVAL);
}

static void test_uri_local(void **state)
{
    (void)state;
    assert_true(lv_uri_is_local("qemu:///system"));
    assert_true(lv_uri_is_local("qemu:///session"));
    assert_true(lv_uri_is_local("qemu+unix:///system"));
    assert_false(lv_uri_is_local("qemu+tcp://127.0.0.1/system"));
    assert_false(lv_uri_is_local("qemu+ssh://host2/system"));
    assert_false(lv_uri_is_local("qemu://host/system"));
    assert_false(lv_uri_is_local("qemu+tls:///system"));
    assert_false(lv_uri_is_local("bogus"));
}

static void test_ram_layout(void **state)
{
    (void)state;
    struct vmem_range r[4];
    const uint64_t M = 1ull << 20, G = 1ull << 30;
    /* q35, 256 MiB: one range (QEMU: pc.ram 0-0xfffffff). */
    assert_int_equal(lv_ram_layout("x86_64", "pc-q35-7.2", 256 * M, r, 4), 1);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].end, 256 * M);
    /* q35, 4608 MiB: 2 GiB below, 2.5 GiB from 4 GiB (live_big.py's guest). */
    assert_int_equal(lv_ram_layout("x86_64", "q35", 4608 * M, r, 4), 2);
    assert_int_equal(r[0].end, 2 * G);
    assert_int_equal(r[1].start, 4 * G);
    assert_int_equal(r[1].end, 4 * G + 4608 * M - 2 * G);
    /* q35 just under 2.75 GiB stays below; at 2.75 GiB it splits. */
    assert_int_equal(lv_ram_layout("x86_64", "pc-q35-7.2", 0xb0000000ull - M, r, 4), 1);
    assert_int_equal(lv_ram_layout("x86_64", "pc-q35-7.2", 0xb0000000ull, r, 4), 2);
    assert_int_equal(r[0].end, 2 * G);
    /* pc (i440fx): 3.5 GiB fits below, 4 GiB splits at 3 GiB. */
    assert_int_equal(lv_ram_layout("x86_64", "pc-i440fx-7.2", 0xe0000000ull - M, r, 4), 1);
    assert_int_equal(lv_ram_layout("x86_64", "pc", 4 * G, r, 4), 2);
    assert_int_equal(r[0].end, 3 * G);
    assert_int_equal(r[1].end, 5 * G);
    /* pc-i440fx-1.6 predates gigabyte alignment: split at 3.5 GiB. */
    assert_int_equal(lv_ram_layout("x86_64", "pc-i440fx-1.6", 4 * G, r, 4), 2);
    assert_int_equal(r[0].end, 0xe0000000ull);
    assert_int_equal(lv_ram_layout("aarch64", "virt-7.2", G, r, 4), 1);
    assert_int_equal(r[0].start, G);
    /* Unknown boards are refused rather than guessed. */
    assert_int_equal(lv_ram_layout("x86_64", "microvm", G, r, 4), -ENOTSUP);
    assert_int_equal(lv_ram_layout("s390x", "s390-ccw-virtio", G, r, 4), -ENOTSUP);
    assert_int_equal(lv_ram_layout("x86_64", "q35", 0, r, 4), -EINVAL);
}

static void test_chunks(void **state)
{
    (void)state;
    const uint64_t W = LV_PEEK_MAX / VMEM_PAGE_SIZE;   /* frames per window */
    /* Out of order, one repeat, a gap, and a run across a window edge. */
    uint64_t g[] = {12, 10, 11, 11, 40, W - 1, W, W + 1, 13};
    size_t n = sizeof g / sizeof g[0], order[16];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    lv_sort_gfns(g, order, n);
    for (size_t i = 1; i < n; i++)
        assert_true(g[order[i - 1]] <= g[order[i]]);
    /* Stable: the two 11s keep their order. */
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 3);
    uint64_t start, nf;
    size_t i = lv_next_chunk(g, order, n, 0, &start, &nf);
    assert_int_equal(start, 10);
    assert_int_equal(nf, 4);            /* 10 11 11 12 13: one peek of 4 frames */
    assert_int_equal(i, 5);
    i = lv_next_chunk(g, order, n, i, &start, &nf);
    assert_int_equal(start, 40);
    assert_int_equal(nf, 1);
    i = lv_next_chunk(g, order, n, i, &start, &nf);
    assert_int_equal(start, W - 1);     /* the window ends at W */
    assert_int_equal(nf, 1);
    i = lv_next_chunk(g, order, n, i, &start, &nf);
    assert_int_equal(start, W);
    assert_int_equal(nf, 2);
    assert_int_equal(i, n);
    /* A full window is one peek of 4 MiB, never more. */
    uint64_t *big = malloc((W + 5) * sizeof *big);
    size_t *ord = malloc((W + 5) * sizeof *ord);
    assert_non_null(big);
    assert_non_null(ord);
    for (size_t k = 0; k < W + 5; k++)
        big[k] = 3 * W + k, ord[k] = k;
    lv_sort_gfns(big, ord, W + 5);
    i = lv_next_chunk(big, ord, W + 5, 0, &start, &nf);
    assert_int_equal(nf, W);
    assert_int_equal(i, W);
    free(big);
    free(ord);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_spec),
        cmocka_unit_test(test_uri_local),
        cmocka_unit_test(test_ram_layout),
        cmocka_unit_test(test_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

static void test_libvirt_unavailable(void **state)
{
    (void)state;
    print_message("[  SKIPPED ] vmemcore is built without libvirt "
                  "(VMEMFS_HAVE_LIBVIRT undefined): the libvirt driver is not tested\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libvirt_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
