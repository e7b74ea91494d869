/*
 * fuzz_leakreport.c — lk_leak_report_parse on arbitrary bytes (a leak report's
 * body): no crash or leak; a refusal says why in valid UTF-8 and never quotes
 * the input; what it accepts holds 1..1000 matches whose fields are within
 * their caps, valid UTF-8 and free of NUL.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/leakreport.h"
#include "core/quote.h"

#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_leak_report r;
    struct lk_errinfo ei;

    if (size > 64 * 1024)
        return 0;
    lk_errinfo_clear(&ei);
    if (lk_leak_report_parse((const char *)data, size, &r, &ei) != LK_OK) {
        CHECK(r.n == 0 && r.items == NULL && ei.detail[0] != '\0');
        CHECK(lk_utf8_valid(ei.detail, strlen(ei.detail)));
        CHECK(strstr(ei.detail, "near") == NULL);
        return 0;
    }
    CHECK(r.n >= 1 && r.n <= LK_LEAK_MAX_TOKENS);
    for (size_t i = 0; i < r.n; i++) {
        const struct lk_leak_item *it = &r.items[i];
        CHECK(it->token_len >= 1 && it->token_len <= LK_LEAK_TOKEN_MAX);
        CHECK(memchr(it->token, '\0', it->token_len) == NULL && it->token[it->token_len] == '\0');
        CHECK(lk_utf8_valid(it->token, it->token_len));
        CHECK(strlen(it->url) <= LK_LEAK_URL_MAX && lk_utf8_valid(it->url, strlen(it->url)));
        CHECK(strlen(it->type) <= LK_LEAK_TYPE_MAX && lk_utf8_valid(it->type, strlen(it->type)));
        CHECK(strlen(it->source) <= LK_LEAK_SOURCE_MAX);
    }
    lk_leak_report_release(&r);
    return 0;
}
