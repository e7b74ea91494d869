/*
 * feed.h — the one writer of a node's key cache (docs/internals/feed.md). At
 * open it loads a snapshot of every key and workspace; then a thread follows
 * the store's change log, reloading each changed key (by rowid) or workspace
 * into the cache and counters, woken by the store (a commit of this process,
 * another process's commit seen within the store's poll) or every 50 ms.
 *
 * A management call that changed keys or workspaces calls lk_feed_sync() after
 * its commit: it returns once this node has applied everything committed so
 * far, so a revoked key is refused here at once.
 *
 * The feed notes when it last confirmed it is current (a successful read of
 * the log that found nothing more). When that is older than the bound
 * (`feed_stale_after_ms`), lk_feed_stale() says so and verification answers
 * 503 storage_unavailable instead of trusting the cache.
 *
 * Thread safety: every function is safe from any thread registered with the
 * key cache (lk_keycache_thread_online()).
 */
#ifndef LK_FEED_H
#define LK_FEED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct lk_app;
struct lk_feed;

#define LK_FEED_STALE_DEFAULT_MS 1000
#define LK_FEED_POLL_MS 50 /* the longest the thread sleeps between two reads of the log */

/* Loads the snapshot into app->cache and app->counters (they exist already).
 * With `follow` a thread follows the log from the snapshot's head on, and
 * staleness is judged against stale_after_ms (> 0); without it (one-shot
 * commands) the cache is what the snapshot and this process's own syncs made,
 * and it is never judged stale. Caller frees with lk_feed_free(). */
enum lk_err lk_feed_open(struct lk_app *app, bool follow, int64_t stale_after_ms,
                         struct lk_feed **out /* OUT */, struct lk_errinfo *ei);

/* Stops the thread. Accepts NULL. */
void lk_feed_free(struct lk_feed *f);

/* Applies every change committed so far, then returns (LK_OK). When the log
 * cannot be read the node counts as stale until the feed reads it again, and
 * the error is returned (the caller's commit stands either way). */
enum lk_err lk_feed_sync(struct lk_feed *f);

/* True when the cache may be missing changes: the feed has not confirmed it is
 * current within the bound. One atomic load and a clock read; no lock. */
bool lk_feed_stale(const struct lk_feed *f);

/* The seq of the last change applied (for /metrics and tests). */
int64_t lk_feed_applied(const struct lk_feed *f);

/* How far behind the store this node's cache may be, for /metrics. */
struct lk_feed_stats {
    int64_t applied_seq; /* the last change applied to the cache */
    int64_t head_seq;    /* the highest seq seen in the log, >= applied_seq */
    int64_t lag_ms;      /* since the feed last confirmed it had every change */
    uint64_t reloads;    /* snapshots taken after the first (a hole in the log) */
    bool stale;          /* lk_feed_stale(): verification answers 503 */
};

/* Fills out (zeros for NULL). Relaxed atomic loads and a clock read: no lock,
 * so a scrape never waits for a catch-up, nor a catch-up for a scrape. */
void lk_feed_stats(const struct lk_feed *f, struct lk_feed_stats *out /* OUT */);

#endif
