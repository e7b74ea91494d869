/*
 * counters.h — the in-process counters (DESIGN §7 "counters"): what limits and
 * money need per workspace and per key, in memory, so a check never queries the
 * database. The service layer decides with them (service/limits.c) and writes
 * them to the store in batches (service/usage.c).
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
 * for all nodes (Redis), and this node holds slices of them here (struct
 * lk_slice), decided under the same workspace lock. Everything else (usage,
 * credit leases, what the recorder writes) stays this node's.
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_COUNTERS_H
#define LK_COUNTERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/quota.h"
#include "core/window.h"
#include "store/store.h"

/* This node's slice of one counter that a shared backend (counters/shared.h)
 * keeps for every node: `avail` units were granted to this node by the backend
 * and may be spent from memory, exactly, until the period ends. Guarded by the
 * workspace's mu, like the rest of the check. All zero without a shared backend
 * and after a start (a slice left by a dead process is not believed: it stays
 * granted, unspent, until its period ends). */
struct lk_slice {
    int64_t period;     /* rate: the window's end (Unix s, local); quota, spend: the day */
    int64_t avail;      /* granted to this node, not yet spent */
    int64_t left;       /* what the backend had left for everyone after the last grant */
    int64_t size;       /* how much the next refill asks for (grows with demand) */
    int64_t full_until; /* the backend had nothing left: refuse locally until then */
    int64_t last_at;    /* when the last refill was granted (Unix s) */
    int64_t limit;      /* the limit the last answer was for (a change asks again) */
    int64_t ret_period, ret_n; /* unspent of an ended day, given back at the next refill */
};

/* Outcomes counted per key for usage: the verification outcomes of err.def,
 * LK_OK (valid) through LK_ERR_TOO_MANY_REQUESTS. */
#define LK_USAGE_CODES (LK_ERR_TOO_MANY_REQUESTS + 1)

struct lk_wstate {
    char id[LK_ID_MAX];
    /* Read back from the counter file at start (its counts are a dead
     * process's, exact); false for a state made in this process. */
    bool recovered;
    bool heap; /* allocated on the heap, not in the file */
    /* Guards every field below, and the guarded fields of its keys. A spinlock:
     * held for tens of ns by the event loops, never across a call that blocks
     * (no I/O, no other lock but the counters' own). */
    pthread_spinlock_t mu;
    int64_t quota, test_quota; /* effective limits; -1: unlimited */
    struct lk_quota live, test;          /* checks per day, written or not */
    struct lk_quota unsaved_live, unsaved_test; /* not yet written */
    /* Credits: `avail` was leased from the stored balance and may be spent from
     * memory; `db_balance` mirrors the stored balance outside any lease. */
    int64_t avail, db_balance, unsaved_spend;
    /* The stored `spent` at start plus every cost spent since: what the store's
     * `spent` must become, known exactly even if the process dies. */
    int64_t spent_total;
    int64_t lease_size, last_lease_at;
    /* A change of this node's stored lease being written (its amount), 0 when
     * none, and the mark written with it: a file left with one learns from the
     * stored lease's mark whether the write committed. */
    int64_t lease_pending, lease_op;
    pthread_mutex_t lease_mu; /* one lease operation of this workspace at a time */
    struct lk_slice sh_q_live, sh_q_test; /* slices of the shared quota (guarded by mu) */
    pthread_mutex_t refill_mu; /* one refill of shared slices of this workspace at a time */
    _Atomic bool queued;      /* on the dirty list */
    struct lk_wstate *next_all, *next_dirty;
};

struct lk_kstate {
    int64_t rowid;
    struct lk_wstate *ws;
    /* Guarded by ws->mu. */
    struct lk_window rl;          /* the open rate-limit window */
    int64_t spend_day, spent;     /* the UTC day's spend (all of it, stored or not) */
    int64_t prev_day, prev_spent; /* the day before spend_day's, kept for recovery */
    int64_t unsaved_day, unsaved; /* spend not yet written, of unsaved_day */
    /* Usage of hour `count_hour` by outcome, all of it (atomics); `saved` of it
     * is written. The first count of a new hour moves the unsaved rest of the
     * old hour aside (spill) and keeps the old hour's totals in prev_counts. */
    _Atomic uint32_t counts[LK_USAGE_CODES];
    uint32_t saved[LK_USAGE_CODES]; /* guarded by the counters' registry mutex */
    _Atomic int64_t count_hour;
    int64_t prev_hour;
    uint32_t prev_counts[LK_USAGE_CODES];
    struct lk_slice sh_rl, sh_sp; /* slices of the shared rate window and day spend (ws->mu) */
    _Atomic bool queued; /* on the dirty list */
    bool recovered, heap; /* as in struct lk_wstate */
    struct lk_kstate *next_dirty;
};

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

/* Take and release ws->mu (inline: every check with limits does). */
static inline void lk_wstate_lock(struct lk_wstate *ws)
{
    pthread_spin_lock(&ws->mu);
}

static inline void lk_wstate_unlock(struct lk_wstate *ws)
{
    pthread_spin_unlock(&ws->mu);
}

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

/* Counts one outcome of key k for usage. */
void lk_counters_count(struct lk_counters *c, struct lk_kstate *k, enum lk_err outcome,
                       int64_t now);

/* Sets aside counts that belong to a closed hour or day (usage, key spend), to
 * be written with the next batch. */
void lk_counters_spill(struct lk_counters *c, enum lk_counter_kind kind,
                       const struct lk_counter_row *r);

/* Takes the dirty lists and the spilled rows (caller frees *spilled with
 * lk_counter_rows_free()). For each
 * state the caller reads `next_dirty` first, then clears `queued` (so a later
 * change queues it again, which rewrites next_dirty), then takes what is
 * unsaved: usage counts with lk_counters_take_counts(). */
void lk_counters_take_dirty(struct lk_counters *c, struct lk_wstate **ws /* OUT */,
                            struct lk_kstate **keys /* OUT */,
                            struct lk_counter_rows *spilled /* OUT */);

/* Puts k's unsaved usage counts into out (LK_USAGE_CODES of them), marks them
 * saved and returns their hour. */
int64_t lk_counters_take_counts(struct lk_counters *c, struct lk_kstate *k,
                                uint32_t out[LK_USAGE_CODES]);

/* At start: every count of k is written (saved = counts); then, for the hour
 * `hour`, `n` of outcome `code` are stored, and that is k's count of it. */
void lk_counters_settle_counts(struct lk_counters *c, struct lk_kstate *k);
void lk_counters_load_count(struct lk_counters *c, struct lk_kstate *k, int64_t hour, int code,
                            uint32_t n);

/* Calls fn for every workspace state. */
void lk_counters_each_ws(struct lk_counters *c, void (*fn)(void *arg, struct lk_wstate *ws),
                         void *arg);
/* Calls fn for every key state (at start, before checks run: no lock held). */
void lk_counters_each_key(struct lk_counters *c, void (*fn)(void *arg, struct lk_kstate *k),
                          void *arg);

#endif
