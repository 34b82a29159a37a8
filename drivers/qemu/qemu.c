/*
 * qemu.c - the qemu driver: a running QEMU, reached through its QMP socket,
 * as a frame reader ("qemu:QMP_SOCKET").
 *
 * Layout.  Guest RAM is what the system address space's flat view
 * (HMP "info mtree -f", the FlatView listing AS "memory") maps from the RAM
 * blocks of the memory backends (query-memdev: the machine's RAM, e.g.
 * pc.ram, NUMA node and DIMM backends), shown as ram or as rom (the PAM
 * shadows below 1 MiB are RAM mapped read-only).  Each flat entry gives the
 * gpa range, the block, and the offset within the block ("@offset"); the
 * ram-below-4g / ram-above-4g aliases appear there already resolved.  The
 * layout is read at open and again by refresh(): before the firmware runs
 * (QEMU started with -S) 0xc0000-0xfffff is ROM (pc.rom, pc.bios); the
 * firmware maps RAM there (PAM), and hotplug adds RAM.  Each layout is one
 * immutable struct qemu_layout (the ranges, and for every range the block
 * offset and where its bytes are: file offset or host address); readers
 * load the current one once per call, refresh publishes a new one with an
 * atomic pointer swap and keeps the old ones until close.  The blocks
 * themselves (query-memdev) are read once: a backend added later is not
 * seen; a known backend that becomes guest RAM later is located then.
 *
 * Data, per RAM block, the first that works:
 *  1. Shared file (zero copy): a memory-backend-file with share=on whose
 *     mem-path is a file: opened (read-only unless QEMU_OPEN_RW) and mapped
 *     MAP_SHARED, PROT_READ.  map() hands out pointers into it for spans
 *     whose pages the file holds (mincore); read_frames, and writes, use
 *     preadv/pwritev on the file, batched like the process path.  A hole of
 *     a tmpfs file touched through a mapping would be allocated; read
 *     through the file it reads as zeros and stays a hole.  The file is
 *     checked to be the one QEMU maps (same device and inode in
 *     /proc/PID/maps, which also gives the file offset).  A shared mapping
 *     whose path cannot be opened (memory-backend-memfd, a deleted file) is
 *     reached through /proc/PID/map_files once its host address is known
 *     (step 2).
 *  2. Process memory: QEMU's own mapping of the block, found in
 *     /proc/PID/maps (PID: the socket peer, SO_PEERCRED) among the readable
 *     mappings of the block's size or larger (qemu_ram_mmap maps exactly the
 *     block, 2 MiB aligned, with a PROT_NONE guard page after it) and
 *     validated: pages that are not all zero at evenly spread offsets of the
 *     candidate must equal the same guest pages read through QMP (HMP
 *     "xp").  Reads are batched process_vm_readv calls (one call for up to
 *     1024 frames, contiguous host ranges merged), with a pidfd telling that
 *     the pid still names the same QEMU; /proc/PID/mem when there is no
 *     pidfd.  These frames are slow for core's purposes (it caches them).
 * Neither is immutable: the guest runs.
 *
 * A block found in process memory while guest RAM was all zero (QEMU
 * started with -S) is taken unverified; each refresh checks it again
 * against QMP reads until its pages are not blank any more, and records the
 * result (describe: verified, note).  One that turns out not to hold the
 * guest's pages is looked for again, or else left out of the layout.
 *
 * Writes (QEMU_OPEN_RW only): write_frames (whole frames, batched) and
 * write (exactly the bytes given: pwrite on the RAM file, process_vm_writev
 * or pwrite on /proc/PID/mem), so a running guest's writes to the rest of a
 * page are not undone.
 *
 * A QEMU that exits: QMP calls fail with -ENODEV, process-memory frames with
 * -EIO; a shared file stays mapped and readable (its last contents).
 */
#include "drivers/qemu/qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "drivers/drivers.h"
#include "drivers/qemu/parse.h"
#include "drivers/qemu/discover.h"
#include "drivers/qemu/monitor.h"
#include "drivers/qemu/qmp.h"

#define QEMU_IOV_MAX 1024           /* per process_vm_readv call (UIO_MAXIOV) */
#define VALIDATE_SAMPLES 256        /* pages sampled per candidate */
#define VALIDATE_CHECKS 6           /* non-zero pages compared through QMP */

enum block_access { ACCESS_NONE, ACCESS_SHARED_FILE, ACCESS_MAP_FILES, ACCESS_PROCESS };

struct qemu_block {
    char *id;                       /* backend id = RAM block name */
    char *type;                     /* memory-backend-file / -ram / -memfd */
    char *mem_path;                 /* file backends */
    bool share;
    uint64_t size;
    bool used;                      /* some of it is guest RAM */
    enum block_access access;
    uint64_t hva;                   /* host address in QEMU, 0 if unknown */
    bool verified;                  /* hva/file proven to be this block */
    bool blank;                     /* taken unverified: guest RAM was blank,
                                       checked again at each refresh */
    bool was_blank;                 /* ... once (describe) */
    bool failed;                    /* not found when it became guest RAM, or
                                       found not to hold it: left out */
    char note[160];                 /* how it was found, or why not */
    /* mapped access */
    int fd;
    uint8_t *map;
    char *file;                     /* what was opened and mapped */
    uint64_t file_off;
};

/* Where the bytes of one layout segment are. */
struct seg_io {
    int fd;                         /* the RAM file, or -1: QEMU's memory */
    uint64_t raddr;                 /* file offset / host address of the
                                       segment's first byte */
    uint8_t *map;                   /* our mapping of that byte, or NULL */
};

/* One guest-physical layout, immutable once published: segs[i] (gpa ->
 * block offset), io[i] (where its bytes are) and ranges[i] (what ranges()
 * hands out) describe the same piece of RAM. */
struct qemu_layout {
    struct qemu_ram_seg *segs;
    struct seg_io *io;
    struct vmem_range *ranges;
    size_t nsegs;
    struct qemu_layout *older;      /* the layout this one replaced */
};

/* A mapping (and its fd) no longer used by new layouts, kept for the old
 * ones until close. */
struct retired {
    void *map;
    uint64_t size;
    int fd;
    struct retired *next;
};

struct qemu_src {
    char *sock;                     /* the QMP socket, or what names the
                                       monitor's QEMU in messages */
    bool has_socket;                /* opened on a QMP socket path */
    struct qemu_monitor *mon;
    bool rw;
    pid_t pid;
    int pidfd;                      /* -1: none */
    int memfd;                      /* /proc/PID/mem, -1: none */
    int mem_errno;                  /* why not */
    atomic_bool gone;               /* the process exited */
    char version[32], package[96];
    struct qemu_block *blocks;
    size_t nblocks;
    /* The current layout; readers load it once per call. */
    _Atomic(struct qemu_layout *) layout;
    unsigned layout_changes;        /* refreshes that changed it */
    /* Serialises refresh and describe: the blocks' bookkeeping (access,
     * hva, verified, note, map) changes only under it, and only for blocks
     * or mappings the published layouts do not use. */
    pthread_mutex_t lock;
    struct retired *retired;
    int *cpu_index;                 /* query-cpus-fast order */
    int ncpus;
    struct vmem_driver_ops ops;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t json_u64(json_object *o, const char *key, uint64_t dflt)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return dflt;
    return (uint64_t)json_object_get_int64(v);
}

static bool json_flag(json_object *o, const char *key, bool dflt)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return dflt;
    return json_object_get_boolean(v);
}

/* qom-get of a string property; malloc'd or NULL. */
static char *qom_get_str(struct qemu_src *s, const char *path, const char *prop)
{
    json_object *args = json_object_new_object(), *ret = NULL;
    char err[256];
    json_object_object_add(args, "path", json_object_new_string(path));
    json_object_object_add(args, "property", json_object_new_string(prop));
    if (qemu_mon_execute(s->mon, "qom-get", args, &ret, err, sizeof err) < 0)
        return NULL;
    char *v = NULL;
    if (json_object_is_type(ret, json_type_string))
        v = strdup(json_object_get_string(ret));
    json_object_put(ret);
    return v;
}

/* Whole text file (procfs files have no size); malloc'd or NULL (errno). */
static char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            buf = NULL;
            errno = e;
            break;
        }
        if (r == 0) {
            buf[len] = '\0';
            break;
        }
        len += (size_t)r;
    }
    int e = errno;
    close(fd);
    errno = e;
    return buf;
}

static int sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* Has QEMU exited?  Latches. */
static bool proc_gone(struct qemu_src *s)
{
    if (atomic_load(&s->gone))
        return true;
    if (s->pidfd >= 0) {
        struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            atomic_store(&s->gone, true);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------ batched I/O */

/* One piece of a batch: `len` bytes at `raddr`, an address in QEMU's
 * memory (fd < 0) or an offset in the RAM file fd. */
struct xfer {
    int fd;
    uint64_t raddr;
    void *buf;
    size_t len;
    int *status;
};

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
static void io_xfer(struct qemu_src *s, struct xfer *x, size_t n, bool write)
{
    size_t i = 0;
    int fd = n ? x[0].fd : -1;
    bool proc = fd < 0;
    while (i < n) {
        if (proc && proc_gone(s)) {
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
    if (proc && s->pidfd >= 0 && proc_gone(s))
        for (size_t k = 0; k < n; k++)
            *x[k].status = -EIO;
}

/* Read or write one span (validation, partial frames). */
static int io_span(struct qemu_src *s, int fd, uint64_t raddr, void *buf, size_t len,
                   bool write)
{
    int st = -EIO;
    struct xfer x = {.fd = fd, .raddr = raddr, .buf = buf, .len = len, .status = &st};
    io_xfer(s, &x, 1, write);
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
        io_xfer(s, x + i, j - i, write);
        i = j;
    }
}

/* ----------------------------------------------------------- frame access */

static const struct qemu_layout *cur_layout(struct qemu_src *s)
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

static int qemu_ranges(void *drv, const struct vmem_range **out, size_t *n)
{
    const struct qemu_layout *L = cur_layout(drv);
    *out = L->ranges;
    *n = L->nsegs;
    return 0;
}

static void *qemu_map(void *drv, uint64_t gpa, size_t len)
{
    const struct qemu_layout *L = cur_layout(drv);
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
        int rc = io_span(s, L->io[i].fd, L->io[i].raddr + (a - g->gpa), buf + (a - gpa),
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
    const struct qemu_layout *L = cur_layout(s);
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

static int qemu_read_frames(void *drv, const uint64_t *gfns, void *const *bufs,
                            int *status, size_t n)
{
    return frames_rw(drv, gfns, bufs, status, n, false);
}

static int qemu_write_frames(void *drv, const uint64_t *gfns,
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
        if (fd < 0 && proc_gone(s))
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
static ssize_t qemu_write(void *drv, uint64_t gpa, const void *buf, size_t len)
{
    struct qemu_src *s = drv;
    const struct qemu_layout *L = cur_layout(s);
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

/* ------------------------------------------------------ vCPUs, run state */

static int qemu_vcpu_count(void *drv)
{
    struct qemu_src *s = drv;
    return s->ncpus;
}

static int qemu_vcpu_state(void *drv, unsigned cpu, struct vmem_vcpu *out)
{
    struct qemu_src *s = drv;
    if (cpu >= (unsigned)s->ncpus)
        return -ENOENT;
    char *text = NULL, err[256];
    int rc = qemu_mon_hmp(s->mon, "info registers", s->cpu_index[cpu], &text, err, sizeof err);
    if (rc < 0)
        return rc;
    out->id = cpu;
    rc = qemu_parse_registers(text, out);
    free(text);
    return rc < 0 ? -EIO : 0;
}

static int run_cmd(struct qemu_src *s, const char *cmd)
{
    char err[256];
    return qemu_mon_execute(s->mon, cmd, NULL, NULL, err, sizeof err);
}

static int qemu_pause(void *drv) { return run_cmd(drv, "stop"); }
static int qemu_resume(void *drv) { return run_cmd(drv, "cont"); }

/* --------------------------------------------------------------- describe */

static const char *access_name(enum block_access a)
{
    switch (a) {
    case ACCESS_SHARED_FILE: return "shared file";
    case ACCESS_MAP_FILES: return "shared mapping";
    case ACCESS_PROCESS: return "process memory";
    default: return "none";
    }
}

/* Gone for good: the monitor connection closed or the QEMU process exited.
 * Polls with a zero timeout; may wait for a command in flight to finish. */
static bool qemu_gone(void *drv)
{
    struct qemu_src *s = drv;
    return proc_gone(s) || !qemu_mon_alive(s->mon);
}

static void qemu_describe(void *drv, json_object *out)
{
    struct qemu_src *s = drv;
    pthread_mutex_lock(&s->lock);
    if (s->has_socket)
        json_object_object_add(out, "socket", json_object_new_string(s->sock));
    json_object_object_add(out, "pid", json_object_new_int64(s->pid));
    json_object_object_add(out, "qemu_version", json_object_new_string(s->version));
    if (s->package[0])
        json_object_object_add(out, "qemu_package", json_object_new_string(s->package));
    bool any_proc = false, any_map = false;
    for (size_t i = 0; i < s->nblocks; i++) {
        if (!s->blocks[i].used || s->blocks[i].access == ACCESS_NONE)
            continue;
        if (s->blocks[i].map)
            any_map = true;
        else
            any_proc = true;
    }
    json_object_object_add(out, "data_path", json_object_new_string(
        any_map && any_proc ? "mixed" : any_map ? "shared file" : "process memory"));
    json_object_object_add(out, "writable", json_object_new_boolean(s->rw));
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < s->nblocks; i++) {
        const struct qemu_block *b = &s->blocks[i];
        json_object *o = json_object_new_object();
        char hex[32];
        json_object_object_add(o, "id", json_object_new_string(b->id));
        json_object_object_add(o, "type", json_object_new_string(b->type ? b->type : ""));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)b->size));
        json_object_object_add(o, "share", json_object_new_boolean(b->share));
        if (b->mem_path)
            json_object_object_add(o, "mem_path", json_object_new_string(b->mem_path));
        json_object_object_add(o, "guest_ram", json_object_new_boolean(b->used));
        if (b->used) {
            /* Blank at open, verified later or still not (see refresh). */
            if (b->was_blank)
                json_object_object_add(o, "taken_blank", json_object_new_boolean(true));
            json_object_object_add(o, "access", json_object_new_string(access_name(b->access)));
            if (b->file)
                json_object_object_add(o, "file", json_object_new_string(b->file));
            if (b->hva) {
                snprintf(hex, sizeof hex, "0x%" PRIx64, b->hva);
                json_object_object_add(o, "host_address", json_object_new_string(hex));
            }
            json_object_object_add(o, "verified", json_object_new_boolean(b->verified));
            if (b->note[0])
                json_object_object_add(o, "note", json_object_new_string(b->note));
        }
        json_object_array_add(arr, o);
    }
    json_object_object_add(out, "ram_blocks", arr);
    /* Where each piece of guest RAM lives: block and offset within it. */
    arr = json_object_new_array();
    const struct qemu_layout *L = cur_layout(s);
    for (size_t i = 0; i < L->nsegs; i++) {
        const struct qemu_ram_seg *g = &L->segs[i];
        json_object *o = json_object_new_object();
        char hex[32];
        snprintf(hex, sizeof hex, "0x%" PRIx64, g->gpa);
        json_object_object_add(o, "start", json_object_new_string(hex));
        snprintf(hex, sizeof hex, "0x%" PRIx64, g->gpa + g->len);
        json_object_object_add(o, "end", json_object_new_string(hex));
        json_object_object_add(o, "block", json_object_new_string(s->blocks[g->block].id));
        snprintf(hex, sizeof hex, "0x%" PRIx64, g->block_off);
        json_object_object_add(o, "block_offset", json_object_new_string(hex));
        json_object_array_add(arr, o);
    }
    json_object_object_add(out, "ram_layout", arr);
    json_object_object_add(out, "layout_changes", json_object_new_int64(s->layout_changes));
    pthread_mutex_unlock(&s->lock);
    bool alive = !qemu_gone(s);
    json_object_object_add(out, "qemu_alive", json_object_new_boolean(alive));
    if (alive) {
        json_object *st = NULL;
        char err[256];
        if (qemu_mon_execute(s->mon, "query-status", NULL, &st, err, sizeof err) == 0) {
            json_object *v;
            if (json_object_object_get_ex(st, "status", &v))
                json_object_object_add(out, "run_state", json_object_get(v));
            json_object_put(st);
        }
    }
}

/* ---------------------------------------------------------------- layouts */

static void layout_free(struct qemu_layout *L)
{
    if (!L)
        return;
    free(L->segs);
    free(L->io);
    free(L->ranges);
    free(L);
}

/* A layout of segs as the blocks are reached now; segments of blocks with
 * no access are left out.  NULL when out of memory. */
static struct qemu_layout *layout_build(const struct qemu_src *s,
                                        const struct qemu_ram_seg *segs, size_t nsegs)
{
    struct qemu_layout *L = calloc(1, sizeof *L);
    if (!L)
        return NULL;
    size_t cap = nsegs ? nsegs : 1;
    L->segs = calloc(cap, sizeof *L->segs);
    L->io = calloc(cap, sizeof *L->io);
    L->ranges = calloc(cap, sizeof *L->ranges);
    if (!L->segs || !L->io || !L->ranges) {
        layout_free(L);
        return NULL;
    }
    for (size_t i = 0; i < nsegs; i++) {
        const struct qemu_ram_seg *g = &segs[i];
        const struct qemu_block *b = &s->blocks[g->block];
        if (b->access == ACCESS_NONE)
            continue;
        size_t k = L->nsegs++;
        L->segs[k] = *g;
        L->io[k] = b->map ? (struct seg_io){.fd = b->fd, .raddr = b->file_off + g->block_off,
                                            .map = b->map + g->block_off}
                          : (struct seg_io){.fd = -1, .raddr = b->hva + g->block_off};
        L->ranges[k] = (struct vmem_range){g->gpa, g->gpa + g->len, VMEM_RANGE_RAM};
    }
    return L;
}

static bool layout_same(const struct qemu_layout *a, const struct qemu_layout *b)
{
    if (a->nsegs != b->nsegs)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        const struct qemu_ram_seg *x = &a->segs[i], *y = &b->segs[i];
        if (x->gpa != y->gpa || x->len != y->len || x->block != y->block ||
            x->block_off != y->block_off || a->io[i].fd != b->io[i].fd ||
            a->io[i].raddr != b->io[i].raddr || a->io[i].map != b->io[i].map)
            return false;
    }
    return true;
}

/* Make L current; the old one stays (readers may hold it) until close. */
static void layout_publish(struct qemu_src *s, struct qemu_layout *L)
{
    L->older = atomic_load_explicit(&s->layout, memory_order_relaxed);
    atomic_store_explicit(&s->layout, L, memory_order_release);
}

/* b's mapping is not for new layouts any more; old ones may still use it. */
static void retire_map(struct qemu_src *s, struct qemu_block *b)
{
    if (!b->map)
        return;
    struct retired *r = malloc(sizeof *r);
    if (r) {                        /* else leaked: it must stay mapped */
        *r = (struct retired){.map = b->map, .size = b->size, .fd = b->fd,
                              .next = s->retired};
        s->retired = r;
    }
    b->map = NULL;
    b->fd = -1;
    b->file_off = 0;
    free(b->file);
    b->file = NULL;
}

/* ------------------------------------------------------------------ close */

static void qemu_close(void *drv)
{
    struct qemu_src *s = drv;
    if (!s)
        return;
    for (size_t i = 0; i < s->nblocks; i++) {
        struct qemu_block *b = &s->blocks[i];
        if (b->map)
            munmap(b->map, b->size);
        if (b->fd >= 0)
            close(b->fd);
        free(b->id);
        free(b->type);
        free(b->mem_path);
        free(b->file);
    }
    free(s->blocks);
    for (struct retired *r = s->retired, *next; r; r = next) {
        next = r->next;
        munmap(r->map, r->size);
        if (r->fd >= 0)
            close(r->fd);
        free(r);
    }
    for (struct qemu_layout *L = atomic_load(&s->layout), *older; L; L = older) {
        older = L->older;
        layout_free(L);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->cpu_index);
    if (s->pidfd >= 0)
        close(s->pidfd);
    if (s->memfd >= 0)
        close(s->memfd);
    qemu_mon_close(s->mon);
    free(s->sock);
    free(s);
}

struct qemu_monitor *qemu_driver_monitor(void *priv)
{
    return ((struct qemu_src *)priv)->mon;
}

/* ------------------------------------------------------------------- open */

/* The blocks: every memory backend (query-memdev), with its type, share
 * and mem-path. */
static int load_blocks(struct qemu_src *s, char *err, size_t errlen)
{
    json_object *ret = NULL;
    char qerr[256];
    int rc = qemu_mon_execute(s->mon, "query-memdev", NULL, &ret, qerr, sizeof qerr);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", s->sock, qerr);
        return rc;
    }
    size_t n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
    s->blocks = calloc(n ? n : 1, sizeof *s->blocks);
    if (!s->blocks) {
        json_object_put(ret);
        snprintf(err, errlen, "%s: out of memory", s->sock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(ret, i), *id;
        if (!json_object_object_get_ex(m, "id", &id))
            continue;               /* unnamed: no region name to match */
        struct qemu_block *b = &s->blocks[s->nblocks];
        b->fd = -1;
        b->id = strdup(json_object_get_string(id));
        b->size = json_u64(m, "size", 0);
        b->share = json_flag(m, "share", false);
        if (!b->id)
            continue;
        s->nblocks++;
        char path[300];
        snprintf(path, sizeof path, "/objects/%s", b->id);
        b->type = qom_get_str(s, path, "type");
        if (b->type && strcmp(b->type, "memory-backend-file") == 0) {
            b->mem_path = qom_get_str(s, path, "mem-path");
        }
    }
    json_object_put(ret);
    if (s->nblocks == 0) {
        snprintf(err, errlen, "%s: QEMU has no memory backend (query-memdev is "
                 "empty): no RAM block to read", s->sock);
        return -EINVAL;
    }
    return 0;
}

/* The system address space's RAM as it is now: segments (malloc'd), each
 * checked to lie inside its block.  0, or -errno with err set. */
static int read_layout(struct qemu_src *s, struct qemu_ram_seg **segs_out,
                       size_t *nsegs_out, char *err, size_t errlen)
{
    char *text = NULL, qerr[256];
    int rc = qemu_mon_hmp(s->mon, "info mtree -f", -1, &text, qerr, sizeof qerr);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", s->sock, qerr);
        return rc;
    }
    struct qemu_flat *flat = NULL;
    size_t nflat = 0;
    rc = qemu_parse_flatview(text, "memory", &flat, &nflat);
    free(text);
    if (rc < 0) {
        snprintf(err, errlen, "%s: no flat view of the system address space "
                 "(AS \"memory\") in 'info mtree -f'", s->sock);
        return rc == -ENOMEM ? rc : -EIO;
    }
    const char **names = calloc(s->nblocks, sizeof *names);
    if (!names) {
        free(flat);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->nblocks; i++)
        names[i] = s->blocks[i].id;
    struct qemu_ram_seg *segs = NULL;
    size_t nsegs = 0;
    rc = qemu_ram_layout(flat, nflat, names, s->nblocks, &segs, &nsegs);
    free(names);
    free(flat);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", s->sock, rc == -ENOENT
                 ? "no RAM of a memory backend in the system address space"
                 : "overlapping RAM ranges in 'info mtree -f'");
        return rc == -ENOMEM ? rc : -EIO;
    }
    for (size_t i = 0; i < nsegs; i++) {
        const struct qemu_ram_seg *g = &segs[i];
        const struct qemu_block *b = &s->blocks[g->block];
        if (g->block_off > b->size || g->len > b->size - g->block_off) {
            snprintf(err, errlen, "%s: gpa 0x%" PRIx64 "+0x%" PRIx64 " lies "
                     "outside RAM block %s (0x%" PRIx64 " bytes)", s->sock, g->gpa,
                     g->len, b->id, b->size);
            free(segs);
            return -EIO;
        }
    }
    *segs_out = segs;
    *nsegs_out = nsegs;
    return 0;
}

static bool seg_uses(const struct qemu_ram_seg *segs, size_t nsegs, size_t bi)
{
    for (size_t i = 0; i < nsegs; i++)
        if (segs[i].block == bi)
            return true;
    return false;
}

/* Guest page gpa through QMP, into buf (4 KiB). */
static int qmp_page(struct qemu_src *s, uint64_t gpa, uint8_t *buf)
{
    char cmd[64], *text = NULL, qerr[256];
    snprintf(cmd, sizeof cmd, "xp /%ux%c 0x%" PRIx64, VMEM_PAGE_SIZE / 8, 'g', gpa);
    int rc = qemu_mon_hmp(s->mon, cmd, -1, &text, qerr, sizeof qerr);
    if (rc < 0)
        return rc;
    rc = qemu_parse_xp(text, gpa, buf, VMEM_PAGE_SIZE);
    free(text);
    return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Sample pages of block bi: block offsets of guest-visible pages, evenly
 * spread, with their gpa. */
struct sample {
    uint64_t off, gpa;
    int qstate;                     /* 0 unread, 1 read, <0 error */
    uint8_t *qpage;                 /* the page through QMP, when read */
};

static size_t make_samples(const struct qemu_ram_seg *segs, size_t nsegs, size_t bi,
                           struct sample *out, size_t max)
{
    uint64_t total = 0;
    for (size_t i = 0; i < nsegs; i++)
        if (segs[i].block == bi)
            total += segs[i].len / VMEM_PAGE_SIZE;
    if (!total)
        return 0;
    size_t n = total < max ? (size_t)total : max;
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        uint64_t want = total * j / n, seen = 0;   /* j-th sample's page index */
        for (size_t i = 0; i < nsegs; i++) {
            const struct qemu_ram_seg *g = &segs[i];
            if (g->block != bi)
                continue;
            uint64_t pages = g->len / VMEM_PAGE_SIZE;
            if (want < seen + pages) {
                uint64_t p = want - seen;
                out[k++] = (struct sample){.off = g->block_off + p * VMEM_PAGE_SIZE,
                                           .gpa = g->gpa + p * VMEM_PAGE_SIZE};
                break;
            }
            seen += pages;
        }
    }
    return k;
}

/* V_ERR: QMP could not read the guest's pages (no verdict). */
enum verdict { V_NO, V_BLANK, V_YES, V_ERR };

static void free_samples(struct sample *smp, size_t ns)
{
    for (size_t k = 0; k < ns; k++) {
        free(smp[k].qpage);
        smp[k].qpage = NULL;
        smp[k].qstate = 0;
    }
}

/* Is hva where QEMU keeps the block sampled in smp?  Compare non-zero pages
 * of the candidate with QMP's view of the same guest pages. */
static enum verdict check_candidate(struct qemu_src *s, uint64_t hva,
                                    struct sample *smp, size_t ns, uint8_t *pages)
{
    int *st = malloc(ns * sizeof *st);
    struct xfer *x = malloc(ns * sizeof *x);
    if (!st || !x) {
        free(st);
        free(x);
        return V_NO;
    }
    for (size_t i = 0; i < ns; i++)
        x[i] = (struct xfer){.fd = -1, .raddr = hva + smp[i].off,
                             .buf = pages + i * VMEM_PAGE_SIZE, .len = VMEM_PAGE_SIZE,
                             .status = &st[i]};
    io_xfer(s, x, ns, false);
    free(x);
    size_t nz[VALIDATE_SAMPLES], nnz = 0;
    for (size_t i = 0; i < ns; i++) {
        if (st[i] < 0) {
            free(st);
            return V_NO;
        }
        if (!all_zero(pages + i * VMEM_PAGE_SIZE, VMEM_PAGE_SIZE))
            nz[nnz++] = i;
    }
    free(st);

    size_t pick[VALIDATE_CHECKS], np = 0;
    bool blank = nnz == 0;
    if (blank) {
        /* All zero here: QMP must see zeros too (a few pages). */
        for (size_t k = 0; k < 4 && k < ns; k++)
            pick[np++] = k * ns / 4;
    } else {
        for (size_t k = 0; k < VALIDATE_CHECKS && k < nnz; k++)
            pick[np++] = nz[k * nnz / (nnz < VALIDATE_CHECKS ? nnz : VALIDATE_CHECKS)];
    }
    size_t match = 0;
    for (size_t k = 0; k < np; k++) {
        struct sample *sm = &smp[pick[k]];
        uint8_t *mine = pages + pick[k] * VMEM_PAGE_SIZE;
        bool same = false;
        for (int attempt = 0; attempt < 3 && !same; attempt++) {
            if (attempt > 0) {
                /* The guest runs: read both sides again. */
                sm->qstate = 0;
                if (io_span(s, -1, hva + sm->off, mine, VMEM_PAGE_SIZE, false) < 0)
                    return V_NO;
            }
            if (sm->qstate == 0) {
                if (!sm->qpage)
                    sm->qpage = malloc(VMEM_PAGE_SIZE);
                sm->qstate = sm->qpage ? (qmp_page(s, sm->gpa, sm->qpage) == 0 ? 1 : -1) : -1;
            }
            if (sm->qstate < 0)
                return V_ERR;
            same = memcmp(mine, sm->qpage, VMEM_PAGE_SIZE) == 0;
            if (blank)
                break;              /* zeros do not change under us */
        }
        if (same)
            match++;
    }
    if (blank)
        return match == np ? V_BLANK : V_NO;
    if (match == np || (match >= 3 && match + 1 >= np))
        return V_YES;
    return V_NO;
}

/* Find block bi in QEMU's address space; sets b->hva, b->verified, note.
 * *map_out: the maps entry holding it. */
static int find_hva(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs,
                    size_t nsegs, const struct qemu_map *maps, size_t nmaps,
                    const struct qemu_map **map_out)
{
    struct qemu_block *b = &s->blocks[bi];
    struct sample smp[VALIDATE_SAMPLES];
    size_t ns = make_samples(segs, nsegs, bi, smp, VALIDATE_SAMPLES);
    uint8_t *pages = malloc((size_t)VALIDATE_SAMPLES * VMEM_PAGE_SIZE);
    if (!pages || !ns) {
        free(pages);
        snprintf(b->note, sizeof b->note, "no pages to validate against");
        return -EIO;
    }
    uint64_t yes = 0, blank = 0;
    size_t nyes = 0, nblank = 0, ncand = 0, nerr = 0;
    const struct qemu_map *yes_map = NULL, *blank_map = NULL;
    for (size_t i = 0; i < nmaps; i++) {
        const struct qemu_map *m = &maps[i];
        uint64_t size = m->end - m->start;
        if (m->perms[0] != 'r' || size < b->size)
            continue;
        uint64_t cand[2] = {m->start, m->end - b->size};
        for (int c = 0; c < (size > b->size ? 2 : 1); c++) {
            ncand++;
            enum verdict v = check_candidate(s, cand[c], smp, ns, pages);
            if (v == V_ERR)
                nerr++;
            if (v == V_YES) {
                nyes++;
                yes = cand[c];
                yes_map = m;
            } else if (v == V_BLANK && size == b->size) {
                nblank++;
                blank = cand[c];
                blank_map = m;
            }
        }
        if (proc_gone(s))
            break;
    }
    free_samples(smp, ns);
    free(pages);
    if (nyes == 1) {
        b->hva = yes;
        b->verified = true;
        b->blank = false;
        *map_out = yes_map;
        snprintf(b->note, sizeof b->note, "host address found in /proc/%d/maps "
                 "(%zu candidates) and checked against QMP reads", (int)s->pid, ncand);
        return 0;
    }
    if (nyes > 1) {
        snprintf(b->note, sizeof b->note, "%zu mappings match the guest's pages: "
                 "ambiguous", nyes);
        return -EIO;
    }
    if (nerr > 0) {
        snprintf(b->note, sizeof b->note, "guest pages could not be read through "
                 "QMP to check %zu of %zu candidates", nerr, ncand);
        return -EAGAIN;
    }
    if (nblank == 1) {
        b->hva = blank;
        b->verified = false;
        b->blank = b->was_blank = true;
        *map_out = blank_map;
        snprintf(b->note, sizeof b->note, "guest RAM looks blank: the only "
                 "mapping of the block's size is taken unverified");
        return 0;
    }
    snprintf(b->note, sizeof b->note, "no mapping of QEMU matches the guest's "
             "pages (%zu candidates of 0x%" PRIx64 " bytes or more)", ncand, b->size);
    return -EIO;
}

/* mmap fd [off, off+b->size) into b. */
static int map_block(struct qemu_src *s, struct qemu_block *b, int fd, uint64_t off)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < off + b->size)
        return -EINVAL;
    /* Read-only even with QEMU_OPEN_RW: writes go through the file. */
    void *m = mmap(NULL, b->size, PROT_READ, MAP_SHARED, fd, (off_t)off);
    if (m == MAP_FAILED)
        return -errno;
    b->map = m;
    b->fd = fd;
    b->file_off = off;
    madvise(m, b->size, MADV_SEQUENTIAL);
    return 0;
}

/* Path 1: a shared memory-backend-file whose mem-path is the file QEMU
 * maps.  0 if mapped; <0 otherwise (note says why). */
static int try_shared_file(struct qemu_src *s, struct qemu_block *b,
                           const struct qemu_map *maps, size_t nmaps, bool have_maps)
{
    if (!b->share || !b->mem_path)
        return -ENOENT;
    int fd = open(b->mem_path, (s->rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(b->note, sizeof b->note, "mem-path %s: %s", b->mem_path,
                 strerror(errno));
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(b->note, sizeof b->note, "mem-path %s is not a file (QEMU made "
                 "a temporary file in it)", b->mem_path);
        return -EINVAL;
    }
    uint64_t off = 0;
    bool found = false;
    for (size_t i = 0; i < nmaps && have_maps; i++) {
        const struct qemu_map *m = &maps[i];
        if (m->inode == (uint64_t)st.st_ino && m->dev_major == major(st.st_dev) &&
            m->dev_minor == minor(st.st_dev) && m->perms[3] == 's' &&
            m->end - m->start == b->size) {
            off = m->offset;
            b->hva = m->start;
            found = true;
            break;
        }
    }
    if (have_maps && !found) {
        close(fd);
        snprintf(b->note, sizeof b->note, "mem-path %s is not the file QEMU maps "
                 "(replaced?)", b->mem_path);
        return -ESTALE;
    }
    int rc = map_block(s, b, fd, off);
    if (rc < 0) {
        close(fd);
        snprintf(b->note, sizeof b->note, "mem-path %s: cannot map 0x%" PRIx64
                 " bytes: %s", b->mem_path, b->size, strerror(-rc));
        return rc;
    }
    b->file = strdup(b->mem_path);
    b->access = ACCESS_SHARED_FILE;
    b->verified = found;
    snprintf(b->note, sizeof b->note, "%s", found ? "same inode as QEMU's mapping"
             : "QEMU's mappings unreadable: mem-path not checked");
    return 0;
}

/* Path 1b: QEMU's shared mapping of a file we cannot name (memfd, deleted
 * file, temporary file in a mem-path directory) via /proc/PID/map_files. */
static int try_map_files(struct qemu_src *s, struct qemu_block *b,
                         const struct qemu_map *m)
{
    if (!b->share || m->perms[3] != 's' || m->inode == 0)
        return -ENOENT;
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
             (int)s->pid, m->start, m->end);
    int fd = open(path, (s->rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = map_block(s, b, fd, m->offset + (b->hva - m->start));
    if (rc < 0) {
        close(fd);
        return rc;
    }
    char what[512];
    snprintf(what, sizeof what, "%s (%s)", path, m->path[0] ? m->path : "anonymous");
    b->file = strdup(what);
    b->access = ACCESS_MAP_FILES;
    return 0;
}

static int load_vcpus(struct qemu_src *s)
{
    json_object *ret = NULL;
    char err[256];
    if (qemu_mon_execute(s->mon, "query-cpus-fast", NULL, &ret, err, sizeof err) < 0)
        return 0;                   /* vCPUs unknown: not fatal */
    size_t n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
    s->cpu_index = calloc(n ? n : 1, sizeof *s->cpu_index);
    if (!s->cpu_index) {
        json_object_put(ret);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s->cpu_index[i] = (int)json_u64(json_object_array_get_idx(ret, i), "cpu-index",
                                        (uint64_t)i);
    s->ncpus = (int)n;
    json_object_put(ret);
    return 0;
}

/* QEMU's mappings (/proc/PID/maps), read when first needed. */
struct maps_info {
    bool read, have;
    int err;                        /* why not, when !have */
    struct qemu_map *maps;
    size_t n;
};

static void load_maps(struct qemu_src *s, struct maps_info *mi)
{
    if (mi->read)
        return;
    mi->read = true;
    mi->err = ESRCH;
    if (s->pid <= 0)
        return;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)s->pid);
    char *text = read_text(path);
    mi->err = errno;
    if (text && qemu_parse_maps(text, &mi->maps, &mi->n) == 0 && mi->n > 0)
        mi->have = true;
    free(text);
}

/* Find how to reach block bi (guest RAM in segs): sets b->access and the
 * rest.  0, or -errno with err set (-EAGAIN: QMP failed, try again). */
static int setup_block(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs,
                       size_t nsegs, struct maps_info *mi, char *err, size_t errlen)
{
    struct qemu_block *b = &s->blocks[bi];
    load_maps(s, mi);
    if (try_shared_file(s, b, mi->maps, mi->n, mi->have) == 0)
        return 0;
    char why[160];
    snprintf(why, sizeof why, "%s", b->note);
    if (!mi->have) {
        if (s->pid > 0)
            snprintf(err, errlen, "%s: cannot read RAM block %s: /proc/%d/maps: "
                     "%s", s->sock, b->id, (int)s->pid, strerror(mi->err));
        else
            snprintf(err, errlen, "%s: cannot read RAM block %s: QEMU's pid "
                     "is unknown (another pid namespace?)", s->sock, b->id);
        snprintf(b->note, sizeof b->note, "QEMU's mappings unreadable");
        return -EACCES;
    }
    if (s->pidfd < 0 && s->memfd < 0) {
        snprintf(err, errlen, "%s: cannot read RAM block %s: cannot open "
                 "/proc/%d/mem: %s", s->sock, b->id, (int)s->pid, strerror(s->mem_errno));
        snprintf(b->note, sizeof b->note, "cannot open /proc/%d/mem", (int)s->pid);
        return -EACCES;
    }
    const struct qemu_map *m = NULL;
    int rc = find_hva(s, bi, segs, nsegs, mi->maps, mi->n, &m);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot find RAM block %s (0x%" PRIx64
                 " bytes) in QEMU pid %d: %s", s->sock, b->id, b->size,
                 (int)s->pid, b->note);
        return proc_gone(s) ? -ENODEV : rc == -EAGAIN ? rc : -EIO;
    }
    if (try_map_files(s, b, m) == 0)
        return 0;
    b->access = ACCESS_PROCESS;
    if (why[0]) {
        size_t l = strlen(b->note);
        snprintf(b->note + l, sizeof b->note - l, "; %s", why);
    }
    return 0;
}

/* Block bi was taken unverified while guest RAM was blank: check it again
 * against the guest's pages now.  Verified, still blank, found elsewhere, or
 * left out (b->failed) when no mapping holds the guest's pages: 0.  -errno
 * when QMP failed (nothing decided; the next refresh tries again). */
static int reverify(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs,
                    size_t nsegs, struct maps_info *mi)
{
    struct qemu_block *b = &s->blocks[bi];
    struct sample smp[VALIDATE_SAMPLES];
    size_t ns = make_samples(segs, nsegs, bi, smp, VALIDATE_SAMPLES);
    if (!ns)
        return 0;
    uint8_t *pages = malloc((size_t)VALIDATE_SAMPLES * VMEM_PAGE_SIZE);
    if (!pages)
        return -ENOMEM;
    enum verdict v = check_candidate(s, b->hva, smp, ns, pages);
    free_samples(smp, ns);
    free(pages);
    if (proc_gone(s))
        return -ENODEV;
    if (v == V_ERR)
        return -EIO;
    if (v == V_BLANK)
        return 0;                   /* still blank: next time */
    if (v == V_YES) {
        b->blank = false;
        b->verified = true;
        snprintf(b->note, sizeof b->note, "guest RAM was blank when opened; host "
                 "address checked against QMP reads at a layout refresh");
        return 0;
    }
    /* The mapping taken blindly is not the guest's RAM: look again. */
    load_maps(s, mi);
    const struct qemu_map *m = NULL;
    int rc = mi->have ? find_hva(s, bi, segs, nsegs, mi->maps, mi->n, &m) : -EACCES;
    if (rc == -EAGAIN)
        return -EIO;
    if (rc == 0 && b->verified) {
        if (b->access == ACCESS_MAP_FILES) {
            retire_map(s, b);
            if (try_map_files(s, b, m) != 0)
                b->access = ACCESS_PROCESS;
        }
        size_t l = strlen(b->note);
        snprintf(b->note + l, sizeof b->note - l, ", at a layout refresh: the "
                 "mapping taken while RAM was blank was not it");
        return 0;
    }
    retire_map(s, b);
    b->access = ACCESS_NONE;
    b->verified = b->blank = false;
    b->failed = true;
    snprintf(b->note, sizeof b->note, "the mapping taken while guest RAM was blank "
             "does not hold the guest's pages, and no other does: left out of "
             "the layout");
    return 0;
}

/* Re-read the layout (see the top of this file).  1 changed, 0 not, or
 * -errno (the old layout stays). */
static int qemu_refresh(void *drv)
{
    struct qemu_src *s = drv;
    if (qemu_gone(s))
        return -ENODEV;
    pthread_mutex_lock(&s->lock);
    char err[512];
    struct qemu_ram_seg *segs = NULL;
    size_t nsegs = 0;
    struct maps_info mi = {0};
    int rc = read_layout(s, &segs, &nsegs, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < s->nblocks; i++) {
        struct qemu_block *b = &s->blocks[i];
        if (b->failed || !seg_uses(segs, nsegs, i))
            continue;
        b->used = true;
        if (b->access == ACCESS_NONE) {
            /* Guest RAM now, not before (a DIMM plugged since): find it. */
            int r = setup_block(s, i, segs, nsegs, &mi, err, sizeof err);
            if (r == -EAGAIN || r == -ENODEV || r == -ENOMEM) {
                rc = r == -EAGAIN ? -EIO : r;
            } else if (r < 0) {
                retire_map(s, b);
                b->access = ACCESS_NONE;
                b->failed = true;
                size_t l = strlen(b->note);
                snprintf(b->note + l, sizeof b->note - l, "%s: left out of the layout",
                         l ? "" : "not found");
            }
        } else if (b->blank) {
            rc = reverify(s, i, segs, nsegs, &mi);
        }
    }
    if (rc == 0) {
        struct qemu_layout *L = layout_build(s, segs, nsegs);
        if (!L) {
            rc = -ENOMEM;
        } else if (layout_same(L, cur_layout(s))) {
            layout_free(L);
        } else {
            layout_publish(s, L);
            s->layout_changes++;
            rc = 1;
        }
    }
    free(segs);
    free(mi.maps);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* The driver on monitor mon (owned from here on), for QEMU process
 * qemu_pid (0: the one the monitor names); label names it in messages. */
static int open_on_monitor(struct qemu_monitor *mon, const char *label, bool has_socket,
                           pid_t qemu_pid, unsigned flags, struct vmem_driver *out,
                           char *err, size_t errlen)
{
    struct qemu_src *s = calloc(1, sizeof *s);
    if (!s || !(s->sock = strdup(label))) {
        free(s);
        qemu_mon_close(mon);
        snprintf(err, errlen, "%s: out of memory", label);
        return -ENOMEM;
    }
    s->mon = mon;
    s->has_socket = has_socket;
    s->pidfd = s->memfd = -1;
    s->rw = flags & QEMU_OPEN_RW;
    atomic_init(&s->gone, false);
    atomic_init(&s->layout, NULL);
    pthread_mutex_init(&s->lock, NULL);
    char qerr[256];
    int rc;
    json_object *ver = NULL;
    rc = qemu_mon_execute(s->mon, "query-version", NULL, &ver, qerr, sizeof qerr);
    if (rc == 0) {
        json_object *q, *pkg;
        if (json_object_object_get_ex(ver, "qemu", &q))
            snprintf(s->version, sizeof s->version, "%" PRIu64 ".%" PRIu64 ".%" PRIu64,
                     json_u64(q, "major", 0), json_u64(q, "minor", 0),
                     json_u64(q, "micro", 0));
        if (json_object_object_get_ex(ver, "package", &pkg))
            snprintf(s->package, sizeof s->package, "%s", json_object_get_string(pkg));
        json_object_put(ver);
    } else if (rc == -ETIMEDOUT || rc == -ENODEV) {
        /* A peer that does not answer is not waited on command after
         * command: open fails now. */
        snprintf(err, errlen, "%s", qerr);
        qemu_close(s);
        return rc;
    }

    /* The QEMU process, pinned by a pidfd: everything read from its
     * memory or files is checked against what it maps (see try_*). */
    pid_t mon_pid = qemu_mon_pid(s->mon);
    s->pid = qemu_pid > 0 ? qemu_pid : mon_pid;
    if (s->pid <= 0) {
        snprintf(err, errlen, "%s: QEMU's process is unknown (another pid "
                 "namespace?): its memory cannot be checked, refused", s->sock);
        qemu_close(s);
        return -EACCES;
    }
    if (s->pid == mon_pid) {
        rc = qemu_mon_pidfd(s->mon);
        s->pidfd = rc >= 0 ? rc : -1;
    }
    if (s->pidfd < 0)
        s->pidfd = sys_pidfd_open(s->pid);
    if ((s->pidfd < 0 && errno == ESRCH) || proc_gone(s)) {
        snprintf(err, errlen, "%s: QEMU process %d has exited", s->sock, (int)s->pid);
        qemu_close(s);
        return -ENODEV;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)s->pid);
    s->memfd = open(path, (s->rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    s->mem_errno = s->memfd < 0 ? errno : 0;

    struct qemu_ram_seg *segs = NULL;
    size_t nsegs = 0;
    if ((rc = load_blocks(s, err, errlen)) < 0 ||
        (rc = read_layout(s, &segs, &nsegs, err, errlen)) < 0) {
        qemu_close(s);
        return rc;
    }

    /* Each block that is guest RAM: a mapped file, or QEMU's memory. */
    struct maps_info mi = {0};
    bool slow = false, mapped = false;
    for (size_t i = 0; i < s->nblocks && rc == 0; i++) {
        struct qemu_block *b = &s->blocks[i];
        if (!seg_uses(segs, nsegs, i))
            continue;
        b->used = true;
        rc = setup_block(s, i, segs, nsegs, &mi, err, errlen);
        if (rc == -EAGAIN)
            rc = -EIO;
        if (b->access == ACCESS_PROCESS)
            slow = true;
        else if (b->map)
            mapped = true;
    }
    free(mi.maps);
    if (rc == 0) {
        struct qemu_layout *L = layout_build(s, segs, nsegs);
        if (L)
            layout_publish(s, L);
        else
            rc = -ENOMEM;
    }
    free(segs);
    if (rc == 0)
        rc = load_vcpus(s);
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "%s: out of memory", s->sock);
        qemu_close(s);
        return rc;
    }
    s->ops = (struct vmem_driver_ops){
        .name = "qemu",
        .ranges = qemu_ranges,
        .refresh = qemu_refresh,
        .map = mapped ? qemu_map : NULL,
        .read_frames = qemu_read_frames,
        .write_frames = s->rw ? qemu_write_frames : NULL,
        .write = s->rw ? qemu_write : NULL,
        .vcpu_count = qemu_vcpu_count,
        .vcpu_state = qemu_vcpu_state,
        .pause = qemu_pause,
        .resume = qemu_resume,
        .describe = qemu_describe,
        .gone = qemu_gone,
        .close = qemu_close,
    };
    out->ops = &s->ops;
    out->priv = s;
    out->caps = slow ? VMEM_CAP_SLOW : 0;
    return 0;
}

int qemu_driver_open_monitor(struct qemu_monitor *mon, pid_t qemu_pid, unsigned flags,
                              struct vmem_driver *out, char *err, size_t errlen)
{
    char label[48];
    pid_t pid = qemu_pid > 0 ? qemu_pid : mon ? qemu_mon_pid(mon) : 0;
    snprintf(label, sizeof label, "QEMU pid %d", (int)pid);
    if (!mon) {
        snprintf(err, errlen, "qemu: no monitor given");
        return -EINVAL;
    }
    return open_on_monitor(mon, label, false, qemu_pid, flags, out, err, errlen);
}

int qemu_driver_open_flags(const char *arg, unsigned flags, struct vmem_driver *out,
                           char *err, size_t errlen)
{
    if (!arg || !arg[0]) {
        snprintf(err, errlen, "qemu: no QMP socket given (qemu:QMP_SOCKET)");
        return -EINVAL;
    }
    struct qemu_monitor *mon = NULL;
    int rc = qemu_qmp_monitor_open(arg, QMP_DEFAULT_TIMEOUT_MS, &mon, err, errlen);
    if (rc < 0)
        return rc;
    char *abs = realpath(arg, NULL);
    rc = open_on_monitor(mon, abs ? abs : arg, true, 0, flags, out, err, errlen);
    free(abs);
    return rc;
}

int qemu_driver_open(const char *arg, struct vmem_driver *out, char *err,
                     size_t errlen)
{
    return qemu_driver_open_flags(arg, 0, out, err, errlen);
}

static int class_open(const char *arg, unsigned flags, struct vmem_driver *out, char *err,
                      size_t errlen)
{
    return qemu_driver_open_flags(arg, (flags & VMEM_OPEN_RW) ? QEMU_OPEN_RW : 0, out,
                                  err, errlen);
}

const struct vmem_driver_class qemu_driver_class = {
    .scheme = "qemu",
    .usage = "qemu:QMP_SOCKET",
    .summary = "a running QEMU (-qmp unix:PATH,server=on,wait=off)",
    .open = class_open,
    .discover_option = "qemu-dir",
    .discover_usage = "--qemu-dir DIR",
    .discover_start = qemu_discover_start,
    .discover_stop = qemu_discover_stop,
};
