/*
 * files.c - open files (see internal.h): memory read through core's
 * physical and virtual paths (zero copy where the source maps it), text
 * rendered at open, control, --freeze-on-open, SEEK_DATA/SEEK_HOLE.
 */
#include "fs/internal.h"

const char control_help[] =
    "commands: pause resume flush\n"
    "  pause   stop the guest's vCPUs (live sources)\n"
    "  resume  start them again; cached frames are dropped\n"
    "  flush   drop cached frames and the process list now\n";
const size_t control_help_len = sizeof control_help - 1;

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

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
        h->text_len = control_help_len;
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

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
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

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
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

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
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
