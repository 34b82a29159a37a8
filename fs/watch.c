/*
 * watch.c - VMs that come and go while mounted: a directory of QMP sockets
 * watched with inotify (--qemu-dir), and a liveness sweep that takes any
 * live VM whose source has gone (the guest exited) out of the mount.
 *
 * One thread does both: opening a VM talks to its monitor and may take a
 * moment, which must not hold up FUSE requests.  A socket's file name
 * becomes the VM's name (web1.qmp -> web1); names that are not valid VM
 * names are skipped with a log line, never turned into paths.
 */
#include "fs/watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util/log.h"

struct vmemfs_watch {
    struct vmemfs *fs;
    char *dir;                  /* NULL: liveness sweep only */
    struct vm_options vopt;
    int inotify_fd;
    int stop_pipe[2];
    uint64_t next_revisit_ns;
    pthread_t thread;
};

/* VM name for a socket file name: strip .qmp / .sock / .socket. */
static bool name_for_socket(const char *file, char *name, size_t len)
{
    snprintf(name, len, "%s", file);
    static const char *suffix[] = {".qmp", ".sock", ".socket"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        size_t sl = strlen(suffix[i]);
        if (n > sl && strcmp(name + n - sl, suffix[i]) == 0) {
            name[n - sl] = 0;
            break;
        }
    }
    return vm_name_valid(name);
}

static void try_add(struct vmemfs_watch *w, const char *file)
{
    char name[80], path[PATH_MAX], spec[PATH_MAX + 8];
    if (snprintf(path, sizeof path, "%s/%s", w->dir, file) >= (int)sizeof path)
        return;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return;
    if (!name_for_socket(file, name, sizeof name)) {
        vmem_log(LOG_NOTICE, "qemu-dir: %s: not a usable VM name, skipped", path);
        return;
    }
    snprintf(spec, sizeof spec, "qemu:%s", path);
    /* QEMU binds the socket a moment before it listens: retry briefly. */
    char err[512] = "";
    struct vm *vm = NULL;
    for (int attempt = 0; attempt < 20 && !vm; attempt++) {
        vm = vm_open(name, spec, &w->vopt, err, sizeof err);
        if (!vm) {
            struct timespec ts = {0, 100 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (!vm) {
        vmem_log(LOG_WARNING, "qemu-dir: %s", err);
        return;
    }
    struct fs_vm *fv = fs_vm_new(w->fs, vm);
    if (!fv)
        return;
    int rc = vmemfs_add_vm(w->fs, fv);
    if (rc < 0) {
        vmem_log(LOG_WARNING, "qemu-dir: VM '%s' (%s): %s", name, path,
                 rc == -EEXIST ? "a VM of that name is already mounted"
                               : "the mount is full");
        fs_vm_put(fv);
        return;
    }
    vmem_log(LOG_INFO, "qemu-dir: VM '%s' added (%s)", name, path);
}

static void scan_dir(struct vmemfs_watch *w)
{
    DIR *d = opendir(w->dir);
    if (!d) {
        vmem_log(LOG_WARNING, "qemu-dir: %s: %s", w->dir, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            try_add(w, e->d_name);
    closedir(d);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Every half second at most: live VMs re-read their layout when due, and
 * those without a recognised OS try again (fs_vm_revisit keeps the
 * schedule per VM). */
#define REVISIT_NS 500000000ull

static void revisit(struct vmemfs_watch *w)
{
    uint64_t now = mono_ns();
    if (now < w->next_revisit_ns)
        return;
    w->next_revisit_ns = now + REVISIT_NS;
    struct fs_vm *live[64];
    size_t n = 0;
    pthread_rwlock_rdlock(&w->fs->lock);
    for (size_t i = 0; i < w->fs->nslots && n < 64; i++) {
        struct fs_vm *fv = w->fs->slots[i];
        if (fv && !vm_immutable(fv->vm))
            live[n++] = fs_vm_get(fv);
    }
    pthread_rwlock_unlock(&w->fs->lock);
    for (size_t i = 0; i < n; i++) {
        fs_vm_revisit(w->fs, live[i], now);
        fs_vm_put(live[i]);
    }
}

/* Take out of the mount every VM whose source says it has gone. */
static void sweep(struct vmemfs_watch *w)
{
    char gone[64][80];
    size_t n = 0;
    pthread_rwlock_rdlock(&w->fs->lock);
    for (size_t i = 0; i < w->fs->nslots && n < 64; i++) {
        struct fs_vm *fv = w->fs->slots[i];
        if (fv && vm_gone(fv->vm))
            snprintf(gone[n++], sizeof gone[0], "%s", vm_name(fv->vm));
    }
    pthread_rwlock_unlock(&w->fs->lock);
    for (size_t i = 0; i < n; i++)
        if (vmemfs_remove_vm(w->fs, gone[i]) == 0)
            vmem_log(LOG_INFO, "VM '%s' has gone: removed from the mount", gone[i]);
}

static void *watch_main(void *arg)
{
    struct vmemfs_watch *w = arg;
    if (w->dir)
        scan_dir(w);
    for (;;) {
        struct pollfd p[2] = {{.fd = w->stop_pipe[0], .events = POLLIN},
                              {.fd = w->inotify_fd, .events = POLLIN}};
        int rc = poll(p, w->inotify_fd >= 0 ? 2 : 1, 500);
        if (rc > 0 && (p[0].revents & POLLIN))
            break;
        if (rc > 0 && (p[1].revents & POLLIN)) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            ssize_t len = read(w->inotify_fd, buf, sizeof buf);
            for (char *q = buf; len > 0 && q < buf + len;) {
                struct inotify_event *ev = (struct inotify_event *)q;
                char name[80];
                if (ev->len && ev->name[0] != '.') {
                    if (ev->mask & (IN_CREATE | IN_MOVED_TO))
                        try_add(w, ev->name);
                    else if ((ev->mask & (IN_DELETE | IN_MOVED_FROM)) &&
                             name_for_socket(ev->name, name, sizeof name) &&
                             vmemfs_remove_vm(w->fs, name) == 0)
                        vmem_log(LOG_INFO, "qemu-dir: VM '%s' removed (socket gone)", name);
                }
                q += sizeof *ev + ev->len;
            }
        }
        sweep(w);
        revisit(w);
    }
    return NULL;
}

struct vmemfs_watch *vmemfs_watch_start(struct vmemfs *fs, const char *qemu_dir,
                                        const struct vm_options *vopt)
{
    struct vmemfs_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fs = fs;
    w->vopt = *vopt;
    w->inotify_fd = -1;
    if (pipe(w->stop_pipe) != 0) {
        free(w);
        return NULL;
    }
    if (qemu_dir) {
        w->dir = strdup(qemu_dir);
        w->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (w->inotify_fd < 0 ||
            inotify_add_watch(w->inotify_fd, qemu_dir,
                              IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0)
            vmem_log(LOG_WARNING, "qemu-dir: cannot watch %s: %s", qemu_dir,
                     strerror(errno));
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        vmemfs_watch_stop(w);
        return NULL;
    }
    return w;
}

void vmemfs_watch_stop(struct vmemfs_watch *w)
{
    if (!w)
        return;
    if (w->thread) {
        ssize_t unused = write(w->stop_pipe[1], "x", 1);
        (void)unused;
        pthread_join(w->thread, NULL);
    }
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    if (w->inotify_fd >= 0)
        close(w->inotify_fd);
    free(w->dir);
    free(w);
}
