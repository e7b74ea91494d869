/*
 * wallet.h — a workspace's credits in memory: the lease this node took from the
 * stored balance (`avail`, spent by checks without a write, counters/charge.h),
 * a mirror of the stored balance outside it, and the spend not yet written.
 *
 * The service layer keeps the policy (when to lease, how much, the store's
 * writes in one transaction: service/credits.c); these operations keep the
 * numbers, each under the workspace lock. A lease write goes:
 *   lk_wallet_serial(ws, fn)        one lease operation of a workspace at a time
 *     lk_wallet_get()               what is held, to size the lease
 *     lk_wallet_mark(op, amount)    in the counter file before the write
 *     (the store's transaction, which writes `op` on the stored lease)
 *     lk_wallet_moved(amount, …)    committed: memory holds it, the mark goes
 *     or lk_wallet_unmark()         not committed
 * so a process killed anywhere in between leaves a file that says, with the
 * stored lease's mark, whether the write committed (docs/internals/limits.md, "Money").
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_WALLET_H
#define LK_WALLET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "counters/counters.h"

/* A consistent snapshot of a workspace's credit state (all read under one lock). */
struct lk_wallet {
    bool recovered;        /* read back from the counter file: a dead process's, exact */
    int64_t avail;         /* leased, not yet spent */
    int64_t db_balance;    /* the stored balance outside any lease, as last known */
    int64_t unsaved_spend; /* spent, not yet written */
    int64_t spent_total;   /* what the stored `spent` must become */
    int64_t lease_size, last_lease_at; /* the last lease's size and time (Unix s) */
    int64_t lease_pending, lease_op;   /* a lease write under way (0: none) and its mark */
};

void lk_wallet_get(struct lk_wstate *ws, struct lk_wallet *out /* OUT */);

/* Runs fn(arg, ws) as the workspace's one lease operation at a time (the
 * store's write may run inside it; checks go on meanwhile) and returns its
 * result. */
enum lk_err lk_wallet_serial(struct lk_wstate *ws, enum lk_err (*fn)(void *arg, struct lk_wstate *ws),
                             void *arg);

/* A lease write of `amount` (> 0 taken from the balance, < 0 given back) with
 * mark `op` is under way: the mark first, then the amount. */
void lk_wallet_mark(struct lk_wstate *ws, int64_t op, int64_t amount);
/* The same for giving back all that is leased, taken in the same instant;
 * returns how much (0: nothing leased, nothing marked). */
int64_t lk_wallet_mark_return(struct lk_wstate *ws, int64_t op);
/* The marked write did not commit. */
void lk_wallet_unmark(struct lk_wstate *ws);
/* The marked write of `amount` committed: the lease holds it (the balance
 * mirror the less), then the mark goes. lease_size > 0 records the lease's size
 * and `now` as its time. */
void lk_wallet_moved(struct lk_wstate *ws, int64_t amount, int64_t lease_size, int64_t now);

/* The stored balance, read again (the mirror was high: another node leased). */
void lk_wallet_set_balance(struct lk_wstate *ws, int64_t balance);
/* At start: the stored balance and `spent`. */
void lk_wallet_load(struct lk_wstate *ws, int64_t balance, int64_t spent);
/* A committed top-up of `amount`; returns the balance a client sees. */
int64_t lk_wallet_top_up(struct lk_wstate *ws, int64_t amount);
/* The lease and the unsaved spend are the store's again (booked as lost). */
void lk_wallet_forget(struct lk_wstate *ws);

#endif
