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
 * counts and lengths, a dentry cycle, a vm_next loop. */
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

#include "core/isf.h"
#include "core/linux.h"
#include "core/vm.h"
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
    struct linux_options lo = {.isf = e->g.isf};
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
    struct linux_tasks *t = linux_os_tasks(e.os);
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
        const struct linux_task *k = &t->task[i];
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
        assert_ptr_equal(linux_tasks_find(t, k->pid), k);
    }
    assert_null(linux_tasks_find(t, 4));
    assert_null(linux_tasks_find(t, 0));
    assert_int_equal(linux_tasks_find(t, 7)->dtb, e.app_dtb);
    assert_int_equal(linux_tasks_find(t, 7)->task_gva, e.app);
    /* A dump is walked once: the same snapshot comes back. */
    struct linux_tasks *t2 = linux_os_tasks(e.os);
    assert_ptr_equal(t, t2);
    linux_tasks_put(e.os, t2);
    /* After a flush the old snapshot stays valid for its holder. */
    linux_os_flush(e.os);
    t2 = linux_os_tasks(e.os);
    assert_ptr_not_equal(t, t2);
    assert_int_equal(t2->n, 6);
    assert_int_equal(t->task[4].pid, 7);
    linux_tasks_put(e.os, t2);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

static char *maps_of(struct env *e, uint32_t pid)
{
    struct linux_tasks *t = linux_os_tasks(e->os);
    const struct linux_task *k = linux_tasks_find(t, pid);
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
    struct linux_tasks *t = linux_os_tasks(e.os);
    const struct linux_task *k = linux_tasks_find(t, 7);
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
    s = linux_os_status(e.os, linux_tasks_find(t, 3), &len);
    assert_non_null(strstr(s, "State:\tI (idle)\n"));
    assert_non_null(strstr(s, "Kthread:\t1\n"));
    free(s);
    s = linux_os_status(e.os, linux_tasks_find(t, 9), &len);
    assert_non_null(strstr(s, "State:\tZ (zombie)\n"));
    free(s);
    linux_tasks_put(e.os, t);
    env_free(&e);
}

/* ---- hostile structures ---------------------------------------------- */

static struct linux_tasks *open_tasks(struct env *e)
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
    struct linux_tasks *t = open_tasks(&e);
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
    struct linux_tasks *t = open_tasks(&e);
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
        struct linux_tasks *t = open_tasks(&e);
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
    struct linux_tasks *t = open_tasks(&e);
    const struct linux_task *k = linux_tasks_find(t, 7);
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
    struct linux_tasks *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, linux_tasks_find(t, 7), &len);
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
    struct linux_tasks *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, linux_tasks_find(t, 30), &len);
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
        struct linux_tasks *t = open_tasks(&e);
        size_t len;
        char *m = linux_os_maps(e.os, linux_tasks_find(t, 7), &len);
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
    struct linux_tasks *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, linux_tasks_find(t, 31), &len);
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
    struct linux_tasks *t = open_tasks(&e);
    size_t len;
    char *m = linux_os_maps(e.os, linux_tasks_find(t, 7), &len);
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
    struct linux_options lo = {.symbols_dir = tmpdir};
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
    lo = (struct linux_options){.profile = path};
    e.os = linux_os_open(e.vm, &lo, why, sizeof why);
    assert_non_null(e.os);
    linux_os_close(e.os);
    e.os = NULL;

    /* Only the other kernel's profile: no match, said so. */
    unlink(path);
    lo = (struct linux_options){.symbols_dir = tmpdir};
    assert_null(linux_os_open(e.vm, &lo, why, sizeof why));
    assert_non_null(strstr(why, "no profile in"));
    assert_non_null(strstr(why, "matches 'Linux version 9.9.9-vmemfs-fake"));
    unlink(other);
    rmdir(sub);
    rmdir(tmpdir);
    free(json);

    /* No profile at all. */
    lo = (struct linux_options){0};
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
    struct linux_tasks *t = open_tasks(&e);
    assert_false(t->truncated);
    assert_int_equal(t->n, 1006);
    for (size_t i = 1; i < t->n; i++)
        assert_true(t->task[i - 1].pid < t->task[i].pid);
    assert_string_equal(linux_tasks_find(t, 777)->comm, "w777");
    linux_tasks_put(e.os, t);
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_4level),
        cmocka_unit_test(test_open_5level),
        cmocka_unit_test(test_cr3_process),
        cmocka_unit_test(test_tasks),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
