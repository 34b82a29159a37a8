/*
 * table.c - Linux as an OS-layer implementation (core/os/os.h): the ops, and
 * the files it offers as rows of tables, one row and one renderer each, in
 * the way the kernel's fs/proc/base.c declares a process's entries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* The responder's files (issue 11): renderers that set errno. */
#define PROC_ROW(fn)                                                              \
    static char *render_##fn(void *os, const struct vmem_proc *p, size_t *len,   \
                             int *err)                                            \
    {                                                                             \
        errno = ENOMEM;                                                           \
        char *t = linux_os_##fn(os, p, len);                                      \
        *err = t ? 0 : errno ? errno : EIO;                                       \
        return t;                                                                 \
    }
#define KERNEL_ROW(name, expr)                                                    \
    static char *render_##name(void *os, const struct vmem_proc *p, size_t *len, \
                               int *err)                                          \
    {                                                                             \
        (void)p;                                                                  \
        errno = ENOMEM;                                                           \
        char *t = expr;                                                           \
        *err = t ? 0 : errno ? errno : EIO;                                       \
        return t;                                                                 \
    }
PROC_ROW(cmdline)
PROC_ROW(environ)
PROC_ROW(exe)
PROC_ROW(cwd)
PROC_ROW(root)
PROC_ROW(fds)
PROC_ROW(threads)
KERNEL_ROW(modules, linux_os_modules(os, len))
KERNEL_ROW(dmesg, linux_os_dmesg(os, len))
KERNEL_ROW(kcmdline, linux_os_kcmdline(os, len))
KERNEL_ROW(mounts, linux_os_mounts(os, len))
KERNEL_ROW(net_tcp, linux_os_net(os, "tcp", len))
KERNEL_ROW(net_tcp6, linux_os_net(os, "tcp6", len))
KERNEL_ROW(net_udp, linux_os_net(os, "udp", len))
KERNEL_ROW(net_udp6, linux_os_net(os, "udp6", len))
KERNEL_ROW(net_unix, linux_os_net(os, "unix", len))
KERNEL_ROW(processes_json, linux_os_processes_json(os, len))
KERNEL_ROW(processes_csv, linux_os_processes_csv(os, len))

/* proc/<pid>/: what the guest's own /proc/<pid>/ would show, in its formats. */
static const struct vmem_os_file proc_files[] = {
    {.name = "vmem", .flags = VMEM_OSF_VMEM | VMEM_OSF_USER, .render = NULL},
    {.name = "maps", .flags = VMEM_OSF_TEXT | VMEM_OSF_USER, .render = render_maps},
    {.name = "status", .flags = VMEM_OSF_TEXT, .render = render_status},
    {.name = "cmdline", .flags = VMEM_OSF_TEXT, .render = render_cmdline},
    {.name = "environ", .flags = VMEM_OSF_TEXT, .render = render_environ},
    {.name = "exe", .flags = VMEM_OSF_TEXT | VMEM_OSF_USER, .render = render_exe},
    {.name = "cwd", .flags = VMEM_OSF_TEXT, .render = render_cwd},
    {.name = "root", .flags = VMEM_OSF_TEXT, .render = render_root},
    {.name = "fds", .flags = VMEM_OSF_TEXT, .render = render_fds},
    {.name = "threads", .flags = VMEM_OSF_TEXT, .render = render_threads},
};

/* kernel/: the kernel's address space and what the kernel keeps. */
static const struct vmem_os_file kernel_files[] = {
    {.name = "vmem", .flags = VMEM_OSF_VMEM, .render = NULL},
    {.name = "modules", .flags = VMEM_OSF_TEXT, .render = render_modules},
    {.name = "dmesg", .flags = VMEM_OSF_TEXT, .render = render_dmesg},
    {.name = "cmdline", .flags = VMEM_OSF_TEXT, .render = render_kcmdline},
    {.name = "mounts", .flags = VMEM_OSF_TEXT, .render = render_mounts},
    {.name = "net/tcp", .flags = VMEM_OSF_TEXT, .render = render_net_tcp},
    {.name = "net/tcp6", .flags = VMEM_OSF_TEXT, .render = render_net_tcp6},
    {.name = "net/udp", .flags = VMEM_OSF_TEXT, .render = render_net_udp},
    {.name = "net/udp6", .flags = VMEM_OSF_TEXT, .render = render_net_udp6},
    {.name = "net/unix", .flags = VMEM_OSF_TEXT, .render = render_net_unix},
};

/* <vm>/: listings for scripts. */
/* symbols/linux/<release>.json: the profile built from the guest's own BTF
 * and kallsyms, as a Volatility 3 symbols directory (vol -s <vm>/symbols). */
static const char *symbols_name(void *priv)
{
    struct linux_os *os = priv;
    return os->symbols_path[0] ? os->symbols_path : NULL;
}

static char *render_symbols(void *priv, const struct vmem_proc *p, size_t *len, int *err)
{
    (void)p;
    const struct mem_profile *mp = linux_os_mem_profile(priv);
    const char *json = mp ? mem_profile_json(mp, len) : NULL;
    char *copy = json ? malloc(*len + 1) : NULL;
    if (copy) {
        memcpy(copy, json, *len);
        copy[*len] = 0;
    }
    *err = !mp ? ENOENT : copy ? 0 : ENOMEM;
    return copy;
}

static const struct vmem_os_file vm_files[] = {
    {.name = "processes.json", .flags = VMEM_OSF_TEXT, .render = render_processes_json},
    {.name = "processes.csv", .flags = VMEM_OSF_TEXT, .render = render_processes_csv},
    {.name = NULL, .flags = VMEM_OSF_TEXT, .render = render_symbols,
     .name_of = symbols_name},
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
    .vm_files = vm_files,
    .nvm_files = NROWS(vm_files),
};
