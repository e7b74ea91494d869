/*
 * auth.h — who is calling a management endpoint (DESIGN §5). A credential is a
 * key of kind `root` or `application`, or a user's session (`lks_...`); either
 * acts inside one workspace only: a key in its own, a session in a workspace the
 * user is a member of, with the powers of their role.
 */
#ifndef LK_AUTH_H
#define LK_AUTH_H

#include "core/err.h"
#include "service/app.h"
#include "store/store.h"

struct lk_actor {
    char workspace_id[LK_ID_MAX];
    char id[LK_ID_MAX]; /* the key id or user id, recorded in audit events */
    enum lk_key_kind kind;  /* for keys */
    bool is_user;           /* a session rather than a key */
    enum lk_role role;      /* for sessions */
    bool can_read;           /* keys:read, members, audit */
    bool can_write;          /* keys:write */
    bool can_manage_members; /* root keys and owners */
    bool is_operator;        /* a root key of the operator workspace */
    char address[64];
    char request_id[32];
};

#define LK_SESSION_PREFIX "lks_"

/* True when secret[0..len) is a session token rather than an API key. */
bool lk_auth_is_session(const char *secret, size_t len);

/* Resolves the credential secret[0..len) at `now`. `workspace` (may be NULL)
 * names the workspace a session acts in; with none, a user with one membership
 * acts in it. `address` (may be NULL) is the client: unknown keys count toward
 * its per-address limit, and a blocked address gets too_many_requests. With none,
 * a user with one membership
 * acts in it. Returns LK_OK and fills out, or the verification outcome
 * (missing_key, invalid_key, expired_key …), LK_ERR_INSUFFICIENT_PERMISSIONS
 * for a valid key that is no management key, LK_ERR_NOT_FOUND for a workspace
 * the user is not in, LK_ERR_INVALID_REQUEST (with ei) when a user in several
 * workspaces names none. */
enum lk_err lk_auth_actor(struct lk_app *app, const char *secret, size_t len, int64_t now,
                          const char *workspace, const char *address,
                          struct lk_actor *out /* OUT */, struct lk_errinfo *ei);

#endif
