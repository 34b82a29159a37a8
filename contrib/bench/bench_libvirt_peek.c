/*
 * bench_libvirt_peek.c - raw virDomainMemoryPeek(VIR_MEMORY_PHYSICAL)
 * throughput, the baseline of the libvirt driver's peek path: reads
 * [0, MiB) of a domain's guest-physical memory in calls of CHUNK bytes and
 * prints "MB/s calls seconds".  A benchmark, not a test.
 *
 *     bench_libvirt_peek URI DOMAIN MIB CHUNK_BYTES
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libvirt/libvirt.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s URI DOMAIN MIB CHUNK_BYTES\n", argv[0]);
        return 2;
    }
    unsigned long long total = strtoull(argv[3], NULL, 0) << 20;
    size_t chunk = strtoull(argv[4], NULL, 0);
    virConnectPtr c = virConnectOpen(argv[1]);
    virDomainPtr d = c ? virDomainLookupByName(c, argv[2]) : NULL;
    char *buf = malloc(chunk);
    if (!d || !buf || chunk == 0)
        return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned long long off, calls = 0;
    for (off = 0; off < total; off += chunk, calls++)
        if (virDomainMemoryPeek(d, off, chunk, buf, VIR_MEMORY_PHYSICAL) < 0)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.1f %llu %.3f\n", (double)off / s / 1e6, calls, s);
    virDomainFree(d);
    virConnectClose(c);
    free(buf);
    return 0;
}
