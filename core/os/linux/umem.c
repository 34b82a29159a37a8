/*
 * umem.c - reads of a process's own (user) memory through its page tables
 * (see internal.h): what cmdline and environ are made of.  A page that is
 * not present (swapped out, never touched) ends the read there, as the
 * guest's own access_remote_vm would: the caller gets what is before it.
 */
#include <errno.h>
#include <stdint.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"

size_t lx_uread(struct linux_os *os, uint64_t dtb, uint64_t gva, void *buf, size_t len)
{
    if (!dtb || !len || gva >= lx_user_limit(os) || len > lx_user_limit(os) - gva)
        return 0;
    struct vmem_as *as = vmem_as_new(os->mode, dtb, &os->rd);
    if (!as)
        return 0;
    uint8_t *dst = buf;
    size_t done = 0;
    while (done < len) {
        uint64_t gpa, psz;
        if (vmem_as_translate(as, gva + done, &gpa, &psz) < 0)
            break;
        size_t in_page = (size_t)(psz - (gpa & (psz - 1)));
        size_t n = len - done < in_page ? len - done : in_page;
        if (vm_read_phys(os->vm, gpa, dst + done, n, VM_READ_STRICT) != (ssize_t)n)
            break;
        done += n;
    }
    vmem_as_free(as);
    return done;
}
