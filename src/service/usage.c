#include "service/usage.h"

#include <pthread.h>
#include <time.h>

#include "base/common.h"
#include "base/log.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct lk_usage {
    struct lk_store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    struct lk_touch *pending; /* guarded by mu */
    size_t npending, cap;
    pthread_mutex_t flush_mu; /* one flush at a time */
};

void lk_usage_touch(struct lk_usage *u, const struct lk_ckey *k, int64_t now)
{
    _Atomic int64_t *lu = (_Atomic int64_t *)&k->last_used;
    int64_t prev = atomic_load_explicit(lu, memory_order_relaxed);

    /* Most verifications of a busy key land in the same second: no write at all. */
    if (prev >= now || !atomic_compare_exchange_strong(lu, &prev, now))
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

void lk_usage_flush(struct lk_usage *u)
{
    struct lk_touch *batch;
    size_t n;

    pthread_mutex_lock(&u->flush_mu);
    pthread_mutex_lock(&u->mu);
    batch = u->pending;
    n = u->npending;
    u->pending = NULL;
    u->npending = u->cap = 0;
    pthread_mutex_unlock(&u->mu);
    if (n > 0 && lk_store_keys_touch(u->store, batch, n) != LK_OK)
        lk_warn("could not record last-used times of %zu keys; will not retry", n);
    free(batch);
    pthread_mutex_unlock(&u->flush_mu);
}

static void *flush_main(void *arg)
{
    struct lk_usage *u = arg;
    struct timespec deadline;

    pthread_mutex_lock(&u->mu);
    while (!u->stopping) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += LK_USAGE_FLUSH_MS / 1000;
        pthread_cond_timedwait(&u->cond, &u->mu, &deadline);
        if (u->stopping)
            break;
        pthread_mutex_unlock(&u->mu);
        lk_usage_flush(u);
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

struct lk_usage *lk_usage_new(struct lk_store *store)
{
    struct lk_usage *u = lk_calloc(1, sizeof(*u));

    u->store = store;
    pthread_mutex_init(&u->mu, NULL);
    pthread_mutex_init(&u->flush_mu, NULL);
    pthread_cond_init(&u->cond, NULL);
    lk_assert(pthread_create(&u->thread, NULL, flush_main, u) == 0);
    return u;
}

void lk_usage_free(struct lk_usage *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->mu);
    u->stopping = true;
    pthread_cond_signal(&u->cond);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    lk_usage_flush(u);
    free(u->pending);
    pthread_mutex_destroy(&u->mu);
    pthread_mutex_destroy(&u->flush_mu);
    pthread_cond_destroy(&u->cond);
    free(u);
}
