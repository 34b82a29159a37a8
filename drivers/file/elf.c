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
                dump_layout_free(out);
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
            dump_layout_free(out);
            return -EINVAL;
        }
        if (ph.paddr + ph.filesz < ph.paddr) {
            snprintf(err, errlen, "ELF: PT_LOAD %u wraps the address space", i);
            dump_layout_free(out);
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
            dump_layout_free(out);
            return -EINVAL;
        }
    }
    snprintf(out->detail, sizeof out->detail, "ELF%d core, %zu PT_LOAD, %zu vCPU notes",
             is64 ? 64 : 32, out->nsegs, out->nvcpus);
    return 0;
}

/* ---- notes -------------------------------------------------------------- */

/* QEMU's x86 CPU-state note (target/i386/arch_dump.c), same layout for
 * 32- and 64-bit guests. */
struct qemu_cpu_segment {
    uint32_t selector, limit, flags, pad;
    uint64_t base;
};
struct qemu_cpu_state {
    uint32_t version, size;
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
    struct qemu_cpu_segment cs, ds, es, fs, gs, ss;
    struct qemu_cpu_segment ldt, tr, gdt, idt;
    uint64_t cr[5];
    uint64_t kernel_gs_base;        /* version >= 1 */
};

/* x86-64 elf_prstatus: pr_reg (27 longs) at offset 112. */
#define PRSTATUS64_SIZE 336
#define PRSTATUS64_REG  112
/* i386 elf_prstatus: pr_reg (17 longs) at offset 72. */
#define PRSTATUS32_SIZE 144
#define PRSTATUS32_REG  72

static struct vmem_vcpu *vcpu_slot(struct dump_layout *out, size_t idx)
{
    if (idx > 4096)                 /* hostile note count */
        return NULL;
    if (idx >= out->nvcpus) {
        struct vmem_vcpu *v = realloc(out->vcpus, (idx + 1) * sizeof *v);
        if (!v)
            return NULL;
        for (size_t i = out->nvcpus; i <= idx; i++)
            v[i] = (struct vmem_vcpu){.id = (unsigned)i};
        out->vcpus = v;
        out->nvcpus = idx + 1;
    }
    return &out->vcpus[idx];
}

static void prstatus_to_vcpu(const uint8_t *d, size_t n, int is64,
                             struct vmem_vcpu *v)
{
    if (is64 && n >= PRSTATUS64_SIZE) {
        uint64_t r[27];
        memcpy(r, d + PRSTATUS64_REG, sizeof r);
        /* user_regs_struct order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax
         * rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds
         * es fs gs */
        v->gpr[0] = r[10]; v->gpr[1] = r[5]; v->gpr[2] = r[11]; v->gpr[3] = r[12];
        v->gpr[4] = r[13]; v->gpr[5] = r[14]; v->gpr[6] = r[4]; v->gpr[7] = r[19];
        v->gpr[8] = r[9]; v->gpr[9] = r[8]; v->gpr[10] = r[7]; v->gpr[11] = r[6];
        v->gpr[12] = r[3]; v->gpr[13] = r[2]; v->gpr[14] = r[1]; v->gpr[15] = r[0];
        v->rip = r[16];
        v->cs = (uint16_t)r[17];
        v->rflags = r[18];
        v->ss = (uint16_t)r[20];
        v->fs_base = r[21];
        v->gs_base = r[22];
        v->ds = (uint16_t)r[23]; v->es = (uint16_t)r[24];
        v->fs = (uint16_t)r[25]; v->gs = (uint16_t)r[26];
        v->valid |= VMEM_VCPU_GPRS;
    } else if (!is64 && n >= PRSTATUS32_SIZE) {
        uint32_t r[17];
        memcpy(r, d + PRSTATUS32_REG, sizeof r);
        /* ebx ecx edx esi edi ebp eax ds es fs gs orig_eax eip cs eflags esp ss */
        v->gpr[1] = r[0]; v->gpr[2] = r[1]; v->gpr[3] = r[2]; v->gpr[4] = r[3];
        v->gpr[5] = r[4]; v->gpr[6] = r[5]; v->gpr[0] = r[6];
        v->ds = (uint16_t)r[7]; v->es = (uint16_t)r[8];
        v->fs = (uint16_t)r[9]; v->gs = (uint16_t)r[10];
        v->rip = r[12];
        v->cs = (uint16_t)r[13];
        v->rflags = r[14];
        v->gpr[7] = r[15];
        v->ss = (uint16_t)r[16];
        v->valid |= VMEM_VCPU_GPRS;
    }
}

static void qemu_note_to_vcpu(const uint8_t *d, size_t n, struct vmem_vcpu *v)
{
    struct qemu_cpu_state s;
    size_t need = offsetof(struct qemu_cpu_state, kernel_gs_base);
    if (n < need)
        return;
    memset(&s, 0, sizeof s);
    memcpy(&s, d, n < sizeof s ? n : sizeof s);
    v->gpr[0] = s.rax; v->gpr[1] = s.rbx; v->gpr[2] = s.rcx; v->gpr[3] = s.rdx;
    v->gpr[4] = s.rsi; v->gpr[5] = s.rdi; v->gpr[6] = s.rbp; v->gpr[7] = s.rsp;
    v->gpr[8] = s.r8; v->gpr[9] = s.r9; v->gpr[10] = s.r10; v->gpr[11] = s.r11;
    v->gpr[12] = s.r12; v->gpr[13] = s.r13; v->gpr[14] = s.r14; v->gpr[15] = s.r15;
    v->rip = s.rip;
    v->rflags = s.rflags;
    v->cs = (uint16_t)s.cs.selector; v->ds = (uint16_t)s.ds.selector;
    v->es = (uint16_t)s.es.selector; v->fs = (uint16_t)s.fs.selector;
    v->gs = (uint16_t)s.gs.selector; v->ss = (uint16_t)s.ss.selector;
    v->cr0 = s.cr[0]; v->cr2 = s.cr[2]; v->cr3 = s.cr[3]; v->cr4 = s.cr[4];
    v->fs_base = s.fs.base;
    v->gs_base = s.gs.base;
    v->gdt_base = s.gdt.base;
    v->idt_base = s.idt.base;
    if (s.version >= 1 && n >= sizeof s)
        v->kernel_gs_base = s.kernel_gs_base;
    v->valid |= VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES;
}

void dump_parse_notes(const uint8_t *notes, size_t len, int is_64bit,
                      struct dump_layout *out)
{
    size_t off = 0, nprstatus = 0, nqemu = 0;
    while (len - off >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, notes + off, 4);
        memcpy(&descsz, notes + off + 4, 4);
        memcpy(&type, notes + off + 8, 4);
        size_t name_off = off + 12;
        size_t name_pad = ((size_t)namesz + 3) & ~(size_t)3;
        if (name_pad > len - name_off)
            return;
        size_t desc_off = name_off + name_pad;
        size_t desc_pad = ((size_t)descsz + 3) & ~(size_t)3;
        if (descsz > len - desc_off)
            return;
        const char *name = (const char *)notes + name_off;
        const uint8_t *desc = notes + desc_off;
        if (namesz == 5 && memcmp(name, "CORE", 5) == 0 && type == NT_PRSTATUS) {
            struct vmem_vcpu *v = vcpu_slot(out, nprstatus++);
            if (v)
                prstatus_to_vcpu(desc, descsz, is_64bit, v);
        } else if (namesz == 5 && memcmp(name, "QEMU", 5) == 0) {
            struct vmem_vcpu *v = vcpu_slot(out, nqemu++);
            if (v)
                qemu_note_to_vcpu(desc, descsz, v);
        }
        if (desc_pad > len - desc_off)
            return;
        off = desc_off + desc_pad;
    }
}
