/*
 * bench_xen.c - foreign-map read rates of a Xen domain, run in dom0 (the
 * nested one of tests/integration/t_xen.sh with XENTEST_BENCH=1): a reader
 * that maps one frame per call (what libvmi's and libmicrovmi's Xen drivers
 * do), batched maps of growing size, and vmemfs's pmem.raw read
 * sequentially.  A benchmark, not a test: it prints figures.
 *
 *   bench_xen DOMID PMEM_RAW [MIB]      (default 64 MiB from gfn 0; HVM/PVH)
 *
 * Build: cc -O2 -o bench_xen bench_xen.c $(pkg-config --cflags --libs
 *        xenforeignmemory xencontrol)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenforeignmemory.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* MB/s reading npages frames from gfn 0 in maps of `batch` frames. */
static double foreign_rate(xenforeignmemory_handle *fm, uint32_t dom,
                           size_t npages, size_t batch, uint8_t *dst)
{
    xen_pfn_t *pfns = malloc(batch * sizeof *pfns);
    int *err = malloc(batch * sizeof *err);
    double t0 = now();
    size_t bad = 0;
    for (size_t at = 0; at < npages; at += batch) {
        size_t n = npages - at < batch ? npages - at : batch;
        for (size_t i = 0; i < n; i++)
            pfns[i] = at + i;
        uint8_t *p = xenforeignmemory_map(fm, dom, PROT_READ, n, pfns, err);
        if (!p) {
            perror("xenforeignmemory_map");
            exit(1);
        }
        for (size_t i = 0; i < n; i++) {
            if (err[i])
                bad++;
            else
                memcpy(dst + (at + i) % 256 * 4096, p + i * 4096, 4096);
        }
        xenforeignmemory_unmap(fm, p, n);
    }
    double dt = now() - t0;
    free(pfns);
    free(err);
    if (bad)
        fprintf(stderr, "(%zu frames failed)\n", bad);
    return npages * 4096.0 / dt / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_xen DOMID PMEM_RAW [MIB]\n");
        return 2;
    }
    uint32_t dom = (uint32_t)atoi(argv[1]);
    size_t mib = argc > 3 ? (size_t)atoi(argv[3]) : 64;
    size_t npages = mib * 256;
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    if (!fm) {
        perror("xenforeignmemory_open");
        return 1;
    }
    uint8_t *dst = malloc(256 * 4096);
    /* One frame per call is slow: a quarter of the span is enough. */
    double one = foreign_rate(fm, dom, npages / 4, 1, dst);
    printf("one-frame-per-call %.1f MB/s\n", one);
    static const size_t sizes[] = { 8, 64, 256, 1024 };
    double best = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        double r = foreign_rate(fm, dom, npages, sizes[i], dst);
        printf("batch %zu %.1f MB/s\n", sizes[i], r);
        if (r > best)
            best = r;
    }
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    size_t chunk = 1 << 20;
    uint8_t *buf = malloc(chunk);
    double t0 = now();
    size_t total = 0;
    while (total < npages * 4096ul) {
        ssize_t n = pread(fd, buf, chunk, (off_t)total);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    double pm = total / (now() - t0) / 1e6;
    printf("pmem.raw sequential %.1f MB/s (%zu MiB)\n", pm, total >> 20);
    printf("ratio batched/one-per-call %.1fx, pmem.raw %.1fx one-per-call, "
           "pmem.raw/best-batched %.0f%%\n", best / one, pm / one, 100 * pm / best);
    close(fd);
    xenforeignmemory_close(fm);
    return 0;
}
