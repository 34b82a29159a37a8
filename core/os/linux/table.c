/*
 * table.c - Linux as an OS-layer implementation (core/os/os.h): the ops, and
 * the files it offers as rows of tables, one row and one renderer each, in
 * the way the kernel's fs/proc/base.c declares a process's entries.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"

static void *lx_open(struct vm *vm, const struct vmem_os_options *opt, char *why,
                     size_t whylen)
{
    return linux_os_open(vm, opt, why, whylen);
}
static void lx_close(void *os) { linux_os_close(os); }
static struct vmem_procs *lx_procs(void *os) { return linux_os_tasks(os); }
static void lx_procs_put(void *os, struct vmem_procs *t) { linux_tasks_put(os, t); }
static void lx_flush(void *os) { linux_os_flush(os); }
static void lx_describe(void *os, struct json_object *out)
{
    linux_os_describe(os, out);
}

/* vmem files: user space ends where the paging mode says (the file offset
 * is the address); the kernel's file holds the sign-extended upper half at
 * its own offsets (kernel text 0xffffffff81000000 at 0xffff81000000). */
static uint64_t user_space_size(enum vmem_paging_mode m)
{
    switch (m) {
    case VMEM_PAGING_X86_64_5L: return 1ull << 56;
    case VMEM_PAGING_X86_64_4L: return 1ull << 47;
    default: return 1ull << 32;
    }
}

static uint64_t kernel_space_size(enum vmem_paging_mode m)
{
    switch (m) {
    case VMEM_PAGING_X86_64_5L: return 1ull << 57;
    case VMEM_PAGING_X86_64_4L: return 1ull << 48;
    default: return 1ull << 32;
    }
}

static struct vmem_as *lx_address_space(void *priv, const struct vmem_proc *p,
                                        uint64_t *size)
{
    struct linux_os *os = priv;
    if (p && (p->kernel_thread || !p->dtb))
        return NULL;
    struct vmem_phys_reader rd;
    vm_phys_reader(os->vm, &rd);
    *size = p ? user_space_size(os->mode) : kernel_space_size(os->mode);
    return vmem_as_new(os->mode, p ? p->dtb : os->dtb, &rd);
}

static uint64_t lx_address_space_size(void *priv, const struct vmem_proc *p)
{
    struct linux_os *os = priv;
    if (p && (p->kernel_thread || !p->dtb))
        return 0;
    return p ? user_space_size(os->mode) : kernel_space_size(os->mode);
}

static char *render_maps(void *os, const struct vmem_proc *p, size_t *len, int *err)
{
    char *t = linux_os_maps(os, p, len);
    *err = t ? 0 : ENOMEM;
    return t;
}

static char *render_status(void *os, const struct vmem_proc *p, size_t *len, int *err)
{
    char *t = linux_os_status(os, p, len);
    *err = t ? 0 : ENOMEM;
    return t;
}

/* proc/<pid>/: what the guest's own /proc/<pid>/ would show, in its formats. */
static const struct vmem_os_file proc_files[] = {
    {"vmem",   VMEM_OSF_VMEM | VMEM_OSF_USER, NULL},
    {"maps",   VMEM_OSF_TEXT | VMEM_OSF_USER, render_maps},
    {"status", VMEM_OSF_TEXT,                 render_status},
};

/* kernel/: the kernel's address space and what the kernel keeps. */
static const struct vmem_os_file kernel_files[] = {
    {"vmem", VMEM_OSF_VMEM, NULL},
};

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

const struct vmem_os_ops linux_os_ops = {
    .name = "linux",
    .open = lx_open,
    .close = lx_close,
    .procs = lx_procs,
    .procs_put = lx_procs_put,
    .address_space = lx_address_space,
    .address_space_size = lx_address_space_size,
    .flush = lx_flush,
    .describe = lx_describe,
    .proc_files = proc_files,
    .nproc_files = NROWS(proc_files),
    .kernel_files = kernel_files,
    .nkernel_files = NROWS(kernel_files),
    .vm_files = NULL,
    .nvm_files = 0,
};
