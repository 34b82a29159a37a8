/*
 * os.c - choosing a VM's OS among the implementations built in (see os.h).
 */
#include "core/os/os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/linux.h"

/* Tried in order; the first that recognises its OS wins. */
static const struct vmem_os_ops *const os_impls[] = {
    &linux_os_ops,
};

struct vmem_os *vmem_os_open(struct vm *vm, const struct vmem_os_options *opt,
                             char *why, size_t whylen)
{
    why[0] = 0;
    for (size_t i = 0; i < sizeof os_impls / sizeof os_impls[0]; i++) {
        char one[256] = "";
        void *priv = os_impls[i]->open(vm, opt, one, sizeof one);
        if (priv) {
            struct vmem_os *os = malloc(sizeof *os);
            if (!os) {
                os_impls[i]->close(priv);
                snprintf(why, whylen, "out of memory");
                return NULL;
            }
            os->ops = os_impls[i];
            os->priv = priv;
            return os;
        }
        /* One implementation today: its reason is the reason. */
        size_t at = strlen(why);
        snprintf(why + at, whylen - at, "%s%s", at ? "; " : "", one);
    }
    return NULL;
}

void vmem_os_close(struct vmem_os *os)
{
    if (!os)
        return;
    os->ops->close(os->priv);
    free(os);
}

const struct vmem_proc *vmem_procs_find(const struct vmem_procs *t, uint32_t pid)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->proc[mid].pid == pid)
            return &t->proc[mid];
        if (t->proc[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool vmem_os_proc(struct vmem_os *os, uint32_t pid, struct vmem_proc *out)
{
    struct vmem_procs *t = vmem_os_procs(os);
    if (!t)
        return false;
    const struct vmem_proc *p = vmem_procs_find(t, pid);
    if (p)
        *out = *p;
    vmem_os_procs_put(os, t);
    return p != NULL;
}
