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

/* Members of the actor's workspace, oldest first. */
enum lk_err lk_members_list(struct lk_app *app, const struct lk_actor *who, lk_member_row_cb cb,
                            void *arg);

/* Adds email to the actor's workspace with role, creating the user (with
 * password, which must then be given) if the email is new; or changes the role
 * of a member. Owners and root keys only. */
enum lk_err lk_members_put(struct lk_app *app, const struct lk_actor *who, const char *email,
                           enum lk_role role, const char *password, int64_t now,
                           struct lk_member_row *out /* OUT */, struct lk_errinfo *ei);

/* Removes a member; the last owner stays (LK_ERR_CONFLICT). */
enum lk_err lk_members_remove(struct lk_app *app, const struct lk_actor *who, const char *user_id,
                              int64_t now, struct lk_errinfo *ei);

const char *lk_role_name(enum lk_role role);
/* Returns 0 and sets *out for "owner", "editor", "viewer"; else -1. */
int lk_role_parse(const char *s, enum lk_role *out /* OUT */);

#endif
