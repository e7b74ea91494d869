/*
 * store_int.h — what a storage backend implements. Private to src/store/.
 */
#ifndef LK_STORE_INT_H
#define LK_STORE_INT_H

#include "store/store.h"

/* Deliveries a backend found due (lk_store_hook_claim). */
struct lk__hook_jobs {
    struct lk_hook_job *v;
    size_t n, cap;
};

/* A new, zeroed slot at the end of j. */
struct lk_hook_job *lk__hook_jobs_add(struct lk__hook_jobs *j);

struct lk_store_ops {
    const char *scheme; /* URL scheme with its colon: "sqlite:" */
    enum lk_err (*open)(const char *url, struct lk_store **out, struct lk_errinfo *ei);
    void (*close)(struct lk_store *s);
    enum lk_err (*ping)(struct lk_store *s);
    enum lk_err (*begin)(struct lk_store *s);
    enum lk_err (*commit)(struct lk_store *s);
    void (*rollback)(struct lk_store *s);
    enum lk_err (*begin_background)(struct lk_store *s);
    /* True when the last failed statement or commit may succeed if the whole
     * transaction runs again (NULL: never). */
    bool (*retryable)(struct lk_store *s);
    enum lk_err (*ws_insert)(struct lk_store *s, struct lk_ws_row *w);
    enum lk_err (*ws_get)(struct lk_store *s, const char *id, struct lk_ws_row *out);
    enum lk_err (*ws_list)(struct lk_store *s, lk_ws_row_cb cb, void *arg);
    enum lk_err (*ws_count)(struct lk_store *s, int64_t *out);
    enum lk_err (*key_insert)(struct lk_store *s, struct lk_key_row *k);
    enum lk_err (*keys_insert)(struct lk_store *s, struct lk_key_row *k, size_t n);
    enum lk_err (*key_update)(struct lk_store *s, const struct lk_key_row *k);
    enum lk_err (*key_get)(struct lk_store *s, const char *ws_id, const char *id,
                           struct lk_key_row *out);
    enum lk_err (*key_list)(struct lk_store *s, const char *ws_id, const struct lk_key_filter *f,
                            lk_key_row_cb cb, void *arg);
    enum lk_err (*key_scan)(struct lk_store *s, enum lk_key_cols cols, int64_t after,
                            int64_t upto, lk_key_row_cb cb, void *arg);
    enum lk_err (*key_rowid_max)(struct lk_store *s, int64_t *out);
    enum lk_err (*keys_touch)(struct lk_store *s, const struct lk_touch *t, size_t n);
    enum lk_err (*audit_insert)(struct lk_store *s, const struct lk_audit_row *a);
    enum lk_err (*audit_list)(struct lk_store *s, const char *ws_id,
                              const struct lk_audit_filter *f, int64_t before_id, int limit,
                              lk_audit_cb cb, void *arg);
    enum lk_err (*usage_scan_ws)(struct lk_store *s, const char *ws_id, int64_t from, int64_t to,
                                 lk_counter_cb cb, void *arg);
    enum lk_err (*permissions_in_use)(struct lk_store *s, const char *ws_id, lk_string_cb cb,
                                      void *arg);
    enum lk_err (*ws_get_by_number)(struct lk_store *s, int64_t number, struct lk_ws_row *out);
    enum lk_err (*user_insert)(struct lk_store *s, const struct lk_user_row *u);
    enum lk_err (*user_by_email)(struct lk_store *s, const char *email, struct lk_user_row *out);
    enum lk_err (*user_get)(struct lk_store *s, const char *id, struct lk_user_row *out);
    enum lk_err (*member_put)(struct lk_store *s, const struct lk_member_row *m);
    enum lk_err (*member_get)(struct lk_store *s, const char *ws_id, const char *user_id,
                              struct lk_member_row *out);
    enum lk_err (*member_delete)(struct lk_store *s, const char *ws_id, const char *user_id);
    enum lk_err (*member_list)(struct lk_store *s, const char *ws_id, lk_member_row_cb cb,
                               void *arg);
    enum lk_err (*member_list_user)(struct lk_store *s, const char *user_id, lk_member_row_cb cb,
                                    void *arg);
    enum lk_err (*member_count)(struct lk_store *s, const char *ws_id, enum lk_role role,
                                int64_t *out);
    enum lk_err (*session_insert)(struct lk_store *s, const struct lk_session_row *r);
    enum lk_err (*session_get)(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN],
                               struct lk_session_row *out);
    enum lk_err (*session_delete)(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN]);
    enum lk_err (*ws_set_quota)(struct lk_store *s, const char *ws_id, int64_t quota,
                                int64_t test_quota);
    enum lk_err (*credits_get)(struct lk_store *s, const char *ws_id,
                               struct lk_credit_account *out);
    enum lk_err (*credits_move)(struct lk_store *s, const char *ws_id, int64_t d_balance,
                                int64_t d_leased, int64_t d_spent, int64_t d_topped_up);
    enum lk_err (*credits_scan)(struct lk_store *s, lk_credit_cb cb, void *arg);
    enum lk_err (*ledger_add)(struct lk_store *s, struct lk_ledger_row *r);
    enum lk_err (*ledger_list)(struct lk_store *s, const char *ws_id, int64_t before_id, int limit,
                               lk_ledger_cb cb, void *arg);
    enum lk_err (*counter_add)(struct lk_store *s, enum lk_counter_kind kind,
                               const struct lk_counter_row *r);
    enum lk_err (*counters_add)(struct lk_store *s, const enum lk_counter_kind *kinds,
                                const struct lk_counter_row *rows, size_t n);
    enum lk_err (*counter_raise)(struct lk_store *s, enum lk_counter_kind kind,
                                 const struct lk_counter_row *r);
    enum lk_err (*counter_scan)(struct lk_store *s, enum lk_counter_kind kind, int64_t key_rowid,
                                int64_t from, int64_t to, lk_counter_cb cb, void *arg);
    enum lk_err (*counter_prune)(struct lk_store *s, int64_t usage_before, int64_t day_before);
    enum lk_err (*invitation_insert)(struct lk_store *s, const struct lk_invitation_row *r);
    enum lk_err (*invitation_by_digest)(struct lk_store *s, const uint8_t digest[LK_DIGEST_LEN],
                                        struct lk_invitation_row *out);
    enum lk_err (*invitation_delete)(struct lk_store *s, const char *ws_id, const char *id);
    enum lk_err (*invitation_list)(struct lk_store *s, const char *ws_id, int64_t now,
                                   lk_invitation_cb cb, void *arg);
    enum lk_err (*invitation_prune)(struct lk_store *s, const char *ws_id, int64_t now);
    enum lk_err (*invitation_count)(struct lk_store *s, const char *ws_id, int64_t now,
                                    int64_t *out);
    enum lk_err (*changes_since)(struct lk_store *s, int64_t after, int limit, lk_change_cb cb,
                                 void *arg);
    enum lk_err (*changes_head)(struct lk_store *s, int64_t *out);
    enum lk_err (*changes_wait)(struct lk_store *s, int timeout_ms);
    enum lk_err (*changes_prune)(struct lk_store *s, int64_t before_at);
    enum lk_err (*key_get_by_rowid)(struct lk_store *s, int64_t rowid, struct lk_key_row *out);
    enum lk_err (*node_put)(struct lk_store *s, const struct lk_node_row *n);
    enum lk_err (*node_heartbeat)(struct lk_store *s, const char *id, int64_t now);
    enum lk_err (*node_list)(struct lk_store *s, lk_node_cb cb, void *arg);
    enum lk_err (*node_delete)(struct lk_store *s, const char *id);
    enum lk_err (*lease_move)(struct lk_store *s, const char *ws_id, const char *node_id,
                              int64_t d);
    enum lk_err (*lease_mark)(struct lk_store *s, const char *ws_id, const char *node_id,
                              int64_t op);
    enum lk_err (*lease_scan)(struct lk_store *s, const char *node_id, lk_lease_cb cb, void *arg);
    enum lk_err (*user_scan)(struct lk_store *s, lk_user_row_cb cb, void *arg);
    enum lk_err (*session_scan)(struct lk_store *s, lk_session_row_cb cb, void *arg);
    enum lk_err (*invitation_scan)(struct lk_store *s, lk_invitation_cb cb, void *arg);
    enum lk_err (*ws_import)(struct lk_store *s, const struct lk_ws_row *w);
    enum lk_err (*ledger_scan)(struct lk_store *s, lk_ledger_cb cb, void *arg);
    enum lk_err (*audit_scan)(struct lk_store *s, lk_audit_cb cb, void *arg);
    /* webhooks */
    enum lk_err (*hook_endpoint_insert)(struct lk_store *s, const struct lk_hook_endpoint_row *r);
    enum lk_err (*hook_endpoint_list)(struct lk_store *s, const char *ws_id,
                                      lk_hook_endpoint_cb cb, void *arg);
    enum lk_err (*hook_endpoint_delete)(struct lk_store *s, const char *ws_id, const char *id);
    enum lk_err (*hook_event_insert)(struct lk_store *s, const struct lk_hook_event_row *r,
                                     int64_t due_ms, bool *inserted);
    /* Fills jobs with at most `limit` pending deliveries due at now_ms whose
     * lease has ended; hook_lease then takes one (LK_ERR_NOT_FOUND: another
     * process did first). store.c puts them together (lk_store_hook_claim). */
    enum lk_err (*hook_due)(struct lk_store *s, int64_t now_ms, int limit,
                            struct lk__hook_jobs *jobs);
    enum lk_err (*hook_lease)(struct lk_store *s, const char *event_id, const char *endpoint_id,
                              const char *node_id, int64_t now_ms, int64_t lease_until_ms);
    enum lk_err (*hook_attempt_done)(struct lk_store *s, const char *node_id,
                                     const struct lk_hook_attempt_row *a, enum lk_hook_state state,
                                     int64_t next_ms);
    enum lk_err (*hook_release)(struct lk_store *s, const char *node_id);
    enum lk_err (*hook_attempt_list)(struct lk_store *s, const char *ws_id,
                                     const char *endpoint_id, int64_t before_id, int limit,
                                     lk_hook_attempt_cb cb, void *arg);
    enum lk_err (*hook_alarm)(struct lk_store *s, const char *ws_id, const char *name, bool set,
                              int64_t now, bool *changed);
    enum lk_err (*hook_threshold_set)(struct lk_store *s, const char *ws_id, int64_t threshold);
    enum lk_err (*hook_threshold_get)(struct lk_store *s, const char *ws_id, int64_t *out);
    enum lk_err (*hook_prune)(struct lk_store *s, int64_t before_s, int64_t before_ms);
    enum lk_err (*hook_workspaces)(struct lk_store *s, lk_hook_ws_cb cb, void *arg);
    enum lk_err (*hook_key_spend)(struct lk_store *s, int64_t key_rowid, int64_t day,
                                  int64_t *out);
    enum lk_err (*identity_insert)(struct lk_store *s, const struct lk_identity_row *r);
    enum lk_err (*identity_get)(struct lk_store *s, const char *ws_id, const char *id,
                                struct lk_identity_row *out);
    enum lk_err (*identity_by_external)(struct lk_store *s, const char *ws_id,
                                        const char *external_id, struct lk_identity_row *out);
    enum lk_err (*identity_list)(struct lk_store *s, const char *ws_id, const char *after_id,
                                 int limit, lk_identity_row_cb cb, void *arg);
    enum lk_err (*key_credits_put)(struct lk_store *s, const struct lk_key_credit_row *r);
    enum lk_err (*key_credits_get)(struct lk_store *s, int64_t key_rowid,
                                   struct lk_key_credit_row *out);
};

/* Every backend's handle starts with this. */
struct lk_store {
    const struct lk_store_ops *ops;
};

extern const struct lk_store_ops lk__store_sqlite_ops;
/* PostgreSQL, under both of its URL schemes */
extern const struct lk_store_ops lk__store_pg_ops, lk__store_pgsql_ops;

#endif
