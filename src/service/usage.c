#include "service/usage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "base/clock.h"
#include "base/common.h"
#include "service/app_int.h"
#include "base/log.h"
#include "base/stats.h"
#include "service/app.h"
#include "service/credits.h"
#include "service/hooks.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define PRUNE_EVERY_S 3600
#define FINAL_TRIES 3 /* of the last write at stop, each waiting up to the busy timeout */

struct lk_usage {
    struct lk_app *app;
    struct lk_store *store;
    int64_t pruned_at;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    struct lk_touch *pending; /* guarded by mu */
    size_t npending, cap;
    pthread_mutex_t flush_mu; /* one flush at a time */
    _Atomic int64_t written_at_ms; /* start of the last flush that wrote everything */
};

void lk_usage_touch(struct lk_usage *u, const struct lk_ckey *k, int64_t now)
{
    _Atomic int64_t *lu = (_Atomic int64_t *)&k->last_used;
    int64_t prev = atomic_load_explicit(lu, memory_order_relaxed);

    /* Most verifications of a busy key land in the same second: no write at all. */
    if (prev >= now || !atomic_compare_exchange_strong(lu, &prev, now))
        return;
    /* The store's copy moves once a minute: with keys checked at random from a
     * large set, a write a key a second rewrote most of the keys table's pages
     * every second (docs/internals/store.md). */
    if (prev > 0 && prev / LK_LAST_USED_STEP_S == now / LK_LAST_USED_STEP_S)
        return;
    pthread_mutex_lock(&u->mu);
    if (u->npending == u->cap && u->cap < LK_USAGE_MAX_PENDING) {
        u->cap = u->cap ? u->cap * 2 : 1024;
        struct lk_touch *p = realloc(u->pending, u->cap * sizeof(*p));
        lk_assert(p != NULL);
        u->pending = p;
    }
    if (u->npending < u->cap)
        u->pending[u->npending++] = (struct lk_touch){k->rowid, now};
    pthread_mutex_unlock(&u->mu);
}

struct write {
    struct lk_usage *u;
    struct lk_counters_batch *b;
    const struct lk_touch *t;
    size_t nt;
    int64_t now;
};

static enum lk_err write_txn(struct lk_store *s, void *arg)
{
    struct write *w = arg;
    struct lk_counters_batch *b = w->b;
    enum lk_err e;

    if ((e = lk_store_keys_touch(s, w->t, w->nt)) != LK_OK)
        return e;
    if ((e = lk_store_counters_add(s, b->rows.kinds, b->rows.rows, b->rows.n)) != LK_OK)
        return e;
    for (size_t i = 0; i < b->nspends; i++) {
        struct lk_ledger_row r = {.amount = b->spends[i].amount,
                                  .period = w->now - w->now % 3600};
        snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", lk_wstate_id(b->spends[i].ws));
        snprintf(r.kind, sizeof(r.kind), "spend");
        r.created_at = r.period;
        e = lk_credits_book_spend(w->u->app, r.workspace_id, r.amount);
        if (e == LK_ERR_CONFLICT) {
            /* Fewer leased than spent: this node's lease was reclaimed while it
             * was taken for dead (and counted as spent then). Keep the other
             * writes going. */
            lk_error("workspace %s: spending of %lld found no lease; not recorded twice",
                     r.workspace_id, (long long)r.amount);
            continue;
        }
        if (e != LK_OK || (e = lk_store_ledger_add(s, &r)) != LK_OK)
            return e;
    }
    return LK_OK;
}

static int by_rowid(const void *a, const void *b)
{
    const struct lk_touch *x = a, *y = b;

    if (x->rowid != y->rowid)
        return x->rowid < y->rowid ? -1 : 1;
    return (x->at > y->at) - (x->at < y->at);
}

/* In rowid order, each key once with its latest time: the store's updates walk
 * the keys table forwards, a page once, instead of jumping about it. */
static size_t coalesce(struct lk_touch *t, size_t n)
{
    size_t out = 0;

    if (n == 0)
        return 0;
    qsort(t, n, sizeof(*t), by_rowid);
    for (size_t i = 1; i < n; i++) {
        if (t[i].rowid == t[out].rowid)
            t[out].at = t[i].at; /* sorted: the later time */
        else
            t[++out] = t[i];
    }
    return out + 1;
}

static enum lk_err write_batch(struct lk_usage *u, struct lk_counters_batch *b, const struct lk_touch *t,
                               size_t nt, bool patient, int64_t now)
{
    if (b->rows.n == 0 && b->nspends == 0 && nt == 0)
        return LK_OK;
    return lk_store_txn(u->store, patient ? LK_TXN_DEFAULT : LK_TXN_BACKGROUND, write_txn,
                        &(struct write){u, b, t, nt, now});
}

static enum lk_err prune_txn(struct lk_store *s, void *arg)
{
    int64_t cutoff = *(const int64_t *)arg;

    return lk_store_counter_prune(s, cutoff - cutoff % 3600, lk_day_of(cutoff));
}

/* Writes what is pending; `patient` waits for a locked database as a management
 * call does, else only briefly. */
static enum lk_err flush(struct lk_usage *u, bool patient)
{
    struct lk_touch *touches;
    struct lk_counters_batch b = {0};
    int64_t now = lk_clock_now_s(), started_ms;
    enum lk_err e;
    size_t n;

    pthread_mutex_lock(&u->flush_mu);
    started_ms = lk_clock_now_ms();
    pthread_mutex_lock(&u->mu);
    touches = u->pending;
    n = u->npending;
    u->pending = NULL;
    u->npending = u->cap = 0;
    pthread_mutex_unlock(&u->mu);
    n = coalesce(touches, n);
    lk_counters_take_batch(u->app->counters, &b);
    if ((e = write_batch(u, &b, touches, n, patient, now)) != LK_OK) {
        /* Last-used times only move forward and are best effort: not kept. */
        lk_warn("could not write usage and spending; keeping them for the next try");
        lk_counters_return_batch(u->app->counters, &b);
    } else {
        atomic_store(&u->written_at_ms, started_ms); /* all counted before it is written */
        lk_hooks_observe(u->app->hooks, &b, now); /* thresholds crossed: to the webhooks writer */
    }
    lk_stats_add(LK_STAT_RECORDER_FLUSHES, 1);
    lk_counters_reserve(u->app->counters);
    /* Leases that ran low are topped up here, so checks rarely wait for one. */
    for (size_t i = 0; i < b.nlow; i++)
        lk_credits_lease(u->app, b.low[i], 0, now);
    if (now - u->pruned_at >= PRUNE_EVERY_S) {
        int64_t cutoff = now - LK_USAGE_KEEP_S;
        if (lk_store_txn(u->store, LK_TXN_BACKGROUND, prune_txn, &cutoff) == LK_OK)
            u->pruned_at = now;
    }
    free(touches);
    lk_counters_batch_free(&b);
    pthread_mutex_unlock(&u->flush_mu);
    return e;
}

void lk_usage_flush(struct lk_usage *u)
{
    flush(u, false);
}

int64_t lk_usage_lag_ms(struct lk_usage *u)
{
    int64_t lag = lk_clock_now_ms() - atomic_load(&u->written_at_ms);

    return lag > 0 ? lag : 0;
}

void lk_usage_pause(struct lk_usage *u)
{
    pthread_mutex_lock(&u->flush_mu);
}

void lk_usage_resume(struct lk_usage *u)
{
    pthread_mutex_unlock(&u->flush_mu);
}

/* The wait before the next write after one that took took_ms (usage.h). */
static int64_t next_wait_ms(int64_t took_ms)
{
    int64_t wait = took_ms * LK_USAGE_SHARE;

    return wait < LK_USAGE_FLUSH_MS ? LK_USAGE_FLUSH_MS
           : wait > LK_USAGE_FLUSH_MAX_MS ? LK_USAGE_FLUSH_MAX_MS
                                          : wait;
}

static void *flush_main(void *arg)
{
    struct lk_usage *u = arg;
    struct timespec deadline;
    int64_t wait_ms = LK_USAGE_FLUSH_MS, t0;

    pthread_mutex_lock(&u->mu);
    while (!u->stopping) {
        deadline = lk_clock_after_ms(CLOCK_REALTIME, wait_ms);
        pthread_cond_timedwait(&u->cond, &u->mu, &deadline);
        if (u->stopping)
            break;
        pthread_mutex_unlock(&u->mu);
        t0 = lk_clock_mono_coarse_ms();
        lk_usage_flush(u);
        wait_ms = next_wait_ms(lk_clock_mono_coarse_ms() - t0);
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

struct lk_usage *lk_usage_new(struct lk_app *app)
{
    struct lk_usage *u = lk_calloc(1, sizeof(*u));

    u->app = app;
    u->store = app->store;
    atomic_init(&u->written_at_ms, lk_clock_now_ms());
    pthread_mutex_init(&u->mu, NULL);
    pthread_mutex_init(&u->flush_mu, NULL);
    pthread_cond_init(&u->cond, NULL);
    lk_assert(pthread_create(&u->thread, NULL, flush_main, u) == 0);
    pthread_setname_np(u->thread, "lk-recorder");
    return u;
}

bool lk_usage_free(struct lk_usage *u)
{
    bool written = false;

    if (u == NULL)
        return false;
    pthread_mutex_lock(&u->mu);
    u->stopping = true;
    pthread_cond_signal(&u->cond);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    /* The last write decides whether leases may be returned: try hard. */
    for (int tries = 0; tries < FINAL_TRIES && !written; tries++)
        written = flush(u, true) == LK_OK;
    free(u->pending);
    pthread_mutex_destroy(&u->mu);
    pthread_mutex_destroy(&u->flush_mu);
    pthread_cond_destroy(&u->cond);
    free(u);
    return written;
}
