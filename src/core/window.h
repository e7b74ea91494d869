/*
 * window.h — counting events in a fixed time window that opens with the first
 * event (login throttling today; the arithmetic of rate limits builds on it).
 * Pure: `now` is a parameter, integers only, and the answer includes how long
 * until allowed, so Retry-After falls out of it.
 */
#ifndef LK_WINDOW_H
#define LK_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

struct lk_window {
    int64_t start; /* when the current window opened (Unix s); 0: none yet */
    int64_t count; /* events in it */
};

/* True when `limit` events are already in the window that is open at `now`;
 * then *retry_after (if not NULL) is the seconds until it closes (at least 1). */
bool lk_window_full(const struct lk_window *w, int64_t now, int64_t limit, int64_t window_s,
                    int64_t *retry_after);

/* Counts one event at `now`, opening a new window if the last one has closed. */
void lk_window_add(struct lk_window *w, int64_t now, int64_t window_s);

/* True when the window has closed by `now` (its count no longer matters). */
bool lk_window_expired(const struct lk_window *w, int64_t now, int64_t window_s);

#endif
