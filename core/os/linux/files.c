/*
 * files.c - a process's files (see linux.h): exe (mm->exe_file), cwd and
 * root (task->fs), and its descriptor table (task->files->fdt) as one text
 * file, fds.  Names as the guest's /proc/<pid>/fd shows them: pseudo file
 * systems with a d_dname (pipes, sockets, anonymous inodes) by that name.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

#define O_CLOEXEC_GUEST 02000000u               /* x86 */
#define FD_CHUNK        512u                    /* fd pointers per read */

void lx_file_name(struct linux_os *os, uint64_t file, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t dentry = 0, vfsmnt = 0, dop = 0, inode = 0, ino = 0;
    if (lx_kfieldptr(os, file, o->file_dentry, &dentry) < 0 || !lx_kptr_ok(os, dentry)) {
        sb_printf(out, "[file 0x%" PRIx64 "]", file);
        return;
    }
    lx_kfieldptr(os, file, o->file_mnt, &vfsmnt);
    if (lx_kfieldptr(os, dentry, o->dentry_d_op, &dop) == 0 && dop) {
        if (lx_kfieldptr(os, file, o->file_inode, &inode) == 0 && lx_kptr_ok(os, inode))
            lx_kfieldptr(os, inode, o->inode_ino, &ino);
        if (dop == lx_sym(os, "pipefs_dentry_operations")) {
            sb_printf(out, "pipe:[%" PRIu64 "]", ino);
            return;
        }
        if (dop == lx_sym(os, "sockfs_dentry_operations")) {
            sb_printf(out, "socket:[%" PRIu64 "]", ino);
            return;
        }
        if (dop == lx_sym(os, "anon_inodefs_dentry_operations")) {
            uint64_t np = 0;
            char name[NAME_MAX_READ + 1] = "";
            if (lx_kfieldptr(os, dentry, o->dentry_name, &np) == 0 && lx_kptr_ok(os, np))
                lx_kread_str(os, np, name, 64);
            sb_printf(out, "anon_inode:%s", name);
            return;
        }
    }
    lx_path_text(os, vfsmnt, dentry, out);
}

char *linux_os_exe(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    struct sbuf out = {0};
    uint64_t file = 0;
    if (t->kernel_thread || !t->mm_gva)
        return sb_finish(&out, len);
    if (os->o.mm_exe_file == NONE) {
        errno = ENOENT;
        return NULL;
    }
    if (lx_kfieldptr(os, t->mm_gva, os->o.mm_exe_file, &file) < 0) {
        errno = EIO;
        return NULL;
    }
    if (file && lx_kptr_ok(os, file)) {
        lx_file_name(os, file, &out);
        sb_put(&out, "\n", 1);
    }
    return sb_finish(&out, len);
}

static char *fs_path(struct linux_os *os, const struct vmem_proc *t, long which, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct sbuf out = {0};
    uint64_t fs = 0, mnt = 0, dentry = 0;
    if (which == NONE || o->task_fs == NONE || o->path_mnt == NONE || o->path_dentry == NONE) {
        errno = ENOENT;
        return NULL;
    }
    if (lx_kfieldptr(os, t->task_gva, o->task_fs, &fs) < 0) {
        errno = EIO;
        return NULL;
    }
    if (!fs)
        return sb_finish(&out, len);             /* exited: no fs_struct */
    if (!lx_kptr_ok(os, fs) ||
        lx_kreadptr(os, fs + (uint64_t)which + (uint64_t)o->path_mnt, &mnt) < 0 ||
        lx_kreadptr(os, fs + (uint64_t)which + (uint64_t)o->path_dentry, &dentry) < 0 ||
        !lx_kptr_ok(os, dentry)) {
        errno = EIO;
        return NULL;
    }
    lx_path_text(os, mnt, dentry, &out);
    sb_put(&out, "\n", 1);
    return sb_finish(&out, len);
}

char *linux_os_cwd(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    return fs_path(os, t, os->o.fs_pwd, len);
}

char *linux_os_root(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    return fs_path(os, t, os->o.fs_root, len);
}

/* The descriptor table of task: calls fn for every open descriptor, in
 * order, at most FDS_MAX of them.  0, or -errno when the table itself
 * cannot be read; *cut set when the walk stopped early. */
int lx_fd_walk(struct linux_os *os, uint64_t task,
               void (*fn)(void *ctx, unsigned fd, uint64_t file, bool cloexec), void *ctx,
               bool *cut)
{
    const struct lx_offsets *o = &os->o;
    uint64_t files = 0, fdt = 0, arr = 0, coe = 0;
    uint32_t max = 0;
    *cut = false;
    if (o->task_files == NONE || o->files_fdt == NONE || o->fdt_max_fds == NONE ||
        o->fdt_fd == NONE)
        return -ENOENT;
    if (lx_kfieldptr(os, task, o->task_files, &files) < 0)
        return -EIO;
    if (!files)
        return 0;                               /* exited, or a kernel thread */
    if (!lx_kptr_ok(os, files) || lx_kfieldptr(os, files, o->files_fdt, &fdt) < 0 ||
        !lx_kptr_ok(os, fdt) || lx_kfield32(os, fdt, o->fdt_max_fds, &max) < 0 ||
        lx_kfieldptr(os, fdt, o->fdt_fd, &arr) < 0 || !lx_kptr_ok(os, arr))
        return -EIO;
    lx_kfieldptr(os, fdt, o->fdt_close_on_exec, &coe);
    if (max > FDS_MAX) {
        max = FDS_MAX;
        *cut = true;
    }
    const unsigned ps = os->psize, bits = ps * 8;
    uint8_t buf[FD_CHUNK * 8];
    uint8_t cbits[FD_CHUNK / 8];
    for (unsigned base = 0; base < max; base += FD_CHUNK) {
        unsigned n = max - base < FD_CHUNK ? max - base : FD_CHUNK;
        if (lx_kread(os, arr + (uint64_t)base * ps, buf, (size_t)n * ps) < 0) {
            *cut = true;
            break;
        }
        bool have_coe = lx_kptr_ok(os, coe) &&
                        lx_kread(os, coe + base / 8, cbits, (n + bits - 1) / bits * ps) == 0;
        for (unsigned i = 0; i < n; i++) {
            uint64_t file = lx_ldptr(os, buf + (size_t)i * ps);
            if (!file)
                continue;
            if (!lx_kptr_ok(os, file)) {
                *cut = true;
                continue;
            }
            bool ce = have_coe && (cbits[i / 8] >> (i % 8) & 1);
            fn(ctx, base + i, file, ce);
        }
    }
    return 0;
}

struct fds_ctx {
    struct linux_os *os;
    struct sbuf *out;
};

static void fds_line(void *ctx, unsigned fd, uint64_t file, bool cloexec)
{
    struct fds_ctx *c = ctx;
    const struct lx_offsets *o = &c->os->o;
    uint64_t pos = 0;
    uint32_t flags = 0;
    if (o->file_pos != NONE)
        lx_kread(c->os, file + (uint64_t)o->file_pos, &pos, 8);
    lx_kfield32(c->os, file, o->file_flags, &flags);
    if (cloexec)
        flags |= O_CLOEXEC_GUEST;
    sb_printf(c->out, "%u\t%" PRId64 "\t0%o\t", fd, (int64_t)pos, flags);
    lx_file_name(c->os, file, c->out);
    sb_put(c->out, "\n", 1);
}

char *linux_os_fds(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    struct sbuf out = {0};
    struct fds_ctx c = {os, &out};
    bool cut;
    int rc = lx_fd_walk(os, t->task_gva, fds_line, &c, &cut);
    if (rc < 0) {
        free(out.p);
        errno = -rc;
        return NULL;
    }
    if (cut)
        sb_printf(&out, "# incomplete: the descriptor table has bad entries or more "
                  "than %u descriptors\n", FDS_MAX);
    return sb_finish(&out, len);
}
