#include "http/routes.h"

#include "base/common.h"
#include "base/stats.h"
#include "http/accesslog.h"
#include "http/handlers.h"
#include "http/reqhead.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

typedef int (*lk_handler_fn)(struct lk_reqctx *rc);

/* `{}` in a pattern captures one path segment into rc->params; method `*` is
 * any method. A route has
 * either `run` (answered on the event loop: verification, memory only) or
 * `mgmt` (handed to a management worker: it may wait on the database).
 * `need` is the one place a management call's permission is named: the
 * handler gets an actor only through lk_mreq_actor, which checks it (auth.h);
 * LK_MPERM_NONE routes (health, sign-in, one's own session) give out none. */
static const struct route {
    const char *method;
    const char *pattern;
    lk_handler_fn run;
    lk_mgmt_fn mgmt;
    unsigned need; /* mgmt: the management permission a credential must hold */
} routes[] = {
    {"GET", "/", lk_h_web_index, NULL, LK_MPERM_NONE},
    {"GET", "/index.html", lk_h_web_index, NULL, LK_MPERM_NONE},
    {"GET", "/app.js", lk_h_web_js, NULL, LK_MPERM_NONE},
    {"GET", "/app.css", lk_h_web_css, NULL, LK_MPERM_NONE},
    {"GET", "/healthz", NULL, lk_h_healthz, LK_MPERM_NONE},
    {"GET", "/openapi.json", lk_h_openapi, NULL, LK_MPERM_NONE},
    {"GET", "/readyz", NULL, lk_h_readyz, LK_MPERM_NONE},
    {"GET", "/metrics", lk_h_metrics, NULL, LK_MPERM_NONE},
    {"GET", "/v1/auth-context", lk_h_auth_context, NULL, LK_MPERM_NONE},
    {"GET", "/api/auth-context", lk_h_auth_context, NULL, LK_MPERM_NONE},
    {"POST", "/v1/verify", lk_h_verify, NULL, LK_MPERM_NONE},
    /* Unkey's check (docs/unkey.md), early: the table is matched in order. */
    {"POST", "/v2/keys.verifyKey", lk_h_unkey_verify, NULL, LK_MPERM_NONE},
    {"*", "/v1/forward-auth", lk_h_forward_auth, NULL, LK_MPERM_NONE},
    /* Envoy ext_authz's path_prefix form: the original path follows. */
    {"*", "/v1/forward-auth/**", lk_h_forward_auth, NULL, LK_MPERM_NONE},
    {"POST", "/v1/keys/generate-temp", NULL, lk_h_keys_generate_temp, LK_MPERM_KEYS_WRITE},
    {"POST", "/api/keys/generate-temp", NULL, lk_h_keys_generate_temp, LK_MPERM_KEYS_WRITE},
    {"POST", "/v1/keys", NULL, lk_h_keys_create, LK_MPERM_KEYS_WRITE},
    {"GET", "/v1/keys", NULL, lk_h_keys_list, LK_MPERM_KEYS_READ},
    {"GET", "/v1/keys/{}", NULL, lk_h_keys_get, LK_MPERM_KEYS_READ},
    {"PATCH", "/v1/keys/{}", NULL, lk_h_keys_update, LK_MPERM_KEYS_WRITE},
    {"DELETE", "/v1/keys/{}", NULL, lk_h_keys_delete, LK_MPERM_KEYS_WRITE},
    {"POST", "/v1/keys/{}/regenerate", NULL, lk_h_keys_regenerate, LK_MPERM_KEYS_WRITE},
    {"GET", "/v1/keys/{}/usage", NULL, lk_h_keys_usage, LK_MPERM_KEYS_READ},
    {"GET", "/v1/keys/{}/openapi", NULL, lk_h_keys_openapi, LK_MPERM_KEYS_READ},
    {"POST", "/v1/workspaces", NULL, lk_h_workspaces_create, LK_MPERM_WORKSPACES_WRITE},
    {"GET", "/v1/workspaces", NULL, lk_h_workspaces_list, LK_MPERM_WORKSPACES_READ},
    {"PATCH", "/v1/workspaces/{}", NULL, lk_h_workspaces_update, LK_MPERM_WORKSPACES_WRITE},
    {"GET", "/v1/usage", NULL, lk_h_usage, LK_MPERM_KEYS_READ},
    {"GET", "/v1/permissions", NULL, lk_h_permissions, LK_MPERM_KEYS_READ},
    {"GET", "/v1/quota", NULL, lk_h_quota, LK_MPERM_KEYS_READ},
    {"GET", "/v1/credits", NULL, lk_h_credits_get, LK_MPERM_CREDITS_READ},
    {"POST", "/v1/credits", NULL, lk_h_credits_top_up, LK_MPERM_CREDITS_WRITE},
    {"POST", "/v1/auth/login", NULL, lk_h_auth_login, LK_MPERM_NONE},
    {"POST", "/v1/auth/logout", NULL, lk_h_auth_logout, LK_MPERM_NONE},
    {"GET", "/v1/me", NULL, lk_h_me, LK_MPERM_NONE},
    {"GET", "/v1/members", NULL, lk_h_members_list, LK_MPERM_MEMBERS_READ},
    {"POST", "/v1/members", NULL, lk_h_members_add, LK_MPERM_MEMBERS_WRITE},
    {"PATCH", "/v1/members/{}", NULL, lk_h_members_update, LK_MPERM_MEMBERS_WRITE},
    {"DELETE", "/v1/members/{}", NULL, lk_h_members_remove, LK_MPERM_MEMBERS_WRITE},
    {"POST", "/v1/invitations/accept", NULL, lk_h_invitations_accept, LK_MPERM_NONE},
    {"GET", "/v1/invitations", NULL, lk_h_invitations_list, LK_MPERM_MEMBERS_READ},
    {"DELETE", "/v1/invitations/{}", NULL, lk_h_invitations_revoke, LK_MPERM_MEMBERS_WRITE},
    {"GET", "/v1/audit", NULL, lk_h_audit_list, LK_MPERM_AUDIT_READ},
    /* Leak reports carry a scanner's signature, not a credential (h_leaks.c). */
    {"POST", "/v1/leaks/github", NULL, lk_h_leaks_github, LK_MPERM_NONE},
    {"POST", "/v1/leaks/report", NULL, lk_h_leaks_report, LK_MPERM_NONE},
    {"GET", "/v1/webhooks", NULL, lk_h_webhooks_list, LK_MPERM_WEBHOOKS_READ},
    {"POST", "/v1/webhooks", NULL, lk_h_webhooks_create, LK_MPERM_WEBHOOKS_WRITE},
    {"GET", "/v1/webhooks/settings", NULL, lk_h_webhooks_settings_get, LK_MPERM_WEBHOOKS_READ},
    {"PUT", "/v1/webhooks/settings", NULL, lk_h_webhooks_settings_put, LK_MPERM_WEBHOOKS_WRITE},
    {"DELETE", "/v1/webhooks/{}", NULL, lk_h_webhooks_delete, LK_MPERM_WEBHOOKS_WRITE},
    {"GET", "/v1/webhooks/{}/deliveries", NULL, lk_h_webhooks_deliveries, LK_MPERM_WEBHOOKS_READ},
    /* The rest of Unkey's v2 API (docs/unkey.md): its errors have Unkey's shape. */
    {"POST", "/v2/keys.createKey", NULL, lk_h_unkey_create_key, LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/keys.getKey", NULL, lk_h_unkey_get_key, LK_MPERM_KEYS_READ},
    {"POST", "/v2/keys.updateKey", NULL, lk_h_unkey_update_key, LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/keys.deleteKey", NULL, lk_h_unkey_delete_key, LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/keys.rerollKey", NULL, lk_h_unkey_reroll_key, LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/keys.addPermissions", NULL, lk_h_unkey_add_permissions, LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/keys.removePermissions", NULL, lk_h_unkey_remove_permissions,
     LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/keys.setPermissions", NULL, lk_h_unkey_set_permissions, LK_MPERM_KEYS_WRITE},
    {"POST", "/v2/apis.listKeys", NULL, lk_h_unkey_list_keys, LK_MPERM_KEYS_READ},
};

/* Matches path[0..len) against pattern, capturing `{}` segments; a pattern
 * ending in a `**` segment takes any rest after its slash. */
static bool match(const char *pattern, const char *path, size_t len, h2o_iovec_t *params)
{
    size_t np = 0, i = 0;
    const char *p = pattern;

    while (*p != '\0') {
        if (p[0] == '*' && p[1] == '*' && p[2] == '\0')
            return true;
        if (p[0] == '{' && p[1] == '}') {
            size_t start = i;
            while (i < len && path[i] != '/')
                i++;
            if (i == start || np == LK_ROUTE_MAX_PARAMS)
                return false;
            params[np++] = h2o_iovec_init(path + start, i - start);
            p += 2;
        } else {
            if (i == len || path[i] != *p)
                return false;
            i++;
            p++;
        }
    }
    return i == len;
}

static bool headers_too_large(h2o_req_t *req)
{
    size_t total = 0;

    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->value.len > LK_MAX_HEADER_VALUE)
            return true;
        total += h->name->len + h->value.len + 4;
    }
    return total > LK_MAX_HEADERS_TOTAL;
}

/* Which check endpoint a handler is, for its metrics (enum lk_stats_hist), or -1. */
static int endpoint_of(lk_handler_fn run)
{
    if (run == lk_h_verify)
        return LK_HIST_VERIFY;
    if (run == lk_h_auth_context)
        return LK_HIST_AUTH_CONTEXT;
    if (run == lk_h_forward_auth)
        return LK_HIST_FORWARD_AUTH;
    if (run == lk_h_unkey_verify)
        return LK_HIST_UNKEY_VERIFY;
    return -1;
}

int lk_routes_dispatch(struct lk_reqctx *rc)
{
    h2o_req_t *req = rc->req;
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    bool path_known = false;
    struct lk_errinfo ei;
    enum lk_err e;

    lk_errinfo_clear(&ei);
    if ((e = lk_reqhead_check(req, &ei)) != LK_OK) {
        /* Close after answering: what follows the head may be a smuggled request. */
        req->http1_is_persistent = 0;
        return lk_respond_error(rc, e, &ei);
    }
    if (headers_too_large(req))
        return lk_respond_error(rc, LK_ERR_HEADERS_TOO_LARGE, NULL);
    for (size_t i = 0; i < LK_ARRAY_LEN(routes); i++) {
        h2o_iovec_t params[LK_ROUTE_MAX_PARAMS] = {{NULL, 0}};
        if (!match(routes[i].pattern, req->path.base, len, params))
            continue;
        path_known = true;
        if (routes[i].method[0] != '*' &&
            !h2o_memis(req->method.base, req->method.len, routes[i].method,
                       strlen(routes[i].method)))
            continue;
        memcpy(rc->params, params, sizeof(params));
        lk_accesslog_route(req, routes[i].pattern, endpoint_of(routes[i].run));
        if (routes[i].mgmt != NULL)
            return lk_mgmt_submit_as(rc->mgmt, rc, routes[i].mgmt, routes[i].need);
        return routes[i].run(rc);
    }
    /* The dashboard's own paths: any other GET outside the API is its page. */
    if (!path_known && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        lk_web_fallback_path(req->path.base, len)) {
        lk_accesslog_route(req, "/", -1);
        return lk_h_web_index(rc);
    }
    return lk_respond_error(rc, path_known ? LK_ERR_METHOD_NOT_ALLOWED : LK_ERR_NOT_FOUND, NULL);
}
