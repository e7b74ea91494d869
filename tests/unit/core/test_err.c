/*
 * test_err.c — src/core/err.c and err.def: the outcome table of DESIGN §4.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "base/common.h"

/* DESIGN §4, verbatim: the contract clients and the black-box tests rely on. */
static const struct {
    enum lk_err e;
    const char *code;
    int status;
} design_cases[] = {
    {LK_ERR_MISSING_KEY, "missing_key", 401},
    {LK_ERR_MALFORMED_KEY, "malformed_key", 401},
    {LK_ERR_INVALID_KEY, "invalid_key", 401},
    {LK_ERR_EXPIRED_KEY, "expired_key", 401},
    {LK_ERR_REVOKED_KEY, "revoked_key", 401},
    {LK_ERR_ENVIRONMENT_MISMATCH, "environment_mismatch", 401},
    {LK_ERR_INACTIVE_KEY, "inactive_key", 403},
    {LK_ERR_INSUFFICIENT_PERMISSIONS, "insufficient_permissions", 403},
    {LK_ERR_SPEND_CAP_EXCEEDED, "spend_cap_exceeded", 402},
    {LK_ERR_INSUFFICIENT_CREDITS, "insufficient_credits", 402},
    {LK_ERR_RATE_LIMITED, "rate_limited", 429},
    {LK_ERR_QUOTA_EXCEEDED, "quota_exceeded", 429},
    {LK_ERR_TOO_MANY_REQUESTS, "too_many_requests", 429},
};

static void test_design_outcomes(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(design_cases); i++) {
        enum lk_err e = design_cases[i].e;
        if (strcmp(lk_err_code(e), design_cases[i].code) != 0)
            fail_msg("enum %d: code %s, want %s", e, lk_err_code(e), design_cases[i].code);
        if (lk_err_status(e) != design_cases[i].status)
            fail_msg("%s: status %d, want %d", design_cases[i].code, lk_err_status(e),
                     design_cases[i].status);
        if (lk_err_from_code(design_cases[i].code) != e)
            fail_msg("%s: lk_err_from_code gives %d", design_cases[i].code,
                     lk_err_from_code(design_cases[i].code));
    }
}

/* err.def: "The first rows are DESIGN §4's verification outcomes, in the order the
 * pipeline checks them", right after OK. */
static void test_design_order(void **state)
{
    (void)state;
    assert_int_equal(LK_OK, 0);
    assert_int_equal(LK_ERR_OK, 0);
    assert_string_equal(lk_err_code(LK_OK), "valid");
    assert_int_equal(lk_err_status(LK_OK), 200);
    for (size_t i = 0; i < LK_ARRAY_LEN(design_cases); i++)
        if ((size_t)design_cases[i].e != i + 1)
            fail_msg("%s is row %d, want %zu", design_cases[i].code, design_cases[i].e, i + 1);
}

static bool is_code_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

static void test_every_row(void **state)
{
    (void)state;
    for (int i = 0; i < LK_ERR__COUNT; i++) {
        enum lk_err e = (enum lk_err)i;
        const char *code = lk_err_code(e);
        int status = lk_err_status(e);

        assert_non_null(code);
        if (code[0] == '\0')
            fail_msg("row %d: empty code", i);
        for (const char *c = code; *c; c++)
            if (!is_code_char(*c))
                fail_msg("row %d: code %s is not snake_case", i, code);
        if (lk_err_message(e) == NULL || lk_err_message(e)[0] == '\0')
            fail_msg("%s: empty message", code);
        if (lk_err_hint(e) == NULL || lk_err_hint(e)[0] == '\0')
            fail_msg("%s: empty hint_for_ai", code);
        if (i == LK_OK ? status != 200 : (status < 400 || status > 599))
            fail_msg("%s: status %d", code, status);
        if (lk_err_from_code(code) != e)
            fail_msg("%s: lk_err_from_code gives %d, want %d", code, lk_err_from_code(code), i);
        for (int j = 0; j < i; j++)
            if (strcmp(lk_err_code((enum lk_err)j), code) == 0)
                fail_msg("rows %d and %d share code %s", j, i, code);
    }
}

static void test_out_of_range(void **state)
{
    static const int bad[] = {LK_ERR__COUNT, LK_ERR__COUNT + 1, -1, 1000000};

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        enum lk_err e = (enum lk_err)bad[i];
        assert_string_equal(lk_err_code(e), "internal_error");
        assert_int_equal(lk_err_status(e), 500);
        assert_string_equal(lk_err_message(e), lk_err_message(LK_ERR_INTERNAL));
        assert_string_equal(lk_err_hint(e), lk_err_hint(LK_ERR_INTERNAL));
    }
}

static const char *const unknown_codes[] = {
    "",        "Invalid_key",  "INVALID_KEY", "invalid_key ", " invalid_key",
    "invalid", "invalid_keys", "internal",    "ok",           "rate-limited",
};

static void test_from_code_unknown(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(unknown_codes); i++)
        if (lk_err_from_code(unknown_codes[i]) != LK_ERR__COUNT)
            fail_msg("\"%s\" maps to %d", unknown_codes[i], lk_err_from_code(unknown_codes[i]));
}

static void test_errinfo(void **state)
{
    struct lk_errinfo ei;
    char longfield[200];

    (void)state;
    memset(&ei, 'X', sizeof(ei));
    lk_errinfo_clear(&ei);
    assert_string_equal(ei.field, "");
    assert_string_equal(ei.detail, "");
    assert_int_equal(ei.offset, -1);

    assert_int_equal(lk_errinfo_set(NULL, LK_ERR_BAD_JSON, "f", "x %d", 1), LK_ERR_BAD_JSON);

    assert_int_equal(
        lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "name", "must be at most %d bytes", 64),
        LK_ERR_INVALID_REQUEST);
    assert_string_equal(ei.field, "name");
    assert_string_equal(ei.detail, "must be at most 64 bytes");

    assert_int_equal(lk_errinfo_set(&ei, LK_ERR_BAD_JSON, NULL, NULL), LK_ERR_BAD_JSON);
    assert_string_equal(ei.field, "");
    assert_string_equal(ei.detail, "");

    /* Overlong field and detail are truncated, still NUL-terminated. */
    memset(longfield, 'f', sizeof(longfield) - 1);
    longfield[sizeof(longfield) - 1] = '\0';
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, longfield, "%s%s", longfield, longfield);
    assert_int_equal(strlen(ei.field), sizeof(ei.field) - 1);
    assert_int_equal(strlen(ei.detail), sizeof(ei.detail) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_outcomes),   cmocka_unit_test(test_design_order),
        cmocka_unit_test(test_every_row),         cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_from_code_unknown), cmocka_unit_test(test_errinfo),
    };
    return cmocka_run_group_tests_name("core/err", tests, NULL, NULL);
}
