/*
 * vm.c - the VM object and the physical read path (see vm.h).
 *
 * A read is planned first, executed second:
 *   1. plan: walk [gpa, gpa+len) over the range map; a piece the driver maps
 *      becomes a pointer into the mapping (zero copy), a hole becomes zeros
 *      (padded view) or the end of the read (strict view), anything else
 *      becomes 4 KiB frame slots in the reply's scratch buffer;
 *   2. frames: slots are served from the page cache where it has them; the
 *      misses, plus readahead frames when the handle reads sequentially,
 *      go to the driver in ONE batched read_frames call;
 *   3. reply: pieces become iovecs, neighbours merged, in order.
 * The padded view never returns a short read before the end of the space:
 * the kernel, caching pmem.raw, would take a short read for end-of-file.
 */
#include "core/phys/vm.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/phys/cache.h"
#include "core/phys/guard.h"
#include "core/util/log.h"
#include "core/arch/x86/paging.h"
#include "core/phys/ranges.h"

#define VM_READ_MAX   (1u << 20)
#define VM_MAX_SLOTS  (VM_READ_MAX / VMEM_PAGE_SIZE + 2)
#define VM_MAX_RA     256u
#define PREFETCH_WINDOW (4u << 20)   /* ahead of a sequential mapped reader */
#define BULK_FRAMES   32u            /* a read this large is a copy or a scan */
#define CLUSTER_FRAMES 16u           /* core reads of slow live sources: 64 KiB */
#define VM_INFO_RANGES 256u          /* ranges info.json lists */

struct vm_layout {
    const struct vmem_range *r;
    size_t n;
    uint64_t phys_size;
    /* Figures of every stat, computed once per layout (a dump may hold
     * millions of ranges): RAM bytes present, and memmap's length. */
    uint64_t present;
    uint64_t memmap_len;
    struct vm_layout *older;
};

static void layout_figures(struct vm_layout *L);

struct vm {
    atomic_int refs;
    char *name;
    char *spec;
    struct vmem_driver drv;
    struct vm_options opt;
    /* The guest-physical layout.  Live sources can change it (vm_refresh):
     * readers take one snapshot per operation; old layouts stay until the
     * VM is freed, like the driver's arrays they point into. */
    _Atomic(struct vm_layout *) layout;
    struct vmem_cache *cache;       /* NULL when the driver maps memory */
    atomic_uint_fast64_t ra_frames, batches, frames_read;
    atomic_bool gone;               /* the source has gone for good */
};

/* Holes of the padded view point here: read-only use only. */
static uint8_t vm_zeros[VM_READ_MAX];

void vm_options_default(struct vm_options *opt)
{
    opt->cache_pages = 16384;                  /* 64 MiB */
    opt->cache_ttl_ns = 1000000000ull;         /* 1 s for live sources */
    opt->readahead_max_pages = VM_MAX_RA;      /* 1 MiB */
    opt->writable = false;
}

bool vm_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Every offset of pmem must fit an off_t, whatever a driver read from a
 * hostile source: refused here, for every driver, rather than failing each
 * stat later.  Ranges are sorted (driver contract), so the last ends
 * highest; an empty or wrapping one is refused too. */
static bool layout_valid(const struct vm_layout *L, const char *name, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < L->n; i++) {
        const struct vmem_range *r = &L->r[i];
        const char *why = r->end <= r->start ? "is empty or wraps"
                        : r->end > VMEM_GPA_LIMIT ? "ends above the highest "
                          "guest-physical address vmemfs serves (2^62)"
                        : NULL;
        if (why) {
            snprintf(err, errlen, "VM '%s': range 0x%" PRIx64 "-0x%" PRIx64 " %s",
                     name, r->start, r->end, why);
            return false;
        }
    }
    return true;
}

struct vm *vm_new(const char *name, const char *spec, struct vmem_driver drv,
                  const struct vm_options *opt, char *err, size_t errlen)
{
    struct vm *vm = calloc(1, sizeof *vm);
    if (!vm) {
        vmem_drv_close(&drv);
        snprintf(err, errlen, "VM '%s': out of memory", name);
        return NULL;
    }
    vm->drv = drv;
    atomic_init(&vm->refs, 1);
    vm->name = strdup(name);
    vm->spec = strdup(spec);
    vm->opt = *opt;
    if (vm->opt.readahead_max_pages > VM_MAX_RA)
        vm->opt.readahead_max_pages = VM_MAX_RA;
    struct vm_layout *L = calloc(1, sizeof *L);
    if (!L) {
        vmem_drv_close(&vm->drv);
        free(vm);
        snprintf(err, errlen, "VM '%s': out of memory", name);
        return NULL;
    }
    vmem_drv_ranges(&vm->drv, &L->r, &L->n);
    L->phys_size = vmem_ranges_end(L->r, L->n);
    layout_figures(L);
    atomic_init(&vm->layout, L);
    /* Every offset of pmem must fit an off_t, whatever the driver read from
     * a hostile source: refuse here, once for every driver, rather than
     * fail each stat later. */
    if (!layout_valid(L, name, err, errlen)) {
        vm_put(vm);
        return NULL;
    }
    if (vm->drv.caps & VMEM_CAP_SLOW) {
        uint64_t ttl = (vm->drv.caps & VMEM_CAP_IMMUTABLE) ? 0
                                                                 : opt->cache_ttl_ns;
        vm->cache = vmem_cache_new(opt->cache_pages, ttl);
    }
    if (!vm->name || !vm->spec ||
        ((vm->drv.caps & VMEM_CAP_SLOW) && !vm->cache)) {
        snprintf(err, errlen, "VM '%s': out of memory", name);
        vm_put(vm);
        return NULL;
    }
    return vm;
}

struct vm *vm_get(struct vm *vm)
{
    atomic_fetch_add(&vm->refs, 1);
    return vm;
}

void vm_put(struct vm *vm)
{
    if (!vm || atomic_fetch_sub(&vm->refs, 1) != 1)
        return;
    vmem_drv_close(&vm->drv);
    for (struct vm_layout *L = atomic_load(&vm->layout), *older; L; L = older) {
        older = L->older;
        free(L);
    }
    vmem_cache_free(vm->cache);
    free(vm->name);
    free(vm->spec);
    free(vm);
}

const char *vm_name(const struct vm *vm) { return vm->name; }
const char *vm_spec(const struct vm *vm) { return vm->spec; }
static inline const struct vm_layout *layout_of(const struct vm *vm)
{
    return atomic_load(&((struct vm *)vm)->layout);
}

uint64_t vm_phys_size(const struct vm *vm) { return layout_of(vm)->phys_size; }
uint64_t vm_bytes_present(const struct vm *vm) { return layout_of(vm)->present; }
uint64_t vm_memmap_size(const struct vm *vm) { return layout_of(vm)->memmap_len; }

int vm_refresh(struct vm *vm)
{
    int rc = vmem_drv_refresh(&vm->drv);
    if (rc <= 0)
        return rc;
    struct vm_layout *L = calloc(1, sizeof *L);
    if (!L)
        return -ENOMEM;
    vmem_drv_ranges(&vm->drv, &L->r, &L->n);
    L->phys_size = vmem_ranges_end(L->r, L->n);
    char why[256];
    if (!layout_valid(L, vm->name, why, sizeof why)) {
        vmem_log(LOG_ERR, "refresh: %s: the old layout stays", why);
        free(L);
        return -EINVAL;
    }
    layout_figures(L);
    /* One refresher at a time (the watcher thread, or a control write):
     * the exchange keeps the chain of old layouts whole either way. */
    L->older = atomic_exchange(&vm->layout, L);
    vm_flush(vm);
    return 1;
}

bool vm_immutable(const struct vm *vm)
{
    return (vm->drv.caps & VMEM_CAP_IMMUTABLE) != 0;
}

void vm_ranges(const struct vm *vm, const struct vmem_range **r, size_t *n)
{
    const struct vm_layout *L = layout_of(vm);
    *r = L->r;
    *n = L->n;
}

void vm_flush(struct vm *vm)
{
    if (vm->cache)
        vmem_cache_flush(vm->cache);
}

bool vm_gone(struct vm *vm)
{
    if (atomic_load(&vm->gone))
        return true;
    if (vmem_drv_gone(&vm->drv)) {
        /* From now on every read fails, even where the driver could still
         * serve stale bytes (a shared RAM file outlives its QEMU). */
        atomic_store(&vm->gone, true);
        return true;
    }
    return false;
}

int vm_pause(struct vm *vm)
{
    int rc = vmem_drv_pause(&vm->drv);
    /* What was cached came from before the pause: reads from now on must
     * see the paused guest, one instant. */
    if (rc == 0)
        vm_flush(vm);
    return rc;
}

int vm_resume(struct vm *vm)
{
    int rc = vmem_drv_resume(&vm->drv);
    /* The guest ran: nothing cached from before may be served again. */
    if (rc == 0)
        vm_flush(vm);
    return rc;
}

/* ---- the read path ---------------------------------------------------- */

void vm_reply_init(struct vm_reply *r)
{
    memset(r, 0, sizeof *r);
}

void vm_reply_fini(struct vm_reply *r)
{
    free(r->scratch);
    memset(r, 0, sizeof *r);
}

enum piece_kind { PIECE_MAP, PIECE_ZERO, PIECE_FRAME };

struct piece {
    enum piece_kind kind;
    size_t len;
    const uint8_t *ptr;     /* PIECE_MAP ... */
    uint64_t gpa;           /* ... and where it starts, for prefetch */
    unsigned slot;          /* PIECE_FRAME: which frame slot ... */
    size_t in_frame;        /* ... and where in it */
};

struct frame_slot {
    uint64_t gfn;
    int status;
};

/* A read of 1 MiB crosses at most VM_MAX_SLOTS frames; ranges finer than a
 * frame (byte-granular LiME or ELF) can cut it into any number of pieces, so
 * the plan is bounded on its own: a plan that fills up ends the read there
 * (see plan_read) and the caller's next read continues. */
#define PLAN_PIECES (VM_MAX_SLOTS * 2 + 8)
struct plan {
    struct piece piece[PLAN_PIECES];
    unsigned npieces;
    struct frame_slot slot[VM_MAX_SLOTS];
    unsigned nslots;
};

static int reply_reserve(struct vm_reply *r, size_t need)
{
    if (need <= r->scratch_cap)
        return 0;
    size_t cap = r->scratch_cap ? r->scratch_cap : 64 * 1024;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(r->scratch, cap);
    if (!p)
        return -ENOMEM;
    r->scratch = p;
    r->scratch_cap = cap;
    return 0;
}

static bool plan_full(const struct plan *p)
{
    return p->npieces >= PLAN_PIECES;
}

static void plan_add(struct plan *p, struct piece pc)
{
    if (!plan_full(p))                  /* callers check plan_full first */
        p->piece[p->npieces++] = pc;
}

/* Step 1: split the read over ranges, mappings, holes and frames.  Returns
 * the planned length: short in strict mode at a hole, and in either mode
 * where the plan ran out of pieces (ranges finer than a frame). */
static size_t plan_read(struct vm *vm, uint64_t gpa, size_t len,
                        enum vm_read_mode mode, struct plan *p)
{
    uint64_t pos = gpa, end = gpa + len;
    const struct vm_layout *L = layout_of(vm);
    const struct vmem_range *r = L->r;
    size_t n = L->n;
    bool can_map = vmem_drv_can_map(&vm->drv);

    p->npieces = 0;
    p->nslots = 0;
    while (pos < end && !plan_full(p)) {
        size_t i = vmem_ranges_upper(r, n, pos);
        if (i == n || r[i].start > pos) {
            uint64_t hole_end = (i < n && r[i].start < end) ? r[i].start : end;
            if (mode == VM_READ_STRICT)
                break;
            plan_add(p, (struct piece){.kind = PIECE_ZERO,
                                       .len = hole_end - pos});
            pos = hole_end;
            continue;
        }
        uint64_t piece_end = r[i].end < end ? r[i].end : end;
        const uint8_t *ptr = can_map ? vmem_drv_map(&vm->drv, pos, piece_end - pos) : NULL;
        if (ptr) {
            plan_add(p, (struct piece){.kind = PIECE_MAP, .ptr = ptr, .gpa = pos,
                                       .len = piece_end - pos});
            pos = piece_end;
            continue;
        }
        while (pos < piece_end && !plan_full(p)) {
            uint64_t gfn = pos >> VMEM_PAGE_SHIFT;
            size_t in_frame = pos & (VMEM_PAGE_SIZE - 1);
            size_t take = VMEM_PAGE_SIZE - in_frame;
            if (take > piece_end - pos)
                take = piece_end - pos;
            /* A frame split by a range boundary reuses its slot. */
            unsigned s;
            if (p->nslots && p->slot[p->nslots - 1].gfn == gfn) {
                s = p->nslots - 1;
            } else {
                s = p->nslots++;
                p->slot[s] = (struct frame_slot){.gfn = gfn, .status = 1};
            }
            plan_add(p, (struct piece){.kind = PIECE_FRAME, .slot = s,
                                       .in_frame = in_frame, .len = take});
            pos += take;
        }
    }
    return (size_t)(pos - gpa);
}

/* Readahead frames that follow the request, within RAM, not cached. */
static unsigned plan_readahead(struct vm *vm, uint64_t next_gpa, unsigned want,
                               uint64_t *gfns)
{
    unsigned n = 0;
    const struct vm_layout *L = layout_of(vm);
    uint64_t gfn = (next_gpa + VMEM_PAGE_SIZE - 1) >> VMEM_PAGE_SHIFT;
    for (unsigned k = 0; k < want; k++, gfn++) {
        uint64_t a = gfn << VMEM_PAGE_SHIFT;
        if (a >= L->phys_size)
            break;
        if (!vmem_ranges_find(L->r, L->n, a))
            continue;
        gfns[n++] = gfn;
    }
    return n;
}

/* Step 2: fill frame slots from the cache, then one driver batch for the
 * misses and the readahead. */
static int fetch_frames(struct vm *vm, struct plan *p, uint8_t *slot_buf,
                        struct vm_stream *stream, uint64_t req_end)
{
    uint64_t gfns[VM_MAX_SLOTS + VM_MAX_RA];
    void *bufs[VM_MAX_SLOTS + VM_MAX_RA];
    int status[VM_MAX_SLOTS + VM_MAX_RA];
    unsigned miss_slot[VM_MAX_SLOTS];
    unsigned nmiss = 0;

    /* A bulk read of a live source (a copy, a scan) goes to the source
     * whole: nothing cached is fresher than the source itself, and its data
     * would only push the small, hot frames (page tables, kernel
     * structures) out of the cache, to go stale within the window. */
    bool bulk_live = !(vm->drv.caps & VMEM_CAP_IMMUTABLE) &&
                     p->nslots >= BULK_FRAMES;
    /* The same for core's own bulk reads of any source (the banner scan
     * over RAM): read once, never again, they would flush what the walks
     * need. */
    bool bulk_scan = !stream && p->nslots >= BULK_FRAMES;
    struct vmem_cache *cache = bulk_live || bulk_scan ? NULL : vm->cache;
    for (unsigned s = 0; s < p->nslots; s++) {
        uint8_t *dst = slot_buf + (size_t)s * VMEM_PAGE_SIZE;
        if (cache && vmem_cache_get(cache, p->slot[s].gfn, dst)) {
            p->slot[s].status = 0;
            continue;
        }
        gfns[nmiss] = p->slot[s].gfn;
        bufs[nmiss] = dst;
        miss_slot[nmiss] = s;
        nmiss++;
    }

    /* Readahead only for cached sources, only while the handle reads
     * sequentially, and only when this read itself missed: a stream already
     * served from the cache needs no more. */
    unsigned nra = 0;
    uint8_t *ra_buf = NULL;
    if (cache && stream && nmiss && stream->ra_pages) {
        nra = plan_readahead(vm, req_end, stream->ra_pages, gfns + nmiss);
        unsigned kept = 0;
        for (unsigned k = 0; k < nra; k++) {
            if (vmem_cache_contains(vm->cache, gfns[nmiss + k]))
                continue;
            gfns[nmiss + kept++] = gfns[nmiss + k];
        }
        nra = kept;
        if (nra) {
            ra_buf = malloc((size_t)nra * VMEM_PAGE_SIZE);
            if (!ra_buf)
                nra = 0;
            for (unsigned k = 0; k < nra; k++)
                bufs[nmiss + k] = ra_buf + (size_t)k * VMEM_PAGE_SIZE;
        }
    }

    /* Core's own small reads (page tables, kernel structures) of a slow live
     * source (a remote peek, a hypercall): one call costs about the same for
     * one frame as for a few neighbours, and kernel structures and the
     * tables of one walk sit close together: fetch the aligned cluster
     * around the first miss too, into the cache. */
    if (cache && !stream && nmiss && !nra && (vm->drv.caps & VMEM_CAP_SLOW) &&
        !(vm->drv.caps & VMEM_CAP_IMMUTABLE)) {
        const struct vm_layout *L = layout_of(vm);
        uint64_t base = gfns[0] & ~(uint64_t)(CLUSTER_FRAMES - 1);
        for (uint64_t g = base; g < base + CLUSTER_FRAMES && nra < VM_MAX_RA; g++) {
            bool wanted = false;
            for (unsigned k = 0; k < nmiss && !wanted; k++)
                wanted = gfns[k] == g;
            if (wanted || !vmem_ranges_find(L->r, L->n, g << VMEM_PAGE_SHIFT) ||
                vmem_cache_contains(cache, g))
                continue;
            gfns[nmiss + nra++] = g;
        }
        if (nra) {
            ra_buf = malloc((size_t)nra * VMEM_PAGE_SIZE);
            if (!ra_buf)
                nra = 0;
            for (unsigned k = 0; k < nra; k++)
                bufs[nmiss + k] = ra_buf + (size_t)k * VMEM_PAGE_SIZE;
        }
    }

    if (nmiss + nra == 0)
        return 0;
    int rc = vmem_drv_read_frames(&vm->drv, gfns, bufs, status,
                                      nmiss + nra);
    atomic_fetch_add(&vm->batches, 1);
    atomic_fetch_add(&vm->frames_read, nmiss + nra);
    atomic_fetch_add(&vm->ra_frames, nra);
    if (rc < 0) {
        free(ra_buf);
        return rc;
    }
    for (unsigned k = 0; k < nmiss; k++) {
        p->slot[miss_slot[k]].status = status[k];
        if (status[k] == 0 && cache)
            vmem_cache_put(vm->cache, gfns[k], bufs[k]);
    }
    for (unsigned k = nmiss; k < nmiss + nra; k++)
        if (status[k] == 0)
            vmem_cache_put(vm->cache, gfns[k], bufs[k]);
    free(ra_buf);
    return 0;
}

static void reply_push(struct vm_reply *r, const void *base, size_t len)
{
    if (r->niov > 0) {
        struct iovec *last = &r->iov[r->niov - 1];
        if ((const uint8_t *)last->iov_base + last->iov_len == base) {
            last->iov_len += len;
            r->len += len;
            return;
        }
    }
    r->iov[r->niov].iov_base = (void *)base;
    r->iov[r->niov].iov_len = len;
    r->niov++;
    r->len += len;
}

static void stream_update(struct vm *vm, struct vm_stream *stream, uint64_t gpa,
                          size_t got)
{
    if (!stream)
        return;
    if (gpa == stream->next_gpa && got) {
        unsigned ra = stream->ra_pages ? stream->ra_pages * 2 : 16;
        stream->ra_pages = ra < vm->opt.readahead_max_pages
                               ? ra : vm->opt.readahead_max_pages;
    } else {
        stream->ra_pages = 0;
    }
    stream->next_gpa = gpa + got;
}

/* Mapped pieces of a file-backed source: start reading them from disk now
 * (the driver's fault read-around is off, see drivers/file/file.c). */
static void prefetch_plan(struct vm *vm, const struct plan *p)
{
    if (!vmem_drv_can_prefetch(&vm->drv))
        return;
    for (unsigned k = 0; k < p->npieces; k++)
        if (p->piece[k].kind == PIECE_MAP)
            vmem_drv_prefetch(&vm->drv, p->piece[k].gpa, p->piece[k].len);
}

/* Steps 2 and 3 for a plan of `planned` bytes starting at `base` (a gpa,
 * or for virtual reads (virt) a gva: only for messages). */
static ssize_t execute_plan(struct vm *vm, struct plan *p, uint64_t base,
                            size_t planned, enum vm_read_mode mode,
                            struct vm_stream *stream, uint64_t ra_from,
                            bool virt, struct vm_reply *reply)
{
    uint64_t gpa = base;
    const char *space = virt ? "gva" : "gpa";
    /* Scratch: frame slots first; a tail area for compaction after. */
    size_t slot_bytes = (size_t)p->nslots * VMEM_PAGE_SIZE;
    if (reply_reserve(reply, slot_bytes + planned) < 0) {
        free(p);
        return -ENOMEM;
    }
    if (p->nslots) {
        int rc = fetch_frames(vm, p, reply->scratch, stream, ra_from);
        if (rc < 0) {
            vmem_log_ratelimited(vm, LOG_ERR,
                "read_frames failed: VM '%s', gpa 0x%" PRIx64 "+0x%zx: %s",
                vm->name, gpa, planned, strerror(-rc));
            free(p);
            return rc;
        }
    }

    /* Step 3: assemble.  A frame the source does not have is a hole (strict:
     * end here; padded: zeros); a failed frame fails the padded read whole
     * and ends the strict one. */
    size_t done = 0;
    uint8_t *tail = reply->scratch + slot_bytes;
    size_t tail_used = 0;
    bool compact = false;
    for (unsigned k = 0; k < p->npieces; k++) {
        struct piece *pc = &p->piece[k];
        const uint8_t *src;
        if (pc->kind == PIECE_FRAME) {
            int st = p->slot[pc->slot].status;
            if (st != 0) {
                uint64_t at = gpa + done;
                if (mode == VM_READ_STRICT) {
                    if (st != -ENOENT)
                        vmem_log_ratelimited(vm, LOG_ERR,
                            "read: VM '%s', %s 0x%" PRIx64 ": %s", vm->name, space, at,
                            strerror(-st));
                    if (done == 0) {
                        free(p);
                        return st;
                    }
                    break;
                }
                if (st != -ENOENT) {
                    vmem_log_ratelimited(vm, LOG_ERR,
                        "read: VM '%s', %s 0x%" PRIx64 ": %s", vm->name, space, at,
                        strerror(-st));
                    free(p);
                    return st;
                }
                src = vm_zeros;
            } else {
                src = reply->scratch + (size_t)pc->slot * VMEM_PAGE_SIZE +
                      pc->in_frame;
            }
        } else if (pc->kind == PIECE_ZERO) {
            src = vm_zeros;
        } else {
            src = pc->ptr;
        }
        /* Out of iovecs: copy the rest contiguously into the tail area. */
        if (!compact && reply->niov >= VM_REPLY_IOV - 1)
            compact = true;
        if (compact) {
            if (tail_used == 0)
                reply_push(reply, tail, 0);
            int rc = vmem_guard_copy(tail + tail_used, src, pc->len);
            if (rc < 0) {
                free(p);
                return rc;
            }
            tail_used += pc->len;
            reply->iov[reply->niov - 1].iov_len = tail_used;
            reply->len += pc->len;
        } else {
            /* Zeros longer than the zero page: split. */
            size_t left = pc->len;
            while (left) {
                size_t chunk = left;
                if (src == vm_zeros && chunk > sizeof vm_zeros)
                    chunk = sizeof vm_zeros;
                reply_push(reply, src == vm_zeros ? vm_zeros : src + (pc->len - left),
                           chunk);
                left -= chunk;
            }
        }
        done += pc->len;
    }
    free(p);
    if (stream)
        stream_update(vm, stream, gpa, done);
    return (ssize_t)done;
}

/* The padded view never ends short before the end of the space (the kernel
 * would take it for the end of the file); a plan that ran out of pieces is
 * completed into one buffer, the reply's scratch from then on. */
static ssize_t pad_complete(struct vm *vm, uint64_t gpa, size_t len, size_t got,
                            struct vm_reply *reply)
{
    uint8_t *buf = malloc(len);
    if (!buf)
        return (ssize_t)got;            /* short, but right */
    uint8_t *dst = buf;
    for (int i = 0; i < reply->niov; i++) {
        if (vmem_guard_copy(dst, reply->iov[i].iov_base, reply->iov[i].iov_len) < 0) {
            free(buf);
            return (ssize_t)got;
        }
        dst += reply->iov[i].iov_len;
    }
    ssize_t more = vm_read_phys(vm, gpa + got, buf + got, len - got, VM_READ_PAD);
    if (more > 0)
        got += (size_t)more;
    free(reply->scratch);
    reply->scratch = buf;
    reply->scratch_cap = len;
    reply->scratch_used = got;
    reply->iov[0].iov_base = buf;
    reply->iov[0].iov_len = got;
    reply->niov = 1;
    reply->len = got;
    return (ssize_t)got;
}

static ssize_t read_phys_iov(struct vm *vm, uint64_t gpa, size_t len,
                             enum vm_read_mode mode, struct vm_stream *stream,
                             struct vm_reply *reply, bool complete);

ssize_t vm_read_phys_iov(struct vm *vm, uint64_t gpa, size_t len,
                         enum vm_read_mode mode, struct vm_stream *stream,
                         struct vm_reply *reply)
{
    return read_phys_iov(vm, gpa, len, mode, stream, reply, true);
}

/* complete: finish a padded read cut short by a full plan (pad_complete);
 * vm_read_phys, which loops itself, does not ask for it. */
static ssize_t read_phys_iov(struct vm *vm, uint64_t gpa, size_t len,
                             enum vm_read_mode mode, struct vm_stream *stream,
                             struct vm_reply *reply, bool complete)
{
    reply->niov = 0;
    reply->len = 0;
    reply->scratch_used = 0;
    if (atomic_load(&vm->gone))
        return -EIO;
    const struct vm_layout *L = layout_of(vm);
    if (gpa >= L->phys_size)
        return 0;
    if (len > VM_READ_MAX)
        len = VM_READ_MAX;
    if (len > L->phys_size - gpa)
        len = (size_t)(L->phys_size - gpa);

    struct plan *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    size_t planned = plan_read(vm, gpa, len, mode, p);
    if (planned == 0) {
        free(p);
        return -ENOENT;                 /* strict read starting in a hole */
    }
    prefetch_plan(vm, p);
    /* A sequential reader of a mapped source: have the window after this
     * read on its way from disk by the time the next request comes. */
    if (stream && vmem_drv_can_prefetch(&vm->drv) && gpa == stream->next_gpa &&
        gpa + planned < L->phys_size) {
        uint64_t ahead = gpa + planned;
        size_t win = PREFETCH_WINDOW;
        if (win > L->phys_size - ahead)
            win = (size_t)(L->phys_size - ahead);
        if (vmem_ranges_find(L->r, L->n, ahead) &&
            vmem_drv_map(&vm->drv, ahead, 1))
            vmem_drv_prefetch(&vm->drv, ahead, win);
    }
    ssize_t got = execute_plan(vm, p, gpa, planned, mode, stream, gpa + planned,
                               false, reply);
    if (complete && mode == VM_READ_PAD && got > 0 && (size_t)got < len) {
        got = pad_complete(vm, gpa, len, (size_t)got, reply);
        if (stream)
            stream->next_gpa = gpa + (uint64_t)got;
    }
    return got;
}

/* Plan a virtual read: pages translated in one batch, then each page is a
 * piece of the physical plan.  Unmapped pages, and pages mapped to no
 * memory the source holds (device memory, or a hostile entry), read as
 * zeros. */
static int plan_virt(struct vm *vm, struct vmem_as *as, uint64_t va, size_t len,
                     struct plan *p)
{
    uint64_t first = va & VMEM_PAGE_MASK;
    size_t npages = (size_t)(((va + len - 1) >> VMEM_PAGE_SHIFT) -
                             (va >> VMEM_PAGE_SHIFT) + 1);
    uint64_t gpas[VM_MAX_SLOTS];
    int rc = vmem_as_translate_range(as, first, npages, gpas);
    if (rc < 0 && rc != -EFAULT && rc != -ENOENT)
        return rc;
    bool can_map = vmem_drv_can_map(&vm->drv);
    const struct vm_layout *L = layout_of(vm);
    p->npieces = 0;
    p->nslots = 0;
    uint64_t pos = va, end = va + len;
    for (size_t i = 0; i < npages; i++) {
        size_t in_page = pos & (VMEM_PAGE_SIZE - 1);
        size_t take = VMEM_PAGE_SIZE - in_page;
        if (take > end - pos)
            take = (size_t)(end - pos);
        uint64_t gpa = gpas[i] == VMEM_GPA_NONE ? 0 : gpas[i] + in_page;
        struct piece *last = p->npieces ? &p->piece[p->npieces - 1] : NULL;
        if (gpas[i] == VMEM_GPA_NONE ||
            !vmem_ranges_find(L->r, L->n, gpa)) {
            if (last && last->kind == PIECE_ZERO)
                last->len += take;
            else
                plan_add(p, (struct piece){.kind = PIECE_ZERO, .len = take});
        } else {
            const uint8_t *ptr = can_map ? vmem_drv_map(&vm->drv, gpa, take) : NULL;
            if (ptr) {
                if (last && last->kind == PIECE_MAP && last->ptr + last->len == ptr &&
                    last->gpa + last->len == gpa)
                    last->len += take;
                else
                    plan_add(p, (struct piece){.kind = PIECE_MAP, .ptr = ptr,
                                               .gpa = gpa, .len = take});
            } else {
                unsigned s = p->nslots++;
                p->slot[s] = (struct frame_slot){.gfn = gpa >> VMEM_PAGE_SHIFT,
                                                 .status = 1};
                plan_add(p, (struct piece){.kind = PIECE_FRAME, .slot = s,
                                           .in_frame = in_page, .len = take});
            }
        }
        pos += take;
    }
    return 0;
}

ssize_t vm_read_virt_iov(struct vm *vm, struct vmem_as *as, uint64_t va,
                         size_t len, struct vm_reply *reply)
{
    reply->niov = 0;
    reply->len = 0;
    reply->scratch_used = 0;
    if (atomic_load(&vm->gone))
        return -EIO;
    if (len == 0)
        return 0;
    if (len > VM_READ_MAX)
        len = VM_READ_MAX;
    struct plan *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = plan_virt(vm, as, va, len, p);
    if (rc < 0) {
        vmem_log_ratelimited(vm, LOG_ERR, "read: VM '%s', gva 0x%" PRIx64
                             ": page-table read failed: %s", vm->name, va,
                             strerror(-rc));
        free(p);
        return rc;
    }
    prefetch_plan(vm, p);
    return execute_plan(vm, p, va, len, VM_READ_PAD, NULL, 0, true, reply);
}

/* Reply buffers per thread, freed with the thread: one for the caller's
 * reads (vm_thread_reply), one private to vm_read_phys, which runs inside
 * them (page-table reads while a virtual read is being planned). */
enum { REPLY_CALLER, REPLY_INTERNAL, REPLY_KINDS };
static pthread_key_t reply_key[REPLY_KINDS];
static pthread_once_t reply_once = PTHREAD_ONCE_INIT;

static void reply_free(void *p)
{
    vm_reply_fini(p);
    free(p);
}

static void reply_keys_init(void)
{
    for (int k = 0; k < REPLY_KINDS; k++)
        pthread_key_create(&reply_key[k], reply_free);
}

static struct vm_reply *thread_reply(int kind)
{
    pthread_once(&reply_once, reply_keys_init);
    struct vm_reply *rp = pthread_getspecific(reply_key[kind]);
    if (!rp) {
        rp = malloc(sizeof *rp);
        if (!rp)
            return NULL;
        vm_reply_init(rp);
        pthread_setspecific(reply_key[kind], rp);
    }
    return rp;
}

struct vm_reply *vm_thread_reply(void)
{
    return thread_reply(REPLY_CALLER);
}

ssize_t vm_read_phys(struct vm *vm, uint64_t gpa, void *buf, size_t len,
                     enum vm_read_mode mode)
{
    struct vm_reply *rp = thread_reply(REPLY_INTERNAL);
    if (!rp)
        return -ENOMEM;
    size_t total = 0;
    while (total < len) {
        ssize_t got = read_phys_iov(vm, gpa + total, len - total, mode, NULL,
                                    rp, false);
        if (got <= 0)
            return total ? (ssize_t)total : got;
        uint8_t *dst = (uint8_t *)buf + total;
        for (int i = 0; i < rp->niov; i++) {
            int rc = vmem_guard_copy(dst, rp->iov[i].iov_base,
                                     rp->iov[i].iov_len);
            if (rc < 0)
                return total ? (ssize_t)total : rc;
            dst += rp->iov[i].iov_len;
        }
        total += (size_t)got;
    }
    return (ssize_t)total;
}

/* ---- writes (-o rw) ---------------------------------------------------- */


bool vm_writable(const struct vm *vm)
{
    return vm->opt.writable && vmem_drv_writable(&vm->drv);
}

ssize_t vm_write_phys(struct vm *vm, uint64_t gpa, const void *buf, size_t len)
{
    if (!vm_writable(vm))
        return -EROFS;
    if (atomic_load(&vm->gone))
        return -EIO;
    if (len > VM_READ_MAX)
        len = VM_READ_MAX;
    size_t done = 0;
    uint8_t *frame = malloc(VMEM_PAGE_SIZE);
    if (!frame)
        return -ENOMEM;
    int rc = 0;
    /* Frame by frame: a write is rare next to reads, and a partial frame
     * needs its current contents first (read-modify-write). */
    while (done < len) {
        uint64_t at = gpa + done;
        const struct vm_layout *L = layout_of(vm);
        const struct vmem_range *r = vmem_ranges_find(L->r, L->n, at);
        if (!r) {
            rc = -EIO;              /* no RAM to write to */
            break;
        }
        uint64_t gfn = at >> VMEM_PAGE_SHIFT;
        size_t in_frame = at & (VMEM_PAGE_SIZE - 1);
        size_t take = VMEM_PAGE_SIZE - in_frame;
        if (take > len - done)
            take = len - done;
        if (take > r->end - at)
            take = (size_t)(r->end - at);
        if (vmem_drv_can_write_bytes(&vm->drv)) {
            /* Exactly these bytes: a running guest's writes to the rest of
             * the page are not undone by a read-modify-write. */
            ssize_t n = vmem_drv_write(&vm->drv, at,
                                           (const uint8_t *)buf + done, take);
            if (n <= 0) {
                rc = n < 0 ? (int)n : -EIO;
                break;
            }
            if (vm->cache)                  /* the cached copy is stale now */
                vmem_cache_forget(vm->cache, gfn);
            done += (size_t)n;
            continue;
        }
        int st;
        void *bufs[1] = {frame};
        if (take != VMEM_PAGE_SIZE) {
            rc = vmem_drv_read_frames(&vm->drv, &gfn, bufs, &st, 1);
            if (rc < 0 || st < 0) {
                rc = rc < 0 ? rc : st;
                break;
            }
        }
        memcpy(frame + in_frame, (const uint8_t *)buf + done, take);
        const void *cbufs[1] = {frame};
        rc = vmem_drv_write_frames(&vm->drv, &gfn, cbufs, &st, 1);
        if (rc < 0 || st < 0) {
            rc = rc < 0 ? rc : st;
            break;
        }
        if (vm->cache)
            vmem_cache_put(vm->cache, gfn, frame);
        done += take;
    }
    free(frame);
    if (rc < 0)
        vmem_log_ratelimited(vm, LOG_ERR, "write: VM '%s', gpa 0x%" PRIx64 ": %s",
                             vm->name, gpa + done, strerror(-rc));
    return done ? (ssize_t)done : rc;
}

ssize_t vm_write_virt(struct vm *vm, struct vmem_as *as, uint64_t va,
                      const void *buf, size_t len)
{
    if (!vm_writable(vm))
        return -EROFS;
    size_t done = 0;
    while (done < len) {
        uint64_t gpa;
        int rc = vmem_as_translate(as, va + done, &gpa, NULL);
        if (rc < 0)
            return done ? (ssize_t)done : (rc == -EFAULT ? -EIO : rc);
        size_t take = VMEM_PAGE_SIZE - ((va + done) & (VMEM_PAGE_SIZE - 1));
        if (take > len - done)
            take = len - done;
        ssize_t n = vm_write_phys(vm, gpa, (const uint8_t *)buf + done, take);
        if (n < 0)
            return done ? (ssize_t)done : n;
        done += (size_t)n;
        if ((size_t)n < take)
            break;
    }
    return (ssize_t)done;
}

static int phys_reader_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    ssize_t n = vm_read_phys(ctx, gpa, buf, len, VM_READ_STRICT);
    if (n == (ssize_t)len)
        return 0;
    return n >= 0 ? -ENOENT : (int)n;
}

/* Xen PV: page-table entries hold machine frames (driver.h frame_of_pte). */
static int phys_reader_frame(void *ctx, uint64_t frame, uint64_t *gfn)
{
    struct vm *vm = ctx;
    return vmem_drv_frame_of_pte(&vm->drv, frame, gfn);
}

void vm_phys_reader(struct vm *vm, struct vmem_phys_reader *out)
{
    out->read = phys_reader_read;
    out->ctx = vm;
    out->frame = vmem_drv_has_frame_of_pte(&vm->drv) ? phys_reader_frame : NULL;
}

off_t vm_seek_phys(struct vm *vm, off_t off, int whence)
{
    if (off < 0)
        return -ENXIO;
    int64_t r;
    const struct vm_layout *L = layout_of(vm);
    if (whence == SEEK_DATA)
        r = vmem_ranges_seek_data(L->r, L->n, (uint64_t)off, L->phys_size);
    else if (whence == SEEK_HOLE)
        r = vmem_ranges_seek_hole(L->r, L->n, (uint64_t)off, L->phys_size);
    else
        return -EINVAL;
    return r < 0 ? -ENXIO : (off_t)r;
}

int vm_vcpu_count(struct vm *vm)
{
    return vmem_drv_vcpu_count(&vm->drv);
}

int vm_vcpu_state(struct vm *vm, unsigned cpu, struct vmem_vcpu *out)
{
    int n = vmem_drv_vcpu_count(&vm->drv);
    if (n == 0)
        return -ENOTSUP;
    if (n <= 0 || cpu >= (unsigned)n)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    return vmem_drv_vcpu_state(&vm->drv, cpu, out);
}

/* ---- text files --------------------------------------------------------- */

static json_object *hex64(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "0x%" PRIx64, v);
    return json_object_new_string(s);
}

static const char *kind_name(unsigned kind)
{
    return kind == VMEM_RANGE_ROM ? "rom" : "ram";
}

struct json_object *vm_info(struct vm *vm)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(vm->name));
    json_object_object_add(o, "spec", json_object_new_string(vm->spec));
    json_object_object_add(o, "driver", json_object_new_string(vmem_drv_name(&vm->drv)));
    json_object *src = json_object_new_object();
    vmem_drv_describe(&vm->drv, src);
    json_object_object_add(o, "source", src);
    json_object_object_add(o, "immutable", json_object_new_boolean(vm_immutable(vm)));
    json_object_object_add(o, "writable", json_object_new_boolean(vm_writable(vm)));
    const struct vm_layout *L = layout_of(vm);
    json_object_object_add(o, "phys_size", json_object_new_int64((int64_t)L->phys_size));

    /* A hostile dump can hold millions of ranges: info.json lists the
     * first VM_INFO_RANGES and says so; memmap has them all. */
    json_object *ranges = json_object_new_array();
    size_t listed = L->n < VM_INFO_RANGES ? L->n : VM_INFO_RANGES;
    for (size_t i = 0; i < listed; i++) {
        json_object *r = json_object_new_object();
        json_object_object_add(r, "start", hex64(L->r[i].start));
        json_object_object_add(r, "end", hex64(L->r[i].end));
        json_object_object_add(r, "kind", json_object_new_string(kind_name(L->r[i].kind)));
        json_object_array_add(ranges, r);
    }
    json_object_object_add(o, "ranges", ranges);
    json_object_object_add(o, "ranges_total", json_object_new_int64((int64_t)L->n));
    json_object_object_add(o, "ranges_summarised", json_object_new_boolean(listed < L->n));
    json_object_object_add(o, "bytes_present", json_object_new_int64((int64_t)L->present));

    json_object *vcpus = json_object_new_array();
    int nvcpu = vmem_drv_vcpu_count(&vm->drv);
    for (int c = 0; c < nvcpu; c++) {
        struct vmem_vcpu v;
        if (vmem_drv_vcpu_state(&vm->drv, (unsigned)c, &v) < 0)
            continue;
        json_object *j = json_object_new_object();
        json_object_object_add(j, "id", json_object_new_int((int)v.id));
        if (v.valid & VMEM_VCPU_CRS) {
            json_object_object_add(j, "cr0", hex64(v.cr0));
            json_object_object_add(j, "cr3", hex64(v.cr3));
            json_object_object_add(j, "cr4", hex64(v.cr4));
            json_object_object_add(j, "efer", hex64(v.efer));
        }
        if (v.valid & VMEM_VCPU_GPRS) {
            static const char *names[16] = {"rax", "rbx", "rcx", "rdx", "rsi",
                "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
                "r14", "r15"};
            json_object_object_add(j, "rip", hex64(v.rip));
            json_object_object_add(j, "rflags", hex64(v.rflags));
            for (int g = 0; g < 16; g++)
                json_object_object_add(j, names[g], hex64(v.gpr[g]));
            json_object_object_add(j, "cs", hex64(v.cs));
        }
        if (v.valid & VMEM_VCPU_BASES) {
            json_object_object_add(j, "fs_base", hex64(v.fs_base));
            json_object_object_add(j, "gs_base", hex64(v.gs_base));
            json_object_object_add(j, "kernel_gs_base", hex64(v.kernel_gs_base));
            json_object_object_add(j, "gdt_base", hex64(v.gdt_base));
            json_object_object_add(j, "idt_base", hex64(v.idt_base));
        }
        json_object_array_add(vcpus, j);
    }
    json_object_object_add(o, "vcpus", vcpus);

    json_object *cache = NULL;
    if (vm->cache) {
        struct vmem_cache_stats st;
        vmem_cache_stats(vm->cache, &st);
        cache = json_object_new_object();
        json_object_object_add(cache, "capacity_pages", json_object_new_int64((int64_t)st.capacity_pages));
        json_object_object_add(cache, "used_pages", json_object_new_int64((int64_t)st.used_pages));
        json_object_object_add(cache, "hits", json_object_new_int64((int64_t)st.hits));
        json_object_object_add(cache, "misses", json_object_new_int64((int64_t)st.misses));
        json_object_object_add(cache, "expired", json_object_new_int64((int64_t)st.expired));
        json_object_object_add(cache, "evictions", json_object_new_int64((int64_t)st.evictions));
        uint64_t lookups = st.hits + st.misses;
        json_object_object_add(cache, "hit_rate", json_object_new_double(
            lookups ? (double)st.hits / (double)lookups : 0.0));
        json_object_object_add(cache, "ttl_ms", json_object_new_int64(
            vm_immutable(vm) ? 0 : (int64_t)(vm->opt.cache_ttl_ns / 1000000)));
    }
    json_object_object_add(o, "cache", cache);
    json_object *io = json_object_new_object();
    json_object_object_add(io, "batches", json_object_new_int64((int64_t)atomic_load(&vm->batches)));
    json_object_object_add(io, "frames_read", json_object_new_int64((int64_t)atomic_load(&vm->frames_read)));
    json_object_object_add(io, "readahead_frames", json_object_new_int64((int64_t)atomic_load(&vm->ra_frames)));
    json_object_object_add(o, "frame_reads", io);
    return o;
}

char *vm_json_text(struct json_object *o, size_t *len)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\n';
        out[n + 1] = 0;
        *len = n + 1;
    }
    return out;
}

char *vm_info_json(struct vm *vm, size_t *len)
{
    json_object *o = vm_info(vm);
    char *out = vm_json_text(o, len);
    json_object_put(o);
    return out;
}

/* memmap: /proc/iomem-style lines, one per run of touching ranges of one
 * kind, rendered where read (a dump may hold millions of ranges). */
static const char *memmap_kind(unsigned kind)
{
    return kind == VMEM_RANGE_ROM ? "Reserved" : "System RAM";
}

static unsigned hex_width(uint64_t v)
{
    unsigned w = 1;
    while (v >>= 4)
        w++;
    return w < 8 ? 8 : w;          /* %08x */
}

/* The run of ranges starting at index i: its end index (exclusive). */
static size_t memmap_run(const struct vm_layout *L, size_t i)
{
    size_t j = i + 1;
    while (j < L->n && L->r[j].start == L->r[j - 1].end &&
           L->r[j].kind == L->r[i].kind)
        j++;
    return j;
}

static size_t memmap_line_len(const struct vm_layout *L, size_t i, size_t j)
{
    return hex_width(L->r[i].start) + 1 + hex_width(L->r[j - 1].end - 1) + 3 +
           strlen(memmap_kind(L->r[i].kind)) + 1;
}

static void layout_figures(struct vm_layout *L)
{
    L->present = 0;
    L->memmap_len = 0;
    for (size_t i = 0; i < L->n; i++)
        L->present += L->r[i].end - L->r[i].start;
    for (size_t i = 0, j; i < L->n; i = j) {
        j = memmap_run(L, i);
        L->memmap_len += memmap_line_len(L, i, j);
    }
}

void vm_memmap_open(struct vm *vm, struct vm_memmap *m)
{
    m->layout = layout_of(vm);
    m->size = m->layout->memmap_len;
    m->line = 0;
    m->line_off = 0;
    pthread_mutex_init(&m->lock, NULL);
}

void vm_memmap_close(struct vm_memmap *m)
{
    pthread_mutex_destroy(&m->lock);
}

size_t vm_memmap_read(struct vm_memmap *m, uint64_t off, char *buf, size_t len)
{
    const struct vm_layout *L = m->layout;
    if (off >= m->size || len == 0)
        return 0;
    pthread_mutex_lock(&m->lock);
    /* Readers go forward: continue from the last line; start over only
     * for a read behind it. */
    if (off < m->line_off) {
        m->line = 0;
        m->line_off = 0;
    }
    size_t i = m->line, done = 0;
    uint64_t line_off = m->line_off;
    while (i < L->n && done < len) {
        size_t j = memmap_run(L, i);
        size_t ll = memmap_line_len(L, i, j);
        if (line_off + ll <= off) {
            line_off += ll;
            i = j;
            continue;
        }
        char line[80];
        snprintf(line, sizeof line, "%08" PRIx64 "-%08" PRIx64 " : %s\n",
                 L->r[i].start, L->r[j - 1].end - 1, memmap_kind(L->r[i].kind));
        size_t from = off + done > line_off ? (size_t)(off + done - line_off) : 0;
        size_t take = ll - from < len - done ? ll - from : len - done;
        memcpy(buf + done, line + from, take);
        done += take;
        if (from + take < ll)
            break;                  /* the next read continues this line */
        line_off += ll;
        i = j;
    }
    m->line = i;
    m->line_off = line_off;
    pthread_mutex_unlock(&m->lock);
    return done;
}

char *vm_memmap_text(struct vm *vm, size_t *len)
{
    struct vm_memmap m;
    vm_memmap_open(vm, &m);
    char *out = malloc(m.size + 1);
    if (out) {
        *len = vm_memmap_read(&m, 0, out, m.size);
        out[*len] = 0;
    }
    vm_memmap_close(&m);
    return out;
}
