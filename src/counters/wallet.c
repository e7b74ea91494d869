#include "counters/wallet.h"

#include "counters/counters_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_wallet_get(struct lk_wstate *ws, struct lk_wallet *out)
{
    lk_wstate_lock(ws);
    *out = (struct lk_wallet){ws->recovered,  ws->avail,      ws->db_balance,
                              ws->unsaved_spend, ws->spent_total, ws->lease_size,
                              ws->last_lease_at, ws->lease_pending, ws->lease_op};
    lk_wstate_unlock(ws);
}

enum lk_err lk_wallet_serial(struct lk_wstate *ws, enum lk_err (*fn)(void *arg, struct lk_wstate *ws),
                             void *arg)
{
    enum lk_err e;

    pthread_mutex_lock(&ws->lease_mu);
    e = fn(arg, ws);
    pthread_mutex_unlock(&ws->lease_mu);
    return e;
}

/* Caller holds ws->mu. */
static void mark_locked(struct lk_wstate *ws, int64_t op, int64_t amount)
{
    ws->lease_op = op;
    atomic_signal_fence(memory_order_seq_cst); /* the mark first, then the pending amount */
    ws->lease_pending = amount;
}

void lk_wallet_mark(struct lk_wstate *ws, int64_t op, int64_t amount)
{
    lk_wstate_lock(ws);
    mark_locked(ws, op, amount);
    lk_wstate_unlock(ws);
}

int64_t lk_wallet_mark_return(struct lk_wstate *ws, int64_t op)
{
    int64_t give;

    lk_wstate_lock(ws);
    give = ws->avail;
    if (give > 0)
        mark_locked(ws, op, -give);
    lk_wstate_unlock(ws);
    return give > 0 ? give : 0;
}

void lk_wallet_unmark(struct lk_wstate *ws)
{
    lk_wstate_lock(ws);
    ws->lease_pending = 0;
    lk_wstate_unlock(ws);
}

void lk_wallet_moved(struct lk_wstate *ws, int64_t amount, int64_t lease_size, int64_t now)
{
    lk_wstate_lock(ws);
    ws->avail += amount;
    atomic_signal_fence(memory_order_seq_cst); /* avail first, then the mark goes */
    ws->lease_pending = 0;
    ws->db_balance -= amount;
    if (lease_size > 0) {
        ws->lease_size = lease_size;
        ws->last_lease_at = now;
    }
    lk_wstate_unlock(ws);
}

void lk_wallet_set_balance(struct lk_wstate *ws, int64_t balance)
{
    lk_wstate_lock(ws);
    ws->db_balance = balance;
    lk_wstate_unlock(ws);
}

void lk_wallet_load(struct lk_wstate *ws, int64_t balance, int64_t spent)
{
    lk_wstate_lock(ws);
    ws->db_balance = balance;
    ws->spent_total = spent;
    lk_wstate_unlock(ws);
}

int64_t lk_wallet_top_up(struct lk_wstate *ws, int64_t amount)
{
    int64_t balance;

    lk_wstate_lock(ws);
    ws->db_balance += amount;
    balance = ws->db_balance + ws->avail;
    lk_wstate_unlock(ws);
    return balance;
}

void lk_wallet_forget(struct lk_wstate *ws)
{
    lk_wstate_lock(ws);
    ws->avail = ws->unsaved_spend = 0;
    ws->lease_pending = 0;
    lk_wstate_unlock(ws);
}
