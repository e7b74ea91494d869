/*
 * h_verify.c — the hot path: GET /v1/auth-context and POST /v1/verify. Answers are rendered from fixed templates: every value placed in
 * them is an id, a constant or JSON that jansson produced, so nothing needs
 * escaping, and no JSON tree is built per request.
 */
#include "base/common.h"
#include "core/permquery.h"
#include "core/timefmt.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/keyread.h"
#include "http/render.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define RESPONSE_MAX 512

/* `?environment=live|test`; -1 when absent. Returns false on a bad value. */
static bool want_env_of(struct lk_reqctx *rc, int *env)
{
    h2o_iovec_t v;
    enum lk_env e;

    *env = LK_VERIFY_ANY_ENV;
    if (!lk_query_param(rc->req, "environment", &v))
        return true;
    if (lk_env_parse(v.base, &e) != 0)
        return false;
    *env = (int)e;
    return true;
}

static size_t quoted_time(int64_t t, char *out)
{
    char buf[LK_TIME_STRLEN];

    if (t == 0) {
        memcpy(out, "null", 5);
        return 4;
    }
    lk_time_format(t, buf);
    return (size_t)snprintf(out, LK_TIME_STRLEN + 3, "\"%s\"", buf);
}

/* Renders the key's context into pool memory. Call inside the cache read lock. */
static h2o_iovec_t key_context(h2o_mem_pool_t *pool, const char *head, const struct lk_ckey *k)
{
    char expires[LK_TIME_STRLEN + 3];
    size_t cap = RESPONSE_MAX + strlen(k->permissions_json) + strlen(k->name_json);
    char *buf = h2o_mem_alloc_pool(pool, cap);
    int n;

    quoted_time(k->expires_at, expires);
    n = snprintf(buf, cap,
                 "{%s\"key_id\":\"%s\",\"workspace_id\":\"%s\",\"environment\":\"%s\","
                 "\"kind\":\"%s\",\"name\":%s,\"permissions\":%s,\"expires_at\":%s}",
                 head, k->id, k->workspace_id, lk_env_name(k->env), lk_render_kind(k->kind),
                 k->name_json, k->permissions_json, expires);
    lk_assert(n > 0 && (size_t)n < cap);
    return h2o_iovec_init(buf, (size_t)n);
}

int lk_h_auth_context(struct lk_reqctx *rc)
{
    struct lk_verify_req vr = {.now = rc->now, .record = true};
    const struct lk_ckey *k;
    h2o_iovec_t key, body;
    enum lk_err e;

    if (!want_env_of(rc, &vr.want_env)) {
        struct lk_errinfo ei;
        lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "environment",
                       "query parameter 'environment' must be live or test");
        return lk_respond_error(rc, LK_ERR_INVALID_REQUEST, &ei);
    }
    if ((e = lk_keyread(rc->req, &key)) != LK_OK)
        return lk_respond_error(rc, e, NULL);
    vr.secret = key.base;
    vr.len = key.len;
    lk_keycache_read_lock();
    if ((e = lk_verify(rc->app, &vr, &k)) == LK_OK)
        body = key_context(&rc->req->pool, "", k);
    lk_keycache_read_unlock();
    if (e != LK_OK)
        return lk_respond_error(rc, e, NULL);
    return lk_respond_raw(rc, 200, body.base, body.len);
}

static bool no_permissions(void *arg, const char *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return false;
}

int lk_h_verify(struct lk_reqctx *rc)
{
    struct lk_verify_req vr = {.now = rc->now, .record = true};
    struct lk_verify_body vb;
    struct lk_errinfo ei;
    const struct lk_ckey *k;
    h2o_iovec_t body = rc->req->entity.base ? rc->req->entity : h2o_iovec_init("", 0), out;
    enum lk_err e;
    char head[96];

    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_verify(body.base, body.len, &vb, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    if (vb.permissions != NULL) {
        bool ignored;
        /* A malformed query is the caller's bug whatever the key: 400, pointing at it. */
        if ((e = lk_permquery_eval(vb.permissions, strlen(vb.permissions), no_permissions, NULL,
                                   &ignored, &ei)) != LK_OK) {
            lk_verify_body_release(&vb);
            return lk_respond_error(rc, e, &ei);
        }
    }
    vr.secret = vb.key;
    vr.len = vb.key_len;
    vr.want_env = vb.environment;
    if (vb.permissions) {
        vr.needs = vb.permissions;
        vr.needs_len = strlen(vb.permissions);
    }
    lk_keycache_read_lock();
    e = lk_verify(rc->app, &vr, &k);
    snprintf(head, sizeof(head), "\"valid\":%s,\"code\":\"%s\",", e == LK_OK ? "true" : "false",
             lk_err_code(e));
    if (k != NULL) {
        out = key_context(&rc->req->pool, head, k);
    } else {
        size_t cap = 256;
        char *buf = h2o_mem_alloc_pool(&rc->req->pool, cap);
        int n = snprintf(buf, cap,
                         "{%s\"key_id\":null,\"workspace_id\":null,\"environment\":null,"
                         "\"kind\":null,\"name\":null,\"permissions\":null,\"expires_at\":null}",
                         head);
        out = h2o_iovec_init(buf, (size_t)n);
    }
    lk_keycache_read_unlock();
    lk_verify_body_release(&vb);
    return lk_respond_raw(rc, 200, out.base, out.len);
}
