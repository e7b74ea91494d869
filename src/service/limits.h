/*
 * limits.h — what a key may do and spend (DESIGN §4, the rows after
 * insufficient_permissions): daily spend cap, credits, rate limit, quota, checked
 * in that order, from memory. This module chooses the policy (which rate limit
 * applies, the key's cap) and lk_charge() (counters/charge.h) decides. The effects — a rate-limit
 * count, a quota count, the spend — happen only when every check passes, all
 * under the workspace's lock, so a refused check never counts or spends and
 * concurrent checks can never take more than there is.
 */
#ifndef LK_LIMITS_H
#define LK_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "service/app.h"

/* A named rate limit a check asks to apply, with its cost (>= 0; 1 when the
 * request gave none). The key's auto_apply limits apply with cost 1 unless
 * named here. */
struct lk_rl_use {
    const char *name;
    size_t name_len;
    int64_t cost;
};

/* What a check of a key with the rare parts decided off the event loop
 * (lk_verify_leasing) before it is decided again: its own credits, reserved
 * in the store, and, with shared counters, its named limits, taken from them. */
enum lk_key_credits_state {
    LK_KC_UNDECIDED = 0,
    LK_KC_RESERVED, /* the cost is taken: key_credits_left is what is left */
    LK_KC_SHORT,    /* fewer than the cost: key_credits_left is what there is */
    LK_KC_NONE,     /* the key has no own credits after all */
};

enum lk_named_state {
    LK_NAMED_UNDECIDED = 0,
    LK_NAMED_TAKEN,   /* counted by the shared counters (named_count, named_ttl_ms) */
    LK_NAMED_REFUSED, /* named_refused had no room: nothing counted */
    LK_NAMED_LOCAL,   /* the shared counters are down and rate limits fail open */
};

struct lk_limits_prior {
    enum lk_key_credits_state key_credits;
    int64_t key_credits_left;
    enum lk_named_state named;
    int named_refused, n_named;
    struct lk_prior_named {
        uint64_t name_hash;
        int64_t limit, window_ms, cost;
        int64_t count, ttl_ms; /* the window's count after the call, ms until it closes */
    } nl[LK_KEY_RATE_LIMITS_MAX];
};

/* lk_limits_info.ext: what a check of a key with the rarely used parts
 * (struct lk_ckey_ext) reports. */
#define LK_INFO_KEY_CREDITS 1u      /* key_credits_remaining (and _short) are set */
#define LK_INFO_NAMED 2u            /* n_named, named[] and rl_refused are set */
#define LK_INFO_NEED_KEY_CREDITS 4u /* with need_lease: reserve the key's own credits */
#define LK_INFO_NEED_NAMED 8u       /* with need_lease: take the named limits (shared) */

/* What the answer reports besides the outcome. */
/* lk_verify and lk_limits_apply always set has_rl, retry_after, has_cap,
 * remaining_credits, need_lease and refill.parts; rl_* are meaningful only
 * with has_rl, cap and spent_today only with has_cap, the rest of refill only
 * with refill.parts (left unset otherwise: a check zeroes none of it). */
struct lk_limits_info {
    bool has_rl;      /* a rate limit applies: the RateLimit-* headers */
    int64_t rl_limit, rl_remaining, rl_reset;
    int64_t retry_after; /* seconds, for a 429 or 402 that ends by itself; 0: none */
    bool has_cap;        /* the key has a daily spend cap (live keys) */
    int64_t cap, spent_today;
    int64_t remaining_credits; /* the balance after this check */
    /* The outcome was insufficient_credits only because the lease in memory is
     * short while the stored balance could cover the cost: lease
     * (lk_credits_lease) and check again, off the event loop. */
    bool need_lease;
    /* With shared counters (--redis): need_lease is also set when a slice of
     * the shared rate window, quota or day spend is short; refill with
     * lk_limits_refill(refill) off the event loop and check again. */
    struct lk_limits_refill {
        unsigned parts; /* LK_REFILL_*; 0: no refill needed */
        int64_t key_rowid, cost, rl_limit, rl_window_s, quota, spend_cap;
        bool test;
        struct lk_wstate *ws; /* live as long as the app */
        struct lk_kstate *st;
    } refill;
    /* LK_INFO_*: set on every check (0 for a key without the rare parts);
     * the fields below only under their bit. */
    unsigned ext;
    int64_t key_credits_remaining; /* the key's own credits after this check */
    bool key_credits_short;        /* they refused it (insufficient_credits) */
    /* The named limits the check applied, "default" (has_rl) excepted, in the
     * key's order; names point into the key's cache entry (valid as long as
     * it). rl_refused: the one that refused (LK_ERR_RATE_LIMITED), -1 none or
     * "default". */
    int n_named, rl_refused;
    int rl_unknown; /* with LK_ERR_INVALID_REQUEST: the index of the unknown name */
    struct lk_rl_applied {
        const char *name;
        size_t name_len;
        int64_t limit, remaining, reset_at; /* reset_at: Unix ms */
        bool exceeded;
    } named[LK_KEY_RATE_LIMITS_MAX];
};

#define LK_REFILL_RATE 1u
#define LK_REFILL_QUOTA 2u
#define LK_REFILL_SPEND 4u

/* The state of key k, made on its first check. Call inside the cache read lock. */
struct lk_kstate *lk_limits_state(struct lk_app *app, const struct lk_ckey *k);

/* Applies the limits to one check of key k (which passed every earlier check) at
 * `now` with `cost` credits. Returns LK_OK (and counted, spent), or the refusal. */
enum lk_err lk_limits_apply(struct lk_app *app, const struct lk_ckey *k, int64_t cost, int64_t now,
                            struct lk_limits_info *info /* OUT */);

/* lk_limits_apply for a key with the rare parts (k->ext), with what `prior`
 * (may be NULL) decided: the key's own credits reserved (or too few, which
 * refuses with insufficient_credits in the credits' place of DESIGN §4's
 * order), and the named limits `uses` asks for (and the auto_apply ones).
 * With shared counters and no prior decision on the named limits, nothing is
 * decided: need_lease with LK_INFO_NEED_NAMED, for lk_limits_named_take. */
enum lk_err lk_limits_apply_ext(struct lk_app *app, const struct lk_ckey *k, int64_t cost,
                                int64_t now, const struct lk_limits_prior *prior,
                                const struct lk_rl_use *uses, int n_uses,
                                struct lk_limits_info *info /* OUT */);

/* The named limits a check of k applies, into p->nl (inside the read lock). */
void lk_limits_named_list(const struct lk_ckey *k, const struct lk_rl_use *uses, int n_uses,
                          struct lk_limits_prior *p);

/* Takes p's named limits of key `rowid` from the shared counters, all or none
 * (one round trip; blocks: a worker's call), and sets p->named. Redis down:
 * LK_NAMED_LOCAL when rate limits fail open, else LK_ERR_STORAGE_UNAVAILABLE. */
enum lk_err lk_limits_named_take(struct lk_app *app, int64_t rowid, struct lk_limits_prior *p);

/* Gives back what lk_limits_named_take took, for a check refused after it. */
void lk_limits_named_give(struct lk_app *app, int64_t rowid, const struct lk_limits_prior *p);

/* Asks the shared counters for the slices r names (one round trip, bounded by
 * LK_SHARED_TIMEOUT_MS; blocks: a management worker's call, or a caller that
 * accepts that bound). LK_OK when the backend answered, granted or not;
 * LK_ERR_STORAGE_UNAVAILABLE when it is down. */
enum lk_err lk_limits_refill(struct lk_app *app, const struct lk_limits_refill *r, int64_t now);

/* The index in uses of the first name key k has no rate limit by ("default"
 * is the key's rate_limit), or -1 when it has them all. Inside the read lock. */
int lk_limits_named_unknown(const struct lk_ckey *k, const struct lk_rl_use *uses, int n_uses);

/* At a clean stop: gives the shared counters back what this node holds of
 * today's quota and day spend, unspent. */
void lk_limits_give_back(struct lk_app *app);

/* Starts loading key k's counters (if it has been checked before), for a
 * check about to count: call right after the lookup. Inside the read lock. */
void lk_limits_prefetch(const struct lk_ckey *k);

/* Counts the outcome of a check of a known key for usage. */
void lk_limits_count(struct lk_app *app, const struct lk_ckey *k, enum lk_err outcome,
                     int64_t now);

#endif
