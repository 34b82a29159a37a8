/*
 * log.c - stderr or syslog output, with a small rate limiter so a guest or a
 * failing source cannot flood the log through per-read errors.
 */
#include "core/util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static bool log_debug;
static atomic_bool log_syslog;

void vmem_log_init(bool debug)
{
    log_debug = debug;
}

void vmem_log_to_syslog(void)
{
    openlog("vmemfs", LOG_PID, LOG_DAEMON);
    atomic_store(&log_syslog, true);
}

static void vlog(int level, const char *fmt, va_list ap)
{
    if (level == LOG_DEBUG && !log_debug)
        return;
    if (atomic_load(&log_syslog)) {
        vsyslog(level, fmt, ap);
        return;
    }
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "vmemfs: %s\n", line);
}

void vmem_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

/* A tiny table of call sites: key -> (second, count). Collisions only make
 * two sites share a budget, which is harmless. */
#define RL_SLOTS 64
#define RL_PER_SECOND 5
static struct {
    const void *key;
    time_t second;
    unsigned count;
} rl_table[RL_SLOTS];
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;

void vmem_log_ratelimited(const void *key, int level, const char *fmt, ...)
{
    time_t now = time(NULL);
    unsigned suppressed = 0;
    bool emit;
    size_t slot = ((uintptr_t)key >> 4) % RL_SLOTS;

    pthread_mutex_lock(&rl_lock);
    if (rl_table[slot].key != key || rl_table[slot].second != now) {
        if (rl_table[slot].key == key && rl_table[slot].count > RL_PER_SECOND)
            suppressed = rl_table[slot].count - RL_PER_SECOND;
        rl_table[slot].key = key;
        rl_table[slot].second = now;
        rl_table[slot].count = 0;
    }
    emit = ++rl_table[slot].count <= RL_PER_SECOND;
    pthread_mutex_unlock(&rl_lock);

    if (suppressed)
        vmem_log(level, "(%u similar messages suppressed)", suppressed);
    if (emit) {
        va_list ap;
        va_start(ap, fmt);
        vlog(level, fmt, ap);
        va_end(ap);
    }
}

void vmem_errf(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
