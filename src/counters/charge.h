/*
 * charge.h — one check's limits, decided and applied from memory (DESIGN §4,
 * the rows after insufficient_permissions): daily spend cap, credits, rate
 * limit, quota, in that order, all four decisions and their effects under the
 * workspace's lock, so a refused check never counts or spends and concurrent
 * checks can never take more than there is.
 *
 * The service layer chooses the policy (which rate limit applies, the key's spend
 * cap, the cost) and maps the outcome to its answer (service/limits.c). With a
 * shared backend (counters/shared.h) the rate window, quota and day spend are
 * decided from this node's slices of them; a check that finds a slice short is
 * not decided: it returns what to refill, and lk_charge_refill() asks the
 * backend, off the event loop.
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_CHARGE_H
#define LK_CHARGE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "counters/counters.h"
#include "counters/shared.h"

/* A named rate limit one check applies (beside the key's own rl_limit):
 * `cost` of `limit` per window_ms, in the window kept by name_hash. */
#define LK_CHARGE_NAMED_MAX 8
struct lk_charge_named {
    uint64_t name_hash;
    int64_t limit, window_ms, cost;
};

/* The policy of one check, as the service chose it. */
struct lk_charge_req {
    int64_t cost;                 /* credits; 0: free (test keys spend nothing) */
    bool test;                    /* the key's environment: test keys count on the test quota */
    int64_t rl_limit, rl_window_s; /* rl_limit 0: no rate limit */
    int64_t spend_cap;            /* the key's daily spend cap; -1: none */
    struct lk_shared *shared;     /* the shared backend, NULL: this node alone decides */
    bool fail_open_rate_limits;   /* the shared backend down: the rate limit is this node's */
    int64_t now;                  /* Unix s */
    /* The key has its own credits (kept in the store, not here), which this
     * check's cost was taken from: a workspace that has never had credits
     * (no balance, lease or spending) then spends nothing. key_short: they
     * were fewer than the cost, refuse with insufficient credits in the
     * credits' place. */
    bool key_credits, key_short;
    /* Named rate limits, decided with the rate limit (this node's windows,
     * with or without a shared backend); n_named 0: none. */
    const struct lk_charge_named *named;
    int n_named;
    /* Nonzero: the shared counters found a named limit full (decided before
     * the call; 1 + its index): refuse with rate_limited in the rate limit's
     * place. Zero, as a request that does not set it leaves it: none. */
    int shared_named_full;
};

#define LK_CHARGE_RATE 1u
#define LK_CHARGE_QUOTA 2u
#define LK_CHARGE_SPEND 4u

/* What lk_charge_refill() asks the shared backend for. The states live as long
 * as the counters. */
struct lk_charge_refill {
    unsigned parts; /* LK_CHARGE_*; 0: no refill needed */
    int64_t key_rowid, cost, rl_limit, rl_window_s, quota, spend_cap;
    bool test;
    struct lk_wstate *ws;
    struct lk_kstate *st;
};

/* What the check found besides its outcome. */
/* Set on every call: has_rl, retry_after, has_cap, remaining_credits,
 * need_lease, refill.parts. The others only under their flag (rl_* with has_rl,
 * cap and spent_today with has_cap, the rest of refill with refill.parts), so a
 * check does not zero and copy what it never reads. */
struct lk_charge_out {
    bool has_rl; /* a rate limit applies */
    int64_t rl_limit, rl_remaining, rl_reset;
    int64_t retry_after; /* seconds, for a refusal that ends by itself; 0: none */
    bool has_cap;        /* the key has a daily spend cap (live keys) */
    int64_t cap, spent_today;
    int64_t remaining_credits; /* the balance after this check */
    /* With r->n_named: each named limit's state after the check, and which
     * refused it (-1: none of them). */
    int named_refused;
    struct lk_charge_named_out {
        int64_t remaining, reset_at_ms;
        bool exceeded;
    } named[LK_CHARGE_NAMED_MAX];
    /* Insufficient credits only because the lease in memory is short while the
     * stored balance covers the cost; or (refill.parts != 0, outcome
     * LK_ERR_STORAGE_UNAVAILABLE) a shared slice is short: nothing was decided. */
    bool need_lease;
    struct lk_charge_refill refill;
};

/* Decides one check of key st (of workspace ws) under r. LK_OK: counted and
 * spent, and queued for the recorder; otherwise the refusal (nothing applied):
 * LK_ERR_SPEND_CAP_EXCEEDED, LK_ERR_INSUFFICIENT_CREDITS, LK_ERR_RATE_LIMITED,
 * LK_ERR_QUOTA_EXCEEDED, or LK_ERR_STORAGE_UNAVAILABLE with out->refill set. */
enum lk_err lk_charge(struct lk_counters *c, struct lk_wstate *ws, struct lk_kstate *st,
                      const struct lk_charge_req *r, struct lk_charge_out *out /* OUT */);

/* Asks the shared backend for the slices r names (one round trip, bounded by
 * LK_SHARED_TIMEOUT_MS; blocks). One refill of a workspace at a time: one that
 * waited finds the slices the one before brought and asks for nothing. LK_OK
 * when the backend answered, granted or not; LK_ERR_STORAGE_UNAVAILABLE when it
 * is down (what was to be given back stays to be given back). */
enum lk_err lk_charge_refill(struct lk_shared *sh, const struct lk_charge_refill *r, int64_t now);

/* At a clean stop: gives sh back what this node holds of today's quota and day
 * spend, unspent. */
void lk_charge_give_back(struct lk_counters *c, struct lk_shared *sh, int64_t now);

#endif
