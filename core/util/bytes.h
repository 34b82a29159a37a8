/*
 * bytes.h - unaligned little- and big-endian loads and stores, the one set
 * every parser of guest and file data uses (no type punning, no alignment
 * assumptions: the bytes come from dumps and guests).
 */
#ifndef VMEMFS_CORE_UTIL_BYTES_H
#define VMEMFS_CORE_UTIL_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t vmem_ld_le16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t vmem_ld_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}
static inline uint64_t vmem_ld_le64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)vmem_ld_le32(b) | (uint64_t)vmem_ld_le32(b + 4) << 32;
}
static inline uint16_t vmem_ld_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t vmem_ld_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           (uint32_t)b[3];
}
static inline uint64_t vmem_ld_be64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)vmem_ld_be32(b) << 32 | (uint64_t)vmem_ld_be32(b + 4);
}
static inline void vmem_st_le32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24);
}
static inline void vmem_st_le64(void *p, uint64_t v)
{
    vmem_st_le32(p, (uint32_t)v);
    vmem_st_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif
