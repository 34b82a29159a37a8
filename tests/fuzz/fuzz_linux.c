/*
 * fuzz_linux.c - libFuzzer target for core/linux.c's walkers: the input
 * corrupts the synthetic guest of fuzz_linux_guest.h (a KASLR'd kernel with
 * page tables, a task list, maple trees or vm_next lists, files, special
 * mappings), then the target finds the kernel, walks the task list and
 * reads every process's maps and status and the responder's files
 * (cmdline ... threads, modules, dmesg, mounts, net, the listings).  It must never crash, hang or
 * leak, whatever the guest's structures say.
 *
 * Input layout (little-endian):
 *   byte 0      bit 0: 5-level paging; bit 1: the pre-6.1 layout (mm->mmap
 *               list, no maple tree); bit 2: the source has a vCPU whose
 *               CR3 is the kernel root; bit 3: the guest also has a printk
 *               ring, a pid table and a socket (fuzz_linux_guest_fx.h),
 *               whose image variables the image patches then reach too
 *   then        12-byte patches: u32 where, u64 value.  where bit 31: the
 *               kernel image's first 40 KiB (page tables, banner,
 *               init_task), else the slab (tasks, creds, mms, VMAs, maple
 *               nodes, files, dentries); bit 30: write one byte, else
 *               eight; the rest, modulo the region's size, is the offset.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/linux.h"
#include "tests/fuzz/fuzz_linux_guest_fx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Pristine guests, built once per variant. */
static struct fg pristine[8];
static bool built[8];
static uint8_t *work;

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned variant = (data[0] & 3) | (data[0] & 8) >> 1;
    bool vcpu = data[0] & 4, fx = data[0] & 8;
    if (!built[variant]) {
        uint64_t app;
        if (!fg_init(&pristine[variant], variant & 1, variant & 2) ||
            !fg_populate(&pristine[variant], &app, NULL) ||
            (fx && (!fg_fx_profile(&pristine[variant]) ||
                    !fg_fx_populate(&pristine[variant], app))))
            abort();
        built[variant] = true;
    }
    if (!work && !(work = malloc(FG_MEM)))
        abort();
    struct fg g = pristine[variant];
    memcpy(work, g.mem, FG_MEM);
    g.mem = work;

    for (size_t i = 1; i + 12 <= size; i += 12) {
        uint32_t where = (uint32_t)le(data + i, 4);
        uint64_t value = le(data + i + 4, 8);
        uint64_t base = (where & 0x80000000u) ? FG_IMG : FG_SLAB;
        uint64_t len = (where & 0x80000000u) ? (fx ? FX_X_END : FG_X_END) : g.slab - FG_SLAB;
        uint64_t off = base + (where & 0x3fffffffu) % len;
        if (where & 0x40000000u)
            work[off] = (uint8_t)value;
        else
            for (int b = 0; b < 8 && off + (uint64_t)b < FG_MEM; b++)
                work[off + (uint64_t)b] = (uint8_t)(value >> (8 * b));
    }

    struct vm *vm = fg_vm(&g, vcpu ? fg_dtb() : 0);
    if (!vm)
        abort();
    struct vmem_os_options lo = {.isf = g.isf};
    char why[256];
    struct linux_os *os = linux_os_open(vm, &lo, why, sizeof why);
    if (os) {
        struct vmem_procs *t = linux_os_tasks(os);
        for (size_t i = 0; t && i < t->n && i < 64; i++) {
            size_t len;
            char *m = linux_os_maps(os, &t->proc[i], &len);
            if (m && strlen(m) != len)
                abort();
            free(m);
            m = linux_os_status(os, &t->proc[i], &len);
            if (m && strlen(m) != len)
                abort();
            free(m);
            char *(*const per[])(struct linux_os *, const struct vmem_proc *, size_t *) = {
                linux_os_cmdline, linux_os_environ, linux_os_exe, linux_os_cwd,
                linux_os_root, linux_os_fds, linux_os_threads};
            for (size_t k = 0; k < sizeof per / sizeof per[0]; k++)
                free(per[k](os, &t->proc[i], &len));
        }
        size_t klen;
        free(linux_os_modules(os, &klen));
        free(linux_os_dmesg(os, &klen));
        free(linux_os_kcmdline(os, &klen));
        free(linux_os_mounts(os, &klen));
        char *n = linux_os_net(os, "tcp", &klen);
        if (n && strlen(n) != klen)
            abort();
        free(n);
        free(linux_os_net(os, "udp", &klen));
        free(linux_os_net(os, "unix", &klen));
        free(linux_os_processes_json(os, &klen));
        free(linux_os_processes_csv(os, &klen));
        if (t && t->n && !vmem_procs_find(t, t->proc[0].pid))
            abort();
        linux_tasks_put(os, t);
        struct json_object *o = json_object_new_object();
        linux_os_describe(os, o);
        json_object_put(o);
        linux_os_close(os);
    }
    vm_put(vm);
    return 0;
}
