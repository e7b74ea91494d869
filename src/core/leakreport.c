#include "core/leakreport.h"

#include <jansson.h>
#include <openssl/crypto.h>

#include "base/common.h"
#include "core/secret.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_leak_report_release(struct lk_leak_report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->items[i].token != NULL) {
            OPENSSL_cleanse(r->items[i].token, r->items[i].token_len);
            free(r->items[i].token);
        }
    }
    free(r->items);
    r->items = NULL;
    r->n = 0;
}

/* An optional string member into dst (room for max + 1). -1 when present and
 * not a string or longer than max. */
static int opt_string(json_t *o, const char *name, char *dst, size_t max)
{
    json_t *v = json_object_get(o, name);

    dst[0] = '\0';
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v));
    dst[json_string_length(v)] = '\0';
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the %XX escapes of s[0..*len) in place; false when there were none. */
static bool percent_decode(char *s, size_t *len)
{
    size_t r = 0, w = 0;
    bool changed = false;

    while (r < *len) {
        int hi, lo;
        if (s[r] == '%' && r + 2 < *len &&
            (hi = hex_value(s[r + 1])) >= 0 && (lo = hex_value(s[r + 2])) >= 0) {
            s[w++] = (char)(hi << 4 | lo);
            r += 3;
            changed = true;
        } else {
            s[w++] = s[r++];
        }
    }
    *len = w;
    return changed;
}

/* True when field, as it is or percent-decoded (again and again: %2541 is
 * %41 is A), holds the item's own token or anything shaped like a secret. */
static bool holds_secret(const struct lk_leak_item *it, const char *field)
{
    char buf[LK_LEAK_URL_MAX + 1];
    size_t n = strlen(field);
    bool found;

    memcpy(buf, field, n + 1);
    do {
        found = memmem(buf, n, it->token, it->token_len) != NULL || lk_secret_scan(buf, n);
    } while (!found && percent_decode(buf, &n));
    OPENSSL_cleanse(buf, sizeof(buf));
    return found;
}

enum lk_err lk_leak_report_parse(const char *body, size_t len, struct lk_leak_report *out,
                                 struct lk_errinfo *ei)
{
    static const struct {
        const char *name;
        size_t off, max;
    } fields[] = {
        {"type", offsetof(struct lk_leak_item, type), LK_LEAK_TYPE_MAX},
        {"url", offsetof(struct lk_leak_item, url), LK_LEAK_URL_MAX},
        {"source", offsetof(struct lk_leak_item, source), LK_LEAK_SOURCE_MAX},
    };
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    enum lk_err e = LK_ERR_INVALID_REQUEST;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (root == NULL) {
        /* jansson's text may quote the body, and so a token: the position only. */
        e = lk_errinfo_set(ei, LK_ERR_BAD_JSON, "body", "not JSON (at byte %d)", jerr.position);
        goto out;
    }
    if (!json_is_array(root) || (n = json_array_size(root)) == 0) {
        lk_errinfo_set(ei, e, "body", "want a JSON array of matches [{\"token\", ...}]");
        goto out;
    }
    if (n > LK_LEAK_MAX_TOKENS) {
        lk_errinfo_set(ei, e, "body", "more than %d matches in one report", LK_LEAK_MAX_TOKENS);
        goto out;
    }
    out->items = lk_calloc(n, sizeof(*out->items));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(root, i), *tok;
        struct lk_leak_item *it = &out->items[i];

        if (!json_is_object(o)) {
            lk_errinfo_set(ei, e, "body", "match %zu is not an object", i + 1);
            goto out;
        }
        tok = json_object_get(o, "token");
        if (!json_is_string(tok) || json_string_length(tok) == 0 ||
            json_string_length(tok) > LK_LEAK_TOKEN_MAX) {
            lk_errinfo_set(ei, e, "token", "match %zu: token must be a string of 1 to %d bytes",
                           i + 1, LK_LEAK_TOKEN_MAX);
            goto out;
        }
        for (size_t f = 0; f < LK_ARRAY_LEN(fields); f++) {
            if (opt_string(o, fields[f].name, (char *)it + fields[f].off, fields[f].max) != 0) {
                lk_errinfo_set(ei, e, fields[f].name,
                               "match %zu: %s must be a string of at most %zu bytes", i + 1,
                               fields[f].name, fields[f].max);
                goto out;
            }
        }
        it->token_len = json_string_length(tok);
        it->token = lk_malloc(it->token_len + 1);
        memcpy(it->token, json_string_value(tok), it->token_len);
        it->token[it->token_len] = '\0';
        /* Nothing reported beside the token may carry a secret into the answer,
         * the audit detail or a webhook: not the token itself, and not another
         * key's, which a report could otherwise launder into them. */
        for (size_t f = 0; f < LK_ARRAY_LEN(fields); f++) {
            char *field = (char *)it + fields[f].off;
            if (holds_secret(it, field))
                snprintf(field, fields[f].max + 1, "%s", LK_LEAK_WITHHELD);
        }
        out->n = i + 1;
    }
    e = LK_OK;
out:
    /* jansson's copies of the tokens are wiped before the tree is freed (the
     * body they came from is wiped by its owner). */
    for (size_t i = 0; json_is_array(root) && i < json_array_size(root); i++) {
        json_t *tok = json_object_get(json_array_get(root, i), "token");
        if (json_is_string(tok))
            OPENSSL_cleanse((char *)json_string_value(tok), json_string_length(tok));
    }
    json_decref(root);
    if (e != LK_OK)
        lk_leak_report_release(out);
    return e;
}
