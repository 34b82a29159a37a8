/*
 * log.h - the daemon's one way to say something: to stderr while in the
 * foreground (or before daemonising), to syslog afterwards.  Messages name
 * the operation, the VM and the guest address where there is one.
 */
#ifndef VMEMFS_CORE_LOG_H
#define VMEMFS_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

void vmem_log_init(bool debug);
/* After daemonising: from now on messages go to syslog. */
void vmem_log_to_syslog(void);
void vmem_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rate-limited variant for per-read errors a hostile or dying source can
 * produce thousands of times a second: at most a few lines per second per
 * call site (key), then a count of what was suppressed. */
void vmem_log_ratelimited(const void *key, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line into a caller's message buffer (buf may be NULL or len 0: then
 * nothing), for functions that answer -errno and say why in err[errlen]. */
void vmem_errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
