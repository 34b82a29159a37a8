/*
 * benchio - I/O helper for contrib/bench/bench.sh (not part of the vmemfs
 * build, never run by ctest).
 *
 *   benchio gen    FILE MIB [SEED]          write MIB MiB of pseudo-random data
 *   benchio seq    FILE BS [MAXSECS [MAXBYTES]]
 *                                           read FILE sequentially with BS-byte reads,
 *                                           stopping after MAXSECS s / MAXBYTES bytes
 *   benchio rand   FILE SECS THREADS [SEED] random 4 KiB preads for SECS seconds
 *   benchio verify FILE REF NPAGES [SEED]   compare FILE against REF (size, first
 *                                           and last MiB, NPAGES random pages)
 *
 * seq prints "BYTES SECONDS MB/s" (plus "capped" when MAXSECS stopped it), rand
 * prints "READS SECONDS READS/s" (MB = 10^6 bytes).  Exit status is non-zero on any error or short read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "benchio: %s %s: %s\n", what, arg ? arg : "",
		errno ? strerror(errno) : "failed");
	exit(1);
}

/* xoshiro256** seeded by splitmix64: fast, and reproducible for a seed. */
struct rng { uint64_t s[4]; };

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t; s[3] = rotl(s[3], 45);
	return res;
}

static uint64_t file_size(int fd, const char *name)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat", name);
	return (uint64_t)st.st_size;
}

static void *xalloc(size_t n)
{
	void *p;
	if (posix_memalign(&p, PAGE, n ? n : PAGE))
		die("posix_memalign", NULL);
	return p;
}

static int cmd_gen(const char *path, uint64_t mib, uint64_t seed)
{
	const size_t chunk = 1u << 20;
	uint64_t *buf = xalloc(chunk);
	struct rng r;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open", path);
	rng_seed(&r, seed);
	double t0 = now();
	for (uint64_t m = 0; m < mib; m++) {
		for (size_t i = 0; i < chunk / 8; i++) {
			uint64_t v = rng_next(&r);
			buf[i] = v ? v : 0x5a5a5a5a5a5a5a5aull;  /* never a zero word */
		}
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			die("write", path);
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		die("fsync/close", path);
	double dt = now() - t0;
	printf("%" PRIu64 " %.3f %.1f\n", mib << 20, dt, (mib << 20) / dt / 1e6);
	return 0;
}

static int cmd_seq(const char *path, size_t bs, double maxsecs, uint64_t maxbytes)
{
	char *buf = xalloc(bs);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	uint64_t size = file_size(fd, path), total = 0;
	int capped = 0;
	if (maxbytes && maxbytes < size)
		size = maxbytes;
	double t0 = now();
	for (;;) {
		if (total >= size)
			break;
		if (maxsecs > 0 && now() - t0 >= maxsecs) {	/* vDSO: cheap */
			capped = 1;
			break;
		}
		ssize_t n = read(fd, buf, size - total < bs ? size - total : bs);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("read", path);
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
	double dt = now() - t0;
	close(fd);
	if (!capped && total != size) {
		fprintf(stderr, "benchio: %s: read %" PRIu64 " of %" PRIu64 " bytes\n",
			path, total, size);
		return 1;
	}
	printf("%" PRIu64 " %.4f %.1f%s\n", total, dt, total / dt / 1e6,
	       capped ? " capped" : "");
	return 0;
}

struct rand_arg {
	int fd;
	uint64_t pages;
	uint64_t seed;
	double deadline;
	uint64_t reads;
	int err;
};

static void *rand_thread(void *p)
{
	struct rand_arg *a = p;
	char *buf = xalloc(PAGE);
	struct rng r;
	rng_seed(&r, a->seed);
	for (;;) {
		/* check the clock every 64 reads: cheap, and fine-grained enough */
		for (int i = 0; i < 64; i++) {
			uint64_t pg = rng_next(&r) % a->pages;
			ssize_t n = pread(a->fd, buf, PAGE, (off_t)(pg * PAGE));
			if (n != (ssize_t)PAGE) {
				a->err = n < 0 ? errno : EIO;
				return NULL;
			}
			a->reads++;
		}
		if (now() >= a->deadline)
			break;
	}
	free(buf);
	return NULL;
}

static int cmd_rand(const char *path, double secs, int nthreads, uint64_t seed)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	uint64_t pages = file_size(fd, path) / PAGE;
	if (!pages) {
		fprintf(stderr, "benchio: %s: smaller than a page\n", path);
		return 1;
	}
	pthread_t th[64];
	struct rand_arg arg[64];
	if (nthreads < 1 || nthreads > 64)
		nthreads = 1;
	double t0 = now();
	for (int i = 0; i < nthreads; i++) {
		arg[i] = (struct rand_arg){ .fd = fd, .pages = pages,
			.seed = seed + 1000003u * (uint64_t)i, .deadline = t0 + secs };
		if (pthread_create(&th[i], NULL, rand_thread, &arg[i]))
			die("pthread_create", NULL);
	}
	uint64_t total = 0;
	int err = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		total += arg[i].reads;
		if (arg[i].err)
			err = arg[i].err;
	}
	double dt = now() - t0;
	close(fd);
	if (err) {
		fprintf(stderr, "benchio: %s: pread: %s\n", path, strerror(err));
		return 1;
	}
	printf("%" PRIu64 " %.4f %.0f\n", total, dt, total / dt);
	return 0;
}

static int cmp_at(int fa, int fb, uint64_t off, size_t len, char *a, char *b,
		  const char *pa)
{
	ssize_t na = pread(fa, a, len, (off_t)off), nb = pread(fb, b, len, (off_t)off);
	if (na != (ssize_t)len || nb != (ssize_t)len || memcmp(a, b, len)) {
		fprintf(stderr, "benchio: %s differs from reference at offset %" PRIu64
			" (read %zd/%zd of %zu)\n", pa, off, na, nb, len);
		return 1;
	}
	return 0;
}

static int cmd_verify(const char *path, const char *ref, uint64_t npages, uint64_t seed)
{
	int fa = open(path, O_RDONLY), fb = open(ref, O_RDONLY);
	if (fa < 0)
		die("open", path);
	if (fb < 0)
		die("open", ref);
	uint64_t sa = file_size(fa, path), sb = file_size(fb, ref);
	if (sa != sb) {
		fprintf(stderr, "benchio: %s: size %" PRIu64 " != reference size %" PRIu64 "\n",
			path, sa, sb);
		return 1;
	}
	const size_t mib = 1u << 20;
	char *a = xalloc(mib), *b = xalloc(mib);
	size_t head = sa < mib ? (size_t)sa : mib;
	if (cmp_at(fa, fb, 0, head, a, b, path) ||
	    cmp_at(fa, fb, sa - head, head, a, b, path))
		return 1;
	struct rng r;
	rng_seed(&r, seed);
	for (uint64_t i = 0; i < npages && sa >= PAGE; i++) {
		uint64_t pg = rng_next(&r) % (sa / PAGE);
		if (cmp_at(fa, fb, pg * PAGE, PAGE, a, b, path))
			return 1;
	}
	printf("ok %" PRIu64 "\n", sa);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "gen"))
		return cmd_gen(argv[2], strtoull(argv[3], NULL, 0),
			       argc > 4 ? strtoull(argv[4], NULL, 0) : 1);
	if (argc >= 4 && argc <= 6 && !strcmp(argv[1], "seq"))
		return cmd_seq(argv[2], strtoull(argv[3], NULL, 0),
			       argc > 4 ? atof(argv[4]) : 0,
			       argc > 5 ? strtoull(argv[5], NULL, 0) : 0);
	if (argc >= 5 && !strcmp(argv[1], "rand"))
		return cmd_rand(argv[2], atof(argv[3]), atoi(argv[4]),
				argc > 5 ? strtoull(argv[5], NULL, 0) : 42);
	if (argc >= 5 && !strcmp(argv[1], "verify"))
		return cmd_verify(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				  argc > 5 ? strtoull(argv[5], NULL, 0) : 7);
	fprintf(stderr,
		"usage: benchio gen FILE MIB [SEED]\n"
		"       benchio seq FILE BS [MAXSECS [MAXBYTES]]\n"
		"       benchio rand FILE SECS THREADS [SEED]\n"
		"       benchio verify FILE REF NPAGES [SEED]\n");
	return 2;
}
