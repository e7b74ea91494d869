/*
 * timefmt.h — RFC 3339 UTC timestamps ("2026-11-23T08:40:51Z"), the only time
 * format latchkey shows. Pure; safe from any thread.
 */
#ifndef LK_TIMEFMT_H
#define LK_TIMEFMT_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define LK_TIME_STRLEN 32
#define LK_TIME_MAX INT64_C(253402300800) /* 10000-01-01T00:00:00Z */

/* Writes t (Unix seconds) as RFC 3339 UTC into out. */
void lk_time_format(int64_t t, char out[LK_TIME_STRLEN]);

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (optionally with fractional seconds, which are
 * dropped, or a "+HH:MM"/"-HH:MM" offset). A leap second (:60) reads as the next
 * second; results outside [1970, 10000) UTC are refused. Returns 0 and sets *out, or -1. */
int lk_time_parse(const char *s, size_t len, int64_t *out /* OUT */);

/* The refill period t (Unix s) is in, for a key's own credits (UTC): the day
 * number for a daily refill; for a monthly one on `day` (1..31, a shorter
 * month's last day standing in), the months since 1970-01 of the last refill
 * day at or before t. A refill is due when a check's period is past the one
 * the credits were last set or refilled in. */
int64_t lk_refill_period(bool monthly, int day, int64_t t);

#endif
