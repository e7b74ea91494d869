/*
 * clock.h — wall-clock reads, kept out of core/ so core arithmetic takes `now`
 * as a parameter. Safe from any thread.
 */
#ifndef LK_CLOCK_H
#define LK_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Reads LATCHKEY_CLOCK_OFFSET_FILE (tests only: a file of seconds added to every
 * reading, re-read every 100 ms). Call once at start, before threads. */
void lk_clock_init(void);

/* Unix seconds, from the coarse clock: cheap enough for the hot path. */
int64_t lk_clock_now_s(void);

/* Unix milliseconds, precise. */
int64_t lk_clock_now_ms(void);

/* CLOCK_MONOTONIC in milliseconds from the coarse clock (a vDSO read of a few
 * ns; it lags the precise one by at most a tick, a few ms): for bounds of a
 * second or so checked on every request. */
int64_t lk_clock_mono_coarse_ms(void);

/* The time `ms` (>= 0) milliseconds from now on clock `clk`: a deadline for
 * pthread_cond_timedwait (CLOCK_REALTIME unless the condition says otherwise). */
struct timespec lk_clock_after_ms(clockid_t clk, int64_t ms);

#endif
