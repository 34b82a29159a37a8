/* test_qemu_qmp.c - the qemu driver's QMP client against a fake QMP server
 * (a thread speaking the real protocol over a socketpair or a unix socket):
 * greeting and capabilities, commands with arguments and ids, HMP,
 * asynchronous events interleaved with replies, error classes, a late
 * reply after a timeout, a server that closes mid-reply, one that never
 * answers (timeout, no hang), one that never greets, malformed JSON, big
 * messages in pieces, concurrent callers, SO_PEERCRED, no SIGPIPE. */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/qemu/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, " \
                 "\"major\": 7}, \"package\": \"Debian\"}, \"capabilities\": [\"oob\"]}}\r\n"

/* ------------------------------------------------------------ fake server */

struct server {
    int fd;
    void (*script)(struct server *);
    pthread_t thread;
    char rbuf[1 << 16];
    size_t rlen;
    int failed;                     /* the script saw something wrong */
};

static void srv_send(struct server *s, const char *text)
{
    size_t n = strlen(text);
    while (n) {
        ssize_t w = send(s->fd, text, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        text += w;
        n -= (size_t)w;
    }
}

static void srv_sendf(struct server *s, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    srv_send(s, buf);
}

/* Next command from the client (NULL at EOF). */
static json_object *srv_recv(struct server *s)
{
    for (;;) {
        char *nl = memchr(s->rbuf, '\n', s->rlen);
        if (nl) {
            *nl = '\0';
            json_object *o = json_tokener_parse(s->rbuf);
            size_t used = (size_t)(nl - s->rbuf) + 1;
            memmove(s->rbuf, nl + 1, s->rlen - used);
            s->rlen -= used;
            if (!o)
                s->failed = 1;
            return o;
        }
        ssize_t r = recv(s->fd, s->rbuf + s->rlen, sizeof s->rbuf - s->rlen, 0);
        if (r <= 0)
            return NULL;
        s->rlen += (size_t)r;
    }
}

static const char *cmd_name(json_object *o)
{
    json_object *v;
    return json_object_object_get_ex(o, "execute", &v) ? json_object_get_string(v) : "";
}

static int64_t cmd_id(json_object *o)
{
    json_object *v;
    return json_object_object_get_ex(o, "id", &v) ? json_object_get_int64(v) : -1;
}

static json_object *cmd_arg(json_object *o, const char *key)
{
    json_object *a, *v;
    if (!json_object_object_get_ex(o, "arguments", &a) ||
        !json_object_object_get_ex(a, key, &v))
        return NULL;
    return v;
}

/* Greeting, then qmp_capabilities answered. */
static int srv_handshake(struct server *s)
{
    srv_send(s, GREETING);
    json_object *c = srv_recv(s);
    if (!c || strcmp(cmd_name(c), "qmp_capabilities") != 0) {
        s->failed = 1;
        json_object_put(c);
        return -1;
    }
    srv_sendf(s, "{\"return\": {}, \"id\": %lld}\r\n", (long long)cmd_id(c));
    json_object_put(c);
    return 0;
}

static void *srv_main(void *arg)
{
    struct server *s = arg;
    s->script(s);
    close(s->fd);
    return NULL;
}

/* A client connected over a socketpair to a server running script. */
static struct qmp *start(struct server *s, void (*script)(struct server *),
                         int timeout_ms, int expect_rc, char *err, size_t errlen)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    memset(s, 0, sizeof *s);
    s->fd = sv[1];
    s->script = script;
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    struct qmp *q = NULL;
    int rc = qmp_connect_fd(sv[0], timeout_ms, &q, err, errlen);
    assert_int_equal(rc, expect_rc);
    return q;
}

static void finish(struct server *s, struct qmp *q)
{
    qmp_close(q);
    pthread_join(s->thread, NULL);
    assert_int_equal(s->failed, 0);
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- scripts */

/* Answers: query-version; echo (returns its arguments) with events first
 * and a stale reply; hmp (returns the command line and cpu-index); fail
 * (GenericError); nocmd (CommandNotFound); quit (closes). */
static void script_basic(struct server *s)
{
    if (srv_handshake(s) < 0)
        return;
    json_object *c;
    while ((c = srv_recv(s))) {
        const char *n = cmd_name(c);
        long long id = (long long)cmd_id(c);
        if (strcmp(n, "query-version") == 0) {
            srv_sendf(s, "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
                         "\"major\": 7}, \"package\": \"\"}, \"id\": %lld}\r\n", id);
        } else if (strcmp(n, "echo") == 0) {
            json_object *a = NULL;
            json_object_object_get_ex(c, "arguments", &a);
            srv_send(s, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
                        "\"event\": \"STOP\"}\r\n");
            srv_sendf(s, "{\"return\": \"stale\", \"id\": %lld}\r\n", id + 1000);
            srv_send(s, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, "
                        "\"event\": \"RESUME\"}\r\n");
            srv_sendf(s, "{\"return\": %s, \"id\": %lld}\r\n",
                      a ? json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN)
                        : "{}", id);
        } else if (strcmp(n, "human-monitor-command") == 0) {
            json_object *cl = cmd_arg(c, "command-line"), *ci = cmd_arg(c, "cpu-index");
            json_object *r = json_object_new_object();
            char text[256];
            snprintf(text, sizeof text, "%s|cpu=%d\r\n",
                     cl ? json_object_get_string(cl) : "?", ci ? json_object_get_int(ci) : -1);
            json_object_object_add(r, "return", json_object_new_string(text));
            json_object_object_add(r, "id", json_object_new_int64(id));
            srv_sendf(s, "%s\r\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
            json_object_put(r);
        } else if (strcmp(n, "fail") == 0) {
            srv_sendf(s, "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", "
                         "\"desc\": \"it broke\"}}\r\n", id);
        } else if (strcmp(n, "nocmd") == 0) {
            srv_sendf(s, "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
                         "\"desc\": \"The command nocmd has not been found\"}}\r\n", id);
        } else if (strcmp(n, "quit") == 0) {
            srv_sendf(s, "{\"return\": {}, \"id\": %lld}\r\n", id);
            json_object_put(c);
            return;
        } else {
            s->failed = 1;
        }
        json_object_put(c);
    }
}

static void test_basic(void **state)
{
    (void)state;
    struct server s;
    char err[256] = "";
    struct qmp *q = start(&s, script_basic, 2000, 0, err, sizeof err);
    assert_non_null(q);
    json_object *ver = qmp_version(q);
    assert_non_null(ver);
    json_object *qv;
    assert_true(json_object_object_get_ex(ver, "qemu", &qv));

    json_object *ret = NULL;
    assert_int_equal(qmp_execute(q, "query-version", NULL, &ret, err, sizeof err), 0);
    assert_non_null(ret);
    json_object_put(ret);

    json_object *args = json_object_new_object();
    json_object_object_add(args, "val", json_object_new_int64(0x1234));
    json_object_object_add(args, "filename", json_object_new_string("a \"q\" b\n"));
    assert_int_equal(qmp_execute(q, "echo", args, &ret, err, sizeof err), 0);
    json_object *v;
    assert_true(json_object_object_get_ex(ret, "val", &v));
    assert_int_equal(json_object_get_int64(v), 0x1234);
    assert_true(json_object_object_get_ex(ret, "filename", &v));
    assert_string_equal(json_object_get_string(v), "a \"q\" b\n");
    json_object_put(ret);
    char ev[32];
    assert_int_equal(qmp_events(q, ev, sizeof ev), 2);
    assert_string_equal(ev, "RESUME");

    char *text = NULL;
    assert_int_equal(qmp_hmp(q, "info registers", 3, &text, err, sizeof err), 0);
    assert_string_equal(text, "info registers|cpu=3\r\n");
    free(text);
    assert_int_equal(qmp_hmp(q, "info mtree -f", -1, &text, err, sizeof err), 0);
    assert_string_equal(text, "info mtree -f|cpu=-1\r\n");
    free(text);

    assert_int_equal(qmp_execute(q, "fail", NULL, &ret, err, sizeof err), -EIO);
    assert_null(ret);
    assert_non_null(strstr(err, "it broke"));
    assert_int_equal(qmp_execute(q, "nocmd", NULL, NULL, err, sizeof err), -EOPNOTSUPP);
    assert_true(qmp_alive(q));

    /* quit: the server replies and closes; then everything is -ENODEV at
     * once, and sending to the closed socket raises no SIGPIPE. */
    assert_int_equal(qmp_execute(q, "quit", NULL, NULL, err, sizeof err), 0);
    pthread_join(s.thread, NULL);
    int64_t t0 = ms_now();
    int rc = qmp_execute(q, "query-version", NULL, &ret, err, sizeof err);
    assert_int_equal(rc, -ENODEV);
    assert_int_equal(qmp_execute(q, "query-version", NULL, &ret, err, sizeof err), -ENODEV);
    assert_true(ms_now() - t0 < 1000);
    assert_false(qmp_alive(q));
    qmp_close(q);
    assert_int_equal(s.failed, 0);
}

/* The reply arrives in pieces, then the server closes mid-reply. */
static void script_close_mid_reply(struct server *s)
{
    if (srv_handshake(s) < 0)
        return;
    json_object *c = srv_recv(s);
    srv_send(s, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n");
    srv_send(s, "{\"return\": {\"status\": \"runn");
    usleep(50 * 1000);
    json_object_put(c);
}

static void test_close_mid_reply(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    struct qmp *q = start(&s, script_close_mid_reply, 2000, 0, err, sizeof err);
    json_object *ret = NULL;
    int64_t t0 = ms_now();
    assert_int_equal(qmp_execute(q, "query-status", NULL, &ret, err, sizeof err), -ENODEV);
    assert_true(ms_now() - t0 < 1500);
    assert_null(ret);
    assert_non_null(strstr(err, "closed"));
    assert_false(qmp_alive(q));
    char *text = NULL;
    assert_int_equal(qmp_hmp(q, "info status", -1, &text, err, sizeof err), -ENODEV);
    assert_null(text);
    finish(&s, q);
}

/* Never answers the first command; answers the second after sending the
 * late reply of the first. */
static void script_slow(struct server *s)
{
    if (srv_handshake(s) < 0)
        return;
    json_object *c1 = srv_recv(s);
    json_object *c2 = srv_recv(s);  /* the client gave up on c1 */
    if (!c1 || !c2) {
        s->failed = 1;
    } else {
        srv_sendf(s, "{\"return\": \"late\", \"id\": %lld}\r\n", (long long)cmd_id(c1));
        srv_sendf(s, "{\"return\": \"second\", \"id\": %lld}\r\n", (long long)cmd_id(c2));
    }
    json_object_put(c1);
    json_object_put(c2);
    /* Third command: never answered, the connection stays open. */
    json_object *c3 = srv_recv(s);
    json_object_put(c3);
    json_object *c4 = srv_recv(s);  /* EOF when the client closes */
    json_object_put(c4);
}

static void test_timeout(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    struct qmp *q = start(&s, script_slow, 300, 0, err, sizeof err);
    json_object *ret = NULL;
    int64_t t0 = ms_now();
    assert_int_equal(qmp_execute(q, "query-status", NULL, &ret, err, sizeof err), -ETIMEDOUT);
    int64_t dt = ms_now() - t0;
    assert_true(dt >= 290 && dt < 2000);
    assert_non_null(strstr(err, "no reply"));
    assert_true(qmp_alive(q));
    /* The late reply to the first command is not taken for the second's. */
    assert_int_equal(qmp_execute(q, "query-status", NULL, &ret, err, sizeof err), 0);
    assert_string_equal(json_object_get_string(ret), "second");
    json_object_put(ret);
    qmp_set_timeout(q, 200);
    t0 = ms_now();
    assert_int_equal(qmp_execute(q, "stop", NULL, NULL, err, sizeof err), -ETIMEDOUT);
    dt = ms_now() - t0;
    assert_true(dt >= 190 && dt < 2000);
    finish(&s, q);
}

static void script_silent(struct server *s)
{
    /* Connected, but no greeting (another client holds QEMU's monitor). */
    json_object *c = srv_recv(s);
    json_object_put(c);
}

static void test_no_greeting(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    int64_t t0 = ms_now();
    struct qmp *q = start(&s, script_silent, 250, -ETIMEDOUT, err, sizeof err);
    assert_null(q);
    assert_true(ms_now() - t0 < 2000);
    assert_non_null(strstr(err, "greeting"));
    pthread_join(s.thread, NULL);
}

static void script_not_qmp(struct server *s)
{
    srv_send(s, "{\"hello\": 1}\n");
    json_object_put(srv_recv(s));
}

static void script_garbage(struct server *s)
{
    srv_send(s, "SSH-2.0-OpenSSH_9.2\r\n");
    json_object_put(srv_recv(s));
}

static void script_gone(struct server *s)
{
    (void)s;
}

static void script_bad_json(struct server *s)
{
    if (srv_handshake(s) < 0)
        return;
    json_object_put(srv_recv(s));
    srv_send(s, "{\"return\": {\"a\": }\r\n");
    json_object_put(srv_recv(s));
}

static void test_bad_peers(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    struct qmp *q = start(&s, script_not_qmp, 1000, -EIO, err, sizeof err);
    assert_null(q);
    assert_non_null(strstr(err, "greeting"));
    pthread_join(s.thread, NULL);

    q = start(&s, script_garbage, 1000, -EIO, err, sizeof err);
    assert_null(q);
    pthread_join(s.thread, NULL);

    q = start(&s, script_gone, 1000, -ENODEV, err, sizeof err);
    assert_null(q);
    pthread_join(s.thread, NULL);

    q = start(&s, script_bad_json, 1000, 0, err, sizeof err);
    assert_int_equal(qmp_execute(q, "query-status", NULL, NULL, err, sizeof err), -EIO);
    assert_non_null(strstr(err, "malformed"));
    /* The stream cannot be trusted after that. */
    assert_int_equal(qmp_execute(q, "query-status", NULL, NULL, err, sizeof err), -ENODEV);
    finish(&s, q);
}

/* A 3 MB reply sent in odd-sized pieces. */
static void script_big(struct server *s)
{
    if (srv_handshake(s) < 0)
        return;
    json_object *c = srv_recv(s);
    size_t n = 3u << 20;
    char *big = malloc(n + 128);
    int k = snprintf(big, 128, "{\"id\": %lld, \"return\": \"", (long long)cmd_id(c));
    for (size_t i = 0; i < n; i++)
        big[k + i] = (char)('a' + i % 26);
    strcpy(big + k + n, "\"}\r\n");
    size_t total = strlen(big), off = 0, step = 7777;
    while (off < total) {
        size_t m = total - off < step ? total - off : step;
        if (send(s->fd, big + off, m, MSG_NOSIGNAL) <= 0)
            break;
        off += m;
    }
    free(big);
    json_object_put(c);
    json_object_put(srv_recv(s));
}

static void test_big(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    struct qmp *q = start(&s, script_big, 5000, 0, err, sizeof err);
    json_object *ret = NULL;
    assert_int_equal(qmp_execute(q, "x", NULL, &ret, err, sizeof err), 0);
    assert_int_equal(json_object_get_string_len(ret), 3u << 20);
    assert_int_equal(json_object_get_string(ret)[26 * 1000 + 3], 'd');
    json_object_put(ret);
    finish(&s, q);
}

/* Several threads share one connection: each gets its own answer. */
struct caller {
    struct qmp *q;
    int n;
    int bad;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    char err[256];
    for (int i = 0; i < 200; i++) {
        json_object *args = json_object_new_object(), *ret = NULL, *v;
        json_object_object_add(args, "who", json_object_new_int(c->n * 1000 + i));
        if (qmp_execute(c->q, "echo", args, &ret, err, sizeof err) != 0 ||
            !json_object_object_get_ex(ret, "who", &v) ||
            json_object_get_int(v) != c->n * 1000 + i)
            c->bad++;
        json_object_put(ret);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    struct qmp *q = start(&s, script_basic, 5000, 0, err, sizeof err);
    pthread_t t[4];
    struct caller c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct caller){.q = q, .n = i};
        pthread_create(&t[i], NULL, caller_main, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].bad, 0);
    }
    assert_int_equal(qmp_events(q, NULL, 0), 4 * 200 * 2);
    assert_int_equal(qmp_execute(q, "quit", NULL, NULL, err, sizeof err), 0);
    finish(&s, q);
}

/* qmp_connect by path: a listening unix socket, SO_PEERCRED, a missing
 * socket, a socket nobody listens on. */
struct listener {
    int lfd;
    struct server s;
};

static void *accept_main(void *arg)
{
    struct listener *l = arg;
    l->s.fd = accept(l->lfd, NULL, NULL);
    if (l->s.fd < 0)
        return NULL;
    script_basic(&l->s);
    close(l->s.fd);
    return NULL;
}

static void test_connect_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmemfs-qmp-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/qmp.sock", dir);
    struct listener l;
    memset(&l, 0, sizeof l);
    l.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(l.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l.lfd, 1), 0);
    pthread_t t;
    pthread_create(&t, NULL, accept_main, &l);
    char err[256];
    struct qmp *q = NULL;
    assert_int_equal(qmp_connect(path, 2000, &q, err, sizeof err), 0);
    assert_int_equal(qmp_peer_pid(q), getpid());
    assert_int_equal(qmp_peer_uid(q), getuid());
    assert_int_equal(qmp_execute(q, "quit", NULL, NULL, err, sizeof err), 0);
    pthread_join(t, NULL);
    qmp_close(q);
    close(l.lfd);
    assert_int_equal(l.s.failed, 0);

    /* The socket file stays, nobody listens: refused, i.e. QEMU gone. */
    assert_int_equal(qmp_connect(path, 500, &q, err, sizeof err), -ENODEV);
    assert_non_null(strstr(err, path));
    unlink(path);
    assert_int_equal(qmp_connect(path, 500, &q, err, sizeof err), -ENOENT);
    rmdir(dir);

    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(qmp_connect(longp, 500, &q, err, sizeof err), -EINVAL);
}

int main(void)
{
    /* SIGPIPE stays at its default (fatal): the client must never raise it. */
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_close_mid_reply),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_no_greeting),
        cmocka_unit_test(test_bad_peers),
        cmocka_unit_test(test_big),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_connect_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
