/*
 * health.h — what this process says about itself: alive (GET /healthz), ready
 * to serve (GET /readyz), and the gauges GET /metrics reads at a scrape. Only
 * reads; nothing here changes state.
 *
 * Thread safety: every function is safe from any thread registered with the
 * key cache (lk_keycache_thread_online()).
 */
#ifndef LK_HEALTH_H
#define LK_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "service/app.h"
#include "service/feed.h"

/* A recorder that has not written everything for this long is not ready: the
 * counts it holds would be lost by a crash, and the store refuses its writes. */
#define LK_HEALTH_RECORDER_LAG_MS 30000

/* LK_OK when the store answers; LK_ERR_STORAGE_UNAVAILABLE otherwise. */
enum lk_err lk_health_ping(struct lk_app *app);

/* The state of each part readiness needs, "ok" or a few words on what is wrong
 * (static strings). */
struct lk_readiness {
    const char *store, *cache, *counters, *recorder;
    const char *redis; /* NULL when no Redis is configured */
};

/* Fills out; true when every part is "ok". Ready means the store takes writes
 * (the recorder's and management's), not only reads: it takes the write lock
 * as briefly as the recorder would, in an empty transaction. */
bool lk_health_ready(struct lk_app *app, struct lk_readiness *out /* OUT */);

/* Key digests held in the verification cache. */
unsigned long lk_health_keys_cached(struct lk_app *app);

/* Upper bound of the age in ms of the oldest count not yet written (0 without
 * a recorder). */
int64_t lk_health_recorder_lag_ms(struct lk_app *app);

/* Where the key cache stands against the store's change log (lk_feed_stats();
 * zeros for a process without a feed). Lock-free. */
void lk_health_feed(struct lk_app *app, struct lk_feed_stats *out /* OUT */);

#endif
