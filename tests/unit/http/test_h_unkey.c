/*
 * test_h_unkey.c — src/http/h_unkey.c: the pieces of the Unkey-compatible API
 * that every route shares. Permission names convert both ways, the body table
 * refuses what it must (naming the member as Unkey's errors[].location), rate
 * limit ids are plain, and every error renders in Unkey's shape with the right
 * status, type and content type.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "http/h_unkey.h"

static void test_permission_names(void **state)
{
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"documents.read", "documents:read"}, {"a.*", "a:*"}, {"*", "*"},
        {"a.b.c", "a:b:c"}, {"a:b", NULL}, {"", ""},
    };
    char buf[64];

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        bool ok = lk_unkey_perm_in(cases[i].in, strlen(cases[i].in), buf, sizeof(buf));
        assert_int_equal(ok, cases[i].out != NULL);
        if (ok) {
            char back[64];
            assert_string_equal(buf, cases[i].out);
            lk_unkey_perm_out(buf, strlen(buf), back, sizeof(back));
            assert_string_equal(back, cases[i].in);
        }
    }
    /* too long for the buffer: refused, never cut */
    assert_false(lk_unkey_perm_in("abcdefgh", 8, buf, 8));
    /* out always terminates, cut to fit */
    lk_unkey_perm_out("a:b:c", 5, buf, 4);
    assert_string_equal(buf, "a.b");
}

static void test_permission_lists(void **state)
{
    json_t *in = json_pack("[s, s, s]", "a.b", "c.*", "a.b");
    json_t *bad = json_pack("[s]", "A.b");
    char *out = NULL;
    struct lk_errinfo ei;
    json_t *back;

    (void)state;
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_unkey_perms_in(in, "permissions", &out, &ei), LK_OK);
    assert_string_equal(out, "[\"a:b\",\"c:*\"]"); /* duplicates once */
    back = lk_unkey_perms_out(out);
    assert_int_equal(json_array_size(back), 2);
    assert_string_equal(json_string_value(json_array_get(back, 1)), "c.*");
    free(out);
    assert_int_equal(lk_unkey_perms_in(bad, "permissions", &out, &ei), LK_ERR_INVALID_REQUEST);
    assert_string_equal(ei.field, "permissions");
    assert_null(out);
    json_decref(back);
    json_decref(in);
    json_decref(bad);
}

static const struct lk_unkey_field fields[] = {
    {"keyId", LK_UT_STRING, LK_UF_REQUIRED, 1, 8},
    {"n", LK_UT_INT, 0, 0, 10},
    {"b", LK_UT_BOOL, LK_UF_NULLABLE, 0, 0},
    {"list", LK_UT_STRINGS, 0, 0, 2},
    {"obj", LK_UT_OBJECT, 0, 0, 0},
};

static void test_body_table(void **state)
{
    static const struct {
        const char *body;
        enum lk_err e;
        const char *field;
    } cases[] = {
        {"{\"keyId\": \"k\"}", LK_OK, ""},
        {"{\"keyId\": \"k\", \"b\": null, \"n\": 10, \"list\": [\"x\"], \"obj\": {}}", LK_OK, ""},
        {"", LK_ERR_BAD_JSON, ""},
        {"[1]", LK_ERR_BAD_JSON, ""},
        {"{\"keyId\": \"k\", \"keyId\": \"j\"}", LK_ERR_BAD_JSON, ""},
        {"{}", LK_ERR_INVALID_REQUEST, "keyId"},
        {"{\"keyId\": null}", LK_ERR_INVALID_REQUEST, "keyId"},
        {"{\"keyId\": \"123456789\"}", LK_ERR_INVALID_REQUEST, "keyId"},
        {"{\"keyId\": \"\"}", LK_ERR_INVALID_REQUEST, "keyId"},
        {"{\"keyId\": \"k\", \"n\": 11}", LK_ERR_INVALID_REQUEST, "n"},
        {"{\"keyId\": \"k\", \"n\": 1.0}", LK_ERR_INVALID_REQUEST, "n"},
        {"{\"keyId\": \"k\", \"n\": null}", LK_ERR_INVALID_REQUEST, "n"},
        {"{\"keyId\": \"k\", \"b\": 1}", LK_ERR_INVALID_REQUEST, "b"},
        {"{\"keyId\": \"k\", \"list\": [\"x\", \"y\", \"z\"]}", LK_ERR_INVALID_REQUEST, "list"},
        {"{\"keyId\": \"k\", \"list\": [1]}", LK_ERR_INVALID_REQUEST, "list"},
        {"{\"keyId\": \"k\", \"obj\": []}", LK_ERR_INVALID_REQUEST, "obj"},
        /* an unknown member is named before a missing one */
        {"{\"other\": 1}", LK_ERR_INVALID_REQUEST, "other"},
    };

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_errinfo ei;
        json_t *root = NULL;
        enum lk_err e;

        lk_errinfo_clear(&ei);
        e = lk_unkey_body(cases[i].body, strlen(cases[i].body), fields, LK_ARRAY_LEN(fields),
                          &root, &ei);
        if (e != cases[i].e)
            fail_msg("%s: %d, not %d", cases[i].body, e, cases[i].e);
        assert_string_equal(ei.field, cases[i].field);
        assert_int_equal(root != NULL, e == LK_OK);
        if (e != LK_OK)
            assert_true(ei.detail[0] != '\0');
        json_decref(root);
    }
}

static void test_nested_members_are_named_by_path(void **state)
{
    json_t *obj = json_pack("{s:i, s:i}", "keyId", 1, "x", 2);
    struct lk_errinfo ei;

    (void)state;
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_unkey_object(obj, "credits.", fields, LK_ARRAY_LEN(fields), &ei),
                     LK_ERR_INVALID_REQUEST);
    assert_string_equal(ei.field, "credits.x");
    json_decref(obj);
}

static void test_rate_limit_ids(void **state)
{
    char id[LK_UNKEY_RL_ID_MAX];
    char name[LK_RL_NAME_MAX];

    (void)state;
    lk_unkey_rl_id("key_3ZtW1kq8Q2xYb5Lm", "tokens.per-min", 14, id, sizeof(id));
    assert_string_equal(id, "rl_3ZtW1kq8Q2xYb5Lm_tokens_per_min");
    memset(name, 'n', sizeof(name));
    lk_unkey_rl_id("key_3ZtW1kq8Q2xYb5Lm", name, sizeof(name), id, sizeof(id));
    assert_int_equal(strlen(id), 3 + 16 + 1 + sizeof(name));
    lk_unkey_rl_id("key_3ZtW1kq8Q2xYb5Lm", name, sizeof(name), id, 10);
    assert_string_equal(id, "rl_3ZtW1k");
}

static void test_error_shapes(void **state)
{
    static const struct {
        enum lk_err e;
        const char *field;
        int status;
        const char *type_end, *ctype;
    } cases[] = {
        {LK_ERR_MISSING_KEY, "", 401, "authentication/missing", "application/json"},
        {LK_ERR_MALFORMED_KEY, "", 401, "authentication/malformed", "application/json"},
        {LK_ERR_REVOKED_KEY, "", 401, "authentication/key_not_found", "application/json"},
        {LK_ERR_INSUFFICIENT_PERMISSIONS, "", 403, "authorization/insufficient_permissions",
         "application/json"},
        {LK_ERR_NOT_FOUND, "", 404, "data/key_not_found", "application/json"},
        {LK_ERR_NOT_FOUND, "apiId", 404, "data/api_not_found", "application/json"},
        {LK_ERR_INVALID_REQUEST, "name", 400, "application/invalid_input", "application/json"},
        {LK_ERR_BAD_JSON, "", 400, "application/invalid_input", "application/json"},
        {LK_ERR_TOO_MANY_REQUESTS, "", 429, "about:blank", "application/problem+json"},
        {LK_ERR_STORAGE_UNAVAILABLE, "", 503, "application/service_unavailable",
         "application/json"},
        {LK_ERR_INTERNAL, "", 500, "application/unexpected_error", "application/json"},
    };

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_errinfo ei;
        struct lk_unkey_error ue;
        json_t *doc, *err;
        const char *type;

        lk_errinfo_clear(&ei);
        if (cases[i].field[0])
            lk_errinfo_set(&ei, cases[i].e, cases[i].field, "bad %s", cases[i].field);
        lk_unkey_error_render(cases[i].e, &ei, "req_test", &ue);
        assert_int_equal(ue.status, cases[i].status);
        assert_string_equal(ue.content_type, cases[i].ctype);
        doc = json_loadb(ue.body, ue.len, 0, NULL);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "meta"),
                                                              "requestId")),
                            "req_test");
        err = json_object_get(doc, "error");
        assert_int_equal(json_integer_value(json_object_get(err, "status")), cases[i].status);
        type = json_string_value(json_object_get(err, "type"));
        assert_true(strlen(type) >= strlen(cases[i].type_end));
        assert_string_equal(type + strlen(type) - strlen(cases[i].type_end), cases[i].type_end);
        assert_true(json_string_length(json_object_get(err, "title")) > 0);
        assert_true(json_string_length(json_object_get(err, "detail")) > 0);
        assert_int_equal(json_object_get(err, "errors") != NULL, cases[i].status == 400);
        if (cases[i].status == 400 && cases[i].field[0]) {
            json_t *one = json_array_get(json_object_get(err, "errors"), 0);
            char want[80];
            snprintf(want, sizeof(want), "body.%s", cases[i].field);
            assert_string_equal(json_string_value(json_object_get(one, "location")), want);
        }
        json_decref(doc);
        free(ue.body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permission_names),
        cmocka_unit_test(test_permission_lists),
        cmocka_unit_test(test_body_table),
        cmocka_unit_test(test_nested_members_are_named_by_path),
        cmocka_unit_test(test_rate_limit_ids),
        cmocka_unit_test(test_error_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
