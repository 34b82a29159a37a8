/*
 * monitor.h - what the qemu driver asks of a QEMU's monitor, as a small
 * interface: QMP commands (JSON in, the reply's "return" out), HMP commands
 * (through human-monitor-command unless the monitor has its own way), the
 * QEMU process's id, and whether it is still there.  qemu.c uses nothing
 * else of the monitor, so that one driver (its zero-copy shared-file path
 * and its process-memory path) serves a QEMU reached through its own QMP
 * socket (qemu_qmp_monitor_open, qmp_monitor.c) or through another channel
 * (libvirt's virDomainQemuMonitorCommand passthrough) that hands in the
 * QEMU pid it knows.
 *
 * Owns: the contract of struct qemu_monitor_ops, the wrappers qemu.c calls,
 * and the constructor of the QMP-socket monitor.
 *
 * Contract, for every implementation:
 *  - Thread safety: every operation may be called from several threads at
 *    once; the monitor serialises what it must (QEMU answers one command at
 *    a time anyway).  close() is called once, after every other call has
 *    returned.
 *  - Blocking: execute and hmp wait on QEMU, each bounded by the monitor's
 *    timeout (a few seconds; set_timeout changes it): a QEMU that does not
 *    answer gives -ETIMEDOUT, never a hang.  pid, pidfd, alive and
 *    set_timeout never wait on QEMU.
 *  - Errors are negative errno values with one line in err (which is always
 *    written on failure, never on success):
 *      -ENODEV      QEMU has gone (connection refused or closed, process
 *                   exited), or is not the process verified at first
 *      -ETIMEDOUT   no answer within the timeout
 *      -EOPNOTSUPP  QMP CommandNotFound
 *      -ENOENT      QMP DeviceNotFound
 *      -EIO         any other QMP error reply, a malformed reply, I/O error
 *      -EACCES      the peer could not be verified (see qmp_monitor.c)
 *      -ENOMEM, -EINVAL (bad arguments)
 *  - Ownership: execute takes `args` (an object, or NULL) in all cases; on
 *    success *ret (when ret is not NULL) is a new reference the caller puts
 *    (NULL for a JSON null).  hmp's *out is malloc'd text the caller frees.
 *    The monitor is owned by whoever opened it until handed to
 *    qemu_driver_open_monitor, which then owns it (closes it at the
 *    driver's close, and on failure too).
 */
#ifndef VMEMFS_DRIVERS_QEMU_MONITOR_H
#define VMEMFS_DRIVERS_QEMU_MONITOR_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;
struct qemu_monitor;

struct qemu_monitor_ops {
    /* One QMP command `cmd` ("query-memdev") with `args`: 0 and *ret = the
     * reply's "return" value, or -errno.  Required. */
    int (*execute)(struct qemu_monitor *m, const char *cmd, struct json_object *args,
                   struct json_object **ret, char *err, size_t errlen);
    /* One HMP command line ("info mtree -f"); cpu_index >= 0 selects the
     * monitor's CPU (for "info registers").  0 and *out = the text (HMP
     * reports its own errors as text: the caller checks it).  Optional:
     * NULL means execute("human-monitor-command", ...). */
    int (*hmp)(struct qemu_monitor *m, const char *cmdline, int cpu_index, char **out,
               char *err, size_t errlen);
    /* The QEMU process's id as the monitor knows it (verified peer of the
     * socket, or what libvirt says); 0 when unknown.  Required. */
    pid_t (*pid)(struct qemu_monitor *m);
    /* A new pidfd (the caller closes it) naming that very process, taken
     * when the monitor verified it (no pid-reuse window), or -errno.
     * Optional: NULL means the driver opens one from pid(). */
    int (*pidfd)(struct qemu_monitor *m);
    /* False once the monitor knows that QEMU has gone for good (libvirt:
     * the domain was destroyed).  Optional: the driver watches the process
     * itself in any case. */
    bool (*alive)(struct qemu_monitor *m);
    /* Per-command timeout in milliseconds (> 0).  Optional. */
    void (*set_timeout)(struct qemu_monitor *m, int timeout_ms);
    /* Release everything.  Required. */
    void (*close)(struct qemu_monitor *m);
};

/* Implementations embed this first in their own state. */
struct qemu_monitor {
    const struct qemu_monitor_ops *ops;
};

/* The wrappers qemu.c (and tests) call; they answer for missing optional
 * operations as the contract says. */
int qemu_mon_execute(struct qemu_monitor *m, const char *cmd, struct json_object *args,
                     struct json_object **ret, char *err, size_t errlen);
int qemu_mon_hmp(struct qemu_monitor *m, const char *cmdline, int cpu_index, char **out,
                 char *err, size_t errlen);
static inline pid_t qemu_mon_pid(struct qemu_monitor *m)
{
    return m->ops->pid(m);
}
static inline int qemu_mon_pidfd(struct qemu_monitor *m)
{
    return m->ops->pidfd ? m->ops->pidfd(m) : -ENOTSUP;
}
static inline bool qemu_mon_alive(struct qemu_monitor *m)
{
    return !m->ops->alive || m->ops->alive(m);
}
static inline void qemu_mon_set_timeout(struct qemu_monitor *m, int timeout_ms)
{
    if (m->ops->set_timeout)
        m->ops->set_timeout(m, timeout_ms);
}
static inline void qemu_mon_close(struct qemu_monitor *m)
{
    if (m)
        m->ops->close(m);
}

/*
 * The monitor on a QEMU's QMP unix socket (qmp_monitor.c).  Connects at
 * once to learn and verify the peer (see there), then holds no connection
 * between commands.  timeout_ms <= 0: QMP_DEFAULT_TIMEOUT_MS.  0 and *out,
 * or -errno with one line in err naming the socket.
 */
int qemu_qmp_monitor_open(const char *sock, int timeout_ms, struct qemu_monitor **out,
                          char *err, size_t errlen);

#endif
