/*
 * creds.c - what proc/<pid>/status adds for a responder (see linux.h):
 * memory sizes (task_mem's Vm* and Rss* lines), capabilities, start time,
 * namespaces, and how the process was found (task list, pid table).
 * Each line needs its own members; one the profile lacks, or a structure
 * that cannot be read, leaves its line out rather than print a guess.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES };

static bool mm_ulong(struct linux_os *os, uint64_t mm, long off, uint64_t *v)
{
    return lx_kfieldptr(os, mm, off, v) == 0;
}

static void kb_line(struct sbuf *out, const char *key, uint64_t pages)
{
    sb_printf(out, "%s\t%8" PRIu64 " kB\n", key, pages << 2);   /* 4 KiB pages */
}

void lx_status_mem(struct linux_os *os, const struct vmem_proc *t, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t mm = t->mm_gva, total = 0, hiwater_vm = 0, hiwater_rss = 0, locked = 0,
             pinned = 0, data = 0, stack = 0;
    if (t->kernel_thread || !mm || !mm_ulong(os, mm, o->mm_total_vm, &total))
        return;
    int64_t cnt[4] = {0};
    bool have_rss = o->mm_rss_stat != NONE &&
                    lx_kread(os, mm + (uint64_t)o->mm_rss_stat, cnt, sizeof cnt) == 0;
    if (lx_is_32bit(os) && have_rss)            /* atomic_long_t is 4 bytes there */
        for (int i = 3; i >= 0; i--)
            cnt[i] = (int32_t)((uint32_t *)cnt)[i];
    uint64_t rss[4];
    for (int i = 0; i < 4; i++)
        rss[i] = cnt[i] < 0 ? 0 : (uint64_t)cnt[i];     /* get_mm_counter */
    uint64_t rss_total = rss[MM_FILEPAGES] + rss[MM_ANONPAGES] + rss[MM_SHMEMPAGES];
    if (mm_ulong(os, mm, o->mm_hiwater_vm, &hiwater_vm))
        kb_line(out, "VmPeak:", hiwater_vm > total ? hiwater_vm : total);
    kb_line(out, "VmSize:", total);
    if (mm_ulong(os, mm, o->mm_locked_vm, &locked))
        kb_line(out, "VmLck:", locked);
    if (mm_ulong(os, mm, o->mm_pinned_vm, &pinned))
        kb_line(out, "VmPin:", pinned);
    if (have_rss) {
        if (mm_ulong(os, mm, o->mm_hiwater_rss, &hiwater_rss))
            kb_line(out, "VmHWM:", hiwater_rss > rss_total ? hiwater_rss : rss_total);
        kb_line(out, "VmRSS:", rss_total);
        kb_line(out, "RssAnon:", rss[MM_ANONPAGES]);
        kb_line(out, "RssFile:", rss[MM_FILEPAGES]);
        kb_line(out, "RssShmem:", rss[MM_SHMEMPAGES]);
    }
    if (mm_ulong(os, mm, o->mm_data_vm, &data))
        kb_line(out, "VmData:", data);
    if (mm_ulong(os, mm, o->mm_stack_vm, &stack))
        kb_line(out, "VmStk:", stack);
    if (have_rss)
        kb_line(out, "VmSwap:", rss[MM_SWAPENTS]);
}

static bool ns_inum(struct linux_os *os, uint64_t ns, long ns_off, uint32_t *inum)
{
    const struct lx_offsets *o = &os->o;
    if (!lx_kptr_ok(os, ns) || ns_off == NONE || o->ns_inum == NONE)
        return false;
    return lx_kread32(os, ns + (uint64_t)ns_off + (uint64_t)o->ns_inum, inum) == 0;
}

void lx_status_more(struct linux_os *os, const struct vmem_proc *t, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t cred = 0;
    if (lx_kfieldptr(os, t->task_gva, o->task_real_cred, &cred) == 0 && lx_kptr_ok(os, cred)) {
        const char *names[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
        long offs[] = {o->cred_cap_inh, o->cred_cap_prm, o->cred_cap_eff, o->cred_cap_bnd,
                       o->cred_cap_amb};
        for (int i = 0; i < 5; i++) {
            uint8_t b[8];
            if (offs[i] == NONE || o->cap_size != 8 ||
                lx_kread(os, cred + (uint64_t)offs[i], b, 8) < 0)
                continue;
            /* u32 cap[2] (cap[1] printed first) or one u64: the same bytes. */
            sb_printf(out, "%s:\t%016" PRIx64 "\n", names[i], vmem_ld_le64(b));
        }
    }
    uint64_t start = 0;
    if (o->task_start_boottime != NONE &&
        lx_kread(os, t->task_gva + (uint64_t)o->task_start_boottime, &start, 8) == 0) {
        /* /proc/<pid>/stat's starttime: clock ticks (USER_HZ 100) since boot. */
        sb_printf(out, "StartTicks:\t%" PRIu64 "\n", start / 10000000u);
        sb_printf(out, "StartTime:\t%" PRIu64 ".%09" PRIu64 "\n", start / 1000000000u,
                  start % 1000000000u);
    }
    /* task_active_pid_ns: thread_pid->numbers[level].ns */
    uint64_t pid = 0, pidns = 0, nsproxy = 0, ns = 0;
    uint32_t level = 0, inum;
    if (lx_kfieldptr(os, t->task_gva, o->task_thread_pid, &pid) == 0 && lx_kptr_ok(os, pid) &&
        lx_kfield32(os, pid, o->pid_level, &level) == 0 && level < 32 &&
        o->pid_numbers != NONE && o->upid_ns != NONE &&
        lx_kreadptr(os, pid + (uint64_t)o->pid_numbers + (uint64_t)level * o->upid_size +
                            (uint64_t)o->upid_ns, &pidns) == 0 &&
        ns_inum(os, pidns, o->pidns_ns, &inum))
        sb_printf(out, "PidNs:\t%u\n", inum);
    if (lx_kfieldptr(os, t->task_gva, o->task_nsproxy, &nsproxy) == 0 &&
        lx_kptr_ok(os, nsproxy)) {
        if (lx_kfieldptr(os, nsproxy, o->nsproxy_mnt_ns, &ns) == 0 &&
            ns_inum(os, ns, o->mntns_ns, &inum))
            sb_printf(out, "MntNs:\t%u\n", inum);
        if (lx_kfieldptr(os, nsproxy, o->nsproxy_net_ns, &ns) == 0 &&
            ns_inum(os, ns, o->net_ns, &inum))
            sb_printf(out, "NetNs:\t%u\n", inum);
    }
    if (t->flags & LINUX_TASK_HIDDEN_FROM_LIST)
        sb_printf(out, "Hidden:\tnot in the task list (found in the pid table)\n");
    else if (t->flags & LINUX_TASK_NOT_IN_PID_TABLE)
        sb_printf(out, "Hidden:\tnot in the pid table (found in the task list)\n");
}
