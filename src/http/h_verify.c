/*
 * h_verify.c — the hot path: GET /v1/auth-context and POST /v1/verify (and, when
 * a credit lease runs short, the verify's second try on a management worker).
 * Answers are rendered from fixed templates: every value placed in
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
#include "service/credits.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define RESPONSE_MAX 768

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

/* Bytes the answer about key k may take (k may be NULL). */
static size_t answer_cap(const struct lk_ckey *k)
{
    return RESPONSE_MAX + (k ? strlen(k->permissions_json) + strlen(k->name_json) : 0);
}

/* Renders the key's context fields (no braces) into buf. Call inside the cache
 * read lock. */
static size_t key_fields(char *buf, size_t cap, const struct lk_ckey *k)
{
    char expires[LK_TIME_STRLEN + 3];
    int n;

    if (k == NULL) {
        n = snprintf(buf, cap, "\"key_id\":null,\"workspace_id\":null,\"environment\":null,"
                               "\"kind\":null,\"name\":null,\"permissions\":null,"
                               "\"expires_at\":null");
    } else {
        quoted_time(k->expires_at, expires);
        n = snprintf(buf, cap,
                     "\"key_id\":\"%s\",\"workspace_id\":\"%s\",\"environment\":\"%s\","
                     "\"kind\":\"%s\",\"name\":%s,\"permissions\":%s,\"expires_at\":%s",
                     k->id, k->ws->id, lk_env_name(k->env), lk_render_kind(k->kind),
                     k->name_json, k->permissions_json, expires);
    }
    lk_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* Renders the whole /v1/verify answer into buf (answer_cap(k) bytes). */
static size_t verify_answer(char *buf, size_t cap, enum lk_err e, const struct lk_ckey *k,
                            const struct lk_limits_info *info, bool show_credits)
{
    size_t n = (size_t)snprintf(buf, cap, "{\"valid\":%s,\"code\":\"%s\",",
                                e == LK_OK ? "true" : "false", lk_err_code(e));

    n += key_fields(buf + n, cap - n, k);
    if (info->has_rl)
        n += (size_t)snprintf(buf + n, cap - n,
                              ",\"ratelimit\":{\"limit\":%lld,\"remaining\":%lld,\"reset\":%lld}",
                              (long long)info->rl_limit, (long long)info->rl_remaining,
                              (long long)info->rl_reset);
    if (k != NULL && show_credits)
        n += (size_t)snprintf(buf + n, cap - n, ",\"remaining_credits\":%lld",
                              (long long)info->remaining_credits);
    if (info->has_cap) {
        int64_t left = info->cap - info->spent_today;
        n += (size_t)snprintf(buf + n, cap - n,
                              ",\"daily_spend\":{\"cap\":%lld,\"spent\":%lld,\"remaining\":%lld}",
                              (long long)info->cap, (long long)info->spent_today,
                              (long long)(left > 0 ? left : 0));
    }
    lk_assert(n + 2 < cap);
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}

/* Retry-After for outcomes that end by themselves. */
static int64_t retry_of(enum lk_err e, const struct lk_limits_info *info)
{
    return lk_err_status(e) == 429 ? info->retry_after : 0;
}

int lk_h_auth_context(struct lk_reqctx *rc)
{
    struct lk_verify_req vr = {.now = rc->now, .record = true, .address = rc->address};
    struct lk_limits_info info;
    const struct lk_ckey *k;
    h2o_iovec_t key;
    char *body = NULL;
    size_t len = 0;
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
    if ((e = lk_verify(rc->app, &vr, &k, &info)) == LK_OK) {
        size_t cap = answer_cap(k);
        body = h2o_mem_alloc_pool(&rc->req->pool, cap);
        body[0] = '{';
        len = 1 + key_fields(body + 1, cap - 2, k);
        body[len++] = '}';
    }
    lk_keycache_read_unlock();
    lk_respond_limit_headers(rc->req, &info, retry_of(e, &info));
    if (e != LK_OK)
        return lk_respond_error(rc, e, NULL);
    return lk_respond_raw(rc, 200, body, len);
}

static bool no_permissions(void *arg, const char *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return false;
}

/* Decodes the body and checks its query. On failure *e and ei say why. */
static bool verify_request(const char *body, size_t len, struct lk_verify_body *vb,
                           struct lk_verify_req *vr, enum lk_err *e, struct lk_errinfo *ei)
{
    lk_errinfo_clear(ei);
    if ((*e = lk_jsonin_verify(body, len, vb, ei)) != LK_OK)
        return false;
    if (vb->permissions != NULL) {
        bool ignored;
        /* A malformed query is the caller's bug whatever the key: 400, pointing at it. */
        if ((*e = lk_permquery_eval(vb->permissions, strlen(vb->permissions), no_permissions,
                                    NULL, &ignored, ei)) != LK_OK) {
            lk_verify_body_release(vb);
            return false;
        }
        vr->needs = vb->permissions;
        vr->needs_len = strlen(vb->permissions);
    }
    vr->secret = vb->key;
    vr->len = vb->key_len;
    vr->want_env = vb->environment;
    vr->cost = vb->cost;
    return true;
}

int lk_h_verify(struct lk_reqctx *rc)
{
    struct lk_verify_req vr = {.now = rc->now, .record = true, .address = rc->address};
    struct lk_verify_body vb;
    struct lk_limits_info info;
    struct lk_errinfo ei;
    const struct lk_ckey *k;
    h2o_iovec_t body = rc->req->entity.base ? rc->req->entity : h2o_iovec_init("", 0);
    enum lk_err e;
    char *out;
    size_t len, cap;

    if (!verify_request(body.base, body.len, &vb, &vr, &e, &ei))
        return lk_respond_error(rc, e, &ei);
    lk_keycache_read_lock();
    e = lk_verify(rc->app, &vr, &k, &info);
    if (info.need_lease) {
        /* The lease in memory is short: a worker leases from the store and decides
         * again, so this loop never waits for the disk. */
        lk_keycache_read_unlock();
        lk_verify_body_release(&vb);
        return lk_mgmt_submit(rc->mgmt, rc, lk_h_verify_leased);
    }
    cap = answer_cap(k);
    out = h2o_mem_alloc_pool(&rc->req->pool, cap);
    len = verify_answer(out, cap, e, k, &info, vb.has_cost);
    lk_keycache_read_unlock();
    lk_verify_body_release(&vb);
    lk_respond_limit_headers(rc->req, &info, retry_of(e, &info));
    return lk_respond_raw(rc, 200, out, len);
}

#define LEASE_TRIES 16

void lk_h_verify_leased(struct lk_mreq *m)
{
    struct lk_verify_req vr = {.now = m->now, .record = true, .address = m->address};
    struct lk_verify_body vb;
    struct lk_limits_info info;
    struct lk_errinfo ei;
    const struct lk_ckey *k;
    enum lk_err e;
    char *out = NULL;
    size_t len = 0;

    if (!verify_request(m->body ? m->body : "", m->body_len, &vb, &vr, &e, &ei)) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    for (int tries = 0;; tries++) {
        struct lk_wstate *ws;
        lk_keycache_read_lock();
        e = lk_verify(m->app, &vr, &k, &info);
        if (!info.need_lease || tries == LEASE_TRIES) {
            size_t cap = answer_cap(k);
            out = lk_malloc(cap);
            len = verify_answer(out, cap, e, k, &info, vb.has_cost);
            lk_keycache_read_unlock();
            break;
        }
        ws = k->ws; /* workspace states live as long as the app */
        lk_keycache_read_unlock();
        if (lk_credits_lease(m->app, ws, vr.cost, m->now) != LK_OK) {
            lk_verify_body_release(&vb);
            lk_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, NULL);
            return;
        }
    }
    lk_verify_body_release(&vb);
    lk_mreq_raw(m, 200, out, len);
    free(out);
    m->limits = info;
    m->retry_after = retry_of(e, &info);
}
