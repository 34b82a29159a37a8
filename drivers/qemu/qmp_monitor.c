/*
 * qmp_monitor.c - the qemu driver's monitor (monitor.h) on a QEMU's own
 * QMP unix socket, and the generic monitor wrappers.
 *
 * One connection per command.  QEMU serves one QMP client per socket at a
 * time; a client that stays connected leaves the operator's own QMP tools
 * (virsh qemu-monitor-command aside, qmp-shell, scripts) waiting unanswered
 * for as long as the VM is mounted.  So each command connects, reads the
 * greeting, negotiates capabilities, runs the command and closes: the
 * socket is busy for about a millisecond per command, and a command of
 * ours that finds another client connected waits for it (bounded by the
 * timeout) like any QMP client would.  Whether QEMU has exited is learned
 * from the process (a pidfd), never from a connection.
 *
 * The peer is not trusted on its word.  At open, the socket's peer
 * (SO_PEERCRED: the process that called listen) must be a process alive
 * now, pinned by a pidfd (SO_PEERPIDFD where the kernel has it, so that no
 * recycled pid can stand in; pidfd_open otherwise): a socket whose listener
 * has exited and whose connections another process answers (a child that
 * inherited it, a passed fd) is refused, since nothing it says about QEMU's
 * memory can be checked.  Every later connection must reach the same
 * socket file (device and inode) and the same process; otherwise the
 * command fails with -ENODEV (QEMU gone or replaced).
 *
 * In a --qemu-dir directory (qemu_dir_watched, discover.c), the socket's
 * last component must not be a symlink (O_NOFOLLOW) and the socket must be
 * owned by root or by the user who mounted: anyone else who can create a
 * file there does not get a process of theirs served through the mount.
 * The socket is connected through an O_PATH descriptor of the file that
 * was checked, so the check and the connection see the same file.
 */
#include "drivers/qemu/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "drivers/qemu/discover.h"
#include "drivers/qemu/qmp.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77             /* Linux 6.5; older headers lack it */
#endif

/* ------------------------------------------------------- generic wrappers */

int qemu_mon_execute(struct qemu_monitor *m, const char *cmd, json_object *args,
                     json_object **ret, char *err, size_t errlen)
{
    if (ret)
        *ret = NULL;
    if (!m || !cmd) {
        json_object_put(args);
        snprintf(err, errlen, "monitor: no monitor or no command");
        return -EINVAL;
    }
    return m->ops->execute(m, cmd, args, ret, err, errlen);
}

static int exec_on_monitor(void *ctx, const char *cmd, json_object *args,
                           json_object **ret, char *err, size_t errlen)
{
    return qemu_mon_execute(ctx, cmd, args, ret, err, errlen);
}

int qemu_mon_hmp(struct qemu_monitor *m, const char *cmdline, int cpu_index, char **out,
                 char *err, size_t errlen)
{
    *out = NULL;
    if (m && m->ops->hmp)
        return m->ops->hmp(m, cmdline, cpu_index, out, err, errlen);
    return qmp_hmp_via(exec_on_monitor, m, cmdline, cpu_index, out, err, errlen);
}

/* ------------------------------------------------------------ QMP socket */

struct qmp_monitor {
    struct qemu_monitor base;
    char *sock;                     /* as given: messages and connections */
    bool strict;                    /* in a watched --qemu-dir */
    dev_t dev;                      /* the socket file verified at open */
    ino_t ino;
    pid_t pid;                      /* the verified peer */
    int pidfd;
    atomic_int timeout_ms;
    atomic_bool gone;               /* latched: the peer process exited */
    pthread_mutex_t lock;           /* one command at a time */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool pidfd_exited(int pidfd)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static int sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* Is the socket in a directory watched by --qemu-dir? */
static bool in_watched_dir(const char *sock)
{
    char *copy = strdup(sock);
    if (!copy)
        return false;
    char *dir = realpath(dirname(copy), NULL);
    bool w = dir && qemu_dir_watched(dir);
    free(dir);
    free(copy);
    return w;
}

/* A connected socket to m->sock, through an O_PATH descriptor of the
 * socket file checked as the header says.  fd, or -errno with err set. */
static int open_socket(struct qmp_monitor *m, bool first, int timeout_ms, char *err,
                       size_t errlen)
{
    int pfd = open(m->sock, O_PATH | O_CLOEXEC | (m->strict ? O_NOFOLLOW : 0));
    if (pfd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", m->sock, strerror(e));
        return e == ENOENT ? -ENODEV : -e;
    }
    struct stat st;
    if (fstat(pfd, &st) != 0) {
        int e = errno;
        close(pfd);
        snprintf(err, errlen, "%s: %s", m->sock, strerror(e));
        return -e;
    }
    if (!S_ISSOCK(st.st_mode)) {
        close(pfd);
        snprintf(err, errlen, "%s: %s", m->sock, S_ISLNK(st.st_mode)
                 ? "a symlink in a --qemu-dir directory: not followed"
                 : "not a socket");
        return -EACCES;
    }
    if (m->strict && st.st_uid != 0 && st.st_uid != getuid()) {
        close(pfd);
        snprintf(err, errlen, "%s: owned by uid %u, neither root nor the mounting "
                 "user (uid %u): refused in a --qemu-dir directory", m->sock,
                 (unsigned)st.st_uid, (unsigned)getuid());
        return -EACCES;
    }
    if (first) {
        m->dev = st.st_dev;
        m->ino = st.st_ino;
    } else if (st.st_dev != m->dev || st.st_ino != m->ino) {
        close(pfd);
        snprintf(err, errlen, "%s: the socket was replaced since it was opened "
                 "(QEMU restarted?)", m->sock);
        return -ENODEV;
    }
    char via[64];
    snprintf(via, sizeof via, "/proc/self/fd/%d", pfd);
    char cerr[256];
    int fd = qmp_socket_connect(via, timeout_ms, cerr, sizeof cerr);
    close(pfd);
    if (fd < 0) {
        const char *why = strstr(cerr, ": cannot connect: ");
        snprintf(err, errlen, "%s%s", m->sock, why ? why : cerr);
    }
    return fd;
}

/* Pin the peer of q: a live process, by pidfd.  0 or -EACCES with err. */
static int verify_peer(struct qmp_monitor *m, struct qmp *q, int fd, char *err,
                       size_t errlen)
{
    pid_t pid = qmp_peer_pid(q);
    if (pid <= 0) {
        snprintf(err, errlen, "%s: the QMP peer's process is unknown (another pid "
                 "namespace?): cannot check what it says about QEMU's memory, "
                 "refused", m->sock);
        return -EACCES;
    }
    int pidfd = -1;
    socklen_t l = sizeof pidfd;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) != 0 || l != sizeof pidfd)
        pidfd = -1;
    if (pidfd < 0)
        pidfd = sys_pidfd_open(pid);
    if (pidfd < 0 || pidfd_exited(pidfd)) {
        int e = pidfd < 0 ? errno : ESRCH;
        if (pidfd >= 0)
            close(pidfd);
        snprintf(err, errlen, "%s: the QMP peer cannot be verified: process %d, "
                 "which listens on the socket, %s; another process answers it: "
                 "refused", m->sock, (int)pid,
                 e == ESRCH ? "has exited" : strerror(e));
        return -EACCES;
    }
    m->pid = pid;
    m->pidfd = pidfd;
    return 0;
}

/* Connect, greet, negotiate: a fresh QMP session with the verified QEMU
 * within deadline.  0 and *out, or -errno with err. */
static int session(struct qmp_monitor *m, bool first, int64_t deadline, struct qmp **out,
                   char *err, size_t errlen)
{
    if (!first && (atomic_load(&m->gone) || pidfd_exited(m->pidfd))) {
        atomic_store(&m->gone, true);
        snprintf(err, errlen, "%s: QEMU (pid %d) has exited", m->sock, (int)m->pid);
        return -ENODEV;
    }
    int left = (int)(deadline - mono_ms());
    if (left <= 0)
        left = 1;
    int fd = open_socket(m, first, left, err, errlen);
    if (fd < 0)
        return fd;
    char qerr[256];
    left = (int)(deadline - mono_ms());
    int rc = qmp_connect_fd(fd, left > 0 ? left : 1, out, qerr, sizeof qerr);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", m->sock, qerr);
        return rc;
    }
    pid_t pid = qmp_peer_pid(*out);
    if (!first && pid != m->pid) {
        snprintf(err, errlen, "%s: now served by process %d, not by QEMU (pid %d)",
                 m->sock, (int)pid, (int)m->pid);
        qmp_close(*out);
        *out = NULL;
        return -ENODEV;
    }
    return 0;
}

static int qm_execute(struct qemu_monitor *mon, const char *cmd, json_object *args,
                      json_object **ret, char *err, size_t errlen)
{
    struct qmp_monitor *m = (struct qmp_monitor *)mon;
    pthread_mutex_lock(&m->lock);
    int timeout = atomic_load(&m->timeout_ms);
    int64_t deadline = mono_ms() + timeout;
    struct qmp *q = NULL;
    int rc = session(m, false, deadline, &q, err, errlen);
    if (rc < 0) {
        json_object_put(args);
    } else {
        int left = (int)(deadline - mono_ms());
        qmp_set_timeout(q, left > 0 ? left : 1);
        rc = qmp_execute(q, cmd, args, ret, err, errlen);
        qmp_close(q);
        /* A connection closed under a command: was it QEMU exiting? */
        if (rc == -ENODEV && pidfd_exited(m->pidfd))
            atomic_store(&m->gone, true);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static pid_t qm_pid(struct qemu_monitor *mon)
{
    return ((struct qmp_monitor *)mon)->pid;
}

static int qm_pidfd(struct qemu_monitor *mon)
{
    struct qmp_monitor *m = (struct qmp_monitor *)mon;
    int fd = fcntl(m->pidfd, F_DUPFD_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

static bool qm_alive(struct qemu_monitor *mon)
{
    struct qmp_monitor *m = (struct qmp_monitor *)mon;
    if (!atomic_load(&m->gone) && pidfd_exited(m->pidfd))
        atomic_store(&m->gone, true);
    return !atomic_load(&m->gone);
}

static void qm_set_timeout(struct qemu_monitor *mon, int timeout_ms)
{
    struct qmp_monitor *m = (struct qmp_monitor *)mon;
    atomic_store(&m->timeout_ms, timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
}

static void qm_close(struct qemu_monitor *mon)
{
    struct qmp_monitor *m = (struct qmp_monitor *)mon;
    if (m->pidfd >= 0)
        close(m->pidfd);
    pthread_mutex_destroy(&m->lock);
    free(m->sock);
    free(m);
}

static const struct qemu_monitor_ops qmp_monitor_ops = {
    .execute = qm_execute,
    .pid = qm_pid,
    .pidfd = qm_pidfd,
    .alive = qm_alive,
    .set_timeout = qm_set_timeout,
    .close = qm_close,
};

int qemu_qmp_monitor_open(const char *sock, int timeout_ms, struct qemu_monitor **out,
                          char *err, size_t errlen)
{
    struct qmp_monitor *m = calloc(1, sizeof *m);
    if (!m || !(m->sock = strdup(sock))) {
        free(m);
        snprintf(err, errlen, "%s: out of memory", sock);
        return -ENOMEM;
    }
    m->base.ops = &qmp_monitor_ops;
    m->pidfd = -1;
    atomic_init(&m->timeout_ms, timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
    atomic_init(&m->gone, false);
    pthread_mutex_init(&m->lock, NULL);
    m->strict = in_watched_dir(sock);
    /* One session now: the socket answers QMP, and its peer is pinned. */
    struct qmp *q = NULL;
    int rc = session(m, true, mono_ms() + atomic_load(&m->timeout_ms), &q, err, errlen);
    if (rc == 0) {
        rc = verify_peer(m, q, qmp_fd(q), err, errlen);
        qmp_close(q);
    }
    if (rc < 0) {
        qm_close(&m->base);
        return rc;
    }
    *out = &m->base;
    return 0;
}
