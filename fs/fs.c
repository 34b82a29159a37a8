/*
 * fs.c - libfuse low-level operations for the vmemfs tree:
 *
 *   /<vm>/pmem             strict physical view (direct_io: a short read at a
 *                          hole must reach the reader as such, not as EOF)
 *   /<vm>/pmem.raw         padded physical view (the kernel page cache is kept
 *                          for immutable sources: a second read costs no trip)
 *   /<vm>/info.json        what vmemfs knows, generated at open (a snapshot)
 *   /<vm>/memmap           the ranges, /proc/iomem style
 *   /<vm>/control          write "pause", "resume" or "flush"
 *   /<vm>/proc/<pid>/...   the rows of the guest OS's process table
 *                          (core/os/os.h): vmem, maps, status, ...
 *   /<vm>/kernel/...       the rows of its kernel table: vmem, ...
 *   /<vm>/...              and of its VM table (listings)
 *   /<group>/<vm>/         VMs found by a named discovery (--libvirt h1=URI)
 *
 * proc/ and kernel/ exist only when core recognised the guest OS.  Files
 * that come from the OS are rows: text rows are rendered at open (a
 * snapshot, like /proc), address-space rows read through the VM's virtual
 * read path; this file knows no OS's types.
 */
#include "fs/internal.h"

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* 1 MiB requests: max_write also sets max_pages, which bounds reads. */
    conn->max_write = 1 << 20;
    conn->max_readahead = 1 << 20;
    conn->want |= FUSE_CAP_ASYNC_READ;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;   /* echo cmd > control */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;     /* immutable sources stay cached */
}

/* The tree is vmemfs's own: nothing can be created, renamed or removed. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    (void)parent; (void)name; (void)mode; (void)rdev;
    fuse_reply_err(req, EPERM);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)parent; (void)name; (void)mode;
    fuse_reply_err(req, EPERM);
}
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent; (void)name;
    fuse_reply_err(req, EPERM);
}
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    (void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
    fuse_reply_err(req, EPERM);
}
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
    (void)parent; (void)name; (void)mode; (void)fi;
    fuse_reply_err(req, EPERM);
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
    .setattr = op_setattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .release = op_release,
    .lseek = op_lseek,
    .statfs = op_statfs,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .rename = op_rename,
    .create = op_create,
};
