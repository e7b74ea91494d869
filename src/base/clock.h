/*
 * clock.h — wall-clock reads, kept out of core/ so core arithmetic takes `now`
 * as a parameter. Safe from any thread.
 */
#ifndef LK_CLOCK_H
#define LK_CLOCK_H

#include <stdint.h>

/* Reads LATCHKEY_CLOCK_OFFSET_FILE (tests only: a file of seconds added to every
 * reading, re-read every 100 ms). Call once at start, before threads. */
void lk_clock_init(void);

/* Unix seconds, from the coarse clock: cheap enough for the hot path. */
int64_t lk_clock_now_s(void);

/* Unix milliseconds, precise. */
int64_t lk_clock_now_ms(void);

#endif
