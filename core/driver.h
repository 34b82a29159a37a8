/*
 * driver.h - the frame-reader interface: the one contract every memory
 * source (dump file, live QEMU, libvirt, Xen) implements, and the only way
 * core/ reaches guest memory.
 *
 * A driver knows how to fetch guest-physical frames and nothing else: no
 * caching, no address translation, no file-system logic.  It either exposes
 * a stable host mapping of (part of) guest RAM, the zero-copy fast path, or
 * answers batched frame reads; callers try the mapping first.
 *
 * Threads: every operation may be called from several FUSE worker threads
 * at once; a driver serialises internally whatever needs it.
 *
 * Errors are negative errno values.  A driver that cannot do something
 * optional leaves the pointer NULL (never a stub that pretends): core reports
 * the missing capability instead of faking it.
 */
#ifndef VMEMFS_CORE_DRIVER_H
#define VMEMFS_CORE_DRIVER_H

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

/* Driver capability flags (vmem_driver_ops.flags). */
#define VMEM_DRV_IMMUTABLE 0x1u  /* contents never change (a dump): results
                                    may be cached forever, also by the kernel */
#define VMEM_DRV_SLOW      0x2u  /* frames are expensive (decompression,
                                    remote peek): core caches them */

struct json_object;

struct vmem_driver_ops {
    const char *name;               /* "file", "qemu", ... */
    unsigned flags;                 /* VMEM_DRV_* */

    /* The guest-physical layout: ranges sorted by start, not overlapping.
     * The array is owned by the driver and stays valid until close (a live
     * driver whose layout changes must keep the old array alive until then).
     * Required. */
    int (*ranges)(void *drv, const struct vmem_range **out, size_t *n);

    /* Re-read the guest-physical layout, optional (live sources whose
     * layout can change: firmware mapping RAM over ROM, hotplug).  Returns
     * 1 when it changed (the next ranges() call returns the new array; every
     * array ranges() ever returned stays valid until close), 0 when
     * unchanged, -errno on failure (the old layout stays).  May block on
     * the hypervisor for a moment; not called on the read path. */
    int (*refresh)(void *drv);

    /* Fast path, optional: a host pointer to guest memory [gpa, gpa+len),
     * contiguous, valid until close; NULL when the span is not mapped as one
     * piece (core then falls back to read_frames).  Touching it may raise
     * SIGBUS if the backing file shrinks: core copies from it only under
     * vmem_guard (core/guard.h) or hands it to the kernel, which turns the
     * fault into EFAULT. */
    void *(*map)(void *drv, uint64_t gpa, size_t len);

    /* Prefetch hint, optional: [gpa, gpa+len) of a mapping is about to be
     * read.  A file-backed mapping starts reading it from disk now,
     * asynchronously, so that a random read fetches what it needs rather
     * than the fault read-around of the whole neighbourhood, and a
     * sequential one stays ahead of the reader.  Must not block on I/O. */
    void (*prefetch)(void *drv, uint64_t gpa, size_t len);

    /* Batched read, required: for i < n, copy frame gfns[i] (4 KiB) into
     * bufs[i] and set status[i] (VMEM_FRAME_OK, -ENOENT or -errno).  Buffers
     * are owned by the caller.  Returns 0 when the per-frame statuses are
     * meaningful, or -errno when the whole batch failed (then statuses are
     * undefined). */
    int (*read_frames)(void *drv, const uint64_t *gfns, void *const *bufs,
                       int *status, size_t n);

    /* Batched write, optional (only used with -o rw). Same contract. */
    int (*write_frames)(void *drv, const uint64_t *gfns,
                        const void *const *bufs, int *status, size_t n);

    /* Byte-granular write, optional (-o rw only), preferred by core over
     * write_frames: [gpa, gpa+len) lies in one range; writes exactly those
     * bytes, so a running guest's writes to the rest of the page survive.
     * Returns the bytes written (short only at an error) or -errno. */
    ssize_t (*write)(void *drv, uint64_t gpa, const void *buf, size_t len);

    /* vCPU state, optional: how many vCPUs the source knows of ... */
    int (*vcpu_count)(void *drv);
    /* ... and the state of one (0 <= cpu < vcpu_count). */
    int (*vcpu_state)(void *drv, unsigned cpu, struct vmem_vcpu *out);

    /* Stop / restart the guest, optional (live sources only). */
    int (*pause)(void *drv);
    int (*resume)(void *drv);

    /* Has the source gone for good (the VM exited, the hypervisor dropped
     * it)?  Optional: live drivers answer from what they already know (a
     * closed monitor connection, a dead pid), without blocking.  The mount
     * then removes the VM's directory; open files keep failing with EIO. */
    bool (*gone)(void *drv);

    /* Add driver facts (source path, format, ...) to the info.json object
     * `out`, optional. */
    void (*describe)(void *drv, struct json_object *out);

    /* Release everything. Required. */
    void (*close)(void *drv);
};

/* How a source is opened (vmem_driver_open_fn's flags). */
#define VMEM_OPEN_RW 0x1u   /* -o rw: the driver may hold guest RAM writable
                               and offer write_frames; without it, never */

/* An open source: the ops and the driver's private state. */
struct vmem_driver {
    const struct vmem_driver_ops *ops;
    void *priv;
};

#endif
