/*
 * clock.h — wall-clock reads, kept out of core/ so core arithmetic takes `now`
 * as a parameter. Safe from any thread.
 */
#ifndef LK_CLOCK_H
#define LK_CLOCK_H

#include <stdint.h>

/* Unix seconds, from the coarse clock: cheap enough for the hot path. */
int64_t lk_clock_now_s(void);

/* Unix milliseconds, precise. */
int64_t lk_clock_now_ms(void);

#endif
