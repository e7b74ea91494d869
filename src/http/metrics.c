#include "http/metrics.h"

#include <stdarg.h>

#include "base/common.h"
#include "base/stats.h"
#include "base/version.h"
#include "http/accesslog.h"
#include "http/handlers.h"
#include "http/server.h"
#include "service/credits.h"
#include "service/health.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define METRICS_FIRST_TRY 32768 /* bytes; the text is about 20 KiB */

static const char *const endpoints[LK_STATS_ENDPOINTS] = {"verify", "auth_context", "forward_auth",
                                                           "unkey_verify"};

/* Appends to a fixed buffer; counts what did not fit so the caller can retry. */
struct text {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(t->len < t->cap ? t->p + t->len : NULL, t->len < t->cap ? t->cap - t->len : 0,
                  fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A counter family with its one unlabelled series, summed over threads. */
static void counter(struct text *t, const char *name, const char *help, enum lk_stat stat)
{
    family(t, name, "counter", help);
    add(t, "%s %llu\n", name, (unsigned long long)lk_stats_sum(stat));
}

/* One histogram's series; labels is "" or `endpoint="verify",`. */
static void histogram(struct text *t, const char *name, const char *labels, enum lk_stats_hist h)
{
    struct lk_stats_hist_sum s;
    uint64_t cum = 0;
    size_t ll = strlen(labels);

    lk_stats_sum_hist(h, &s);
    for (int b = 0; b <= LK_STATS_BUCKETS; b++) {
        cum += s.bucket[b];
        if (b < LK_STATS_BUCKETS)
            add(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels,
                (double)lk_stats_bounds_ns[b] / 1e9, (unsigned long long)cum);
        else
            add(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    }
    /* The count is the buckets' total, so a scrape racing an observation stays
     * consistent. The summaries take the labels without their trailing comma. */
    if (ll > 0) {
        add(t, "%s_sum{%.*s} %.9f\n", name, (int)ll - 1, labels, (double)s.sum_ns / 1e9);
        add(t, "%s_count{%.*s} %llu\n", name, (int)ll - 1, labels, (unsigned long long)cum);
    } else {
        add(t, "%s_sum %.9f\n", name, (double)s.sum_ns / 1e9);
        add(t, "%s_count %llu\n", name, (unsigned long long)cum);
    }
}

size_t lk_metrics_render(struct lk_app *app, char *out, size_t cap)
{
    struct text t = {out, 0, cap};
    uint64_t closed, accepted;
    struct lk_feed_stats feed;

    family(&t, "latchkey_build_info", "gauge", "The running build.");
    add(&t, "latchkey_build_info{version=\"%s\",commit=\"%s\"} 1\n", lk_version(),
        lk_version_commit());

    family(&t, "latchkey_checks_total", "counter",
           "Key checks answered, by endpoint and outcome code.");
    for (int ep = 0; ep < LK_STATS_ENDPOINTS; ep++)
        for (unsigned c = 0; c < LK_ERR__COUNT; c++)
            add(&t, "latchkey_checks_total{endpoint=\"%s\",code=\"%s\"} %llu\n", endpoints[ep],
                lk_err_code((enum lk_err)c),
                (unsigned long long)lk_stats_sum_checks((enum lk_stats_hist)ep, c));

    family(&t, "latchkey_check_duration_seconds", "histogram",
           "Time from a check's request head to its answer leaving.");
    for (int ep = 0; ep < LK_STATS_ENDPOINTS; ep++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "endpoint=\"%s\",", endpoints[ep]);
        histogram(&t, "latchkey_check_duration_seconds", labels, (enum lk_stats_hist)ep);
    }

    family(&t, "latchkey_keys_cached", "gauge", "Key digests held in the verification cache.");
    add(&t, "latchkey_keys_cached %lu\n", lk_health_keys_cached(app));

    lk_health_feed(app, &feed);
    family(&t, "latchkey_feed_applied_seq", "gauge",
           "Seq of the last change of the store's change log applied to the key cache.");
    add(&t, "latchkey_feed_applied_seq %lld\n", (long long)feed.applied_seq);
    family(&t, "latchkey_feed_head_seq", "gauge",
           "Highest seq this node has seen in the change log.");
    add(&t, "latchkey_feed_head_seq %lld\n", (long long)feed.head_seq);
    family(&t, "latchkey_feed_lag_seconds", "gauge",
           "Time since the feed last confirmed the key cache had every change.");
    add(&t, "latchkey_feed_lag_seconds %.3f\n", (double)feed.lag_ms / 1000);
    family(&t, "latchkey_feed_stale", "gauge",
           "1 while verification answers 503 because the change log was not read in time.");
    add(&t, "latchkey_feed_stale %d\n", feed.stale ? 1 : 0);
    family(&t, "latchkey_feed_reloads_total", "counter",
           "Reloads of every key after changes were pruned before this node read them.");
    add(&t, "latchkey_feed_reloads_total %llu\n", (unsigned long long)feed.reloads);

    /* Closed first: accepted only grows, so the difference is never negative. */
    closed = lk_stats_sum(LK_STAT_CONN_CLOSED);
    accepted = lk_stats_sum(LK_STAT_CONN_ACCEPTED);
    family(&t, "latchkey_connections_open", "gauge", "Client connections open now.");
    add(&t, "latchkey_connections_open %llu\n",
        (unsigned long long)(accepted > closed ? accepted - closed : 0));
    {
        int per_loop[LK_SERVER_MAX_LOOPS];
        int nl = lk_server_loop_connections(per_loop, LK_SERVER_MAX_LOOPS);
        family(&t, "latchkey_loop_connections_open", "gauge",
               "Client connections open now on each event loop.");
        for (int i = 0; i < nl; i++)
            add(&t, "latchkey_loop_connections_open{loop=\"%d\"} %d\n", i, per_loop[i]);
    }
    family(&t, "latchkey_connections_accepted_total", "counter", "Client connections accepted.");
    add(&t, "latchkey_connections_accepted_total %llu\n", (unsigned long long)accepted);
    counter(&t, "latchkey_accept_pauses_total",
            "Times a loop stopped accepting for 100 ms: out of file descriptors or memory.",
            LK_STAT_ACCEPT_PAUSED);

    counter(&t, "latchkey_store_errors_total",
            "Database calls that failed (unavailable or internal error).", LK_STAT_STORE_ERRORS);
    family(&t, "latchkey_store_duration_seconds", "histogram",
           "Time of each database call of management requests and the recorder.");
    histogram(&t, "latchkey_store_duration_seconds", "", LK_HIST_STORE);
    counter(&t, "latchkey_redis_reservations_total",
            "Reservations of shared-counter slices sent to Redis.", LK_STAT_SHARED_CALLS);
    counter(&t, "latchkey_redis_errors_total",
            "Reservations that failed: Redis down, not answering in time, or refusing.",
            LK_STAT_SHARED_ERRORS);
    family(&t, "latchkey_redis_duration_seconds", "histogram",
           "Round trip of one reservation that Redis answered.");
    histogram(&t, "latchkey_redis_duration_seconds", "", LK_HIST_SHARED);

    family(&t, "latchkey_recorder_lag_seconds", "gauge",
           "Upper bound of the age of the oldest count not yet written to the database.");
    add(&t, "latchkey_recorder_lag_seconds %.3f\n", (double)lk_health_recorder_lag_ms(app) / 1000);
    counter(&t, "latchkey_recorder_flushes_total",
            "Recorder flushes of usage, spending and last-used times.", LK_STAT_RECORDER_FLUSHES);

    family(&t, "latchkey_credit_leases_outstanding", "gauge",
           "Credits leased from the database and not yet spent, over all workspaces.");
    add(&t, "latchkey_credit_leases_outstanding %lld\n", (long long)lk_credits_leased(app));
    counter(&t, "latchkey_credit_lease_operations_total",
            "Credit leases taken from and returned to the database.", LK_STAT_LEASE_OPS);

    counter(&t, "latchkey_log_dropped_total",
            "Log lines dropped because the log writer fell behind.", LK_STAT_LOG_DROPPED);
    return t.len;
}

int lk_h_metrics(struct lk_reqctx *rc)
{
    h2o_req_t *req = rc->req;
    size_t cap = METRICS_FIRST_TRY, n;
    char *buf;
    h2o_iovec_t rid;

    for (;;) {
        buf = h2o_mem_alloc_pool(&req->pool, cap);
        if ((n = lk_metrics_render(rc->app, buf, cap)) < cap)
            break;
        cap = n + 1;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    lk_accesslog_sent(req, LK_OK);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    rid = h2o_strdup(&req->pool, rc->request_id, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          rid.base, rid.len);
    req->res.content_length = n;
    h2o_send_inline(req, buf, n);
    return 0;
}
