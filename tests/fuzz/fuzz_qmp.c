/* fuzz_qmp.c - what a hostile QMP peer can make the qemu driver parse: the
 * QMP client's reading of the stream (greeting, replies, events, ids,
 * errors; drivers/qemu/qmp.c) and the HMP text parsers (drivers/qemu/
 * parse.c: info mtree -f and the RAM layout made from it, info registers,
 * /proc/PID/maps, info ramblock, xp).
 *
 * The first byte picks the parser, the rest is its input:
 *   'm' flat view + RAM layout   'r' registers   'p' maps   'b' ramblock
 *   'x' xp (the next 8 bytes are the base address)
 *   'q' the peer's side of a QMP conversation: the client connects
 *       (greeting, qmp_capabilities), then runs query-memdev, an HMP command
 *       and query-status, reading whatever the input says; invariants of
 *       each answer are checked.
 * Anything else falls back to 'm'.  The corpus is real QEMU 7.2 output. */
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/qemu/parse.h"
#include "drivers/qemu/qmp.h"

/* The QMP stream fed through a socket pair, all written before the client
 * reads (bounded by the socket buffer). */
#define QMP_FEED_MAX (96u << 10)

static void fuzz_layout(const char *text)
{
    struct qemu_flat *flat = NULL;
    size_t nflat = 0;
    if (qemu_parse_flatview(text, "memory", &flat, &nflat) != 0)
        return;
    for (size_t i = 0; i < nflat; i++)
        if (flat[i].last < flat[i].start || !memchr(flat[i].name, 0, sizeof flat[i].name) ||
            !memchr(flat[i].type, 0, sizeof flat[i].type))
            abort();
    static const char *const blocks[] = {"pc.ram", "ram", "mem0", "/objects/mem1"};
    struct qemu_ram_seg *segs = NULL;
    size_t nsegs = 0;
    if (qemu_ram_layout(flat, nflat, blocks, 4, &segs, &nsegs) == 0) {
        for (size_t i = 0; i < nsegs; i++) {
            if (segs[i].block >= 4 || segs[i].len == 0 ||
                segs[i].gpa + segs[i].len < segs[i].gpa)
                abort();
            if (i && segs[i].gpa < segs[i - 1].gpa + segs[i - 1].len)
                abort();            /* sorted, not overlapping */
        }
        free(segs);
    }
    free(flat);
}

static void fuzz_qmp_stream(const uint8_t *data, size_t size)
{
    if (size > QMP_FEED_MAX)
        size = QMP_FEED_MAX;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    int buf = 4 * QMP_FEED_MAX;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            break;                  /* buffer full: the rest is not sent */
        off += (size_t)w;
    }
    /* End of the peer's stream: the client sees EOF, never waits. */
    shutdown(sv[1], SHUT_WR);
    struct qmp *q = NULL;
    char err[256];
    if (qmp_connect_fd(sv[0], 200, &q, err, sizeof err) == 0) {
        json_object *ret = NULL;
        if (qmp_execute(q, "query-memdev", NULL, &ret, err, sizeof err) == 0)
            json_object_put(ret);
        char *text = NULL;
        if (qmp_hmp(q, "info mtree -f", -1, &text, err, sizeof err) == 0) {
            if (!text)
                abort();
            fuzz_layout(text);
            free(text);
        }
        ret = NULL;
        int rc = qmp_execute(q, "query-status", NULL, &ret, err, sizeof err);
        json_object_put(ret);
        if (rc > 0)
            abort();                /* errors are -errno, success 0 */
        qmp_alive(q);
        qmp_events(q, err, sizeof err);
        qmp_close(q);
    }
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char sel = (char)data[0];
    data++;
    size--;
    if (sel == 'q') {
        fuzz_qmp_stream(data, size);
        return 0;
    }
    uint64_t base = 0;
    if (sel == 'x') {
        if (size < 8)
            return 0;
        memcpy(&base, data, 8);
        data += 8;
        size -= 8;
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    switch (sel) {
    case 'r': {
        struct vmem_vcpu v;
        memset(&v, 0, sizeof v);
        if (qemu_parse_registers(text, &v) == 0 &&
            (v.valid & ~(unsigned)(VMEM_VCPU_GPRS | VMEM_VCPU_CRS | VMEM_VCPU_BASES)))
            abort();
        break;
    }
    case 'p': {
        struct qemu_map *maps = NULL;
        size_t n = 0;
        if (qemu_parse_maps(text, &maps, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                if (!memchr(maps[i].path, 0, sizeof maps[i].path) ||
                    !memchr(maps[i].perms, 0, sizeof maps[i].perms))
                    abort();
            free(maps);
        }
        break;
    }
    case 'b': {
        struct qemu_ramblock *rb = NULL;
        size_t n = 0;
        if (qemu_parse_ramblock(text, &rb, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                if (!memchr(rb[i].name, 0, sizeof rb[i].name))
                    abort();
            free(rb);
        }
        break;
    }
    case 'x': {
        uint8_t page[4096];
        size_t len = (size_t)(base & 0xfff) + 1;    /* 1..4096 bytes */
        qemu_parse_xp(text, base & ~(uint64_t)0xfff, page, len);
        break;
    }
    default:
        fuzz_layout(text);
        break;
    }
    free(text);
    return 0;
}
