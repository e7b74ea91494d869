#include "service/keyperms.h"

#include <jansson.h>

#include "base/common.h"
#include "core/perm.h"
#include "service/app_int.h"
#include "service/audit.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

bool lk_keyperms_visible(const struct lk_key_row *k)
{
    return (k->kind == LK_KIND_PERMANENT || k->kind == LK_KIND_TEMPORARY) && k->revoked_at == 0;
}

static bool has(json_t *list, const char *p)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), p) == 0)
            return true;
    }
    return false;
}

/* The key's list after op, as JSON text (malloc'd), or NULL when too long. */
static char *merged(const char *current, enum lk_keyperms_op op, json_t *given)
{
    json_t *have = current ? json_loads(current, 0, NULL) : NULL, *out, *v;
    char *text = NULL;
    size_t i;

    if (!json_is_array(have)) {
        json_decref(have);
        have = json_array();
    }
    if (op == LK_KEYPERMS_SET) {
        out = json_deep_copy(given);
    } else if (op == LK_KEYPERMS_ADD) {
        out = json_deep_copy(have);
        json_array_foreach(given, i, v) {
            if (!has(out, json_string_value(v)))
                json_array_append(out, v);
        }
    } else {
        out = json_array();
        json_array_foreach(have, i, v) {
            if (json_is_string(v) && !has(given, json_string_value(v)))
                json_array_append(out, v);
        }
    }
    if (json_array_size(out) <= LK_PERM_MAX_COUNT)
        text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(have);
    return text;
}

struct change {
    const struct lk_actor *who;
    const char *id;
    enum lk_keyperms_op op;
    json_t *given;
    int64_t now;
    struct lk_key_row k;
    struct lk_errinfo *ei;
};

static enum lk_err change_txn(struct lk_store *s, void *arg)
{
    struct change *c = arg;
    char *text;
    enum lk_err e;

    lk_key_row_release(&c->k); /* a retry reads afresh */
    if ((e = lk_store_key_get(s, c->who->workspace_id, c->id, &c->k)) != LK_OK)
        return e;
    if (!lk_keyperms_visible(&c->k))
        return LK_ERR_NOT_FOUND;
    if ((text = merged(c->k.permissions, c->op, c->given)) == NULL)
        return lk_errinfo_set(c->ei, LK_ERR_INVALID_REQUEST, "permissions",
                              "a key holds at most %d permissions", LK_PERM_MAX_COUNT);
    free(c->k.permissions);
    c->k.permissions = text;
    if ((e = lk_store_key_update(s, &c->k)) != LK_OK)
        return e;
    return lk_audit_write(s, c->who, "key.update", c->k.id, c->now);
}

enum lk_err lk_keyperms_change(struct lk_app *app, const struct lk_actor *who, const char *id,
                               enum lk_keyperms_op op, const char *perms, int64_t now,
                               struct lk_key_row *out, struct lk_errinfo *ei)
{
    struct change c = {who, id, op, json_loads(perms, 0, NULL), now, {0}, ei};
    enum lk_err e;

    if (!json_is_array(c.given)) {
        json_decref(c.given);
        return LK_ERR_INTERNAL;
    }
    /* As every key change: the store's order is the cache's (keys.c). */
    pthread_mutex_lock(&app->write_mu);
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, change_txn, &c)) == LK_OK)
        lk_feed_sync(app->feed);
    pthread_mutex_unlock(&app->write_mu);
    json_decref(c.given);
    if (e == LK_OK)
        *out = c.k;
    else
        lk_key_row_release(&c.k);
    return e;
}
