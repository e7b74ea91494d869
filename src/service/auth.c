#include "service/auth.h"
#include "service/throttle.h"

#include "base/common.h"
#include "service/users.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

bool lk_auth_is_session(const char *secret, size_t len)
{
    return secret != NULL && len >= 4 && memcmp(secret, LK_SESSION_PREFIX, 4) == 0;
}

struct only_one {
    struct lk_member_row first;
    int n;
};

static int count_memberships(void *arg, const struct lk_member_row *m)
{
    struct only_one *o = arg;
    if (o->n++ == 0)
        o->first = *m;
    return 0;
}

/* A session: the user, then the membership it acts through. */
static enum lk_err session_actor(struct lk_app *app, const char *token, size_t len, int64_t now,
                                 const char *workspace, struct lk_actor *out,
                                 struct lk_errinfo *ei)
{
    struct lk_session_row s;
    struct lk_member_row m;
    struct only_one o = {.n = 0};
    enum lk_err e;

    if ((e = lk_users_session(app, token, len, now, &s)) != LK_OK)
        return e;
    if (workspace != NULL && workspace[0] != '\0') {
        if ((e = lk_store_member_get(app->store, workspace, s.user_id, &m)) != LK_OK)
            return e; /* not a member: the workspace does not exist for them */
    } else {
        if ((e = lk_store_member_list_user(app->store, s.user_id, count_memberships, &o)) != LK_OK)
            return e;
        if (o.n == 0)
            return LK_ERR_INSUFFICIENT_PERMISSIONS;
        if (o.n > 1)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "workspace_id",
                                  "you are a member of %d workspaces: name one with the "
                                  "X-Latchkey-Workspace header or ?workspace_id=",
                                  o.n);
        m = o.first;
    }
    memcpy(out->workspace_id, m.workspace_id, LK_ID_MAX);
    memcpy(out->id, s.user_id, LK_ID_MAX);
    out->is_user = true;
    out->role = m.role;
    out->can_read = true;
    out->can_write = m.role >= LK_ROLE_EDITOR;
    out->can_manage_members = m.role == LK_ROLE_OWNER;
    return LK_OK;
}

enum lk_err lk_auth_actor(struct lk_app *app, const char *secret, size_t len, int64_t now,
                          const char *workspace, const char *address, struct lk_actor *out,
                          struct lk_errinfo *ei)
{
    struct lk_verify_req req = {.secret = secret, .len = len, .want_env = LK_VERIFY_ANY_ENV,
                                .now = now, .address = address};
    struct lk_limits_info info;
    const struct lk_ckey *k;
    enum lk_err e;

    if (lk_auth_is_session(secret, len)) {
        /* A blocked address manages nothing with a session either (lk_verify
         * checks it for keys). */
        if (address != NULL && lk_throttle_blocked(app->failed_keys, address, now, NULL))
            return LK_ERR_TOO_MANY_REQUESTS;
        return session_actor(app, secret, len, now, workspace, out, ei);
    }
    lk_keycache_read_lock();
    if ((e = lk_verify(app, &req, &k, &info)) != LK_OK)
        goto out;
    if (k->kind != LK_KIND_ROOT && k->kind != LK_KIND_APPLICATION) {
        e = LK_ERR_INSUFFICIENT_PERMISSIONS;
        goto out;
    }
    memcpy(out->workspace_id, k->ws->id, LK_ID_MAX);
    memcpy(out->id, k->id, LK_ID_MAX);
    out->kind = k->kind;
    out->can_read = lk_verify_key_covers(k, "keys:read", 9);
    out->can_write = lk_verify_key_covers(k, "keys:write", 10);
    out->can_manage_members = k->kind == LK_KIND_ROOT;
    /* A key acts in its own workspace only; naming another finds nothing. */
    if (workspace != NULL && workspace[0] != '\0' && strcmp(workspace, k->ws->id) != 0) {
        e = LK_ERR_NOT_FOUND;
        goto out;
    }
    out->is_operator = k->kind == LK_KIND_ROOT && app->operator_ws[0] != '\0' &&
                       strcmp(app->operator_ws, k->ws->id) == 0;
    if (!out->can_read)
        e = LK_ERR_INSUFFICIENT_PERMISSIONS;
out:
    lk_keycache_read_unlock();
    return e;
}
