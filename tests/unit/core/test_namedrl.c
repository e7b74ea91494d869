/*
 * test_namedrl.c — src/core/namedrl.c (a key's named rate limits as one text
 * column) and lk_refill_period (src/core/timefmt.c, when a key's own credits
 * refill).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/common.h"
#include "core/namedrl.h"
#include "core/timefmt.h"

static void test_round_trip(void **state)
{
    struct lk_key_rl in[LK_KEY_RATE_LIMITS_MAX], out[LK_KEY_RATE_LIMITS_MAX];
    char buf[LK_NAMEDRL_TEXT_MAX];

    (void)state;
    memset(in, 0, sizeof(in)); /* padding too: compared whole below */
    memset(out, 0, sizeof(out));
    for (int i = 0; i < LK_KEY_RATE_LIMITS_MAX; i++) {
        memset(in[i].name, 'a' + i, LK_RL_NAME_MAX); /* the longest names */
        in[i].name[LK_RL_NAME_MAX] = '\0';
        in[i].limit = LK_RL_LIMIT_MAX - i;
        in[i].window_ms = LK_RL_WINDOW_MS_MAX - i;
        in[i].auto_apply = i % 2;
    }
    lk_namedrl_encode(in, LK_KEY_RATE_LIMITS_MAX, buf);
    assert_true(strlen(buf) < sizeof(buf));
    assert_int_equal(lk_namedrl_decode(buf, out), LK_KEY_RATE_LIMITS_MAX);
    assert_memory_equal(in, out, sizeof(in));
    lk_namedrl_encode(in, 0, buf);
    assert_string_equal(buf, "");
    assert_int_equal(lk_namedrl_decode(buf, out), 0);
    assert_int_equal(lk_namedrl_decode(NULL, out), 0);
}

static void test_hostile_text_keeps_only_valid_parts(void **state)
{
    struct lk_key_rl out[LK_KEY_RATE_LIMITS_MAX];

    (void)state;
    assert_int_equal(
        lk_namedrl_decode("a 1 999 1,b 0 1000 1,c 1 1000 2,d 1 1000 1 x,e 1 1000 0", out), 1);
    assert_string_equal(out[0].name, "e");
    assert_int_equal(lk_namedrl_decode("bad name 1 1000 1,,x 99999999999999999999 1000 1", out), 0);
    assert_int_equal(lk_namedrl_decode("a 1 1000 1,a 2 2000 0,a 3 3000 1,a 4 4000 1,a 5 5000 1,"
                                       "a 6 6000 1,a 7 7000 1,a 8 8000 1,a 9 9000 1",
                                       out),
                     LK_KEY_RATE_LIMITS_MAX);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(lk_namedrl_name_ok("tokens", 6));
    assert_true(lk_namedrl_name_ok("a.b:c-d_E9", 10));
    assert_false(lk_namedrl_name_ok("", 0));
    assert_false(lk_namedrl_name_ok("a b", 3));
    assert_false(lk_namedrl_name_ok("a,b", 3));
    assert_false(lk_namedrl_name_ok("\xc3\xa9", 2));
}

static void test_refill_periods(void **state)
{
    const int64_t jan31 = 1706659200; /* 2024-01-31T00:00:00Z */
    const int64_t feb29 = 1709164800; /* 2024-02-29T00:00:00Z: the 31st's stand-in */
    const int64_t mar31 = 1711843200; /* 2024-03-31T00:00:00Z */

    (void)state;
    assert_int_equal(lk_refill_period(false, 0, 86399), 0);
    assert_int_equal(lk_refill_period(false, 0, 86400), 1);
    /* monthly on the 31st: January's 31st, February's last day, March's 31st */
    assert_int_equal(lk_refill_period(true, 31, jan31 - 1), 53 * 12 + 11);
    assert_int_equal(lk_refill_period(true, 31, jan31), 54 * 12);
    assert_int_equal(lk_refill_period(true, 31, feb29 - 1), 54 * 12);
    assert_int_equal(lk_refill_period(true, 31, feb29), 54 * 12 + 1);
    assert_int_equal(lk_refill_period(true, 31, mar31 - 1), 54 * 12 + 1);
    assert_int_equal(lk_refill_period(true, 31, mar31), 54 * 12 + 2);
    /* on the 1st: every month's start */
    assert_int_equal(lk_refill_period(true, 1, 1704067200 - 1), 53 * 12 + 11);
    assert_int_equal(lk_refill_period(true, 1, 1704067200), 54 * 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hostile_text_keeps_only_valid_parts),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_refill_periods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
