/*
 * keyread.h — where a key is read from (DESIGN §3), first present wins:
 * Authorization: Bearer, X-API-Key, X-AUTH-TOKEN, query parameter auth_token.
 * Two different keys in two places are refused as malformed_key.
 */
#ifndef LK_KEYREAD_H
#define LK_KEYREAD_H

#include <h2o.h>

#include "core/err.h"

#define LK_KEYREAD_MAX 512 /* longer values are not keys; refused as malformed */

/* Sets *key to a view of the request's key (request pool memory, NULL when none).
 * Returns LK_OK (also when there is none), or LK_ERR_MALFORMED_KEY. */
enum lk_err lk_keyread(h2o_req_t *req, h2o_iovec_t *key /* OUT */);

/* The same, with `auth_token` read from the query string q rather than the
 * request's own (forward-auth: the query of the forwarded request's URI). */
enum lk_err lk_keyread_query(h2o_req_t *req, h2o_iovec_t q, h2o_iovec_t *key /* OUT */);

/* Finds the next parameter `name` in the query string q[0..qlen) at or after
 * byte *from, URL-decodes its value into out (NUL-terminated) and moves *from past
 * it. Returns 1 when found, 0 when there is no more, -1 when the value does not fit
 * in outsz or decodes to a NUL byte. Pure. */
int lk_query_find(const char *q, size_t qlen, const char *name, size_t *from, char *out,
                  size_t outsz);

/* Finds query parameter `name` in the request's query string and URL-decodes it
 * into pool memory. Returns 1 when present, 0 when absent. */
int lk_query_param(h2o_req_t *req, const char *name, h2o_iovec_t *out /* OUT */);

#endif
