/*
 * linux.c - Linux guest introspection (see linux.h): the kernel banner in
 * physical memory, the profile that matches it, KASLR and the kernel's
 * page-table root, the task list, and each process's memory areas as the
 * guest's /proc/<pid>/maps and /proc/<pid>/status would show them.
 *
 * How a kernel is found (x86-64; i386 differs where noted below):
 *   1. scan guest RAM in 1 MiB chunks for "Linux version " followed by a
 *      plausible banner; each distinct banner is matched against the
 *      profiles of --symbols DIR (or a forced --profile is tried as is).
 *      Cheaper places go first: with a forced profile, the one offset of
 *      every 2 MiB where its linux_banner can be; with a vCPU's CR3, the
 *      frames the kernel image is mapped to; then all of RAM, in order;
 *   2. the profile's linux_banner symbol (a link-time address S) and where
 *      the banner sits physically (P) give the physical shift: a kernel
 *      image symbol X lives at X - __START_KERNEL_map + pshift, pshift =
 *      P - (S - __START_KERNEL_map), a multiple of CONFIG_PHYSICAL_ALIGN
 *      (2 MiB); the printk log's copy of the banner fails that test;
 *   3. the kernel page-table root is init_top_pgt at that physical place;
 *      the paging mode comes from a vCPU's CR4.LA57 when the source has
 *      vCPU state, else from the kernel's own __pgtable_l5_enabled, else by
 *      trying both;
 *   4. the virtual shift: init_task.real_parent points to init_task
 *      itself, so its value minus init_task's link address is the shift
 *      (Volatility uses init_task.files the same way); failing that, every
 *      2 MiB-aligned shift the kernel can choose is tried.  Either way the
 *      result is proven by translating linux_banner + vshift through the
 *      root and landing on P;
 *   5. a vCPU's CR3, when known, is checked against that root (equal, PTI's
 *      user copy at +4 KiB, or a process page table that maps the kernel
 *      the same way) and reported.
 *
 * i386 (a profile whose linux_banner lies below 4 GiB; pointers, longs and
 * maple-tree slots and pivots of 4 bytes): the kernel image lives in the
 * linear map, virtual = PAGE_OFFSET + physical, so KASLR moves both by the
 * same amount (vshift == pshift, CONFIG_PHYSICAL_ALIGN steps) and PAGE_OFFSET
 * (0xc0000000 with the usual 3G/1G split) follows from the banner's
 * virtual and physical places.  The root is swapper_pg_dir; the paging mode
 * is PAE or 2-level 32-bit, from a vCPU's CR4.PAE, else the profile's
 * pgd_t size (8 bytes with PAE), and is proven by translation like the
 * shift.  User space ends at PAGE_OFFSET.
 *
 * Every read of kernel memory goes through the kernel address space (its
 * translation cache) and the VM's physical read path.  The guest controls
 * all of it: lists and trees are walked with bounds and visited sets, and
 * every pointer is checked to be a canonical kernel address before use.
 */
#include "core/os/linux/linux.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"

/* ---- open / close ---------------------------------------------------------- */

uint64_t lx_sym(const struct linux_os *os, const char *name)
{
    uint64_t a;
    if (isf_symbol(os->isf, name, &a) < 0 || a < os->kmap)
        return 0;
    return a + os->vshift;
}

struct linux_os *linux_os_open(struct vm *vm, const struct vmem_os_options *opt,
                               char *why, size_t whylen)
{
    struct linux_os *os = calloc(1, sizeof *os);
    if (!os) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    os->vm = vm_get(vm);
    vm_phys_reader(vm, &os->rd);
    pthread_mutex_init(&os->lock, NULL);
    os->immutable = vm_immutable(vm);
    os->max_age_ns = opt->tasks_max_age_ns ? opt->tasks_max_age_ns : LIVE_MAX_AGE_NS;

    if (opt->isf) {
        os->isf = opt->isf;
        os->chosen_by = "profile handed over by the caller (banner not checked)";
    } else if (opt->profile) {
        char err[256];
        os->isf_owned = isf_load(opt->profile, err, sizeof err);
        if (!os->isf_owned) {
            snprintf(why, whylen, "profile %s", err);
            linux_os_close(os);
            return NULL;
        }
        os->isf = os->isf_owned;
        os->profile_path = strdup(opt->profile);
        os->chosen_by = "--profile (banner not checked)";
    } else if (!opt->symbols_dir && opt->no_guest_profile) {
        snprintf(why, whylen, "no kernel profile: give --symbols DIR or --profile FILE");
        linux_os_close(os);
        return NULL;
    }

    struct vcpu_hint hint;
    lx_vcpu_hint(vm, &hint);
    struct scan_state s;
    memset(&s, 0, sizeof s);
    bool ok = lx_scan_for_kernel(os, opt, &s, &hint);
    if (!ok) {
        if (s.tries == 0 && s.scan_cut)
            snprintf(why, whylen, "no Linux kernel banner where a vCPU's page "
                     "tables map the kernel, nor in the first %llu GiB of RAM "
                     "(not scanned further; a kernel loaded higher is found "
                     "with --profile)", (unsigned long long)(SCAN_RAM_MAX >> 30));
        else if (s.tries == 0)
            snprintf(why, whylen, "no Linux kernel banner in physical memory");
        else if (!os->isf && s.mp_why[0] && !s.last_why[0] && opt->symbols_dir)
            snprintf(why, whylen, "no profile in %s (%zu files) matches '%.120s'; "
                     "from guest memory: %s", opt->symbols_dir, s.dir.n,
                     s.first_unmatched, s.mp_why);
        else if (!os->isf && s.mp_why[0] && !s.last_why[0])
            snprintf(why, whylen, "no --symbols or --profile, and from guest memory: %s",
                     s.mp_why);
        else if (!os->isf && s.first_unmatched[0] && !s.last_why[0])
            snprintf(why, whylen, "no profile in %s (%zu files) matches '%.200s'",
                     opt->symbols_dir, s.dir.n, s.first_unmatched);
        else
            snprintf(why, whylen, "Linux banner found but the kernel could not be "
                     "located: %s", s.last_why[0] ? s.last_why : "no usable banner");
    }
    isf_free(s.loaded);
    mem_profile_free(s.mp);
    mem_profile_scan_free(s.mps);
    free(s.loaded_path);
    for (size_t i = 0; i < s.nseen; i++)
        free(s.seen[i]);
    free(s.seen);
    isf_catalog_free(&s.dir);
    if (!ok) {
        linux_os_close(os);
        return NULL;
    }

    /* Release: the word after "Linux version ". */
    const char *rel = os->banner + strlen("Linux version ");
    size_t rl = strcspn(rel, " ");
    if (rl >= sizeof os->release)
        rl = sizeof os->release - 1;
    memcpy(os->release, rel, rl);
    os->release[rl] = 0;

    uint64_t s_banner = 0;
    isf_symbol(os->isf, "linux_banner", &s_banner);
    lx_cr3_crosscheck(os, &hint, s_banner);

    os->init_task = lx_sym(os, "init_task");
    os->sym_special_mapping_name = lx_sym(os, "special_mapping_name");
    os->sym_gate_vma_name = lx_sym(os, "gate_vma_name");
    os->gate_vma = lx_sym(os, "gate_vma");
    uint64_t vm_mode_sym = lx_sym(os, "vsyscall_mode");
    uint32_t vmode;
    /* enum { EMULATE, XONLY, NONE }: the gate VMA is shown unless NONE. */
    os->vsyscall_on = os->gate_vma && vm_mode_sym &&
                      lx_kread32(os, vm_mode_sym, &vmode) == 0 && vmode < 2;
    os->have_anon_vma_name = lx_sym(os, "anon_vma_name_alloc") != 0 &&
                             os->o.anon_vma_name_name != NONE;

    /* init_task must be swapper: otherwise the profile does not fit. */
    char comm[17] = "";
    if (lx_kread(os, os->init_task + (uint64_t)os->o.task_comm, comm, 16) < 0 ||
        strncmp(comm, "swapper", 7) != 0) {
        snprintf(why, whylen, "the profile does not fit this kernel: init_task at "
                 "0x%" PRIx64 " is not 'swapper'", os->init_task);
        linux_os_close(os);
        return NULL;
    }
    if (os->mem_profile) {
        vmem_log(LOG_INFO, "VM '%s': %s", vm_name(vm), mem_profile_summary(os->mem_profile));
        /* The release in it is the guest's, reduced to a plain file name. */
        snprintf(os->symbols_path, sizeof os->symbols_path, "symbols/linux/%s",
                 mem_profile_file_name(os->mem_profile));
    }
    vmem_log(LOG_INFO, "VM '%s': Linux %s, KASLR virtual shift 0x%" PRIx64
             ", physical shift 0x%" PRIx64 ", dtb 0x%" PRIx64 ", %s paging",
             vm_name(vm), os->release, os->vshift, os->pshift, os->dtb,
             lx_is_32bit(os) ? lx_mode_name(os->mode)
             : os->mode == VMEM_PAGING_X86_64_5L ? "5-level" : "4-level");
    return os;
}

void lx_snap_put(struct snap *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->pub.proc);
        free(s);
    }
}

void linux_os_close(struct linux_os *os)
{
    if (!os)
        return;
    lx_snap_put(os->snap);
    vmem_as_free(os->kas);
    isf_free(os->isf_owned);
    mem_profile_free(os->mem_profile);
    free(os->profile_path);
    free(os->banner);
    pthread_mutex_destroy(&os->lock);
    vm_put(os->vm);
    free(os);
}

const struct mem_profile *linux_os_mem_profile(const struct linux_os *os)
{
    return os->mem_profile;
}

enum vmem_paging_mode linux_os_paging_mode(const struct linux_os *os)
{
    return os->mode;
}

uint64_t linux_os_kernel_dtb(const struct linux_os *os)
{
    return os->dtb;
}

/* ---- info.json ---------------------------------------------------------- */

static json_object *hexobj(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "0x%" PRIx64, v);
    return json_object_new_string(s);
}

static json_object *shiftobj(uint64_t v)
{
    char s[24];
    if ((int64_t)v < 0)
        snprintf(s, sizeof s, "-0x%" PRIx64, (uint64_t)0 - v);
    else
        snprintf(s, sizeof s, "0x%" PRIx64, v);
    return json_object_new_string(s);
}

void linux_os_describe(struct linux_os *os, struct json_object *out)
{
    json_object_object_add(out, "os", json_object_new_string("linux"));
    json_object_object_add(out, "kernel_release", json_object_new_string(os->release));
    json_object_object_add(out, "banner", json_object_new_string(os->banner));
    json_object_object_add(out, "banner_gpa", hexobj(os->banner_gpa));
    if (os->profile_path)
        json_object_object_add(out, "profile", json_object_new_string(os->profile_path));
    json_object_object_add(out, "profile_chosen_by", json_object_new_string(os->chosen_by));
    if (os->mem_profile)
        mem_profile_describe(os->mem_profile, out);
    json_object_object_add(out, "kaslr_virtual_shift", shiftobj(os->vshift));
    json_object_object_add(out, "kaslr_physical_shift", shiftobj(os->pshift));
    json_object_object_add(out, "kernel_dtb", hexobj(os->dtb));
    json_object_object_add(out, "paging", json_object_new_string(lx_mode_name(os->mode)));
    json_object_object_add(out, "paging_from", json_object_new_string(os->mode_source));
    json_object_object_add(out, "cr3_check", json_object_new_string(os->cr3_check));
    json_object_object_add(out, "init_task", hexobj(os->init_task));
    struct vmem_procs *t = linux_os_tasks(os);
    if (t) {
        json_object_object_add(out, "processes", json_object_new_int64((int64_t)t->n));
        json_object_object_add(out, "process_list_truncated",
                               json_object_new_boolean(t->truncated));
        linux_tasks_put(os, t);
    }
    json_object_object_add(out, "vma_source", json_object_new_string(
        os->o.mm_mt_root != NONE ? "maple tree (mm->mm_mt)" :
        os->o.mm_mmap != NONE ? "mmap list (mm->mmap)" : "none"));
}
