/*
 * xen_check.c - run inside the nested dom0 by t_xen.sh (built static on the
 * host; dom0 has busybox only): checks one domain's directory of a vmemfs
 * mount against the guest's own account of itself (the truth block its
 * /init prints on its console, contrib/guest/init).
 *
 *   xen_check VMDIR CONSOLE_LOG
 *
 * Prints "XENTEST PASS|FAIL <vm> <what> <detail>" lines; exit 0 when all
 * pass.  Checks: pattern bytes at every PHYS paddr in pmem, pattern bytes
 * at the first, middle and last word of every PATTERN region in the
 * process's proc/<pid>/vmem, the process list (every user process of the
 * truth with its name), SEEK_DATA/SEEK_HOLE on pmem and on vmem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC 0x564d454d46530000ULL

static const char *vm;
static int fails;

static void result(int ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result(int ok, const char *what, const char *fmt, ...)
{
    char d[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    printf("XENTEST %s %s %s %s\n", ok ? "PASS" : "FAIL", vm, what, d);
    fflush(stdout);
    if (!ok)
        fails++;
}

struct pat { long pid; uint64_t tag, addr, len; char kind[16]; };
struct phys { long pid; uint64_t vaddr, paddr; char kind[16]; };
struct proc { long pid, ppid, uid; char comm[32]; };

static struct pat pats[64]; static int npat;
static struct phys phs[64]; static int nph;
static struct proc procs[512]; static int nproc;

static uint64_t tag_of(long pid)
{
    for (int i = 0; i < npat; i++)
        if (pats[i].pid == pid)
            return pats[i].tag;
    return UINT64_MAX;
}

static int read64(const char *path, uint64_t off, uint64_t *v, int *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    ssize_t n = pread(fd, v, 8, (off_t)off);
    *err = n < 0 ? errno : 0;
    close(fd);
    return n == 8 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: xen_check VMDIR CONSOLE_LOG\n");
        return 2;
    }
    const char *dir = argv[1];
    vm = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        result(0, "truth", "cannot open %s: %s", argv[2], strerror(errno));
        return 1;
    }
    char line[1024];
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strstr(line, "VMEMFS-TRUTH-BEGIN")) { in = 1; continue; }
        if (strstr(line, "VMEMFS-TRUTH-END")) break;
        if (!in)
            continue;
        struct pat p;
        struct phys h;
        struct proc r;
        if (npat < 64 && sscanf(line, "PATTERN pid=%ld tag=%" SCNu64 " kind=%15s addr=0x%" SCNx64
                                " len=0x%" SCNx64, &p.pid, &p.tag, p.kind, &p.addr, &p.len) == 5)
            pats[npat++] = p;
        else if (nph < 64 && sscanf(line, "PHYS pid=%ld kind=%15s vaddr=0x%" SCNx64 " paddr=0x%" SCNx64,
                                    &h.pid, h.kind, &h.vaddr, &h.paddr) == 4)
            phs[nph++] = h;
        else if (nproc < 512 && sscanf(line, "PROC %ld %ld %ld %31[^\n]", &r.pid, &r.ppid,
                                       &r.uid, r.comm) == 4)
            procs[nproc++] = r;
    }
    fclose(f);
    result(npat >= 8 && nph >= 8 && nproc > 0, "truth", "%d PATTERN, %d PHYS, %d PROC lines",
           npat, nph, nproc);

    char path[512];
    snprintf(path, sizeof path, "%s/pmem", dir);
    /* Pattern words at the physical addresses the guest's pagemap gave. */
    int good = 0, tried = 0;
    for (int i = 0; i < nph; i++) {
        uint64_t tag = tag_of(phs[i].pid), v = 0;
        if (tag == UINT64_MAX || strcmp(phs[i].kind, "counter") == 0)
            continue;
        tried++;
        int err;
        uint64_t want = phs[i].vaddr ^ MAGIC ^ tag;
        if (read64(path, phs[i].paddr, &v, &err) == 0 && v == want)
            good++;
        else
            result(0, "pmem-word", "pid %ld %s paddr 0x%" PRIx64 ": 0x%" PRIx64
                   " want 0x%" PRIx64 " (%s)", phs[i].pid, phs[i].kind, phs[i].paddr,
                   v, want, strerror(err));
    }
    result(tried > 0 && good == tried, "pmem", "%d/%d pattern words at their paddr", good, tried);

    /* Pattern words through each process's own page tables. */
    good = tried = 0;
    for (int i = 0; i < npat; i++) {
        snprintf(path, sizeof path, "%s/proc/%ld/vmem", dir, pats[i].pid);
        uint64_t offs[3] = { pats[i].addr, pats[i].addr + (pats[i].len / 2 & ~7ull),
                             pats[i].addr + pats[i].len - 8 };
        for (int k = 0; k < 3; k++) {
            uint64_t v = 0, want = offs[k] ^ MAGIC ^ pats[i].tag;
            int err;
            tried++;
            if (read64(path, offs[k], &v, &err) == 0 && v == want)
                good++;
            else
                result(0, "vmem-word", "pid %ld %s va 0x%" PRIx64 ": 0x%" PRIx64
                       " want 0x%" PRIx64 " (%s)", pats[i].pid, pats[i].kind, offs[k],
                       v, want, strerror(err));
        }
    }
    result(tried > 0 && good == tried, "vmem", "%d/%d pattern words in proc/PID/vmem",
           good, tried);

    /* Every user process of the truth, with its name. */
    good = tried = 0;
    for (int i = 0; i < nproc; i++) {
        if (procs[i].ppid == 2 || procs[i].pid == 2)
            continue;       /* kernel threads come and go */
        tried++;
        snprintf(path, sizeof path, "%s/proc/%ld/status", dir, procs[i].pid);
        FILE *s = fopen(path, "r");
        char l[256], name[64] = "";
        while (s && fgets(l, sizeof l, s))
            if (sscanf(l, "Name:\t%63[^\n]", name) == 1)
                break;
        if (s)
            fclose(s);
        if (strcmp(name, procs[i].comm) == 0)
            good++;
        else
            result(0, "proc-entry", "pid %ld: '%s' want '%s'", procs[i].pid, name,
                   procs[i].comm);
    }
    result(tried > 0 && good == tried, "proc", "%d/%d user processes by pid and name",
           good, tried);

    /* SEEK_DATA/SEEK_HOLE: a pattern page is data, in pmem and in vmem. */
    snprintf(path, sizeof path, "%s/pmem", dir);
    int fd = open(path, O_RDONLY);
    if (fd >= 0 && nph) {
        off_t pa = (off_t)phs[0].paddr & ~(off_t)4095;
        off_t d = lseek(fd, pa, SEEK_DATA), h = lseek(fd, pa, SEEK_HOLE);
        off_t end = lseek(fd, 0, SEEK_END);
        off_t h0 = lseek(fd, 0, SEEK_HOLE);
        result(d == pa && h > pa && h0 > 0 && h0 <= end, "seek-pmem",
               "SEEK_DATA(0x%llx)=0x%llx SEEK_HOLE=0x%llx, first hole 0x%llx of 0x%llx",
               (long long)pa, (long long)d, (long long)h, (long long)h0, (long long)end);
        close(fd);
    } else {
        result(0, "seek-pmem", "open %s: %s", path, strerror(errno));
    }
    for (int i = 0; i < npat; i++) {
        if (strcmp(pats[i].kind, "mmap") != 0)
            continue;
        snprintf(path, sizeof path, "%s/proc/%ld/vmem", dir, pats[i].pid);
        fd = open(path, O_RDONLY);
        off_t a = (off_t)pats[i].addr & ~(off_t)4095;
        off_t d = fd >= 0 ? lseek(fd, a, SEEK_DATA) : -1;
        off_t h = fd >= 0 ? lseek(fd, a, SEEK_HOLE) : -1;
        off_t z = fd >= 0 ? lseek(fd, 0, SEEK_DATA) : -1;
        result(d == a && h >= (off_t)(pats[i].addr + pats[i].len) && z > 0 && z <= a,
               "seek-vmem", "pid %ld: SEEK_DATA(0x%llx)=0x%llx SEEK_HOLE=0x%llx, "
               "first data 0x%llx", pats[i].pid, (long long)a, (long long)d,
               (long long)h, (long long)z);
        if (fd >= 0)
            close(fd);
        break;
    }
    return fails ? 1 : 0;
}
