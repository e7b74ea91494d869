/*
 * test_base62.c — src/core/base62.c: fixed-width base62, alphabet 0-9A-Za-z.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/base62.h"
#include "base/common.h"

/* Every byte at every position of every length up to 64 (the 16-byte steps,
 * the overlapping last block and the short tail): refused exactly when it is
 * not a digit. */
static void test_all_digits_every_byte_everywhere(void **state)
{
    char buf[64];

    (void)state;
    for (size_t len = 0; len <= sizeof(buf); len++) {
        memset(buf, 'a', sizeof(buf));
        assert_true(lk_base62_all_digits(buf, len));
        for (size_t pos = 0; pos < len; pos++) {
            for (int c = 0; c < 256; c++) {
                buf[pos] = (char)c;
                if (lk_base62_all_digits(buf, len) != lk_base62_is_digit((char)c))
                    fail_msg("all_digits(len %zu, 0x%02x at %zu)", len, (unsigned)c, pos);
            }
            buf[pos] = "0Zz9A"[pos % 5];
        }
        assert_true(lk_base62_all_digits(buf, len));
        /* bytes past len are not read as part of it */
        if (len < sizeof(buf)) {
            buf[len] = '!';
            assert_true(lk_base62_all_digits(buf, len));
        }
    }
}

static const struct {
    uint32_t v;
    const char *s;
} u32_cases[] = {
    {0, "000000"},           {1, "000001"},
    {9, "000009"},           {10, "00000A"},
    {35, "00000Z"},          {36, "00000a"},
    {61, "00000z"},          {62, "000010"},
    {3843, "0000zz"},        {3844, "000100"},
    {916132831, "0zzzzz"},    {916132832, "100000"},
    {UINT32_MAX, "4gfFC3"},  {UINT32_MAX - 1, "4gfFC2"},
    {2147483648u, "2LKcb2"},
};

static void test_encode_decode_u32(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(u32_cases); i++) {
        char out[LK_BASE62_LEN_U32 + 1] = {0};
        const char *want = u32_cases[i].s;
        uint32_t back = 0;

        lk_base62_encode_u32(u32_cases[i].v, out);
        if (strcmp(out, want) != 0)
            fail_msg("encode %u: got %s, want %s", u32_cases[i].v, out, want);
        if (!lk_base62_decode_u32(want, &back) || back != u32_cases[i].v)
            fail_msg("decode %s: got %u, want %u", want, back, u32_cases[i].v);
    }
}

/* Encodes exactly 6 characters and writes nothing after them. */
static void test_encode_u32_width(void **state)
{
    char out[8];

    (void)state;
    memset(out, '#', sizeof(out));
    lk_base62_encode_u32(UINT32_MAX, out);
    assert_memory_equal(out, "4gfFC3##", 8);
}

static void test_u32_round_trip(void **state)
{
    (void)state;
    /* A Weyl sequence visits values spread over the whole range. */
    for (uint32_t i = 0, v = 0; i < 200000; i++, v += 2654435761u) {
        char out[LK_BASE62_LEN_U32];
        uint32_t back;
        lk_base62_encode_u32(v, out);
        if (!lk_base62_decode_u32(out, &back) || back != v)
            fail_msg("round trip of %u failed", v);
    }
}

static const struct {
    const char *s; /* exactly 6 bytes are read */
    const char *why;
} decode_rejects[] = {
    {"zzzzzz", "62^6 - 1 > UINT32_MAX"},
    {"4gfFC4", "UINT32_MAX + 1"},
    {"4gfFD0", "just above UINT32_MAX"},
    {"500000", "5 * 62^5 > UINT32_MAX"},
    {"00000-", "'-'"},
    {"-00000", "leading '-'"},
    {"+00001", "'+'"},
    {"000 00", "space"},
    {"00000_", "'_'"},
    {"00000/", "'/' below '0'"},
    {"00000:", "':' above '9'"},
    {"00000@", "'@' below 'A'"},
    {"00000[", "'[' above 'Z'"},
    {"00000`", "'`' below 'a'"},
    {"00000{", "'{' above 'z'"},
    {"0000\xc3\xa9", "non-ASCII"},
    {"00000\xff", "0xff"},
};

static void test_decode_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(decode_rejects); i++) {
        uint32_t v = 12345;
        if (lk_base62_decode_u32(decode_rejects[i].s, &v))
            fail_msg("decode of \"%s\" (%s) accepted as %u", decode_rejects[i].s,
                     decode_rejects[i].why, v);
        if (v != 12345)
            fail_msg("decode of \"%s\" wrote its output", decode_rejects[i].s);
    }
}

/* A NUL is outside the alphabet: decoding stops at none of the 6 positions. */
static void test_decode_nul(void **state)
{
    (void)state;
    for (size_t pos = 0; pos < LK_BASE62_LEN_U32; pos++) {
        char in[LK_BASE62_LEN_U32] = {'0', '0', '0', '0', '0', '1'};
        uint32_t v;
        in[pos] = '\0';
        assert_false(lk_base62_decode_u32(in, &v));
    }
}

static void test_is_digit(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        bool want = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (lk_base62_is_digit((char)c) != want)
            fail_msg("is_digit(0x%02x): want %d", (unsigned)c, want);
    }
}

static const struct {
    uint8_t in[40];
    size_t n;
    size_t width;
    bool ok;
    const char *want; /* `width` characters when ok */
} encode_cases[] = {
    {{0}, 1, 1, true, "0"},
    {{61}, 1, 1, true, "z"},
    {{62}, 1, 1, false, NULL},
    {{62}, 1, 2, true, "10"},
    {{0xff}, 1, 2, true, "47"},
    {{0x01, 0x00}, 2, 2, true, "48"},
    {{0x01, 0x00}, 2, 5, true, "00048"},
    {{0x00, 0x00, 0x00, 0x3e}, 4, 6, true, "000010"},
    {{0xff, 0xff, 0xff, 0xff}, 4, 6, true, "4gfFC3"},
    {{0xff, 0xff, 0xff, 0xff}, 4, 5, false, NULL},
    {{0}, 32, 43, true, "0000000000000000000000000000000000000000000"},
    {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     32,
     43,
     true,
     "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1"},
    {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     32,
     42,
     false,
     NULL},
    {{0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31},
     32,
     43,
     true,
     "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf"},
    {{0}, 0, 3, true, "000"}, /* the empty number is zero */
};

static void test_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(encode_cases); i++) {
        char out[64];
        bool ok;

        memset(out, '#', sizeof(out));
        ok = lk_base62_encode(encode_cases[i].in, encode_cases[i].n, out, encode_cases[i].width);
        if (ok != encode_cases[i].ok)
            fail_msg("encode case %zu: returned %d", i, ok);
        if (ok && memcmp(out, encode_cases[i].want, encode_cases[i].width) != 0)
            fail_msg("encode case %zu: got %.*s, want %s", i, (int)encode_cases[i].width, out,
                     encode_cases[i].want);
        if (out[encode_cases[i].width] != '#')
            fail_msg("encode case %zu: wrote past width", i);
    }
}

/* More than 64 input bytes are refused, not overflowed. */
static void test_encode_too_long(void **state)
{
    uint8_t in[65] = {0};
    char out[128];

    (void)state;
    assert_false(lk_base62_encode(in, sizeof(in), out, sizeof(out)));
}

/* lk_base62_encode on 4 bytes agrees with lk_base62_encode_u32. */
static void test_encode_agrees_with_u32(void **state)
{
    (void)state;
    for (uint32_t i = 0, v = 7; i < 20000; i++, v += 2654435761u) {
        uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        char a[LK_BASE62_LEN_U32], b[LK_BASE62_LEN_U32];
        assert_true(lk_base62_encode(be, 4, a, sizeof(a)));
        lk_base62_encode_u32(v, b);
        if (memcmp(a, b, sizeof(a)) != 0)
            fail_msg("encode and encode_u32 differ for %u", v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode_u32),
        cmocka_unit_test(test_encode_u32_width),
        cmocka_unit_test(test_u32_round_trip),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_decode_nul),
        cmocka_unit_test(test_is_digit),
        cmocka_unit_test(test_all_digits_every_byte_everywhere),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_encode_too_long),
        cmocka_unit_test(test_encode_agrees_with_u32),
    };
    return cmocka_run_group_tests_name("core/base62", tests, NULL, NULL);
}
