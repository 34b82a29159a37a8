/*
 * vm.h - the VM object: one memory source (a driver) plus what core builds
 * on it: the range map, the page cache, readahead, and the physical read
 * path that serves both the strict view (pmem) and the padded one
 * (pmem.raw).
 *
 * A struct vm is shared by all FUSE worker threads; every function here is
 * thread-safe.  The fs layer holds references (vm_get/vm_put) so a VM can
 * be removed from the mount while reads are still running on it.
 */
#ifndef VMEMFS_CORE_VM_H
#define VMEMFS_CORE_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/driver.h"

struct vm;
struct vm_layout;

struct vm_options {
    size_t cache_pages;             /* page-cache capacity, frames */
    uint64_t cache_ttl_ns;          /* validity window for live sources */
    unsigned readahead_max_pages;   /* sequential readahead ceiling */
    bool writable;                  /* -o rw: writes reach the driver */
};
void vm_options_default(struct vm_options *opt);

/* A VM name becomes a directory name: [A-Za-z0-9._-], 1..64 chars, not
 * "." or "..".  Returns true if acceptable. */
bool vm_name_valid(const char *name);

/* A VM over a driver already open (takes ownership of it, closing it on
 * failure too); spec is what the user wrote, for info.json.  Opening a spec
 * is drivers/registry.h's vmem_vm_open: core never picks a driver. */
struct vm *vm_new(const char *name, const char *spec, struct vmem_driver drv,
                  const struct vm_options *opt, char *err, size_t errlen);
/* Reference counting: vm_new returns one reference; the last vm_put
 * closes the driver. */
struct vm *vm_get(struct vm *vm);
void vm_put(struct vm *vm);

const char *vm_name(const struct vm *vm);
const char *vm_spec(const struct vm *vm);
/* True when the contents never change (a dump): the kernel may cache it. */
bool vm_immutable(const struct vm *vm);
/* Size of pmem/pmem.raw: the end of the highest range. */
uint64_t vm_phys_size(const struct vm *vm);
void vm_ranges(const struct vm *vm, const struct vmem_range **r, size_t *n);

enum vm_read_mode {
    VM_READ_STRICT,   /* pmem: stop at a hole; EIO if the read starts in one */
    VM_READ_PAD,      /* pmem.raw: holes read as zeros */
};

/* Per-open-file readahead state, owned by the caller (one per file handle).
 * Racy updates from concurrent reads only disturb the heuristic. */
struct vm_stream {
    uint64_t next_gpa;
    unsigned ra_pages;
};

/* One read assembled without copying where the driver maps memory: iovecs
 * point into driver mappings, a shared zero page, or `scratch`.  The caller
 * owns the struct; vm_reply_init/vm_reply_fini manage scratch. */
#define VM_REPLY_IOV 128
struct vm_reply {
    struct iovec iov[VM_REPLY_IOV];
    int niov;
    size_t len;
    uint8_t *scratch;
    size_t scratch_cap, scratch_used;
};
void vm_reply_init(struct vm_reply *r);
void vm_reply_fini(struct vm_reply *r);
/* The calling thread's own reply, created on first use and freed when the
 * thread exits (FUSE workers come and go); NULL on ENOMEM.  Valid until the
 * thread's next use of it; vm_read_phys has its own and never touches it. */
struct vm_reply *vm_thread_reply(void);

/* Physical read of [gpa, gpa+len) into reply.  Returns the byte count
 * (short at a hole in strict mode, or at the end of the space; 0 at EOF) or
 * -errno: -ENOENT when a strict read starts where the source has no data (a
 * hole, or a frame the dump left out: the fs answers EIO), -EIO (or another
 * error) when the source failed before the first byte.  Iovecs pointing into driver mappings may fault
 * (SIGBUS) if the source file shrank: hand them to the kernel (which turns
 * that into EFAULT) or copy them with vmem_guard_copy. */
ssize_t vm_read_phys_iov(struct vm *vm, uint64_t gpa, size_t len,
                         enum vm_read_mode mode, struct vm_stream *stream,
                         struct vm_reply *reply);
/* Virtual read of [va, va+len) in address space `as` (core/paging.h; va as
 * paging.h defines it): unmapped pages read as zeros, as do pages mapped to
 * memory the source lacks.  The byte count, or -errno when a page table or
 * a frame could not be read (the source failed). */
struct vmem_as;
ssize_t vm_read_virt_iov(struct vm *vm, struct vmem_as *as, uint64_t va,
                         size_t len, struct vm_reply *reply);
/* The same into a plain buffer (guarded copy).  For core's own readers
 * (page tables, kernel structures). */
ssize_t vm_read_phys(struct vm *vm, uint64_t gpa, void *buf, size_t len,
                     enum vm_read_mode mode);

/* Writes, only with -o rw and a driver that writes (vm_writable):
 * [gpa, gpa+len) or, through address space as, [va, va+len).  The byte
 * count (short where a hole or an unmapped page stops it), or -EROFS, -EIO
 * (nothing there to write to), or the driver's error.  At most 1 MiB. */
struct vmem_as;
bool vm_writable(const struct vm *vm);
ssize_t vm_write_phys(struct vm *vm, uint64_t gpa, const void *buf, size_t len);
ssize_t vm_write_virt(struct vm *vm, struct vmem_as *as, uint64_t va,
                      const void *buf, size_t len);

/* A page-table reader (core/paging.h) over this VM's physical memory:
 * whole reads or -ENOENT (no data there) or -EIO.  ctx is the vm, not
 * counted: the caller keeps the VM alive while the reader is in use. */
struct vmem_phys_reader;
void vm_phys_reader(struct vm *vm, struct vmem_phys_reader *out);

/* lseek SEEK_DATA / SEEK_HOLE on the physical space: the offset, or -ENXIO. */
off_t vm_seek_phys(struct vm *vm, off_t off, int whence);

/* Drop cached frames now (the guest changed, or the user asked). */
void vm_flush(struct vm *vm);
/* Live sources: have the driver re-read the guest-physical layout (firmware
 * mapping RAM over ROM, hotplug).  1 when it changed (the cache is dropped),
 * 0 when not or when the source has a fixed layout, -errno.  Blocks on the
 * hypervisor: not for the read path. */
int vm_refresh(struct vm *vm);
/* Has a live source gone for good (see vmem_driver_ops.gone)?  Once it
 * says so, every read and write of the VM fails with EIO. */
bool vm_gone(struct vm *vm);
/* Stop / restart the guest (live sources): 0, -ENOTSUP for a dump, or the
 * driver's error.  A resume also flushes. */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);

/* The source's vCPUs (dumps: the ELF/kdump notes; live sources: the
 * hypervisor).  vm_vcpu_count: how many, 0 when the source knows none.
 * vm_vcpu_state: 0 with *out filled (its `valid` bits say what is known),
 * -ENOTSUP when the source has no vCPU state, -EINVAL for a bad cpu, or the
 * driver's -errno. */
int vm_vcpu_count(struct vm *vm);
int vm_vcpu_state(struct vm *vm, unsigned cpu, struct vmem_vcpu *out);

/* What info.json says of the VM, as a json-c object (caller puts it), so
 * that other layers (the guest OS) can add to it; vm_json_text renders one
 * (malloc'd, pretty, newline-terminated). */
struct json_object;
struct json_object *vm_info(struct vm *vm);
char *vm_json_text(struct json_object *o, size_t *len);
/* Text of info.json / memmap, malloc'd, NUL-terminated; *len set. */
/* info.json lists at most the first 256 ranges ("ranges_total" counts
 * them all, "ranges_summarised" says when some were left out). */
char *vm_info_json(struct vm *vm, size_t *len);
/* memmap whole (for small layouts and tests; the fs streams it below). */
char *vm_memmap_text(struct vm *vm, size_t *len);

/* memmap read where it is read: a dump may hold millions of ranges, and
 * its text is never built whole.  A handle pins the layout of its open
 * (`size` is its length, the same as vm_memmap_size then); reads going
 * forward cost what they return, one behind the last restarts from the
 * top.  Thread-safe per handle. */
struct vm_memmap {
    const struct vm_layout *layout;
    uint64_t size;
    size_t line;                    /* first range of the line at line_off */
    uint64_t line_off;
    pthread_mutex_t lock;
};
void vm_memmap_open(struct vm *vm, struct vm_memmap *m);
size_t vm_memmap_read(struct vm_memmap *m, uint64_t off, char *buf, size_t len);
void vm_memmap_close(struct vm_memmap *m);
/* Cheap for every stat (computed once per layout): memmap's length, and
 * the bytes of guest memory the source holds. */
uint64_t vm_memmap_size(const struct vm *vm);
uint64_t vm_bytes_present(const struct vm *vm);

#endif
