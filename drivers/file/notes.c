/*
 * notes.c - ELF notes that describe vCPUs, shared by ELF cores and
 * kdump-compressed dumps (which embed the same notes): NT_PRSTATUS and
 * QEMU's "QEMU" CPU-state notes become struct vmem_vcpu entries of the
 * layout.  Malformed notes are skipped, never fatal.
 */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/file/format.h"

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
