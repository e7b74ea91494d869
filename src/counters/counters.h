/*
 * counters.h — the in-process counters (DESIGN §7 "counters"): what limits and
 * money need per workspace and per key, in memory, so a check never queries the
 * database. The states are opaque (their fields: counters_int.h, private to
 * src/counters/); the service layer keeps the policy and calls operations that
 * each take the workspace lock themselves: the check (counters/charge.h), the
 * credit lease (counters/wallet.h), the recorder's batch and the start (here).
 *
 * A workspace's state (`struct lk_wstate`) holds its quota ring, its credit lease
 * and a mutex that guards it and the limit state of all its keys, so a check
 * that must pass a spend cap, the balance, a rate limit and the quota takes all
 * four decisions and their effects under one lock: never half-applied, never
 * overspent. A key's state (`struct lk_kstate`) is made the first time the key is
 * checked and is shared by every cache entry of the key, across changes.
 *
 * States live until lk_counters_free(); keys and workspaces are never deleted
 * (revoking keeps the row), so a pointer to a state stays valid.
 *
 * A serving process keeps the states in a memory-mapped file in its state
 * directory (lk_counters_open(); service/node.h): every store of a check reaches the page cache
 * at memory speed, so a killed process leaves its counters behind, exact, for
 * the next start to read back (the file's layout and checks: counters.c). The
 * file names the kernel's boot id; after a reboot it is not believed.
 *
 * With several nodes, counters/shared.h is the second backend beside this one:
 * it keeps a key's rate window, a workspace's quota days and a key's day spend
 * for all nodes (Redis), and this node holds slices of them here, decided
 * under the same workspace lock (counters/charge.h). Everything else (usage,
 * credit leases, what the recorder writes) stays this node's.
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_COUNTERS_H
#define LK_COUNTERS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/quota.h"
#include "store/store.h"

/* Outcomes counted per key for usage: the verification outcomes of err.def,
 * LK_OK (valid) through LK_ERR_TOO_MANY_REQUESTS. */
#define LK_USAGE_CODES (LK_ERR_TOO_MANY_REQUESTS + 1)

/* A growing list of counter rows, each with its kind. */
struct lk_counter_rows {
    struct lk_counter_row *rows;
    enum lk_counter_kind *kinds;
    size_t n, cap;
};

void lk_counter_rows_add(struct lk_counter_rows *l, enum lk_counter_kind kind,
                         const struct lk_counter_row *r);
void lk_counter_rows_free(struct lk_counter_rows *l);

struct lk_counters;
/* A workspace's and a key's state: opaque (counters_int.h); live until
 * lk_counters_free(). */
struct lk_wstate;
struct lk_kstate;

/* The workspace's id. */
const char *lk_wstate_id(const struct lk_wstate *ws);

/* Counters in memory only. Caller frees with lk_counters_free(). */
struct lk_counters *lk_counters_new(void);
/* Counters kept in the file at `path`, made if missing. Only the node that
 * holds the file's lock (service/node.h) may open it. `owner` names what
 * the counts belong to (the database file), at most 63 bytes. If the file was
 * left by a process of this boot for the same owner and passes every check,
 * its states are read back,
 * marked `recovered`, and *recovered is true; otherwise (missing, another
 * boot, another layout, not sane: it is outside input) it starts empty and
 * *recovered is false. The boot id is /proc/sys/kernel/random/boot_id, or for
 * tests the content of the file named by LATCHKEY_BOOT_ID_FILE.
 * LK_ERR_STORAGE_UNAVAILABLE if the file cannot be opened or mapped. */
enum lk_err lk_counters_open(const char *path, const char *owner,
                             struct lk_counters **out /* OUT */, bool *recovered /* OUT */);
void lk_counters_free(struct lk_counters *c);

/* The state of workspace `id` if there is one (NULL otherwise). */
struct lk_wstate *lk_counters_find_ws(struct lk_counters *c, const char *id);

/* The state of workspace `id`, made if missing. */
struct lk_wstate *lk_counters_ws(struct lk_counters *c, const char *id);
/* The state of the key with this row id, made if missing (its workspace `ws`). */
struct lk_kstate *lk_counters_key(struct lk_counters *c, int64_t rowid, struct lk_wstate *ws);

/* Maps a spare chunk of the counter file ahead of need when the current one is
 * half used (the recorder calls it; a no-op for counters in memory). */
void lk_counters_reserve(struct lk_counters *c);

/* Sets a workspace's quotas; a test quota of -1 with a quota set becomes a tenth
 * of the quota (at least 1). Takes ws->mu. */
void lk_counters_set_quota(struct lk_wstate *ws, int64_t quota, int64_t test_quota);

/* Puts a state on the dirty list (once until taken). Call after changing
 * unsaved fields or counts. */
void lk_counters_queue_ws(struct lk_counters *c, struct lk_wstate *ws);
void lk_counters_queue_key(struct lk_counters *c, struct lk_kstate *k);

/* Starts loading the lines of k that lk_counters_count writes, so that their
 * cache misses overlap the state and permission checks that come first. */
void lk_counters_prefetch_key(const struct lk_kstate *k);

/* Counts one outcome of key k for usage. */
void lk_counters_count(struct lk_counters *c, struct lk_kstate *k, enum lk_err outcome,
                       int64_t now);

/* Sets aside counts that belong to a closed hour or day (usage, key spend), to
 * be written with the next batch. */
void lk_counters_spill(struct lk_counters *c, enum lk_counter_kind kind,
                       const struct lk_counter_row *r);

/* At start: the stored counts a state starts from (a key's usage of the hour
 * `hour`, its spend of day `day`, a workspace's quota days). */
void lk_counters_load_count(struct lk_counters *c, struct lk_kstate *k, int64_t hour, int code,
                            uint32_t n);
void lk_counters_load_spend(struct lk_kstate *k, int64_t day, int64_t n);
void lk_counters_load_quota(struct lk_wstate *ws, int64_t day, int64_t n, int64_t n_test);

/* At start, from a counter file read back: what its recovered states hold for
 * the store, as rows to raise the stored ones to (appended to out): quota days,
 * key spend of the day and the day before, usage of the hour and the hour
 * before. */
void lk_counters_recovered_rows(struct lk_counters *c, struct lk_counter_rows *out /* OUT */);
/* Once the store holds those rows (and the leases are settled): every state
 * starts from the store again: nothing leased or unsaved, no quota days, no key
 * spend, every usage count written. Rate windows stay. No check may run. */
void lk_counters_settle(struct lk_counters *c);

/* A workspace's quota state (GET /v1/quota). */
struct lk_quota_view {
    struct lk_quota live, test;
    int64_t quota, test_quota; /* -1: unlimited */
};
void lk_counters_quota_view(struct lk_wstate *ws, struct lk_quota_view *out /* OUT */);

/* What the recorder writes in one transaction, taken out of the counters. */
struct lk_counters_batch {
    struct lk_counter_rows rows; /* spilled rows, then quota, usage and key-spend rows */
    struct lk_batch_spend {
        struct lk_wstate *ws;
        int64_t amount; /* spent from the lease, to be booked */
    } *spends;
    size_t nspends, spend_cap;
    struct lk_wstate **low; /* workspaces whose lease ran below half its size */
    size_t nlow, low_cap;
};

/* Takes everything unsaved of the dirty states into b (zeroed by the caller),
 * marking it saved. */
void lk_counters_take_batch(struct lk_counters *c, struct lk_counters_batch *b /* OUT */);
/* The batch's write failed: its numbers are unsaved again and the next
 * lk_counters_take_batch() takes them (rows of closed hours and days keep their
 * period). b stays the caller's to free. */
void lk_counters_return_batch(struct lk_counters *c, const struct lk_counters_batch *b);
void lk_counters_batch_free(struct lk_counters_batch *b);

/* Calls fn for every workspace state. */
void lk_counters_each_ws(struct lk_counters *c, void (*fn)(void *arg, struct lk_wstate *ws),
                         void *arg);
/* Calls fn for every key state (at start, before checks run: no lock held). */
void lk_counters_each_key(struct lk_counters *c, void (*fn)(void *arg, struct lk_kstate *k),
                          void *arg);

#endif
