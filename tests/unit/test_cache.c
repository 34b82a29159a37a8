/* test_cache.c - the page cache: hits, bounded size and eviction, the
 * validity window, flush, and concurrent use (run under ASan/TSan-clean
 * locking: readers must never see a torn frame). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/phys/cache.h"
#include "core/driver.h"

static void fill(uint8_t *p, uint64_t gfn)
{
    for (size_t i = 0; i < VMEM_PAGE_SIZE; i += 8)
        memcpy(p + i, &gfn, 8);
}

static int check(const uint8_t *p, uint64_t gfn)
{
    for (size_t i = 0; i < VMEM_PAGE_SIZE; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (v != gfn)
            return 0;
    }
    return 1;
}

static void test_hit_miss(void **state)
{
    (void)state;
    struct vmem_cache *c = vmem_cache_new(64, 0);
    uint8_t in[VMEM_PAGE_SIZE], out[VMEM_PAGE_SIZE];
    assert_int_equal(vmem_cache_get(c, 7, out), 0);
    assert_int_equal(vmem_cache_contains(c, 7), 0);
    fill(in, 7);
    vmem_cache_put(c, 7, in);
    assert_int_equal(vmem_cache_contains(c, 7), 1);
    assert_int_equal(vmem_cache_get(c, 7, out), 1);
    assert_true(check(out, 7));
    /* Refresh replaces the contents. */
    fill(in, 99);
    vmem_cache_put(c, 7, in);
    assert_int_equal(vmem_cache_get(c, 7, out), 1);
    assert_true(check(out, 99));
    struct vmem_cache_stats st;
    vmem_cache_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.used_pages, 1);
    vmem_cache_forget(c, 7);
    assert_int_equal(vmem_cache_get(c, 7, out), 0);
    vmem_cache_put(c, 7, in);
    vmem_cache_flush(c);
    assert_int_equal(vmem_cache_get(c, 7, out), 0);
    vmem_cache_free(c);
}

static void test_bounded_eviction(void **state)
{
    (void)state;
    struct vmem_cache *c = vmem_cache_new(64, 0);
    uint8_t buf[VMEM_PAGE_SIZE];
    struct vmem_cache_stats st;
    vmem_cache_stats(c, &st);
    size_t cap = st.capacity_pages;
    assert_true(cap >= 64);
    for (uint64_t g = 0; g < 10 * cap; g++) {
        fill(buf, g);
        vmem_cache_put(c, g, buf);
    }
    vmem_cache_stats(c, &st);
    assert_true(st.used_pages <= cap);
    assert_true(st.evictions >= 9 * cap);
    /* Whatever is still there is intact. */
    size_t present = 0;
    for (uint64_t g = 0; g < 10 * cap; g++) {
        if (vmem_cache_get(c, g, buf)) {
            assert_true(check(buf, g));
            present++;
        }
    }
    assert_int_equal(present, st.used_pages);
    vmem_cache_free(c);
}

static void test_clock_spares_hot(void **state)
{
    (void)state;
    /* One shard's worth: gfns multiple of 16 all land in shard 0. */
    struct vmem_cache *c = vmem_cache_new(16 * 8, 0);
    uint8_t buf[VMEM_PAGE_SIZE];
    for (uint64_t k = 0; k < 8; k++) {
        fill(buf, k * 16);
        vmem_cache_put(c, k * 16, buf);
    }
    /* Touch gfn 0 so CLOCK spares it while others stream through. */
    for (uint64_t k = 8; k < 12; k++) {
        assert_int_equal(vmem_cache_get(c, 0, buf), 1);
        fill(buf, k * 16);
        vmem_cache_put(c, k * 16, buf);
    }
    assert_int_equal(vmem_cache_get(c, 0, buf), 1);
    assert_true(check(buf, 0));
    vmem_cache_free(c);
}

static void test_ttl(void **state)
{
    (void)state;
    struct vmem_cache *c = vmem_cache_new(64, 50 * 1000000ull);   /* 50 ms */
    uint8_t buf[VMEM_PAGE_SIZE];
    fill(buf, 3);
    vmem_cache_put(c, 3, buf);
    assert_int_equal(vmem_cache_get(c, 3, buf), 1);
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(vmem_cache_get(c, 3, buf), 0);
    struct vmem_cache_stats st;
    vmem_cache_stats(c, &st);
    assert_int_equal(st.expired, 1);
    vmem_cache_free(c);
}

struct worker {
    struct vmem_cache *c;
    unsigned seed;
    int torn;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    uint8_t buf[VMEM_PAGE_SIZE];
    for (int i = 0; i < 20000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        uint64_t g = (w->seed >> 8) % 512;
        if (vmem_cache_get(w->c, g, buf)) {
            if (!check(buf, g))
                w->torn++;
        } else {
            fill(buf, g);
            vmem_cache_put(w->c, g, buf);
        }
        if (i % 5000 == 4999)
            vmem_cache_flush(w->c);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    struct vmem_cache *c = vmem_cache_new(128, 0);  /* smaller than the set */
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.c = c, .seed = (unsigned)i + 1};
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].torn, 0);
    }
    struct vmem_cache_stats st;
    vmem_cache_stats(c, &st);
    assert_true(st.used_pages <= st.capacity_pages);
    assert_true(st.hits > 0);
    vmem_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_bounded_eviction),
        cmocka_unit_test(test_clock_spares_hot),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
