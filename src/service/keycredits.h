/*
 * keycredits.h — a key's own credits (beside its workspace's balance), spent
 * in the store, one transaction a check: the number a management write set
 * (keys.credits_remaining of credits_gen) less what checks spent of it since
 * (key_credits), refilled lazily by the first check after a refill boundary
 * (UTC). The store is the one place that holds it, so it is exact across
 * kill -9 and across nodes whatever the counters are (in-process or Redis),
 * and a refill happens once: the transaction that sees the boundary first
 * writes it. Only checks of keys that have own credits, and a cost, come here
 * (off the event loop, in lk_verify_leasing); docs/internals/limits.md.
 */
#ifndef LK_KEYCREDITS_H
#define LK_KEYCREDITS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

/* What a reservation found. */
struct lk_key_spend {
    bool none;    /* the key has no own credits (removed since it was cached) */
    bool short_;  /* fewer than the cost: nothing spent (a due refill is written) */
    int64_t left; /* the key's credits after the reservation */
    int64_t gen;  /* the credits_gen it was made in */
    int64_t period; /* the refill period it was taken from (0: no refill) */
};

/* The key's own credits at `now` as k (a stored row) has them, a refill due at
 * now counted as done (nothing written); -1 when k has none. */
int64_t lk_keycredits_now(const struct lk_key_row *k, int64_t now);

/* Takes `cost` from the own credits of the key with this rowid, in one
 * transaction, refilling first if a refill is due at now. LK_OK with *out
 * saying what happened; LK_ERR_STORAGE_UNAVAILABLE (nothing taken). */
enum lk_err lk_keycredits_reserve(struct lk_store *store, int64_t rowid, int64_t cost,
                                  int64_t now, struct lk_key_spend *out /* OUT */);

/* Gives back a reservation whose check was refused after it (a rate limit,
 * the quota, the workspace's balance), unless a management write replaced
 * the number since. */
enum lk_err lk_keycredits_refund(struct lk_store *store, int64_t rowid,
                                 const struct lk_key_spend *sp, int64_t cost);

#endif
