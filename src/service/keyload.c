#include "service/keyload.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/log.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define BATCH_ROWS 256 /* rows handed over at a time: one lock round per batch */
#define BATCHES 8      /* in flight: how far the reader may run ahead */
#define NONE SIZE_MAX  /* an offset of a string or list the row does not have */
/* Keys from which a second reader pays for its connection's scan set-up. */
#define TWO_READERS_FROM 20000

/* Rows copied out of the scan, which lends them only for its callback. Their
 * permissions, meta and named rate limits go to two arenas of the batch; the
 * rows point into them once the batch is handed over (an arena may move while
 * it grows, so until then only offsets are kept). */
struct batch {
    struct batch *next;
    int n;
    char *text;
    size_t text_len, text_cap;
    struct lk_key_rl *rls;
    size_t rls_len, rls_cap;
    size_t perm_off[BATCH_ROWS], meta_off[BATCH_ROWS], rl_off[BATCH_ROWS];
    struct lk_key_row rows[BATCH_ROWS];
};

struct loader {
    pthread_mutex_t mu;
    pthread_cond_t filled;      /* a batch was handed over, or a reader ended */
    pthread_cond_t emptied;     /* a batch is free again */
    struct batch *full, **tail; /* handed over, oldest first */
    struct batch *free;         /* to fill */
    int running;                /* guarded by mu: readers not yet ended */
};

/* One reader thread: a range of rowids on a connection of its own. */
struct reader {
    struct loader *l;
    struct lk_store *store;
    int64_t after, upto;
    struct batch *filling; /* the reader's own */
    enum lk_err err;
    pthread_t tid;
    bool started;
};

static size_t keep_text(struct batch *b, const char *s)
{
    size_t len, off;

    if (s == NULL)
        return NONE;
    len = strlen(s) + 1;
    if (b->text_len + len > b->text_cap) {
        b->text_cap = (b->text_len + len) * 2;
        b->text = lk_realloc(b->text, b->text_cap);
    }
    off = b->text_len;
    memcpy(b->text + off, s, len);
    b->text_len += len;
    return off;
}

static size_t keep_rls(struct batch *b, const struct lk_key_rl *rl, int n)
{
    size_t off;

    if (rl == NULL || n <= 0)
        return NONE;
    if (b->rls_len + (size_t)n > b->rls_cap) {
        b->rls_cap = (b->rls_len + (size_t)n) * 2;
        b->rls = lk_realloc(b->rls, b->rls_cap * sizeof(*b->rls));
    }
    off = b->rls_len;
    memcpy(b->rls + off, rl, (size_t)n * sizeof(*rl));
    b->rls_len += (size_t)n;
    return off;
}

/* Reader: the batch's rows point into its arenas from here on. */
static void hand_over(struct loader *l, struct batch *b)
{
    for (int i = 0; i < b->n; i++) {
        struct lk_key_row *r = &b->rows[i];
        r->permissions = b->perm_off[i] == NONE ? NULL : b->text + b->perm_off[i];
        r->meta = b->meta_off[i] == NONE ? NULL : b->text + b->meta_off[i];
        r->rate_limits = b->rl_off[i] == NONE ? NULL : b->rls + b->rl_off[i];
        if (r->rate_limits == NULL)
            r->n_rate_limits = 0;
    }
    b->next = NULL;
    pthread_mutex_lock(&l->mu);
    *l->tail = b;
    l->tail = &b->next;
    pthread_cond_signal(&l->filled);
    pthread_mutex_unlock(&l->mu);
}

static int on_row(void *arg, const struct lk_key_row *row)
{
    struct reader *rd = arg;
    struct loader *l = rd->l;
    struct batch *b = rd->filling;
    int i;

    if (b == NULL) {
        pthread_mutex_lock(&l->mu);
        while (l->free == NULL)
            pthread_cond_wait(&l->emptied, &l->mu);
        b = rd->filling = l->free;
        l->free = b->next;
        pthread_mutex_unlock(&l->mu);
        b->n = 0;
        b->text_len = b->rls_len = 0;
    }
    i = b->n++;
    b->rows[i] = *row;
    b->perm_off[i] = keep_text(b, row->permissions);
    b->meta_off[i] = keep_text(b, row->meta);
    b->rl_off[i] = keep_rls(b, row->rate_limits, row->n_rate_limits);
    if (b->n == BATCH_ROWS) {
        rd->filling = NULL;
        hand_over(l, b);
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    struct loader *l = rd->l;

    rd->err = lk_store_key_scan_range(rd->store, LK_KEY_COLS_CACHE, rd->after, rd->upto, on_row,
                                      rd);
    if (rd->filling != NULL) {
        hand_over(l, rd->filling);
        rd->filling = NULL;
    }
    pthread_mutex_lock(&l->mu);
    l->running--;
    pthread_cond_signal(&l->filled);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static int put_row(void *arg, const struct lk_key_row *row)
{
    lk_keycache_put(arg, row);
    return 0;
}

enum lk_err lk_keyload(struct lk_store *s, struct lk_store *s2, struct lk_keycache *c)
{
    struct loader l = {0};
    struct reader rd[2] = {{.l = &l, .store = s, .after = 0, .upto = INT64_MAX}};
    int nrd = 1;
    struct batch *b;
    enum lk_err e = LK_OK;
    int64_t max = 0;

    /* Halves by rowid (dense enough: keys are revoked, not deleted) on two
     * connections; one reader when there is one connection or few keys. */
    if (lk_store_key_rowid_max(s, &max) != LK_OK)
        max = 0;
    /* The cache's index by rowid maps a rowid to its low bits: two readers'
     * interleaved ranges would pile up in a table smaller than the rowids
     * (a start of a million keys took a minute). Sized up front, every rowid has
     * its own slot, and the digest table never copies itself while it fills. */
    if (lk_keycache_count(c) == 0 && max > 0)
        lk_keycache_reserve(c, (unsigned long)max);
    if (s2 != NULL && s2 != s && max >= TWO_READERS_FROM) {
        rd[0].upto = max / 2;
        rd[1] = (struct reader){.l = &l, .store = s2, .after = max / 2, .upto = INT64_MAX};
        nrd = 2;
    }
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.filled, NULL);
    pthread_cond_init(&l.emptied, NULL);
    l.tail = &l.full;
    for (int i = 0; i < BATCHES; i++) {
        b = lk_calloc(1, sizeof(*b));
        b->next = l.free;
        l.free = b;
    }
    l.running = nrd; /* before any reader runs, so none can count down first */
    for (int i = 0; i < nrd; i++) {
        if (pthread_create(&rd[i].tid, NULL, reader_main, &rd[i]) != 0) {
            pthread_mutex_lock(&l.mu);
            l.running--;
            pthread_mutex_unlock(&l.mu);
            continue; /* its range is read on this thread below */
        }
        rd[i].started = true;
        pthread_setname_np(rd[i].tid, "lk-keyload");
    }
    for (;;) {
        pthread_mutex_lock(&l.mu);
        while (l.full == NULL && l.running > 0)
            pthread_cond_wait(&l.filled, &l.mu);
        b = l.full;
        if (b != NULL && (l.full = b->next) == NULL)
            l.tail = &l.full;
        pthread_mutex_unlock(&l.mu);
        if (b == NULL)
            break; /* every reader ended, and every batch is put */
        for (int i = 0; i < b->n; i++)
            lk_keycache_put(c, &b->rows[i]);
        pthread_mutex_lock(&l.mu);
        b->next = l.free;
        l.free = b;
        pthread_cond_signal(&l.emptied);
        pthread_mutex_unlock(&l.mu);
    }
    for (int i = 0; i < nrd; i++) {
        if (rd[i].started) {
            pthread_join(rd[i].tid, NULL);
        } else {
            lk_warn("key load: no reader thread, reading on this one");
            rd[i].err = lk_store_key_scan_range(rd[i].store, LK_KEY_COLS_CACHE, rd[i].after,
                                                rd[i].upto, put_row, c);
        }
        if (e == LK_OK)
            e = rd[i].err;
    }
    while ((b = l.free) != NULL) {
        l.free = b->next;
        free(b->text);
        free(b->rls);
        free(b);
    }
    pthread_cond_destroy(&l.emptied);
    pthread_cond_destroy(&l.filled);
    pthread_mutex_destroy(&l.mu);
    return e;
}
