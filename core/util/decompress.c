/*
 * decompress.c - the decompressors (see decompress.h).
 */
#include "core/util/decompress.h"

#include <errno.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef HAVE_LZO2
#include <lzo/lzo1x.h>
#include <pthread.h>
#endif
#ifdef HAVE_SNAPPY
#include <snappy-c.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

#include "core/util/bytes.h"

#define LZ4_LEGACY_MAGIC 0x184C2102u

static void say(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

enum vmem_codec vmem_codec_detect(const void *in_, size_t len, bool allow_lzma)
{
    const uint8_t *in = in_;
    if (len >= 6 && memcmp(in, "\xFD" "7zXZ\0", 6) == 0)
        return VMEM_CODEC_XZ;
    if (len >= 2 && in[0] == 0x1f && in[1] == 0x8b)
        return VMEM_CODEC_GZIP;
    if (len >= 4 && vmem_ld_le32(in) == LZ4_LEGACY_MAGIC)
        return VMEM_CODEC_LZ4_LEGACY;
    if (len >= 4 && memcmp(in, "\x28\xb5\x2f\xfd", 4) == 0)
        return VMEM_CODEC_ZSTD;
    if (len >= 3 && memcmp(in, "BZh", 3) == 0)
        return VMEM_CODEC_BZIP2;
    if (len >= 4 && memcmp(in, "\x89LZO", 4) == 0)
        return VMEM_CODEC_LZOP;
    if (allow_lzma && len >= 13 && in[0] == 0x5d && in[1] == 0 && in[2] == 0 &&
        (in[12] == 0 || in[12] == 0xff))
        return VMEM_CODEC_LZMA;
    return VMEM_CODEC_NONE;
}

const char *vmem_codec_name(enum vmem_codec c)
{
    static const char *const names[] = {"none", "xz", "lzma", "gzip", "lz4",
                                        "zstd", "bzip2", "lzo"};
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "unknown";
}

static int grow_out(uint8_t **out, size_t *cap, size_t max_out)
{
    if (*cap >= max_out)
        return -1;
    size_t nc = *cap > max_out / 2 ? max_out : *cap * 2;
    uint8_t *q = realloc(*out, nc);
    if (!q)
        return -1;
    *out = q;
    *cap = nc;
    return 0;
}

static int unlzma(const void *in_, size_t inlen, size_t max_out, int legacy,
                  bool prefix, void **out, size_t *outlen, char *why, size_t whylen)
{
    const uint8_t *in = in_;
    lzma_stream s = LZMA_STREAM_INIT;
    const char *fmt = legacy ? "lzma" : "xz";
    /* One stream; whatever follows it (a kernel image's appended size) is
     * ignored. */
    lzma_ret started = legacy ? lzma_alone_decoder(&s, (uint64_t)256 << 20)
                              : lzma_stream_decoder(&s, (uint64_t)256 << 20, 0);
    if (started != LZMA_OK) {
        say(why, whylen, "cannot start the %s decoder", fmt);
        return -1;
    }
    size_t cap = inlen < max_out / 8 ? inlen * 8 : max_out;
    if (cap < 65536)
        cap = max_out < 65536 ? max_out : 65536;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        lzma_end(&s);
        say(why, whylen, "out of memory");
        return -1;
    }
    s.next_in = in;
    s.avail_in = inlen;
    s.next_out = buf;
    s.avail_out = cap;
    for (;;) {
        if (s.avail_out == 0) {
            size_t used = cap;
            if (prefix && cap >= max_out)
                break;
            if (grow_out(&buf, &cap, max_out) != 0) {
                say(why, whylen, "%s data decompresses to more than %zu bytes",
                    fmt, max_out);
                goto fail;
            }
            s.next_out = buf + used;
            s.avail_out = cap - used;
        }
        lzma_ret r = lzma_code(&s, LZMA_FINISH);
        if (r == LZMA_STREAM_END)
            break;
        if (r == LZMA_OK)
            continue;
        switch (r) {
        case LZMA_BUF_ERROR:
            say(why, whylen, "%s data is truncated", fmt);
            break;
        case LZMA_MEM_ERROR:
        case LZMA_MEMLIMIT_ERROR:
            say(why, whylen, "%s data needs too much memory to decode", fmt);
            break;
        case LZMA_OPTIONS_ERROR:
            say(why, whylen, "%s data uses unsupported options", fmt);
            break;
        default:
            say(why, whylen, "%s data is corrupt", fmt);
            break;
        }
        goto fail;
    }
    *outlen = cap - s.avail_out;
    *out = buf;
    lzma_end(&s);
    return 1;
fail:
    free(buf);
    lzma_end(&s);
    return -1;
}

static int ungzip(const uint8_t *in, size_t inlen, size_t max_out, bool prefix,
                  void **out, size_t *outlen, char *why, size_t whylen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        say(why, whylen, "cannot start the gzip decoder");
        return -1;
    }
    size_t cap = inlen < max_out / 8 ? inlen * 8 : max_out;
    if (cap < 65536)
        cap = max_out < 65536 ? max_out : 65536;
    uint8_t *buf = malloc(cap ? cap : 1);
    size_t used = 0, in_off = 0;
    if (!buf) {
        inflateEnd(&z);
        say(why, whylen, "out of memory");
        return -1;
    }
    for (;;) {
        if (prefix && used >= max_out)
            break;
        if (used == cap && grow_out(&buf, &cap, max_out) != 0) {
            say(why, whylen, "gzip data decompresses to more than %zu bytes",
                max_out);
            goto fail;
        }
        size_t in_chunk = inlen - in_off > 1u << 30 ? 1u << 30 : inlen - in_off;
        size_t out_chunk = cap - used > 1u << 30 ? 1u << 30 : cap - used;
        z.next_in = (Bytef *)(in + in_off);
        z.avail_in = (uInt)in_chunk;
        z.next_out = buf + used;
        z.avail_out = (uInt)out_chunk;
        int r = inflate(&z, Z_NO_FLUSH);
        in_off += in_chunk - z.avail_in;
        used += out_chunk - z.avail_out;
        if (r == Z_STREAM_END)
            break;
        if (r == Z_OK)
            continue;
        if (r == Z_BUF_ERROR && in_off < inlen)
            continue;           /* only needed more room */
        if (r == Z_BUF_ERROR)
            say(why, whylen, "gzip data is truncated");
        else if (r == Z_MEM_ERROR)
            say(why, whylen, "out of memory");
        else
            say(why, whylen, "gzip data is corrupt (%s)",
                z.msg ? z.msg : "bad stream");
        goto fail;
    }
    inflateEnd(&z);
    *out = buf;
    *outlen = used;
    return 1;
fail:
    inflateEnd(&z);
    free(buf);
    return -1;
}

/* One LZ4 block into dst[dcap]; *dlen bytes produced.  -1 when corrupt. */
static int lz4_block(const uint8_t *src, size_t n, uint8_t *dst, size_t dcap,
                     size_t *dlen)
{
    size_t ip = 0, op = 0;
    for (;;) {
        if (ip >= n)
            return -1;
        unsigned token = src[ip++];
        size_t lit = token >> 4;
        if (lit == 15) {
            unsigned b;
            do {
                if (ip >= n)
                    return -1;
                b = src[ip++];
                lit += b;
            } while (b == 255 && lit < n);
        }
        if (lit > n - ip || lit > dcap - op)
            return -1;
        memcpy(dst + op, src + ip, lit);
        ip += lit;
        op += lit;
        if (ip == n)
            break;              /* the last sequence has literals only */
        if (n - ip < 2)
            return -1;
        size_t off = vmem_ld_le16(src + ip);
        ip += 2;
        if (off == 0 || off > op)
            return -1;
        size_t ml = token & 15;
        if (ml == 15) {
            unsigned b;
            do {
                if (ip >= n)
                    return -1;
                b = src[ip++];
                ml += b;
            } while (b == 255 && ml < dcap);
        }
        ml += 4;
        if (ml > dcap - op)
            return -1;
        uint8_t *d = dst + op;
        const uint8_t *m = d - off;
        if (off >= ml)
            memcpy(d, m, ml);
        else
            for (size_t i = 0; i < ml; i++)
                d[i] = m[i];
        op += ml;
    }
    *dlen = op;
    return 0;
}

#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_LEGACY_BLOCK ((size_t)8 << 20)

/* The LZ4 "legacy" framing the kernel uses: magic, then blocks of
 * (le32 compressed size, data) each unpacking to at most 8 MiB.  Stops at
 * a size that cannot be a block (the appended uncompressed size). */
static int unlz4_legacy(const uint8_t *in, size_t len, size_t max_out,
                        void **out, size_t *outlen, char *why, size_t whylen)
{
    size_t pos = 4, used = 0, cap = 0, blocks = 0;
    uint8_t *buf = NULL;
    while (len - pos >= 4) {
        uint32_t csize = vmem_ld_le32(in + pos);
        if (csize == LZ4_LEGACY_MAGIC) {
            pos += 4;
            continue;
        }
        if (csize == 0 || csize > len - pos - 4)
            break;
        pos += 4;
        if (used + LZ4_LEGACY_BLOCK > cap) {
            if (used + LZ4_LEGACY_BLOCK > max_out) {
                say(why, whylen, "lz4 data unpacks to more than %zu bytes",
                    max_out);
                goto fail;
            }
            size_t nc = cap ? cap * 2 : 16 << 20;
            while (nc < used + LZ4_LEGACY_BLOCK)
                nc *= 2;
            if (nc > max_out)
                nc = max_out;
            uint8_t *q = realloc(buf, nc);
            if (!q) {
                say(why, whylen, "out of memory");
                goto fail;
            }
            buf = q;
            cap = nc;
        }
        size_t got;
        if (lz4_block(in + pos, csize, buf + used, LZ4_LEGACY_BLOCK, &got) != 0) {
            say(why, whylen, "lz4 block %zu at byte %zu is corrupt", blocks,
                pos);
            goto fail;
        }
        used += got;
        pos += csize;
        blocks++;
    }
    if (!blocks) {
        say(why, whylen, "lz4 data holds no block");
        goto fail;
    }
    *out = buf;
    *outlen = used;
    return 1;
fail:
    free(buf);
    return -1;
}

#ifdef HAVE_ZSTD
/* One zstd frame (what follows it, the appended size, is ignored). */
static int unzstd(const uint8_t *in, size_t len, size_t max_out, void **out,
                  size_t *outlen, char *why, size_t whylen)
{
    ZSTD_DStream *z = ZSTD_createDStream();
    size_t cap = 16 << 20, used = 0;
    uint8_t *buf = malloc(cap);
    if (!z || !buf) {
        say(why, whylen, "out of memory");
        goto fail;
    }
    /* The default window limit (2^27) is what `zstd -22 --ultra`, the
     * kernel's, needs; a hostile frame asking for more is refused rather
     * than given gigabytes. */
    ZSTD_inBuffer ib = {in, len, 0};
    for (;;) {
        if (used == cap) {
            if (cap >= max_out) {
                say(why, whylen, "zstd data unpacks to more than %zu bytes",
                    max_out);
                goto fail;
            }
            size_t nc = cap * 2 > max_out ? max_out : cap * 2;
            uint8_t *q = realloc(buf, nc);
            if (!q) {
                say(why, whylen, "out of memory");
                goto fail;
            }
            buf = q;
            cap = nc;
        }
        ZSTD_outBuffer ob = {buf, cap, used};
        size_t r = ZSTD_decompressStream(z, &ob, &ib);
        used = ob.pos;
        if (ZSTD_isError(r)) {
            say(why, whylen, "zstd data is corrupt (%s)", ZSTD_getErrorName(r));
            goto fail;
        }
        if (r == 0)
            break;              /* the frame is complete */
        if (ib.pos == ib.size && ob.pos < ob.size) {
            say(why, whylen, "zstd data is truncated");
            goto fail;
        }
    }
    ZSTD_freeDStream(z);
    *out = buf;
    *outlen = used;
    return 1;
fail:
    ZSTD_freeDStream(z);
    free(buf);
    return -1;
}
#endif

int vmem_decompress(enum vmem_codec c, const void *in, size_t len, size_t max_out,
                    unsigned flags, void **out, size_t *outlen, char *why,
                    size_t whylen)
{
    bool prefix = flags & VMEM_DECOMP_PREFIX;
    int rc;
    switch (c) {
    case VMEM_CODEC_XZ:
        rc = unlzma(in, len, max_out, 0, prefix, out, outlen, why, whylen);
        break;
    case VMEM_CODEC_LZMA:
        rc = unlzma(in, len, max_out, 1, prefix, out, outlen, why, whylen);
        break;
    case VMEM_CODEC_GZIP:
        rc = ungzip(in, len, max_out, prefix, out, outlen, why, whylen);
        break;
    case VMEM_CODEC_LZ4_LEGACY:
        rc = unlz4_legacy(in, len, max_out, out, outlen, why, whylen);
        break;
    case VMEM_CODEC_ZSTD:
#ifdef HAVE_ZSTD
        rc = unzstd(in, len, max_out, out, outlen, why, whylen);
        break;
#else
        say(why, whylen, "zstd-compressed (vmemfs was built without libzstd): "
            "not supported here; unpack it first");
        return -ENOTSUP;
#endif
    case VMEM_CODEC_NONE:
        say(why, whylen, "not compressed");
        return -EINVAL;
    default:
        say(why, whylen, "%s-compressed: not supported here; unpack it first",
            vmem_codec_name(c));
        return -ENOTSUP;
    }
    /* The decoders say what went wrong in why; the caller gets -errno. */
    return rc < 0 ? -EINVAL : 1;
}

/* ---- block codecs (kdump pages) ------------------------------------------ */

#ifdef HAVE_LZO2
static pthread_once_t lzo_once = PTHREAD_ONCE_INIT;
static int lzo_ready;
static void lzo_setup(void)
{
    lzo_ready = lzo_init() == LZO_E_OK;
}
#endif

bool vmem_block_codec_built(enum vmem_block_codec c)
{
    switch (c) {
    case VMEM_BLOCK_ZLIB:
        return true;
#ifdef HAVE_LZO2
    case VMEM_BLOCK_LZO:
        return true;
#endif
#ifdef HAVE_SNAPPY
    case VMEM_BLOCK_SNAPPY:
        return true;
#endif
#ifdef HAVE_ZSTD
    case VMEM_BLOCK_ZSTD:
        return true;
#endif
    default:
        return false;
    }
}

int vmem_decompress_block(enum vmem_block_codec c, const void *src, size_t slen,
                          void *dst, size_t dlen)
{
    switch (c) {
    case VMEM_BLOCK_ZLIB: {
        uLongf out = (uLongf)dlen;
        if (uncompress(dst, &out, src, (uLong)slen) != Z_OK || out != dlen)
            return -EIO;
        return 0;
    }
#ifdef HAVE_LZO2
    case VMEM_BLOCK_LZO: {
        pthread_once(&lzo_once, lzo_setup);
        lzo_uint out = dlen;
        if (!lzo_ready ||
            lzo1x_decompress_safe(src, (lzo_uint)slen, dst, &out, NULL) != LZO_E_OK ||
            out != dlen)
            return -EIO;
        return 0;
    }
#endif
#ifdef HAVE_SNAPPY
    case VMEM_BLOCK_SNAPPY: {
        size_t out = 0;
        if (snappy_uncompressed_length(src, slen, &out) != SNAPPY_OK || out != dlen)
            return -EIO;
        out = dlen;
        if (snappy_uncompress(src, slen, dst, &out) != SNAPPY_OK || out != dlen)
            return -EIO;
        return 0;
    }
#endif
#ifdef HAVE_ZSTD
    case VMEM_BLOCK_ZSTD: {
        size_t out = ZSTD_decompress(dst, dlen, src, slen);
        if (ZSTD_isError(out) || out != dlen)
            return -EIO;
        return 0;
    }
#endif
    default:
        return -EIO;            /* a codec this build lacks */
    }
}
