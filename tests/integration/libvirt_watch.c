/*
 * libvirt_watch.c - runs the libvirt driver's discovery (the class's
 * discover_start/stop, exactly as the mount does) against a URI and prints
 * what it announces, one line each, flushed:
 *     found NAME SPEC
 *     lost NAME
 * t_libvirt.sh starts and destroys domains and restarts libvirtd around it
 * and checks the lines.  Stops cleanly (discover_stop) on SIGTERM/SIGINT
 * and prints "stopped".
 *
 *     libvirt_watch [NAME=]URI
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/util/log.h"
#include "drivers/libvirt/libvirt.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void found(void *ctx, const char *name, const char *spec)
{
    (void)ctx;
    pthread_mutex_lock(&out_lock);
    printf("found %s %s\n", name, spec);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void lost(void *ctx, const char *name)
{
    (void)ctx;
    pthread_mutex_lock(&out_lock);
    printf("lost %s\n", name);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s [NAME=]URI\n", argv[0]);
        return 2;
    }
    vmem_log_init(false);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);     /* threads inherit it */

    const struct vmem_driver_class *cls = &libvirt_driver_class;
    struct vmem_discovery_sink sink = {.ctx = NULL, .found = found, .lost = lost};
    struct vmem_discovery *d;
    char err[512];
    if (cls->discover_start(argv[1], &sink, &d, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("started\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    cls->discover_stop(d);
    printf("stopped\n");
    return 0;
}
