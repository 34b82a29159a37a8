/*
 * vm.c - the VM object (see vm.h, and vm_internal.h for its pieces).
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
#include "core/phys/vm_internal.h"

/* Holes of the padded view point here: read-only use only. */
uint8_t vm_zeros[VM_READ_MAX];

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
    vm_layout_figures(L);
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
    vm_layout_figures(L);
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
