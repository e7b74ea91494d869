/*
 * handlers.h — one function per route of src/http/routes.c, grouped by API area
 * in h_<area>.c, and what they share. Each returns 0 after answering.
 */
#ifndef LK_HANDLERS_H
#define LK_HANDLERS_H

#include "http/respond.h"
#include "service/auth.h"

/* Resolves the request's management credential into *who, or answers the error
 * and returns the error code. */
enum lk_err lk_http_actor(struct lk_reqctx *rc, struct lk_actor *who /* OUT */);

/* The request body (h2o has already refused bodies over the limit). */
h2o_iovec_t lk_http_body(struct lk_reqctx *rc);

int lk_h_healthz(struct lk_reqctx *rc);
int lk_h_auth_context(struct lk_reqctx *rc);
int lk_h_verify(struct lk_reqctx *rc);

int lk_h_keys_create(struct lk_reqctx *rc);
int lk_h_keys_list(struct lk_reqctx *rc);
int lk_h_keys_get(struct lk_reqctx *rc);
int lk_h_keys_update(struct lk_reqctx *rc);
int lk_h_keys_delete(struct lk_reqctx *rc);
int lk_h_keys_regenerate(struct lk_reqctx *rc);

int lk_h_workspaces_create(struct lk_reqctx *rc);
int lk_h_workspaces_list(struct lk_reqctx *rc);

#endif
