/*
 * usage.h — records what verification observed, off the hot path (DESIGN §7
 * "record"): today each key's last-used time. The hot path only compares and
 * stores an atomic and, at most once per key per second, appends to a buffer;
 * a background thread writes the buffer to the store every second, and
 * lk_usage_free() writes what is left, so a clean shutdown loses nothing.
 *
 * Thread safety: lk_usage_touch() is safe from any thread.
 */
#ifndef LK_USAGE_H
#define LK_USAGE_H

#include <stdint.h>

#include "service/keycache.h"
#include "store/store.h"

#define LK_USAGE_FLUSH_MS 1000
#define LK_USAGE_MAX_PENDING 1000000 /* touches held between flushes; more are merged later */

struct lk_usage;

/* Starts the flush thread. `store` is borrowed and must outlive the recorder.
 * Caller frees with lk_usage_free(), which flushes first. */
struct lk_usage *lk_usage_new(struct lk_store *store);
void lk_usage_free(struct lk_usage *u);

/* Notes that key k was used at `now`. Call inside the cache read lock. */
void lk_usage_touch(struct lk_usage *u, const struct lk_ckey *k, int64_t now);

/* Writes pending touches now. */
void lk_usage_flush(struct lk_usage *u);

#endif
