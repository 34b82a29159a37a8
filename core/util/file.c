/*
 * file.c - opening user-named files safely (see file.h).
 */
#include "core/util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/util/log.h"

static const char *kind_of(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) || S_ISBLK(m) ? "a device"
         : S_ISSOCK(m) ? "a socket" : S_ISDIR(m) ? "a directory" : "not a file";
}

int vmem_open_regular(const char *path, const char *what, struct stat *st,
                      char *err, size_t errlen)
{
    /* O_NONBLOCK has no effect on the regular file that is all we accept. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        vmem_errf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        vmem_errf(err, errlen, "%s: not a regular file (%s): %s must be one", path,
                  kind_of(st->st_mode), what);
        close(fd);
        return -EINVAL;
    }
    return fd;
}
