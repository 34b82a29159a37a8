/*
 * tree.c - the file tree (see internal.h): attributes, lookup and
 * directories.  A VM holds its own files (vm_dir_entries) and the rows of
 * its OS's tables, per process, for the kernel and for the VM, in
 * directories as deep as the rows' names say.
 */
#include "fs/internal.h"

struct dirent_spec {
    const char *name;
    enum file_kind kind;
    bool needs_os;
};

static const struct dirent_spec vm_dir_entries[] = {
    {"pmem", K_PMEM, false},
    {"pmem.raw", K_PMEM_RAW, false},
    {"info.json", K_INFO, false},
    {"memmap", K_MEMMAP, false},
    {"control", K_CONTROL, false},
    {"proc", K_PROCDIR, true},
    {"kernel", K_KERNELDIR, true},
};

/* A row's name now: fixed, or computed (NULL: the row is absent now). */
static const char *row_name(const struct vmem_os *os, const struct vmem_os_file *row)
{
    return row->name_of ? row->name_of(os->priv) : row->name;
}

static uint32_t rowdir_id(unsigned tbl, unsigned depth, unsigned row)
{
    return tbl << 16 | depth << 8 | row;
}

/* The path of directory id (and its length, and depth), or NULL if gone. */
static const char *rowdir_path(const struct vmem_os *os, uint32_t id, size_t *len,
                               unsigned *depth, unsigned *tbl)
{
    *tbl = id >> 16;
    *depth = (id >> 8) & 0xff;
    unsigned row = id & 0xff;
    if (!os || *tbl > TBL_VM || *depth == 0 || row >= ROWS_MAX)
        return NULL;
    const struct vmem_os_file *r = os_row(os, (enum file_kind)(tbl_base[*tbl] + row));
    const char *n = r ? row_name(os, r) : NULL;
    if (!n)
        return NULL;
    /* The directory is the first depth components of that row's name. */
    const char *p = n;
    for (unsigned d = 0; d < *depth; d++) {
        p = strchr(p, '/');
        if (!p)
            return NULL;
        if (d + 1 < *depth)
            p++;
    }
    *len = (size_t)(p - n);
    return n;
}

/* ---- sizes and attributes --------------------------------------------- */

double attr_timeout(struct fs_vm *fv)
{
    return fv && vm_immutable(fv->vm) ? 3600.0 : 1.0;
}

char *info_text(struct fs_vm *fv, size_t *len)
{
    struct json_object *o = vm_info(fv->vm);
    struct json_object *os = json_object_new_object();
    if (fv->os) {
        vmem_os_describe(fv->os, os);
    } else {
        json_object_object_add(os, "os", NULL);
        json_object_object_add(os, "why_no_proc", json_object_new_string(fv->os_why));
    }
    json_object_object_add(o, "guest", os);
    char *text = vm_json_text(o, len);
    json_object_put(o);
    return text;
}


bool task_lookup(struct fs_vm *fv, uint32_t pid, struct vmem_proc *out)
{
    return fv->os && vmem_os_proc(fv->os, pid, out);
}

int fill_attr(struct vmemfs *fs, fuse_ino_t ino, struct fs_vm *fv,
                     struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_atime = st->st_mtime = st->st_ctime = fs->started;
    st->st_blksize = 1 << 20;
    mode_t r = fs->opt.allow_other ? 0444 : 0400;
    mode_t x = fs->opt.allow_other ? 0111 : 0100;
    mode_t w = fs->opt.writable ? 0200 : 0;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | r | x;
        st->st_nlink = 2;
        return 0;
    }
    enum file_kind kind = ino_kind(ino);
    if (kind == K_GROUPDIR) {
        st->st_mode = S_IFDIR | r | x;
        st->st_nlink = 2;
        return ino_slot(ino) < fs->ngroups ? 0 : -ENOENT;
    }
    struct vmem_proc task = {0};
    bool per_proc = kind == K_PIDDIR || is_proc_row(kind);
    if (per_proc && !task_lookup(fv, ino_pid(ino), &task))
        return -ENOENT;
    if ((kind == K_PROCDIR || kind == K_KERNELDIR) && !fv->os)
        return -ENOENT;
    size_t dlen;
    unsigned depth, tbl;
    if (kind == K_ROWDIR && !rowdir_path(fv->os, ino_pid(ino), &dlen, &depth, &tbl))
        return -ENOENT;
    if (is_dir(kind)) {
        st->st_mode = S_IFDIR | r | x;
        st->st_nlink = 2;
        return 0;
    }
    st->st_mode = S_IFREG | r;
    st->st_nlink = 1;
    switch (kind) {
    case K_PMEM:
    case K_PMEM_RAW: {
        st->st_mode |= w;
        st->st_size = (off_t)vm_phys_size(fv->vm);
        /* du shows RAM, not size */
        st->st_blocks = (blkcnt_t)(vm_bytes_present(fv->vm) / 512);
        return 0;
    }
    case K_INFO:
        /* Like maps and status: generated at open.  Building it here would
         * ask a live hypervisor for every vCPU's registers on each stat. */
        st->st_size = 0;
        return 0;
    case K_MEMMAP:
        /* Computed once per layout: never rendered for a stat. */
        st->st_size = (off_t)vm_memmap_size(fv->vm);
        return 0;
    case K_CONTROL:
        st->st_mode = S_IFREG | 0600;
        st->st_size = control_help_len;
        return 0;
    default: {
        const struct vmem_os_file *row = os_row(fv->os, kind);
        if (!row || !vmem_os_file_applies(row, per_proc ? &task : NULL))
            return -ENOENT;
        if (row->flags & VMEM_OSF_VMEM) {
            uint64_t size = vmem_os_address_space_size(fv->os, per_proc ? &task : NULL);
            if (!size)
                return -ENOENT;
            st->st_mode |= w;
            st->st_size = (off_t)size;
        } else {
            st->st_size = 0;      /* like /proc: generated when read */
        }
        return 0;
    }
    }
}

/* ---- lookup and getattr --------------------------------------------------- */

static bool parse_pid(const char *name, uint32_t *pid)
{
    char *end;
    if (name[0] < '1' || name[0] > '9')
        return false;
    unsigned long v = strtoul(name, &end, 10);
    if (*end || v > UINT32_MAX)
        return false;
    *pid = (uint32_t)v;
    return true;
}

/* What of a row's name n lies below the directory dir[0, dlen) at depth
 * (depth 0: all of it), or NULL when the row is absent or elsewhere. */
static const char *row_rest(const char *n, const char *dir, size_t dlen,
                            unsigned depth)
{
    if (!n)
        return NULL;
    if (!depth)
        return n;
    if (strncmp(n, dir, dlen) != 0 || n[dlen] != '/')
        return NULL;
    return n + dlen + 1;
}

/* The inode of `name` in a directory of one OS table: the directory at
 * depth with path dir[0, dlen) (depth 0: the table's top), a row file or
 * a deeper directory of rows; 0 when there is none. */
static fuse_ino_t row_lookup(const struct vmem_os *os, unsigned tbl, size_t slot,
                             uint32_t pid, const char *dir, size_t dlen,
                             unsigned depth, const char *name)
{
    size_t nl = strlen(name);
    for (unsigned k = 0; k < ROWS_MAX; k++) {
        const struct vmem_os_file *row = os_row(os, (enum file_kind)(tbl_base[tbl] + k));
        if (!row)
            break;
        const char *n = row_name(os, row);
        const char *rest = row_rest(n, dir, dlen, depth);
        if (!rest)
            continue;
        const char *slash = strchr(rest, '/');
        size_t cl = slash ? (size_t)(slash - rest) : strlen(rest);
        if (cl != nl || strncmp(rest, name, nl) != 0)
            continue;
        if (slash)
            return make_ino(slot, K_ROWDIR, rowdir_id(tbl, depth + 1, k));
        return make_ino(slot, (enum file_kind)(tbl_base[tbl] + k), pid);
    }
    return 0;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vmemfs *fs = fs_of(req);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);

    if (parent == FUSE_ROOT_ID || ino_kind(parent) == K_GROUPDIR) {
        int g = parent == FUSE_ROOT_ID ? -1 : (int)ino_slot(parent);
        pthread_rwlock_rdlock(&fs->lock);
        for (size_t i = 0; i < fs->nslots; i++) {
            if (fs->slots[i] && fs->slots[i]->group == g &&
                strcmp(vm_name(fs->slots[i]->vm), name) == 0) {
                e.ino = make_ino(i, K_VMDIR, 0);
                e.generation = fs->generation[i];
                break;
            }
        }
        for (size_t k = 0; g < 0 && !e.ino && k < fs->ngroups; k++)
            if (strcmp(fs->groups[k], name) == 0)
                e.ino = make_ino(k, K_GROUPDIR, 0);
        pthread_rwlock_unlock(&fs->lock);
        if (e.ino && ino_kind(e.ino) == K_GROUPDIR) {
            fill_attr(fs, e.ino, NULL, &e.attr);
            e.attr_timeout = e.entry_timeout = 1.0;
            fuse_reply_entry(req, &e);
            return;
        }
    } else {
        size_t slot = ino_slot(parent);
        uint32_t pid;
        struct fs_vm *pv = NULL;
        switch (ino_kind(parent)) {
        case K_VMDIR:
            for (size_t k = 0; k < NELEM(vm_dir_entries); k++)
                if (strcmp(vm_dir_entries[k].name, name) == 0)
                    e.ino = make_ino(slot, vm_dir_entries[k].kind, 0);
            if (!e.ino && (pv = fv_of_ino(fs, parent)) != NULL && pv->os)
                e.ino = row_lookup(pv->os, TBL_VM, slot, 0, NULL, 0, 0, name);
            break;
        case K_KERNELDIR:
            if ((pv = fv_of_ino(fs, parent)) != NULL && pv->os)
                e.ino = row_lookup(pv->os, TBL_KERNEL, slot, 0, NULL, 0, 0, name);
            break;
        case K_ROWDIR: {
            const char *dir;
            size_t dlen;
            unsigned depth, tbl;
            if ((pv = fv_of_ino(fs, parent)) != NULL && pv->os &&
                (dir = rowdir_path(pv->os, ino_pid(parent), &dlen, &depth, &tbl)) != NULL)
                e.ino = row_lookup(pv->os, tbl, slot, 0, dir, dlen, depth, name);
            break;
        }
        case K_PROCDIR:
            if (parse_pid(name, &pid))
                e.ino = make_ino(slot, K_PIDDIR, pid);
            break;
        case K_PIDDIR:
            if ((pv = fv_of_ino(fs, parent)) != NULL && pv->os)
                e.ino = row_lookup(pv->os, TBL_PROC, slot, ino_pid(parent), NULL, 0, 0,
                                   name);
            break;
        default:
            fuse_reply_err(req, ENOTDIR);
            return;
        }
        if (pv)
            fs_vm_put(pv);
    }
    if (!e.ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fs_vm *fv = fv_of_ino(fs, e.ino);
    int rc = fv ? fill_attr(fs, e.ino, fv, &e.attr) : -ENOENT;
    if (rc < 0) {
        if (fv)
            fs_vm_put(fv);
        fuse_reply_err(req, -rc);
        return;
    }
    if (!e.generation)
        e.generation = fs->generation[ino_slot(e.ino)];
    e.attr_timeout = e.entry_timeout = attr_timeout(fv);
    fs_vm_put(fv);
    fuse_reply_entry(req, &e);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct vmemfs *fs = fs_of(req);
    struct stat st;
    struct fs_vm *fv = fv_of_ino(fs, ino);
    if (ino != FUSE_ROOT_ID && ino_kind(ino) != K_GROUPDIR && !fv) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    int rc = fill_attr(fs, ino, fv, &st);
    double t = ino == FUSE_ROOT_ID ? 1.0 : attr_timeout(fv);
    if (fv)
        fs_vm_put(fv);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, t);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    (void)attr;
    /* Only "truncating" control (echo cmd > control without atomic
     * O_TRUNC) is accepted, and it changes nothing. */
    if (ino_kind(ino) == K_CONTROL && ino != FUSE_ROOT_ID &&
        !(to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME |
                     FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME))) {
        op_getattr(req, ino, fi);
        return;
    }
    fuse_reply_err(req, fs_of(req)->opt.writable ? EPERM : EROFS);
}

/* ---- directories --------------------------------------------------------- */

/* A directory listing built at opendir: entries packed back to back, and
 * where each one ends, so readdir replies whole entries only.  Counted for
 * the same reason as struct open_file: a readdir's reply points into it. */
struct dir_handle {
    atomic_int refs;
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

static void dir_free(struct dir_handle *d)
{
    if (atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    free(d->buf);
    free(d->ends);
    free(d);
}

/* The entries of a directory of one OS table (depth 0: its top; else the
 * directory with path dir[0, dlen)): the rows that apply to p (NULL for
 * kernel and VM rows), and each deeper directory once. */
static int add_rows(fuse_req_t req, struct dir_handle *d, const struct vmem_os *os,
                    unsigned tbl, size_t slot, const struct vmem_proc *p,
                    const char *dir, size_t dlen, unsigned depth)
{
    int rc = 0;
    for (unsigned k = 0; k < ROWS_MAX && rc == 0; k++) {
        const struct vmem_os_file *row = os_row(os, (enum file_kind)(tbl_base[tbl] + k));
        if (!row)
            break;
        const char *n = row_name(os, row);
        const char *rest = row_rest(n, dir, dlen, depth);
        if (!rest)
            continue;
        const char *slash = strchr(rest, '/');
        if (!slash) {
            if (vmem_os_file_applies(row, p))
                rc = dir_add(req, d, rest,
                             make_ino(slot, (enum file_kind)(tbl_base[tbl] + k),
                                      p ? p->pid : 0), S_IFREG);
            continue;
        }
        /* A deeper directory: listed once, at its first row. */
        size_t cl = (size_t)(slash - rest), at = (size_t)(rest - n);
        bool first = true;
        for (unsigned j = 0; j < k && first; j++) {
            const struct vmem_os_file *o = os_row(os, (enum file_kind)(tbl_base[tbl] + j));
            const char *on = row_name(os, o);
            first = !(on && strncmp(on, n, at + cl) == 0 && on[at + cl] == '/');
        }
        if (first) {
            char dname[256];
            snprintf(dname, sizeof dname, "%.*s", (int)cl, rest);
            rc = dir_add(req, d, dname, make_ino(slot, K_ROWDIR, rowdir_id(tbl, depth + 1, k)),
                         S_IFDIR);
        }
    }
    return rc;
}

static int fill_dir(fuse_req_t req, struct vmemfs *fs, fuse_ino_t ino,
                    struct dir_handle *d)
{
    int rc = dir_add(req, d, ".", ino, S_IFDIR);
    if (ino == FUSE_ROOT_ID || ino_kind(ino) == K_GROUPDIR) {
        int g = ino == FUSE_ROOT_ID ? -1 : (int)ino_slot(ino);
        rc |= dir_add(req, d, "..", FUSE_ROOT_ID, S_IFDIR);
        pthread_rwlock_rdlock(&fs->lock);
        if (g >= (int)fs->ngroups)
            rc = -ENOENT;
        for (size_t k = 0; g < 0 && k < fs->ngroups && rc == 0; k++)
            rc = dir_add(req, d, fs->groups[k], make_ino(k, K_GROUPDIR, 0), S_IFDIR);
        for (size_t i = 0; i < fs->nslots && rc == 0; i++)
            if (fs->slots[i] && fs->slots[i]->group == g)
                rc = dir_add(req, d, vm_name(fs->slots[i]->vm),
                             make_ino(i, K_VMDIR, 0), S_IFDIR);
        pthread_rwlock_unlock(&fs->lock);
        return rc;
    }
    struct fs_vm *fv = fv_of_ino(fs, ino);
    if (!fv)
        return -ENOENT;
    size_t slot = ino_slot(ino);
    struct stat st;
    rc = fill_attr(fs, ino, fv, &st);
    if (rc == 0 && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    rc = rc ? rc : dir_add(req, d, "..", FUSE_ROOT_ID, S_IFDIR);
    switch (rc ? K_NONE : ino_kind(ino)) {
    case K_VMDIR:
        for (size_t k = 0; k < NELEM(vm_dir_entries) && rc == 0; k++)
            if (!vm_dir_entries[k].needs_os || fv->os)
                rc = dir_add(req, d, vm_dir_entries[k].name,
                             make_ino(slot, vm_dir_entries[k].kind, 0),
                             is_dir(vm_dir_entries[k].kind) ? S_IFDIR : S_IFREG);
        if (fv->os)
            rc = rc ? rc : add_rows(req, d, fv->os, TBL_VM, slot, NULL, NULL, 0, 0);
        break;
    case K_KERNELDIR:
        rc = add_rows(req, d, fv->os, TBL_KERNEL, slot, NULL, NULL, 0, 0);
        break;
    case K_ROWDIR: {
        size_t dlen;
        unsigned depth, tbl;
        const char *dir = rowdir_path(fv->os, ino_pid(ino), &dlen, &depth, &tbl);
        rc = dir ? add_rows(req, d, fv->os, tbl, slot, NULL, dir, dlen, depth) : -ENOENT;
        break;
    }
    case K_PROCDIR: {
        struct vmem_procs *t = vmem_os_procs(fv->os);
        for (size_t i = 0; t && i < t->n && rc == 0; i++) {
            char name[16];
            snprintf(name, sizeof name, "%" PRIu32, t->proc[i].pid);
            rc = dir_add(req, d, name, make_ino(slot, K_PIDDIR, t->proc[i].pid),
                         S_IFDIR);
        }
        if (t)
            vmem_os_procs_put(fv->os, t);
        break;
    }
    case K_PIDDIR: {
        struct vmem_proc task;
        if (!task_lookup(fv, ino_pid(ino), &task)) {
            rc = -ENOENT;
            break;
        }
        rc = add_rows(req, d, fv->os, TBL_PROC, slot, &task, NULL, 0, 0);
        break;
    }
    default:
        break;
    }
    fs_vm_put(fv);
    return rc;
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dir_handle *d = calloc(1, sizeof *d);
    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    atomic_init(&d->refs, 1);
    int rc = fill_dir(req, fs_of(req), ino, d);
    if (rc) {
        dir_free(d);
        fuse_reply_err(req, rc < 0 ? -rc : ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    fi->cache_readdir = 0;
    fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    if ((size_t)off >= d->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    atomic_fetch_add(&d->refs, 1);
    size_t end = (size_t)off, limit = (size_t)off + size;
    for (size_t i = 0; i < d->nents; i++) {
        if (d->ends[i] <= (size_t)off)
            continue;
        if (d->ends[i] > limit)
            break;
        end = d->ends[i];
    }
    fuse_reply_buf(req, d->buf + off, end - (size_t)off);
    dir_free(d);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dir_free((struct dir_handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}
