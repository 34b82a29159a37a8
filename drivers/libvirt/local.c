/*
 * local.c - local QEMU domains through the qemu driver's fast paths: guest
 * RAM by zero-copy mmap of a shared memory-backend file (or memfd, through
 * /proc/PID/map_files), otherwise from the QEMU process's memory.
 *
 * libvirt owns the QEMU monitor of its domains, so the qemu driver gets a
 * monitor (drivers/qemu/monitor.h) that passes its QMP commands through
 * virDomainQemuMonitorCommand: never a second connection to the socket
 * libvirt holds.  libvirt then marks the domain tainted "custom-monitor"
 * (one line in its log, `virsh dominfo` unchanged): the commands sent are
 * queries (query-memdev, qom-get, info mtree, info ramblock, xp, info
 * registers), but libvirt cannot know that.
 *
 * The QEMU pid comes from libvirt's own state (/run/libvirt/qemu/DOM.pid
 * for qemu:///system, $XDG_RUNTIME_DIR/libvirt/qemu/run/DOM.pid for the
 * session daemon) and is validated before use: /proc/PID/exe is a QEMU
 * system emulator, and its command line names this domain (-name
 * guest=DOM) and its UUID (-uuid).  The qemu driver then pins it with a
 * pidfd.
 *
 * pause/resume go through libvirt (virDomainSuspend/Resume), so that
 * libvirt and virsh know the state; everything else is the qemu driver's.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>

#include "core/util/log.h"
#include "drivers/libvirt/libvirt.h"
#include "drivers/qemu/monitor.h"
#include "drivers/qemu/qemu.h"

/* ------------------------------------------------------------ monitor */

struct lv_monitor {
    struct qemu_monitor base;       /* first: monitor.h's rule */
    struct lv_dom *d;               /* owned by the lv_local instance */
    pid_t pid;
};

static int mon_execute(struct qemu_monitor *m, const char *cmd, json_object *args,
                       json_object **ret, char *err, size_t errlen)
{
    struct lv_monitor *lm = (struct lv_monitor *)m;
    json_object *req = json_object_new_object();
    if (!req) {
        json_object_put(args);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    json_object_object_add(req, "execute", json_object_new_string(cmd));
    if (args)
        json_object_object_add(req, "arguments", args);
    int rc;
    virDomainPtr dom = lv_dom_get(lm->d, &rc);
    if (!dom) {
        json_object_put(req);
        snprintf(err, errlen, "libvirt: domain '%s': %s", lm->d->name,
                 rc == -ENODEV ? "has gone" : "libvirtd cannot be reached");
        return rc;
    }
    char *reply = NULL;
    const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    if (virDomainQemuMonitorCommand(dom, text, &reply, 0) < 0) {
        snprintf(err, errlen, "libvirt: domain '%s': monitor passthrough of %s: %s",
                 lm->d->name, cmd, lv_errmsg());
        lv_dom_failed(lm->d, "monitor passthrough");
        rc = lv_dom_gone(lm->d) ? -ENODEV : -EIO;
    } else {
        json_object *j = json_tokener_parse(reply), *v, *cls, *desc;
        if (j && json_object_object_get_ex(j, "return", &v)) {
            if (ret)
                *ret = json_object_get(v);
            rc = 0;
        } else if (j && json_object_object_get_ex(j, "error", &v)) {
            const char *c = json_object_object_get_ex(v, "class", &cls)
                                ? json_object_get_string(cls) : "";
            snprintf(err, errlen, "%s: %s", cmd,
                     json_object_object_get_ex(v, "desc", &desc)
                         ? json_object_get_string(desc) : "QMP error");
            rc = strcmp(c, "CommandNotFound") == 0  ? -EOPNOTSUPP
                 : strcmp(c, "DeviceNotFound") == 0 ? -ENOENT
                                                     : -EIO;
        } else {
            snprintf(err, errlen, "%s: malformed reply from the monitor passthrough", cmd);
            rc = -EIO;
        }
        json_object_put(j);
    }
    free(reply);
    virDomainFree(dom);
    json_object_put(req);
    return rc;
}

static pid_t mon_pid(struct qemu_monitor *m)
{
    return ((struct lv_monitor *)m)->pid;
}

static bool mon_alive(struct qemu_monitor *m)
{
    return !lv_dom_gone(((struct lv_monitor *)m)->d);
}

static void mon_close(struct qemu_monitor *m)
{
    free(m);
}

static const struct qemu_monitor_ops lv_monitor_ops = {
    .execute = mon_execute,
    .pid = mon_pid,
    .alive = mon_alive,
    .close = mon_close,
};

/* ------------------------------------------------------------ the pid */

static char *slurp(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = 0;
    while (buf && n < max) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

/* The QEMU pid libvirt recorded for domain d, validated; 0 or -errno with
 * err. */
static int qemu_pid_of(struct lv_dom *d, pid_t *out, char *err, size_t errlen)
{
    char path[300];
    if (strchr(d->name, '/') || d->name[0] == '.') {
        snprintf(err, errlen, "domain name '%s' is not a file name", d->name);
        return -EINVAL;
    }
    if (strstr(d->uri, "/session")) {
        const char *rt = getenv("XDG_RUNTIME_DIR");
        if (!rt) {
            snprintf(err, errlen, "no XDG_RUNTIME_DIR for the session daemon's state");
            return -ENOENT;
        }
        snprintf(path, sizeof path, "%s/libvirt/qemu/run/%s.pid", rt, d->name);
    } else {
        snprintf(path, sizeof path, "/run/libvirt/qemu/%s.pid", d->name);
    }
    size_t len;
    char *text = slurp(path, 32, &len);
    char *end;
    long pid = text ? strtol(text, &end, 10) : 0;
    bool ok = text && end != text && pid > 1 && pid < (1L << 22);
    free(text);
    if (!ok) {
        snprintf(err, errlen, "no QEMU pid in %s", path);
        return -ENOENT;
    }
    /* The executable: a QEMU system emulator. */
    char exe[300], link[64];
    snprintf(link, sizeof link, "/proc/%ld/exe", pid);
    ssize_t n = readlink(link, exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(err, errlen, "pid %ld (from %s) is not a process we can see", pid, path);
        return -ESRCH;
    }
    exe[n] = 0;
    const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    if (strncmp(base, "qemu-system-", 12) != 0 && strncmp(base, "qemu-kvm", 8) != 0) {
        snprintf(err, errlen, "pid %ld (from %s) runs %s, not QEMU", pid, path, exe);
        return -EACCES;
    }
    /* Its command line: -name guest=DOM[,...] and -uuid UUID. */
    snprintf(link, sizeof link, "/proc/%ld/cmdline", pid);
    char *cmd = slurp(link, 1 << 20, &len);
    bool name_ok = false, uuid_ok = false;
    char want_name[300];
    snprintf(want_name, sizeof want_name, "guest=%s", d->name);
    size_t wl = strlen(want_name);
    for (size_t i = 0; cmd && i < len;) {
        const char *arg = cmd + i;
        size_t al = strlen(arg);
        const char *next = i + al + 1 < len ? arg + al + 1 : "";
        if (strcmp(arg, "-name") == 0 &&
            (strcmp(next, d->name) == 0 ||
             (strncmp(next, want_name, wl) == 0 && (next[wl] == 0 || next[wl] == ','))))
            name_ok = true;
        if (strcmp(arg, "-uuid") == 0 && strcasecmp(next, d->uuid_str) == 0)
            uuid_ok = true;
        i += al + 1;
    }
    free(cmd);
    if (!name_ok || !uuid_ok) {
        snprintf(err, errlen, "pid %ld (from %s): its command line does not name domain "
                 "'%s' (uuid %s)", pid, path, d->name, d->uuid_str);
        return -EACCES;
    }
    *out = (pid_t)pid;
    return 0;
}

/* ------------------------------------------------------------ the instance */

struct lv_local {
    struct lv_dom *d;
    struct vmem_driver inner;       /* the qemu driver */
    struct vmem_driver_ops ops;     /* inner's operations, wrapped */
};

#define INNER(drv) (&((struct lv_local *)(drv))->inner)

static int loc_ranges(void *drv, const struct vmem_range **out, size_t *n)
{
    return vmem_drv_ranges(INNER(drv), out, n);
}
static int loc_refresh(void *drv)
{
    return vmem_drv_refresh(INNER(drv));
}
static void *loc_map(void *drv, uint64_t gpa, size_t len)
{
    return vmem_drv_map(INNER(drv), gpa, len);
}
static void loc_prefetch(void *drv, uint64_t gpa, size_t len)
{
    vmem_drv_prefetch(INNER(drv), gpa, len);
}
static int loc_read_frames(void *drv, const uint64_t *gfns, void *const *bufs, int *status,
                           size_t n)
{
    return vmem_drv_read_frames(INNER(drv), gfns, bufs, status, n);
}
static int loc_write_frames(void *drv, const uint64_t *gfns, const void *const *bufs,
                            int *status, size_t n)
{
    return vmem_drv_write_frames(INNER(drv), gfns, bufs, status, n);
}
static ssize_t loc_write(void *drv, uint64_t gpa, const void *buf, size_t len)
{
    return vmem_drv_write(INNER(drv), gpa, buf, len);
}
static int loc_vcpu_count(void *drv)
{
    return vmem_drv_vcpu_count(INNER(drv));
}
static int loc_vcpu_state(void *drv, unsigned cpu, struct vmem_vcpu *out)
{
    return vmem_drv_vcpu_state(INNER(drv), cpu, out);
}
static int loc_pause(void *drv)
{
    return lv_dom_run_state(((struct lv_local *)drv)->d, true);
}
static int loc_resume(void *drv)
{
    return lv_dom_run_state(((struct lv_local *)drv)->d, false);
}
static bool loc_gone(void *drv)
{
    return lv_dom_gone(((struct lv_local *)drv)->d) || vmem_drv_gone(INNER(drv));
}
static void loc_describe(void *drv, json_object *out)
{
    struct lv_local *L = drv;
    lv_dom_describe(L->d, out);
    vmem_drv_describe(&L->inner, out);
}
static void loc_close(void *drv)
{
    struct lv_local *L = drv;
    vmem_drv_close(&L->inner);      /* closes the monitor too */
    lv_dom_close(L->d);
    free(L);
}

int lv_local_attach(struct lv_dom *d, unsigned flags, struct vmem_driver *out, char *err,
                    size_t errlen)
{
    pid_t pid;
    char perr[1200];
    int rc = qemu_pid_of(d, &pid, perr, sizeof perr);
    if (rc < 0) {
        snprintf(err, errlen, "libvirt: domain '%s' on %s: %s", d->name, d->uri, perr);
        return rc;
    }
    struct lv_local *L = calloc(1, sizeof *L);
    struct lv_monitor *m = calloc(1, sizeof *m);
    if (!L || !m) {
        free(L);
        free(m);
        snprintf(err, errlen, "libvirt: out of memory");
        return -ENOMEM;
    }
    m->base.ops = &lv_monitor_ops;
    m->d = d;
    m->pid = pid;
    char qerr[400];
    rc = qemu_driver_open_monitor(&m->base, pid, flags, &L->inner, qerr, sizeof qerr);
    if (rc < 0) {
        free(L);
        snprintf(err, errlen, "libvirt: domain '%s' on %s: local QEMU (pid %d): %s", d->name,
                 d->uri, (int)pid, qerr);
        return rc;
    }
    L->d = d;
    const struct vmem_driver_ops *in = L->inner.ops;
    L->ops = (struct vmem_driver_ops){
        .name = "libvirt",
        .ranges = loc_ranges,
        .refresh = in->refresh ? loc_refresh : NULL,
        .map = in->map ? loc_map : NULL,
        .prefetch = in->prefetch ? loc_prefetch : NULL,
        .read_frames = loc_read_frames,
        .write_frames = in->write_frames ? loc_write_frames : NULL,
        .write = in->write ? loc_write : NULL,
        .vcpu_count = in->vcpu_count ? loc_vcpu_count : NULL,
        .vcpu_state = in->vcpu_state ? loc_vcpu_state : NULL,
        .pause = loc_pause,
        .resume = loc_resume,
        .gone = loc_gone,
        .describe = loc_describe,
        .close = loc_close,
    };
    out->ops = &L->ops;
    out->priv = L;
    out->caps = L->inner.caps;
    vmem_log(LOG_INFO, "libvirt: domain '%s': local QEMU pid %d, through the monitor "
             "passthrough (libvirt marks the domain tainted \"custom-monitor\")",
             d->name, (int)pid);
    return 0;
}
