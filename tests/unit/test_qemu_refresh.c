/* test_qemu_refresh.c - the qemu driver's live layout (refresh) and its
 * byte-granular write, without QEMU.
 *
 * A fake QEMU: a thread of this process serving QMP on a unix socket
 * (query-memdev, qom-get, "info mtree -f" from a text the test switches,
 * "xp" from the test's buffer, query-status...).  The socket's peer is this
 * process, so the driver finds "guest RAM" in this process's own memory:
 * an anonymous mapping (the process-memory path, located through
 * /proc/self/maps and checked against xp) or a shared file (the zero-copy
 * path).  The layouts are the real ones of QEMU 7.2 (tests/unit/data:
 * before the firmware ran, -S, and after boot) or small synthetic ones.
 *
 * Checks: a guest opened before its firmware ran (RAM blank: the block
 * taken unverified) sees 0xc0000-0xfffff once refreshed, the block is then
 * verified, old range arrays stay valid; QMP failing during the re-check
 * changes nothing; a block that turns out not to hold the guest's pages is
 * left out; readers on several threads see one layout or the other, never
 * a mix, while layouts are swapped hundreds of times; a backend that
 * becomes guest RAM later (DIMM) is located at refresh; write() changes
 * exactly the bytes given, across segments, short at a gap, on both data
 * paths. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/testenv.h"

#include "core/phys/guard.h"
#include "drivers/qemu/qemu.h"

#define MIB (1024u * 1024u)

static char *slurp(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", testenv_data_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------ fake QEMU */

struct fake_block {
    const char *id, *type, *mem_path;
    uint64_t size;
    bool share;
};

struct fake {
    char dir[48], sock[100];
    int lfd, cfd;
    pthread_t thread;
    pthread_mutex_t mu;
    struct fake_block blocks[4];
    size_t nblocks;
    char *mtree;                    /* "info mtree -f" now (owned) */
    const uint8_t *ram;             /* what xp reads: gpa == offset */
    uint64_t ram_size;
    bool xp_fail;                   /* xp answers an error */
    bool xp_flip;                   /* xp answers other bytes than ram has */
    unsigned xp_calls;
    char rbuf[1 << 16];
    size_t rlen;
};

static void f_send(struct fake *f, json_object *o)
{
    const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    size_t n = strlen(t);
    while (n) {
        ssize_t w = send(f->cfd, t, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        t += w;
        n -= (size_t)w;
    }
    send(f->cfd, "\r\n", 2, MSG_NOSIGNAL);
}

static json_object *f_recv(struct fake *f)
{
    for (;;) {
        char *nl = memchr(f->rbuf, '\n', f->rlen);
        if (nl) {
            *nl = '\0';
            json_object *o = json_tokener_parse(f->rbuf);
            size_t used = (size_t)(nl - f->rbuf) + 1;
            memmove(f->rbuf, nl + 1, f->rlen - used);
            f->rlen -= used;
            return o;
        }
        ssize_t r = recv(f->cfd, f->rbuf + f->rlen, sizeof f->rbuf - f->rlen, 0);
        if (r <= 0)
            return NULL;
        f->rlen += (size_t)r;
    }
}

static const char *arg_str(json_object *c, const char *key)
{
    json_object *a, *v;
    if (!json_object_object_get_ex(c, "arguments", &a) ||
        !json_object_object_get_ex(a, key, &v))
        return "";
    return json_object_get_string(v);
}

/* HMP "xp /Nxg ADDR" as QEMU prints it, or an error line. */
static char *f_xp(struct fake *f, const char *cmd)
{
    unsigned n;
    char fmt;
    unsigned long long gpa;
    if (sscanf(cmd, "xp /%ux%c 0x%llx", &n, &fmt, &gpa) != 3 || fmt != 'g')
        return strdup("unsupported\r\n");
    f->xp_calls++;
    if (f->xp_fail || gpa + (uint64_t)n * 8 > f->ram_size)
        return strdup("Cannot access memory\r\n");
    char *text = malloc((size_t)n / 2 * 64 + 64), *p = text;
    for (unsigned i = 0; i < n; i += 2) {
        p += sprintf(p, "%016llx:", gpa + i * 8ull);
        for (unsigned k = i; k < i + 2 && k < n; k++) {
            uint64_t w;
            memcpy(&w, f->ram + gpa + k * 8ull, 8);
            if (f->xp_flip)
                w = ~w;
            p += sprintf(p, " 0x%016" PRIx64, w);
        }
        p += sprintf(p, "\r\n");
    }
    return text;
}

/* One client connection, served until it closes. */
static void f_serve(struct fake *f)
{
    f->rlen = 0;
    static const char greeting[] = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
        "\"minor\": 2, \"major\": 7}, \"package\": \"fake\"}, \"capabilities\": []}}\r\n";
    send(f->cfd, greeting, sizeof greeting - 1, MSG_NOSIGNAL);
    json_object *c;
    while ((c = f_recv(f))) {
        json_object *id = NULL, *ex = NULL;
        json_object_object_get_ex(c, "id", &id);
        json_object_object_get_ex(c, "execute", &ex);
        const char *cmd = ex ? json_object_get_string(ex) : "";
        json_object *ret = NULL;
        pthread_mutex_lock(&f->mu);
        if (strcmp(cmd, "qmp_capabilities") == 0 || strcmp(cmd, "stop") == 0 ||
            strcmp(cmd, "cont") == 0) {
            ret = json_object_new_object();
        } else if (strcmp(cmd, "query-version") == 0) {
            ret = json_tokener_parse("{\"qemu\": {\"micro\": 0, \"minor\": 2, "
                                     "\"major\": 7}, \"package\": \"fake\"}");
        } else if (strcmp(cmd, "query-status") == 0) {
            ret = json_tokener_parse("{\"status\": \"running\", \"running\": true}");
        } else if (strcmp(cmd, "query-cpus-fast") == 0) {
            ret = json_tokener_parse("[{\"cpu-index\": 0}]");
        } else if (strcmp(cmd, "query-memdev") == 0) {
            ret = json_object_new_array();
            for (size_t i = 0; i < f->nblocks; i++) {
                json_object *m = json_object_new_object();
                json_object_object_add(m, "id", json_object_new_string(f->blocks[i].id));
                json_object_object_add(m, "size",
                                       json_object_new_int64((int64_t)f->blocks[i].size));
                json_object_object_add(m, "share",
                                       json_object_new_boolean(f->blocks[i].share));
                json_object_array_add(ret, m);
            }
        } else if (strcmp(cmd, "qom-get") == 0) {
            const char *path = arg_str(c, "path"), *prop = arg_str(c, "property");
            for (size_t i = 0; i < f->nblocks; i++) {
                char want[128];
                snprintf(want, sizeof want, "/objects/%s", f->blocks[i].id);
                if (strcmp(path, want) != 0)
                    continue;
                if (strcmp(prop, "type") == 0)
                    ret = json_object_new_string(f->blocks[i].type);
                else if (strcmp(prop, "mem-path") == 0 && f->blocks[i].mem_path)
                    ret = json_object_new_string(f->blocks[i].mem_path);
            }
        } else if (strcmp(cmd, "human-monitor-command") == 0) {
            const char *line = arg_str(c, "command-line");
            if (strcmp(line, "info mtree -f") == 0) {
                ret = json_object_new_string(f->mtree);
            } else if (strncmp(line, "xp ", 3) == 0) {
                char *t = f_xp(f, line);
                ret = json_object_new_string(t);
                free(t);
            } else {
                ret = json_object_new_string("");
            }
        }
        pthread_mutex_unlock(&f->mu);
        json_object *reply = json_object_new_object();
        if (ret) {
            json_object_object_add(reply, "return", ret);
        } else {
            json_object *e = json_object_new_object();
            json_object_object_add(e, "class", json_object_new_string("GenericError"));
            json_object_object_add(e, "desc", json_object_new_string("not in the fake"));
            json_object_object_add(reply, "error", e);
        }
        if (id)
            json_object_object_add(reply, "id", json_object_get(id));
        f_send(f, reply);
        json_object_put(reply);
        json_object_put(c);
    }
    close(f->cfd);
}

/* Connection after connection (the driver connects for each command),
 * until fake_stop shuts the listening socket down. */
static void *f_main(void *arg)
{
    struct fake *f = arg;
    while ((f->cfd = accept(f->lfd, NULL, NULL)) >= 0)
        f_serve(f);
    return NULL;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
}

static void fake_start(struct fake *f)
{
    f->rlen = 0;
    strcpy(f->dir, "/tmp/vmemfs-fakeqmp.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sock, sizeof f->sock, "%s/qmp.sock", f->dir);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", f->sock);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 1), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, f_main, f), 0);
}

/* After the driver closed. */
static void fake_stop(struct fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);    /* accept() returns */
    pthread_join(f->thread, NULL);
    close(f->lfd);
    unlink(f->sock);
    rmdir(f->dir);
}

static void fake_free(struct fake *f)
{
    free(f->mtree);
    f->mtree = NULL;
    pthread_mutex_destroy(&f->mu);
}

static void fake_mtree(struct fake *f, const char *text)
{
    pthread_mutex_lock(&f->mu);
    free(f->mtree);
    f->mtree = strdup(text);
    pthread_mutex_unlock(&f->mu);
}

static void fake_set(struct fake *f, bool *flag, bool v)
{
    pthread_mutex_lock(&f->mu);
    *flag = v;
    pthread_mutex_unlock(&f->mu);
}

/* "Guest RAM" in anonymous memory, exactly `size` bytes between two
 * PROT_NONE guard pages (as QEMU maps it), so that /proc/self/maps lists
 * it as one mapping of the block's size. */
static uint8_t *anon_ram(uint64_t size)
{
    uint8_t *m = mmap(NULL, size + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
                      MAP_NORESERVE, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + 4096, size, PROT_READ | PROT_WRITE), 0);
    return m + 4096;
}

static void anon_free(uint8_t *ram, uint64_t size)
{
    munmap(ram - 4096, size + 2 * 4096);
}

/* "Guest RAM" in a shared file, mapped here as QEMU maps it. */
static uint8_t *file_ram(char *path, size_t pathlen, uint64_t size)
{
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, pathlen, "%s/vmemfs-fakeram.XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    close(fd);
    return m;
}

static json_object *describe(struct vmem_driver *d)
{
    json_object *o = json_object_new_object();
    d->ops->describe(d->priv, o);
    return o;
}

/* describe()'s entry for block id. */
static json_object *block_of(json_object *o, const char *id)
{
    json_object *arr, *v;
    assert_true(json_object_object_get_ex(o, "ram_blocks", &arr));
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *b = json_object_array_get_idx(arr, i);
        if (json_object_object_get_ex(b, "id", &v) && strcmp(json_object_get_string(v), id) == 0)
            return b;
    }
    fail_msg("no block %s in describe()", id);
    return NULL;
}

static bool jbool(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static int64_t jint(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

static void open_drv(struct fake *f, unsigned flags, struct vmem_driver *d)
{
    char err[512];
    int rc = qemu_driver_open_flags(f->sock, flags, d, err, sizeof err);
    if (rc < 0)
        fail_msg("qemu_driver_open_flags: %s (%d)", err, rc);
}

static void expect_ranges(struct vmem_driver *d, const struct vmem_range *want, size_t n)
{
    const struct vmem_range *r;
    size_t got;
    assert_int_equal(d->ops->ranges(d->priv, &r, &got), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].start, want[i].start);
        assert_int_equal(r[i].end, want[i].end);
        assert_int_equal(r[i].kind, VMEM_RANGE_RAM);
    }
}

/* [gpa, gpa+len) through read_frames equals want. */
static void expect_frames(struct vmem_driver *d, uint64_t gpa, size_t len, const uint8_t *want)
{
    size_t n = len / 4096;
    uint64_t *gfns = calloc(n, sizeof *gfns);
    void **bufs = calloc(n, sizeof *bufs);
    int *st = calloc(n, sizeof *st);
    uint8_t *got = malloc(len);
    for (size_t i = 0; i < n; i++) {
        gfns[i] = gpa / 4096 + i;
        bufs[i] = got + i * 4096;
    }
    assert_int_equal(d->ops->read_frames(d->priv, gfns, bufs, st, n), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(st[i], VMEM_FRAME_OK);
    assert_memory_equal(got, want, len);
    free(gfns);
    free(bufs);
    free(st);
    free(got);
}

/* --------------------------------------------------------------- tests */

#define RAM256 (256ull * MIB)
/* The block: a page more than the layouts use, so that no other mapping of
 * this process (a sanitizer's, say) has its size by chance. */
#define BLOCK (RAM256 + 4096)

static void fake_pc_ram(struct fake *f, uint8_t *ram)
{
    fake_init(f);
    f->blocks[0] = (struct fake_block){.id = "pc.ram", .type = "memory-backend-ram",
                                       .size = BLOCK};
    f->nblocks = 1;
    f->ram = ram;
    f->ram_size = BLOCK;
}

/* What the firmware and a kernel leave: data in the shadow area and
 * something at the start of every MiB (where the driver samples). */
static void boot_guest(uint8_t *ram)
{
    for (uint64_t a = 0xc0000; a < 0x100000; a++)
        ram[a] = (uint8_t)(a * 7 + 1);
    for (uint64_t a = 0; a < RAM256; a += MIB)
        memcpy(ram + a + 16, &a, 8), ram[a] = 0x55;
}

/* Started with -S: blank RAM, no shadow RAM; refresh after "boot". */
static void test_prestart(void **state)
{
    (void)state;
    uint8_t *ram = anon_ram(BLOCK);
    struct fake f;
    fake_pc_ram(&f, ram);
    char *pre = slurp("qemu72-mtree-q35-256M-prestart.txt");
    char *post = slurp("qemu72-mtree-q35-256M.txt");
    fake_mtree(&f, pre);
    fake_start(&f);
    struct vmem_driver d;
    open_drv(&f, 0, &d);
    assert_non_null(d.ops->refresh);
    assert_null(d.ops->map);
    assert_null(d.ops->write);
    assert_int_equal(d.caps, VMEM_CAP_SLOW);

    json_object *o = describe(&d), *b = block_of(o, "pc.ram");
    assert_string_equal(jstr(b, "access"), "process memory");
    assert_true(jbool(b, "taken_blank"));
    assert_false(jbool(b, "verified"));
    json_object_put(o);
    const struct vmem_range before[] = {{0, 0xc0000, 0}, {0x100000, RAM256, 0}};
    expect_ranges(&d, before, 2);
    const struct vmem_range *r0;
    size_t n0;
    d.ops->ranges(d.priv, &r0, &n0);

    assert_int_equal(d.ops->refresh(d.priv), 0);    /* nothing changed */
    o = describe(&d);
    assert_false(jbool(block_of(o, "pc.ram"), "verified"));
    json_object_put(o);

    boot_guest(ram);
    fake_mtree(&f, post);
    assert_int_equal(d.ops->refresh(d.priv), 1);
    const struct vmem_range after[] = {{0, RAM256, 0}};
    expect_ranges(&d, after, 1);
    /* The array handed out before is still there, unchanged. */
    assert_int_equal(n0, 2);
    assert_int_equal(r0[0].end, 0xc0000);
    assert_int_equal(r0[1].start, 0x100000);
    o = describe(&d);
    b = block_of(o, "pc.ram");
    assert_true(jbool(b, "verified"));
    assert_true(jbool(b, "taken_blank"));
    assert_non_null(strstr(jstr(b, "note"), "refresh"));
    assert_int_equal(jint(o, "layout_changes"), 1);
    json_object_put(o);
    expect_frames(&d, 0xc0000, 0x40000, ram + 0xc0000);
    expect_frames(&d, 0x200000, 0x2000, ram + 0x200000);
    assert_int_equal(d.ops->refresh(d.priv), 0);
    o = describe(&d);
    assert_int_equal(jint(o, "layout_changes"), 1);
    json_object_put(o);

    d.ops->close(d.priv);
    fake_stop(&f);
    fake_free(&f);
    anon_free(ram, BLOCK);
    free(pre);
    free(post);
}

/* The re-check cannot read through QMP: nothing changes.  It reads other
 * pages than the mapping taken blank holds: the block is left out. */
static void test_reverify_fails(void **state)
{
    (void)state;
    uint8_t *ram = anon_ram(BLOCK);
    struct fake f;
    fake_pc_ram(&f, ram);
    char *pre = slurp("qemu72-mtree-q35-256M-prestart.txt");
    fake_mtree(&f, pre);
    fake_start(&f);
    struct vmem_driver d;
    open_drv(&f, 0, &d);
    const struct vmem_range *r0, *r;
    size_t n0, n;
    d.ops->ranges(d.priv, &r0, &n0);

    boot_guest(ram);
    fake_set(&f, &f.xp_fail, true);
    assert_int_equal(d.ops->refresh(d.priv), -EIO);
    d.ops->ranges(d.priv, &r, &n);
    assert_ptr_equal(r, r0);
    json_object *o = describe(&d), *b = block_of(o, "pc.ram");
    assert_false(jbool(b, "verified"));
    assert_string_equal(jstr(b, "access"), "process memory");
    json_object_put(o);

    fake_set(&f, &f.xp_fail, false);
    fake_set(&f, &f.xp_flip, true);
    assert_int_equal(d.ops->refresh(d.priv), 1);
    d.ops->ranges(d.priv, &r, &n);
    assert_int_equal(n, 0);
    o = describe(&d);
    b = block_of(o, "pc.ram");
    print_message("%s\n", jstr(b, "note"));
    assert_false(jbool(b, "verified"));
    assert_string_equal(jstr(b, "access"), "none");
    assert_non_null(strstr(jstr(b, "note"), "left out"));
    json_object_put(o);
    uint8_t page[4096];
    uint64_t gfn = 0x200;
    void *pb = page;
    int st = 0;
    assert_int_equal(d.ops->read_frames(d.priv, &gfn, &pb, &st, 1), 0);
    assert_int_equal(st, -ENOENT);
    /* Left out for good: not searched for again at every refresh. */
    pthread_mutex_lock(&f.mu);
    unsigned calls = f.xp_calls;
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(d.ops->refresh(d.priv), 0);
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.xp_calls, calls);
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(n0, 2);                /* the first array is intact */
    assert_int_equal(r0[1].end, RAM256);

    d.ops->close(d.priv);
    fake_stop(&f);
    fake_free(&f);
    anon_free(ram, BLOCK);
    free(pre);
}

/* Two synthetic layouts of an 8 MiB shared-file block: gpa 1-2 MiB is block
 * offset 3 MiB in A and 5 MiB in B; B also has 2-3 MiB (offset 7 MiB). */
#define FVIEW_HEAD "FlatView #0\r\n AS \"memory\", root: system\r\n" \
                   " Root memory region: system\r\n" \
                   "  0000000000000000-00000000000fffff (prio 0, ram): ram\r\n"
static const char MTREE_A[] = FVIEW_HEAD
    "  0000000000100000-00000000001fffff (prio 0, ram): ram @0000000000300000\r\n"
    "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n\r\n";
static const char MTREE_B[] = FVIEW_HEAD
    "  0000000000100000-00000000001fffff (prio 0, ram): ram @0000000000500000\r\n"
    "  0000000000200000-00000000002fffff (prio 0, rom): ram @0000000000700000\r\n"
    "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n\r\n";
static const char MTREE_DIMM[] = FVIEW_HEAD
    "  0000000000100000-00000000001fffff (prio 0, ram): ram @0000000000300000\r\n"
    "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n"
    "  0000000100000000-00000001001fffff (prio 0, ram): dimm0\r\n\r\n";
#define TAG 0x5a5a000000000000ull

/* Every 8 bytes of the page at block offset o hold TAG | o. */
static void fill_tagged(uint8_t *ram, uint64_t size)
{
    for (uint64_t o = 0; o < size; o += 4096) {
        uint64_t v = TAG | o;
        for (size_t k = 0; k < 4096; k += 8)
            memcpy(ram + o + k, &v, 8);
    }
}

struct swap_reader {
    struct vmem_driver *d;
    atomic_int *stop;
    unsigned seed;
    uint64_t batches, seen_a, seen_b, mapped;
    int bad;
    char why[160];
};

static void *swap_main(void *arg)
{
    struct swap_reader *sr = arg;
    struct vmem_driver *d = sr->d;
    uint8_t *buf = malloc(32 * 4096);
    uint64_t gfns[32];
    void *bufs[32];
    int st[32];
    for (int k = 0; k < 32; k++)
        bufs[k] = buf + k * 4096;
    while (!atomic_load(sr->stop) && !sr->bad) {
        /* ranges(): one layout or the other, whole. */
        const struct vmem_range *r;
        size_t n;
        d->ops->ranges(d->priv, &r, &n);
        if (!(n == 2 && r[1].start == 0x100000 && r[1].end == 0x200000) &&
            !(n == 3 && r[1].end == 0x200000 && r[2].start == 0x200000 &&
              r[2].end == 0x300000)) {
            snprintf(sr->why, sizeof sr->why, "ranges: %zu entries", n);
            sr->bad++;
        }
        /* A batch: 1-2 MiB and 2-3 MiB frames, all from one layout. */
        for (int k = 0; k < 32; k++)
            gfns[k] = (k < 16 ? 0x100 : 0x200) + rand_r(&sr->seed) % 0x100;
        if (d->ops->read_frames(d->priv, gfns, bufs, st, 32) != 0) {
            sr->bad++;
            break;
        }
        int which = 0;                      /* 1: A, 2: B */
        for (int k = 0; k < 32 && !sr->bad; k++) {
            uint64_t gpa = gfns[k] * 4096, v;
            memcpy(&v, bufs[k], 8);
            int w;
            if (k < 16) {
                if (st[k] != 0)
                    w = -1;
                else if (v == (TAG | (gpa - 0x100000 + 0x300000)))
                    w = 1;
                else if (v == (TAG | (gpa - 0x100000 + 0x500000)))
                    w = 2;
                else
                    w = -1;
            } else if (st[k] == -ENOENT) {
                w = 1;
            } else {
                w = st[k] == 0 && v == (TAG | (gpa - 0x200000 + 0x700000)) ? 2 : -1;
            }
            if (w < 0 || (which && w != which)) {
                snprintf(sr->why, sizeof sr->why, "frame %#" PRIx64 ": status %d, "
                         "%#" PRIx64 ", batch so far %d", gfns[k], st[k], v, which);
                sr->bad++;
            }
            which = w;
        }
        if (which == 1)
            sr->seen_a++;
        else
            sr->seen_b++;
        /* map(): a pointer into the offset of one layout or the other. */
        uint64_t gpa = 0x100000 + (uint64_t)(rand_r(&sr->seed) % 0x100) * 4096, v;
        const uint8_t *p = d->ops->map(d->priv, gpa, 4096);
        if (p) {
            if (vmem_guard_copy(&v, p, 8) != 0 ||
                (v != (TAG | (gpa - 0x100000 + 0x300000)) &&
                 v != (TAG | (gpa - 0x100000 + 0x500000)))) {
                snprintf(sr->why, sizeof sr->why, "map(%#" PRIx64 "): %#" PRIx64, gpa, v);
                sr->bad++;
            }
            sr->mapped++;
        }
        sr->batches++;
    }
    free(buf);
    return NULL;
}

static void fake_file_block(struct fake *f, size_t i, const char *id, const char *path,
                            uint64_t size)
{
    f->blocks[i] = (struct fake_block){.id = id, .type = "memory-backend-file",
                                       .mem_path = path, .size = size, .share = true};
    if (f->nblocks <= i)
        f->nblocks = i + 1;
}

/* Layouts swapped over and over while three threads read. */
static void test_swap_threads(void **state)
{
    (void)state;
    char path[256];
    uint8_t *ram = file_ram(path, sizeof path, 8 * MIB);
    fill_tagged(ram, 8 * MIB);
    struct fake f;
    fake_init(&f);
    fake_file_block(&f, 0, "ram", path, 8 * MIB);
    fake_mtree(&f, MTREE_A);
    fake_start(&f);
    struct vmem_driver d;
    open_drv(&f, 0, &d);
    assert_non_null(d.ops->map);
    assert_int_equal(d.caps, 0);
    json_object *o = describe(&d);
    assert_string_equal(jstr(block_of(o, "ram"), "access"), "shared file");
    assert_true(jbool(block_of(o, "ram"), "verified"));
    json_object_put(o);

    atomic_int stop = 0;
    struct swap_reader sr[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        sr[i] = (struct swap_reader){.d = &d, .stop = &stop, .seed = 17u * (unsigned)i + 1};
        pthread_create(&t[i], NULL, swap_main, &sr[i]);
    }
    int swaps = 300;
    for (int i = 0; i < swaps; i++) {
        fake_mtree(&f, i % 2 ? MTREE_A : MTREE_B);
        assert_int_equal(d.ops->refresh(d.priv), 1);
        usleep(300);                    /* let the readers see this one */
        if (i % 50 == 0) {
            o = describe(&d);           /* describe during reads, refreshes */
            json_object_put(o);
        }
    }
    usleep(20 * 1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        if (sr[i].bad)
            fail_msg("reader %d: %s", i, sr[i].why);
        print_message("reader %d: %" PRIu64 " batches (%" PRIu64 " layout A, %" PRIu64
                      " B), %" PRIu64 " maps\n", i, sr[i].batches, sr[i].seen_a,
                      sr[i].seen_b, sr[i].mapped);
        assert_true(sr[i].seen_a > 0 && sr[i].seen_b > 0);
    }
    o = describe(&d);
    assert_int_equal(jint(o, "layout_changes"), swaps);
    json_object_put(o);
    assert_int_equal(d.ops->refresh(d.priv), 0);
    d.ops->close(d.priv);
    fake_stop(&f);
    fake_free(&f);
    munmap(ram, 8 * MIB);
    unlink(path);
}

/* A backend that was no guest RAM at open (a DIMM not plugged yet)
 * becomes guest RAM: refresh finds its file and maps it. */
static void test_dimm_later(void **state)
{
    (void)state;
    char path[256], dpath[256];
    uint8_t *ram = file_ram(path, sizeof path, 8 * MIB);
    uint8_t *dimm = file_ram(dpath, sizeof dpath, 2 * MIB);
    fill_tagged(ram, 8 * MIB);
    memset(dimm, 0xd1, 2 * MIB);
    struct fake f;
    fake_init(&f);
    fake_file_block(&f, 0, "ram", path, 8 * MIB);
    fake_file_block(&f, 1, "dimm0", dpath, 2 * MIB);
    fake_mtree(&f, MTREE_A);
    fake_start(&f);
    struct vmem_driver d;
    open_drv(&f, 0, &d);
    json_object *o = describe(&d);
    assert_false(jbool(block_of(o, "dimm0"), "guest_ram"));
    json_object_put(o);
    fake_mtree(&f, MTREE_DIMM);
    assert_int_equal(d.ops->refresh(d.priv), 1);
    const struct vmem_range want[] = {{0, 0x100000, 0}, {0x100000, 0x200000, 0},
                                      {0x100000000ull, 0x100200000ull, 0}};
    expect_ranges(&d, want, 3);
    expect_frames(&d, 0x100000000ull, 2 * MIB, dimm);
    expect_frames(&d, 0x100000, 0x1000, ram + 0x300000);
    o = describe(&d);
    json_object *b = block_of(o, "dimm0");
    assert_true(jbool(b, "guest_ram"));
    assert_string_equal(jstr(b, "access"), "shared file");
    json_object_put(o);
    assert_int_equal(d.ops->refresh(d.priv), 0);
    d.ops->close(d.priv);
    fake_stop(&f);
    fake_free(&f);
    munmap(ram, 8 * MIB);
    munmap(dimm, 2 * MIB);
    unlink(path);
    unlink(dpath);
}

/* write(): exactly the bytes given, on the shared-file path. */
static void test_write_file(void **state)
{
    (void)state;
    char path[256];
    uint8_t *ram = file_ram(path, sizeof path, 8 * MIB);
    fill_tagged(ram, 8 * MIB);
    uint8_t *copy = malloc(8 * MIB);
    memcpy(copy, ram, 8 * MIB);
    struct fake f;
    fake_init(&f);
    fake_file_block(&f, 0, "ram", path, 8 * MIB);
    fake_mtree(&f, MTREE_A);
    fake_start(&f);
    struct vmem_driver d;
    open_drv(&f, 0, &d);
    assert_null(d.ops->write);              /* read-only */
    d.ops->close(d.priv);
    fake_stop(&f);
    fake_start(&f);
    open_drv(&f, QEMU_OPEN_RW, &d);
    assert_non_null(d.ops->write);

    const uint8_t three[3] = {0xa1, 0xb2, 0xc3};
    assert_int_equal(d.ops->write(d.priv, 0x100801, three, 3), 3);
    memcpy(copy + 0x300801, three, 3);
    assert_memory_equal(ram, copy, 8 * MIB);
    /* Across two segments: gpa 0xffffe.. is block offset 0xffffe and then
     * 0x300000 in layout A. */
    const uint8_t four[4] = {1, 2, 3, 4};
    assert_int_equal(d.ops->write(d.priv, 0xffffe, four, 4), 4);
    memcpy(copy + 0xffffe, four, 2);
    memcpy(copy + 0x300000, four + 2, 2);
    assert_memory_equal(ram, copy, 8 * MIB);
    /* Up to a gap: short; in a gap: -ENOENT. */
    assert_int_equal(d.ops->write(d.priv, 0x1ffffe, four, 4), 2);
    memcpy(copy + 0x3ffffe, four, 2);
    assert_memory_equal(ram, copy, 8 * MIB);
    assert_int_equal(d.ops->write(d.priv, 0x200000, four, 4), -ENOENT);
    assert_int_equal(d.ops->write(d.priv, UINT64_MAX - 1, four, 4), -EINVAL);
    assert_int_equal(d.ops->write(d.priv, 0x1000, four, 0), 0);
    /* After a refresh to layout B the same gpa lands elsewhere. */
    fake_mtree(&f, MTREE_B);
    assert_int_equal(d.ops->refresh(d.priv), 1);
    assert_int_equal(d.ops->write(d.priv, 0x200010, three, 3), 3);
    memcpy(copy + 0x700010, three, 3);
    assert_memory_equal(ram, copy, 8 * MIB);

    d.ops->close(d.priv);
    fake_stop(&f);
    fake_free(&f);
    munmap(ram, 8 * MIB);
    unlink(path);
    free(copy);
}

/* write() on the process-memory path (process_vm_writev). */
static void test_write_process(void **state)
{
    (void)state;
    uint8_t *ram = anon_ram(BLOCK);
    struct fake f;
    fake_pc_ram(&f, ram);
    char *post = slurp("qemu72-mtree-q35-256M.txt");
    fake_mtree(&f, post);
    boot_guest(ram);
    fake_start(&f);
    struct vmem_driver d;
    open_drv(&f, QEMU_OPEN_RW, &d);
    json_object *o = describe(&d);
    assert_string_equal(jstr(block_of(o, "pc.ram"), "access"), "process memory");
    assert_true(jbool(block_of(o, "pc.ram"), "verified"));
    json_object_put(o);
    assert_non_null(d.ops->write);
    uint8_t before[4096], after[4096];
    memcpy(before, ram + 0xc7000, 4096);
    const uint8_t three[3] = {0x11, 0x22, 0x33};
    assert_int_equal(d.ops->write(d.priv, 0xc77ff, three, 3), 3);
    memcpy(after, ram + 0xc7000, 4096);
    memcpy(before + 0x7ff, three, 3);
    assert_memory_equal(before, after, 4096);
    expect_frames(&d, 0xc7000, 4096, after);
    assert_int_equal(d.ops->write(d.priv, RAM256 - 1, three, 3), 1);
    assert_int_equal(ram[RAM256 - 1], 0x11);
    d.ops->close(d.priv);
    fake_stop(&f);
    fake_free(&f);
    anon_free(ram, BLOCK);
    free(post);
}

int main(void)
{
    vmem_guard_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prestart),
        cmocka_unit_test(test_reverify_fails),
        cmocka_unit_test(test_swap_threads),
        cmocka_unit_test(test_dimm_later),
        cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_write_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
