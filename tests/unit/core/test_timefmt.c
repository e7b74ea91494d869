/*
 * test_timefmt.c — src/core/timefmt.c: RFC 3339 UTC timestamps.
 * Expected values were computed with Python's datetime.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/timefmt.h"
#include "base/common.h"

#define T_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

static const struct {
    int64_t t;
    const char *s;
} format_cases[] = {
    {0, "1970-01-01T00:00:00Z"},
    {59, "1970-01-01T00:00:59Z"},
    {86399, "1970-01-01T23:59:59Z"},
    {951782400, "2000-02-29T00:00:00Z"},
    {1000000000, "2001-09-09T01:46:40Z"},
    {1709251199, "2024-02-29T23:59:59Z"},
    {1795423251, "2026-11-23T08:40:51Z"},
    {INT64_C(2147483648), "2038-01-19T03:14:08Z"},
    {INT64_C(13574563200), "2400-02-29T00:00:00Z"},
    {T_MAX, "9999-12-31T23:59:59Z"},
};

static void test_format(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(format_cases); i++) {
        char out[LK_TIME_STRLEN];
        int64_t back = -1;

        memset(out, 'X', sizeof(out));
        lk_time_format(format_cases[i].t, out);
        if (strcmp(out, format_cases[i].s) != 0)
            fail_msg("format %lld: got %s, want %s", (long long)format_cases[i].t, out,
                     format_cases[i].s);
        if (lk_time_parse(out, strlen(out), &back) != 0 || back != format_cases[i].t)
            fail_msg("parse %s: got %lld", out, (long long)back);
    }
}

static const struct {
    const char *s;
    int64_t t;
} parse_ok[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"2026-11-23T08:40:51Z", 1795423251},
    {"2026-11-23t08:40:51z", 1795423251},
    {"2026-11-23T08:40:51.5Z", 1795423251},
    {"2026-11-23T08:40:51.999999999Z", 1795423251},
    {"2026-11-23T08:40:51.000000000000000000000000001Z", 1795423251},
    {"2026-11-23T08:40:51+00:00", 1795423251},
    {"2026-11-23T08:40:51-00:00", 1795423251},
    {"2026-11-23T09:40:51+01:00", 1795423251},
    {"2026-11-23T03:10:51-05:30", 1795423251},
    {"2026-11-23T08:40:51.25+00:00", 1795423251},
    {"2026-11-23T09:40:51.1+01:00", 1795423251},
    {"2026-11-23T09:40:51+01:00", 1795419651 + 3600},
    {"2026-11-23T08:40:51+01:00", 1795419651},
    {"2026-11-23T08:40:51-05:30", 1795443051},
    {"1970-01-02T00:00:00+23:59", 60},
    {"2000-02-29T00:00:00Z", 951782400},
    {"2024-02-29T23:59:59Z", 1709251199},
    {"2400-02-29T00:00:00Z", INT64_C(13574563200)},
    {"2026-12-31T23:59:60Z", 1798761600}, /* a leap second is the next second */
    {"9999-12-31T23:59:59Z", T_MAX},
    {"2026-01-31T00:00:00Z", 1769817600},
    {"2026-04-30T00:00:00Z", 1777507200},
};

static void test_parse_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(parse_ok); i++) {
        int64_t t = -12345;
        if (lk_time_parse(parse_ok[i].s, strlen(parse_ok[i].s), &t) != 0)
            fail_msg("\"%s\" rejected", parse_ok[i].s);
        if (t != parse_ok[i].t)
            fail_msg("\"%s\": got %lld, want %lld", parse_ok[i].s, (long long)t,
                     (long long)parse_ok[i].t);
    }
}

static const struct {
    const char *s;
    const char *why;
} parse_bad[] = {
    {"", "empty"},
    {"2026", "date only, short"},
    {"2026-11-23", "date only"},
    {"2026-11-23T08:40:51", "no zone"},
    {"2026-11-23T08:40Z", "no seconds"},
    {"2026-11-23 08:40:51Z", "space for T"},
    {"2026-11-23X08:40:51Z", "X for T"},
    {"2026/11/23T08:40:51Z", "slashes"},
    {"2026-11-23T08.40.51Z", "dots"},
    {"2026-02-30T00:00:00Z", "Feb 30"},
    {"2026-02-31T00:00:00Z", "Feb 31"},
    {"2023-02-29T00:00:00Z", "Feb 29, non-leap year"},
    {"2100-02-29T00:00:00Z", "Feb 29, century non-leap year"},
    {"1900-02-29T00:00:00Z", "Feb 29 in 1900"},
    {"2026-04-31T00:00:00Z", "Apr 31"},
    {"2026-06-31T00:00:00Z", "Jun 31"},
    {"2026-09-31T00:00:00Z", "Sep 31"},
    {"2026-11-31T00:00:00Z", "Nov 31"},
    {"2026-01-32T00:00:00Z", "Jan 32"},
    {"2026-00-10T00:00:00Z", "month 0"},
    {"2026-13-10T00:00:00Z", "month 13"},
    {"2026-01-00T00:00:00Z", "day 0"},
    {"2026-01-01T24:00:00Z", "hour 24"},
    {"2026-01-01T00:60:00Z", "minute 60"},
    {"2026-01-01T00:00:61Z", "second 61"},
    {"1969-12-31T23:59:59Z", "year before 1970"},
    {"0000-01-01T00:00:00Z", "year 0"},
    {"10000-01-01T00:00:00Z", "five-digit year"},
    {"2026-1-01T00:00:00Z", "one-digit month"},
    {"2026-01-1T00:00:00Z", "one-digit day"},
    {"2026-01-01T0:00:00Z", "one-digit hour"},
    {"2026-01-01T00:00:00ZZ", "two Zs"},
    {"2026-01-01T00:00:00Z ", "trailing space"},
    {"2026-01-01T00:00:00Z\n", "trailing newline"},
    {" 2026-01-01T00:00:00Z", "leading space"},
    {"2026-01-01T00:00:00.Z", "empty fraction"},
    {"2026-01-01T00:00:00.", "fraction, no zone"},
    {"2026-01-01T00:00:00.5", "fraction, no zone 2"},
    {"2026-01-01T00:00:00,5Z", "comma fraction"},
    {"2026-01-01T00:00:00.5a", "fraction then garbage"},
    {"2026-01-01T00:00:00+01", "offset without minutes"},
    {"2026-01-01T00:00:00+0100", "offset without colon"},
    {"2026-01-01T00:00:00+01:00Z", "offset and Z"},
    {"2026-01-01T00:00:00+24:00", "offset hour 24"},
    {"2026-01-01T00:00:00+01:60", "offset minute 60"},
    {"2026-01-01T00:00:00+1:00", "one-digit offset hour"},
    {"2026-01-01T00:00:00 01:00", "space for offset sign"},
    {"2026-01-01T00:00:00UTC", "UTC"},
    {"2026-01-01T00:00:00GMT", "GMT"},
    {"+2026-01-01T00:00:00Z", "signed year"},
    {"2026-+1-01T00:00:00Z", "signed month"},
    {"abcd-ef-ghTij:kl:mnZ", "letters"},
    {"xxxxxxxxxxxxxxxxxxxx", "garbage"},
    {"2026-01-01T00:00:00\0Z", "NUL inside"}, /* length 21: see below */
    {"Mon, 23 Nov 2026 08:40:51 GMT", "RFC 7231 date"},
    {"1795423251", "Unix seconds"},
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(parse_bad); i++) {
        const char *s = parse_bad[i].s;
        size_t len = strlen(s);
        int64_t t = -12345;
        if (strcmp(parse_bad[i].why, "NUL inside") == 0)
            len = 21;
        if (lk_time_parse(s, len, &t) != -1)
            fail_msg("\"%s\" (%s) accepted as %lld", s, parse_bad[i].why, (long long)t);
        if (t != -12345)
            fail_msg("\"%s\" (%s) wrote its output", s, parse_bad[i].why);
    }
}

/* Every prefix of a valid timestamp is rejected, so no byte past `len` is read. */
static void test_parse_prefixes(void **state)
{
    const char *s = "2026-11-23T08:40:51.123+01:00";
    size_t n = strlen(s);

    (void)state;
    for (size_t len = 0; len < n; len++) {  /* only the whole string is valid */
        char *copy = malloc(len ? len : 1); /* exact size, so ASan sees an overread */
        int64_t t;
        assert_non_null(copy);
        memcpy(copy, s, len);
        if (lk_time_parse(copy, len, &t) != -1)
            fail_msg("prefix of %zu bytes accepted", len);
        free(copy);
    }
    {
        int64_t t;
        assert_int_equal(lk_time_parse(s, n, &t), 0);
        assert_int_equal(t, 1795419651);
    }
}

/* Every second of one day, and days spread over 1970–9999, round-trip. */
static void test_round_trip(void **state)
{
    (void)state;
    for (int64_t t = 1795392000; t < 1795392000 + 86400; t++) {
        char out[LK_TIME_STRLEN];
        int64_t back;
        lk_time_format(t, out);
        if (lk_time_parse(out, strlen(out), &back) != 0 || back != t)
            fail_msg("%lld -> %s does not round-trip", (long long)t, out);
    }
    for (int64_t t = 0; t <= T_MAX; t += 86400 * 7 + 3601) {
        char out[LK_TIME_STRLEN];
        int64_t back;
        lk_time_format(t, out);
        if (strlen(out) != 20)
            fail_msg("%lld -> %s is not 20 characters", (long long)t, out);
        if (lk_time_parse(out, strlen(out), &back) != 0 || back != t)
            fail_msg("%lld -> %s does not round-trip", (long long)t, out);
    }
}

/*
 * Regressions, once accepted:
 * 1. Two-digit fields go through lk_parse_i64, which accepts a leading '-', so "-0"
 *    passes as 0 in the hour, minute, second and offset fields.
 * 2. An offset can move a 1970 or 9999 timestamp outside 1970–9999 UTC, where
 *    lk_time_format writes text lk_time_parse rejects.
 */
static const char *const known_bad[] = {
    "2026-01-01T-0:00:00Z",      "2026-01-01T00:-0:00Z",      "2026-01-01T00:00:-0Z",
    "2026-01-01T00:00:00+-0:00", "2026-01-01T00:00:00+00:-0",
};

static void test_regressions(void **state)
{
    static const char *const out_of_range[] = {
        "1970-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:60Z",
    };

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(known_bad); i++) {
        int64_t t;
        if (lk_time_parse(known_bad[i], strlen(known_bad[i]), &t) != -1)
            fail_msg("\"%s\" accepted", known_bad[i]);
    }
    for (size_t i = 0; i < LK_ARRAY_LEN(out_of_range); i++) {
        char out[LK_TIME_STRLEN];
        int64_t t, back;
        if (lk_time_parse(out_of_range[i], strlen(out_of_range[i]), &t) != 0)
            continue; /* rejecting it is a fix too */
        lk_time_format(t, out);
        if (lk_time_parse(out, strlen(out), &back) != 0 || back != t)
            fail_msg("\"%s\" -> %lld -> \"%s\" does not parse back", out_of_range[i], (long long)t,
                     out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),     cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_bad),  cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_regressions),
    };
    return cmocka_run_group_tests_name("core/timefmt", tests, NULL, NULL);
}
