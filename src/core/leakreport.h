/*
 * leakreport.h — the body of a leak report: GitHub's secret scanning match
 * list, which the generic report shares,
 *
 *   [{"token": "...", "type": "...", "url": "https://...", "source": "commit"}]
 *
 * read into bounded, owned fields. `token` is required; `type`, `url` and
 * `source` may be absent or empty (GitHub's `url` may be empty). Members this
 * does not know are ignored, as GitHub may add some. Every string is valid
 * UTF-8 without NUL (jansson's guarantee) and within its cap, so it can be
 * quoted in an audit event or an answer as it is, and none holds a secret
 * (LK_LEAK_WITHHELD replaces it).
 *
 * Pure: no I/O; safe from any thread.
 */
#ifndef LK_LEAKREPORT_H
#define LK_LEAKREPORT_H

#include <stddef.h>

#include "core/err.h"

#define LK_LEAK_MAX_TOKENS 1000 /* matches in one report */
#define LK_LEAK_TOKEN_MAX 1024  /* bytes of one token */
#define LK_LEAK_TYPE_MAX 128    /* bytes of `type` */
#define LK_LEAK_URL_MAX 2048    /* bytes of `url` */
#define LK_LEAK_SOURCE_MAX 64   /* bytes of `source` */
/* What replaces a `type`, `url` or `source` that holds the item's token or
 * anything shaped like a secret (lk_secret_scan), as it is or percent-decoded. */
#define LK_LEAK_WITHHELD "(withheld: holds a secret)"

struct lk_leak_item {
    char *token; /* owned, wiped when released */
    size_t token_len;
    char type[LK_LEAK_TYPE_MAX + 1];
    char url[LK_LEAK_URL_MAX + 1];
    char source[LK_LEAK_SOURCE_MAX + 1];
};

struct lk_leak_report {
    struct lk_leak_item *items;
    size_t n;
};

/* Parses body[0..len) into *out. Returns LK_OK (caller releases with
 * lk_leak_report_release()), LK_ERR_BAD_JSON for text that is not JSON, or
 * LK_ERR_INVALID_REQUEST with ei naming the item (1-based) and the field. On
 * failure *out is empty. Never quotes a token. */
enum lk_err lk_leak_report_parse(const char *body, size_t len, struct lk_leak_report *out /* OUT */,
                                 struct lk_errinfo *ei);

/* Wipes every token and frees. Accepts an empty report. */
void lk_leak_report_release(struct lk_leak_report *r);

#endif
