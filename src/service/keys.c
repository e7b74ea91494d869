#include "service/keys.h"

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "service/app_int.h"
#include "base/rand.h"
#include "service/audit.h"
#include "service/identities.h"
#include "service/keycredits.h"
#include "service/usage.h"
#include "service/hooks.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

_Static_assert(LK_KEYS_USAGE_CODES == LK_USAGE_CODES, "usage is counted by the same outcomes");

void lk_key_spec_release(struct lk_key_spec *s)
{
    if (s == NULL)
        return;
    free(s->permissions);
    free(s->meta);
    s->permissions = s->meta = NULL;
}

const char *lk_keys_status(const struct lk_key_row *k, int64_t now)
{
    if (k->revoked_at != 0)
        return "revoked";
    if (k->expires_at != 0 && now >= k->expires_at)
        return "expired";
    if (!k->enabled)
        return "disabled";
    return "active";
}

void lk__keys_new_secret(struct lk_app *app, const struct lk_ws_row *w, struct lk_key_row *k,
                         char *secret)
{
    uint8_t bytes[LK_SECRET_BYTES];
    struct lk_secret_view v;
    size_t n;

    lk_rand_bytes(bytes, sizeof(bytes));
    n = lk_secret_format(w->key_format, w->key_prefix, k->env, bytes, secret);
    OPENSSL_cleanse(bytes, sizeof(bytes));
    lk_assert(lk_secret_parse(secret, n, &v) == LK_OK);
    if (w->key_format == LK_FORMAT_HEX) /* hex secrets carry no env; the hint does */
        snprintf(k->hint, sizeof(k->hint), "%s_...%.4s", lk_env_name(k->env), secret + n - 4);
    else
        lk_secret_hint(&v, k->hint);
    lk_app_digest(app, secret, n, k->digest);
    k->pepper_id = lk_pepper_id(app->pepper);
}

/* Merges the cache's last-used time, fresher than the store's by up to a flush,
 * and shows the key's own credits as they are now (a due refill counted). */
static void merge_last_used(struct lk_app *app, struct lk_key_row *k)
{
    const struct lk_ckey *c;

    if (k->has_credits)
        k->credits_now = lk_keycredits_now(k, lk_clock_now_s());
    lk_keycache_read_lock();
    if ((c = lk_keycache_find(app->cache, k->digest)) != NULL) {
        int64_t lu = atomic_load(&((struct lk_ckey *)c)->last_used);
        if (lu > k->last_used_at)
            k->last_used_at = lu;
    }
    lk_keycache_read_unlock();
}

/* Whether a temporary key created at `created` may expire at `at` (0: never),
 * asked at `now`: in the future, and at most LK_TEMP_MAX_TTL after creation. */
static enum lk_err temp_expiry_ok(int64_t at, int64_t created, int64_t now,
                                  struct lk_errinfo *ei)
{
    if (at == 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires_at",
                              "a temporary key always expires; expires_at cannot be cleared");
    if (at <= now)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires_at",
                              "expires_at must be in the future");
    if (at - created > LK_TEMP_MAX_TTL)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires_at",
                              "a temporary key lives at most %d seconds", LK_TEMP_MAX_TTL);
    return LK_OK;
}

/* The named rate limits of a spec: the one named "default" is the key's
 * rate_limit (whole seconds, always applied), the others are kept apart. */
static enum lk_err apply_rate_limits(const struct lk_key_spec *spec, struct lk_key_row *k,
                                     struct lk_errinfo *ei)
{
    int n = 0;

    if (!(spec->set & LK_SPEC_RATE_LIMITS))
        return LK_OK;
    if (spec->set & LK_SPEC_RATE_LIMIT)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "rate_limits",
                              "give rate_limit or rate_limits, not both");
    if (spec->n_rate_limits < 0 || spec->n_rate_limits > LK_KEY_RATE_LIMITS_MAX)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "rate_limits",
                              "a key has at most %d rate limits", LK_KEY_RATE_LIMITS_MAX);
    free(k->rate_limits);
    k->rate_limits = NULL;
    k->n_rate_limits = 0;
    k->rl_limit = k->rl_window_s = 0;
    for (int i = 0; i < spec->n_rate_limits; i++) {
        const struct lk_key_rl *r = &spec->rate_limits[i];
        for (int j = 0; j < i; j++)
            if (strcmp(spec->rate_limits[j].name, r->name) == 0)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "rate_limits",
                                      "two rate limits are named %s", r->name);
        if (strcmp(r->name, "default") != 0) {
            if (r->window_ms < LK_RL_WINDOW_MS_MIN || r->window_ms > LK_RL_WINDOW_MS_MAX)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "rate_limits",
                                      "a rate limit's window is %d to %d ms (only the one named "
                                      "default may be up to %lld)",
                                      LK_RL_WINDOW_MS_MIN, LK_RL_WINDOW_MS_MAX,
                                      LK_RL_DEFAULT_WINDOW_MS_MAX);
            continue;
        }
        if (!r->auto_apply || r->window_ms % 1000 != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "rate_limits",
                                  "the rate limit named default is the key's rate_limit: it "
                                  "always applies and its window is whole seconds");
        k->rl_limit = r->limit;
        k->rl_window_s = r->window_ms / 1000;
    }
    if (spec->n_rate_limits > 0)
        k->rate_limits = lk_calloc((size_t)spec->n_rate_limits, sizeof(*k->rate_limits));
    for (int i = 0; i < spec->n_rate_limits; i++)
        if (strcmp(spec->rate_limits[i].name, "default") != 0)
            k->rate_limits[n++] = spec->rate_limits[i];
    k->n_rate_limits = n;
    if (n == 0) {
        free(k->rate_limits);
        k->rate_limits = NULL;
    }
    return LK_OK;
}

/* Links k to the identity of spec's external_id ("" unlinks), inside the
 * key's transaction. */
static enum lk_err apply_identity(struct lk_store *s, const struct lk_actor *who,
                                  const struct lk_key_spec *spec, struct lk_key_row *k,
                                  int64_t now)
{
    enum lk_err e;

    if (!(spec->set & LK_SPEC_EXTERNAL_ID))
        return LK_OK;
    if (spec->external_id[0] == '\0') {
        k->identity_id[0] = k->external_id[0] = '\0';
        return LK_OK;
    }
    if ((e = lk__identities_link(s, who, spec->external_id, now, k->identity_id)) != LK_OK)
        return e;
    snprintf(k->external_id, sizeof(k->external_id), "%s", spec->external_id);
    return LK_OK;
}

/* Applies the fields a create or a change share. */
static enum lk_err apply_common(const struct lk_key_spec *spec, struct lk_key_row *k, int64_t now,
                                struct lk_errinfo *ei)
{
    if (spec->set & LK_SPEC_NAME)
        memcpy(k->name, spec->name, sizeof(k->name));
    if (spec->set & LK_SPEC_PERMISSIONS) {
        free(k->permissions);
        k->permissions = lk_strndup(spec->permissions, strlen(spec->permissions));
    }
    if (spec->set & LK_SPEC_META) {
        free(k->meta);
        k->meta = lk_strndup(spec->meta, strlen(spec->meta));
    }
    if (spec->set & LK_SPEC_RATE_LIMIT) {
        k->rl_limit = spec->rl_limit;
        k->rl_window_s = spec->rl_window_s;
    }
    if (spec->set & LK_SPEC_SPEND_CAP)
        k->daily_spend_cap = spec->daily_spend_cap;
    if (spec->set & LK_SPEC_ENABLED)
        k->enabled = spec->enabled;
    if (spec->set & LK_SPEC_EXPIRES_AT) {
        if (spec->expires_at != 0 && spec->expires_at <= now)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires_at",
                                  "expires_at must be in the future");
        k->expires_at = spec->expires_at;
    }
    if (spec->set & LK_SPEC_EXPIRES_IN)
        k->expires_at = now + spec->expires_in;
    if (spec->set & LK_SPEC_CREDITS) {
        /* A management write replaces the number: the counters learn it by the
         * new generation and drop what they spent of the old one. */
        k->has_credits = spec->credits_remaining >= 0;
        k->credits_remaining = k->has_credits ? spec->credits_remaining : 0;
        k->credits_refill = k->has_credits ? spec->credits_refill : LK_CREDIT_REFILL_NONE;
        k->credits_refill_amount = k->credits_refill ? spec->credits_refill_amount : 0;
        k->credits_refill_day =
            k->credits_refill == LK_CREDIT_REFILL_MONTHLY ? spec->credits_refill_day : 0;
        k->credits_gen++;
        k->credits_set_at = now;
        k->credits_now = -1; /* nothing spent of the new number */
    }
    return apply_rate_limits(spec, k, ei);
}

struct create {
    struct lk_app *app;
    const struct lk_actor *who;
    const struct lk_key_spec *spec;
    const char *action;
    int64_t now;
    struct lk_key_row *k;
    char *secret;
};

/* The workspace (its key format) is read in the transaction that adds the key
 * to it; a new secret on each run, so a retry writes no secret twice. */
static enum lk_err create_txn(struct lk_store *s, void *arg)
{
    struct create *c = arg;
    struct lk_ws_row w;
    enum lk_err e;

    if ((e = lk_store_ws_get(s, c->who->workspace_id, &w)) != LK_OK)
        return e;
    if (!(c->spec->set & LK_SPEC_SHA256))
        lk__keys_new_secret(c->app, &w, c->k, c->secret);
    if ((e = apply_identity(s, c->who, c->spec, c->k, c->now)) != LK_OK)
        return e;
    if ((e = lk_store_key_insert(s, c->k)) != LK_OK)
        return e;
    if ((e = lk_hooks_key_created(s, c->who, c->k, c->now)) != LK_OK) /* webhooks: same txn */
        return e;
    return lk_audit_write(s, c->who, c->action, c->k->id, c->now);
}

static enum lk_err create_key(struct lk_app *app, const struct lk_actor *who,
                              const struct lk_key_spec *spec, int64_t now, const char *action,
                              struct lk_key_row *out, char *secret, struct lk_errinfo *ei)
{
    struct lk_key_row k = {
        .enabled = true, .daily_spend_cap = -1, .created_at = now, .credits_now = -1};
    enum lk_err e;
    bool locked = false;

    if ((spec->set & LK_SPEC_EXPIRES_IN) && (spec->set & LK_SPEC_EXPIRES_AT))
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires_at",
                              "give expires_in or expires_at, not both");
    k.env = spec->set & LK_SPEC_ENV ? spec->env : LK_ENV_LIVE;
    k.kind = spec->set & LK_SPEC_KIND ? spec->kind : LK_KIND_PERMANENT;
    if (k.kind == LK_KIND_APPLICATION)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "kind",
                              "application keys come with their workspace and cannot be created");
    if (k.kind == LK_KIND_ROOT && (who->is_user || who->kind != LK_KIND_ROOT ||
                                   !lk_auth_unrestricted(who)))
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "kind",
                              "only an unrestricted root key may create root keys");
    if (k.kind == LK_KIND_TEMPORARY) {
        /* A temporary key always ends, within LK_TEMP_MAX_TTL of its creation. */
        if ((spec->set & LK_SPEC_EXPIRES_AT) &&
            (e = temp_expiry_ok(spec->expires_at, now, now, ei)) != LK_OK)
            return e;
        if ((spec->set & LK_SPEC_EXPIRES_IN) &&
            (spec->expires_in <= 0 || spec->expires_in > LK_TEMP_MAX_TTL))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "expires_in",
                                  "a temporary key lives at most %d seconds", LK_TEMP_MAX_TTL);
        if (!(spec->set & (LK_SPEC_EXPIRES_IN | LK_SPEC_EXPIRES_AT)))
            k.expires_at = now + LK_TEMP_DEFAULT_TTL;
    }
    lk_rand_id("key_", k.id, sizeof(k.id));
    memcpy(k.workspace_id, who->workspace_id, LK_ID_MAX);
    memcpy(k.created_by, who->id, LK_ID_MAX);
    if ((e = apply_common(spec, &k, now, ei)) != LK_OK)
        goto out;
    if (k.permissions == NULL)
        k.permissions = lk_strndup("[\"*\"]", 5);
    if (k.meta == NULL)
        k.meta = lk_strndup("{}", 2);

    pthread_mutex_lock(&app->write_mu);
    locked = true;
    if (spec->set & LK_SPEC_SHA256) {
        /* Imported: the secret was issued elsewhere; pepper its digest as ours are. */
        if (app->pepper != NULL) {
            /* A key stored before the pepper was configured has the plain digest,
             * which the store's unique index cannot relate to the peppered one:
             * the cache, written under write_mu like the store, knows them all. */
            bool taken;
            lk_keycache_read_lock();
            taken = lk_keycache_find(app->cache, spec->sha256) != NULL;
            lk_keycache_read_unlock();
            if (taken) {
                e = LK_ERR_CONFLICT;
                goto out;
            }
            lk_digest_pepper(app->pepper, spec->sha256, k.digest);
        } else {
            memcpy(k.digest, spec->sha256, LK_DIGEST_LEN);
        }
        k.pepper_id = lk_pepper_id(app->pepper);
        snprintf(k.hint, sizeof(k.hint), "%s", LK_KEY_HINT_IMPORTED);
        secret[0] = '\0';
    }
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, create_txn,
                          &(struct create){app, who, spec, action, now, &k, secret})) != LK_OK)
        goto out;
    lk_feed_sync(app->feed); /* the new key verifies on this node at once */
out:
    if (locked)
        pthread_mutex_unlock(&app->write_mu);
    if (e != LK_OK) {
        OPENSSL_cleanse(secret, LK_SECRET_MAX);
        lk_key_row_release(&k);
        if (e == LK_ERR_CONFLICT && (spec->set & LK_SPEC_SHA256))
            lk_errinfo_set(ei, e, "sha256", "a key with this digest exists already");
        return e;
    }
    *out = k;
    return LK_OK;
}

enum lk_err lk_keys_create(struct lk_app *app, const struct lk_actor *who,
                           const struct lk_key_spec *spec, int64_t now, struct lk_key_row *out,
                           char *secret, struct lk_errinfo *ei)
{
    return create_key(app, who, spec, now,
                      spec->set & LK_SPEC_SHA256 ? "key.import" : "key.create", out, secret, ei);
}

enum lk_err lk_keys_generate_temp(struct lk_app *app, const struct lk_actor *who,
                                  const struct lk_key_spec *spec, int64_t now,
                                  struct lk_key_row *out, char *secret, struct lk_errinfo *ei)
{
    struct lk_key_spec s = *spec;

    /* Sessions, not keys, mint keys for agents: a leaked key cannot breed more. */
    if (!who->is_user)
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                              "temporary keys are made with a user session, not an API key");
    s.set = (s.set & ~(unsigned)(LK_SPEC_EXPIRES_AT | LK_SPEC_SHA256)) | LK_SPEC_KIND;
    s.kind = LK_KIND_TEMPORARY;
    if (!(s.set & LK_SPEC_NAME)) {
        snprintf(s.name, sizeof(s.name), "temporary key");
        s.set |= LK_SPEC_NAME;
    }
    return create_key(app, who, &s, now, "key.generate_temp", out, secret, ei);
}

enum lk_err lk_keys_usage(struct lk_app *app, const struct lk_actor *who,
                          const struct lk_key_row *k, int64_t from, int64_t to, lk_counter_cb cb,
                          void *arg)
{
    /* Row id 0 would scan every key of every workspace. */
    if (k->rowid <= 0 || strcmp(k->workspace_id, who->workspace_id) != 0)
        return LK_ERR_NOT_FOUND;
    lk_usage_flush(app->usage);
    return lk_store_counter_scan(app->store, LK_CTR_USAGE, k->rowid, from, to, cb, arg);
}

enum lk_err lk_keys_workspace_usage(struct lk_app *app, const struct lk_actor *who, int64_t from,
                                    int64_t to, lk_counter_cb cb, void *arg)
{
    /* Counts reach the store within a second; this makes them current. */
    lk_usage_flush(app->usage);
    return lk_store_usage_scan_ws(app->store, who->workspace_id, from, to, cb, arg);
}

enum lk_err lk_keys_permissions_in_use(struct lk_app *app, const struct lk_actor *who,
                                       lk_string_cb cb, void *arg)
{
    return lk_store_permissions_in_use(app->store, who->workspace_id, cb, arg);
}

enum lk_err lk_keys_get(struct lk_app *app, const struct lk_actor *who, const char *id,
                        struct lk_key_row *out)
{
    enum lk_err e = lk_store_key_get(app->store, who->workspace_id, id, out);

    if (e == LK_OK)
        merge_last_used(app, out);
    return e;
}

enum lk_err lk_keys_cursor(struct lk_app *app, const struct lk_actor *who, const char *cursor,
                           int64_t *before_rowid, struct lk_errinfo *ei)
{
    struct lk_key_row row;
    enum lk_err e;

    if (cursor[0] == '\0')
        return LK_OK;
    if ((e = lk_store_key_get(app->store, who->workspace_id, cursor, &row)) == LK_ERR_NOT_FOUND)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "cursor",
                              "'cursor' must be a next_cursor from an earlier page");
    if (e != LK_OK)
        return e;
    *before_rowid = row.rowid;
    lk_key_row_release(&row);
    return LK_OK;
}

struct list_ctx {
    struct lk_app *app;
    lk_key_row_cb cb;
    void *arg;
};

static int list_one(void *arg, const struct lk_key_row *row)
{
    struct list_ctx *lc = arg;
    struct lk_key_row k = *row; /* shallow: strings stay borrowed */

    merge_last_used(lc->app, &k);
    return lc->cb(lc->arg, &k);
}

enum lk_err lk_keys_list(struct lk_app *app, const struct lk_actor *who,
                         const struct lk_key_filter *f, lk_key_row_cb cb, void *arg)
{
    struct list_ctx lc = {app, cb, arg};
    return lk_store_key_list(app->store, who->workspace_id, f, list_one, &lc);
}

/* Root keys are changed only by root keys, application keys only by root keys
 * and owners: otherwise a read-write application key (or an editor) could
 * regenerate the root key and take its secret, or revoke every root key. */
static enum lk_err may_change(const struct lk_actor *who, const struct lk_key_row *k,
                              struct lk_errinfo *ei)
{
    /* ...and by one whose permissions are not narrowed: a key restricted to
     * keys:write must not take the secret of one that holds more. */
    bool root = !who->is_user && who->kind == LK_KIND_ROOT && lk_auth_unrestricted(who);

    if (k->kind == LK_KIND_ROOT && !root)
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "id",
                              "only an unrestricted root key may change a root key");
    if (k->kind == LK_KIND_APPLICATION && !root && !(who->is_user && who->role == LK_ROLE_OWNER))
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "id",
                              "only an unrestricted root key or an owner may change an "
                              "application key");
    return LK_OK;
}

/* Loads key `id`, lets `change` edit a copy, then stores and audits it, all in
 * one transaction: two changes of one key (from this process or another node)
 * each start from what the other wrote, so neither is lost. `change` may run
 * more than once (a retried transaction) and then starts again from the
 * stored row. After the commit the change is published to the cache, under
 * write_mu so the cache sees the changes of a key in the store's order. */
typedef enum lk_err (*change_fn)(struct lk_app *app, struct lk_store *s, struct lk_key_row *k,
                                 void *arg, struct lk_errinfo *ei);

struct change {
    struct lk_app *app;
    const struct lk_actor *who;
    const char *id, *action;
    int64_t now;
    change_fn fn;
    void *arg;
    struct lk_key_row old, k; /* as stored before, and after */
    struct lk_errinfo *ei;
};

static enum lk_err change_txn(struct lk_store *s, void *arg)
{
    struct change *c = arg;
    enum lk_err e;

    lk_key_row_release(&c->old); /* a retry reads afresh */
    lk_key_row_release(&c->k);
    if ((e = lk_store_key_get(s, c->who->workspace_id, c->id, &c->old)) != LK_OK)
        return e;
    if ((e = may_change(c->who, &c->old, c->ei)) != LK_OK)
        return e;
    lk_key_row_copy(&c->k, &c->old);
    if ((e = c->fn(c->app, s, &c->k, c->arg, c->ei)) != LK_OK)
        return e;
    if ((e = lk_store_key_update(s, &c->k)) != LK_OK)
        return e;
    /* webhooks: a revocation's event, in the same txn */
    if ((e = lk_hooks_key_changed(s, c->who, c->action, &c->old, &c->k, c->now)) != LK_OK)
        return e;
    return lk_audit_write(s, c->who, c->action, c->k.id, c->now);
}

static enum lk_err change_key(struct lk_app *app, const struct lk_actor *who, const char *id,
                              const char *action, int64_t now, change_fn change, void *arg,
                              struct lk_key_row *out, struct lk_errinfo *ei)
{
    struct change c = {app, who, id, action, now, change, arg, {0}, {0}, ei};
    enum lk_err e;

    pthread_mutex_lock(&app->write_mu);
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, change_txn, &c)) == LK_OK)
        lk_feed_sync(app->feed); /* a revoked key is refused on this node at once */
    pthread_mutex_unlock(&app->write_mu);
    lk_key_row_release(&c.old);
    if (e == LK_OK && out != NULL) {
        merge_last_used(app, &c.k);
        *out = c.k;
    } else {
        lk_key_row_release(&c.k);
    }
    return e;
}

struct update_arg {
    const struct lk_key_spec *spec;
    const struct lk_actor *who;
    int64_t now;
};

static enum lk_err do_update(struct lk_app *app, struct lk_store *s, struct lk_key_row *k,
                             void *arg, struct lk_errinfo *ei)
{
    struct update_arg *ua = arg;
    enum lk_err e;

    (void)app;
    if ((e = apply_identity(s, ua->who, ua->spec, k, ua->now)) != LK_OK)
        return e;
    if (k->kind == LK_KIND_APPLICATION && (ua->spec->set & LK_SPEC_ENABLED) && !ua->spec->enabled)
        return lk_errinfo_set(ei, LK_ERR_CONFLICT, "enabled",
                              "application keys cannot be disabled; regenerate them instead");
    if (k->kind == LK_KIND_TEMPORARY && (ua->spec->set & LK_SPEC_EXPIRES_AT)) {
        e = temp_expiry_ok(ua->spec->expires_at, k->created_at, ua->now, ei);
        if (e != LK_OK)
            return e;
    }
    return apply_common(ua->spec, k, ua->now, ei);
}

enum lk_err lk_keys_update(struct lk_app *app, const struct lk_actor *who, const char *id,
                           const struct lk_key_spec *spec, int64_t now, struct lk_key_row *out,
                           struct lk_errinfo *ei)
{
    struct update_arg ua = {spec, who, now};
    return change_key(app, who, id, "key.update", now, do_update, &ua, out, ei);
}

static enum lk_err do_revoke(struct lk_app *app, struct lk_store *s, struct lk_key_row *k,
                             void *arg, struct lk_errinfo *ei)
{
    (void)app;
    (void)s;
    if (k->kind == LK_KIND_APPLICATION)
        return lk_errinfo_set(ei, LK_ERR_CONFLICT, "id",
                              "application keys cannot be deleted; regenerate them instead");
    if (k->revoked_at == 0)
        k->revoked_at = *(int64_t *)arg;
    return LK_OK;
}

enum lk_err lk_keys_revoke(struct lk_app *app, const struct lk_actor *who, const char *id,
                           int64_t now, struct lk_errinfo *ei)
{
    return change_key(app, who, id, "key.revoke", now, do_revoke, &now, NULL, ei);
}

struct regen_arg {
    int64_t grace_s, now;
    char *secret;
};

static enum lk_err do_regenerate(struct lk_app *app, struct lk_store *s, struct lk_key_row *k,
                                 void *arg, struct lk_errinfo *ei)
{
    struct regen_arg *ra = arg;
    struct lk_ws_row w;
    enum lk_err e;

    if (k->revoked_at != 0)
        return lk_errinfo_set(ei, LK_ERR_CONFLICT, "id", "a revoked key cannot be regenerated");
    if ((e = lk_store_ws_get(s, k->workspace_id, &w)) != LK_OK)
        return e;
    /* The current secret becomes the previous one. Verification refuses it from
     * the whole second prev_until on, so a grace counted from the request's whole
     * second lost up to a second. It counts from this moment, in milliseconds,
     * rounded up: never shorter than asked, at most a second longer. No grace
     * refuses the old secret at once. */
    k->has_prev = true;
    memcpy(k->prev_digest, k->digest, LK_DIGEST_LEN);
    k->prev_pepper_id = k->pepper_id;
    if (ra->grace_s == 0) {
        k->prev_until = ra->now;
    } else {
        int64_t end_ms = lk_clock_now_ms() + ra->grace_s * 1000;
        k->prev_until = (end_ms + 999) / 1000;
        if (k->prev_until < ra->now + ra->grace_s)
            k->prev_until = ra->now + ra->grace_s;
    }
    lk__keys_new_secret(app, &w, k, ra->secret);
    return LK_OK;
}

enum lk_err lk_keys_regenerate(struct lk_app *app, const struct lk_actor *who, const char *id,
                               int64_t grace_s, int64_t now, struct lk_key_row *out,
                               char *secret, struct lk_errinfo *ei)
{
    struct regen_arg ra = {grace_s, now, secret};
    enum lk_err e = change_key(app, who, id, "key.regenerate", now, do_regenerate, &ra, out, ei);

    if (e != LK_OK)
        OPENSSL_cleanse(secret, LK_SECRET_MAX);
    return e;
}

struct seed {
    struct lk_app *app;
    int64_t count, now;
    const char *permissions;
    lk_keys_seed_cb cb;
    void *arg;
    struct lk_ws_row w;
};

static int first_ws(void *arg, const struct lk_ws_row *w)
{
    *(struct lk_ws_row *)arg = *w;
    return 1;
}

/* keys a lk_store_keys_insert call during a seed */
#define SEED_BATCH 500

static enum lk_err seed_txn(struct lk_store *s, void *arg)
{
    struct seed *sd = arg;
    struct lk_key_row *k = lk_calloc(SEED_BATCH, sizeof(*k));
    char(*secret)[LK_SECRET_MAX] = lk_calloc(SEED_BATCH, sizeof(*secret));
    enum lk_err e;

    memset(&sd->w, 0, sizeof(sd->w));
    if ((e = lk_store_ws_list(s, first_ws, &sd->w)) != LK_OK)
        goto out;
    if (sd->w.id[0] == '\0') {
        e = LK_ERR_NOT_FOUND;
        goto out;
    }
    for (int64_t at = 0; at < sd->count && e == LK_OK; at += SEED_BATCH) {
        size_t n = sd->count - at < SEED_BATCH ? (size_t)(sd->count - at) : SEED_BATCH;

        for (size_t i = 0; i < n; i++) {
            k[i] = (struct lk_key_row){.env = LK_ENV_LIVE, .kind = LK_KIND_PERMANENT,
                                       .enabled = true, .daily_spend_cap = -1,
                                       .created_at = sd->now};
            lk_rand_id("key_", k[i].id, sizeof(k[i].id));
            memcpy(k[i].workspace_id, sd->w.id, LK_ID_MAX);
            snprintf(k[i].name, sizeof(k[i].name), "seed-%lld", (long long)(at + (int64_t)i));
            k[i].permissions = (char *)sd->permissions; /* borrowed: never released */
            k[i].meta = (char *)"{}";
            lk__keys_new_secret(sd->app, &sd->w, &k[i], secret[i]);
        }
        e = lk_store_keys_insert(s, k, n);
        for (size_t i = 0; i < n && e == LK_OK; i++)
            if (sd->cb(sd->arg, at + (int64_t)i, secret[i]) != 0)
                e = LK_ERR_INTERNAL;
        OPENSSL_cleanse(secret, SEED_BATCH * sizeof(*secret));
    }
out:
    OPENSSL_cleanse(secret, SEED_BATCH * sizeof(*secret));
    free(secret);
    free(k);
    return e;
}

enum lk_err lk_keys_seed(struct lk_app *app, int64_t count, const char *permissions, int64_t now,
                         lk_keys_seed_cb cb, void *arg, char ws_id[LK_ID_MAX])
{
    struct seed sd = {app, count, now, permissions, cb, arg, {0}};
    enum lk_err e = lk_store_txn(app->store, LK_TXN_DEFAULT, seed_txn, &sd);

    memcpy(ws_id, sd.w.id, LK_ID_MAX);
    return e;
}

int64_t lk_keys_credits_remaining(struct lk_app *app, const struct lk_key_row *k, int64_t now)
{
    (void)app;
    return lk_keycredits_now(k, now);
}
