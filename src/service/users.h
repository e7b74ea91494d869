/*
 * users.h — people (DESIGN §1, Flowy): users with argon2id passwords, their
 * memberships and roles in workspaces, and sessions. A session token
 * (`lks_` + 43 base62 chars) is shown once at login and stored only as its
 * SHA-256. Failed logins are counted per email and per address (throttle.h).
 */
#ifndef LK_USERS_H
#define LK_USERS_H

#include "service/auth.h"

#define LK_SESSION_TTL (12 * 3600)
#define LK_SESSION_TOKEN_MAX 64
#define LK_PASSWORD_MIN 8
#define LK_PASSWORD_MAX 200
#define LK_LOGIN_EMAIL_LIMIT 5  /* failures per email per window */
#define LK_LOGIN_ADDR_LIMIT 20  /* failures per address per window */
#define LK_LOGIN_WINDOW (15 * 60)

struct lk_login {
    char token[LK_SESSION_TOKEN_MAX]; /* caller wipes it after answering */
    struct lk_user_row user;          /* password_hash is cleared */
    int64_t expires_at;
};

/* Signs in. LK_ERR_INVALID_CREDENTIALS for a wrong email or password (the same
 * answer and about the same time either way); LK_ERR_TOO_MANY_REQUESTS with
 * *retry_after once the email or the address has used up its failures. */
enum lk_err lk_users_login(struct lk_app *app, const char *email, const char *password,
                           const char *address, const char *request_id, int64_t now,
                           struct lk_login *out /* OUT */, int64_t *retry_after /* OUT */);

/* Ends the session of token[0..len) at once. */
enum lk_err lk_users_logout(struct lk_app *app, const struct lk_actor *who, const char *token,
                            size_t len, int64_t now);

/* The live session of token[0..len) at `now`: LK_ERR_INVALID_KEY when unknown,
 * LK_ERR_EXPIRED_KEY when over. */
enum lk_err lk_users_session(struct lk_app *app, const char *token, size_t len, int64_t now,
                             struct lk_session_row *out /* OUT */);

/* True when email is plausible: 3-254 bytes, one '@' with text on both sides, no
 * spaces or control characters. */
bool lk_users_email_valid(const char *email);

/* The user user_id, its password hash cleared; LK_ERR_NOT_FOUND when none. */
enum lk_err lk_users_get(struct lk_app *app, const char *user_id,
                         struct lk_user_row *out /* OUT */);

/* The memberships of user user_id, in every workspace; each row (borrowed) goes
 * to cb. */
enum lk_err lk_users_memberships(struct lk_app *app, const char *user_id, lk_member_row_cb cb,
                                 void *arg);

/* Members of the actor's workspace, oldest first. */
enum lk_err lk_members_list(struct lk_app *app, const struct lk_actor *who, lk_member_row_cb cb,
                            void *arg);

/* Changes the role of a member of the actor's workspace (LK_ERR_NOT_FOUND if
 * user_id is none). The actor must hold every permission of the old and the new
 * role; the last owner stays one (LK_ERR_CONFLICT), checked in the transaction
 * that makes the change, so it holds across processes and nodes. *out gets the
 * member. */
enum lk_err lk_members_set_role(struct lk_app *app, const struct lk_actor *who,
                                const char *user_id, enum lk_role role, int64_t now,
                                struct lk_member_row *out /* OUT */, struct lk_errinfo *ei);

/* Removes a member; the actor must hold every permission of its role; the last
 * owner stays (LK_ERR_CONFLICT, as for lk_members_set_role). */
enum lk_err lk_members_remove(struct lk_app *app, const struct lk_actor *who, const char *user_id,
                              int64_t now, struct lk_errinfo *ei);

/* Invitations. A user joins a workspace only by accepting one: the token
 * (`lki_` + 43 base62 chars) is shown once, to the inviter, and stored only as
 * its SHA-256; it works once, for LK_INVITE_TTL seconds. */
#define LK_INVITE_PREFIX "lki_"
#define LK_INVITE_TOKEN_MAX LK_SESSION_TOKEN_MAX
#define LK_INVITE_TTL (7 * 86400)
#define LK_INVITES_PENDING_MAX 1000 /* per workspace */

/* Invites email into the actor's workspace with role (the actor must hold every
 * permission of the role). Answers the same whether or not the email has a
 * user: nothing is looked up. *out gets the invitation (digest cleared), token
 * the secret to hand to the person (caller wipes it). LK_ERR_CONFLICT when
 * LK_INVITES_PENDING_MAX are pending. */
enum lk_err lk_members_invite(struct lk_app *app, const struct lk_actor *who, const char *email,
                              enum lk_role role, int64_t now,
                              struct lk_invitation_row *out /* OUT */,
                              char token[LK_INVITE_TOKEN_MAX] /* OUT */, struct lk_errinfo *ei);

/* Pending invitations of the actor's workspace, newest first (digests are of
 * no use to the callback: never render them). */
enum lk_err lk_invitations_list(struct lk_app *app, const struct lk_actor *who, int64_t now,
                                lk_invitation_cb cb, void *arg);

/* Withdraws a pending invitation; LK_ERR_NOT_FOUND when there is none. */
enum lk_err lk_invitations_revoke(struct lk_app *app, const struct lk_actor *who, const char *id,
                                  int64_t now);

/* Accepts the invitation of token: an email without a user becomes one with
 * `password`; an email with one must give that user's current password (which
 * is not changed; LK_ERR_INVALID_CREDENTIALS otherwise, counted like a failed
 * sign-in). Then the user is a member with the invited role (a member's role
 * becomes it) and the invitation is used up. LK_ERR_INVALID_INVITATION for an
 * unknown, used or expired token alike (counted as a failed key of `address`);
 * LK_ERR_TOO_MANY_REQUESTS with *retry_after when the address is blocked for
 * failed keys or the email for failed sign-ins. *out gets the membership. */
enum lk_err lk_invitations_accept(struct lk_app *app, const char *token, const char *password,
                                  const char *address, const char *request_id, int64_t now,
                                  struct lk_member_row *out /* OUT */,
                                  int64_t *retry_after /* OUT */, struct lk_errinfo *ei);

const char *lk_role_name(enum lk_role role);
/* Returns 0 and sets *out for "owner", "editor", "viewer"; else -1. */
int lk_role_parse(const char *s, enum lk_role *out /* OUT */);

#endif
