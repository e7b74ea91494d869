#include "counters/counters.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* Two open-addressed tables (workspace id → state, key row id → state), grown
 * at half full. Only the first check of a key and management calls look here;
 * the cache entries keep the pointers. */
struct table {
    void **slots;
    size_t cap, used;
};

struct lk_counters {
    pthread_mutex_t mu; /* guards the tables and the lists */
    struct table ws, keys;
    struct lk_wstate *all_ws;
    struct lk_wstate *dirty_ws;
    struct lk_kstate *dirty_keys;
    struct lk_counter_rows spill; /* rows of closed hours and days */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: ids are random already */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t hash_i64(int64_t v)
{
    uint64_t h = (uint64_t)v * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

typedef uint64_t (*hash_fn)(const void *item);

static uint64_t ws_hash(const void *item)
{
    return hash_str(((const struct lk_wstate *)item)->id);
}

static uint64_t key_hash(const void *item)
{
    return hash_i64(((const struct lk_kstate *)item)->rowid);
}

static void table_put(struct table *t, void *item, hash_fn hash)
{
    if ((t->used + 1) * 2 > t->cap) {
        struct table bigger = {lk_calloc(t->cap ? t->cap * 2 : 64, sizeof(void *)),
                               t->cap ? t->cap * 2 : 64, 0};
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i] != NULL)
                table_put(&bigger, t->slots[i], hash);
        free(t->slots);
        *t = bigger;
    }
    size_t i = hash(item) & (t->cap - 1);
    while (t->slots[i] != NULL)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = item;
    t->used++;
}

struct lk_counters *lk_counters_new(void)
{
    struct lk_counters *c = lk_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void lk_counters_free(struct lk_counters *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->keys.cap; i++)
        free(c->keys.slots[i]);
    while (c->all_ws != NULL) {
        struct lk_wstate *w = c->all_ws;
        c->all_ws = w->next_all;
        pthread_spin_destroy(&w->mu);
        pthread_mutex_destroy(&w->lease_mu);
        free(w);
    }
    free(c->keys.slots);
    free(c->ws.slots);
    lk_counter_rows_free(&c->spill);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct lk_wstate *lk_counters_ws(struct lk_counters *c, const char *id)
{
    struct lk_wstate *w = NULL;
    uint64_t h = hash_str(id);

    pthread_mutex_lock(&c->mu);
    if (c->ws.cap > 0) {
        for (size_t i = h & (c->ws.cap - 1); c->ws.slots[i] != NULL; i = (i + 1) & (c->ws.cap - 1)) {
            struct lk_wstate *x = c->ws.slots[i];
            if (strcmp(x->id, id) == 0) {
                w = x;
                break;
            }
        }
    }
    if (w == NULL) {
        w = lk_calloc(1, sizeof(*w));
        snprintf(w->id, sizeof(w->id), "%s", id);
        pthread_spin_init(&w->mu, PTHREAD_PROCESS_PRIVATE);
        pthread_mutex_init(&w->lease_mu, NULL);
        w->quota = w->test_quota = -1;
        lk_quota_init(&w->live);
        lk_quota_init(&w->test);
        lk_quota_init(&w->unsaved_live);
        lk_quota_init(&w->unsaved_test);
        table_put(&c->ws, w, ws_hash);
        w->next_all = c->all_ws;
        c->all_ws = w;
    }
    pthread_mutex_unlock(&c->mu);
    return w;
}

struct lk_kstate *lk_counters_key(struct lk_counters *c, int64_t rowid, struct lk_wstate *ws)
{
    struct lk_kstate *k = NULL;
    uint64_t h = hash_i64(rowid);

    pthread_mutex_lock(&c->mu);
    if (c->keys.cap > 0) {
        for (size_t i = h & (c->keys.cap - 1); c->keys.slots[i] != NULL;
             i = (i + 1) & (c->keys.cap - 1)) {
            struct lk_kstate *x = c->keys.slots[i];
            if (x->rowid == rowid) {
                k = x;
                if (k->ws == NULL)
                    k->ws = ws;
                break;
            }
        }
    }
    if (k == NULL) {
        k = lk_calloc(1, sizeof(*k));
        k->rowid = rowid;
        k->ws = ws;
        table_put(&c->keys, k, key_hash);
    }
    pthread_mutex_unlock(&c->mu);
    return k;
}

void lk_counters_set_quota(struct lk_wstate *ws, int64_t quota, int64_t test_quota)
{
    if (quota >= 0 && test_quota < 0)
        test_quota = quota / 10 > 0 ? quota / 10 : 1;
    lk_wstate_lock(ws);
    ws->quota = quota;
    ws->test_quota = test_quota;
    lk_wstate_unlock(ws);
}

void lk_counters_queue_ws(struct lk_counters *c, struct lk_wstate *ws)
{
    bool no = false;

    if (atomic_load_explicit(&ws->queued, memory_order_relaxed) ||
        !atomic_compare_exchange_strong(&ws->queued, &no, true))
        return;
    pthread_mutex_lock(&c->mu);
    ws->next_dirty = c->dirty_ws;
    c->dirty_ws = ws;
    pthread_mutex_unlock(&c->mu);
}

void lk_counters_queue_key(struct lk_counters *c, struct lk_kstate *k)
{
    bool no = false;

    /* Sequentially consistent with the count before it and the recorder's
     * clear-then-take: a count is either taken or finds the key unqueued. */
    if (atomic_load(&k->queued) || !atomic_compare_exchange_strong(&k->queued, &no, true))
        return;
    pthread_mutex_lock(&c->mu);
    k->next_dirty = c->dirty_keys;
    c->dirty_keys = k;
    pthread_mutex_unlock(&c->mu);
}

void lk_counter_rows_add(struct lk_counter_rows *l, enum lk_counter_kind kind,
                         const struct lk_counter_row *r)
{
    size_t cap = l->cap;

    l->rows = lk_grow(l->rows, l->n, &cap, sizeof(*l->rows));
    l->kinds = lk_grow(l->kinds, l->n, &l->cap, sizeof(*l->kinds));
    l->kinds[l->n] = kind;
    l->rows[l->n++] = *r;
}

void lk_counter_rows_free(struct lk_counter_rows *l)
{
    free(l->rows);
    free(l->kinds);
    memset(l, 0, sizeof(*l));
}

/* Caller holds c->mu. */
static void spill_locked(struct lk_counters *c, enum lk_counter_kind kind,
                         const struct lk_counter_row *r)
{
    lk_counter_rows_add(&c->spill, kind, r);
}

void lk_counters_spill(struct lk_counters *c, enum lk_counter_kind kind,
                       const struct lk_counter_row *r)
{
    pthread_mutex_lock(&c->mu);
    spill_locked(c, kind, r);
    pthread_mutex_unlock(&c->mu);
}

/* Moves k's counts of its old hour aside. Caller holds c->mu. */
static void roll_locked(struct lk_counters *c, struct lk_kstate *k, int64_t hour)
{
    int64_t old = atomic_load(&k->count_hour);

    if (old == hour)
        return;
    for (int code = 0; code < LK_USAGE_CODES; code++) {
        uint32_t n = atomic_exchange(&k->counts[code], 0);
        if (n > 0 && old != 0)
            spill_locked(c, LK_CTR_USAGE,
                         &(struct lk_counter_row){.key_rowid = k->rowid, .period = old,
                                                  .code = code, .n = n});
    }
    atomic_store(&k->count_hour, hour);
}

void lk_counters_count(struct lk_counters *c, struct lk_kstate *k, enum lk_err outcome,
                       int64_t now)
{
    int64_t hour = now - now % 3600;

    if ((int)outcome < 0 || (int)outcome >= LK_USAGE_CODES)
        return;
    /* A new hour: the counts so far belong to the old one. (A check racing the
     * change of hour may land on either side of it.) */
    if (atomic_load_explicit(&k->count_hour, memory_order_relaxed) != hour) {
        pthread_mutex_lock(&c->mu);
        roll_locked(c, k, hour);
        pthread_mutex_unlock(&c->mu);
    }
    atomic_fetch_add(&k->counts[outcome], 1);
    lk_counters_queue_key(c, k);
}

int64_t lk_counters_take_counts(struct lk_counters *c, struct lk_kstate *k,
                                uint32_t out[LK_USAGE_CODES])
{
    int64_t hour;

    pthread_mutex_lock(&c->mu); /* no roll in between: counts and hour agree */
    hour = atomic_load(&k->count_hour);
    for (int code = 0; code < LK_USAGE_CODES; code++)
        out[code] = atomic_exchange(&k->counts[code], 0);
    pthread_mutex_unlock(&c->mu);
    return hour;
}

void lk_counters_take_dirty(struct lk_counters *c, struct lk_wstate **ws, struct lk_kstate **keys,
                            struct lk_counter_rows *spilled)
{
    pthread_mutex_lock(&c->mu);
    *ws = c->dirty_ws;
    *keys = c->dirty_keys;
    *spilled = c->spill;
    c->dirty_ws = NULL;
    c->dirty_keys = NULL;
    memset(&c->spill, 0, sizeof(c->spill));
    pthread_mutex_unlock(&c->mu);
}

void lk_counters_each_ws(struct lk_counters *c, void (*fn)(void *arg, struct lk_wstate *ws),
                         void *arg)
{
    struct lk_wstate *w;

    pthread_mutex_lock(&c->mu);
    w = c->all_ws;
    pthread_mutex_unlock(&c->mu);
    /* The list only grows at its head, so walking from a snapshot of it is safe. */
    for (; w != NULL; w = w->next_all)
        fn(arg, w);
}
