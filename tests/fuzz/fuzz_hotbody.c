/*
 * fuzz_hotbody.c — the verify body scanner against the full decoder: whatever
 * lk_hotbody_verify() accepts, lk_jsonin_verify() must accept with the very same
 * fields, and a declined body must leave nothing behind. So the scanner first
 * and the decoder after it answer every body as the decoder alone does.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/hotbody.h"
#include "http/jsonin.h"

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_verify_body a, b;
    struct lk_errinfo ei;
    const char *body = (const char *)data;

    if (size > LK_JSON_MAX_BODY)
        return 0;
    if (!lk_hotbody_verify(body, size, &a)) {
        if (a.key != NULL || a.permissions != NULL || a.environment != -1 || a.has_cost ||
            a.cost != 0 || a.rl != NULL)
            __builtin_trap();
        return 0;
    }
    lk_errinfo_clear(&ei);
    if (lk_jsonin_verify(body, size, &b, &ei) != LK_OK)
        __builtin_trap(); /* the scanner took a body the decoder refuses */
    if ((a.key == NULL) != (b.key == NULL) || a.key_len != b.key_len ||
        (a.key != NULL && memcmp(a.key, b.key, a.key_len) != 0) ||
        !same_str(a.permissions, b.permissions) || a.environment != b.environment ||
        a.cost != b.cost || a.has_cost != b.has_cost ||
        /* named rate limits are the decoder's alone: the scanner declines them */
        a.rl != NULL || b.rl != NULL)
        __builtin_trap(); /* the same body read two ways */
    lk_verify_body_release(&a);
    lk_verify_body_release(&b);
    return 0;
}
