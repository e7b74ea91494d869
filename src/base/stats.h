/*
 * stats.h — process-wide counters and latency histograms for /metrics, counted
 * per thread and summed only when read, so the hot path never shares a cache
 * line or takes a lock: each thread owns a shard it alone writes (relaxed
 * load + store, no locked instruction); a reader sums every shard with relaxed
 * loads and may see a count a moment late, never a torn one.
 *
 * Shards are never freed (a thread that ends leaves its counts behind, as a
 * counter must). Past LK_STATS_MAX_SHARDS threads, the rest share one shard
 * with atomic adds. Safe from any thread.
 */
#ifndef LK_STATS_H
#define LK_STATS_H

#include <stdint.h>

#define LK_STATS_MAX_SHARDS 256
#define LK_STATS_CODES 64 /* outcome codes a check may end with (core/err.def rows) */

enum lk_stat {
    LK_STAT_CONN_ACCEPTED,
    LK_STAT_CONN_CLOSED,
    LK_STAT_STORE_ERRORS,
    LK_STAT_RECORDER_FLUSHES,
    LK_STAT_LEASE_OPS,
    LK_STAT_LOG_DROPPED, /* access and diagnostic lines dropped: the writer fell behind */
    LK_STAT_SHARED_CALLS,  /* reservations sent to the shared counters (Redis) */
    LK_STAT_SHARED_ERRORS, /* of them, failed: down, timed out or refused */
    LK_STAT_ACCEPT_PAUSED, /* accepting paused: out of descriptors or memory */
    LK_STAT__COUNT
};

/* What a latency histogram measures; the check endpoints first, in this order. */
enum lk_stats_hist {
    LK_HIST_VERIFY,
    LK_HIST_AUTH_CONTEXT,
    LK_HIST_FORWARD_AUTH,
    LK_HIST_UNKEY_VERIFY, /* POST /v2/keys.verifyKey */
    LK_HIST_STORE,
    LK_HIST_SHARED, /* one reservation's round trip to the shared counters */
    LK_HIST__COUNT
};
#define LK_STATS_ENDPOINTS 4 /* histograms that are also check endpoints */

/* Upper bounds of the buckets, in nanoseconds (5 µs to 2.5 s); +Inf is implied. */
#define LK_STATS_BUCKETS 17
extern const uint64_t lk_stats_bounds_ns[LK_STATS_BUCKETS];

/* A sum over every shard. */
struct lk_stats_hist_sum {
    uint64_t bucket[LK_STATS_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
    uint64_t count, sum_ns;
};

void lk_stats_add(enum lk_stat s, uint64_t n);
/* One check at `endpoint` (< LK_STATS_ENDPOINTS) ending with code index `code`
 * (< LK_STATS_CODES) after ns nanoseconds: counted and observed together. */
void lk_stats_check(enum lk_stats_hist endpoint, unsigned code, uint64_t ns);
void lk_stats_observe(enum lk_stats_hist h, uint64_t ns);

/* Monotonic nanoseconds, for durations. */
uint64_t lk_stats_now_ns(void);

/* Sums, for the reader. */
uint64_t lk_stats_sum(enum lk_stat s);
uint64_t lk_stats_sum_checks(enum lk_stats_hist endpoint, unsigned code);
void lk_stats_sum_hist(enum lk_stats_hist h, struct lk_stats_hist_sum *out /* OUT */);

#endif
