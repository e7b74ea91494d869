/*
 * shared.h — counters every node of a cluster shares: a key's rate-limit window,
 * a workspace's quota days, a key's spend of the day and the windows of its
 * named rate limits, kept by a shared
 * backend (Redis today: counters_redis.c, selected by `--redis redis://…`).
 * Beside it, counters.h keeps each node's own state in memory (and the counter
 * file); without a shared backend that state alone decides, as on one node.
 *
 * The backend never decides a single check. It grants a node a slice of what is
 * left (struct lk_slice in counters.h) with one atomic server-side script; the
 * node spends the slice from memory, exactly, and asks again when it runs out.
 * The backend counts every unit it grants as used, so across all nodes no more
 * than the limit passes (docs/internals/redis.md).
 *
 * Credits are not here: the store is the ledger.
 *
 * Thread safety: every function is safe from any thread. lk_shared_reserve()
 * blocks for one round trip (bounded by the timeout); never call it from an
 * event loop but in the bounded way docs/internals/redis.md describes.
 */
#ifndef LK_SHARED_H
#define LK_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/quota.h"

/* Round-trip bound of one call (connect, script), in ms. */
#define LK_SHARED_TIMEOUT_MS 250

struct lk_shared;

/* One call to the backend: what a key's check needs, all at once. A part with
 * want 0 is not asked for; `min` is the least grant worth having (less is a
 * refusal: nothing is taken). ret_n units granted for day ret_day and not spent
 * are given back first (0: none). */
struct lk_shared_req {
    int64_t key_rowid;
    const char *ws_id;
    bool test; /* the key's environment: test keys have their own quota */
    int64_t rl_want, rl_limit, rl_window_s;
    int64_t q_want, q_min, q_limit, q_day, q_ret_day, q_ret_n;
    int64_t sp_want, sp_min, sp_cap, sp_day, sp_ret_day, sp_ret_n;
    /* What this node knows was used (the store's counts at start and its own
     * checks since): the backend raises a day that holds less to it, so a
     * first use of Redis, or a Redis that lost its data, starts from there. */
    int64_t q_least[LK_QUOTA_DAYS]; /* q_day - 29 .. q_day */
    int64_t sp_least;
};

/* What the backend granted, and what it has left for everyone after that. */
struct lk_shared_grant {
    int64_t rl_grant, rl_left, rl_ttl_ms; /* ttl: ms until the window closes */
    int64_t q_grant, q_left;
    int64_t sp_grant, sp_left;
};

/* Parses url (`redis://[[user]:password@]host[:port][/db]`) and starts
 * connecting in the background: a backend that is down at start is not an
 * error (checks that need it answer 503 until it is back). Errors about the
 * URL go to ei without quoting it (it may hold a password). Caller frees with
 * lk_shared_free(). */
enum lk_err lk_shared_open(const char *url, struct lk_shared **out /* OUT */,
                           struct lk_errinfo *ei);
void lk_shared_free(struct lk_shared *s);

/* True while connected (last call or health check succeeded). Lock-free. */
bool lk_shared_up(const struct lk_shared *s);

/* "ok" or what is wrong ("unreachable", "refused: …"), for /readyz. */
const char *lk_shared_status(const struct lk_shared *s);

/* The URL without its password, for logs. */
void lk_shared_describe(const struct lk_shared *s, char *out, size_t cap);

/* One atomic reservation. LK_ERR_STORAGE_UNAVAILABLE when the backend is down
 * or did not answer within the timeout (then whatever it may have granted is
 * lost to everyone until its period ends: never more than the limit). Fails at
 * once, without waiting, while the backend is known to be down. */
enum lk_err lk_shared_reserve(struct lk_shared *s, const struct lk_shared_req *r,
                              struct lk_shared_grant *g /* OUT */);

/* A key's named rate limit (charge.h) as the shared counters keep it: a fixed
 * window of window_ms that opens at its first count, on Redis's clock. count
 * and ttl_ms are the answer: the window's count after the call and the ms
 * until it closes (0: none open). */
struct lk_shared_named {
    uint64_t name_hash;
    int64_t limit, window_ms, cost;
    int64_t count, ttl_ms; /* OUT */
};

/* Counts each of the n limits' cost in its window of key key_rowid, all or
 * none, atomically across nodes: *refused is the first without room (nothing
 * counted), or -1. One round trip, as lk_shared_reserve. */
enum lk_err lk_shared_named_take(struct lk_shared *s, int64_t key_rowid, struct lk_shared_named *l,
                                 int n, int *refused /* OUT */);

/* Takes back what lk_shared_named_take counted (a check refused after it). */
enum lk_err lk_shared_named_give(struct lk_shared *s, int64_t key_rowid,
                                 const struct lk_shared_named *l, int n);

#endif
