/*
 * h_verify.c — the hot path: GET /v1/auth-context and POST /v1/verify (and, when
 * a credit lease runs short, the verify's second try on a management worker).
 * Answers are rendered from fixed templates: every value placed in
 * them is an id, a constant or JSON that jansson produced, so nothing needs
 * escaping, and no JSON tree is built per request.
 */
#include "base/clock.h"
#include "base/common.h"
#include "core/permquery.h"
#include "core/timefmt.h"
#include "http/accesslog.h"
#include "http/handlers.h"
#include "http/hotbody.h"
#include "http/jsonin.h"
#include "http/keyread.h"
#include "http/render.h"
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

/* Appends to a buffer sized beforehand (answer_cap): printf-free, since the
 * verify answer is rendered for every request. */
struct out {
    char *p, *end;
};

static void put(struct out *o, const char *s, size_t n)
{
    lk_assert(n <= (size_t)(o->end - o->p));
    memcpy(o->p, s, n);
    o->p += n;
}

#define PUT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_i64(struct out *o, int64_t v)
{
    char buf[LK_I64_DEC_MAX];

    put(o, buf, lk_i64_dec(buf, v));
}

/* Bytes the answer about key k may take (k may be NULL). */
static size_t answer_cap(const struct lk_ckey *k)
{
    /* A key with the rare parts adds "credits" and "ratelimits" (each entry
     * under LK_RL_NAME_MAX + 96 bytes, "default" among them) and
     * "rate_limited" with a name. */
    return RESPONSE_MAX + (k ? strlen(k->permissions_json) + strlen(k->name_json) : 0) +
           (k && k->ext_limits ? (size_t)(k->ext->n_rl + 1) * (LK_RL_NAME_MAX + 96) + 256 : 0);
}

/* One entry of the answer's "ratelimits": names are [A-Za-z0-9_.:-] only. */
static void put_named(struct out *o, const char *name, size_t name_len, int64_t limit,
                      int64_t remaining, int64_t reset_at_ms)
{
    PUT(o, "{\"name\":\"");
    put(o, name, name_len);
    PUT(o, "\",\"limit\":");
    put_i64(o, limit);
    PUT(o, ",\"remaining\":");
    put_i64(o, remaining);
    PUT(o, ",\"reset_at\":");
    put_i64(o, reset_at_ms);
    PUT(o, "}");
}

/* "ratelimits" (every limit the check applied, "default" first) and
 * "rate_limited" (the one that refused, or null), for a check that applied a
 * named limit. */
static void named_fields(struct out *o, enum lk_err e, const struct lk_limits_info *info,
                         int64_t now_ms)
{
    const char *refused = NULL;
    size_t refused_len = 0;
    bool first = true;

    PUT(o, ",\"ratelimits\":[");
    if (info->has_rl) {
        put_named(o, "default", 7, info->rl_limit, info->rl_remaining,
                  now_ms + info->rl_reset * 1000);
        first = false;
    }
    for (int i = 0; i < info->n_named; i++) {
        if (!first)
            PUT(o, ",");
        first = false;
        put_named(o, info->named[i].name, info->named[i].name_len, info->named[i].limit,
                  info->named[i].remaining, info->named[i].reset_at);
    }
    PUT(o, "],\"rate_limited\":");
    if (e == LK_ERR_RATE_LIMITED && info->rl_refused >= 0) {
        refused = info->named[info->rl_refused].name;
        refused_len = info->named[info->rl_refused].name_len;
    } else if (e == LK_ERR_RATE_LIMITED && info->has_rl) {
        refused = "default";
        refused_len = 7;
    }
    if (refused == NULL) {
        PUT(o, "null");
    } else {
        PUT(o, "\"");
        put(o, refused, refused_len);
        PUT(o, "\"");
    }
}

/* Appends the key's context fields (no braces). Call inside the cache read lock. */
static void key_fields(struct out *o, const struct lk_ckey *k)
{
    char t[LK_TIME_STRLEN];

    if (k == NULL) {
        PUT(o, "\"key_id\":null,\"workspace_id\":null,\"environment\":null,\"kind\":null,"
               "\"name\":null,\"permissions\":null,\"expires_at\":null");
        return;
    }
    PUT(o, "\"key_id\":\"");
    put_str(o, k->id);
    PUT(o, "\",\"workspace_id\":\"");
    put_str(o, lk_ckey_workspace_id(k));
    PUT(o, "\",\"environment\":\"");
    put_str(o, lk_env_name(k->env));
    PUT(o, "\",\"kind\":\"");
    put_str(o, lk_render_kind(k->kind));
    PUT(o, "\",\"name\":");
    put_str(o, k->name_json);
    PUT(o, ",\"permissions\":");
    put_str(o, k->permissions_json);
    PUT(o, ",\"expires_at\":");
    if (k->expires_at == 0) {
        PUT(o, "null");
    } else {
        lk_time_format(k->expires_at, t);
        PUT(o, "\"");
        put_str(o, t);
        PUT(o, "\"");
    }
}

/* Renders the whole /v1/verify answer into buf (answer_cap(k) bytes). */
static size_t verify_answer(char *buf, size_t cap, enum lk_err e, const struct lk_ckey *k,
                            const struct lk_limits_info *info, bool show_credits)
{
    struct out o = {buf, buf + cap};

    if (e == LK_OK)
        PUT(&o, "{\"valid\":true,\"code\":\"");
    else
        PUT(&o, "{\"valid\":false,\"code\":\"");
    put_str(&o, lk_err_code(e));
    PUT(&o, "\",");
    key_fields(&o, k);
    if (info->has_rl) {
        PUT(&o, ",\"ratelimit\":{\"limit\":");
        put_i64(&o, info->rl_limit);
        PUT(&o, ",\"remaining\":");
        put_i64(&o, info->rl_remaining);
        PUT(&o, ",\"reset\":");
        put_i64(&o, info->rl_reset);
        PUT(&o, "}");
    }
    if (k != NULL && show_credits) {
        PUT(&o, ",\"remaining_credits\":");
        put_i64(&o, info->remaining_credits);
    }
    if (info->ext & LK_INFO_NAMED)
        named_fields(&o, e, info, lk_clock_now_ms());
    if (info->ext & LK_INFO_KEY_CREDITS) {
        /* the key's own credits, beside the workspace's remaining_credits */
        PUT(&o, ",\"credits\":{\"remaining\":");
        put_i64(&o, info->key_credits_remaining);
        PUT(&o, ",\"exceeded\":");
        if (info->key_credits_short)
            PUT(&o, "true}");
        else
            PUT(&o, "false}");
    }
    if (info->has_cap) {
        int64_t left = info->cap - info->spent_today;
        PUT(&o, ",\"daily_spend\":{\"cap\":");
        put_i64(&o, info->cap);
        PUT(&o, ",\"spent\":");
        put_i64(&o, info->spent_today);
        PUT(&o, ",\"remaining\":");
        put_i64(&o, left > 0 ? left : 0);
        PUT(&o, "}");
    }
    PUT(&o, "}");
    return (size_t)(o.p - buf);
}

int lk_h_auth_context(struct lk_reqctx *rc)
{
    struct lk_verify_req vr = {.now = rc->now, .record = true, .address = rc->address,
                               .refill_inline = true};
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
        struct out o = {body, body + cap};
        PUT(&o, "{");
        key_fields(&o, k);
        PUT(&o, "}");
        len = (size_t)(o.p - body);
        lk_accesslog_key(rc->req, k->id);
    }
    lk_keycache_read_unlock();
    lk_respond_limit_headers(rc->req, &info, lk_verify_retry_after(e, &info));
    if (e != LK_OK)
        return lk_respond_error(rc, e, NULL);
    return lk_respond_raw(rc, 200, body, len);
}

static bool no_permissions(void *arg, const char *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return false;
}

/* Decodes the body and checks its query. On failure *e and ei say why; on success
 * *e is LK_OK. */
static bool verify_request(const char *body, size_t len, struct lk_verify_body *vb,
                           struct lk_verify_req *vr, enum lk_err *e, struct lk_errinfo *ei)
{
    lk_errinfo_clear(ei);
    *e = LK_OK;
    /* The common body without a JSON tree; any other, and every refusal, as before. */
    if (!lk_hotbody_verify(body, len, vb) && (*e = lk_jsonin_verify(body, len, vb, ei)) != LK_OK)
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
    if (vb->rl != NULL) {
        vr->ratelimits = vb->rl->use;
        vr->n_ratelimits = vb->rl->n;
    }
    return true;
}

/* A check that named a rate limit the key does not have: 400 naming it. */
static void unknown_limit(struct lk_errinfo *ei, const struct lk_verify_req *vr,
                          const struct lk_limits_info *info)
{
    const struct lk_rl_use *u = &vr->ratelimits[info->rl_unknown];

    lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                   "the key has no rate limit named %.*s", (int)u->name_len, u->name);
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
    if (e == LK_ERR_STORAGE_UNAVAILABLE) {
        /* Not an answer about the key: this node cannot vouch for its cache. */
        lk_keycache_read_unlock();
        lk_verify_body_release(&vb);
        return lk_respond_error(rc, e, NULL);
    }
    if (e == LK_ERR_INVALID_REQUEST) {
        unknown_limit(&ei, &vr, &info); /* before the body it points into goes */
        lk_keycache_read_unlock();
        lk_verify_body_release(&vb);
        return lk_respond_error(rc, e, &ei);
    }
    cap = answer_cap(k);
    out = h2o_mem_alloc_pool(&rc->req->pool, cap);
    len = verify_answer(out, cap, e, k, &info, vb.has_cost);
    lk_accesslog_outcome(rc->req, e, k ? k->id : NULL); /* the answer is 200 either way */
    lk_keycache_read_unlock();
    lk_verify_body_release(&vb);
    lk_respond_limit_headers(rc->req, &info, lk_verify_retry_after(e, &info));
    return lk_respond_raw(rc, 200, out, len);
}

struct leased_answer {
    struct lk_mreq *m;
    bool show_credits;
    const struct lk_verify_req *vr;
};

static void leased_done(void *arg, enum lk_err e, const struct lk_ckey *k,
                        const struct lk_limits_info *info)
{
    struct leased_answer *a = arg;
    size_t cap = answer_cap(k);
    char *out;

    if (e == LK_ERR_STORAGE_UNAVAILABLE) {
        lk_mreq_error(a->m, e, NULL);
        return;
    }
    if (e == LK_ERR_INVALID_REQUEST) {
        struct lk_errinfo ei;
        unknown_limit(&ei, a->vr, info);
        lk_mreq_error(a->m, e, &ei);
        return;
    }
    out = lk_malloc(cap);

    lk_mreq_raw(a->m, 200, out, verify_answer(out, cap, e, k, info, a->show_credits));
    free(out);
    a->m->limits = *info;
    a->m->check_err = e;
    if (k != NULL)
        snprintf(a->m->check_key_id, sizeof(a->m->check_key_id), "%s", k->id);
    a->m->retry_after = lk_verify_retry_after(e, info);
}

void lk_h_verify_leased(struct lk_mreq *m)
{
    struct lk_verify_req vr = {.now = m->now, .record = true, .address = m->address};
    struct lk_verify_body vb;
    struct lk_errinfo ei;
    struct leased_answer a = {m, false, &vr};
    enum lk_err e;

    if (!verify_request(m->body ? m->body : "", m->body_len, &vb, &vr, &e, &ei)) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    a.show_credits = vb.has_cost;
    if (lk_verify_leasing(m->app, &vr, leased_done, &a) != LK_OK)
        lk_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, NULL);
    lk_verify_body_release(&vb);
}
