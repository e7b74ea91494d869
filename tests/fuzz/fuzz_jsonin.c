/*
 * fuzz_jsonin.c — every JSON request decoder on the same input: none may crash,
 * leak, accept a body that breaks its promises, or refuse one with a message that
 * is not bounded, valid UTF-8.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/quote.h"
#include "http/jsonin.h"
#include "http/respond.h"

#define FUZZ_MAX_INPUT (LK_JSON_MAX_BODY)

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Every refusal says why, in valid UTF-8 without control characters, and renders
 * as that specific message (not the fallback). */
static enum lk_err check_err(enum lk_err e, struct lk_errinfo *ei)
{
    json_t *body;
    const char *msg;

    if (e == LK_OK)
        return e;
    if (ei->detail[0] == '\0' || !lk_utf8_valid(ei->detail, strlen(ei->detail)) ||
        !lk_utf8_valid(ei->field, strlen(ei->field)) || has_control(ei->detail) ||
        has_control(ei->field))
        __builtin_trap();
    body = lk_respond_error_body(e, ei, "req_fuzz");
    msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (msg == NULL || strcmp(msg, ei->detail) != 0)
        __builtin_trap();
    json_decref(body);
    return e;
}

/* Clears ei before the call, so a refusal that says nothing is caught. */
#define checked(call, eip) (lk_errinfo_clear(eip), check_err((call), (eip)))

/* True when the decoder accepted; a refusal is checked first. */
#define OK(call) (checked((call), &ei) == LK_OK)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_errinfo ei;
    struct lk_verify_body vb;
    struct lk_key_spec spec;
    struct lk_ws_spec ws;
    int64_t grace;
    const char *body = (const char *)data;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (OK(lk_jsonin_verify(body, size, &vb, &ei))) {
        if (vb.key != NULL && vb.key_len == 0 && vb.key[0] != '\0')
            __builtin_trap();
        lk_verify_body_release(&vb);
    }
    for (int create = 0; create < 2; create++)
        if (OK(lk_jsonin_key_spec(body, size, create, &spec, &ei))) {
            if (create && !(spec.set & LK_SPEC_NAME))
                __builtin_trap(); /* name is required on create */
            if ((spec.set & LK_SPEC_EXPIRES_AT) && create && spec.expires_at == 0)
                __builtin_trap(); /* 0 means "never": only PATCH null may ask for it */
            lk_key_spec_release(&spec);
        }
    if (OK(lk_jsonin_regenerate(body, size, &grace, &ei)) && (grace < 0 || grace > LK_GRACE_MAX))
        __builtin_trap();
    if (OK(lk_jsonin_workspace(body, size, true, &ws, &ei)) && ws.name[0] == '\0')
        __builtin_trap();
    if (OK(lk_jsonin_workspace(body, size, false, &ws, &ei)) &&
        ((ws.has_quota && ws.quota < -1) || (ws.has_test_quota && ws.test_quota < -1)))
        __builtin_trap(); /* a quota is a count or unlimited */
    {
        char note[LK_LEDGER_NOTE_MAX + 1];
        int64_t amount;
        if (OK(lk_jsonin_top_up(body, size, &amount, note, sizeof(note), &ei)) &&
            (amount < 1 || amount > LK_JSON_MAX_CREDITS || strlen(note) > LK_LEDGER_NOTE_MAX))
            __builtin_trap(); /* credits only ever added, within bounds */
    }
    {
        char email[LK_EMAIL_MAX + 1], password[LK_PASSWORD_MAX + 1], wsid[64];
        enum lk_role role;
        int64_t folder;

        if (OK(lk_jsonin_login(body, size, email, sizeof(email), password, sizeof(password),
                               &ei)) &&
            (email[0] == '\0' || password[0] == '\0'))
            __builtin_trap();
        if (OK(lk_jsonin_invite(body, size, email, sizeof(email), &role, &ei)) &&
            (!lk_users_email_valid(email) || lk_role_name(role) == NULL))
            __builtin_trap();
        if (OK(lk_jsonin_accept(body, size, wsid, sizeof(wsid), password, sizeof(password),
                                &ei)) &&
            (wsid[0] == '\0' || strlen(password) < LK_PASSWORD_MIN))
            __builtin_trap(); /* a token, and a password long enough */
        if (OK(lk_jsonin_role(body, size, &role, &ei)) && lk_role_name(role) == NULL)
            __builtin_trap();
        struct lk_webhook_body wb;
        int64_t threshold;
        if (OK(lk_jsonin_webhook(body, size, &wb, &ei)) &&
            (wb.url[0] == '\0' || wb.nevents < 1 || wb.nevents > LK_HOOKS_MAX_EVENTS))
            __builtin_trap(); /* a url, and 1 to 16 event names */
        if (OK(lk_jsonin_webhook_settings(body, size, &threshold, &ei)) && threshold == 0)
            __builtin_trap(); /* a positive threshold, or none (-1) */
        if (OK(lk_jsonin_temp(body, size, &folder, wsid, sizeof(wsid), &spec, &ei))) {
            if ((folder == 0) == (wsid[0] == '\0') ||
                ((spec.set & LK_SPEC_EXPIRES_IN) && spec.expires_in > LK_TEMP_MAX_TTL))
                __builtin_trap(); /* exactly one workspace selector; lifetime in range */
            lk_key_spec_release(&spec);
        }
    }
    return 0;
}
