/*
 * apidocs.h — what one key may call through forward auth: the route rules
 * (routerules.h) walked in order and judged against the key's permissions and
 * environment, for the per-key API documents (GET /v1/keys/{id}/openapi).
 */
#ifndef LK_APIDOCS_H
#define LK_APIDOCS_H

#include "service/auth.h"

/* One rule the key may call, copied out of the app's rules. */
struct lk_key_op {
    char method[16]; /* upper case, or "*" */
    char *pattern;   /* owned */
    enum lk_route_needs needs;
    char *query;  /* LK_NEEDS_QUERY: the permission query (owned), else NULL */
    int64_t cost; /* credits a call spends, as the rule says */
    int env;      /* -1: either, else enum lk_env */
    long line;    /* in the routes file */
};

struct lk_key_ops {
    struct lk_key_row key; /* the key, as lk_keys_get reads it */
    struct lk_key_op *ops;
    size_t n;
};

/* Reads key `id` of the actor's workspace (LK_ERR_NOT_FOUND otherwise) and the
 * rules it may call, in file order: `public` and `any` always, a permission query
 * when the key's permissions satisfy it; rules whose env= is not the key's
 * environment are left out, and so is a rule whose method and pattern an earlier
 * rule already has (first match wins, so it is never reached). Caller frees with
 * lk_key_ops_release() (also after a failure). */
enum lk_err lk_keys_operations(struct lk_app *app, const struct lk_actor *who, const char *id,
                               struct lk_key_ops *out /* OUT */);
void lk_key_ops_release(struct lk_key_ops *o);

/* Whether forward-auth route rules were loaded from a file (so each key's API
 * document says something); without one the rules are a single catch-all. */
bool lk_apidocs_routes_loaded(struct lk_app *app);

#endif
