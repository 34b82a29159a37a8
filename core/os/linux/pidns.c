/*
 * pidns.c - hidden processes (see internal.h): the task list
 * (init_task.tasks) against the kernel's pid table (init_pid_ns.idr, an
 * XArray of struct pid, each with tasks[PIDTYPE_PID] naming its task).  A
 * thread-group leader found by only one of them is flagged; one found only
 * in the pid table is added to the process list, so proc/<pid>/ shows it.
 * The XArray is the guest's: node pointers are checked, each node visited
 * once, the depth bounded by the index width, the count by PIDTABLE_MAX.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/util/log.h"

#define XA_DEPTH_MAX 12u                        /* 64-bit index, 6 bits a level */

struct xa_walk {
    struct linux_os *os;
    void (*fn)(void *ctx, uint64_t pid);
    void *ctx;
    struct addrset nodes;
    unsigned visited;
    bool cut;
};

static void xa_entry(struct xa_walk *w, uint64_t entry, unsigned depth)
{
    struct linux_os *os = w->os;
    const struct lx_offsets *o = &os->o;
    if (!entry || (entry & 1))                  /* empty, or a value entry */
        return;
    if ((entry & 3) == 2) {
        if (entry <= 4096)                      /* sibling or retry entry */
            return;
        uint64_t node = entry - 2;
        if (depth >= XA_DEPTH_MAX || !lx_kptr_ok(os, node) ||
            addrset_add(&w->nodes, node) != 1 || ++w->visited > PIDTABLE_MAX) {
            w->cut = true;
            return;
        }
        uint8_t slots[64 * 8];
        unsigned n = o->xa_chunk <= 64 ? o->xa_chunk : 64;
        if (lx_kread(os, node + (uint64_t)o->xa_node_slots, slots, (size_t)n * os->psize) < 0) {
            w->cut = true;
            return;
        }
        for (unsigned i = 0; i < n && !w->cut; i++)
            xa_entry(w, lx_ldptr(os, slots + (size_t)i * os->psize), depth + 1);
        return;
    }
    if (!lx_kptr_ok(os, entry)) {
        w->cut = true;
        return;
    }
    if (++w->visited > PIDTABLE_MAX) {
        w->cut = true;
        return;
    }
    w->fn(w->ctx, entry);
}

bool lx_pidtable_walk(struct linux_os *os, void (*fn)(void *ctx, uint64_t pid), void *ctx)
{
    const struct lx_offsets *o = &os->o;
    uint64_t ns = lx_sym(os, "init_pid_ns"), head = 0;
    if (!ns || o->pidns_idr == NONE || o->xa_head == NONE || o->xa_node_slots == NONE ||
        lx_kreadptr(os, ns + (uint64_t)o->pidns_idr + (uint64_t)o->xa_head, &head) < 0)
        return false;
    struct xa_walk w = {.os = os, .fn = fn, .ctx = ctx};
    xa_entry(&w, head, 0);
    addrset_free(&w.nodes);
    return !w.cut;
}

struct cmp_ctx {
    struct linux_os *os;
    struct vmem_procs *l;
    size_t listed;                              /* entries from the task list */
    bool *found;
    struct addrset leaders;                     /* tasks added already */
    size_t cap;
    bool oom;
};

static int cmp_gva(const void *a, const void *b)
{
    const struct vmem_proc *x = a, *y = b;
    return x->task_gva < y->task_gva ? -1 : x->task_gva > y->task_gva;
}

static void on_pid(void *ctx, uint64_t pid)
{
    struct cmp_ctx *c = ctx;
    struct linux_os *os = c->os;
    const struct lx_offsets *o = &os->o;
    uint64_t first = 0;
    if (lx_kreadptr(os, pid + (uint64_t)o->pid_tasks, &first) < 0 || !lx_kptr_ok(os, first))
        return;                                 /* PIDTYPE_PID unused: reaped */
    uint64_t task = first - (uint64_t)o->task_pid_links;
    uint32_t tid = 0, tgid = 0;
    if (lx_kfield32(os, task, o->task_pid, &tid) < 0 ||
        lx_kfield32(os, task, o->task_tgid, &tgid) < 0 || tid != tgid || !tid)
        return;                                 /* a thread: its leader counts */
    struct vmem_proc key = {.task_gva = task};
    struct vmem_proc *hit = bsearch(&key, c->l->proc, c->listed, sizeof key, cmp_gva);
    if (hit) {
        c->found[hit - c->l->proc] = true;
        return;
    }
    if (addrset_add(&c->leaders, task) != 1)
        return;
    struct vmem_proc t;
    if (!lx_read_task(os, task, &t))
        return;
    if (c->l->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        struct vmem_proc *nt = realloc(c->l->proc, ncap * sizeof *nt);
        if (!nt) {
            c->oom = true;
            return;
        }
        c->l->proc = nt;
        c->cap = ncap;
    }
    t.flags |= LINUX_TASK_HIDDEN_FROM_LIST | VMEM_PROC_HIDDEN;
    c->l->proc[c->l->n++] = t;
    vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': pid %u ('%s', task 0x%" PRIx64 ") is in "
                         "the pid table but not in the task list: hidden?",
                         vm_name(os->vm), t.pid, t.comm, task);
}

int lx_pidtable_compare(struct linux_os *os, struct vmem_procs *l)
{
    const struct lx_offsets *o = &os->o;
    if (o->pid_tasks == NONE || o->task_pid_links == NONE || !lx_sym(os, "init_pid_ns"))
        return -1;
    if (!l->proc)
        return 0;
    struct cmp_ctx c = {.os = os, .l = l, .listed = l->n, .cap = l->n};
    c.found = calloc(l->n + 1, sizeof *c.found);
    if (!c.found)
        return 0;
    qsort(l->proc, l->n, sizeof *l->proc, cmp_gva);
    bool whole = lx_pidtable_walk(os, on_pid, &c);
    if (!whole)
        vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': the pid table (init_pid_ns.idr) "
                             "could not be read whole (a bad node, a loop or a bound): "
                             "no process is flagged as missing from it", vm_name(os->vm));
    /* Only a table read whole can say a process is missing from it. */
    for (size_t i = 0; whole && !l->truncated && i < c.listed; i++)
        if (!c.found[i])
            l->proc[i].flags |= LINUX_TASK_NOT_IN_PID_TABLE | VMEM_PROC_HIDDEN;
    free(c.found);
    addrset_free(&c.leaders);
    return whole && !c.oom;
}
