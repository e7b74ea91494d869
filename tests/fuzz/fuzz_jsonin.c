/*
 * fuzz_jsonin.c — every JSON request decoder on the same input: none may crash,
 * leak or accept a body that breaks its promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/jsonin.h"

#define MAX_INPUT (LK_JSON_MAX_BODY)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_errinfo ei;
    struct lk_verify_body vb;
    struct lk_key_spec spec;
    struct lk_ws_spec ws;
    int64_t grace;
    const char *body = (const char *)data;

    if (size > MAX_INPUT)
        return 0;
    if (lk_jsonin_verify(body, size, &vb, &ei) == LK_OK) {
        if (vb.key != NULL && vb.key_len == 0 && vb.key[0] != '\0')
            __builtin_trap();
        lk_verify_body_release(&vb);
    }
    for (int create = 0; create < 2; create++)
        if (lk_jsonin_key_spec(body, size, create, &spec, &ei) == LK_OK) {
            if (create && !(spec.set & LK_SPEC_NAME))
                __builtin_trap(); /* name is required on create */
            lk_key_spec_release(&spec);
        }
    if (lk_jsonin_regenerate(body, size, &grace, &ei) == LK_OK && (grace < 0 || grace > LK_GRACE_MAX))
        __builtin_trap();
    if (lk_jsonin_workspace(body, size, true, &ws, &ei) == LK_OK && ws.name[0] == '\0')
        __builtin_trap();
    if (lk_jsonin_workspace(body, size, false, &ws, &ei) == LK_OK &&
        ((ws.has_quota && ws.quota < -1) || (ws.has_test_quota && ws.test_quota < -1)))
        __builtin_trap(); /* a quota is a count or unlimited */
    {
        char note[LK_LEDGER_NOTE_MAX + 1];
        int64_t amount;
        if (lk_jsonin_top_up(body, size, &amount, note, sizeof(note), &ei) == LK_OK &&
            (amount < 1 || amount > LK_JSON_MAX_CREDITS || strlen(note) > LK_LEDGER_NOTE_MAX))
            __builtin_trap(); /* credits only ever added, within bounds */
    }
    {
        char email[LK_EMAIL_MAX + 1], password[LK_PASSWORD_MAX + 1], wsid[64];
        enum lk_role role;
        int64_t folder;

        if (lk_jsonin_login(body, size, email, sizeof(email), password, sizeof(password), &ei) ==
                LK_OK &&
            (email[0] == '\0' || password[0] == '\0'))
            __builtin_trap();
        if (lk_jsonin_invite(body, size, email, sizeof(email), &role, &ei) == LK_OK &&
            (!lk_users_email_valid(email) || lk_role_name(role) == NULL))
            __builtin_trap();
        if (lk_jsonin_accept(body, size, wsid, sizeof(wsid), password, sizeof(password), &ei) ==
                LK_OK &&
            (wsid[0] == '\0' || strlen(password) < LK_PASSWORD_MIN))
            __builtin_trap(); /* a token, and a password long enough */
        if (lk_jsonin_role(body, size, &role, &ei) == LK_OK && lk_role_name(role) == NULL)
            __builtin_trap();
        if (lk_jsonin_temp(body, size, &folder, wsid, sizeof(wsid), &spec, &ei) == LK_OK) {
            if ((folder == 0) == (wsid[0] == '\0') ||
                ((spec.set & LK_SPEC_EXPIRES_IN) && spec.expires_in > LK_TEMP_MAX_TTL))
                __builtin_trap(); /* exactly one workspace selector; lifetime in range */
            lk_key_spec_release(&spec);
        }
    }
    return 0;
}
