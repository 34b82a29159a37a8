/*
 * info.c - what a VM says of itself: info.json (a json-c object other
 * layers add to) and memmap, rendered where read (see vm_internal.h).
 */
#include "core/phys/vm_internal.h"

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

void vm_layout_figures(struct vm_layout *L)
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
