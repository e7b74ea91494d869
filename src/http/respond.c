#include "http/respond.h"

#include "base/clock.h"
#include "base/common.h"
#include "base/rand.h"
#include "http/accesslog.h"
#include "http/clientaddr.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* Request ids need to be unique, not secret: a per-thread xorshift seeded from the CSPRNG. */
static _Thread_local uint64_t rid_state;

static void new_request_id(char out[24])
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint64_t x;

    while (rid_state == 0)
        lk_rand_bytes(&rid_state, sizeof(rid_state));
    x = rid_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rid_state = x;
    memcpy(out, "req_", 4);
    for (int i = 0; i < 16; i++) {
        out[4 + i] = alphabet[x % 62];
        x = x / 62 ^ (rid_state << (i % 8)); /* fold the state back in for the tail digits */
    }
    out[20] = '\0';
}

void lk_respond_new_request_id(char out[24])
{
    new_request_id(out);
}

void lk_reqctx_init(struct lk_reqctx *rc, h2o_req_t *req, struct lk_app *app)
{
    struct lk_clientaddr ca;

    memset(rc, 0, sizeof(*rc));
    rc->req = req;
    rc->app = app;
    rc->now = lk_clock_now_s();
    /* Room for a passing check's answer headers (identity, type, cache, id) in
     * one pool allocation: grown from empty, h2o allocates twice and copies. */
    h2o_vector_reserve(&req->pool, &req->res.headers, 8);
    new_request_id(rc->request_id);
    lk_accesslog_begin(req, rc->request_id);
    /* The one place the client is named: limits and audit all use it. */
    lk_clientaddr_resolve(req, lk_app_trusted_proxies(app), &ca);
    lk_strcopy(rc->address, sizeof(rc->address), ca.text);
    rc->secure = ca.secure;
}

/* h2o keeps pointers to header values until the response is written: copy the id
 * into the request's pool. */
static void add_request_id(h2o_req_t *req, const char *rid)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, rid, strlen(rid));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          v.base, v.len);
}

void lk_respond_header(struct lk_reqctx *rc, const char *name, const char *value)
{
    h2o_add_header_by_str(&rc->req->pool, &rc->req->res.headers, name, strlen(name), 1, NULL,
                          value, strlen(value));
}

static void add_number_header(h2o_req_t *req, const char *name, int64_t v)
{
    char *buf = h2o_mem_alloc_pool(&req->pool, LK_I64_DEC_MAX);
    size_t n = lk_i64_dec(buf, v);

    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, buf, n);
}

void lk_respond_limit_headers(h2o_req_t *req, const struct lk_limits_info *info,
                              int64_t retry_after)
{
    if (info != NULL && info->has_rl) {
        add_number_header(req, "ratelimit-limit", info->rl_limit);
        add_number_header(req, "ratelimit-remaining", info->rl_remaining);
        add_number_header(req, "ratelimit-reset", info->rl_reset);
    }
    if (retry_after > 0)
        add_number_header(req, "retry-after", retry_after);
}

void lk_respond_identity(h2o_req_t *req, const char *key_id, const char *workspace_id,
                         const char *env)
{
    static const char *const names[] = {"x-latchkey-key-id", "x-latchkey-workspace-id",
                                        "x-latchkey-environment"};
    const char *values[] = {key_id, workspace_id, env};

    lk_accesslog_key(req, key_id);

    for (size_t i = 0; i < 3; i++) {
        h2o_iovec_t v = h2o_strdup(&req->pool, values[i], strlen(values[i]));
        h2o_add_header_by_str(&req->pool, &req->res.headers, names[i], strlen(names[i]), 0, NULL,
                              v.base, v.len);
    }
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

void lk_respond_send(h2o_req_t *req, int status, const char *request_id, enum lk_err e,
                     const char *body, size_t len)
{
    lk_respond_send_typed(req, status, request_id, e, NULL, body, len);
}

void lk_respond_send_typed(h2o_req_t *req, int status, const char *request_id, enum lk_err e,
                           const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    lk_accesslog_sent(req, e);
    if (status == 401) { /* RFC 6750 */
        static const char missing[] = "Bearer realm=\"latchkey\"";
        static const char invalid[] = "Bearer realm=\"latchkey\", error=\"invalid_token\"";
        const char *v = e == LK_ERR_MISSING_KEY ? missing : invalid;
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("www-authenticate"), 0,
                              NULL, v, strlen(v));
    }
    if (status != 204) {
        if (content_type == NULL)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           H2O_STRLIT("application/json"));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           content_type, strlen(content_type));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("no-store"));
    }
    add_request_id(req, request_id);
    req->res.content_length = len; /* else h2o falls back to chunked encoding */
    if (len > 0) {
        h2o_send_inline(req, body, len);
    } else {
        /* h2o_send_inline would queue an empty buffer after the head; h2o's writev
         * then stops before it, calls the write partial and waits for EPOLLOUT to
         * write nothing: a second writev and two epoll_ctl for every forward-auth
         * answer and 204. */
        static h2o_generator_t generator = {NULL, NULL};
        h2o_start_response(req, &generator);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    }
}

int lk_respond_raw(struct lk_reqctx *rc, int status, const char *body, size_t len)
{
    lk_respond_send(rc->req, status, rc->request_id, LK_OK, body, len);
    return 0;
}

json_t *lk_respond_error_body(enum lk_err e, const struct lk_errinfo *ei, const char *request_id)
{
    const char *msg = ei && ei->detail[0] ? ei->detail : lk_err_message(e);
    json_t *err, *field;

    /* jansson refuses text that is not UTF-8: fall back to the table's own message
     * rather than lose the answer (lk_errinfo_set keeps details valid; this is the
     * second line of defence). */
    err = json_pack("{s:i, s:s, s:s, s:s, s:s}", "status", lk_err_status(e), "code",
                    lk_err_code(e), "message", msg, "hint_for_ai", lk_err_hint(e), "request_id",
                    request_id);
    if (err == NULL)
        err = json_pack("{s:i, s:s, s:s, s:s, s:s}", "status", lk_err_status(e), "code",
                        lk_err_code(e), "message", lk_err_message(e), "hint_for_ai",
                        lk_err_hint(e), "request_id", request_id);
    if (err == NULL)
        return NULL;
    if (ei && ei->field[0] && (field = json_string(ei->field)) != NULL)
        json_object_set_new(err, "field", field);
    return json_pack("{s:o}", "error", err);
}

/* Renders body into the request's pool; NULL when it cannot be (a NULL body, or
 * jansson failing). */
static char *render_pool(h2o_req_t *req, json_t *body, size_t *len /* OUT */)
{
    size_t n = body ? json_dumpb(body, NULL, 0, JSON_COMPACT) : 0;
    char *buf;

    if (n == 0)
        return NULL;
    buf = h2o_mem_alloc_pool(&req->pool, n + 1);
    if (json_dumpb(body, buf, n, JSON_COMPACT) != n)
        return NULL;
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *lk_respond_error_text(enum lk_err e, const struct lk_errinfo *ei, const char *request_id,
                           size_t *len)
{
    json_t *body = lk_respond_error_body(e, ei, request_id);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int n;

    json_decref(body);
    if (text != NULL) {
        *len = strlen(text);
        return text;
    }
    /* Codes and request ids are plain ASCII: this needs no escaping. */
    text = lk_malloc(256);
    n = snprintf(text, 256,
                 "{\"error\":{\"status\":%d,\"code\":\"%s\",\"message\":\"the error could "
                 "not be rendered\",\"hint_for_ai\":\"\",\"request_id\":\"%s\"}}",
                 lk_err_status(e), lk_err_code(e), request_id);
    *len = n > 0 && n < 256 ? (size_t)n : 0;
    return text;
}

/* The error e as JSON text in the request's pool; never fails. */
static char *render_error(h2o_req_t *req, enum lk_err e, const struct lk_errinfo *ei,
                          const char *request_id, size_t *len /* OUT */)
{
    char *text = lk_respond_error_text(e, ei, request_id, len);
    char *buf = h2o_mem_alloc_pool(&req->pool, *len + 1);

    memcpy(buf, text, *len + 1);
    free(text);
    return buf;
}

int lk_respond_json(struct lk_reqctx *rc, int status, json_t *body)
{
    size_t n = 0;
    char *buf = render_pool(rc->req, body, &n);

    json_decref(body);
    if (buf == NULL)
        return lk_respond_error(rc, LK_ERR_INTERNAL, NULL);
    return lk_respond_raw(rc, status, buf, n);
}

int lk_respond_no_content(struct lk_reqctx *rc)
{
    lk_respond_send(rc->req, 204, rc->request_id, LK_OK, "", 0);
    return 0;
}

int lk_respond_error(struct lk_reqctx *rc, enum lk_err e, const struct lk_errinfo *ei)
{
    size_t n = 0;
    char *buf = render_error(rc->req, e, ei, rc->request_id, &n);

    lk_respond_send(rc->req, lk_err_status(e), rc->request_id, e, buf, n);
    return 0;
}

/* --- shaping h2o's own error responses ------------------------------------------------ */

struct shape_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
};

static void shape_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                          h2o_send_state_t state)
{
    struct shape_ostream *s = (struct shape_ostream *)self;

    (void)bufs;
    (void)n;
    /* Drop h2o's plain-text body; send ours once, with the final chunk. */
    if (state == H2O_SEND_STATE_IN_PROGRESS)
        h2o_ostream_send_next(&s->super, req, NULL, 0, state);
    else
        h2o_ostream_send_next(&s->super, req, &s->body, 1, state);
}

static enum lk_err err_for_status(int status)
{
    switch (status) {
    case 400: /* h2o: a broken Content-Length, Transfer-Encoding or chunk */
    case 417: /* h2o: an Expect other than 100-continue */
        return LK_ERR_INVALID_REQUEST;
    case 404: return LK_ERR_NOT_FOUND;
    case 405: return LK_ERR_METHOD_NOT_ALLOWED;
    case 413: return LK_ERR_PAYLOAD_TOO_LARGE;
    case 431: return LK_ERR_HEADERS_TOO_LARGE;
    case 503: return LK_ERR_STORAGE_UNAVAILABLE;
    default: return LK_ERR_INTERNAL;
    }
}

static void shape_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (req->res.status >= 400 &&
        h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) == -1) {
        char rid[24];
        struct lk_errinfo ei;
        enum lk_err e = err_for_status(req->res.status);
        struct shape_ostream *s;
        size_t n = 0;

        lk_errinfo_clear(&ei);
        new_request_id(rid);
        lk_accesslog_begin(req, rid);
        lk_accesslog_sent(req, e);
        if (e == LK_ERR_INVALID_REQUEST)
            snprintf(ei.detail, sizeof(ei.detail), "malformed HTTP request");
        s = (struct shape_ostream *)h2o_add_ostream(req, sizeof(*s), slot);
        s->body.base = render_error(req, e, &ei, rid, &n);
        s->body.len = n;
        s->super.do_send = shape_do_send;
        slot = &s->super.next;
        req->res.status = lk_err_status(e);
        req->res.content_length = s->body.len;
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                       H2O_STRLIT("application/json"), 1);
        add_request_id(req, rid);
    }
    h2o_setup_next_ostream(req, slot);
}

void lk_respond_register_filter(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = shape_on_setup_ostream;
    lk_accesslog_register(pathconf); /* metrics and the access line, once per request */
}
