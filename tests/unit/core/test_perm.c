/*
 * test_perm.c — src/core/perm.c: permission strings and wildcard coverage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/perm.h"
#include "base/common.h"

static const struct {
    const char *p;
    bool valid;
} valid_cases[] = {
    {"*", true},
    {"all", true},
    {"storage:*", true},
    {"*:read", true},
    {"*:*", true},
    {"content.products:read", true},
    {"storage:read", true},
    {"a", true},
    {"a:b:c", true},
    {"a:*:c", true},
    {"all:read", true},
    {"a-b_c.d:x-9", true},
    {"0:1", true},
    {"storage", true},
    {"", false},
    {":", false},
    {"::", false},
    {"a:", false},
    {":a", false},
    {"a::b", false},
    {"storage:", false},
    {"Storage:read", false},
    {"storage:READ", false},
    {"ALL", false},
    {"All", false},
    {"st orage:read", false},
    {"storage:re*d", false},
    {"storage:read*", false},
    {"**", false},
    {"*a", false},
    {"a*", false},
    {"*:**", false},
    {"storage/read", false},
    {"storage;read", false},
    {"storage:read\n", false},
    {"\tstorage:read", false},
    {"st\xc3\xa9:read", false},
    {"storage:read ", false},
    {"storage,read", false},
};

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(valid_cases); i++)
        if (lk_perm_valid(valid_cases[i].p, strlen(valid_cases[i].p)) != valid_cases[i].valid)
            fail_msg("\"%s\": want valid=%d", valid_cases[i].p, valid_cases[i].valid);
}

/* 1–128 bytes: 128 is the longest valid permission, 129 is too long. */
static void test_valid_lengths(void **state)
{
    char buf[LK_PERM_MAX_LEN + 2];

    (void)state;
    memset(buf, 'a', sizeof(buf));
    for (size_t len = 0; len <= LK_PERM_MAX_LEN + 1; len++)
        if (lk_perm_valid(buf, len) != (len >= 1 && len <= LK_PERM_MAX_LEN))
            fail_msg("%zu bytes of 'a'", len);
    /* The same with segments: "a:a:a:...". */
    for (size_t i = 1; i < sizeof(buf); i += 2)
        buf[i] = ':';
    assert_true(lk_perm_valid(buf, LK_PERM_MAX_LEN - 1));
    assert_false(lk_perm_valid(buf, LK_PERM_MAX_LEN));     /* ends in ':' */
    assert_false(lk_perm_valid(buf, LK_PERM_MAX_LEN + 1)); /* too long */
}

/* Only the given length is read: a valid prefix of a longer buffer is valid. */
static void test_valid_uses_len(void **state)
{
    const char *s = "storage:read\n!!";

    (void)state;
    assert_true(lk_perm_valid(s, 12));
    assert_false(lk_perm_valid(s, 13));
    assert_false(lk_perm_valid("a\0b", 3)); /* an embedded NUL is a bad character */
}

/* Every byte outside [a-z0-9_.-:*] makes a permission invalid. */
static void test_valid_every_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char p[3] = {'a', (char)c, 'b'};
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == '-' || c == ':';
        if (lk_perm_valid(p, 3) != ok)
            fail_msg("\"a\\x%02xb\": want %d", (unsigned)c, ok);
    }
}

/* The rule, spelled out: non-empty segments split by ':', each exactly "*" or
 * of [a-z0-9_.-] alone. */
static bool reference_valid(const char *p, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > LK_PERM_MAX_LEN)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != ':')
            continue;
        if (i == start)
            return false;
        if (!(i - start == 1 && p[start] == '*'))
            for (size_t j = start; j < i; j++) {
                char c = p[j];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '.' || c == '-'))
                    return false;
            }
        start = i + 1;
    }
    return true;
}

/* Every string of up to six bytes over the bytes that matter agrees with it. */
static void test_valid_agrees_with_the_rule(void **state)
{
    static const char alpha[] = {'a', ':', '*', '-', 'Z', '\0', '\xff'};
    enum { K = sizeof(alpha), MAXLEN = 6 };
    char p[MAXLEN];

    (void)state;
    for (size_t len = 0; len <= MAXLEN; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= K;
        for (size_t n = 0; n < total; n++) {
            size_t v = n;
            for (size_t i = 0; i < len; i++, v /= K)
                p[i] = alpha[v % K];
            if (lk_perm_valid(p, len) != reference_valid(p, len))
                fail_msg("\"%.*s\" (len %zu): want %d", (int)len, p, len,
                         reference_valid(p, len));
        }
    }
}

static const struct {
    const char *granted;
    const char *needed;
    bool covers;
} covers_cases[] = {
    {"*", "storage:read", true},
    {"*", "a", true},
    {"*", "a:b:c", true},
    {"*", "*", true},
    {"all", "storage:read", true},
    {"all", "content.products:read", true},
    {"all", "all", true},
    {"storage:*", "storage:read", true},
    {"storage:*", "storage:write", true},
    {"storage:*", "storage:*", true},
    {"storage:*", "storagex:read", false},
    {"storage:*", "stor:read", false},
    {"storage:*", "storage", false},
    {"storage:*", "storage:read:x", false},
    {"storage:*", "content:read", false},
    {"*:read", "storage:read", true},
    {"*:read", "content.products:read", true},
    {"*:read", "storage:write", false},
    {"*:read", "storage:reads", false},
    {"*:read", "a:b:read", false},
    {"*:read", "read", false},
    {"*:*", "a:b", true},
    {"*:*", "a", false},
    {"*:*", "a:b:c", false},
    {"content.products:read", "content.products:read", true},
    {"content.products:read", "content.products:write", false},
    {"content.products:read", "content:read", false},
    {"content.products:read", "content.product:read", false},
    {"content.products:read", "content.products:reads", false},
    {"content.products:read", "content.products", false},
    {"content.products:read", "content.products:read:x", false},
    {"content:read", "content.products:read", false},
    {"a:*:c", "a:b:c", true},
    {"a:*:c", "a:b:d", false},
    {"a:*:c", "a:c", false},
    {"storage:read", "*", false},
    {"storage:read", "all", false},
    {"storage:read", "storage:*", false},
    {"storage:read", "*:read", false},
    {"storage", "storage", true},
    {"storage", "storage:read", false},
    {"all:read", "all:read", true},
    {"all:read", "x:read", false},
    {"x:read", "all:read", false},
};

static void test_covers(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(covers_cases); i++) {
        const char *g = covers_cases[i].granted, *n = covers_cases[i].needed;
        if (!lk_perm_valid(g, strlen(g)) || !lk_perm_valid(n, strlen(n)))
            fail_msg("covers case %zu uses an invalid permission", i);
        if (lk_perm_covers(g, strlen(g), n, strlen(n)) != covers_cases[i].covers)
            fail_msg("\"%s\" covers \"%s\": want %d", g, n, covers_cases[i].covers);
    }
}

/* Every valid permission covers itself, and "*" and "all" cover every one. */
static void test_covers_reflexive(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(valid_cases); i++) {
        const char *p = valid_cases[i].p;
        size_t n = strlen(p);
        if (!valid_cases[i].valid)
            continue;
        if (!lk_perm_covers(p, n, p, n))
            fail_msg("\"%s\" does not cover itself", p);
        if (!lk_perm_covers("*", 1, p, n) || !lk_perm_covers("all", 3, p, n))
            fail_msg("\"*\" or \"all\" does not cover \"%s\"", p);
    }
}

/* Only the given lengths are read. */
static void test_covers_uses_len(void **state)
{
    (void)state;
    assert_true(lk_perm_covers("storage:readXX", 12, "storage:read", 12));
    assert_true(lk_perm_covers("storage:*XX", 9, "storage:readYY", 12));
    assert_false(lk_perm_covers("storage:read", 12, "storage:readYY", 13));
    assert_true(lk_perm_covers("allx", 3, "a:b", 3));
    assert_false(lk_perm_covers("allx", 4, "a:b", 3));
}

/* The rule, spelled out: both split at ':' into the same number of segments,
 * each granted segment "*" or equal to the needed one ("*" or "all" alone
 * covers everything). */
static bool covers_by_rule(const char *g, size_t glen, const char *n, size_t nlen)
{
    size_t gi = 0, ni = 0;

    if ((glen == 1 && g[0] == '*') || (glen == 3 && memcmp(g, "all", 3) == 0))
        return true;
    for (;;) {
        size_t ge = gi, ne = ni;
        while (ge < glen && g[ge] != ':')
            ge++;
        while (ne < nlen && n[ne] != ':')
            ne++;
        if (!(ge - gi == 1 && g[gi] == '*') &&
            (ge - gi != ne - ni || memcmp(g + gi, n + ni, ge - gi) != 0))
            return false;
        if (ge == glen || ne == nlen)
            return ge == glen && ne == nlen;
        gi = ge + 1;
        ni = ne + 1;
    }
}

/* Every pair of strings of up to five bytes over "ab*:", valid or not: the
 * byte-by-byte walk answers as the rule does. */
static void test_covers_agrees_with_the_rule(void **state)
{
    static const char al[] = "ab*:";
    char g[5], n[5];

    (void)state;
    for (size_t gl = 0; gl <= 5; gl++)
        for (unsigned gc = 0; gc < 1u << (2 * gl); gc++) {
            for (size_t i = 0; i < gl; i++)
                g[i] = al[(gc >> (2 * i)) & 3];
            for (size_t nl = 0; nl <= 5; nl++)
                for (unsigned nc = 0; nc < 1u << (2 * nl); nc++) {
                    for (size_t i = 0; i < nl; i++)
                        n[i] = al[(nc >> (2 * i)) & 3];
                    if (lk_perm_covers(g, gl, n, nl) != covers_by_rule(g, gl, n, nl))
                        fail_msg("'%.*s' covers '%.*s'?", (int)gl, g, (int)nl, n);
                }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),           cmocka_unit_test(test_valid_lengths),
        cmocka_unit_test(test_valid_uses_len),  cmocka_unit_test(test_valid_every_byte),
        cmocka_unit_test(test_covers),          cmocka_unit_test(test_covers_reflexive),
        cmocka_unit_test(test_covers_uses_len),
        cmocka_unit_test(test_valid_agrees_with_the_rule),
        cmocka_unit_test(test_covers_agrees_with_the_rule),
    };
    return cmocka_run_group_tests_name("core/perm", tests, NULL, NULL);
}
