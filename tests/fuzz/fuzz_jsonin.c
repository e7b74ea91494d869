/*
 * fuzz_jsonin.c — every JSON request decoder on the same input: none may crash,
 * leak or accept a body that is not a JSON object.
 */
#include <stddef.h>
#include <stdint.h>

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
    if (lk_jsonin_workspace(body, size, &ws, &ei) == LK_OK && ws.name[0] == '\0')
        __builtin_trap();
    return 0;
}
