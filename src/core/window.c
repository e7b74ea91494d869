#include "core/window.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

bool lk_window_expired(const struct lk_window *w, int64_t now, int64_t window_s)
{
    return w->start == 0 || now >= w->start + window_s;
}

bool lk_window_full(const struct lk_window *w, int64_t now, int64_t limit, int64_t window_s,
                    int64_t *retry_after)
{
    if (lk_window_expired(w, now, window_s) || w->count < limit)
        return false;
    if (retry_after != NULL) {
        int64_t left = w->start + window_s - now;
        *retry_after = left > 0 ? left : 1;
    }
    return true;
}

void lk_window_add(struct lk_window *w, int64_t now, int64_t window_s)
{
    if (lk_window_expired(w, now, window_s)) {
        w->start = now;
        w->count = 0;
    }
    w->count++;
}
