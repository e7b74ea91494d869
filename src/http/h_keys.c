/*
 * h_keys.c — /v1/keys: create, list, read, change, revoke, regenerate.
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/keyread.h"
#include "http/render.h"
#include "service/keys.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 100

/* Copies the {id} path segment into a NUL-terminated id; false if it cannot be one. */
static bool key_id_param(struct lk_reqctx *rc, char id[LK_ID_MAX])
{
    h2o_iovec_t p = rc->params[0];

    if (p.len == 0 || p.len >= LK_ID_MAX)
        return false;
    memcpy(id, p.base, p.len);
    id[p.len] = '\0';
    return true;
}

static int respond_key(struct lk_reqctx *rc, int status, struct lk_key_row *k, char *secret)
{
    json_t *o = lk_render_key(k, rc->now, secret);

    lk_key_row_release(k);
    if (secret != NULL)
        OPENSSL_cleanse(secret, LK_SECRET_MAX);
    /* The secret now lives only in the rendered body, in the request pool. */
    return lk_respond_json(rc, status, o);
}

int lk_h_keys_create(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_key_spec spec;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char secret[LK_SECRET_MAX];
    h2o_iovec_t body = lk_http_body(rc);
    enum lk_err e;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_key_spec(body.base, body.len, true, &spec, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    e = lk_keys_create(rc->app, &who, &spec, rc->now, &k, secret, &ei);
    lk_key_spec_release(&spec);
    if (e != LK_OK)
        return lk_respond_error(rc, e, &ei);
    return respond_key(rc, 201, &k, secret);
}

/* Reads the list filters from the query string into f. */
static enum lk_err list_filter(struct lk_reqctx *rc, struct lk_key_filter *f,
                               struct lk_errinfo *ei)
{
    static const char *const statuses[] = {"any", "active", "disabled", "expired", "revoked"};
    h2o_iovec_t v;
    int64_t n;
    enum lk_env env;
    size_t i;

    *f = (struct lk_key_filter){.env = -1, .now = rc->now, .limit = LIST_DEFAULT_LIMIT};
    if (lk_query_param(rc->req, "limit", &v)) {
        if (lk_parse_i64(v.base, v.len, 1, LIST_MAX_LIMIT, &n) != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "limit",
                                  "'limit' must be an integer from 1 to %d", LIST_MAX_LIMIT);
        f->limit = (int)n;
    }
    if (lk_query_param(rc->req, "cursor", &v) && v.len > 0) {
        if (v.len < 2 || v.base[0] != 'c' ||
            lk_parse_i64(v.base + 1, v.len - 1, 1, INT64_MAX, &f->before_rowid) != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "cursor",
                                  "'cursor' must be a next_cursor from an earlier page");
    }
    if (lk_query_param(rc->req, "environment", &v)) {
        if (lk_env_parse(v.base, &env) != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "environment",
                                  "'environment' must be live or test");
        f->env = (int)env;
    }
    if (lk_query_param(rc->req, "status", &v)) {
        for (i = 0; i < LK_ARRAY_LEN(statuses); i++)
            if (strcmp(v.base, statuses[i]) == 0)
                break;
        if (i == LK_ARRAY_LEN(statuses))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "status",
                                  "'status' must be active, disabled, expired or revoked");
        f->status = (enum lk_key_status_filter)i;
    }
    return LK_OK;
}

struct page {
    json_t *data;
    int64_t now;
    int want;
    int seen;
    int64_t last_rowid;
};

static int add_to_page(void *arg, const struct lk_key_row *k)
{
    struct page *pg = arg;

    /* One row more than the page holds tells whether there is a next page. */
    if (++pg->seen > pg->want)
        return 1;
    json_array_append_new(pg->data, lk_render_key(k, pg->now, NULL));
    pg->last_rowid = k->rowid;
    return 0;
}

int lk_h_keys_list(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_key_filter f;
    struct lk_errinfo ei;
    struct page pg = {0};
    enum lk_err e;
    char cursor[32];

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    lk_errinfo_clear(&ei);
    if ((e = list_filter(rc, &f, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    pg.data = json_array();
    pg.now = rc->now;
    pg.want = f.limit;
    f.limit++;
    if ((e = lk_keys_list(rc->app, &who, &f, add_to_page, &pg)) != LK_OK) {
        json_decref(pg.data);
        return lk_respond_error(rc, e, NULL);
    }
    snprintf(cursor, sizeof(cursor), "c%lld", (long long)pg.last_rowid);
    return lk_respond_json(rc, 200,
                           json_pack("{s:o, s:o}", "data", pg.data, "next_cursor",
                                     pg.seen > pg.want ? json_string(cursor) : json_null()));
}

int lk_h_keys_get(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_key_row k;
    char id[LK_ID_MAX];
    enum lk_err e;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    if (!key_id_param(rc, id))
        return lk_respond_error(rc, LK_ERR_NOT_FOUND, NULL);
    if ((e = lk_keys_get(rc->app, &who, id, &k)) != LK_OK)
        return lk_respond_error(rc, e, NULL);
    return respond_key(rc, 200, &k, NULL);
}

int lk_h_keys_update(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_key_spec spec;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char id[LK_ID_MAX];
    h2o_iovec_t body = lk_http_body(rc);
    enum lk_err e;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    if (!key_id_param(rc, id))
        return lk_respond_error(rc, LK_ERR_NOT_FOUND, NULL);
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_key_spec(body.base, body.len, false, &spec, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    e = lk_keys_update(rc->app, &who, id, &spec, rc->now, &k, &ei);
    lk_key_spec_release(&spec);
    if (e != LK_OK)
        return lk_respond_error(rc, e, &ei);
    return respond_key(rc, 200, &k, NULL);
}

int lk_h_keys_delete(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_errinfo ei;
    char id[LK_ID_MAX];
    enum lk_err e;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    if (!key_id_param(rc, id))
        return lk_respond_error(rc, LK_ERR_NOT_FOUND, NULL);
    lk_errinfo_clear(&ei);
    if ((e = lk_keys_revoke(rc->app, &who, id, rc->now, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    return lk_respond_no_content(rc);
}

int lk_h_keys_regenerate(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char id[LK_ID_MAX], secret[LK_SECRET_MAX];
    h2o_iovec_t body = lk_http_body(rc);
    int64_t grace;
    enum lk_err e;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    if (!key_id_param(rc, id))
        return lk_respond_error(rc, LK_ERR_NOT_FOUND, NULL);
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_regenerate(body.base, body.len, &grace, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    if ((e = lk_keys_regenerate(rc->app, &who, id, grace, rc->now, &k, secret, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    return respond_key(rc, 200, &k, secret);
}
