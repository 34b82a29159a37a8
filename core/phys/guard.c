/*
 * guard.c - SIGBUS on a truncated mapping becomes -EIO for the operation.
 *
 * sigsetjmp(env, 0) does not save the signal mask (no syscall per guarded
 * call); the handler is installed with SA_NODEFER so SIGBUS is not left
 * blocked after we jump out of it.
 */
#include "core/phys/guard.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static __thread sigjmp_buf *guard_env;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    (void)si;
    (void)uctx;
    sigjmp_buf *env = guard_env;
    if (env)
        siglongjmp(*env, 1);   /* the guarded caller restores guard_env */
    /* Not ours: die as the default action would. */
    signal(sig, SIG_DFL);
    raise(sig);
}

int vmem_guard_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGBUS, &sa, NULL) == 0 ? 0 : -errno;
}

int vmem_guard_copy(void *dst, const void *src, size_t n)
{
    sigjmp_buf env;
    sigjmp_buf *volatile outer = guard_env;   /* nesting: restore on exit */
    if (sigsetjmp(env, 0)) {
        guard_env = outer;
        return -EIO;
    }
    guard_env = &env;
    memcpy(dst, src, n);
    guard_env = outer;
    return 0;
}

int vmem_guard_run(int (*fn)(void *arg), void *arg)
{
    sigjmp_buf env;
    sigjmp_buf *volatile outer = guard_env;   /* nesting: restore on exit */
    if (sigsetjmp(env, 0)) {
        guard_env = outer;
        return -EIO;
    }
    guard_env = &env;
    int rc = fn(arg);
    guard_env = outer;
    return rc;
}
