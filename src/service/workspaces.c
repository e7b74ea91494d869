#include "service/workspaces.h"

#include <openssl/crypto.h>

#include "base/common.h"
#include "service/app_int.h"
#include "base/rand.h"
#include "service/audit.h"
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

/* A workspace and its starter keys, written together. */
struct ws_create {
    struct lk_ws_row *w; /* its number is set by the insert */
    struct lk_key_row *keys;
    size_t nkeys;
    const struct lk_actor *actor;
    int64_t now;
    bool first;                 /* bootstrap: only into a store with no workspace yet */
    struct lk_ws_row *existing; /* bootstrap: the workspace found instead */
};

static int first_ws(void *arg, const struct lk_ws_row *w)
{
    *(struct lk_ws_row *)arg = *w;
    return 1;
}

static enum lk_err create_txn(struct lk_store *s, void *arg)
{
    struct ws_create *c = arg;
    int64_t n = 0;
    enum lk_err e;

    /* The count and the insert are one: two first starts on one database
     * cannot both make an operator workspace. */
    if (c->first) {
        if ((e = lk_store_ws_count(s, &n)) != LK_OK)
            return e;
        if (n > 0) {
            e = lk_store_ws_list(s, first_ws, c->existing);
            return e == LK_OK ? LK_ERR_CONFLICT : e;
        }
    }
    if ((e = lk_store_ws_insert(s, c->w)) != LK_OK)
        return e;
    for (size_t i = 0; i < c->nkeys; i++)
        if ((e = lk_store_key_insert(s, &c->keys[i])) != LK_OK)
            return e;
    return lk_audit_write(s, c->actor, "workspace.create", c->w->id, c->now);
}

/* Inserts w and its starter keys inside one transaction; the feed publishes them.
 * Caller holds app->write_mu. With `first`, only into an empty store
 * (LK_ERR_CONFLICT, *existing the workspace there, otherwise). */
static enum lk_err create_locked(struct lk_app *app, const struct lk_actor *who,
                                 struct lk_ws_row *w, int64_t now, struct lk_ws_secrets *sec,
                                 bool first, struct lk_ws_row *existing)
{
    char *secrets[] = {sec->root_key, sec->read_write, sec->read_only};
    struct lk_key_row keys[LK_ARRAY_LEN(starter_keys)];
    struct lk_actor actor = *who;
    struct ws_create c = {w, keys, LK_ARRAY_LEN(keys), &actor, now, first, existing};
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
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, create_txn, &c)) != LK_OK)
        return e;
    lk_feed_sync(app->feed); /* the workspace and its keys, on this node at once */
    return LK_OK;
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
    e = create_locked(app, who, out, now, secrets, false, NULL);
    pthread_mutex_unlock(&app->write_mu);
    if (e != LK_OK)
        OPENSSL_cleanse(secrets, sizeof(*secrets));
    return e;
}

enum lk_err lk_workspaces_bootstrap(struct lk_app *app, int64_t now, struct lk_ws_row *out,
                                    struct lk_ws_secrets *secrets)
{
    struct lk_ws_spec spec = {.name = "default", .quota = -1, .test_quota = -1};
    struct lk_actor nobody = {0};
    struct lk_ws_row w;
    enum lk_err e;

    new_ws(&w, &spec, now);
    w.is_operator = true;
    snprintf(nobody.address, sizeof(nobody.address), "local");
    pthread_mutex_lock(&app->write_mu);
    if ((e = create_locked(app, &nobody, &w, now, secrets, true, out)) == LK_OK) {
        *out = w;
        memcpy(app->operator_ws, w.id, LK_ID_MAX);
    }
    pthread_mutex_unlock(&app->write_mu);
    if (e != LK_OK)
        OPENSSL_cleanse(secrets, sizeof(*secrets));
    return e;
}

struct set_quota {
    const struct lk_actor *who;
    const char *id;
    const struct lk_ws_spec *spec;
    int64_t now;
    struct lk_ws_row *out;
};

/* Reads the workspace and writes the quotas it gets in one transaction: a
 * concurrent change of the other quota is never written back over. */
static enum lk_err set_quota_txn(struct lk_store *s, void *arg)
{
    struct set_quota *q = arg;
    enum lk_err e;

    if ((e = lk_store_ws_get(s, q->id, q->out)) != LK_OK)
        return e;
    if (q->spec->has_quota)
        q->out->quota = q->spec->quota;
    if (q->spec->has_test_quota)
        q->out->test_quota = q->spec->test_quota;
    if ((e = lk_store_ws_set_quota(s, q->id, q->out->quota, q->out->test_quota)) != LK_OK)
        return e;
    return lk_audit_write(s, q->who, "workspace.set_quota", q->id, q->now);
}

enum lk_err lk_workspaces_set_quota(struct lk_app *app, const struct lk_actor *who,
                                    const char *id, const struct lk_ws_spec *spec, int64_t now,
                                    struct lk_ws_row *out)
{
    struct set_quota q = {who, id, spec, now, out};
    enum lk_err e;

    /* write_mu orders the counters' copy of the quotas as the store's. */
    pthread_mutex_lock(&app->write_mu);
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, set_quota_txn, &q)) == LK_OK)
        lk_feed_sync(app->feed); /* the feed sets the counters' copy */
    pthread_mutex_unlock(&app->write_mu);
    return e;
}

enum lk_err lk_workspaces_list(struct lk_app *app, const struct lk_actor *who, lk_ws_row_cb cb,
                               void *arg)
{
    (void)who;
    return lk_store_ws_list(app->store, cb, arg);
}

enum lk_err lk_workspaces_own(struct lk_app *app, const struct lk_actor *who, struct lk_ws_row *out)
{
    return lk_store_ws_get(app->store, who->workspace_id, out);
}

enum lk_err lk_workspaces_get_by_number(struct lk_app *app, int64_t number, struct lk_ws_row *out)
{
    return lk_store_ws_get_by_number(app->store, number, out);
}

void lk_workspaces_quota(struct lk_app *app, const struct lk_actor *who, struct lk_ws_quota *out)
{
    struct lk_quota_view v;

    lk_counters_quota_view(lk_counters_ws(app->counters, who->workspace_id), &v);
    *out = (struct lk_ws_quota){v.live, v.test, v.quota, v.test_quota};
}
