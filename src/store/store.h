/*
 * store.h — latchkey's one storage interface (DESIGN §7). Callers see an opaque
 * `struct lk_store` and these functions; backends fill a `struct lk_store_ops`
 * and are chosen by the URL scheme (sqlite:PATH today; postgres:// beside it).
 *
 * Durability: a write that returned LK_OK outside a transaction, or a commit
 * that returned LK_OK, is on stable storage.
 *
 * Thread safety: every function is safe from any thread. A transaction
 * (lk_store_begin .. commit/rollback) belongs to the calling thread and excludes
 * other writers until it ends.
 *
 * Errors: LK_ERR_STORAGE_UNAVAILABLE when the database fails, LK_ERR_NOT_FOUND
 * when a get finds nothing, LK_ERR_CONFLICT on a uniqueness violation.
 */
#ifndef LK_STORE_H
#define LK_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/digest.h"
#include "core/err.h"
#include "core/namedrl.h"
#include "core/secret.h"

#define LK_ID_MAX 24    /* "key_" / "ws_" + 16 base62 + NUL, with room */
#define LK_NAME_MAX 200 /* bytes in a key or workspace name */

enum lk_key_kind { LK_KIND_PERMANENT = 0, LK_KIND_TEMPORARY, LK_KIND_APPLICATION, LK_KIND_ROOT };

/* Identities: who a key is for, named by the caller's own id for them
 * (external_id, unique per workspace), made on the first key that names it. */
#define LK_EXTERNAL_ID_MAX 255 /* bytes of printable UTF-8 */
#define LK_IDENTITY_META_MAX 4096

struct lk_identity_row {
    char id[LK_ID_MAX]; /* "idn_" + base62 */
    char workspace_id[LK_ID_MAX];
    char external_id[LK_EXTERNAL_ID_MAX + 1];
    char *meta; /* owned JSON object text ("{}" when none) */
    int64_t created_at;
};
void lk_identity_row_release(struct lk_identity_row *r);
typedef int (*lk_identity_row_cb)(void *arg, const struct lk_identity_row *row);

/* A key's own credits refill: none, every UTC day, or every month on
 * refill_day (1..31; a shorter month refills on its last day). */
enum lk_credit_refill { LK_CREDIT_REFILL_NONE = 0, LK_CREDIT_REFILL_DAILY, LK_CREDIT_REFILL_MONTHLY };


struct lk_ws_row {
    int64_t number; /* small integer alias (Flexweg's storage_folder_id) */
    char id[LK_ID_MAX];
    char name[LK_NAME_MAX + 1];
    char key_prefix[LK_PREFIX_MAX + 1];
    enum lk_key_format key_format;
    bool is_operator; /* the first workspace: its root keys manage workspaces */
    int64_t created_at;
    int64_t quota, test_quota; /* valid checks per rolling 30 days; -1: unlimited */
};

/* The hint of a key stored from a digest made elsewhere (no secret here). */
#define LK_KEY_HINT_IMPORTED "imported"

/* One key as stored. Times are Unix seconds, 0 meaning "none"; rl_* are 0 when
 * the key has no rate limit, daily_spend_cap is -1 when it has no cap.
 * permissions and meta are owned JSON texts (array, object); release with
 * lk_key_row_release(). */
struct lk_key_row {
    int64_t rowid;
    char id[LK_ID_MAX];
    char workspace_id[LK_ID_MAX];
    char name[LK_NAME_MAX + 1];
    enum lk_env env;
    enum lk_key_kind kind;
    char *permissions;
    char *meta;
    char hint[LK_HINT_MAX];
    bool enabled;
    int64_t expires_at, revoked_at, created_at, last_used_at;
    int64_t rl_limit, rl_window_s;
    int64_t daily_spend_cap;
    uint8_t digest[LK_DIGEST_LEN];
    uint32_t pepper_id;
    /* The secret before the last regeneration, valid until prev_until. */
    bool has_prev;
    uint8_t prev_digest[LK_DIGEST_LEN];
    uint32_t prev_pepper_id;
    int64_t prev_until;
    char created_by[LK_ID_MAX];
    /* The identity the key is for: "" and "" when none. external_id is the
     * identity's, read with the key. */
    char identity_id[LK_ID_MAX];
    char external_id[LK_EXTERNAL_ID_MAX + 1];
    /* The key's own credits as a management write last set them, when
     * has_credits (false: none, unlimited; a zeroed row has none). credits_gen
     * grows with every such write, so the counters know the number they spend
     * from was replaced; credits_set_at is its time (refills count from it). */
    bool has_credits;
    int64_t credits_remaining;
    enum lk_credit_refill credits_refill;
    int64_t credits_refill_amount;
    int credits_refill_day; /* monthly: 1..31; else 0 */
    int64_t credits_gen, credits_set_at;
    /* What checks left of them (the recorder's last write for credits_gen):
     * credits_now -1 when none was written yet, and the refill period it is
     * of (lk_credit_period). Read only; key_update leaves it. */
    int64_t credits_now, credits_period;
    /* Named rate limits other than "default" (owned, n_rate_limits of them,
     * NULL when none). */
    struct lk_key_rl *rate_limits;
    int n_rate_limits;
};

void lk_key_row_release(struct lk_key_row *r);
/* Deep copy: dst must not hold owned strings. */
void lk_key_row_copy(struct lk_key_row *dst, const struct lk_key_row *src);

enum lk_key_status_filter {
    LK_STATUS_ANY = 0,
    LK_STATUS_ACTIVE,
    LK_STATUS_DISABLED,
    LK_STATUS_EXPIRED,
    LK_STATUS_REVOKED
};

struct lk_key_filter {
    int env; /* -1 for any, else enum lk_env */
    enum lk_key_status_filter status;
    int64_t now;          /* for the expired / active distinction */
    int64_t before_rowid; /* 0: from the newest */
    int limit;
    char identity_id[LK_ID_MAX]; /* "": any; else only the keys of this identity */
};

#define LK_AUDIT_DETAIL_MAX 4096 /* bytes of an audit event's detail, NUL included */

struct lk_audit_row {
    char workspace_id[LK_ID_MAX];
    char actor[LK_ID_MAX];
    char action[48];
    char target[LK_ID_MAX];
    char address[64];
    char request_id[32];
    int64_t created_at;
    /* What else the event says, as a JSON object's text (a leak report: where
     * the key was found); "" for none. Never a secret. */
    char detail[LK_AUDIT_DETAIL_MAX];
};

#define LK_EMAIL_MAX 254
#define LK_PWHASH_MAX 128

enum lk_role { LK_ROLE_VIEWER = 0, LK_ROLE_EDITOR = 1, LK_ROLE_OWNER = 2 };

struct lk_user_row {
    char id[LK_ID_MAX];
    char email[LK_EMAIL_MAX + 1];
    char password_hash[LK_PWHASH_MAX]; /* argon2id, libsodium's string form */
    int64_t created_at;
};

struct lk_member_row {
    char workspace_id[LK_ID_MAX];
    char user_id[LK_ID_MAX];
    char email[LK_EMAIL_MAX + 1];
    enum lk_role role;
    int64_t created_at;
};

struct lk_session_row {
    uint8_t digest[LK_DIGEST_LEN]; /* SHA-256 of the token; the token is never stored */
    char user_id[LK_ID_MAX];
    int64_t created_at, expires_at;
};

struct lk_audit_event {
    int64_t id;
    struct lk_audit_row row;
};

/* Called once per row; return 0 to go on, nonzero to stop. The row is borrowed:
 * it and its strings (a key's permissions and meta too) are valid during the
 * call only; keep a copy (lk_key_row_copy) to use it after. */
typedef int (*lk_key_row_cb)(void *arg, const struct lk_key_row *row);
typedef int (*lk_ws_row_cb)(void *arg, const struct lk_ws_row *row);
typedef int (*lk_member_row_cb)(void *arg, const struct lk_member_row *row);
typedef int (*lk_audit_cb)(void *arg, const struct lk_audit_event *ev);

/* A last-used time to record (batched by the usage recorder). */
struct lk_touch {
    int64_t rowid;
    int64_t at;
};

/* A workspace's credits. Always topped_up = balance + leased + spent: `leased` is
 * what servers took from the balance to spend from memory (DESIGN §1 Credits). */
struct lk_credit_account {
    char workspace_id[LK_ID_MAX];
    int64_t balance, leased, spent, topped_up;
};

#define LK_LEDGER_NOTE_MAX 200

/* One ledger entry. Spend entries are one per workspace and hour (period = the
 * hour's start, added to as spending is written); others have period 0. */
struct lk_ledger_row {
    int64_t id;
    char workspace_id[LK_ID_MAX];
    char kind[16]; /* "top_up", "spend", "lease_lost" */
    int64_t amount;
    int64_t period;
    char actor[LK_ID_MAX];
    char note[LK_LEDGER_NOTE_MAX + 1];
    int64_t created_at;
};

/* Counters written in batches: a workspace's checks per UTC day (quota), a key's
 * spend per UTC day, a key's checks per hour and outcome (usage). */
enum lk_counter_kind { LK_CTR_QUOTA = 0, LK_CTR_SPEND, LK_CTR_USAGE };

struct lk_counter_row {
    char workspace_id[LK_ID_MAX]; /* quota */
    int64_t key_rowid;            /* spend, usage */
    int64_t period;               /* day number (quota, spend); hour start, Unix s (usage) */
    int code;                     /* usage: the outcome, an enum lk_err */
    int64_t n;                    /* the count; quota: live checks */
    int64_t n_test;               /* quota: test checks */
};

typedef int (*lk_ledger_cb)(void *arg, const struct lk_ledger_row *row);
typedef int (*lk_credit_cb)(void *arg, const struct lk_credit_account *row);
typedef int (*lk_counter_cb)(void *arg, const struct lk_counter_row *row);

struct lk_store;

/* Opens the store named by url ("sqlite:PATH"), creating it and applying schema
 * migrations. Caller frees with lk_store_close(). Errors go to ei->detail. */
enum lk_err lk_store_open(const char *url, struct lk_store **out /* OUT */, struct lk_errinfo *ei);
void lk_store_close(struct lk_store *s);

enum lk_err lk_store_ping(struct lk_store *s);
enum lk_err lk_store_begin(struct lk_store *s);
/* Ends the transaction either way: a failed commit has rolled back (do not
 * call lk_store_rollback() after it). */
enum lk_err lk_store_commit(struct lk_store *s);
void lk_store_rollback(struct lk_store *s);
/* Begins a transaction for a background writer that can try again later: it
 * waits for another process's lock only briefly (LK_ERR_STORAGE_UNAVAILABLE). */
enum lk_err lk_store_begin_background(struct lk_store *s);

/* A unit of work inside a transaction: return LK_OK to commit, anything else to
 * roll back (that error is what lk_store_txn answers). It may run more than once
 * when the backend asks for a retry (a serialization failure between nodes on
 * PostgreSQL), so it must not have effects outside the store before it returns. */
typedef enum lk_err (*lk_txn_fn)(struct lk_store *s, void *arg);

enum lk_txn_flags {
    LK_TXN_DEFAULT = 0,
    /* A background writer that can try again later (lk_store_begin_background). */
    LK_TXN_BACKGROUND = 1 << 0,
};

/* Runs fn in one transaction and commits it; the one way services write more
 * than one statement. */
enum lk_err lk_store_txn(struct lk_store *s, unsigned flags, lk_txn_fn fn, void *arg);

/* Inserts w and sets w->number. */
enum lk_err lk_store_ws_insert(struct lk_store *s, struct lk_ws_row *w);
enum lk_err lk_store_ws_get(struct lk_store *s, const char *id, struct lk_ws_row *out /* OUT */);
enum lk_err lk_store_ws_list(struct lk_store *s, lk_ws_row_cb cb, void *arg);
enum lk_err lk_store_ws_count(struct lk_store *s, int64_t *out /* OUT */);

/* Inserts k and sets k->rowid. */
enum lk_err lk_store_key_insert(struct lk_store *s, struct lk_key_row *k);
/* Inserts the n keys k[0..n) and sets each rowid, as n key_inserts would but in
 * far fewer statements (seed, migrate). A refused key (LK_ERR_CONFLICT) leaves
 * none of the call's keys, and the transaction goes on, as after a refused
 * key_insert; the call does not say which key it was. */
enum lk_err lk_store_keys_insert(struct lk_store *s, struct lk_key_row *k, size_t n);
/* Rewrites every mutable column of the key with k->id (last_used_at excluded). */
enum lk_err lk_store_key_update(struct lk_store *s, const struct lk_key_row *k);
/* Reads key `id` of workspace `ws_id` into out (caller releases, also after an
 * error: out is emptied first). */
enum lk_err lk_store_key_get(struct lk_store *s, const char *ws_id, const char *id,
                             struct lk_key_row *out /* OUT */);
/* Keys of a workspace, newest first, as the filter says. */
enum lk_err lk_store_key_list(struct lk_store *s, const char *ws_id,
                              const struct lk_key_filter *f, lk_key_row_cb cb, void *arg);
/* What a scan of every key reads of each. */
enum lk_key_cols {
    LK_KEY_COLS_ALL = 0, /* the whole row (a copy of the database) */
    /* what the key cache keeps: hint is "" unless LK_KEY_HINT_IMPORTED (the
     * cache tells keys made here by it), created_by is "", meta is "" when
     * it is "{}" (most keys: NULL in the row, nothing to copy), created_at and
     * the credits' refill, generation and times 0, credits_now -1 (a million
     * keys start faster without reading them); has_credits, the named rate
     * limits, identity_id and external_id (NULL for most keys) are read */
    LK_KEY_COLS_CACHE,
};
/* Every key of every workspace, in rowid order (to fill the cache at start). */
enum lk_err lk_store_key_scan(struct lk_store *s, enum lk_key_cols cols, lk_key_row_cb cb,
                              void *arg);
/* The keys with after < rowid <= upto, in rowid order: a part of the scan above,
 * so that two connections can read halves of the table at once. */
enum lk_err lk_store_key_scan_range(struct lk_store *s, enum lk_key_cols cols, int64_t after,
                                    int64_t upto, lk_key_row_cb cb, void *arg);
/* The highest rowid of a key, 0 when there is none. */
enum lk_err lk_store_key_rowid_max(struct lk_store *s, int64_t *out /* OUT */);
/* Records last-used times, never moving one backwards; one transaction. */
enum lk_err lk_store_keys_touch(struct lk_store *s, const struct lk_touch *t, size_t n);

enum lk_err lk_store_audit_insert(struct lk_store *s, const struct lk_audit_row *a);
/* What an audit listing keeps; "" and 0 keep everything. */
struct lk_audit_filter {
    char actor[LK_ID_MAX];  /* exact */
    char action[48];        /* exact, or with action_prefix every action it begins */
    bool action_prefix;
    int64_t from, to;       /* created_at in [from, to); 0: unbounded */
};

/* Audit events of a workspace with id < before_id (0: from the newest), newest
 * first, that f (may be NULL) keeps. */
enum lk_err lk_store_audit_list(struct lk_store *s, const char *ws_id,
                                const struct lk_audit_filter *f, int64_t before_id, int limit,
                                lk_audit_cb cb, void *arg);

enum lk_err lk_store_ws_get_by_number(struct lk_store *s, int64_t number,
                                      struct lk_ws_row *out /* OUT */);

/* Users. Emails compare case-insensitively; a taken email is LK_ERR_CONFLICT. */
enum lk_err lk_store_user_insert(struct lk_store *s, const struct lk_user_row *u);
enum lk_err lk_store_user_by_email(struct lk_store *s, const char *email,
                                   struct lk_user_row *out /* OUT */);
enum lk_err lk_store_user_get(struct lk_store *s, const char *id, struct lk_user_row *out /* OUT */);

/* Memberships: put adds or changes the role. Lists carry the user's email. */
enum lk_err lk_store_member_put(struct lk_store *s, const struct lk_member_row *m);
enum lk_err lk_store_member_get(struct lk_store *s, const char *ws_id, const char *user_id,
                                struct lk_member_row *out /* OUT */);
enum lk_err lk_store_member_delete(struct lk_store *s, const char *ws_id, const char *user_id);
enum lk_err lk_store_member_list(struct lk_store *s, const char *ws_id, lk_member_row_cb cb,
                                 void *arg);
enum lk_err lk_store_member_list_user(struct lk_store *s, const char *user_id,
                                      lk_member_row_cb cb, void *arg);
enum lk_err lk_store_member_count(struct lk_store *s, const char *ws_id, enum lk_role role,
                                  int64_t *out /* OUT */);

/* Sessions, by the digest of their token. */
enum lk_err lk_store_session_insert(struct lk_store *s, const struct lk_session_row *r);
enum lk_err lk_store_session_get(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN],
                                 struct lk_session_row *out /* OUT */);
enum lk_err lk_store_session_delete(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN]);

/* Invitations to join a workspace (DESIGN §1 people): the token is never
 * stored, only its SHA-256. */
struct lk_invitation_row {
    char id[LK_ID_MAX];
    char workspace_id[LK_ID_MAX];
    char email[LK_EMAIL_MAX + 1];
    enum lk_role role;
    uint8_t digest[LK_DIGEST_LEN];
    char invited_by[LK_ID_MAX]; /* key id or user id */
    int64_t created_at, expires_at;
};
typedef int (*lk_invitation_cb)(void *arg, const struct lk_invitation_row *row);

enum lk_err lk_store_invitation_insert(struct lk_store *s, const struct lk_invitation_row *r);
/* The invitation whose token has this digest (expired or not); LK_ERR_NOT_FOUND. */
enum lk_err lk_store_invitation_by_digest(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN],
                                          struct lk_invitation_row *out /* OUT */);
/* Deletes invitation `id` of ws_id; LK_ERR_NOT_FOUND when there was none. */
enum lk_err lk_store_invitation_delete(struct lk_store *s, const char *ws_id, const char *id);
/* Invitations of ws_id still pending at `now` (expires_at > now), newest first. */
enum lk_err lk_store_invitation_list(struct lk_store *s, const char *ws_id, int64_t now,
                                     lk_invitation_cb cb, void *arg);
/* Drops the invitations of ws_id that expired before `now`. */
enum lk_err lk_store_invitation_prune(struct lk_store *s, const char *ws_id, int64_t now);
/* How many are pending at `now`. */
enum lk_err lk_store_invitation_count(struct lk_store *s, const char *ws_id, int64_t now,
                                      int64_t *out /* OUT */);

/* Quotas of a workspace (-1: unlimited). */
enum lk_err lk_store_ws_set_quota(struct lk_store *s, const char *ws_id, int64_t quota,
                                  int64_t test_quota);

/* Credits. get answers zeros for a workspace that never had any. move adds the
 * deltas in one statement, refusing (LK_ERR_CONFLICT) to take balance or leased
 * below zero, so two servers cannot lease the same credits, or topped_up past
 * 2^53 - 1, the largest count JSON carries exactly. */
enum lk_err lk_store_credits_get(struct lk_store *s, const char *ws_id,
                                 struct lk_credit_account *out /* OUT */);
enum lk_err lk_store_credits_move(struct lk_store *s, const char *ws_id, int64_t d_balance,
                                  int64_t d_leased, int64_t d_spent, int64_t d_topped_up);
enum lk_err lk_store_credits_scan(struct lk_store *s, lk_credit_cb cb, void *arg);
/* Appends an entry (sets r->id), or adds to the spend entry of r->period. */
enum lk_err lk_store_ledger_add(struct lk_store *s, struct lk_ledger_row *r);
/* Ledger of a workspace with id < before_id (0: from the newest), newest first. */
enum lk_err lk_store_ledger_list(struct lk_store *s, const char *ws_id, int64_t before_id,
                                 int limit, lk_ledger_cb cb, void *arg);

/* Adds r's counts to the stored ones. */
enum lk_err lk_store_counter_add(struct lk_store *s, enum lk_counter_kind kind,
                                 const struct lk_counter_row *r);
/* lk_store_counter_add for n rows at once (kinds[i] is rows[i]'s kind), as a few
 * statements where the backend can: rows for the same counter may repeat, and
 * their counts add up as if written one by one. */
enum lk_err lk_store_counters_add(struct lk_store *s, const enum lk_counter_kind *kinds,
                                  const struct lk_counter_row *rows, size_t n);
/* Raises the stored counts to r's where they are lower: a count known exactly
 * elsewhere (the counter file) written again, so writing it twice is harmless. */
enum lk_err lk_store_counter_raise(struct lk_store *s, enum lk_counter_kind kind,
                                   const struct lk_counter_row *r);
/* Rows of `kind` with period in [from, to); usage rows of key_rowid only (and
 * ordered by period; key_rowid 0: of every key), other kinds of every
 * workspace or key. */
enum lk_err lk_store_counter_scan(struct lk_store *s, enum lk_counter_kind kind, int64_t key_rowid,
                                  int64_t from, int64_t to, lk_counter_cb cb, void *arg);
/* Usage rows (hour, outcome, count) of every key of a workspace, revoked keys
 * included, with the hour in [from, to). */
enum lk_err lk_store_usage_scan_ws(struct lk_store *s, const char *ws_id, int64_t from,
                                   int64_t to, lk_counter_cb cb, void *arg);
/* The distinct permission strings on a workspace's keys that are not revoked,
 * in byte order; each (borrowed) goes to cb, which returns nonzero to stop. */
typedef int (*lk_string_cb)(void *arg, const char *s);
enum lk_err lk_store_permissions_in_use(struct lk_store *s, const char *ws_id, lk_string_cb cb,
                                        void *arg);
/* Drops usage older than usage_before (hour start) and day counters older than
 * day_before. */
enum lk_err lk_store_counter_prune(struct lk_store *s, int64_t usage_before, int64_t day_before);

/* The change log (the feed's source): every change to a key, a workspace or a
 * membership appends one row in the same transaction as the change itself,
 * written by the backend (triggers), so no caller can forget it. A node's key
 * cache follows this log (service/feed.c); last-used times are not changes. */
enum lk_change_kind { LK_CHANGE_KEY = 1, LK_CHANGE_WORKSPACE = 2, LK_CHANGE_MEMBER = 3 };

struct lk_change_row {
    int64_t seq;              /* increasing in commit order, never reused */
    enum lk_change_kind kind;
    int64_t key_rowid;        /* LK_CHANGE_KEY: the key's rowid; otherwise 0 */
    char ref_id[LK_ID_MAX];   /* the key's, workspace's or member user's id */
    char workspace_id[LK_ID_MAX];
    int64_t at;               /* Unix seconds of the change */
};
typedef int (*lk_change_cb)(void *arg, const struct lk_change_row *row);

/* Changes with seq > after, in seq order, at most `limit` of them. */
enum lk_err lk_store_changes_since(struct lk_store *s, int64_t after, int limit, lk_change_cb cb,
                                   void *arg);
/* The newest seq in the log (0 when it is empty). */
enum lk_err lk_store_changes_head(struct lk_store *s, int64_t *out /* OUT */);
/* Waits at most timeout_ms for a commit (of any process or node) that may have
 * appended changes. LK_OK when woken or timed out; LK_ERR_STORAGE_UNAVAILABLE
 * when the wake-up channel is lost (the caller polls and reconnects). */
enum lk_err lk_store_changes_wait(struct lk_store *s, int timeout_ms);
/* Drops changes older than before_at, always keeping the newest row. */
enum lk_err lk_store_changes_prune(struct lk_store *s, int64_t before_at);
/* Reads the key with this rowid (caller releases). */
enum lk_err lk_store_key_get_by_rowid(struct lk_store *s, int64_t rowid,
                                      struct lk_key_row *out /* OUT */);

/* Nodes: every serving process registers itself and beats; leases of a node
 * whose heartbeat stopped may be reclaimed by another. */
#define LK_NODE_NAME_MAX 64
struct lk_node_row {
    char id[LK_ID_MAX];             /* "node_" + base62 */
    char name[LK_NODE_NAME_MAX + 1]; /* host name and pid, for people */
    int64_t started_at, heartbeat_at;
};
typedef int (*lk_node_cb)(void *arg, const struct lk_node_row *row);

/* Inserts or replaces node n. */
enum lk_err lk_store_node_put(struct lk_store *s, const struct lk_node_row *n);
/* Sets the node's heartbeat_at; LK_ERR_NOT_FOUND when it is not registered. */
enum lk_err lk_store_node_heartbeat(struct lk_store *s, const char *id, int64_t now);
enum lk_err lk_store_node_list(struct lk_store *s, lk_node_cb cb, void *arg);
enum lk_err lk_store_node_delete(struct lk_store *s, const char *id);

/* Credit leases by node: the part of a workspace's `leased` each node holds.
 * The sum over nodes equals the account's `leased`; move it together with
 * lk_store_credits_move() in one transaction. */
struct lk_lease_row {
    char workspace_id[LK_ID_MAX];
    char node_id[LK_ID_MAX];
    int64_t amount;
    /* The mark of the last lease write that set one (lk_store_lease_mark): a
     * node killed during a lease write learns from it whether the write
     * committed. 0: none. */
    int64_t op;
};
typedef int (*lk_lease_cb)(void *arg, const struct lk_lease_row *row);

/* Adds d to node_id's lease of ws_id (made at 0 if missing), refusing with
 * LK_ERR_CONFLICT to take it below zero. */
enum lk_err lk_store_lease_move(struct lk_store *s, const char *ws_id, const char *node_id,
                                int64_t d);
/* Records `op` as the mark of node_id's lease of ws_id (the row must exist: call
 * it after lk_store_lease_move in the same transaction). */
enum lk_err lk_store_lease_mark(struct lk_store *s, const char *ws_id, const char *node_id,
                                int64_t op);
/* Leases of node_id (NULL: of every node) with a nonzero amount. */
enum lk_err lk_store_lease_scan(struct lk_store *s, const char *node_id, lk_lease_cb cb,
                                void *arg);

/* Identities. insert: LK_ERR_CONFLICT when the workspace has one with this
 * external_id. get: by id; by_external: by external_id; both LK_ERR_NOT_FOUND.
 * list: of ws_id in id order, those with id > after_id ("": from the first),
 * at most limit. */
enum lk_err lk_store_identity_insert(struct lk_store *s, const struct lk_identity_row *r);
enum lk_err lk_store_identity_get(struct lk_store *s, const char *ws_id, const char *id,
                                  struct lk_identity_row *out /* OUT */);
enum lk_err lk_store_identity_by_external(struct lk_store *s, const char *ws_id,
                                          const char *external_id,
                                          struct lk_identity_row *out /* OUT */);
enum lk_err lk_store_identity_list(struct lk_store *s, const char *ws_id, const char *after_id,
                                   int limit, lk_identity_row_cb cb, void *arg);

/* A key's own credits as spent (the counters' record, written by the
 * recorder): remaining of generation gen, refilled last for period. Written
 * only when gen is still the key's credits_gen, so it never undoes a
 * management write. get: LK_ERR_NOT_FOUND when never written for this gen. */
struct lk_key_credit_row {
    int64_t key_rowid, gen, remaining, period;
};
enum lk_err lk_store_key_credits_put(struct lk_store *s, const struct lk_key_credit_row *r);
enum lk_err lk_store_key_credits_get(struct lk_store *s, int64_t key_rowid,
                                     struct lk_key_credit_row *out /* OUT */);

/* Every row of these tables, for `latchkey migrate` (any order). */
typedef int (*lk_user_row_cb)(void *arg, const struct lk_user_row *row);
typedef int (*lk_session_row_cb)(void *arg, const struct lk_session_row *row);
enum lk_err lk_store_user_scan(struct lk_store *s, lk_user_row_cb cb, void *arg);
enum lk_err lk_store_session_scan(struct lk_store *s, lk_session_row_cb cb, void *arg);
/* Every invitation, expired or not, of every workspace. */
enum lk_err lk_store_invitation_scan(struct lk_store *s, lk_invitation_cb cb, void *arg);
/* Inserts w with its own number (w->number > 0), as copying a database keeps
 * numbers known outside; numbers given later by lk_store_ws_insert() come after
 * it. LK_ERR_CONFLICT when the id or the number is taken. */
enum lk_err lk_store_ws_import(struct lk_store *s, const struct lk_ws_row *w);
/* Every ledger entry of every workspace, and every audit event (those of no
 * workspace too), in id order: a copy written in this order keeps their order. */
enum lk_err lk_store_ledger_scan(struct lk_store *s, lk_ledger_cb cb, void *arg);
enum lk_err lk_store_audit_scan(struct lk_store *s, lk_audit_cb cb, void *arg);

/* --- Webhooks (service/hooks.h): endpoints, the outbox of events, and each
 * event's delivery to each endpoint with its attempts. An event is inserted
 * once by its id (insert-or-ignore), and in the same statement handed to every
 * endpoint of its workspace subscribed to its type. Delivery times are Unix ms. */
#define LK_HOOK_URL_MAX 2048
#define LK_HOOK_EVENTS_MAX 512   /* ",type,type," as stored */
#define LK_HOOK_DESC_MAX 200
#define LK_HOOK_TYPE_MAX 32
#define LK_HOOK_SALT_HEX 32      /* 16 random bytes, as hex */
#define LK_HOOK_PAYLOAD_MAX 4096
#define LK_HOOK_ERROR_MAX 200

struct lk_hook_endpoint_row {
    char id[LK_ID_MAX]; /* "wh_" + base62 */
    char workspace_id[LK_ID_MAX];
    char url[LK_HOOK_URL_MAX + 1];
    char events[LK_HOOK_EVENTS_MAX + 1]; /* ",key.created,quota.warning," or ",*," */
    char description[LK_HOOK_DESC_MAX + 1];
    char salt[LK_HOOK_SALT_HEX + 1]; /* the signing secret is derived from it (never stored) */
    int64_t created_at;
};
typedef int (*lk_hook_endpoint_cb)(void *arg, const struct lk_hook_endpoint_row *row);

struct lk_hook_event_row {
    char id[LK_ID_MAX]; /* "evt_" + base62: the webhook-id */
    char workspace_id[LK_ID_MAX];
    char type[LK_HOOK_TYPE_MAX];
    char payload[LK_HOOK_PAYLOAD_MAX + 1]; /* the JSON body sent */
    int64_t created_at;                     /* Unix s */
};

/* A delivery claimed for sending: the event, where to and which attempt. */
struct lk_hook_job {
    struct lk_hook_event_row ev;
    struct lk_hook_endpoint_row ep;
    int attempt; /* 1 for the first */
};
typedef int (*lk_hook_job_cb)(void *arg, const struct lk_hook_job *job);

/* One attempt, for the delivery log. status 0: no answer (error says why). */
struct lk_hook_attempt_row {
    int64_t id;
    char event_id[LK_ID_MAX];
    char endpoint_id[LK_ID_MAX];
    char workspace_id[LK_ID_MAX];
    char type[LK_HOOK_TYPE_MAX];
    int attempt;
    int status;
    char error[LK_HOOK_ERROR_MAX + 1];
    int64_t started_ms, finished_ms;
};
typedef int (*lk_hook_attempt_cb)(void *arg, const struct lk_hook_attempt_row *row);

enum lk_hook_state { LK_HOOK_PENDING = 0, LK_HOOK_DELIVERED = 1, LK_HOOK_FAILED = 2 };

enum lk_err lk_store_hook_endpoint_insert(struct lk_store *s, const struct lk_hook_endpoint_row *r);
/* Endpoints of ws_id, oldest first. */
enum lk_err lk_store_hook_endpoint_list(struct lk_store *s, const char *ws_id,
                                        lk_hook_endpoint_cb cb, void *arg);
/* Deletes endpoint id of ws_id with its deliveries and their log;
 * LK_ERR_NOT_FOUND when ws_id has none such. */
enum lk_err lk_store_hook_endpoint_delete(struct lk_store *s, const char *ws_id, const char *id);
/* Inserts the event unless one with its id exists, with a pending delivery due
 * at due_ms to each endpoint of its workspace subscribed to its type; nothing
 * when no endpoint is. *inserted (may be NULL) says whether it was new. Call
 * inside a transaction. */
enum lk_err lk_store_hook_event_insert(struct lk_store *s, const struct lk_hook_event_row *r,
                                       int64_t due_ms, bool *inserted /* OUT */);
/* Claims at most `limit` pending deliveries due at now_ms whose lease has
 * expired, leasing each to node_id until lease_until_ms (a row another node
 * claimed first is skipped), and hands each to cb. Fair between workspaces:
 * round-robin between them (and between a workspace's endpoints), and no
 * workspace gets more than 4 deliveries leased (in flight) at once, on all
 * nodes together. */
enum lk_err lk_store_hook_claim(struct lk_store *s, const char *node_id, int64_t now_ms,
                                int64_t lease_until_ms, int limit, lk_hook_job_cb cb, void *arg);
/* Records attempt a and moves its delivery on, if node_id still holds its
 * lease: to `state`, with next_ms the time of the next attempt when pending. */
enum lk_err lk_store_hook_attempt_done(struct lk_store *s, const char *node_id,
                                       const struct lk_hook_attempt_row *a,
                                       enum lk_hook_state state, int64_t next_ms);
/* Ends every lease node_id holds (a restarted node takes its work back). */
enum lk_err lk_store_hook_release(struct lk_store *s, const char *node_id);
/* Attempts to endpoint_id of ws_id with id < before_id (0: from the newest), newest first. */
enum lk_err lk_store_hook_attempt_list(struct lk_store *s, const char *ws_id,
                                       const char *endpoint_id, int64_t before_id, int limit,
                                       lk_hook_attempt_cb cb, void *arg);
/* An alarm of a workspace (a threshold crossed): set adds it and says in
 * *changed whether it was new; !set removes it. */
enum lk_err lk_store_hook_alarm(struct lk_store *s, const char *ws_id, const char *name, bool set,
                                int64_t now, bool *changed /* OUT */);
/* A workspace's credits-low threshold; -1: none. */
enum lk_err lk_store_hook_threshold_set(struct lk_store *s, const char *ws_id, int64_t threshold);
enum lk_err lk_store_hook_threshold_get(struct lk_store *s, const char *ws_id,
                                        int64_t *out /* OUT */);
/* Drops attempts that ended before before_ms, and events created before
 * before_s whose deliveries are all finished (delivered or given up), with
 * those deliveries. Pending work is never dropped. */
enum lk_err lk_store_hook_prune(struct lk_store *s, int64_t before_s, int64_t before_ms);
/* Every workspace with at least one endpoint, with its credits-low threshold
 * (-1: none), to cb(arg, ws_id, threshold). */
typedef int (*lk_hook_ws_cb)(void *arg, const char *ws_id, int64_t threshold);
enum lk_err lk_store_hook_workspaces(struct lk_store *s, lk_hook_ws_cb cb, void *arg);
/* The stored spend of key_rowid on day `day` (0 when none). */
enum lk_err lk_store_hook_key_spend(struct lk_store *s, int64_t key_rowid, int64_t day,
                                    int64_t *out /* OUT */);

#endif
