/*
 * test_respond.c — src/http/respond.c: an error body is always rendered, in the
 * error shape, as valid UTF-8, whatever a message holds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/quote.h"
#include "http/respond.h"

/* The rendered text parses, has the code and status of e, and returns the message. */
static const char *check(enum lk_err e, const struct lk_errinfo *ei, json_t **doc)
{
    size_t n;
    char *text = lk_respond_error_text(e, ei, "req_test", &n);
    json_t *err;

    assert_non_null(text);
    assert_int_equal(strlen(text), n);
    assert_true(lk_utf8_valid(text, n));
    *doc = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(*doc);
    err = json_object_get(*doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), lk_err_code(e));
    assert_int_equal(json_integer_value(json_object_get(err, "status")), lk_err_status(e));
    assert_string_equal(json_string_value(json_object_get(err, "request_id")), "req_test");
    return json_string_value(json_object_get(err, "message"));
}

static void test_specific_message(void **state)
{
    struct lk_errinfo ei;
    json_t *doc;

    (void)state;
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "name", "field 'name' must be short");
    assert_string_equal(check(LK_ERR_INVALID_REQUEST, &ei, &doc), "field 'name' must be short");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "field")),
                        "name");
    json_decref(doc);
    assert_string_equal(check(LK_ERR_NOT_FOUND, NULL, &doc), lk_err_message(LK_ERR_NOT_FOUND));
    json_decref(doc);
}

/* A message or field that is not UTF-8 (written around lk_errinfo_set) does not
 * abort: the table's message stands in, the field is left out. */
static void test_invalid_utf8_falls_back(void **state)
{
    struct lk_errinfo ei;
    json_t *doc;

    (void)state;
    lk_errinfo_clear(&ei);
    snprintf(ei.detail, sizeof(ei.detail), "unknown field 'a\xc3'");
    snprintf(ei.field, sizeof(ei.field), "a\xc3");
    assert_string_equal(check(LK_ERR_INVALID_REQUEST, &ei, &doc),
                        lk_err_message(LK_ERR_INVALID_REQUEST));
    assert_null(json_object_get(json_object_get(doc, "error"), "field"));
    json_decref(doc);
    snprintf(ei.detail, sizeof(ei.detail), "fine");
    assert_string_equal(check(LK_ERR_INVALID_REQUEST, &ei, &doc), "fine");
    assert_null(json_object_get(json_object_get(doc, "error"), "field"));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specific_message),
        cmocka_unit_test(test_invalid_utf8_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
