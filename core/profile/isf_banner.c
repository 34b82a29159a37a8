/*
 * isf_banner.c - the banner of an ISF file (isf_read_banner, isf.h) read as
 * a stream: the file is decompressed (gzip, xz, or read as is) a window at
 * a time and never whole, and the walk stops at the banner.  A symbols
 * directory is a catalog of such banners, read at every start; a
 * decompression bomb placed there must cost a window, not gigabytes.
 *
 * The window is searched for the member name "linux_banner" followed by a
 * colon; the object after it (bounded) is handed to isf_banner_of_buffer as
 * a one-symbol document, so that it is judged by the same rules as a loaded
 * profile's.  A match that is not the symbol (a key of that name elsewhere,
 * an object without constant_data) is passed over.
 */
#include "core/util/file.h"
#include "core/profile/isf.h"

#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IN_CHUNK   (64u << 10)
#define WINDOW     (1u << 20)        /* decompressed bytes searched at once */
#define OBJ_MAX    (64u << 10)       /* the linux_banner object, at most */

enum codec { PLAIN, GZIP, XZ };

struct stream {
    int fd;
    enum codec codec;
    z_stream z;
    lzma_stream x;
    uint8_t in[IN_CHUNK];
    size_t in_len, in_pos;
    bool in_eof, out_end;
    uint64_t total;                 /* decompressed bytes so far */
    char why[160];
};

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int fill_in(struct stream *s)
{
    if (s->in_pos < s->in_len || s->in_eof)
        return 0;
    for (;;) {
        ssize_t r = read(s->fd, s->in, sizeof s->in);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(s->why, sizeof s->why, "%s", strerror(errno));
            return -1;
        }
        s->in_len = (size_t)r;
        s->in_pos = 0;
        s->in_eof = r == 0;
        return 0;
    }
}

/* Up to cap decompressed bytes into out: the count, 0 at the end, -1. */
static ssize_t stream_read(struct stream *s, uint8_t *out, size_t cap)
{
    size_t got = 0;
    while (got < cap && !s->out_end) {
        if (s->total + got >= ISF_MAX_DOCUMENT_SIZE) {
            snprintf(s->why, sizeof s->why, "decompresses to more than %zu bytes "
                     "without a linux_banner", ISF_MAX_DOCUMENT_SIZE);
            return -1;
        }
        if (fill_in(s) < 0)
            return -1;
        size_t avail = s->in_len - s->in_pos;
        if (s->codec == PLAIN) {
            if (s->in_eof) {
                s->out_end = true;
                break;
            }
            size_t n = avail < cap - got ? avail : cap - got;
            memcpy(out + got, s->in + s->in_pos, n);
            s->in_pos += n;
            got += n;
            continue;
        }
        if (s->codec == GZIP) {
            s->z.next_in = s->in + s->in_pos;
            s->z.avail_in = (uInt)avail;
            s->z.next_out = out + got;
            s->z.avail_out = (uInt)(cap - got);
            int r = inflate(&s->z, Z_NO_FLUSH);
            s->in_pos = s->in_len - s->z.avail_in;
            got = cap - s->z.avail_out;
            if (r == Z_STREAM_END)
                s->out_end = true;
            else if (r == Z_BUF_ERROR && s->in_eof) {
                snprintf(s->why, sizeof s->why, "gzip data is truncated");
                return -1;
            } else if (r != Z_OK && r != Z_BUF_ERROR) {
                snprintf(s->why, sizeof s->why, "gzip data is corrupt");
                return -1;
            }
            continue;
        }
        s->x.next_in = s->in + s->in_pos;
        s->x.avail_in = avail;
        s->x.next_out = out + got;
        s->x.avail_out = cap - got;
        lzma_ret r = lzma_code(&s->x, s->in_eof ? LZMA_FINISH : LZMA_RUN);
        s->in_pos = s->in_len - s->x.avail_in;
        got = cap - s->x.avail_out;
        if (r == LZMA_STREAM_END)
            s->out_end = true;
        else if (r == LZMA_BUF_ERROR && s->in_eof) {
            snprintf(s->why, sizeof s->why, "xz data is truncated");
            return -1;
        } else if (r != LZMA_OK && r != LZMA_BUF_ERROR) {
            snprintf(s->why, sizeof s->why, r == LZMA_MEMLIMIT_ERROR ||
                     r == LZMA_MEM_ERROR ? "xz data needs too much memory to decode"
                                         : "xz data is corrupt");
            return -1;
        }
    }
    s->total += got;
    return (ssize_t)got;
}

/* buf[0, n) starts right after the name "linux_banner": the banner of the
 * object after its colon, or NULL (not the symbol, or no constant_data). */
static char *banner_at(const char *buf, size_t n, const char *path, char *err,
                       size_t errlen)
{
    size_t i = 0;
    while (i < n && strchr(" \t\r\n", buf[i]))
        i++;
    if (i >= n || buf[i] != ':')
        return NULL;
    i++;
    while (i < n && strchr(" \t\r\n", buf[i]))
        i++;
    if (i >= n || buf[i] != '{')
        return NULL;
    /* The object's end: strings may hold braces, escapes may hold quotes. */
    size_t depth = 0, j = i;
    bool in_str = false;
    for (; j < n; j++) {
        char c = buf[j];
        if (in_str) {
            if (c == '\\')
                j++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{') {
            depth++;
        } else if (c == '}' && --depth == 0) {
            break;
        }
    }
    if (j >= n)
        return NULL;                /* longer than OBJ_MAX: not a symbol */
    static const char head[] = "{\"symbols\": {\"linux_banner\": ";
    size_t objlen = j + 1 - i, dl = sizeof head - 1 + objlen + 2;
    char *doc = malloc(dl + 1);
    if (!doc)
        return NULL;
    memcpy(doc, head, sizeof head - 1);
    memcpy(doc + sizeof head - 1, buf + i, objlen);
    memcpy(doc + sizeof head - 1 + objlen, "}}", 3);
    char e[256] = "";
    char *b = isf_banner_of_buffer(doc, dl, path, e, sizeof e);
    free(doc);
    if (!b && strstr(e, "constant_data\" is"))
        say(err, errlen, "%s", e);  /* the symbol, but malformed */
    return b;
}

char *isf_read_banner(const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd = vmem_open_regular(path, "an ISF", &st, err, errlen);
    if (fd < 0)
        return NULL;
    struct stream *s = calloc(1, sizeof *s);
    static const char name[] = "\"linux_banner\"";
    const size_t nl = sizeof name - 1;
    /* The window, and room after it to finish an object found near its end. */
    char *win = malloc(WINDOW + OBJ_MAX + 1);
    char *banner = NULL;
    if (!s || !win) {
        say(err, errlen, "%s: out of memory", path);
        goto out;
    }
    s->fd = fd;
    if (fill_in(s) < 0) {
        say(err, errlen, "%s: %s", path, s->why);
        goto out;
    }
    const uint8_t *m = s->in;
    if (s->in_len >= 6 && memcmp(m, "\xFD" "7zXZ\0", 6) == 0) {
        s->codec = XZ;
        lzma_stream init = LZMA_STREAM_INIT;
        s->x = init;
        if (lzma_stream_decoder(&s->x, (uint64_t)256 << 20, 0) != LZMA_OK) {
            say(err, errlen, "%s: cannot start the xz decoder", path);
            goto out;
        }
    } else if (s->in_len >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
        s->codec = GZIP;
        if (inflateInit2(&s->z, 15 + 16) != Z_OK) {
            say(err, errlen, "%s: cannot start the gzip decoder", path);
            s->codec = PLAIN;
            goto out;
        }
    } else if (s->in_len >= 3 && (memcmp(m, "BZh", 3) == 0 ||
                                  memcmp(m, "\x28\xb5\x2f\xfd", 4) == 0)) {
        say(err, errlen, "%s: bzip2- or zstd-compressed: not supported "
            "(recompress it with xz)", path);
        goto out;
    }
    size_t have = 0;
    bool first = true, end = false;
    err[0] = 0;
    while (!banner) {
        /* Top the window up to WINDOW + OBJ_MAX bytes. */
        while (!end && have < WINDOW + OBJ_MAX) {
            ssize_t r = stream_read(s, (uint8_t *)win + have, WINDOW + OBJ_MAX - have);
            if (r < 0) {
                say(err, errlen, "%s: %s", path, s->why);
                goto out;
            }
            if (r == 0)
                end = true;
            have += (size_t)r;
        }
        if (first) {
            size_t k = 0;
            while (k < have && strchr(" \t\r\n", win[k]))
                k++;
            if (k >= have || win[k] != '{') {
                say(err, errlen, "%s: not an ISF: the document is not a JSON "
                    "object", path);
                goto out;
            }
            first = false;
        }
        /* Matches starting in the first WINDOW bytes (all of them at the
         * end); each sees OBJ_MAX bytes after it. */
        size_t limit = end ? have : WINDOW;
        win[have] = 0;
        for (char *p = win; !banner;) {
            p = memmem(p, have - (size_t)(p - win), name, nl);
            if (!p || (size_t)(p - win) >= limit)
                break;
            size_t at = (size_t)(p - win) + nl;
            banner = banner_at(win + at, have - at, path, err, errlen);
            if (err[0])
                goto out;
            p += nl;
        }
        if (banner || end)
            break;
        /* Slide: keep what a match starting past `limit` needs. */
        memmove(win, win + limit, have - limit);
        have -= limit;
    }
    if (!banner)
        say(err, errlen, "%s: no linux_banner constant_data: the profile does "
            "not say which kernel it is for", path);
out:
    if (s && s->codec == GZIP)
        inflateEnd(&s->z);
    if (s && s->codec == XZ)
        lzma_end(&s->x);
    free(s);
    free(win);
    close(fd);
    return banner;
}
