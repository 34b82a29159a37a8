/*
 * qmp.c - a small synchronous QMP client (see qmp.h).
 *
 * The wire protocol: QEMU sends one JSON object per line.  First the
 * greeting {"QMP": {"version": ..., "capabilities": [...]}}; the client
 * answers {"execute": "qmp_capabilities"}; after that each
 * {"execute": C, "arguments": A, "id": N} gets exactly one
 * {"return": R, "id": N} or {"error": {"class": .., "desc": ..}, "id": N},
 * and {"event": ...} objects may arrive at any time in between.
 */
#include "drivers/qemu/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct qmp {
    int fd;
    pthread_mutex_t lock;
    int timeout_ms;
    bool dead;                      /* peer closed, or protocol desync */
    char *buf;                      /* received bytes not yet parsed */
    size_t len, cap;
    uint64_t next_id;
    pid_t peer_pid;
    uid_t peer_uid;
    json_object *greeting;
    unsigned events;
    char last_event[64];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    int64_t r = deadline - now_ms();
    return r < 0 ? 0 : (r > INT32_MAX ? INT32_MAX : (int)r);
}

/* Wait for `events` on fd until deadline: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, remaining(deadline));
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static int send_all(struct qmp *q, const char *s, size_t n, int64_t deadline,
                    char *err, size_t errlen)
{
    while (n) {
        ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(q->fd, POLLOUT, deadline);
            if (r == 0) {
                /* Part of a command may be on the wire: the stream can no
                 * longer be trusted. */
                q->dead = true;
                snprintf(err, errlen, "QMP: send timed out after %d ms",
                         q->timeout_ms);
                return -ETIMEDOUT;
            }
            if (r < 0) {
                q->dead = true;
                snprintf(err, errlen, "QMP: poll: %s", strerror(-r));
                return -EIO;
            }
            continue;
        }
        int e = w < 0 ? errno : EPIPE;
        q->dead = true;
        if (e == EPIPE || e == ECONNRESET || e == ENOTCONN) {
            snprintf(err, errlen, "QMP: connection closed (QEMU exited?)");
            return -ENODEV;
        }
        snprintf(err, errlen, "QMP: send: %s", strerror(e));
        return -EIO;
    }
    return 0;
}

/* Next message (a JSON object) from the stream, waiting until deadline. */
static int read_msg(struct qmp *q, int64_t deadline, json_object **out,
                    char *err, size_t errlen)
{
    size_t scanned = 0;
    for (;;) {
        char *nl = q->len > scanned ? memchr(q->buf + scanned, '\n', q->len - scanned)
                                    : NULL;
        if (nl) {
            size_t linelen = (size_t)(nl - q->buf);
            size_t end = linelen;
            while (end > 0 && (q->buf[end - 1] == '\r' || q->buf[end - 1] == ' ' ||
                               q->buf[end - 1] == '\t'))
                end--;
            q->buf[end] = '\0';
            json_object *o = NULL;
            enum json_tokener_error jerr = json_tokener_success;
            bool blank = end == 0;
            if (!blank)
                o = json_tokener_parse_verbose(q->buf, &jerr);
            memmove(q->buf, nl + 1, q->len - linelen - 1);
            q->len -= linelen + 1;
            scanned = 0;
            if (blank)
                continue;
            if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                q->dead = true;
                snprintf(err, errlen, "QMP: malformed message from QEMU (%s)",
                         o ? "not an object" : json_tokener_error_desc(jerr));
                return -EIO;
            }
            *out = o;
            return 0;
        }
        scanned = q->len;
        if (q->len >= QMP_MAX_MESSAGE) {
            q->dead = true;
            snprintf(err, errlen, "QMP: message larger than %u bytes",
                     QMP_MAX_MESSAGE);
            return -EIO;
        }
        if (q->cap - q->len < 4096) {
            size_t ncap = q->cap ? q->cap * 2 : 65536;
            if (ncap > QMP_MAX_MESSAGE + 4096)
                ncap = QMP_MAX_MESSAGE + 4096;
            char *nb = realloc(q->buf, ncap);
            if (!nb) {
                snprintf(err, errlen, "QMP: out of memory");
                return -ENOMEM;
            }
            q->buf = nb;
            q->cap = ncap;
        }
        ssize_t r = recv(q->fd, q->buf + q->len, q->cap - q->len - 1, MSG_DONTWAIT);
        if (r > 0) {
            q->len += (size_t)r;
            continue;
        }
        if (r == 0) {
            q->dead = true;
            snprintf(err, errlen, "QMP: connection closed (QEMU exited?)");
            return -ENODEV;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(q->fd, POLLIN, deadline);
            if (w == 0) {
                snprintf(err, errlen, "QMP: no reply within %d ms (QEMU hung?)",
                         q->timeout_ms);
                return -ETIMEDOUT;
            }
            if (w < 0) {
                q->dead = true;
                snprintf(err, errlen, "QMP: poll: %s", strerror(-w));
                return -EIO;
            }
            continue;
        }
        int e = errno;
        q->dead = true;
        if (e == ECONNRESET || e == ENOTCONN) {
            snprintf(err, errlen, "QMP: connection closed (QEMU exited?)");
            return -ENODEV;
        }
        snprintf(err, errlen, "QMP: recv: %s", strerror(e));
        return -EIO;
    }
}

static int error_to_errno(json_object *e, const char *cmd, char *err, size_t errlen)
{
    json_object *cls = NULL, *desc = NULL;
    json_object_object_get_ex(e, "class", &cls);
    json_object_object_get_ex(e, "desc", &desc);
    const char *c = cls ? json_object_get_string(cls) : "";
    snprintf(err, errlen, "QMP %s: %s", cmd,
             desc ? json_object_get_string(desc) : json_object_to_json_string(e));
    if (strcmp(c, "CommandNotFound") == 0)
        return -EOPNOTSUPP;
    if (strcmp(c, "DeviceNotFound") == 0)
        return -ENOENT;
    return -EIO;
}

/* Send one command and wait for its reply.  Caller holds q->lock. */
static int execute_locked(struct qmp *q, const char *cmd, json_object *args,
                          json_object **ret, char *err, size_t errlen)
{
    if (q->dead) {
        json_object_put(args);
        snprintf(err, errlen, "QMP: connection closed (QEMU exited?)");
        return -ENODEV;
    }
    uint64_t id = ++q->next_id;
    json_object *msg = json_object_new_object();
    if (!msg) {
        json_object_put(args);
        snprintf(err, errlen, "QMP: out of memory");
        return -ENOMEM;
    }
    json_object_object_add(msg, "execute", json_object_new_string(cmd));
    if (args)
        json_object_object_add(msg, "arguments", args);
    json_object_object_add(msg, "id", json_object_new_int64((int64_t)id));
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
    size_t tl = strlen(text);
    char *line = malloc(tl + 2);
    if (!line) {
        json_object_put(msg);
        snprintf(err, errlen, "QMP: out of memory");
        return -ENOMEM;
    }
    memcpy(line, text, tl);
    line[tl] = '\n';
    json_object_put(msg);

    int64_t deadline = now_ms() + q->timeout_ms;
    int rc = send_all(q, line, tl + 1, deadline, err, errlen);
    free(line);
    if (rc < 0)
        return rc;

    for (;;) {
        json_object *o = NULL;
        rc = read_msg(q, deadline, &o, err, errlen);
        if (rc < 0)
            return rc;
        json_object *v = NULL;
        if (json_object_object_get_ex(o, "event", &v)) {
            q->events++;
            snprintf(q->last_event, sizeof q->last_event, "%s",
                     json_object_get_string(v));
            json_object_put(o);
            continue;
        }
        json_object *rid = NULL;
        if (json_object_object_get_ex(o, "id", &rid) &&
            (!json_object_is_type(rid, json_type_int) ||
             (uint64_t)json_object_get_int64(rid) != id)) {
            json_object_put(o);     /* a late reply to a timed-out command */
            continue;
        }
        if (json_object_object_get_ex(o, "return", &v)) {
            if (ret)
                *ret = json_object_get(v);
            json_object_put(o);
            return 0;
        }
        if (json_object_object_get_ex(o, "error", &v)) {
            rc = error_to_errno(v, cmd, err, errlen);
            json_object_put(o);
            return rc;
        }
        /* Neither event nor reply: not QMP as we know it. */
        snprintf(err, errlen, "QMP %s: unexpected message %.80s", cmd,
                 json_object_to_json_string(o));
        json_object_put(o);
        q->dead = true;
        return -EIO;
    }
}

int qmp_connect_fd(int fd, int timeout_ms, struct qmp **out, char *err,
                   size_t errlen)
{
    struct qmp *q = calloc(1, sizeof *q);
    if (!q) {
        close(fd);
        snprintf(err, errlen, "QMP: out of memory");
        return -ENOMEM;
    }
    q->fd = fd;
    q->timeout_ms = timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS;
    q->peer_pid = 0;
    q->peer_uid = (uid_t)-1;
    pthread_mutex_init(&q->lock, NULL);
    struct ucred cred;
    socklen_t cl = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cl == sizeof cred) {
        q->peer_pid = cred.pid;
        q->peer_uid = cred.uid;
    }

    /* Greeting and capabilities negotiation share one deadline. */
    int64_t deadline = now_ms() + q->timeout_ms;
    json_object *g = NULL;
    int rc = read_msg(q, deadline, &g, err, errlen);
    if (rc == -ETIMEDOUT)
        snprintf(err, errlen, "QMP: no greeting within %d ms (is another "
                 "client connected? QEMU serves one QMP client per socket)",
                 q->timeout_ms);
    json_object *v = NULL;
    if (rc == 0 && (!json_object_object_get_ex(g, "QMP", &v) ||
                    !json_object_is_type(v, json_type_object))) {
        snprintf(err, errlen, "QMP: not a QMP greeting: %.80s",
                 json_object_to_json_string(g));
        rc = -EIO;
    }
    if (rc < 0) {
        json_object_put(g);
        qmp_close(q);
        return rc;
    }
    q->greeting = g;
    int full = q->timeout_ms;
    q->timeout_ms = remaining(deadline) > 0 ? remaining(deadline) : 1;
    rc = execute_locked(q, "qmp_capabilities", NULL, NULL, err, errlen);
    q->timeout_ms = full;
    if (rc < 0) {
        qmp_close(q);
        return rc;
    }
    *out = q;
    return 0;
}

int qmp_socket_connect(const char *path, int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "%s: socket path longer than %zu bytes", path,
                 sizeof sa.sun_path - 1);
        return -EINVAL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    if (timeout_ms <= 0)
        timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (e == EAGAIN || e == EINPROGRESS) {
            /* Unix sockets: the listen backlog is full. */
            int w = wait_fd(fd, POLLOUT, now_ms() + timeout_ms);
            socklen_t el = sizeof e;
            if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0)
                return fd;
            if (w == 0)
                e = ETIMEDOUT;
        }
        close(fd);
        snprintf(err, errlen, "%s: cannot connect: %s%s", path, strerror(e),
                 e == ECONNREFUSED ? " (QEMU not running?)" : "");
        return e == ECONNREFUSED ? -ENODEV : -e;
    }
    return fd;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **out, char *err,
                size_t errlen)
{
    int fd = qmp_socket_connect(path, timeout_ms, err, errlen);
    if (fd < 0)
        return fd;
    int rc = qmp_connect_fd(fd, timeout_ms, out, err, errlen);
    if (rc < 0) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s: %s", path, tmp);
    }
    return rc;
}

void qmp_close(struct qmp *q)
{
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    json_object_put(q->greeting);
    pthread_mutex_destroy(&q->lock);
    free(q->buf);
    free(q);
}

void qmp_set_timeout(struct qmp *q, int timeout_ms)
{
    pthread_mutex_lock(&q->lock);
    q->timeout_ms = timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS;
    pthread_mutex_unlock(&q->lock);
}

int qmp_execute(struct qmp *q, const char *cmd, json_object *args,
                json_object **ret, char *err, size_t errlen)
{
    if (ret)
        *ret = NULL;
    if (!q || !cmd) {
        json_object_put(args);
        snprintf(err, errlen, "QMP: no connection");
        return q ? -EINVAL : -ENODEV;
    }
    pthread_mutex_lock(&q->lock);
    int rc = execute_locked(q, cmd, args, ret, err, errlen);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int qmp_hmp_via(qmp_exec_fn exec, void *ctx, const char *cmdline, int cpu_index,
                char **out, char *err, size_t errlen)
{
    *out = NULL;
    json_object *args = json_object_new_object();
    if (!args) {
        snprintf(err, errlen, "QMP: out of memory");
        return -ENOMEM;
    }
    json_object_object_add(args, "command-line", json_object_new_string(cmdline));
    if (cpu_index >= 0)
        json_object_object_add(args, "cpu-index", json_object_new_int(cpu_index));
    json_object *ret = NULL;
    int rc = exec(ctx, "human-monitor-command", args, &ret, err, errlen);
    if (rc < 0)
        return rc;
    if (!json_object_is_type(ret, json_type_string)) {
        json_object_put(ret);
        snprintf(err, errlen, "QMP human-monitor-command: reply is not a string");
        return -EIO;
    }
    *out = strdup(json_object_get_string(ret));
    json_object_put(ret);
    if (!*out) {
        snprintf(err, errlen, "QMP: out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int exec_on_qmp(void *ctx, const char *cmd, json_object *args, json_object **ret,
                       char *err, size_t errlen)
{
    return qmp_execute(ctx, cmd, args, ret, err, errlen);
}

int qmp_hmp(struct qmp *q, const char *cmdline, int cpu_index, char **out,
            char *err, size_t errlen)
{
    return qmp_hmp_via(exec_on_qmp, q, cmdline, cpu_index, out, err, errlen);
}

pid_t qmp_peer_pid(const struct qmp *q) { return q->peer_pid; }
int qmp_fd(const struct qmp *q) { return q->fd; }
uid_t qmp_peer_uid(const struct qmp *q) { return q->peer_uid; }

json_object *qmp_version(const struct qmp *q)
{
    json_object *v = NULL, *ver = NULL;
    if (q->greeting && json_object_object_get_ex(q->greeting, "QMP", &v) &&
        json_object_object_get_ex(v, "version", &ver))
        return ver;
    return NULL;
}

bool qmp_alive(struct qmp *q)
{
    pthread_mutex_lock(&q->lock);
    bool dead = q->dead;
    if (!dead) {
        /* Notice a close that happened since the last command. */
        struct pollfd p = {.fd = q->fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
            dead = q->dead = true;
    }
    pthread_mutex_unlock(&q->lock);
    return !dead;
}

unsigned qmp_events(struct qmp *q, char *buf, size_t buflen)
{
    pthread_mutex_lock(&q->lock);
    unsigned n = q->events;
    if (buf && buflen)
        snprintf(buf, buflen, "%s", q->last_event);
    pthread_mutex_unlock(&q->lock);
    return n;
}
