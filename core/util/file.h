/*
 * file.h - opening the files a user names (dumps, profiles, symbol lists)
 * without letting one hold the start: a FIFO or a device given by mistake
 * (or by someone who can place one) must never block in open() or read().
 */
#ifndef VMEMFS_CORE_UTIL_FILE_H
#define VMEMFS_CORE_UTIL_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/* Open path read-only, non-blocking, and accept only a regular file: the
 * fd (close-on-exec) with *st filled, or -errno with one line in err
 * ("PATH: cannot open: ...", "PATH: not a regular file (a FIFO): WHAT must
 * be one"; WHAT: "a dump", "an ISF", ...). */
int vmem_open_regular(const char *path, const char *what, struct stat *st,
                      char *err, size_t errlen);

#endif
