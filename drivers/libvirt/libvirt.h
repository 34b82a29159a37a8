/*
 * libvirt.h - the libvirt driver ("libvirt:DOMAIN[@URI]", and discovery with
 * --libvirt [NAME=]URI): a domain of a libvirt host as a frame reader.
 *
 * Exported: libvirt_driver_class (drivers/registry.c's row).  The rest of
 * this header is the driver's own plumbing, shared by its files:
 *   libvirt.c   spec parsing, the process-wide event loop, connections that
 *               reconnect (struct lv_link), the class and open(): which path
 *               a domain takes
 *   domain.c    one domain: its link, identity, gone, suspend/resume
 *   local.c     local QEMU domains: the qemu driver's fast paths on a
 *               monitor that passes through libvirt
 *   peek.c      the MemoryPeek path (remote or non-QEMU domains, or when the
 *               monitor passthrough is not allowed)
 *   discover.c  every running domain of a URI, following lifecycle events
 *
 * Threads: libvirt calls its event callbacks (lifecycle, connection closed)
 * from one event-loop thread this driver starts once per process
 * (lv_init).  Those callbacks only set flags or call the discovery sink:
 * they never take a lock that is held around a libvirt call.
 */
#ifndef VMEMFS_DRIVERS_LIBVIRT_LIBVIRT_H
#define VMEMFS_DRIVERS_LIBVIRT_LIBVIRT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "core/driver.h"

extern const struct vmem_driver_class libvirt_driver_class;

/* The class's open(), also for the scheme table of drivers/drivers.c. */
int libvirt_driver_open(const char *arg, unsigned flags, struct vmem_driver *out,
                        char *err, size_t errlen);

#define LV_DEFAULT_URI "qemu:///system"
/* Largest virDomainMemoryPeek the remote protocol carries
 * (REMOTE_DOMAIN_MEMORY_PEEK_BUFFER_MAX). */
#define LV_PEEK_MAX (4u << 20)

/* Split "DOMAIN[@URI]": the URI starts after the first '@' that is followed
 * by a URI scheme ("qemu:", "qemu+ssh:"), so that a URI's own user@host
 * stays in the URI.  0 with malloc'd *dom and *uri (the default URI when
 * none is given), or -EINVAL with err. */
int lv_split_spec(const char *arg, char **dom, char **uri, char *err, size_t errlen);

/* Once per process: libvirt's error printing silenced (errors reach the
 * user as our own one line), its default event loop registered and run by a
 * thread of ours.  0 or -errno with err. */
int lv_init(char *err, size_t errlen);

/* The calling thread's last libvirt error: its message, and its code
 * (virErrorNumber; VIR_ERR_OK when none). */
const char *lv_errmsg(void);
int lv_errcode(void);
/* Does this error code mean the domain is no longer running? */
bool lv_err_domain_gone(int code);
/* ... or that the connection to libvirtd broke? */
bool lv_err_conn_broken(int code);

/* Monotonic clock in nanoseconds. */
uint64_t lv_now_ns(void);

/*
 * A connection to one URI that comes back by itself: libvirtd restarted, a
 * network dropped.  The close callback marks it broken; the next
 * lv_link_get() at or after the retry time reconnects (backoff 0.25 s
 * doubling to 8 s) and calls on_connect, which registers the owner's event
 * callbacks on the new connection.
 */
struct lv_link {
    char *uri;
    pthread_mutex_t lock;
    virConnectPtr conn;             /* NULL while disconnected */
    atomic_bool broken;             /* set by the close callback */
    unsigned generation;            /* bumped on every (re)connect */
    uint64_t retry_at_ns;
    unsigned backoff_ms;
    unsigned reconnects;
    char last_error[256];
    /* Called with lock held, after each successful connect (the first
     * too): register event callbacks on c.  Failure is logged only. */
    void (*on_connect)(struct lv_link *l, virConnectPtr c, void *ctx);
    /* Called with lock held before a connection is dropped: deregister. */
    void (*on_disconnect)(struct lv_link *l, virConnectPtr c, void *ctx);
    void *ctx;
};

/* Connect the first time: 0, or -errno with one line in err ("cannot
 * connect to URI: libvirt's reason").  The link is ready for lv_link_close
 * in both cases. */
int lv_link_open(struct lv_link *l, const char *uri,
                 void (*on_connect)(struct lv_link *, virConnectPtr, void *),
                 void (*on_disconnect)(struct lv_link *, virConnectPtr, void *),
                 void *ctx, char *err, size_t errlen);
/* A reference to the live connection (the caller virConnectClose()s it), or
 * NULL when disconnected; reconnects first when it is broken and a retry is
 * due, if `retry`.  *gen, if not NULL, receives the generation. */
virConnectPtr lv_link_get(struct lv_link *l, bool retry, unsigned *gen);
/* Tell the link that a call on it failed with a broken connection. */
void lv_link_failed(struct lv_link *l);
void lv_link_close(struct lv_link *l);

/* Facts of a domain taken at open, for the layout. */
struct lv_domfacts {
    char hv_type[32];               /* virConnectGetType: "QEMU", "Xen" */
    char arch[32];                  /* <os><type arch=> */
    char machine[64];               /* <os><type machine=> */
    uint64_t ram_bytes;             /* virDomainGetInfo maxMem */
    unsigned nvcpus;
    bool has_loader;                /* <os><loader>: firmware not SeaBIOS */
};
int lv_domfacts(virConnectPtr c, virDomainPtr d, struct lv_domfacts *f, char *err,
                size_t errlen);

/* Is the connection's hypervisor on this host (no transport, no host)? */
bool lv_uri_is_local(const char *uri);

/* Whether QEMU monitor passthrough (virDomainQemuMonitorCommand) may be
 * used on a domain: VMEMFS_LIBVIRT_MONITOR = local (default: local QEMU
 * domains only, where it buys the fast path), all, off. */
bool lv_monitor_allowed(bool local);

/*
 * One domain (domain.c): its connection, identity (UUID and the id of this
 * run) and whether it has gone.  Both data paths hold one.
 */
struct lv_dom {
    struct lv_link link;
    char *name, *uri;
    unsigned char uuid[VIR_UUID_BUFLEN];
    char uuid_str[VIR_UUID_STRING_BUFLEN];
    atomic_bool uuid_known;
    unsigned domid;
    bool monitor;                   /* passthrough allowed (and QEMU) */
    struct lv_domfacts facts;

    pthread_mutex_t dlock;          /* dom and dom_gen */
    virDomainPtr dom;               /* on the link's connection dom_gen */
    unsigned dom_gen;
    int event_id;                   /* lifecycle callback, -1 if none */
    atomic_int callbacks_live;      /* registrations libvirt has not freed */
    atomic_bool gone;
};

/* Connect to uri and find running domain `dom`: 0 and *out, or -errno
 * with one line in err (no such domain, not running, cannot connect). */
int lv_dom_open(const char *dom, const char *uri, bool monitor, struct lv_dom **out,
                char *err, size_t errlen);
/* The domain on the current connection, referenced (virDomainFree it):
 * reconnects when due.  NULL with *rc = -EIO (libvirtd unreachable) or
 * -ENODEV (the domain has gone: stopped, or restarted as another run). */
virDomainPtr lv_dom_get(struct lv_dom *d, int *rc);
/* After a libvirt call named `what` failed: marks the domain gone or the
 * link broken as the error says, logs (rate-limited), returns -EIO. */
int lv_dom_failed(struct lv_dom *d, const char *what);
/* virDomainSuspend / virDomainResume, idempotent. */
int lv_dom_run_state(struct lv_dom *d, bool pause);
bool lv_dom_gone(struct lv_dom *d);
/* uri, domain, uuid, id, hypervisor, machine, connection state. */
void lv_dom_describe(struct lv_dom *d, struct json_object *out);
void lv_dom_close(struct lv_dom *d);

/* The MemoryPeek path (peek.c) on domain d, which it then owns (also on
 * failure?  No: on failure the caller still owns d). */
int lv_peek_attach(struct lv_dom *d, struct vmem_driver *out, char *err, size_t errlen);

/* The local fast path (local.c): the qemu driver on a monitor that passes
 * through libvirt, reading the memory of the domain's QEMU process (pid
 * from libvirt's state, validated).  Owns d on success only. */
int lv_local_attach(struct lv_dom *d, unsigned flags, struct vmem_driver *out, char *err,
                    size_t errlen);

/* Pure layout logic (peek.c), exposed for the unit test: the RAM ranges
 * QEMU gives a machine of this arch, machine type and RAM size, as QEMU
 * 7.2's board code places them.  Returns the count (<= max) or -ENOTSUP
 * for a machine whose layout is not known. */
int lv_ram_layout(const char *arch, const char *machine, uint64_t ram_bytes,
                  struct vmem_range *out, size_t max);

/* Discovery (discover.c): the class's discover_start/stop. */
int lv_discover_start(const char *arg, const struct vmem_discovery_sink *sink,
                      struct vmem_discovery **out, char *err, size_t errlen);
void lv_discover_stop(struct vmem_discovery *d);

/* Pure batching logic (peek.c), exposed for the unit test: order[0..n)
 * holds indices into gfns; lv_sort_gfns sorts them by gfn (stable).  Then
 * lv_next_chunk(gfns, order, n, i, &start, &len) gives the chunk that
 * serves order[i..j): one contiguous span, inside one 4 MiB-aligned window,
 * returning j.  Ranges are applied by the caller. */
void lv_sort_gfns(const uint64_t *gfns, size_t *order, size_t n);
size_t lv_next_chunk(const uint64_t *gfns, const size_t *order, size_t n, size_t i,
                     uint64_t *start_gfn, uint64_t *nframes);

#endif
