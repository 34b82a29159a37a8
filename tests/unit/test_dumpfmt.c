/* test_dumpfmt.c - ELF core and LiME parsers on images built here: the
 * layout they report, the vCPU notes, and refusal of malformed files. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/file/format.h"

/* An ELF64 core: one PT_NOTE with a QEMU CPU note and a prstatus, two
 * PT_LOADs (given out of order, to check sorting). */
static size_t make_elf(uint8_t *img, size_t cap)
{
    memset(img, 0, cap);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_type = ET_CORE;
    eh->e_machine = EM_X86_64;
    eh->e_phoff = sizeof *eh;
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 3;
    Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof *eh);

    /* Notes at 0x200: prstatus (rip at reg 16) then QEMU state (cr3). */
    uint8_t *n = img + 0x200;
    uint32_t hdr[3] = {5, 336, NT_PRSTATUS};
    memcpy(n, hdr, 12);
    memcpy(n + 12, "CORE\0\0\0", 8);
    uint64_t rip = 0xffffffff81234567ull;
    memcpy(n + 20 + 112 + 16 * 8, &rip, 8);
    size_t off = 20 + 336;
    uint32_t qhdr[3] = {5, 0x1b0, 0};
    memcpy(n + off, qhdr, 12);
    memcpy(n + off + 12, "QEMU\0\0\0", 8);
    uint8_t *q = n + off + 20;
    uint32_t ver = 1;
    memcpy(q, &ver, 4);
    /* cr[3] follows: 8 (version,size) + 18*8 (gprs,rip,rflags) + 10*24
     * (segments) + 3*8 (cr0..cr2). */
    uint64_t cr3 = 0xabcd000;
    memcpy(q + 8 + 18 * 8 + 10 * 24 + 3 * 8, &cr3, 8);
    size_t notes_len = off + 20 + 0x1b0;
    ph[0] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 0x200, .p_filesz = notes_len};
    ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = 0x3000, .p_paddr = 0x100000,
                         .p_filesz = 0x2000, .p_memsz = 0x2000};
    ph[2] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = 0x1000, .p_paddr = 0x0,
                         .p_filesz = 0x2000, .p_memsz = 0x2000};
    return 0x5000;
}

static void test_elf_layout(void **state)
{
    (void)state;
    static uint8_t img[0x5000];
    size_t size = make_elf(img, sizeof img);
    struct dump_layout l = {0};
    char err[DUMP_ERR_LEN] = "";
    assert_true(dump_is_elf(img, size));
    assert_false(dump_is_lime(img, size));
    assert_int_equal(dump_parse_elf(img, size, &l, err, sizeof err), 0);
    assert_string_equal(l.format, "elf");
    assert_int_equal(l.nsegs, 2);
    assert_int_equal(l.segs[0].gpa, 0);
    assert_int_equal(l.segs[0].file_off, 0x1000);
    assert_int_equal(l.segs[1].gpa, 0x100000);
    assert_int_equal(l.nvcpus, 1);
    assert_int_equal(l.vcpus[0].cr3, 0xabcd000);
    assert_true(l.vcpus[0].valid & VMEM_VCPU_CRS);
    dump_layout_free(&l);
}

static void test_elf_bad(void **state)
{
    (void)state;
    static uint8_t img[0x5000];
    struct dump_layout l = {0};
    char err[DUMP_ERR_LEN];
    size_t size = make_elf(img, sizeof img);

    /* Truncated: a PT_LOAD past the end. */
    assert_int_equal(dump_parse_elf(img, 0x4000, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    assert_non_null(strstr(err, "past the end"));
    /* Header shorter than an Ehdr. */
    assert_int_equal(dump_parse_elf(img, 20, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    /* Not a core. */
    ((Elf64_Ehdr *)img)->e_type = ET_EXEC;
    assert_int_equal(dump_parse_elf(img, size, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    assert_non_null(strstr(err, "not a core"));
    /* Overlapping segments. */
    size = make_elf(img, sizeof img);
    Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof(Elf64_Ehdr));
    ph[1].p_paddr = 0x1000;
    assert_int_equal(dump_parse_elf(img, size, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    assert_non_null(strstr(err, "overlap"));
    /* Program headers past the end, huge count. */
    size = make_elf(img, sizeof img);
    ((Elf64_Ehdr *)img)->e_phnum = 0xfffe;
    assert_int_equal(dump_parse_elf(img, size, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    /* Notes with absurd sizes are skipped, not fatal. */
    size = make_elf(img, sizeof img);
    uint32_t huge = 0xfffffff0u;
    memcpy(img + 0x200 + 4, &huge, 4);
    assert_int_equal(dump_parse_elf(img, size, &l, err, sizeof err), 0);
    assert_int_equal(l.nvcpus, 0);
    dump_layout_free(&l);
}

static size_t lime_add(uint8_t *p, uint64_t s, uint64_t e, uint8_t fillb)
{
    uint32_t magic = 0x4C694D45u, ver = 1;
    memcpy(p, &magic, 4);
    memcpy(p + 4, &ver, 4);
    memcpy(p + 8, &s, 8);
    memcpy(p + 16, &e, 8);
    memset(p + 24, 0, 8);
    memset(p + 32, fillb, e - s + 1);
    return 32 + (size_t)(e - s + 1);
}

static void test_lime(void **state)
{
    (void)state;
    static uint8_t img[0x10000];
    size_t n = lime_add(img, 0x0, 0xfff, 0xaa);
    n += lime_add(img + n, 0x3000, 0x37ff, 0xbb);   /* ends mid-page */
    struct dump_layout l = {0};
    char err[DUMP_ERR_LEN];
    assert_true(dump_is_lime(img, n));
    assert_int_equal(dump_parse_lime(img, n, &l, err, sizeof err), 0);
    assert_int_equal(l.nsegs, 2);
    assert_int_equal(l.segs[1].gpa, 0x3000);
    assert_int_equal(l.segs[1].len, 0x800);
    assert_int_equal(l.segs[1].file_off, 32 + 0x1000 + 32);
    dump_layout_free(&l);

    /* Truncated data. */
    assert_int_equal(dump_parse_lime(img, n - 1, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    assert_non_null(strstr(err, "truncated"));
    /* Ranges out of order. */
    size_t m = lime_add(img, 0x3000, 0x3fff, 1);
    m += lime_add(img + m, 0x0, 0xfff, 2);
    assert_int_equal(dump_parse_lime(img, m, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    /* end < start, and a wrapping range. */
    m = lime_add(img, 0x1000, 0x1000, 1);
    uint64_t bad = 0x10;
    memcpy(img + 16, &bad, 8);
    assert_int_equal(dump_parse_lime(img, m, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
    uint64_t wrap = UINT64_MAX;
    memcpy(img + 16, &wrap, 8);
    assert_int_equal(dump_parse_lime(img, m, &l, err, sizeof err), -EINVAL);
    dump_layout_free(&l);      /* the owner frees, parsed or not */
}

static void test_raw(void **state)
{
    (void)state;
    struct dump_layout l = {0};
    char err[DUMP_ERR_LEN];
    static uint8_t img[8192];
    assert_int_equal(dump_parse_raw(img, sizeof img, &l, err, sizeof err), 0);
    assert_int_equal(l.nsegs, 1);
    assert_int_equal(l.segs[0].len, 8192);
    dump_layout_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elf_layout),
        cmocka_unit_test(test_elf_bad),
        cmocka_unit_test(test_lime),
        cmocka_unit_test(test_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
