/*
 * metrics.h — GET /metrics: latchkey's counters in the Prometheus text format
 * (version 0.0.4), summed from base/stats.h's per-thread shards and read from
 * the app's gauges at the moment of the scrape. Labels carry only endpoint
 * names, outcome codes from core/err.def, bucket bounds and the build's
 * version: never a secret, a hint, a key or a workspace.
 */
#ifndef LK_METRICS_H
#define LK_METRICS_H

#include <stddef.h>

#include "service/app.h"

/* Renders the exposition text into out (cap bytes); returns its length, or the
 * length it would need when that is cap or more (then out is incomplete). */
size_t lk_metrics_render(struct lk_app *app, char *out, size_t cap);

#endif
