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

#include "base/clock.h"
#include "base/common.h"
#include "core/namedrl.h"
#include "core/permquery.h"
#include "http/accesslog.h"
#include "http/h_unkey.h"
#include "http/handlers.h"
#include "http/keyread.h"
#include "http/textout.h"
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
    bool has_cost;
    struct lk_rl_use uses[LK_KEY_RATE_LIMITS_MAX]; /* names view the JSON tree */
    int n_uses;
};

static const struct lk_unkey_field credits_fields[] = {
    {"cost", LK_UT_INT, LK_UF_REQUIRED, 0, 1000000000},
};

static const struct lk_unkey_field ratelimit_fields[] = {
    {"name", LK_UT_STRING, LK_UF_REQUIRED, 1, LK_RL_NAME_MAX},
    {"cost", LK_UT_INT, 0, 0, 1000000000},
    {"limit", LK_UT_INT, 0, 1, 1000000000},
    {"duration", LK_UT_INT, 0, 1000, 2592000000},
};

static const struct lk_unkey_field verify_fields[] = {
    {"key", LK_UT_STRING, LK_UF_REQUIRED, 1, 512},
    {"tags", LK_UT_STRINGS, 0, 0, 20},
    {"permissions", LK_UT_STRING, 0, 1, LK_PERMQUERY_MAX_LEN},
    {"credits", LK_UT_OBJECT, 0, 0, 0},
    {"ratelimits", LK_UT_OBJECTS, 0, 0, LK_KEY_RATE_LIMITS_MAX},
    {"migrationId", LK_UT_STRING, 0, 1, 255},
};

static bool no_permissions(void *arg, const char *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return false;
}

/* The named limits a check asks for, at their cost (1 when none is given). A
 * key's limit is what the key says: `limit` and `duration` cannot be
 * overridden per check. */
static enum lk_err ratelimits_in(json_t *arr, struct vbody *vb, struct lk_errinfo *ei)
{
    json_t *rl, *cost;
    size_t i;
    char prefix[48];
    enum lk_err e;

    json_array_foreach(arr, i, rl)
    {
        struct lk_rl_use *u = &vb->uses[i];
        snprintf(prefix, sizeof(prefix), "ratelimits[%zu].", i);
        if ((e = lk_unkey_object(rl, prefix, ratelimit_fields, LK_ARRAY_LEN(ratelimit_fields),
                                 ei)) != LK_OK)
            return e;
        if (json_object_get(rl, "limit") != NULL || json_object_get(rl, "duration") != NULL)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                                  "ratelimits[%zu]: a key's limit and duration are the key's "
                                  "own; they cannot be overridden per check",
                                  i);
        u->name = json_string_value(json_object_get(rl, "name"));
        u->name_len = strlen(u->name);
        cost = json_object_get(rl, "cost");
        u->cost = cost ? json_integer_value(cost) : 1;
        if (u->name_len == 7 && memcmp(u->name, "default", 7) == 0 && u->cost != 1)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                                  "ratelimits[%zu]: the limit named default counts 1 a check", i);
        for (size_t j = 0; j < i; j++)
            if (vb->uses[j].name_len == u->name_len &&
                memcmp(vb->uses[j].name, u->name, u->name_len) == 0)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                                      "ratelimits[%zu] names a limit named before it", i);
        vb->n_uses++;
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
            vb->has_cost = true;
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
    if (vb->needs[0] == '\0' || (e = lk_permquery_eval(vb->needs, strlen(vb->needs), no_permissions,
                                                       NULL, &ignored, ei)) == LK_OK)
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
        vb->has_cost = true;
    }
    if ((v = json_object_get(vb->root, "ratelimits")) != NULL &&
        (*e = ratelimits_in(v, vb, ei)) != LK_OK)
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
    case LK_OK:
        return "VALID";
    case LK_ERR_EXPIRED_KEY:
        return "EXPIRED";
    case LK_ERR_INACTIVE_KEY:
        return "DISABLED";
    case LK_ERR_INSUFFICIENT_PERMISSIONS:
        return "INSUFFICIENT_PERMISSIONS";
    case LK_ERR_SPEND_CAP_EXCEEDED:
    case LK_ERR_INSUFFICIENT_CREDITS:
    case LK_ERR_QUOTA_EXCEEDED:
        return "USAGE_EXCEEDED";
    case LK_ERR_RATE_LIMITED:
        return "RATE_LIMITED";
    case LK_ERR_ENVIRONMENT_MISMATCH:
        return "FORBIDDEN";
    default:
        return "NOT_FOUND"; /* missing, malformed, unknown, revoked: no such key */
    }
}

/* The key's permissions as Unkey names them; only characters of permission
 * names are copied, so nothing needs escaping. */
static void put_perms(struct lk_textout *o, const struct lk_ckey *k)
{
    const struct lk_permlist *pl = k->perms;

    LK_TEXTOUT_LIT(o, ",\"permissions\":[");
    for (size_t i = 0; i < pl->n; i++) {
        if (i > 0)
            LK_TEXTOUT_LIT(o, ",");
        LK_TEXTOUT_LIT(o, "\"");
        for (size_t j = 0; j < pl->len[i]; j++) {
            char c = pl->p[i][j];
            if (c == ':')
                c = '.';
            if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
                lk_textout_put(o, &c, 1);
        }
        LK_TEXTOUT_LIT(o, "\"");
    }
    LK_TEXTOUT_LIT(o, "]");
}

/* Bytes one named limit's report takes at most: its name twice (in its id),
 * the key's id, the numbers and the member names. */
#define NAMED_MAX (2 * LK_RL_NAME_MAX + LK_ID_MAX + 200)

/* Bytes the key's meta and identity take in the answer: their texts as the
 * cache holds them (meta at most 4096 bytes, an external id's JSON at most
 * six bytes for each of its 255) and the member names. */
static size_t ext_cap(const struct lk_ckey *k)
{
    const struct lk_ckey_ext *x = k ? k->ext : NULL;

    if (x == NULL)
        return 0;
    return (x->meta_json ? x->meta_len + 16 : 0) +
           (x->identity_id ? strlen(x->identity_id) + strlen(x->external_json) + 48 : 0);
}

static size_t answer_cap(const struct lk_ckey *k, const struct lk_limits_info *info)
{
    return ANSWER_MAX + (k ? strlen(k->name_json) + strlen(k->permissions_json) : 0) +
           ext_cap(k) + (info->ext & LK_INFO_NAMED ? (size_t)info->n_named * NAMED_MAX : 0);
}

/* The key's meta (an object, left out when it is {}) and its identity (left
 * out when it has none), from the cache: the texts were made JSON on the way
 * in (meta) or when the entry was built (the external id). Latchkey's
 * identities carry no meta of their own, so the identity has none. */
static void put_ext(struct lk_textout *o, const struct lk_ckey *k)
{
    const struct lk_ckey_ext *x = k->ext;

    if (x == NULL)
        return;
    if (x->meta_json != NULL) {
        LK_TEXTOUT_LIT(o, ",\"meta\":");
        lk_textout_put(o, x->meta_json, x->meta_len);
    }
    if (x->identity_id != NULL) {
        LK_TEXTOUT_LIT(o, ",\"identity\":{\"id\":\"");
        lk_textout_str(o, x->identity_id);
        LK_TEXTOUT_LIT(o, "\",\"externalId\":");
        lk_textout_str(o, x->external_json);
        LK_TEXTOUT_LIT(o, "}");
    }
}

static void put_rl(struct lk_textout *o, const struct lk_ckey *k, const char *name, size_t name_len,
                   bool exceeded, int64_t limit, int64_t window_ms, int64_t reset_ms,
                   int64_t remaining, bool auto_apply)
{
    char id[LK_UNKEY_RL_ID_MAX];

    lk_unkey_rl_id(k->id, name, name_len, id, sizeof(id));
    if (exceeded)
        LK_TEXTOUT_LIT(o, "{\"exceeded\":true,\"id\":\"");
    else
        LK_TEXTOUT_LIT(o, "{\"exceeded\":false,\"id\":\"");
    lk_textout_str(o, id);
    /* Names are [A-Za-z0-9_.:-] (core/namedrl.h): nothing to escape. */
    LK_TEXTOUT_LIT(o, "\",\"name\":\"");
    lk_textout_put(o, name, name_len);
    LK_TEXTOUT_LIT(o, "\",\"limit\":");
    lk_textout_uint(o, limit);
    LK_TEXTOUT_LIT(o, ",\"duration\":");
    lk_textout_uint(o, window_ms);
    LK_TEXTOUT_LIT(o, ",\"reset\":");
    lk_textout_uint(o, reset_ms > 0 ? reset_ms : 0);
    LK_TEXTOUT_LIT(o, ",\"remaining\":");
    lk_textout_uint(o, remaining);
    if (auto_apply)
        LK_TEXTOUT_LIT(o, ",\"autoApply\":true}");
    else
        LK_TEXTOUT_LIT(o, ",\"autoApply\":false}");
}

/* The named limit of k called name, for what the check's report lacks. */
static const struct lk_ckey_rl *named_of(const struct lk_ckey *k, const char *name, size_t len)
{
    for (int i = 0; k->ext != NULL && i < k->ext->n_rl; i++)
        if (k->ext->rl[i].name_len == len && memcmp(k->ext->rl[i].name, name, len) == 0)
            return &k->ext->rl[i];
    return NULL;
}

/* Every limit the check applied: the key's default one, then the named ones. */
static void put_limits(struct lk_textout *o, const struct lk_ckey *k, enum lk_err e,
                       const struct lk_limits_info *info, int64_t window_s, int64_t now_ms)
{
    bool named = (info->ext & LK_INFO_NAMED) && info->n_named > 0;

    if (!info->has_rl && !named)
        return;
    LK_TEXTOUT_LIT(o, ",\"ratelimits\":[");
    if (info->has_rl)
        put_rl(o, k, "default", 7,
               e == LK_ERR_RATE_LIMITED && !((info->ext & LK_INFO_NAMED) && info->rl_refused >= 0),
               info->rl_limit, window_s * 1000, info->rl_reset * 1000, info->rl_remaining, true);
    for (int i = 0; named && i < info->n_named; i++) {
        const struct lk_rl_applied *a = &info->named[i];
        const struct lk_ckey_rl *r = named_of(k, a->name, a->name_len);
        if (info->has_rl || i > 0)
            LK_TEXTOUT_LIT(o, ",");
        put_rl(o, k, a->name, a->name_len, a->exceeded, a->limit, r ? r->window_ms : 0,
               a->reset_at - now_ms, a->remaining, r ? r->auto_apply : false);
    }
    LK_TEXTOUT_LIT(o, "]");
}

/* What an answer shows beside the outcome: window_s is the default rate
 * limit's window, now_ms the time named limits' resets count from. */
struct shown {
    int64_t window_s, now_ms;
    bool perms; /* the request asked a permission query */
};

/* The whole answer. k is NULL when the answer is NOT_FOUND. */
static size_t render(char *buf, size_t cap, const char *request_id, enum lk_err e,
                     const struct lk_ckey *k, const struct lk_limits_info *info,
                     const struct shown *sh)
{
    struct lk_textout o = {buf, buf + cap};
    const char *code = k ? code_of(e) : "NOT_FOUND";

    /* A NOT_FOUND tells nothing of a key (a revoked one is a deleted one). */
    if (strcmp(code, "NOT_FOUND") == 0)
        k = NULL;
    LK_TEXTOUT_LIT(&o, "{\"meta\":{\"requestId\":\"");
    lk_textout_str(&o, request_id);
    LK_TEXTOUT_LIT(&o, "\"},\"data\":{\"valid\":");
    if (e == LK_OK)
        LK_TEXTOUT_LIT(&o, "true");
    else
        LK_TEXTOUT_LIT(&o, "false");
    LK_TEXTOUT_LIT(&o, ",\"code\":\"");
    lk_textout_str(&o, code);
    LK_TEXTOUT_LIT(&o, "\"");
    if (k != NULL) {
        LK_TEXTOUT_LIT(&o, ",\"keyId\":\"");
        lk_textout_str(&o, k->id);
        LK_TEXTOUT_LIT(&o, "\"");
        if (strcmp(k->name_json, "\"\"") != 0) {
            LK_TEXTOUT_LIT(&o, ",\"name\":");
            lk_textout_str(&o, k->name_json);
        }
        if (k->enabled)
            LK_TEXTOUT_LIT(&o, ",\"enabled\":true");
        else
            LK_TEXTOUT_LIT(&o, ",\"enabled\":false");
        put_ext(&o, k);
        if (k->expires_at != 0) {
            LK_TEXTOUT_LIT(&o, ",\"expires\":");
            lk_textout_uint(&o, k->expires_at * 1000);
        }
        if (info->ext & LK_INFO_KEY_CREDITS) {
            LK_TEXTOUT_LIT(&o, ",\"credits\":");
            lk_textout_uint(&o, info->key_credits_remaining);
        }
        if (sh->perms)
            put_perms(&o, k);
        put_limits(&o, k, e, info, sh->window_s, sh->now_ms);
    }
    LK_TEXTOUT_LIT(&o, "}}");
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

static struct shown shown_of(struct lk_app *app, const struct lk_ckey *k,
                             const struct lk_limits_info *info, bool perms)
{
    struct shown sh = {0, 0, perms};

    if (k != NULL && info->has_rl)
        sh.window_s = window_of(app, k);
    if (k != NULL && (info->ext & LK_INFO_NAMED))
        sh.now_ms = lk_clock_now_ms();
    return sh;
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
    *vr = (struct lk_verify_req){.secret = vb->key,
                                 .len = vb->key_len,
                                 .want_env = LK_VERIFY_ANY_ENV,
                                 .now = now,
                                 .record = true,
                                 .cost = vb->cost,
                                 .ratelimits = vb->uses,
                                 .n_ratelimits = vb->n_uses};
    if (vb->needs[0] != '\0') {
        vr->needs = vb->needs;
        vr->needs_len = strlen(vb->needs);
    }
}

/* Looks the key up without counting anything. Inside the read lock. */
static enum lk_err probe(struct lk_app *app, const struct vbody *vb, int64_t now,
                         const struct lk_actor *who, const struct lk_ckey **k)
{
    struct lk_verify_req pr = {
        .secret = vb->key, .len = vb->key_len, .want_env = LK_VERIFY_ANY_ENV, .now = now};
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
    return lk_unkey_credential(rc->app, rk.base, rk.len, rc->now, rc->address, LK_MPERM_KEYS_READ,
                               who, ei);
}

/* The check's cost: what the body says, else Unkey's 1 for a key with credits of
 * its own (a key without spends nothing unasked). Inside the read lock. */
static void cost_of(const struct vbody *vb, const struct lk_ckey *k, struct lk_verify_req *vr)
{
    if (!vb->has_cost && k != NULL && k->ext != NULL && k->ext->credits)
        vr->cost = 1;
}

/* A check refused before it counted because it named a limit the key has not. */
static bool unknown_limit(enum lk_err e, const struct lk_limits_info *info, struct lk_errinfo *ei)
{
    if (e != LK_ERR_INVALID_REQUEST)
        return false;
    lk_errinfo_set(ei, e, "ratelimits",
                   "ratelimits[%d].name: the key has no rate limit by that name", info->rl_unknown);
    snprintf(ei->field, sizeof(ei->field), "ratelimits[%d].name", info->rl_unknown);
    return true;
}

int lk_h_unkey_verify(struct lk_reqctx *rc)
{
    h2o_iovec_t body = rc->req->entity.base ? rc->req->entity : h2o_iovec_init("", 0);
    struct lk_actor who;
    struct lk_verify_req vr;
    struct lk_limits_info info = {0};
    struct lk_errinfo ei;
    struct vbody vb;
    struct shown sh;
    const struct lk_ckey *k;
    enum lk_err e;
    char *out;
    size_t len, cap;

    if ((e = loop_actor(rc, &who, &ei)) != LK_OK) {
        if (e == LK_ERR_TOO_MANY_REQUESTS)
            lk_respond_limit_headers(rc->req, NULL, lk_app_limits(rc->app)->failed_key.window_s);
        return lk_unkey_respond_error(rc, e, &ei);
    }
    if (!vbody_read(body.base, body.len, &vb, &e, &ei))
        return lk_unkey_respond_error(rc, e, &ei);
    check_of(&vb, rc->now, &vr);
    lk_keycache_read_lock();
    if ((e = probe(rc->app, &vb, rc->now, &who, &k)) != LK_ERR_STORAGE_UNAVAILABLE && k != NULL) {
        cost_of(&vb, k, &vr);
        e = lk_verify(rc->app, &vr, &k, &info);
    }
    if (info.need_lease || e == LK_ERR_STORAGE_UNAVAILABLE || unknown_limit(e, &info, &ei)) {
        lk_keycache_read_unlock();
        vbody_release(&vb);
        /* A short lease, or a key's own credits (a store write): a worker
         * decides again, so this loop never waits for the disk. */
        if (info.need_lease)
            return lk_mgmt_submit_as(rc->mgmt, rc, lk_h_unkey_verify_leased, LK_MPERM_KEYS_READ);
        return lk_unkey_respond_error(rc, e, e == LK_ERR_INVALID_REQUEST ? &ei : NULL);
    }
    sh = shown_of(rc->app, k, &info, vb.needs[0] != '\0');
    cap = answer_cap(k, &info);
    out = h2o_mem_alloc_pool(&rc->req->pool, cap);
    len = render(out, cap, rc->request_id, e, k, &info, &sh);
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
    struct lk_errinfo ei;
    struct shown sh;
    size_t cap;
    char *out;

    if (e == LK_ERR_STORAGE_UNAVAILABLE || unknown_limit(e, info, &ei)) {
        lk_unkey_mreq_error(a->m, e, e == LK_ERR_INVALID_REQUEST ? &ei : NULL);
        return;
    }
    sh = shown_of(a->m->app, k, info, a->show_perms);
    cap = answer_cap(k, info);
    out = lk_malloc(cap);
    lk_mreq_raw(a->m, 200, out, render(out, cap, a->m->request_id, e, k, info, &sh));
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
    cost_of(&vb, k, &vr);
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
