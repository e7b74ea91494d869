/*
 * hotbody.h — a scanner for the POST /v1/verify bodies nearly every caller sends
 * (`{"key":"…"}`, maybe with "environment", "permissions" and "cost"), read
 * without building a jansson tree (docs/internals/jsonin.md, "The hot body").
 *
 * It takes only a strict subset of JSON it can read completely: one object of
 * distinct known members, strings of printable ASCII without escapes, a cost
 * of plain digits. Anything else, valid or not, it declines, and the caller
 * decodes the body with lk_jsonin_verify(), which gives every answer, error or
 * not, exactly as before. Whatever it accepts, lk_jsonin_verify() accepts with
 * the same result (tests/fuzz/fuzz_hotbody.c checks that on every input).
 * Pure: no I/O, no globals, safe from any thread.
 */
#ifndef LK_HOTBODY_H
#define LK_HOTBODY_H

#include <stdbool.h>
#include <stddef.h>

#include "http/jsonin.h"

/* True: body decoded into *out (release with lk_verify_body_release()).
 * False: declined, *out is zeroed and holds nothing; use lk_jsonin_verify(). */
bool lk_hotbody_verify(const char *body, size_t len, struct lk_verify_body *out /* OUT */);

#endif
