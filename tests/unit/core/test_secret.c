/*
 * test_secret.c — src/core/secret.c: the key secret format of DESIGN §2.
 * Expected secrets were computed independently (zlib crc32 and base62 in Python).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <zlib.h>

#include "base/rand.h"
#include "core/secret.h"
#include "base/common.h"

#define BODY_LEN 43
#define CHECK_LEN 6
#define TAIL_LEN (6 + BODY_LEN + CHECK_LEN) /* "_live_" body check */

enum fill { FILL_ZERO, FILL_FF, FILL_SEQ0, FILL_SEQ1 };

static void fill_bytes(enum fill f, uint8_t b[LK_SECRET_BYTES])
{
    for (size_t i = 0; i < LK_SECRET_BYTES; i++) {
        switch (f) {
        case FILL_ZERO:
            b[i] = 0x00;
            break;
        case FILL_FF:
            b[i] = 0xff;
            break;
        case FILL_SEQ0:
            b[i] = (uint8_t)i;
            break;
        case FILL_SEQ1:
            b[i] = (uint8_t)(i + 1);
            break;
        }
    }
}

/* Appends the 6-character base62 CRC32 of buf[0..len), written here independently of
 * src/core so that a reject case fails for the reason it names, not for its checksum. */
static size_t add_check(char *buf, size_t len)
{
    static const char a[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint32_t v = (uint32_t)crc32(0L, (const Bytef *)buf, (uInt)len);

    for (int i = CHECK_LEN - 1; i >= 0; i--) {
        buf[len + (size_t)i] = a[v % 62];
        v /= 62;
    }
    buf[len + CHECK_LEN] = '\0';
    return len + CHECK_LEN;
}

/* Checks that v is a correct view of the well-formed secret s[0..len). */
static void check_view(const char *what, const char *s, size_t len, const struct lk_secret_view *v,
                       enum lk_key_format fmt, enum lk_env env, size_t prefix_len)
{
    if (v->format != fmt || v->env != env)
        fail_msg("%s: format %d env %d, want %d %d", what, v->format, v->env, fmt, env);
    if (fmt == LK_FORMAT_HEX) {
        if (v->prefix != NULL || v->prefix_len != 0 || v->body != s || v->body_len != 64)
            fail_msg("%s: bad hex view", what);
        return;
    }
    if (v->prefix != s || v->prefix_len != prefix_len)
        fail_msg("%s: prefix_len %zu, want %zu", what, v->prefix_len, prefix_len);
    if (v->body != s + len - BODY_LEN - CHECK_LEN || v->body_len != BODY_LEN)
        fail_msg("%s: body at %td len %zu", what, v->body - s, v->body_len);
}

static const struct {
    enum lk_key_format fmt;
    const char *prefix;
    enum lk_env env;
    enum fill fill;
    const char *want; /* NULL: only the round trip is checked */
} format_cases[] = {
    {LK_FORMAT_DEFAULT, "lk", LK_ENV_LIVE, FILL_ZERO,
     "lk_live_00000000000000000000000000000000000000000003QjUmf"},
    {LK_FORMAT_DEFAULT, "lk", LK_ENV_TEST, FILL_FF,
     "lk_test_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp10AyO7N"},
    {LK_FORMAT_DEFAULT, "fsk", LK_ENV_TEST, FILL_SEQ1,
     "fsk_test_0Eoh211G4c8wtVWM00my5rsNSFlKgaWqQ4mb8gdEqno1K7vur"},
    {LK_FORMAT_DEFAULT, "flw_sk", LK_ENV_LIVE, FILL_SEQ0,
     "flw_sk_live_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf2PGtLo"},
    {LK_FORMAT_DEFAULT, "abcdefghijklmnop", LK_ENV_TEST, FILL_SEQ0,
     "abcdefghijklmnop_test_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf1unzqr"},
    {LK_FORMAT_DEFAULT, "lk", LK_ENV_TEST, FILL_ZERO, NULL},
    {LK_FORMAT_DEFAULT, "lk", LK_ENV_LIVE, FILL_FF, NULL},
    {LK_FORMAT_DEFAULT, "a", LK_ENV_LIVE, FILL_SEQ1, NULL},
    {LK_FORMAT_DEFAULT, "a_", LK_ENV_LIVE, FILL_SEQ1, NULL},      /* prefix ends in '_' */
    {LK_FORMAT_DEFAULT, "lk_live", LK_ENV_TEST, FILL_SEQ1, NULL}, /* env word in prefix */
    {LK_FORMAT_DEFAULT, "z9_0123456789abc", LK_ENV_LIVE, FILL_FF, NULL},
    {LK_FORMAT_HEX, NULL, LK_ENV_LIVE, FILL_ZERO,
     "0000000000000000000000000000000000000000000000000000000000000000"},
    {LK_FORMAT_HEX, NULL, LK_ENV_LIVE, FILL_FF,
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
    {LK_FORMAT_HEX, "ignored", LK_ENV_TEST, FILL_SEQ0,
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
};

static void test_format_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(format_cases); i++) {
        uint8_t bytes[LK_SECRET_BYTES];
        char out[LK_SECRET_MAX], what[64];
        struct lk_secret_view v;
        size_t n;

        fill_bytes(format_cases[i].fill, bytes);
        memset(out, 'X', sizeof(out));
        n = lk_secret_format(format_cases[i].fmt, format_cases[i].prefix, format_cases[i].env,
                             bytes, out);
        snprintf(what, sizeof(what), "format case %zu", i);
        if (n != strlen(out) || n >= LK_SECRET_MAX)
            fail_msg("%s: returned %zu, strlen %zu", what, n, strlen(out));
        if (format_cases[i].want != NULL && strcmp(out, format_cases[i].want) != 0)
            fail_msg("%s: got %s, want %s", what, out, format_cases[i].want);
        if (lk_secret_parse(out, n, &v) != LK_OK)
            fail_msg("%s: %s does not parse", what, out);
        if (format_cases[i].fmt == LK_FORMAT_HEX)
            check_view(what, out, n, &v, LK_FORMAT_HEX, LK_ENV_LIVE, 0);
        else
            check_view(what, out, n, &v, LK_FORMAT_DEFAULT, format_cases[i].env,
                       strlen(format_cases[i].prefix));
    }
}

/* CSPRNG bytes through every prefix shape and both envs. */
static void test_format_random(void **state)
{
    static const char *const prefixes[] = {"lk", "fsk", "flw_sk", "abcdefghijklmnop", "x"};

    (void)state;
    for (int round = 0; round < 200; round++) {
        for (size_t p = 0; p < LK_ARRAY_LEN(prefixes); p++) {
            for (int e = LK_ENV_LIVE; e <= LK_ENV_TEST; e++) {
                uint8_t bytes[LK_SECRET_BYTES];
                char out[LK_SECRET_MAX];
                struct lk_secret_view v;
                size_t n, plen = strlen(prefixes[p]);

                lk_rand_bytes(bytes, sizeof(bytes));
                n = lk_secret_format(LK_FORMAT_DEFAULT, prefixes[p], (enum lk_env)e, bytes, out);
                assert_int_equal(n, plen + TAIL_LEN);
                if (lk_secret_parse(out, n, &v) != LK_OK)
                    fail_msg("random secret %s does not parse", out);
                check_view(out, out, n, &v, LK_FORMAT_DEFAULT, (enum lk_env)e, plen);

                n = lk_secret_format(LK_FORMAT_HEX, NULL, (enum lk_env)e, bytes, out);
                assert_int_equal(n, 64);
                if (lk_secret_parse(out, n, &v) != LK_OK)
                    fail_msg("random hex secret %s does not parse", out);
                check_view(out, out, n, &v, LK_FORMAT_HEX, LK_ENV_LIVE, 0);
            }
        }
    }
}

#define BODY_OK "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf"
#define HEX63 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1"

/* Each string is rejected; with `check` set, a correct checksum is appended first so
 * the named defect is the only one. */
static const struct {
    const char *s;
    bool check;
    const char *why;
} reject_cases[] = {
    {"", false, "empty"},
    {"lk", false, "prefix only"},
    {"lk_live_", false, "no body"},
    {"lk_live_" BODY_OK, false, "no check"},
    {"lk_live_" BODY_OK "2PGtL", false, "check one short"},
    {"lk_prod_" BODY_OK, true, "env prod"},
    {"lk_LIVE_" BODY_OK, true, "env uppercase"},
    {"lk_Test_" BODY_OK, true, "env mixed case"},
    {"lk-live_" BODY_OK, true, "env separator"},
    {"lk_live-" BODY_OK, true, "env separator after"},
    {"lklive_" BODY_OK, true, "env without separator"},
    {"lk_tests" BODY_OK, true, "env word too long"},
    {"Lk_live_" BODY_OK, true, "prefix uppercase first"},
    {"lK_live_" BODY_OK, true, "prefix uppercase later"},
    {"1lk_live_" BODY_OK, true, "prefix starts with digit"},
    {"_lk_live_" BODY_OK, true, "prefix starts with _"},
    {"_live_" BODY_OK, true, "empty prefix"},
    {"abcdefghijklmnopq_live_" BODY_OK, true, "prefix 17 chars"},
    {"lk-x_live_" BODY_OK, true, "prefix with -"},
    {"l k_live_" BODY_OK, true, "prefix with space"},
    {"lk_live_"
     "03aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf",
     true, "body 42 chars"},
    {"lk_live_" BODY_OK "0", true, "body 44 chars"},
    {"lk_live_"
     "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBID-f",
     true, "body with -"},
    {"lk_live_"
     "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBID_f",
     true, "body with _"},
    {"lk_live_"
     "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBID f",
     true, "body with space"},
    {" lk_live_" BODY_OK, true, "leading space"},
    {"lk_live_00000000000000000000000000000000000000000003QjUmf\n", false, "trailing newline"},
    {"lk_live_00000000000000000000000000000000000000000003QjUmf ", false, "trailing space"},
    {"lk_live_00000000000000000000000000000000000000000003QjUmF", false, "check case changed"},
    {"lk_live_00000000000000000000000000000000000000000003QjUm-", false, "check with -"},
    {"lk_test_00000000000000000000000000000000000000000003QjUmf", false, "check of other env"},
    {"lk_live_00000000000000000000000000000000000000000zzzzzz", false, "check above 2^32"},
    {HEX63, false, "63 hex chars"},
    {HEX63 "f0", false, "65 hex chars"},
    {"000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f", false, "uppercase hex"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1F", false, "last uppercase"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", false, "hex with g"},
    {"0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", false, "hex with 0x"},
    {"                                                                ", false, "64 spaces"},
};

static void test_parse_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(reject_cases); i++) {
        char buf[128];
        struct lk_secret_view v;
        size_t n = strlen(reject_cases[i].s);

        assert_true(n + CHECK_LEN < sizeof(buf));
        memcpy(buf, reject_cases[i].s, n + 1);
        if (reject_cases[i].check)
            n = add_check(buf, n);
        if (lk_secret_parse(buf, n, &v) != LK_ERR_MALFORMED_KEY)
            fail_msg("reject case %zu (%s): %s was accepted", i, reject_cases[i].why, buf);
    }
}

/* The checksum helper itself: the same construction must give the expected secret, so
 * the `check` rejects above are wrong only in what they name. */
static void test_parse_add_check_sane(void **state)
{
    char buf[LK_SECRET_MAX] = "flw_sk_live_" BODY_OK;
    struct lk_secret_view v;

    (void)state;
    assert_int_equal(add_check(buf, strlen(buf)), 61);
    assert_string_equal(buf, "flw_sk_live_" BODY_OK "2PGtLo");
    assert_int_equal(lk_secret_parse(buf, 61, &v), LK_OK);
}

/* The parse in two steps: the shape takes a secret whose checksum is wrong,
 * with the same view the whole parse gives a right one; the checksum step
 * refuses it, and a legacy hex secret has no checksum to fail. */
static void test_parse_shape_then_checksum(void **state)
{
    char good[LK_SECRET_MAX] = "flw_sk_live_" BODY_OK "2PGtLo";
    char bad[LK_SECRET_MAX] = "flw_sk_live_" BODY_OK "2PGtLp";
    char hex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    struct lk_secret_view v, w;

    (void)state;
    assert_int_equal(lk_secret_parse(good, 61, &w), LK_OK);
    assert_int_equal(lk_secret_parse_shape(good, 61, &v), LK_OK);
    assert_memory_equal(&v, &w, sizeof(v));
    assert_true(lk_secret_checksum_ok(good, 61, &v));

    assert_int_equal(lk_secret_parse(bad, 61, &w), LK_ERR_MALFORMED_KEY);
    assert_int_equal(lk_secret_parse_shape(bad, 61, &v), LK_OK);
    assert_int_equal(v.format, LK_FORMAT_DEFAULT);
    assert_int_equal(v.prefix_len, 6);
    assert_false(lk_secret_checksum_ok(bad, 61, &v));
    /* a check that overflows 32 bits is no checksum either */
    memcpy(bad + 55, "zzzzzz", 6);
    assert_int_equal(lk_secret_parse_shape(bad, 61, &v), LK_OK);
    assert_false(lk_secret_checksum_ok(bad, 61, &v));
    /* what fails in shape fails the whole parse */
    assert_int_equal(lk_secret_parse_shape("flw_sk_live_short", 17, &v), LK_ERR_MALFORMED_KEY);

    assert_int_equal(lk_secret_parse_shape(hex, 64, &v), LK_OK);
    assert_int_equal(v.format, LK_FORMAT_HEX);
    assert_true(lk_secret_checksum_ok(hex, 64, &v));
}

/* A NUL inside the string is a character like any other: no prefix stops there. */
static void test_parse_embedded_nul(void **state)
{
    char buf[LK_SECRET_MAX] = "lk_live_00000000000000000000000000000000000000000003QjUmf";
    size_t n = strlen(buf);
    struct lk_secret_view v;

    (void)state;
    assert_int_equal(lk_secret_parse(buf, n, &v), LK_OK);
    for (size_t i = 0; i < n; i++) {
        char saved = buf[i];
        buf[i] = '\0';
        if (lk_secret_parse(buf, n, &v) != LK_ERR_MALFORMED_KEY)
            fail_msg("NUL at %zu accepted", i);
        buf[i] = saved;
    }
}

/* Every single-byte change anywhere in a default secret — body, check, env, prefix — is
 * rejected: CRC32 catches every error burst of up to 32 bits. */
static void test_parse_single_char_changes(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(format_cases); i++) {
        char buf[LK_SECRET_MAX];
        struct lk_secret_view v;
        size_t n;

        if (format_cases[i].fmt != LK_FORMAT_DEFAULT || format_cases[i].want == NULL)
            continue;
        n = strlen(format_cases[i].want);
        memcpy(buf, format_cases[i].want, n + 1);
        for (size_t pos = 0; pos < n; pos++) {
            char orig = buf[pos];
            for (int c = 0; c < 256; c++) {
                if ((char)c == orig)
                    continue;
                buf[pos] = (char)c;
                if (lk_secret_parse(buf, n, &v) != LK_ERR_MALFORMED_KEY)
                    fail_msg("%s with byte %zu changed to 0x%02x accepted", format_cases[i].want,
                             pos, (unsigned)c);
            }
            buf[pos] = orig;
        }
        assert_int_equal(lk_secret_parse(buf, n, &v), LK_OK);
    }
}

/* Truncations and extensions of a valid secret are rejected. */
static void test_parse_lengths(void **state)
{
    const char *good = "flw_sk_live_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf2PGtLo";
    char buf[LK_SECRET_MAX + 8];
    size_t n = strlen(good);
    struct lk_secret_view v;

    (void)state;
    memset(buf, 'A', sizeof(buf));
    memcpy(buf, good, n);
    for (size_t len = 0; len < sizeof(buf); len++) {
        enum lk_err want = len == n ? LK_OK : LK_ERR_MALFORMED_KEY;
        if (lk_secret_parse(buf, len, &v) != want)
            fail_msg("length %zu: want %d", len, want);
        /* Dropping leading characters shortens the prefix; only "sk" stays valid, and
         * it changes the checksummed text, so every suffix is rejected. */
        if (len > 0 && len <= n && lk_secret_parse(good + len, n - len, &v) != LK_ERR_MALFORMED_KEY)
            fail_msg("suffix from %zu accepted", len);
    }
}

static const struct {
    const char *secret;
    const char *hint;
} hint_cases[] = {
    {"lk_live_00000000000000000000000000000000000000000003QjUmf", "lk_live_...0000"},
    {"lk_test_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp10AyO7N", "lk_test_...8Xp1"},
    {"fsk_test_0Eoh211G4c8wtVWM00my5rsNSFlKgaWqQ4mb8gdEqno1K7vur", "fsk_test_...Eqno"},
    {"flw_sk_live_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf2PGtLo", "flw_sk_live_...IDlf"},
    {"abcdefghijklmnop_test_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf1unzqr",
     "abcdefghijklmnop_test_...IDlf"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "...1e1f"},
    {"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff3fa9", "...3fa9"},
};

static void test_hint(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(hint_cases); i++) {
        struct lk_secret_view v;
        char out[LK_HINT_MAX];

        if (lk_secret_parse(hint_cases[i].secret, strlen(hint_cases[i].secret), &v) != LK_OK)
            fail_msg("hint case %zu: %s does not parse", i, hint_cases[i].secret);
        memset(out, 'X', sizeof(out));
        lk_secret_hint(&v, out);
        if (strcmp(out, hint_cases[i].hint) != 0)
            fail_msg("hint case %zu: got %s, want %s", i, out, hint_cases[i].hint);
    }
}

static const struct {
    const char *p;
    bool valid;
} prefix_cases[] = {
    {"lk", true},
    {"fsk", true},
    {"flw_sk", true},
    {"a", true},
    {"a_", true},
    {"z9", true},
    {"abcdefghijklmnop", true},
    {"a_0123456789_abc", true},
    {"", false},
    {"abcdefghijklmnopq", false},
    {"Lk", false},
    {"lK", false},
    {"1lk", false},
    {"_lk", false},
    {"lk-x", false},
    {"lk.x", false},
    {"lk x", false},
    {"lk\xc3\xa9", false},
};

static void test_prefix_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(prefix_cases); i++)
        if (lk_secret_prefix_valid(prefix_cases[i].p, strlen(prefix_cases[i].p)) !=
            prefix_cases[i].valid)
            fail_msg("prefix \"%s\": want %d", prefix_cases[i].p, prefix_cases[i].valid);
    /* The length bounds the check: "lk" is valid inside a longer buffer. */
    assert_true(lk_secret_prefix_valid("lk-x", 2));
}

static const struct {
    const char *s;
    int rc;
    enum lk_env env;
} env_cases[] = {
    {"live", 0, LK_ENV_LIVE},
    {"test", 0, LK_ENV_TEST},
    {"LIVE", -1, 0},
    {"Test", -1, 0},
    {"", -1, 0},
    {"liv", -1, 0},
    {"lives", -1, 0},
    {"prod", -1, 0},
    {" live", -1, 0},
};

static void test_env(void **state)
{
    (void)state;
    assert_string_equal(lk_env_name(LK_ENV_LIVE), "live");
    assert_string_equal(lk_env_name(LK_ENV_TEST), "test");
    for (size_t i = 0; i < LK_ARRAY_LEN(env_cases); i++) {
        enum lk_env e = (enum lk_env)7;
        if (lk_env_parse(env_cases[i].s, &e) != env_cases[i].rc)
            fail_msg("env \"%s\": want rc %d", env_cases[i].s, env_cases[i].rc);
        if (env_cases[i].rc == 0 && e != env_cases[i].env)
            fail_msg("env \"%s\": got %d", env_cases[i].s, e);
        if (env_cases[i].rc == 0)
            assert_string_equal(lk_env_name(e), env_cases[i].s);
    }
}

/* The checksum of every prefix length (so every count of 16-byte steps and
 * every tail length the CRC meets) is zlib's: what lk_secret_format writes,
 * and what lk_secret_parse accepts. */
static void test_checksum_is_zlibs_for_every_length(void **state)
{
    (void)state;
    for (size_t plen = 1; plen <= LK_PREFIX_MAX; plen++) {
        for (int round = 0; round < 64; round++) {
            uint8_t bytes[LK_SECRET_BYTES];
            char prefix[LK_PREFIX_MAX + 1], got[LK_SECRET_MAX], want[LK_SECRET_MAX];
            struct lk_secret_view v;
            size_t n;

            for (size_t i = 0; i < plen; i++)
                prefix[i] = (char)(i == 0 ? 'a' + round % 26 : "ab_9z"[(i + (size_t)round) % 5]);
            prefix[plen] = '\0';
            for (size_t i = 0; i < sizeof(bytes); i++)
                bytes[i] = (uint8_t)(round * 131 + (int)i * 29 + (int)plen);
            n = lk_secret_format(LK_FORMAT_DEFAULT, prefix, round % 2 ? LK_ENV_TEST : LK_ENV_LIVE,
                                 bytes, got);
            memcpy(want, got, n - CHECK_LEN);
            assert_int_equal(add_check(want, n - CHECK_LEN), n);
            assert_string_equal(got, want);
            assert_int_equal(lk_secret_parse(got, n, &v), LK_OK);
            got[n - 1 - (size_t)round % CHECK_LEN] ^= 1; /* a changed checksum */
            assert_int_equal(lk_secret_parse(got, n, &v), LK_ERR_MALFORMED_KEY);
        }
    }
}

/* lk_secret_diagnose names the first thing wrong, and nothing for a good secret. */
static void test_diagnose(void **state)
{
    static const uint8_t bytes[LK_SECRET_BYTES] = {1, 2, 3};
    char good[LK_SECRET_MAX], s[LK_SECRET_MAX * 2];
    size_t n = lk_secret_format(LK_FORMAT_DEFAULT, "lk", LK_ENV_LIVE, bytes, good);
    const struct {
        const char *what, *why;
    } cases[] = {
        {"", "empty"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF",
         "64 characters but not all lowercase hex (the legacy format)"},
        {"lk_live_short", "wrong length: want PREFIX_live_ or PREFIX_test_ and 49 base62 characters"},
        {NULL, NULL},
    };

    (void)state;
    assert_null(lk_secret_diagnose(good, n));
    assert_null(lk_secret_diagnose("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                   64));
    for (size_t i = 0; cases[i].what != NULL; i++)
        assert_string_equal(lk_secret_diagnose(cases[i].what, strlen(cases[i].what)), cases[i].why);
    /* One character of the body changed: the checksum says so. */
    memcpy(s, good, n + 1);
    s[12] = s[12] == 'A' ? 'B' : 'A';
    assert_string_equal(lk_secret_diagnose(s, n),
                        "the checksum does not match: a character was changed, lost or added");
    /* One character lost: the environment is no longer where it belongs. */
    memmove(s + 12, good + 13, n - 12);
    assert_string_equal(lk_secret_diagnose(s, n - 1),
                        "wrong length: want 49 base62 characters after _live_ or _test_");
    memcpy(s, good, n + 1);
    memcpy(s + 2, "_prod_", 6);
    assert_string_equal(lk_secret_diagnose(s, n), "no _live_ or _test_ where the environment belongs");
    memcpy(s, good, n + 1);
    s[0] = 'L';
    assert_string_equal(lk_secret_diagnose(s, n),
                        "the prefix must be a lowercase letter, then up to 15 of a-z, 0-9 and _");
    memcpy(s, good, n + 1);
    s[n - 1] = '-';
    assert_string_equal(lk_secret_diagnose(s, n),
                        "the body and checksum must be base62 characters (0-9, A-Z, a-z)");
}

/* The scan finds a secret anywhere in a text, whole, cut short, changed (no
 * checksum is asked), its environment in any case, or its body alone; what
 * only looks a little like one (a Git object name, a hint, a word) is none. */
static void test_scan(void **state)
{
    uint8_t bytes[LK_SECRET_BYTES];
    char good[LK_SECRET_MAX], text[256], hex[LK_SECRET_MAX];
    size_t n, h;

    (void)state;
    fill_bytes(FILL_SEQ1, bytes);
    n = lk_secret_format(LK_FORMAT_DEFAULT, "acme_x", LK_ENV_LIVE, bytes, good);
    h = lk_secret_format(LK_FORMAT_HEX, NULL, LK_ENV_LIVE, bytes, hex);
    assert_true(lk_secret_scan(good, n));
    snprintf(text, sizeof(text), "https://x/?k=%s&y=1", good);
    assert_true(lk_secret_scan(text, strlen(text)));
    assert_true(lk_secret_scan(good, 12 + LK_SECRET_SCAN_AFTER_ENV)); /* cut short */
    snprintf(text, sizeof(text), "%.*s", (int)n, good);
    text[n - 1] = text[n - 1] == 'a' ? 'b' : 'a'; /* checksum broken */
    assert_true(lk_secret_scan(text, n));
    snprintf(text, sizeof(text), "zz_LiVe_%.20s", good + 12);
    assert_true(lk_secret_scan(text, strlen(text)));
    assert_true(lk_secret_scan(good + 12, n - 12)); /* the body without its prefix */
    assert_true(lk_secret_scan(hex, h));
    snprintf(text, sizeof(text), "/%.*s/", LK_SECRET_SCAN_RUN, hex);
    assert_true(lk_secret_scan(text, strlen(text)));
    /* none */
    assert_false(lk_secret_scan("", 0));
    snprintf(text, sizeof(text), "https://github.com/o/r/blob/%.40s/config.env", hex);
    assert_false(lk_secret_scan(text, strlen(text)));
    assert_false(lk_secret_scan("lk_live_...Ab3x", 15));
    snprintf(text, sizeof(text), "run_test_%.*s", LK_SECRET_SCAN_AFTER_ENV - 1, good + 12);
    assert_false(lk_secret_scan(text, strlen(text)));
    assert_false(lk_secret_scan("latchkey_api_key", 16));
    assert_false(lk_secret_scan("_live_", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_is_zlibs_for_every_length),
        cmocka_unit_test(test_format_round_trip),  cmocka_unit_test(test_format_random),
        cmocka_unit_test(test_parse_rejects),      cmocka_unit_test(test_parse_add_check_sane),
        cmocka_unit_test(test_parse_embedded_nul), cmocka_unit_test(test_parse_single_char_changes),
        cmocka_unit_test(test_parse_lengths),      cmocka_unit_test(test_hint),
        cmocka_unit_test(test_prefix_valid),       cmocka_unit_test(test_env),
        cmocka_unit_test(test_diagnose), cmocka_unit_test(test_scan),
        cmocka_unit_test(test_parse_shape_then_checksum),
    };
    return cmocka_run_group_tests_name("core/secret", tests, NULL, NULL);
}
