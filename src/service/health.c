#include "service/health.h"

#include "base/common.h"
#include "service/app_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum lk_err lk_health_ping(struct lk_app *app)
{
    return lk_store_ping(app->store) == LK_OK ? LK_OK : LK_ERR_STORAGE_UNAVAILABLE;
}

static enum lk_err take_write_lock(struct lk_store *s, void *arg)
{
    (void)s;
    (void)arg;
    return LK_OK; /* nothing written: the commit only lets the lock go */
}

bool lk_health_ready(struct lk_app *app, struct lk_readiness *out)
{
    out->store = out->cache = out->counters = out->recorder = "ok";
    if (lk_store_ping(app->store) != LK_OK)
        out->store = "unavailable";
    else if (lk_store_txn(app->store, LK_TXN_BACKGROUND, take_write_lock, NULL) != LK_OK)
        out->store = "locked for writing";
    if (app->cache == NULL)
        out->cache = "not loaded";
    else if (lk_feed_stale(app->feed))
        out->cache = "stale"; /* the change log could not be read within the bound */
    if (app->counters == NULL)
        out->counters = "not loaded";
    if (app->usage == NULL || lk_usage_lag_ms(app->usage) > LK_HEALTH_RECORDER_LAG_MS)
        out->recorder = "behind";
    out->redis = lk_app_shared_status(app); /* NULL: not configured */
    return strcmp(out->store, "ok") == 0 && strcmp(out->cache, "ok") == 0 &&
           strcmp(out->counters, "ok") == 0 && strcmp(out->recorder, "ok") == 0 &&
           (out->redis == NULL || strcmp(out->redis, "ok") == 0);
}

unsigned long lk_health_keys_cached(struct lk_app *app)
{
    return lk_keycache_count(app->cache);
}

int64_t lk_health_recorder_lag_ms(struct lk_app *app)
{
    return app->usage ? lk_usage_lag_ms(app->usage) : 0;
}

void lk_health_feed(struct lk_app *app, struct lk_feed_stats *out)
{
    lk_feed_stats(app->feed, out);
}
