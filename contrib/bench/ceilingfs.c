/*
 * ceilingfs - the "FUSE ceiling" for contrib/bench/bench.sh.
 *
 * A trivial libfuse3 low-level file system exposing one read-only file,
 * MOUNT/data, whose reads are served straight from a backing file: either
 * from an mmap of it (fuse_reply_buf: one copy, user -> kernel) or, with
 * --splice, by fuse_reply_data with an fd buffer (splice file -> pipe ->
 * /dev/fuse).  Nothing vmemfs does can serve pmem.raw faster than this on
 * the same kernel and libfuse, so it is the reference vmemfs is measured
 * against.  Not part of the vmemfs build; bench.sh compiles it with cc.
 *
 * usage: ceilingfs [options] MOUNTPOINT FILE   (always runs in the foreground)
 *   --direct-io        open with direct_io (no page cache for MOUNT/data)
 *   --no-keep-cache    page-cache mode without keep_cache
 *   --splice           reply with an fd buffer (splice) instead of the mmap
 *   --splice-move      --splice, plus SPLICE_F_MOVE (FUSE_CAP_SPLICE_MOVE)
 *   --madv-none, --madv-random
 *                      advice for the mmap (default MADV_SEQUENTIAL, as vmemfs;
 *                      with none, a fault reads around it the backing device's
 *                      read_ahead_kb, which makes cold random reads slow)
 *   --pread            pread into a per-thread buffer, then fuse_reply_buf
 *                      (one more copy than the mmap, but the backing file's
 *                      own readahead instead of mmap fault read-around)
 *   --threads N        worker threads of the multi-threaded loop (default 4)
 *   --clone-fd         one /dev/fuse fd per thread
 *   --max-read BYTES   max_read and max_write/max_pages (default 1 MiB)
 *   --max-background N kernel's background (readahead) request limit
 *   -d                 libfuse debug output
 *
 * FUSE_USE_VERSION 312: with an older version the fuse_loop_config passed to
 * fuse_session_loop_mt is the old struct layout and libfuse misreads it.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_INO 2
static const char data_name[] = "data";

static struct {
	int fd;
	const char *map;
	off_t size;
	int direct_io, keep_cache, splice, splice_move, use_pread;
	unsigned max_read, max_background;
	int madv;
} g = { .fd = -1, .keep_cache = 1, .max_read = 1u << 20,
      .madv = MADV_SEQUENTIAL };

/* request statistics, printed to stderr at unmount (bench.sh logs them) */
static unsigned long long st_reads, st_bytes, st_max;

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = g.size;
		st->st_blocks = (g.size + 511) / 512;
	}
}

static void cf_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_read = g.max_read;   /* must match -o max_read */
	conn->max_write = g.max_read;  /* libfuse derives max_pages from this */
	if (g.max_background)
		conn->max_background = g.max_background;
	if (g.splice) {
		if (conn->capable & FUSE_CAP_SPLICE_WRITE)
			conn->want |= FUSE_CAP_SPLICE_WRITE;
		else
			fprintf(stderr, "ceilingfs: kernel lacks splice write\n");
		if (g.splice_move && (conn->capable & FUSE_CAP_SPLICE_MOVE))
			conn->want |= FUSE_CAP_SPLICE_MOVE;
	} else {
		conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	}
}

static void cf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	if (parent != FUSE_ROOT_ID || strcmp(name, data_name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = DATA_INO;
	e.attr_timeout = 3600;
	e.entry_timeout = 3600;
	fill_attr(DATA_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void cf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	if (ino != FUSE_ROOT_ID && ino != DATA_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void cf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != DATA_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fi->direct_io = g.direct_io;
	fi->keep_cache = !g.direct_io && g.keep_cache;
	fuse_reply_open(req, fi);
}

static void cf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (off >= g.size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	__atomic_add_fetch(&st_reads, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&st_bytes, size, __ATOMIC_RELAXED);
	for (unsigned long long m = __atomic_load_n(&st_max, __ATOMIC_RELAXED);
	     size > m && !__atomic_compare_exchange_n(&st_max, &m, size, 0,
			__ATOMIC_RELAXED, __ATOMIC_RELAXED);)
		;
	if ((off_t)size > g.size - off)
		size = (size_t)(g.size - off);
	if (g.splice) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = g.fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, g.splice_move ? FUSE_BUF_SPLICE_MOVE : 0);
	} else if (g.use_pread) {
		static __thread char *tbuf;
		if (!tbuf && !(tbuf = malloc(g.max_read))) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (size > g.max_read)
			size = g.max_read;
		ssize_t n = pread(g.fd, tbuf, size, off);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, tbuf, (size_t)n);
	} else {
		fuse_reply_buf(req, g.map + off, size);
	}
}

static void cf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	char buf[512];
	size_t n = 0;
	struct stat st;
	static const struct { const char *name; fuse_ino_t ino; } ents[] = {
		{ ".", FUSE_ROOT_ID }, { "..", FUSE_ROOT_ID }, { data_name, DATA_INO },
	};
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (off_t i = off; i < 3; i++) {
		fill_attr(ents[i].ino, &st);
		size_t len = fuse_add_direntry(req, buf + n, sizeof(buf) - n,
					       ents[i].name, &st, i + 1);
		if (n + len > sizeof(buf) || n + len > size)
			break;
		n += len;
	}
	fuse_reply_buf(req, buf, n);
}

static void cf_destroy(void *userdata)
{
	fprintf(stderr, "ceilingfs: stats reads=%llu bytes=%llu max=%llu\n",
		st_reads, st_bytes, st_max);
}

static const struct fuse_lowlevel_ops ops = {
	.init = cf_init,
	.destroy = cf_destroy,
	.lookup = cf_lookup,
	.getattr = cf_getattr,
	.open = cf_open,
	.read = cf_read,
	.readdir = cf_readdir,
};

static void usage(void)
{
	fprintf(stderr, "usage: ceilingfs [--direct-io] [--no-keep-cache] [--splice] "
		"[--splice-move] [--pread] [--madv-none|--madv-random] [--threads N] [--clone-fd] [--max-read BYTES] [--max-background N] [-d] "
		"MOUNTPOINT FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *mnt = NULL, *file = NULL;
	unsigned threads = 4;
	int clone_fd = 0, debug = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--direct-io")) g.direct_io = 1;
		else if (!strcmp(a, "--no-keep-cache")) g.keep_cache = 0;
		else if (!strcmp(a, "--splice")) g.splice = 1;
		else if (!strcmp(a, "--splice-move")) g.splice = g.splice_move = 1;
		else if (!strcmp(a, "--pread")) g.use_pread = 1;
		else if (!strcmp(a, "--madv-none")) g.madv = -1;
		else if (!strcmp(a, "--madv-random")) g.madv = MADV_RANDOM;
		else if (!strcmp(a, "--clone-fd")) clone_fd = 1;
		else if (!strcmp(a, "-d")) debug = 1;
		else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
		else if (!strcmp(a, "--max-read") && i + 1 < argc)
			g.max_read = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--max-background") && i + 1 < argc)
			g.max_background = strtoul(argv[++i], NULL, 0);
		else if (a[0] == '-') usage();
		else if (!mnt) mnt = a;
		else if (!file) file = a;
		else usage();
	}
	if (!mnt || !file || threads < 1 || g.max_read < 4096)
		usage();

	g.fd = open(file, O_RDONLY);
	if (g.fd < 0) {
		perror(file);
		return 1;
	}
	struct stat st;
	if (fstat(g.fd, &st) < 0 || st.st_size <= 0) {
		fprintf(stderr, "ceilingfs: %s: empty or unreadable\n", file);
		return 1;
	}
	g.size = st.st_size;
	g.map = mmap(NULL, (size_t)g.size, PROT_READ, MAP_SHARED, g.fd, 0);
	if (g.map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (g.madv >= 0)
		madvise((void *)g.map, (size_t)g.size, g.madv);

	char opts[256];
	snprintf(opts, sizeof(opts), "max_read=%u,fsname=ceilingfs,subtype=ceilingfs,ro",
		 g.max_read);
	char *fargv[] = { argv[0], "-o", opts, debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fargv);

	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	int ret = 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, mnt) == 0) {
			struct fuse_loop_config *cfg = fuse_loop_cfg_create();
			fuse_loop_cfg_set_max_threads(cfg, threads);
			fuse_loop_cfg_set_idle_threads(cfg, threads);
			fuse_loop_cfg_set_clone_fd(cfg, clone_fd);
			ret = fuse_session_loop_mt(se, cfg);
			fuse_loop_cfg_destroy(cfg);
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return ret ? 1 : 0;
}
