#include "base/stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

const uint64_t lk_stats_bounds_ns[LK_STATS_BUCKETS] = {
    5000,     10000,     25000,     50000,     100000,     250000,
    500000,   1000000,   2500000,   5000000,   10000000,   25000000,
    50000000, 100000000, 250000000, 1000000000, 2500000000,
};

struct hist {
    _Atomic uint64_t bucket[LK_STATS_BUCKETS + 1], count, sum_ns;
};

/* Aligned so two threads' shards never share a cache line. */
struct shard {
    _Alignas(64) _Atomic uint64_t c[LK_STAT__COUNT];
    _Atomic uint64_t checks[LK_STATS_ENDPOINTS][LK_STATS_CODES];
    struct hist h[LK_HIST__COUNT];
    bool shared; /* the overflow shard: written by many threads */
};

static struct shard *shards[LK_STATS_MAX_SHARDS];
static _Atomic int nshards;
static struct shard overflow = {.shared = true};
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local struct shard *mine;

static struct shard *my_shard(void)
{
    struct shard *s = mine;

    if (s != NULL)
        return s;
    pthread_mutex_lock(&reg_mu);
    if (atomic_load(&nshards) < LK_STATS_MAX_SHARDS) {
        s = aligned_alloc(64, sizeof(*s));
        lk_assert(s != NULL);
        memset(s, 0, sizeof(*s));
        shards[atomic_load(&nshards)] = s;
        atomic_fetch_add(&nshards, 1); /* published after the slot is filled */
    } else {
        s = &overflow;
    }
    pthread_mutex_unlock(&reg_mu);
    mine = s;
    return s;
}

static inline void bump(const struct shard *s, _Atomic uint64_t *v, uint64_t n)
{
    if (s->shared)
        atomic_fetch_add_explicit(v, n, memory_order_relaxed);
    else /* the only writer: no locked instruction needed */
        atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                              memory_order_relaxed);
}

void lk_stats_add(enum lk_stat st, uint64_t n)
{
    struct shard *s = my_shard();

    bump(s, &s->c[st], n);
}

static void observe(struct shard *s, enum lk_stats_hist h, uint64_t ns)
{
    struct hist *x = &s->h[h];
    unsigned b = 0;

    while (b < LK_STATS_BUCKETS && ns > lk_stats_bounds_ns[b])
        b++;
    bump(s, &x->bucket[b], 1);
    bump(s, &x->count, 1);
    bump(s, &x->sum_ns, ns);
}

void lk_stats_observe(enum lk_stats_hist h, uint64_t ns)
{
    observe(my_shard(), h, ns);
}

void lk_stats_check(enum lk_stats_hist endpoint, unsigned code, uint64_t ns)
{
    struct shard *s = my_shard();

    lk_assert(endpoint < LK_STATS_ENDPOINTS && code < LK_STATS_CODES);
    bump(s, &s->checks[endpoint][code], 1);
    observe(s, endpoint, ns);
}

uint64_t lk_stats_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Calls fn on every shard, the overflow one included. */
#define EACH_SHARD(s, body)                                                                        \
    do {                                                                                           \
        int n_ = atomic_load(&nshards);                                                            \
        for (int i_ = 0; i_ <= n_; i_++) {                                                         \
            struct shard *s = i_ < n_ ? shards[i_] : &overflow;                                    \
            body;                                                                                  \
        }                                                                                          \
    } while (0)

static uint64_t load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

uint64_t lk_stats_sum(enum lk_stat st)
{
    uint64_t t = 0;

    EACH_SHARD(s, t += load(&s->c[st]));
    return t;
}

uint64_t lk_stats_sum_checks(enum lk_stats_hist endpoint, unsigned code)
{
    uint64_t t = 0;

    if (endpoint >= LK_STATS_ENDPOINTS || code >= LK_STATS_CODES)
        return 0;
    EACH_SHARD(s, t += load(&s->checks[endpoint][code]));
    return t;
}

void lk_stats_sum_hist(enum lk_stats_hist h, struct lk_stats_hist_sum *out)
{
    memset(out, 0, sizeof(*out));
    EACH_SHARD(s, {
        for (int b = 0; b <= LK_STATS_BUCKETS; b++)
            out->bucket[b] += load(&s->h[h].bucket[b]);
        out->count += load(&s->h[h].count);
        out->sum_ns += load(&s->h[h].sum_ns);
    });
}
