/*
 * h_unkey_verify.c — POST /v2/keys.verifyKey, Unkey's key check, on the event
 * loop like POST /v1/verify (and on a worker when a credit lease runs short).
 * The caller's root key is checked from memory; the key in the body is judged
 * by latchkey's pipeline and answered 200 with Unkey's `code` whatever it
 * found. A key of another workspace is NOT_FOUND and is never counted: it is
 * looked up without recording first, then checked for real only when it is
 * the caller's. The answer is rendered from a fixed template, as h_verify.c's.
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "core/permquery.h"
#include "http/accesslog.h"
#include "http/h_unkey.h"
#include "http/handlers.h"
#include "http/keyread.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define ANSWER_MAX 1024 /* the answer without the key's name and permissions */

/* A decoded body. The key is a view into the JSON tree, which owns it. */
struct vbody {
    json_t *root;
    const char *key;
    size_t key_len;
    char needs[LK_PERMQUERY_MAX_LEN + 1]; /* the query in latchkey's names; "" if none */
    int64_t cost;
};

static const struct lk_unkey_field credits_fields[] = {
    {"cost", LK_UT_INT, LK_UF_REQUIRED, 0, 1000000000},
};

static const struct lk_unkey_field ratelimit_fields[] = {
    {"name", LK_UT_STRING, LK_UF_REQUIRED, 1, 128},
    {"cost", LK_UT_INT, 0, 0, 1000000},
    {"limit", LK_UT_INT, 0, 1, 1000000},
    {"duration", LK_UT_INT, 0, 1000, 2592000000},
};

static const struct lk_unkey_field verify_fields[] = {
    {"key", LK_UT_STRING, LK_UF_REQUIRED, 1, 512},
    {"tags", LK_UT_STRINGS, 0, 0, 20},
    {"permissions", LK_UT_STRING, 0, 1, LK_PERMQUERY_MAX_LEN},
    {"credits", LK_UT_OBJECT, 0, 0, 0},
    {"ratelimits", LK_UT_OBJECTS, 0, 0, 20},
    {"migrationId", LK_UT_STRING, 0, 1, 255},
};

static bool no_permissions(void *arg, const char *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return false;
}

/* The key's own rate limit is the only one a check applies: one named in
 * `ratelimits` must be it ("default"), at the cost of one check. */
static enum lk_err ratelimits_in(json_t *arr, struct lk_errinfo *ei)
{
    json_t *rl;
    size_t i;
    enum lk_err e;

    json_array_foreach(arr, i, rl) {
        json_t *cost;
        if ((e = lk_unkey_object(rl, "ratelimits[].", ratelimit_fields,
                                 LK_ARRAY_LEN(ratelimit_fields), ei)) != LK_OK)
            return e;
        if (strcmp(json_string_value(json_object_get(rl, "name")), "default") != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits[].name",
                                  "a key has one rate limit, named 'default'");
        if (json_object_get(rl, "limit") != NULL || json_object_get(rl, "duration") != NULL ||
            ((cost = json_object_get(rl, "cost")) != NULL && json_integer_value(cost) != 1))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits[]",
                                  "a check counts once against the key's own rate limit: "
                                  "limit, duration and cost cannot be overridden");
    }
    return LK_OK;
}

/* --- the common body without a JSON tree --------------------------------------
 *
 * Nearly every check sends `{"key":"..."}`, perhaps with "permissions" and
 * "credits":{"cost":N} (the SDK's JSON.stringify, no blanks). Building a jansson
 * tree for it cost more than the check itself, so that shape is read by a
 * scanner that either takes a body whole or declines it; anything else, valid or
 * not, goes to the table-driven reader, which answers every refusal. What the
 * scanner takes, the reader takes the same way: strings of printable ASCII
 * without '"' or '\\' (no escapes: the bytes are the string) within the table's
 * bounds, each member once, the cost as digits without a leading zero within
 * credits_fields' range, JSON's four blanks between tokens. */

struct hot {
    const char *p, *end;
};

static bool hot_tok(struct hot *h, char c)
{
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
    if (h->p == h->end || *h->p != c)
        return false;
    h->p++;
    return true;
}

/* A string of 1..max plain bytes; *v views them in the body. */
static bool hot_str(struct hot *h, size_t max, const char **v, size_t *n)
{
    const char *q;

    if (!hot_tok(h, '"'))
        return false;
    for (q = h->p; q < h->end && *q != '"' && (size_t)(q - h->p) <= max; q++)
        if (*q < 0x20 || *q > 0x7e || *q == '\\')
            return false;
    if (q == h->end || *q != '"' || q == h->p || (size_t)(q - h->p) > max)
        return false;
    *v = h->p;
    *n = (size_t)(q - h->p);
    h->p = q + 1;
    return true;
}

/* `{"cost": N}` with N in 0..10^9. */
static bool hot_credits(struct hot *h, int64_t *cost)
{
    const char *name;
    size_t n;
    int64_t v = 0;
    int digits = 0;

    if (!hot_tok(h, '{') || !hot_str(h, 4, &name, &n) || n != 4 || memcmp(name, "cost", 4) != 0 ||
        !hot_tok(h, ':'))
        return false;
    while (h->p < h->end && h->p[0] == ' ')
        h->p++;
    for (; h->p < h->end && *h->p >= '0' && *h->p <= '9'; h->p++)
        if (++digits > 10 || (digits == 2 && v == 0))
            return false;
        else
            v = v * 10 + (*h->p - '0');
    if (digits == 0 || v > credits_fields[0].max)
        return false;
    *cost = v;
    return hot_tok(h, '}');
}

static bool hot_read(const char *body, size_t len, struct vbody *vb)
{
    struct hot h = {body, body + len};
    unsigned seen = 0;
    const char *name, *v;
    size_t n, vn;

    if (body == NULL || !hot_tok(&h, '{'))
        return false;
    do {
        if (!hot_str(&h, 16, &name, &n) || !hot_tok(&h, ':'))
            return false;
        if (n == 3 && memcmp(name, "key", 3) == 0 && !(seen & 1)) {
            if (!hot_str(&h, (size_t)verify_fields[0].max, &vb->key, &vb->key_len))
                return false;
            seen |= 1;
        } else if (n == 11 && memcmp(name, "permissions", 11) == 0 && !(seen & 2)) {
            if (!hot_str(&h, LK_PERMQUERY_MAX_LEN, &v, &vn) ||
                !lk_unkey_perm_in(v, vn, vb->needs, sizeof(vb->needs)))
                return false;
            seen |= 2;
        } else if (n == 7 && memcmp(name, "credits", 7) == 0 && !(seen & 4)) {
            if (!hot_credits(&h, &vb->cost))
                return false;
            seen |= 4;
        } else {
            return false; /* the reader words the answer */
        }
    } while (hot_tok(&h, ','));
    if (!hot_tok(&h, '}') || !(seen & 1))
        return false;
    while (h.p < h.end && (*h.p == ' ' || *h.p == '\t' || *h.p == '\n' || *h.p == '\r'))
        h.p++;
    return h.p == h.end;
}

/* Checks the permission query the body asked, in latchkey's names. */
static enum lk_err check_query(struct vbody *vb, struct lk_errinfo *ei)
{
    bool ignored;
    enum lk_err e;

    /* A malformed query is the caller's bug whatever the key: 400, pointing at it. */
    if (vb->needs[0] == '\0' ||
        (e = lk_permquery_eval(vb->needs, strlen(vb->needs), no_permissions, NULL, &ignored,
                               ei)) == LK_OK)
        return LK_OK;
    snprintf(ei->field, sizeof(ei->field), "permissions");
    return e;
}

/* Decodes and checks the body; on failure *e and ei say why. */
static bool vbody_read(const char *body, size_t len, struct vbody *vb, enum lk_err *e,
                       struct lk_errinfo *ei)
{
    json_t *v;

    memset(vb, 0, sizeof(*vb));
    lk_errinfo_clear(ei);
    if (hot_read(body, len, vb))
        return (*e = check_query(vb, ei)) == LK_OK;
    memset(vb, 0, sizeof(*vb));
    if ((*e = lk_unkey_body(body, len, verify_fields, LK_ARRAY_LEN(verify_fields), &vb->root,
                            ei)) != LK_OK)
        return false;
    v = json_object_get(vb->root, "key");
    vb->key = json_string_value(v);
    vb->key_len = json_string_length(v);
    if (json_object_get(vb->root, "migrationId") != NULL) {
        *e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "migrationId",
                            "migrations are not supported: import keys with POST /v1/keys "
                            "{\"sha256\"}");
        goto fail;
    }
    if ((v = json_object_get(vb->root, "credits")) != NULL) {
        if ((*e = lk_unkey_object(v, "credits.", credits_fields, LK_ARRAY_LEN(credits_fields),
                                  ei)) != LK_OK)
            goto fail;
        vb->cost = json_integer_value(json_object_get(v, "cost"));
    }
    if ((v = json_object_get(vb->root, "ratelimits")) != NULL &&
        (*e = ratelimits_in(v, ei)) != LK_OK)
        goto fail;
    if ((v = json_object_get(vb->root, "permissions")) != NULL) {
        if (!lk_unkey_perm_in(json_string_value(v), json_string_length(v), vb->needs,
                              sizeof(vb->needs))) {
            *e = lk_errinfo_set(ei, LK_ERR_BAD_QUERY, "permissions",
                                "permissions: names are joined by '.', and ':' is not allowed");
            goto fail;
        }
    }
    if ((*e = check_query(vb, ei)) != LK_OK)
        goto fail;
    return true;
fail:
    json_decref(vb->root);
    vb->root = NULL;
    return false;
}

static void vbody_release(struct vbody *vb)
{
    json_t *key = json_object_get(vb->root, "key");

    /* jansson's copy of the key is a secret. */
    if (key != NULL)
        OPENSSL_cleanse((char *)json_string_value(key), json_string_length(key));
    json_decref(vb->root);
    vb->root = NULL;
}

/* Unkey's code for latchkey's outcome (docs/unkey.md has the table). */
static const char *code_of(enum lk_err e)
{
    switch (e) {
    case LK_OK: return "VALID";
    case LK_ERR_EXPIRED_KEY: return "EXPIRED";
    case LK_ERR_INACTIVE_KEY: return "DISABLED";
    case LK_ERR_INSUFFICIENT_PERMISSIONS: return "INSUFFICIENT_PERMISSIONS";
    case LK_ERR_SPEND_CAP_EXCEEDED:
    case LK_ERR_INSUFFICIENT_CREDITS:
    case LK_ERR_QUOTA_EXCEEDED: return "USAGE_EXCEEDED";
    case LK_ERR_RATE_LIMITED: return "RATE_LIMITED";
    case LK_ERR_ENVIRONMENT_MISMATCH: return "FORBIDDEN";
    default: return "NOT_FOUND"; /* missing, malformed, unknown, revoked: no such key */
    }
}

/* Appends to a buffer sized beforehand; printf-free, as every check renders one. */
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

static void put_int(struct out *o, int64_t v)
{
    char buf[24];
    char *q = buf + sizeof(buf);
    uint64_t u = v < 0 ? 0 : (uint64_t)v; /* every number here is a count or a time */

    do
        *--q = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    put(o, q, (size_t)(buf + sizeof(buf) - q));
}

/* The key's permissions as Unkey names them; only characters of permission
 * names are copied, so nothing needs escaping. */
static void put_perms(struct out *o, const struct lk_ckey *k)
{
    const struct lk_permlist *pl = k->perms;

    PUT(o, ",\"permissions\":[");
    for (size_t i = 0; i < pl->n; i++) {
        if (i > 0)
            PUT(o, ",");
        PUT(o, "\"");
        for (size_t j = 0; j < pl->len[i]; j++) {
            char c = pl->p[i][j];
            if (c == ':')
                c = '.';
            if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
                put(o, &c, 1);
        }
        PUT(o, "\"");
    }
    PUT(o, "]");
}

static size_t answer_cap(const struct lk_ckey *k)
{
    return ANSWER_MAX + (k ? strlen(k->name_json) + strlen(k->permissions_json) : 0);
}

/* The whole answer. k is NULL when the answer is NOT_FOUND. window_s is the
 * applied rate limit's window. */
static size_t render(char *buf, size_t cap, const char *request_id, enum lk_err e,
                     const struct lk_ckey *k, const struct lk_limits_info *info, int64_t window_s,
                     bool show_perms)
{
    struct out o = {buf, buf + cap};
    const char *code = k ? code_of(e) : "NOT_FOUND";

    /* A NOT_FOUND tells nothing of a key (a revoked one is a deleted one). */
    if (strcmp(code, "NOT_FOUND") == 0)
        k = NULL;
    PUT(&o, "{\"meta\":{\"requestId\":\"");
    put_str(&o, request_id);
    PUT(&o, "\"},\"data\":{\"valid\":");
    if (e == LK_OK)
        PUT(&o, "true");
    else
        PUT(&o, "false");
    PUT(&o, ",\"code\":\"");
    put_str(&o, code);
    PUT(&o, "\"");
    if (k != NULL) {
        PUT(&o, ",\"keyId\":\"");
        put_str(&o, k->id);
        PUT(&o, "\"");
        if (strcmp(k->name_json, "\"\"") != 0) {
            PUT(&o, ",\"name\":");
            put_str(&o, k->name_json);
        }
        if (k->enabled)
            PUT(&o, ",\"enabled\":true");
        else
            PUT(&o, ",\"enabled\":false");
        if (k->expires_at != 0) {
            PUT(&o, ",\"expires\":");
            put_int(&o, k->expires_at * 1000);
        }
        if (show_perms)
            put_perms(&o, k);
        if (info->has_rl) {
            PUT(&o, ",\"ratelimits\":[{\"exceeded\":");
            if (e == LK_ERR_RATE_LIMITED)
                PUT(&o, "true");
            else
                PUT(&o, "false");
            PUT(&o, ",\"id\":\"rl_");
            put_str(&o, strncmp(k->id, "key_", 4) == 0 ? k->id + 4 : k->id);
            PUT(&o, "\",\"name\":\"default\",\"limit\":");
            put_int(&o, info->rl_limit);
            PUT(&o, ",\"duration\":");
            put_int(&o, window_s * 1000);
            PUT(&o, ",\"reset\":");
            put_int(&o, info->rl_reset * 1000);
            PUT(&o, ",\"remaining\":");
            put_int(&o, info->rl_remaining);
            PUT(&o, ",\"autoApply\":true}]");
        }
    }
    PUT(&o, "}}");
    return (size_t)(o.p - buf);
}

/* The window of the rate limit that applied to k: its own, or the default. */
static int64_t window_of(struct lk_app *app, const struct lk_ckey *k)
{
    const struct lk_limits_config *lc = lk_app_limits(app);

    if (k->rl_limit > 0)
        return k->rl_window_s;
    return k->env == LK_ENV_TEST ? lc->test_rate.window_s : lc->live_rate.window_s;
}

/* Whether k (the probe's answer) is a key of the caller's that the v2 surface
 * shows. */
static bool ours(const struct lk_ckey *k, const struct lk_actor *who)
{
    return k != NULL && (k->kind == LK_KIND_PERMANENT || k->kind == LK_KIND_TEMPORARY) &&
           strcmp(lk_ckey_workspace_id(k), who->workspace_id) == 0;
}

static void check_of(const struct vbody *vb, int64_t now, struct lk_verify_req *vr)
{
    /* The caller is the customer's backend, known by its root key: its users'
     * bad keys must not throttle it, so no address is counted for them. */
    *vr = (struct lk_verify_req){.secret = vb->key, .len = vb->key_len,
                                 .want_env = LK_VERIFY_ANY_ENV, .now = now, .record = true,
                                 .cost = vb->cost};
    if (vb->needs[0] != '\0') {
        vr->needs = vb->needs;
        vr->needs_len = strlen(vb->needs);
    }
}

/* Looks the key up without counting anything. Inside the read lock. */
static enum lk_err probe(struct lk_app *app, const struct vbody *vb, int64_t now,
                         const struct lk_actor *who, const struct lk_ckey **k)
{
    struct lk_verify_req pr = {.secret = vb->key, .len = vb->key_len,
                               .want_env = LK_VERIFY_ANY_ENV, .now = now};
    struct lk_limits_info info;
    enum lk_err e = lk_verify(app, &pr, k, &info);

    if (e == LK_ERR_STORAGE_UNAVAILABLE || ours(*k, who))
        return e;
    *k = NULL;
    return LK_ERR_INVALID_KEY; /* whatever it is elsewhere, here it does not exist */
}

/* The credential on the event loop: keys only, from memory. */
static enum lk_err loop_actor(struct lk_reqctx *rc, struct lk_actor *who, struct lk_errinfo *ei)
{
    h2o_iovec_t rk;
    enum lk_err e;

    lk_errinfo_clear(ei);
    if ((e = lk_keyread(rc->req, &rk)) != LK_OK)
        return e;
    if (rk.base == NULL)
        return LK_ERR_MISSING_KEY;
    if (lk_auth_is_session(rk.base, rk.len))
        return lk_errinfo_set(ei, LK_ERR_MALFORMED_KEY, "",
                              "the v2 API takes a root key or an application key, not a session");
    return lk_auth_actor(rc->app, rk.base, rk.len, rc->now, NULL, rc->address,
                         LK_MPERM_KEYS_READ, who, ei);
}

int lk_h_unkey_verify(struct lk_reqctx *rc)
{
    h2o_iovec_t body = rc->req->entity.base ? rc->req->entity : h2o_iovec_init("", 0);
    struct lk_actor who;
    struct lk_verify_req vr;
    struct lk_limits_info info = {0};
    struct lk_errinfo ei;
    struct vbody vb;
    const struct lk_ckey *k;
    enum lk_err e;
    char *out;
    size_t len, cap;
    int64_t window_s = 0;

    if ((e = loop_actor(rc, &who, &ei)) != LK_OK) {
        if (e == LK_ERR_TOO_MANY_REQUESTS)
            lk_respond_limit_headers(rc->req, NULL, lk_app_limits(rc->app)->failed_key.window_s);
        return lk_unkey_respond_error(rc, e, &ei);
    }
    if (!vbody_read(body.base, body.len, &vb, &e, &ei))
        return lk_unkey_respond_error(rc, e, &ei);
    check_of(&vb, rc->now, &vr);
    lk_keycache_read_lock();
    if ((e = probe(rc->app, &vb, rc->now, &who, &k)) != LK_ERR_STORAGE_UNAVAILABLE && k != NULL)
        e = lk_verify(rc->app, &vr, &k, &info);
    if (info.need_lease) {
        /* The lease in memory is short: a worker leases and decides again. */
        lk_keycache_read_unlock();
        vbody_release(&vb);
        return lk_mgmt_submit_as(rc->mgmt, rc, lk_h_unkey_verify_leased, LK_MPERM_KEYS_READ);
    }
    if (e == LK_ERR_STORAGE_UNAVAILABLE) {
        lk_keycache_read_unlock();
        vbody_release(&vb);
        return lk_unkey_respond_error(rc, e, NULL);
    }
    if (k != NULL && info.has_rl)
        window_s = window_of(rc->app, k);
    cap = answer_cap(k);
    out = h2o_mem_alloc_pool(&rc->req->pool, cap);
    len = render(out, cap, rc->request_id, e, k, &info, window_s, vb.needs[0] != '\0');
    lk_accesslog_outcome(rc->req, e, k ? k->id : NULL);
    lk_keycache_read_unlock();
    vbody_release(&vb);
    lk_respond_limit_headers(rc->req, &info, lk_verify_retry_after(e, &info));
    return lk_respond_raw(rc, 200, out, len);
}

struct leased {
    struct lk_mreq *m;
    bool show_perms;
};

static void leased_done(void *arg, enum lk_err e, const struct lk_ckey *k,
                        const struct lk_limits_info *info)
{
    struct leased *a = arg;
    size_t cap = answer_cap(k);
    char *out;

    if (e == LK_ERR_STORAGE_UNAVAILABLE) {
        lk_unkey_mreq_error(a->m, e, NULL);
        return;
    }
    out = lk_malloc(cap);
    lk_mreq_raw(a->m, 200, out,
                render(out, cap, a->m->request_id, e, k, info,
                       k && info->has_rl ? window_of(a->m->app, k) : 0, a->show_perms));
    free(out);
    a->m->limits = *info;
    a->m->check_err = e;
    if (k != NULL)
        snprintf(a->m->check_key_id, sizeof(a->m->check_key_id), "%s", k->id);
    a->m->retry_after = lk_verify_retry_after(e, info);
}

void lk_h_unkey_verify_leased(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_verify_req vr;
    struct lk_errinfo ei;
    struct vbody vb;
    const struct lk_ckey *k;
    struct leased a = {m, false};
    enum lk_err e;

    if (!lk_unkey_actor(m, &who))
        return;
    if (!vbody_read(m->body, m->body_len, &vb, &e, &ei)) {
        lk_unkey_mreq_error(m, e, &ei);
        return;
    }
    a.show_perms = vb.needs[0] != '\0';
    check_of(&vb, m->now, &vr);
    lk_keycache_read_lock();
    e = probe(m->app, &vb, m->now, &who, &k);
    lk_keycache_read_unlock();
    if (e == LK_ERR_STORAGE_UNAVAILABLE) {
        lk_unkey_mreq_error(m, e, NULL);
    } else if (k == NULL) {
        struct lk_limits_info none = {0};
        leased_done(&a, e, NULL, &none);
    } else if (lk_verify_leasing(m->app, &vr, leased_done, &a) != LK_OK) {
        lk_unkey_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, NULL);
    }
    vbody_release(&vb);
}
