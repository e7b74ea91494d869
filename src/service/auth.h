/*
 * auth.h — who is calling a management endpoint, and may they (DESIGN §5). A
 * credential is a key of kind `root` or `application`, or a user's session
 * (`lks_...`); either acts inside one workspace only: a key in its own, a
 * session in a workspace the user is a member of.
 *
 * Every management call needs one management permission (the route table of
 * src/http/routes.c names it). What a credential holds is decided here and only
 * here: a key holds those of the table below that its own `permissions` cover
 * and that its kind may hold at all; a session holds its role's fixed set.
 * lk_auth_actor checks the need while it resolves the credential, so an actor
 * that exists has passed the check: no handler can skip it.
 */
#ifndef LK_AUTH_H
#define LK_AUTH_H

#include "core/err.h"
#include "service/app.h"
#include "store/store.h"

/* The management permissions, one bit each. Append only. */
#define LK_MPERMS(X)                                                                               \
    X(KEYS_READ, "keys:read")                                                                      \
    X(KEYS_WRITE, "keys:write")                                                                    \
    X(MEMBERS_READ, "members:read")                                                                \
    X(MEMBERS_WRITE, "members:write")                                                              \
    X(CREDITS_READ, "credits:read")                                                                \
    X(CREDITS_WRITE, "credits:write")                                                              \
    X(AUDIT_READ, "audit:read")                                                                    \
    X(WORKSPACES_READ, "workspaces:read")                                                          \
    X(WORKSPACES_WRITE, "workspaces:write")                                                        \
    X(WEBHOOKS_READ, "webhooks:read")                                                              \
    X(WEBHOOKS_WRITE, "webhooks:write")

enum lk_mperm_bit {
#define LK_MPERM_BIT_(name, str) LK_MPERM_BIT_##name,
    LK_MPERMS(LK_MPERM_BIT_)
#undef LK_MPERM_BIT_
        LK_MPERM__COUNT
};

/* A set of management permissions. LK_MPERM_NONE as a need means the route
 * acts on no workspace (sign-in, one's own session): no actor is given out. */
enum lk_mperm {
    LK_MPERM_NONE = 0,
#define LK_MPERM_(name, str) LK_MPERM_##name = 1u << LK_MPERM_BIT_##name,
    LK_MPERMS(LK_MPERM_)
#undef LK_MPERM_
};

struct lk_actor {
    char workspace_id[LK_ID_MAX];
    char id[LK_ID_MAX];    /* the key id or user id, recorded in audit events */
    enum lk_key_kind kind; /* for keys */
    bool is_user;          /* a session rather than a key */
    enum lk_role role;     /* for sessions */
    unsigned perms;        /* the lk_mperm bits this credential holds */
    bool is_operator;      /* a root key of the operator workspace */
    char address[64];
    char request_id[32];
};

/* "keys:read" for LK_MPERM_KEYS_READ, and so on; NULL for anything else. */
const char *lk_mperm_name(unsigned perm);

/* The fixed set of management permissions a role grants. */
unsigned lk_auth_role_perms(enum lk_role role);

/* True when who holds every management permission its kind of credential can
 * hold: a root key not narrowed by its `permissions`, or an owner. Only such a
 * credential may create or change root and application keys, whose secrets
 * would otherwise hand it more than it has. */
bool lk_auth_unrestricted(const struct lk_actor *who);

/* What the credential `id` (a user id or a key id) holds in workspace ws_id
 * at `now`, without its secret: a member's role, or a root or application key
 * that is still enabled, unexpired and not revoked; 0 for anything else. An
 * invitation is judged by it when accepted, so rights taken from its inviter
 * are taken from the invitation too. */
unsigned lk_auth_holds(struct lk_app *app, const char *ws_id, const char *id, int64_t now);

#define LK_SESSION_PREFIX "lks_"

/* True when secret[0..len) is a session token rather than an API key. */
bool lk_auth_is_session(const char *secret, size_t len);

/* Resolves the credential secret[0..len) at `now` and checks that it holds
 * `need` (one lk_mperm). `workspace` (may be NULL) names the workspace a
 * session acts in; with none, a user with one membership acts in it.
 * `address` (may be NULL) is the client: unknown keys count toward its
 * per-address limit, and a blocked address gets too_many_requests. Returns
 * LK_OK and fills out, or the verification outcome (missing_key, invalid_key,
 * expired_key …), LK_ERR_INSUFFICIENT_PERMISSIONS (ei names the permission)
 * for a valid credential that lacks `need` or is no management key (and always
 * for need LK_MPERM_NONE), LK_ERR_NOT_FOUND for a workspace the user is not
 * in, LK_ERR_INVALID_REQUEST (with ei) when a user in several workspaces names
 * none. */
enum lk_err lk_auth_actor(struct lk_app *app, const char *secret, size_t len, int64_t now,
                          const char *workspace, const char *address, unsigned need,
                          struct lk_actor *out /* OUT */, struct lk_errinfo *ei);

#endif
