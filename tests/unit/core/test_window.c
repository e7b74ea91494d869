/*
 * test_window.c — src/core/window.c: a fixed window opened by its first event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/window.h"

static void test_fills_and_reopens(void **state)
{
    struct lk_window w = {0};
    int64_t retry = -1;

    (void)state;
    assert_false(lk_window_full(&w, 1000, 3, 60, &retry));
    for (int i = 0; i < 3; i++) {
        assert_false(lk_window_full(&w, 1000 + i, 3, 60, &retry));
        lk_window_add(&w, 1000 + i, 60);
    }
    assert_true(lk_window_full(&w, 1010, 3, 60, &retry));
    assert_int_equal(retry, 50); /* opened at 1000, closes at 1060 */
    assert_true(lk_window_full(&w, 1059, 3, 60, &retry));
    assert_int_equal(retry, 1);
    assert_false(lk_window_full(&w, 1060, 3, 60, &retry)); /* closed to the second */
    lk_window_add(&w, 1060, 60);
    assert_int_equal(w.start, 1060);
    assert_int_equal(w.count, 1);
}

static void test_limits(void **state)
{
    static const struct {
        int64_t events, limit;
        bool full;
    } cases[] = {{0, 1, false}, {1, 1, true}, {4, 5, false}, {5, 5, true}, {6, 5, true}};

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_window w = {0};
        for (int64_t j = 0; j < cases[i].events; j++)
            lk_window_add(&w, 500, 900);
        if (lk_window_full(&w, 501, cases[i].limit, 900, NULL) != cases[i].full)
            fail_msg("case %zu: %lld events, limit %lld", i, (long long)cases[i].events,
                     (long long)cases[i].limit);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fills_and_reopens),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests_name("core/window", tests, NULL, NULL);
}
