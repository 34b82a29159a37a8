/*
 * libvirt.c - the libvirt driver's common part (see libvirt.h): spec
 * parsing, the process-wide event loop, connections that come back after
 * libvirtd restarts, the facts of a domain, and open(), which decides the
 * path a domain's memory takes.
 */
#include "drivers/libvirt/libvirt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "core/util/log.h"

/* ------------------------------------------------------------- the spec */

static bool scheme_at(const char *p)
{
    /* RFC 3986 scheme, then ':' */
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return false;
    for (p++; *p; p++) {
        if (*p == ':')
            return true;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))
            return false;
    }
    return false;
}

int lv_split_spec(const char *arg, char **dom, char **uri, char *err, size_t errlen)
{
    *dom = *uri = NULL;
    const char *at = NULL;
    for (const char *p = strchr(arg, '@'); p; p = strchr(p + 1, '@'))
        if (scheme_at(p + 1)) {
            at = p;
            break;
        }
    size_t dl = at ? (size_t)(at - arg) : strlen(arg);
    if (dl == 0) {
        snprintf(err, errlen, "libvirt:%s: no domain name (libvirt:DOMAIN[@URI])", arg);
        return -EINVAL;
    }
    *dom = strndup(arg, dl);
    *uri = strdup(at ? at + 1 : LV_DEFAULT_URI);
    if (!*dom || !*uri) {
        free(*dom);
        free(*uri);
        *dom = *uri = NULL;
        snprintf(err, errlen, "libvirt:%s: out of memory", arg);
        return -ENOMEM;
    }
    return 0;
}

bool lv_uri_is_local(const char *uri)
{
    /* "qemu:///system", "qemu+unix:///system": no host, no network
     * transport.  qemu+tcp://127.0.0.1/ is remote on purpose: the user
     * asked for the network path. */
    const char *colon = strchr(uri, ':');
    if (!colon || strncmp(colon, ":///", 4) != 0)
        return false;
    const char *plus = memchr(uri, '+', (size_t)(colon - uri));
    return !plus || ((size_t)(colon - plus - 1) == 4 && strncmp(plus + 1, "unix", 4) == 0);
}

bool lv_monitor_allowed(bool local)
{
    const char *v = getenv("VMEMFS_LIBVIRT_MONITOR");
    if (!v || !*v || strcmp(v, "local") == 0)
        return local;
    if (strcmp(v, "all") == 0)
        return true;
    if (strcmp(v, "off") != 0)
        vmem_log(LOG_WARNING, "libvirt: VMEMFS_LIBVIRT_MONITOR=%s: not local, all or off; "
                 "taken as off", v);
    return false;
}

/* ---------------------------------------------------- errors, event loop */

static void silent_error(void *ud, virErrorPtr e) { (void)ud; (void)e; }

const char *lv_errmsg(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

int lv_errcode(void)
{
    virErrorPtr e = virGetLastError();
    return e ? e->code : VIR_ERR_OK;
}

bool lv_err_domain_gone(int code)
{
    return code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_OPERATION_INVALID;
}

bool lv_err_conn_broken(int code)
{
    return code == VIR_ERR_RPC || code == VIR_ERR_SYSTEM_ERROR ||
           code == VIR_ERR_NO_CONNECT || code == VIR_ERR_INVALID_CONN ||
           code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_AUTH_CANCELLED;
}

uint64_t lv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static char init_err[200];

/* The event loop lives as long as the process: libvirt's default
 * implementation is process-global and cannot be unregistered. */
static void *event_thread(void *arg)
{
    (void)arg;
    for (;;)
        if (virEventRunDefaultImpl() < 0)
            vmem_log_ratelimited(event_thread, LOG_WARNING,
                                 "libvirt: event loop: %s", lv_errmsg());
    return NULL;
}

static void do_init(void)
{
    if (virInitialize() < 0) {
        snprintf(init_err, sizeof init_err, "libvirt: cannot initialise the library");
        init_rc = -EIO;
        return;
    }
    virSetErrorFunc(NULL, silent_error);
    if (virEventRegisterDefaultImpl() < 0) {
        snprintf(init_err, sizeof init_err, "libvirt: cannot register an event loop: %s",
                 lv_errmsg());
        init_rc = -EIO;
        return;
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, event_thread, NULL);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        snprintf(init_err, sizeof init_err, "libvirt: cannot start the event thread: %s",
                 strerror(rc));
        init_rc = -rc;
    }
}

int lv_init(char *err, size_t errlen)
{
    pthread_once(&init_once, do_init);
    if (init_rc < 0)
        snprintf(err, errlen, "%s", init_err);
    return init_rc;
}

/* ------------------------------------------------------------ connections */

static void link_closed(virConnectPtr c, int reason, void *opaque)
{
    struct lv_link *l = opaque;
    (void)c;
    (void)reason;
    atomic_store(&l->broken, true);
}

/* Open uri with no interactive authentication (a daemon has no terminal):
 * credentials must come from the URI, keys or a SASL/TLS configuration. */
static virConnectPtr connect_uri(const char *uri, char *err, size_t errlen)
{
    virConnectPtr c = virConnectOpenAuth(uri, NULL, 0);
    if (!c) {
        int code = lv_errcode();
        snprintf(err, errlen, "libvirt: cannot connect to %s: %s%s", uri, lv_errmsg(),
                 code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_AUTH_CANCELLED ||
                 code == VIR_ERR_AUTH_UNAVAILABLE
                     ? " (authentication: vmemfs asks for no credentials; configure "
                       "keys, SASL or TLS for this URI)"
                     : "");
        return NULL;
    }
    /* Keepalive turns a peer that stops answering into a closed connection
     * after about 5 s x 3, which fails the calls waiting on it. */
    if (virConnectSetKeepAlive(c, 5, 3) < 0 && lv_errcode() != VIR_ERR_OK)
        vmem_log(LOG_DEBUG, "libvirt: %s: no keepalive: %s", uri, lv_errmsg());
    return c;
}

/* With l->lock held: drop the current connection, if any. */
static void link_drop(struct lv_link *l)
{
    if (!l->conn)
        return;
    if (l->on_disconnect)
        l->on_disconnect(l, l->conn, l->ctx);
    virConnectUnregisterCloseCallback(l->conn, link_closed);
    virConnectClose(l->conn);
    l->conn = NULL;
}

/* With l->lock held. */
static int link_connect(struct lv_link *l, char *err, size_t errlen)
{
    virConnectPtr c = connect_uri(l->uri, err, errlen);
    if (!c)
        return -ECONNREFUSED;
    atomic_store(&l->broken, false);
    if (virConnectRegisterCloseCallback(c, link_closed, l, NULL) < 0)
        vmem_log(LOG_WARNING, "libvirt: %s: no close callback (%s): a restart of "
                 "libvirtd is noticed at the next failed call", l->uri, lv_errmsg());
    l->conn = c;
    l->generation++;
    l->backoff_ms = 0;
    if (l->on_connect)
        l->on_connect(l, c, l->ctx);
    return 0;
}

int lv_link_open(struct lv_link *l, const char *uri,
                 void (*on_connect)(struct lv_link *, virConnectPtr, void *),
                 void (*on_disconnect)(struct lv_link *, virConnectPtr, void *),
                 void *ctx, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    l->on_connect = on_connect;
    l->on_disconnect = on_disconnect;
    l->ctx = ctx;
    l->uri = strdup(uri);
    if (!l->uri) {
        snprintf(err, errlen, "libvirt: out of memory");
        return -ENOMEM;
    }
    int rc = lv_init(err, errlen);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->lock);
    rc = link_connect(l, err, errlen);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

virConnectPtr lv_link_get(struct lv_link *l, bool retry, unsigned *gen)
{
    pthread_mutex_lock(&l->lock);
    if (l->conn && (atomic_load(&l->broken) || virConnectIsAlive(l->conn) != 1)) {
        vmem_log(LOG_NOTICE, "libvirt: connection to %s lost; reconnecting", l->uri);
        link_drop(l);
        l->retry_at_ns = lv_now_ns();
    }
    if (!l->conn && retry && lv_now_ns() >= l->retry_at_ns) {
        char err[256];
        if (link_connect(l, err, sizeof err) == 0) {
            l->reconnects++;
            vmem_log(LOG_NOTICE, "libvirt: reconnected to %s", l->uri);
        } else {
            l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : 250;
            if (l->backoff_ms > 8000)
                l->backoff_ms = 8000;
            l->retry_at_ns = lv_now_ns() + (uint64_t)l->backoff_ms * 1000000ull;
            if (strcmp(err, l->last_error) != 0)
                vmem_log(LOG_WARNING, "%s (retrying)", err);
            snprintf(l->last_error, sizeof l->last_error, "%s", err);
        }
    }
    virConnectPtr c = l->conn;
    if (c)
        virConnectRef(c);
    if (gen)
        *gen = l->generation;
    pthread_mutex_unlock(&l->lock);
    return c;
}

void lv_link_failed(struct lv_link *l)
{
    atomic_store(&l->broken, true);
}

void lv_link_close(struct lv_link *l)
{
    if (!l->uri)
        return;
    pthread_mutex_lock(&l->lock);
    link_drop(l);
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_destroy(&l->lock);
    free(l->uri);
    l->uri = NULL;
}

/* ------------------------------------------------------- domain facts */

/* The value of attribute `name` in the first element `tag` of xml that
 * comes after `after` (NULL: from the start).  Values are copied as they
 * are; libvirt escapes none of the characters machine types and
 * architectures use. */
static bool xml_attr(const char *xml, const char *after, const char *tag,
                     const char *name, char *out, size_t outlen)
{
    const char *p = xml;
    if (after && !(p = strstr(xml, after)))
        return false;
    char open[48];
    snprintf(open, sizeof open, "<%s", tag);
    size_t ol = strlen(open);
    for (p = strstr(p, open); p; p = strstr(p + 1, open))
        if (p[ol] == ' ' || p[ol] == '>' || p[ol] == '/' || p[ol] == '\n')
            break;
    if (!p)
        return false;
    const char *end = strchr(p, '>');
    if (!end)
        return false;
    size_t nl = strlen(name);
    for (const char *a = p + ol; a < end; a++) {
        if (a[-1] != ' ' && a[-1] != '\n' && a[-1] != '\t')
            continue;
        if (strncmp(a, name, nl) != 0 || a[nl] != '=' || (a[nl + 1] != '\'' && a[nl + 1] != '"'))
            continue;
        char q = a[nl + 1];
        const char *v = a + nl + 2, *ve = memchr(v, q, (size_t)(end - v));
        if (!ve || (size_t)(ve - v) >= outlen)
            return false;
        memcpy(out, v, (size_t)(ve - v));
        out[ve - v] = 0;
        return true;
    }
    return false;
}

int lv_domfacts(virConnectPtr c, virDomainPtr d, struct lv_domfacts *f, char *err,
                size_t errlen)
{
    memset(f, 0, sizeof *f);
    const char *type = virConnectGetType(c);
    snprintf(f->hv_type, sizeof f->hv_type, "%s", type ? type : "");
    virDomainInfo info;
    if (virDomainGetInfo(d, &info) < 0) {
        snprintf(err, errlen, "virDomainGetInfo: %s", lv_errmsg());
        return -EIO;
    }
    f->ram_bytes = (uint64_t)info.maxMem << 10;
    f->nvcpus = info.nrVirtCpu;
    char *xml = virDomainGetXMLDesc(d, 0);
    if (!xml) {
        snprintf(err, errlen, "virDomainGetXMLDesc: %s", lv_errmsg());
        return -EIO;
    }
    xml_attr(xml, "<os", "type", "arch", f->arch, sizeof f->arch);
    xml_attr(xml, "<os", "type", "machine", f->machine, sizeof f->machine);
    const char *os = strstr(xml, "<os"), *os_end = os ? strstr(os, "</os>") : NULL;
    const char *loader = os ? strstr(os, "<loader") : NULL;
    f->has_loader = loader && os_end && loader < os_end;
    free(xml);
    return 0;
}

/* ------------------------------------------------------------ the class */

int libvirt_driver_open(const char *arg, unsigned flags, struct vmem_driver *out,
                        char *err, size_t errlen)
{
    char *dom, *uri;
    int rc = lv_split_spec(arg, &dom, &uri, err, errlen);
    if (rc < 0)
        return rc;
    bool local = lv_uri_is_local(uri);
    struct lv_dom *d;
    rc = lv_dom_open(dom, uri, lv_monitor_allowed(local), &d, err, errlen);
    free(dom);
    free(uri);
    if (rc < 0)
        return rc;
    /* A local QEMU domain, with passthrough allowed: the qemu driver's
     * paths (zero copy from a shared RAM file, else process memory).  If
     * that fails, say why and take the peek path: slower, never wrong. */
    if (local && d->monitor) {
        char lerr[1500];
        rc = lv_local_attach(d, flags, out, lerr, sizeof lerr);
        if (rc == 0)
            return 0;
        vmem_log(LOG_WARNING, "%s; reading it through memory peek instead", lerr);
    }
    rc = lv_peek_attach(d, out, err, errlen);
    if (rc < 0)
        lv_dom_close(d);
    return rc;
}

const struct vmem_driver_class libvirt_driver_class = {
    .scheme = "libvirt",
    .usage = "libvirt:DOMAIN[@URI]",
    .summary = "a libvirt domain (URI default " LV_DEFAULT_URI ")",
    .open = libvirt_driver_open,
    .discover_option = "libvirt",
    .discover_usage = "--libvirt [NAME=]URI",
    .discover_summary = "every running domain of URI, following starts and stops",
    .discover_start = lv_discover_start,
    .discover_stop = lv_discover_stop,
};
