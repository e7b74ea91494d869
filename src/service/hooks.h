/*
 * hooks.h — signed webhooks (docs/webhooks.md): a workspace's endpoints, the
 * events that reach them, and their delivery, in the Standard Webhooks
 * convention (webhook-id, webhook-timestamp, webhook-signature: v1,...).
 *
 * Events live in an outbox in the store. Those of management calls (a key
 * created, revoked, leaked) are written by the call's own transaction
 * (lk_hooks_key_created / _changed / _leaked), so an acknowledged change has
 * its event. Those of checks (spend cap, credits, quota) are never looked for
 * on the verification path: the recorder hands what each flush wrote to
 * lk_hooks_observe(), which copies a few ids to this module's writer thread;
 * the writer decides crossings from memory and the store and writes events
 * with ids derived from what crossed, gated by an alarm row, so a second
 * detection (a restart, another node) never makes a second event.
 *
 * A delivery thread claims due deliveries under an expiring lease, signs and
 * POSTs them through the sender the http layer sets (lk_hooks_set_sender),
 * and retries failures with exponential backoff and jitter up to a bounded
 * number of attempts; a node that restarts takes its own leases back at once,
 * so a delivery cut by kill -9 is sent again with the same webhook-id.
 *
 * Secrets: an endpoint's signing key is HMAC-SHA256(master key, endpoint id,
 * salt); the store keeps only the salt. The master key is a file
 * (webhook_key_file), made beside an SQLite database on first use.
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_HOOKS_H
#define LK_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/hooksig.h"
#include "service/auth.h"

/* Event types, as sent in `type` and named in an endpoint's `events`. */
#define LK_HOOK_TYPES(X)                                                                           \
    X("key.created")                                                                               \
    X("key.revoked")                                                                               \
    X("key.leaked")                                                                                \
    X("spend_cap.reached")                                                                         \
    X("credits.low")                                                                               \
    X("quota.warning")                                                                             \
    X("quota.exhausted")

#define LK_HOOKS_MAX_ENDPOINTS 16 /* per workspace */
#define LK_HOOKS_MAX_EVENTS 16    /* names in one endpoint's events[] */
#define LK_HOOKS_LOG_MAX 100      /* attempts in one page of the delivery log */

struct lk_hooks;
struct lk_app;
struct lk_hook_endpoint_row;

/* --- the sender (the http layer's client) ------------------------------------------ */

/* One POST to make. The sender reads the inputs and fills status (the HTTP
 * status; 0 when there was none) and error (a short reason when no 2xx). */
struct lk_hook_request {
    const struct lk_hookurl *url;
    const struct sockaddr *addr; /* the checked address to connect to (port set) */
    unsigned addrlen;
    const char *headers; /* "webhook-id: ...\r\n..." lines, each ending in CRLF */
    const char *body;
    size_t len;
    int status;
    char error[201];
};

/* Starts start[0..nstart) (each request stays the caller's and must stay valid
 * until handed back; each ends within timeout_ms of its start), then waits at
 * most wait_ms for requests in flight to end and hands back those that ended
 * (status and error set) in done[0..cap), returning their count; the others
 * go on, each ending on its own. At most LK_HOOK_IN_FLIGHT are in flight.
 * Called from the delivery thread only; once more with start NULL and
 * wait_ms < 0 when that thread ends: what is in flight is dropped (never handed
 * back) and what the sender keeps for the thread is freed. */
#define LK_HOOK_IN_FLIGHT 16
typedef size_t (*lk_hook_send_fn)(struct lk_hook_request *const *start, size_t nstart,
                                  int64_t timeout_ms, int64_t wait_ms,
                                  struct lk_hook_request **done, size_t cap);

/* --- life ---------------------------------------------------------------------------- */

/* Reads or makes the master key (errors in ei: a key file that cannot be read
 * or is shorter than 32 bytes). Starts the writer and delivery threads when
 * `serving` (a node id is needed). Caller frees with lk_hooks_free(). */
enum lk_err lk_hooks_new(struct lk_app *app, const struct lk_hooks_config *cfg, const char *db_url,
                         const char *node_id, bool serving, struct lk_hooks **out /* OUT */,
                         struct lk_errinfo *ei);
void lk_hooks_free(struct lk_hooks *h);

/* The http layer's client; deliveries wait for one. */
void lk_hooks_set_sender(struct lk_app *app, lk_hook_send_fn fn);

/* --- events written by management transactions (call inside the txn, on s) -------- */

enum lk_err lk_hooks_key_created(struct lk_store *s, const struct lk_actor *who,
                                 const struct lk_key_row *k, int64_t now);
/* key.revoked when `old` was live and `k` is revoked; key.leaked instead when
 * action names a leak; nothing otherwise. */
enum lk_err lk_hooks_key_changed(struct lk_store *s, const struct lk_actor *who, const char *action,
                                 const struct lk_key_row *old, const struct lk_key_row *k,
                                 int64_t now);
/* key.leaked for key k, reported by `source` (a URL, may be NULL), for the
 * leak-report path's own transaction. */
enum lk_err lk_hooks_key_leaked(struct lk_store *s, const struct lk_key_row *k, const char *source,
                                int64_t now);

/* --- what the recorder wrote (usage.c) -------------------------------------------- */

struct lk_counters_batch;
/* Copies the ids of the workspaces and keys of b whose thresholds may have
 * moved to the writer thread. Never blocks on the store. h may be NULL. */
void lk_hooks_observe(struct lk_hooks *h, const struct lk_counters_batch *b, int64_t now);

/* --- management (confined to who's workspace) ------------------------------------- */

struct lk_hook_spec {
    const char *url;
    size_t url_len;
    const char *events[LK_HOOKS_MAX_EVENTS];
    size_t nevents;
    const char *description; /* may be NULL */
};

/* Adds an endpoint. *out is the row; secret gets its signing secret (shown
 * once; caller wipes). LK_ERR_INVALID_REQUEST (ei) for a bad URL or event,
 * LK_ERR_CONFLICT when the workspace has LK_HOOKS_MAX_ENDPOINTS or the server
 * has no master key (PostgreSQL without webhook_key_file). */
enum lk_err lk_hooks_create(struct lk_app *app, const struct lk_actor *who,
                            const struct lk_hook_spec *spec, int64_t now,
                            struct lk_hook_endpoint_row *out /* OUT */,
                            char secret[LK_HOOKSIG_SECRET_MAX] /* OUT */, struct lk_errinfo *ei);
enum lk_err lk_hooks_list(struct lk_app *app, const struct lk_actor *who, lk_hook_endpoint_cb cb,
                          void *arg);
/* LK_ERR_NOT_FOUND for another workspace's endpoint or none. */
enum lk_err lk_hooks_delete(struct lk_app *app, const struct lk_actor *who, const char *id,
                            int64_t now);
enum lk_err lk_hooks_deliveries(struct lk_app *app, const struct lk_actor *who, const char *id,
                                int64_t before_id, int limit, lk_hook_attempt_cb cb, void *arg);
/* The workspace's credits-low threshold (-1: none). */
enum lk_err lk_hooks_threshold_get(struct lk_app *app, const struct lk_actor *who,
                                   int64_t *out /* OUT */);
enum lk_err lk_hooks_threshold_set(struct lk_app *app, const struct lk_actor *who,
                                   int64_t threshold, int64_t now);

#endif
