/*
 * sbuf.h - a growable text buffer for the files vmemfs renders (maps,
 * status, info.json's pieces).  Out of memory is sticky: every later call is
 * a no-op and sb_finish returns NULL, so renderers check once, at the end.
 */
#ifndef VMEMFS_CORE_UTIL_SBUF_H
#define VMEMFS_CORE_UTIL_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

void sb_reserve(struct sbuf *b, size_t more);
void sb_put(struct sbuf *b, const char *s, size_t n);
__attribute__((format(printf, 2, 3)))
void sb_printf(struct sbuf *b, const char *fmt, ...);
/* The text (malloc'd, NUL-terminated, never NULL for an empty buffer) and
 * its length, or NULL after an allocation failure (the buffer is freed). */
char *sb_finish(struct sbuf *b, size_t *len);

#endif
