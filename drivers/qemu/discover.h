/*
 * discover.h - the qemu driver's discovery (--qemu-dir DIR): every QMP
 * socket in a directory is a VM, found when it appears and lost when it is
 * removed (discover.c).  The entry points are those of struct
 * vmem_driver_class (core/driver.h); qemu_driver_class (qemu.h) tables
 * them.  Also the question the QMP monitor asks (qmp_monitor.c): is this
 * directory watched, so that its stricter rules apply to a socket in it?
 */
#ifndef VMEMFS_DRIVERS_QEMU_DISCOVER_H
#define VMEMFS_DRIVERS_QEMU_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/driver.h"

/* Watch `dir` (see vmem_driver_class.discover_start): one thread scans it,
 * then follows inotify.  A file is announced as found(NAME, "qemu:PATH")
 * when it is a socket (lstat: a symlink is never followed), owned by root
 * or by the mounting user, its name gives a valid VM name (web1.qmp ->
 * web1: .qmp, .sock, .socket stripped), and something listens on it (QEMU
 * binds its socket a moment before it listens: a refused connection is
 * tried again for a few seconds).  Files that fail a check are skipped with
 * one log line. */
int qemu_discover_start(const char *dir, const struct vmem_discovery_sink *sink,
                        struct vmem_discovery **out, char *err, size_t errlen);
void qemu_discover_stop(struct vmem_discovery *d);

/* VM name for a socket's file name; false when it gives no valid name. */
bool qemu_socket_vm_name(const char *file, char *name, size_t len);

/* Is `dir` (a canonical path, as realpath gives) watched by a running
 * discovery?  Its sockets then follow the rules above whoever opens them:
 * no symlink, owner root or the mounting user. */
bool qemu_dir_watched(const char *dir);

#endif
