/*
 * discover.c - "--xen": every domain of the local Xen host but dom0, as
 * they come and go (core/driver.h's discovery contract).  A thread of its
 * own polls the domain list once a second (one domctl and a xenstore read
 * per domain: cheaper than a watch that would need its own xenstore
 * connection and thread anyway) and announces the difference.
 *
 * Names: the domain's xenstore name when it is a valid VM name, otherwise
 * "dom<ID>"; a domain xenstore has not named yet is left for the next poll
 * (the toolstack writes the name right after creating it).  The spec is
 * always "xen:<domid>": a name can be reused by the next domain, an id not
 * while the domain lives.
 *
 * A domain is announced again now and then (after 4, 8, ... 64 polls, then
 * every 64): a domain found while it boots may not open yet (a PV guest has
 * no p2m before its kernel sets one up), and the sink ignores a name that
 * is mounted already.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/phys/vm.h"
#include "drivers/xen/internal.h"
#include "drivers/xen/xen.h"

#define MAX_DOMAINS 1024

/* The directory name of an entry. */
static void dir_name(const struct xen_dom_entry *e, char *out, size_t len)
{
    if (vm_name_valid(e->name))
        snprintf(out, len, "%s", e->name);
    else
        snprintf(out, len, "dom%u", e->domid);
}

static const struct xen_dom_entry *find(const struct xen_dom_entry *v, size_t n,
                                        uint32_t domid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].domid == domid)
            return &v[i];
    return NULL;
}

/* Is an entry announced `age` polls ago due to be announced again? */
static bool due_again(unsigned age)
{
    if (age > 64)
        return age % 64 == 0;
    return age >= 4 && (age & (age - 1)) == 0;
}

void xen_disc_step(struct xen_disc_state *st, const struct xen_dom_entry *now,
                   size_t n, const struct vmem_discovery_sink *sink)
{
    char name[80], spec[32];
    /* Lost first: a name freed by a destroyed domain may be the next one's. */
    for (size_t i = 0; i < st->nknown; i++) {
        const struct xen_dom_entry *was = &st->known[i];
        const struct xen_dom_entry *is = find(now, n, was->domid);
        if (is && strcmp(is->name, was->name) == 0)
            continue;
        dir_name(was, name, sizeof name);
        sink->lost(sink->ctx, name);
    }
    struct xen_dom_entry *next = malloc((n ? n : 1) * sizeof *next);
    unsigned *next_age = malloc((n ? n : 1) * sizeof *next_age);
    if (!next || !next_age) {
        free(next);
        free(next_age);
        return;                 /* out of memory: the next poll retries */
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!now[i].name[0])
            continue;           /* not named yet: next poll */
        const struct xen_dom_entry *was = find(st->known, st->nknown, now[i].domid);
        unsigned age = 0;
        if (was && strcmp(was->name, now[i].name) == 0)
            age = st->age[was - st->known] + 1;
        if (age == 0 || due_again(age)) {
            dir_name(&now[i], name, sizeof name);
            snprintf(spec, sizeof spec, "xen:%u", now[i].domid);
            sink->found(sink->ctx, name, spec);
        }
        next_age[k] = age;
        next[k++] = now[i];
    }
    free(st->known);
    free(st->age);
    st->known = next;
    st->age = next_age;
    st->nknown = k;
}

void xen_disc_state_free(struct xen_disc_state *st)
{
    free(st->known);
    free(st->age);
    st->known = NULL;
    st->age = NULL;
    st->nknown = 0;
}

struct vmem_discovery {
    void *h;
    struct vmem_discovery_sink sink;
    struct xen_disc_state st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
};

static void *disc_thread(void *arg)
{
    struct vmem_discovery *d = arg;
    struct xen_dom_entry *now = malloc(MAX_DOMAINS * sizeof *now);
    pthread_mutex_lock(&d->lock);
    while (!d->stop && now) {
        pthread_mutex_unlock(&d->lock);
        int n = xen_hv_list(d->h, now, MAX_DOMAINS);
        if (n >= 0)
            xen_disc_step(&d->st, now, (size_t)n, &d->sink);
        pthread_mutex_lock(&d->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (!d->stop &&
               pthread_cond_timedwait(&d->cond, &d->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&d->lock);
    free(now);
    return NULL;
}

int xen_discover_start(const char *arg, const struct vmem_discovery_sink *sink,
                       struct vmem_discovery **out, char *err, size_t errlen)
{
    if (arg && arg[0]) {
        snprintf(err, errlen, "--xen takes no argument (the local host), got '%s'", arg);
        return -EINVAL;
    }
    struct vmem_discovery *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    int rc = xen_hv_open(&d->h, err, errlen);
    if (rc < 0) {
        free(d);
        return rc;
    }
    d->sink = *sink;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    rc = -pthread_create(&d->thread, NULL, disc_thread, d);
    if (rc < 0) {
        snprintf(err, errlen, "--xen: cannot start its thread: %s", strerror(-rc));
        xen_hv_real.close(d->h);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void xen_discover_stop(struct vmem_discovery *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    xen_hv_real.close(d->h);
    xen_disc_state_free(&d->st);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
