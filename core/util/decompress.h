/*
 * decompress.h - every decompressor vmemfs uses, in one place: whole
 * streams (ISF files: xz, gzip; kernel images: lz4, lzma, xz, gzip, zstd)
 * and single blocks (kdump-compressed pages: zlib, lzo, snappy, zstd).
 *
 * Owns: recognising a codec by its magic, decoding with a bound on the
 * output (the input is hostile: a few bytes may claim gigabytes), and one
 * message naming what is wrong.  Does not own: what the bytes mean.
 * Codecs the build lacks (lzo, snappy, zstd are optional) are recognised
 * and refused with a message saying so, never mistaken for raw data.
 */
#ifndef VMEMFS_CORE_UTIL_DECOMPRESS_H
#define VMEMFS_CORE_UTIL_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>

enum vmem_codec {
    VMEM_CODEC_NONE = 0,        /* not compressed (no known magic) */
    VMEM_CODEC_XZ,
    VMEM_CODEC_LZMA,            /* legacy .lzma ("lzma alone") */
    VMEM_CODEC_GZIP,
    VMEM_CODEC_LZ4_LEGACY,      /* the framing the kernel's lz4 images use */
    VMEM_CODEC_ZSTD,
    VMEM_CODEC_BZIP2,           /* recognised, not supported */
    VMEM_CODEC_LZOP,            /* recognised, not supported */
};

/* The codec of a stream from its first bytes.  The legacy lzma header has
 * no magic: it is recognised by its usual properties byte and dictionary
 * size only when allow_lzma is set (kernel images; never for ISF files). */
enum vmem_codec vmem_codec_detect(const void *in, size_t len, bool allow_lzma);
const char *vmem_codec_name(enum vmem_codec c);

/* Flags of vmem_decompress. */
#define VMEM_DECOMP_PREFIX 0x1u /* stop quietly after max_out bytes: for
                                   peeking at a header (an ISF's banner)
                                   without unpacking the whole stream */

/* Decompress one stream of codec c (what follows its end, such as a kernel
 * image's appended size, is ignored).  1 with *out (malloc'd) and *outlen,
 * or -errno with why set: -EINVAL corrupt, truncated, more than max_out
 * bytes (unless VMEM_DECOMP_PREFIX) or out of memory; -ENOTSUP a codec this
 * build lacks or never supports. */
int vmem_decompress(enum vmem_codec c, const void *in, size_t len, size_t max_out,
                    unsigned flags, void **out, size_t *outlen, char *why,
                    size_t whylen);

/* Block codecs of kdump-compressed dumps. */
enum vmem_block_codec {
    VMEM_BLOCK_ZLIB,
    VMEM_BLOCK_LZO,
    VMEM_BLOCK_SNAPPY,
    VMEM_BLOCK_ZSTD,
};
/* Is this block codec built in? */
bool vmem_block_codec_built(enum vmem_block_codec c);
/* Decode one block of exactly dlen bytes into dst: 0, or -EIO when the
 * data is corrupt, decodes to another length, or the codec is not built. */
int vmem_decompress_block(enum vmem_block_codec c, const void *src, size_t slen,
                          void *dst, size_t dlen);

#endif
