/*
 * fuzz_secret.c — lk_secret_parse on arbitrary bytes: it never reads outside s[0..len),
 * and what it accepts is a view inside the input of the shape DESIGN §2 describes;
 * its two steps (lk_secret_parse_shape, lk_secret_checksum_ok) accept exactly
 * what it accepts, and the shape alone already gives that view; lk_secret_scan
 * on the same bytes never reads outside them and finds every secret of that
 * shape.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/secret.h"

#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_secret_view v;
    char hint[LK_HINT_MAX];
    const char *s = (const char *)data;

    if (size > 4 * LK_SECRET_MAX)
        return 0;
    bool found = lk_secret_scan(s, size);
    struct lk_secret_view whole;
    bool parsed = lk_secret_parse(s, size, &whole) == LK_OK;
    if (lk_secret_parse_shape(s, size, &v) != LK_OK) {
        CHECK(!parsed);
        return 0;
    }
    CHECK(parsed == lk_secret_checksum_ok(s, size, &v));
    CHECK(!parsed || memcmp(&whole, &v, sizeof(v)) == 0);
    CHECK(found);
    CHECK(v.body >= s && v.body_len <= size && v.body + v.body_len <= s + size);
    if (v.format == LK_FORMAT_HEX) {
        CHECK(v.body_len == 64 && size == 64 && v.prefix == NULL && v.env == LK_ENV_LIVE);
    } else {
        CHECK(v.format == LK_FORMAT_DEFAULT && v.body_len == 43);
        CHECK(v.env == LK_ENV_LIVE || v.env == LK_ENV_TEST);
        CHECK(v.prefix == s && lk_secret_prefix_valid(v.prefix, v.prefix_len));
        CHECK(v.prefix_len + 6 + 43 + 6 == size && v.body == s + v.prefix_len + 6);
        CHECK(memcmp(s + v.prefix_len + 1, lk_env_name(v.env), 4) == 0);
    }
    lk_secret_hint(&v, hint);
    CHECK(memchr(hint, '\0', sizeof(hint)) != NULL);
    CHECK(memcmp(hint + strlen(hint) - 4, v.body + v.body_len - 4, 4) == 0);
    return 0;
}
