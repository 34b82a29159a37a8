/*
 * tasks.c - the task list walk (see internal.h): bounded, cycle-safe, threads
 * folded into their group; snapshots counted and refreshed on live guests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"

/* ---- tasks --------------------------------------------------------------- */

/* fs/proc/array.c task_state_array, indexed as task_state_index() does. */
static const char *const state_names[] = {
    "R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
    "t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)", "I (idle)",
};

char lx_state_letter(uint64_t state, uint32_t exit_state)
{
    const uint64_t TASK_REPORT = 0x7f, TASK_IDLE = 0x402, TASK_RTLOCK_WAIT = 0x1000;
    uint64_t s = (state | exit_state) & TASK_REPORT;
    if (state == TASK_IDLE)
        s = TASK_REPORT + 1;
    else if (state == TASK_RTLOCK_WAIT)
        s = 2;
    unsigned idx = 0;
    while (s) {
        idx++;
        s >>= 1;
    }
    return state_names[idx][0];
}

const char *lx_state_name(char letter)
{
    for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
        if (state_names[i][0] == letter)
            return state_names[i];
    return "? (unknown)";
}

static void sanitize_comm(const char *in, char out[17])
{
    size_t i = 0;
    for (; i < 16 && in[i]; i++)
        out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[i] = 0;
}

/* One task_struct at gva into t.  False when its block cannot be read. */
bool lx_read_task(struct linux_os *os, uint64_t gva, struct vmem_proc *t)
{
    const struct lx_offsets *o = &os->o;
    long fields[] = { o->task_pid, o->task_tgid, o->task_comm + 16, o->task_mm + 8,
                      o->task_state, o->task_exit_state, o->task_flags,
                      o->task_real_parent, o->task_real_cred, o->task_signal };
    long lo = o->task_comm, hi = o->task_comm + 16;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i] == NONE)
            continue;
        if (fields[i] < lo)
            lo = fields[i];
        if (fields[i] + 8 > hi)
            hi = fields[i] + 8;
    }
    if (hi - lo > (long)TASK_BLOCK_MAX)
        return false;
    uint8_t blk[TASK_BLOCK_MAX];
    if (lx_kread(os, gva + (uint64_t)lo, blk, (size_t)(hi - lo)) < 0)
        return false;
#define AT(off) (blk + ((off) - lo))
    memset(t, 0, sizeof *t);
    t->task_gva = gva;
    uint32_t pid = vmem_ld_le32(AT(o->task_pid)), tgid = vmem_ld_le32(AT(o->task_tgid));
    t->pid = tgid ? tgid : pid;
    char comm[17];
    memcpy(comm, AT(o->task_comm), 16);
    comm[16] = 0;
    sanitize_comm(comm, t->comm);
    uint64_t state = 0;
    if (o->task_state != NONE)
        state = o->task_state_size == 8 ? vmem_ld_le64(AT(o->task_state)) : vmem_ld_le32(AT(o->task_state));
    uint32_t exit_state = o->task_exit_state != NONE ? vmem_ld_le32(AT(o->task_exit_state)) : 0;
    t->state = lx_state_letter(state, exit_state);
    uint32_t flags = o->task_flags != NONE ? vmem_ld_le32(AT(o->task_flags)) : 0;
    uint64_t mm = lx_ldptr(os, AT(o->task_mm));
    uint64_t parent = o->task_real_parent != NONE ? lx_ldptr(os, AT(o->task_real_parent)) : 0;
    uint64_t cred = o->task_real_cred != NONE ? lx_ldptr(os, AT(o->task_real_cred)) : 0;
    uint64_t signal = o->task_signal != NONE ? lx_ldptr(os, AT(o->task_signal)) : 0;
#undef AT
    uint32_t v;
    if (lx_kptr_ok(os, parent) && lx_kfield32(os, parent, o->task_tgid, &v) == 0)
        t->ppid = v;
    if (lx_kptr_ok(os, cred)) {
        if (lx_kfield32(os, cred, o->cred_uid, &v) == 0)
            t->uid = v;
        if (lx_kfield32(os, cred, o->cred_euid, &v) == 0)
            t->euid = v;
    }
    t->nthreads = 1;
    if (lx_kptr_ok(os, signal) && lx_kfield32(os, signal, o->signal_nr_threads, &v) == 0 &&
        v >= 1 && v < (1u << 22)) {
        t->nthreads = v;                 /* what /proc's Threads: shows */
    } else if (o->task_thread_group != NONE) {
        /* Count the thread_group ring; a ring that does not come back to
         * its head within the bound (a loop into its middle) stops there. */
        uint64_t head = gva + (uint64_t)o->task_thread_group, p = 0;
        unsigned n = 1;
        if (lx_kreadptr(os, head, &p) == 0)
            while (p != head && n < THREADS_MAX && lx_kptr_ok(os, p) &&
                   lx_kreadptr(os, p, &p) == 0)
                n++;
        t->nthreads = n;
    }
    t->kernel_thread = !lx_kptr_ok(os, mm) || (flags & PF_KTHREAD);
    if (!t->kernel_thread) {
        uint64_t pgd, gpa;
        t->mm_gva = mm;
        if (lx_kfieldptr(os, mm, o->mm_pgd, &pgd) == 0 && lx_kptr_ok(os, pgd) &&
            vmem_as_translate(os->kas, pgd, &gpa, NULL) == 0)
            t->dtb = gpa;
    }
    return true;
}

static int cmp_task(const void *a, const void *b)
{
    const struct vmem_proc *x = a, *y = b;
    return x->pid < y->pid ? -1 : x->pid > y->pid ? 1 :
           x->task_gva < y->task_gva ? -1 : x->task_gva > y->task_gva;
}

/* Walk init_task.tasks: bounded, cycle-safe. */
static struct snap *walk_tasks(struct linux_os *os)
{
    struct snap *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->taken_ns = lx_now_ns();
    size_t cap = 256;
    s->pub.proc = malloc(cap * sizeof *s->pub.proc);
    if (!s->pub.proc) {
        free(s);
        return NULL;
    }
    struct addrset seen = {0}, pids = {0};
    uint32_t dup_pid = 0;
    const uint64_t off = (uint64_t)os->o.task_tasks;
    const uint64_t head = os->init_task + off;
    uint64_t next = 0;
    addrset_add(&seen, head);
    if (lx_kreadptr(os, head, &next) < 0)
        s->pub.truncated = true;
    else {
        for (unsigned n = 0;; n++) {
            if (next == head)
                break;
            if (n >= TASKS_MAX || !lx_kptr_ok(os, next) || (next & (os->psize - 1)) ||
                addrset_add(&seen, next) != 1) {
                s->pub.truncated = true;
                break;
            }
            struct vmem_proc t;
            if (!lx_read_task(os, next - off, &t)) {
                s->pub.truncated = true;
                break;
            }
            /* A pid listed twice (a hostile or torn list) would show twice
             * in proc/: the first one walked stays, flagged. */
            int fresh = t.pid != 0 ? addrset_add(&pids, t.pid) : 0;
            if (fresh == 0 && t.pid != 0) {
                dup_pid = dup_pid ? dup_pid : t.pid;
                for (size_t k = 0; k < s->pub.n; k++)
                    if (s->pub.proc[k].pid == t.pid)
                        s->pub.proc[k].flags |= VMEM_PROC_DUPLICATE;
            }
            if (fresh == 1) {          /* /proc does not show the idle task */
                if (s->pub.n == cap) {
                    struct vmem_proc *nt = realloc(s->pub.proc, cap * 2 * sizeof *nt);
                    if (!nt) {
                        s->pub.truncated = true;
                        break;
                    }
                    s->pub.proc = nt;
                    cap *= 2;
                }
                s->pub.proc[s->pub.n++] = t;
            }
            if (lx_kreadptr(os, next, &next) < 0) {
                s->pub.truncated = true;
                break;
            }
        }
    }
    addrset_free(&seen);
    addrset_free(&pids);
    if (dup_pid)
        vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': the task list names pid %u "
                             "more than once (a corrupt or hostile list): the "
                             "first one stays", vm_name(os->vm), dup_pid);
    s->pidtable = lx_pidtable_compare(os, &s->pub);
    qsort(s->pub.proc, s->pub.n, sizeof *s->pub.proc, cmp_task);
    if (s->pub.truncated)
        vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': the task list walk stopped "
                             "early after %zu tasks (bad pointer, loop or bound)",
                             vm_name(os->vm), s->pub.n);
    return s;
}

struct vmem_procs *linux_os_tasks(struct linux_os *os)
{
    pthread_mutex_lock(&os->lock);
    struct snap *s = os->snap;
    if (s && !os->immutable && lx_now_ns() - s->taken_ns > os->max_age_ns) {
        os->snap = NULL;
        lx_snap_put(s);
        s = NULL;
    }
    if (!s) {
        if (!os->immutable)
            vmem_as_flush(os->kas);
        s = walk_tasks(os);
        os->snap = s;
    }
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&os->lock);
    return s ? &s->pub : NULL;
}

void linux_tasks_put(struct linux_os *os, struct vmem_procs *t)
{
    (void)os;
    if (t)
        lx_snap_put((struct snap *)((char *)t - offsetof(struct snap, pub)));
}

void linux_os_flush(struct linux_os *os)
{
    pthread_mutex_lock(&os->lock);
    struct snap *s = os->snap;
    os->snap = NULL;
    pthread_mutex_unlock(&os->lock);
    lx_snap_put(s);
    vmem_as_flush(os->kas);
}
