/*
 * watch.c - VMs that come and go while mounted.
 *
 * Discoveries (a driver class's discover_start, core/driver.h) announce
 * sources as they appear and go.  Each found source is opened in a thread
 * of its own: opening talks to a hypervisor or a monitor and may take a
 * moment (bounded by the driver), and one slow source must never delay
 * another, the FUSE requests, or the unmount.  One watcher thread sweeps
 * out VMs whose source has gone and revisits live ones (layout refresh,
 * late OS recognition).  Names announced by a discovery are checked like
 * --vm names and never become host paths.
 */
#include "fs/watch.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util/log.h"
#include "drivers/registry.h"

#define DISCOVERIES_MAX 32
#define OPENERS_MAX     64          /* sources being opened at once */

struct discovery {
    struct vmemfs_watch *w;
    const struct vmem_driver_class *cls;
    char *group;                    /* NULL: VMs at the root */
    struct vmem_discovery *d;
    struct vmem_discovery_sink sink;
};

struct vmemfs_watch {
    struct vmemfs *fs;
    struct vm_options vopt;
    int stop_pipe[2];
    uint64_t next_revisit_ns;
    pthread_t thread;
    struct discovery disc[DISCOVERIES_MAX];
    size_t ndisc;
    /* Openers in flight, by group/name, so a source announced twice is
     * opened once; stop waits until none is left. */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    unsigned nopeners;
    bool stopping;
    char opening[OPENERS_MAX][140];
};

struct opener {
    struct discovery *dc;
    char name[80];
    char spec[4096 + 16];
    char key[140];
};

static const char *label(const struct discovery *dc)
{
    return dc->cls->discover_option ? dc->cls->discover_option : dc->cls->scheme;
}

/* Is the VM already in the mount? */
static bool mounted(struct vmemfs *fs, const char *group, const char *name)
{
    bool found = false;
    pthread_rwlock_rdlock(&fs->lock);
    int g = -1;
    if (group) {
        g = -2;
        for (size_t k = 0; k < fs->ngroups; k++)
            if (strcmp(fs->groups[k], group) == 0)
                g = (int)k;
    }
    for (size_t i = 0; i < fs->nslots && !found; i++)
        found = fs->slots[i] && fs->slots[i]->group == g &&
                strcmp(vm_name(fs->slots[i]->vm), name) == 0;
    pthread_rwlock_unlock(&fs->lock);
    return found;
}

static void *opener_main(void *arg)
{
    struct opener *o = arg;
    struct discovery *dc = o->dc;
    struct vmemfs_watch *w = dc->w;
    /* A discovery announces a source once it answers (a QMP socket once it
     * listens), and one open is bounded by its driver (seconds): one retry
     * covers a source that was a moment early, without letting a stalled
     * one hold this thread for long. */
    char err[512] = "";
    struct vm *vm = NULL;
    for (int attempt = 0; attempt < 2 && !vm; attempt++) {
        pthread_mutex_lock(&w->lock);
        bool stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stopping)
            break;
        if (attempt) {
            struct timespec ts = {0, 500 * 1000000};
            nanosleep(&ts, NULL);
        }
        vm = vmem_vm_open(o->name, o->spec, &w->vopt, err, sizeof err);
    }
    if (!vm) {
        if (err[0])
            vmem_log(LOG_WARNING, "%s: %s", label(dc), err);
    } else {
        struct fs_vm *fv = fs_vm_new(w->fs, vm);
        int rc = fv ? vmemfs_add_vm(w->fs, dc->group, fv) : -ENOMEM;
        if (rc < 0) {
            vmem_log(LOG_WARNING, "%s: VM '%s' (%s): %s", label(dc), o->name, o->spec,
                     rc == -EEXIST ? "a VM or directory of that name is already mounted"
                     : rc == -ENOMEM ? "out of memory" : "the mount is full");
            if (fv)
                fs_vm_put(fv);
        } else {
            vmem_log(LOG_INFO, "%s: VM '%s%s%s' added (%s)", label(dc),
                     dc->group ? dc->group : "", dc->group ? "/" : "", o->name, o->spec);
        }
    }
    pthread_mutex_lock(&w->lock);
    for (unsigned i = 0; i < OPENERS_MAX; i++)
        if (strcmp(w->opening[i], o->key) == 0) {
            w->opening[i][0] = 0;
            break;
        }
    if (--w->nopeners == 0)
        pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
    free(o);
    return NULL;
}

static void sink_found(void *ctx, const char *name, const char *spec)
{
    struct discovery *dc = ctx;
    struct vmemfs_watch *w = dc->w;
    if (!vm_name_valid(name)) {
        vmem_log(LOG_NOTICE, "%s: '%.80s' is not a usable VM name, skipped",
                 label(dc), name);
        return;
    }
    if (mounted(w->fs, dc->group, name))
        return;
    struct opener *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->dc = dc;
    snprintf(o->name, sizeof o->name, "%s", name);
    snprintf(o->spec, sizeof o->spec, "%s", spec);
    snprintf(o->key, sizeof o->key, "%s/%s", dc->group ? dc->group : "", name);
    pthread_mutex_lock(&w->lock);
    int slot = -1;
    bool busy = w->stopping;
    for (unsigned i = 0; i < OPENERS_MAX && !busy; i++) {
        if (strcmp(w->opening[i], o->key) == 0)
            busy = true;                /* already being opened */
        else if (slot < 0 && !w->opening[i][0])
            slot = (int)i;
    }
    if (busy || slot < 0) {
        pthread_mutex_unlock(&w->lock);
        if (!busy)
            vmem_log(LOG_WARNING, "%s: VM '%s': too many sources being opened at "
                     "once; it is tried again when announced again", label(dc), name);
        free(o);
        return;
    }
    snprintf(w->opening[slot], sizeof w->opening[0], "%s", o->key);
    w->nopeners++;
    pthread_mutex_unlock(&w->lock);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, opener_main, o) != 0) {
        pthread_mutex_lock(&w->lock);
        w->opening[slot][0] = 0;
        if (--w->nopeners == 0)
            pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->lock);
        free(o);
    }
    pthread_attr_destroy(&at);
}

static void sink_lost(void *ctx, const char *name)
{
    struct discovery *dc = ctx;
    if (vmemfs_remove_vm(dc->w->fs, dc->group, name) == 0)
        vmem_log(LOG_INFO, "%s: VM '%s' removed (its source went away)",
                 label(dc), name);
}

int vmemfs_watch_discover(struct vmemfs_watch *w, const struct vmem_driver_class *c,
                          const char *group, const char *arg, char *err,
                          size_t errlen)
{
    if (!c->discover_start) {
        snprintf(err, errlen, "driver '%s' cannot discover VMs", c->scheme);
        return -ENOTSUP;
    }
    if (w->ndisc == DISCOVERIES_MAX) {
        snprintf(err, errlen, "too many discoveries (max %d)", DISCOVERIES_MAX);
        return -ENOSPC;
    }
    if (group && !vm_name_valid(group)) {
        snprintf(err, errlen, "'%s' is not a usable directory name: use 1-64 of "
                 "[A-Za-z0-9._-]", group);
        return -EINVAL;
    }
    if (group && vmemfs_add_group(w->fs, group) < 0) {
        snprintf(err, errlen, "'%s': a VM of that name is mounted, or too many "
                 "host directories", group);
        return -EEXIST;
    }
    struct discovery *dc = &w->disc[w->ndisc];
    memset(dc, 0, sizeof *dc);
    dc->w = w;
    dc->cls = c;
    dc->group = group ? strdup(group) : NULL;
    dc->sink = (struct vmem_discovery_sink){.ctx = dc, .found = sink_found,
                                            .lost = sink_lost};
    int rc = c->discover_start(arg, &dc->sink, &dc->d, err, errlen);
    if (rc < 0) {
        free(dc->group);
        return rc;
    }
    w->ndisc++;
    return 0;
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
#define BATCH 64

static void revisit(struct vmemfs_watch *w)
{
    uint64_t now = mono_ns();
    if (now < w->next_revisit_ns)
        return;
    w->next_revisit_ns = now + REVISIT_NS;
    for (size_t from = 0;;) {
        struct fs_vm *live[BATCH];
        size_t n = 0;
        pthread_rwlock_rdlock(&w->fs->lock);
        size_t i = from;
        for (; i < w->fs->nslots && n < BATCH; i++) {
            struct fs_vm *fv = w->fs->slots[i];
            if (fv && !vm_immutable(fv->vm))
                live[n++] = fs_vm_get(fv);
        }
        size_t end = w->fs->nslots;
        pthread_rwlock_unlock(&w->fs->lock);
        for (size_t k = 0; k < n; k++) {
            fs_vm_revisit(w->fs, live[k], now);
            fs_vm_put(live[k]);
        }
        if (i >= end)
            break;
        from = i;
    }
}

/* Take out of the mount every VM whose source says it has gone. */
static void sweep(struct vmemfs_watch *w)
{
    struct { char group[65]; char name[80]; bool grouped; } gone[BATCH];
    size_t n = 0;
    pthread_rwlock_rdlock(&w->fs->lock);
    for (size_t i = 0; i < w->fs->nslots && n < BATCH; i++) {
        struct fs_vm *fv = w->fs->slots[i];
        if (fv && vm_gone(fv->vm)) {
            gone[n].grouped = fv->group >= 0;
            snprintf(gone[n].group, sizeof gone[n].group, "%s",
                     fv->group >= 0 ? w->fs->groups[fv->group] : "");
            snprintf(gone[n].name, sizeof gone[n].name, "%s", vm_name(fv->vm));
            n++;
        }
    }
    pthread_rwlock_unlock(&w->fs->lock);
    for (size_t i = 0; i < n; i++)
        if (vmemfs_remove_vm(w->fs, gone[i].grouped ? gone[i].group : NULL,
                             gone[i].name) == 0)
            vmem_log(LOG_INFO, "VM '%s' has gone: removed from the mount", gone[i].name);
}

static void *watch_main(void *arg)
{
    struct vmemfs_watch *w = arg;
    for (;;) {
        struct pollfd p = {.fd = w->stop_pipe[0], .events = POLLIN};
        int rc = poll(&p, 1, 500);
        if (rc > 0 && (p.revents & POLLIN))
            break;
        sweep(w);
        revisit(w);
    }
    return NULL;
}

struct vmemfs_watch *vmemfs_watch_start(struct vmemfs *fs,
                                        const struct vm_options *vopt)
{
    struct vmemfs_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fs = fs;
    w->vopt = *vopt;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->idle, NULL);
    if (pipe(w->stop_pipe) != 0) {
        free(w);
        return NULL;
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        close(w->stop_pipe[0]);
        close(w->stop_pipe[1]);
        free(w);
        return NULL;
    }
    return w;
}

void vmemfs_watch_stop(struct vmemfs_watch *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->ndisc; i++)
        w->disc[i].cls->discover_stop(w->disc[i].d);
    /* No sink call after discover_stop: the openers in flight are all. */
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    while (w->nopeners)
        pthread_cond_wait(&w->idle, &w->lock);
    pthread_mutex_unlock(&w->lock);
    ssize_t unused = write(w->stop_pipe[1], "x", 1);
    (void)unused;
    pthread_join(w->thread, NULL);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    for (size_t i = 0; i < w->ndisc; i++)
        free(w->disc[i].group);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->idle);
    free(w);
}
