#include "service/workspaces.h"

#include <openssl/crypto.h>

#include "base/common.h"
#include "base/rand.h"
#include "service/keys.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const struct {
    enum lk_key_kind kind;
    const char *name;
    const char *permissions;
} starter_keys[] = {
    {LK_KIND_ROOT, "root", "[\"*\"]"},
    {LK_KIND_APPLICATION, "read-write", "[\"*\"]"},
    {LK_KIND_APPLICATION, "read-only", "[\"*:read\"]"},
};

/* Inserts w and its starter keys inside one transaction; the feed publishes them.
 * Caller holds app->write_mu. */
static enum lk_err create_locked(struct lk_app *app, const struct lk_actor *who,
                                 struct lk_ws_row *w, int64_t now, struct lk_ws_secrets *sec)
{
    char *secrets[] = {sec->root_key, sec->read_write, sec->read_only};
    struct lk_key_row keys[LK_ARRAY_LEN(starter_keys)];
    struct lk_actor actor = *who;
    enum lk_err e;
    size_t i;

    memset(keys, 0, sizeof(keys));
    for (i = 0; i < LK_ARRAY_LEN(starter_keys); i++) {
        struct lk_key_row *k = &keys[i];
        lk_rand_id("key_", k->id, sizeof(k->id));
        memcpy(k->workspace_id, w->id, LK_ID_MAX);
        snprintf(k->name, sizeof(k->name), "%s", starter_keys[i].name);
        k->env = LK_ENV_LIVE;
        k->kind = starter_keys[i].kind;
        k->permissions = (char *)starter_keys[i].permissions; /* borrowed: never released */
        k->meta = (char *)"{}";
        k->enabled = true;
        k->daily_spend_cap = -1;
        k->created_at = now;
        memcpy(k->created_by, who->id[0] ? who->id : keys[0].id, LK_ID_MAX);
        lk__keys_new_secret(app, w, k, secrets[i]);
    }
    if (actor.id[0] == '\0') /* bootstrap: the workspace's own root key is the actor */
        memcpy(actor.id, keys[0].id, LK_ID_MAX);
    memcpy(actor.workspace_id, w->id, LK_ID_MAX);
    if ((e = lk_store_begin(app->store)) != LK_OK)
        return e;
    if ((e = lk_store_ws_insert(app->store, w)) != LK_OK)
        goto fail;
    for (i = 0; i < LK_ARRAY_LEN(keys); i++)
        if ((e = lk_store_key_insert(app->store, &keys[i])) != LK_OK)
            goto fail;
    if ((e = lk__keys_audit(app, &actor, "workspace.create", w->id, now)) != LK_OK)
        goto fail;
    if ((e = lk_store_commit(app->store)) != LK_OK)
        return e;
    lk_feed_sync(app->feed); /* the workspace and its keys, on this node at once */
    return LK_OK;
fail:
    lk_store_rollback(app->store);
    return e;
}

static void new_ws(struct lk_ws_row *w, const struct lk_ws_spec *spec, int64_t now)
{
    memset(w, 0, sizeof(*w));
    lk_rand_id("ws_", w->id, sizeof(w->id));
    snprintf(w->name, sizeof(w->name), "%s", spec->name);
    snprintf(w->key_prefix, sizeof(w->key_prefix), "%s",
             spec->key_prefix[0] ? spec->key_prefix : "lk");
    w->key_format = spec->key_format;
    w->created_at = now;
    w->quota = spec->has_quota ? spec->quota : -1;
    w->test_quota = spec->has_test_quota ? spec->test_quota : -1;
}

enum lk_err lk_workspaces_create(struct lk_app *app, const struct lk_actor *who,
                                 const struct lk_ws_spec *spec, int64_t now,
                                 struct lk_ws_row *out, struct lk_ws_secrets *secrets)
{
    enum lk_err e;

    new_ws(out, spec, now);
    pthread_mutex_lock(&app->write_mu);
    e = create_locked(app, who, out, now, secrets);
    pthread_mutex_unlock(&app->write_mu);
    if (e != LK_OK)
        OPENSSL_cleanse(secrets, sizeof(*secrets));
    return e;
}

static int first_ws(void *arg, const struct lk_ws_row *w)
{
    *(struct lk_ws_row *)arg = *w;
    return 1;
}

enum lk_err lk_workspaces_bootstrap(struct lk_app *app, int64_t now, struct lk_ws_row *out,
                                    struct lk_ws_secrets *secrets)
{
    struct lk_ws_spec spec = {.name = "default", .quota = -1, .test_quota = -1};
    struct lk_actor nobody = {0};
    int64_t n = 0;
    enum lk_err e;

    pthread_mutex_lock(&app->write_mu);
    if ((e = lk_store_ws_count(app->store, &n)) != LK_OK)
        goto out;
    if (n > 0) {
        e = lk_store_ws_list(app->store, first_ws, out);
        if (e == LK_OK)
            e = LK_ERR_CONFLICT;
        goto out;
    }
    new_ws(out, &spec, now);
    out->is_operator = true;
    snprintf(nobody.address, sizeof(nobody.address), "local");
    if ((e = create_locked(app, &nobody, out, now, secrets)) == LK_OK)
        memcpy(app->operator_ws, out->id, LK_ID_MAX);
out:
    pthread_mutex_unlock(&app->write_mu);
    if (e != LK_OK)
        OPENSSL_cleanse(secrets, sizeof(*secrets));
    return e;
}

enum lk_err lk_workspaces_set_quota(struct lk_app *app, const struct lk_actor *who,
                                    const char *id, const struct lk_ws_spec *spec, int64_t now,
                                    struct lk_ws_row *out)
{
    enum lk_err e;

    pthread_mutex_lock(&app->write_mu);
    if ((e = lk_store_ws_get(app->store, id, out)) != LK_OK)
        goto out;
    if (spec->has_quota)
        out->quota = spec->quota;
    if (spec->has_test_quota)
        out->test_quota = spec->test_quota;
    if ((e = lk_store_begin(app->store)) != LK_OK)
        goto out;
    if ((e = lk_store_ws_set_quota(app->store, id, out->quota, out->test_quota)) != LK_OK ||
        (e = lk__keys_audit(app, who, "workspace.set_quota", id, now)) != LK_OK) {
        lk_store_rollback(app->store);
        goto out;
    }
    if ((e = lk_store_commit(app->store)) != LK_OK)
        goto out; /* a failed commit has rolled back */
    lk_feed_sync(app->feed);
out:
    pthread_mutex_unlock(&app->write_mu);
    return e;
}

enum lk_err lk_workspaces_list(struct lk_app *app, const struct lk_actor *who, lk_ws_row_cb cb,
                               void *arg)
{
    (void)who;
    return lk_store_ws_list(app->store, cb, arg);
}
