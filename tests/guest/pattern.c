/*
 * pattern: fills guest memory with a pattern that a reader can verify knowing
 * only the virtual address, and prints where it put it.
 *
 * Every 8-byte little-endian word at virtual address A (A a multiple of 8)
 * in a printed region holds
 *
 *     (uint64_t)A ^ PATTERN_MAGIC ^ tag
 *
 * (on a 32-bit build A is zero-extended; the words are still 64-bit).
 *
 * Usage: pattern TAG [counter]
 *
 * Prints, one line per region, then fflush:
 *   PATTERN pid=<pid> tag=<tag> kind=<heap|mmap|thp> addr=0x<hex> len=0x<hex>
 * and, when /proc/self/pagemap shows frame numbers (root), for the first page
 * of each region the physical address it sat at when printed:
 *   PHYS pid=<pid> kind=<kind> vaddr=0x<hex> paddr=0x<hex>
 *
 * Regions: "heap" is a 256 KiB malloc buffer in the brk heap; "mmap" is an
 * 8 MiB anonymous mapping with MADV_NOHUGEPAGE (so 4 KiB pages even when the
 * kernel's THP mode is "always"); "thp" is a 2 MiB-aligned 2 MiB region with
 * MADV_HUGEPAGE. Every page is touched.
 * With "counter": also
 *   COUNTER pid=<pid> addr=0x<hex>
 * (and its PHYS line, kind=counter)
 * and increments the volatile uint64_t at that address about every 10 ms,
 * forever. Without it the program pause()s forever.
 *
 * Build: gcc -static -O2 -o pattern pattern.c   (also works with -m32)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define PATTERN_MAGIC 0x564d454d46530000ULL /* "VMEMFS\0\0" as a number */

#define HEAP_LEN (256u * 1024u)
#define MMAP_LEN (8u * 1024u * 1024u)
#define THP_LEN (2u * 1024u * 1024u)

static uint64_t tag;

static void die(const char *what)
{
    fprintf(stderr, "pattern: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Prints the physical address of the page holding va, if pagemap tells. */
static void phys(const char *kind, uintptr_t va)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t ent;
    int fd = open("/proc/self/pagemap", O_RDONLY);

    if (fd < 0)
        return;
    if (pread(fd, &ent, sizeof(ent), (off_t)(va / (uintptr_t)pg) * 8) ==
            (ssize_t)sizeof(ent) &&
        (ent >> 63) & 1 && (ent & ((1ULL << 55) - 1)) != 0) {
        uint64_t pa = (ent & ((1ULL << 55) - 1)) * (uint64_t)pg +
                      (va % (uintptr_t)pg);
        printf("PHYS pid=%ld kind=%s vaddr=0x%" PRIxPTR " paddr=0x%" PRIx64
               "\n",
               (long)getpid(), kind, va, pa);
    }
    close(fd);
}

/* Fills [p, p+len) (rounded inward to 8 bytes) and prints the region. */
static void fill(const char *kind, void *p, size_t len)
{
    uintptr_t a = ((uintptr_t)p + 7u) & ~(uintptr_t)7u;
    uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)7u;
    uintptr_t start = a;

    for (; a < end; a += 8) {
        /* uint64_t stores are fine at 8-byte alignment on x86 and i386. */
        *(volatile uint64_t *)a = (uint64_t)a ^ PATTERN_MAGIC ^ tag;
    }
    printf("PATTERN pid=%ld tag=%" PRIu64 " kind=%s addr=0x%" PRIxPTR
           " len=0x%" PRIxPTR "\n",
           (long)getpid(), tag, kind, start, end - start);
    phys(kind, start);
    fflush(stdout);
}

/* Mode "net": sockets for the responder's files (issue 11) to find, kept
 * open for the process's life: a TCP listener on 127.0.0.1:7001, a
 * connected TCP pair (listener 7002, both ends), a UDP socket on
 * 127.0.0.1:7003, a listening unix socket /tmp/vmemfs.sock, a pipe and an
 * eventfd.  Needs the loopback interface up. */
static int tcp_listener(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0)
        die("tcp listener");
    return s;
}

static void open_sockets(void)
{
    tcp_listener(7001);
    int l2 = tcp_listener(7002);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7002)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) < 0 || accept(l2, NULL, NULL) < 0)
        die("tcp pair");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    a.sin_port = htons(7003);
    if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof a) < 0)
        die("udp");
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/tmp/vmemfs.sock");
    unlink(un.sun_path);
    int x = socket(AF_UNIX, SOCK_STREAM, 0);
    if (x < 0 || bind(x, (struct sockaddr *)&un, sizeof un) < 0 || listen(x, 4) < 0)
        die("unix");
    int p[2];
    if (pipe(p) < 0 || eventfd(0, EFD_CLOEXEC) < 0)
        die("pipe/eventfd");
}

int main(int argc, char **argv)
{
    int counter = 0;
    char *end;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s TAG [counter]\n", argv[0]);
        return 2;
    }
    errno = 0;
    tag = strtoull(argv[1], &end, 0);
    if (errno || *end || end == argv[1]) {
        fprintf(stderr, "pattern: bad tag '%s'\n", argv[1]);
        return 2;
    }
    if (argc == 3) {
        if (strcmp(argv[2], "net") == 0)
            open_sockets();
        else if (strcmp(argv[2], "counter") != 0) {
            fprintf(stderr, "pattern: unknown mode '%s'\n", argv[2]);
            return 2;
        }
        else
            counter = 1;
    }

    /* Heap: keep the buffer in the brk heap ([heap] in maps), not in a
     * separate mmap, by raising glibc's mmap threshold. */
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    void *heap = malloc(HEAP_LEN);
    if (!heap)
        die("malloc");
    fill("heap", heap, HEAP_LEN);

    void *big = mmap(NULL, MMAP_LEN, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED)
        die("mmap");
    if (madvise(big, MMAP_LEN, MADV_NOHUGEPAGE) != 0 && errno != EINVAL)
        die("madvise(MADV_NOHUGEPAGE)");
    fill("mmap", big, MMAP_LEN);

    /* THP: 4 MiB reservation, 2 MiB-aligned 2 MiB inside it. */
    void *res = mmap(NULL, 2 * THP_LEN, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED)
        die("mmap thp");
    uintptr_t t = ((uintptr_t)res + THP_LEN - 1) & ~(uintptr_t)(THP_LEN - 1);
    if (madvise((void *)t, THP_LEN, MADV_HUGEPAGE) != 0)
        fprintf(stderr, "pattern: madvise(MADV_HUGEPAGE): %s\n",
                strerror(errno)); /* not fatal: kernel without THP */
    fill("thp", (void *)t, THP_LEN);

    if (!counter) {
        for (;;)
            pause();
    }

    long pg = sysconf(_SC_PAGESIZE);
    void *cp = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (cp == MAP_FAILED)
        die("mmap counter");
    volatile uint64_t *c = cp;
    *c = 0;
    printf("COUNTER pid=%ld addr=0x%" PRIxPTR "\n", (long)getpid(),
           (uintptr_t)cp);
    phys("counter", (uintptr_t)cp);
    fflush(stdout);
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    for (;;) {
        (*c)++;
        nanosleep(&ts, NULL);
    }
}
