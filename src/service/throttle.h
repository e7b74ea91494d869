/*
 * throttle.h — counts attempts per name (an email, an address) in fixed windows,
 * in memory, to slow down guessing (DESIGN §9). Bounded: at most
 * LK_THROTTLE_MAX_NAMES names are tracked; when full, closed windows are dropped,
 * and if none has closed the oldest window goes.
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_THROTTLE_H
#define LK_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#define LK_THROTTLE_MAX_NAMES 65536

struct lk_throttle;

/* Caller frees with lk_throttle_free(). */
struct lk_throttle *lk_throttle_new(int64_t limit, int64_t window_s);
void lk_throttle_free(struct lk_throttle *t);

/* Checks and counts in one step, so parallel attempts cannot all pass the check
 * before any is counted: returns false (and *retry_after) when `name` is blocked,
 * else counts an attempt and returns true. Give it back with lk_throttle_refund()
 * when the attempt succeeds. */
bool lk_throttle_take(struct lk_throttle *t, const char *name, int64_t now,
                      int64_t *retry_after /* OUT */);

/* Uncounts one attempt of `name` (it succeeded). */
void lk_throttle_refund(struct lk_throttle *t, const char *name);

/* For limits that count failures only: true (and *retry_after) when `name` has
 * `limit` failures in its open window. Cheap when nobody is blocked. Accepts a
 * NULL throttle (the limit is off): never blocked. */
bool lk_throttle_blocked(struct lk_throttle *t, const char *name, int64_t now,
                         int64_t *retry_after /* OUT */);
/* Counts one failure of `name` and returns true; or returns false (and
 * *retry_after) without counting when `name` already has `limit` failures in its
 * open window. The check in lk_throttle_blocked() and this count are two steps,
 * and parallel failures can all pass the first: the caller answers a false here
 * as blocked, so no more than `limit` failures are ever answered as such.
 * Accepts a NULL throttle (true); retry_after may be NULL. */
bool lk_throttle_note(struct lk_throttle *t, const char *name, int64_t now,
                      int64_t *retry_after /* OUT */);

/* Forgets `name` (after a success). */
void lk_throttle_clear(struct lk_throttle *t, const char *name);

#endif
