/* test_qemu_discover.c - --qemu-dir discovery (drivers/qemu/discover.c) and
 * the rules a watched directory's sockets follow in the QMP monitor
 * (qmp_monitor.c), on real sockets in a temporary directory.
 *
 * Checks: listening sockets are found as qemu:DIR/FILE with the suffix
 * stripped from the name; a socket owned by another user, a symlink to a
 * socket outside the directory, a regular file and an invalid name are
 * not; a socket bound before it listens (as QEMU does) is found once it
 * listens; one created later is found, one removed is lost; the monitor
 * refuses the symlink and the foreign socket by itself (opened by path,
 * not through the discovery); nothing is announced after stop. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/qemu/discover.h"
#include "drivers/qemu/monitor.h"
#include "drivers/qemu/qemu.h"

#define FOREIGN_UID 12345

struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char found[32][PATH_MAX + 100];
    size_t nfound;
    char lost[32][80];
    size_t nlost;
};

static void on_found(void *ctx, const char *name, const char *spec)
{
    struct events *e = ctx;
    pthread_mutex_lock(&e->mu);
    if (e->nfound < 32)
        snprintf(e->found[e->nfound++], sizeof e->found[0], "%s=%s", name, spec);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void on_lost(void *ctx, const char *name)
{
    struct events *e = ctx;
    pthread_mutex_lock(&e->mu);
    if (e->nlost < 32)
        snprintf(e->lost[e->nlost++], sizeof e->lost[0], "%s", name);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static bool has_found(struct events *e, const char *prefix)
{
    for (size_t i = 0; i < e->nfound; i++)
        if (strncmp(e->found[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

static bool has_lost(struct events *e, const char *name)
{
    for (size_t i = 0; i < e->nlost; i++)
        if (strcmp(e->lost[i], name) == 0)
            return true;
    return false;
}

/* Wait up to ms for found "name=" (or lost name). */
static bool wait_for(struct events *e, const char *what, bool lost, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    char prefix[100];
    snprintf(prefix, sizeof prefix, "%s=", what);
    pthread_mutex_lock(&e->mu);
    bool ok;
    while (!(ok = lost ? has_lost(e, what) : has_found(e, prefix)))
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) != 0)
            break;
    ok = lost ? has_lost(e, what) : has_found(e, prefix);
    pthread_mutex_unlock(&e->mu);
    return ok;
}

/* A unix socket bound at path; listening if `listen_now`. */
static int bound(const char *path, bool listen_now)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (listen_now)
        assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_discover(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmemfs-qdir.XXXXXX", out[] = "/tmp/vmemfs-qout.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(out));
    char canon[PATH_MAX];
    assert_non_null(realpath(dir, canon));
    char p[PATH_MAX + 64];

    int fds[8], nfd = 0;
    snprintf(p, sizeof p, "%s/good.qmp", dir);
    fds[nfd++] = bound(p, true);
    snprintf(p, sizeof p, "%s/foreign.qmp", dir);
    fds[nfd++] = bound(p, true);
    bool can_chown = chown(p, FOREIGN_UID, FOREIGN_UID) == 0;
    snprintf(p, sizeof p, "%s/real.qmp", out);
    fds[nfd++] = bound(p, true);
    char link[PATH_MAX + 64];
    snprintf(link, sizeof link, "%s/link.qmp", dir);
    assert_int_equal(symlink(p, link), 0);
    snprintf(p, sizeof p, "%s/plain.qmp", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/bad name.qmp", dir);
    fds[nfd++] = bound(p, true);
    snprintf(p, sizeof p, "%s/notyet.sock", dir);
    int notyet = bound(p, false);
    fds[nfd++] = notyet;

    struct events ev = {.nfound = 0};
    pthread_mutex_init(&ev.mu, NULL);
    pthread_cond_init(&ev.cv, NULL);
    struct vmem_discovery_sink sink = {.ctx = &ev, .found = on_found, .lost = on_lost};
    struct vmem_discovery *d = NULL;
    char err[512] = "";
    assert_true(qemu_driver_class.discover_start != NULL);
    assert_string_equal(qemu_driver_class.discover_option, "qemu-dir");
    assert_string_equal(qemu_driver_class.scheme, "qemu");
    int rc = qemu_driver_class.discover_start(dir, &sink, &d, err, sizeof err);
    if (rc)
        fail_msg("discover_start: %s", err);
    assert_true(qemu_dir_watched(canon));

    char want[PATH_MAX + 100];
    snprintf(want, sizeof want, "good=qemu:%s/good.qmp", canon);
    assert_true(wait_for(&ev, "good", false, 3000));
    pthread_mutex_lock(&ev.mu);
    assert_string_equal(ev.found[0], want);
    pthread_mutex_unlock(&ev.mu);

    /* Bound before listening: found once it listens. */
    usleep(300 * 1000);
    assert_false(wait_for(&ev, "notyet", false, 10));
    assert_int_equal(listen(notyet, 4), 0);
    assert_true(wait_for(&ev, "notyet", false, 3000));

    /* Created later; then removed. */
    snprintf(p, sizeof p, "%s/late.socket", dir);
    fds[nfd++] = bound(p, true);
    assert_true(wait_for(&ev, "late", false, 3000));
    snprintf(p, sizeof p, "%s/good.qmp", dir);
    assert_int_equal(unlink(p), 0);
    assert_true(wait_for(&ev, "good", true, 3000));

    pthread_mutex_lock(&ev.mu);
    assert_false(has_found(&ev, "link="));
    assert_false(has_found(&ev, "plain="));
    assert_false(has_found(&ev, "bad name="));
    if (can_chown)
        assert_false(has_found(&ev, "foreign="));
    size_t nfound = ev.nfound;
    for (size_t i = 0; i < ev.nfound; i++)
        print_message("found %s\n", ev.found[i]);
    pthread_mutex_unlock(&ev.mu);
    assert_int_equal(nfound, can_chown ? 3 : 4);

    /* The monitor applies the directory's rules itself. */
    struct qemu_monitor *mon = NULL;
    assert_int_equal(qemu_qmp_monitor_open(link, 1000, &mon, err, sizeof err), -EACCES);
    print_message("symlink: %s\n", err);
    assert_non_null(strstr(err, "symlink"));
    if (can_chown) {
        snprintf(p, sizeof p, "%s/foreign.qmp", dir);
        assert_int_equal(qemu_qmp_monitor_open(p, 1000, &mon, err, sizeof err), -EACCES);
        print_message("foreign: %s\n", err);
        assert_non_null(strstr(err, "owned by uid 12345"));
    }

    qemu_driver_class.discover_stop(d);
    assert_false(qemu_dir_watched(canon));
    /* Nothing after stop. */
    pthread_mutex_lock(&ev.mu);
    nfound = ev.nfound;
    pthread_mutex_unlock(&ev.mu);
    snprintf(p, sizeof p, "%s/after.qmp", dir);
    fds[nfd++] = bound(p, true);
    usleep(200 * 1000);
    pthread_mutex_lock(&ev.mu);
    assert_int_equal(ev.nfound, nfound);
    pthread_mutex_unlock(&ev.mu);

    for (int i = 0; i < nfd; i++)
        close(fds[i]);
    const char *names[] = {"foreign.qmp", "link.qmp", "plain.qmp", "bad name.qmp",
                           "notyet.sock", "late.socket", "after.qmp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/real.qmp", out);
    unlink(p);
    rmdir(dir);
    rmdir(out);
    pthread_cond_destroy(&ev.cv);
    pthread_mutex_destroy(&ev.mu);
}

/* A directory that is not there: one clear line. */
static void test_missing_dir(void **state)
{
    (void)state;
    struct vmem_discovery_sink sink = {.found = on_found, .lost = on_lost};
    struct vmem_discovery *d = NULL;
    char err[512] = "";
    assert_int_equal(qemu_discover_start("/nonexistent/vmemfs-qdir", &sink, &d, err,
                                         sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/vmemfs-qdir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discover),
        cmocka_unit_test(test_missing_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
