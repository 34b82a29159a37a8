/*
 * fs.c - libfuse low-level operations for the vmemfs tree:
 *
 *   /<vm>/pmem       strict physical view (direct_io: a short read at a
 *                    hole must reach the reader as such, not as EOF)
 *   /<vm>/pmem.raw   padded physical view (kernel page cache kept for
 *                    immutable sources: a second read costs no FUSE trip)
 *   /<vm>/info.json  what vmemfs knows, generated at open (a snapshot)
 *   /<vm>/memmap     the ranges, /proc/iomem style
 */
#include "fs/fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

enum file_kind {
    K_NONE = 0,
    K_VMDIR,
    K_PMEM,
    K_PMEM_RAW,
    K_INFO,
    K_MEMMAP,
};

static const struct {
    const char *name;
    enum file_kind kind;
} vm_dir_entries[] = {
    {"pmem", K_PMEM},
    {"pmem.raw", K_PMEM_RAW},
    {"info.json", K_INFO},
    {"memmap", K_MEMMAP},
};
#define N_VM_ENTRIES (sizeof vm_dir_entries / sizeof vm_dir_entries[0])

static inline fuse_ino_t make_ino(size_t slot, enum file_kind kind, uint32_t pid)
{
    return ((fuse_ino_t)(slot + 1) << 40) | ((fuse_ino_t)kind << 32) | pid;
}
static inline size_t ino_slot(fuse_ino_t ino) { return (size_t)(ino >> 40) - 1; }
static inline enum file_kind ino_kind(fuse_ino_t ino)
{
    return (enum file_kind)((ino >> 32) & 0xff);
}

static struct vmemfs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* A counted reference to the VM behind an inode, or NULL if it is gone. */
static struct vm *vm_of_ino(struct vmemfs *fs, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return NULL;
    size_t slot = ino_slot(ino);
    struct vm *vm = NULL;
    pthread_rwlock_rdlock(&fs->lock);
    if (slot < fs->nslots && fs->slots[slot])
        vm = vm_get(fs->slots[slot]);
    pthread_rwlock_unlock(&fs->lock);
    return vm;
}

int vmemfs_add_vm(struct vmemfs *fs, struct vm *vm)
{
    int rc = -ENOSPC;
    pthread_rwlock_wrlock(&fs->lock);
    for (size_t i = 0; i < fs->nslots; i++) {
        if (fs->slots[i] && strcmp(vm_name(fs->slots[i]), vm_name(vm)) == 0) {
            rc = -EEXIST;
            goto out;
        }
    }
    for (size_t i = 0; i < VMEMFS_MAX_VMS; i++) {
        if (!fs->slots[i]) {
            fs->slots[i] = vm;
            fs->generation[i]++;
            if (i >= fs->nslots)
                fs->nslots = i + 1;
            rc = 0;
            break;
        }
    }
out:
    pthread_rwlock_unlock(&fs->lock);
    return rc;
}

/* ---- attributes ---------------------------------------------------------- */

static double attr_timeout(struct vm *vm)
{
    return vm && vm_immutable(vm) ? 3600.0 : 1.0;
}

static size_t text_of(struct vm *vm, enum file_kind kind, char **out)
{
    size_t len = 0;
    *out = kind == K_INFO ? vm_info_json(vm, &len) : vm_memmap_text(vm, &len);
    return *out ? len : 0;
}

static int fill_attr(struct vmemfs *fs, fuse_ino_t ino, struct vm *vm,
                     struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_atime = st->st_mtime = st->st_ctime = fs->started;
    st->st_blksize = 1 << 20;
    mode_t r = fs->opt.allow_other ? 0444 : 0400;
    mode_t w = fs->opt.writable ? 0200 : 0;
    mode_t x = fs->opt.allow_other ? 0111 : 0100;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | r | x;
        st->st_nlink = 2 + fs->nslots;
        return 0;
    }
    switch (ino_kind(ino)) {
    case K_VMDIR:
        st->st_mode = S_IFDIR | r | x;
        st->st_nlink = 2;
        return 0;
    case K_PMEM:
    case K_PMEM_RAW: {
        st->st_mode = S_IFREG | r | w;
        st->st_nlink = 1;
        st->st_size = (off_t)vm_phys_size(vm);
        const struct vmem_range *rg;
        size_t n;
        uint64_t present = 0;
        vm_ranges(vm, &rg, &n);
        for (size_t i = 0; i < n; i++)
            present += rg[i].end - rg[i].start;
        st->st_blocks = (blkcnt_t)(present / 512);   /* du shows RAM, not size */
        return 0;
    }
    case K_INFO:
    case K_MEMMAP: {
        char *text;
        st->st_mode = S_IFREG | r;
        st->st_nlink = 1;
        st->st_size = (off_t)text_of(vm, ino_kind(ino), &text);
        free(text);
        return 0;
    }
    default:
        return -ENOENT;
    }
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* 1 MiB requests: max_write also sets max_pages, which bounds reads. */
    conn->max_write = 1 << 20;
    conn->max_readahead = 1 << 20;
    conn->want |= FUSE_CAP_ASYNC_READ;
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;  /* immutable sources stay cached */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vmemfs *fs = fs_of(req);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);

    if (parent == FUSE_ROOT_ID) {
        pthread_rwlock_rdlock(&fs->lock);
        for (size_t i = 0; i < fs->nslots; i++) {
            if (fs->slots[i] && strcmp(vm_name(fs->slots[i]), name) == 0) {
                e.ino = make_ino(i, K_VMDIR, 0);
                e.generation = fs->generation[i];
                break;
            }
        }
        pthread_rwlock_unlock(&fs->lock);
    } else if (ino_kind(parent) == K_VMDIR) {
        for (size_t k = 0; k < N_VM_ENTRIES; k++)
            if (strcmp(vm_dir_entries[k].name, name) == 0)
                e.ino = make_ino(ino_slot(parent), vm_dir_entries[k].kind, 0);
    }
    if (!e.ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct vm *vm = vm_of_ino(fs, e.ino);
    if (!vm || fill_attr(fs, e.ino, vm, &e.attr) < 0) {
        if (vm)
            vm_put(vm);
        fuse_reply_err(req, ENOENT);
        return;
    }
    e.attr_timeout = e.entry_timeout = attr_timeout(vm);
    vm_put(vm);
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct vmemfs *fs = fs_of(req);
    struct stat st;
    struct vm *vm = vm_of_ino(fs, ino);
    if (ino != FUSE_ROOT_ID && !vm) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    int rc = fill_attr(fs, ino, vm, &st);
    double t = attr_timeout(vm);
    if (vm)
        vm_put(vm);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, ino == FUSE_ROOT_ID ? 1.0 : t);
}

/* ---- directories --------------------------------------------------------- */

/* A directory listing built at opendir: entries packed back to back, and
 * where each one ends, so readdir replies whole entries only. */
struct dir_handle {
    char *buf;
    size_t len;
    size_t *ends;
    size_t nents;
};

static int dir_add(fuse_req_t req, struct dir_handle *d, const char *name,
                   fuse_ino_t ino, mode_t mode)
{
    struct stat st = {.st_ino = ino, .st_mode = mode};
    size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    char *b = realloc(d->buf, d->len + need);
    if (!b)
        return -ENOMEM;
    d->buf = b;
    size_t *e = realloc(d->ends, (d->nents + 1) * sizeof *e);
    if (!e)
        return -ENOMEM;
    d->ends = e;
    fuse_add_direntry(req, d->buf + d->len, need, name, &st, (off_t)(d->len + need));
    d->len += need;
    d->ends[d->nents++] = d->len;
    return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vmemfs *fs = fs_of(req);
    struct dir_handle *d = calloc(1, sizeof *d);
    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int rc = dir_add(req, d, ".", ino, S_IFDIR);
    if (ino == FUSE_ROOT_ID) {
        rc |= dir_add(req, d, "..", FUSE_ROOT_ID, S_IFDIR);
        pthread_rwlock_rdlock(&fs->lock);
        for (size_t i = 0; i < fs->nslots && rc == 0; i++)
            if (fs->slots[i])
                rc = dir_add(req, d, vm_name(fs->slots[i]), make_ino(i, K_VMDIR, 0),
                             S_IFDIR);
        pthread_rwlock_unlock(&fs->lock);
    } else if (ino_kind(ino) == K_VMDIR) {
        struct vm *vm = vm_of_ino(fs, ino);
        if (!vm) {
            free(d->buf);
            free(d->ends);
            free(d);
            fuse_reply_err(req, ENOENT);
            return;
        }
        vm_put(vm);
        rc |= dir_add(req, d, "..", FUSE_ROOT_ID, S_IFDIR);
        for (size_t k = 0; k < N_VM_ENTRIES && rc == 0; k++)
            rc = dir_add(req, d, vm_dir_entries[k].name,
                         make_ino(ino_slot(ino), vm_dir_entries[k].kind, 0), S_IFREG);
    } else {
        free(d->buf);
        free(d->ends);
        free(d);
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (rc) {
        free(d->buf);
        free(d->ends);
        free(d);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    if ((size_t)off >= d->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    /* Entries are packed back to back; reply whole entries only. */
    size_t end = (size_t)off, limit = (size_t)off + size;
    for (size_t i = 0; i < d->nents; i++) {
        if (d->ends[i] <= (size_t)off)
            continue;
        if (d->ends[i] > limit)
            break;
        end = d->ends[i];
    }
    fuse_reply_buf(req, d->buf + off, end - (size_t)off);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    free(d->buf);
    free(d->ends);
    free(d);
    fuse_reply_err(req, 0);
}

/* ---- files ---------------------------------------------------------------- */

struct open_file {
    struct vm *vm;             /* counted reference */
    enum file_kind kind;
    struct vm_stream stream;   /* readahead state of this open file */
    char *text;                /* info.json / memmap snapshot */
    size_t text_len;
};

static void raise_readahead(struct vmemfs *fs)
{
    /* The kernel caps FUSE readahead at 128 KiB unless told otherwise; the
     * bdi knob must be set after FUSE_INIT, so the first open does it. */
    static atomic_bool done;
    if (!fs->bdi_path[0] || atomic_exchange(&done, true))
        return;
    FILE *f = fopen(fs->bdi_path, "w");
    if (f) {
        fputs("4096\n", f);
        fclose(f);
    }
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vmemfs *fs = fs_of(req);
    enum file_kind kind = ino_kind(ino);
    if (ino == FUSE_ROOT_ID || kind == K_VMDIR) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        if (!fs->opt.writable || kind == K_INFO || kind == K_MEMMAP) {
            fuse_reply_err(req, EROFS);
            return;
        }
    }
    struct vm *vm = vm_of_ino(fs, ino);
    if (!vm) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct open_file *h = calloc(1, sizeof *h);
    if (!h) {
        vm_put(vm);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    h->vm = vm;
    h->kind = kind;
    switch (kind) {
    case K_PMEM:
        fi->direct_io = 1;
        break;
    case K_PMEM_RAW:
        if (vm_immutable(vm)) {
            fi->keep_cache = 1;
            raise_readahead(fs);
        } else {
            fi->direct_io = 1;
        }
        break;
    case K_INFO:
    case K_MEMMAP:
        h->text_len = text_of(vm, kind, &h->text);
        if (!h->text) {
            vm_put(vm);
            free(h);
            fuse_reply_err(req, ENOMEM);
            return;
        }
        fi->direct_io = 1;     /* the size may differ from getattr's */
        break;
    default:
        vm_put(vm);
        free(h);
        fuse_reply_err(req, ENOENT);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    fuse_reply_open(req, fi);
}

/* One reply assembly buffer per worker thread, freed when libfuse retires
 * the thread. */
static pthread_key_t reply_key;
static pthread_once_t reply_once = PTHREAD_ONCE_INIT;

static void reply_free(void *p)
{
    vm_reply_fini(p);
    free(p);
}
static void reply_key_init(void) { pthread_key_create(&reply_key, reply_free); }

static struct vm_reply *thread_reply(void)
{
    pthread_once(&reply_once, reply_key_init);
    struct vm_reply *r = pthread_getspecific(reply_key);
    if (!r) {
        r = malloc(sizeof *r);
        if (!r)
            return NULL;
        vm_reply_init(r);
        pthread_setspecific(reply_key, r);
    }
    return r;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    struct open_file *h = (struct open_file *)(uintptr_t)fi->fh;
    if (h->kind == K_INFO || h->kind == K_MEMMAP) {
        if ((size_t)off >= h->text_len) {
            fuse_reply_buf(req, NULL, 0);
            return;
        }
        size_t n = h->text_len - (size_t)off;
        fuse_reply_buf(req, h->text + off, n < size ? n : size);
        return;
    }
    struct vm_reply *r = thread_reply();
    if (!r) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = vm_read_phys_iov(h->vm, (uint64_t)off, size,
                                 h->kind == K_PMEM ? VM_READ_STRICT : VM_READ_PAD,
                                 &h->stream, r);
    if (n < 0)
        fuse_reply_err(req, n == -ENOENT ? EIO : (int)-n);  /* a hole: EIO */
    else if (n == 0)
        fuse_reply_buf(req, NULL, 0);
    else
        /* Mapped dump pages go straight from the mapping to the kernel; if
         * the dump shrank, the kernel's copy faults and the reader gets EIO. */
        fuse_reply_iov(req, r->iov, r->niov);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    (void)ino; (void)buf; (void)size; (void)off; (void)fi;
    /* No driver of this build writes guest memory: the file driver serves
     * dumps, which are evidence and are never modified. */
    fuse_reply_err(req, EROFS);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct open_file *h = (struct open_file *)(uintptr_t)fi->fh;
    vm_put(h->vm);
    free(h->text);
    free(h);
    fuse_reply_err(req, 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    (void)ino;
    struct open_file *h = (struct open_file *)(uintptr_t)fi->fh;
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    off_t r;
    if (h->kind == K_PMEM || h->kind == K_PMEM_RAW) {
        r = vm_seek_phys(h->vm, off, whence);
    } else if (off < 0 || (size_t)off >= h->text_len) {
        r = -ENXIO;
    } else {
        r = whence == SEEK_DATA ? off : (off_t)h->text_len;
    }
    if (r < 0)
        fuse_reply_err(req, (int)-r);
    else
        fuse_reply_lseek(req, r);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255};
    fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops vmemfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .release = op_release,
    .lseek = op_lseek,
    .statfs = op_statfs,
};
