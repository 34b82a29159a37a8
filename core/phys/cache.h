/*
 * cache.h - the page cache for frames that are expensive to fetch
 * (decompressed kdump pages, remote peeks, foreign maps).
 *
 * Thread-safe and bounded: frames are spread over shards by gfn, each shard
 * a hash index plus a CLOCK ring of fixed capacity, under its own mutex.
 * Entries older than the validity window (ttl) are misses, so memory that
 * changes under a live guest is never served staler than that; ttl 0 means
 * forever (an immutable dump).  Sources with a direct mapping bypass it.
 */
#ifndef VMEMFS_CORE_CACHE_H
#define VMEMFS_CORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct vmem_cache;

struct vmem_cache_stats {
    uint64_t hits, misses, expired, inserts, evictions;
    size_t capacity_pages, used_pages;
};

/* max_pages is rounded up to a multiple of the shard count.  NULL on ENOMEM. */
struct vmem_cache *vmem_cache_new(size_t max_pages, uint64_t ttl_ns);
void vmem_cache_free(struct vmem_cache *c);

/* Copy frame gfn into buf (4 KiB) if cached and fresh: 1 hit, 0 miss. */
int vmem_cache_get(struct vmem_cache *c, uint64_t gfn, void *buf);
/* Is frame gfn cached and fresh?  No copy, not counted in the figures: for
 * readahead, deciding what not to fetch again. */
int vmem_cache_contains(struct vmem_cache *c, uint64_t gfn);
/* Insert or refresh frame gfn from buf (4 KiB), evicting if full. */
void vmem_cache_put(struct vmem_cache *c, uint64_t gfn, const void *buf);
/* Drop frame gfn if cached (it was written). */
void vmem_cache_forget(struct vmem_cache *c, uint64_t gfn);
/* Drop every entry (the guest resumed, or the user asked). */
void vmem_cache_flush(struct vmem_cache *c);
void vmem_cache_stats(struct vmem_cache *c, struct vmem_cache_stats *out);

#endif
