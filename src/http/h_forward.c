/*
 * h_forward.c — ANY /v1/forward-auth, for nginx auth_request, Caddy forward_auth,
 * Traefik ForwardAuth and Envoy ext_authz (DESIGN §5): the proxy forwards the
 * client's request (its headers, and its method and URI in X-Forwarded-Method /
 * X-Forwarded-Uri or X-Original-Method / X-Original-URI); the route rules
 * (core/routerules.h) say what it needs; the key is checked as /v1/verify would,
 * cost and all. 200 carries the key's identity in X-Latchkey-* headers; any other
 * answer is the error the proxy passes on.
 */
#include "base/common.h"
#include "http/handlers.h"
#include "http/keyread.h"
#include "service/throttle.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define LK_FORWARD_PATH_MAX 2048 /* longer forwarded paths are refused */
#define PREFIX "/v1/forward-auth"   /* Envoy appends the original path to this */

/* Every refusal: the error, with its code in a header too. */
static int refuse(struct lk_reqctx *rc, enum lk_err e, const struct lk_errinfo *ei)
{
    lk_respond_header(rc, "x-latchkey-error-code", lk_err_code(e));
    return lk_respond_error(rc, e, ei);
}

static int ambiguous(struct lk_reqctx *rc)
{
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    lk_errinfo_set(&ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                   "The forwarded request is ambiguous: its method or URI headers "
                   "(X-Forwarded-*, X-Original-* and the /v1/forward-auth/ path) disagree");
    return refuse(rc, LK_ERR_INSUFFICIENT_PERMISSIONS, &ei);
}

/* A rule's per_ip=N/S: true when the client's address may go on; else the
 * refusal is sent. Counted before the key is read, so a public route is
 * limited as well and a throttled client costs no key lookup. */
static bool per_ip_passes(struct lk_reqctx *rc, const struct lk_route_rule *rule, int *ret)
{
    char name[sizeof(rc->address) + 32];
    struct lk_throttle *t;
    int64_t retry = rule->ip_window;

    if (rule->ip_limit == 0)
        return true;
    /* One count per rule and address: the rule's line and pattern name it. */
    snprintf(name, sizeof(name), "%ld %.20s|%s", rule->line, rule->pattern, rc->address);
    t = lk_app_route_ip(rc->app, rule->ip_limit, rule->ip_window);
    if (t != NULL && lk_throttle_take(t, name, rc->now, &retry))
        return true;
    lk_respond_limit_headers(rc->req, NULL, retry > 0 ? retry : 1);
    *ret = refuse(rc, LK_ERR_TOO_MANY_REQUESTS, NULL);
    return false;
}

/* What one pass over the request headers finds: the method and URI the proxy
 * forwarded, each under either convention (X-Forwarded-* or X-Original-*), and
 * whether any method override header came. */
struct fwd_heads {
    h2o_iovec_t method, uri;
    bool ambiguous; /* one of them given twice with different values */
    bool override;  /* an X-HTTP-Method-Override or alike is present */
};

/* Keeps v as the one value of *out; a second, different value is ambiguous:
 * nginx passes a client's own X-Forwarded-* on beside the X-Original-* it sets,
 * and a check must not judge one request while the backend serves another. */
static void one_value(h2o_iovec_t *out, h2o_iovec_t v, bool *ambiguous)
{
    if (out->base != NULL && !h2o_memis(out->base, out->len, v.base, v.len))
        *ambiguous = true;
    *out = v;
}

#define IS(h, lit) h2o_memis((h)->name->base, (h)->name->len, H2O_STRLIT(lit))

/* Method override headers: Express's method-override, Symfony, Laravel and
 * ASP.NET serve a POST with X-HTTP-Method-Override: DELETE as a DELETE, which
 * the rules never judged. */
static bool is_override(const h2o_header_t *h)
{
    return IS(h, "x-http-method-override") || IS(h, "x-http-method") ||
           IS(h, "x-method-override");
}

/* One pass: every header name is compared only with the names that have its
 * length, and the long list of a proxied request is walked once, not thrice. */
static void read_forwarded(h2o_req_t *req, struct fwd_heads *f)
{
    *f = (struct fwd_heads){{NULL, 0}, {NULL, 0}, false, false};
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len < sizeof("x-http-method") - 1 || h->name->base[0] != 'x')
            continue; /* the shortest name looked for; all start with x */
        if (IS(h, "x-forwarded-method") || IS(h, "x-original-method"))
            one_value(&f->method, h->value, &f->ambiguous);
        else if (IS(h, "x-forwarded-uri") || IS(h, "x-original-uri"))
            one_value(&f->uri, h->value, &f->ambiguous);
        else if (is_override(h))
            f->override = true;
    }
}

/* True when the request carries a method override naming another method than
 * `method`. */
static bool same_word(h2o_iovec_t a, h2o_iovec_t b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (h2o_tolower(a.base[i]) != h2o_tolower(b.base[i]))
            return false;
    return true;
}

static bool overridden(h2o_req_t *req, h2o_iovec_t method)
{
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (is_override(h) && !same_word(h->value, method))
            return true;
    }
    return false;
}

static void request_of(const struct lk_route_rule *rule, h2o_iovec_t key, const char *address,
                       int64_t now, struct lk_verify_req *vr)
{
    *vr = (struct lk_verify_req){.secret = key.base, .len = key.len,
                                 .want_env = rule->env, .now = now, .record = true,
                                 .cost = rule->cost, .address = address};
    if (rule->needs == LK_NEEDS_QUERY) {
        vr->needs = rule->query;
        vr->needs_len = strlen(rule->query);
    }
}

/* One request is judged by one table of rules (rules), however a reload goes. */
static int forward_auth(struct lk_reqctx *rc, const struct lk_route_rules *rules)
{
    h2o_req_t *req = rc->req;
    h2o_iovec_t method, uri, query, key;
    struct fwd_heads f;
    struct lk_errinfo ei;
    const struct lk_route_rule *rule;
    char path[LK_FORWARD_PATH_MAX];
    struct lk_verify_req vr;
    struct lk_limits_info info;
    const struct lk_ckey *k;
    char id[LK_ID_MAX], ws[LK_ID_MAX];
    const char *env = NULL;
    size_t plen = 0;
    long r, n;
    int ret = 0;
    enum lk_err e;

    lk_errinfo_clear(&ei);
    read_forwarded(req, &f);
    if (f.ambiguous)
        return ambiguous(rc);
    method = f.method;
    uri = f.uri;
    if (req->path.len > sizeof(PREFIX) - 1 && req->path.base[sizeof(PREFIX) - 1] == '/') {
        /* Envoy's form: the suffix is the original path and query, the method
         * the original method. Headers may repeat them, but not contradict. */
        h2o_iovec_t suffix = h2o_iovec_init(req->path.base + sizeof(PREFIX) - 1,
                                            req->path.len - (sizeof(PREFIX) - 1));
        if ((uri.base != NULL && !h2o_memis(uri.base, uri.len, suffix.base, suffix.len)) ||
            (method.base != NULL &&
             !h2o_memis(method.base, method.len, req->method.base, req->method.len)))
            return ambiguous(rc);
        uri = suffix;
        method = req->method;
    }
    if (method.base == NULL)
        method = req->method;
    if (f.override && overridden(req, method)) {
        lk_errinfo_set(&ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                       "The forwarded request is ambiguous: a method override header "
                       "(X-HTTP-Method-Override) names another method");
        return refuse(rc, LK_ERR_INSUFFICIENT_PERMISSIONS, &ei);
    }
    if (uri.base == NULL)
        uri = h2o_iovec_init(H2O_STRLIT("/"));
    while (plen < uri.len && uri.base[plen] != '?' && uri.base[plen] != '#')
        plen++;
    query = plen < uri.len && uri.base[plen] == '?'
                ? h2o_iovec_init(uri.base + plen + 1, uri.len - plen - 1)
                : h2o_iovec_init("", 0);
    for (size_t i = 0; i < query.len; i++)
        if (query.base[i] == '#')
            query.len = i;
    /* Rules judge the path the backend will serve, however it was spelled; a
     * path with no one meaning is refused. A request target has no fragment
     * (RFC 9112): a '#' in its path is a path character to some servers (Go's),
     * so "/public/#/../../admin" would be judged as /public/ and served as
     * /admin. After the query has begun it can only end the query. */
    n = plen < uri.len && uri.base[plen] == '#'
            ? -1
            : lk_route_path_normalize(uri.base, plen, rules->params, path, sizeof(path));
    if (n < 0) {
        lk_errinfo_set(&ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                       "The forwarded path has more than one meaning (a ';', a '#', an "
                       "encoded '/' or '%%', a '\\', a control character, bytes that are "
                       "not UTF-8 or '..' above the root)");
        return refuse(rc, LK_ERR_INSUFFICIENT_PERMISSIONS, &ei);
    }
    r = lk_route_rules_match(rules, method.base, method.len, path, (size_t)n);
    if (r < 0)
        return refuse(rc, LK_ERR_INSUFFICIENT_PERMISSIONS, NULL);
    rule = &rules->rules[r];
    if (!per_ip_passes(rc, rule, &ret))
        return ret;
    if (rule->needs == LK_NEEDS_PUBLIC)
        return lk_respond_raw(rc, 200, "", 0);
    if ((e = lk_keyread_query(req, query, &key)) != LK_OK)
        return refuse(rc, e, NULL);
    request_of(rule, key, rc->address, rc->now, &vr);
    lk_keycache_read_lock();
    e = lk_verify(rc->app, &vr, &k, &info);
    if (info.need_lease) {
        lk_keycache_read_unlock();
        rc->fwd_key = key;
        rc->fwd_rule = r;
        rc->fwd_rules = lk_app_routes_hold(rules); /* the worker's; freed with its job */
        return lk_mgmt_submit(rc->mgmt, rc, lk_h_forward_auth_leased);
    }
    if (e == LK_OK) {
        memcpy(id, k->id, sizeof(id));
        memcpy(ws, lk_ckey_workspace_id(k), sizeof(ws));
        env = lk_env_name(k->env);
    }
    lk_keycache_read_unlock();
    lk_respond_limit_headers(req, &info, lk_verify_retry_after(e, &info));
    if (e != LK_OK)
        return refuse(rc, e, NULL);
    lk_respond_identity(req, id, ws, env);
    return lk_respond_raw(rc, 200, "", 0);
}

int lk_h_forward_auth(struct lk_reqctx *rc)
{
    int ret;

    lk_keycache_read_lock(); /* the rules stay as they are until the unlock */
    ret = forward_auth(rc, lk_app_routes(rc->app));
    lk_keycache_read_unlock();
    return ret;
}

static void leased_done(void *arg, enum lk_err e, const struct lk_ckey *k,
                        const struct lk_limits_info *info)
{
    struct lk_mreq *m = arg;

    m->limits = *info;
    m->retry_after = lk_verify_retry_after(e, info);
    if (e == LK_ERR_INSUFFICIENT_CREDITS && (info->ext & LK_INFO_KEY_CREDITS) &&
        info->key_credits_short) {
        struct lk_errinfo ei;
        lk_errinfo_set(&ei, e, "", "The key's own credits (%lld left) are fewer than the cost "
                       "of this request; its workspace's balance is not the reason",
                       (long long)info->key_credits_remaining);
        lk_mreq_error(m, e, &ei);
        return;
    }
    if (e != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    memcpy(m->fwd_key_id, k->id, sizeof(m->fwd_key_id));
    memcpy(m->fwd_workspace_id, lk_ckey_workspace_id(k), sizeof(m->fwd_workspace_id));
    snprintf(m->fwd_env, sizeof(m->fwd_env), "%s", lk_env_name(k->env));
    lk_mreq_raw(m, 200, "", 0);
}

void lk_h_forward_auth_leased(struct lk_mreq *m)
{
    struct lk_verify_req vr;

    request_of(&m->fwd_rules->rules[m->fwd_rule], h2o_iovec_init(m->key, m->key_len),
               m->address, m->now, &vr);
    if (lk_verify_leasing(m->app, &vr, leased_done, m) != LK_OK)
        lk_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, NULL);
}
