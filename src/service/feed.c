#include "service/feed.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/common.h"
#include "service/app_int.h"
#include "base/log.h"
#include "base/stats.h"
#include "service/app.h"
#include "service/keyload.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define BATCH 256 /* changes read at a time */

struct lk_feed {
    struct lk_app *app;
    struct lk_store *store; /* the log's reads: app->feed_store */
    bool follow;
    int64_t stale_after_ms;
    pthread_mutex_t mu; /* one catch-up at a time: the cache has one writer */
    int64_t applied;    /* guarded by mu; mirrored in applied_pub */
    _Atomic int64_t applied_pub;
    _Atomic int64_t head_seen;       /* the highest seq read from the log (or its head) */
    _Atomic int64_t current_at_ms;   /* monotonic ms of the last confirmation, 0: none */
    _Atomic int64_t confirmed_at_ms; /* the same, never cleared: what the lag counts from */
    _Atomic uint64_t reloads;        /* snapshots after the first: changes were pruned unread */
    _Atomic bool stopping;
    bool lost; /* guarded by mu: the last catch-up failed (logged once) */
    pthread_t thread;
    bool started;
    /* Tests only: while the file named by LATCHKEY_FEED_FAIL_FILE exists, every
     * read of the log fails, as if the database could not be read. */
    char fail_file[4096];
};

static int64_t mono_ms(void)
{
    return (int64_t)(lk_stats_now_ns() / 1000000u);
}

/* Only the thread holding mu writes head_seen, so a load and a store suffice. */
static void note_head(struct lk_feed *f, int64_t seq)
{
    if (seq > atomic_load_explicit(&f->head_seen, memory_order_relaxed))
        atomic_store_explicit(&f->head_seen, seq, memory_order_relaxed);
}

static void apply_ws(struct lk_app *app, const struct lk_ws_row *w)
{
    lk_counters_set_quota(lk_counters_ws(app->counters, w->id), w->quota, w->test_quota);
    if (w->is_operator && app->operator_ws[0] == '\0')
        memcpy(app->operator_ws, w->id, LK_ID_MAX);
}

static int load_ws(void *arg, const struct lk_ws_row *w)
{
    apply_ws(arg, w);
    return 0;
}

/* Every key and workspace, from a head read first: a change committed during
 * the scan is applied again after it, never missed. Caller holds mu (or is
 * the opener). */
static enum lk_err snapshot(struct lk_feed *f)
{
    struct lk_app *app = f->app;
    int64_t head = 0;
    enum lk_err e;

    if ((e = lk_store_changes_head(f->store, &head)) != LK_OK ||
        (e = lk_store_ws_list(f->store, load_ws, app)) != LK_OK ||
        (e = lk_keyload(f->store, app->store, app->cache)) != LK_OK)
        return e;
    lk_keycache_fit(app->cache);
    f->applied = head;
    atomic_store(&f->applied_pub, head);
    note_head(f, head);
    return LK_OK;
}

struct batch {
    struct lk_change_row rows[BATCH];
    int n;
};

static int collect(void *arg, const struct lk_change_row *row)
{
    struct batch *b = arg;

    b->rows[b->n++] = *row;
    return b->n == BATCH;
}

static enum lk_err apply(struct lk_feed *f, const struct lk_change_row *c)
{
    struct lk_app *app = f->app;
    struct lk_key_row k = {0};
    struct lk_ws_row w;
    enum lk_err e;

    switch (c->kind) {
    case LK_CHANGE_KEY:
        e = lk_store_key_get_by_rowid(f->store, c->key_rowid, &k);
        if (e == LK_OK)
            lk_keycache_put(app->cache, &k);
        lk_key_row_release(&k);
        return e == LK_ERR_NOT_FOUND ? LK_OK : e;
    case LK_CHANGE_WORKSPACE:
        e = lk_store_ws_get(f->store, c->ref_id, &w);
        if (e == LK_OK)
            apply_ws(app, &w);
        return e == LK_ERR_NOT_FOUND ? LK_OK : e;
    case LK_CHANGE_MEMBER:
        /* Nothing of a membership is cached: roles are read per request. */
        return LK_OK;
    }
    return LK_OK; /* a kind a newer version writes: nothing of ours to change */
}

/* Applies every change after f->applied; then the node is current as of the
 * moment the reading began. Caller holds mu. */
static enum lk_err catch_up(struct lk_feed *f)
{
    int64_t t0 = mono_ms();
    struct batch *b = lk_malloc(sizeof(*b));
    enum lk_err e = LK_OK;

    for (;;) {
        if (f->fail_file[0] != '\0' && access(f->fail_file, F_OK) == 0) {
            e = LK_ERR_STORAGE_UNAVAILABLE;
            break;
        }
        b->n = 0;
        if ((e = lk_store_changes_since(f->store, f->applied, BATCH, collect, b)) != LK_OK)
            break;
        if (b->n > 0)
            note_head(f, b->rows[b->n - 1].seq);
        if (b->n > 0 && b->rows[0].seq != f->applied + 1) {
            /* Seqs are dense: a hole means the changes were pruned while this
             * node was not reading. Only a new snapshot is sure. */
            lk_warn("change log: %lld changes gone before they were read; reloading every key",
                    (long long)(b->rows[0].seq - f->applied - 1));
            if ((e = snapshot(f)) != LK_OK)
                break; /* tried again, and counted once, when it succeeds */
            atomic_fetch_add_explicit(&f->reloads, 1, memory_order_relaxed);
            continue;
        }
        for (int i = 0; i < b->n && e == LK_OK; i++)
            if ((e = apply(f, &b->rows[i])) == LK_OK)
                f->applied = b->rows[i].seq;
        atomic_store(&f->applied_pub, f->applied);
        if (e != LK_OK || b->n < BATCH)
            break;
    }
    free(b);
    if (e == LK_OK) {
        atomic_store(&f->current_at_ms, t0);
        atomic_store_explicit(&f->confirmed_at_ms, t0, memory_order_relaxed);
        if (f->lost)
            lk_info("change log readable again; the key cache is current");
        f->lost = false;
    } else if (!f->lost) {
        lk_error("cannot read the change log: verification answers 503 after %lld ms",
                 (long long)f->stale_after_ms);
        f->lost = true;
    }
    return e;
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void *feed_main(void *arg)
{
    struct lk_feed *f = arg;

    lk_keycache_thread_online();
    while (!atomic_load(&f->stopping)) {
        enum lk_err e;

        pthread_mutex_lock(&f->mu);
        e = catch_up(f);
        pthread_mutex_unlock(&f->mu);
        if (atomic_load(&f->stopping))
            break;
        if (e != LK_OK || lk_store_changes_wait(f->store, LK_FEED_POLL_MS) != LK_OK)
            pause_ms(LK_FEED_POLL_MS);
    }
    lk_keycache_thread_offline();
    return NULL;
}

enum lk_err lk_feed_open(struct lk_app *app, bool follow, int64_t stale_after_ms,
                         struct lk_feed **out, struct lk_errinfo *ei)
{
    struct lk_feed *f = lk_calloc(1, sizeof(*f));
    const char *hook = getenv("LATCHKEY_FEED_FAIL_FILE");
    enum lk_err e;

    f->app = app;
    f->store = app->feed_store != NULL ? app->feed_store : app->store;
    f->follow = follow;
    f->stale_after_ms = stale_after_ms > 0 ? stale_after_ms : LK_FEED_STALE_DEFAULT_MS;
    pthread_mutex_init(&f->mu, NULL);
    if (hook != NULL)
        snprintf(f->fail_file, sizeof(f->fail_file), "%s", hook);
    if ((e = snapshot(f)) != LK_OK) {
        lk_feed_free(f);
        return lk_errinfo_set(ei, e, "db", "cannot read keys from the database");
    }
    atomic_store(&f->current_at_ms, mono_ms());
    atomic_store(&f->confirmed_at_ms, atomic_load(&f->current_at_ms));
    if (follow) {
        lk_assert(pthread_create(&f->thread, NULL, feed_main, f) == 0);
        pthread_setname_np(f->thread, "lk-feed");
        f->started = true;
    }
    *out = f;
    return LK_OK;
}

void lk_feed_free(struct lk_feed *f)
{
    if (f == NULL)
        return;
    atomic_store(&f->stopping, true);
    if (f->started)
        pthread_join(f->thread, NULL);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

enum lk_err lk_feed_sync(struct lk_feed *f)
{
    enum lk_err e;

    pthread_mutex_lock(&f->mu);
    e = catch_up(f);
    pthread_mutex_unlock(&f->mu);
    if (e != LK_OK)
        atomic_store(&f->current_at_ms, 0); /* this node's own change may be missing */
    return e;
}

bool lk_feed_stale(const struct lk_feed *f)
{
    if (f == NULL || !f->follow)
        return false;
    /* Every check asks: the coarse clock is a few ns where the precise one is
     * tens, and only makes the bound (1 s by default) a tick later. */
    return lk_clock_mono_coarse_ms() -
               atomic_load_explicit(&f->current_at_ms, memory_order_relaxed) >
           f->stale_after_ms;
}

int64_t lk_feed_applied(const struct lk_feed *f)
{
    return atomic_load(&f->applied_pub);
}

void lk_feed_stats(const struct lk_feed *f, struct lk_feed_stats *out)
{
    int64_t lag;

    memset(out, 0, sizeof(*out));
    if (f == NULL)
        return;
    out->applied_seq = atomic_load_explicit(&f->applied_pub, memory_order_relaxed);
    out->head_seq = atomic_load_explicit(&f->head_seen, memory_order_relaxed);
    if (out->head_seq < out->applied_seq)
        out->head_seq = out->applied_seq; /* read a moment apart: never report applied > head */
    /* A confirmation stored after the clock was read would make the lag negative. */
    lag = mono_ms() - atomic_load_explicit(&f->confirmed_at_ms, memory_order_relaxed);
    out->lag_ms = lag > 0 ? lag : 0;
    out->reloads = atomic_load_explicit(&f->reloads, memory_order_relaxed);
    out->stale = lk_feed_stale(f);
}
