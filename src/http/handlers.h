/*
 * handlers.h — one function per route of src/http/routes.c, grouped by API area
 * in h_<area>.c. The verification routes run on the event loop and answer
 * through respond.h; the rest touch the database and run on management workers,
 * answering through mgmt.h.
 */
#ifndef LK_HANDLERS_H
#define LK_HANDLERS_H

#include "http/mgmt.h"
#include "http/respond.h"

/* On the event loop; each returns 0 after answering. */
int lk_h_auth_context(struct lk_reqctx *rc);
int lk_h_verify(struct lk_reqctx *rc);
int lk_h_forward_auth(struct lk_reqctx *rc);
int lk_h_openapi(struct lk_reqctx *rc); /* GET /openapi.json */
int lk_h_unkey_verify(struct lk_reqctx *rc); /* POST /v2/keys.verifyKey (h_unkey_verify.c) */
/* The dashboard (h_web.c): GET /, /index.html, /app.js, /app.css. */
int lk_h_web_index(struct lk_reqctx *rc);
int lk_h_web_js(struct lk_reqctx *rc);
int lk_h_web_css(struct lk_reqctx *rc);
/* Whether a GET of path[0..len) that no route matched is a dashboard page (its
 * client-side routes): anything but the API's own prefixes (/v<digit>,
 * /api, /healthz, /readyz, /metrics, /openapi.json), and only a plain path: no
 * segment that starts with a dot, no %-escape, only printable ASCII. */
bool lk_web_fallback_path(const char *path, size_t len);

/* On a management worker. */
void lk_h_verify_leased(struct lk_mreq *m); /* POST /v1/verify when a lease must be taken */
void lk_h_forward_auth_leased(struct lk_mreq *m); /* the same for forward-auth */
void lk_h_healthz(struct lk_mreq *m);
/* GET /readyz (h_ops.c): 200 when store, counters, cache and recorder are ready. */
void lk_h_readyz(struct lk_mreq *m);
/* GET /metrics (metrics.c), on the event loop. */
int lk_h_metrics(struct lk_reqctx *rc);
void lk_h_keys_create(struct lk_mreq *m);
void lk_h_keys_list(struct lk_mreq *m);
void lk_h_keys_get(struct lk_mreq *m);
void lk_h_keys_update(struct lk_mreq *m);
void lk_h_keys_delete(struct lk_mreq *m);
void lk_h_keys_regenerate(struct lk_mreq *m);
void lk_h_workspaces_create(struct lk_mreq *m);
void lk_h_workspaces_list(struct lk_mreq *m);
void lk_h_keys_generate_temp(struct lk_mreq *m);
void lk_h_auth_login(struct lk_mreq *m);
void lk_h_auth_logout(struct lk_mreq *m);
void lk_h_me(struct lk_mreq *m);
void lk_h_members_list(struct lk_mreq *m);
void lk_h_members_add(struct lk_mreq *m);
void lk_h_members_remove(struct lk_mreq *m);
void lk_h_members_update(struct lk_mreq *m);
void lk_h_invitations_list(struct lk_mreq *m);
void lk_h_invitations_revoke(struct lk_mreq *m);
void lk_h_invitations_accept(struct lk_mreq *m);
void lk_h_audit_list(struct lk_mreq *m);
void lk_h_usage(struct lk_mreq *m);       /* GET /v1/usage */
void lk_h_permissions(struct lk_mreq *m); /* GET /v1/permissions */
void lk_h_workspaces_update(struct lk_mreq *m);
void lk_h_quota(struct lk_mreq *m);
void lk_h_credits_get(struct lk_mreq *m);
void lk_h_credits_top_up(struct lk_mreq *m);
void lk_h_keys_usage(struct lk_mreq *m);
void lk_h_keys_openapi(struct lk_mreq *m);
/* POST /v1/leaks/github and /v1/leaks/report (h_leaks.c): signed, no credential. */
void lk_h_leaks_github(struct lk_mreq *m);
void lk_h_leaks_report(struct lk_mreq *m);
/* h_webhooks.c */
void lk_h_webhooks_list(struct lk_mreq *m);
void lk_h_webhooks_create(struct lk_mreq *m);
void lk_h_webhooks_delete(struct lk_mreq *m);
void lk_h_webhooks_deliveries(struct lk_mreq *m);
void lk_h_webhooks_settings_get(struct lk_mreq *m);
void lk_h_webhooks_settings_put(struct lk_mreq *m);
/* The Unkey-compatible surface (h_unkey_verify.c, h_unkey_keys.c). */
void lk_h_unkey_verify_leased(struct lk_mreq *m);
void lk_h_unkey_create_key(struct lk_mreq *m);
void lk_h_unkey_get_key(struct lk_mreq *m);
void lk_h_unkey_update_key(struct lk_mreq *m);
void lk_h_unkey_delete_key(struct lk_mreq *m);
void lk_h_unkey_reroll_key(struct lk_mreq *m);
void lk_h_unkey_add_permissions(struct lk_mreq *m);
void lk_h_unkey_remove_permissions(struct lk_mreq *m);
void lk_h_unkey_set_permissions(struct lk_mreq *m);
void lk_h_unkey_list_keys(struct lk_mreq *m);

#endif
