/*
 * h_unkey_keys.c — Unkey's key management calls (POST /v2/keys.createKey,
 * getKey, updateKey, deleteKey, rerollKey, addPermissions, removePermissions,
 * setPermissions and /v2/apis.listKeys) on latchkey's key service. They run on
 * management workers. The v2 surface shows only permanent and temporary keys
 * that are not revoked: root and application keys manage latchkey itself, and a
 * revoked key is what Unkey calls deleted (docs/unkey.md).
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "core/namedrl.h"
#include "core/secret.h"
#include "http/h_unkey.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "service/keyperms.h"
#include "service/identities.h"
#include "service/keys.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define LIST_MAX 100
#define LIST_ROUNDS_MAX 20 /* store reads of one listKeys call */
#define MS_MAX 253402300799000 /* 9999-12-31T23:59:59Z in milliseconds */
#define GRACE_MS_MAX ((int64_t)LK_GRACE_MAX * 1000)
#define LK_UNKEY_CREDITS_MAX 9007199254740992 /* 2^53: what JavaScript's numbers hold exactly */

/* Reads the body against fields and checks the credential; answers and returns
 * NULL on failure. The credential first: an unauthenticated caller learns
 * nothing about the body. */
static json_t *begin(struct lk_mreq *m, const struct lk_unkey_field *fields, size_t n,
                     struct lk_actor *who)
{
    struct lk_errinfo ei;
    json_t *root;
    enum lk_err e;

    if (!lk_unkey_actor(m, who))
        return NULL;
    lk_errinfo_clear(&ei);
    if ((e = lk_unkey_body(m->body, m->body_len, fields, n, &root, &ei)) != LK_OK) {
        lk_unkey_mreq_error(m, e, &ei);
        return NULL;
    }
    return root;
}

/* `apiId` names the caller's workspace; any other is an API that does not exist. */
static bool api_is_own(struct lk_mreq *m, json_t *root, const struct lk_actor *who)
{
    struct lk_errinfo ei;

    if (strcmp(json_string_value(json_object_get(root, "apiId")), who->workspace_id) == 0)
        return true;
    lk_errinfo_set(&ei, LK_ERR_NOT_FOUND, "apiId", "the API (apiId) could not be found");
    lk_unkey_mreq_error(m, LK_ERR_NOT_FOUND, &ei);
    return false;
}

/* Reads key `keyId` of the caller's workspace if the v2 surface shows it;
 * answers 404 and returns false otherwise. */
static bool visible_key(struct lk_mreq *m, const struct lk_actor *who, json_t *root,
                        char id[LK_ID_MAX], struct lk_key_row *k)
{
    enum lk_err e;

    if (!lk_unkey_key_id(root, id)) {
        lk_unkey_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
        return false;
    }
    if ((e = lk_keys_get(m->app, who, id, k)) != LK_OK) {
        lk_unkey_mreq_error(m, e, NULL);
        return false;
    }
    if (!lk_keyperms_visible(k)) {
        lk_key_row_release(k);
        lk_unkey_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
        return false;
    }
    return true;
}

/* Unkey milliseconds to latchkey seconds, rounded down: a key is never valid
 * after the time asked. */
static int64_t ms_to_s(int64_t ms)
{
    return ms / 1000;
}

/* --- what create and update share -------------------------------------------- */

/* The key service names fields as /v1 does; a v2 error names them as Unkey. */
static void unkey_field(struct lk_errinfo *ei)
{
    static const char *const names[][2] = {
        {"expires_at", "expires"},
        {"external_id", "externalId"},
        {"rate_limits", "ratelimits"},
        {"rate_limit", "ratelimits"},
        {"credits_remaining", "credits.remaining"},
    };

    for (size_t i = 0; i < LK_ARRAY_LEN(names); i++)
        if (strcmp(ei->field, names[i][0]) == 0) {
            snprintf(ei->field, sizeof(ei->field), "%s", names[i][1]);
            return;
        }
}

static const struct lk_unkey_field ratelimit_fields[] = {
    {"name", LK_UT_STRING, LK_UF_REQUIRED, 1, LK_RL_NAME_MAX},
    {"limit", LK_UT_INT, LK_UF_REQUIRED, 1, LK_RL_LIMIT_MAX},
    {"duration", LK_UT_INT, LK_UF_REQUIRED, LK_RL_WINDOW_MS_MIN, LK_RL_DEFAULT_WINDOW_MS_MAX},
    {"autoApply", LK_UT_BOOL, 0, 0, 0},
};

/* `ratelimits` into spec: every rate limit of the key, the one named "default"
 * (the key's rate_limit on /v1: applied to every check, whole seconds) among
 * them. An empty list removes them all. */
static enum lk_err ratelimits_in(json_t *arr, struct lk_key_spec *spec, struct lk_errinfo *ei)
{
    json_t *rl;
    size_t i;
    char prefix[48];
    enum lk_err e;

    spec->set |= LK_SPEC_RATE_LIMITS;
    spec->n_rate_limits = 0;
    if (json_array_size(arr) > LK_KEY_RATE_LIMITS_MAX)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                              "a key has at most %d rate limits", LK_KEY_RATE_LIMITS_MAX);
    json_array_foreach(arr, i, rl)
    {
        struct lk_key_rl *r = &spec->rate_limits[i];
        json_t *name;

        snprintf(prefix, sizeof(prefix), "ratelimits[%zu].", i);
        if ((e = lk_unkey_object(rl, prefix, ratelimit_fields, LK_ARRAY_LEN(ratelimit_fields),
                                 ei)) != LK_OK)
            return e;
        name = json_object_get(rl, "name");
        if (!lk_namedrl_name_ok(json_string_value(name), json_string_length(name)))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                                  "ratelimits[%zu].name must be 1 to %d of A-Z a-z 0-9 _ . : -", i,
                                  LK_RL_NAME_MAX);
        snprintf(r->name, sizeof(r->name), "%s", json_string_value(name));
        r->limit = json_integer_value(json_object_get(rl, "limit"));
        r->window_ms = json_integer_value(json_object_get(rl, "duration"));
        snprintf(prefix, sizeof(prefix), "ratelimits[%zu].duration", i);
        if (r->window_ms > LK_RL_WINDOW_MS_MAX && strcmp(r->name, "default") != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, prefix,
                                  "ratelimits[%zu].duration must be between %d and %d; only the "
                                  "limit named default may be up to %lld",
                                  i, LK_RL_WINDOW_MS_MIN, LK_RL_WINDOW_MS_MAX,
                                  LK_RL_DEFAULT_WINDOW_MS_MAX);
        r->auto_apply = json_is_true(json_object_get(rl, "autoApply"));
        spec->n_rate_limits++;
    }
    return LK_OK;
}

static const struct lk_unkey_field credits_fields[] = {
    {"remaining", LK_UT_INT, LK_UF_NULLABLE, 0, LK_UNKEY_CREDITS_MAX},
    {"refill", LK_UT_OBJECT, LK_UF_NULLABLE, 0, 0},
};

static const struct lk_unkey_field refill_fields[] = {
    {"interval", LK_UT_STRING, LK_UF_REQUIRED, 1, 16},
    {"amount", LK_UT_INT, LK_UF_REQUIRED, 1, LK_UNKEY_CREDITS_MAX},
    {"refillDay", LK_UT_INT, 0, 1, 31},
};

/* `credits` into spec: the key's own credits and their refill; null removes
 * them. cur (NULL on create) is the key as it is: what a change leaves out of
 * `credits` stays as it was (the number as checks left it). */
static enum lk_err credits_in(json_t *c, const struct lk_key_row *cur, struct lk_key_spec *spec,
                              struct lk_errinfo *ei)
{
    json_t *rem, *refill, *v;
    const char *interval;
    enum lk_err e;

    spec->set |= LK_SPEC_CREDITS;
    spec->credits_remaining = -1;
    spec->credits_refill = LK_CREDIT_REFILL_NONE;
    if (json_is_null(c))
        return LK_OK;
    if ((e = lk_unkey_object(c, "credits.", credits_fields, LK_ARRAY_LEN(credits_fields), ei)) !=
        LK_OK)
        return e;
    rem = json_object_get(c, "remaining");
    refill = json_object_get(c, "refill");
    if (rem == NULL && cur != NULL && cur->has_credits)
        spec->credits_remaining = cur->credits_now >= 0 ? cur->credits_now : cur->credits_remaining;
    else if (json_is_integer(rem))
        spec->credits_remaining = json_integer_value(rem);
    if (refill == NULL && cur != NULL && cur->has_credits) {
        spec->credits_refill = cur->credits_refill;
        spec->credits_refill_amount = cur->credits_refill_amount;
        spec->credits_refill_day = cur->credits_refill_day;
    } else if (json_is_object(refill)) {
        if ((e = lk_unkey_object(refill, "credits.refill.", refill_fields,
                                 LK_ARRAY_LEN(refill_fields), ei)) != LK_OK)
            return e;
        interval = json_string_value(json_object_get(refill, "interval"));
        if (strcmp(interval, "daily") == 0)
            spec->credits_refill = LK_CREDIT_REFILL_DAILY;
        else if (strcmp(interval, "monthly") == 0)
            spec->credits_refill = LK_CREDIT_REFILL_MONTHLY;
        else
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "credits.refill.interval",
                                  "credits.refill.interval must be daily or monthly");
        spec->credits_refill_amount = json_integer_value(json_object_get(refill, "amount"));
        v = json_object_get(refill, "refillDay");
        spec->credits_refill_day = v ? (int)json_integer_value(v) : 1;
        if (v != NULL && spec->credits_refill == LK_CREDIT_REFILL_DAILY)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "credits.refill.refillDay",
                                  "credits.refill.refillDay is for monthly refills only");
    }
    if (spec->credits_remaining < 0 && spec->credits_refill != LK_CREDIT_REFILL_NONE)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "credits.remaining",
                              "a refill refills credits: credits.remaining is required with it");
    return LK_OK;
}

/* The members create and update read the same way into spec; cur is the key
 * as it is (NULL on create). */
static enum lk_err common_in(json_t *root, const struct lk_key_row *cur, int64_t now,
                             struct lk_key_spec *spec, struct lk_errinfo *ei)
{
    json_t *v;
    enum lk_err e;

    if ((v = json_object_get(root, "name")) != NULL) {
        spec->set |= LK_SPEC_NAME;
        snprintf(spec->name, sizeof(spec->name), "%s",
                 json_is_string(v) ? json_string_value(v) : "");
    }
    if ((v = json_object_get(root, "meta")) != NULL) {
        spec->set |= LK_SPEC_META;
        spec->meta = json_is_object(v) ? json_dumps(v, JSON_COMPACT) : lk_strndup("{}", 2);
        if (spec->meta == NULL || strlen(spec->meta) > LK_JSON_MAX_META)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "meta",
                                  "meta may take at most %d bytes as JSON", LK_JSON_MAX_META);
    }
    if ((v = json_object_get(root, "expires")) != NULL) {
        spec->set |= LK_SPEC_EXPIRES_AT;
        spec->expires_at = json_is_null(v) ? 0 : ms_to_s(json_integer_value(v));
        if (!json_is_null(v) && spec->expires_at <= now)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires",
                                  "expires must be in the future (Unix milliseconds)");
    }
    if ((v = json_object_get(root, "enabled")) != NULL) {
        spec->set |= LK_SPEC_ENABLED;
        spec->enabled = json_is_true(v);
    }
    if ((v = json_object_get(root, "permissions")) != NULL) {
        spec->set |= LK_SPEC_PERMISSIONS;
        free(spec->permissions); /* create's default: none */
        if ((e = lk_unkey_perms_in(v, "permissions", &spec->permissions, ei)) != LK_OK)
            return e;
    }
    if ((v = json_object_get(root, "roles")) != NULL && json_array_size(v) > 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "roles",
                              "latchkey has no roles: give the key its permissions instead");
    if ((v = json_object_get(root, "ratelimits")) != NULL &&
        (e = ratelimits_in(v, spec, ei)) != LK_OK)
        return e;
    if ((v = json_object_get(root, "externalId")) != NULL) {
        /* The key's identity: made on first use of the id; null unlinks. */
        const char *x = json_is_string(v) ? json_string_value(v) : "";
        if (x[0] != '\0' && !lk_external_id_valid(x, strlen(x)))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "externalId",
                                  "externalId must be 1 to %d bytes of printable UTF-8",
                                  LK_EXTERNAL_ID_MAX);
        spec->set |= LK_SPEC_EXTERNAL_ID;
        snprintf(spec->external_id, sizeof(spec->external_id), "%s", x);
    }
    if ((v = json_object_get(root, "credits")) != NULL &&
        (e = credits_in(v, cur, spec, ei)) != LK_OK)
        return e;
    return LK_OK;
}

/* --- keys.createKey ---------------------------------------------------------- */

static const struct lk_unkey_field create_fields[] = {
    {"apiId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"prefix", LK_UT_STRING, 0, 1, 16},
    {"name", LK_UT_STRING, 0, 1, LK_NAME_MAX},
    {"byteLength", LK_UT_INT, 0, 16, 255},
    {"externalId", LK_UT_STRING, 0, 1, 255},
    {"meta", LK_UT_OBJECT, 0, 0, 0},
    {"roles", LK_UT_STRINGS, 0, 0, 100},
    {"permissions", LK_UT_STRINGS, 0, 0, 1000},
    {"expires", LK_UT_INT, 0, 0, MS_MAX},
    {"credits", LK_UT_OBJECT, 0, 0, 0},
    {"ratelimits", LK_UT_OBJECTS, 0, 0, 50},
    {"enabled", LK_UT_BOOL, 0, 0, 0},
    {"recoverable", LK_UT_BOOL, 0, 0, 0},
};

/* Unkey's `prefix` picks no text of latchkey's secrets, whose form is fixed and
 * checksummed: it may name the workspace's own prefix, and `<prefix>_test` or
 * `<prefix>_live` choose the environment. */
static enum lk_err prefix_in(struct lk_app *app, const struct lk_actor *who, json_t *v,
                             struct lk_key_spec *spec, struct lk_errinfo *ei)
{
    const char *p = json_string_value(v);
    size_t n = json_string_length(v), pl;
    struct lk_ws_row w;
    enum lk_err e;

    if ((e = lk_workspaces_own(app, who, &w)) != LK_OK)
        return e;
    pl = strlen(w.key_prefix);
    if (w.key_format != LK_FORMAT_HEX && n >= pl && memcmp(p, w.key_prefix, pl) == 0) {
        if (n == pl)
            return LK_OK;
        if (n == pl + 5 && (memcmp(p + pl, "_live", 5) == 0 || memcmp(p + pl, "_test", 5) == 0)) {
            spec->set |= LK_SPEC_ENV;
            spec->env = p[pl + 1] == 't' ? LK_ENV_TEST : LK_ENV_LIVE;
            return LK_OK;
        }
    }
    if (w.key_format == LK_FORMAT_HEX)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "prefix",
                              "this workspace issues hex keys, which carry no prefix");
    return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "prefix",
                          "keys of this workspace begin with '%s_live_' or '%s_test_': prefix "
                          "may be '%s', '%s_live' or '%s_test'",
                          w.key_prefix, w.key_prefix, w.key_prefix, w.key_prefix, w.key_prefix);
}

void lk_h_unkey_create_key(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_spec spec = {.set = LK_SPEC_PERMISSIONS};
    struct lk_key_row k;
    struct lk_errinfo ei;
    char secret[LK_SECRET_MAX];
    json_t *root, *v;
    enum lk_err e;

    if ((root = begin(m, create_fields, LK_ARRAY_LEN(create_fields), &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if (!api_is_own(m, root, &who))
        goto out;
    /* Unkey's key without permissions has none; latchkey's default would be `*`. */
    spec.permissions = lk_strndup("[]", 2);
    if (json_is_true(json_object_get(root, "recoverable"))) {
        e = lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "recoverable",
                           "latchkey never keeps a secret: keys cannot be recoverable");
        goto fail;
    }
    /* 32 random bytes, whatever is asked: never fewer than asked. */
    if ((v = json_object_get(root, "byteLength")) != NULL &&
        json_integer_value(v) > LK_SECRET_BYTES) {
        e = lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "byteLength",
                           "latchkey keys carry %d random bytes: byteLength may be 16 to %d",
                           LK_SECRET_BYTES, LK_SECRET_BYTES);
        goto fail;
    }
    if ((v = json_object_get(root, "prefix")) != NULL &&
        (e = prefix_in(m->app, &who, v, &spec, &ei)) != LK_OK)
        goto fail;
    if ((e = common_in(root, NULL, m->now, &spec, &ei)) != LK_OK)
        goto fail;
    if ((e = lk_keys_create(m->app, &who, &spec, m->now, &k, secret, &ei)) != LK_OK)
        goto fail;
    lk_unkey_mreq_data(m, json_pack("{s:s, s:s}", "keyId", k.id, "key", secret), NULL);
    OPENSSL_cleanse(secret, sizeof(secret));
    lk_key_row_release(&k);
    goto out;
fail:
    unkey_field(&ei);
    lk_unkey_mreq_error(m, e, &ei);
out:
    lk_key_spec_release(&spec);
    json_decref(root);
}

/* --- keys.getKey --------------------------------------------------------------- */

static const struct lk_unkey_field get_fields[] = {
    {"keyId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"decrypt", LK_UT_BOOL, 0, 0, 0},
};

/* `decrypt: true` asks for a secret latchkey does not have. */
static bool refuse_decrypt(struct lk_mreq *m, json_t *root)
{
    struct lk_errinfo ei;

    if (!json_is_true(json_object_get(root, "decrypt")))
        return false;
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "decrypt",
                   "latchkey never keeps a secret: keys cannot be decrypted");
    lk_unkey_mreq_error(m, LK_ERR_INVALID_REQUEST, &ei);
    return true;
}

void lk_h_unkey_get_key(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_row k;
    char id[LK_ID_MAX];
    json_t *root;

    if ((root = begin(m, get_fields, LK_ARRAY_LEN(get_fields), &who)) == NULL)
        return;
    if (!refuse_decrypt(m, root) && visible_key(m, &who, root, id, &k)) {
        lk_unkey_mreq_data(m, lk_unkey_render_key(&k), NULL);
        lk_key_row_release(&k);
    }
    json_decref(root);
}

/* --- keys.updateKey ------------------------------------------------------------ */

static const struct lk_unkey_field update_fields[] = {
    {"keyId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"name", LK_UT_STRING, LK_UF_NULLABLE, 0, LK_NAME_MAX},
    {"externalId", LK_UT_STRING, LK_UF_NULLABLE, 1, 255},
    {"meta", LK_UT_OBJECT, LK_UF_NULLABLE, 0, 0},
    {"expires", LK_UT_INT, LK_UF_NULLABLE, 0, MS_MAX},
    {"credits", LK_UT_OBJECT, LK_UF_NULLABLE, 0, 0},
    {"ratelimits", LK_UT_OBJECTS, 0, 0, 50},
    {"enabled", LK_UT_BOOL, 0, 0, 0},
    {"roles", LK_UT_STRINGS, 0, 0, 100},
    {"permissions", LK_UT_STRINGS, 0, 0, 1000},
};

void lk_h_unkey_update_key(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_spec spec = {0};
    struct lk_key_row k;
    struct lk_errinfo ei;
    char id[LK_ID_MAX];
    json_t *root;
    enum lk_err e;

    if ((root = begin(m, update_fields, LK_ARRAY_LEN(update_fields), &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if (!visible_key(m, &who, root, id, &k))
        goto out;
    e = common_in(root, &k, m->now, &spec, &ei);
    lk_key_row_release(&k);
    if (e != LK_OK || (e = lk_keys_update(m->app, &who, id, &spec, m->now, &k, &ei)) != LK_OK) {
        unkey_field(&ei);
        lk_unkey_mreq_error(m, e, &ei);
        goto out;
    }
    lk_key_row_release(&k);
    lk_unkey_mreq_data(m, json_object(), NULL);
out:
    lk_key_spec_release(&spec);
    json_decref(root);
}

/* --- keys.deleteKey ------------------------------------------------------------ */

static const struct lk_unkey_field delete_fields[] = {
    {"keyId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"permanent", LK_UT_BOOL, 0, 0, 0},
};

/* Deleting revokes: the key is refused at once and answers as deleted (404) to
 * the v2 surface; its row stays for the audit log and usage, permanent or not. */
void lk_h_unkey_delete_key(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char id[LK_ID_MAX];
    json_t *root;
    enum lk_err e;

    if ((root = begin(m, delete_fields, LK_ARRAY_LEN(delete_fields), &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if (visible_key(m, &who, root, id, &k)) {
        lk_key_row_release(&k);
        if ((e = lk_keys_revoke(m->app, &who, id, m->now, &ei)) != LK_OK)
            lk_unkey_mreq_error(m, e, &ei);
        else
            lk_unkey_mreq_data(m, json_object(), NULL);
    }
    json_decref(root);
}

/* --- keys.rerollKey ------------------------------------------------------------ */

static const struct lk_unkey_field reroll_fields[] = {
    {"keyId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"expiration", LK_UT_INT, LK_UF_REQUIRED, 0, GRACE_MS_MAX},
};

/* Unkey makes a new key and lets the old one expire after `expiration` ms;
 * latchkey regenerates: the same key (same keyId, settings and usage) gets a
 * new secret, and the old secret keeps verifying for that long, rounded up
 * to whole seconds. */
void lk_h_unkey_reroll_key(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char id[LK_ID_MAX], secret[LK_SECRET_MAX];
    json_t *root;
    int64_t ms;
    enum lk_err e;

    if ((root = begin(m, reroll_fields, LK_ARRAY_LEN(reroll_fields), &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    ms = json_integer_value(json_object_get(root, "expiration"));
    if (visible_key(m, &who, root, id, &k)) {
        lk_key_row_release(&k);
        if ((e = lk_keys_regenerate(m->app, &who, id, (ms + 999) / 1000, m->now, &k, secret,
                                    &ei)) != LK_OK) {
            lk_unkey_mreq_error(m, e, &ei);
        } else {
            lk_unkey_mreq_data(m, json_pack("{s:s, s:s}", "keyId", k.id, "key", secret), NULL);
            OPENSSL_cleanse(secret, sizeof(secret));
            lk_key_row_release(&k);
        }
    }
    json_decref(root);
}

/* --- keys.addPermissions, removePermissions, setPermissions -------------------- */

static const struct lk_unkey_field perms_fields[] = {
    {"keyId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"permissions", LK_UT_STRINGS, LK_UF_REQUIRED, 0, 1000},
};

/* The key's permissions as Unkey's Permission objects; a latchkey permission has
 * no id of its own, so its name is its id and slug. */
static json_t *permission_objects(const char *permissions_json)
{
    json_t *names = lk_unkey_perms_out(permissions_json), *out = json_array(), *v;
    size_t i;

    json_array_foreach(names, i, v)
        json_array_append_new(out, json_pack("{s:O, s:O, s:O}", "id", v, "name", v, "slug", v));
    json_decref(names);
    return out;
}

static void change_perms(struct lk_mreq *m, enum lk_keyperms_op op)
{
    struct lk_actor who;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char id[LK_ID_MAX], *perms = NULL;
    json_t *root;
    enum lk_err e;

    if ((root = begin(m, perms_fields, LK_ARRAY_LEN(perms_fields), &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_unkey_perms_in(json_object_get(root, "permissions"), "permissions", &perms, &ei)) ==
        LK_OK) {
        if (!lk_unkey_key_id(root, id))
            e = LK_ERR_NOT_FOUND;
        else
            e = lk_keyperms_change(m->app, &who, id, op, perms, m->now, &k, &ei);
    }
    if (e == LK_OK) {
        lk_unkey_mreq_data(m, permission_objects(k.permissions), NULL);
        lk_key_row_release(&k);
    } else {
        lk_unkey_mreq_error(m, e, &ei);
    }
    free(perms);
    json_decref(root);
}

void lk_h_unkey_add_permissions(struct lk_mreq *m)
{
    change_perms(m, LK_KEYPERMS_ADD);
}

void lk_h_unkey_remove_permissions(struct lk_mreq *m)
{
    change_perms(m, LK_KEYPERMS_REMOVE);
}

void lk_h_unkey_set_permissions(struct lk_mreq *m)
{
    change_perms(m, LK_KEYPERMS_SET);
}

/* --- apis.listKeys ------------------------------------------------------------- */

static const struct lk_unkey_field list_fields[] = {
    {"apiId", LK_UT_STRING, LK_UF_REQUIRED, 1, 255},
    {"limit", LK_UT_INT, 0, 1, LIST_MAX},
    {"cursor", LK_UT_STRING, 0, 1, 32},
    {"externalId", LK_UT_STRING, 0, 1, 255},
    {"decrypt", LK_UT_BOOL, 0, 0, 0},
    {"revalidateKeysCache", LK_UT_BOOL, 0, 0, 0},
};

struct listing {
    json_t *data;
    int want, seen; /* keys wanted on the page; rows the store gave this round */
    int64_t last;   /* rowid of the last row seen */
    char last_id[LK_ID_MAX]; /* its id: the cursor, which no row number shows */
    bool more;      /* a visible key beyond the page exists */
};

static int list_one(void *arg, const struct lk_key_row *k)
{
    struct listing *l = arg;

    l->seen++;
    if (!lk_keyperms_visible(k)) {
        l->last = k->rowid;
        snprintf(l->last_id, sizeof(l->last_id), "%s", k->id);
        return 0;
    }
    if ((int)json_array_size(l->data) == l->want) {
        l->more = true; /* one more visible key: the page is full */
        return 1;
    }
    l->last = k->rowid;
    snprintf(l->last_id, sizeof(l->last_id), "%s", k->id);
    json_array_append_new(l->data, lk_unkey_render_key(k));
    return 0;
}

void lk_h_unkey_list_keys(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_errinfo ei;
    struct listing l = {.want = LIST_MAX};
    int rounds = 0;
    struct lk_key_filter f = {.env = -1, .now = m->now};
    json_t *root, *v, *page;
    enum lk_err e = LK_OK;

    if ((root = begin(m, list_fields, LK_ARRAY_LEN(list_fields), &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if (!api_is_own(m, root, &who) || refuse_decrypt(m, root))
        goto out;
    if ((v = json_object_get(root, "externalId")) != NULL) {
        /* Only that identity's keys; an unknown one has none. */
        struct lk_identity_row idn;
        if ((e = lk_identities_by_external(m->app, &who, json_string_value(v), &idn)) == LK_OK) {
            memcpy(f.identity_id, idn.id, LK_ID_MAX);
            lk_identity_row_release(&idn);
        } else if (e == LK_ERR_NOT_FOUND) {
            lk_unkey_mreq_data(m, json_array(), json_pack("{s:{s:b}}", "pagination", "hasMore", 0));
            goto out;
        } else {
            lk_unkey_mreq_error(m, e, NULL);
            goto out;
        }
    }
    if ((v = json_object_get(root, "limit")) != NULL)
        l.want = (int)json_integer_value(v);
    if ((v = json_object_get(root, "cursor")) != NULL) {
        /* The id of the last key read, resolved in the caller's workspace. */
        if ((e = lk_keys_cursor(m->app, &who, json_string_value(v), &f.before_rowid, &ei)) !=
            LK_OK) {
            if (e == LK_ERR_INVALID_REQUEST)
                lk_errinfo_set(&ei, e, "cursor",
                               "cursor must be a pagination.cursor of an earlier page");
            lk_unkey_mreq_error(m, e, e == LK_ERR_INVALID_REQUEST ? &ei : NULL);
            goto out;
        }
    }
    l.data = json_array();
    /* Newest first, skipping what the v2 surface does not show: rounds of a page
     * and one until a visible key beyond the page turns up or the store has no
     * more. */
    do {
        l.seen = 0;
        f.limit = l.want + 1;
        e = lk_keys_list(m->app, &who, &f, list_one, &l);
        f.before_rowid = l.last;
    } while (e == LK_OK && !l.more && l.seen == f.limit && ++rounds < LIST_ROUNDS_MAX);
    /* Many hidden keys in a row (revoked ones): a shorter page, and the cursor
     * goes on from the last row read, so one call stays bounded. */
    if (e == LK_OK && !l.more && l.seen == f.limit)
        l.more = true;
    if (e != LK_OK) {
        json_decref(l.data);
        lk_unkey_mreq_error(m, e, NULL);
        goto out;
    }
    page = json_pack("{s:b}", "hasMore", l.more);
    if (l.more) {
        json_object_set_new(page, "cursor", json_string(l.last_id));
    }
    lk_unkey_mreq_data(m, l.data, json_pack("{s:o}", "pagination", page));
out:
    json_decref(root);
}
