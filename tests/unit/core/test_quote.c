/*
 * test_quote.c — src/core/quote.c: bounded, valid-UTF-8 quotations of input, and
 * lk_errinfo_set keeping what it stores valid UTF-8.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/err.h"
#include "core/quote.h"

#define E "\xc3\xa9"          /* é, 2 bytes */
#define EURO "\xe2\x82\xac"   /* €, 3 bytes */
#define EMOJI "\xf0\x9f\x98\x80" /* 😀, 4 bytes */

static const struct {
    const char *in;
    size_t len; /* 0: strlen(in) */
    size_t outsz;
    const char *want;
} cases[] = {
    {"name", 0, 64, "name"},
    {"", 0, 64, ""},
    {E EURO EMOJI, 0, 64, E EURO EMOJI},
    /* controls and the backslash are escaped */
    {"a\nb\tc", 0, 64, "a\\x0ab\\x09c"},
    {"a\x7f", 0, 64, "a\\x7f"},
    {"\xc2\x85", 0, 64, "\\xc2\\x85"}, /* NEL, a C1 control */
    {"\xc2\xa0", 0, 64, "\xc2\xa0"},   /* NBSP is printable */
    {"a\\b", 0, 64, "a\\\\b"},
    {"a\0b", 3, 64, "a\\x00b"},
    /* invalid UTF-8: each bad byte escaped, the rest kept */
    {"\xff", 0, 64, "\\xff"},
    {"a\xc3", 0, 64, "a\\xc3"},             /* cut character at the end */
    {"\xc3(", 0, 64, "\\xc3("},             /* lead byte without continuation */
    {"\x80", 0, 64, "\\x80"},               /* lone continuation byte */
    {"\xc0\xaf", 0, 64, "\\xc0\\xaf"},      /* overlong '/' */
    {"\xe0\x80\xaf", 0, 64, "\\xe0\\x80\\xaf"}, /* overlong, 3 bytes */
    {"\xed\xa0\x80", 0, 64, "\\xed\\xa0\\x80"}, /* a surrogate */
    {"\xf4\x90\x80\x80", 0, 64, "\\xf4\\x90\\x80\\x80"}, /* above U+10FFFF */
    {"\xf5\x80\x80\x80", 0, 64, "\\xf5\\x80\\x80\\x80"},
    /* bounded: cut at a character boundary, then "..." */
    {"abcdefghij", 0, 8, "abcd..."},
    {"abcdefg", 0, 8, "abcdefg"},          /* exactly fits */
    {"abcdefgh", 0, 8, "abcd..."},
    {"abc" E E E, 0, 8, "abc..."},          /* é not split */
    {"ab" EMOJI "cd", 0, 8, "ab..."},
    {"ab" EMOJI, 0, 8, "ab" EMOJI},
    {"\n\n\n", 0, 8, "\\x0a..."},           /* an escape is never split */
    {"abcd", 0, 4, "..."},
    {"abc", 0, 4, "abc"},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        char out[128];
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);

        memset(out, 'X', sizeof(out));
        lk_quote(out, cases[i].outsz, cases[i].in, len);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
        if (strlen(out) >= cases[i].outsz)
            fail_msg("case %zu: %zu bytes overflow %zu", i, strlen(out), cases[i].outsz);
    }
}

/* The request: 63 'a' and then 2-byte characters across byte 64. */
static void test_field_name_across_bound(void **state)
{
    char in[256], out[LK_QUOTE_SIZE];
    size_t n = 0;

    (void)state;
    memset(in, 'a', 63);
    n = 63;
    for (int i = 0; i < 5; i++, n += 2)
        memcpy(in + n, E, 2);
    lk_quote(out, sizeof(out), in, n);
    assert_true(lk_utf8_valid(out, strlen(out)));
    assert_true(strlen(out) < LK_QUOTE_SIZE);
    assert_int_equal(strlen(out), 63);
    assert_memory_equal(out + 60, "...", 3);
}

/* Whatever the bytes and the bound, the output is valid UTF-8 without control
 * characters and fits. A deterministic sweep over short inputs. */
static void test_always_valid(void **state)
{
    static const unsigned char alphabet[] = {'a', '\\', 0x00, 0x0a, 0x7f, 0x80, 0xbf, 0xc2,
                                             0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0,
                                             0x9f, 0x98, 0xf4, 0xff};
    const size_t na = sizeof(alphabet);
    unsigned char in[4];

    (void)state;
    for (size_t a = 0; a < na * na * na * na; a++) {
        size_t x = a;
        for (int i = 0; i < 4; i++, x /= na)
            in[i] = alphabet[x % na];
        for (size_t outsz = 4; outsz <= 12; outsz++) {
            char out[32];
            size_t n;
            lk_quote(out, outsz, (const char *)in, 4);
            n = strlen(out);
            if (n >= outsz || !lk_utf8_valid(out, n))
                fail_msg("input %02x%02x%02x%02x, size %zu", in[0], in[1], in[2], in[3], outsz);
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                    fail_msg("control byte in output of %02x%02x%02x%02x", in[0], in[1], in[2],
                             in[3]);
        }
    }
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(lk_utf8_valid("", 0));
    assert_true(lk_utf8_valid(E EURO EMOJI, strlen(E EURO EMOJI)));
    assert_false(lk_utf8_valid("a\xc3", 2));
    assert_int_equal(lk_utf8_valid_prefix("ab\xc3", 3), 2);
    assert_int_equal(lk_utf8_valid_prefix("ab" EURO, 4), 2); /* cut € */
    assert_false(lk_utf8_valid("\xed\xbf\xbf", 3));
    assert_true(lk_utf8_valid("\xee\x80\x80", 3));           /* U+E000 */
    assert_true(lk_utf8_valid("\xf4\x8f\xbf\xbf", 4));       /* U+10FFFF */
}

/* lk_errinfo_set cuts detail and field to fit, then to whole characters. */
static void test_errinfo_stays_utf8(void **state)
{
    struct lk_errinfo ei;
    char big[400], field[100];
    size_t n = 0;

    (void)state;
    while (n + 2 < sizeof(big)) {
        memcpy(big + n, E, 2);
        n += 2;
    }
    big[n] = '\0';
    /* 1 + 2k bytes: an odd offset puts a character across the 191-byte bound. */
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, big, "%s", big);
    assert_true(lk_utf8_valid(ei.detail, strlen(ei.detail)));
    assert_true(lk_utf8_valid(ei.field, strlen(ei.field)));
    assert_int_equal(strlen(ei.detail), sizeof(ei.detail) - 2);
    memset(field, 'a', sizeof(field));
    memcpy(field + 62, EURO, 3);
    field[65] = '\0';
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, field, NULL);
    assert_int_equal(strlen(ei.field), 62);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_field_name_across_bound),
        cmocka_unit_test(test_always_valid),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_errinfo_stays_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
