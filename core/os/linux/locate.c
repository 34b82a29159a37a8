/*
 * locate.c - finding the kernel in physical memory (see linux.c's header for the
 * method): banner scan, profile match, KASLR shifts, kernel dtb, paging mode.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"
#include <dirent.h>
#include <sys/stat.h>

/* ---- KASLR -------------------------------------------------------------- */

/* The vCPU facts that help: CR4's paging bits and CR3 of the first vCPU
 * with paging on.  (EFER is not in every dump's notes, so long mode is not
 * told from it: the profile says whether the kernel is 64- or 32-bit.) */

void lx_vcpu_hint(struct vm *vm, struct vcpu_hint *h)
{
    memset(h, 0, sizeof *h);
    int n = vm_vcpu_count(vm);
    /* Paging on (CR0.PG) with a root: one with CR4.PAE first (every vCPU
     * of an x86-64 or PAE guest), else any (a 2-level 32-bit guest). */
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < n && c < 1024; c++) {
            struct vmem_vcpu v;
            if (vm_vcpu_state(vm, (unsigned)c, &v) < 0 || !(v.valid & VMEM_VCPU_CRS))
                continue;
            if (!(v.cr0 & (1ull << 31)) || !v.cr3 || (pass == 0 && !(v.cr4 & (1ull << 5))))
                continue;
            h->have = true;
            h->pae = (v.cr4 >> 5) & 1;
            h->la57 = (v.cr4 >> 12) & 1;
            h->cr3 = v.cr3;
            h->id = v.id;
            return;
        }
    }
}

static bool phys_read_u32(struct vm *vm, uint64_t gpa, uint32_t *v)
{
    uint8_t b[4];
    if (vm_read_phys(vm, gpa, b, 4, VM_READ_STRICT) != 4)
        return false;
    *v = vmem_ld_le32(b);
    return true;
}

/* A guest pointer (psize bytes) in physical memory. */
static bool phys_read_ptr(struct vm *vm, uint64_t gpa, unsigned psize, uint64_t *v)
{
    uint8_t b[8];
    if (vm_read_phys(vm, gpa, b, psize, VM_READ_STRICT) != (ssize_t)psize)
        return false;
    *v = psize == 4 ? vmem_ld_le32(b) : vmem_ld_le64(b);
    return true;
}

static bool maps_to(struct vmem_as *as, uint64_t gva, uint64_t gpa)
{
    uint64_t got;
    return vmem_as_translate(as, gva, &got, NULL) == 0 && got == gpa;
}

const char *lx_mode_name(enum vmem_paging_mode m)
{
    switch (m) {
    case VMEM_PAGING_X86_64_5L: return "x86-64 5-level";
    case VMEM_PAGING_X86_64_4L: return "x86-64 4-level";
    case VMEM_PAGING_PAE: return "x86 PAE";
    case VMEM_PAGING_X86_32: return "x86 32-bit";
    }
    return "?";
}

/* Sign-extend a 32-bit difference: i386 shifts as two's complement. */
static uint64_t sext32(uint64_t v)
{
    return (uint64_t)(int64_t)(int32_t)(uint32_t)v;
}

/* kaslr_try for an i386 kernel (see the header comment): every link
 * address X of the image runs at X + vshift and sits physically at
 * X + vshift - PAGE_OFFSET. */
static bool kaslr_try32(struct linux_os *os, const struct isf *f, uint64_t banner_gpa,
                        const struct vcpu_hint *hint, uint64_t s_banner, uint64_t s_dtb,
                        uint64_t s_init_task, char *why, size_t whylen)
{
    if (((banner_gpa - s_banner) & (PHYS_ALIGN32 - 1)) != 0) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 " gives a physical shift "
                 "that is not 8 KiB aligned (the printk log's copy?)", banner_gpa);
        return false;
    }
    /* The image is one piece: physical places relative to the banner's
     * (all below 4 GiB: a 32-bit CR3 must reach the root). */
    if (banner_gpa + s_dtb < s_banner || banner_gpa + s_init_task < s_banner ||
        banner_gpa + s_dtb - s_banner >= X86_32_TOP ||
        banner_gpa + s_init_task - s_banner >= X86_32_TOP) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 ": the profile's symbols do "
                 "not fit below it", banner_gpa);
        return false;
    }
    uint64_t dtb = banner_gpa + s_dtb - s_banner;
    uint64_t it_phys = banner_gpa + s_init_task - s_banner;

    /* PAE or not: a vCPU's CR4.PAE, else the profile's pgd_t (8 bytes
     * with PAE); both are tried. */
    enum vmem_paging_mode modes[2];
    const char *source[2];
    uint64_t pgd_size = 0;
    bool pae_first = true;
    if (hint->have) {
        pae_first = hint->pae;
        source[0] = "vCPU CR4.PAE";
        source[1] = "tried (vCPU CR4 disagreed)";
    } else if (isf_type_size(f, "pgd_t", &pgd_size) == 0 && (pgd_size == 4 || pgd_size == 8)) {
        pae_first = pgd_size == 8;
        source[0] = "the profile's pgd_t size";
        source[1] = "tried (pgd_t size disagreed)";
    } else {
        source[0] = source[1] = "tried";
    }
    modes[0] = pae_first ? VMEM_PAGING_PAE : VMEM_PAGING_X86_32;
    modes[1] = pae_first ? VMEM_PAGING_X86_32 : VMEM_PAGING_PAE;

    /* Virtual shift candidates: init_task's self pointers, then the usual
     * PAGE_OFFSETs (3G/1G and the other VMSPLIT choices). */
    uint64_t cand[7];
    int ncand = 0;
    uint64_t ptr;
    if (os->o.task_real_parent != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_real_parent, 4, &ptr))
        cand[ncand++] = sext32(ptr - s_init_task);
    if (os->o.task_group_leader != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_group_leader, 4, &ptr))
        cand[ncand++] = sext32(ptr - s_init_task);
    static const uint64_t page_offsets[] = {
        0xc0000000ull, 0xb0000000ull, 0x80000000ull, 0x78000000ull, 0x40000000ull,
    };
    for (size_t i = 0; i < sizeof page_offsets / sizeof page_offsets[0]; i++)
        cand[ncand++] = sext32(banner_gpa + page_offsets[i] - s_banner);

    for (int m = 0; m < 2; m++) {
        struct vmem_as *as = vmem_as_new(modes[m], dtb, &os->rd);
        if (!as) {
            snprintf(why, whylen, "out of memory");
            return false;
        }
        for (int c = 0; c < ncand; c++) {
            uint64_t vshift = cand[c];
            uint64_t va = s_banner + vshift;
            /* PAGE_OFFSET = the banner's virtual minus physical place: at
             * least 1 GiB (VMSPLIT_1G), 16 MiB aligned. */
            uint64_t page_offset = va - banner_gpa;
            if ((vshift & (PHYS_ALIGN32 - 1)) || va >= X86_32_TOP ||
                page_offset < 0x40000000ull || page_offset > 0xc0000000ull ||
                (page_offset & 0xffffff) || !maps_to(as, va, banner_gpa))
                continue;
            os->pshift = vshift;
            os->vshift = vshift;
            os->kmap = page_offset;
            os->kptr_lo = page_offset;
            os->dtb = dtb;
            os->mode = modes[m];
            os->mode_source = source[m];
            os->kas = as;
            os->banner_gpa = banner_gpa;
            return true;
        }
        vmem_as_free(as);
    }
    snprintf(why, whylen, "banner at 0x%" PRIx64 ": linux_banner does not translate "
             "to it through swapper_pg_dir at 0x%" PRIx64 " with any virtual shift "
             "(PAE or 32-bit paging)", banner_gpa, dtb);
    return false;
}

/* Try to establish the kernel's layout with profile f and the banner found
 * at banner_gpa.  On success fills os->{pshift, vshift, kmap, dtb, mode, kas}. */
static bool kaslr_try(struct linux_os *os, const struct isf *f, uint64_t banner_gpa,
                      const struct vcpu_hint *hint, char *why, size_t whylen)
{
    uint64_t s_banner, s_dtb, s_init_task;
    if (isf_symbol(f, "linux_banner", &s_banner) < 0) {
        snprintf(why, whylen, "the profile has no linux_banner symbol");
        return false;
    }
    bool i386 = s_banner < X86_32_TOP;
    if (!i386 && s_banner < KMAP_X64) {
        snprintf(why, whylen, "the profile is for no x86 kernel layout known here "
                 "(linux_banner at 0x%" PRIx64 ")", s_banner);
        return false;
    }
    if (i386 != (os->o.psize == 4)) {
        snprintf(why, whylen, "the profile's pointer size (%u) does not fit its "
                 "linux_banner at 0x%" PRIx64, os->o.psize, s_banner);
        return false;
    }
    if (isf_symbol(f, "init_top_pgt", &s_dtb) < 0 &&
        isf_symbol(f, "init_level4_pgt", &s_dtb) < 0 &&
        isf_symbol(f, "swapper_pg_dir", &s_dtb) < 0) {
        snprintf(why, whylen, i386 ? "the profile has no swapper_pg_dir symbol"
                                   : "the profile has no init_top_pgt symbol");
        return false;
    }
    if (isf_symbol(f, "init_task", &s_init_task) < 0) {
        snprintf(why, whylen, "the profile has no init_task symbol");
        return false;
    }
    if ((banner_gpa & 0xfff) != (s_banner & 0xfff)) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 " is not where linux_banner "
                 "would be (page offset differs)", banner_gpa);
        return false;
    }
    os->psize = os->o.psize;
    if (i386)
        return kaslr_try32(os, f, banner_gpa, hint, s_banner, s_dtb, s_init_task,
                           why, whylen);
    uint64_t pshift = banner_gpa - (s_banner - KMAP_X64);
    if (pshift & (PHYS_ALIGN - 1)) {
        snprintf(why, whylen, "banner at 0x%" PRIx64 " gives a physical shift "
                 "that is not 2 MiB aligned (the printk log's copy?)", banner_gpa);
        return false;
    }
    uint64_t dtb = s_dtb - KMAP_X64 + pshift;
    uint64_t it_phys = s_init_task - KMAP_X64 + pshift;

    /* Paging mode candidates, the likeliest first. */
    enum vmem_paging_mode modes[2];
    const char *source[2];
    int nmodes = 0;
    uint64_t s_l5;
    uint32_t l5 = 0;
    if (hint->have) {
        modes[0] = hint->la57 ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L;
        modes[1] = hint->la57 ? VMEM_PAGING_X86_64_4L : VMEM_PAGING_X86_64_5L;
        source[0] = "vCPU CR4.LA57";
        source[1] = "tried (vCPU CR4 disagreed)";
        nmodes = 2;
    } else if (isf_symbol(f, "__pgtable_l5_enabled", &s_l5) == 0 &&
               s_l5 >= KMAP_X64 &&
               phys_read_u32(os->vm, s_l5 - KMAP_X64 + pshift, &l5) && l5 <= 1) {
        modes[0] = l5 ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L;
        modes[1] = l5 ? VMEM_PAGING_X86_64_4L : VMEM_PAGING_X86_64_5L;
        source[0] = "kernel's __pgtable_l5_enabled";
        source[1] = "tried (__pgtable_l5_enabled disagreed)";
        nmodes = 2;
    } else {
        modes[0] = VMEM_PAGING_X86_64_4L;
        modes[1] = VMEM_PAGING_X86_64_5L;
        source[0] = source[1] = "tried";
        nmodes = 2;
    }

    /* Virtual shift candidates from init_task's self pointers. */
    uint64_t cand[2];
    int ncand = 0;
    uint64_t ptr;
    if (os->o.task_real_parent != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_real_parent, 8, &ptr))
        cand[ncand++] = ptr - s_init_task;
    if (os->o.task_group_leader != NONE &&
        phys_read_ptr(os->vm, it_phys + (uint64_t)os->o.task_group_leader, 8, &ptr))
        cand[ncand++] = ptr - s_init_task;

    for (int m = 0; m < nmodes; m++) {
        struct vmem_as *as = vmem_as_new(modes[m], dtb, &os->rd);
        if (!as) {
            snprintf(why, whylen, "out of memory");
            return false;
        }
        bool found = false;
        uint64_t vshift = 0;
        for (int c = 0; c < ncand && !found; c++) {
            if ((cand[c] & (PHYS_ALIGN - 1)) == 0 &&
                maps_to(as, s_banner + cand[c], banner_gpa)) {
                found = true;
                vshift = cand[c];
            }
        }
        /* Every shift KASLR can choose: 2 MiB steps over the 1 GiB image
         * area (and a little below the link address). */
        for (int64_t k = -8; !found && k < (int64_t)(KIMAGE_MAX / PHYS_ALIGN); k++) {
            uint64_t vs = (uint64_t)(k * (int64_t)PHYS_ALIGN);
            if (maps_to(as, s_banner + vs, banner_gpa)) {
                found = true;
                vshift = vs;
            }
        }
        if (found) {
            os->pshift = pshift;
            os->vshift = vshift;
            os->kmap = KMAP_X64;
            os->dtb = dtb;
            os->mode = modes[m];
            os->mode_source = source[m];
            os->kas = as;
            os->banner_gpa = banner_gpa;
            return true;
        }
        vmem_as_free(as);
    }
    snprintf(why, whylen, "banner at 0x%" PRIx64 ": linux_banner does not translate "
             "to it through init_top_pgt at 0x%" PRIx64 " with any virtual shift",
             banner_gpa, dtb);
    return false;
}

/* The page-table root a CR3 value names in this paging mode. */
static uint64_t cr3_root(enum vmem_paging_mode mode, uint64_t cr3)
{
    switch (mode) {
    case VMEM_PAGING_PAE: return cr3 & 0xffffffe0ull;
    case VMEM_PAGING_X86_32: return cr3 & 0xfffff000ull;
    default: return cr3 & 0x000ffffffffff000ull;     /* PCID/flags, bit 63 */
    }
}

/* Compare a vCPU's CR3 with what we derived and say how it relates. */
void lx_cr3_crosscheck(struct linux_os *os, const struct vcpu_hint *h,
                           uint64_t s_banner)
{
    if (!h->have) {
        snprintf(os->cr3_check, sizeof os->cr3_check, "no vCPU state in the source");
        return;
    }
    uint64_t root = cr3_root(os->mode, h->cr3);
    if (root == os->dtb) {
        snprintf(os->cr3_check, sizeof os->cr3_check,
                 "vCPU %u CR3 0x%" PRIx64 " is the kernel page-table root", h->id, h->cr3);
        return;
    }
    if (root == os->dtb + 0x1000) {
        snprintf(os->cr3_check, sizeof os->cr3_check,
                 "vCPU %u CR3 0x%" PRIx64 " is the kernel root's PTI user copy", h->id,
                 h->cr3);
        return;
    }
    /* A process's root: PTI's user copy (+4 KiB of a page-aligned kernel
     * copy) maps little of the kernel, so look at the kernel copy. */
    uint64_t kroot = (root & 0xfff) ? root : root & ~0x1000ull;
    struct vmem_as *as = vmem_as_new(os->mode, kroot, &os->rd);
    bool same = as && maps_to(as, s_banner + os->vshift, os->banner_gpa);
    vmem_as_free(as);
    snprintf(os->cr3_check, sizeof os->cr3_check,
             same ? "vCPU %u CR3 0x%" PRIx64 " is a process page table; it maps the kernel the same way"
                  : "vCPU %u CR3 0x%" PRIx64 " does NOT map linux_banner where the kernel root does",
             h->id, h->cr3);
    if (!same)
        vmem_log(LOG_WARNING, "VM '%s': %s", vm_name(os->vm), os->cr3_check);
}

/* ---- profiles in a directory -------------------------------------------- */

/* ---- the banner scan ------------------------------------------------------ */

/* A banner candidate at p (which starts with "Linux version "): its length
 * up to '\n' or NUL, or 0 when it does not look like a kernel banner. */
static size_t banner_len(const uint8_t *p, size_t avail)
{
    static const char pfx[] = "Linux version ";
    size_t pl = sizeof pfx - 1;
    if (avail <= pl + 1 || p[pl] < '0' || p[pl] > '9')
        return 0;
    size_t max = avail < BANNER_MAX ? avail : BANNER_MAX;
    for (size_t i = pl; i < max; i++) {
        if (p[i] == '\n' || p[i] == 0)
            return i >= pl + 8 ? i : 0;
        if (p[i] < 0x20 || p[i] > 0x7e)
            return 0;
    }
    return 0;
}


static bool seen_banner(struct scan_state *s, const char *b)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i], b) == 0)
            return true;
    return false;
}

static void remember_banner(struct scan_state *s, const char *b)
{
    char **n = realloc(s->seen, (s->nseen + 1) * sizeof *n);
    if (!n)
        return;
    s->seen = n;
    s->seen[s->nseen] = strdup(b);
    if (s->seen[s->nseen])
        s->nseen++;
}

/* One banner occurrence.  Returns true when the OS is established. */
/* No ISF matches this banner: build a profile from the guest's own BTF and
 * kallsyms (core/profile/btf_mem.h), once per open.  NULL with s->mp_why
 * saying why not. */
static const struct isf *from_guest_memory(struct linux_os *os,
                                           const struct vmem_os_options *opt,
                                           struct scan_state *s, uint64_t *gpa,
                                           const char *banner)
{
    if (opt->no_guest_profile || s->mp || s->mp_tries >= 16)
        return NULL;
    s->mp_tries++;
    char mwhy[sizeof s->mp_why];
    s->mp = mem_profile_build(os->vm, &s->mps, gpa, banner, mwhy, sizeof mwhy);
    if (!s->mp) {
        /* Why linux_banner failed says more than why a copy did. */
        if (!s->mp_why[0] || !strstr(mwhy, " is a copy"))
            snprintf(s->mp_why, sizeof s->mp_why, "%s", mwhy);
        return NULL;
    }
    return mem_profile_isf(s->mp);
}

static bool try_banner(struct linux_os *os, const struct vmem_os_options *opt,
                       struct scan_state *s, uint64_t gpa, const char *banner,
                       const struct vcpu_hint *hint)
{
    if (s->tries++ >= BANNER_TRIES)
        return false;
    const struct isf *f = os->isf;
    if (!f && s->mp && isf_banner_equal(isf_banner(mem_profile_isf(s->mp)), banner))
        f = mem_profile_isf(s->mp);
    if (!f && !opt->symbols_dir) {
        f = from_guest_memory(os, opt, s, &gpa, banner);
        if (!f)
            return false;
    }
    if (!f) {
        /* Choose by banner from the symbols directory. */
        if (s->loaded && isf_banner_equal(isf_banner(s->loaded), banner)) {
            f = s->loaded;
        } else {
            if (seen_banner(s, banner))
                return false;        /* judged before: no profile */
            remember_banner(s, banner);
            if (!s->dir_loaded) {
                char err[256];
                s->dir_loaded = true;
                if (isf_catalog_load(&s->dir, opt->symbols_dir, err, sizeof err) != 0)
                    snprintf(s->last_why, sizeof s->last_why, "%s", err);
            }
            const char *path = isf_catalog_find(&s->dir, banner);
            if (!path) {
                if (!s->first_unmatched[0])
                    snprintf(s->first_unmatched, sizeof s->first_unmatched, "%s", banner);
                f = from_guest_memory(os, opt, s, &gpa, banner);
                if (!f)
                    return false;
                goto chosen;
            }
            char err[256];
            struct isf *nf = isf_load(path, err, sizeof err);
            if (!nf) {
                snprintf(s->last_why, sizeof s->last_why, "%s", err);
                return false;
            }
            isf_free(s->loaded);
            free(s->loaded_path);
            s->loaded = nf;
            s->loaded_path = strdup(path);
            f = nf;
        }
    }
chosen:;
    char why[256];
    if (lx_load_offsets(f, &os->o, why, sizeof why) < 0 ||
        !kaslr_try(os, f, gpa, hint, why, sizeof why)) {
        /* Why a copy of the banner at linux_banner's page offset failed
         * says more than why a later one elsewhere (the printk log's)
         * did: keep the former. */
        uint64_t sb;
        bool at_banner = isf_symbol(f, "linux_banner", &sb) == 0 && (gpa & 0xfff) == (sb & 0xfff);
        if (at_banner || !s->why_at_banner) {
            snprintf(s->last_why, sizeof s->last_why, "%s", why);
            s->why_at_banner = at_banner;
        }
        return false;
    }
    if (!os->isf && s->mp && f == mem_profile_isf(s->mp)) {
        os->isf = f;
        os->mem_profile = s->mp;
        s->mp = NULL;
        os->chosen_by = "built from guest memory (BTF + kallsyms): no ISF matches the banner";
    } else if (!os->isf) {
        os->isf = os->isf_owned = s->loaded;
        os->profile_path = s->loaded_path;
        s->loaded = NULL;
        s->loaded_path = NULL;
        os->chosen_by = "banner match in the symbols directory";
    }
    os->banner = strdup(banner);
    return true;
}

/* Look for banners in buf[0, n) (physically contiguous from gpa), at
 * starts below limit (the rest is overlap to finish a banner). */
static bool scan_buf(struct linux_os *os, const struct vmem_os_options *opt,
                     struct scan_state *s, const struct vcpu_hint *hint,
                     const uint8_t *buf, size_t n, size_t limit, uint64_t gpa)
{
    static const char pfx[] = "Linux version ";
    const size_t pl = sizeof pfx - 1;
    const uint8_t *p = buf;
    while (s->tries < BANNER_TRIES) {
        size_t off = (size_t)(p - buf);
        if (off >= limit)
            break;
        p = memmem(p, n - off, pfx, pl);
        if (!p || (size_t)(p - buf) >= limit)
            break;
        size_t blen = banner_len(p, n - (size_t)(p - buf));
        if (blen) {
            char b[BANNER_MAX + 1];
            memcpy(b, p, blen);
            b[blen] = 0;
            if (try_banner(os, opt, s, gpa + (uint64_t)(p - buf), b, hint))
                return true;
        }
        p += pl;
    }
    return false;
}

/* Scan guest-physical [start, end) in SCAN_CHUNK pieces. */
static bool scan_phys(struct linux_os *os, const struct vmem_os_options *opt,
                      struct scan_state *s, const struct vcpu_hint *hint,
                      uint64_t start, uint64_t end, uint8_t *buf)
{
    for (uint64_t gpa = start; gpa < end && s->tries < BANNER_TRIES; gpa += SCAN_CHUNK) {
        uint64_t left = end - gpa;
        size_t want = left < SCAN_CHUNK + SCAN_OVERLAP ? (size_t)left
                                                       : SCAN_CHUNK + SCAN_OVERLAP;
        ssize_t got = vm_read_phys(os->vm, gpa, buf, want, VM_READ_PAD);
        if (got <= 0)
            continue;
        size_t n = (size_t)got;
        if (scan_buf(os, opt, s, hint, buf, n, n < SCAN_CHUNK ? n : SCAN_CHUNK, gpa))
            return true;
        if (end - gpa <= SCAN_CHUNK)
            break;
    }
    return false;
}

/* A forced profile says where, modulo CONFIG_PHYSICAL_ALIGN, the banner
 * must be: probe that one spot of every 2 MiB of RAM first. */
static bool scan_stride(struct linux_os *os, const struct vmem_os_options *opt,
                        struct scan_state *s, const struct vcpu_hint *hint)
{
    uint64_t sym;
    if (!os->isf || isf_symbol(os->isf, "linux_banner", &sym) < 0 ||
        (sym < KMAP_X64 && sym >= X86_32_TOP))
        return false;
    /* __START_KERNEL_map (and i386's PAGE_OFFSET) are 2 MiB multiples: the
     * banner's offset in its 2 MiB is the link address's. */
    uint64_t rem = sym & (PHYS_ALIGN - 1);
    const struct vmem_range *r;
    size_t nr;
    vm_ranges(os->vm, &r, &nr);
    uint8_t b[BANNER_MAX];
    for (size_t i = 0; i < nr; i++) {
        if (r[i].kind != VMEM_RANGE_RAM)
            continue;
        uint64_t p = (r[i].start & ~(PHYS_ALIGN - 1)) + rem;
        for (; p < r[i].end && s->tries < BANNER_TRIES; p += PHYS_ALIGN) {
            if (p < r[i].start)
                continue;
            size_t want = r[i].end - p < BANNER_MAX ? (size_t)(r[i].end - p) : BANNER_MAX;
            ssize_t got = vm_read_phys(os->vm, p, b, want, VM_READ_PAD);
            if (got > 14 && memcmp(b, "Linux version ", 14) == 0 &&
                scan_buf(os, opt, s, hint, b, (size_t)got, 1, p))
                return true;
        }
    }
    return false;
}

/* With a vCPU's CR3, the kernel image is where the kernel mapped it:
 * [__START_KERNEL_map, +1 GiB) virtually.  Scan those frames first (tens of
 * MiB, not all of RAM).  The root may be PTI's user copy (+4 KiB), which
 * maps little of the kernel: try the kernel copy too. */
static bool scan_cr3(struct linux_os *os, const struct vmem_os_options *opt,
                     struct scan_state *s, const struct vcpu_hint *hint, uint8_t *buf)
{
    if (!hint->have || !hint->pae)      /* no x86-64 root without PAE */
        return false;
    uint64_t root = hint->cr3 & 0x000ffffffffff000ull;
    uint64_t roots[2] = {root & ~0x1000ull, root};
    for (int k = 0; k < (root & 0x1000 ? 2 : 1); k++) {
        struct vmem_as *as = vmem_as_new(hint->la57 ? VMEM_PAGING_X86_64_5L
                                                    : VMEM_PAGING_X86_64_4L,
                                         roots[k], &os->rd);
        if (!as)
            return false;
        uint64_t va = vmem_as_va(as, KMAP_X64), limit = va + KIMAGE_MAX;
        unsigned rounds = 0, chunks = 0;
        bool mapped_any = false, found = false;
        while (va < limit && rounds++ < 64 && !found) {
            uint64_t rs, re;
            int rc = vmem_as_next_mapped(as, va, limit, &rs, &re);
            if (rc == -ENXIO || (rc < 0 && rc != -EAGAIN))
                break;
            if (re <= rs) {
                va = re > va ? re : va + VMEM_PAGE_SIZE;
                continue;
            }
            mapped_any = true;
            /* Physically contiguous 1 MiB pieces where they are. */
            for (uint64_t c = rs; c < re && !found && chunks++ < 4096; c += SCAN_CHUNK) {
                uint64_t ce = re - c < SCAN_CHUNK ? re : c + SCAN_CHUNK;
                uint64_t g0, g1;
                if (vmem_as_translate(as, vmem_as_gva(as, c), &g0, NULL) < 0 ||
                    vmem_as_translate(as, vmem_as_gva(as, ce - 1), &g1, NULL) < 0)
                    continue;
                if (g1 - g0 == ce - 1 - c) {
                    found = scan_phys(os, opt, s, hint, g0, g1 + 1, buf);
                    continue;
                }
                for (uint64_t pg = c; pg < ce && !found; pg += VMEM_PAGE_SIZE) {
                    if (vmem_as_translate(as, vmem_as_gva(as, pg), &g0, NULL) == 0)
                        found = scan_phys(os, opt, s, hint, g0 & ~0xfffull,
                                          (g0 & ~0xfffull) + VMEM_PAGE_SIZE, buf);
                }
            }
            va = re;
        }
        vmem_as_free(as);
        if (found)
            return true;
        if (mapped_any)
            break;
    }
    return false;
}

bool lx_scan_for_kernel(struct linux_os *os, const struct vmem_os_options *opt,
                            struct scan_state *s, const struct vcpu_hint *hint)
{
    if (scan_stride(os, opt, s, hint))
        return true;
    uint8_t *buf = malloc(SCAN_CHUNK + SCAN_OVERLAP);
    if (!buf)
        return false;
    bool found = scan_cr3(os, opt, s, hint, buf);
    const struct vmem_range *r;
    size_t nr;
    vm_ranges(os->vm, &r, &nr);
    uint64_t budget = SCAN_RAM_MAX;
    for (size_t i = 0; i < nr && !found && budget && s->tries < BANNER_TRIES; i++) {
        if (r[i].kind != VMEM_RANGE_RAM)
            continue;
        uint64_t len = r[i].end - r[i].start < budget ? r[i].end - r[i].start : budget;
        found = scan_phys(os, opt, s, hint, r[i].start, r[i].start + len, buf);
        budget -= len;
        s->scan_cut = !found && !budget && (len < r[i].end - r[i].start || i + 1 < nr);
    }
    free(buf);
    return found;
}
