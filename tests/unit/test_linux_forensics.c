/* test_linux_forensics.c - the responder's walkers (issue 11) that read
 * the kernel's own tables, on the synthetic guest of tests/fuzz/
 * fuzz_linux_guest.h with the tables of fuzz_linux_guest_fx.h:
 *
 *   - kernel/dmesg from a printk ring buffer: records as dmesg prints
 *     them; then wild head/tail ids, a huge descriptor count, descriptors
 *     whose text lies outside the data ring, a wild data ring, an absurd
 *     count_bits;
 *   - the pid table (init_pid_ns.idr, an XArray): a process hidden from
 *     the task list and one missing from the table are flagged; then a
 *     node that points to itself, wild node and pid pointers, a chain of
 *     nodes deeper than a 64-bit index allows;
 *   - kernel/net/tcp from the descriptor tables: a listening socket's
 *     line; then a socket file whose socket or sock pointer is wild.
 *
 * Every hostile case must end, bounded, with what could be read and a
 * clear mark that it is partial ("# incomplete: ..." in the text files,
 * "pid_table_complete": false in processes.json), never a crash or hang. */
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
#include <time.h>
#include <cmocka.h>

#include "core/os/linux/linux.h"
#include "core/phys/vm.h"
#include "tests/fuzz/fuzz_linux_guest_fx.h"

struct env {
    struct fg g;
    struct vm *vm;
    struct linux_os *os;
    uint64_t app;
};

/* The base guest (fg_populate's tasks) with this test's profile. */
static void env_build(struct env *e)
{
    memset(e, 0, sizeof *e);
    assert_true(fg_init(&e->g, false, false));
    assert_true(fg_populate(&e->g, &e->app, NULL));
    assert_true(fg_fx_profile(&e->g));
}

static void env_open(struct env *e)
{
    e->vm = fg_vm(&e->g, 0);
    assert_non_null(e->vm);
    struct vmem_os_options lo = {.isf = e->g.isf};
    char why[256] = "";
    e->os = linux_os_open(e->vm, &lo, why, sizeof why);
    if (!e->os)
        fail_msg("open: %s", why);
}

static void env_free(struct env *e)
{
    linux_os_close(e->os);
    vm_put(e->vm);
    fg_fini(&e->g);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- printk ------------------------------------------------------------- */

#define ring fg_ring

static void ring_new(struct env *e, struct ring *r, unsigned count_bits, unsigned size_bits)
{
    assert_true(fg_ring_new(&e->g, r, count_bits, size_bits));
}

static void ring_ids(struct env *e, uint64_t tail, uint64_t head)
{
    fg_ring_ids(&e->g, tail, head);
}

static void ring_add(struct env *e, struct ring *r, uint64_t id, uint64_t ts, const char *text)
{
    fg_ring_add(&e->g, r, id, ts, text);
}

static char *dmesg(struct env *e, size_t *len)
{
    linux_os_flush(e->os);          /* the guest's memory changed under it */
    return linux_os_dmesg(e->os, len);
}

static void test_dmesg(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    struct ring r;
    ring_new(&e, &r, 4, 10);
    ring_add(&e, &r, 100, 1500000000ull, "hello");
    ring_add(&e, &r, 101, 2000001000ull, "two\nlines");
    ring_add(&e, &r, 102, 123456789012345ull, "late");
    ring_ids(&e, 100, 102);
    env_open(&e);
    size_t len;
    char *t = dmesg(&e, &len);
    assert_non_null(t);
    assert_string_equal(t, "[    1.500000] hello\n"
                           "[    2.000001] two\n[    2.000001] lines\n"
                           "[123456.789012] late\n");
    assert_int_equal(len, strlen(t));
    free(t);

    /* A record whose text lies outside the data ring (next far past
     * begin), one whose positions are odd (misaligned), one data-less:
     * each left out and counted; the good one still printed. */
    uint64_t d101 = r.descs + (101 & 15) * FX_DESC_SIZE;
    fg_wv64(&e.g, d101 + 16, fg_rv64(&e.g, d101 + 8) + (1ull << 20));
    uint64_t d102 = r.descs + (102 & 15) * FX_DESC_SIZE;
    fg_wv64(&e.g, d102 + 8, fg_rv64(&e.g, d102 + 8) + 3);
    ring_add(&e, &r, 103, 3000000000ull, "ok");
    uint64_t d103 = r.descs + (103 & 15) * FX_DESC_SIZE;
    ring_add(&e, &r, 104, 4000000000ull, "lost");
    uint64_t d104 = r.descs + (104 & 15) * FX_DESC_SIZE;
    fg_wv64(&e.g, d104 + 8, 1);                     /* FAILED_LPOS */
    fg_wv64(&e.g, d104 + 16, 1);
    ring_ids(&e, 100, 104);
    t = dmesg(&e, &len);
    assert_non_null(t);
    assert_string_equal(t, "[    1.500000] hello\n[    3.000000] ok\n"
                           "# incomplete: 3 records of the printk ring could not be read or "
                           "were being overwritten\n");
    free(t);
    /* A text length past its block: the block's 8 bytes only (its
     * padding NULs shown as spaces), nothing read beyond. */
    fg_wv32(&e.g, r.infos + (103 & 15) * FX_INFO_SIZE + 16, 0xffff);
    (void)d103;
    t = dmesg(&e, &len);
    assert_non_null(strstr(t, "[    3.000000] ok      \n"));
    free(t);
    env_free(&e);
}

/* Head and tail ids far apart (more than a lap), then ids that name no
 * descriptor at all: the newest lap is examined, nothing printed wrong. */
static void test_dmesg_wild_ids(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    struct ring r;
    ring_new(&e, &r, 4, 10);
    ring_add(&e, &r, 7, 1000000ull, "seven");
    ring_add(&e, &r, 8, 2000000ull, "eight");
    env_open(&e);
    ring_ids(&e, 0, 8);                 /* less than a lap: 1..6 name other ids;
                                         * 0's zeroed slot is a reserved record */
    size_t len;
    char *t = dmesg(&e, &len);
    assert_non_null(t);
    assert_string_equal(t, "[    0.001000] seven\n[    0.002000] eight\n"
                           "# incomplete: 6 records of the printk ring could not be read or "
                           "were being overwritten\n");
    free(t);
    ring_ids(&e, 8, 7);                 /* tail after head: a whole lap of ids */
    t = dmesg(&e, &len);
    assert_non_null(t);
    assert_non_null(strstr(t, "# incomplete: "));
    free(t);
    ring_ids(&e, 0x1234567, 0x3fffffffffffff00ull);
    t = dmesg(&e, &len);
    assert_non_null(t);
    assert_true(strncmp(t, "# incomplete: ", 14) == 0);     /* nothing else */
    assert_null(strchr(t, '['));
    free(t);
    env_free(&e);
}

/* The largest descriptor ring the kernel allows (2^24) whose arrays run
 * off the end of RAM, a wild data ring, an absurd count_bits. */
static void test_dmesg_huge_and_wild(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    struct ring r;
    ring_new(&e, &r, 4, 10);
    ring_add(&e, &r, 1, 1000000ull, "one");
    env_open(&e);
    uint64_t rb = fg_kva(FX_X_RB);
    fg_wv32(&e.g, rb + FX_RB_DESC_RING, 24);
    ring_ids(&e, 0, (1ull << 24) - 1);
    double t0 = now_s();
    size_t len;
    char *t = dmesg(&e, &len);
    double dt = now_s() - t0;
    assert_non_null(t);
    assert_non_null(strstr(t, "# incomplete: "));
    assert_non_null(strstr(t, "the walk stopped early"));
    print_message("2^24 descriptors off the end of RAM: %.2f s, %zu bytes\n", dt, len);
    free(t);

    /* 2^20 descriptors from guest-physical 0: page tables, tasks, text as
     * descriptors (garbage, mostly not finalized), until RAM ends. */
    fg_wv32(&e.g, rb + FX_RB_DESC_RING, 20);
    fg_wv64(&e.g, rb + FX_RB_DESC_RING + 8, fg_va(&e.g, 0));
    fg_wv64(&e.g, rb + FX_RB_DESC_RING + 16, fg_va(&e.g, 0));
    ring_ids(&e, 0, (1ull << 20) - 1);
    t0 = now_s();
    t = dmesg(&e, &len);
    dt = now_s() - t0;
    assert_non_null(t);
    assert_non_null(strstr(t, "# incomplete: "));
    print_message("2^20 garbage descriptors: %.2f s, %zu bytes\n", dt, len);
    free(t);
    fg_wv64(&e.g, rb + FX_RB_DESC_RING + 8, r.descs);
    fg_wv64(&e.g, rb + FX_RB_DESC_RING + 16, r.infos);

    fg_wv32(&e.g, rb + FX_RB_DESC_RING, 4);
    ring_ids(&e, 1, 1);
    fg_wv64(&e.g, rb + FX_RB_TEXT_RING + 8, fg_va(&e.g, FG_MEM + 0x10000));   /* not RAM */
    t = dmesg(&e, &len);
    assert_non_null(t);
    assert_string_equal(t, "# incomplete: 1 records of the printk ring could not be read or "
                           "were being overwritten\n");
    free(t);

    fg_wv32(&e.g, rb + FX_RB_DESC_RING, 40);           /* beyond the kernel's limits */
    errno = 0;
    assert_null(dmesg(&e, &len));
    assert_int_equal(errno, EIO);
    fg_wv32(&e.g, rb + FX_RB_DESC_RING, 4);
    fg_wv64(&e.g, fg_kva(FX_X_PRB), 0x1234);           /* prb not a kernel pointer */
    errno = 0;
    assert_null(dmesg(&e, &len));
    assert_int_equal(errno, EIO);
    env_free(&e);
}

/* ---- the pid table ------------------------------------------------------ */

static uint64_t xa_node(struct env *e)
{
    uint64_t n = fg_xa_node(&e->g);
    assert_true(n != 0);
    return n;
}

static uint64_t pid_of(struct env *e, uint64_t t)
{
    uint64_t p = fg_pid_of(&e->g, t);
    assert_true(p != 0);
    return p;
}

static uint64_t task_of(struct env *e, uint32_t pid)
{
    uint64_t t = fg_task_of(&e->g, pid);
    if (!t)
        fail_msg("no task %u", pid);
    return t;
}

static void set_head(struct env *e, uint64_t entry)
{
    fg_pidtable_head(&e->g, entry);
}

struct listing {
    json_object *top;
    int complete;                   /* pid_table_complete: 1, 0, -1 null */
};

static json_object *row_of(struct listing *l, int pid)
{
    json_object *arr = json_object_object_get(l->top, "processes");
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *r = json_object_array_get_idx(arr, i);
        if (json_object_get_int(json_object_object_get(r, "pid")) == pid)
            return r;
    }
    return NULL;
}

static const char *flags_of(struct listing *l, int pid)
{
    static char buf[128];
    json_object *r = row_of(l, pid);
    if (!r)
        return "(absent)";
    json_object *fl = json_object_object_get(r, "flags");
    buf[0] = 0;
    for (size_t i = 0; i < json_object_array_length(fl); i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? " " : "",
                 json_object_get_string(json_object_array_get_idx(fl, i)));
    return buf;
}

static void listing_of(struct env *e, struct listing *l)
{
    linux_os_flush(e->os);
    size_t len;
    char *t = linux_os_processes_json(e->os, &len);
    assert_non_null(t);
    l->top = json_tokener_parse(t);
    free(t);
    assert_non_null(l->top);
    json_object *c = json_object_object_get(l->top, "pid_table_complete");
    l->complete = c ? json_object_get_boolean(c) : -1;
}

static void test_pidtable(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    /* One node, slot i = pid i, for the listed processes but 5; a task
     * that is in the table only (unlinked from the task list: hidden). */
    uint64_t root = xa_node(&e);
    const uint32_t listed[] = {1, 2, 3, 7, 9};
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
        fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * listed[i], pid_of(&e, task_of(&e, listed[i])));
    uint64_t ghost = fg_alloc(&e.g, T_SIZE, 64);
    fg_wv32(&e.g, ghost + T_PID, 11);
    fg_wv32(&e.g, ghost + T_TGID, 11);
    fg_wv64(&e.g, ghost + T_PARENT, task_of(&e, 1));
    fg_wv64(&e.g, ghost + T_LEADER, ghost);
    fg_wv64(&e.g, ghost + T_TASKS, ghost + T_TASKS);
    fg_wv64(&e.g, ghost + T_TASKS + 8, ghost + T_TASKS);
    memcpy(e.g.mem + fg_pa(&e.g, ghost + T_COMM), "rootkitd", 9);
    fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * 11, pid_of(&e, ghost));
    set_head(&e, root | 2);
    env_open(&e);
    struct listing l;
    listing_of(&e, &l);
    assert_int_equal(l.complete, 1);
    assert_string_equal(flags_of(&l, 1), "");
    assert_string_equal(flags_of(&l, 7), "");
    assert_string_equal(flags_of(&l, 5), "not_in_pid_table");
    assert_string_equal(flags_of(&l, 11), "hidden_from_task_list");
    assert_string_equal(json_object_get_string(json_object_object_get(row_of(&l, 11), "name")),
                        "rootkitd");
    json_object_put(l.top);
    struct vmem_procs *t = linux_os_tasks(e.os);
    assert_non_null(vmem_procs_find(t, 11));        /* proc/11/ is there */
    linux_tasks_put(e.os, t);

    /* A slot that points back to its own node: a loop.  The table is not
     * whole, so nobody is said to be missing from it. */
    fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * 40, root | 2);
    listing_of(&e, &l);
    assert_int_equal(l.complete, 0);
    assert_string_equal(flags_of(&l, 5), "");
    assert_string_equal(flags_of(&l, 11), "hidden_from_task_list");   /* found before */
    json_object_put(l.top);

    /* A wild node pointer (canonical, not RAM), then a wild struct pid. */
    fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * 40, fg_va(&e.g, FG_MEM + 0x40000) | 2);
    listing_of(&e, &l);
    assert_int_equal(l.complete, 0);
    json_object_put(l.top);
    fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * 40, 0x4141414141414140ull);   /* user half */
    listing_of(&e, &l);
    assert_int_equal(l.complete, 0);
    assert_string_equal(flags_of(&l, 5), "");
    json_object_put(l.top);
    fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * 40, 0);
    listing_of(&e, &l);
    assert_int_equal(l.complete, 1);
    json_object_put(l.top);
    env_free(&e);
}

/* A chain of nodes, each slot 0 the next: deeper than a 64-bit index
 * allows (12 levels of 6 bits).  Then the same node in every slot of the
 * root, and the root in its own first slot. */
static void test_pidtable_deep(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    uint64_t first = xa_node(&e), n = first;
    for (int d = 0; d < 200; d++) {
        uint64_t m = xa_node(&e);
        fg_wv64(&e.g, n + FX_XA_SLOTS, m | 2);
        n = m;
    }
    fg_wv64(&e.g, n + FX_XA_SLOTS + 8, pid_of(&e, task_of(&e, 1)));
    set_head(&e, first | 2);
    env_open(&e);
    struct listing l;
    listing_of(&e, &l);
    assert_int_equal(l.complete, 0);
    assert_string_equal(flags_of(&l, 1), "");
    json_object_put(l.top);

    uint64_t root = xa_node(&e), child = xa_node(&e);
    for (int i = 0; i < 64; i++)
        fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * (uint64_t)i, child | 2);
    set_head(&e, root | 2);
    listing_of(&e, &l);
    assert_int_equal(l.complete, 0);
    json_object_put(l.top);

    /* The root's first slot is the root. */
    fg_wv64(&e.g, root + FX_XA_SLOTS, root | 2);
    for (int i = 1; i < 64; i++)
        fg_wv64(&e.g, root + FX_XA_SLOTS + 8 * (uint64_t)i, 0);
    listing_of(&e, &l);
    assert_int_equal(l.complete, 0);
    json_object_put(l.top);
    env_free(&e);
}

/* ---- sockets ------------------------------------------------------------ */

static uint64_t sock_file(struct env *e, uint64_t sock_ptr, uint64_t ino)
{
    uint64_t f = fg_sock_file(&e->g, sock_ptr, ino);
    assert_true(f != 0);
    return f;
}

static uint64_t tcp_sock(struct env *e, uint32_t saddr, uint16_t sport, uint8_t state)
{
    uint64_t so = fg_tcp_sock(&e->g, saddr, sport, state);
    assert_true(so != 0);
    return so;
}

static void test_sockets(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    uint64_t arr = fg_files_new(&e.g, e.app, 16, 16);
    assert_true(arr != 0);
    uint64_t so = tcp_sock(&e, 0x0100007f, 7001, 0x0a);
    fg_wv64(&e.g, arr + 3 * 8, sock_file(&e, so, 4242));
    fg_wv64(&e.g, arr + 4 * 8, sock_file(&e, so, 4242));     /* dup(3): listed once */
    env_open(&e);
    static const char header[] =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n";
    static const char line[] =
        "   0: 0100007F:1B59 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  "
        "      0 4242\n";
    size_t len;
    char *t = linux_os_net(e.os, "tcp", &len);
    assert_non_null(t);
    char want[512];
    snprintf(want, sizeof want, "%s%s", header, line);
    assert_string_equal(t, want);
    free(t);
    t = linux_os_net(e.os, "udp", &len);            /* a TCP socket is not UDP's */
    assert_non_null(t);
    assert_null(strchr(t, ':') ? strstr(t, "4242") : NULL);
    free(t);

    /* A socket file whose struct socket is wild, one whose sk is wild
     * (canonical but not RAM), one whose sk is a user address: the good
     * socket is still listed, the file says it is incomplete. */
    fg_wv64(&e.g, arr + 5 * 8, sock_file(&e, 0x1234, 5555));
    uint64_t so2 = tcp_sock(&e, 0x0100007f, 7002, 0x0a);
    fg_wv64(&e.g, so2 + FX_SOCKET_SK, fg_va(&e.g, FG_MEM + 0x80000));
    fg_wv64(&e.g, arr + 6 * 8, sock_file(&e, so2, 5556));
    uint64_t so3 = tcp_sock(&e, 0x0100007f, 7003, 0x0a);
    fg_wv64(&e.g, so3 + FX_SOCKET_SK, 0x7f0000001000ull);
    fg_wv64(&e.g, arr + 7 * 8, sock_file(&e, so3, 5557));
    /* A socket's sock in memory that is not there: its family unreadable. */
    uint64_t so4 = tcp_sock(&e, 0x0100007f, 7004, 0x0a);
    fg_wv64(&e.g, so4 + FX_SOCKET_SK, fg_va(&e.g, FG_MEM - 8));
    fg_wv64(&e.g, arr + 8 * 8, sock_file(&e, so4, 5558));
    linux_os_flush(e.os);
    t = linux_os_net(e.os, "tcp", &len);
    assert_non_null(t);
    snprintf(want, sizeof want, "%s%s# incomplete: 4 sockets could not be read\n", header, line);
    assert_string_equal(t, want);
    free(t);

    /* A descriptor table whose array pointer is wild: cut, said so. */
    uint64_t fs = fg_rv64(&e.g, e.app + T_FILES), fdt = fg_rv64(&e.g, fs + FS_FDT);
    fg_wv64(&e.g, fdt + 8, 0x4141414141414141ull);
    linux_os_flush(e.os);
    t = linux_os_net(e.os, "tcp", &len);
    assert_non_null(t);
    snprintf(want, sizeof want, "%s# incomplete: a descriptor table was cut short; "
             "0 sockets could not be read\n", header);
    assert_string_equal(t, want);
    free(t);
    env_free(&e);
}

/* fuzz_linux.c's starting guest (fg_fx_populate): every table as built. */
static void test_fx_populate(void **state)
{
    (void)state;
    struct env e;
    env_build(&e);
    assert_true(fg_fx_populate(&e.g, e.app));
    env_open(&e);
    size_t len;
    char *t = linux_os_dmesg(e.os, &len);
    assert_non_null(t);
    assert_string_equal(t, "[    1.500000] hello\n[    2.000001] two\n[    2.000001] lines\n"
                           "[    3.000000] three\n");
    free(t);
    struct listing l;
    listing_of(&e, &l);
    assert_int_equal(l.complete, 1);
    for (int pid = 1; pid <= 9; pid++)
        if (row_of(&l, pid))
            assert_string_equal(flags_of(&l, pid), "");
    json_object_put(l.top);
    t = linux_os_net(e.os, "tcp", &len);
    assert_non_null(t);
    assert_non_null(strstr(t, "0100007F:1B59 00000000:0000 0A"));
    assert_null(strstr(t, "# incomplete"));
    free(t);
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dmesg),
        cmocka_unit_test(test_dmesg_wild_ids),
        cmocka_unit_test(test_dmesg_huge_and_wild),
        cmocka_unit_test(test_pidtable),
        cmocka_unit_test(test_pidtable_deep),
        cmocka_unit_test(test_sockets),
        cmocka_unit_test(test_fx_populate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
