/*
 * test_quota.c — src/core/quota.c: Flotiq's rolling 30-day window by UTC day.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/quota.h"

static void test_days(void **state)
{
    (void)state;
    assert_int_equal(lk_day_of(0), 0);
    assert_int_equal(lk_day_of(86399), 0);
    assert_int_equal(lk_day_of(86400), 1);
    assert_int_equal(lk_day_of(-1), -1);
    assert_int_equal(lk_day_left(86400 * 5), 86400);
    assert_int_equal(lk_day_left(86400 * 5 + 86399), 1);
}

static void test_rolls_on_the_31st_day(void **state)
{
    struct lk_quota q;
    int64_t d = 20000;

    (void)state;
    lk_quota_init(&q);
    lk_quota_add(&q, d, 100);
    assert_int_equal(lk_quota_used(&q, d), 100);
    /* Counted today and the 29 days after ... */
    assert_int_equal(lk_quota_used(&q, d + 29), 100);
    /* ... and gone on the 31st day. */
    assert_int_equal(lk_quota_used(&q, d + 30), 0);
    /* Not counted before it happened either. */
    assert_int_equal(lk_quota_used(&q, d - 1), 0);
}

static void test_sliding_sum(void **state)
{
    struct lk_quota q;
    int64_t d = 20000;

    (void)state;
    lk_quota_init(&q);
    for (int i = 0; i < 40; i++)
        lk_quota_add(&q, d + i, i + 1);
    /* Days d+10 .. d+39 remain: counts 11 .. 40. */
    assert_int_equal(lk_quota_used(&q, d + 39), (11 + 40) * 30 / 2);
    assert_int_equal(lk_quota_day(&q, d + 39), 40);
    assert_int_equal(lk_quota_day(&q, d + 5), 0); /* its slot was reused */
}

static void test_old_day_does_not_evict_newer(void **state)
{
    struct lk_quota q;

    (void)state;
    lk_quota_init(&q);
    lk_quota_add(&q, 20030, 7);
    lk_quota_add(&q, 20000, 5); /* same slot, older: dropped */
    assert_int_equal(lk_quota_day(&q, 20030), 7);
    assert_int_equal(lk_quota_used(&q, 20030), 7);
    lk_quota_add(&q, 20030, 1);
    assert_int_equal(lk_quota_used(&q, 20030), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days),
        cmocka_unit_test(test_rolls_on_the_31st_day),
        cmocka_unit_test(test_sliding_sum),
        cmocka_unit_test(test_old_day_does_not_evict_newer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
