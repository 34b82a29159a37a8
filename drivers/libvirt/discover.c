/*
 * discover.c - every running domain of a libvirt URI (--libvirt [NAME=]URI),
 * announced to the discovery sink (core/driver.h) as it starts and stops.
 *
 * At start, and again after every reconnect (libvirtd restarted), the
 * running domains are listed and compared with what was announced: new
 * ones are found, vanished ones lost, one whose id changed (it was
 * restarted while we could not see it) lost and found again.  Between
 * listings, lifecycle events (STARTED, STOPPED) drive the sink directly
 * from libvirt's event thread.  A thread of our own drives reconnection.
 *
 * Names: a domain's name becomes the VM's directory name when it is a
 * valid one (vm_name_valid: [A-Za-z0-9._-], 1-64); other domains are left
 * out with one log line each (a name from a hypervisor never becomes a host
 * path unchecked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "core/phys/vm.h"
#include "core/util/log.h"
#include "drivers/libvirt/libvirt.h"

struct known {
    char *name;
    unsigned id;
};

struct vmem_discovery {
    struct lv_link link;
    struct vmem_discovery_sink sink;
    int event_id;
    atomic_int callbacks_live;      /* registrations libvirt has not freed */

    pthread_t thread;
    pthread_mutex_t lock;           /* known[], stop; never held in a libvirt call */
    pthread_cond_t cond;
    bool stop;
    struct known *known;
    size_t nknown, cap;

    pthread_mutex_t sink_lock;      /* held around every sink call */
    bool sink_closed;
};

/* ------------------------------------------------------------ the sink */

static void announce(struct vmem_discovery *d, const char *name, bool found)
{
    char spec[512];
    snprintf(spec, sizeof spec, "libvirt:%s@%s", name, d->link.uri);
    pthread_mutex_lock(&d->sink_lock);
    if (!d->sink_closed) {
        if (found)
            d->sink.found(d->sink.ctx, name, spec);
        else
            d->sink.lost(d->sink.ctx, name);
    }
    pthread_mutex_unlock(&d->sink_lock);
}

static bool name_ok(const char *name)
{
    if (vm_name_valid(name))
        return true;
    vmem_log_ratelimited(name_ok, LOG_WARNING,
                         "libvirt: domain '%.80s' left out: its name is not a valid VM "
                         "directory name (1-64 of [A-Za-z0-9._-])", name);
    return false;
}

/* With d->lock held. */
static struct known *known_find(struct vmem_discovery *d, const char *name)
{
    for (size_t i = 0; i < d->nknown; i++)
        if (strcmp(d->known[i].name, name) == 0)
            return &d->known[i];
    return NULL;
}

/* With d->lock held: 0, or -ENOMEM. */
static int known_add(struct vmem_discovery *d, const char *name, unsigned id)
{
    if (d->nknown == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct known *k = realloc(d->known, cap * sizeof *k);
        if (!k)
            return -ENOMEM;
        d->known = k;
        d->cap = cap;
    }
    char *n = strdup(name);
    if (!n)
        return -ENOMEM;
    d->known[d->nknown++] = (struct known){n, id};
    return 0;
}

/* With d->lock held. */
static void known_del(struct vmem_discovery *d, struct known *k)
{
    free(k->name);
    *k = d->known[--d->nknown];
}

/* ------------------------------------------------------------ events */

static int lifecycle_cb(virConnectPtr c, virDomainPtr dom, int event, int detail,
                        void *opaque)
{
    struct vmem_discovery *d = opaque;
    (void)c;
    (void)detail;
    const char *name = virDomainGetName(dom);
    if (!name || !name_ok(name))
        return 0;
    bool announce_found = false, announce_lost = false;
    pthread_mutex_lock(&d->lock);
    struct known *k = known_find(d, name);
    if (event == VIR_DOMAIN_EVENT_STARTED) {
        unsigned id = virDomainGetID(dom);
        if (k && k->id != id) {
            k->id = id;
            announce_lost = true;       /* a run we never saw stop */
            announce_found = true;
        } else if (!k) {
            announce_found = known_add(d, name, id) == 0;
        }
    } else if (event == VIR_DOMAIN_EVENT_STOPPED && k) {
        known_del(d, k);
        announce_lost = true;
    }
    pthread_mutex_unlock(&d->lock);
    if (announce_lost)
        announce(d, name, false);
    if (announce_found)
        announce(d, name, true);
    return 0;
}

static void callback_freed(void *opaque)
{
    struct vmem_discovery *d = opaque;
    atomic_fetch_sub(&d->callbacks_live, 1);
}

static void on_connect(struct lv_link *l, virConnectPtr c, void *ctx)
{
    struct vmem_discovery *d = ctx;
    atomic_fetch_add(&d->callbacks_live, 1);
    d->event_id = virConnectDomainEventRegisterAny(
        c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), d,
        callback_freed);
    if (d->event_id < 0) {
        atomic_fetch_sub(&d->callbacks_live, 1);
        vmem_log(LOG_WARNING, "libvirt: %s: no lifecycle events (%s): domains that start "
                 "or stop are not followed", l->uri, lv_errmsg());
    }
}

static void on_disconnect(struct lv_link *l, virConnectPtr c, void *ctx)
{
    struct vmem_discovery *d = ctx;
    (void)l;
    if (d->event_id >= 0)
        virConnectDomainEventDeregisterAny(c, d->event_id);
    d->event_id = -1;
}

/* ------------------------------------------------------------ listing */

/* Compare the running domains with what was announced, and announce the
 * difference.  0, or -EIO when the listing failed. */
static int relist(struct vmem_discovery *d, virConnectPtr c)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        vmem_log(LOG_WARNING, "libvirt: %s: cannot list domains: %s", d->link.uri,
                 lv_errmsg());
        if (lv_err_conn_broken(lv_errcode()))
            lv_link_failed(&d->link);
        return -EIO;
    }
    struct known *now = calloc((size_t)n + 1, sizeof *now);
    size_t nnow = 0;
    for (int i = 0; i < n; i++) {
        const char *name = virDomainGetName(doms[i]);
        if (now && name && name_ok(name) && (now[nnow].name = strdup(name)))
            now[nnow++].id = virDomainGetID(doms[i]);
        virDomainFree(doms[i]);
    }
    free(doms);
    if (!now)
        return -ENOMEM;

    /* Decide under the lock, announce after it. */
    enum { LOST = 1, FOUND = 2 };
    size_t cap = d->nknown + nnow;
    struct { char *name; int what; } *todo = calloc(cap + 1, sizeof *todo);
    size_t ntodo = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; todo && i < d->nknown;) {
        bool still = false;
        for (size_t j = 0; j < nnow; j++)
            if (strcmp(now[j].name, d->known[i].name) == 0 && now[j].id == d->known[i].id)
                still = true;
        if (still) {
            i++;
            continue;
        }
        todo[ntodo].name = strdup(d->known[i].name);
        todo[ntodo++].what = LOST;
        known_del(d, &d->known[i]);
    }
    for (size_t j = 0; todo && j < nnow; j++) {
        if (known_find(d, now[j].name) || known_add(d, now[j].name, now[j].id) < 0)
            continue;
        todo[ntodo].name = strdup(now[j].name);
        todo[ntodo++].what = FOUND;
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < ntodo; i++) {
        if (todo[i].name)
            announce(d, todo[i].name, todo[i].what == FOUND);
        free(todo[i].name);
    }
    free(todo);
    for (size_t j = 0; j < nnow; j++)
        free(now[j].name);
    free(now);
    return 0;
}

/* Reconnects (lv_link_get retries with backoff) and relists after each
 * new connection. */
static void *watch_thread(void *arg)
{
    struct vmem_discovery *d = arg;
    unsigned listed_gen = d->link.generation;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        if (d->stop)
            break;
        pthread_mutex_unlock(&d->lock);
        unsigned gen;
        virConnectPtr c = lv_link_get(&d->link, true, &gen);
        if (c) {
            if (gen != listed_gen && relist(d, c) == 0)
                listed_gen = gen;
            virConnectClose(c);
        }
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int lv_discover_start(const char *arg, const struct vmem_discovery_sink *sink,
                      struct vmem_discovery **out, char *err, size_t errlen)
{
    /* "[NAME=]URI": the group name is the sink's business; a URI scheme
     * never holds '=', so a '=' before any ':' ends a group name. */
    const char *eq = strchr(arg, '='), *colon = strchr(arg, ':');
    if (eq && (!colon || eq < colon))
        arg = eq + 1;
    const char *uri = *arg ? arg : LV_DEFAULT_URI;

    struct vmem_discovery *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "libvirt: out of memory");
        return -ENOMEM;
    }
    d->sink = *sink;
    d->event_id = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    pthread_mutex_init(&d->sink_lock, NULL);
    int rc = lv_link_open(&d->link, uri, on_connect, on_disconnect, d, err, errlen);
    if (rc == 0 && (rc = relist(d, d->link.conn)) < 0)
        snprintf(err, errlen, "libvirt: %s: cannot list its domains", uri);
    if (rc == 0 && (rc = -pthread_create(&d->thread, NULL, watch_thread, d)) < 0)
        snprintf(err, errlen, "libvirt: %s: cannot start a thread: %s", uri, strerror(-rc));
    if (rc < 0) {
        d->thread = 0;
        pthread_mutex_lock(&d->sink_lock);
        d->sink_closed = true;
        pthread_mutex_unlock(&d->sink_lock);
        lv_discover_stop(d);
        return rc;
    }
    *out = d;
    return 0;
}

void lv_discover_stop(struct vmem_discovery *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (d->thread)
        pthread_join(d->thread, NULL);
    /* No sink call starts after this; one under way has finished. */
    pthread_mutex_lock(&d->sink_lock);
    d->sink_closed = true;
    pthread_mutex_unlock(&d->sink_lock);
    lv_link_close(&d->link);
    /* libvirt frees a deregistered callback once no dispatch uses it: wait
     * for that (bounded) before freeing what the callback points to. */
    for (int i = 0; i < 200 && atomic_load(&d->callbacks_live) > 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    if (atomic_load(&d->callbacks_live) > 0) {
        vmem_log(LOG_WARNING, "libvirt: event callback not released; leaking its state");
        return;
    }
    for (size_t i = 0; i < d->nknown; i++)
        free(d->known[i].name);
    free(d->known);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->sink_lock);
    free(d);
}
