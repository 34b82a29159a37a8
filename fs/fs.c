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
#include "fs/fs.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arch/x86/paging.h"
#include "core/util/log.h"

enum file_kind {
    K_NONE = 0,
    K_VMDIR,
    K_PMEM,
    K_PMEM_RAW,
    K_INFO,
    K_MEMMAP,
    K_CONTROL,
    K_PROCDIR,
    K_KERNELDIR,
    K_PIDDIR,
    K_GROUPDIR,                 /* slot is the group's index, not a VM's */
    K_ROWDIR,                   /* a directory of OS rows ("net/", "symbols/
                                   linux/"): pid says which (rowdir_id) */
    /* Rows of the OS's tables (core/os/os.h): kind = base + row index. */
    K_PROC_ROW = 64,
    K_KERNEL_ROW = 128,
    K_VM_ROW = 192,
    K_ROW_END = 256,
};
#define ROWS_MAX 64u

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
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static bool is_dir(enum file_kind k)
{
    return k == K_VMDIR || k == K_PROCDIR || k == K_KERNELDIR || k == K_PIDDIR ||
           k == K_GROUPDIR || k == K_ROWDIR;
}

/* The OS table row an inode of kind k stands for, or NULL.  The OS can
 * only be set once (never replaced), so a row index stays valid. */
static const struct vmem_os_file *os_row(const struct vmem_os *os,
                                         enum file_kind k)
{
    if (!os)
        return NULL;
    const struct vmem_os_ops *o = os->ops;
    if (k >= K_PROC_ROW && k < K_KERNEL_ROW && (size_t)(k - K_PROC_ROW) < o->nproc_files)
        return &o->proc_files[k - K_PROC_ROW];
    if (k >= K_KERNEL_ROW && k < K_VM_ROW && (size_t)(k - K_KERNEL_ROW) < o->nkernel_files)
        return &o->kernel_files[k - K_KERNEL_ROW];
    if (k >= K_VM_ROW && k < K_ROW_END && (size_t)(k - K_VM_ROW) < o->nvm_files)
        return &o->vm_files[k - K_VM_ROW];
    return NULL;
}
static bool is_proc_row(enum file_kind k) { return k >= K_PROC_ROW && k < K_KERNEL_ROW; }

/* A row's name now: fixed, or computed (NULL: the row is absent now). */
static const char *row_name(const struct vmem_os *os, const struct vmem_os_file *row)
{
    return row->name_of ? row->name_of(os->priv) : row->name;
}

/* Rows of the kernel and VM tables may sit in directories ("net/tcp",
 * "symbols/linux/6.1.json").  A directory is named by the row that first
 * has that path and by its depth: rowdir_id(table, depth, row). */
enum { TBL_PROC, TBL_KERNEL, TBL_VM };
static const enum file_kind tbl_base[] = {K_PROC_ROW, K_KERNEL_ROW, K_VM_ROW};
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

static inline fuse_ino_t make_ino(size_t slot, enum file_kind kind, uint32_t pid)
{
    return ((fuse_ino_t)(slot + 1) << 40) | ((fuse_ino_t)kind << 32) | pid;
}
/* A VM's directory inode, or its group's (-1: the root). */
static inline size_t ino_slot(fuse_ino_t ino) { return (size_t)(ino >> 40) - 1; }
static inline enum file_kind ino_kind(fuse_ino_t ino)
{
    return (enum file_kind)((ino >> 32) & 0xff);
}
static inline uint32_t ino_pid(fuse_ino_t ino) { return (uint32_t)ino; }

static struct vmemfs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* ---- VMs in the mount ---------------------------------------------------- */

struct fs_vm *fs_vm_new(struct vmemfs *fs, struct vm *vm)
{
    struct fs_vm *fv = calloc(1, sizeof *fv);
    if (!fv) {
        vm_put(vm);
        return NULL;
    }
    atomic_init(&fv->refs, 1);
    pthread_mutex_init(&fv->freeze_lock, NULL);
    fv->vm = vm;
    fv->group = -1;
    struct vmem_os *os = vmem_os_open(vm, &fs->opt.os_opt, fv->os_why,
                                      sizeof fv->os_why);
    fv->os = os;
    if (os) {
        struct vmem_procs *t = vmem_os_procs(os);
        vmem_log(LOG_INFO, "VM '%s': %s guest, %zu processes%s", vm_name(vm),
                 os->ops->name, t ? t->n : 0,
                 t && t->truncated ? " (process list cut short)" : "");
        if (t)
            vmem_os_procs_put(os, t);
    } else {
        vmem_log(LOG_NOTICE, "VM '%s': no proc/: %s", vm_name(vm), fv->os_why);
    }
    return fv;
}

void fs_vm_revisit(struct vmemfs *fs, struct fs_vm *fv, uint64_t now_ns)
{
    if (vm_immutable(fv->vm) || vm_gone(fv->vm))
        return;
    /* The layout changes when the firmware runs (a guest found at -S, as
     * libvirt starts them): every second while a VM is new, then every ten
     * (one 'info mtree -f', a few ms, each time). */
    if (!fv->added_ns)
        fv->added_ns = now_ns;
    if (now_ns >= fv->refresh_ns) {
        vm_refresh(fv->vm);
        fv->refresh_ns = now_ns + (now_ns - fv->added_ns < 60000000000ull
                                   ? 1000000000ull : 10000000000ull);
    }
    if (fv->os || now_ns < fv->os_retry_ns)
        return;
    char why[256];
    struct vmem_os *os = vmem_os_open(fv->vm, &fs->opt.os_opt, why, sizeof why);
    if (!os) {
        /* 5 s, 10 s, 20 s ... up to a minute: a guest still in its firmware
         * costs a banner scan now and then, not a steady load. */
        unsigned shift = fv->os_retries < 4 ? fv->os_retries : 4;
        fv->os_retry_ns = now_ns + (5000000000ull << shift);
        if (fv->os_retries < 32)
            fv->os_retries++;
        return;
    }
    struct vmem_os *none = NULL;
    if (!atomic_compare_exchange_strong(&fv->os, &none, os)) {
        vmem_os_close(os);
        return;
    }
    /* Live entries expire after a second: proc/ shows up without a nudge. */
    vmem_log(LOG_INFO, "VM '%s': %s guest recognised now: proc/ is there",
             vm_name(fv->vm), os->ops->name);
}

struct fs_vm *fs_vm_get(struct fs_vm *fv)
{
    atomic_fetch_add(&fv->refs, 1);
    return fv;
}

void fs_vm_put(struct fs_vm *fv)
{
    if (!fv || atomic_fetch_sub(&fv->refs, 1) != 1)
        return;
    vmem_os_close(fv->os);
    vm_put(fv->vm);
    pthread_mutex_destroy(&fv->freeze_lock);
    free(fv);
}

/* A counted reference to the VM behind an inode, or NULL if it is gone. */
static struct fs_vm *fv_of_ino(struct vmemfs *fs, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID || ino_kind(ino) == K_GROUPDIR)
        return NULL;
    size_t slot = ino_slot(ino);
    struct fs_vm *fv = NULL;
    pthread_rwlock_rdlock(&fs->lock);
    if (slot < fs->nslots && fs->slots[slot])
        fv = fs_vm_get(fs->slots[slot]);
    pthread_rwlock_unlock(&fs->lock);
    return fv;
}

/* The index of a group, created when asked; -1 when there is no room.
 * Under the write lock. */
static int group_index(struct vmemfs *fs, const char *group, bool create)
{
    for (size_t g = 0; g < fs->ngroups; g++)
        if (strcmp(fs->groups[g], group) == 0)
            return (int)g;
    if (!create || fs->ngroups == VMEMFS_MAX_GROUPS)
        return -1;
    snprintf(fs->groups[fs->ngroups], sizeof fs->groups[0], "%s", group);
    return (int)fs->ngroups++;
}

int vmemfs_add_vm(struct vmemfs *fs, const char *group, struct fs_vm *fv)
{
    int rc = -ENOSPC;
    pthread_rwlock_wrlock(&fs->lock);
    fv->group = -1;
    if (group) {
        /* A group's name shares the root with VM names: keep them apart. */
        for (size_t i = 0; i < fs->nslots; i++)
            if (fs->slots[i] && fs->slots[i]->group < 0 &&
                strcmp(vm_name(fs->slots[i]->vm), group) == 0) {
                rc = -EEXIST;
                goto out;
            }
        fv->group = group_index(fs, group, true);
        if (fv->group < 0)
            goto out;
    } else if (group_index(fs, vm_name(fv->vm), false) >= 0) {
        rc = -EEXIST;
        goto out;
    }
    for (size_t i = 0; i < fs->nslots; i++) {
        if (fs->slots[i] && fs->slots[i]->group == fv->group &&
            strcmp(vm_name(fs->slots[i]->vm), vm_name(fv->vm)) == 0) {
            rc = -EEXIST;
            goto out;
        }
    }
    for (size_t i = 0; i < VMEMFS_MAX_VMS; i++) {
        if (!fs->slots[i]) {
            fs->slots[i] = fv;
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

int vmemfs_remove_vm(struct vmemfs *fs, const char *group, const char *name)
{
    struct fs_vm *gone = NULL;
    size_t slot = 0;
    pthread_rwlock_wrlock(&fs->lock);
    int g = group ? group_index(fs, group, false) : -1;
    for (size_t i = 0; i < fs->nslots && (!group || g >= 0); i++) {
        if (fs->slots[i] && fs->slots[i]->group == g &&
            strcmp(vm_name(fs->slots[i]->vm), name) == 0) {
            gone = fs->slots[i];
            fs->slots[i] = NULL;
            fs->generation[i]++;
            slot = i;
            break;
        }
    }
    pthread_rwlock_unlock(&fs->lock);
    if (!gone)
        return -ENOENT;
    /* Tell the kernel the directory is gone, so cached lookups do not keep
     * answering for it. */
    (void)slot;
    if (fs->se)
        fuse_lowlevel_notify_inval_entry(fs->se, g < 0 ? FUSE_ROOT_ID
                                         : make_ino((size_t)g, K_GROUPDIR, 0),
                                         name, strlen(name));
    fs_vm_put(gone);
    return 0;
}

/* ---- sizes and attributes --------------------------------------------- */

static double attr_timeout(struct fs_vm *fv)
{
    return fv && vm_immutable(fv->vm) ? 3600.0 : 1.0;
}

static char *info_text(struct fs_vm *fv, size_t *len)
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

static const char control_help[] =
    "commands: pause resume flush\n"
    "  pause   stop the guest's vCPUs (live sources)\n"
    "  resume  start them again; cached frames are dropped\n"
    "  flush   drop cached frames and the process list now\n";

/* Does the process exist now?  Fills *out (copy) when it does. */
static bool task_lookup(struct fs_vm *fv, uint32_t pid, struct vmem_proc *out)
{
    return fv->os && vmem_os_proc(fv->os, pid, out);
}

static int fill_attr(struct vmemfs *fs, fuse_ino_t ino, struct fs_vm *fv,
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
        st->st_size = sizeof control_help - 1;
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
        if (!n)
            continue;
        const char *rest = n;
        if (depth) {
            if (strncmp(n, dir, dlen) != 0 || n[dlen] != '/')
                continue;
            rest = n + dlen + 1;
        }
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

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
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

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct vmemfs *fs = fs_of(req);
    struct stat st;
    struct fs_vm *fv = fv_of_ino(fs, ino);
    if (ino != FUSE_ROOT_ID && !fv) {
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

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
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
        if (!n)
            continue;
        const char *rest = n;
        if (depth) {
            if (strncmp(n, dir, dlen) != 0 || n[dlen] != '/')
                continue;
            rest = n + dlen + 1;
        }
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

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
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

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dir_free((struct dir_handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* ---- files ---------------------------------------------------------------- */

/* An open file.  Counted: release drops the handle's reference, and a read
 * holds one while its reply is on the way, because the reply may point into
 * memory the handle owns (a text snapshot, the VM's mappings) and the
 * reader can close (and libfuse run release) as soon as the kernel has the
 * data, before writev has returned to us. */
struct open_file {
    atomic_int refs;
    struct fs_vm *fv;          /* counted reference */
    enum file_kind kind;
    bool memory;               /* pmem, pmem.raw, or an address-space row */
    struct vm_stream stream;   /* readahead state of this open file */
    char *text;                /* info.json, memmap, maps, status: a snapshot */
    size_t text_len;
    struct vmem_as *as;        /* vmem: the address space, own translation cache */
    uint64_t size;             /* vmem: the file size */
    bool froze;                /* this handle holds the guest paused */
    struct vm_memmap *memmap;  /* memmap: rendered where read */
    struct open_file *prev, *next;  /* every open file, for the exit */
};

/* Every open file, so that a daemon ending on a signal releases what the
 * kernel never will (and resumes what --freeze-on-open paused). */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_file *open_list;

static void open_list_add(struct open_file *h)
{
    pthread_mutex_lock(&open_lock);
    h->next = open_list;
    if (open_list)
        open_list->prev = h;
    open_list = h;
    pthread_mutex_unlock(&open_lock);
}

static void open_list_del(struct open_file *h)
{
    pthread_mutex_lock(&open_lock);
    if (h->prev)
        h->prev->next = h->next;
    else if (open_list == h)
        open_list = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
    pthread_mutex_unlock(&open_lock);
}

/* --freeze-on-open: the first pmem.raw handle pauses the guest, the last
 * one to close resumes it, so a tool reading the image sees one instant. */
static bool freeze_get(struct fs_vm *fv)
{
    bool ok = true;
    pthread_mutex_lock(&fv->freeze_lock);
    if (fv->freezers == 0 && !fv->user_paused) {
        int rc = vm_pause(fv->vm);
        ok = rc == 0;
        fv->froze_it = ok;
        if (!ok && rc != -ENOTSUP)
            vmem_log(LOG_WARNING, "freeze: VM '%s': pause failed: %s",
                     vm_name(fv->vm), strerror(-rc));
    }
    if (ok)
        fv->freezers++;
    pthread_mutex_unlock(&fv->freeze_lock);
    return ok;
}

static void freeze_put(struct fs_vm *fv)
{
    pthread_mutex_lock(&fv->freeze_lock);
    if (fv->freezers && --fv->freezers == 0 && fv->froze_it) {
        fv->froze_it = false;
        int rc = vm_resume(fv->vm);
        if (rc < 0)
            vmem_log(LOG_WARNING, "freeze: VM '%s': resume failed: %s",
                     vm_name(fv->vm), strerror(-rc));
    }
    pthread_mutex_unlock(&fv->freeze_lock);
}

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

/* pmem, pmem.raw and the OS's address-space rows (fv may be NULL). */
static bool is_memory(const struct fs_vm *fv, enum file_kind k)
{
    if (k == K_PMEM || k == K_PMEM_RAW)
        return true;
    const struct vmem_os_file *row = fv ? os_row(fv->os, k) : NULL;
    return row && (row->flags & VMEM_OSF_VMEM);
}

static void open_file_put(struct open_file *h)
{
    if (atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    open_list_del(h);
    if (h->froze)
        freeze_put(h->fv);
    if (h->as)
        vmem_as_free(h->as);
    if (h->memmap) {
        vm_memmap_close(h->memmap);
        free(h->memmap);
    }
    free(h->text);
    if (h->fv)
        fs_vm_put(h->fv);
    free(h);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vmemfs *fs = fs_of(req);
    enum file_kind kind = ino_kind(ino);
    if (ino == FUSE_ROOT_ID || is_dir(kind)) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    struct fs_vm *fv = fv_of_ino(fs, ino);
    bool memory = is_memory(fv, kind);
    if (writing && kind != K_CONTROL && (!memory || !fs->opt.writable)) {
        /* Guest memory is written only with -o rw; never the text files. */
        if (fv)
            fs_vm_put(fv);
        fuse_reply_err(req, memory ? EROFS : EACCES);
        return;
    }
    if (fv && writing && memory && !vm_writable(fv->vm)) {
        fs_vm_put(fv);               /* a dump, or a driver that cannot write */
        fuse_reply_err(req, EROFS);
        return;
    }
    struct stat st;
    int rc = fv ? fill_attr(fs, ino, fv, &st) : -ENOENT;
    if (rc < 0) {
        if (fv)
            fs_vm_put(fv);
        fuse_reply_err(req, -rc);
        return;
    }
    struct open_file *h = calloc(1, sizeof *h);
    if (!h) {
        fs_vm_put(fv);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    atomic_init(&h->refs, 1);
    h->fv = fv;
    h->kind = kind;
    h->memory = memory;
    h->size = (uint64_t)st.st_size;
    struct vmem_proc task;
    const struct vmem_os_file *row;
    switch (kind) {
    case K_PMEM:
        fi->direct_io = 1;
        break;
    case K_PMEM_RAW:
        if (vm_immutable(fv->vm) && !writing && !fs->opt.direct_io) {
            fi->keep_cache = 1;
            raise_readahead(fs);
        } else {
            fi->direct_io = 1;
            if (fs->opt.freeze_on_open && !vm_immutable(fv->vm))
                h->froze = freeze_get(fv);
        }
        break;
    case K_INFO:
        h->text = info_text(fv, &h->text_len);
        fi->direct_io = 1;         /* the size may differ from getattr's */
        break;
    case K_MEMMAP:
        h->memmap = malloc(sizeof *h->memmap);
        if (h->memmap)
            vm_memmap_open(fv->vm, h->memmap);
        fi->direct_io = 1;
        break;
    case K_CONTROL:
        h->text = strdup(control_help);
        h->text_len = sizeof control_help - 1;
        fi->direct_io = 1;
        break;
    default:
        /* A row of the OS's tables: its process (if any) as it is now. */
        row = os_row(fv->os, kind);
        if (!row || (is_proc_row(kind) && !task_lookup(fv, ino_pid(ino), &task))) {
            open_file_put(h);
            fuse_reply_err(req, ENOENT);
            return;
        }
        if (row->flags & VMEM_OSF_VMEM) {
            h->as = vmem_os_address_space(fv->os, is_proc_row(kind) ? &task : NULL,
                                          &h->size);
            if (!h->as) {
                open_file_put(h);
                fuse_reply_err(req, ENOENT);
                return;
            }
            /* Live guests change their mappings: no kernel caching then. */
            if (vm_immutable(fv->vm) && !fs->opt.direct_io) {
                fi->keep_cache = 1;
                raise_readahead(fs);
            } else
                fi->direct_io = 1;
        } else {
            int err = ENOMEM;
            h->text = row->render(fv->os->priv, is_proc_row(kind) ? &task : NULL,
                                  &h->text_len, &err);
            if (!h->text) {
                open_file_put(h);
                fuse_reply_err(req, err ? err : EIO);
                return;
            }
            fi->direct_io = 1;     /* the size differs from getattr's 0 */
        }
        break;
    }
    if (!memory && !h->text && !h->memmap) {
        open_file_put(h);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    open_list_add(h);
    if (fuse_reply_open(req, fi) != 0)
        open_file_put(h);           /* the opener is gone: no release comes */
}

static void read_reply(fuse_req_t req, struct open_file *h, size_t size, off_t off);

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    struct open_file *h = (struct open_file *)(uintptr_t)fi->fh;
    atomic_fetch_add(&h->refs, 1);
    read_reply(req, h, size, off);
    open_file_put(h);
}

static void read_reply(fuse_req_t req, struct open_file *h, size_t size, off_t off)
{
    if (h->memmap) {
        char *buf = malloc(size ? size : 1);
        if (!buf) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        fuse_reply_buf(req, buf, vm_memmap_read(h->memmap, (uint64_t)off, buf, size));
        free(buf);
        return;
    }
    if (!h->memory) {
        if ((size_t)off >= h->text_len) {
            fuse_reply_buf(req, NULL, 0);
            return;
        }
        size_t n = h->text_len - (size_t)off;
        fuse_reply_buf(req, h->text + off, n < size ? n : size);
        return;
    }
    struct vm_reply *r = vm_thread_reply();
    if (!r) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n;
    if (h->as) {
        if ((uint64_t)off >= h->size) {
            fuse_reply_buf(req, NULL, 0);
            return;
        }
        if (size > h->size - (uint64_t)off)
            size = (size_t)(h->size - (uint64_t)off);
        n = vm_read_virt_iov(h->fv->vm, h->as, (uint64_t)off, size, r);
    } else {
        n = vm_read_phys_iov(h->fv->vm, (uint64_t)off, size,
                             h->kind == K_PMEM ? VM_READ_STRICT : VM_READ_PAD,
                             &h->stream, r);
    }
    if (n < 0)
        fuse_reply_err(req, n == -ENOENT ? EIO : (int)-n);   /* a hole: EIO */
    else if (n == 0)
        fuse_reply_buf(req, NULL, 0);
    else
        /* Mapped dump pages go straight from the mapping to the kernel; if
         * the dump shrank, the kernel's copy faults and the reader gets EIO. */
        fuse_reply_iov(req, r->iov, r->niov);
}

static int control_command(struct fs_vm *fv, const char *cmd)
{
    if (strcmp(cmd, "flush") == 0) {
        vm_refresh(fv->vm);          /* the layout too, for live sources */
        vm_flush(fv->vm);
        if (fv->os)
            vmem_os_flush(fv->os);
        return 0;
    }
    /* The user's pause and resume win over --freeze-on-open's: a guest the
     * user paused stays paused when the last pmem.raw handle closes, and
     * one the user resumed is no longer the freezers' to resume. */
    if (strcmp(cmd, "pause") == 0) {
        pthread_mutex_lock(&fv->freeze_lock);
        int rc = vm_pause(fv->vm);
        if (rc == 0) {
            fv->user_paused = true;
            fv->froze_it = false;
        }
        pthread_mutex_unlock(&fv->freeze_lock);
        return rc;
    }
    if (strcmp(cmd, "resume") == 0) {
        pthread_mutex_lock(&fv->freeze_lock);
        int rc = vm_resume(fv->vm);
        if (rc == 0) {
            fv->user_paused = false;
            fv->froze_it = false;
        }
        pthread_mutex_unlock(&fv->freeze_lock);
        if (rc == 0 && fv->os)
            vmem_os_flush(fv->os);
        return rc;
    }
    return -EINVAL;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    (void)off;
    struct open_file *h = (struct open_file *)(uintptr_t)fi->fh;
    if (h->memory) {
        /* Only reachable with -o rw on a writable source (checked at open). */
        ssize_t n;
        if (h->as) {
            if ((uint64_t)off >= h->size) {
                fuse_reply_err(req, ENOSPC);
                return;
            }
            if (size > h->size - (uint64_t)off)
                size = (size_t)(h->size - (uint64_t)off);
            n = vm_write_virt(h->fv->vm, h->as, (uint64_t)off, buf, size);
        } else {
            n = vm_write_phys(h->fv->vm, (uint64_t)off, buf, size);
        }
        if (n < 0)
            fuse_reply_err(req, (int)-n);
        else
            fuse_reply_write(req, (size_t)n);
        return;
    }
    if (h->kind != K_CONTROL) {
        fuse_reply_err(req, EACCES);
        return;
    }
    /* Strictly one word, and at most a newline after it: "flush\0junk" is
     * not "flush".  What the log shows of a write is made printable. */
    char cmd[32], shown[sizeof cmd * 4];
    size_t n = size;
    if (n && buf[n - 1] == '\n')
        n--;
    bool word = n > 0 && n < sizeof cmd;
    for (size_t i = 0; word && i < n; i++)
        word = buf[i] >= 'a' && buf[i] <= 'z';
    size_t sl = 0;
    for (size_t i = 0; i < size && i < sizeof cmd && sl + 5 < sizeof shown; i++) {
        unsigned char c = (unsigned char)buf[i];
        sl += (size_t)snprintf(shown + sl, sizeof shown - sl,
                               c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
    }
    if (size > sizeof cmd && sl + 4 < sizeof shown)
        sl += (size_t)snprintf(shown + sl, sizeof shown - sl, "...");
    memcpy(cmd, buf, word ? n : 0);
    cmd[word ? n : 0] = 0;
    int rc = word ? control_command(h->fv, cmd) : -EINVAL;
    if (rc < 0) {
        vmem_log(LOG_NOTICE, "control: VM '%s': '%s': %s", vm_name(h->fv->vm), shown,
                 rc == -EINVAL ? "unknown command (pause, resume, flush)"
                 : rc == -ENOTSUP ? "not supported by this source" : strerror(-rc));
        fuse_reply_err(req, -rc);
        return;
    }
    fuse_reply_write(req, size);
}

void vmemfs_release_open_files(struct vmemfs *fs)
{
    (void)fs;
    for (;;) {
        pthread_mutex_lock(&open_lock);
        struct open_file *h = open_list;
        pthread_mutex_unlock(&open_lock);
        if (!h)
            break;
        /* The kernel's reference, which no release will drop now: the
         * last put unlinks it, resumes a frozen guest, drops the VM. */
        open_list_del(h);
        open_file_put(h);
    }
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    open_file_put((struct open_file *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* SEEK_DATA/SEEK_HOLE in a virtual address space: the page-table walk
 * skips empty upper levels.  A walk that runs out of its work budget (a
 * hostile table mapping everything) answers conservatively, as lseek may:
 * data where it stopped, or no hole before the end. */
static off_t seek_virt(struct open_file *h, uint64_t off, int whence)
{
    uint64_t pos = off, start, end;
    for (int rounds = 0; rounds < 64 && pos < h->size; rounds++) {
        int rc = vmem_as_next_mapped(h->as, pos, h->size, &start, &end);
        if (rc == -ENXIO)
            return whence == SEEK_DATA ? -ENXIO : (off_t)pos;
        if (rc < 0 && rc != -EAGAIN)
            return rc;
        bool found = rc == 0 || end > start;
        if (whence == SEEK_DATA) {
            if (found)
                return (off_t)(start > off ? start : off);
        } else {
            if (start > (pos & VMEM_PAGE_MASK))
                return (off_t)pos;          /* pos itself is unmapped */
            if (rc == 0)
                return (off_t)(end < h->size ? end : h->size);
        }
        if (end <= pos)
            break;                          /* no progress: stop guessing */
        pos = end;
    }
    if (pos >= h->size)
        return whence == SEEK_DATA ? -ENXIO : (off_t)h->size;
    return whence == SEEK_DATA ? (off_t)pos : (off_t)h->size;
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
        r = vm_seek_phys(h->fv->vm, off, whence);
    } else if (h->as) {
        r = off < 0 || (uint64_t)off >= h->size ? -ENXIO : seek_virt(h, (uint64_t)off, whence);
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
