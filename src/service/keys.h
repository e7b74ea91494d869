/*
 * keys.h — key management (DESIGN §5): create, read, list, change, revoke and
 * regenerate, confined to the actor's workspace. Every change is durable in the
 * store, recorded as an audit event in the same transaction (service/audit.h),
 * and published to the cache before the call returns. A change reads the key
 * in the transaction that writes it: concurrent changes of one key, from this
 * process or another node on the same database, never lose one another.
 *
 * Errors: LK_ERR_NOT_FOUND for a key of another workspace or none;
 * LK_ERR_INSUFFICIENT_PERMISSIONS for a read-only actor writing;
 * LK_ERR_INVALID_REQUEST (with ei) for a spec the rules refuse;
 * LK_ERR_CONFLICT for changes application keys do not allow;
 * LK_ERR_STORAGE_UNAVAILABLE when the store fails (nothing changed).
 */
#ifndef LK_KEYS_H
#define LK_KEYS_H

#include "service/auth.h"

#define LK_TEMP_DEFAULT_TTL 3600
#define LK_TEMP_MAX_TTL 86400
#define LK_GRACE_MAX 2592000 /* 30 days */

enum lk_spec_field {
    LK_SPEC_NAME = 1 << 0,
    LK_SPEC_ENV = 1 << 1,
    LK_SPEC_KIND = 1 << 2,
    LK_SPEC_PERMISSIONS = 1 << 3,
    LK_SPEC_EXPIRES_IN = 1 << 4,
    LK_SPEC_EXPIRES_AT = 1 << 5,
    LK_SPEC_RATE_LIMIT = 1 << 6,
    LK_SPEC_SPEND_CAP = 1 << 7,
    LK_SPEC_META = 1 << 8,
    LK_SPEC_ENABLED = 1 << 9,
    LK_SPEC_SHA256 = 1 << 10, /* import: the SHA-256 of a secret issued elsewhere */
    /* external_id: "" clears the key's identity; else the workspace's identity
     * of that external_id, made if missing. */
    LK_SPEC_EXTERNAL_ID = 1 << 11,
    /* The key's own credits: credits_remaining -1 removes them (unlimited);
     * set, it replaces the number the key spends from, and the refill. */
    LK_SPEC_CREDITS = 1 << 12,
    /* The whole set of named rate limits (rate_limits[0..n_rate_limits)), the
     * one named "default" included: it is rl_limit/rl_window_s, so a spec
     * never has both LK_SPEC_RATE_LIMIT and LK_SPEC_RATE_LIMITS (refused). */
    LK_SPEC_RATE_LIMITS = 1 << 13,
};

/* The fields a create or change asks for; `set` says which are present.
 * Values are already type- and range-checked by the decoder. */
struct lk_key_spec {
    unsigned set;
    char name[LK_NAME_MAX + 1];
    enum lk_env env;
    enum lk_key_kind kind;
    char *permissions; /* owned JSON array text */
    int64_t expires_in;
    int64_t expires_at;           /* 0 with LK_SPEC_EXPIRES_AT set: clear it */
    int64_t rl_limit, rl_window_s; /* 0: no rate limit */
    int64_t daily_spend_cap;      /* -1: no cap */
    char *meta;                   /* owned JSON object text */
    bool enabled;
    uint8_t sha256[LK_DIGEST_LEN];
    char external_id[LK_EXTERNAL_ID_MAX + 1];
    int64_t credits_remaining; /* -1: none */
    enum lk_credit_refill credits_refill;
    int64_t credits_refill_amount;
    int credits_refill_day; /* monthly 1..31, else 0 */
    struct lk_key_rl rate_limits[LK_KEY_RATE_LIMITS_MAX];
    int n_rate_limits;
};

void lk_key_spec_release(struct lk_key_spec *s);

/* Creates a key. On LK_OK, *out is the stored row (caller releases) and secret
 * holds the plaintext (LK_SECRET_MAX bytes; caller wipes it after sending) — or
 * "" for an import (LK_SPEC_SHA256), which stores the given digest instead. */
enum lk_err lk_keys_create(struct lk_app *app, const struct lk_actor *who,
                           const struct lk_key_spec *spec, int64_t now,
                           struct lk_key_row *out /* OUT */, char *secret /* OUT */,
                           struct lk_errinfo *ei);

/* A temporary key for an AI agent (Flexweg): only a user session of an owner or
 * editor may ask, in the actor's workspace. spec carries expires_in (default
 * 3600, at most 86400), permissions and name. */
enum lk_err lk_keys_generate_temp(struct lk_app *app, const struct lk_actor *who,
                                  const struct lk_key_spec *spec, int64_t now,
                                  struct lk_key_row *out /* OUT */, char *secret /* OUT */,
                                  struct lk_errinfo *ei);

/* The outcomes usage is counted by (a counter row's `code`): the verification
 * outcomes of core/err.def, LK_OK (valid) through LK_ERR_TOO_MANY_REQUESTS. */
#define LK_KEYS_USAGE_CODES (LK_ERR_TOO_MANY_REQUESTS + 1)

/* The usage rows of key k (read with lk_keys_get for who) with the hour in
 * [from, to), current to the last check. */
enum lk_err lk_keys_usage(struct lk_app *app, const struct lk_actor *who,
                          const struct lk_key_row *k, int64_t from, int64_t to, lk_counter_cb cb,
                          void *arg);

/* The usage rows of every key of the actor's workspace with the hour in
 * [from, to), current to the last check (the recorder is flushed first). */
enum lk_err lk_keys_workspace_usage(struct lk_app *app, const struct lk_actor *who, int64_t from,
                                    int64_t to, lk_counter_cb cb, void *arg);

/* The distinct permissions on the actor's workspace's keys that are not revoked,
 * sorted. */
enum lk_err lk_keys_permissions_in_use(struct lk_app *app, const struct lk_actor *who,
                                       lk_string_cb cb, void *arg);

enum lk_err lk_keys_get(struct lk_app *app, const struct lk_actor *who, const char *id,
                        struct lk_key_row *out /* OUT */);

/* A listing's cursor: the id of the last key of the page before (random, so
 * it tells nothing of other workspaces' keys, as a row number would), resolved
 * within who's workspace to where the next page starts (*before_rowid; left
 * as it is for ""). LK_ERR_INVALID_REQUEST (field "cursor") for one that names
 * no key of the workspace. Keys are never deleted from the store, so a cursor
 * stays good. */
enum lk_err lk_keys_cursor(struct lk_app *app, const struct lk_actor *who, const char *cursor,
                           int64_t *before_rowid /* OUT */, struct lk_errinfo *ei);

/* Lists keys newest first; each row (borrowed) goes to cb. With
 * f->identity_id set, only that identity's keys (see lk_identities_get). */
enum lk_err lk_keys_list(struct lk_app *app, const struct lk_actor *who,
                         const struct lk_key_filter *f, lk_key_row_cb cb, void *arg);

enum lk_err lk_keys_update(struct lk_app *app, const struct lk_actor *who, const char *id,
                           const struct lk_key_spec *spec, int64_t now,
                           struct lk_key_row *out /* OUT */, struct lk_errinfo *ei);

/* The key's own credits as they are at `now` (what checks left of the set
 * number, a refill due at `now` counted as done): -1 when the key has none.
 * k as lk_keys_get read it (which shows the same in k->credits_now). */
int64_t lk_keys_credits_remaining(struct lk_app *app, const struct lk_key_row *k, int64_t now);

/* Revokes at once; revoking a revoked key is not an error. */
enum lk_err lk_keys_revoke(struct lk_app *app, const struct lk_actor *who, const char *id,
                           int64_t now, struct lk_errinfo *ei);

/* New secret for the same key; the old one stays valid for grace_s seconds. */
enum lk_err lk_keys_regenerate(struct lk_app *app, const struct lk_actor *who, const char *id,
                               int64_t grace_s, int64_t now, struct lk_key_row *out /* OUT */,
                               char *secret /* OUT */, struct lk_errinfo *ei);

/* The status word of a key row at `now`: active, disabled, expired or revoked. */
const char *lk_keys_status(const struct lk_key_row *k, int64_t now);

/* Makes a fresh secret for workspace w and puts its digest, pepper and hint into k.
 * Used by key creation and by workspace creation. */
void lk__keys_new_secret(struct lk_app *app, const struct lk_ws_row *w, struct lk_key_row *k,
                         char *secret /* OUT */);

/* Called with each key lk_keys_seed() makes: its index and secret (wiped
 * after the call). Return 0 to go on, nonzero to stop (and write nothing). */
typedef int (*lk_keys_seed_cb)(void *arg, int64_t i, const char *secret);

/* Adds `count` live permanent keys with `permissions` (JSON array text) to the
 * first workspace, in one transaction, for benchmarks (`latchkey seed`); no
 * audit events, and the cache of a running server does not learn of them
 * (seed before `serve`). Each key's secret goes to cb as it is made: when the
 * transaction is retried, cb sees i = 0 again and must start over. ws_id gets
 * the workspace's id. LK_ERR_NOT_FOUND when there is no workspace;
 * LK_ERR_INTERNAL when cb stopped it. */
enum lk_err lk_keys_seed(struct lk_app *app, int64_t count, const char *permissions, int64_t now,
                         lk_keys_seed_cb cb, void *arg, char ws_id[LK_ID_MAX] /* OUT */);

#endif
