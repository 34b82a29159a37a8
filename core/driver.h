/*
 * driver.h - the frame-reader interface: the one contract every memory
 * source (dump file, live QEMU, libvirt, Xen) implements, and the only way
 * core/ reaches guest memory.  Also the contract of a driver *class* (how a
 * spec opens a source, and how a source of many VMs announces them), which
 * drivers/registry.c tables and fs/ uses; core/ never looks at a class.
 *
 * A driver knows how to fetch guest-physical frames and nothing else: no
 * caching, no address translation, no file-system logic.  It either exposes
 * a stable host mapping of (part of) guest RAM, the zero-copy fast path, or
 * answers batched frame reads; callers try the mapping first.
 *
 * Invariants every driver keeps (core relies on them):
 *  1. Errors are negative errno values, never -1 with errno.  -ENOENT means
 *     "the source has no data there" (a hole), nothing else; -EIO (or
 *     another -errno) means "the source failed".
 *  2. An operation the source cannot do is a NULL pointer, never a stub that
 *     pretends: core answers -ENOTSUP (or takes its fallback) itself.  Callers
 *     use the vmem_drv_* wrappers below and never test pointers.
 *  3. Every operation may be called from several FUSE worker threads at
 *     once; a driver serialises internally whatever needs it.  Only close()
 *     is called once, after every other call has returned.
 *  4. What the driver hands out (range arrays, mappings) stays valid until
 *     close(), even across a layout refresh: core keeps pointers to them
 *     without a lock.
 *  5. Capabilities (VMEM_CAP_*) belong to the open instance, decided at
 *     open and never changed: two sources of one driver may differ (a QEMU
 *     with a shared RAM file is not slow, one read through process memory is
 *     cached).
 *
 * Blocking: read_frames, write*, ranges, map and prefetch are on the read
 * path and must not wait on anything but the source itself (a disk, a
 * hypercall, a bounded remote call).  Operations that talk to a hypervisor's
 * control plane (refresh, pause, resume, vcpu_*, gone) may block, each
 * bounded by the driver (a few seconds at most: a peer that stops answering
 * turns into -ETIMEDOUT, never a hang); core never calls them while holding
 * a lock that a read needs.
 */
#ifndef VMEMFS_CORE_DRIVER_H
#define VMEMFS_CORE_DRIVER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VMEM_PAGE_SHIFT 12
#define VMEM_PAGE_SIZE  (1u << VMEM_PAGE_SHIFT)
#define VMEM_PAGE_MASK  (~(uint64_t)(VMEM_PAGE_SIZE - 1))

/* A half-open guest-physical range [start, end).  Byte granular: a format
 * such as LiME may describe ranges that do not end on a page boundary. */
struct vmem_range {
    uint64_t start;
    uint64_t end;
    /* What the range holds, for memmap/info.json: VMEM_RANGE_RAM or _ROM. */
    unsigned kind;
};
#define VMEM_RANGE_RAM 0u
#define VMEM_RANGE_ROM 1u
/* Highest address a range may reach: file offsets (off_t) must hold it. */
#define VMEM_GPA_LIMIT ((uint64_t)1 << 62)

/* One vCPU's architectural state, as far as the source knows it.
 * `valid` bits say which groups were filled in; the rest are zero. */
struct vmem_vcpu {
    unsigned id;
    unsigned valid;                 /* VMEM_VCPU_* bits below */
    uint64_t gpr[16];               /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15 */
    uint64_t rip, rflags;
    uint64_t cr0, cr2, cr3, cr4, efer;
    uint64_t fs_base, gs_base, kernel_gs_base;
    uint64_t gdt_base, idt_base;
    uint16_t cs, ss, ds, es, fs, gs;
};
#define VMEM_VCPU_GPRS  0x1u        /* gpr, rip, rflags, selectors */
#define VMEM_VCPU_CRS   0x2u        /* cr0..cr4, efer */
#define VMEM_VCPU_BASES 0x4u        /* fs/gs/kernel_gs, gdt/idt bases */

/* Per-frame status values written by read_frames/write_frames. */
#define VMEM_FRAME_OK      0
/* -ENOENT: the source has no data for this frame (outside RAM, or a page the
 *          dump left out).  The padded view reads it as zeros; the strict
 *          view treats it as a hole.
 * -EIO (or another -errno): the source failed (corrupt data, file shrank,
 *          VM gone).  Both views fail the read with that error. */

/* Most frames core passes to one read_frames/write_frames call.  A driver
 * whose transport has a smaller limit splits the batch itself. */
#define VMEM_BATCH_MAX 1024

/* Capabilities of an open source (struct vmem_driver.caps). */
#define VMEM_CAP_IMMUTABLE 0x1u  /* contents never change (a dump): results
                                    may be cached forever, also by the kernel */
#define VMEM_CAP_SLOW      0x2u  /* frames are expensive (decompression,
                                    remote peek, hypercalls): core caches them */

struct json_object;

struct vmem_driver_ops {
    const char *name;               /* "file", "qemu", ... */

    /* The guest-physical layout: ranges sorted by start, not overlapping,
     * every end <= VMEM_GPA_LIMIT; ranges the source keeps apart (RAM below
     * and above a PCI hole, ROM beside RAM) stay separate entries even when
     * they touch.  The array is owned by the driver and stays valid until
     * close (invariant 4).  Required; never fails once open succeeded (a
     * source whose layout cannot be read fails open instead). */
    int (*ranges)(void *drv, const struct vmem_range **out, size_t *n);

    /* Re-read the guest-physical layout, optional (live sources whose
     * layout can change: firmware mapping RAM over ROM, hotplug).  Returns
     * 1 when it changed (the next ranges() call returns the new array), 0
     * when unchanged, -errno on failure (the old layout stays).  Blocks on
     * the hypervisor (bounded); never called on the read path. */
    int (*refresh)(void *drv);

    /* Fast path, optional: a host pointer to guest memory [gpa, gpa+len),
     * contiguous, valid until close; NULL when the span is not mapped as one
     * piece (core then falls back to read_frames).  gpa and len need no
     * alignment; a non-NULL answer covers bytes inside one range of
     * ranges().  Touching it may raise SIGBUS if the backing file shrinks:
     * core copies from it only under vmem_guard (core/phys/guard.h) or hands
     * it to the kernel, which turns the fault into EFAULT.  Must not block. */
    void *(*map)(void *drv, uint64_t gpa, size_t len);

    /* Prefetch hint, optional: [gpa, gpa+len) of a mapping is about to be
     * read.  A file-backed mapping starts reading it from disk now,
     * asynchronously, so that a random read fetches what it needs rather
     * than the fault read-around of the whole neighbourhood, and a
     * sequential one stays ahead of the reader.  Must not block on I/O. */
    void (*prefetch)(void *drv, uint64_t gpa, size_t len);

    /* Batched read, required: for i < n (n <= VMEM_BATCH_MAX, gfns in any
     * order, possibly repeated), copy frame gfns[i] (4 KiB) into bufs[i]
     * and set status[i] (VMEM_FRAME_OK, -ENOENT or -errno).  Buffers are
     * owned by the caller and only written for the duration of the call.
     * Returns 0 when the per-frame statuses are meaningful, or -errno when
     * the whole batch failed (then statuses are undefined and core treats
     * every frame as failed with that error). */
    int (*read_frames)(void *drv, const uint64_t *gfns, void *const *bufs,
                       int *status, size_t n);

    /* Batched write, optional (only offered when opened with VMEM_OPEN_RW).
     * Same contract as read_frames. */
    int (*write_frames)(void *drv, const uint64_t *gfns,
                        const void *const *bufs, int *status, size_t n);

    /* Byte-granular write, optional (VMEM_OPEN_RW only), preferred by core
     * over write_frames: [gpa, gpa+len) lies in one range; writes exactly
     * those bytes, so a running guest's writes to the rest of the page
     * survive.  Returns the bytes written (short only at an error) or
     * -errno. */
    ssize_t (*write)(void *drv, uint64_t gpa, const void *buf, size_t len);

    /* vCPU state, optional: how many vCPUs the source knows of ... */
    int (*vcpu_count)(void *drv);
    /* ... and the state of one (0 <= cpu < vcpu_count).  Live sources may
     * pause the vCPU for a moment to read it (bounded). */
    int (*vcpu_state)(void *drv, unsigned cpu, struct vmem_vcpu *out);

    /* Stop / restart the guest, optional (live sources only).  Idempotent:
     * pausing a paused guest is 0. */
    int (*pause)(void *drv);
    int (*resume)(void *drv);

    /* Has the source gone for good (the VM exited, the hypervisor dropped
     * it)?  Optional: live drivers answer from what they already know (a
     * closed monitor connection, a dead pid), without blocking.  The mount
     * then removes the VM's directory; open files keep failing with EIO. */
    bool (*gone)(void *drv);

    /* Page-table frames, optional (Xen PV guests only): the guest's page
     * tables hold frames of another space (machine frames) than the gfns
     * read_frames takes.  0 with *gfn the guest frame of table-entry frame
     * `frame`, or -ENOENT when it is none of the guest's.  Must not block
     * (a table lookup); the page walker applies it to every entry. */
    int (*frame_of_pte)(void *drv, uint64_t frame, uint64_t *gfn);

    /* Add driver facts (source path, format, ...) to the info.json object
     * `out`, optional.  Must not block on the hypervisor. */
    void (*describe)(void *drv, struct json_object *out);

    /* Release everything. Required.  Called once, last. */
    void (*close)(void *drv);
};

/* How a source is opened (vmem_driver_class.open's flags). */
#define VMEM_OPEN_RW 0x1u   /* -o rw: the driver may hold guest RAM writable
                               and offer write_frames; without it, never */

/* An open source: the ops, the driver's private state and what this
 * instance can do.  Owned by whoever opened it until handed to vm_new(). */
struct vmem_driver {
    const struct vmem_driver_ops *ops;
    void *priv;
    unsigned caps;                  /* VMEM_CAP_* */
};

/*
 * Wrappers: the only way core calls a driver.  Each answers for a missing
 * optional operation as the contract above says, so that no caller tests a
 * function pointer.
 */
static inline int vmem_drv_ranges(const struct vmem_driver *d,
                                  const struct vmem_range **out, size_t *n)
{
    return d->ops->ranges(d->priv, out, n);
}
static inline int vmem_drv_refresh(const struct vmem_driver *d)
{
    return d->ops->refresh ? d->ops->refresh(d->priv) : 0;
}
static inline void *vmem_drv_map(const struct vmem_driver *d, uint64_t gpa,
                                 size_t len)
{
    return d->ops->map ? d->ops->map(d->priv, gpa, len) : NULL;
}
static inline bool vmem_drv_can_map(const struct vmem_driver *d)
{
    return d->ops->map != NULL;
}
static inline bool vmem_drv_can_prefetch(const struct vmem_driver *d)
{
    return d->ops->prefetch != NULL;
}
static inline void vmem_drv_prefetch(const struct vmem_driver *d, uint64_t gpa,
                                     size_t len)
{
    if (d->ops->prefetch)
        d->ops->prefetch(d->priv, gpa, len);
}
static inline int vmem_drv_read_frames(const struct vmem_driver *d,
                                       const uint64_t *gfns, void *const *bufs,
                                       int *status, size_t n)
{
    return d->ops->read_frames(d->priv, gfns, bufs, status, n);
}
static inline bool vmem_drv_writable(const struct vmem_driver *d)
{
    return d->ops->write || d->ops->write_frames;
}
static inline bool vmem_drv_can_write_bytes(const struct vmem_driver *d)
{
    return d->ops->write != NULL;
}
static inline ssize_t vmem_drv_write(const struct vmem_driver *d, uint64_t gpa,
                                     const void *buf, size_t len)
{
    return d->ops->write ? d->ops->write(d->priv, gpa, buf, len) : -EROFS;
}
static inline int vmem_drv_write_frames(const struct vmem_driver *d,
                                        const uint64_t *gfns,
                                        const void *const *bufs, int *status,
                                        size_t n)
{
    return d->ops->write_frames ? d->ops->write_frames(d->priv, gfns, bufs, status, n)
                                : -EROFS;
}
static inline const char *vmem_drv_name(const struct vmem_driver *d)
{
    return d->ops->name;
}
static inline int vmem_drv_vcpu_count(const struct vmem_driver *d)
{
    if (!d->ops->vcpu_count || !d->ops->vcpu_state)
        return 0;
    int n = d->ops->vcpu_count(d->priv);
    return n < 0 ? 0 : n;
}
static inline int vmem_drv_vcpu_state(const struct vmem_driver *d, unsigned cpu,
                                      struct vmem_vcpu *out)
{
    if (!d->ops->vcpu_state)
        return -ENOTSUP;
    return d->ops->vcpu_state(d->priv, cpu, out);
}
static inline int vmem_drv_pause(const struct vmem_driver *d)
{
    return d->ops->pause ? d->ops->pause(d->priv) : -ENOTSUP;
}
static inline int vmem_drv_resume(const struct vmem_driver *d)
{
    return d->ops->resume ? d->ops->resume(d->priv) : -ENOTSUP;
}
static inline bool vmem_drv_gone(const struct vmem_driver *d)
{
    return d->ops->gone && d->ops->gone(d->priv);
}
static inline bool vmem_drv_has_frame_of_pte(const struct vmem_driver *d)
{
    return d->ops->frame_of_pte != NULL;
}
static inline int vmem_drv_frame_of_pte(const struct vmem_driver *d,
                                        uint64_t frame, uint64_t *gfn)
{
    if (!d->ops->frame_of_pte) {
        *gfn = frame;
        return 0;
    }
    return d->ops->frame_of_pte(d->priv, frame, gfn);
}
static inline void vmem_drv_describe(const struct vmem_driver *d,
                                     struct json_object *out)
{
    if (d->ops->describe)
        d->ops->describe(d->priv, out);
}
static inline void vmem_drv_close(struct vmem_driver *d)
{
    if (d->ops)
        d->ops->close(d->priv);
    d->ops = NULL;
    d->priv = NULL;
}

/*
 * Discovery: a driver whose sources come and go (a directory of QMP
 * sockets, a libvirt connection, a Xen host) announces them to a sink.
 *
 * The sink is fs/watch.c's: it opens what is found through the driver's own
 * open() (in a thread of its own, so that one slow source never delays
 * another) and takes out of the mount what is lost.  Names follow
 * vm_name_valid() (core/phys/vm.h); the sink puts them under the group the
 * user named for this discovery, if any.
 */
struct vmem_discovery_sink {
    void *ctx;
    /* A source appeared (or was there at start): `name` the VM's directory
     * name, `spec` what opens it ("qemu:/run/vm/web1.qmp").  Announcing a
     * name that is already present is harmless (ignored).  May be called
     * from any thread of the discovery; must not block for long. */
    void (*found)(void *ctx, const char *name, const char *spec);
    /* It went away for good (destroyed, socket removed).  Harmless for a
     * name never found. */
    void (*lost)(void *ctx, const char *name);
};
struct vmem_discovery;

/* A driver class: one row of drivers/registry.c's table. */
struct vmem_driver_class {
    const char *scheme;             /* "file" in "file:PATH" */
    const char *usage;              /* "file:PATH", for --help */
    const char *summary;            /* one line, for --help */
    /* Open the source `arg` (the spec after "scheme:") with VMEM_OPEN_*
     * flags: 0 and *out filled, or -errno with one line in err naming the
     * source and the problem.  Bounded: a peer that does not answer fails
     * with -ETIMEDOUT. */
    int (*open)(const char *arg, unsigned flags, struct vmem_driver *out,
                char *err, size_t errlen);
    /* Discovery, optional (NULL: the driver only opens named sources).
     * discover_option is the command-line option that starts it
     * ("qemu-dir" for --qemu-dir DIR).  start: watch `arg` (a directory, a
     * URI, "" for the local host) and report to sink until stop; 0 with
     * *out set, or -errno with one line in err.  The discovery runs its own
     * thread(s); stop joins them, and no sink call happens after it
     * returns. */
    const char *discover_option;
    const char *discover_usage;     /* "--qemu-dir DIR", for --help */
    const char *discover_summary;   /* one line, for --help */
    int (*discover_start)(const char *arg, const struct vmem_discovery_sink *sink,
                          struct vmem_discovery **out, char *err, size_t errlen);
    void (*discover_stop)(struct vmem_discovery *d);
};

#endif
