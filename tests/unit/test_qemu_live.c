/* test_qemu_live.c - the qemu driver against a real, running QEMU.
 *
 * Runs only when VMEMFS_QMP_SOCK names the QMP socket of a running guest
 * (tests/integration/t_qemu_driver.sh boots one with qemu_boot.py);
 * otherwise every test is skipped.  Other variables:
 *   VMEMFS_QEMU_OUT    qemu_boot.py's output dir: ranges.txt (the RAM
 *                      ranges by capture.py's logic) and truth.txt
 *   VMEMFS_QEMU_PATH   the data path expected: "shared file" or
 *                      "process memory"
 *   VMEMFS_QEMU_KILL=1 last, SIGKILL QEMU (the caller started it) and check
 *                      that reads and QMP calls fail cleanly and quickly
 *   VMEMFS_QEMU_PAUSED_START=1  QEMU was started with -S (qemu_boot.py
 *                      --paused-start) and has run no guest code: opened
 *                      blank, then continued here and booted; refresh()
 *                      must then see 0xc0000-0xfffff become RAM
 *
 * Checks: started paused (-S), the layout before and after the firmware ran
 * (refresh), the shadow RAM equal to pmemsave; ranges equal ranges.txt; with the guest paused (through the
 * driver), all of RAM read with read_frames (and map, when offered) equals
 * a QMP pmemsave of the same paused guest byte for byte; vCPUs in long mode
 * with CR3 set; the guest's counter moves between reads while it runs (the
 * source is live, not a snapshot); reads from several threads at once;
 * reopened read-write (QEMU_OPEN_RW), the counter set through write_frames
 * while paused counts on from the new value, 3 bytes written through write()
 * change exactly those bytes of the page; QEMU stopped (SIGSTOP): QMP
 * calls time out, memory still reads; then QEMU killed during reads: process-memory frames fail with -EIO, a shared file
 * still reads, QMP answers -ENODEV, nothing hangs. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/phys/guard.h"
#include "drivers/qemu/qemu.h"
#include "drivers/qemu/monitor.h"
#include "drivers/qemu/qmp.h"

#define CHUNK_FRAMES 256

static struct vmem_driver drv;
static int opened;

static const char *env(const char *k)
{
    const char *v = getenv(k);
    return v && *v ? v : NULL;
}

static bool paused_start(void)
{
    const char *v = env("VMEMFS_QEMU_PAUSED_START");
    return v && strcmp(v, "1") == 0;
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    (void)state;
    const char *sock = env("VMEMFS_QMP_SOCK");
    if (!sock)
        return 0;
    vmem_guard_init();
    char err[512];
    int rc = qemu_driver_open(sock, &drv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "qemu_driver_open(%s): %s (%d)\n", sock, err, rc);
        return -1;
    }
    opened = 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (opened)
        drv.ops->close(drv.priv);
    opened = 0;
    return 0;
}

#define NEED_QEMU()                                                           \
    do {                                                                      \
        if (!opened) {                                                        \
            print_message("[  SKIPPED ] VMEMFS_QMP_SOCK not set: no live "    \
                          "QEMU to test against\n");                          \
            skip();                                                           \
        }                                                                     \
    } while (0)

static json_object *describe(void)
{
    json_object *o = json_object_new_object();
    drv.ops->describe(drv.priv, o);
    return o;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static void test_describe(void **state)
{
    (void)state;
    NEED_QEMU();
    json_object *o = describe();
    print_message("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object *v;
    assert_true(json_object_object_get_ex(o, "pid", &v));
    assert_true(json_object_get_int64(v) > 0);
    assert_int_equal(strncmp(jstr(o, "qemu_version"), "7.", 2) == 0 ||
                     strncmp(jstr(o, "qemu_version"), "8.", 2) == 0 ||
                     strncmp(jstr(o, "qemu_version"), "9.", 2) == 0, 1);
    assert_string_equal(jstr(o, "run_state"), "running");
    const char *want = env("VMEMFS_QEMU_PATH");
    if (want)
        assert_string_equal(jstr(o, "data_path"), want);
    /* The shared-file path is zero copy and needs no cache; process memory
     * is cached by core. */
    if (strcmp(jstr(o, "data_path"), "shared file") == 0) {
        assert_non_null(drv.ops->map);
        assert_int_equal(drv.caps, 0);
    } else {
        assert_int_equal(drv.caps, VMEM_CAP_SLOW);
    }
    assert_null(drv.ops->write_frames);   /* opened read-only */
    assert_null(drv.ops->write);
    assert_non_null(drv.ops->refresh);    /* a live layout */
    json_object_put(o);
}

static void test_ranges(void **state)
{
    (void)state;
    NEED_QEMU();
    const struct vmem_range *r;
    size_t n;
    assert_int_equal(drv.ops->ranges(drv.priv, &r, &n), 0);
    assert_true(n >= 1);
    /* Merge touching ranges as capture.py does, then compare. */
    struct vmem_range m[16];
    size_t nm = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].kind, VMEM_RANGE_RAM);
        if (i)
            assert_true(r[i].start >= r[i - 1].end);
        if (nm && m[nm - 1].end == r[i].start)
            m[nm - 1].end = r[i].end;
        else if (nm < 16)
            m[nm++] = r[i];
    }
    const char *out = env("VMEMFS_QEMU_OUT");
    if (!out) {
        print_message("(no VMEMFS_QEMU_OUT: ranges not compared)\n");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ranges.txt", out);
    FILE *f = fopen(path, "r");
    if (!f && paused_start()) {
        print_message("(started paused: no ranges.txt; test_prestart checked them)\n");
        return;
    }
    assert_non_null(f);
    unsigned long long s, e;
    size_t k = 0;
    while (fscanf(f, "%llx-%llx", &s, &e) == 2) {
        assert_true(k < nm);
        assert_int_equal(m[k].start, s);
        assert_int_equal(m[k].end, e);
        k++;
    }
    fclose(f);
    assert_int_equal(k, nm);
}

/* pmemsave [start, end) to a temp file through the driver's connection. */
static char *pmemsave(struct qemu_monitor *q, uint64_t start, uint64_t len)
{
    /* QEMU writes the file: a directory it can write to. */
    const char *dir = env("VMEMFS_QEMU_OUT") ? env("VMEMFS_QEMU_OUT")
                      : env("TMPDIR") ? env("TMPDIR") : "/tmp";
    char *path = malloc(strlen(dir) + 32);
    if (!path)
        abort();
    sprintf(path, "%s/pmemsave.XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    json_object *args = json_object_new_object();
    json_object_object_add(args, "val", json_object_new_int64((int64_t)start));
    json_object_object_add(args, "size", json_object_new_int64((int64_t)len));
    json_object_object_add(args, "filename", json_object_new_string(path));
    char err[256];
    qemu_mon_set_timeout(q, 300 * 1000);
    int rc = qemu_mon_execute(q, "pmemsave", args, NULL, err, sizeof err);
    qemu_mon_set_timeout(q, QMP_DEFAULT_TIMEOUT_MS);
    if (rc < 0)
        fprintf(stderr, "pmemsave: %s\n", err);
    assert_int_equal(rc, 0);
    return path;
}

/* The whole of a small file; malloc'd, *len its size. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

/* [gpa, gpa+len) of the (paused) guest through QMP pmemsave. */
static uint8_t *pmem(uint64_t gpa, size_t len)
{
    char *path = pmemsave(qemu_driver_monitor(drv.priv), gpa, len);
    size_t got;
    uint8_t *buf = slurp(path, &got);
    assert_int_equal(got, len);
    unlink(path);
    free(path);
    return buf;
}

/* [gpa, gpa+len) (whole frames) through read_frames, and through map when
 * it is offered and maps the span; compared with want. */
static void check_frames(uint64_t gpa, size_t len, const uint8_t *want)
{
    size_t n = len / VMEM_PAGE_SIZE;
    uint64_t *gfns = calloc(n, sizeof *gfns);
    void **bufs = calloc(n, sizeof *bufs);
    int *st = calloc(n, sizeof *st);
    uint8_t *got = malloc(len);
    for (size_t i = 0; i < n; i++) {
        gfns[i] = (gpa >> VMEM_PAGE_SHIFT) + i;
        bufs[i] = got + i * VMEM_PAGE_SIZE;
    }
    assert_int_equal(drv.ops->read_frames(drv.priv, gfns, bufs, st, n), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(st[i], VMEM_FRAME_OK);
    for (size_t b = 0; b < len; b++)
        if (got[b] != want[b])
            fail_msg("read_frames differs from pmemsave at gpa 0x%" PRIx64, gpa + b);
    const uint8_t *p = drv.ops->map ? drv.ops->map(drv.priv, gpa, len) : NULL;
    if (p) {
        assert_int_equal(vmem_guard_copy(got, p, len), 0);
        assert_memory_equal(want, got, len);
    }
    free(gfns);
    free(bufs);
    free(st);
    free(got);
}

/* The guest's serial log, once it holds line `mark` (waits up to 300 s). */
static char *wait_serial(const char *out, const char *mark)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/serial.log", out);
    for (int64_t t0 = ms_now(); ms_now() - t0 < 300 * 1000; usleep(200 * 1000)) {
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t len;
        fclose(f);
        char *text = (char *)slurp(path, &len);
        text = realloc(text, len + 1);
        text[len] = '\0';
        for (char *p = text; (p = strstr(p, mark)); p++)
            if ((p == text || p[-1] == '\n') &&
                (p[strlen(mark)] == '\r' || p[strlen(mark)] == '\n'))
                return text;
        free(text);
    }
    fail_msg("no %s in %s within 300 s", mark, path);
    return NULL;
}

/* The blocks of describe() that are guest RAM. */
static size_t ram_blocks(json_object *o, json_object **out, size_t max)
{
    json_object *arr, *v;
    size_t n = 0;
    assert_true(json_object_object_get_ex(o, "ram_blocks", &arr));
    for (size_t i = 0; i < json_object_array_length(arr) && n < max; i++) {
        json_object *b = json_object_array_get_idx(arr, i);
        if (json_object_object_get_ex(b, "guest_ram", &v) && json_object_get_boolean(v))
            out[n++] = b;
    }
    return n;
}

static bool jbool(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

/* QEMU started with -S (as libvirt starts guests): opened before any guest
 * code ran, RAM blank, 0xc0000-0xfffff still ROM.  Continued, booted, then
 * refresh() sees the shadow RAM; its pages read as pmemsave shows them. */
static void test_prestart(void **state)
{
    (void)state;
    NEED_QEMU();
    if (!paused_start()) {
        print_message("(VMEMFS_QEMU_PAUSED_START not set: guest already booted)\n");
        skip();
    }
    assert_non_null(drv.ops->refresh);
    const char *out = env("VMEMFS_QEMU_OUT");
    if (!out)
        fail_msg("VMEMFS_QEMU_OUT is needed with VMEMFS_QEMU_PAUSED_START");
    json_object *o = describe();
    assert_string_equal(jstr(o, "run_state"), "prelaunch");
    json_object *blk[8];
    size_t nb = ram_blocks(o, blk, 8);
    assert_true(nb >= 1);
    bool by_inode = strcmp(jstr(blk[0], "access"), "shared file") == 0;
    for (size_t i = 0; i < nb; i++) {
        print_message("before the firmware: block %s: %s, verified %d: %s\n",
                      jstr(blk[i], "id"), jstr(blk[i], "access"),
                      jbool(blk[i], "verified"), jstr(blk[i], "note"));
        /* A process-memory or map_files block of blank RAM cannot be
         * checked against the guest's pages; a shared file by its inode. */
        if (!by_inode)
            assert_true(jbool(blk[i], "taken_blank") && !jbool(blk[i], "verified"));
    }
    json_object_put(o);

    const struct vmem_range *r0, *r;
    size_t n0, n;
    assert_int_equal(drv.ops->ranges(drv.priv, &r0, &n0), 0);
    struct vmem_range *copy = malloc(n0 * sizeof *copy);
    memcpy(copy, r0, n0 * sizeof *copy);
    for (size_t i = 0; i < n0; i++) {
        print_message("before: %#" PRIx64 "-%#" PRIx64 "\n", r0[i].start, r0[i].end);
        assert_true(r0[i].end <= 0xc0000 || r0[i].start >= 0x100000);
    }
    assert_int_equal(drv.ops->refresh(drv.priv), 0);     /* nothing ran yet */

    int64_t t0 = ms_now();
    assert_int_equal(drv.ops->resume(drv.priv), 0);
    char *text = wait_serial(out, "VMEMFS-READY");
    print_message("continued: guest ready after %" PRId64 " ms\n", ms_now() - t0);
    /* truth.txt for the tests that follow (qemu_boot.py could not). */
    char *b = strstr(text, "VMEMFS-TRUTH-BEGIN"), *e = b ? strstr(b, "VMEMFS-TRUTH-END") : NULL;
    assert_non_null(e);
    b = strchr(b, '\n') + 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/truth.txt", out);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (const char *p = b; p < e; p++)
        if (*p != '\r')
            fputc(*p, f);
    fclose(f);
    free(text);

    t0 = ms_now();
    int rc = drv.ops->refresh(drv.priv);
    print_message("refresh after boot: %d in %" PRId64 " ms\n", rc, ms_now() - t0);
    assert_int_equal(rc, 1);
    /* The old array stays valid and unchanged. */
    assert_memory_equal(copy, r0, n0 * sizeof *copy);
    free(copy);
    assert_int_equal(drv.ops->ranges(drv.priv, &r, &n), 0);
    uint64_t total = 0;
    bool shadow = false;
    for (size_t i = 0; i < n; i++) {
        print_message("after: %#" PRIx64 "-%#" PRIx64 "\n", r[i].start, r[i].end);
        assert_int_equal(r[i].kind, VMEM_RANGE_RAM);
        if (i)
            assert_true(r[i].start >= r[i - 1].end);
        if (r[i].start <= 0xc0000 && r[i].end >= 0x100000)
            shadow = true;
        total += r[i].end - r[i].start;
    }
    assert_true(shadow);
    snprintf(path, sizeof path, "%s/meta.json", out);
    json_object *meta = json_object_from_file(path), *mem;
    assert_non_null(meta);
    assert_true(json_object_object_get_ex(meta, "mem", &mem));
    assert_int_equal(total, (uint64_t)json_object_get_int64(mem));
    json_object_put(meta);

    o = describe();
    nb = ram_blocks(o, blk, 8);
    for (size_t i = 0; i < nb; i++) {
        print_message("after refresh: block %s: %s, verified %d: %s\n",
                      jstr(blk[i], "id"), jstr(blk[i], "access"),
                      jbool(blk[i], "verified"), jstr(blk[i], "note"));
        assert_true(jbool(blk[i], "verified"));
    }
    json_object *lc;
    assert_true(json_object_object_get_ex(o, "layout_changes", &lc));
    assert_int_equal(json_object_get_int(lc), 1);
    json_object_put(o);

    /* The shadow RAM (BIOS and option ROM copies) reads as QEMU has it. */
    assert_int_equal(drv.ops->pause(drv.priv), 0);
    uint8_t *want = pmem(0xc0000, 0x40000);
    check_frames(0xc0000, 0x40000, want);
    size_t nz = 0;
    for (size_t i = 0; i < 0x40000; i++)
        nz += want[i] != 0;
    print_message("0xc0000-0xfffff equal to pmemsave (%zu non-zero bytes)\n", nz);
    assert_true(nz > 0x1000);       /* SeaBIOS is there */
    free(want);
    assert_int_equal(drv.ops->resume(drv.priv), 0);
    assert_int_equal(drv.ops->refresh(drv.priv), 0);
}

static void test_paused_equals_pmemsave(void **state)
{
    (void)state;
    NEED_QEMU();
    struct qemu_monitor *q = qemu_driver_monitor(drv.priv);
    assert_int_equal(drv.ops->pause(drv.priv), 0);
    json_object *st = NULL;
    char err[256];
    assert_int_equal(qemu_mon_execute(q, "query-status", NULL, &st, err, sizeof err), 0);
    json_object *run;
    assert_true(json_object_object_get_ex(st, "running", &run));
    assert_false(json_object_get_boolean(run));
    json_object_put(st);

    const struct vmem_range *r;
    size_t n;
    drv.ops->ranges(drv.priv, &r, &n);
    uint8_t *want = malloc(CHUNK_FRAMES * VMEM_PAGE_SIZE);
    uint8_t *got = malloc(CHUNK_FRAMES * VMEM_PAGE_SIZE);
    uint64_t gfns[CHUNK_FRAMES];
    void *bufs[CHUNK_FRAMES];
    int status[CHUNK_FRAMES];
    for (int k = 0; k < CHUNK_FRAMES; k++)
        bufs[k] = got + (size_t)k * VMEM_PAGE_SIZE;
    uint64_t total = 0, nonzero = 0, mapped = 0;
    int64_t t_read = 0;
    for (size_t i = 0; i < n; i++) {
        char *path = pmemsave(q, r[i].start, r[i].end - r[i].start);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        for (uint64_t a = r[i].start; a < r[i].end;) {
            size_t frames = 0;
            while (frames < CHUNK_FRAMES && a + frames * VMEM_PAGE_SIZE < r[i].end) {
                gfns[frames] = (a >> VMEM_PAGE_SHIFT) + frames;
                frames++;
            }
            size_t len = frames * VMEM_PAGE_SIZE;
            assert_int_equal(fread(want, 1, len, f), len);
            int64_t t0 = ms_now();
            assert_int_equal(drv.ops->read_frames(drv.priv, gfns, bufs, status, frames), 0);
            t_read += ms_now() - t0;
            for (size_t k = 0; k < frames; k++)
                assert_int_equal(status[k], VMEM_FRAME_OK);
            if (memcmp(want, got, len) != 0) {
                for (size_t b = 0; b < len; b++)
                    if (want[b] != got[b]) {
                        fail_msg("read_frames differs from pmemsave at gpa 0x%" PRIx64,
                                 a + b);
                    }
            }
            /* map offers spans whose pages the RAM file holds (QEMU's
             * own pmemsave has just touched them all). */
            const uint8_t *p = drv.ops->map ? drv.ops->map(drv.priv, a, len) : NULL;
            if (p) {
                assert_int_equal(vmem_guard_copy(got, p, len), 0);
                assert_memory_equal(want, got, len);
                mapped += len;
            }
            for (size_t b = 0; b < len; b += VMEM_PAGE_SIZE)
                for (size_t w = 0; w < VMEM_PAGE_SIZE; w++)
                    if (want[b + w]) {
                        nonzero++;
                        break;
                    }
            total += len;
            a += len;
        }
        fclose(f);
        unlink(path);
        free(path);
    }
    print_message("compared %" PRIu64 " MiB (%" PRIu64 " non-zero pages, %" PRIu64
                  " MiB also through map) with pmemsave: equal; read_frames "
                  "%" PRId64 " ms\n", total >> 20, nonzero, mapped >> 20, t_read);
    assert_true(nonzero > 1000);    /* a booted Linux, not blank memory */
    if (drv.ops->map)
        assert_true(mapped > 0);

    /* Frames outside RAM: -ENOENT, the rest of the batch unaffected. */
    uint64_t end = r[n - 1].end >> VMEM_PAGE_SHIFT;
    uint64_t mix[4] = {0, end, end + 12345, UINT64_MAX};
    assert_int_equal(drv.ops->read_frames(drv.priv, mix, bufs, status, 4), 0);
    assert_int_equal(status[0], VMEM_FRAME_OK);
    assert_int_equal(status[1], -ENOENT);
    assert_int_equal(status[2], -ENOENT);
    assert_int_equal(status[3], -ENOENT);

    assert_int_equal(drv.ops->resume(drv.priv), 0);
    free(want);
    free(got);
}

static void test_vcpus(void **state)
{
    (void)state;
    NEED_QEMU();
    int n = drv.ops->vcpu_count(drv.priv);
    assert_true(n >= 1);
    for (int c = 0; c < n; c++) {
        struct vmem_vcpu v;
        assert_int_equal(drv.ops->vcpu_state(drv.priv, (unsigned)c, &v), 0);
        assert_int_equal(v.id, (unsigned)c);
        assert_int_equal(v.valid, VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES);
        assert_true(v.cr3 != 0);
        assert_true(v.cr0 & 0x80000000u);           /* paging */
        assert_true(v.efer & 0x400);                /* long mode active */
        assert_true(v.rip >= 0xffff800000000000ull || v.rip < 0x800000000000ull);
        assert_true(v.idt_base != 0);
        print_message("vcpu %d: rip %#" PRIx64 " cr3 %#" PRIx64 " gs_base %#" PRIx64 "\n",
                      c, v.rip, v.cr3, v.gs_base);
    }
    struct vmem_vcpu v;
    assert_int_equal(drv.ops->vcpu_state(drv.priv, (unsigned)n, &v), -ENOENT);
}

/* truth.txt: "PHYS pid=.. kind=counter vaddr=.. paddr=0x.." */
static uint64_t counter_paddr(void)
{
    const char *out = env("VMEMFS_QEMU_OUT");
    if (!out)
        return 0;
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/truth.txt", out);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uint64_t pa = 0;
    while (fgets(line, sizeof line, f)) {
        char *p;
        if (strncmp(line, "PHYS ", 5) == 0 && strstr(line, "kind=counter") &&
            (p = strstr(line, "paddr=")))
            pa = strtoull(p + 6, NULL, 16);
    }
    fclose(f);
    return pa;
}

static uint64_t read_u64(uint64_t pa)
{
    uint8_t page[VMEM_PAGE_SIZE];
    uint64_t gfn = pa >> VMEM_PAGE_SHIFT;
    void *b = page;
    int st = -1;
    assert_int_equal(drv.ops->read_frames(drv.priv, &gfn, &b, &st, 1), 0);
    assert_int_equal(st, 0);
    uint64_t v;
    memcpy(&v, page + (pa & (VMEM_PAGE_SIZE - 1)), 8);
    return v;
}

static void test_live_counter(void **state)
{
    (void)state;
    NEED_QEMU();
    uint64_t pa = counter_paddr();
    if (!pa) {
        print_message("(no counter in truth.txt: liveness not checked)\n");
        skip();
    }
    uint64_t a = read_u64(pa);
    usleep(1000 * 1000);
    uint64_t b = read_u64(pa);
    print_message("counter at %#" PRIx64 ": %" PRIu64 " -> %" PRIu64 " in 1 s\n", pa, a, b);
    assert_true(b > a);
    /* Paused, it stands still. */
    assert_int_equal(drv.ops->pause(drv.priv), 0);
    a = read_u64(pa);
    usleep(300 * 1000);
    b = read_u64(pa);
    assert_int_equal(a, b);
    assert_int_equal(drv.ops->resume(drv.priv), 0);
}

struct reader {
    int bad;
    uint64_t frames;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    const struct vmem_range *r;
    size_t n;
    drv.ops->ranges(drv.priv, &r, &n);
    uint8_t *buf = malloc(64 * VMEM_PAGE_SIZE);
    uint64_t gfns[64];
    void *bufs[64];
    int st[64];
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int k = 0; k < 64; k++)
        bufs[k] = buf + (size_t)k * VMEM_PAGE_SIZE;
    for (int it = 0; it < 300; it++) {
        const struct vmem_range *rr = &r[rand_r(&seed) % n];
        uint64_t first = rr->start >> VMEM_PAGE_SHIFT, last = rr->end >> VMEM_PAGE_SHIFT;
        for (int k = 0; k < 64; k++)
            gfns[k] = first + (uint64_t)rand_r(&seed) % (last - first);
        if (drv.ops->read_frames(drv.priv, gfns, bufs, st, 64) != 0)
            rd->bad++;
        for (int k = 0; k < 64; k++)
            rd->bad += st[k] != 0;
        rd->frames += 64;
    }
    free(buf);
    return NULL;
}

static void *regs_main(void *arg)
{
    struct reader *rd = arg;
    for (int it = 0; it < 20; it++) {
        struct vmem_vcpu v;
        if (drv.ops->vcpu_state(drv.priv, 0, &v) != 0 || !v.cr3)
            rd->bad++;
    }
    return NULL;
}

/* Layout refreshes while the others read (the layout does not change once
 * booted, but each refresh re-reads and compares it). */
static void *refresh_main(void *arg)
{
    struct reader *rd = arg;
    for (int it = 0; it < 10; it++)
        if (drv.ops->refresh(drv.priv) != 0)
            rd->bad++;
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    NEED_QEMU();
    pthread_t t[5];
    struct reader rd[5] = {{0}};
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, reader_main, &rd[i]);
    pthread_create(&t[3], NULL, regs_main, &rd[3]);
    pthread_create(&t[4], NULL, refresh_main, &rd[4]);
    for (int i = 0; i < 5; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(rd[i].bad, 0);
    }
}

/* -o rw: reopen read-write and set the guest's counter through
 * write_frames while it is paused; once resumed it counts on from there. */
static void test_write(void **state)
{
    (void)state;
    NEED_QEMU();
    uint64_t pa = counter_paddr();
    if (!pa) {
        print_message("(no counter in truth.txt: writes not checked)\n");
        skip();
    }
    drv.ops->close(drv.priv);
    opened = 0;
    char err[512];
    assert_int_equal(qemu_driver_open_flags(env("VMEMFS_QMP_SOCK"), QEMU_OPEN_RW, &drv,
                                            err, sizeof err), 0);
    opened = 1;
    assert_non_null(drv.ops->write_frames);
    assert_int_equal(drv.ops->pause(drv.priv), 0);

    uint8_t page[VMEM_PAGE_SIZE];
    uint64_t gfn = pa >> VMEM_PAGE_SHIFT;
    void *b = page;
    const void *cb = page;
    int st = -1;
    assert_int_equal(drv.ops->read_frames(drv.priv, &gfn, &b, &st, 1), 0);
    assert_int_equal(st, 0);
    uint64_t before, big = 1ull << 40;
    memcpy(&before, page + (pa & (VMEM_PAGE_SIZE - 1)), 8);
    memcpy(page + (pa & (VMEM_PAGE_SIZE - 1)), &big, 8);
    assert_int_equal(drv.ops->write_frames(drv.priv, &gfn, &cb, &st, 1), 0);
    assert_int_equal(st, 0);
    /* QEMU sees it (QMP reads guest memory its own way). */
    char cmd[64], *text = NULL;
    snprintf(cmd, sizeof cmd, "xp /1xg 0x%" PRIx64, pa);
    assert_int_equal(qemu_mon_hmp(qemu_driver_monitor(drv.priv), cmd, -1, &text, err, sizeof err), 0);
    assert_non_null(strstr(text, "0x0000010000000000"));
    free(text);
    assert_int_equal(read_u64(pa), big);
    assert_int_equal(drv.ops->resume(drv.priv), 0);
    usleep(500 * 1000);
    uint64_t after = read_u64(pa);
    print_message("counter %" PRIu64 " set to 2^40 while paused; 0.5 s after resume: "
                  "2^40 + %" PRIu64 "\n", before, after - big);
    assert_true(after > big && after < big + 1000000);

    /* Byte-granular: 3 bytes in the middle of a page full of other data
     * (the firmware's shadow copy at 0xc0000-0xfffff: the guest no longer
     * uses it); with the guest paused, pmemsave shows exactly those 3 bytes
     * changed, then restored. */
    assert_non_null(drv.ops->write);
    assert_int_equal(drv.ops->pause(drv.priv), 0);
    uint64_t page_gpa = 0;
    size_t best = 0, off = 0x7fe;
    for (uint64_t g = 0xc0000; g < 0x100000; g += VMEM_PAGE_SIZE) {
        uint8_t pg[VMEM_PAGE_SIZE];
        uint64_t pgfn = g >> VMEM_PAGE_SHIFT;
        void *pb = pg;
        int pst = -1;
        assert_int_equal(drv.ops->read_frames(drv.priv, &pgfn, &pb, &pst, 1), 0);
        size_t nz = 0;
        for (size_t i = 0; pst == 0 && i < VMEM_PAGE_SIZE; i++)
            nz += pg[i] != 0;
        if (nz > best) {
            best = nz;
            page_gpa = g;
        }
    }
    assert_true(best > VMEM_PAGE_SIZE / 2);
    uint8_t *orig = pmem(page_gpa, VMEM_PAGE_SIZE);
    const uint8_t bytes[3] = {(uint8_t)~orig[off], (uint8_t)(orig[off + 1] ^ 0x5a),
                              (uint8_t)(orig[off + 2] + 1)};
    assert_int_equal(drv.ops->write(drv.priv, page_gpa + off, bytes, 3), 3);
    uint8_t *now = pmem(page_gpa, VMEM_PAGE_SIZE);
    assert_memory_equal(now + off, bytes, 3);
    assert_memory_equal(now, orig, off);
    assert_memory_equal(now + off + 3, orig + off + 3, VMEM_PAGE_SIZE - off - 3);
    check_frames(page_gpa, VMEM_PAGE_SIZE, now);
    size_t nz = 0;
    for (size_t i = 0; i < VMEM_PAGE_SIZE; i++)
        nz += orig[i] != 0;
    print_message("write(): 3 bytes at %#" PRIx64 " changed, the other 4093 (%zu "
                  "non-zero) as they were\n", page_gpa + off, nz);
    /* Put them back. */
    assert_int_equal(drv.ops->write(drv.priv, page_gpa + off, orig + off, 3), 3);
    free(now);
    now = pmem(page_gpa, VMEM_PAGE_SIZE);
    assert_memory_equal(now, orig, VMEM_PAGE_SIZE);
    free(now);
    free(orig);
    /* Outside RAM: nothing written. */
    const struct vmem_range *r;
    size_t n;
    drv.ops->ranges(drv.priv, &r, &n);
    assert_int_equal(drv.ops->write(drv.priv, r[n - 1].end + 0x1000, bytes, 3), -ENOENT);
    assert_int_equal(drv.ops->resume(drv.priv), 0);
}

static pid_t qemu_pid(void)
{
    return qemu_mon_pid(qemu_driver_monitor(drv.priv));
}

/* A hung QEMU (SIGSTOP): QMP calls time out instead of blocking, memory
 * still reads; after SIGCONT the connection works again. */
static void test_hung(void **state)
{
    (void)state;
    NEED_QEMU();
    const char *k = env("VMEMFS_QEMU_KILL");
    if (!k || strcmp(k, "1") != 0) {
        print_message("(VMEMFS_QEMU_KILL not set: QEMU not stopped)\n");
        skip();
    }
    struct qemu_monitor *q = qemu_driver_monitor(drv.priv);
    pid_t pid = qemu_pid();
    assert_int_equal(kill(pid, SIGSTOP), 0);
    usleep(100 * 1000);
    qemu_mon_set_timeout(q, 500);
    struct vmem_vcpu v;
    int64_t t0 = ms_now();
    int rc = drv.ops->vcpu_state(drv.priv, 0, &v);
    int64_t dt = ms_now() - t0;
    uint64_t gfn = 1;
    uint8_t page[VMEM_PAGE_SIZE];
    void *b = page;
    int st = -1;
    int rrc = drv.ops->read_frames(drv.priv, &gfn, &b, &st, 1);
    kill(pid, SIGCONT);
    qemu_mon_set_timeout(q, QMP_DEFAULT_TIMEOUT_MS);
    print_message("QEMU stopped: vcpu_state %d after %" PRId64 " ms; frame read %d/%d\n",
                  rc, dt, rrc, st);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(dt >= 450 && dt < 3000);
    assert_int_equal(rrc, 0);
    assert_int_equal(st, 0);
    /* The late answer is skipped; the next command gets its own. */
    assert_int_equal(drv.ops->vcpu_state(drv.priv, 0, &v), 0);
    assert_true(v.cr3 != 0);
}

struct killreader {
    volatile int stop;
    uint64_t ok, failed, batches;
    int bad_rc;
};

static void *killreader_main(void *arg)
{
    struct killreader *kr = arg;
    const struct vmem_range *r;
    size_t n;
    drv.ops->ranges(drv.priv, &r, &n);
    uint8_t *buf = malloc(32 * VMEM_PAGE_SIZE);
    uint64_t gfns[32];
    void *bufs[32];
    int st[32];
    unsigned seed = 7;
    for (int k = 0; k < 32; k++)
        bufs[k] = buf + (size_t)k * VMEM_PAGE_SIZE;
    while (!kr->stop) {
        uint64_t first = r[0].start >> VMEM_PAGE_SHIFT, last = r[0].end >> VMEM_PAGE_SHIFT;
        for (int k = 0; k < 32; k++)
            gfns[k] = first + (uint64_t)rand_r(&seed) % (last - first);
        if (drv.ops->read_frames(drv.priv, gfns, bufs, st, 32) != 0)
            kr->bad_rc++;
        for (int k = 0; k < 32; k++) {
            if (st[k] == 0)
                kr->ok++;
            else
                kr->failed++;
        }
        kr->batches++;
    }
    free(buf);
    return NULL;
}

static void test_killed(void **state)
{
    (void)state;
    NEED_QEMU();
    const char *k = env("VMEMFS_QEMU_KILL");
    if (!k || strcmp(k, "1") != 0) {
        print_message("(VMEMFS_QEMU_KILL not set: QEMU left running)\n");
        skip();
    }
    pid_t pid = qemu_pid();
    assert_true(pid > 0);
    json_object *o = describe();
    bool shared = strcmp(jstr(o, "data_path"), "shared file") == 0;
    json_object_put(o);
    /* Killed in the middle of reads from two threads. */
    struct killreader kr[2];
    pthread_t t[2];
    memset(kr, 0, sizeof kr);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, killreader_main, &kr[i]);
    usleep(200 * 1000);
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* Gone once /proc/PID/stat is gone or says zombie. */
    for (int i = 0; i < 500; i++) {
        char path[64], buf[256] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        size_t l = fread(buf, 1, sizeof buf - 1, f);
        buf[l] = '\0';
        fclose(f);
        char *p = strrchr(buf, ')');
        if (p && p[1] == ' ' && p[2] == 'Z')
            break;
        usleep(10 * 1000);
    }
    usleep(200 * 1000);
    for (int i = 0; i < 2; i++) {
        kr[i].stop = 1;
        pthread_join(t[i], NULL);
        assert_int_equal(kr[i].bad_rc, 0);
        print_message("reader %d: %" PRIu64 " batches, %" PRIu64 " frames ok, %" PRIu64
                      " failed\n", i, kr[i].batches, kr[i].ok, kr[i].failed);
        assert_true(kr[i].ok > 0);
        if (shared)
            assert_int_equal(kr[i].failed, 0);
        else
            assert_true(kr[i].failed > 0);
    }

    const struct vmem_range *r;
    size_t n;
    drv.ops->ranges(drv.priv, &r, &n);
    uint8_t *buf = malloc(64 * VMEM_PAGE_SIZE);
    uint64_t gfns[64];
    void *bufs[64];
    int st[64];
    for (int i = 0; i < 64; i++) {
        gfns[i] = (r[0].start >> VMEM_PAGE_SHIFT) + (uint64_t)i * 3;
        bufs[i] = buf + (size_t)i * VMEM_PAGE_SIZE;
    }
    int64_t t0 = ms_now();
    assert_int_equal(drv.ops->read_frames(drv.priv, gfns, bufs, st, 64), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(st[i], shared ? VMEM_FRAME_OK : -EIO);
    if (shared)
        assert_non_null(drv.ops->map(drv.priv, r[0].start, VMEM_PAGE_SIZE));
    struct vmem_vcpu v;
    assert_int_equal(drv.ops->vcpu_state(drv.priv, 0, &v), -ENODEV);
    assert_int_equal(drv.ops->pause(drv.priv), -ENODEV);
    assert_int_equal(drv.ops->resume(drv.priv), -ENODEV);
    o = describe();
    json_object *alive;
    assert_true(json_object_object_get_ex(o, "qemu_alive", &alive));
    assert_false(json_object_get_boolean(alive));
    json_object_put(o);
    int64_t dt = ms_now() - t0;
    print_message("after SIGKILL: frames %s, QMP -ENODEV, %" PRId64 " ms in all\n",
                  shared ? "still read from the shared file" : "-EIO", dt);
    assert_true(dt < 2000);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prestart),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_paused_equals_pmemsave),
        cmocka_unit_test(test_vcpus),
        cmocka_unit_test(test_live_counter),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_hung),
        cmocka_unit_test(test_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
