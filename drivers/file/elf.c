/*
 * elf.c - ELF core dumps (QEMU dump-guest-memory, virsh dump --memory-only)
 * and the ELF notes they carry.
 *
 * PT_LOAD segments give the guest-physical layout (p_paddr) and where the
 * bytes are (p_offset, p_filesz).  PT_NOTE holds per-vCPU NT_PRSTATUS
 * ("CORE") and QEMU's own CPU-state note ("QEMU"), which has the control
 * registers (CR3 among them) that prstatus lacks.  The same notes are
 * embedded in kdump-compressed dumps, so the note parser is shared.
 *
 * Both ELF classes are read: QEMU writes ELF32 for 32-bit guests.
 */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/format.h"
#include "core/phys/ranges.h"

int dump_is_elf(const uint8_t *base, size_t size)
{
    return size >= EI_NIDENT && memcmp(base, ELFMAG, SELFMAG) == 0;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct dump_segment *x = a, *y = b;
    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* One program header in a class-independent form. */
struct phdr {
    uint32_t type;
    uint64_t offset, paddr, filesz;
};

static void read_phdr(const uint8_t *p, int is64, struct phdr *out)
{
    if (is64) {
        Elf64_Phdr h;
        memcpy(&h, p, sizeof h);
        *out = (struct phdr){h.p_type, h.p_offset, h.p_paddr, h.p_filesz};
    } else {
        Elf32_Phdr h;
        memcpy(&h, p, sizeof h);
        *out = (struct phdr){h.p_type, h.p_offset, h.p_paddr, h.p_filesz};
    }
}

int dump_parse_elf(const uint8_t *base, size_t size, struct dump_layout *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->format = "elf";
    int is64 = base[EI_CLASS] == ELFCLASS64;
    if (base[EI_CLASS] != ELFCLASS64 && base[EI_CLASS] != ELFCLASS32) {
        snprintf(err, errlen, "ELF: unknown class %u", base[EI_CLASS]);
        return -EINVAL;
    }
    if (base[EI_DATA] != ELFDATA2LSB) {
        snprintf(err, errlen, "ELF: big-endian cores are not supported");
        return -EINVAL;
    }
    uint64_t phoff;
    unsigned phnum, phentsize, type, machine;
    if (is64) {
        Elf64_Ehdr eh;
        if (size < sizeof eh) {
            snprintf(err, errlen, "ELF: header truncated (file is %zu bytes)", size);
            return -EINVAL;
        }
        memcpy(&eh, base, sizeof eh);
        phoff = eh.e_phoff;
        phnum = eh.e_phnum;
        phentsize = eh.e_phentsize;
        type = eh.e_type;
        machine = eh.e_machine;
        if (phentsize != sizeof(Elf64_Phdr) && phnum) {
            snprintf(err, errlen, "ELF: program header size %u, expected %zu",
                     phentsize, sizeof(Elf64_Phdr));
            return -EINVAL;
        }
    } else {
        Elf32_Ehdr eh;
        if (size < sizeof eh) {
            snprintf(err, errlen, "ELF: header truncated (file is %zu bytes)", size);
            return -EINVAL;
        }
        memcpy(&eh, base, sizeof eh);
        phoff = eh.e_phoff;
        phnum = eh.e_phnum;
        phentsize = eh.e_phentsize;
        type = eh.e_type;
        machine = eh.e_machine;
        if (phentsize != sizeof(Elf32_Phdr) && phnum) {
            snprintf(err, errlen, "ELF: program header size %u, expected %zu",
                     phentsize, sizeof(Elf32_Phdr));
            return -EINVAL;
        }
    }
    if (type != ET_CORE) {
        snprintf(err, errlen, "ELF: not a core dump (e_type %u); give a memory "
                 "dump, e.g. from 'virsh dump --memory-only' or QEMU's "
                 "dump-guest-memory", type);
        return -EINVAL;
    }
    /* PN_XNUM (0xffff) means the real count is in section 0; QEMU does that
     * for guests with huge numbers of ranges. */
    if (phnum == PN_XNUM && is64) {
        Elf64_Ehdr eh;
        Elf64_Shdr sh;
        memcpy(&eh, base, sizeof eh);
        if (eh.e_shoff == 0 || eh.e_shoff > size || size - eh.e_shoff < sizeof sh) {
            snprintf(err, errlen, "ELF: e_phnum is PN_XNUM but section 0 is missing");
            return -EINVAL;
        }
        memcpy(&sh, base + eh.e_shoff, sizeof sh);
        phnum = sh.sh_info;
    }
    if (phnum == 0) {
        snprintf(err, errlen, "ELF: core has no program headers");
        return -EINVAL;
    }
    if (phoff > size || (size - phoff) / phentsize < phnum) {
        snprintf(err, errlen, "ELF: %u program headers at offset 0x%" PRIx64
                 " run past the end of the file (size 0x%zx)", phnum, phoff, size);
        return -EINVAL;
    }

    size_t nload = 0;
    for (unsigned i = 0; i < phnum; i++) {
        struct phdr ph;
        read_phdr(base + phoff + (uint64_t)i * phentsize, is64, &ph);
        if (ph.type == PT_LOAD && ph.filesz)
            nload++;
    }
    out->segs = calloc(nload ? nload : 1, sizeof *out->segs);
    if (!out->segs) {
        snprintf(err, errlen, "ELF: out of memory for %zu segments", nload);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < phnum; i++) {
        struct phdr ph;
        read_phdr(base + phoff + (uint64_t)i * phentsize, is64, &ph);
        if (ph.type == PT_NOTE) {
            if (ph.offset > size || ph.filesz > size - ph.offset) {
                snprintf(err, errlen, "ELF: PT_NOTE (offset 0x%" PRIx64 ", 0x%"
                         PRIx64 " bytes) runs past the end of the file (size 0x%zx)",
                         ph.offset, ph.filesz, size);
                return -EINVAL;
            }
            /* The register layout follows the guest, not the file class:
             * QEMU writes an i386 guest whose ROM ends at 4 GiB as ELF64. */
            dump_parse_notes(base + ph.offset, ph.filesz,
                             machine == EM_386 ? 0 : machine == EM_X86_64 ? 1 : is64, out);
            continue;
        }
        if (ph.type != PT_LOAD || ph.filesz == 0)
            continue;
        if (ph.offset > size || ph.filesz > size - ph.offset) {
            snprintf(err, errlen, "ELF: PT_LOAD %u (gpa 0x%" PRIx64 ", offset 0x%"
                     PRIx64 ", 0x%" PRIx64 " bytes) runs past the end of the file "
                     "(size 0x%zx): truncated dump?", i, ph.paddr, ph.offset,
                     ph.filesz, size);
            return -EINVAL;
        }
        if (ph.paddr + ph.filesz < ph.paddr) {
            snprintf(err, errlen, "ELF: PT_LOAD %u wraps the address space", i);
            return -EINVAL;
        }
        /* QEMU dumps x86 firmware ROM as a PT_LOAD of its own: not RAM. */
        unsigned kind = machine == EM_386 || machine == EM_X86_64
                            ? vmem_x86_range_kind(ph.paddr, ph.paddr + ph.filesz)
                            : VMEM_RANGE_RAM;
        out->segs[out->nsegs++] = (struct dump_segment){
            .gpa = ph.paddr, .len = ph.filesz, .file_off = ph.offset,
            .kind = kind};
    }
    qsort(out->segs, out->nsegs, sizeof *out->segs, cmp_seg);
    for (size_t i = 1; i < out->nsegs; i++) {
        if (out->segs[i].gpa < out->segs[i - 1].gpa + out->segs[i - 1].len) {
            snprintf(err, errlen, "ELF: PT_LOAD segments overlap at gpa 0x%" PRIx64,
                     out->segs[i].gpa);
            return -EINVAL;
        }
    }
    snprintf(out->detail, sizeof out->detail, "ELF%d core, %zu PT_LOAD, %zu vCPU notes",
             is64 ? 64 : 32, out->nsegs, out->nvcpus);
    return 0;
}
