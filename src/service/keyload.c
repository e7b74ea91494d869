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
    struct lk_store *store;
    pthread_mutex_t mu;
    pthread_cond_t filled;       /* a batch was handed over, or the scan ended */
    pthread_cond_t emptied;      /* a batch is free again */
    struct batch *full, **tail;  /* handed over, oldest first */
    struct batch *free;          /* to fill */
    bool done;                   /* guarded by mu: the scan returned ... */
    enum lk_err err;             /* ... with this */
    struct batch *filling;       /* the reader's own */
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
    struct loader *l = arg;
    struct batch *b = l->filling;
    int i;

    if (b == NULL) {
        pthread_mutex_lock(&l->mu);
        while (l->free == NULL)
            pthread_cond_wait(&l->emptied, &l->mu);
        b = l->filling = l->free;
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
        l->filling = NULL;
        hand_over(l, b);
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct loader *l = arg;
    enum lk_err e = lk_store_key_scan(l->store, LK_KEY_COLS_CACHE, on_row, l);

    if (l->filling != NULL) {
        hand_over(l, l->filling);
        l->filling = NULL;
    }
    pthread_mutex_lock(&l->mu);
    l->err = e;
    l->done = true;
    pthread_cond_signal(&l->filled);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static int put_row(void *arg, const struct lk_key_row *row)
{
    lk_keycache_put(arg, row);
    return 0;
}

enum lk_err lk_keyload(struct lk_store *s, struct lk_keycache *c)
{
    struct loader l = {.store = s};
    struct batch *b;
    pthread_t tid;
    enum lk_err e;

    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.filled, NULL);
    pthread_cond_init(&l.emptied, NULL);
    l.tail = &l.full;
    for (int i = 0; i < BATCHES; i++) {
        b = lk_calloc(1, sizeof(*b));
        b->next = l.free;
        l.free = b;
    }
    if (pthread_create(&tid, NULL, reader_main, &l) != 0) {
        lk_warn("key load: no reader thread, reading on this one");
        e = lk_store_key_scan(s, LK_KEY_COLS_CACHE, put_row, c);
        goto out;
    }
    pthread_setname_np(tid, "lk-keyload");
    for (;;) {
        pthread_mutex_lock(&l.mu);
        while (l.full == NULL && !l.done)
            pthread_cond_wait(&l.filled, &l.mu);
        b = l.full;
        if (b != NULL && (l.full = b->next) == NULL)
            l.tail = &l.full;
        pthread_mutex_unlock(&l.mu);
        if (b == NULL)
            break; /* done, and every batch put */
        for (int i = 0; i < b->n; i++)
            lk_keycache_put(c, &b->rows[i]);
        pthread_mutex_lock(&l.mu);
        b->next = l.free;
        l.free = b;
        pthread_cond_signal(&l.emptied);
        pthread_mutex_unlock(&l.mu);
    }
    pthread_join(tid, NULL);
    e = l.err;
out:
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
