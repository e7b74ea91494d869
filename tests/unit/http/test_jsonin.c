/*
 * test_jsonin.c — src/http/jsonin.c: the table-driven body decoders. Which
 * error, which field, which words; what an accepted body fills in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/quote.h"
#include "http/jsonin.h"

enum which { VERIFY, CREATE, PATCH, REGEN, WS_CREATE, WS_PATCH, LOGIN, INVITE, ACCEPT, ROLE, TEMP, TOP_UP };

/* Runs decoder w on body; returns its error and leaves the message in ei. */
static enum lk_err run(enum which w, const char *body, struct lk_errinfo *ei)
{
    size_t n = strlen(body);
    enum lk_err e = LK_OK;

    lk_errinfo_clear(ei);
    switch (w) {
    case VERIFY: {
        struct lk_verify_body b;
        if ((e = lk_jsonin_verify(body, n, &b, ei)) == LK_OK)
            lk_verify_body_release(&b);
        break;
    }
    case CREATE:
    case PATCH: {
        struct lk_key_spec s;
        if ((e = lk_jsonin_key_spec(body, n, w == CREATE, &s, ei)) == LK_OK)
            lk_key_spec_release(&s);
        break;
    }
    case REGEN: {
        int64_t g;
        e = lk_jsonin_regenerate(body, n, &g, ei);
        break;
    }
    case WS_CREATE:
    case WS_PATCH: {
        struct lk_ws_spec s;
        e = lk_jsonin_workspace(body, n, w == WS_CREATE, &s, ei);
        break;
    }
    case LOGIN: {
        char email[LK_EMAIL_MAX + 1], pw[LK_PASSWORD_MAX + 1];
        e = lk_jsonin_login(body, n, email, sizeof(email), pw, sizeof(pw), ei);
        break;
    }
    case INVITE: {
        char email[LK_EMAIL_MAX + 1];
        enum lk_role role;
        e = lk_jsonin_invite(body, n, email, sizeof(email), &role, ei);
        break;
    }
    case ACCEPT: {
        char token[64], pw[LK_PASSWORD_MAX + 1];
        e = lk_jsonin_accept(body, n, token, sizeof(token), pw, sizeof(pw), ei);
        break;
    }
    case ROLE: {
        enum lk_role role;
        e = lk_jsonin_role(body, n, &role, ei);
        break;
    }
    case TEMP: {
        char ws[64];
        int64_t folder;
        struct lk_key_spec s;
        if ((e = lk_jsonin_temp(body, n, &folder, ws, sizeof(ws), &s, ei)) == LK_OK)
            lk_key_spec_release(&s);
        break;
    }
    case TOP_UP: {
        char note[201];
        int64_t amount;
        e = lk_jsonin_top_up(body, n, &amount, note, sizeof(note), ei);
        break;
    }
    }
    return e;
}

static const struct {
    enum which w;
    const char *body;
    enum lk_err e;
    const char *field;   /* expected ei.field when refused */
    const char *message; /* expected ei.detail, exactly, when given */
} cases[] = {
    {VERIFY, "{}", LK_OK, NULL, NULL},
    {VERIFY, "[]", LK_ERR_BAD_JSON, "", "the request body must be a JSON object"},
    {VERIFY, "{\"key\": 5}", LK_ERR_INVALID_REQUEST, "key", "field 'key' must be a string"},
    {VERIFY, "{\"cost\": -1}", LK_ERR_INVALID_REQUEST, "cost",
     "field 'cost' must be an integer from 0 to 1000000000"},
    {VERIFY, "{\"environment\": \"prod\"}", LK_ERR_INVALID_REQUEST, "environment",
     "field 'environment' must be \"live\" or \"test\""},
    {VERIFY, "{\"colour\": 1}", LK_ERR_INVALID_REQUEST, "colour", "unknown field 'colour'"},
    {VERIFY, "{\"a\\nb\": 1}", LK_ERR_INVALID_REQUEST, "a\\x0ab", "unknown field 'a\\x0ab'"},
    {VERIFY, "{\"key\": \"lk_live_abc", LK_ERR_BAD_JSON, "", NULL},
    {CREATE, "{}", LK_ERR_INVALID_REQUEST, "name", "field 'name' is required"},
    {CREATE, "{\"name\": \"\"}", LK_ERR_INVALID_REQUEST, "name",
     "field 'name' must be a non-empty string of at most 200 bytes"},
    {CREATE, "{\"name\": \"a\", \"kind\": \"x\"}", LK_ERR_INVALID_REQUEST, "kind", NULL},
    {CREATE, "{\"name\": \"a\", \"permissions\": []}", LK_OK, NULL, NULL},
    {CREATE, "{\"name\": \"a\", \"permissions\": [\"A\"]}", LK_ERR_INVALID_REQUEST,
     "permissions", NULL},
    {CREATE, "{\"name\": \"a\", \"expires_at\": \"1970-01-01T00:00:00Z\"}",
     LK_ERR_INVALID_REQUEST, "expires_at", "expires_at must be in the future"},
    {CREATE, "{\"name\": \"a\", \"expires_at\": null}", LK_ERR_INVALID_REQUEST, "expires_at",
     NULL},
    {CREATE, "{\"name\": \"a\", \"rate_limit\": {\"limit\": 0, \"window_s\": 1}}",
     LK_ERR_INVALID_REQUEST, "rate_limit.limit",
     "field 'rate_limit.limit' must be an integer from 1 to 1000000000"},
    {CREATE, "{\"name\": \"a\", \"rate_limit\": {\"limit\": 1}}", LK_ERR_INVALID_REQUEST,
     "rate_limit", NULL},
    {CREATE, "{\"name\": \"a\", \"rate_limit\": {\"limit\": 1, \"window_s\": 1, \"x\": 1}}",
     LK_ERR_INVALID_REQUEST, "rate_limit", "unknown field 'x'"},
    {CREATE, "{\"name\": \"a\", \"enabled\": true}", LK_ERR_INVALID_REQUEST, "enabled", NULL},
    {CREATE, "{\"name\": \"a\", \"sha256\": \"zz\"}", LK_ERR_INVALID_REQUEST, "sha256", NULL},
    {PATCH, "{}", LK_OK, NULL, NULL},
    {PATCH, "{\"expires_at\": null, \"enabled\": false}", LK_OK, NULL, NULL},
    {PATCH, "{\"kind\": \"root\"}", LK_ERR_INVALID_REQUEST, "kind", NULL},
    {PATCH, "{\"enabled\": 1}", LK_ERR_INVALID_REQUEST, "enabled",
     "field 'enabled' must be true or false"},
    {REGEN, "", LK_OK, NULL, NULL},
    {REGEN, "{\"grace_period_s\": 2592001}", LK_ERR_INVALID_REQUEST, "grace_period_s", NULL},
    {WS_CREATE, "{\"quota\": null}", LK_ERR_INVALID_REQUEST, "name", NULL},
    {WS_CREATE, "{\"name\": \"w\", \"key_prefix\": \"9a\"}", LK_ERR_INVALID_REQUEST,
     "key_prefix",
     "field 'key_prefix' must be 1-16 characters of [a-z0-9_], starting with a letter"},
    {WS_CREATE, "{\"name\": \"w\", \"key_format\": \"hex\", \"quota\": 5}", LK_OK, NULL, NULL},
    {WS_PATCH, "{\"name\": \"w\"}", LK_ERR_INVALID_REQUEST, "name", "unknown field 'name'"},
    {WS_PATCH, "{\"quota\": -1}", LK_ERR_INVALID_REQUEST, "quota",
     "field 'quota' must be an integer of at least 0, or null for unlimited"},
    {LOGIN, "{\"email\": \"a@b.co\"}", LK_ERR_INVALID_REQUEST, "password",
     "field 'password' is required"},
    {LOGIN, "{\"email\": \"a@b.co\", \"password\": \"x\"}", LK_OK, NULL, NULL},
    {INVITE, "{\"role\": \"viewer\"}", LK_ERR_INVALID_REQUEST, "email",
     "field 'email' must be an email address"},
    {INVITE, "{\"email\": \"nope\", \"role\": \"viewer\"}", LK_ERR_INVALID_REQUEST, "email",
     "field 'email' must be an email address"},
    {INVITE, "{\"email\": \"a@b.co\"}", LK_ERR_INVALID_REQUEST, "role", NULL},
    {INVITE, "{\"email\": \"a@b.co\", \"role\": \"viewer\", \"password\": \"longenough\"}",
     LK_ERR_INVALID_REQUEST, "password", "unknown field 'password'"},
    {INVITE, "{\"email\": \"a@b.co\", \"role\": \"viewer\"}", LK_OK, NULL, NULL},
    {ACCEPT, "{\"password\": \"longenough\"}", LK_ERR_INVALID_REQUEST, "token",
     "field 'token' is required"},
    {ACCEPT, "{\"token\": \"lki_x\", \"password\": \"short\"}", LK_ERR_INVALID_REQUEST,
     "password", "field 'password' must be a string of 8 to 200 bytes"},
    {ACCEPT, "{\"token\": \"lki_x\", \"password\": \"longenough\"}", LK_OK, NULL, NULL},
    {ROLE, "{\"role\": \"admin\"}", LK_ERR_INVALID_REQUEST, "role", NULL},
    {ROLE, "{\"role\": \"owner\"}", LK_OK, NULL, NULL},
    {TEMP, "{}", LK_ERR_INVALID_REQUEST, "workspace_id",
     "give storage_folder_id or workspace_id (one of them)"},
    {TEMP, "{\"workspace_id\": \"ws_x\", \"storage_folder_id\": 1}", LK_ERR_INVALID_REQUEST,
     "workspace_id", NULL},
    {TEMP, "{\"workspace_id\": \"ws_x\", \"expires_in\": 86401}", LK_ERR_INVALID_REQUEST,
     "expires_in", NULL},
    /* which workspace is checked before the key's fields */
    {TEMP, "{\"expires_in\": 0}", LK_ERR_INVALID_REQUEST, "workspace_id", NULL},
    {TEMP, "{\"storage_folder_id\": 3, \"permissions\": []}", LK_OK, NULL, NULL},
    {TOP_UP, "{\"note\": \"x\"}", LK_ERR_INVALID_REQUEST, "amount", "field 'amount' is required"},
    {TOP_UP, "{\"amount\": 1, \"note\": \"\"}", LK_OK, NULL, NULL},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_errinfo ei;
        enum lk_err e = run(cases[i].w, cases[i].body, &ei);

        if (e != cases[i].e)
            fail_msg("case %zu %s: error %d, want %d (%s)", i, cases[i].body, e, cases[i].e,
                     ei.detail);
        if (e == LK_OK)
            continue;
        if (cases[i].field && strcmp(ei.field, cases[i].field) != 0)
            fail_msg("case %zu %s: field '%s', want '%s'", i, cases[i].body, ei.field,
                     cases[i].field);
        if (cases[i].message && strcmp(ei.detail, cases[i].message) != 0)
            fail_msg("case %zu %s: message \"%s\", want \"%s\"", i, cases[i].body, ei.detail,
                     cases[i].message);
        if (ei.detail[0] == '\0')
            fail_msg("case %zu %s: refused without a message", i, cases[i].body);
    }
}

/* What accepted bodies fill in: an empty list stays empty; omitted is not set. */
static void test_values(void **state)
{
    struct lk_key_spec s;
    struct lk_verify_body vb;
    struct lk_errinfo ei;
    const char *b = "{\"name\": \"n\", \"permissions\": [], \"daily_spend_cap\": null, "
                    "\"rate_limit\": {\"limit\": 3, \"window_s\": 60}}";

    (void)state;
    assert_int_equal(lk_jsonin_key_spec(b, strlen(b), true, &s, &ei), LK_OK);
    assert_string_equal(s.permissions, "[]");
    assert_string_equal(s.name, "n");
    assert_int_equal(s.set, LK_SPEC_NAME | LK_SPEC_PERMISSIONS | LK_SPEC_SPEND_CAP |
                                LK_SPEC_RATE_LIMIT);
    assert_int_equal(s.daily_spend_cap, -1);
    assert_int_equal(s.rl_limit, 3);
    assert_int_equal(s.rl_window_s, 60);
    lk_key_spec_release(&s);
    b = "{\"key\": \"a\\u0000b\", \"cost\": 0}";
    /* jansson refuses \u0000 by default: a secret with NUL bytes is bad JSON */
    assert_int_equal(lk_jsonin_verify(b, strlen(b), &vb, &ei), LK_ERR_BAD_JSON);
    b = "{\"key\": \"lk\", \"cost\": 0}";
    assert_int_equal(lk_jsonin_verify(b, strlen(b), &vb, &ei), LK_OK);
    assert_true(vb.has_cost);
    assert_int_equal(vb.key_len, 2);
    assert_int_equal(vb.environment, -1);
    lk_verify_body_release(&vb);
}

/* Unknown names of every shape come back bounded and valid UTF-8. */
static void test_unknown_names_are_quoted(void **state)
{
    static const char *const tails[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    char body[512];

    (void)state;
    for (size_t pad = 55; pad < 70; pad++)
        for (size_t t = 0; t < LK_ARRAY_LEN(tails); t++) {
            struct lk_errinfo ei;
            size_t n = 0;
            body[n++] = '{';
            body[n++] = '"';
            memset(body + n, 'a', pad);
            n += pad;
            for (int k = 0; k < 8; k++) {
                memcpy(body + n, tails[t], strlen(tails[t]));
                n += strlen(tails[t]);
            }
            memcpy(body + n, "\":1}", 5);
            for (int w = VERIFY; w <= TOP_UP; w++) {
                assert_int_equal(run((enum which)w, body, &ei), LK_ERR_INVALID_REQUEST);
                assert_true(lk_utf8_valid(ei.detail, strlen(ei.detail)));
                assert_true(lk_utf8_valid(ei.field, strlen(ei.field)));
                assert_true(strlen(ei.field) < LK_QUOTE_SIZE);
            }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_unknown_names_are_quoted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
