/*
 * raw.c - raw (flat) images: byte o of the file is guest-physical address o.
 * Padded images are raw images whose holes happen to be zeros; nothing in
 * the file says where the holes were, so the whole file is one range.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/format.h"

int dump_parse_raw(const uint8_t *base, size_t size, struct dump_layout *out,
                   char *err, size_t errlen)
{
    (void)base;
    memset(out, 0, sizeof *out);
    out->format = "raw";
    out->segs = calloc(1, sizeof *out->segs);
    if (!out->segs) {
        snprintf(err, errlen, "raw: out of memory");
        return -ENOMEM;
    }
    out->segs[0] = (struct dump_segment){.gpa = 0, .len = size, .file_off = 0,
                                         .kind = VMEM_RANGE_RAM};
    out->nsegs = 1;
    snprintf(out->detail, sizeof out->detail, "raw image, %zu bytes", size);
    return 0;
}
