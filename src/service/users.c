#include "service/users.h"

#include <pthread.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "base/common.h"
#include "service/app_int.h"
#include "base/log.h"
#include "base/rand.h"
#include "core/base62.h"
#include "service/audit.h"
#include "service/throttle.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

const char *lk_role_name(enum lk_role role)
{
    static const char *const names[] = {"viewer", "editor", "owner"};
    return (unsigned)role < LK_ARRAY_LEN(names) ? names[role] : "viewer";
}

int lk_role_parse(const char *s, enum lk_role *out)
{
    for (int r = LK_ROLE_VIEWER; r <= LK_ROLE_OWNER; r++)
        if (strcmp(s, lk_role_name((enum lk_role)r)) == 0) {
            *out = (enum lk_role)r;
            return 0;
        }
    return -1;
}

bool lk_users_email_valid(const char *email)
{
    size_t n = strlen(email), at = n;

    if (n < 3 || n > LK_EMAIL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= ' ' || c == 0x7f)
            return false;
        if (c == '@') {
            if (at != n)
                return false;
            at = i;
        }
    }
    return at > 0 && at < n - 1;
}

/* --- passwords and tokens --------------------------------------------------------- */

static char dummy[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void)
{
    char pw[32];

    lk_rand_bytes(pw, sizeof(pw));
    lk_assert(crypto_pwhash_str(dummy, pw, sizeof(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0);
    OPENSSL_cleanse(pw, sizeof(pw));
}

/* True when password matches hash. An unknown user (hash NULL) is checked against
 * a throwaway hash, so it costs as long as a wrong password: no timing tells
 * which emails exist. */
static bool password_ok(const char *hash, const char *password)
{
    if (hash == NULL) {
        pthread_once(&dummy_once, make_dummy);
        if (crypto_pwhash_str_verify(dummy, password, strlen(password)) == 0)
            lk_warn("a random password matched"); /* cannot happen; keeps the result used */
        return false;
    }
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

/* A token `prefix` (4 bytes: "lks_", "lki_") + 43 base62 characters of 32
 * random bytes, and its SHA-256, the only form stored. */
static void new_token(const char *prefix, char out[LK_SESSION_TOKEN_MAX],
                      uint8_t digest[LK_DIGEST_LEN])
{
    uint8_t bytes[32];

    lk_rand_bytes(bytes, sizeof(bytes));
    memcpy(out, prefix, 4);
    lk_assert(lk_base62_encode(bytes, sizeof(bytes), out + 4, LK_BASE62_LEN_256));
    out[4 + LK_BASE62_LEN_256] = '\0';
    OPENSSL_cleanse(bytes, sizeof(bytes));
    lk_sha256(out, strlen(out), digest);
}

/* The throttle key of an email: case-insensitive, as emails are. */
static void make_email_key(const char *email, char *out, size_t outsz)
{
    snprintf(out, outsz, "email:%s", email);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

static enum lk_err hash_password(const char *password, char out[LK_PWHASH_MAX])
{
    /* argon2id, libsodium's interactive limits; the hash string carries its
     * parameters, so they can be raised later without breaking old hashes. */
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return LK_ERR_INTERNAL;
    return LK_OK;
}

enum lk_err lk_users_login(struct lk_app *app, const char *email, const char *password,
                           const char *address, const char *request_id, int64_t now,
                           struct lk_login *out, int64_t *retry_after)
{
    struct lk_session_row s = {.created_at = now, .expires_at = now + LK_SESSION_TTL};
    char email_key[LK_EMAIL_MAX + 8];
    bool known;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    make_email_key(email, email_key, sizeof(email_key));
    /* Every attempt from an address counts toward its login rate (a public
     * endpoint: DESIGN §9), successes too. */
    if (app->login_rate != NULL && !lk_throttle_take(app->login_rate, address, now, retry_after))
        return LK_ERR_TOO_MANY_REQUESTS;
    /* Each attempt is counted before the (slow) password check, so parallel
     * guesses cannot all slip past the limit; a success gives its count back. */
    if (!lk_throttle_take(app->login_by_email, email_key, now, retry_after))
        return LK_ERR_TOO_MANY_REQUESTS;
    if (!lk_throttle_take(app->login_by_address, address, now, retry_after)) {
        lk_throttle_refund(app->login_by_email, email_key);
        return LK_ERR_TOO_MANY_REQUESTS;
    }
    e = lk_store_user_by_email(app->store, email, &out->user);
    if (e != LK_OK && e != LK_ERR_NOT_FOUND) {
        lk_throttle_refund(app->login_by_email, email_key);
        lk_throttle_refund(app->login_by_address, address);
        return e;
    }
    known = e == LK_OK;
    if (!password_ok(known ? out->user.password_hash : NULL, password)) {
        if (known)
            lk_audit_sign_in(app, out->user.id, "auth.login_failed", address, request_id, now);
        memset(out, 0, sizeof(*out));
        return LK_ERR_INVALID_CREDENTIALS;
    }
    lk_throttle_clear(app->login_by_email, email_key);
    lk_throttle_refund(app->login_by_address, address);
    OPENSSL_cleanse(out->user.password_hash, sizeof(out->user.password_hash));
    new_token(LK_SESSION_PREFIX, out->token, s.digest);
    memcpy(s.user_id, out->user.id, LK_ID_MAX);
    if ((e = lk_store_session_insert(app->store, &s)) != LK_OK) {
        OPENSSL_cleanse(out->token, sizeof(out->token));
        return e;
    }
    out->expires_at = s.expires_at;
    lk_audit_sign_in(app, out->user.id, "auth.login", address, request_id, now);
    return LK_OK;
}

enum lk_err lk_users_session(struct lk_app *app, const char *token, size_t len, int64_t now,
                             struct lk_session_row *out)
{
    uint8_t d[LK_DIGEST_LEN];
    enum lk_err e;

    lk_sha256(token, len, d);
    if ((e = lk_store_session_get(app->store, d, out)) == LK_ERR_NOT_FOUND)
        return LK_ERR_INVALID_KEY;
    if (e == LK_OK && now >= out->expires_at)
        return LK_ERR_EXPIRED_KEY;
    return e;
}

enum lk_err lk_users_logout(struct lk_app *app, const struct lk_actor *who, const char *token,
                            size_t len, int64_t now)
{
    uint8_t d[LK_DIGEST_LEN];
    enum lk_err e;

    lk_sha256(token, len, d);
    if ((e = lk_store_session_delete(app->store, d)) == LK_OK)
        lk_audit_sign_in(app, who->id, "auth.logout", who->address, who->request_id, now);
    return e;
}

/* --- members ---------------------------------------------------------------------- */

/* A credential gives, changes or takes a role only if it holds every
 * permission of that role: a key narrowed to members:write cannot make an
 * owner, who could then do all the key may not. */
static enum lk_err may_grant(const struct lk_actor *who, enum lk_role role, const char *field,
                             struct lk_errinfo *ei)
{
    if ((lk_auth_role_perms(role) & ~who->perms) != 0)
        return lk_errinfo_set(ei, LK_ERR_INSUFFICIENT_PERMISSIONS, field,
                              "the role '%s' has permissions this credential lacks",
                              lk_role_name(role));
    return LK_OK;
}

enum lk_err lk_members_list(struct lk_app *app, const struct lk_actor *who, lk_member_row_cb cb,
                            void *arg)
{
    return lk_store_member_list(app->store, who->workspace_id, cb, arg);
}

enum lk_err lk_users_get(struct lk_app *app, const char *user_id, struct lk_user_row *out)
{
    enum lk_err e = lk_store_user_get(app->store, user_id, out);

    OPENSSL_cleanse(out->password_hash, sizeof(out->password_hash));
    return e;
}

enum lk_err lk_users_memberships(struct lk_app *app, const char *user_id, lk_member_row_cb cb,
                                 void *arg)
{
    return lk_store_member_list_user(app->store, user_id, cb, arg);
}

/* Demoting (to `role`) or removing (`role` < 0) the owner `old` must leave
 * one: nobody else could manage the members. Called inside the transaction
 * that makes the change, on its store handle: the count and the change are
 * one, so two calls (of this process or another node) cannot both count two
 * owners and each take one away. */
static enum lk_err keeps_an_owner(struct lk_store *s, const char *ws_id,
                                  const struct lk_member_row *old, int role, const char *field,
                                  struct lk_errinfo *ei)
{
    int64_t owners = 0;
    enum lk_err e;

    if (old->role != LK_ROLE_OWNER || role == LK_ROLE_OWNER)
        return LK_OK;
    if ((e = lk_store_member_count(s, ws_id, LK_ROLE_OWNER, &owners)) != LK_OK)
        return e;
    if (owners <= 1)
        return lk_errinfo_set(ei, LK_ERR_CONFLICT, field, "the last owner cannot be %s",
                              role < 0 ? "removed" : "demoted");
    return LK_OK;
}

/* A change of one member, read, judged and written in one transaction. */
struct member_change {
    const struct lk_actor *who;
    const char *user_id;
    int role; /* the new role; -1: remove */
    int64_t now;
    struct lk_member_row *m; /* the member (after the change) */
    struct lk_errinfo *ei;
};

static enum lk_err member_change_txn(struct lk_store *s, void *arg)
{
    struct member_change *mc = arg;
    const char *ws_id = mc->who->workspace_id;
    enum lk_err e;

    if ((e = lk_store_member_get(s, ws_id, mc->user_id, mc->m)) != LK_OK ||
        (e = may_grant(mc->who, mc->m->role, "user_id", mc->ei)) != LK_OK ||
        (mc->role >= 0 &&
         (e = may_grant(mc->who, (enum lk_role)mc->role, "role", mc->ei)) != LK_OK) ||
        (e = keeps_an_owner(s, ws_id, mc->m, mc->role, mc->role < 0 ? "user_id" : "role",
                            mc->ei)) != LK_OK)
        return e;
    if (mc->role < 0) {
        if ((e = lk_store_member_delete(s, ws_id, mc->user_id)) != LK_OK)
            return e;
        return lk_audit_write(s, mc->who, "member.remove", mc->user_id, mc->now);
    }
    mc->m->role = (enum lk_role)mc->role;
    if ((e = lk_store_member_put(s, mc->m)) != LK_OK)
        return e;
    return lk_audit_write(s, mc->who, "member.update", mc->user_id, mc->now);
}

enum lk_err lk_members_set_role(struct lk_app *app, const struct lk_actor *who, const char *user_id,
                                enum lk_role role, int64_t now, struct lk_member_row *out,
                                struct lk_errinfo *ei)
{
    struct member_change mc = {who, user_id, (int)role, now, out, ei};

    /* No write_mu: members are not cached, and the transaction is the check. */
    return lk_store_txn(app->store, LK_TXN_DEFAULT, member_change_txn, &mc);
}

enum lk_err lk_members_remove(struct lk_app *app, const struct lk_actor *who, const char *user_id,
                              int64_t now, struct lk_errinfo *ei)
{
    struct lk_member_row m;
    struct member_change mc = {who, user_id, -1, now, &m, ei};

    return lk_store_txn(app->store, LK_TXN_DEFAULT, member_change_txn, &mc);
}

/* --- invitations ------------------------------------------------------------------ */

struct invite {
    const struct lk_actor *who;
    const struct lk_invitation_row *inv;
    int64_t now;
    struct lk_errinfo *ei;
};

/* Counts what is pending and adds the invitation in one transaction, so the
 * cap holds however many calls race. */
static enum lk_err invite_txn(struct lk_store *s, void *arg)
{
    struct invite *iv = arg;
    const char *ws_id = iv->who->workspace_id;
    int64_t pending = 0;
    enum lk_err e;

    if ((e = lk_store_invitation_count(s, ws_id, iv->now, &pending)) != LK_OK)
        return e;
    if (pending >= LK_INVITES_PENDING_MAX)
        return lk_errinfo_set(iv->ei, LK_ERR_CONFLICT, "email",
                              "%d invitations are pending: revoke some or wait for them to "
                              "expire",
                              LK_INVITES_PENDING_MAX);
    /* Expired invitations go when new ones come: the table stays small. */
    if ((e = lk_store_invitation_prune(s, ws_id, iv->now)) != LK_OK ||
        (e = lk_store_invitation_insert(s, iv->inv)) != LK_OK)
        return e;
    return lk_audit_write(s, iv->who, "invitation.create", iv->inv->id, iv->now);
}

enum lk_err lk_members_invite(struct lk_app *app, const struct lk_actor *who, const char *email,
                              enum lk_role role, int64_t now, struct lk_invitation_row *out,
                              char token[LK_INVITE_TOKEN_MAX], struct lk_errinfo *ei)
{
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    token[0] = '\0';
    if ((e = may_grant(who, role, "role", ei)) != LK_OK)
        return e;
    /* Whether the email has a user, here or anywhere, plays no part: the
     * answer must not tell. */
    lk_rand_id("inv_", out->id, sizeof(out->id));
    memcpy(out->workspace_id, who->workspace_id, LK_ID_MAX);
    snprintf(out->email, sizeof(out->email), "%s", email);
    out->role = role;
    memcpy(out->invited_by, who->id, LK_ID_MAX);
    out->created_at = now;
    out->expires_at = now + LK_INVITE_TTL;
    new_token(LK_INVITE_PREFIX, token, out->digest);
    e = lk_store_txn(app->store, LK_TXN_DEFAULT, invite_txn,
                     &(struct invite){who, out, now, ei});
    OPENSSL_cleanse(out->digest, sizeof(out->digest));
    if (e != LK_OK)
        OPENSSL_cleanse(token, LK_INVITE_TOKEN_MAX);
    return e;
}

enum lk_err lk_invitations_list(struct lk_app *app, const struct lk_actor *who, int64_t now,
                                lk_invitation_cb cb, void *arg)
{
    return lk_store_invitation_list(app->store, who->workspace_id, now, cb, arg);
}

struct revoke {
    const struct lk_actor *who;
    const char *id;
    int64_t now;
};

static enum lk_err revoke_txn(struct lk_store *s, void *arg)
{
    struct revoke *r = arg;
    enum lk_err e;

    if ((e = lk_store_invitation_delete(s, r->who->workspace_id, r->id)) != LK_OK)
        return e;
    return lk_audit_write(s, r->who, "invitation.revoke", r->id, r->now);
}

enum lk_err lk_invitations_revoke(struct lk_app *app, const struct lk_actor *who, const char *id,
                                  int64_t now)
{
    return lk_store_txn(app->store, LK_TXN_DEFAULT, revoke_txn, &(struct revoke){who, id, now});
}

/* Joins u to the invitation's workspace and uses the invitation up. */
struct join {
    struct lk_app *app;
    const struct lk_invitation_row *inv;
    const struct lk_user_row *u;
    bool new_user;
    const struct lk_actor *as;
    int64_t now;
    struct lk_member_row *out;
    struct lk_errinfo *ei;
};

/* One transaction: what the inviter still holds, the member's old role, the
 * last-owner rule and the writes see one state of the store. The delete is
 * what makes the invitation single-use: of two accepts racing, one deletes the
 * row, the other finds none. */
static enum lk_err join_txn(struct lk_store *s, void *arg)
{
    struct join *j = arg;
    const struct lk_invitation_row *inv = j->inv;
    struct lk_member_row old, *out = j->out;
    unsigned holds, need;
    bool was_member;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    /* The inviter must still be able to grant the role: a member removed or
     * demoted, or a key revoked or narrowed, leaves no way back in. It reads
     * through the app's store, the handle this transaction runs on. */
    holds = lk_auth_holds(j->app, inv->workspace_id, inv->invited_by, j->now);
    need = lk_auth_role_perms(inv->role) | LK_MPERM_MEMBERS_WRITE;
    if ((holds & need) != need)
        return LK_ERR_INVALID_INVITATION;
    e = lk_store_member_get(s, inv->workspace_id, j->u->id, &old);
    if (e != LK_OK && e != LK_ERR_NOT_FOUND)
        return e;
    was_member = e == LK_OK;
    /* Changing a member's role takes their old role's permissions too, as
     * PATCH /v1/members does: an invitation must not demote an owner that its
     * inviter could not. */
    if (was_member && (lk_auth_role_perms(old.role) & ~holds) != 0)
        return lk_errinfo_set(j->ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "token",
                              "whoever invited you cannot change the role '%s' you hold "
                              "in this workspace",
                              lk_role_name(old.role));
    if (was_member &&
        (e = keeps_an_owner(s, inv->workspace_id, &old, (int)inv->role, "token", j->ei)) != LK_OK)
        return e;
    memcpy(out->workspace_id, inv->workspace_id, LK_ID_MAX);
    memcpy(out->user_id, j->u->id, LK_ID_MAX);
    memcpy(out->email, j->u->email, sizeof(out->email));
    out->role = inv->role;
    out->created_at = was_member ? old.created_at : j->now;
    e = lk_store_invitation_delete(s, inv->workspace_id, inv->id);
    if (e == LK_ERR_NOT_FOUND)
        return LK_ERR_INVALID_INVITATION;
    if (e != LK_OK)
        return e;
    if (j->new_user && (e = lk_store_user_insert(s, j->u)) != LK_OK) {
        if (e == LK_ERR_CONFLICT)
            lk_errinfo_set(j->ei, e, "token",
                           "the email got a user meanwhile: accept again with "
                           "that user's password");
        return e;
    }
    if ((e = lk_store_member_put(s, out)) != LK_OK)
        return e;
    return lk_audit_write(s, j->as, "invitation.accept", inv->id, j->now);
}

enum lk_err lk_invitations_accept(struct lk_app *app, const char *token, const char *password,
                                  const char *address, const char *request_id, int64_t now,
                                  struct lk_member_row *out, int64_t *retry_after,
                                  struct lk_errinfo *ei)
{
    struct lk_invitation_row inv;
    struct lk_user_row u;
    struct lk_actor as = {0};
    char email_key[LK_EMAIL_MAX + 8];
    uint8_t d[LK_DIGEST_LEN];
    bool known;
    enum lk_err e;

    memset(&u, 0, sizeof(u));
    *retry_after = 0;
    /* A token is guessed like a key: bad ones count toward the address's
     * failed-key limit. argon2id runs only for a real invitation, once if it
     * makes a user (the invitation is then used up), else as a sign-in of that
     * email, under its failure limit. */
    if (lk_throttle_blocked(app->failed_keys, address, now, retry_after))
        return LK_ERR_TOO_MANY_REQUESTS;
    lk_sha256(token, strlen(token), d);
    e = lk_store_invitation_by_digest(app->store, d, &inv);
    OPENSSL_cleanse(d, sizeof(d));
    /* Unknown, used (deleted) and expired answer alike. */
    if (e == LK_ERR_NOT_FOUND || (e == LK_OK && now >= inv.expires_at)) {
        return lk_throttle_note(app->failed_keys, address, now, retry_after)
                   ? LK_ERR_INVALID_INVITATION
                   : LK_ERR_TOO_MANY_REQUESTS;
    }
    if (e != LK_OK)
        return e;
    e = lk_store_user_by_email(app->store, inv.email, &u);
    if (e != LK_OK && e != LK_ERR_NOT_FOUND)
        return e;
    known = e == LK_OK;
    if (known) {
        /* The person proves it is them with their password, which stays as
         * it is; a wrong one counts as a failed sign-in of that email. */
        make_email_key(u.email, email_key, sizeof(email_key));
        /* It is a sign-in, under every limit a sign-in has: an inviter holds
         * tokens for any emails it likes, and must not guess beyond them. */
        if ((app->login_rate != NULL &&
             !lk_throttle_take(app->login_rate, address, now, retry_after)) ||
            !lk_throttle_take(app->login_by_email, email_key, now, retry_after)) {
            e = LK_ERR_TOO_MANY_REQUESTS;
            goto out;
        }
        if (!lk_throttle_take(app->login_by_address, address, now, retry_after)) {
            lk_throttle_refund(app->login_by_email, email_key);
            e = LK_ERR_TOO_MANY_REQUESTS;
            goto out;
        }
        if (!password_ok(u.password_hash, password)) {
            lk_audit_sign_in(app, u.id, "auth.login_failed", address, request_id, now);
            e = LK_ERR_INVALID_CREDENTIALS;
            goto out;
        }
        lk_throttle_clear(app->login_by_email, email_key);
        lk_throttle_refund(app->login_by_address, address);
    } else {
        lk_rand_id("usr_", u.id, sizeof(u.id));
        snprintf(u.email, sizeof(u.email), "%s", inv.email);
        u.created_at = now;
        if ((e = hash_password(password, u.password_hash)) != LK_OK)
            goto out;
    }
    memcpy(as.workspace_id, inv.workspace_id, LK_ID_MAX);
    memcpy(as.id, u.id, LK_ID_MAX);
    as.is_user = true;
    snprintf(as.address, sizeof(as.address), "%s", address);
    snprintf(as.request_id, sizeof(as.request_id), "%s", request_id);
    /* write_mu still orders this with key changes: lk_auth_holds judges the
     * inviter's key by its cache entry, published after a change commits. */
    pthread_mutex_lock(&app->write_mu);
    e = lk_store_txn(app->store, LK_TXN_DEFAULT, join_txn,
                     &(struct join){app, &inv, &u, !known, &as, now, out, ei});
    pthread_mutex_unlock(&app->write_mu);
out:
    OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
    return e;
}
