/*
 * file.h - the file driver ("file:PATH"): a memory dump as a frame reader.
 * The format (raw, ELF core, LiME, kdump-compressed) is detected from the
 * content; format.h is the contract between this driver and each format's
 * parser.  Dumps are evidence: the driver never writes, whatever the flags.
 */
#ifndef VMEMFS_DRIVERS_FILE_FILE_H
#define VMEMFS_DRIVERS_FILE_FILE_H

#include <stddef.h>

#include "core/driver.h"

extern const struct vmem_driver_class file_driver_class;

/* Open the dump at path (the class's open, without flags): 0 and *out
 * filled, or -errno with one line in err naming the file and the problem. */
int file_driver_open(const char *path, struct vmem_driver *out, char *err,
                     size_t errlen);

#endif
