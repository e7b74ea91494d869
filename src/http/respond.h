/*
 * respond.h — one request's context and every way latchkey answers: JSON bodies
 * and errors in the shape of DESIGN §4, rendered from core/err.def and nothing
 * else. Everything allocated here lives in the request's pool.
 */
#ifndef LK_RESPOND_H
#define LK_RESPOND_H

#include <h2o.h>
#include <jansson.h>

#include "core/err.h"
#include "service/app.h"
#include "service/limits.h"

#define LK_MAX_HEADER_VALUE 4096
#define LK_MAX_HEADERS_TOTAL 6144
#define LK_ROUTE_MAX_PARAMS 2

struct lk_mgmt;

struct lk_reqctx {
    h2o_req_t *req;
    struct lk_app *app;
    struct lk_mgmt *mgmt;
    int64_t now;
    char request_id[24];
    h2o_iovec_t params[LK_ROUTE_MAX_PARAMS]; /* captured path segments */
    char address[64];  /* the client (http/clientaddr.h): per-address limits, audit */
    bool secure;       /* came over TLS, to us or to a trusted proxy */
    /* Forward-auth hands a request to a worker with the key it read from the
     * forwarded request and the route rule that matched. */
    h2o_iovec_t fwd_key;
    long fwd_rule;
    const struct lk_route_rules *fwd_rules; /* held (lk_app_routes_hold) for the worker */
};

/* Writes a new request id ("req_" and 16 characters, NUL-terminated) to out. */
void lk_respond_new_request_id(char out[24]);

/* Fills rc for req: request id, clock, the client's address. */
void lk_reqctx_init(struct lk_reqctx *rc, h2o_req_t *req, struct lk_app *app);

/* Sends a response with latchkey's headers: content type, no-store, the request
 * id and, for a 401, WWW-Authenticate (RFC 6750) according to e. body must live
 * until the request ends (pool or static memory). Loop thread only. */
void lk_respond_send(h2o_req_t *req, int status, const char *request_id, enum lk_err e,
                     const char *body, size_t len);

/* The same with another Content-Type (static memory; NULL: application/json),
 * for the Unkey-compatible API's application/problem+json. */
void lk_respond_send_typed(h2o_req_t *req, int status, const char *request_id, enum lk_err e,
                           const char *content_type, const char *body, size_t len);

/* The DESIGN §4 error object for e; ei (may be NULL) supplies message and field.
 * A message or field jansson cannot encode is replaced by the table's message or
 * left out. Caller decrefs; NULL only when jansson fails outright. */
json_t *lk_respond_error_body(enum lk_err e, const struct lk_errinfo *ei, const char *request_id);

/* The same, as NUL-terminated JSON text of *len bytes. Never NULL: if the body
 * cannot be rendered, a fixed, valid one with e's status and code. Caller frees. */
char *lk_respond_error_text(enum lk_err e, const struct lk_errinfo *ei, const char *request_id,
                           size_t *len /* OUT */);

/* Sends `body` (takes ownership: decref'd here) with `status`. Returns 0, as
 * h2o handlers do. */
int lk_respond_json(struct lk_reqctx *rc, int status, json_t *body);

/* Sends a pre-rendered JSON text (pool memory or static). */
int lk_respond_raw(struct lk_reqctx *rc, int status, const char *body, size_t len);

/* Sends 204 with no body. */
int lk_respond_no_content(struct lk_reqctx *rc);

/* Sends the error e; ei (may be NULL) supplies a specific message and field. */
int lk_respond_error(struct lk_reqctx *rc, enum lk_err e, const struct lk_errinfo *ei);

/* Adds a response header (name lowercase, both strings static or pool). */
void lk_respond_header(struct lk_reqctx *rc, const char *name, const char *value);

/* Adds RateLimit-Limit, -Remaining and -Reset when a rate limit applied (info
 * may be NULL), and Retry-After when retry_after > 0. */
void lk_respond_limit_headers(h2o_req_t *req, const struct lk_limits_info *info,
                              int64_t retry_after);

/* Adds forward-auth's X-Latchkey-Key-Id, -Workspace-Id and -Environment
 * (values copied). */
void lk_respond_identity(h2o_req_t *req, const char *key_id, const char *workspace_id,
                         const char *env);

/* Makes responses that h2o itself produces (413 while reading a body, and other
 * protocol-level errors) use the error shape too. */
void lk_respond_register_filter(h2o_pathconf_t *pathconf);

#endif
