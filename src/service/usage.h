/*
 * usage.h — the recorder: writes what checks did, off the hot path (DESIGN §7
 * "record"), every second in one transaction: each key's last-used time, usage
 * per key, hour and outcome, quota days per workspace, spending (leased → spent,
 * with the hour's ledger entry) and each key's spend of the day. It also tops up
 * credit leases that run low, and once an hour drops usage older than 90 days.
 * lk_usage_free() writes what is left, so a clean stop loses nothing.
 *
 * The hot path only touches atomics and, at most once per key per second,
 * updates its last-used time in memory; at most once a key a minute it appends
 * that time to a buffer for the store.
 *
 * Thread safety: lk_usage_touch() is safe from any thread.
 */
#ifndef LK_USAGE_H
#define LK_USAGE_H

#include <stdint.h>

#include "service/keycache.h"
#include "store/store.h"

/* The recorder writes every LK_USAGE_FLUSH_MS, or, after a write that took T,
 * LK_USAGE_SHARE times T later, at most LK_USAGE_FLUSH_MAX_MS: under heavy
 * load (a write a row for each key checked) it keeps to about a tenth of a
 * core, and each write carries more checks a row. */
#define LK_USAGE_FLUSH_MS 1000
#define LK_USAGE_FLUSH_MAX_MS 10000
#define LK_USAGE_SHARE 10
#define LK_USAGE_MAX_PENDING 1000000 /* touches held between flushes; more are merged later */
#define LK_USAGE_KEEP_S (90 * 86400) /* usage is kept this long */
/* A key's stored last-used time is written when a check falls in a later minute
 * than the one it was last written in: at most once a minute a key, so it is at
 * most this far behind the last check (this node's memory has it to the second). */
#define LK_LAST_USED_STEP_S 60

struct lk_usage;
struct lk_app;

/* Starts the recorder thread. `app` is borrowed and must outlive it. Caller frees
 * with lk_usage_free(), which writes what is pending first, waiting for a locked
 * database as long as a management call would, and a few times over; it returns
 * false when that still failed (then the unwritten counts are lost, and spending
 * must be left leased). Accepts NULL (returns false). */
struct lk_usage *lk_usage_new(struct lk_app *app);
bool lk_usage_free(struct lk_usage *u);

/* Notes that key k was used at `now`. Call inside the cache read lock. */
void lk_usage_touch(struct lk_usage *u, const struct lk_ckey *k, int64_t now);

/* Writes everything pending now. */
void lk_usage_flush(struct lk_usage *u);

/* Holds off writes until resumed, so that what the store holds and what the
 * counters hold unwritten can be read as one (no batch is half-way between). */
/* How long ago the last flush that wrote everything began: every count older
 * than that is in the store, so it bounds the age of the oldest unwritten one
 * (stays below about LK_USAGE_FLUSH_MAX_MS while the store accepts writes). Any thread. */
int64_t lk_usage_lag_ms(struct lk_usage *u);

void lk_usage_pause(struct lk_usage *u);
void lk_usage_resume(struct lk_usage *u);

#endif
