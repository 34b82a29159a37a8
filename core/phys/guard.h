/*
 * guard.h - reading memory that may vanish under us.
 *
 * A dump file is mmap'd; if it is truncated while mounted, touching the lost
 * pages raises SIGBUS.  Code that reads driver mappings itself (a copy into a
 * reply buffer, a page-table read, a decompression) runs under the guard,
 * which turns that SIGBUS into -EIO for that one operation: the daemon keeps
 * serving everything else.  A SIGBUS outside a guarded section is a real bug
 * and still kills the process.
 */
#ifndef VMEMFS_CORE_GUARD_H
#define VMEMFS_CORE_GUARD_H

#include <stddef.h>

/* Install the SIGBUS handler; once, before any guarded call. 0 or -errno. */
int vmem_guard_init(void);
/* memcpy that returns -EIO instead of dying if src is a lost file page. */
int vmem_guard_copy(void *dst, const void *src, size_t n);
/* Run fn(arg) guarded: its return value, or -EIO if it hit SIGBUS.  fn must
 * not hold locks or own allocations across the faulting access (it is
 * abandoned mid-way, like a longjmp). */
int vmem_guard_run(int (*fn)(void *arg), void *arg);

#endif
