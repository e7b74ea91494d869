/*
 * quota.h — a rolling window of whole UTC days (Flotiq's 30-day quota): counts
 * kept per day in a small ring; a day's count stops counting `LK_QUOTA_DAYS`
 * days later. Pure: `day` (Unix seconds / 86400) is a parameter.
 */
#ifndef LK_QUOTA_H
#define LK_QUOTA_H

#include <stdint.h>

#define LK_QUOTA_DAYS 30
#define LK_DAY_S 86400

struct lk_quota {
    int64_t day[LK_QUOTA_DAYS];   /* which day each slot holds; -1: none */
    int64_t count[LK_QUOTA_DAYS];
};

/* The UTC day number of Unix time t, and the seconds until the next day. */
int64_t lk_day_of(int64_t t);
int64_t lk_day_left(int64_t t);

void lk_quota_init(struct lk_quota *q);

/* Events counted on `today` and the LK_QUOTA_DAYS - 1 days before it. */
int64_t lk_quota_used(const struct lk_quota *q, int64_t today);

/* Count of day `day` alone (0 when it is not in the ring). */
int64_t lk_quota_day(const struct lk_quota *q, int64_t day);

/* Adds n events to `day`, reusing the slot of a day that left the window.
 * Days before the window are ignored. */
void lk_quota_add(struct lk_quota *q, int64_t day, int64_t n);

#endif
