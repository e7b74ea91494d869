/*
 * verify.h — the verification pipeline (DESIGN §7 "decide"): format and checksum,
 * digest, cache lookup, then the key's state in DESIGN §4's order. Reads memory
 * only; never the database.
 */
#ifndef LK_VERIFY_H
#define LK_VERIFY_H

#include <stdint.h>

#include "core/err.h"
#include "service/app.h"
#include "service/limits.h"

#define LK_VERIFY_ANY_ENV (-1)


struct lk_verify_req {
    const char *secret; /* NULL when the request carried none */
    size_t len;
    int want_env;       /* LK_VERIFY_ANY_ENV or enum lk_env */
    const char *needs;  /* a permission query the key must satisfy, or NULL */
    size_t needs_len;
    int64_t now;
    /* A check of the key for an API: apply limits, quota and cost, count usage,
     * note last use. False for management credentials. */
    bool record;
    /* Credits the check spends when it passes (with record): from the key's
     * own credits when it has them, and from the workspace's balance when the
     * workspace has credits (docs/internals/limits.md). */
    int64_t cost;
    const char *address; /* the client, for the per-address limit; NULL: none */
    /* The caller cannot hand the check to a worker: a refill of the shared
     * counters (--redis) happens right here, one round trip bounded by
     * LK_SHARED_TIMEOUT_MS. False: need_lease sends it to a worker. */
    bool refill_inline;
    /* Named rate limits to apply (n_ratelimits of them, at most
     * LK_KEY_RATE_LIMITS_MAX; NULL/0: only the auto_apply ones). A name the
     * key does not have refuses the check with LK_ERR_INVALID_REQUEST, and
     * info->rl_unknown is its index here. */
    const struct lk_rl_use *ratelimits;
    int n_ratelimits;
    /* What lk_verify_leasing decided off the event loop before it decides
     * again (callers leave it NULL). */
    const struct lk_limits_prior *prior;
};

/*
 * Decides one request. Returns the outcome; *key is set to the key's cache entry
 * whenever the secret named a known key (also for expired, revoked … outcomes),
 * else NULL; *info says what the limits report (zeroed when they were not
 * reached). Call between lk_keycache_read_lock() and _unlock(); *key is valid
 * until the unlock. With info->need_lease the check was not counted: lease
 * (lk_credits_lease) or refill (lk_limits_refill, when info->refill.parts)
 * and decide again.
 */
enum lk_err lk_verify(struct lk_app *app, const struct lk_verify_req *req,
                      const struct lk_ckey **key /* OUT */, struct lk_limits_info *info /* OUT */);

/* Called with the final decision of lk_verify_leasing(), inside the cache read
 * lock (k as lk_verify sets it). */
typedef void (*lk_verify_done_fn)(void *arg, enum lk_err e, const struct lk_ckey *k,
                                  const struct lk_limits_info *info);

/* lk_verify off the event loop, for a check that needed a credit lease or a
 * refill of the shared counters: takes the lease (a write to the store) or the
 * refill (a round trip to Redis) and decides again, a bounded number of times
 * since other checks may spend the new lease first; then calls done once.
 * Returns LK_OK, or LK_ERR_STORAGE_UNAVAILABLE (done not called) when a lease
 * could not be written or the shared counters did not answer. Takes the cache read lock itself. */
enum lk_err lk_verify_leasing(struct lk_app *app, const struct lk_verify_req *req,
                              lk_verify_done_fn done, void *arg);

/* Retry-After for an outcome that ends by itself (the 429s), else 0. */
int64_t lk_verify_retry_after(enum lk_err e, const struct lk_limits_info *info);

/* True when the key's permissions cover `needs`. */
bool lk_verify_key_covers(const struct lk_ckey *k, const char *needs, size_t len);

#endif
