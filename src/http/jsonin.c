#include "http/jsonin.h"

#include <jansson.h>
#include <openssl/crypto.h>

#include "base/common.h"
#include "core/digest.h"
#include "core/perm.h"
#include "core/timefmt.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* Parses body as one JSON object; NULL and LK_ERR_BAD_JSON otherwise. */
static json_t *load_object(const char *body, size_t len, enum lk_err *e, struct lk_errinfo *ei)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        *e = lk_errinfo_set(ei, LK_ERR_BAD_JSON, "", "invalid JSON at byte %d: %s",
                            jerr.position, jerr.text);
        if (ei)
            ei->offset = jerr.position;
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *e = lk_errinfo_set(ei, LK_ERR_BAD_JSON, "", "the request body must be a JSON object");
        return NULL;
    }
    *e = LK_OK;
    return root;
}

/* Refuses fields not in `allowed` (NULL-terminated). */
static enum lk_err check_fields(json_t *obj, const char *const *allowed, struct lk_errinfo *ei)
{
    const char *k;
    json_t *v;

    json_object_foreach(obj, k, v) {
        size_t i;
        for (i = 0; allowed[i] != NULL; i++)
            if (strcmp(k, allowed[i]) == 0)
                break;
        if (allowed[i] == NULL)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, k, "unknown field '%.64s'", k);
    }
    return LK_OK;
}

static enum lk_err bad(struct lk_errinfo *ei, const char *field, const char *what)
{
    return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field, "field '%s' must be %s", field, what);
}

/* The value of required field `field` of root, or NULL with *e saying it is missing. */
static json_t *require(json_t *root, const char *field, enum lk_err *e, struct lk_errinfo *ei)
{
    json_t *v = json_object_get(root, field);

    if (v == NULL)
        *e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field, "field '%s' is required", field);
    return v;
}

static enum lk_err get_int(json_t *v, const char *field, int64_t min, int64_t max, int64_t *out,
                           struct lk_errinfo *ei)
{
    char what[96];

    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(what, sizeof(what), "an integer from %lld to %lld", (long long)min,
                 (long long)max);
        return bad(ei, field, what);
    }
    *out = json_integer_value(v);
    return LK_OK;
}

static enum lk_err get_env(json_t *v, const char *field, int *out, struct lk_errinfo *ei)
{
    enum lk_env env;

    if (!json_is_string(v) || lk_env_parse(json_string_value(v), &env) != 0)
        return bad(ei, field, "\"live\" or \"test\"");
    *out = (int)env;
    return LK_OK;
}

static enum lk_err get_name(json_t *v, const char *field, char *out, size_t outsz,
                            struct lk_errinfo *ei)
{
    size_t n;

    if (!json_is_string(v) || (n = json_string_length(v)) == 0 || n >= outsz ||
        memchr(json_string_value(v), '\0', n) != NULL)
        return bad(ei, field, "a non-empty string of at most 200 bytes");
    memcpy(out, json_string_value(v), n + 1);
    return LK_OK;
}

/* `expires_at`: RFC 3339 string or Unix seconds; null (PATCH) clears it. */
static enum lk_err get_time(json_t *v, const char *field, bool nullable, int64_t *out,
                            struct lk_errinfo *ei)
{
    if (nullable && json_is_null(v)) {
        *out = 0;
        return LK_OK;
    }
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < LK_TIME_MAX) {
        *out = json_integer_value(v);
        return LK_OK;
    }
    if (json_is_string(v) &&
        lk_time_parse(json_string_value(v), json_string_length(v), out) == 0)
        return LK_OK;
    return bad(ei, field, "an RFC 3339 time such as \"2030-01-01T00:00:00Z\" or Unix seconds");
}

static enum lk_err get_permissions(json_t *v, char **out, struct lk_errinfo *ei)
{
    size_t i;
    json_t *p;

    if (!json_is_array(v) || json_array_size(v) > LK_PERM_MAX_COUNT)
        return bad(ei, "permissions", "an array of at most 64 permission strings");
    json_array_foreach(v, i, p) {
        if (!json_is_string(p) || !lk_perm_valid(json_string_value(p), json_string_length(p)))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "permissions",
                                  "permissions[%zu] must look like \"resource:action\" "
                                  "(lowercase, '*' as a whole segment)",
                                  i);
    }
    /* DESIGN §1: a key with no permissions listed has `*`. */
    *out = json_array_size(v) == 0 ? lk_strndup("[\"*\"]", 5) : json_dumps(v, JSON_COMPACT);
    lk_assert(*out != NULL);
    return LK_OK;
}

static enum lk_err get_meta(json_t *v, char **out, struct lk_errinfo *ei)
{
    char *s;

    if (!json_is_object(v))
        return bad(ei, "meta", "a JSON object");
    s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    lk_assert(s != NULL);
    if (strlen(s) > LK_JSON_MAX_META) {
        free(s);
        return bad(ei, "meta", "an object of at most 4096 bytes");
    }
    *out = s;
    return LK_OK;
}

static enum lk_err get_rate_limit(json_t *v, struct lk_key_spec *s, struct lk_errinfo *ei)
{
    static const char *const fields[] = {"limit", "window_s", NULL};
    json_t *limit, *window;
    enum lk_err e;

    if (json_is_null(v)) {
        s->rl_limit = s->rl_window_s = 0;
        return LK_OK;
    }
    if (!json_is_object(v))
        return bad(ei, "rate_limit", "an object {\"limit\", \"window_s\"} or null");
    if ((e = check_fields(v, fields, ei)) != LK_OK) {
        if (ei)
            snprintf(ei->field, sizeof(ei->field), "rate_limit");
        return e;
    }
    limit = json_object_get(v, "limit");
    window = json_object_get(v, "window_s");
    if (limit == NULL || window == NULL)
        return bad(ei, "rate_limit", "an object with both \"limit\" and \"window_s\"");
    if ((e = get_int(limit, "rate_limit.limit", 1, 1000000000, &s->rl_limit, ei)) != LK_OK)
        return e;
    return get_int(window, "rate_limit.window_s", 1, 86400 * 31, &s->rl_window_s, ei);
}

void lk_verify_body_release(struct lk_verify_body *b)
{
    if (b == NULL)
        return;
    if (b->key != NULL) {
        OPENSSL_cleanse(b->key, b->key_len);
        free(b->key);
    }
    free(b->permissions);
    memset(b, 0, sizeof(*b));
}

enum lk_err lk_jsonin_verify(const char *body, size_t len, struct lk_verify_body *out,
                             struct lk_errinfo *ei)
{
    static const char *const fields[] = {"key", "environment", "permissions", "cost", NULL};
    json_t *root, *v;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    out->environment = -1;
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "key")) != NULL) {
        if (!json_is_string(v)) {
            e = bad(ei, "key", "a string");
            goto out;
        }
        out->key_len = json_string_length(v);
        out->key = lk_strndup(json_string_value(v), out->key_len);
    }
    if ((v = json_object_get(root, "environment")) != NULL &&
        (e = get_env(v, "environment", &out->environment, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "permissions")) != NULL) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024) {
            e = bad(ei, "permissions", "a permission query string of at most 1024 bytes");
            goto out;
        }
        out->permissions = lk_strndup(json_string_value(v), json_string_length(v));
    }
    if ((v = json_object_get(root, "cost")) != NULL) {
        out->has_cost = true;
        e = get_int(v, "cost", 0, 1000000000, &out->cost, ei);
    }
out:
    /* jansson's copy of the key is freed with root; wipe it first. */
    if ((v = json_object_get(root, "key")) != NULL && json_is_string(v))
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    json_decref(root);
    if (e != LK_OK)
        lk_verify_body_release(out);
    return e;
}

enum lk_err lk_jsonin_key_spec(const char *body, size_t len, bool create, struct lk_key_spec *out,
                               struct lk_errinfo *ei)
{
    static const char *const create_fields[] = {
        "name", "environment", "kind", "permissions", "expires_in", "expires_at",
        "rate_limit", "daily_spend_cap", "meta", "sha256", NULL};
    static const char *const patch_fields[] = {"name", "permissions", "enabled", "expires_at",
                                               "rate_limit", "daily_spend_cap", "meta", NULL};
    json_t *root, *v;
    enum lk_err e;
    int env;

    memset(out, 0, sizeof(*out));
    out->daily_spend_cap = -1;
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, create ? create_fields : patch_fields, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "name")) != NULL) {
        if ((e = get_name(v, "name", out->name, sizeof(out->name), ei)) != LK_OK)
            goto out;
        out->set |= LK_SPEC_NAME;
    } else if (create && require(root, "name", &e, ei) == NULL) {
        goto out;
    }
    if ((v = json_object_get(root, "environment")) != NULL) {
        if ((e = get_env(v, "environment", &env, ei)) != LK_OK)
            goto out;
        out->env = (enum lk_env)env;
        out->set |= LK_SPEC_ENV;
    }
    if ((v = json_object_get(root, "kind")) != NULL) {
        static const char *const kinds[] = {"permanent", "temporary", "application", "root"};
        size_t i;
        for (i = 0; i < LK_ARRAY_LEN(kinds); i++)
            if (json_is_string(v) && strcmp(json_string_value(v), kinds[i]) == 0)
                break;
        if (i == LK_ARRAY_LEN(kinds)) {
            e = bad(ei, "kind", "\"permanent\", \"temporary\" or \"root\"");
            goto out;
        }
        out->kind = (enum lk_key_kind)i;
        out->set |= LK_SPEC_KIND;
    }
    if ((v = json_object_get(root, "permissions")) != NULL) {
        if ((e = get_permissions(v, &out->permissions, ei)) != LK_OK)
            goto out;
        out->set |= LK_SPEC_PERMISSIONS;
    }
    if ((v = json_object_get(root, "expires_in")) != NULL) {
        if ((e = get_int(v, "expires_in", 1, LK_JSON_MAX_EXPIRES_IN, &out->expires_in, ei)) !=
            LK_OK)
            goto out;
        out->set |= LK_SPEC_EXPIRES_IN;
    }
    if ((v = json_object_get(root, "expires_at")) != NULL) {
        if ((e = get_time(v, "expires_at", !create, &out->expires_at, ei)) != LK_OK)
            goto out;
        out->set |= LK_SPEC_EXPIRES_AT;
    }
    if ((v = json_object_get(root, "rate_limit")) != NULL) {
        if ((e = get_rate_limit(v, out, ei)) != LK_OK)
            goto out;
        out->set |= LK_SPEC_RATE_LIMIT;
    }
    if ((v = json_object_get(root, "daily_spend_cap")) != NULL) {
        if (json_is_null(v))
            out->daily_spend_cap = -1;
        else if ((e = get_int(v, "daily_spend_cap", 0, INT64_C(1) << 53, &out->daily_spend_cap,
                              ei)) != LK_OK)
            goto out;
        out->set |= LK_SPEC_SPEND_CAP;
    }
    if ((v = json_object_get(root, "meta")) != NULL) {
        if ((e = get_meta(v, &out->meta, ei)) != LK_OK)
            goto out;
        out->set |= LK_SPEC_META;
    }
    if ((v = json_object_get(root, "sha256")) != NULL) {
        if (!json_is_string(v) ||
            !lk_digest_from_hex(json_string_value(v), json_string_length(v), out->sha256)) {
            e = bad(ei, "sha256", "the SHA-256 of a secret as 64 hex characters");
            goto out;
        }
        out->set |= LK_SPEC_SHA256;
    }
    if ((v = json_object_get(root, "enabled")) != NULL) {
        if (!json_is_boolean(v)) {
            e = bad(ei, "enabled", "true or false");
            goto out;
        }
        out->enabled = json_is_true(v);
        out->set |= LK_SPEC_ENABLED;
    }
out:
    json_decref(root);
    if (e != LK_OK)
        lk_key_spec_release(out);
    return e;
}

enum lk_err lk_jsonin_regenerate(const char *body, size_t len, int64_t *grace_s,
                                 struct lk_errinfo *ei)
{
    static const char *const fields[] = {"grace_period_s", NULL};
    json_t *root, *v;
    enum lk_err e;

    *grace_s = 0;
    if (len == 0)
        return LK_OK;
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) == LK_OK &&
        (v = json_object_get(root, "grace_period_s")) != NULL)
        e = get_int(v, "grace_period_s", 0, LK_GRACE_MAX, grace_s, ei);
    json_decref(root);
    return e;
}

/* A quota: an integer ≥ 0, or null for unlimited (-1). */
static enum lk_err get_quota(json_t *v, const char *field, int64_t *out, struct lk_errinfo *ei)
{
    if (json_is_null(v)) {
        *out = -1;
        return LK_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT64_C(1) << 53)
        return bad(ei, field, "an integer of at least 0, or null for unlimited");
    *out = json_integer_value(v);
    return LK_OK;
}

static enum lk_err get_quotas(json_t *root, struct lk_ws_spec *out, struct lk_errinfo *ei)
{
    json_t *v;
    enum lk_err e = LK_OK;

    if ((v = json_object_get(root, "quota")) != NULL) {
        out->has_quota = true;
        e = get_quota(v, "quota", &out->quota, ei);
    }
    if (e == LK_OK && (v = json_object_get(root, "test_quota")) != NULL) {
        out->has_test_quota = true;
        e = get_quota(v, "test_quota", &out->test_quota, ei);
    }
    return e;
}

enum lk_err lk_jsonin_workspace(const char *body, size_t len, bool create, struct lk_ws_spec *out,
                                struct lk_errinfo *ei)
{
    static const char *const fields[] = {"name",  "key_prefix", "key_format",
                                         "quota", "test_quota", NULL};
    static const char *const patch_fields[] = {"quota", "test_quota", NULL};
    json_t *root, *v;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    out->quota = out->test_quota = -1;
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, create ? fields : patch_fields, ei)) != LK_OK ||
        (e = get_quotas(root, out, ei)) != LK_OK || !create)
        goto out;
    if ((v = require(root, "name", &e, ei)) == NULL)
        goto out;
    if ((e = get_name(v, "name", out->name, sizeof(out->name), ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "key_prefix")) != NULL) {
        if (!json_is_string(v) ||
            !lk_secret_prefix_valid(json_string_value(v), json_string_length(v))) {
            e = bad(ei, "key_prefix", "1-16 characters of [a-z0-9_], starting with a letter");
            goto out;
        }
        memcpy(out->key_prefix, json_string_value(v), json_string_length(v) + 1);
    }
    if ((v = json_object_get(root, "key_format")) != NULL) {
        if (json_is_string(v) && strcmp(json_string_value(v), "default") == 0)
            out->key_format = LK_FORMAT_DEFAULT;
        else if (json_is_string(v) && strcmp(json_string_value(v), "hex") == 0)
            out->key_format = LK_FORMAT_HEX;
        else
            e = bad(ei, "key_format", "\"default\" or \"hex\"");
    }
out:
    json_decref(root);
    return e;
}

/* Copies a string field of 1..cap-1 bytes without NUL bytes into out. */
static enum lk_err get_string(json_t *v, const char *field, size_t min, char *out, size_t cap,
                              struct lk_errinfo *ei)
{
    char what[64];
    size_t n;

    if (!json_is_string(v) || (n = json_string_length(v)) < min || n >= cap ||
        memchr(json_string_value(v), '\0', n) != NULL) {
        snprintf(what, sizeof(what), "a string of %zu to %zu bytes", min, cap - 1);
        return bad(ei, field, what);
    }
    memcpy(out, json_string_value(v), n + 1);
    return LK_OK;
}

static void wipe_string(json_t *root, const char *field)
{
    json_t *v = json_object_get(root, field);
    if (json_is_string(v))
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

enum lk_err lk_jsonin_login(const char *body, size_t len, char *email, size_t email_sz,
                            char *password, size_t password_sz, struct lk_errinfo *ei)
{
    static const char *const fields[] = {"email", "password", NULL};
    json_t *root, *v;
    enum lk_err e;

    email[0] = password[0] = '\0';
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) != LK_OK)
        goto out;
    if ((v = require(root, "email", &e, ei)) == NULL)
        goto out;
    if ((e = get_string(v, "email", 1, email, email_sz, ei)) != LK_OK)
        goto out;
    if ((v = require(root, "password", &e, ei)) == NULL)
        goto out;
    e = get_string(v, "password", 1, password, password_sz, ei);
out:
    wipe_string(root, "password");
    json_decref(root);
    if (e != LK_OK)
        OPENSSL_cleanse(password, password_sz);
    return e;
}

enum lk_err lk_jsonin_temp(const char *body, size_t len, int64_t *folder, char *workspace,
                           size_t workspace_sz, struct lk_key_spec *spec, struct lk_errinfo *ei)
{
    static const char *const fields[] = {"storage_folder_id", "workspace_id", "expires_in",
                                         "permissions", "name", NULL};
    json_t *root, *v;
    enum lk_err e;

    *folder = 0;
    workspace[0] = '\0';
    memset(spec, 0, sizeof(*spec));
    spec->daily_spend_cap = -1;
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "storage_folder_id")) != NULL &&
        (e = get_int(v, "storage_folder_id", 1, INT64_MAX, folder, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "workspace_id")) != NULL &&
        (e = get_string(v, "workspace_id", 1, workspace, workspace_sz, ei)) != LK_OK)
        goto out;
    if ((*folder == 0) == (workspace[0] == '\0')) {
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "workspace_id",
                           "give storage_folder_id or workspace_id (one of them)");
        goto out;
    }
    if ((v = json_object_get(root, "expires_in")) != NULL) {
        if ((e = get_int(v, "expires_in", 1, LK_TEMP_MAX_TTL, &spec->expires_in, ei)) != LK_OK)
            goto out;
        spec->set |= LK_SPEC_EXPIRES_IN;
    }
    if ((v = json_object_get(root, "permissions")) != NULL) {
        if ((e = get_permissions(v, &spec->permissions, ei)) != LK_OK)
            goto out;
        spec->set |= LK_SPEC_PERMISSIONS;
    }
    if ((v = json_object_get(root, "name")) != NULL) {
        if ((e = get_name(v, "name", spec->name, sizeof(spec->name), ei)) != LK_OK)
            goto out;
        spec->set |= LK_SPEC_NAME;
    }
out:
    json_decref(root);
    if (e != LK_OK)
        lk_key_spec_release(spec);
    return e;
}

enum lk_err lk_jsonin_top_up(const char *body, size_t len, int64_t *amount, char *note,
                             size_t note_sz, struct lk_errinfo *ei)
{
    static const char *const fields[] = {"amount", "note", NULL};
    json_t *root, *v;
    enum lk_err e;

    *amount = 0;
    note[0] = '\0';
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) != LK_OK)
        goto out;
    if ((v = require(root, "amount", &e, ei)) == NULL)
        goto out;
    if ((e = get_int(v, "amount", 1, LK_JSON_MAX_CREDITS, amount, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "note")) != NULL)
        e = get_string(v, "note", 0, note, note_sz, ei);
out:
    json_decref(root);
    return e;
}

/* --- people: invitations and roles ------------------------------------------------- */

/* "role": one of the three role names. */
static enum lk_err get_role(json_t *root, enum lk_role *role, struct lk_errinfo *ei)
{
    json_t *v = json_object_get(root, "role");

    if (v == NULL || !json_is_string(v) || lk_role_parse(json_string_value(v), role) != 0)
        return bad(ei, "role", "\"owner\", \"editor\" or \"viewer\"");
    return LK_OK;
}

enum lk_err lk_jsonin_invite(const char *body, size_t len, char *email, size_t email_sz,
                             enum lk_role *role, struct lk_errinfo *ei)
{
    static const char *const fields[] = {"email", "role", NULL};
    json_t *root, *v;
    enum lk_err e;

    email[0] = '\0';
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) != LK_OK)
        goto out;
    if ((v = json_object_get(root, "email")) == NULL ||
        (e = get_string(v, "email", 1, email, email_sz, ei)) != LK_OK ||
        !lk_users_email_valid(email)) {
        e = v != NULL && e != LK_OK ? e : bad(ei, "email", "an email address");
        goto out;
    }
    e = get_role(root, role, ei);
out:
    json_decref(root);
    return e;
}

enum lk_err lk_jsonin_role(const char *body, size_t len, enum lk_role *role,
                           struct lk_errinfo *ei)
{
    static const char *const fields[] = {"role", NULL};
    json_t *root;
    enum lk_err e;

    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) == LK_OK)
        e = get_role(root, role, ei);
    json_decref(root);
    return e;
}

enum lk_err lk_jsonin_accept(const char *body, size_t len, char *token, size_t token_sz,
                             char *password, size_t password_sz, struct lk_errinfo *ei)
{
    static const char *const fields[] = {"token", "password", NULL};
    json_t *root, *v;
    enum lk_err e;

    token[0] = password[0] = '\0';
    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, fields, ei)) != LK_OK)
        goto out;
    if ((v = require(root, "token", &e, ei)) == NULL ||
        (e = get_string(v, "token", 1, token, token_sz, ei)) != LK_OK)
        goto out;
    if ((v = require(root, "password", &e, ei)) == NULL)
        goto out;
    e = get_string(v, "password", LK_PASSWORD_MIN, password, password_sz, ei);
out:
    wipe_string(root, "token");
    wipe_string(root, "password");
    json_decref(root);
    if (e != LK_OK) {
        OPENSSL_cleanse(token, token_sz);
        OPENSSL_cleanse(password, password_sz);
    }
    return e;
}
