/*
 * test_throttle.c — src/service/throttle.c: failures counted per name in fixed
 * windows. The guarantee under test is that no more than `limit` failures of
 * one name are ever let through as counted, even when many threads fail at
 * once after each passed the cheap blocked check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "service/throttle.h"

#define T0 1700000000

static void test_note_counts_up_to_the_limit_then_refuses(void **state)
{
    struct lk_throttle *t = lk_throttle_new(3, 60);
    int64_t retry = 0;

    (void)state;
    assert_false(lk_throttle_blocked(t, "192.0.2.1", T0, &retry));
    for (int i = 0; i < 3; i++)
        assert_true(lk_throttle_note(t, "192.0.2.1", T0 + i, &retry));
    assert_true(lk_throttle_blocked(t, "192.0.2.1", T0 + 10, &retry));
    assert_int_equal(retry, 50);
    retry = 0;
    assert_false(lk_throttle_note(t, "192.0.2.1", T0 + 20, &retry));
    assert_int_equal(retry, 40);
    /* refused failures were not counted: the window still closes on time */
    assert_false(lk_throttle_blocked(t, "192.0.2.1", T0 + 60, &retry));
    assert_true(lk_throttle_note(t, "192.0.2.1", T0 + 60, NULL));
    /* another address is not affected */
    assert_false(lk_throttle_blocked(t, "192.0.2.2", T0 + 10, &retry));
    assert_true(lk_throttle_note(t, "192.0.2.2", T0 + 10, NULL));
    lk_throttle_free(t);
}

static void test_ipv6_counts_by_its_64(void **state)
{
    struct lk_throttle *t = lk_throttle_new(2, 60);

    (void)state;
    assert_true(lk_throttle_note(t, "2001:db8:1:2::1", T0, NULL));
    assert_true(lk_throttle_note(t, "2001:db8:1:2:ffff::9", T0, NULL));
    assert_false(lk_throttle_note(t, "2001:db8:1:2::77", T0, NULL));
    assert_true(lk_throttle_blocked(t, "2001:db8:1:2::abcd", T0, NULL));
    assert_false(lk_throttle_blocked(t, "2001:db8:1:3::1", T0, NULL));
    lk_throttle_free(t);
}

static void test_null_throttle_is_no_limit(void **state)
{
    (void)state;
    assert_false(lk_throttle_blocked(NULL, "192.0.2.1", T0, NULL));
    assert_true(lk_throttle_note(NULL, "192.0.2.1", T0, NULL));
}

#define THREADS 8
#define TRIES 500
#define LIMIT 10

struct race {
    struct lk_throttle *t;
    _Atomic int go, answered, refused;
};

/* What a request does: the cheap check first, the count after the lookup. */
static void *guesser(void *arg)
{
    struct race *r = arg;

    while (!atomic_load(&r->go))
        ;
    for (int i = 0; i < TRIES; i++) {
        if (lk_throttle_blocked(r->t, "198.51.100.7", T0, NULL) ||
            !lk_throttle_note(r->t, "198.51.100.7", T0, NULL))
            atomic_fetch_add(&r->refused, 1);
        else
            atomic_fetch_add(&r->answered, 1);
    }
    return NULL;
}

static void test_parallel_failures_never_pass_the_limit(void **state)
{
    struct race r = {.t = lk_throttle_new(LIMIT, 60)};
    pthread_t th[THREADS];

    (void)state;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, guesser, &r), 0);
    atomic_store(&r.go, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.answered), LIMIT);
    assert_int_equal(atomic_load(&r.refused), THREADS * TRIES - LIMIT);
    lk_throttle_free(r.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_note_counts_up_to_the_limit_then_refuses),
        cmocka_unit_test(test_ipv6_counts_by_its_64),
        cmocka_unit_test(test_null_throttle_is_no_limit),
        cmocka_unit_test(test_parallel_failures_never_pass_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
