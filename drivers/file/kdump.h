/*
 * kdump.h - kdump-compressed ("KDUMP   " / diskdump, plain or flattened)
 * page access: the backend behind a layout whose format is "kdump"
 * (format.h), and its functions for tests.  `base` must stay mapped while
 * the struct kdump lives.
 */
#ifndef VMEMFS_DRIVERS_FILE_KDUMP_H
#define VMEMFS_DRIVERS_FILE_KDUMP_H

#include "drivers/file/format.h"

struct kdump;
extern const struct dump_backend_ops kdump_backend;

/* RAM ranges the dump describes (pages present in memory at dump time),
 * derived from its bitmaps; owned by the kdump object. */
void kdump_ranges(struct kdump *kd, const struct vmem_range **out, size_t *n);
/* Read one 4 KiB frame: 0, -ENOENT (page not in the dump: filtered or not
 * RAM), -EIO (corrupt compressed data, or a compression the build lacks).
 * Thread-safe. */
int kdump_read_frame(struct kdump *kd, uint64_t gfn, void *buf);
/* The compression methods seen / supported, for info.json. */
const char *kdump_describe(struct kdump *kd);
void kdump_close(struct kdump *kd);

/* The kdump behind a layout, or NULL when it is another format. */
static inline struct kdump *dump_layout_kdump(const struct dump_layout *l)
{
    return l->backend == &kdump_backend ? (struct kdump *)l->backend_priv : NULL;
}

#endif
