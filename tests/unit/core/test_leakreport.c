/*
 * test_leakreport.c — src/core/leakreport.c: the body of a leak report, GitHub's
 * match list, read into bounded fields.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/leakreport.h"

static void test_githubs_example_body(void **state)
{
    static const char body[] =
        "[\n  {\n    \"token\":\"NMIfyYncKcRALEXAMPLE\",\n    \"type\":\"mycompany_api_token\",\n"
        "    \"url\":\"https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b"
        "600c002/foo/bar.txt\",\n    \"source\":\"content\"\n  }\n]";
    struct lk_leak_report r;

    (void)state;
    assert_int_equal(lk_leak_report_parse(body, strlen(body), &r, NULL), LK_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0].token, "NMIfyYncKcRALEXAMPLE");
    assert_int_equal(r.items[0].token_len, 20);
    assert_string_equal(r.items[0].type, "mycompany_api_token");
    assert_string_equal(r.items[0].source, "content");
    assert_string_equal(r.items[0].url, "https://github.com/octocat/Hello-World/blob/"
                                        "12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt");
    lk_leak_report_release(&r);
}

static void test_optional_fields_and_unknown_members(void **state)
{
    static const char body[] = "[{\"token\":\"a\"},{\"token\":\"b\",\"url\":\"\",\"type\":null,"
                               "\"found_by\":{\"x\":[1]}}]";
    struct lk_leak_report r;

    (void)state;
    assert_int_equal(lk_leak_report_parse(body, strlen(body), &r, NULL), LK_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.items[1].token, "b");
    assert_string_equal(r.items[0].url, "");
    assert_string_equal(r.items[1].type, "");
    lk_leak_report_release(&r);
}

static void test_refusals_name_the_item_and_field(void **state)
{
    static const struct {
        const char *body;
        enum lk_err e;
        const char *field, *detail;
    } cases[] = {
        {"", LK_ERR_BAD_JSON, "body", NULL},
        {"[{\"token\":\"lk_live_secret\"", LK_ERR_BAD_JSON, "body", NULL},
        {"{\"token\":\"a\"}", LK_ERR_INVALID_REQUEST, "body",
         "want a JSON array of matches [{\"token\", ...}]"},
        {"[]", LK_ERR_INVALID_REQUEST, "body", "want a JSON array of matches [{\"token\", ...}]"},
        {"[{\"token\":\"a\"},\"b\"]", LK_ERR_INVALID_REQUEST, "body", "match 2 is not an object"},
        {"[{}]", LK_ERR_INVALID_REQUEST, "token",
         "match 1: token must be a string of 1 to 1024 bytes"},
        {"[{\"token\":\"\"}]", LK_ERR_INVALID_REQUEST, "token",
         "match 1: token must be a string of 1 to 1024 bytes"},
        {"[{\"token\":\"a\",\"url\":[]}]", LK_ERR_INVALID_REQUEST, "url",
         "match 1: url must be a string of at most 2048 bytes"},
        {"[{\"token\":\"a\",\"source\":1}]", LK_ERR_INVALID_REQUEST, "source",
         "match 1: source must be a string of at most 64 bytes"},
        {"[{\"token\":\"a\\u0000b\"}]", LK_ERR_BAD_JSON, "body", NULL},
        {"[{\"token\":\"\xff\"}]", LK_ERR_BAD_JSON, "body", NULL},
    };

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_leak_report r = {(void *)1, 7};
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_leak_report_parse(cases[i].body, strlen(cases[i].body), &r, &ei),
                         cases[i].e);
        assert_int_equal(r.n, 0);
        assert_null(r.items);
        assert_string_equal(ei.field, cases[i].field);
        if (cases[i].detail)
            assert_string_equal(ei.detail, cases[i].detail);
        /* Never a token in a message. */
        assert_null(strstr(ei.detail, "lk_live"));
    }
}

static void test_bounds(void **state)
{
    size_t cap = 16 * (LK_LEAK_MAX_TOKENS + 2) + 4096, n;
    char *body = lk_malloc(cap);
    struct lk_leak_report r;
    struct lk_errinfo ei;

    (void)state;
    /* Exactly the most matches, then one more. */
    for (int extra = 0; extra <= 1; extra++) {
        n = (size_t)snprintf(body, cap, "[");
        for (int i = 0; i < LK_LEAK_MAX_TOKENS + extra; i++)
            n += (size_t)snprintf(body + n, cap - n, "%s{\"token\":\"t\"}", i ? "," : "");
        n += (size_t)snprintf(body + n, cap - n, "]");
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_leak_report_parse(body, n, &r, &ei),
                         extra ? LK_ERR_INVALID_REQUEST : LK_OK);
        if (!extra) {
            assert_int_equal(r.n, LK_LEAK_MAX_TOKENS);
            lk_leak_report_release(&r);
        } else {
            assert_string_equal(ei.detail, "more than 1000 matches in one report");
        }
    }
    /* The longest token and URL, then one byte more. */
    for (int extra = 0; extra <= 1; extra++) {
        /* a URL of "1/" (no run a secret could be) */
        n = (size_t)snprintf(body, cap, "[{\"token\":\"%0*d\",\"url\":\"", LK_LEAK_TOKEN_MAX, 0);
        for (int i = 0; i < LK_LEAK_URL_MAX + extra; i++)
            body[n++] = i % 2 ? '/' : '1';
        n += (size_t)snprintf(body + n, cap - n, "\"}]");
        assert_int_equal(lk_leak_report_parse(body, n, &r, NULL),
                         extra ? LK_ERR_INVALID_REQUEST : LK_OK);
        if (!extra) {
            assert_int_equal(r.items[0].token_len, LK_LEAK_TOKEN_MAX);
            assert_int_equal(strlen(r.items[0].url), LK_LEAK_URL_MAX);
            lk_leak_report_release(&r);
        }
    }
    free(body);
}

/* type, url and source never carry a secret out of the report: the match's own
 * token, another key's secret, as sent or percent-encoded (twice over too). */
static void test_fields_holding_a_secret_are_withheld(void **state)
{
    static const char body[] =
        "[{\"token\":\"tok-1\",\"type\":\"lk_live_0123456789abcdefGHIJ\","
        "\"url\":\"https://x/%256C%256B%255Flive%255F0123456789abcdefGHIJ\","
        "\"source\":\"a tok-1 b\"},"
        "{\"token\":\"tok-2\",\"type\":\"latchkey_api_key\","
        "\"url\":\"https://x/%74ok-2\",\"source\":\"commit\"}]";
    struct lk_leak_report r;
    struct lk_errinfo ei;

    (void)state;
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_leak_report_parse(body, strlen(body), &r, &ei), LK_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.items[0].type, LK_LEAK_WITHHELD);
    assert_string_equal(r.items[0].url, LK_LEAK_WITHHELD);
    assert_string_equal(r.items[0].source, LK_LEAK_WITHHELD);
    assert_string_equal(r.items[1].type, "latchkey_api_key");
    assert_string_equal(r.items[1].url, LK_LEAK_WITHHELD);
    assert_string_equal(r.items[1].source, "commit");
    lk_leak_report_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_githubs_example_body),
        cmocka_unit_test(test_optional_fields_and_unknown_members),
        cmocka_unit_test(test_refusals_name_the_item_and_field),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_fields_holding_a_secret_are_withheld),
    };
    return cmocka_run_group_tests_name("core/leakreport", tests, NULL, NULL);
}
