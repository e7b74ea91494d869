/*
 * h_people.c — sign-in and sessions (/v1/auth/login, /v1/auth/logout, /v1/me),
 * members of a workspace and their invitations (/v1/members, /v1/invitations)
 * and its audit log (/v1/audit). All run on
 * management workers: they read and write the database, and argon2id takes a
 * deliberate tenth of a second.
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "core/timefmt.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/render.h"
#include "service/apidocs.h"
#include "service/audit.h"
#include "service/users.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define AUDIT_DEFAULT_LIMIT 50
#define AUDIT_MAX_LIMIT 100

static json_t *member_json(const struct lk_member_row *m)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "user_id", m->user_id, "email", m->email, "role",
                     lk_role_name(m->role), "created_at", lk_render_time(m->created_at));
}

static int add_membership(void *arg, const struct lk_member_row *m)
{
    json_array_append_new(arg, json_pack("{s:s, s:s}", "workspace_id", m->workspace_id, "role",
                                         lk_role_name(m->role)));
    return 0;
}

static int add_member(void *arg, const struct lk_member_row *m)
{
    json_array_append_new(arg, member_json(m));
    return 0;
}

/* The caller's own session (logout, me): any workspace, or none. An API key
 * gets its own verdict (401 when it is not valid), and 403 when it is. */
static enum lk_err own_session(struct lk_mreq *m, struct lk_session_row *s)
{
    struct lk_actor who;
    enum lk_err e = m->key_err;

    if (e == LK_OK && !lk_auth_is_session(m->key, m->key_len)) {
        if (lk_mreq_actor(m, &who) != LK_OK)
            return LK_ERR_INVALID_KEY; /* answered */
        e = LK_ERR_INSUFFICIENT_PERMISSIONS; /* a valid key, but a key has no session */
    } else if (e == LK_OK) {
        e = lk_users_session(m->app, m->key, m->key_len, m->now, s);
    }
    if (e != LK_OK)
        lk_mreq_error(m, e, NULL);
    return e;
}

void lk_h_auth_login(struct lk_mreq *m)
{
    char email[LK_EMAIL_MAX + 1], password[LK_PASSWORD_MAX + 1], cookie[160];
    struct lk_login login;
    struct lk_errinfo ei;
    int64_t retry = 0;
    json_t *ms;
    enum lk_err e;

    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_login(m->body, m->body_len, email, sizeof(email), password,
                             sizeof(password), &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    e = lk_users_login(m->app, email, password, m->address, m->request_id, m->now, &login,
                       &retry);
    OPENSSL_cleanse(password, sizeof(password));
    if (e != LK_OK) {
        m->retry_after = e == LK_ERR_TOO_MANY_REQUESTS ? retry : 0;
        lk_mreq_error(m, e, NULL);
        return;
    }
    ms = json_array();
    lk_users_memberships(m->app, login.user.id, add_membership, ms);
    snprintf(cookie, sizeof(cookie),
             LK_SESSION_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d%s",
             login.token, LK_SESSION_TTL, m->secure ? "; Secure" : "");
    m->set_cookie = lk_strndup(cookie, strlen(cookie));
    OPENSSL_cleanse(cookie, sizeof(cookie));
    lk_mreq_json(m, 200,
                 json_pack("{s:s, s:o, s:{s:s, s:s}, s:o}", "token", login.token, "expires_at",
                           lk_render_time(login.expires_at), "user", "id", login.user.id,
                           "email", login.user.email, "memberships", ms));
    OPENSSL_cleanse(login.token, sizeof(login.token));
}

void lk_h_auth_logout(struct lk_mreq *m)
{
    struct lk_session_row s;
    struct lk_actor who = {0};
    static const char clear[] =
        LK_SESSION_COOKIE "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";
    enum lk_err e;

    if (own_session(m, &s) != LK_OK)
        return;
    memcpy(who.id, s.user_id, LK_ID_MAX);
    snprintf(who.address, sizeof(who.address), "%s", m->address);
    snprintf(who.request_id, sizeof(who.request_id), "%s", m->request_id);
    if ((e = lk_users_logout(m->app, &who, m->key, m->key_len, m->now)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    m->set_cookie = lk_strndup(clear, sizeof(clear) - 1);
    lk_mreq_no_content(m);
}

void lk_h_me(struct lk_mreq *m)
{
    struct lk_session_row s;
    struct lk_user_row u;
    json_t *ms;
    enum lk_err e;

    if (own_session(m, &s) != LK_OK)
        return;
    if ((e = lk_users_get(m->app, s.user_id, &u)) != LK_OK) {
        lk_mreq_error(m, e == LK_ERR_NOT_FOUND ? LK_ERR_INVALID_KEY : e, NULL);
        return;
    }
    ms = json_array();
    if ((e = lk_users_memberships(m->app, u.id, add_membership, ms)) != LK_OK) {
        json_decref(ms);
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_mreq_json(m, 200,
                 json_pack("{s:{s:s, s:s, s:o}, s:o, s:o, s:b}", "user", "id", u.id, "email",
                           u.email, "created_at", lk_render_time(u.created_at), "memberships", ms,
                           "expires_at", lk_render_time(s.expires_at), "routes",
                           lk_apidocs_routes_loaded(m->app)));
}

void lk_h_members_list(struct lk_mreq *m)
{
    struct lk_actor who;
    json_t *data;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    data = json_array();
    e = lk_members_list(m->app, &who, add_member, data);
    lk_mreq_list(m, e, data);
}

static json_t *invitation_json(const struct lk_invitation_row *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", r->id, "workspace_id",
                     r->workspace_id, "email", r->email, "role", lk_role_name(r->role),
                     "invited_by", r->invited_by, "created_at", lk_render_time(r->created_at),
                     "expires_at", lk_render_time(r->expires_at));
}

/* POST /v1/members: invites. The answer is the same whether the email has a
 * user or not; nobody joins until the person accepts. */
void lk_h_members_add(struct lk_mreq *m)
{
    char email[LK_EMAIL_MAX + 1], token[LK_INVITE_TOKEN_MAX];
    struct lk_actor who;
    struct lk_invitation_row row;
    struct lk_errinfo ei;
    enum lk_role role;
    json_t *o;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_invite(m->body, m->body_len, email, sizeof(email), &role, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    if ((e = lk_members_invite(m->app, &who, email, role, m->now, &row, token, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    o = invitation_json(&row);
    json_object_set_new(o, "token", json_string(token));
    OPENSSL_cleanse(token, sizeof(token));
    lk_mreq_json(m, 201, o); /* the mreq wipes the rendered token when it is sent */
}

void lk_h_members_update(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_member_row row;
    struct lk_errinfo ei;
    enum lk_role role;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if (m->param_too_long) {
        lk_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
        return;
    }
    if ((e = lk_jsonin_role(m->body, m->body_len, &role, &ei)) != LK_OK ||
        (e = lk_members_set_role(m->app, &who, m->params[0], role, m->now, &row, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    lk_mreq_json(m, 200, member_json(&row));
}

static int add_invitation(void *arg, const struct lk_invitation_row *r)
{
    json_array_append_new(arg, invitation_json(r));
    return 0;
}

void lk_h_invitations_list(struct lk_mreq *m)
{
    struct lk_actor who;
    json_t *data;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    data = json_array();
    e = lk_invitations_list(m->app, &who, m->now, add_invitation, data);
    lk_mreq_list(m, e, data);
}

void lk_h_invitations_revoke(struct lk_mreq *m)
{
    struct lk_actor who;
    enum lk_err e = LK_OK;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    if (m->param_too_long || (e = lk_invitations_revoke(m->app, &who, m->params[0], m->now)) !=
                                 LK_OK) {
        lk_mreq_error(m, m->param_too_long ? LK_ERR_NOT_FOUND : e, NULL);
        return;
    }
    lk_mreq_no_content(m);
}

/* POST /v1/invitations/accept: no credential but the token itself. */
void lk_h_invitations_accept(struct lk_mreq *m)
{
    char token[LK_INVITE_TOKEN_MAX + 1], password[LK_PASSWORD_MAX + 1];
    struct lk_member_row row;
    struct lk_errinfo ei;
    int64_t retry = 0;
    enum lk_err e;

    lk_errinfo_clear(&ei);
    e = lk_jsonin_accept(m->body, m->body_len, token, sizeof(token), password, sizeof(password),
                         &ei);
    if (e == LK_OK)
        e = lk_invitations_accept(m->app, token, password, m->address, m->request_id, m->now,
                                  &row, &retry, &ei);
    OPENSSL_cleanse(token, sizeof(token));
    OPENSSL_cleanse(password, sizeof(password));
    if (e != LK_OK) {
        m->retry_after = e == LK_ERR_TOO_MANY_REQUESTS ? retry : 0;
        lk_mreq_error(m, e, &ei);
        return;
    }
    lk_mreq_json(m, 200,
                 json_pack("{s:s, s:s, s:s, s:s, s:o}", "user_id", row.user_id, "email",
                           row.email, "workspace_id", row.workspace_id, "role",
                           lk_role_name(row.role), "created_at", lk_render_time(row.created_at)));
}

void lk_h_members_remove(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_errinfo ei;
    enum lk_err e = LK_OK;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if (m->param_too_long ||
        (e = lk_members_remove(m->app, &who, m->params[0], m->now, &ei)) != LK_OK) {
        lk_mreq_error(m, m->param_too_long ? LK_ERR_NOT_FOUND : e, &ei);
        return;
    }
    lk_mreq_no_content(m);
}

static int add_event(void *arg, const struct lk_audit_event *ev)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o}", "id", (json_int_t)ev->id, "actor",
                          ev->row.actor, "action", ev->row.action, "target", ev->row.target,
                          "address", ev->row.address, "request_id", ev->row.request_id,
                          "created_at", lk_render_time(ev->row.created_at));
    json_t *detail;

    /* Only latchkey writes a detail, always an object; anything else is left out. */
    if (ev->row.detail[0] != '\0' &&
        (detail = json_loads(ev->row.detail, JSON_REJECT_DUPLICATES, NULL)) != NULL) {
        if (json_is_object(detail))
            json_object_set(o, "detail", detail);
        json_decref(detail);
    }
    return lk_page_add(arg, o, ev->id);
}

static bool audit_bad(struct lk_mreq *m, const char *field, const char *what)
{
    struct lk_errinfo ei;
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, field, "%s", what);
    lk_mreq_error(m, LK_ERR_INVALID_REQUEST, &ei);
    return false;
}

/* `from` / `to`: RFC 3339 or Unix seconds (0 when absent). */
static bool audit_time(struct lk_mreq *m, const char *name, int64_t *out)
{
    char v[48];
    int found = lk_mreq_query(m, name, v, sizeof(v));

    *out = 0;
    if (found == 0 || (found > 0 && v[0] == '\0'))
        return true;
    if (found > 0 && (lk_parse_i64(v, strlen(v), 1, INT64_C(253402300799), out) == 0 ||
                      (lk_time_parse(v, strlen(v), out) == 0 && *out > 0)))
        return true;
    return audit_bad(m, name, "a time as RFC 3339 or Unix seconds (after 1970)");
}

/* The filters of GET /v1/audit: actor (a key or user id), action (exact, or a
 * prefix ending in "."), from and to. An empty value filters nothing. */
static bool audit_filter(struct lk_mreq *m, struct lk_audit_filter *f)
{
    size_t n;

    memset(f, 0, sizeof(*f));
    if (lk_mreq_query(m, "actor", f->actor, sizeof(f->actor)) < 0)
        return audit_bad(m, "actor", "'actor' is a key or user id");
    if (lk_mreq_query(m, "action", f->action, sizeof(f->action)) < 0)
        return audit_bad(m, "action", "'action' is at most 47 bytes");
    n = strlen(f->action);
    f->action_prefix = n > 0 && f->action[n - 1] == '.';
    if (!audit_time(m, "from", &f->from) || !audit_time(m, "to", &f->to))
        return false;
    if (f->from > 0 && f->to > 0 && f->to <= f->from)
        return audit_bad(m, "to", "'to' must be after 'from'");
    return true;
}

void lk_h_audit_list(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_audit_filter f;
    struct lk_page pg;
    int64_t before;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK || !audit_filter(m, &f) ||
        !lk_mreq_page(m, AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT, 'a', &pg, &before))
        return;
    if ((e = lk_audit_list(m->app, &who, &f, before, pg.want + 1, add_event, &pg)) != LK_OK) {
        json_decref(pg.data);
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_page_answer(m, &pg, NULL, NULL);
}
