#include "store/store.h"

#include <time.h>

#include "base/common.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/stats.h"
#include "store/store_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const struct lk_store_ops *const backends[] = {
    &lk__store_sqlite_ops,
    &lk__store_pg_ops,
    &lk__store_pgsql_ops,
};

/* Every store call is timed and its failures counted, for /metrics. Not-found
 * and conflicts are answers, not failures. */
static enum lk_err timed(uint64_t t0, enum lk_err e)
{
    lk_stats_observe(LK_HIST_STORE, lk_stats_now_ns() - t0);
    if (e == LK_ERR_STORAGE_UNAVAILABLE || e == LK_ERR_INTERNAL)
        lk_stats_add(LK_STAT_STORE_ERRORS, 1);
    return e;
}

void lk_key_row_release(struct lk_key_row *r)
{
    if (r == NULL)
        return;
    free(r->permissions);
    free(r->meta);
    free(r->rate_limits);
    r->permissions = r->meta = NULL;
    r->rate_limits = NULL;
    r->n_rate_limits = 0;
}

void lk_identity_row_release(struct lk_identity_row *r)
{
    if (r == NULL)
        return;
    free(r->meta);
    r->meta = NULL;
}

void lk_key_row_copy(struct lk_key_row *dst, const struct lk_key_row *src)
{
    *dst = *src;
    dst->permissions = src->permissions ? lk_strndup(src->permissions, strlen(src->permissions)) : NULL;
    dst->meta = src->meta ? lk_strndup(src->meta, strlen(src->meta)) : NULL;
    dst->rate_limits = NULL;
    if (src->n_rate_limits > 0) {
        size_t n = (size_t)src->n_rate_limits * sizeof(*src->rate_limits);
        dst->rate_limits = lk_malloc(n);
        memcpy(dst->rate_limits, src->rate_limits, n);
    }
}

enum lk_err lk_store_open(const char *url, struct lk_store **out, struct lk_errinfo *ei)
{
    for (size_t i = 0; i < LK_ARRAY_LEN(backends); i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(url, backends[i]->scheme, n) == 0)
            return backends[i]->open(url, out, ei);
    }
    return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "db",
                          "unsupported database URL (use sqlite:PATH, postgres://... or postgresql://...)");
}

void lk_store_close(struct lk_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

enum lk_err lk_store_ping(struct lk_store *s)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ping(s));
}
enum lk_err lk_store_begin(struct lk_store *s)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->begin(s));
}
enum lk_err lk_store_commit(struct lk_store *s)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->commit(s));
}
void lk_store_rollback(struct lk_store *s)
{
    s->ops->rollback(s);
}
enum lk_err lk_store_begin_background(struct lk_store *s)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->begin_background(s));
}
#define TXN_ATTEMPTS 8

enum lk_err lk_store_txn(struct lk_store *s, unsigned flags, lk_txn_fn fn, void *arg)
{
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;

    for (int attempt = 0; attempt < TXN_ATTEMPTS; attempt++) {
        e = (flags & LK_TXN_BACKGROUND) ? lk_store_begin_background(s) : lk_store_begin(s);
        if (e != LK_OK)
            return e;
        e = fn(s, arg);
        if (e == LK_OK)
            e = lk_store_commit(s); /* a failed commit has rolled back */
        else
            lk_store_rollback(s);
        if (e == LK_OK || s->ops->retryable == NULL || !s->ops->retryable(s))
            return e;
        if (attempt + 1 == TXN_ATTEMPTS) {
            /* Retried failures are logged at debug: say once that they won. */
            lk_warn("a transaction failed %d times on conflicts with others; gave up",
                    TXN_ATTEMPTS);
            break;
        }
        /* Two transactions that keep failing each other would fail together
         * again at once: wait a random while, growing, before the next try. */
        uint32_t r;
        lk_rand_bytes((uint8_t *)&r, sizeof(r));
        struct timespec ts = {0, (long)(r % (1000000u << attempt))}; /* < 2^attempt ms */
        nanosleep(&ts, NULL);
    }
    return e;
}

enum lk_err lk_store_ws_insert(struct lk_store *s, struct lk_ws_row *w)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ws_insert(s, w));
}
enum lk_err lk_store_ws_get(struct lk_store *s, const char *id, struct lk_ws_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ws_get(s, id, out));
}
enum lk_err lk_store_ws_list(struct lk_store *s, lk_ws_row_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ws_list(s, cb, arg));
}
enum lk_err lk_store_ws_count(struct lk_store *s, int64_t *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ws_count(s, out));
}
enum lk_err lk_store_key_insert(struct lk_store *s, struct lk_key_row *k)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->key_insert(s, k));
}
enum lk_err lk_store_keys_insert(struct lk_store *s, struct lk_key_row *k, size_t n)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->keys_insert(s, k, n));
}
enum lk_err lk_store_key_update(struct lk_store *s, const struct lk_key_row *k)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->key_update(s, k));
}
enum lk_err lk_store_key_get(struct lk_store *s, const char *ws_id, const char *id,
                             struct lk_key_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    /* Empty whatever the outcome, so a caller may release it after an error. */
    memset(out, 0, sizeof(*out));
    return timed(t0, s->ops->key_get(s, ws_id, id, out));
}
enum lk_err lk_store_key_list(struct lk_store *s, const char *ws_id,
                              const struct lk_key_filter *f, lk_key_row_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->key_list(s, ws_id, f, cb, arg));
}
enum lk_err lk_store_key_scan(struct lk_store *s, enum lk_key_cols cols, lk_key_row_cb cb,
                              void *arg)
{
    return lk_store_key_scan_range(s, cols, 0, INT64_MAX, cb, arg);
}
enum lk_err lk_store_key_scan_range(struct lk_store *s, enum lk_key_cols cols, int64_t after,
                                    int64_t upto, lk_key_row_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->key_scan(s, cols, after, upto, cb, arg));
}
enum lk_err lk_store_key_rowid_max(struct lk_store *s, int64_t *out)
{
    uint64_t t0 = lk_stats_now_ns();

    *out = 0;
    return timed(t0, s->ops->key_rowid_max(s, out));
}
enum lk_err lk_store_keys_touch(struct lk_store *s, const struct lk_touch *t, size_t n)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->keys_touch(s, t, n));
}
enum lk_err lk_store_audit_insert(struct lk_store *s, const struct lk_audit_row *a)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->audit_insert(s, a));
}
enum lk_err lk_store_audit_list(struct lk_store *s, const char *ws_id,
                                const struct lk_audit_filter *f, int64_t before_id, int limit,
                                lk_audit_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->audit_list(s, ws_id, f, before_id, limit, cb, arg));
}
enum lk_err lk_store_ws_get_by_number(struct lk_store *s, int64_t number, struct lk_ws_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ws_get_by_number(s, number, out));
}
enum lk_err lk_store_user_insert(struct lk_store *s, const struct lk_user_row *u)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->user_insert(s, u));
}
enum lk_err lk_store_user_by_email(struct lk_store *s, const char *email, struct lk_user_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->user_by_email(s, email, out));
}
enum lk_err lk_store_user_get(struct lk_store *s, const char *id, struct lk_user_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->user_get(s, id, out));
}
enum lk_err lk_store_member_put(struct lk_store *s, const struct lk_member_row *m)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->member_put(s, m));
}
enum lk_err lk_store_member_get(struct lk_store *s, const char *ws_id, const char *user_id,
                                struct lk_member_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->member_get(s, ws_id, user_id, out));
}
enum lk_err lk_store_member_delete(struct lk_store *s, const char *ws_id, const char *user_id)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->member_delete(s, ws_id, user_id));
}
enum lk_err lk_store_member_list(struct lk_store *s, const char *ws_id, lk_member_row_cb cb,
                                 void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->member_list(s, ws_id, cb, arg));
}
enum lk_err lk_store_member_list_user(struct lk_store *s, const char *user_id,
                                      lk_member_row_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->member_list_user(s, user_id, cb, arg));
}
enum lk_err lk_store_member_count(struct lk_store *s, const char *ws_id, enum lk_role role,
                                  int64_t *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->member_count(s, ws_id, role, out));
}
enum lk_err lk_store_session_insert(struct lk_store *s, const struct lk_session_row *r)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->session_insert(s, r));
}
enum lk_err lk_store_session_get(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN],
                                 struct lk_session_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->session_get(s, digest, out));
}
enum lk_err lk_store_session_delete(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN])
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->session_delete(s, digest));
}

enum lk_err lk_store_ws_set_quota(struct lk_store *s, const char *ws_id, int64_t quota,
                                  int64_t test_quota)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ws_set_quota(s, ws_id, quota, test_quota));
}
enum lk_err lk_store_credits_get(struct lk_store *s, const char *ws_id,
                                 struct lk_credit_account *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->credits_get(s, ws_id, out));
}
enum lk_err lk_store_credits_move(struct lk_store *s, const char *ws_id, int64_t d_balance,
                                  int64_t d_leased, int64_t d_spent, int64_t d_topped_up)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->credits_move(s, ws_id, d_balance, d_leased, d_spent, d_topped_up));
}
enum lk_err lk_store_credits_scan(struct lk_store *s, lk_credit_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->credits_scan(s, cb, arg));
}
enum lk_err lk_store_ledger_add(struct lk_store *s, struct lk_ledger_row *r)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ledger_add(s, r));
}
enum lk_err lk_store_ledger_list(struct lk_store *s, const char *ws_id, int64_t before_id,
                                 int limit, lk_ledger_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->ledger_list(s, ws_id, before_id, limit, cb, arg));
}
enum lk_err lk_store_counter_add(struct lk_store *s, enum lk_counter_kind kind,
                                 const struct lk_counter_row *r)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->counter_add(s, kind, r));
}
enum lk_err lk_store_counters_add(struct lk_store *s, const enum lk_counter_kind *kinds,
                                  const struct lk_counter_row *rows, size_t n)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->counters_add(s, kinds, rows, n));
}
enum lk_err lk_store_counter_raise(struct lk_store *s, enum lk_counter_kind kind,
                                   const struct lk_counter_row *r)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->counter_raise(s, kind, r));
}
enum lk_err lk_store_counter_scan(struct lk_store *s, enum lk_counter_kind kind, int64_t key_rowid,
                                  int64_t from, int64_t to, lk_counter_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->counter_scan(s, kind, key_rowid, from, to, cb, arg));
}
enum lk_err lk_store_usage_scan_ws(struct lk_store *s, const char *ws_id, int64_t from,
                                   int64_t to, lk_counter_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->usage_scan_ws(s, ws_id, from, to, cb, arg));
}
enum lk_err lk_store_permissions_in_use(struct lk_store *s, const char *ws_id, lk_string_cb cb,
                                        void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->permissions_in_use(s, ws_id, cb, arg));
}
enum lk_err lk_store_counter_prune(struct lk_store *s, int64_t usage_before, int64_t day_before)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->counter_prune(s, usage_before, day_before));
}

enum lk_err lk_store_invitation_insert(struct lk_store *s, const struct lk_invitation_row *r)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->invitation_insert(s, r));
}
enum lk_err lk_store_invitation_by_digest(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN],
                                          struct lk_invitation_row *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->invitation_by_digest(s, digest, out));
}
enum lk_err lk_store_invitation_delete(struct lk_store *s, const char *ws_id, const char *id)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->invitation_delete(s, ws_id, id));
}
enum lk_err lk_store_invitation_list(struct lk_store *s, const char *ws_id, int64_t now,
                                     lk_invitation_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->invitation_list(s, ws_id, now, cb, arg));
}
enum lk_err lk_store_invitation_count(struct lk_store *s, const char *ws_id, int64_t now,
                                      int64_t *out)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->invitation_count(s, ws_id, now, out));
}
enum lk_err lk_store_invitation_prune(struct lk_store *s, const char *ws_id, int64_t now)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->invitation_prune(s, ws_id, now));
}

/* The feed, nodes and leases: a backend without them answers "unavailable". */
#define OPTIONAL(op, ...)                                                                        \
    do {                                                                                         \
        uint64_t t0 = lk_stats_now_ns();                                                         \
        if (s->ops->op == NULL)                                                                  \
            return LK_ERR_STORAGE_UNAVAILABLE;                                                   \
        return timed(t0, s->ops->op(s, __VA_ARGS__));                                            \
    } while (0)

enum lk_err lk_store_changes_since(struct lk_store *s, int64_t after, int limit, lk_change_cb cb,
                                   void *arg)
{
    OPTIONAL(changes_since, after, limit, cb, arg);
}
enum lk_err lk_store_changes_head(struct lk_store *s, int64_t *out)
{
    OPTIONAL(changes_head, out);
}
enum lk_err lk_store_changes_wait(struct lk_store *s, int timeout_ms)
{
    /* not timed: it blocks by design */
    if (s->ops->changes_wait == NULL)
        return LK_ERR_STORAGE_UNAVAILABLE;
    return s->ops->changes_wait(s, timeout_ms);
}
enum lk_err lk_store_changes_prune(struct lk_store *s, int64_t before_at)
{
    OPTIONAL(changes_prune, before_at);
}
enum lk_err lk_store_key_get_by_rowid(struct lk_store *s, int64_t rowid, struct lk_key_row *out)
{
    memset(out, 0, sizeof(*out)); /* releasable after an error, as lk_store_key_get */
    OPTIONAL(key_get_by_rowid, rowid, out);
}
enum lk_err lk_store_node_put(struct lk_store *s, const struct lk_node_row *n)
{
    OPTIONAL(node_put, n);
}
enum lk_err lk_store_node_heartbeat(struct lk_store *s, const char *id, int64_t now)
{
    OPTIONAL(node_heartbeat, id, now);
}
enum lk_err lk_store_node_list(struct lk_store *s, lk_node_cb cb, void *arg)
{
    OPTIONAL(node_list, cb, arg);
}
enum lk_err lk_store_node_delete(struct lk_store *s, const char *id)
{
    OPTIONAL(node_delete, id);
}
enum lk_err lk_store_lease_move(struct lk_store *s, const char *ws_id, const char *node_id,
                                int64_t d)
{
    OPTIONAL(lease_move, ws_id, node_id, d);
}
enum lk_err lk_store_lease_mark(struct lk_store *s, const char *ws_id, const char *node_id,
                                int64_t op)
{
    OPTIONAL(lease_mark, ws_id, node_id, op);
}
enum lk_err lk_store_lease_scan(struct lk_store *s, const char *node_id, lk_lease_cb cb, void *arg)
{
    OPTIONAL(lease_scan, node_id, cb, arg);
}
enum lk_err lk_store_user_scan(struct lk_store *s, lk_user_row_cb cb, void *arg)
{
    OPTIONAL(user_scan, cb, arg);
}
enum lk_err lk_store_session_scan(struct lk_store *s, lk_session_row_cb cb, void *arg)
{
    OPTIONAL(session_scan, cb, arg);
}
enum lk_err lk_store_invitation_scan(struct lk_store *s, lk_invitation_cb cb, void *arg)
{
    OPTIONAL(invitation_scan, cb, arg);
}
enum lk_err lk_store_ws_import(struct lk_store *s, const struct lk_ws_row *w)
{
    OPTIONAL(ws_import, w);
}
enum lk_err lk_store_ledger_scan(struct lk_store *s, lk_ledger_cb cb, void *arg)
{
    OPTIONAL(ledger_scan, cb, arg);
}
enum lk_err lk_store_audit_scan(struct lk_store *s, lk_audit_cb cb, void *arg)
{
    OPTIONAL(audit_scan, cb, arg);
}

/* --- webhooks ------------------------------------------------------------------------- */

enum lk_err lk_store_hook_endpoint_insert(struct lk_store *s, const struct lk_hook_endpoint_row *r)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_endpoint_insert(s, r));
}
enum lk_err lk_store_hook_endpoint_list(struct lk_store *s, const char *ws_id,
                                        lk_hook_endpoint_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_endpoint_list(s, ws_id, cb, arg));
}
enum lk_err lk_store_hook_endpoint_delete(struct lk_store *s, const char *ws_id, const char *id)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_endpoint_delete(s, ws_id, id));
}
enum lk_err lk_store_hook_event_insert(struct lk_store *s, const struct lk_hook_event_row *r,
                                       int64_t due_ms, bool *inserted)
{
    uint64_t t0 = lk_stats_now_ns();
    bool ins = false;
    enum lk_err e = s->ops->hook_event_insert(s, r, due_ms, &ins);

    if (inserted != NULL)
        *inserted = e == LK_OK && ins;
    return timed(t0, e);
}
struct lk_hook_job *lk__hook_jobs_add(struct lk__hook_jobs *j)
{
    j->v = lk_grow(j->v, j->n, &j->cap, sizeof(*j->v));
    memset(&j->v[j->n], 0, sizeof(j->v[j->n]));
    return &j->v[j->n++];
}

enum lk_err lk_store_hook_claim(struct lk_store *s, const char *node_id, int64_t now_ms,
                                int64_t lease_until_ms, int limit, lk_hook_job_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();
    struct lk__hook_jobs j = {0};
    enum lk_err e = s->ops->hook_due(s, now_ms, limit, &j);

    for (size_t i = 0; i < j.n && e == LK_OK; i++) {
        /* A compare-and-set on the lease: a row another process or node took
         * between the read and now is skipped, whatever the isolation level. */
        e = s->ops->hook_lease(s, j.v[i].ev.id, j.v[i].ep.id, node_id, now_ms, lease_until_ms);
        if (e == LK_ERR_NOT_FOUND)
            e = LK_OK;
        else if (e == LK_OK && cb(arg, &j.v[i]) != 0)
            break;
    }
    free(j.v);
    return timed(t0, e);
}

enum lk_err lk_store_hook_attempt_done(struct lk_store *s, const char *node_id,
                                       const struct lk_hook_attempt_row *a,
                                       enum lk_hook_state state, int64_t next_ms)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_attempt_done(s, node_id, a, state, next_ms));
}
enum lk_err lk_store_hook_release(struct lk_store *s, const char *node_id)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_release(s, node_id));
}
enum lk_err lk_store_hook_attempt_list(struct lk_store *s, const char *ws_id,
                                       const char *endpoint_id, int64_t before_id, int limit,
                                       lk_hook_attempt_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_attempt_list(s, ws_id, endpoint_id, before_id, limit, cb, arg));
}
enum lk_err lk_store_hook_alarm(struct lk_store *s, const char *ws_id, const char *name, bool set,
                                int64_t now, bool *changed)
{
    uint64_t t0 = lk_stats_now_ns();
    bool ch = false;
    enum lk_err e = s->ops->hook_alarm(s, ws_id, name, set, now, &ch);

    if (changed != NULL)
        *changed = e == LK_OK && ch;
    return timed(t0, e);
}
enum lk_err lk_store_hook_threshold_set(struct lk_store *s, const char *ws_id, int64_t threshold)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_threshold_set(s, ws_id, threshold));
}
enum lk_err lk_store_hook_threshold_get(struct lk_store *s, const char *ws_id, int64_t *out)
{
    uint64_t t0 = lk_stats_now_ns();

    *out = -1;
    return timed(t0, s->ops->hook_threshold_get(s, ws_id, out));
}
enum lk_err lk_store_hook_key_spend(struct lk_store *s, int64_t key_rowid, int64_t day,
                                    int64_t *out)
{
    uint64_t t0 = lk_stats_now_ns();

    *out = 0;
    return timed(t0, s->ops->hook_key_spend(s, key_rowid, day, out));
}
enum lk_err lk_store_hook_workspaces(struct lk_store *s, lk_hook_ws_cb cb, void *arg)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_workspaces(s, cb, arg));
}
enum lk_err lk_store_hook_prune(struct lk_store *s, int64_t before_s, int64_t before_ms)
{
    uint64_t t0 = lk_stats_now_ns();

    return timed(t0, s->ops->hook_prune(s, before_s, before_ms));
}

enum lk_err lk_store_identity_insert(struct lk_store *s, const struct lk_identity_row *r)
{
    OPTIONAL(identity_insert, r);
}

enum lk_err lk_store_identity_get(struct lk_store *s, const char *ws_id, const char *id,
                                  struct lk_identity_row *out)
{
    OPTIONAL(identity_get, ws_id, id, out);
}

enum lk_err lk_store_identity_by_external(struct lk_store *s, const char *ws_id,
                                          const char *external_id, struct lk_identity_row *out)
{
    OPTIONAL(identity_by_external, ws_id, external_id, out);
}

enum lk_err lk_store_identity_list(struct lk_store *s, const char *ws_id, const char *after_id,
                                   int limit, lk_identity_row_cb cb, void *arg)
{
    OPTIONAL(identity_list, ws_id, after_id, limit, cb, arg);
}

enum lk_err lk_store_key_credits_put(struct lk_store *s, const struct lk_key_credit_row *r)
{
    OPTIONAL(key_credits_put, r);
}

enum lk_err lk_store_key_credits_get(struct lk_store *s, int64_t key_rowid,
                                     struct lk_key_credit_row *out)
{
    OPTIONAL(key_credits_get, key_rowid, out);
}
