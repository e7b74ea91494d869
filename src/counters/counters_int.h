/*
 * counters_int.h — the counter states themselves, private to src/counters/ (its
 * .c files only; scripts/check-layers.sh fails any other include). Everything
 * above the counters reaches them through the operations of counters.h,
 * charge.h and wallet.h, which take the workspace lock themselves, so no
 * caller can read a field half-way through a check or forget the lock.
 *
 * The layout of these structs is the counter file's (counters.c): a change of
 * it makes another build's file start afresh, by the header's sizes.
 */
#ifndef LK_COUNTERS_INT_H
#define LK_COUNTERS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/quota.h"
#include "core/window.h"
#include "counters/charge.h"
#include "counters/counters.h"

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

#define LK_PEND_LANES 16

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
    /* Read without mu by every check that needs no decision under it
     * (lk_charge's lock-free path), on cache lines of their own: written
     * rarely, so their line stays shared-clean in every core's cache, and the
     * lock's line above moving between cores does not take them with it.
     * quota, test_quota: effective limits, -1 unlimited (written under mu);
     * credits_pub: db_balance + avail, published at each unlock that changed it. */
    uint8_t gap_ro[64];
    _Atomic int64_t quota, test_quota, credits_pub;
    uint8_t gap_pend[64];
    /* The checks counted without mu, one line per lane (the lane of a thread
     * is fixed at its first such check): loops count on lines of their own.
     * Each counter is (UTC day << 32) | count; folded into live/test and
     * unsaved_* under mu (lk_wstate_fold) before any of those is read. */
    struct {
        _Atomic uint64_t n[2]; /* [test] */
        uint8_t pad[64 - 2 * sizeof(uint64_t)];
    } pend[LK_PEND_LANES];
};

/* The windows of a key's named rate limits (charge.h), by name: made on the
 * key's first check that applies one (lk_counters_named), in a slot of the
 * counter file of their own, so they outlive the process like the key's
 * default window; read back by `rowid`. Guarded by ws->mu. */
struct lk_named_windows {
    int64_t rowid; /* the key's */
    bool heap;     /* as in struct lk_wstate */
    int n;
    struct lk_named_window {
        uint64_t name_hash;
        int64_t start_ms, count; /* start 0: none open */
    } w[LK_CHARGE_NAMED_MAX];
};

struct lk_kstate {
    /* First, in the cache line the state starts in (16 bytes into a 64-byte
     * line of the counter file): what every check of the key writes, so a
     * check of a key without limits misses one line here, not three.
     * Usage of hour `count_hour` by outcome, all of it (atomics); `saved` of it
     * is written. The first count of a new hour moves the unsaved rest of the
     * old hour aside (spill) and keeps the old hour's totals in prev_counts. */
    _Atomic int64_t count_hour;
    _Atomic bool queued; /* on the dirty list */
    bool recovered, heap; /* as in struct lk_wstate */
    _Atomic uint32_t counts[LK_USAGE_CODES];
    struct lk_kstate *next_dirty;
    int64_t rowid;
    struct lk_wstate *ws;
    /* Guarded by ws->mu. */
    struct lk_window rl;          /* the open rate-limit window */
    int64_t spend_day, spent;     /* the UTC day's spend (all of it, stored or not) */
    int64_t prev_day, prev_spent; /* the day before spend_day's, kept for recovery */
    int64_t unsaved_day, unsaved; /* spend not yet written, of unsaved_day */
    uint32_t saved[LK_USAGE_CODES]; /* guarded by the counters' registry mutex */
    int64_t prev_hour;
    uint32_t prev_counts[LK_USAGE_CODES];
    struct lk_slice sh_rl, sh_sp; /* slices of the shared rate window and day spend (ws->mu) */
    _Atomic(struct lk_named_windows *) named; /* NULL until a named limit applies */
};

/* Take and release ws->mu (inline: every check with limits does). */
static inline void lk_wstate_lock(struct lk_wstate *ws)
{
    pthread_spin_lock(&ws->mu);
}

static inline void lk_wstate_unlock(struct lk_wstate *ws)
{
    /* Every change of the balance happens under mu: publishing it here keeps
     * the lock-free read of a check exactly as fresh as a locked one. */
    int64_t credits = ws->db_balance + ws->avail;

    if (atomic_load_explicit(&ws->credits_pub, memory_order_relaxed) != credits)
        atomic_store_explicit(&ws->credits_pub, credits, memory_order_relaxed);
    pthread_spin_unlock(&ws->mu);
}

/* The named windows of k, made (in the counter file when k is) at its first
 * call; the one allocation of a key's named limits, made before ws->mu. */
struct lk_named_windows *lk_counters_named(struct lk_counters *c, struct lk_kstate *k);

#define LK_PEND_DAY(v) ((int64_t)((v) >> 32))
#define LK_PEND_N(v) ((int64_t)((v) & 0xffffffffu))
#define LK_PEND(day, n) (((uint64_t)(day) << 32) | (uint64_t)(n))

/* Folds the checks counted without mu into the quota rings; `today` (or 0)
 * is the day the next lock-free counts will be for. Under ws->mu. */
static inline void lk_wstate_fold(struct lk_wstate *ws, int64_t today)
{
    bool day_ok = today > 0 && today < (INT64_C(1) << 32);

    for (int l = 0; l < LK_PEND_LANES; l++)
        for (int t = 0; t < 2; t++) {
            _Atomic uint64_t *p = &ws->pend[l].n[t];
            uint64_t v = atomic_load(p), next;
            /* Keeps the day (or moves to today) so lock-free counting goes on.
             * A lane with nothing counted on the right day is left unwritten:
             * a compare-and-swap of all of them on every locked check cost
             * tens of ns and took each loop's lane line from it. */
            do {
                next = day_ok ? LK_PEND(today, 0) : v & ~(uint64_t)0xffffffffu;
                if (v == next)
                    break;
            } while (!atomic_compare_exchange_weak(p, &v, next));
            if (LK_PEND_N(v) > 0) {
                lk_quota_add(t ? &ws->test : &ws->live, LK_PEND_DAY(v), LK_PEND_N(v));
                lk_quota_add(t ? &ws->unsaved_test : &ws->unsaved_live, LK_PEND_DAY(v),
                             LK_PEND_N(v));
            }
        }
}

#endif
