/* test_linux.c - core/linux.c on a synthetic guest (tests/fuzz/
 * fuzz_linux_guest.h): 4 MiB of RAM in an in-memory frame reader with a
 * KASLR'd kernel image, page tables (4- and 5-level), a task list, mm
 * structs with maple trees (or the old vm_next list), files and special
 * mappings, described by a made-up profile built in memory.
 *
 * Checks that the kernel is found (the printk copy of the banner skipped,
 * shifts and dtb right, the paging mode from a vCPU's CR4 or from the
 * kernel's own flag), that tasks, maps and status read back as built, and
 * that hostile structures end walks early and boundedly: a task list that
 * loops back to its middle, wild and unmapped pointers, a maple node that
 * points to itself, a maple tree deeper than the kernel allows, absurd
 * counts and lengths, a dentry cycle, a vm_next loop.
 *
 * i386 guests (PAE and 2-level paging) have a smaller synthetic guest of
 * their own below: 4-byte pointers, 32-bit maple nodes, a negative KASLR
 * shift, the 48-column maps padding. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/profile/isf.h"
#include "core/os/linux/linux.h"
#include "core/phys/vm.h"
#include "tests/fuzz/fuzz_linux_guest.h"

struct env {
    struct fg g;
    struct vm *vm;
    struct linux_os *os;
    uint64_t app, app_dtb;
};

static void env_build(struct env *e, bool la57, bool mmap_list)
{
    memset(e, 0, sizeof *e);
    assert_true(fg_init(&e->g, la57, mmap_list));
    assert_true(fg_populate(&e->g, &e->app, &e->app_dtb));
}

static struct linux_os *env_open(struct env *e, uint64_t cr3, char *why, size_t whylen)
{
    e->vm = fg_vm(&e->g, cr3);
    assert_non_null(e->vm);
    struct vmem_os_options lo = {.isf = e->g.isf};
    e->os = linux_os_open(e->vm, &lo, why, whylen);
    return e->os;
}

static void env_free(struct env *e)
{
    linux_os_close(e->os);
    vm_put(e->vm);
    fg_fini(&e->g);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void check_open(bool la57, uint64_t cr3, const char *mode_from)
{
    struct env e;
    char why[256] = "";
    env_build(&e, la57, false);
    if (!env_open(&e, cr3, why, sizeof why))
        fail_msg("open: %s", why);
    assert_int_equal(linux_os_paging_mode(e.os),
                     la57 ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L);
    assert_int_equal(linux_os_kernel_dtb(e.os), fg_dtb());
    json_object *o = json_object_new_object();
    linux_os_describe(e.os, o);
    assert_string_equal(jstr(o, "os"), "linux");
    assert_string_equal(jstr(o, "kernel_release"), "9.9.9-vmemfs-fake");
    assert_string_equal(jstr(o, "kaslr_virtual_shift"), "0x600000");
    assert_string_equal(jstr(o, "kaslr_physical_shift"), "0x200000");
    assert_string_equal(jstr(o, "kernel_dtb"), "0x200000");
    assert_string_equal(jstr(o, "banner_gpa"), "0x206000");    /* not the log copy */
    assert_string_equal(jstr(o, "paging_from"), mode_from);
    assert_string_equal(jstr(o, "paging"), la57 ? "x86-64 5-level" : "x86-64 4-level");
    assert_string_equal(jstr(o, "processes"), "6");
    if (cr3 == fg_dtb())
        assert_non_null(strstr(jstr(o, "cr3_check"), "is the kernel page-table root"));
    else if (cr3)
        assert_non_null(strstr(jstr(o, "cr3_check"), "maps the kernel the same way"));
    json_object_put(o);
    env_free(&e);
}

static void test_open_4level(void **state)
{
    (void)state;
    check_open(false, 0, "kernel's __pgtable_l5_enabled");
    check_open(false, fg_dtb(), "vCPU CR4.LA57");
}

static void test_open_5level(void **state)
{
    (void)state;
    check_open(true, 0, "kernel's __pgtable_l5_enabled");
    check_open(true, fg_dtb(), "vCPU CR4.LA57");
}

/* A process page table as CR3 that maps the kernel half like the root. */
static void test_cr3_process(void **state)
{
    (void)state;
    struct env e;
    char why[256];
    env_build(&e, false, false);
    /* Copy the kernel half of the root into the app's pgd. */
    memcpy(e.g.mem + e.app_dtb + 2048, e.g.mem + fg_dtb() + 2048, 2048);
    assert_non_null(env_open(&e, e.app_dtb | 0x1, why, sizeof why));
    json_object *o = json_object_new_object();
    linux_os_describe(e.os, o);
    assert_non_null(strstr(jstr(o, "cr3_check"), "maps the kernel the same way"));
    json_object_put(o);
    env_free(&e);
}

static void test_tasks(void **state)
{
    (void)state;
    struct env e;
    char why[256];
    env_build(&e, false, false);
    assert_non_null(env_open(&e, 0, why, sizeof why));
    struct vmem_procs *t = linux_os_tasks(e.os);
    assert_non_null(t);
    assert_false(t->truncated);
    assert_int_equal(t->n, 6);
    static const struct {
        uint32_t pid, ppid, uid, threads;
        const char *comm;
        char state;
        bool kthread;
    } want[] = {
        {1, 0, 0, 1, "init", 'S', false},
        {2, 0, 0, 1, "kthreadd", 'S', true},
        {3, 2, 0, 1, "kworker/0:0", 'I', true},
        {5, 1, 0, 1, "sh", 'S', false},
        {7, 5, 1000, 3, "app", 'R', false},
        {9, 5, 0, 1, "gone", 'Z', true},
    };
    for (size_t i = 0; i < 6; i++) {
        const struct vmem_proc *k = &t->proc[i];
        assert_int_equal(k->pid, want[i].pid);
        assert_int_equal(k->ppid, want[i].ppid);
        assert_int_equal(k->uid, want[i].uid);
        assert_int_equal(k->euid, want[i].uid);
        assert_int_equal(k->nthreads, want[i].threads);
        assert_string_equal(k->comm, want[i].comm);
        assert_int_equal(k->state, want[i].state);
        assert_int_equal(k->kernel_thread, want[i].kthread);
        assert_true(k->task_gva >= e.g.direct);
        if (!k->kernel_thread)
            assert_true(k->dtb != 0 && k->mm_gva != 0);
        assert_ptr_equal(vmem_procs_find(t, k->pid), k);
    }
    assert_null(vmem_procs_find(t, 4));
    assert_null(vmem_procs_find(t, 0));
    assert_int_equal(vmem_procs_find(t, 7)->dtb, e.app_dtb);
    assert_int_equal(vmem_procs_find(t, 7)->task_gva, e.app);
    /* A dump is walked once: the same snapshot comes back. */
    struct vmem_procs *t2 = linux_os_tasks(e.os);
    assert_ptr_equal(t, t2);
    linux_tasks_put(e.os, t2);
    /* After a flush the old snapshot stays valid for its holder. */
    linux_os_flush(e.os);
    t2 = linux_os_tasks(e.os);
    assert_ptr_not_equal(t, t2);
    assert_int_equal(t2->n, 6);
    assert_int_equal(t->proc[4].pid, 7);
    linux_tasks_put(e.os, t2);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static char *maps_of(struct env *e, uint32_t pid)
{
    struct vmem_procs *t = linux_os_tasks(e->os);
    const struct vmem_proc *k = vmem_procs_find(t, pid);
    assert_non_null(k);
    size_t len = 0;
    char *m = linux_os_maps(e->os, k, &len);
    assert_non_null(m);
    assert_int_equal(strlen(m), len);
    linux_tasks_put(e->os, t);
    return m;
}

static void check_maps(bool la57, bool mmap_list)
{
    struct env e;
    char why[256];
    env_build(&e, la57, mmap_list);
    if (!env_open(&e, 0, why, sizeof why))
        fail_msg("open: %s", why);
    char *m = maps_of(&e, 7);
    if (strcmp(m, fg_app_maps) != 0)
        fail_msg("app maps:\n%s\nwant:\n%s", m, fg_app_maps);
    free(m);
    m = maps_of(&e, 1);
    assert_string_equal(m,
        "00400000-00500000 r-xp 00000000 00:02 53                                 /bin/app\n"
        "00600000-00621000 rw-p 00000000 00:00 0                                  [heap]\n");
    free(m);
    m = maps_of(&e, 5);
    assert_string_equal(m, "");
    free(m);
    m = maps_of(&e, 2);
    assert_string_equal(m, "");
    free(m);
    env_free(&e);
}

static void test_maps_maple(void **state)
{
    (void)state;
    check_maps(false, false);
    check_maps(true, false);
}

static void test_maps_mmap_list(void **state)
{
    (void)state;
    check_maps(false, true);
}

/* One leaf as the root, and a deleted file. */
static void test_maps_single_leaf_deleted(void **state)
{
    (void)state;
    struct env e;
    char why[256];
    env_build(&e, false, false);
    struct fg *g = &e.g;
    uint64_t f = fg_file_new(g, "/tmp/gone", 9, 3);
    uint64_t d = fg_rv64(g, f + F_DENTRY);
    fg_wv64(g, d + D_HASH_PPREV, 0);                     /* unhashed */
    uint64_t mm = fg_mm_new(g, 0, 0, 0, NULL);
    uint64_t v = fg_vma_new(g, mm, 0x10000, 0x12000, 0x71, f, 0);
    assert_true(fg_mm_set_vmas(g, mm, &v, 1, 5));
    fg_task_new(g, 20, 0, "t", mm, 1, 0);
    assert_non_null(env_open(&e, 0, why, sizeof why));
    char *m = maps_of(&e, 20);
    assert_string_equal(m,
        "00010000-00012000 r--p 00000000 00:03 9                                  /tmp/gone (deleted)\n");
    free(m);
    env_free(&e);
}

/* Paths across a mount, and a pseudo file (memfd, shared anonymous memory:
 * a root dentry that is not its mount's root), as d_path shows them. */
static void test_file_paths(void **state)
{
    (void)state;
    struct env e;
    char why[256];
    env_build(&e, false, false);
    struct fg *g = &e.g;
    /* /mnt in the root fs, and a second file system mounted on it. */
    uint64_t f_mp = fg_file_new(g, "/mnt", 2, 2);
    uint64_t mp = fg_rv64(g, f_mp + F_DENTRY);
    uint64_t root2 = fg_alloc(g, 0xc0, 64), mnt2 = fg_alloc(g, 0x80, 64);
    fg_wv64(g, root2 + D_PARENT, root2);
    fg_wv32(g, root2 + D_NAME_LEN, 1);
    fg_wv64(g, root2 + D_NAME, fg_str(g, "/"));
    fg_wv64(g, mnt2 + MNT_PARENT, g->root_mount);
    fg_wv64(g, mnt2 + MNT_MOUNTPOINT, mp);
    fg_wv64(g, mnt2 + MNT_MNT, root2);
    uint64_t f = fg_file_new(g, "/data", 77, 5);      /* then re-parent it */
    uint64_t d = fg_rv64(g, f + F_DENTRY);
    fg_wv64(g, d + D_PARENT, root2);
    fg_wv64(g, f + F_MNT, mnt2 + MNT_MNT);
    /* memfd: its dentry is its own parent, on the root mount here. */
    uint64_t fm = fg_file_new(g, "/memfd:buf", 88, 1);
    uint64_t dm = fg_rv64(g, fm + F_DENTRY);
    fg_wv64(g, dm + D_PARENT, dm);
    uint64_t mm = fg_mm_new(g, 0, 0, 0, NULL);
    uint64_t v[] = {
        fg_vma_new(g, mm, 0x10000, 0x11000, 0x71, f, 2),
        fg_vma_new(g, mm, 0x20000, 0x22000, 0xfb, fm, 0),
    };
    assert_true(fg_mm_set_vmas(g, mm, v, 2, 5));
    fg_task_new(g, 40, 0, "paths", mm, 1, 0);
    assert_non_null(env_open(&e, 0, why, sizeof why));
    char *m = maps_of(&e, 40);
    assert_string_equal(m,
        "00010000-00011000 r--p 00002000 00:05 77                                 /mnt/data\n"
        "00020000-00022000 rw-s 00000000 00:01 88                                 /memfd:buf (deleted)\n");
    free(m);
    env_free(&e);
}

static void test_status(void **state)
{
    (void)state;
    struct env e;
    char why[256];
    env_build(&e, false, false);
    assert_non_null(env_open(&e, 0, why, sizeof why));
    struct vmem_procs *t = linux_os_tasks(e.os);
    const struct vmem_proc *k = vmem_procs_find(t, 7);
    size_t len;
    char *s = linux_os_status(e.os, k, &len);
    char want[1024];
    snprintf(want, sizeof want,
             "Name:\tapp\nState:\tR (running)\nTgid:\t7\nPid:\t7\nPPid:\t5\n"
             "Uid:\t1000\t1000\t1000\t1000\nGid:\t1100\t1100\t1100\t1100\n"
             "Threads:\t3\nKthread:\t0\nDtb:\t0x%" PRIx64 "\nTask:\t0x%" PRIx64
             "\nMm:\t0x%" PRIx64 "\n", k->dtb, k->task_gva, k->mm_gva);
    assert_string_equal(s, want);
    assert_int_equal(len, strlen(want));
    free(s);
    s = linux_os_status(e.os, vmem_procs_find(t, 3), &len);
    assert_non_null(strstr(s, "State:\tI (idle)\n"));
    assert_non_null(strstr(s, "Kthread:\t1\n"));
    free(s);
    s = linux_os_status(e.os, vmem_procs_find(t, 9), &len);
    assert_non_null(strstr(s, "State:\tZ (zombie)\n"));
    free(s);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* ---- hostile structures ---------------------------------------------- */

static struct vmem_procs *open_tasks(struct env *e);

/* /proc/modules lines; then a loop back into the list's middle: each
 * module once, and the file says it is incomplete. */
static void test_modules_loop(void **state)
{
    (void)state;
    struct env e;
    char why[256];
    env_build(&e, false, false);
    uint64_t a = fg_module_new(&e.g, "alpha", 2);
    uint64_t b = fg_module_new(&e.g, "beta", 1);
    assert_true(a && b);
    assert_non_null(env_open(&e, 0, why, sizeof why));
    size_t len;
    char *m = linux_os_modules(e.os, &len);
    assert_non_null(m);
    assert_string_equal(m, "alpha 0 1 - Live 0x0000000000000000\n"
                           "beta 0 0 - Live 0x0000000000000000\n");
    free(m);
    linux_os_close(e.os);
    vm_put(e.vm);
    fg_wv64(&e.g, b + MOD_LIST, a + MOD_LIST);          /* beta -> alpha */
    assert_non_null(env_open(&e, 0, why, sizeof why));
    m = linux_os_modules(e.os, &len);
    assert_non_null(m);
    assert_non_null(strstr(m, "alpha 0 1"));
    assert_non_null(strstr(m, "beta 0 0"));
    assert_null(strstr(strstr(m, "beta") + 1, "alpha"));
    assert_non_null(strstr(m, "# incomplete"));
    free(m);
    linux_os_close(e.os);
    vm_put(e.vm);
    fg_wv64(&e.g, b + MOD_LIST, 0xdead000000000000ull);  /* wild */
    assert_non_null(env_open(&e, 0, why, sizeof why));
    m = linux_os_modules(e.os, &len);
    assert_non_null(strstr(m, "# incomplete"));
    free(m);
    env_free(&e);
}

/* A descriptor table claiming 2^32-1 slots, a wild file pointer among
 * real ones: bounded, the real descriptors named, the file says it is
 * incomplete. */
static void test_fds_hostile(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    uint64_t arr = fg_files_new(&e.g, e.app, 0xffffffffu, 64);
    assert_true(arr != 0);
    uint64_t f = fg_file_new(&e.g, "/etc/passwd", 12, 1);
    assert_true(f != 0);
    fg_wv64(&e.g, arr + 3 * 8, f);
    fg_wv64(&e.g, arr + 5 * 8, 0x1234);                  /* not a kernel pointer */
    struct vmem_procs *t = open_tasks(&e);
    const struct vmem_proc *p = vmem_procs_find(t, 7);
    assert_non_null(p);
    size_t len;
    char *s = linux_os_fds(e.os, p, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    assert_true(strncmp(s, "3\t0\t00\t/etc/passwd\n", 19) == 0);
    assert_non_null(strstr(s, "# incomplete"));
    free(s);
    /* What the profile lacks: no printk ring, no mount list, ENOENT. */
    errno = 0;
    assert_null(linux_os_dmesg(e.os, &len));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(linux_os_mounts(e.os, &len));
    assert_int_equal(errno, ENOENT);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static struct vmem_procs *open_tasks(struct env *e)
{
    char why[256];
    if (!env_open(e, 0, why, sizeof why))
        fail_msg("open: %s", why);
    return linux_os_tasks(e->os);
}

/* The list's last task points back to the second: each task once, the
 * walk stops and says it was cut. */
static void test_tasks_loop_to_middle(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    uint64_t head = e.g.init_task + T_TASKS;
    uint64_t first = fg_rv64(&e.g, head);
    uint64_t second = fg_rv64(&e.g, first);
    uint64_t last = fg_rv64(&e.g, head + 8);
    fg_wv64(&e.g, last, second);
    struct vmem_procs *t = open_tasks(&e);
    assert_true(t->truncated);
    assert_int_equal(t->n, 6);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static void test_tasks_self_loop(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    uint64_t head = e.g.init_task + T_TASKS;
    uint64_t first = fg_rv64(&e.g, head);
    fg_wv64(&e.g, first, first);
    struct vmem_procs *t = open_tasks(&e);
    assert_true(t->truncated);
    assert_int_equal(t->n, 1);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static void test_tasks_wild_pointers(void **state)
{
    (void)state;
    static const uint64_t wild[] = {
        0x1234,                         /* user space */
        0x00007fff00000000ull,
        0xffffc90000000000ull,          /* canonical, unmapped */
        0x8000000000000000ull,          /* non-canonical */
        0xffff888000000003ull,          /* misaligned */
        0xffff888000400000ull,          /* direct map past RAM */
        UINT64_MAX,
    };
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        struct env e;
        env_build(&e, false, false);
        uint64_t head = e.g.init_task + T_TASKS;
        uint64_t first = fg_rv64(&e.g, head);
        uint64_t second = fg_rv64(&e.g, first);
        fg_wv64(&e.g, second, wild[i]);
        struct vmem_procs *t = open_tasks(&e);
        assert_true(t->truncated);
        assert_int_equal(t->n, 2);
        linux_tasks_put(e.os, t);
        env_free(&e);
    }
}

/* Absurd values inside tasks: no crash, sane output. */
static void test_tasks_absurd_fields(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    uint64_t app = e.app;
    fg_wv32(&e.g, fg_rv64(&e.g, app + T_SIGNAL) + 8, 0xffffffffu);   /* nr_threads */
    memset(e.g.mem + fg_pa(&e.g, app + T_COMM), 0xff, 16);          /* no NUL */
    fg_wv64(&e.g, app + T_PARENT, 0xdead000000000000ull);
    fg_wv64(&e.g, app + T_CRED, 0xffff888000000000ull + FG_MEM);
    fg_wv32(&e.g, app + T_STATE, 0xffffffffu);
    struct vmem_procs *t = open_tasks(&e);
    const struct vmem_proc *k = vmem_procs_find(t, 7);
    assert_non_null(k);
    assert_int_equal(k->nthreads, 1);
    assert_int_equal(strlen(k->comm), 16);
    for (int i = 0; i < 16; i++)
        assert_true(k->comm[i] >= 0x20 && k->comm[i] < 0x7f);
    assert_int_equal(k->ppid, 0);
    assert_int_equal(k->uid, 0);
    assert_non_null(strchr("RSDTtXZPI", k->state));
    size_t len;
    char *s = linux_os_status(e.os, k, &len);
    assert_non_null(s);
    free(s);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static uint64_t maple_root_node(struct env *e, uint64_t mm)
{
    return fg_rv64(&e->g, mm + MM_MT + 8) & ~0xffull;
}

/* A maple node whose child slot is itself (with a matching parent). */
static void test_maple_self_reference(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    uint64_t mm = fg_rv64(&e.g, e.app + T_MM);
    uint64_t root = maple_root_node(&e, mm);
    fg_wv64(&e.g, root + 80 + 8, fg_enode(root, 3));     /* slot 1 -> root */
    struct vmem_procs *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, vmem_procs_find(t, 7), &len);
    assert_non_null(m);
    /* Leaf 0 still reads; the bad branch is dropped. */
    assert_memory_equal(m, fg_app_maps, 3 * 82);
    free(m);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* A chain of 40 internal nodes, each the only child of the one before,
 * parents all correct: deeper than MAPLE_HEIGHT_MAX; the walk stops. */
static void test_maple_too_deep(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    struct fg *g = &e.g;
    uint64_t mm = fg_mm_new(g, 0, 0, 0, NULL);
    uint64_t parent = mm + MM_MT;
    uint64_t first = 0, prev = 0;
    for (int i = 0; i < 40; i++) {
        uint64_t n = fg_alloc(g, 256, 256);
        assert_true(n != 0);
        fg_wv64(g, n, i == 0 ? parent | 1 : prev | 4);
        g->mem[fg_pa(g, n + 248)] = 0;                   /* one slot */
        if (i == 0)
            first = n;
        else
            fg_wv64(g, prev + 128, fg_enode(n, 2));
        prev = n;
    }
    fg_wv64(g, mm + MM_MT + 8, fg_enode(first, 2) | 2);
    fg_task_new(g, 30, 0, "deep", mm, 1, 0);
    struct vmem_procs *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, vmem_procs_find(t, 30), &len);
    assert_non_null(m);
    assert_int_equal(len, 0);
    free(m);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* Nonsense node types, metadata ends and pivots. */
static void test_maple_absurd(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        struct env e;
        env_build(&e, false, false);
        struct fg *g = &e.g;
        uint64_t mm = fg_rv64(g, e.app + T_MM);
        uint64_t root = maple_root_node(&e, mm);
        uint64_t leaf0 = fg_rv64(g, root + 80) & ~0xffull;
        switch (variant) {
        case 0: g->mem[fg_pa(g, root + 240)] = 255; break;        /* meta end */
        case 1: fg_wv64(g, root + 80, fg_enode(leaf0, 7)); break; /* bad type */
        case 2: fg_wv64(g, mm + MM_MT + 8, fg_enode(root, 0) | 2); break; /* dense */
        case 3:                                                    /* pivots */
            for (int i = 0; i < 15; i++)
                fg_wv64(g, leaf0 + 8 + 8 * (uint64_t)i, UINT64_MAX - (uint64_t)i);
            break;
        }
        struct vmem_procs *t = open_tasks(&e);
        size_t len;
        char *m = linux_os_maps(e.os, vmem_procs_find(t, 7), &len);
        assert_non_null(m);
        assert_int_equal(strlen(m), len);
        free(m);
        linux_tasks_put(e.os, t);
        env_free(&e);
    }
}

/* A file whose dentries form a cycle, with an absurd name length. */
static void test_dentry_cycle(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    struct fg *g = &e.g;
    uint64_t f = fg_file_new(g, "/a/b", 1, 1);
    uint64_t b = fg_rv64(g, f + F_DENTRY);
    uint64_t a = fg_rv64(g, b + D_PARENT);
    fg_wv64(g, a + D_PARENT, b);
    fg_wv32(g, b + D_NAME_LEN, 0xffffffffu);
    uint64_t mm = fg_mm_new(g, 0, 0, 0, NULL);
    uint64_t v = fg_vma_new(g, mm, 0x10000, 0x11000, 0x71, f, 0);
    assert_true(fg_mm_set_vmas(g, mm, &v, 1, 5));
    fg_task_new(g, 31, 0, "cyc", mm, 1, 0);
    struct vmem_procs *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, vmem_procs_find(t, 31), &len);
    assert_non_null(m);
    assert_true(len < 8192);
    assert_memory_equal(m, "00010000-00011000 r--p 00000000 00:01 1 ", 40);
    free(m);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static void test_mmap_list_loop(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, true);
    uint64_t mm = fg_rv64(&e.g, e.app + T_MM);
    uint64_t first = fg_rv64(&e.g, mm + MM_MMAP);
    uint64_t second = fg_rv64(&e.g, first + V_NEXT);
    uint64_t third = fg_rv64(&e.g, second + V_NEXT);
    fg_wv64(&e.g, third + V_NEXT, first);
    struct vmem_procs *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, vmem_procs_find(t, 7), &len);
    assert_memory_equal(m, fg_app_maps, 3 * 82);
    assert_int_equal(len, 3 * 82);
    free(m);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* ---- finding the kernel ------------------------------------------------- */

static void test_no_banner(void **state)
{
    (void)state;
    struct env e;
    char why[256] = "";
    env_build(&e, false, false);
    memset(e.g.mem + FG_IMG + FG_X_BANNER, 0, 16);
    memset(e.g.mem + 0x8123, 0, 16);
    assert_null(env_open(&e, 0, why, sizeof why));
    assert_string_equal(why, "no Linux kernel banner in physical memory");
    env_free(&e);
}

/* Only the printk copy is left: found, but nothing fits. */
static void test_banner_only_in_log(void **state)
{
    (void)state;
    struct env e;
    char why[512] = "";
    env_build(&e, false, false);
    memset(e.g.mem + FG_IMG + FG_X_BANNER, 0, 16);
    assert_null(env_open(&e, 0, why, sizeof why));
    assert_non_null(strstr(why, "could not be located"));
    env_free(&e);
}

/* Page tables that do not map the kernel where the profile says. */
static void test_broken_page_tables(void **state)
{
    (void)state;
    struct env e;
    char why[512] = "";
    env_build(&e, false, false);
    memset(e.g.mem + FG_IMG + FG_X_PD, 0, 4096);
    assert_null(env_open(&e, 0, why, sizeof why));
    assert_non_null(strstr(why, "does not translate"));
    env_free(&e);
}

static char tmpdir[64];

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_symbols_dir(void **state)
{
    (void)state;
    struct env e;
    char why[512] = "";
    env_build(&e, false, false);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vmemfs-test-linux.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char sub[128], path[160], other[160];
    snprintf(sub, sizeof sub, "%s/linux", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* A profile for another kernel first in name order, then ours. */
    char *json = strdup(e.g.isf_json);
    char *p = strstr(json, "\"constant_data\":\"");
    assert_non_null(p);
    p[17] = 'X';                         /* another banner */
    snprintf(other, sizeof other, "%s/a-other.json", sub);
    write_file(other, json, strlen(json));
    snprintf(path, sizeof path, "%s/fake.json", sub);
    write_file(path, e.g.isf_json, e.g.isf_len);

    e.vm = fg_vm(&e.g, 0);
    struct vmem_os_options lo = {.symbols_dir = tmpdir};
    e.os = linux_os_open(e.vm, &lo, why, sizeof why);
    if (!e.os)
        fail_msg("open: %s", why);
    json_object *o = json_object_new_object();
    linux_os_describe(e.os, o);
    assert_string_equal(jstr(o, "profile"), path);
    assert_string_equal(jstr(o, "profile_chosen_by"), "banner match in the symbols directory");
    json_object_put(o);
    linux_os_close(e.os);

    /* --profile FILE */
    lo = (struct vmem_os_options){.profile = path};
    e.os = linux_os_open(e.vm, &lo, why, sizeof why);
    assert_non_null(e.os);
    linux_os_close(e.os);
    e.os = NULL;

    /* Only the other kernel's profile: no match, said so. */
    unlink(path);
    lo = (struct vmem_os_options){.symbols_dir = tmpdir};
    assert_null(linux_os_open(e.vm, &lo, why, sizeof why));
    assert_non_null(strstr(why, "no profile in"));
    assert_non_null(strstr(why, "matches 'Linux version 9.9.9-vmemfs-fake"));
    unlink(other);
    rmdir(sub);
    rmdir(tmpdir);
    free(json);

    /* No profile at all: one is looked for in guest memory (issue 10),
     * and this fake guest has no kallsyms, which is said. */
    lo = (struct vmem_os_options){0};
    assert_null(linux_os_open(e.vm, &lo, why, sizeof why));
    assert_non_null(strstr(why, "no --symbols or --profile, and from guest memory: "));
    assert_non_null(strstr(why, "kallsyms"));
    lo = (struct vmem_os_options){.no_guest_profile = true};
    assert_null(linux_os_open(e.vm, &lo, why, sizeof why));
    assert_non_null(strstr(why, "no kernel profile"));
    env_free(&e);
}

/* Many tasks: the walk is fast and complete. */
static void test_many_tasks(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    char comm[16];
    for (uint32_t pid = 100; pid < 1100; pid++) {
        snprintf(comm, sizeof comm, "w%u", pid);
        assert_true(fg_task_new(&e.g, pid, 0, comm, 0, 1, 0) != 0);
    }
    struct vmem_procs *t = open_tasks(&e);
    assert_false(t->truncated);
    assert_int_equal(t->n, 1006);
    for (size_t i = 1; i < t->n; i++)
        assert_true(t->proc[i - 1].pid < t->proc[i].pid);
    assert_string_equal(vmem_procs_find(t, 777)->comm, "w777");
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* A hostile list naming one pid twice: proc/ lists it once, the first
 * task walked (issue 13). */
static void test_tasks_duplicate_pid(void **state)
{
    (void)state;
    struct env e;
    env_build(&e, false, false);
    assert_true(fg_task_new(&e.g, 4242, 0, "first", 0, 1, 0) != 0);
    assert_true(fg_task_new(&e.g, 4242, 0, "second", 0, 1, 0) != 0);
    assert_true(fg_task_new(&e.g, 4243, 0, "after", 0, 1, 0) != 0);
    struct vmem_procs *t = open_tasks(&e);
    size_t seen = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->proc[i].pid == 4242)
            seen++;
        if (i)
            assert_true(t->proc[i - 1].pid < t->proc[i].pid);
    }
    assert_int_equal(seen, 1);
    assert_string_equal(vmem_procs_find(t, 4242)->comm, "first");
    assert_string_equal(vmem_procs_find(t, 4243)->comm, "after");
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* ---- i386 guests: PAE and 2-level 32-bit paging ------------------------ */

/* A small synthetic i386 guest of its own (4 MiB of RAM, the fake driver
 * above): PAGE_OFFSET 0xc0000000 mapping all RAM, the kernel linked at
 * 0xc1000000 (physical 16 MiB) but loaded at physical 2 MiB, so KASLR's
 * shift is negative (-0xe00000) and the same virtually and physically;
 * 4-byte pointers and longs everywhere, maple nodes with 32-bit slot
 * counts; swapper_pg_dir as the root; one process with a file mapping, a
 * heap and a stack, one kernel thread. */
#define G32_PAGE_OFFSET 0xc0000000ull
#define G32_LINK        0xc1000000ull       /* _text at link time */
#define G32_IMG         0x200000ull         /* where it runs, physically */
#define G32_VSHIFT      (G32_PAGE_OFFSET + G32_IMG - G32_LINK)   /* -0xe00000 */
#define G32_X_PGD       0x0000u             /* swapper_pg_dir */
#define G32_X_PD        0x1000u             /* PAE: the kernel's PD */
#define G32_X_BANNER    0x2000u
#define G32_X_INIT_TASK 0x3000u
#define G32_SLAB        0x10000ull
/* Made-up 32-bit layouts, declared by the profile below. */
#define T32_STATE 0x08
#define T32_FLAGS 0x0c
#define T32_TASKS 0x10
#define T32_MM 0x18
#define T32_EXIT 0x1c
#define T32_PID 0x20
#define T32_TGID 0x24
#define T32_PARENT 0x28
#define T32_LEADER 0x2c
#define T32_CRED 0x30
#define T32_COMM 0x34
#define T32_SIGNAL 0x44
#define MM32_ROOT 0x04          /* mm_mt at 0: ma_lock, ma_root @4, ma_flags @8 */
#define MM32_PGD 0x20
#define MM32_START_BRK 0x80
#define MM32_BRK 0x84
#define MM32_START_STACK 0x88
#define V32_START 0x00
#define V32_END 0x04
#define V32_MM 0x08
#define V32_FLAGS 0x10
#define V32_OPS 0x20
#define V32_PGOFF 0x24
#define V32_FILE 0x28
#define V32_PRIV 0x2c
#define F32_PATH 0x08           /* mnt @8, dentry @12 */
#define F32_INODE 0x10
#define D32_HASH 0x04           /* pprev @8 */
#define D32_PARENT 0x0c
#define D32_NAME 0x10           /* hash @0x10, len @0x14, name @0x18 */
#define I32_SB 0x10
#define I32_INO 0x20
#define MNT32_PARENT 0x08
#define MNT32_MOUNTPOINT 0x0c
#define MNT32_MNT 0x10

struct g32 {
    uint8_t *mem;
    bool pae;
    uint64_t slab;
    char *json;
    struct isf *isf;
    uint64_t app_dtb, app_data;     /* the process's root and its data page */
};

static uint64_t g32_kva(uint64_t gpa) { return G32_PAGE_OFFSET + gpa; }
static uint64_t g32_pa(uint64_t gva) { return gva - G32_PAGE_OFFSET; }
static void g32_w32(struct g32 *g, uint64_t gva, uint32_t v) { memcpy(g->mem + g32_pa(gva), &v, 4); }
static void g32_wp64(struct g32 *g, uint64_t gpa, uint64_t v) { memcpy(g->mem + gpa, &v, 8); }
static void g32_wp32(struct g32 *g, uint64_t gpa, uint32_t v) { memcpy(g->mem + gpa, &v, 4); }

/* Zeroed slab memory; its kernel (linear-map) address. */
static uint64_t g32_alloc(struct g32 *g, size_t size, size_t align)
{
    uint64_t p = (g->slab + align - 1) & ~(uint64_t)(align - 1);
    assert_true(p + size <= G32_IMG);
    g->slab = p + size;
    return g32_kva(p);
}

static uint64_t g32_str(struct g32 *g, const char *s)
{
    uint64_t va = g32_alloc(g, strlen(s) + 1, 4);
    memcpy(g->mem + g32_pa(va), s, strlen(s) + 1);
    return va;
}

/* Map user page va -> gpa in the root at gpa `root`. */
static void g32_map_user(struct g32 *g, uint64_t root, uint32_t va, uint64_t gpa)
{
    if (g->pae) {
        uint64_t pd = g32_pa(g32_alloc(g, 4096, 4096)), pt = g32_pa(g32_alloc(g, 4096, 4096));
        g32_wp64(g, root + 8 * (va >> 30), pd | 1);
        g32_wp64(g, pd + 8 * ((va >> 21) & 511), pt | 7);
        g32_wp64(g, pt + 8 * ((va >> 12) & 511), gpa | 7);
    } else {
        uint64_t pt = g32_pa(g32_alloc(g, 4096, 4096));
        g32_wp32(g, root + 4 * (va >> 22), (uint32_t)pt | 7);
        g32_wp32(g, pt + 4 * ((va >> 12) & 1023), (uint32_t)gpa | 7);
    }
}

/* The kernel half of a root: PAE PDPT entry 3; 2-level PDE 768 (4 MiB). */
static void g32_map_kernel(struct g32 *g, uint64_t root)
{
    if (g->pae)
        g32_wp64(g, root + 24, (G32_IMG + G32_X_PD) | 1);
    else
        g32_wp32(g, root + 4 * 768, 0x0 | 0x83);
}

static uint64_t g32_task(struct g32 *g, uint64_t init_task, uint32_t pid, uint64_t parent,
                         const char *comm, uint64_t mm, uint32_t uid)
{
    uint64_t t = g32_alloc(g, 0x80, 64), cred = g32_alloc(g, 0x40, 8);
    g32_w32(g, t + T32_PID, pid);
    g32_w32(g, t + T32_TGID, pid);
    g32_w32(g, t + T32_PARENT, (uint32_t)parent);
    g32_w32(g, t + T32_LEADER, (uint32_t)t);
    g32_w32(g, t + T32_CRED, (uint32_t)cred);
    g32_w32(g, t + T32_MM, (uint32_t)mm);
    g32_w32(g, t + T32_STATE, 1);                       /* S */
    g32_w32(g, t + T32_FLAGS, mm ? 0 : 0x00200000);
    memcpy(g->mem + g32_pa(t + T32_COMM), comm, strlen(comm));
    g32_w32(g, cred + 4, uid);
    g32_w32(g, cred + 20, uid);
    /* Append to init_task.tasks. */
    uint64_t head = init_task + T32_TASKS, last;
    uint32_t prev;
    memcpy(&prev, g->mem + g32_pa(head + 4), 4);
    last = prev;
    g32_w32(g, last, (uint32_t)(t + T32_TASKS));
    g32_w32(g, t + T32_TASKS, (uint32_t)head);
    g32_w32(g, t + T32_TASKS + 4, (uint32_t)last);
    g32_w32(g, head + 4, (uint32_t)(t + T32_TASKS));
    return t;
}

static uint64_t g32_vma(struct g32 *g, uint64_t mm, uint32_t start, uint32_t end,
                        uint32_t flags, uint64_t file)
{
    uint64_t v = g32_alloc(g, 0x40, 8);
    g32_w32(g, v + V32_START, start);
    g32_w32(g, v + V32_END, end);
    g32_w32(g, v + V32_MM, (uint32_t)mm);
    g32_w32(g, v + V32_FLAGS, flags);
    g32_w32(g, v + V32_FILE, (uint32_t)file);
    return v;
}

static void g32_profile(struct g32 *g)
{
    struct fg_json j = {0};
    bool ft = true, ff;
#define P32(t) "{\"kind\":\"pointer\",\"subtype\":{\"kind\":\"struct\",\"name\":\"" t "\"}}"
    fj(&j, "{\"metadata\":{\"format\":\"6.2.0\"},\"base_types\":{");
    fj(&j, "\"char\":{\"size\":1,\"signed\":true,\"kind\":\"char\",\"endian\":\"little\"},"
           "\"int\":{\"size\":4,\"signed\":true,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"unsigned int\":{\"size\":4,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"unsigned char\":{\"size\":1,\"signed\":false,\"kind\":\"char\",\"endian\":\"little\"},"
           "\"long unsigned int\":{\"size\":4,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"long long unsigned int\":{\"size\":8,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"pointer\":{\"size\":4,\"signed\":false,\"kind\":\"int\",\"endian\":\"little\"},"
           "\"void\":{\"size\":0,\"signed\":false,\"kind\":\"void\",\"endian\":\"little\"}},");
    fj(&j, "\"user_types\":{");
    fg_type_begin(&j, &ft, "pgd_t", g->pae ? 8 : 4, &ff);
    fg_field(&j, &ff, "pgd", 0, g->pae ? BASE("long long unsigned int") : UL);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "list_head", 8, &ff);
    fg_field(&j, &ff, "next", 0, P32("list_head"));
    fg_field(&j, &ff, "prev", 4, P32("list_head"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "task_struct", 0x80, &ff);
    fg_field(&j, &ff, "__state", T32_STATE, UI);
    fg_field(&j, &ff, "flags", T32_FLAGS, UI);
    fg_field(&j, &ff, "tasks", T32_TASKS, STRUCT("list_head"));
    fg_field(&j, &ff, "mm", T32_MM, P32("mm_struct"));
    fg_field(&j, &ff, "exit_state", T32_EXIT, BASE("int"));
    fg_field(&j, &ff, "pid", T32_PID, BASE("int"));
    fg_field(&j, &ff, "tgid", T32_TGID, BASE("int"));
    fg_field(&j, &ff, "real_parent", T32_PARENT, P32("task_struct"));
    fg_field(&j, &ff, "group_leader", T32_LEADER, P32("task_struct"));
    fg_field(&j, &ff, "real_cred", T32_CRED, P32("cred"));
    fg_field(&j, &ff, "comm", T32_COMM, ARR(16, BASE("char")));
    fg_field(&j, &ff, "signal", T32_SIGNAL, P32("signal_struct"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "cred", 0x40, &ff);
    fg_field(&j, &ff, "uid", 4, UI);
    fg_field(&j, &ff, "euid", 20, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_tree", 12, &ff);
    fg_field(&j, &ff, "ma_root", MM32_ROOT, VPTR);
    fg_field(&j, &ff, "ma_flags", 8, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_metadata", 2, &ff);
    fg_field(&j, &ff, "end", 0, BASE("unsigned char"));
    fg_field(&j, &ff, "gap", 1, BASE("unsigned char"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "maple_range_64", 256, &ff);
    fg_field(&j, &ff, "parent", 0, VPTR);
    fg_field(&j, &ff, "pivot", 4, ARR(31, UL));
    fg_field(&j, &ff, "slot", 128, ARR(32, VPTR));
    fg_field(&j, &ff, "meta", 252, STRUCT("maple_metadata"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "mm_struct", 0xc0, &ff);
    fg_field(&j, &ff, "mm_mt", 0, STRUCT("maple_tree"));
    fg_field(&j, &ff, "pgd", MM32_PGD, P32("pgd_t"));
    fg_field(&j, &ff, "start_brk", MM32_START_BRK, UL);
    fg_field(&j, &ff, "brk", MM32_BRK, UL);
    fg_field(&j, &ff, "start_stack", MM32_START_STACK, UL);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "vm_area_struct", 0x40, &ff);
    fg_field(&j, &ff, "vm_start", V32_START, UL);
    fg_field(&j, &ff, "vm_end", V32_END, UL);
    fg_field(&j, &ff, "vm_mm", V32_MM, P32("mm_struct"));
    fg_field(&j, &ff, "vm_flags", V32_FLAGS, UL);
    fg_field(&j, &ff, "vm_ops", V32_OPS, P32("vm_operations_struct"));
    fg_field(&j, &ff, "vm_pgoff", V32_PGOFF, UL);
    fg_field(&j, &ff, "vm_file", V32_FILE, P32("file"));
    fg_field(&j, &ff, "vm_private_data", V32_PRIV, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "path", 8, &ff);
    fg_field(&j, &ff, "mnt", 0, P32("vfsmount"));
    fg_field(&j, &ff, "dentry", 4, P32("dentry"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "file", 0x20, &ff);
    fg_field(&j, &ff, "f_path", F32_PATH, STRUCT("path"));
    fg_field(&j, &ff, "f_inode", F32_INODE, P32("inode"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "hlist_bl_node", 8, &ff);
    fg_field(&j, &ff, "next", 0, P32("hlist_bl_node"));
    fg_field(&j, &ff, "pprev", 4, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "qstr", 12, &ff);
    fg_field(&j, &ff, "hash", 0, UI);
    fg_field(&j, &ff, "len", 4, UI);
    fg_field(&j, &ff, "name", 8, VPTR);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "dentry", 0x40, &ff);
    fg_field(&j, &ff, "d_hash", D32_HASH, STRUCT("hlist_bl_node"));
    fg_field(&j, &ff, "d_parent", D32_PARENT, P32("dentry"));
    fg_field(&j, &ff, "d_name", D32_NAME, STRUCT("qstr"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "inode", 0x40, &ff);
    fg_field(&j, &ff, "i_sb", I32_SB, P32("super_block"));
    fg_field(&j, &ff, "i_ino", I32_INO, UL);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "super_block", 0x20, &ff);
    fg_field(&j, &ff, "s_dev", 8, UI);
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "vfsmount", 0x10, &ff);
    fg_field(&j, &ff, "mnt_root", 0, P32("dentry"));
    fj(&j, "}}");
    fg_type_begin(&j, &ft, "mount", 0x40, &ff);
    fg_field(&j, &ff, "mnt_parent", MNT32_PARENT, P32("mount"));
    fg_field(&j, &ff, "mnt_mountpoint", MNT32_MOUNTPOINT, P32("dentry"));
    fg_field(&j, &ff, "mnt", MNT32_MNT, STRUCT("vfsmount"));
    fj(&j, "}}");
    fj(&j, "},\"enums\":{},\"symbols\":{");
    uint8_t banner[sizeof FG_BANNER + 1];
    memcpy(banner, FG_BANNER, sizeof FG_BANNER);
    char b64[2 * sizeof banner + 8];
    fg_b64(banner, sizeof FG_BANNER, b64);
    fj(&j, "\"_text\":{\"address\":%llu},", (unsigned long long)G32_LINK);
    fj(&j, "\"linux_banner\":{\"address\":%llu,\"constant_data\":\"%s\"},",
       (unsigned long long)(G32_LINK + G32_X_BANNER), b64);
    fj(&j, "\"swapper_pg_dir\":{\"address\":%llu},", (unsigned long long)(G32_LINK + G32_X_PGD));
    fj(&j, "\"init_task\":{\"address\":%llu}", (unsigned long long)(G32_LINK + G32_X_INIT_TASK));
    fj(&j, "}}");
#undef P32
    g->json = j.p;
    char err[256];
    g->isf = isf_load_buffer(j.p, j.len, "fake32.json", err, sizeof err);
    if (!g->isf)
        fail_msg("fake32 ISF: %s", err);
}

static void g32_build(struct g32 *g, bool pae)
{
    memset(g, 0, sizeof *g);
    g->mem = calloc(1, FG_MEM);
    assert_non_null(g->mem);
    g->pae = pae;
    g->slab = G32_SLAB;
    const uint64_t I = G32_IMG;
    /* swapper_pg_dir: the linear map of all 4 MiB at PAGE_OFFSET. */
    g32_map_kernel(g, I + G32_X_PGD);
    if (pae) {
        g32_wp64(g, I + G32_X_PD + 0, 0x000000 | 0x83);         /* 2 MiB pages */
        g32_wp64(g, I + G32_X_PD + 8, 0x200000 | 0x83);
    }
    memcpy(g->mem + I + G32_X_BANNER, FG_BANNER, sizeof FG_BANNER);
    /* The printk log's copy, lower down: to be skipped. */
    memcpy(g->mem + 0x8123, FG_BANNER, sizeof FG_BANNER - 2);

    uint64_t it = g32_kva(I + G32_X_INIT_TASK);
    g32_w32(g, it + T32_TASKS, (uint32_t)(it + T32_TASKS));
    g32_w32(g, it + T32_TASKS + 4, (uint32_t)(it + T32_TASKS));
    g32_w32(g, it + T32_PARENT, (uint32_t)it);
    g32_w32(g, it + T32_LEADER, (uint32_t)it);
    g32_w32(g, it + T32_FLAGS, 0x00200000);
    memcpy(g->mem + g32_pa(it + T32_COMM), "swapper/0", 10);

    /* The process: its root (PAE: a 32-byte PDPT from a slab, as Linux's
     * pgd_cache gives; 2-level: a page) maps the kernel like swapper_pg_dir
     * and one user page holding a marker. */
    uint64_t pgd = pae ? g32_alloc(g, 32, 32) : g32_alloc(g, 4096, 4096);
    g->app_dtb = g32_pa(pgd);
    g32_map_kernel(g, g->app_dtb);
    g->app_data = g32_pa(g32_alloc(g, 4096, 4096));
    memcpy(g->mem + g->app_data + 0x10, "user page", 10);
    g32_map_user(g, g->app_dtb, 0x08048000u, g->app_data);

    /* A file /bin/x (ino 53 on dev 0:2) under the root mount. */
    uint64_t root = g32_alloc(g, 0x40, 8), mnt = g32_alloc(g, 0x40, 8);
    g32_w32(g, root + D32_PARENT, (uint32_t)root);
    g32_w32(g, root + D32_NAME + 4, 1);
    g32_w32(g, root + D32_NAME + 8, (uint32_t)g32_str(g, "/"));
    g32_w32(g, mnt + MNT32_PARENT, (uint32_t)mnt);
    g32_w32(g, mnt + MNT32_MOUNTPOINT, (uint32_t)root);
    g32_w32(g, mnt + MNT32_MNT, (uint32_t)root);
    uint64_t bin = g32_alloc(g, 0x40, 8), x = g32_alloc(g, 0x40, 8);
    g32_w32(g, bin + D32_PARENT, (uint32_t)root);
    g32_w32(g, bin + D32_NAME + 4, 3);
    g32_w32(g, bin + D32_NAME + 8, (uint32_t)g32_str(g, "bin"));
    g32_w32(g, bin + D32_HASH + 4, (uint32_t)(bin + 0x30));        /* hashed */
    g32_w32(g, x + D32_PARENT, (uint32_t)bin);
    g32_w32(g, x + D32_NAME + 4, 1);
    g32_w32(g, x + D32_NAME + 8, (uint32_t)g32_str(g, "x"));
    g32_w32(g, x + D32_HASH + 4, (uint32_t)(x + 0x30));
    uint64_t sb = g32_alloc(g, 0x20, 8), ino = g32_alloc(g, 0x40, 8), file = g32_alloc(g, 0x20, 8);
    g32_w32(g, sb + 8, 2);
    g32_w32(g, ino + I32_SB, (uint32_t)sb);
    g32_w32(g, ino + I32_INO, 53);
    g32_w32(g, file + F32_PATH, (uint32_t)(mnt + MNT32_MNT));
    g32_w32(g, file + F32_PATH + 4, (uint32_t)x);
    g32_w32(g, file + F32_INODE, (uint32_t)ino);

    /* mm: a maple tree of one leaf (maple_leaf_64) holding three VMAs. */
    uint64_t mm = g32_alloc(g, 0xc0, 64);
    g32_w32(g, mm + MM32_PGD, (uint32_t)pgd);
    g32_w32(g, mm + MM32_START_BRK, 0x0804a000u);
    g32_w32(g, mm + MM32_BRK, 0x0806b000u);
    g32_w32(g, mm + MM32_START_STACK, 0xbf820f00u);
    uint64_t v1 = g32_vma(g, mm, 0x08048000u, 0x08049000u, 0x5, file);
    uint64_t v2 = g32_vma(g, mm, 0x0804a000u, 0x0806b000u, 0x3, 0);
    uint64_t v3 = g32_vma(g, mm, 0xbf800000u, 0xbf821000u, 0x3, 0);
    uint64_t node = g32_alloc(g, 256, 256);
    g32_w32(g, node, (uint32_t)(mm | 1));                 /* parent: the tree */
    uint32_t piv[] = {0x08047fffu, 0x08048fffu, 0x08049fffu, 0x0806afffu, 0xbf7fffffu,
                      0xbf820fffu};
    uint64_t slot[] = {0, v1, 0, v2, 0, v3, 0};
    for (unsigned i = 0; i < 6; i++)
        g32_w32(g, node + 4 + 4 * i, piv[i]);
    for (unsigned i = 0; i < 7; i++)
        g32_w32(g, node + 128 + 4 * i, (uint32_t)slot[i]);
    g->mem[g32_pa(node + 252)] = 6;                     /* meta.end */
    g32_w32(g, mm + MM32_ROOT, (uint32_t)(node | (1u << 3) | 4 | 2));

    g32_task(g, it, 1, it, "init32", mm, 1000);
    g32_task(g, it, 2, it, "kthreadd", 0, 0);
    g32_profile(g);
}

static struct vm *g32_vm(struct g32 *g, uint64_t cr3)
{
    struct fg_drv *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->mem = g->mem;
    d->range = (struct vmem_range){0, FG_MEM, VMEM_RANGE_RAM};
    if (cr3) {
        d->nvcpu = 1;
        d->vcpu.valid = VMEM_VCPU_CRS;
        d->vcpu.cr0 = 0x80050033;
        d->vcpu.cr3 = cr3;
        d->vcpu.cr4 = g->pae ? 0x6b0 : 0x690;           /* PAE, or PSE only */
    }
    struct vm_options o;
    vm_options_default(&o);
    char err[256];
    struct vm *vm = vm_new("fake32", "fake:", (struct vmem_driver){&fg_ops, d, VMEM_CAP_IMMUTABLE}, &o, err,
                           sizeof err);
    assert_non_null(vm);
    return vm;
}

static void g32_free(struct g32 *g)
{
    isf_free(g->isf);
    free(g->json);
    free(g->mem);
}

static void check_i386(bool pae, uint64_t cr3_off, const char *mode_from)
{
    struct g32 g;
    g32_build(&g, pae);
    const uint64_t dtb = G32_IMG + G32_X_PGD;
    uint64_t cr3 = cr3_off == 1 ? dtb : cr3_off == 2 ? g.app_dtb : 0;
    struct vm *vm = g32_vm(&g, cr3);
    struct vmem_os_options lo = {.isf = g.isf};
    char why[256] = "";
    struct linux_os *os = linux_os_open(vm, &lo, why, sizeof why);
    if (!os)
        fail_msg("open (%s): %s", pae ? "PAE" : "32-bit", why);
    assert_int_equal(linux_os_paging_mode(os), pae ? VMEM_PAGING_PAE : VMEM_PAGING_X86_32);
    assert_int_equal(linux_os_kernel_dtb(os), dtb);
    json_object *o = json_object_new_object();
    linux_os_describe(os, o);
    assert_string_equal(jstr(o, "paging"), pae ? "x86 PAE" : "x86 32-bit");
    assert_string_equal(jstr(o, "paging_from"), mode_from);
    assert_string_equal(jstr(o, "kaslr_virtual_shift"), "-0xe00000");
    assert_string_equal(jstr(o, "kaslr_physical_shift"), "-0xe00000");
    assert_string_equal(jstr(o, "banner_gpa"), "0x202000");      /* not the log copy */
    assert_string_equal(jstr(o, "init_task"), "0xc0203000");
    assert_string_equal(jstr(o, "processes"), "2");
    if (cr3_off == 1)
        assert_non_null(strstr(jstr(o, "cr3_check"), "is the kernel page-table root"));
    else if (cr3_off == 2)
        assert_non_null(strstr(jstr(o, "cr3_check"), "maps the kernel the same way"));
    json_object_put(o);

    struct vmem_procs *t = linux_os_tasks(os);
    assert_non_null(t);
    assert_int_equal(t->n, 2);
    assert_false(t->truncated);
    const struct vmem_proc *init = vmem_procs_find(t, 1), *kt = vmem_procs_find(t, 2);
    assert_non_null(init);
    assert_non_null(kt);
    assert_string_equal(init->comm, "init32");
    assert_int_equal(init->ppid, 0);
    assert_int_equal(init->uid, 1000);
    assert_false(init->kernel_thread);
    assert_int_equal(init->dtb, g.app_dtb);
    assert_true(kt->kernel_thread);
    assert_string_equal(kt->comm, "kthreadd");

    /* The process's space through its root: the user page. */
    struct vmem_phys_reader rd;
    vm_phys_reader(vm, &rd);
    struct vmem_as *as = vmem_as_new(linux_os_paging_mode(os), init->dtb, &rd);
    uint64_t gpa;
    assert_int_equal(vmem_as_translate(as, 0x08048010, &gpa, NULL), 0);
    assert_int_equal(gpa, g.app_data + 0x10);
    assert_int_equal(vmem_as_size(as), 1ull << 32);
    vmem_as_free(as);

    /* maps as an i386 /proc/<pid>/maps: 8-digit addresses, names padded
     * to 25 + 6 * sizeof(void *) - 1 = 48 columns. */
    size_t len;
    char *maps = linux_os_maps(os, init, &len);
    assert_non_null(maps);
    char want[512];
    snprintf(want, sizeof want, "%-48s %s\n%-48s %s\n%-48s %s\n",
             "08048000-08049000 r-xp 00000000 00:02 53 ", "/bin/x",
             "0804a000-0806b000 rw-p 00000000 00:00 0 ", "[heap]",
             "bf800000-bf821000 rw-p 00000000 00:00 0 ", "[stack]");
    assert_string_equal(maps, want);
    free(maps);
    char *st = linux_os_status(os, init, &len);
    assert_non_null(st);
    char dtbline[64];
    snprintf(dtbline, sizeof dtbline, "Dtb:\t0x%" PRIx64 "\n", g.app_dtb);
    assert_non_null(strstr(st, dtbline));
    assert_non_null(strstr(st, "Name:\tinit32\n"));
    free(st);
    maps = linux_os_maps(os, kt, &len);
    assert_int_equal(len, 0);
    free(maps);
    linux_tasks_put(os, t);
    linux_os_close(os);
    vm_put(vm);
    g32_free(&g);
}

static void test_i386_pae(void **state)
{
    (void)state;
    check_i386(true, 1, "vCPU CR4.PAE");
    check_i386(true, 2, "vCPU CR4.PAE");
    check_i386(true, 0, "the profile's pgd_t size");
}

static void test_i386_2level(void **state)
{
    (void)state;
    check_i386(false, 1, "vCPU CR4.PAE");
    check_i386(false, 0, "the profile's pgd_t size");
}

/* A wrong-layout maple leaf and a task list into the middle of a task
 * (misaligned): the walks stop, bounded, with what they had. */
static void test_i386_hostile(void **state)
{
    (void)state;
    struct g32 g;
    g32_build(&g, true);
    struct vm *vm = g32_vm(&g, 0);
    struct vmem_os_options lo = {.isf = g.isf};
    char why[256] = "";
    struct linux_os *os = linux_os_open(vm, &lo, why, sizeof why);
    if (!os)
        fail_msg("open: %s", why);
    struct vmem_procs *t = linux_os_tasks(os);
    const struct vmem_proc *init = vmem_procs_find(t, 1);
    assert_non_null(init);
    /* The leaf's parent names another tree: stale, skipped. */
    uint64_t root;
    memcpy(&root, g.mem + g32_pa(init->mm_gva + MM32_ROOT), 4);
    root &= 0xffffffffull;
    uint64_t node = root & ~0xffull;
    g32_w32(&g, node, (uint32_t)(init->mm_gva + 0x1000) | 1);
    size_t len;
    char *maps = linux_os_maps(os, init, &len);
    assert_non_null(maps);
    assert_int_equal(len, 0);
    free(maps);
    linux_tasks_put(os, t);
    /* kthreadd's tasks.next points 2 bytes into itself. */
    const uint64_t kt_tasks = g32_kva(G32_IMG + G32_X_INIT_TASK) + T32_TASKS;
    uint32_t last;
    memcpy(&last, g.mem + g32_pa(kt_tasks + 4), 4);      /* init_task.tasks.prev */
    g32_w32(&g, last, last + 2);
    linux_os_flush(os);
    t = linux_os_tasks(os);
    assert_true(t->truncated);
    assert_int_equal(t->n, 2);
    linux_tasks_put(os, t);
    linux_os_close(os);
    vm_put(vm);
    g32_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_4level),
        cmocka_unit_test(test_open_5level),
        cmocka_unit_test(test_cr3_process),
        cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_modules_loop),
        cmocka_unit_test(test_fds_hostile),
        cmocka_unit_test(test_tasks_duplicate_pid),
        cmocka_unit_test(test_maps_maple),
        cmocka_unit_test(test_maps_mmap_list),
        cmocka_unit_test(test_maps_single_leaf_deleted),
        cmocka_unit_test(test_file_paths),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_tasks_loop_to_middle),
        cmocka_unit_test(test_tasks_self_loop),
        cmocka_unit_test(test_tasks_wild_pointers),
        cmocka_unit_test(test_tasks_absurd_fields),
        cmocka_unit_test(test_maple_self_reference),
        cmocka_unit_test(test_maple_too_deep),
        cmocka_unit_test(test_maple_absurd),
        cmocka_unit_test(test_dentry_cycle),
        cmocka_unit_test(test_mmap_list_loop),
        cmocka_unit_test(test_no_banner),
        cmocka_unit_test(test_banner_only_in_log),
        cmocka_unit_test(test_broken_page_tables),
        cmocka_unit_test(test_symbols_dir),
        cmocka_unit_test(test_many_tasks),
        cmocka_unit_test(test_i386_pae),
        cmocka_unit_test(test_i386_2level),
        cmocka_unit_test(test_i386_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
