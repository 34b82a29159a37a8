/*
 * qmp.h - a small synchronous QMP client (QEMU Machine Protocol) over a
 * unix stream socket, with json-c.
 *
 * One connection = one struct qmp, safe to share between threads: a mutex
 * serialises each command (send, then wait for its reply).  Every wait has
 * a deadline (qmp_set_timeout, 5 s by default), so a hung or dead QEMU
 * never blocks a caller forever.  Commands carry an "id"; replies with
 * another id (the late answer to a command that timed out) and asynchronous
 * events are skipped while waiting.  No reconnect: once the peer has closed
 * the connection every call fails at once with -ENODEV.
 *
 * Errors are negative errno values with one line in err:
 *   -ENODEV     connection closed (QEMU exited) or never established
 *   -ETIMEDOUT  no reply within the timeout (the connection stays usable)
 *   -EIO        protocol error (malformed JSON, oversized message, I/O
 *               error), or a QMP error reply of class GenericError
 *   -EOPNOTSUPP QMP error class CommandNotFound
 *   -ENOENT     QMP error class DeviceNotFound
 *   -EINVAL     bad arguments given to this API
 * SIGPIPE is never raised (send with MSG_NOSIGNAL).
 *
 * QEMU serves one QMP client per socket at a time: while another client is
 * connected, a new one waits unanswered; qmp_connect then times out waiting
 * for the greeting and says so.
 */
#ifndef VMEMFS_DRIVERS_QEMU_QMP_H
#define VMEMFS_DRIVERS_QEMU_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;
struct qmp;

#define QMP_DEFAULT_TIMEOUT_MS 5000
/* Largest single message accepted (info mtree of a big machine is ~1 MB). */
#define QMP_MAX_MESSAGE (64u << 20)

/* Connect to the QMP unix socket at path, read the greeting and negotiate
 * capabilities.  0 and *out, or -errno with err set. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **out,
                char *err, size_t errlen);
/* Only the first step: a connected, non-blocking unix stream socket (fd),
 * waiting at most timeout_ms while the listen backlog is full, or -errno
 * with err set (-ENODEV: connection refused). */
int qmp_socket_connect(const char *path, int timeout_ms, char *err, size_t errlen);
/* The same over a socket already connected (tests: a socketpair).  Takes
 * ownership of fd (closed on failure too). */
int qmp_connect_fd(int fd, int timeout_ms, struct qmp **out, char *err,
                   size_t errlen);
void qmp_close(struct qmp *q);

/* Per-command timeout in milliseconds (> 0). */
void qmp_set_timeout(struct qmp *q, int timeout_ms);

/* Run command `cmd` with `args` (an object, or NULL; ownership taken in all
 * cases).  On success 0 and, if ret is not NULL, *ret = the "return" value
 * (a new reference the caller puts; may be NULL for a JSON null). */
int qmp_execute(struct qmp *q, const char *cmd, struct json_object *args,
                struct json_object **ret, char *err, size_t errlen);

/* An HMP command through human-monitor-command; cpu_index >= 0 selects the
 * monitor's CPU (for "info registers").  *out: malloc'd text (may be "").
 * HMP reports its own errors as text: the caller checks the text. */
int qmp_hmp(struct qmp *q, const char *cmdline, int cpu_index, char **out,
            char *err, size_t errlen);
/* The same over any way of executing a QMP command (a monitor, libvirt's
 * passthrough): exec takes args (always) and returns like qmp_execute. */
typedef int (*qmp_exec_fn)(void *ctx, const char *cmd, struct json_object *args,
                           struct json_object **ret, char *err, size_t errlen);
int qmp_hmp_via(qmp_exec_fn exec, void *ctx, const char *cmdline, int cpu_index,
                char **out, char *err, size_t errlen);

/* The peer's process id and uid from SO_PEERCRED (0 / -1 if unknown: a
 * peer in a pid namespace we cannot see has pid 0). */
pid_t qmp_peer_pid(const struct qmp *q);
uid_t qmp_peer_uid(const struct qmp *q);
/* The connection's socket (owned by q), for more SOL_SOCKET queries. */
int qmp_fd(const struct qmp *q);
/* The greeting's QMP.version object (owned by q), or NULL. */
struct json_object *qmp_version(const struct qmp *q);
/* False once the peer has closed the connection. */
bool qmp_alive(struct qmp *q);
/* Number of asynchronous events received (and skipped) so far, and the
 * name of the last one ("" if none) copied into buf. */
unsigned qmp_events(struct qmp *q, char *buf, size_t buflen);

#endif
