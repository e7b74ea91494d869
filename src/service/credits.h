/*
 * credits.h — a workspace's credit balance (Flowy; DESIGN §1 Credits): top-ups,
 * the ledger, and the leases that let checks spend from memory without ever
 * spending more than was topped up (docs/http-api.md "Never overspent").
 *
 * The store keeps balance, leased, spent and topped_up with topped_up = balance +
 * leased + spent. A lease moves credits from balance to leased, durably, before
 * any of them is spent; the recorder writes what was spent every second (leased
 * → spent); a clean stop returns the rest. Each lease belongs to the node that
 * took it (the store's credit_leases, moved in the same transaction as the
 * account): a node restarted on its state directory settles its own exactly
 * from its counter file; another node's lease is reclaimed only once that node's
 * heartbeat stopped (LK_NODE_DEAD_AFTER_S), and recorded as spent
 * (`lease_lost`): unknown spending is never spent twice.
 */
#ifndef LK_CREDITS_H
#define LK_CREDITS_H

#include <stdint.h>

#include "core/err.h"
#include "service/app.h"
#include "service/auth.h"

struct lk_wstate; /* counters/counters.h */

#define LK_LEASE_MIN 16
#define LK_LEASE_MAX 1000000
#define LK_CREDITS_MAX ((INT64_C(1) << 53) - 1) /* larger totals do not survive JSON */

/* At start: with `reclaim` (a serving node, app->node set) settles what this
 * node's last run left and what dead nodes left. With `recovered` (its counter
 * file was read back, exact) the store's counts are raised to the file's and of
 * each of its own leases exactly what it spent is booked, the rest returned; a
 * lease the file does not account for, a dead node's and one no node holds are
 * recorded as spent (`lease_lost`). Then loads balances, the quota days of the
 * window, today's spend and this hour's usage of every key into the counters. */
enum lk_err lk_credits_load(struct lk_app *app, bool reclaim, bool recovered, int64_t now);

/* Leases credits for workspace ws so that at least `need` are available in
 * memory, if the stored balance allows; need 0 tops up a lease that ran below
 * half its size (the recorder, ahead of demand). From a management worker or
 * the recorder, never an event loop (it writes the store). */
enum lk_err lk_credits_lease(struct lk_app *app, struct lk_wstate *ws, int64_t need, int64_t now);

/* Returns every unspent lease to the stored balance (clean stop, after the last
 * write of spending). */
void lk_credits_release(struct lk_app *app);

/* Books `amount` of this node's lease of ws_id as spent (leased → spent) inside
 * the caller's transaction. LK_ERR_CONFLICT, with nothing written, when the
 * node's lease is smaller: it was reclaimed while the node was taken for dead,
 * and counted as spent then. */
enum lk_err lk_credits_book_spend(struct lk_app *app, const char *ws_id, int64_t amount);

/* A node seen with the same heartbeat_at for LK_NODE_DEAD_AFTER_S. */
struct lk_dead_node {
    char id[LK_ID_MAX];
    int64_t heartbeat_at;
};

/* Reclaims, in one transaction, the leases of the nodes in dead[0..n) other
 * than `self` whose stored heartbeat_at is still the one given (a node that beat
 * since is alive), and deletes those nodes. */
enum lk_err lk_credits_reclaim_dead(struct lk_app *app, const char *self,
                                    const struct lk_dead_node *dead, size_t n, int64_t now);

/* This node was taken for dead and its leases reclaimed: what memory holds of
 * them is forgotten (it was counted as spent). */
void lk_credits_forget_leases(struct lk_app *app);

/* Reads every stored balance into the counters' mirrors: other nodes top up
 * and lease too. */
enum lk_err lk_credits_refresh(struct lk_app *app);

/* Credits leased into memory and not yet spent, over every workspace (a
 * gauge for /metrics; memory only, safe from an event loop). */
int64_t lk_credits_leased(struct lk_app *app);

/* The account as the workspace sees it now (unwritten spending included). */
enum lk_err lk_credits_get(struct lk_app *app, const char *ws_id,
                           struct lk_credit_account *out /* OUT */);

/* Adds `amount` to the balance of who's workspace, with a ledger entry and an
 * audit event, in one transaction (`who` holds credits:write). *entry gets the
 * ledger entry, *balance the balance after it. LK_ERR_CONFLICT when the total
 * topped up would pass LK_CREDITS_MAX. */
enum lk_err lk_credits_top_up(struct lk_app *app, const struct lk_actor *who, int64_t amount,
                              const char *note, int64_t now, struct lk_ledger_row *entry /* OUT */,
                              int64_t *balance /* OUT */);

/* The ledger of who's workspace, newest first, entries with id < before_id (0:
 * from the newest), at most `limit`; each (borrowed) goes to cb. */
enum lk_err lk_credits_ledger(struct lk_app *app, const struct lk_actor *who, int64_t before_id,
                              int limit, lk_ledger_cb cb, void *arg);

#endif
