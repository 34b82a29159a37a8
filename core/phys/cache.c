/*
 * cache.c - sharded, bounded, time-validated frame cache (see cache.h).
 *
 * Each shard owns `cap` slots.  A slot is found through a chained hash on
 * gfn (index arrays, no per-entry allocation), and replaced by CLOCK: the
 * hand sweeps slots, sparing once those read since its last pass.  Copies
 * happen under the shard lock; a 4 KiB memcpy is far cheaper than the
 * FUSE round trip around it, and it keeps readers from seeing a half
 * overwritten frame.
 */
#include "core/phys/cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/driver.h"

#define SHARDS 16
#define NIL UINT32_MAX

struct shard {
    pthread_mutex_t lock;
    uint32_t cap, used, hand, nbuckets;
    uint32_t *bucket;       /* nbuckets heads */
    uint32_t *next;         /* cap: chain links */
    uint64_t *gfn;          /* cap */
    uint64_t *stamp;        /* cap: insertion time, ns */
    uint8_t *ref;           /* cap: CLOCK reference bit */
    uint8_t *valid;         /* cap */
    uint8_t *data;          /* cap * 4 KiB */
    uint64_t hits, misses, expired, inserts, evictions;
};

struct vmem_cache {
    uint64_t ttl_ns;
    struct shard shard[SHARDS];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint32_t hash_gfn(uint64_t gfn)
{
    gfn *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(gfn >> 32);
}

/* Shard by low gfn bits so a sequential run spreads over all shards. */
static inline struct shard *shard_of(struct vmem_cache *c, uint64_t gfn)
{
    return &c->shard[gfn % SHARDS];
}

struct vmem_cache *vmem_cache_new(size_t max_pages, uint64_t ttl_ns)
{
    struct vmem_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ttl_ns = ttl_ns;
    uint32_t per = (uint32_t)((max_pages + SHARDS - 1) / SHARDS);
    if (per < 4)
        per = 4;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shard[i];
        pthread_mutex_init(&s->lock, NULL);
        s->cap = per;
        s->nbuckets = 1;
        while (s->nbuckets < per * 2)
            s->nbuckets <<= 1;
        s->bucket = malloc(sizeof(uint32_t) * s->nbuckets);
        s->next = calloc(per, sizeof(uint32_t));
        s->gfn = calloc(per, sizeof(uint64_t));
        s->stamp = calloc(per, sizeof(uint64_t));
        s->ref = calloc(per, 1);
        s->valid = calloc(per, 1);
        s->data = malloc((size_t)per * VMEM_PAGE_SIZE);
        if (!s->bucket || !s->next || !s->gfn || !s->stamp || !s->ref ||
            !s->valid || !s->data) {
            vmem_cache_free(c);
            return NULL;
        }
        memset(s->bucket, 0xff, sizeof(uint32_t) * s->nbuckets);
    }
    return c;
}

void vmem_cache_free(struct vmem_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shard[i];
        free(s->bucket);
        free(s->next);
        free(s->gfn);
        free(s->stamp);
        free(s->ref);
        free(s->valid);
        free(s->data);
        pthread_mutex_destroy(&s->lock);
    }
    free(c);
}

static uint32_t lookup(struct shard *s, uint64_t gfn)
{
    uint32_t i = s->bucket[hash_gfn(gfn) & (s->nbuckets - 1)];
    while (i != NIL && s->gfn[i] != gfn)
        i = s->next[i];
    return i;
}

static void unlink_slot(struct shard *s, uint32_t slot)
{
    uint32_t *link = &s->bucket[hash_gfn(s->gfn[slot]) & (s->nbuckets - 1)];
    while (*link != NIL && *link != slot)
        link = &s->next[*link];
    if (*link == slot)
        *link = s->next[slot];
    s->valid[slot] = 0;
    s->used--;
}

int vmem_cache_get(struct vmem_cache *c, uint64_t gfn, void *buf)
{
    struct shard *s = shard_of(c, gfn);
    int hit = 0;
    pthread_mutex_lock(&s->lock);
    uint32_t i = lookup(s, gfn);
    if (i != NIL) {
        if (c->ttl_ns && now_ns() - s->stamp[i] > c->ttl_ns) {
            unlink_slot(s, i);
            s->expired++;
            s->misses++;
        } else {
            memcpy(buf, s->data + (size_t)i * VMEM_PAGE_SIZE, VMEM_PAGE_SIZE);
            s->ref[i] = 1;
            s->hits++;
            hit = 1;
        }
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->lock);
    return hit;
}

int vmem_cache_contains(struct vmem_cache *c, uint64_t gfn)
{
    struct shard *s = shard_of(c, gfn);
    pthread_mutex_lock(&s->lock);
    uint32_t i = lookup(s, gfn);
    int fresh = i != NIL && !(c->ttl_ns && now_ns() - s->stamp[i] > c->ttl_ns);
    pthread_mutex_unlock(&s->lock);
    return fresh;
}

void vmem_cache_put(struct vmem_cache *c, uint64_t gfn, const void *buf)
{
    struct shard *s = shard_of(c, gfn);
    uint64_t stamp = c->ttl_ns ? now_ns() : 0;
    pthread_mutex_lock(&s->lock);
    uint32_t i = lookup(s, gfn);
    if (i == NIL) {
        /* CLOCK: find a free slot or one not referenced since last pass.
         * Two sweeps at most: the first clears every reference bit. */
        for (uint32_t step = 0; step < 2 * s->cap + 1; step++) {
            uint32_t h = s->hand;
            s->hand = (s->hand + 1) % s->cap;
            if (!s->valid[h]) {
                i = h;
                break;
            }
            if (s->ref[h]) {
                s->ref[h] = 0;
                continue;
            }
            unlink_slot(s, h);
            s->evictions++;
            i = h;
            break;
        }
        s->gfn[i] = gfn;
        s->valid[i] = 1;
        s->used++;
        uint32_t *head = &s->bucket[hash_gfn(gfn) & (s->nbuckets - 1)];
        s->next[i] = *head;
        *head = i;
        s->inserts++;
    }
    memcpy(s->data + (size_t)i * VMEM_PAGE_SIZE, buf, VMEM_PAGE_SIZE);
    s->stamp[i] = stamp;
    s->ref[i] = 0;
    pthread_mutex_unlock(&s->lock);
}

void vmem_cache_forget(struct vmem_cache *c, uint64_t gfn)
{
    struct shard *s = shard_of(c, gfn);
    pthread_mutex_lock(&s->lock);
    uint32_t i = lookup(s, gfn);
    if (i != NIL)
        unlink_slot(s, i);
    pthread_mutex_unlock(&s->lock);
}

void vmem_cache_flush(struct vmem_cache *c)
{
    for (int k = 0; k < SHARDS; k++) {
        struct shard *s = &c->shard[k];
        pthread_mutex_lock(&s->lock);
        memset(s->bucket, 0xff, sizeof(uint32_t) * s->nbuckets);
        memset(s->valid, 0, s->cap);
        memset(s->ref, 0, s->cap);
        s->used = 0;
        pthread_mutex_unlock(&s->lock);
    }
}

void vmem_cache_stats(struct vmem_cache *c, struct vmem_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < SHARDS; k++) {
        struct shard *s = &c->shard[k];
        pthread_mutex_lock(&s->lock);
        out->hits += s->hits;
        out->misses += s->misses;
        out->expired += s->expired;
        out->inserts += s->inserts;
        out->evictions += s->evictions;
        out->capacity_pages += s->cap;
        out->used_pages += s->used;
        pthread_mutex_unlock(&s->lock);
    }
}
