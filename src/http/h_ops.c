/*
 * h_ops.c — GET /readyz, for a service manager or load balancer: is this
 * server able to answer checks and keep what they count? /healthz says only
 * that it is alive and its database answers.
 */
#include "base/common.h"
#include "http/handlers.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* A recorder that has not written everything for this long is not ready: the
 * counts it holds would be lost by a crash, and the store refuses its writes. */
#define READY_RECORDER_LAG_MS 30000

void lk_h_readyz(struct lk_mreq *m)
{
    struct lk_app *app = m->app;
    const char *store = "ok", *cache = "ok", *counters = "ok", *recorder = "ok";
    struct lk_errinfo ei;
    char notready[128] = "";
    size_t n = 0;

    /* Ready means the store takes writes (the recorder's and management's), not
     * only reads: take the write lock as briefly as the recorder would. */
    if (lk_store_ping(app->store) != LK_OK)
        store = "unavailable";
    else if (lk_store_begin_background(app->store) != LK_OK)
        store = "locked for writing";
    else
        lk_store_rollback(app->store);
    if (app->cache == NULL)
        cache = "not loaded";
    else if (lk_feed_stale(app->feed))
        cache = "stale"; /* the change log could not be read within the bound */
    if (app->counters == NULL)
        counters = "not loaded";
    if (app->usage == NULL || lk_usage_lag_ms(app->usage) > READY_RECORDER_LAG_MS)
        recorder = "behind";
    const char *names[] = {"store", "cache", "counters", "recorder"};
    const char *states[] = {store, cache, counters, recorder};
    for (size_t i = 0; i < LK_ARRAY_LEN(names); i++)
        if (strcmp(states[i], "ok") != 0)
            n += (size_t)snprintf(notready + n, sizeof(notready) - n, "%s%s (%s)",
                                  n ? ", " : "", names[i], states[i]);
    if (n > 0) {
        lk_errinfo_set(&ei, LK_ERR_STORAGE_UNAVAILABLE, "", "not ready: %s", notready);
        lk_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, &ei);
        return;
    }
    lk_mreq_json(m, 200,
                 json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "status", "ready", "checks", "store",
                           store, "cache", cache, "counters", counters, "recorder", recorder));
}
