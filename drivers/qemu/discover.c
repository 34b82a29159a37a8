/*
 * discover.c - --qemu-dir DIR: the QMP sockets of a directory as VMs that
 * come and go (see discover.h).
 *
 * One thread per watched directory: it scans the directory once, then
 * follows inotify (IN_CREATE / IN_MOVED_TO: found; IN_DELETE /
 * IN_MOVED_FROM: lost).  It never opens a VM itself, and never waits on a
 * peer: the one connection it makes is a non-blocking connect() that tells
 * a listening socket from one QEMU has bound but not yet listens on (then
 * it looks again every 100 ms, for up to 5 s).  The sink opens what is
 * found, each in a thread of its own.
 *
 * A socket's file name becomes the VM's name (web1.qmp -> web1); names
 * that are not valid VM names are skipped with a log line, never turned
 * into paths.
 */
#include "drivers/qemu/discover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/phys/vm.h"
#include "core/util/log.h"

#define PENDING_MAX 64
#define PENDING_RETRY_MS 100
#define PENDING_FOR_MS 5000

struct pending {
    char file[NAME_MAX + 1];
    int64_t until;                  /* give up then (monotonic ms) */
};

struct vmem_discovery {
    char *dir;                      /* canonical */
    int dirfd;
    int ifd;
    int stop_pipe[2];
    pthread_t thread;
    struct vmem_discovery_sink sink;
    struct pending pending[PENDING_MAX];
    size_t npending;
    struct vmem_discovery *next;    /* watched list */
};

/* Every running discovery, for qemu_dir_watched. */
static pthread_mutex_t watched_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vmem_discovery *watched;

bool qemu_dir_watched(const char *dir)
{
    bool w = false;
    pthread_mutex_lock(&watched_lock);
    for (struct vmem_discovery *d = watched; d && !w; d = d->next)
        w = strcmp(d->dir, dir) == 0;
    pthread_mutex_unlock(&watched_lock);
    return w;
}

bool qemu_socket_vm_name(const char *file, char *name, size_t len)
{
    if (snprintf(name, len, "%s", file) >= (int)len)
        return false;
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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum probe { P_LISTENING, P_NOT_YET, P_SKIP };

/* Does something listen on DIR/file?  Through an O_PATH|O_NOFOLLOW
 * descriptor of the file checked, without waiting. */
static enum probe probe(struct vmem_discovery *d, const char *file)
{
    int pfd = openat(d->dirfd, file, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return P_SKIP;
    char via[64];
    snprintf(via, sizeof via, "/proc/self/fd/%d", pfd);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", via);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    enum probe p = P_SKIP;
    if (s >= 0) {
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN ||
            errno == EINPROGRESS)
            p = P_LISTENING;
        else if (errno == ECONNREFUSED)
            p = P_NOT_YET;
        close(s);
    }
    close(pfd);
    return p;
}

static void pending_drop(struct vmem_discovery *d, const char *file)
{
    for (size_t i = 0; i < d->npending; i++)
        if (strcmp(d->pending[i].file, file) == 0) {
            d->pending[i] = d->pending[--d->npending];
            return;
        }
}

/* A file that appeared (or was there): checks, then found or pending. */
static void consider(struct vmem_discovery *d, const char *file, bool retry)
{
    char name[80], spec[PATH_MAX + 8];
    struct stat st;
    if (fstatat(d->dirfd, file, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return;                     /* gone again */
    if (S_ISLNK(st.st_mode)) {
        vmem_log(LOG_NOTICE, "qemu-dir: %s/%s: a symlink: not followed, skipped",
                 d->dir, file);
        return;
    }
    if (!S_ISSOCK(st.st_mode))
        return;
    if (st.st_uid != 0 && st.st_uid != getuid()) {
        vmem_log(LOG_WARNING, "qemu-dir: %s/%s: owned by uid %u, neither root nor "
                 "the mounting user (uid %u): skipped", d->dir, file,
                 (unsigned)st.st_uid, (unsigned)getuid());
        return;
    }
    if (!qemu_socket_vm_name(file, name, sizeof name)) {
        vmem_log(LOG_NOTICE, "qemu-dir: %s/%s: not a usable VM name, skipped",
                 d->dir, file);
        return;
    }
    if (snprintf(spec, sizeof spec, "qemu:%s/%s", d->dir, file) >= (int)sizeof spec)
        return;
    switch (probe(d, file)) {
    case P_LISTENING:
        if (retry)
            pending_drop(d, file);
        d->sink.found(d->sink.ctx, name, spec);
        return;
    case P_NOT_YET:
        if (!retry && d->npending < PENDING_MAX) {
            pending_drop(d, file);
            struct pending *p = &d->pending[d->npending++];
            snprintf(p->file, sizeof p->file, "%s", file);
            p->until = mono_ms() + PENDING_FOR_MS;
        }
        return;
    case P_SKIP:
        if (retry)
            pending_drop(d, file);
        return;
    }
}

static void retry_pending(struct vmem_discovery *d)
{
    int64_t now = mono_ms();
    for (size_t i = d->npending; i-- > 0;) {
        struct pending *p = &d->pending[i];
        if (now >= p->until) {
            vmem_log(LOG_WARNING, "qemu-dir: %s/%s: nothing listens on it (QEMU "
                     "not running?): skipped until it is created again", d->dir,
                     p->file);
            d->pending[i] = d->pending[--d->npending];
            continue;
        }
        char file[NAME_MAX + 1];
        snprintf(file, sizeof file, "%s", p->file);
        consider(d, file, true);
    }
}

static void scan(struct vmem_discovery *d)
{
    int fd = dup(d->dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        vmem_log(LOG_WARNING, "qemu-dir: %s: %s", d->dir, strerror(errno));
        return;
    }
    rewinddir(dir);
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            consider(d, e->d_name, false);
    closedir(dir);
}

static void *discover_main(void *arg)
{
    struct vmem_discovery *d = arg;
    scan(d);
    for (;;) {
        struct pollfd p[2] = {{.fd = d->stop_pipe[0], .events = POLLIN},
                              {.fd = d->ifd, .events = POLLIN}};
        int rc = poll(p, 2, d->npending ? PENDING_RETRY_MS : -1);
        if (rc > 0 && (p[0].revents & POLLIN))
            break;
        if (rc > 0 && (p[1].revents & POLLIN)) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            ssize_t len = read(d->ifd, buf, sizeof buf);
            for (char *q = buf; len > 0 && q < buf + len;) {
                struct inotify_event *ev = (struct inotify_event *)q;
                char name[80];
                if (ev->len && ev->name[0] != '.') {
                    if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
                        consider(d, ev->name, false);
                    } else if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
                        pending_drop(d, ev->name);
                        if (qemu_socket_vm_name(ev->name, name, sizeof name))
                            d->sink.lost(d->sink.ctx, name);
                    }
                }
                q += sizeof *ev + ev->len;
            }
        }
        if (d->npending)
            retry_pending(d);
    }
    return NULL;
}

static void discovery_free(struct vmem_discovery *d)
{
    if (d->dirfd >= 0)
        close(d->dirfd);
    if (d->ifd >= 0)
        close(d->ifd);
    if (d->stop_pipe[0] >= 0) {
        close(d->stop_pipe[0]);
        close(d->stop_pipe[1]);
    }
    free(d->dir);
    free(d);
}

int qemu_discover_start(const char *dir, const struct vmem_discovery_sink *sink,
                        struct vmem_discovery **out, char *err, size_t errlen)
{
    struct vmem_discovery *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "qemu-dir: out of memory");
        return -ENOMEM;
    }
    d->dirfd = d->ifd = d->stop_pipe[0] = d->stop_pipe[1] = -1;
    d->sink = *sink;
    int e = 0;
    d->dir = realpath(dir, NULL);
    if (!d->dir)
        e = errno;
    else if ((d->dirfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        e = errno;
    if (e) {
        snprintf(err, errlen, "qemu-dir: %s: %s", dir, strerror(e));
        discovery_free(d);
        return -e;
    }
    d->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (d->ifd < 0 ||
        inotify_add_watch(d->ifd, d->dir,
                          IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM |
                          IN_ONLYDIR) < 0 ||
        pipe2(d->stop_pipe, O_CLOEXEC) != 0) {
        e = errno;
        snprintf(err, errlen, "qemu-dir: cannot watch %s: %s", d->dir, strerror(e));
        discovery_free(d);
        return -e;
    }
    pthread_mutex_lock(&watched_lock);
    d->next = watched;
    watched = d;
    pthread_mutex_unlock(&watched_lock);
    if ((e = pthread_create(&d->thread, NULL, discover_main, d)) != 0) {
        snprintf(err, errlen, "qemu-dir: %s: cannot start a thread: %s", d->dir,
                 strerror(e));
        d->thread = 0;
        qemu_discover_stop(d);
        return -e;
    }
    *out = d;
    return 0;
}

void qemu_discover_stop(struct vmem_discovery *d)
{
    if (!d)
        return;
    if (d->thread) {
        ssize_t unused = write(d->stop_pipe[1], "x", 1);
        (void)unused;
        pthread_join(d->thread, NULL);
    }
    pthread_mutex_lock(&watched_lock);
    for (struct vmem_discovery **p = &watched; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    pthread_mutex_unlock(&watched_lock);
    discovery_free(d);
}
