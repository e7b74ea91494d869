/*
 * h_unkey.c — the pieces every Unkey-compatible route shares (h_unkey.h): the
 * envelope, the error shape, body checks, credentials and permission names.
 */
#include "http/h_unkey.h"

#include <openssl/crypto.h>

#include "base/common.h"
#include "core/perm.h"
#include "core/quote.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define TYPE_BASE "https://unkey.com/docs/api-reference/errors-v2/unkey/"

/* How one latchkey outcome reads in Unkey's shape. A credential that is unknown,
 * expired, revoked or disabled is Unkey's key_not_found (401): the answer does not
 * tell which. type NULL: "about:blank" (RFC 9457), where Unkey has no kind of its own. */
struct mapping {
    int status;
    const char *title, *type, *detail;
};

static struct mapping mapping_of(enum lk_err e, const struct lk_errinfo *ei)
{
    switch (e) {
    case LK_ERR_MISSING_KEY:
        return (struct mapping){401, "Unauthorized", TYPE_BASE "authentication/missing",
                                "Authentication credentials were not provided: send "
                                "Authorization: Bearer <root key>"};
    case LK_ERR_MALFORMED_KEY:
        return (struct mapping){401, "Unauthorized", TYPE_BASE "authentication/malformed",
                                "Authentication credentials were incorrectly formatted"};
    case LK_ERR_INVALID_KEY:
    case LK_ERR_EXPIRED_KEY:
    case LK_ERR_REVOKED_KEY:
    case LK_ERR_ENVIRONMENT_MISMATCH:
    case LK_ERR_INACTIVE_KEY:
    case LK_ERR_INVALID_CREDENTIALS:
        return (struct mapping){401, "Unauthorized", TYPE_BASE "authentication/key_not_found",
                                "The root key was not found, or is expired, revoked or disabled"};
    case LK_ERR_INSUFFICIENT_PERMISSIONS:
        return (struct mapping){403, "Forbidden",
                                TYPE_BASE "authorization/insufficient_permissions",
                                "The root key lacks the permission this call needs"};
    case LK_ERR_NOT_FOUND:
        if (ei != NULL && strcmp(ei->field, "apiId") == 0)
            return (struct mapping){404, "Not Found", TYPE_BASE "data/api_not_found",
                                    "The requested API could not be found"};
        return (struct mapping){404, "Not Found", TYPE_BASE "data/key_not_found",
                                "The requested key could not be found"};
    case LK_ERR_BAD_JSON:
    case LK_ERR_INVALID_REQUEST:
    case LK_ERR_BAD_QUERY:
    case LK_ERR_INVALID_INVITATION:
        return (struct mapping){400, "Bad Request", TYPE_BASE "application/invalid_input",
                                "The request contains invalid input"};
    case LK_ERR_CONFLICT:
        return (struct mapping){409, "Conflict", NULL, lk_err_message(e)};
    case LK_ERR_PAYLOAD_TOO_LARGE:
        return (struct mapping){413, "Payload Too Large", NULL, lk_err_message(e)};
    case LK_ERR_HEADERS_TOO_LARGE:
        return (struct mapping){431, "Request Header Fields Too Large", NULL, lk_err_message(e)};
    case LK_ERR_METHOD_NOT_ALLOWED:
        return (struct mapping){405, "Method Not Allowed", NULL, lk_err_message(e)};
    case LK_ERR_TOO_MANY_REQUESTS:
    case LK_ERR_RATE_LIMITED:
    case LK_ERR_QUOTA_EXCEEDED:
        return (struct mapping){429, "Too Many Requests", NULL, lk_err_message(e)};
    case LK_ERR_STORAGE_UNAVAILABLE:
        return (struct mapping){503, "Service Unavailable",
                                TYPE_BASE "application/service_unavailable", lk_err_message(e)};
    default:
        return (struct mapping){500, "Internal Server Error",
                                TYPE_BASE "application/unexpected_error", lk_err_message(e)};
    }
}

static json_t *meta_of(const char *request_id)
{
    return json_pack("{s:s}", "requestId", request_id);
}

void lk_unkey_error_render(enum lk_err e, const struct lk_errinfo *ei, const char *request_id,
                           struct lk_unkey_error *out)
{
    struct mapping mp = mapping_of(e, ei);
    const char *detail = ei != NULL && ei->detail[0] ? ei->detail : mp.detail;
    json_t *err, *body = NULL;
    char loc[80];

    out->status = mp.status;
    out->content_type = mp.status == 429 ? "application/problem+json" : "application/json";
    /* ei's texts are bounded, valid UTF-8 (lk_errinfo_set): jansson takes them. */
    err = json_pack("{s:s, s:s, s:i, s:s}", "title", mp.title, "detail", detail, "status",
                    mp.status, "type", mp.type ? mp.type : "about:blank");
    if (err != NULL && mp.status == 400) {
        json_t *errs = json_array(), *one;
        snprintf(loc, sizeof(loc), "body%s%s", ei && ei->field[0] ? "." : "", ei ? ei->field : "");
        one = json_pack("{s:s, s:s}", "location", loc, "message", detail);
        if (one != NULL)
            json_array_append_new(errs, one);
        json_object_set_new(err, "errors", errs);
    }
    if (err != NULL)
        body = json_pack("{s:o, s:o}", "meta", meta_of(request_id), "error", err);
    out->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (out->body == NULL) {
        /* Constants and a request id only: nothing to escape. */
        out->body = lk_malloc(512);
        snprintf(out->body, 512,
                 "{\"meta\":{\"requestId\":\"%s\"},\"error\":{\"title\":\"%s\",\"detail\":"
                 "\"the error could not be rendered\",\"status\":%d,\"type\":\"about:blank\"%s}}",
                 request_id, mp.title, mp.status, mp.status == 400 ? ",\"errors\":[]" : "");
    }
    out->len = strlen(out->body);
}

void lk_unkey_mreq_error(struct lk_mreq *m, enum lk_err e, const struct lk_errinfo *ei)
{
    struct lk_unkey_error ue;

    lk_unkey_error_render(e, ei, m->request_id, &ue);
    lk_mreq_raw(m, ue.status, ue.body, ue.len);
    m->err = e; /* the access log's outcome */
    m->content_type = ue.content_type;
    free(ue.body);
}

int lk_unkey_respond_error(struct lk_reqctx *rc, enum lk_err e, const struct lk_errinfo *ei)
{
    struct lk_unkey_error ue;
    char *buf;

    lk_unkey_error_render(e, ei, rc->request_id, &ue);
    buf = h2o_mem_alloc_pool(&rc->req->pool, ue.len + 1);
    memcpy(buf, ue.body, ue.len + 1);
    free(ue.body);
    lk_respond_send_typed(rc->req, ue.status, rc->request_id, e, ue.content_type, buf, ue.len);
    return 0;
}

void lk_unkey_mreq_data(struct lk_mreq *m, json_t *data, json_t *extra)
{
    json_t *body = json_pack("{s:o, s:o}", "meta", meta_of(m->request_id), "data", data);

    if (body != NULL && extra != NULL)
        json_object_update(body, extra);
    json_decref(extra);
    if (body == NULL) {
        lk_unkey_mreq_error(m, LK_ERR_INTERNAL, NULL);
        return;
    }
    lk_mreq_json(m, 200, body);
}

enum lk_err lk_unkey_credential(struct lk_app *app, const char *key, size_t len, int64_t now,
                                const char *address, unsigned need, struct lk_actor *who,
                                struct lk_errinfo *ei)
{
    memset(who, 0, sizeof(*who));
    if (key == NULL)
        return LK_ERR_MISSING_KEY;
    /* Unkey's callers hold root keys; a dashboard session is not one (and would
     * need the store, which the check on the event loop never waits for). */
    if (lk_auth_is_session(key, len))
        return lk_errinfo_set(ei, LK_ERR_MALFORMED_KEY, "",
                              "the v2 API takes a root key or an application key, not a session");
    return lk_auth_actor(app, key, len, now, NULL, address, need, who, ei);
}

bool lk_unkey_actor(struct lk_mreq *m, struct lk_actor *who)
{
    enum lk_err e = m->key_err;
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    if (e == LK_OK)
        e = lk_unkey_credential(m->app, m->key, m->key_len, m->now, m->address, m->need, who, &ei);
    if (e != LK_OK) {
        if (e == LK_ERR_TOO_MANY_REQUESTS)
            m->retry_after = lk_app_limits(m->app)->failed_key.window_s;
        lk_unkey_mreq_error(m, e, &ei);
        return false;
    }
    snprintf(who->address, sizeof(who->address), "%s", m->address);
    snprintf(who->request_id, sizeof(who->request_id), "%s", m->request_id);
    return true;
}

/* --- request bodies ---------------------------------------------------------- */

static const char *type_words(enum lk_unkey_type t)
{
    switch (t) {
    case LK_UT_STRING:
        return "a string";
    case LK_UT_INT:
        return "an integer";
    case LK_UT_BOOL:
        return "a boolean";
    case LK_UT_OBJECT:
        return "an object";
    case LK_UT_STRINGS:
        return "an array of strings";
    default:
        return "an array of objects";
    }
}

static bool of_type(json_t *v, enum lk_unkey_type t)
{
    switch (t) {
    case LK_UT_STRING:
        return json_is_string(v);
    case LK_UT_INT:
        return json_is_integer(v);
    case LK_UT_BOOL:
        return json_is_boolean(v);
    case LK_UT_OBJECT:
        return json_is_object(v);
    default:
        return json_is_array(v);
    }
}

/* Checks one present member against its field. */
static enum lk_err check_field(json_t *v, const char *label, const struct lk_unkey_field *f,
                               struct lk_errinfo *ei)
{
    size_t i;
    json_t *item;

    if (json_is_null(v)) {
        if (f->flags & LK_UF_NULLABLE)
            return LK_OK;
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label, "%s must be %s, not null", label,
                              type_words(f->type));
    }
    if (!of_type(v, f->type))
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label, "%s must be %s", label,
                              type_words(f->type));
    switch (f->type) {
    case LK_UT_STRING: {
        size_t n = json_string_length(v);
        if ((int64_t)n < f->min || (int64_t)n > f->max)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label,
                                  "%s must be %lld to %lld bytes long", label, (long long)f->min,
                                  (long long)f->max);
        if (memchr(json_string_value(v), '\0', n) != NULL)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label,
                                  "%s must not contain NUL characters", label);
        break;
    }
    case LK_UT_INT: {
        json_int_t n = json_integer_value(v);
        if (n < f->min || n > f->max)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label,
                                  "%s must be between %lld and %lld", label, (long long)f->min,
                                  (long long)f->max);
        break;
    }
    case LK_UT_STRINGS:
    case LK_UT_OBJECTS:
        if ((int64_t)json_array_size(v) > f->max)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label,
                                  "%s may have at most %lld items", label, (long long)f->max);
        json_array_foreach(v, i, item)
        {
            bool ok = f->type == LK_UT_STRINGS ? json_is_string(item) : json_is_object(item);
            if (!ok)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label, "%s must be %s", label,
                                      type_words(f->type));
        }
        break;
    default:
        break;
    }
    return LK_OK;
}

enum lk_err lk_unkey_object(json_t *obj, const char *prefix, const struct lk_unkey_field *fields,
                            size_t n, struct lk_errinfo *ei)
{
    const char *name;
    json_t *v;
    char label[112];
    enum lk_err e;

    /* Unknown members first: a misspelt one is never silently ignored. */
    json_object_foreach(obj, name, v)
    {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(name, fields[i].name) == 0)
                break;
        if (i == n) {
            char q[LK_QUOTE_SIZE], at[sizeof(ei->field)];
            lk_quote(q, sizeof(q), name, strlen(name));
            snprintf(at, sizeof(at), "%s%s", prefix, q);
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, at, "unknown field %s", at);
        }
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(label, sizeof(label), "%s%s", prefix, fields[i].name);
        if ((v = json_object_get(obj, fields[i].name)) == NULL) {
            if (fields[i].flags & LK_UF_REQUIRED)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label, "%s is required", label);
            continue;
        }
        if ((e = check_field(v, label, &fields[i], ei)) != LK_OK)
            return e;
    }
    return LK_OK;
}

enum lk_err lk_unkey_body(const char *body, size_t len, const struct lk_unkey_field *fields,
                          size_t n, json_t **root, struct lk_errinfo *ei)
{
    json_error_t je;
    enum lk_err e;

    /* A key may be in the body: jansson's message quotes none of it here. */
    *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (*root == NULL)
        return lk_errinfo_set(ei, LK_ERR_BAD_JSON, "", "invalid JSON at byte %d", je.position);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return lk_errinfo_set(ei, LK_ERR_BAD_JSON, "", "the body must be a JSON object");
    }
    if ((e = lk_unkey_object(*root, "", fields, n, ei)) != LK_OK) {
        json_decref(*root);
        *root = NULL;
    }
    return e;
}

bool lk_unkey_key_id(json_t *root, char id[LK_ID_MAX])
{
    json_t *v = json_object_get(root, "keyId");
    size_t n = json_string_length(v);

    id[0] = '\0';
    if (!json_is_string(v) || n == 0 || n >= LK_ID_MAX)
        return false;
    memcpy(id, json_string_value(v), n + 1);
    return true;
}

/* --- permissions -------------------------------------------------------------- */

bool lk_unkey_perm_in(const char *in, size_t len, char *out, size_t outsz)
{
    if (len >= outsz)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == ':')
            return false;
        out[i] = in[i] == '.' ? ':' : in[i];
    }
    out[len] = '\0';
    return true;
}

void lk_unkey_perm_out(const char *p, size_t len, char *out, size_t outsz)
{
    size_t n = len < outsz - 1 ? len : outsz - 1;

    for (size_t i = 0; i < n; i++)
        out[i] = p[i] == ':' ? '.' : p[i];
    out[n] = '\0';
}

enum lk_err lk_unkey_perms_in(json_t *arr, const char *field, char **out, struct lk_errinfo *ei)
{
    json_t *list = json_array(), *item;
    char p[LK_PERM_MAX_LEN + 1];
    size_t i;

    *out = NULL;
    if (json_array_size(arr) > LK_PERM_MAX_COUNT) {
        json_decref(list);
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field,
                              "%s may hold at most %d permissions", field, LK_PERM_MAX_COUNT);
    }
    json_array_foreach(arr, i, item)
    {
        const char *s = json_string_value(item);
        size_t n = json_string_length(item);
        bool dup = false;
        size_t j;
        json_t *have;

        if (s == NULL || !lk_unkey_perm_in(s, n, p, sizeof(p)) || !lk_perm_valid(p, n)) {
            char q[LK_QUOTE_SIZE];
            lk_quote(q, sizeof(q), s ? s : "", s ? n : 0);
            json_decref(list);
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field,
                                  "%s: %s is not a permission: 1-128 bytes of lower-case "
                                  "segments [a-z0-9_-] or a lone *, joined by '.'",
                                  field, q);
        }
        json_array_foreach(list, j, have) {
            dup = dup || strcmp(json_string_value(have), p) == 0;
        }
        if (!dup)
            json_array_append_new(list, json_string(p));
    }
    *out = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    return *out != NULL ? LK_OK : LK_ERR_INTERNAL;
}

json_t *lk_unkey_perms_out(const char *permissions_json)
{
    json_t *in = permissions_json ? json_loads(permissions_json, 0, NULL) : NULL;
    json_t *out = json_array(), *item;
    char p[LK_PERM_MAX_LEN + 1];
    size_t i;

    json_array_foreach(in, i, item)
    {
        if (!json_is_string(item))
            continue;
        lk_unkey_perm_out(json_string_value(item), json_string_length(item), p, sizeof(p));
        json_array_append_new(out, json_string(p));
    }
    json_decref(in);
    return out;
}

/* --- keys --------------------------------------------------------------------- */

void lk_unkey_rl_id(const char *key_id, const char *name, size_t name_len, char *out, size_t outsz)
{
    /* Unkey's ids are rl_[A-Za-z0-9_]: the key's id and the name, other bytes
     * as '_'. Unique per key, since names are unique in a key only up to that. */
    size_t n =
        (size_t)snprintf(out, outsz, "rl_%s_", key_id + (strncmp(key_id, "key_", 4) == 0 ? 4 : 0));

    for (size_t i = 0; i < name_len && n + 1 < outsz; i++) {
        char c = name[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        out[n++] = plain ? c : '_';
    }
    out[n < outsz ? n : outsz - 1] = '\0';
}

static json_t *render_rl(const char *key_id, const char *name, int64_t limit, int64_t window_ms,
                         bool auto_apply)
{
    char id[LK_UNKEY_RL_ID_MAX];

    lk_unkey_rl_id(key_id, name, strlen(name), id, sizeof(id));
    return json_pack("{s:s, s:s, s:I, s:I, s:b}", "id", id, "name", name, "limit",
                     (json_int_t)limit, "duration", (json_int_t)window_ms, "autoApply", auto_apply);
}

static void set_ms(json_t *o, const char *name, int64_t t)
{
    if (t != 0)
        json_object_set_new(o, name, json_integer((json_int_t)t * 1000));
}

json_t *lk_unkey_render_key(const struct lk_key_row *k)
{
    json_t *o = json_object(), *meta, *perms;

    json_object_set_new(o, "keyId", json_string(k->id));
    json_object_set_new(o, "start", json_string(k->hint));
    json_object_set_new(o, "enabled", json_boolean(k->enabled));
    if (k->name[0] != '\0')
        json_object_set_new(o, "name", json_string(k->name));
    meta = k->meta ? json_loads(k->meta, 0, NULL) : NULL;
    if (json_is_object(meta) && json_object_size(meta) > 0)
        json_object_set_new(o, "meta", meta);
    else
        json_decref(meta);
    set_ms(o, "createdAt", k->created_at);
    if (k->created_at == 0)
        json_object_set_new(o, "createdAt", json_integer(0));
    set_ms(o, "lastUsedAt", k->last_used_at);
    set_ms(o, "expires", k->expires_at);
    perms = lk_unkey_perms_out(k->permissions);
    if (json_array_size(perms) > 0)
        json_object_set_new(o, "permissions", perms);
    else
        json_decref(perms);
    if (k->identity_id[0] != '\0')
        json_object_set_new(
            o, "identity",
            json_pack("{s:s, s:s}", "id", k->identity_id, "externalId", k->external_id));
    if (k->has_credits) {
        json_t *c =
            json_pack("{s:I}", "remaining",
                      (json_int_t)(k->credits_now >= 0 ? k->credits_now : k->credits_remaining));
        if (k->credits_refill != LK_CREDIT_REFILL_NONE) {
            json_t *r = json_pack("{s:s, s:I}", "interval",
                                  k->credits_refill == LK_CREDIT_REFILL_DAILY ? "daily" : "monthly",
                                  "amount", (json_int_t)k->credits_refill_amount);
            if (k->credits_refill == LK_CREDIT_REFILL_MONTHLY)
                json_object_set_new(r, "refillDay", json_integer(k->credits_refill_day));
            json_object_set_new(c, "refill", r);
        }
        json_object_set_new(o, "credits", c);
    }
    if (k->rl_limit > 0 || k->n_rate_limits > 0) {
        json_t *rls = json_array();
        if (k->rl_limit > 0)
            json_array_append_new(
                rls, render_rl(k->id, "default", k->rl_limit, k->rl_window_s * 1000, true));
        for (int i = 0; i < k->n_rate_limits; i++)
            json_array_append_new(
                rls, render_rl(k->id, k->rate_limits[i].name, k->rate_limits[i].limit,
                               k->rate_limits[i].window_ms, k->rate_limits[i].auto_apply));
        json_object_set_new(o, "ratelimits", rls);
    }
    return o;
}
