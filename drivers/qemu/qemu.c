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
#include "drivers/qemu/internal.h"

/* ---------------------------------------------------------------- helpers */

uint64_t qs_json_u64(json_object *o, const char *key, uint64_t dflt)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return dflt;
    return (uint64_t)json_object_get_int64(v);
}

bool qs_json_flag(json_object *o, const char *key, bool dflt)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return dflt;
    return json_object_get_boolean(v);
}

int64_t qs_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whole open, at most (each command is also bounded by the monitor). */
#define QEMU_OPEN_BUDGET_MS 30000

/* While opening: -ETIMEDOUT once the peer stalled or the budget is spent. */
int qs_open_guard(struct qemu_src *s, char *err, size_t errlen)
{
    if (!s->opening)
        return 0;
    if (!s->open_stalled && qs_mono_ms() < s->open_deadline)
        return 0;
    snprintf(err, errlen, "QEMU's monitor %s while opening: given up",
             s->open_stalled ? "stopped answering" : "took too long");
    return -ETIMEDOUT;
}

/* The monitor's commands as qemu.c runs them (see qs_open_guard). */
int qs_exec(struct qemu_src *s, const char *cmd, json_object *args,
                  json_object **ret, char *err, size_t errlen)
{
    int rc = qs_open_guard(s, err, errlen);
    if (rc < 0) {
        json_object_put(args);
        return rc;
    }
    rc = qemu_mon_execute(s->mon, cmd, args, ret, err, errlen);
    if (rc == -ETIMEDOUT && s->opening)
        s->open_stalled = true;
    return rc;
}

int qs_hmp(struct qemu_src *s, const char *cmdline, int cpu_index, char **out,
                 char *err, size_t errlen)
{
    int rc = qs_open_guard(s, err, errlen);
    if (rc < 0) {
        *out = NULL;
        return rc;
    }
    rc = qemu_mon_hmp(s->mon, cmdline, cpu_index, out, err, errlen);
    if (rc == -ETIMEDOUT && s->opening)
        s->open_stalled = true;
    return rc;
}

/* qom-get of a string property; malloc'd or NULL. */
char *qs_qom_get_str(struct qemu_src *s, const char *path, const char *prop)
{
    json_object *args = json_object_new_object(), *ret = NULL;
    char err[256];
    json_object_object_add(args, "path", json_object_new_string(path));
    json_object_object_add(args, "property", json_object_new_string(prop));
    if (qs_exec(s, "qom-get", args, &ret, err, sizeof err) < 0)
        return NULL;
    char *v = NULL;
    if (json_object_is_type(ret, json_type_string))
        v = strdup(json_object_get_string(ret));
    json_object_put(ret);
    return v;
}

/* Whole text file (procfs files have no size); malloc'd or NULL (errno). */
char *qs_read_text(const char *path)
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

int qs_pidfd_open(pid_t pid)
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
bool qs_proc_gone(struct qemu_src *s)
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

/* ------------------------------------------------------ vCPUs, run state */

int qemu_vcpu_count(void *drv)
{
    struct qemu_src *s = drv;
    return s->ncpus;
}

int qemu_vcpu_state(void *drv, unsigned cpu, struct vmem_vcpu *out)
{
    struct qemu_src *s = drv;
    if (cpu >= (unsigned)s->ncpus)
        return -ENOENT;
    char *text = NULL, err[256];
    int rc = qs_hmp(s, "info registers", s->cpu_index[cpu], &text, err, sizeof err);
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
    return qs_exec(s, cmd, NULL, NULL, err, sizeof err);
}

int qemu_pause(void *drv) { return run_cmd(drv, "stop"); }
int qemu_resume(void *drv) { return run_cmd(drv, "cont"); }

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
bool qemu_gone(void *drv)
{
    struct qemu_src *s = drv;
    return qs_proc_gone(s) || !qemu_mon_alive(s->mon);
}

void qemu_describe(void *drv, json_object *out)
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
    const struct qemu_layout *L = qs_cur_layout(s);
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
        if (qs_exec(s, "query-status", NULL, &st, err, sizeof err) == 0) {
            json_object *v;
            if (json_object_object_get_ex(st, "status", &v))
                json_object_object_add(out, "run_state", json_object_get(v));
            json_object_put(st);
        }
    }
}

/* ---------------------------------------------------------------- layouts */

void qs_layout_free(struct qemu_layout *L)
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
struct qemu_layout *qs_layout_build(const struct qemu_src *s,
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
        qs_layout_free(L);
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

bool qs_layout_same(const struct qemu_layout *a, const struct qemu_layout *b)
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
void qs_layout_publish(struct qemu_src *s, struct qemu_layout *L)
{
    L->older = atomic_load_explicit(&s->layout, memory_order_relaxed);
    atomic_store_explicit(&s->layout, L, memory_order_release);
}

/* b's mapping is not for new layouts any more; old ones may still use it. */
void qs_retire_map(struct qemu_src *s, struct qemu_block *b)
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

void qemu_close(void *drv)
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
        qs_layout_free(L);
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

static int load_vcpus(struct qemu_src *s)
{
    json_object *ret = NULL;
    char err[256];
    if (qs_exec(s, "query-cpus-fast", NULL, &ret, err, sizeof err) < 0)
        return 0;                   /* vCPUs unknown: not fatal */
    size_t n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
    s->cpu_index = calloc(n ? n : 1, sizeof *s->cpu_index);
    if (!s->cpu_index) {
        json_object_put(ret);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s->cpu_index[i] = (int)qs_json_u64(json_object_array_get_idx(ret, i), "cpu-index",
                                        (uint64_t)i);
    s->ncpus = (int)n;
    json_object_put(ret);
    return 0;
}

/* QEMU's mappings (/proc/PID/maps), read when first needed. */
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
    int rc = qs_read_layout(s, &segs, &nsegs, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < s->nblocks; i++) {
        struct qemu_block *b = &s->blocks[i];
        if (b->failed || !qs_seg_uses(segs, nsegs, i))
            continue;
        b->used = true;
        if (b->access == ACCESS_NONE) {
            /* Guest RAM now, not before (a DIMM plugged since): find it. */
            int r = qs_setup_block(s, i, segs, nsegs, &mi, err, sizeof err);
            if (r == -EAGAIN || r == -ENODEV || r == -ENOMEM) {
                rc = r == -EAGAIN ? -EIO : r;
            } else if (r < 0) {
                qs_retire_map(s, b);
                b->access = ACCESS_NONE;
                b->failed = true;
                size_t l = strlen(b->note);
                snprintf(b->note + l, sizeof b->note - l, "%s: left out of the layout",
                         l ? "" : "not found");
            }
        } else if (b->blank) {
            rc = qs_reverify(s, i, segs, nsegs, &mi);
        }
    }
    if (rc == 0) {
        struct qemu_layout *L = qs_layout_build(s, segs, nsegs);
        if (!L) {
            rc = -ENOMEM;
        } else if (qs_layout_same(L, qs_cur_layout(s))) {
            qs_layout_free(L);
        } else {
            qs_layout_publish(s, L);
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
    s->opening = true;
    s->open_deadline = qs_mono_ms() + QEMU_OPEN_BUDGET_MS;
    char qerr[256];
    int rc;
    json_object *ver = NULL;
    rc = qs_exec(s, "query-version", NULL, &ver, qerr, sizeof qerr);
    if (rc == 0) {
        json_object *q, *pkg;
        if (json_object_object_get_ex(ver, "qemu", &q))
            snprintf(s->version, sizeof s->version, "%" PRIu64 ".%" PRIu64 ".%" PRIu64,
                     qs_json_u64(q, "major", 0), qs_json_u64(q, "minor", 0),
                     qs_json_u64(q, "micro", 0));
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
        s->pidfd = qs_pidfd_open(s->pid);
    if ((s->pidfd < 0 && errno == ESRCH) || qs_proc_gone(s)) {
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
    if ((rc = qs_load_blocks(s, err, errlen)) < 0 ||
        (rc = qs_read_layout(s, &segs, &nsegs, err, errlen)) < 0) {
        qemu_close(s);
        return rc;
    }

    /* Each block that is guest RAM: a mapped file, or QEMU's memory. */
    struct maps_info mi = {0};
    bool slow = false, mapped = false;
    for (size_t i = 0; i < s->nblocks && rc == 0; i++) {
        struct qemu_block *b = &s->blocks[i];
        if (!qs_seg_uses(segs, nsegs, i))
            continue;
        b->used = true;
        rc = qs_setup_block(s, i, segs, nsegs, &mi, err, errlen);
        if (rc == -EAGAIN)
            rc = -EIO;
        if (b->access == ACCESS_PROCESS)
            slow = true;
        else if (b->map)
            mapped = true;
    }
    free(mi.maps);
    if (rc == 0) {
        struct qemu_layout *L = qs_layout_build(s, segs, nsegs);
        if (L)
            qs_layout_publish(s, L);
        else
            rc = -ENOMEM;
    }
    free(segs);
    if (rc == 0)
        rc = load_vcpus(s);
    if (rc == 0 && qs_open_guard(s, qerr, sizeof qerr) < 0) {
        /* Optional answers (a backend's type, the vCPUs) timed out. */
        snprintf(err, errlen, "%s: %s", s->sock, qerr);
        rc = -ETIMEDOUT;
    }
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "%s: out of memory", s->sock);
        qemu_close(s);
        return rc;
    }
    s->opening = false;
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
    .discover_summary = "every QMP socket in DIR (web1.qmp -> web1), as they come and go",
    .discover_start = qemu_discover_start,
    .discover_stop = qemu_discover_stop,
};
