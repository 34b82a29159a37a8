/*
 * cmdline.c - proc/<pid>/cmdline and environ: the bytes between the mm's
 * arg_start/arg_end and env_start/env_end, read from the process's own
 * memory (see linux.h).  The guest's get_mm_cmdline() rules apply: when the
 * last byte of the argument area is not NUL the process rewrote its title
 * (setproctitle), and the first string from arg_start is what counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

static char *read_area(struct linux_os *os, const struct vmem_proc *t, long start_off,
                       long end_off, bool cmdline, size_t *len)
{
    struct sbuf out = {0};
    uint64_t start = 0, end = 0;
    *len = 0;
    if (t->kernel_thread || !t->mm_gva || !t->dtb)
        return sb_finish(&out, len);            /* like /proc: empty */
    if (lx_kfieldptr(os, t->mm_gva, start_off, &start) < 0 ||
        lx_kfieldptr(os, t->mm_gva, end_off, &end) < 0) {
        errno = EIO;                            /* profile or mm unreadable */
        return NULL;
    }
    if (end <= start)
        return sb_finish(&out, len);
    size_t want = end - start > ARGS_MAX ? ARGS_MAX : (size_t)(end - start);
    sb_reserve(&out, want + 1);
    if (out.oom)
        return sb_finish(&out, len);
    size_t got = lx_uread(os, t->dtb, start, out.p, want);
    out.len = got;
    if (cmdline && got == want && want == end - start && out.p[got - 1] != 0) {
        /* get_mm_proctitle: the title is one string from arg_start, which
         * may run on into the environment; at most a page of it. */
        const size_t title = 4096;
        if (got < title) {
            sb_reserve(&out, title - got + 1);
            if (!out.oom)
                out.len += lx_uread(os, t->dtb, start + got, out.p + got, title - got);
        }
        if (!out.oom) {
            size_t lim = out.len < title ? out.len : title;
            char *z = memchr(out.p, 0, lim);
            out.len = z ? (size_t)(z - out.p) + 1 : lim;
        }
    }
    return sb_finish(&out, len);
}

char *linux_os_cmdline(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    return read_area(os, t, os->o.mm_arg_start, os->o.mm_arg_end, true, len);
}

char *linux_os_environ(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    return read_area(os, t, os->o.mm_env_start, os->o.mm_env_end, false, len);
}
