/* test_qemu_parse.c - the qemu driver's text parsers on real QEMU 7.2
 * output (tests/unit/data/qemu72-*.txt, captured from the test guest with
 * tests/integration/qemu_boot.py): the system flat view of "info mtree -f"
 * and the RAM layout built from it, for pc and q35, 256 MiB and 4.5 GiB
 * (RAM above 4 GiB), with the default RAM backend (pc.ram) and with a
 * memory-backend-file (id "ram"), and with two NUMA backends (m0, m1);
 * "info registers" in long mode and in
 * real mode; "info ramblock"; "xp"; /proc/PID/maps lines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/unit/testenv.h"

#include "drivers/qemu/parse.h"

static char *slurp(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", testenv_data_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open fixture %s\n", path);
        fail();
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

struct want_seg {
    uint64_t gpa, len, off;
};

static void check_layout(const char *fixture, const char *block,
                         const struct want_seg *want, size_t nwant)
{
    char *text = slurp(fixture);
    struct qemu_flat *flat = NULL;
    size_t nflat = 0;
    assert_int_equal(qemu_parse_flatview(text, "memory", &flat, &nflat), 0);
    assert_true(nflat >= 5);
    /* The view ends with the highest range, sorted. */
    for (size_t i = 1; i < nflat; i++)
        assert_true(flat[i].start > flat[i - 1].last);
    /* A system view always has the BIOS just below 4 GiB. */
    int bios = 0;
    for (size_t i = 0; i < nflat; i++)
        if (strcmp(flat[i].name, "pc.bios") == 0 && flat[i].start == 0xfffc0000 &&
            flat[i].last == 0xffffffff && strcmp(flat[i].type, "rom") == 0)
            bios = 1;
    assert_true(bios);

    const char *names[] = {"pc.bios-not-a-block", block};
    struct qemu_ram_seg *segs = NULL;
    size_t n = 0;
    assert_int_equal(qemu_ram_layout(flat, nflat, names, 2, &segs, &n), 0);
    assert_int_equal(n, nwant);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(segs[i].gpa, want[i].gpa);
        assert_int_equal(segs[i].len, want[i].len);
        assert_int_equal(segs[i].block_off, want[i].off);
        assert_int_equal(segs[i].block, 1);
        total += segs[i].len;
    }
    (void)total;
    free(segs);

    /* A name that is not there: no RAM. */
    const char *none[] = {"nonexistent"};
    assert_int_equal(qemu_ram_layout(flat, nflat, none, 1, &segs, &n), -ENOENT);
    free(flat);

    /* Another address space of the same output: the SMM view has RAM too,
     * the I/O space none; a missing one is -ENOENT. */
    assert_int_equal(qemu_parse_flatview(text, "I/O", &flat, &nflat), 0);
    assert_true(nflat > 10);
    for (size_t i = 0; i < nflat; i++)
        assert_string_equal(flat[i].type, "i/o");
    free(flat);
    assert_int_equal(qemu_parse_flatview(text, "no-such-as", &flat, &nflat), -ENOENT);
    free(text);
}

/* The expected ranges are capture.py's (contrib/guest/README.md), plus the
 * offsets within the RAM block that only the flat view tells. */
static void test_q35_256m(void **state)
{
    (void)state;
    static const struct want_seg w[] = {{0, 0x10000000, 0}};
    check_layout("qemu72-mtree-q35-256M.txt", "pc.ram", w, 1);
}

static void test_pc_256m(void **state)
{
    (void)state;
    static const struct want_seg w[] = {{0, 0x10000000, 0}};
    check_layout("qemu72-mtree-pc-256M.txt", "pc.ram", w, 1);
}

static void test_q35_4608m(void **state)
{
    (void)state;
    static const struct want_seg w[] = {{0, 0x80000000, 0},
                                        {0x100000000, 0xa0000000, 0x80000000}};
    check_layout("qemu72-mtree-q35-4608M.txt", "pc.ram", w, 2);
}

static void test_pc_4608m(void **state)
{
    (void)state;
    static const struct want_seg w[] = {{0, 0xc0000000, 0},
                                        {0x100000000, 0x60000000, 0xc0000000}};
    check_layout("qemu72-mtree-pc-4608M.txt", "pc.ram", w, 2);
}

static void test_memfile(void **state)
{
    (void)state;
    static const struct want_seg w1[] = {{0, 0x10000000, 0}};
    check_layout("qemu72-mtree-q35-256M-memfile.txt", "ram", w1, 1);
    static const struct want_seg w2[] = {{0, 0xc0000000, 0},
                                         {0x100000000, 0x60000000, 0xc0000000}};
    check_layout("qemu72-mtree-pc-4608M-memfile.txt", "ram", w2, 2);
    /* With a file backend there is no pc.ram at all. */
    char *text = slurp("qemu72-mtree-q35-256M-memfile.txt");
    struct qemu_flat *flat;
    size_t nflat;
    assert_int_equal(qemu_parse_flatview(text, "memory", &flat, &nflat), 0);
    const char *pcram[] = {"pc.ram"};
    struct qemu_ram_seg *segs;
    size_t n;
    assert_int_equal(qemu_ram_layout(flat, nflat, pcram, 1, &segs, &n), -ENOENT);
    free(flat);
    free(text);
}

/* Two NUMA nodes, each its own backend (m0, m1): adjacent in gpa, two
 * blocks, each from offset 0; the machine has no pc.ram. */
static void test_numa(void **state)
{
    (void)state;
    char *text = slurp("qemu72-mtree-q35-256M-numa.txt");
    struct qemu_flat *flat;
    size_t nflat;
    assert_int_equal(qemu_parse_flatview(text, "memory", &flat, &nflat), 0);
    const char *names[] = {"m1", "m0"};      /* query-memdev's order */
    struct qemu_ram_seg *s;
    size_t n;
    assert_int_equal(qemu_ram_layout(flat, nflat, names, 2, &s, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(s[0].gpa, 0);
    assert_int_equal(s[0].len, 0x8000000);
    assert_int_equal(s[0].block, 1);
    assert_int_equal(s[0].block_off, 0);
    assert_int_equal(s[1].gpa, 0x8000000);
    assert_int_equal(s[1].len, 0x8000000);
    assert_int_equal(s[1].block, 0);
    assert_int_equal(s[1].block_off, 0);
    free(s);
    const char *pcram[] = {"pc.ram"};
    assert_int_equal(qemu_ram_layout(flat, nflat, pcram, 1, &s, &n), -ENOENT);
    free(flat);
    free(text);
}

/* The PAM shadows: rom-typed pieces of pc.ram are RAM; a gap in the block
 * offsets (or in gpa) starts a new segment; "/objects/ID" matches ID. */
static void test_layout_edges(void **state)
{
    (void)state;
    const char *text =
        "FlatView #0\n"
        " AS \"memory\", root: system\n"
        " Root memory region: system\n"
        "  0000000000000000-00000000000bffff (prio 0, ram): /objects/m0\n"
        "  00000000000c0000-00000000000c0fff (prio 0, rom): /objects/m0 @00000000000c0000\n"
        "  00000000000c1000-00000000000c1fff (prio 0, ram): /objects/m0 @00000000000d0000\n"
        "  00000000000c2000-00000000000c2fff (prio 0, i/o): /objects/m0 @00000000000d1000\n"
        "  0000000000100000-00000000001fffff (prio 0, ram): m1\n"
        "  0000000000200000-00000000002fffff (prio 0, nv-ram): m1 @0000000000100000\n"
        "  0000000000300000-00000000003fffff (prio 0, romd): m1 @0000000000200000\n"
        "  ffffffffffff0000-ffffffffffffffff (prio 0, ram): m1 @0000000000300000\n"
        "garbage line\n"
        "  zzzz-0000 (prio 0, ram): m1\n"
        "\n"
        "FlatView #1\n"
        " AS \"other\", root: x\n"
        "  0000000000500000-00000000005fffff (prio 0, ram): m1 @0000000000400000\n";
    struct qemu_flat *flat;
    size_t nflat;
    assert_int_equal(qemu_parse_flatview(text, "memory", &flat, &nflat), 0);
    assert_int_equal(nflat, 8);
    assert_string_equal(flat[4].type, "ram");
    assert_string_equal(flat[5].type, "nv-ram");
    const char *names[] = {"m0", "m1"};
    struct qemu_ram_seg *s;
    size_t n;
    assert_int_equal(qemu_ram_layout(flat, nflat, names, 2, &s, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(s[0].gpa, 0);
    assert_int_equal(s[0].len, 0xc1000);
    assert_int_equal(s[0].block, 0);
    assert_int_equal(s[1].gpa, 0xc1000);
    assert_int_equal(s[1].len, 0x1000);
    assert_int_equal(s[1].block_off, 0xd0000);
    assert_int_equal(s[2].gpa, 0x100000);
    assert_int_equal(s[2].len, 0x200000);
    assert_int_equal(s[2].block, 1);
    free(s);
    free(flat);
}

static void test_registers_long(void **state)
{
    (void)state;
    char *text = slurp("qemu72-registers-long.txt");
    struct vmem_vcpu v = {.id = 7};
    assert_int_equal(qemu_parse_registers(text, &v), 0);
    assert_int_equal(v.id, 7);
    assert_int_equal(v.valid, VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES);
    assert_int_equal(v.gpr[0], 0x1ad40);                /* RAX */
    assert_int_equal(v.gpr[3], 0x4000000000000000ull);  /* RDX */
    assert_int_equal(v.gpr[6], 0xffff8f3ac1261800ull);  /* RBP */
    assert_int_equal(v.gpr[7], 0xffffcfeb4009bed8ull);  /* RSP */
    assert_int_equal(v.gpr[9], 0x31443ebc);             /* R9 ("R9 =") */
    assert_int_equal(v.gpr[12], 1);                     /* R12 */
    assert_int_equal(v.rip, 0xffffffff8e00dfebull);
    assert_int_equal(v.rflags, 0x246);
    assert_int_equal(v.cr0, 0x80050033);
    assert_int_equal(v.cr2, 0x5e22c0);
    assert_int_equal(v.cr3, 0x29a2000);
    assert_int_equal(v.cr4, 0x6a0);
    assert_int_equal(v.efer, 0xd01);
    assert_int_equal(v.cs, 0x10);
    assert_int_equal(v.ss, 0x18);
    assert_int_equal(v.gs_base, 0xffff8f3acf900000ull);
    assert_int_equal(v.fs_base, 0);
    assert_int_equal(v.gdt_base, 0xfffffe000003c000ull);
    assert_int_equal(v.idt_base, 0xfffffe0000000000ull);
    free(text);
}

static void test_registers_real(void **state)
{
    (void)state;
    char *text = slurp("qemu72-registers-real.txt");
    struct vmem_vcpu v;
    memset(&v, 0xaa, sizeof v);
    v.id = 0;
    assert_int_equal(qemu_parse_registers(text, &v), 0);
    assert_int_equal(v.valid, VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES);
    assert_int_equal(v.rip, 0xfff0);
    assert_int_equal(v.rflags, 2);
    assert_int_equal(v.gpr[3], 0x60fb1);                /* EDX: CPUID sig */
    assert_int_equal(v.gpr[8], 0);                      /* no R8 in this mode */
    assert_int_equal(v.cs, 0xf000);
    assert_int_equal(v.cr0, 0x60000010);
    assert_int_equal(v.cr3, 0);
    assert_int_equal(v.efer, 0);
    assert_int_equal(v.gdt_base, 0);
    free(text);

    /* Not a register dump (an HMP error): -EINVAL. */
    struct vmem_vcpu w;
    assert_int_equal(qemu_parse_registers("unknown command: 'info regs'\r\n", &w), -EINVAL);
    assert_int_equal(qemu_parse_registers("", &w), -EINVAL);
    /* Overlong values do not overflow. */
    assert_int_equal(qemu_parse_registers("RIP=1ffffffffffffffff0 CR3=12\r\n", &w), -EINVAL);
}

static void test_ramblock(void **state)
{
    (void)state;
    char *text = slurp("qemu72-ramblock-pc-4608M-memfile.txt");
    struct qemu_ramblock *b;
    size_t n;
    assert_int_equal(qemu_parse_ramblock(text, &b, &n), 0);
    assert_int_equal(n, 6);
    assert_string_equal(b[0].name, "ram");
    assert_int_equal(b[0].used, 0x120000000ull);
    assert_string_equal(b[1].name, "/rom@etc/acpi/tables");
    assert_int_equal(b[1].total, 0x200000);
    assert_string_equal(b[2].name, "pc.bios");
    assert_int_equal(b[2].offset, 0x120000000ull);
    free(b);
    free(text);
}

static void test_xp(void **state)
{
    (void)state;
    uint8_t buf[32];
    const char *ok =
        "0000000000001000: 0x0807060504030201 0x100f0e0d0c0b0a09\r\n"
        "0000000000001010: 0x1817161514131211 0x201f1e1d1c1b1a19\r\n";
    assert_int_equal(qemu_parse_xp(ok, 0x1000, buf, sizeof buf), 0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(buf[i], i + 1);
    /* Too short, a gap, an error, the wrong base, another width. */
    assert_int_equal(qemu_parse_xp(ok, 0x1000, buf, 40), -EINVAL);
    assert_int_equal(qemu_parse_xp("0000000000001000: 0x0807060504030201 0x100f0e0d0c0b0a09\r\n"
                                   "0000000000001020: 0x1817161514131211 0x201f1e1d1c1b1a19\r\n",
                                   0x1000, buf, sizeof buf), -EINVAL);
    assert_int_equal(qemu_parse_xp("0000000020000000: Cannot access memory\r\n",
                                   0x20000000, buf, 16), -EINVAL);
    assert_int_equal(qemu_parse_xp(ok, 0x2000, buf, sizeof buf), -EINVAL);
    assert_int_equal(qemu_parse_xp("0000000000001000: 0x04030201 0x08070605\r\n", 0x1000,
                                   buf, 8), -EINVAL);
    assert_int_equal(qemu_parse_xp("", 0, buf, 8), -EINVAL);
}

static void test_maps(void **state)
{
    (void)state;
    const char *text =
        "563c99ff2000-563c9a3f9000 r--p 00000000 fe:00 10977294                   /usr/bin/qemu-system-x86_64\n"
        "7f1f2fe00000-7f1f3fe00000 rw-p 00000000 00:00 0 \n"
        "7f1f3fe00000-7f1f3fe01000 ---p 00000000 00:00 0\n"
        "7fed07fff000-7fed17fff000 rw-s 00001000 00:1b 4                          /dev/shm/web 1 (deleted)\n"
        "not a maps line\n"
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";
    struct qemu_map *m;
    size_t n;
    assert_int_equal(qemu_parse_maps(text, &m, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(m[0].path, "/usr/bin/qemu-system-x86_64");
    assert_int_equal(m[0].dev_major, 0xfe);
    assert_int_equal(m[0].inode, 10977294);
    assert_int_equal(m[1].start, 0x7f1f2fe00000ull);
    assert_int_equal(m[1].end - m[1].start, 0x10000000);
    assert_string_equal(m[1].perms, "rw-p");
    assert_string_equal(m[1].path, "");
    assert_string_equal(m[2].perms, "---p");
    assert_string_equal(m[3].path, "/dev/shm/web 1 (deleted)");
    assert_int_equal(m[3].offset, 0x1000);
    assert_int_equal(m[3].dev_minor, 0x1b);
    assert_string_equal(m[4].path, "[vsyscall]");
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q35_256m),
        cmocka_unit_test(test_pc_256m),
        cmocka_unit_test(test_q35_4608m),
        cmocka_unit_test(test_pc_4608m),
        cmocka_unit_test(test_memfile),
        cmocka_unit_test(test_numa),
        cmocka_unit_test(test_layout_edges),
        cmocka_unit_test(test_registers_long),
        cmocka_unit_test(test_registers_real),
        cmocka_unit_test(test_ramblock),
        cmocka_unit_test(test_xp),
        cmocka_unit_test(test_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
