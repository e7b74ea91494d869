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
#include "http/textout.h"
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
static void put_named(struct lk_textout *o, const char *name, size_t name_len, int64_t limit,
                      int64_t remaining, int64_t reset_at_ms)
{
    LK_TEXTOUT_LIT(o, "{\"name\":\"");
    lk_textout_put(o, name, name_len);
    LK_TEXTOUT_LIT(o, "\",\"limit\":");
    lk_textout_i64(o, limit);
    LK_TEXTOUT_LIT(o, ",\"remaining\":");
    lk_textout_i64(o, remaining);
    LK_TEXTOUT_LIT(o, ",\"reset_at\":");
    lk_textout_i64(o, reset_at_ms);
    LK_TEXTOUT_LIT(o, "}");
}

/* "ratelimits" (every limit the check applied, "default" first) and
 * "rate_limited" (the one that refused, or null), for a check that applied a
 * named limit. */
static void named_fields(struct lk_textout *o, enum lk_err e, const struct lk_limits_info *info,
                         int64_t now_ms)
{
    const char *refused = NULL;
    size_t refused_len = 0;
    bool first = true;

    LK_TEXTOUT_LIT(o, ",\"ratelimits\":[");
    if (info->has_rl) {
        put_named(o, "default", 7, info->rl_limit, info->rl_remaining,
                  now_ms + info->rl_reset * 1000);
        first = false;
    }
    for (int i = 0; i < info->n_named; i++) {
        if (!first)
            LK_TEXTOUT_LIT(o, ",");
        first = false;
        put_named(o, info->named[i].name, info->named[i].name_len, info->named[i].limit,
                  info->named[i].remaining, info->named[i].reset_at);
    }
    LK_TEXTOUT_LIT(o, "],\"rate_limited\":");
    if (e == LK_ERR_RATE_LIMITED && info->rl_refused >= 0) {
        refused = info->named[info->rl_refused].name;
        refused_len = info->named[info->rl_refused].name_len;
    } else if (e == LK_ERR_RATE_LIMITED && info->has_rl) {
        refused = "default";
        refused_len = 7;
    }
    if (refused == NULL) {
        LK_TEXTOUT_LIT(o, "null");
    } else {
        LK_TEXTOUT_LIT(o, "\"");
        lk_textout_put(o, refused, refused_len);
        LK_TEXTOUT_LIT(o, "\"");
    }
}

/* Appends the key's context fields (no braces). Call inside the cache read lock. */
static void key_fields(struct lk_textout *o, const struct lk_ckey *k)
{
    char t[LK_TIME_STRLEN];

    if (k == NULL) {
        LK_TEXTOUT_LIT(o,
                       "\"key_id\":null,\"workspace_id\":null,\"environment\":null,\"kind\":null,"
                       "\"name\":null,\"permissions\":null,\"expires_at\":null");
        return;
    }
    LK_TEXTOUT_LIT(o, "\"key_id\":\"");
    lk_textout_str(o, k->id);
    LK_TEXTOUT_LIT(o, "\",\"workspace_id\":\"");
    lk_textout_str(o, lk_ckey_workspace_id(k));
    LK_TEXTOUT_LIT(o, "\",\"environment\":\"");
    lk_textout_str(o, lk_env_name(k->env));
    LK_TEXTOUT_LIT(o, "\",\"kind\":\"");
    lk_textout_str(o, lk_render_kind(k->kind));
    LK_TEXTOUT_LIT(o, "\",\"name\":");
    lk_textout_str(o, k->name_json);
    LK_TEXTOUT_LIT(o, ",\"permissions\":");
    lk_textout_str(o, k->permissions_json);
    LK_TEXTOUT_LIT(o, ",\"expires_at\":");
    if (k->expires_at == 0) {
        LK_TEXTOUT_LIT(o, "null");
    } else {
        lk_time_format(k->expires_at, t);
        LK_TEXTOUT_LIT(o, "\"");
        lk_textout_str(o, t);
        LK_TEXTOUT_LIT(o, "\"");
    }
}

/* Renders the whole /v1/verify answer into buf (answer_cap(k) bytes). */
static size_t verify_answer(char *buf, size_t cap, enum lk_err e, const struct lk_ckey *k,
                            const struct lk_limits_info *info, bool show_credits)
{
    struct lk_textout o = {buf, buf + cap};

    if (e == LK_OK)
        LK_TEXTOUT_LIT(&o, "{\"valid\":true,\"code\":\"");
    else
        LK_TEXTOUT_LIT(&o, "{\"valid\":false,\"code\":\"");
    lk_textout_str(&o, lk_err_code(e));
    LK_TEXTOUT_LIT(&o, "\",");
    key_fields(&o, k);
    if (info->has_rl) {
        LK_TEXTOUT_LIT(&o, ",\"ratelimit\":{\"limit\":");
        lk_textout_i64(&o, info->rl_limit);
        LK_TEXTOUT_LIT(&o, ",\"remaining\":");
        lk_textout_i64(&o, info->rl_remaining);
        LK_TEXTOUT_LIT(&o, ",\"reset\":");
        lk_textout_i64(&o, info->rl_reset);
        LK_TEXTOUT_LIT(&o, "}");
    }
    if (k != NULL && show_credits) {
        LK_TEXTOUT_LIT(&o, ",\"remaining_credits\":");
        lk_textout_i64(&o, info->remaining_credits);
    }
    if (info->ext & LK_INFO_NAMED)
        named_fields(&o, e, info, lk_clock_now_ms());
    if (info->ext & LK_INFO_KEY_CREDITS) {
        /* the key's own credits, beside the workspace's remaining_credits */
        LK_TEXTOUT_LIT(&o, ",\"credits\":{\"remaining\":");
        lk_textout_i64(&o, info->key_credits_remaining);
        LK_TEXTOUT_LIT(&o, ",\"exceeded\":");
        if (info->key_credits_short)
            LK_TEXTOUT_LIT(&o, "true}");
        else
            LK_TEXTOUT_LIT(&o, "false}");
    }
    if (info->has_cap) {
        int64_t left = info->cap - info->spent_today;
        LK_TEXTOUT_LIT(&o, ",\"daily_spend\":{\"cap\":");
        lk_textout_i64(&o, info->cap);
        LK_TEXTOUT_LIT(&o, ",\"spent\":");
        lk_textout_i64(&o, info->spent_today);
        LK_TEXTOUT_LIT(&o, ",\"remaining\":");
        lk_textout_i64(&o, left > 0 ? left : 0);
        LK_TEXTOUT_LIT(&o, "}");
    }
    LK_TEXTOUT_LIT(&o, "}");
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
        struct lk_textout o = {body, body + cap};
        LK_TEXTOUT_LIT(&o, "{");
        key_fields(&o, k);
        LK_TEXTOUT_LIT(&o, "}");
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
