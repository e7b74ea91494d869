/*
 * auth.h — who is calling a management endpoint. A credential is a key of kind
 * `root` or `application` (DESIGN §5); it acts inside its own workspace only.
 */
#ifndef LK_AUTH_H
#define LK_AUTH_H

#include "core/err.h"
#include "service/app.h"

struct lk_actor {
    char workspace_id[LK_ID_MAX];
    char id[LK_ID_MAX]; /* the credential's key id, recorded in audit events */
    enum lk_key_kind kind;
    bool can_read;    /* covers keys:read */
    bool can_write;   /* covers keys:write */
    bool is_operator; /* a root key of the operator workspace */
    char address[64];
    char request_id[32];
};

/* Resolves the credential secret[0..len) at `now`. Returns LK_OK and fills out,
 * or the verification outcome (missing_key, invalid_key …), or
 * LK_ERR_INSUFFICIENT_PERMISSIONS when the key is valid but no management key. */
enum lk_err lk_auth_actor(struct lk_app *app, const char *secret, size_t len, int64_t now,
                          struct lk_actor *out /* OUT */);

#endif
