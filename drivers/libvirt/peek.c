/*
 * peek.c - the libvirt driver's MemoryPeek path: guest-physical memory
 * through virDomainMemoryPeek(VIR_MEMORY_PHYSICAL), for domains of a remote
 * host, of a hypervisor that is not QEMU, or when the QEMU monitor
 * passthrough is not allowed.
 *
 * Each peek is a round trip to libvirtd and, for QEMU, a pmemsave into a
 * temporary file: 4-7 ms for 4 KiB, 25-70 ms for 4 MiB.  So a batch of
 * frames is sorted and cut into contiguous runs inside 4 MiB-aligned
 * windows (the remote protocol's limit), one peek per run, and the source
 * is VMEM_CAP_SLOW: core's page cache fronts it.
 *
 * Peek answers zeros, not an error, for holes and for addresses past RAM,
 * so the RAM map cannot be probed: it comes from the domain's definition
 * (architecture, machine type, RAM size) and the board code of QEMU 7.2
 * (lv_ram_layout).  The firmware ROM (SeaBIOS at 4 GiB - 256 KiB) and
 * hot-plugged DIMMs are not shown on this path.
 *
 * vCPU registers come from the QEMU monitor passthrough when it is allowed
 * ("info registers" through virDomainQemuMonitorCommand, which taints the
 * domain "custom-monitor"); without it the source has no vCPU state, and
 * the Linux layer finds the kernel's page tables from memory alone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "core/util/log.h"
#include "drivers/libvirt/libvirt.h"
#include "drivers/qemu/parse.h"

#define LV_MAX_RANGES 4
#define WINDOW_FRAMES (LV_PEEK_MAX >> VMEM_PAGE_SHIFT)

struct lv_peek {
    struct lv_dom *d;
    struct vmem_range ranges[LV_MAX_RANGES];
    size_t nranges;
    atomic_uint_fast64_t peeks, peek_bytes, peek_ns, peek_errors;
};

/* ------------------------------------------------------------ layout */

int lv_ram_layout(const char *arch, const char *machine, uint64_t ram_bytes,
                  struct vmem_range *out, size_t max)
{
    const uint64_t G4 = 1ull << 32;
    if (max < 2 || ram_bytes == 0 || ram_bytes >= VMEM_GPA_LIMIT / 2)
        return -EINVAL;
    bool x86 = strcmp(arch, "x86_64") == 0 || strcmp(arch, "i686") == 0;
    if (x86) {
        uint64_t lowmem;
        if (strcmp(machine, "q35") == 0 || strncmp(machine, "pc-q35-", 7) == 0) {
            /* hw/i386/pc_q35.c: 2 GiB below 4 GiB once RAM reaches 2.75 GiB
             * (room for the 64-bit-unaware PCI hole), else all of it. */
            lowmem = ram_bytes >= 0xb0000000ull ? 0x80000000ull : 0xb0000000ull;
        } else if (strcmp(machine, "pc") == 0 || strncmp(machine, "pc-", 3) == 0) {
            /* hw/i386/pc_piix.c: 3.5 GiB fit below; more splits at 3 GiB
             * (gigabyte_align, every machine type since pc-i440fx-1.7). */
            bool old = strncmp(machine, "pc-0.", 5) == 0 || strncmp(machine, "pc-1.", 5) == 0 ||
                       (strncmp(machine, "pc-i440fx-1.", 12) == 0 && machine[12] >= '4' &&
                        machine[12] <= '6' && machine[13] == 0);
            lowmem = ram_bytes >= 0xe0000000ull && !old ? 0xc0000000ull : 0xe0000000ull;
        } else {
            return -ENOTSUP;
        }
        uint64_t below = ram_bytes < lowmem ? ram_bytes : lowmem;
        out[0] = (struct vmem_range){0, below, VMEM_RANGE_RAM};
        if (ram_bytes > below) {
            out[1] = (struct vmem_range){G4, G4 + (ram_bytes - below), VMEM_RANGE_RAM};
            return 2;
        }
        return 1;
    }
    if (strcmp(arch, "aarch64") == 0 && strncmp(machine, "virt", 4) == 0) {
        /* hw/arm/virt.c: RAM from 1 GiB up. */
        out[0] = (struct vmem_range){1ull << 30, (1ull << 30) + ram_bytes, VMEM_RANGE_RAM};
        return 1;
    }
    return -ENOTSUP;
}

/* ------------------------------------------------------------ batching */

struct gfn_key {
    uint64_t gfn;
    size_t idx;
};

static int key_cmp(const void *a, const void *b)
{
    const struct gfn_key *x = a, *y = b;
    if (x->gfn != y->gfn)
        return x->gfn < y->gfn ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void lv_sort_gfns(const uint64_t *gfns, size_t *order, size_t n)
{
    struct gfn_key keys[VMEM_BATCH_MAX];
    struct gfn_key *k = n <= VMEM_BATCH_MAX ? keys : malloc(n * sizeof *k);
    if (!k) {
        /* Out of memory for a batch larger than core ever passes: an
         * insertion sort needs nothing. */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && gfns[order[j - 1]] > gfns[order[j]]; j--) {
                size_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        return;
    }
    for (size_t i = 0; i < n; i++)
        k[i] = (struct gfn_key){gfns[order[i]], order[i]};
    qsort(k, n, sizeof *k, key_cmp);
    for (size_t i = 0; i < n; i++)
        order[i] = k[i].idx;
    if (k != keys)
        free(k);
}

size_t lv_next_chunk(const uint64_t *gfns, const size_t *order, size_t n, size_t i,
                     uint64_t *start_gfn, uint64_t *nframes)
{
    uint64_t start = gfns[order[i]], last = start;
    uint64_t window_end = (start / WINDOW_FRAMES + 1) * WINDOW_FRAMES;
    size_t j = i + 1;
    for (; j < n; j++) {
        uint64_t g = gfns[order[j]];
        if (g == last)
            continue;                       /* a repeated frame */
        if (g != last + 1 || g >= window_end)
            break;
        last = g;
    }
    *start_gfn = start;
    *nframes = last - start + 1;
    return j;
}

/* ------------------------------------------------------------ the domain */

/* ------------------------------------------------------------ the ops */

static int peek_ranges(void *drv, const struct vmem_range **out, size_t *n)
{
    struct lv_peek *s = drv;
    *out = s->ranges;
    *n = s->nranges;
    return 0;
}

static bool in_ranges(const struct lv_peek *s, uint64_t gfn)
{
    uint64_t a = gfn << VMEM_PAGE_SHIFT;
    for (size_t i = 0; i < s->nranges; i++)
        if (a >= s->ranges[i].start && a + VMEM_PAGE_SIZE <= s->ranges[i].end)
            return true;
    return false;
}

static int peek_read_frames(void *drv, const uint64_t *gfns, void *const *bufs,
                            int *status, size_t n)
{
    struct lv_peek *s = drv;
    size_t order_stack[VMEM_BATCH_MAX];
    size_t *order = n <= VMEM_BATCH_MAX ? order_stack : malloc(n * sizeof *order);
    if (!order)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (gfns[i] < (VMEM_GPA_LIMIT >> VMEM_PAGE_SHIFT) && in_ranges(s, gfns[i]))
            order[m++] = i;
        else
            status[i] = -ENOENT;
    }
    int rc = 0;
    virDomainPtr d = m ? lv_dom_get(s->d, &rc) : NULL;
    if (m && !d) {
        for (size_t k = 0; k < m; k++)
            status[order[k]] = -EIO;
        goto out;
    }
    lv_sort_gfns(gfns, order, m);
    uint8_t *chunk = NULL;
    for (size_t i = 0; i < m;) {
        uint64_t start, nf;
        size_t j = lv_next_chunk(gfns, order, m, i, &start, &nf);
        int st = 0;
        if (!chunk && !(chunk = malloc(LV_PEEK_MAX))) {
            st = -ENOMEM;
        } else if (lv_dom_gone(s->d)) {
            st = -EIO;
        } else {
            uint64_t t0 = lv_now_ns();
            size_t len = (size_t)nf << VMEM_PAGE_SHIFT;
            if (virDomainMemoryPeek(d, start << VMEM_PAGE_SHIFT, len, chunk,
                                    VIR_MEMORY_PHYSICAL) < 0) {
                char what[80];
                snprintf(what, sizeof what, "memory peek at gpa 0x%" PRIx64 " (+0x%zx)",
                         start << VMEM_PAGE_SHIFT, len);
                st = lv_dom_failed(s->d, what);
                atomic_fetch_add(&s->peek_errors, 1);
            } else {
                atomic_fetch_add(&s->peeks, 1);
                atomic_fetch_add(&s->peek_bytes, len);
                atomic_fetch_add(&s->peek_ns, lv_now_ns() - t0);
            }
        }
        for (size_t k = i; k < j; k++) {
            size_t idx = order[k];
            status[idx] = st;
            if (st == 0)
                memcpy(bufs[idx], chunk + ((gfns[idx] - start) << VMEM_PAGE_SHIFT),
                       VMEM_PAGE_SIZE);
        }
        i = j;
    }
    free(chunk);
    virDomainFree(d);
out:
    if (order != order_stack)
        free(order);
    return 0;
}

static int peek_pause(void *drv) { return lv_dom_run_state(((struct lv_peek *)drv)->d, true); }
static int peek_resume(void *drv) { return lv_dom_run_state(((struct lv_peek *)drv)->d, false); }

static int peek_vcpu_count(void *drv)
{
    return (int)((struct lv_peek *)drv)->d->facts.nvcpus;
}

/* "info registers" of one vCPU through the monitor passthrough: QMP's
 * human-monitor-command takes the cpu-index (HMP alone would need a
 * separate "cpu N" first, which another monitor user could undo). */
static int peek_vcpu_state(void *drv, unsigned cpu, struct vmem_vcpu *out)
{
    struct lv_dom *s = ((struct lv_peek *)drv)->d;
    int rc;
    virDomainPtr d = lv_dom_get(s, &rc);
    if (!d)
        return rc == -ENODEV ? -EIO : rc;
    char cmd[160], *reply = NULL;
    snprintf(cmd, sizeof cmd,
             "{\"execute\":\"human-monitor-command\",\"arguments\":"
             "{\"command-line\":\"info registers\",\"cpu-index\":%u}}", cpu);
    rc = 0;
    if (virDomainQemuMonitorCommand(d, cmd, &reply, 0) < 0) {
        rc = lv_dom_failed(s, "monitor passthrough: info registers");
    } else {
        json_object *j = json_tokener_parse(reply), *ret;
        memset(out, 0, sizeof *out);
        out->id = cpu;
        if (!j || !json_object_object_get_ex(j, "return", &ret) ||
            !json_object_is_type(ret, json_type_string) ||
            qemu_parse_registers(json_object_get_string(ret), out) < 0) {
            vmem_log_ratelimited(peek_vcpu_state, LOG_WARNING,
                                 "libvirt: domain '%s': info registers of vCPU %u: "
                                 "no register dump in the reply", s->name, cpu);
            rc = -EIO;
        }
        json_object_put(j);
    }
    free(reply);
    virDomainFree(d);
    return rc;
}

static int peek_refresh(void *drv)
{
    /* Nothing in the layout changes without a reboot of the domain; this
     * is the control-plane tick that brings the connection back after
     * libvirtd restarted, and finds a domain that stopped meanwhile. */
    int rc;
    virDomainPtr d = lv_dom_get(((struct lv_peek *)drv)->d, &rc);
    if (!d)
        return rc;
    virDomainFree(d);
    return 0;
}

static bool peek_gone(void *drv)
{
    return lv_dom_gone(((struct lv_peek *)drv)->d);
}

static void peek_describe(void *drv, json_object *out)
{
    struct lv_peek *s = drv;
    lv_dom_describe(s->d, out);
    json_object_object_add(out, "data_path", json_object_new_string("memory peek"));
    json_object_object_add(out, "peeks", json_object_new_int64((int64_t)atomic_load(&s->peeks)));
    json_object_object_add(out, "peek_bytes",
                           json_object_new_int64((int64_t)atomic_load(&s->peek_bytes)));
    json_object_object_add(out, "peek_seconds",
                           json_object_new_double((double)atomic_load(&s->peek_ns) / 1e9));
    json_object_object_add(out, "peek_errors",
                           json_object_new_int64((int64_t)atomic_load(&s->peek_errors)));
}

static void peek_close(void *drv)
{
    struct lv_peek *s = drv;
    lv_dom_close(s->d);
    free(s);
}

static const struct vmem_driver_ops peek_ops = {
    .name = "libvirt",
    .ranges = peek_ranges,
    .refresh = peek_refresh,
    .read_frames = peek_read_frames,
    .pause = peek_pause,
    .resume = peek_resume,
    .gone = peek_gone,
    .describe = peek_describe,
    .close = peek_close,
};

/* The same with vCPU state, when the monitor passthrough is allowed. */
static const struct vmem_driver_ops peek_monitor_ops = {
    .name = "libvirt",
    .ranges = peek_ranges,
    .refresh = peek_refresh,
    .read_frames = peek_read_frames,
    .vcpu_count = peek_vcpu_count,
    .vcpu_state = peek_vcpu_state,
    .pause = peek_pause,
    .resume = peek_resume,
    .gone = peek_gone,
    .describe = peek_describe,
    .close = peek_close,
};

int lv_peek_attach(struct lv_dom *d, struct vmem_driver *out, char *err, size_t errlen)
{
    struct lv_peek *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "libvirt: out of memory");
        return -ENOMEM;
    }
    int nr = lv_ram_layout(d->facts.arch, d->facts.machine, d->facts.ram_bytes, s->ranges,
                           LV_MAX_RANGES);
    if (nr < 0) {
        snprintf(err, errlen, "libvirt: domain '%s' on %s: the RAM layout of machine "
                 "'%s' (%s) is not known, and memory peek cannot find it",
                 d->name, d->uri, d->facts.machine, d->facts.arch);
        free(s);
        return -ENOTSUP;
    }
    s->nranges = (size_t)nr;
    s->d = d;
    out->ops = d->monitor ? &peek_monitor_ops : &peek_ops;
    out->priv = s;
    out->caps = VMEM_CAP_SLOW;
    return 0;
}
