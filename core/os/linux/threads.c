/*
 * threads.c - proc/<pid>/threads (see linux.h): every thread of a process
 * with its tid, state and name, from signal->thread_head (thread_node
 * links, 5.x+) or, without those, the leader's thread_group ring.  Bounded
 * (THREADS_MAX) and cycle-safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

static void thread_line(struct linux_os *os, uint64_t task, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint32_t tid = 0, exit_state = 0;
    uint64_t state = 0;
    char comm[17] = "";
    lx_kfield32(os, task, o->task_pid, &tid);
    lx_kfield32(os, task, o->task_exit_state, &exit_state);
    if (o->task_state != NONE) {
        if (o->task_state_size == 8)
            lx_kread(os, task + (uint64_t)o->task_state, &state, 8);
        else {
            uint32_t s32 = 0;
            lx_kfield32(os, task, o->task_state, &s32);
            state = s32;
        }
    }
    if (lx_kread(os, task + (uint64_t)o->task_comm, comm, 16) < 0)
        comm[0] = 0;
    comm[16] = 0;
    for (char *c = comm; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    sb_printf(out, "%u\t%c\t%s\n", tid, lx_state_letter(state, exit_state), comm);
}

char *linux_os_threads(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct sbuf out = {0};
    struct addrset seen = {0};
    uint64_t signal = 0, head = 0, link_off = 0, p = 0;
    bool cut = false;
    if (o->task_thread_node != NONE && o->signal_thread_head != NONE &&
        lx_kfieldptr(os, t->task_gva, o->task_signal, &signal) == 0 &&
        lx_kptr_ok(os, signal)) {
        head = signal + (uint64_t)o->signal_thread_head;
        link_off = (uint64_t)o->task_thread_node;
    } else if (o->task_thread_group != NONE) {
        /* The ring through the leader: the leader first, then the rest. */
        thread_line(os, t->task_gva, &out);
        head = t->task_gva + (uint64_t)o->task_thread_group;
        link_off = (uint64_t)o->task_thread_group;
    } else {
        thread_line(os, t->task_gva, &out);
        return sb_finish(&out, len);
    }
    addrset_add(&seen, head);
    if (lx_kreadptr(os, head, &p) < 0) {
        free(out.p);
        addrset_free(&seen);
        errno = EIO;
        return NULL;
    }
    for (unsigned n = 0; p != head; n++) {
        if (n >= THREADS_MAX || !lx_kptr_ok(os, p) || addrset_add(&seen, p) != 1) {
            cut = true;
            break;
        }
        thread_line(os, p - link_off, &out);
        if (lx_kreadptr(os, p, &p) < 0) {
            cut = true;
            break;
        }
    }
    addrset_free(&seen);
    if (cut)
        sb_printf(&out, "# incomplete: the thread list has a bad link or more than %u "
                  "threads\n", THREADS_MAX);
    return sb_finish(&out, len);
}
