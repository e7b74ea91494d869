/*
 * test_stats.c — src/base/stats.c: per-thread shards summed on read, bucket bounds.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/stats.h"

#define PER_THREAD 100000

static void *count(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        lk_stats_add(LK_STAT_CONN_ACCEPTED, 1);
        lk_stats_check(LK_HIST_FORWARD_AUTH, 7, 1000);
    }
    return NULL;
}

static void test_threads_sum(void **state)
{
    pthread_t t[8];
    uint64_t before = lk_stats_sum(LK_STAT_CONN_ACCEPTED);

    (void)state;
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, count, NULL), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    /* Threads that ended leave their counts behind. */
    assert_int_equal(lk_stats_sum(LK_STAT_CONN_ACCEPTED) - before, 8 * PER_THREAD);
    assert_int_equal(lk_stats_sum_checks(LK_HIST_FORWARD_AUTH, 7), 8 * PER_THREAD);
    assert_int_equal(lk_stats_sum_checks(LK_HIST_FORWARD_AUTH, 6), 0);
    assert_int_equal(lk_stats_sum_checks(LK_HIST__COUNT, 7), 0);      /* out of range: 0 */
    assert_int_equal(lk_stats_sum_checks(LK_HIST_VERIFY, LK_STATS_CODES), 0);
}

static void test_buckets(void **state)
{
    struct lk_stats_hist_sum h;

    (void)state;
    lk_stats_observe(LK_HIST_STORE, 0);                         /* first bucket */
    lk_stats_observe(LK_HIST_STORE, lk_stats_bounds_ns[0]);     /* le is inclusive */
    lk_stats_observe(LK_HIST_STORE, lk_stats_bounds_ns[0] + 1); /* the next one */
    lk_stats_observe(LK_HIST_STORE, UINT64_C(10000000000));     /* 10 s: +Inf */
    lk_stats_sum_hist(LK_HIST_STORE, &h);
    assert_int_equal(h.bucket[0], 2);
    assert_int_equal(h.bucket[1], 1);
    assert_int_equal(h.bucket[LK_STATS_BUCKETS], 1);
    assert_int_equal(h.count, 4);
    assert_int_equal(h.sum_ns, 2 * lk_stats_bounds_ns[0] + 1 + UINT64_C(10000000000));
    for (int b = 1; b < LK_STATS_BUCKETS; b++)
        assert_true(lk_stats_bounds_ns[b] > lk_stats_bounds_ns[b - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_sum),
        cmocka_unit_test(test_buckets),
    };
    return cmocka_run_group_tests_name("base/stats", tests, NULL, NULL);
}
