/*
 * main.c - the vmemfs command: options, opening every VM before mounting
 * (so a bad source fails loudly with a non-zero exit and nothing mounted),
 * then mount, daemonise and serve with libfuse's multi-threaded loop.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/phys/guard.h"
#include "core/util/log.h"
#include "core/util/version.h"
#include "drivers/registry.h"
#include "fs/fs.h"
#include "fs/watch.h"

#define MAX_SPECS 256
#define MAX_DISCOVERIES 32

/* A discovery asked for on the command line: --qemu-dir DIR, --libvirt
 * [NAME=]URI, --xen: the option names a driver class (registry.h). */
struct discover_arg {
    const char *option;             /* "qemu-dir", "libvirt", "xen" */
    char *arg;                      /* after NAME= when there is one */
    char *group;                    /* NAME, or NULL */
};

struct cmdline {
    char *vm_specs[MAX_SPECS];
    int nspecs;
    int writable;
    int allow_other;
    unsigned cache_mb;
    unsigned cache_ttl_ms;
    unsigned tasks_ttl_ms;
    char *symbols_dir;
    char *profile;
    struct discover_arg disc[MAX_DISCOVERIES];
    int ndisc;
    int freeze_on_open;
    int direct_io;
    int help, version;
    int bad;
};

enum { KEY_VM, KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER, KEY_QEMU_DIR, KEY_LIBVIRT,
       KEY_XEN };

#define CMD_OPT(t, p, v) {t, offsetof(struct cmdline, p), v}
static const struct fuse_opt cmd_opts[] = {
    FUSE_OPT_KEY("--vm ", KEY_VM),
    FUSE_OPT_KEY("--vm=", KEY_VM),
    CMD_OPT("rw", writable, 1),
    CMD_OPT("ro", writable, 0),
    CMD_OPT("--cache-mb=%u", cache_mb, 0),
    CMD_OPT("--cache-ttl-ms=%u", cache_ttl_ms, 0),
    CMD_OPT("--tasks-ttl-ms=%u", tasks_ttl_ms, 0),
    CMD_OPT("--symbols=%s", symbols_dir, 0),
    CMD_OPT("--symbols %s", symbols_dir, 0),
    CMD_OPT("--profile=%s", profile, 0),
    CMD_OPT("--freeze-on-open", freeze_on_open, 1),
    CMD_OPT("--direct-io", direct_io, 1),
    FUSE_OPT_KEY("--qemu-dir ", KEY_QEMU_DIR),
    FUSE_OPT_KEY("--qemu-dir=", KEY_QEMU_DIR),
    FUSE_OPT_KEY("--libvirt ", KEY_LIBVIRT),
    FUSE_OPT_KEY("--libvirt=", KEY_LIBVIRT),
    FUSE_OPT_KEY("--xen", KEY_XEN),
    CMD_OPT("--profile %s", profile, 0),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

/* The value of "--opt VALUE" / "--opt=VALUE" as fuse_opt hands it over. */
static const char *opt_value(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    const char *v = arg;
    if (strncmp(v, opt, n) == 0)
        v += n;
    if (*v == '=')
        v++;
    while (*v == ' ')
        v++;
    return v;
}

static int add_discovery(struct cmdline *c, const char *option, const char *value,
                         bool named)
{
    if (c->ndisc == MAX_DISCOVERIES) {
        fprintf(stderr, "vmemfs: too many discovery options (max %d)\n", MAX_DISCOVERIES);
        c->bad = 1;
        return 0;
    }
    struct discover_arg *d = &c->disc[c->ndisc++];
    d->option = option;
    /* [NAME=]URI: a URI has no '=' before its "://", a NAME has no ':'. */
    const char *eq = named ? strchr(value, '=') : NULL;
    if (eq && memchr(value, ':', (size_t)(eq - value)) == NULL) {
        d->group = strndup(value, (size_t)(eq - value));
        d->arg = strdup(eq + 1);
    } else {
        d->arg = strdup(value);
    }
    return 0;
}

static int cmd_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
    (void)out;
    struct cmdline *c = data;
    switch (key) {
    case KEY_QEMU_DIR:
        return add_discovery(c, "qemu-dir", opt_value(arg, "--qemu-dir"), false);
    case KEY_LIBVIRT:
        return add_discovery(c, "libvirt", opt_value(arg, "--libvirt"), true);
    case KEY_XEN:
        return add_discovery(c, "xen", "", false);
    case KEY_VM: {
        const char *v = arg;
        if (strncmp(v, "--vm=", 5) == 0)
            v += 5;
        else if (strncmp(v, "--vm", 4) == 0)
            v += 4;
        while (*v == ' ')
            v++;
        if (c->nspecs == MAX_SPECS) {
            fprintf(stderr, "vmemfs: too many --vm options (max %d)\n", MAX_SPECS);
            c->bad = 1;
            return 0;
        }
        c->vm_specs[c->nspecs++] = strdup(v);
        return 0;
    }
    case KEY_ALLOW_OTHER:
        c->allow_other = 1;
        return 1;                   /* libfuse needs it too */
    case KEY_HELP:
        c->help = 1;
        return 0;
    case KEY_VERSION:
        c->version = 1;
        return 0;
    }
    return 1;
}

static void usage(const char *prog)
{
    char specs[2048] = "", discoveries[1024] = "";
    size_t n, at = 0, dat = 0;
    const struct vmem_driver_class *const *c = vmem_driver_classes(&n);
    for (size_t i = 0; i < n; i++) {
        at += (size_t)snprintf(specs + at, at < sizeof specs ? sizeof specs - at : 0,
                               "    %-22s %s\n", c[i]->usage, c[i]->summary);
        if (c[i]->discover_usage)
            dat += (size_t)snprintf(discoveries + dat,
                                    dat < sizeof discoveries ? sizeof discoveries - dat : 0,
                                    "    %-22s %s\n", c[i]->discover_usage,
                                    c[i]->discover_summary ? c[i]->discover_summary : "");
    }
    printf(
"usage: %s MOUNTPOINT [options] --vm NAME=SPEC [--vm NAME=SPEC ...]\n"
"\n"
"Shows virtual-machine memory as files: MOUNTPOINT/NAME/{pmem,pmem.raw,\n"
"info.json,memmap,control} for each VM, and for Linux guests whose kernel\n"
"profile is found, proc/<pid>/{vmem,maps,status} and kernel/vmem.\n"
"\n"
"VM specs (the drivers built in):\n"
"%s"
"\n"
"VMs that come and go (repeatable; with NAME= a host's VMs go under NAME/):\n"
"%s"
"\n"
"vmemfs options:\n"
"    --vm NAME=SPEC         add a VM (repeatable); NAME: 1-64 of [A-Za-z0-9._-]\n"
"    --symbols DIR          Volatility 3 symbol files (ISF, .json/.xz/.gz) for\n"
"                           Linux guests, searched recursively, chosen by the\n"
"                           kernel banner found in memory (Volatility's own\n"
"                           symbols directory works as is)\n"
"    --profile FILE         use this ISF for every Linux guest, banner unchecked\n"
"                           (with neither, a profile is built from the guest's\n"
"                           own BTF and kallsyms when its kernel has them)\n"
"    --freeze-on-open       opening a live VM's pmem.raw pauses the guest until\n"
"                           the last handle closes: one consistent instant\n"
"    --direct-io            dumps' pmem.raw without the kernel page cache: a\n"
"                           first sequential read (cp, dd) is faster, repeated\n"
"                           reads (Volatility) slower; default: cached\n"
"    --cache-mb=N           page cache for slow sources, per VM (default 64)\n"
"    --cache-ttl-ms=N       validity of cached frames of live sources (default 1000)\n"
"    --tasks-ttl-ms=N       live guests: re-read the process list after (default 1000)\n"
"    -o ro                  read-only (the default)\n"
"    -o rw                  allow writes to guest memory where a driver can\n"
"    -o allow_other         let other users read the files (mode 0444;\n"
"                           default: only the mounting user)\n"
"    -f                     stay in the foreground (default: daemonise)\n"
"    -d                     debug output (implies -f)\n"
"    -s                     single-threaded (for debugging)\n"
"    -h, --help             this text;  -V, --version  the version\n"
"\n"
"Unmount with: fusermount3 -u MOUNTPOINT\n", prog, specs, discoveries);
    printf("\nlibfuse options:\n");
    fuse_lowlevel_help();
}

/* st_dev of the mount, from mountinfo: reading it does not enter our own
 * file system, which has no thread serving it yet. */
static void find_bdi(struct vmemfs *fs)
{
    char real[PATH_MAX];
    if (!realpath(fs->mountpoint, real))
        return;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        unsigned id, parent, maj, min;
        char root[PATH_MAX], mnt[PATH_MAX];
        if (sscanf(line, "%u %u %u:%u %4095s %4095s", &id, &parent, &maj, &min,
                   root, mnt) != 6)
            continue;
        if (strcmp(mnt, real) == 0 && strstr(line, " - fuse")) {
            snprintf(fs->bdi_path, sizeof fs->bdi_path,
                     "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct cmdline cmd = {.cache_mb = 64, .cache_ttl_ms = 1000, .tasks_ttl_ms = 1000};
    if (fuse_opt_parse(&args, &cmd, cmd_opts, cmd_proc) != 0 || cmd.bad)
        return 2;
    if (cmd.help) {
        usage(argv[0]);
        return 0;
    }
    if (cmd.version) {
        printf("vmemfs %s (libfuse %s)\n", VMEMFS_VERSION, fuse_pkgversion());
        return 0;
    }

    struct fuse_cmdline_opts fo;
    if (fuse_parse_cmdline(&args, &fo) != 0)
        return 2;
    if (!fo.mountpoint) {
        fprintf(stderr, "vmemfs: no mount point given (see --help)\n");
        return 2;
    }
    if (cmd.nspecs == 0 && cmd.ndisc == 0) {
        fprintf(stderr, "vmemfs: no VM given: add --vm NAME=SPEC or --qemu-dir DIR "
                "(see --help)\n");
        return 2;
    }
    for (int i = 0; i < cmd.ndisc; i++) {
        if (!vmem_driver_class_for_option(cmd.disc[i].option)) {
            fprintf(stderr, "vmemfs: --%s: this vmemfs was built without that driver "
                    "(built in: %s)\n", cmd.disc[i].option, vmem_driver_schemes());
            return 2;
        }
    }
    vmem_log_init(fo.debug);
    if (vmem_guard_init() != 0) {
        fprintf(stderr, "vmemfs: cannot install the SIGBUS handler\n");
        return 1;
    }

    static struct vmemfs fs;
    pthread_rwlock_init(&fs.lock, NULL);
    fs.opt.writable = cmd.writable;
    fs.opt.allow_other = cmd.allow_other;
    fs.opt.foreground = fo.foreground;
    fs.opt.freeze_on_open = cmd.freeze_on_open;
    fs.opt.direct_io = cmd.direct_io;
    fs.opt.debug = fo.debug;
    fs.mountpoint = fo.mountpoint;
    fs.started = time(NULL);
    fs.opt.os_opt.symbols_dir = cmd.symbols_dir;
    fs.opt.os_opt.profile = cmd.profile;
    fs.opt.os_opt.tasks_max_age_ns = (uint64_t)cmd.tasks_ttl_ms * 1000000ull;

    struct vm_options vo;
    vm_options_default(&vo);
    vo.cache_pages = (size_t)cmd.cache_mb * 256;
    vo.cache_ttl_ns = (uint64_t)cmd.cache_ttl_ms * 1000000ull;
    vo.writable = cmd.writable;

    int status = 1;
    for (int i = 0; i < cmd.nspecs; i++) {
        char *eq = strchr(cmd.vm_specs[i], '=');
        if (!eq) {
            fprintf(stderr, "vmemfs: --vm %s: expected NAME=SPEC, e.g. "
                    "--vm web1=file:/cases/web1.elf\n", cmd.vm_specs[i]);
            goto out;
        }
        *eq = 0;
        char err[512];
        struct vm *vm = vmem_vm_open(cmd.vm_specs[i], eq + 1, &vo, err, sizeof err);
        if (!vm) {
            fprintf(stderr, "vmemfs: %s\n", err);
            goto out;
        }
        struct fs_vm *fv = fs_vm_new(&fs, vm);
        if (!fv) {
            fprintf(stderr, "vmemfs: out of memory\n");
            goto out;
        }
        if (vmemfs_add_vm(&fs, NULL, fv) != 0) {
            fprintf(stderr, "vmemfs: VM name '%s' given twice\n", vm_name(fv->vm));
            fs_vm_put(fv);
            goto out;
        }
    }

    /* Not an ro mount even without -o rw: control must stay writable.
     * open() refuses writes to memory unless -o rw, and the text files
     * always.  allow_other gets the kernel's checks against our modes. */
    fuse_opt_add_arg(&args, "-ofsname=vmemfs,subtype=vmemfs");
    if (cmd.allow_other)
        fuse_opt_add_arg(&args, "-odefault_permissions");

    struct fuse_session *se = fuse_session_new(&args, &vmemfs_ops,
                                               sizeof vmemfs_ops, &fs);
    if (!se)
        goto out;
    if (fuse_set_signal_handlers(se) != 0)
        goto out_session;
    fs.se = se;
    if (fuse_session_mount(se, fo.mountpoint) != 0)
        goto out_signals;
    find_bdi(&fs);
    if (fuse_daemonize(fo.foreground) != 0)
        goto out_unmount;
    if (!fo.foreground)
        vmem_log_to_syslog();

    /* After daemonising: a thread does not survive fork. */
    struct vmemfs_watch *watch = vmemfs_watch_start(&fs, &vo);
    if (!watch) {
        vmem_log(LOG_ERR, "cannot start the VM watcher thread");
        goto out_unmount;
    }
    for (int i = 0; i < cmd.ndisc; i++) {
        char err[512] = "";
        const struct discover_arg *d = &cmd.disc[i];
        if (vmemfs_watch_discover(watch, vmem_driver_class_for_option(d->option),
                                  d->group, d->arg, err, sizeof err) < 0) {
            vmem_log(LOG_ERR, "--%s %s%s%s: %s", d->option, d->group ? d->group : "",
                     d->group ? "=" : "", d->arg, err);
            vmemfs_watch_stop(watch);
            goto out_unmount;
        }
    }
    if (fo.singlethread) {
        status = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(lc, fo.clone_fd);
        fuse_loop_cfg_set_max_threads(lc, fo.max_threads ? fo.max_threads : 16);
        fuse_loop_cfg_set_idle_threads(lc, fo.max_idle_threads != UINT_MAX
                                           ? fo.max_idle_threads : 8);
        status = fuse_session_loop_mt(se, lc);
        fuse_loop_cfg_destroy(lc);
    }
    /* libfuse reports the signal that ended the loop as its status: a
     * SIGTERM, SIGINT or SIGHUP is the asked-for clean end. */
    status = (status == 0 || status == SIGTERM || status == SIGINT ||
              status == SIGHUP) ? 0 : 1;
    vmemfs_watch_stop(watch);
    vmemfs_release_open_files(&fs);
out_unmount:
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out_session:
    fuse_session_destroy(se);
out:
    for (size_t i = 0; i < fs.nslots; i++)
        if (fs.slots[i])
            fs_vm_put(fs.slots[i]);
    for (int i = 0; i < cmd.nspecs; i++)
        free(cmd.vm_specs[i]);
    free(fo.mountpoint);
    free(cmd.symbols_dir);
    free(cmd.profile);
    for (int i = 0; i < cmd.ndisc; i++) {
        free(cmd.disc[i].arg);
        free(cmd.disc[i].group);
    }
    fuse_opt_free_args(&args);
    return status;
}
