/*
 * domain.c - the libvirt driver's handle on one domain (struct lv_dom, see
 * libvirt.h), shared by its two data paths: the connection that comes back
 * after libvirtd restarts, the domain looked up again by UUID after each
 * reconnect (another id: that run has ended), lifecycle events that say it
 * stopped, what a failed call says about the domain and the link, and
 * suspend/resume.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <libvirt/virterror.h>

#include "core/util/log.h"
#include "drivers/libvirt/libvirt.h"

static bool same_domain(struct lv_dom *s, virDomainPtr d)
{
    unsigned char u[VIR_UUID_BUFLEN];
    return atomic_load(&s->uuid_known) && virDomainGetUUID(d, u) == 0 &&
           memcmp(u, s->uuid, sizeof u) == 0;
}

static int lifecycle_cb(virConnectPtr c, virDomainPtr d, int event, int detail,
                        void *opaque)
{
    struct lv_dom *s = opaque;
    (void)c;
    (void)detail;
    if (event == VIR_DOMAIN_EVENT_STOPPED && same_domain(s, d)) {
        if (!atomic_exchange(&s->gone, true))
            vmem_log(LOG_NOTICE, "libvirt: domain '%s' on %s stopped", s->name, s->uri);
    }
    return 0;
}

static void callback_freed(void *opaque)
{
    struct lv_dom *s = opaque;
    atomic_fetch_sub(&s->callbacks_live, 1);
}

static void on_connect(struct lv_link *l, virConnectPtr c, void *ctx)
{
    struct lv_dom *s = ctx;
    (void)l;
    atomic_fetch_add(&s->callbacks_live, 1);
    s->event_id = virConnectDomainEventRegisterAny(
        c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), s,
        callback_freed);
    if (s->event_id < 0) {
        atomic_fetch_sub(&s->callbacks_live, 1);
        vmem_log(LOG_WARNING, "libvirt: %s: no lifecycle events (%s): a stopped domain "
                 "is noticed at its next read", s->uri, lv_errmsg());
    }
}

static void on_disconnect(struct lv_link *l, virConnectPtr c, void *ctx)
{
    struct lv_dom *s = ctx;
    (void)l;
    if (s->event_id >= 0)
        virConnectDomainEventDeregisterAny(c, s->event_id);
    s->event_id = -1;
}

/* The domain on the current connection, referenced (virDomainFree it), or
 * NULL with *rc: -EIO while libvirtd cannot be reached, -ENODEV when the
 * domain is gone.  After a reconnect the domain is looked up again by
 * UUID; another id means it was restarted: that run is not ours. */
virDomainPtr lv_dom_get(struct lv_dom *s, int *rc)
{
    if (atomic_load(&s->gone)) {
        *rc = -ENODEV;
        return NULL;
    }
    unsigned gen;
    virConnectPtr c = lv_link_get(&s->link, true, &gen);
    if (!c) {
        *rc = -EIO;
        return NULL;
    }
    pthread_mutex_lock(&s->dlock);
    if (s->dom_gen != gen || !s->dom) {
        virDomainPtr d = virDomainLookupByUUID(c, s->uuid);
        if (!d || virDomainGetID(d) != s->domid || virDomainIsActive(d) != 1) {
            int code = lv_errcode();
            if (d || code == VIR_ERR_NO_DOMAIN) {
                atomic_store(&s->gone, true);
                vmem_log(LOG_NOTICE, "libvirt: domain '%s' on %s is no longer running "
                         "(found after reconnecting)", s->name, s->uri);
            }
            if (d)
                virDomainFree(d);
            pthread_mutex_unlock(&s->dlock);
            virConnectClose(c);
            *rc = atomic_load(&s->gone) ? -ENODEV : -EIO;
            return NULL;
        }
        if (s->dom)
            virDomainFree(s->dom);
        s->dom = d;
        s->dom_gen = gen;
    }
    virDomainPtr d = s->dom;
    virDomainRef(d);
    pthread_mutex_unlock(&s->dlock);
    virConnectClose(c);
    return d;
}

/* After a failed call: what the error says about the domain and the link. */
int lv_dom_failed(struct lv_dom *s, const char *what)
{
    int code = lv_errcode();
    if (lv_err_domain_gone(code)) {
        if (!atomic_exchange(&s->gone, true))
            vmem_log(LOG_NOTICE, "libvirt: domain '%s' on %s: %s: %s", s->name, s->uri,
                     what, lv_errmsg());
        return -EIO;
    }
    if (lv_err_conn_broken(code))
        lv_link_failed(&s->link);
    vmem_log_ratelimited(s, LOG_WARNING, "libvirt: domain '%s' on %s: %s: %s", s->name,
                         s->uri, what, lv_errmsg());
    return -EIO;
}

int lv_dom_run_state(struct lv_dom *s, bool pause)
{
    int rc;
    virDomainPtr d = lv_dom_get(s, &rc);
    if (!d)
        return rc == -ENODEV ? -EIO : rc;
    int state = 0, reason = 0;
    rc = 0;
    if (virDomainGetState(d, &state, &reason, 0) < 0) {
        rc = lv_dom_failed(s, "get state");
    } else if (pause && state != VIR_DOMAIN_PAUSED) {
        if (virDomainSuspend(d) < 0)
            rc = lv_dom_failed(s, "suspend");
    } else if (!pause && state == VIR_DOMAIN_PAUSED) {
        if (virDomainResume(d) < 0)
            rc = lv_dom_failed(s, "resume");
    }
    virDomainFree(d);
    return rc;
}

void lv_dom_describe(struct lv_dom *s, json_object *out)
{
    json_object_object_add(out, "uri", json_object_new_string(s->uri));
    json_object_object_add(out, "domain", json_object_new_string(s->name));
    json_object_object_add(out, "uuid", json_object_new_string(s->uuid_str));
    json_object_object_add(out, "domain_id", json_object_new_int64(s->domid));
    json_object_object_add(out, "hypervisor", json_object_new_string(s->facts.hv_type));
    json_object_object_add(out, "arch", json_object_new_string(s->facts.arch));
    json_object_object_add(out, "machine", json_object_new_string(s->facts.machine));
    json_object_object_add(out, "monitor_passthrough", json_object_new_boolean(s->monitor));
    pthread_mutex_lock(&s->link.lock);
    json_object_object_add(out, "connected", json_object_new_boolean(
        s->link.conn && !atomic_load(&s->link.broken)));
    json_object_object_add(out, "reconnects", json_object_new_int64(s->link.reconnects));
    pthread_mutex_unlock(&s->link.lock);
}

bool lv_dom_gone(struct lv_dom *s)
{
    return atomic_load(&s->gone);
}

void lv_dom_close(struct lv_dom *s)
{
    if (!s)
        return;
    if (s->dom)
        virDomainFree(s->dom);
    lv_link_close(&s->link);
    /* libvirt frees a deregistered callback once no dispatch uses it: wait
     * for that (bounded) before freeing what the callback points to. */
    for (int i = 0; i < 200 && atomic_load(&s->callbacks_live) > 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    if (atomic_load(&s->callbacks_live) > 0) {
        vmem_log(LOG_WARNING, "libvirt: event callback not released; leaking its state");
        return;
    }
    pthread_mutex_destroy(&s->dlock);
    free(s->name);
    free(s->uri);
    free(s);
}

int lv_dom_open(const char *dom, const char *uri, bool monitor, struct lv_dom **out,
                char *err, size_t errlen)
{
    struct lv_dom *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "libvirt: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&s->dlock, NULL);
    s->event_id = -1;
    s->monitor = monitor;
    s->name = strdup(dom);
    s->uri = strdup(uri);
    int rc;
    if (!s->name || !s->uri) {
        snprintf(err, errlen, "libvirt: out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    rc = lv_link_open(&s->link, uri, on_connect, on_disconnect, s, err, errlen);
    if (rc < 0)
        goto fail;
    virDomainPtr d = virDomainLookupByName(s->link.conn, dom);
    if (!d) {
        snprintf(err, errlen, "libvirt: domain '%s' on %s: %s", dom, uri,
                 lv_errcode() == VIR_ERR_NO_DOMAIN ? "no such domain" : lv_errmsg());
        rc = -ENOENT;
        goto fail;
    }
    s->dom = d;
    s->dom_gen = s->link.generation;
    if (virDomainIsActive(d) != 1) {
        snprintf(err, errlen, "libvirt: domain '%s' on %s is not running", dom, uri);
        rc = -ENODEV;
        goto fail;
    }
    s->domid = virDomainGetID(d);
    if (virDomainGetUUID(d, s->uuid) < 0 || virDomainGetUUIDString(d, s->uuid_str) < 0) {
        snprintf(err, errlen, "libvirt: domain '%s' on %s: no UUID: %s", dom, uri,
                 lv_errmsg());
        rc = -EIO;
        goto fail;
    }
    atomic_store(&s->uuid_known, true);
    char ferr[200];
    if ((rc = lv_domfacts(s->link.conn, d, &s->facts, ferr, sizeof ferr)) < 0) {
        snprintf(err, errlen, "libvirt: domain '%s' on %s: %s", dom, uri, ferr);
        goto fail;
    }
    /* Passthrough is QEMU's alone. */
    if (strcmp(s->facts.hv_type, "QEMU") != 0)
        s->monitor = false;
    *out = s;
    return 0;
fail:
    lv_dom_close(s);
    return rc;
}
