/*
 * read.c - the read path of the VM object (see vm.c's header for the
 * plan / frames / reply steps, and vm_internal.h).
 */
#include "core/phys/vm_internal.h"

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
