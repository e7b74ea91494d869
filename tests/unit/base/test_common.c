/*
 * test_common.c — src/base/common.c: decimal formatting and parsing agree at the
 * edges (the numbers written into every answer and header).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/common.h"

static void expect_dec(int64_t v)
{
    char buf[LK_I64_DEC_MAX], want[32];
    size_t n = lk_i64_dec(buf, v);
    int64_t back = 0;

    snprintf(want, sizeof(want), "%lld", (long long)v);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(lk_parse_i64(buf, n, INT64_MIN, INT64_MAX, &back), 0);
    assert_true(back == v);
}

static void test_i64_dec_round_trips_at_the_edges(void **state)
{
    (void)state;
    const int64_t values[] = {0, 1, -1, 9, 10, -10, 99, 100, 999999999, 1000000000,
                              INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        expect_dec(values[i]);
    for (int64_t v = 1; v < INT64_MAX / 7; v *= 7)
        expect_dec(v), expect_dec(-v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i64_dec_round_trips_at_the_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
