/*
 * h_ops.c — GET /readyz, for a service manager or load balancer: is this
 * server able to answer checks and keep what they count? /healthz says only
 * that it is alive and its database answers.
 */
#include "base/common.h"
#include "http/handlers.h"
#include "service/health.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_h_healthz(struct lk_mreq *m)
{
    if (lk_health_ping(m->app) != LK_OK) {
        lk_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, NULL);
        return;
    }
    lk_mreq_json(m, 200, json_pack("{s:s}", "status", "ok"));
}

void lk_h_readyz(struct lk_mreq *m)
{
    struct lk_readiness r;
    struct lk_errinfo ei;
    char notready[128] = "";
    size_t n = 0;

    if (!lk_health_ready(m->app, &r)) {
        const char *names[] = {"store", "cache", "counters", "recorder", "redis"};
        const char *states[] = {r.store, r.cache, r.counters, r.recorder,
                                r.redis ? r.redis : "ok"};
        for (size_t i = 0; i < LK_ARRAY_LEN(names); i++)
            if (strcmp(states[i], "ok") != 0)
                n += (size_t)snprintf(notready + n, sizeof(notready) - n, "%s%s (%s)",
                                      n ? ", " : "", names[i], states[i]);
        lk_errinfo_set(&ei, LK_ERR_STORAGE_UNAVAILABLE, "", "not ready: %s", notready);
        lk_mreq_error(m, LK_ERR_STORAGE_UNAVAILABLE, &ei);
        return;
    }
    json_t *body = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "status", "ready", "checks", "store",
                             r.store, "cache", r.cache, "counters", r.counters, "recorder",
                             r.recorder);
    if (r.redis != NULL)
        json_object_set_new(json_object_get(body, "checks"), "redis", json_string(r.redis));
    lk_mreq_json(m, 200, body);
}
