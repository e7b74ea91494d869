#include "service/auth.h"
#include "service/throttle.h"

#include "base/common.h"
#include "service/app_int.h"
#include "service/users.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const char *const mperm_names[] = {
#define LK_MPERM_NAME_(name, str) [LK_MPERM_BIT_##name] = str,
    LK_MPERMS(LK_MPERM_NAME_)
#undef LK_MPERM_NAME_
};

#define MP_ALL ((1u << LK_MPERM__COUNT) - 1)
#define MP_WORKSPACES (LK_MPERM_WORKSPACES_READ | LK_MPERM_WORKSPACES_WRITE)
#define MP_READ                                                                                   \
    (LK_MPERM_KEYS_READ | LK_MPERM_MEMBERS_READ | LK_MPERM_CREDITS_READ | LK_MPERM_AUDIT_READ |   \
     LK_MPERM_WEBHOOKS_READ)

/* The most each kind of credential may hold (docs/http-api.md, "Permissions").
 * Only root keys of the operator workspace manage workspaces; an application
 * key, even with `*`, manages keys but not people or money; roles are fixed. */
static const unsigned ceiling_root_operator = MP_ALL;
static const unsigned ceiling_root = MP_ALL & ~MP_WORKSPACES;
static const unsigned ceiling_application = MP_READ | LK_MPERM_KEYS_WRITE;
static const unsigned role_perms[] = {
    [LK_ROLE_VIEWER] = MP_READ,
    [LK_ROLE_EDITOR] = MP_READ | LK_MPERM_KEYS_WRITE,
    [LK_ROLE_OWNER] = MP_ALL & ~MP_WORKSPACES,
};

const char *lk_mperm_name(unsigned perm)
{
    for (unsigned i = 0; i < LK_MPERM__COUNT; i++)
        if (perm == 1u << i)
            return mperm_names[i];
    return NULL;
}

unsigned lk_auth_role_perms(enum lk_role role)
{
    return (unsigned)role < LK_ARRAY_LEN(role_perms) ? role_perms[role] : 0;
}

static unsigned ceiling_of(const struct lk_actor *who)
{
    if (who->is_user)
        return lk_auth_role_perms(who->role);
    if (who->kind == LK_KIND_APPLICATION)
        return ceiling_application;
    return who->is_operator ? ceiling_root_operator : ceiling_root;
}

bool lk_auth_unrestricted(const struct lk_actor *who)
{
    unsigned c = ceiling_of(who);
    return (who->is_user ? who->role == LK_ROLE_OWNER : who->kind == LK_KIND_ROOT) &&
           (who->perms & c) == c;
}

/* What key k, of the kind who describes, holds: its own permissions bound
 * what its kind allows. Caller holds the keycache read lock. */
static unsigned key_perms(const struct lk_actor *who, const struct lk_ckey *k)
{
    unsigned ceiling = ceiling_of(who), perms = 0;

    for (unsigned i = 0; i < LK_MPERM__COUNT; i++)
        if ((ceiling & (1u << i)) &&
            lk_verify_key_covers(k, mperm_names[i], strlen(mperm_names[i])))
            perms |= 1u << i;
    return perms;
}

/* The one check: does who hold need? Fills ei with the missing permission. */
static enum lk_err check_need(const struct lk_actor *who, unsigned need, struct lk_errinfo *ei)
{
    const char *name = lk_mperm_name(need);

    if (name == NULL) /* LK_MPERM_NONE, or a route table bug: act on nothing */
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                              "this call acts on no workspace and takes no management key");
    if ((who->perms & need) == 0)
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                              "this call needs the permission '%s'", name);
    return LK_OK;
}

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
    out->perms = lk_auth_role_perms(m.role);
    return LK_OK;
}

enum lk_err lk_auth_actor(struct lk_app *app, const char *secret, size_t len, int64_t now,
                          const char *workspace, const char *address, unsigned need,
                          struct lk_actor *out, struct lk_errinfo *ei)
{
    struct lk_verify_req req = {.secret = secret, .len = len, .want_env = LK_VERIFY_ANY_ENV,
                                .now = now, .address = address};
    struct lk_limits_info info;
    const struct lk_ckey *k;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    if (lk_auth_is_session(secret, len)) {
        /* A blocked address manages nothing with a session either (lk_verify
         * checks it for keys). */
        if (address != NULL && lk_throttle_blocked(app->failed_keys, address, now, NULL))
            return LK_ERR_TOO_MANY_REQUESTS;
        if ((e = session_actor(app, secret, len, now, workspace, out, ei)) != LK_OK)
            return e;
        return check_need(out, need, ei);
    }
    lk_keycache_read_lock();
    if ((e = lk_verify(app, &req, &k, &info)) != LK_OK)
        goto out;
    if (k->kind != LK_KIND_ROOT && k->kind != LK_KIND_APPLICATION) {
        e = LK_ERR_INSUFFICIENT_PERMISSIONS;
        goto out;
    }
    memcpy(out->workspace_id, lk_wstate_id(k->ws), LK_ID_MAX);
    memcpy(out->id, k->id, LK_ID_MAX);
    out->kind = k->kind;
    /* A key acts in its own workspace only; naming another finds nothing. */
    if (workspace != NULL && workspace[0] != '\0' && strcmp(workspace, lk_wstate_id(k->ws)) != 0) {
        e = LK_ERR_NOT_FOUND;
        goto out;
    }
    out->is_operator = k->kind == LK_KIND_ROOT && app->operator_ws[0] != '\0' &&
                       strcmp(app->operator_ws, lk_wstate_id(k->ws)) == 0;
    out->perms = key_perms(out, k);
    e = check_need(out, need, ei);
out:
    lk_keycache_read_unlock();
    return e;
}

unsigned lk_auth_holds(struct lk_app *app, const char *ws_id, const char *id, int64_t now)
{
    struct lk_actor who = {0};
    struct lk_member_row m;
    struct lk_key_row row = {0};
    const struct lk_ckey *k;
    unsigned perms = 0;

    if (strncmp(id, "usr_", 4) == 0)
        return lk_store_member_get(app->store, ws_id, id, &m) == LK_OK ? lk_auth_role_perms(m.role)
                                                                       : 0;
    if (lk_store_key_get(app->store, ws_id, id, &row) != LK_OK)
        return 0;
    lk_keycache_read_lock();
    k = lk_keycache_find(app->cache, row.digest);
    if (k != NULL && k->revoked_at == 0 && k->enabled &&
        (k->expires_at == 0 || now < k->expires_at) &&
        (k->kind == LK_KIND_ROOT || k->kind == LK_KIND_APPLICATION)) {
        who.kind = k->kind;
        who.is_operator = k->kind == LK_KIND_ROOT && app->operator_ws[0] != '\0' &&
                          strcmp(app->operator_ws, lk_wstate_id(k->ws)) == 0;
        perms = key_perms(&who, k);
    }
    lk_keycache_read_unlock();
    lk_key_row_release(&row);
    return perms;
}
