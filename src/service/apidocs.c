#include "service/apidocs.h"

#include <jansson.h>

#include "base/common.h"
#include "service/app_int.h"
#include "core/perm.h"
#include "core/permquery.h"
#include "service/app.h"
#include "service/keycache.h"
#include "service/keys.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* lk_perm_has_fn over a key's permissions (a JSON array). */
static bool key_has(void *arg, const char *p, size_t len)
{
    json_t *perms = arg, *g;
    size_t i;

    json_array_foreach(perms, i, g)
    {
        const char *s = json_string_value(g);
        if (s != NULL && lk_perm_covers(s, strlen(s), p, len))
            return true;
    }
    return false;
}

static bool may_call(const struct lk_route_rule *r, const struct lk_key_row *k, json_t *perms)
{
    bool ok = false;

    if (r->env >= 0 && r->env != (int)k->env)
        return false;
    if (r->needs != LK_NEEDS_QUERY)
        return true;
    /* The rules were checked at load; a query that fails here still refuses. */
    return lk_permquery_eval(r->query, strlen(r->query), key_has, perms, &ok, NULL) == LK_OK && ok;
}

/* True when an earlier rule has the same pattern and covers the method: the
 * first match wins, so this one is never reached. */
static bool shadowed(const struct lk_route_rules *rs, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(rs->rules[j].pattern, rs->rules[i].pattern) == 0 &&
            (strcmp(rs->rules[j].method, "*") == 0 ||
             strcmp(rs->rules[j].method, rs->rules[i].method) == 0))
            return true;
    return false;
}

bool lk_apidocs_routes_loaded(struct lk_app *app)
{
    /* Without a routes file the rules are one catch-all: nothing to document. */
    return app->routes_file[0] != '\0';
}

enum lk_err lk_keys_operations(struct lk_app *app, const struct lk_actor *who, const char *id,
                               struct lk_key_ops *out)
{
    const struct lk_route_rules *rs;
    json_t *perms = NULL;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    if ((e = lk_keys_get(app, who, id, &out->key)) != LK_OK)
        return e;
    /* The rules in force now; a reload meanwhile frees them only after the put. */
    lk_keycache_read_lock();
    rs = lk_app_routes_hold(lk_app_routes(app));
    lk_keycache_read_unlock();
    perms = json_loads(out->key.permissions ? out->key.permissions : "[]", 0, NULL);
    if (!json_is_array(perms)) {
        e = LK_ERR_INTERNAL;
        goto out;
    }
    out->ops = lk_calloc(rs->n ? rs->n : 1, sizeof(*out->ops));
    for (size_t i = 0; i < rs->n; i++) {
        const struct lk_route_rule *r = &rs->rules[i];
        struct lk_key_op *o = &out->ops[out->n];
        if (shadowed(rs, i) || !may_call(r, &out->key, perms))
            continue;
        memcpy(o->method, r->method, sizeof(o->method));
        o->needs = r->needs;
        o->cost = r->cost;
        o->env = r->env;
        o->line = r->line;
        o->pattern = lk_strndup(r->pattern, strlen(r->pattern));
        o->query = r->query ? lk_strndup(r->query, strlen(r->query)) : NULL;
        out->n++;
    }
    e = LK_OK;
out:
    lk_app_routes_put(rs);
    json_decref(perms);
    return e;
}

void lk_key_ops_release(struct lk_key_ops *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->ops[i].pattern);
        free(o->ops[i].query);
    }
    free(o->ops);
    lk_key_row_release(&o->key);
    memset(o, 0, sizeof(*o));
}
