/*
 * kmem.c - reads of kernel memory (see internal.h): every pointer checked to be a
 * canonical kernel address before use, every string bounded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"

/* ---- kernel memory ------------------------------------------------------ */

bool lx_is_32bit(const struct linux_os *os)
{
    return os->psize == 4;
}

/* A canonical kernel (upper-half) address of this paging mode; on i386 an
 * address from PAGE_OFFSET up (the top 64 KiB, like x86-64's, excluded:
 * ERR_PTR values live there). */
bool lx_kptr_ok(const struct linux_os *os, uint64_t v)
{
    if (lx_is_32bit(os))
        return v >= os->kptr_lo && v < X86_32_TOP - 0x10000;
    uint64_t lo = os->mode == VMEM_PAGING_X86_64_5L ? 0xff00000000000000ull
                                                    : 0xffff800000000000ull;
    return v >= lo && v < UINT64_MAX - 0xffff;
}

/* TASK_SIZE: the end of user space. */
uint64_t lx_user_limit(const struct linux_os *os)
{
    if (lx_is_32bit(os))
        return os->kptr_lo;
    return os->mode == VMEM_PAGING_X86_64_5L ? (1ull << 56) : (1ull << 47);
}

/* ULONG_MAX of the guest: the maple tree's largest index. */
uint64_t lx_ulong_max(const struct linux_os *os)
{
    return lx_is_32bit(os) ? 0xffffffffull : UINT64_MAX;
}

/* Read len bytes of kernel virtual memory at gva (crossing pages).  0, or
 * -EFAULT (not mapped) / -EIO (no data there or the source failed). */
int lx_kread(struct linux_os *os, uint64_t gva, void *buf, size_t len)
{
    uint8_t *dst = buf;
    while (len) {
        uint64_t gpa, psz;
        int rc = vmem_as_translate(os->kas, gva, &gpa, &psz);
        if (rc < 0)
            return rc == -EFAULT ? -EFAULT : -EIO;
        size_t in_page = (size_t)(psz - (gpa & (psz - 1)));
        size_t n = len < in_page ? len : in_page;
        ssize_t got = vm_read_phys(os->vm, gpa, dst, n, VM_READ_STRICT);
        if (got != (ssize_t)n)
            return -EIO;
        dst += n;
        gva += n;
        len -= n;
    }
    return 0;
}

/* A pointer or an unsigned long of the guest: 8 bytes, or 4 on i386. */
uint64_t lx_ldptr(const struct linux_os *os, const uint8_t *p)
{
    return lx_is_32bit(os) ? vmem_ld_le32(p) : vmem_ld_le64(p);
}

int lx_kreadptr(struct linux_os *os, uint64_t gva, uint64_t *v)
{
    uint8_t b[8];
    int rc = lx_kread(os, gva, b, os->psize);
    if (rc == 0)
        *v = lx_ldptr(os, b);
    return rc;
}

int lx_kread32(struct linux_os *os, uint64_t gva, uint32_t *v)
{
    uint8_t b[4];
    int rc = lx_kread(os, gva, b, 4);
    if (rc == 0)
        *v = vmem_ld_le32(b);
    return rc;
}

/* A field at base+off when both are known: a pointer or (unsigned) long,
 * guest-sized. */
int lx_kfieldptr(struct linux_os *os, uint64_t base, long off, uint64_t *v)
{
    if (off == NONE || !base)
        return -ENOENT;
    return lx_kreadptr(os, base + (uint64_t)off, v);
}

int lx_kfield32(struct linux_os *os, uint64_t base, long off, uint32_t *v)
{
    if (off == NONE || !base)
        return -ENOENT;
    return lx_kread32(os, base + (uint64_t)off, v);
}

/* Read a NUL-terminated string of at most max bytes into out[max+1];
 * bytes are taken as they are (callers escape).  Length, or -errno. */
long lx_kread_str(struct linux_os *os, uint64_t gva, char *out, size_t max)
{
    size_t n = 0;
    while (n < max) {
        size_t chunk = 64 - (size_t)((gva + n) & 63);     /* never past a page */
        if (chunk > max - n)
            chunk = max - n;
        int rc = lx_kread(os, gva + n, out + n, chunk);
        if (rc < 0) {
            out[n] = 0;
            return n ? (long)n : rc;
        }
        void *z = memchr(out + n, 0, chunk);
        if (z)
            return (long)((char *)z - out);
        n += chunk;
    }
    out[n] = 0;
    return (long)n;
}
