/*
 * internal.h - what the pieces of the qemu driver share, and nobody else:
 * the source object (struct qemu_src), its RAM blocks and layouts.
 *
 *   qemu.c   the driver: monitor helpers, vCPUs and run state, describe,
 *            layouts, refresh, close, open, the class
 *   io.c     frame access: the zero-copy mapping, batched reads and writes
 *            of QEMU's memory (process_vm_readv/writev, the RAM file)
 *   ram.c    where each RAM block's bytes are: the shared memory-backend
 *            file, /proc/PID/map_files, or a host address in QEMU's memory,
 *            each proven against QMP reads before use
 */
#ifndef VMEMFS_DRIVERS_QEMU_INTERNAL_H
#define VMEMFS_DRIVERS_QEMU_INTERNAL_H

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
#include <time.h>
#include <unistd.h>

#include "drivers/qemu/qemu.h"
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
    /* While opening: every monitor command within the open's budget,
     * and none after the first that timed out (a stalled peer). */
    bool opening, open_stalled;
    int64_t open_deadline;          /* monotonic ms */
    int *cpu_index;                 /* query-cpus-fast order */
    int ncpus;
    struct vmem_driver_ops ops;
};

/* One piece of a batch: `len` bytes at `raddr`, an address in QEMU's
 * memory (fd < 0) or an offset in the RAM file fd. */
struct xfer {
    int fd;
    uint64_t raddr;
    void *buf;
    size_t len;
    int *status;
};


/* ---- qemu.c: monitor and process helpers ---- */
uint64_t qs_json_u64(json_object *o, const char *key, uint64_t dflt);
bool qs_json_flag(json_object *o, const char *key, bool dflt);
int64_t qs_mono_ms(void);
int qs_open_guard(struct qemu_src *s, char *err, size_t errlen);
int qs_exec(struct qemu_src *s, const char *cmd, json_object *args, json_object **ret, char *err, size_t errlen);
int qs_hmp(struct qemu_src *s, const char *cmdline, int cpu_index, char **out, char *err, size_t errlen);
char *qs_qom_get_str(struct qemu_src *s, const char *path, const char *prop);
char *qs_read_text(const char *path);
int qs_pidfd_open(pid_t pid);
bool qs_proc_gone(struct qemu_src *s);

/* ---- io.c: frame access ---- */
void qs_io_xfer(struct qemu_src *s, struct xfer *x, size_t n, bool write);
int qs_io_span(struct qemu_src *s, int fd, uint64_t raddr, void *buf, size_t len, bool write);
const struct qemu_layout *qs_cur_layout(struct qemu_src *s);
int qemu_ranges(void *drv, const struct vmem_range **out, size_t *n);
void *qemu_map(void *drv, uint64_t gpa, size_t len);
int qemu_read_frames(void *drv, const uint64_t *gfns, void *const *bufs, int *status, size_t n);
int qemu_write_frames(void *drv, const uint64_t *gfns, const void *const *bufs, int *status, size_t n);
ssize_t qemu_write(void *drv, uint64_t gpa, const void *buf, size_t len);

/* ---- qemu.c: vCPUs, describe, layouts, close ---- */
int qemu_vcpu_count(void *drv);
int qemu_vcpu_state(void *drv, unsigned cpu, struct vmem_vcpu *out);
bool qemu_gone(void *drv);
void qemu_describe(void *drv, json_object *out);
void qs_layout_free(struct qemu_layout *L);
struct qemu_layout *qs_layout_build(const struct qemu_src *s, const struct qemu_ram_seg *segs, size_t nsegs);
bool qs_layout_same(const struct qemu_layout *a, const struct qemu_layout *b);
void qs_layout_publish(struct qemu_src *s, struct qemu_layout *L);
void qs_retire_map(struct qemu_src *s, struct qemu_block *b);
void qemu_close(void *drv);

/* ---- ram.c: RAM blocks ---- */
/* QEMU's /proc/PID/maps, read once per open or refresh (lazily). */
struct maps_info {
    bool read, have;
    int err;                        /* why not, when !have */
    struct qemu_map *maps;
    size_t n;
};

int qs_load_blocks(struct qemu_src *s, char *err, size_t errlen);
int qs_read_layout(struct qemu_src *s, struct qemu_ram_seg **segs_out, size_t *nsegs_out, char *err, size_t errlen);
bool qs_seg_uses(const struct qemu_ram_seg *segs, size_t nsegs, size_t bi);
int qs_setup_block(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs, size_t nsegs, struct maps_info *mi, char *err, size_t errlen);
int qs_reverify(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs, size_t nsegs, struct maps_info *mi);

#endif
