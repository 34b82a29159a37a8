/*
 * io.c - frame access of the qemu driver (see internal.h): the zero-copy
 * mapping where guest RAM is a shared file, otherwise batched
 * process_vm_readv/writev of QEMU's memory, and byte-granular writes.
 */
#include "drivers/qemu/internal.h"

/* ------------------------------------------------------------ batched I/O */


/* One call: process_vm_readv/writev for QEMU's memory, else preadv/pwritev
 * on the RAM file (or on /proc/PID/mem), one call per contiguous remote
 * run.  Returns bytes moved or -errno. */
static ssize_t io_call(struct qemu_src *s, int fd, const struct iovec *l, size_t nl,
                       const struct iovec *r, size_t nr, bool write)
{
    if (fd < 0 && s->pidfd >= 0) {
        ssize_t n = write ? process_vm_writev(s->pid, l, nl, r, nr, 0)
                          : process_vm_readv(s->pid, l, nl, r, nr, 0);
        return n < 0 ? -errno : n;
    }
    /* Without a pidfd the pid could be reused after QEMU exits; the
     * /proc/PID/mem file stays bound to QEMU's memory. */
    if (fd < 0)
        fd = s->memfd;
    if (fd < 0)
        return -ENODEV;
    size_t total = 0;
    size_t li = 0, loff = 0;
    for (size_t ri = 0; ri < nr; ri++) {
        /* The local iovecs that make up remote run ri. */
        struct iovec part[QEMU_IOV_MAX];
        size_t np = 0, need = r[ri].iov_len;
        while (need && li < nl && np < QEMU_IOV_MAX) {
            size_t take = l[li].iov_len - loff;
            if (take > need)
                take = need;
            part[np].iov_base = (uint8_t *)l[li].iov_base + loff;
            part[np].iov_len = take;
            np++;
            need -= take;
            loff += take;
            if (loff == l[li].iov_len) {
                li++;
                loff = 0;
            }
        }
        ssize_t n = write ? pwritev(fd, part, (int)np, (off_t)(uintptr_t)r[ri].iov_base)
                          : preadv(fd, part, (int)np, (off_t)(uintptr_t)r[ri].iov_base);
        if (n < 0)
            return total ? (ssize_t)total : -errno;
        total += (size_t)n;
        if ((size_t)n < r[ri].iov_len)
            return n == 0 && total == 0 ? -EIO : (ssize_t)total;
    }
    return (ssize_t)total;
}

/* Move xfers that all have the same target (x[0].fd); set each status. */
void qs_io_xfer(struct qemu_src *s, struct xfer *x, size_t n, bool write)
{
    size_t i = 0;
    int fd = n ? x[0].fd : -1;
    bool proc = fd < 0;
    while (i < n) {
        if (proc && qs_proc_gone(s)) {
            for (; i < n; i++)
                *x[i].status = -EIO;
            return;
        }
        struct iovec l[QEMU_IOV_MAX], r[QEMU_IOV_MAX];
        size_t nl = 0, nr = 0, j = i;
        while (j < n && nl < QEMU_IOV_MAX) {
            if (nr > 0 && (uint8_t *)r[nr - 1].iov_base + r[nr - 1].iov_len ==
                              (uint8_t *)(uintptr_t)x[j].raddr) {
                r[nr - 1].iov_len += x[j].len;
            } else {
                if (nr == QEMU_IOV_MAX)
                    break;
                r[nr].iov_base = (void *)(uintptr_t)x[j].raddr;
                r[nr].iov_len = x[j].len;
                nr++;
            }
            l[nl].iov_base = x[j].buf;
            l[nl].iov_len = x[j].len;
            nl++;
            j++;
        }
        ssize_t got = io_call(s, fd, l, nl, r, nr, write);
        if (proc && (got == -ESRCH || got == -ENODEV)) {
            atomic_store(&s->gone, true);
            continue;               /* marks the rest -EIO above */
        }
        if (got == -EPERM || got == -EACCES) {
            for (; i < j; i++)      /* not allowed: no use retrying */
                *x[i].status = (int)got;
            continue;
        }
        if (got < 0) {
            /* The first xfer failed (EFAULT: not mapped any more, EIO...). */
            *x[i].status = -EIO;
            i++;
            continue;
        }
        size_t done = 0, first = i;
        while (i < j && done + x[i].len <= (size_t)got) {
            done += x[i].len;
            *x[i].status = VMEM_FRAME_OK;
            i++;
        }
        /* A short transfer stopped at xfer i: the next round retries from
         * there; if nothing at all moved, xfer i is the bad one. */
        if (i == first && i < j) {
            *x[i].status = -EIO;
            i++;
        }
    }
    /* Data read from a pid that no longer names QEMU is not QEMU's. */
    if (proc && s->pidfd >= 0 && qs_proc_gone(s))
        for (size_t k = 0; k < n; k++)
            *x[k].status = -EIO;
}

/* Read or write one span (validation, partial frames). */
int qs_io_span(struct qemu_src *s, int fd, uint64_t raddr, void *buf, size_t len,
                   bool write)
{
    int st = -EIO;
    struct xfer x = {.fd = fd, .raddr = raddr, .buf = buf, .len = len, .status = &st};
    qs_io_xfer(s, &x, 1, write);
    return st;
}

/* Run a batch whose xfers have mixed targets: each run of equal targets
 * in one go. */
static void io_batch(struct qemu_src *s, struct xfer *x, size_t n, bool write)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && x[j].fd == x[i].fd)
            j++;
        qs_io_xfer(s, x + i, j - i, write);
        i = j;
    }
}

/* ----------------------------------------------------------- frame access */

const struct qemu_layout *qs_cur_layout(struct qemu_src *s)
{
    return atomic_load_explicit(&s->layout, memory_order_acquire);
}

/* The segment of L holding gpa, or NULL; *idx its index. */
static const struct qemu_ram_seg *seg_find(const struct qemu_layout *L, uint64_t gpa,
                                           size_t *idx)
{
    size_t lo = 0, hi = L->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct qemu_ram_seg *g = &L->segs[mid];
        if (g->gpa + g->len <= gpa)
            lo = mid + 1;
        else if (g->gpa > gpa)
            hi = mid;
        else {
            *idx = mid;
            return g;
        }
    }
    return NULL;
}

int qemu_ranges(void *drv, const struct vmem_range **out, size_t *n)
{
    const struct qemu_layout *L = qs_cur_layout(drv);
    *out = L->ranges;
    *n = L->nsegs;
    return 0;
}

void *qemu_map(void *drv, uint64_t gpa, size_t len)
{
    const struct qemu_layout *L = qs_cur_layout(drv);
    size_t i;
    const struct qemu_ram_seg *g = seg_find(L, gpa, &i);
    if (!g || len > g->gpa + g->len - gpa || !L->io[i].map)
        return NULL;
    uint8_t *p = L->io[i].map + (gpa - g->gpa);
    /* Only pages the file already has: touching a hole of a tmpfs file
     * through a shared mapping would allocate it (a 4 GiB guest that used
     * 200 MiB would cost 4 GiB once read).  Those read through the file
     * (read_frames), where holes read as zeros and stay holes. */
    uintptr_t a0 = (uintptr_t)p & ~(uintptr_t)(VMEM_PAGE_SIZE - 1);
    size_t span = (size_t)((uintptr_t)p + len - a0);
    size_t npages = (span + VMEM_PAGE_SIZE - 1) / VMEM_PAGE_SIZE;
    unsigned char small[512], *vec = npages <= sizeof small ? small : malloc(npages);
    if (!vec)
        return NULL;
    bool resident = mincore((void *)a0, npages * VMEM_PAGE_SIZE, vec) == 0;
    for (size_t k = 0; resident && k < npages; k++)
        resident = vec[k] & 1;
    if (vec != small)
        free(vec);
    return resident ? p : NULL;
}

/* A frame not inside one segment: piece by piece; uncovered bytes zero. */
static int frame_pieces(struct qemu_src *s, const struct qemu_layout *L, uint64_t gpa,
                        uint8_t *buf, bool write)
{
    bool covered = false;
    if (!write)
        memset(buf, 0, VMEM_PAGE_SIZE);
    for (uint64_t a = gpa; a < gpa + VMEM_PAGE_SIZE;) {
        size_t i;
        const struct qemu_ram_seg *g = seg_find(L, a, &i);
        if (!g) {
            /* Skip to the next segment start inside the frame, if any. */
            uint64_t next = gpa + VMEM_PAGE_SIZE;
            for (size_t k = 0; k < L->nsegs; k++)
                if (L->segs[k].gpa > a && L->segs[k].gpa < next)
                    next = L->segs[k].gpa;
            a = next;
            continue;
        }
        uint64_t end = g->gpa + g->len < gpa + VMEM_PAGE_SIZE ? g->gpa + g->len
                                                               : gpa + VMEM_PAGE_SIZE;
        int rc = qs_io_span(s, L->io[i].fd, L->io[i].raddr + (a - g->gpa), buf + (a - gpa),
                         end - a, write);
        if (rc < 0)
            return rc;
        covered = true;
        a = end;
    }
    return covered ? VMEM_FRAME_OK : -ENOENT;
}

static int frames_rw(struct qemu_src *s, const uint64_t *gfns, void *const *bufs,
                     int *status, size_t n, bool write)
{
    /* One layout for the whole batch. */
    const struct qemu_layout *L = qs_cur_layout(s);
    struct xfer *x = NULL;
    size_t nx = 0;
    for (size_t k = 0; k < n; k++) {
        if (gfns[k] > (UINT64_MAX >> VMEM_PAGE_SHIFT) - 1) {
            status[k] = -ENOENT;
            continue;
        }
        uint64_t gpa = gfns[k] << VMEM_PAGE_SHIFT;
        size_t i;
        const struct qemu_ram_seg *g = seg_find(L, gpa, &i);
        if (!g || gpa + VMEM_PAGE_SIZE > g->gpa + g->len) {
            status[k] = frame_pieces(s, L, gpa, bufs[k], write);
            continue;
        }
        if (!x) {
            x = malloc(n * sizeof *x);
            if (!x)
                return -ENOMEM;
        }
        /* Mapped blocks too go through the file (pread): holes read as
         * zeros without being allocated, see qemu_map. */
        x[nx++] = (struct xfer){.fd = L->io[i].fd, .raddr = L->io[i].raddr + (gpa - g->gpa),
                                .buf = bufs[k], .len = VMEM_PAGE_SIZE,
                                .status = &status[k]};
    }
    if (nx)
        io_batch(s, x, nx, write);
    free(x);
    return 0;
}

int qemu_read_frames(void *drv, const uint64_t *gfns, void *const *bufs,
                            int *status, size_t n)
{
    return frames_rw(drv, gfns, bufs, status, n, false);
}

int qemu_write_frames(void *drv, const uint64_t *gfns,
                             const void *const *bufs, int *status, size_t n)
{
    return frames_rw(drv, gfns, (void *const *)bufs, status, n, true);
}

/* Write len bytes at raddr of target fd (-1: QEMU's memory); bytes written
 * (short only at an error) or -errno. */
static ssize_t span_write(struct qemu_src *s, int fd, uint64_t raddr, const uint8_t *buf,
                          size_t len)
{
    size_t done = 0;
    while (done < len) {
        if (fd < 0 && qs_proc_gone(s))
            return done ? (ssize_t)done : -EIO;
        struct iovec l = {.iov_base = (void *)(buf + done), .iov_len = len - done};
        struct iovec r = {.iov_base = (void *)(uintptr_t)(raddr + done),
                          .iov_len = len - done};
        ssize_t n = io_call(s, fd, &l, 1, &r, 1, true);
        if (n == -EINTR)
            continue;
        if (fd < 0 && (n == -ESRCH || n == -ENODEV)) {
            atomic_store(&s->gone, true);
            n = -EIO;
        }
        if (n < 0)
            return done ? (ssize_t)done : (n == -EFAULT ? -EIO : n);
        if (n == 0)
            return done ? (ssize_t)done : -EIO;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Byte-granular write: exactly [gpa, gpa+len), segment by segment. */
ssize_t qemu_write(void *drv, uint64_t gpa, const void *buf, size_t len)
{
    struct qemu_src *s = drv;
    const struct qemu_layout *L = qs_cur_layout(s);
    const uint8_t *src = buf;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    if (len > UINT64_MAX - gpa)
        return -EINVAL;
    size_t done = 0;
    ssize_t rc = 0;
    while (done < len) {
        uint64_t a = gpa + done;
        size_t i;
        const struct qemu_ram_seg *g = seg_find(L, a, &i);
        if (!g) {
            rc = -ENOENT;           /* not guest RAM (any more) */
            break;
        }
        size_t take = len - done;
        if (take > g->gpa + g->len - a)
            take = (size_t)(g->gpa + g->len - a);
        ssize_t n = span_write(s, L->io[i].fd, L->io[i].raddr + (a - g->gpa), src + done,
                               take);
        if (n < 0) {
            rc = n;
            break;
        }
        done += (size_t)n;
        if ((size_t)n < take) {
            rc = -EIO;
            break;
        }
    }
    return done ? (ssize_t)done : rc;
}
