/*
 * file.c - the file driver: a memory dump on disk as a frame reader.
 *
 * The dump is mmap'd read-only once; its format is detected by content
 * (kdump signature, ELF magic, LiME magic; anything else is a raw image).
 * Formats stored verbatim (raw, ELF, LiME) expose the mapping itself, the
 * zero-copy fast path; kdump-compressed dumps decompress frame by frame and
 * are marked slow so core caches them.  Every access to the mapping that
 * this driver makes runs under the SIGBUS guard: a dump truncated while
 * mounted gives EIO for the reads that touch the lost part.
 *
 * A deleted dump stays readable while mounted (the mapping keeps the inode),
 * as any open file would; it is the user's data, not ours to refuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/file.h"
#include "core/phys/guard.h"
#include "core/phys/ranges.h"
#include "drivers/file/file.h"
#include "drivers/file/format.h"

struct file_src {
    char *path;
    int fd;
    const uint8_t *base;
    size_t size;
    struct dump_layout layout;
    struct vmem_range *ranges;      /* verbatim formats: from segments */
    const struct vmem_range *range_view;
    size_t nranges;
};

/* The segment holding gpa, or NULL (binary search; segs sorted). */
static const struct dump_segment *seg_find(const struct file_src *f, uint64_t gpa)
{
    size_t lo = 0, hi = f->layout.nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct dump_segment *s = &f->layout.segs[mid];
        if (s->gpa + s->len <= gpa)
            lo = mid + 1;
        else if (s->gpa > gpa)
            hi = mid;
        else
            return s;
    }
    return NULL;
}

static int file_ranges(void *drv, const struct vmem_range **out, size_t *n)
{
    struct file_src *f = drv;
    *out = f->range_view;
    *n = f->nranges;
    return 0;
}

static void *file_map(void *drv, uint64_t gpa, size_t len)
{
    struct file_src *f = drv;
    const struct dump_segment *s = seg_find(f, gpa);
    if (!s || gpa + len > s->gpa + s->len)
        return NULL;
    return (void *)(f->base + s->file_off + (gpa - s->gpa));
}

static void file_prefetch(void *drv, uint64_t gpa, size_t len)
{
    struct file_src *f = drv;
    const struct dump_segment *s = seg_find(f, gpa);
    if (!s)
        return;
    uint64_t avail = s->gpa + s->len - gpa;
    if (len > avail)
        len = (size_t)avail;
    /* Starts the reads and returns; pages already cached cost a lookup. */
    posix_fadvise(f->fd, (off_t)(s->file_off + (gpa - s->gpa)), (off_t)len,
                  POSIX_FADV_WILLNEED);
}

struct frame_job {
    struct file_src *f;
    uint64_t gfn;
    uint8_t *buf;
};

/* One frame from verbatim segments: the parts no segment covers are zero;
 * -ENOENT if no part is covered. */
static int copy_frame(void *arg)
{
    struct frame_job *j = arg;
    struct file_src *f = j->f;
    uint64_t start = j->gfn << VMEM_PAGE_SHIFT, end = start + VMEM_PAGE_SIZE;
    int covered = 0;
    size_t i = 0;
    /* First segment ending above start. */
    size_t lo = 0, hi = f->layout.nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->layout.segs[mid].gpa + f->layout.segs[mid].len <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (i = lo; i < f->layout.nsegs && f->layout.segs[i].gpa < end; i++) {
        const struct dump_segment *s = &f->layout.segs[i];
        uint64_t a = s->gpa > start ? s->gpa : start;
        uint64_t b = s->gpa + s->len < end ? s->gpa + s->len : end;
        if (!covered)
            memset(j->buf, 0, VMEM_PAGE_SIZE);
        memcpy(j->buf + (a - start), f->base + s->file_off + (a - s->gpa), b - a);
        covered = 1;
    }
    return covered ? 0 : -ENOENT;
}

static int backend_frame(void *arg)
{
    struct frame_job *j = arg;
    return j->f->layout.backend->read_frame(j->f->layout.backend_priv, j->gfn, j->buf);
}

static int file_read_frames(void *drv, const uint64_t *gfns, void *const *bufs,
                            int *status, size_t n)
{
    struct file_src *f = drv;
    int (*fn)(void *) = f->layout.backend ? backend_frame : copy_frame;
    for (size_t i = 0; i < n; i++) {
        struct frame_job j = {.f = f, .gfn = gfns[i], .buf = bufs[i]};
        status[i] = vmem_guard_run(fn, &j);
    }
    return 0;
}

static int file_vcpu_count(void *drv)
{
    struct file_src *f = drv;
    return (int)f->layout.nvcpus;
}

static int file_vcpu_state(void *drv, unsigned cpu, struct vmem_vcpu *out)
{
    struct file_src *f = drv;
    if (cpu >= f->layout.nvcpus)
        return -ENOENT;
    *out = f->layout.vcpus[cpu];
    return 0;
}

static void file_describe(void *drv, struct json_object *out)
{
    struct file_src *f = drv;
    json_object_object_add(out, "path", json_object_new_string(f->path));
    json_object_object_add(out, "format", json_object_new_string(f->layout.format));
    json_object_object_add(out, "detail", json_object_new_string(
        f->layout.backend ? f->layout.backend->describe(f->layout.backend_priv)
                          : f->layout.detail));
    json_object_object_add(out, "file_size", json_object_new_int64((int64_t)f->size));
    struct stat st;
    bool gone = fstat(f->fd, &st) == 0 && st.st_nlink == 0;
    json_object_object_add(out, "deleted", json_object_new_boolean(gone));
    if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < f->size)
        json_object_object_add(out, "truncated_to", json_object_new_int64(st.st_size));
}

static void file_close(void *drv)
{
    struct file_src *f = drv;
    dump_layout_free(&f->layout);
    if (f->base)
        munmap((void *)f->base, f->size);
    if (f->fd >= 0)
        close(f->fd);
    free(f->ranges);
    free(f->path);
    free(f);
}

static const struct vmem_driver_ops file_ops_verbatim = {
    .name = "file",
    .ranges = file_ranges,
    .map = file_map,
    .prefetch = file_prefetch,
    .read_frames = file_read_frames,
    .vcpu_count = file_vcpu_count,
    .vcpu_state = file_vcpu_state,
    .describe = file_describe,
    .close = file_close,
};

static const struct vmem_driver_ops file_ops_compressed = {
    .name = "file",
    .ranges = file_ranges,
    .map = NULL,
    .read_frames = file_read_frames,
    .vcpu_count = file_vcpu_count,
    .vcpu_state = file_vcpu_state,
    .describe = file_describe,
    .close = file_close,
};

/* Formats people may hand us by mistake, recognised so that they are not
 * taken for a raw image. */
static const char *known_other_format(const uint8_t *b, size_t n)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *what;
    } magic[] = {
        {"\x1f\x8b", 2, "gzip-compressed file (decompress it first)"},
        {"\xfd" "7zXZ", 6, "xz-compressed file (decompress it first)"},
        {"BZh", 3, "bzip2-compressed file (decompress it first)"},
        {"\x28\xb5\x2f\xfd", 4, "zstd-compressed file (decompress it first)"},
        {"PK\x03\x04", 4, "zip archive (extract it first)"},
        {"makedumpfile", 12, "flattened makedumpfile output (run "
                             "'makedumpfile -R' to rebuild the dump)"},
        {"PAGEDU64", 8, "Windows crash dump"},
        {"PAGEDUMP", 8, "Windows crash dump"},
        {"QEVM", 4, "QEMU savevm/migration stream (use dump-guest-memory)"},
        {"\xd2\xbe\xd2\xbe", 4, "VMware saved state (.vmss/.vmsn)"},
        {"hibr", 4, "Windows hibernation file"},
        {"HIBR", 4, "Windows hibernation file"},
    };
    for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
        if (n >= magic[i].len && memcmp(b, magic[i].magic, magic[i].len) == 0)
            return magic[i].what;
    return NULL;
}

struct parse_job {
    struct file_src *f;
    char *err;
    size_t errlen;
};

static int parse_dump(void *arg)
{
    struct parse_job *pj = arg;
    struct file_src *f = pj->f;
    if (dump_is_kdump(f->base, f->size))
        return dump_parse_kdump(f->base, f->size, &f->layout, pj->err, pj->errlen);
    if (dump_is_elf(f->base, f->size))
        return dump_parse_elf(f->base, f->size, &f->layout, pj->err, pj->errlen);
    if (dump_is_lime(f->base, f->size))
        return dump_parse_lime(f->base, f->size, &f->layout, pj->err, pj->errlen);
    const char *other = known_other_format(f->base, f->size);
    if (other) {
        snprintf(pj->err, pj->errlen, "unsupported format: %s", other);
        return -EINVAL;
    }
    /* No header to go by: a raw image, which every capture tool writes in
     * whole pages.  Anything else is not memory we can place. */
    if (f->size % VMEM_PAGE_SIZE) {
        snprintf(pj->err, pj->errlen, "unknown format: no ELF, LiME or kdump "
                 "header, and %zu bytes is not a whole number of 4 KiB pages, "
                 "as a raw memory image would be", f->size);
        return -EINVAL;
    }
    return dump_parse_raw(f->base, f->size, &f->layout, pj->err, pj->errlen);
}

int file_driver_open(const char *path, struct vmem_driver *out, char *err,
                     size_t errlen)
{
    if (!path[0]) {
        snprintf(err, errlen, "file: no path given (file:PATH)");
        return -EINVAL;
    }
    struct file_src *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    f->fd = -1;
    /* Absolute, for info.json: the daemon changes to / when it detaches. */
    char *abs = realpath(path, NULL);
    f->path = abs ? abs : strdup(path);
    struct stat st;
    f->fd = vmem_open_regular(path, "a dump", &st, err, errlen);
    if (f->fd < 0) {
        int rc = f->fd;
        f->fd = -1;
        file_close(f);
        return rc;
    }
    if (st.st_size == 0) {
        snprintf(err, errlen, "%s: file is empty", path);
        file_close(f);
        return -EINVAL;
    }
    f->size = (size_t)st.st_size;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot mmap: %s", path, strerror(e));
        file_close(f);
        return -e;
    }
    f->base = m;

    char perr[DUMP_ERR_LEN] = "";
    struct parse_job pj = {.f = f, .err = perr, .errlen = sizeof perr};
    int rc = vmem_guard_run(parse_dump, &pj);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path,
                 perr[0] ? perr : "file changed size while being read");
        file_close(f);
        return rc == -EIO ? -EIO : -EINVAL;
    }

    if (f->layout.backend) {
        const struct vmem_range *r;
        f->layout.backend->ranges(f->layout.backend_priv, &r, &f->nranges);
        f->range_view = r;
    } else {
        f->ranges = calloc(f->layout.nsegs ? f->layout.nsegs : 1, sizeof *f->ranges);
        if (!f->ranges) {
            snprintf(err, errlen, "%s: out of memory", path);
            file_close(f);
            return -ENOMEM;
        }
        for (size_t i = 0; i < f->layout.nsegs; i++)
            f->ranges[i] = (struct vmem_range){f->layout.segs[i].gpa,
                                               f->layout.segs[i].gpa + f->layout.segs[i].len,
                                               f->layout.segs[i].kind};
        f->nranges = f->layout.nsegs;
        f->range_view = f->ranges;
    }
    if (f->nranges == 0) {
        snprintf(err, errlen, "%s: %s dump holds no memory", path, f->layout.format);
        file_close(f);
        return -EINVAL;
    }
    /* No fault read-around: core prefetches exactly what each read needs
     * (and a window ahead of sequential readers), so a random 4 KiB read of
     * a cold dump reads 4 KiB from disk, not the device's whole read-ahead
     * window (8 MiB on some disks). */
    madvise(m, f->size, MADV_RANDOM);
    out->ops = f->layout.backend ? &file_ops_compressed : &file_ops_verbatim;
    out->priv = f;
    /* Dumps are evidence: never written, whatever was asked. */
    out->caps = VMEM_CAP_IMMUTABLE | (f->layout.backend ? VMEM_CAP_SLOW : 0);
    return 0;
}

static int file_class_open(const char *arg, unsigned flags, struct vmem_driver *out,
                           char *err, size_t errlen)
{
    (void)flags;                    /* evidence: never opened for writing */
    return file_driver_open(arg, out, err, errlen);
}

const struct vmem_driver_class file_driver_class = {
    .scheme = "file",
    .usage = "file:PATH",
    .summary = "a memory dump: raw, ELF core, LiME or kdump-compressed",
    .open = file_class_open,
};

void dump_layout_free(struct dump_layout *l)
{
    free(l->segs);
    free(l->vcpus);
    if (l->backend)
        l->backend->close(l->backend_priv);
    l->segs = NULL;
    l->vcpus = NULL;
    l->backend = NULL;
    l->backend_priv = NULL;
    l->nsegs = l->nvcpus = 0;
}
