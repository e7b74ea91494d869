#include "counters/charge.h"

#include <limits.h>

#include "base/clock.h"
#include "base/common.h"
#include "core/quota.h"
#include "counters/counters_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* --- slices of the shared counters (counters/shared.h) ------------------------------
 * The helpers below run under the workspace's mu. A slice is "ready" when the check
 * can be decided from it alone: units to spend in the open period, or the
 * backend's word that nothing is left. */

/* A rate slice ends this long before the window it was granted in, on our clock:
 * the window's end is measured from before the request was sent, so the slice
 * never outlives the window even if the clocks run a little apart. */
#define RL_MARGIN_MS 50
#define SLICE_MAX 4096

static bool rl_ready(const struct lk_slice *s, int64_t limit, int64_t now_ms)
{
    if (s->limit != limit)
        return false;
    return s->full_until > now_ms || (s->avail > 0 && now_ms < s->period);
}

static bool rl_usable(const struct lk_slice *s, int64_t now_ms)
{
    return s->avail > 0 && now_ms < s->period;
}

static int64_t day_avail(const struct lk_slice *s, int64_t today)
{
    return s->period == today ? s->avail : 0;
}

static bool day_ready(const struct lk_slice *s, int64_t limit, int64_t today, int64_t now,
                      int64_t need)
{
    if (s->limit != limit)
        return false;
    if (day_avail(s, today) >= need)
        return true;
    /* Refused locally while the backend said too little is left for this. */
    return s->full_until > now && day_avail(s, today) + s->left < need;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Unspent units of an ended day (or of another limit) go back at the next call. */
static void take_back(struct lk_slice *s, int64_t today, int64_t limit, int64_t *day, int64_t *n)
{
    if (s->avail > 0 && (s->period != today || s->limit != limit)) {
        s->ret_period = s->period;
        s->ret_n = s->avail;
        s->avail = 0;
    }
    *day = s->ret_period;
    *n = s->ret_n;
    s->ret_n = 0;
}

static void grant_rate(struct lk_slice *s, const struct lk_shared_grant *g, int64_t limit,
                       int64_t want, int64_t sent_ms)
{
    int64_t end = sent_ms + g->rl_ttl_ms;

    s->size = want;
    s->limit = limit;
    s->left = g->rl_left;
    s->avail = g->rl_grant;
    s->period = end - RL_MARGIN_MS;
    s->full_until = g->rl_grant > 0 ? 0 : end;
    s->last_at = sent_ms / 1000;
}

static void grant_day(struct lk_slice *s, int64_t grant, int64_t left, int64_t limit,
                      int64_t today, int64_t now, int64_t max)
{
    /* Refilled again within two seconds: a busy counter asks for more at a time. */
    bool busy = s->last_at != 0 && now - s->last_at <= 2;

    if (s->period != today)
        s->avail = 0; /* given back by take_back() */
    s->period = today;
    s->limit = limit;
    s->left = left;
    s->avail += grant;
    s->full_until = grant > 0 ? 0 : (now + 1 < (today + 1) * LK_DAY_S ? now + 1 : (today + 1) * LK_DAY_S);
    if (grant > 0) {
        s->size = clamp(busy ? s->size * 2 : s->size / 2, 1, clamp(max, 1, SLICE_MAX));
        s->last_at = now;
    }
}

enum lk_err lk_charge_refill(struct lk_shared *sh, const struct lk_charge_refill *r, int64_t now)
{
    struct lk_wstate *ws = r->ws;
    struct lk_kstate *st = r->st;
    struct lk_slice *qs = r->test ? &ws->sh_q_test : &ws->sh_q_live;
    int64_t today = lk_day_of(now), sent_ms;
    struct lk_shared_req q = {.key_rowid = r->key_rowid, .ws_id = ws->id, .test = r->test,
                              .q_day = today, .sp_day = today};
    struct lk_shared_grant g;
    enum lk_err e = LK_OK;

    if (sh == NULL || r->parts == 0)
        return LK_OK;
    /* One refill of a workspace at a time: a check that waited here finds the
     * slice the one before it brought, and asks for nothing. */
    pthread_mutex_lock(&ws->refill_mu);
    sent_ms = lk_clock_now_ms();
    lk_wstate_lock(ws);
    lk_wstate_fold(ws, today); /* q_least below reads the rings */
    if ((r->parts & LK_CHARGE_RATE) && !rl_ready(&st->sh_rl, r->rl_limit, sent_ms)) {
        /* Ran out within the window the last slice came from: ask for twice as
         * much (up to an eighth of the limit); a new window starts at one. */
        bool again = st->sh_rl.limit == r->rl_limit && st->sh_rl.period > sent_ms;
        q.rl_want = again ? clamp(st->sh_rl.size * 2, 1, clamp(r->rl_limit / 8, 1, SLICE_MAX)) : 1;
        q.rl_limit = r->rl_limit;
        q.rl_window_s = r->rl_window_s;
    }
    if ((r->parts & LK_CHARGE_QUOTA) && !day_ready(qs, r->quota, today, now, 1)) {
        take_back(qs, today, r->quota, &q.q_ret_day, &q.q_ret_n);
        q.q_want = qs->size > 0 ? qs->size : 1;
        q.q_min = 1;
        q.q_limit = r->quota;
        for (int d = 0; d < LK_QUOTA_DAYS; d++)
            q.q_least[d] = lk_quota_day(r->test ? &ws->test : &ws->live,
                                        today - (LK_QUOTA_DAYS - 1) + d);
    }
    if ((r->parts & LK_CHARGE_SPEND) && !day_ready(&st->sh_sp, r->spend_cap, today, now, r->cost)) {
        take_back(&st->sh_sp, today, r->spend_cap, &q.sp_ret_day, &q.sp_ret_n);
        q.sp_min = r->cost - day_avail(&st->sh_sp, today);
        q.sp_want = st->sh_sp.size > q.sp_min ? st->sh_sp.size : q.sp_min;
        q.sp_cap = r->spend_cap;
        q.sp_least = st->spend_day == today ? st->spent : 0;
    }
    lk_wstate_unlock(ws);
    if (q.rl_want == 0 && q.q_want == 0 && q.sp_want == 0)
        goto out; /* someone refilled while this one waited */
    e = lk_shared_reserve(sh, &q, &g);
    lk_wstate_lock(ws);
    if (e != LK_OK) {
        /* What was to be given back stays to be given back. */
        if (q.q_ret_n > 0 && qs->ret_n == 0)
            qs->ret_period = q.q_ret_day, qs->ret_n = q.q_ret_n;
        if (q.sp_ret_n > 0 && st->sh_sp.ret_n == 0)
            st->sh_sp.ret_period = q.sp_ret_day, st->sh_sp.ret_n = q.sp_ret_n;
    } else {
        if (q.rl_want > 0)
            grant_rate(&st->sh_rl, &g, r->rl_limit, q.rl_want, sent_ms);
        if (q.q_want > 0)
            grant_day(qs, g.q_grant, g.q_left, r->quota, today, now, r->quota / 64);
        if (q.sp_want > 0)
            grant_day(&st->sh_sp, g.sp_grant, g.sp_left, r->spend_cap, today, now,
                      r->spend_cap / 16);
    }
    lk_wstate_unlock(ws);
out:
    pthread_mutex_unlock(&ws->refill_mu);
    return e;
}

struct give_back_ctx {
    struct lk_shared *sh;
    int64_t today;
};

static void give_back_ws(void *arg, struct lk_wstate *ws)
{
    struct give_back_ctx *c = arg;
    struct lk_shared_grant g;

    for (int test = 0; test < 2; test++) {
        struct lk_slice *s = test ? &ws->sh_q_test : &ws->sh_q_live;
        struct lk_shared_req q = {.ws_id = ws->id, .test = test, .q_day = c->today};
        lk_wstate_lock(ws);
        take_back(s, c->today + 1, s->limit, &q.q_ret_day, &q.q_ret_n); /* all of it */
        lk_wstate_unlock(ws);
        if (q.q_ret_n > 0)
            lk_shared_reserve(c->sh, &q, &g);
    }
}

static void give_back_key(void *arg, struct lk_kstate *k)
{
    struct give_back_ctx *c = arg;
    struct lk_shared_req q = {.key_rowid = k->rowid, .ws_id = "", .sp_day = c->today};
    struct lk_shared_grant g;

    if (k->ws == NULL)
        return;
    lk_wstate_lock(k->ws);
    take_back(&k->sh_sp, c->today + 1, k->sh_sp.limit, &q.sp_ret_day, &q.sp_ret_n);
    lk_wstate_unlock(k->ws);
    if (q.sp_ret_n > 0)
        lk_shared_reserve(c->sh, &q, &g);
}

void lk_charge_give_back(struct lk_counters *c, struct lk_shared *sh, int64_t now)
{
    struct give_back_ctx g = {sh, lk_day_of(now)};

    if (sh == NULL || !lk_shared_up(sh))
        return; /* what is not given back stays counted until its day ends */
    lk_counters_each_ws(c, give_back_ws, &g);
    lk_counters_each_key(c, give_back_key, &g);
}

/* This thread's lane of ws's lock-free counts of `test` checks: the lane is
 * fixed at the thread's first use, threads taking lanes in turn. */
static _Atomic uint64_t *my_lane(struct lk_wstate *ws, bool test)
{
    static _Atomic unsigned next_lane;
    static _Thread_local unsigned lane = UINT_MAX;

    if (lane == UINT_MAX)
        lane = atomic_fetch_add_explicit(&next_lane, 1, memory_order_relaxed) % LK_PEND_LANES;
    return &ws->pend[lane].n[test ? 1 : 0];
}

/* Whether a lane holding v takes one more check of `today` without the lock:
 * not once the day turned, nor when it is full. */
static bool lane_takes(uint64_t v, int64_t today)
{
    return LK_PEND_DAY(v) == today && LK_PEND_N(v) < INT32_MAX;
}

/* A check with nothing to decide: free (cost 0, or a test key), no rate limit,
 * no quota on its environment, no day spend cap to report. All it changes is
 * the workspace's count of checks today, which needs no lock: one atomic add
 * on this thread's lane of it, a cache line no other loop writes (folded into
 * the quota rings under mu by whoever reads them next). False: take the
 * locked path (a quota is set, the day turned, or the lane is far from its
 * last fold). */
static bool charge_free(struct lk_counters *c, struct lk_wstate *ws, bool test, int64_t today,
                        struct lk_charge_out *info)
{
    _Atomic uint64_t *p;
    uint64_t v;

    if (atomic_load_explicit(test ? &ws->test_quota : &ws->quota, memory_order_relaxed) >= 0)
        return false;
    p = my_lane(ws, test);
    v = atomic_load_explicit(p, memory_order_relaxed);
    do {
        if (!lane_takes(v, today))
            return false;
    } while (!atomic_compare_exchange_weak(p, &v, v + 1));
    info->remaining_credits = atomic_load_explicit(&ws->credits_pub, memory_order_relaxed);
    lk_counters_queue_ws(c, ws); /* after the count: see lk_counters_queue_ws */
    return true;
}

/* The window of named limit `hash` in nw, made if missing (there is room:
 * a key has at most LK_CHARGE_NAMED_MAX, and a window no longer named is
 * taken over). Under ws->mu. */
static struct lk_named_window *named_window(struct lk_named_windows *nw, uint64_t hash,
                                            const struct lk_charge_named *all, int n_all,
                                            int64_t now_ms)
{
    for (int i = 0; i < nw->n; i++)
        if (nw->w[i].name_hash == hash)
            return &nw->w[i];
    if (nw->n == LK_CHARGE_NAMED_MAX) {
        /* full of names, some no longer the key's: reuse one of those */
        for (int i = 0; i < nw->n; i++) {
            bool used = false;
            for (int j = 0; j < n_all; j++)
                used |= all[j].name_hash == nw->w[i].name_hash;
            if (!used) {
                nw->w[i] = (struct lk_named_window){hash, 0, 0};
                return &nw->w[i];
            }
        }
        lk_assert(!"more named windows than limits");
    }
    (void)now_ms;
    nw->w[nw->n] = (struct lk_named_window){hash, 0, 0};
    return &nw->w[nw->n++];
}

static bool named_open(const struct lk_named_window *w, int64_t window_ms, int64_t now_ms)
{
    return w->start_ms != 0 && now_ms < w->start_ms + window_ms && now_ms >= w->start_ms;
}

/* The named limits of r: refuses (the first full one in *refused) without
 * counting, or counts all of them. Under ws->mu. */
static bool named_full(struct lk_named_windows *nw, const struct lk_charge_req *r, int64_t now_ms,
                       int *refused, int64_t *retry)
{
    for (int i = 0; i < r->n_named; i++) {
        const struct lk_charge_named *n = &r->named[i];
        struct lk_named_window *w = named_window(nw, n->name_hash, r->named, r->n_named, now_ms);
        int64_t used = named_open(w, n->window_ms, now_ms) ? w->count : 0;
        if (used + n->cost > n->limit) {
            *refused = i;
            *retry = named_open(w, n->window_ms, now_ms)
                         ? (w->start_ms + n->window_ms - now_ms + 999) / 1000
                         : 1;
            return true;
        }
    }
    return false;
}

static void named_count(struct lk_named_windows *nw, const struct lk_charge_req *r,
                        int64_t now_ms)
{
    for (int i = 0; i < r->n_named; i++) {
        const struct lk_charge_named *n = &r->named[i];
        struct lk_named_window *w = named_window(nw, n->name_hash, r->named, r->n_named, now_ms);
        if (!named_open(w, n->window_ms, now_ms)) {
            w->start_ms = now_ms;
            w->count = 0;
        }
        w->count += n->cost;
    }
}

static void named_report(struct lk_named_windows *nw, const struct lk_charge_req *r,
                         int64_t now_ms, struct lk_charge_out *info)
{
    for (int i = 0; i < r->n_named; i++) {
        const struct lk_charge_named *n = &r->named[i];
        struct lk_named_window *w = named_window(nw, n->name_hash, r->named, r->n_named, now_ms);
        bool open = named_open(w, n->window_ms, now_ms);
        int64_t left = n->limit - (open ? w->count : 0);
        info->named[i].remaining = left > 0 ? left : 0;
        info->named[i].reset_at_ms = open ? w->start_ms + n->window_ms : now_ms + n->window_ms;
        info->named[i].exceeded = info->named_refused == i;
    }
}

enum lk_err lk_charge(struct lk_counters *c, struct lk_wstate *ws, struct lk_kstate *st,
                      const struct lk_charge_req *r, struct lk_charge_out *info)
{
    struct lk_named_windows *nw = NULL;
    bool test = r->test;
    struct { int64_t limit, window_s; } rl = {r->rl_limit, r->rl_window_s};
    int64_t now = r->now, cost = r->cost, spend_cap = r->spend_cap, ws_cost;
    int64_t today = lk_day_of(now), quota, retry = 0, now_ms = 0;
    struct lk_slice *qs = test ? &ws->sh_q_test : &ws->sh_q_live;
    /* With shared counters the rate window, quota and day spend are decided
     * from this node's slices of them; without, from this node's own counts.
     * rl_local: the rate limit is this node's window (no shared counters, or
     * Redis is down and the rate limit may fail open). */
    bool shared = r->shared != NULL, rl_local = !shared;
    enum lk_err e = LK_OK;

    /* Only what every caller reads; the rest is set under its flag (charge.h). */
    info->has_rl = info->has_cap = info->need_lease = false;
    info->retry_after = info->remaining_credits = 0;
    info->refill.parts = 0;
    if (test)
        cost = 0; /* test keys spend nothing */
    ws_cost = cost;
    if (r->n_named > 0) {
        /* made before the lock: no allocation under a spinlock */
        nw = atomic_load_explicit(&st->named, memory_order_acquire);
        if (nw == NULL)
            nw = lk_counters_named(c, st);
        info->named_refused = -1;
        now_ms = lk_clock_now_ms();
    }
    if (cost == 0 && rl.limit <= 0 && (test || spend_cap < 0) && r->n_named == 0 &&
        r->shared_named_full == 0 &&
        charge_free(c, ws, test, today, info))
        return LK_OK;
    lk_wstate_lock(ws);
    /* The rings are read below only for a quota. Otherwise folding is for the
     * lock-free path, and is due when this thread's lane refused it (another
     * day: the day turned; or full); readers of the rings fold for themselves.
     * Folding reads every lane's line. */
    if ((test ? ws->test_quota : ws->quota) >= 0 ||
        !lane_takes(atomic_load_explicit(my_lane(ws, test), memory_order_relaxed), today))
        lk_wstate_fold(ws, today);
    if (st->spend_day != today) {
        st->prev_day = st->spend_day; /* until written, for recovery */
        st->prev_spent = st->spent;
        st->spend_day = today;
        st->spent = 0;
    }
    quota = test ? ws->test_quota : ws->quota;
    if (shared) {
        unsigned need = 0;
        now_ms = lk_clock_now_ms();
        if (rl.limit > 0 && !rl_ready(&st->sh_rl, rl.limit, now_ms)) {
            if (r->fail_open_rate_limits && !lk_shared_up(r->shared))
                rl_local = true;
            else
                need |= LK_CHARGE_RATE;
        }
        if (quota >= 0 && !day_ready(qs, quota, today, now, 1))
            need |= LK_CHARGE_QUOTA;
        if (cost > 0 && spend_cap >= 0 && !day_ready(&st->sh_sp, spend_cap, today, now, cost))
            need |= LK_CHARGE_SPEND;
        if (need != 0) {
            /* Not decided here: a worker refills (one round trip) and checks again. */
            lk_wstate_unlock(ws);
            info->need_lease = true;
            info->refill = (struct lk_charge_refill){need, st->rowid, cost, rl.limit,
                                                     rl.window_s, quota, spend_cap, test, ws,
                                                     st};
            return LK_ERR_STORAGE_UNAVAILABLE;
        }
    }
    /* DESIGN §4's order: spend cap, credits, rate limit, quota. */
    if (cost > 0 && spend_cap >= 0 &&
        (shared ? day_avail(&st->sh_sp, today) < cost : st->spent + cost > spend_cap)) {
        e = LK_ERR_SPEND_CAP_EXCEEDED;
        info->retry_after = lk_day_left(now);
        goto out;
    }
    if (r->key_short) {
        e = LK_ERR_INSUFFICIENT_CREDITS;
        goto out;
    }
    /* a key's own credits alone decide in a workspace that never had any */
    if (r->key_credits && ws->avail == 0 && ws->db_balance == 0 && ws->spent_total == 0)
        ws_cost = 0;
    if (ws_cost > 0 && ws->avail < ws_cost) {
        info->need_lease = ws->avail + ws->db_balance >= ws_cost;
        e = LK_ERR_INSUFFICIENT_CREDITS;
        goto out;
    }
    if (rl.limit > 0 && rl_local && lk_window_full(&st->rl, now, rl.limit, rl.window_s, &retry)) {
        e = LK_ERR_RATE_LIMITED;
        info->retry_after = retry;
        goto out;
    }
    if (rl.limit > 0 && !rl_local && !rl_usable(&st->sh_rl, now_ms)) {
        e = LK_ERR_RATE_LIMITED;
        info->retry_after = (st->sh_rl.full_until - now_ms + 999) / 1000;
        if (info->retry_after < 1)
            info->retry_after = 1;
        goto out;
    }
    if (r->shared_named_full != 0) {
        e = LK_ERR_RATE_LIMITED; /* the service words the answer (shared windows) */
        goto out;
    }
    if (nw != NULL && named_full(nw, r, now_ms, &info->named_refused, &retry)) {
        e = LK_ERR_RATE_LIMITED;
        info->retry_after = retry;
        goto out;
    }
    if (quota >= 0 && (shared ? day_avail(qs, today) < 1
                              : lk_quota_used(test ? &ws->test : &ws->live, today) >= quota)) {
        e = LK_ERR_QUOTA_EXCEEDED;
        info->retry_after = lk_day_left(now);
        goto out;
    }
    /* Every check passed: now, and only now, count and spend. */
    if (rl.limit > 0 && !rl_local)
        st->sh_rl.avail--;
    if (quota >= 0 && shared)
        qs->avail--;
    if (cost > 0 && spend_cap >= 0 && shared)
        st->sh_sp.avail -= cost;
    /* This node's own window counts on beside a shared one: it is what the
     * rate limit falls back to if Redis goes away with fail-open on. */
    if (rl.limit > 0)
        lk_window_add(&st->rl, now, rl.window_s);
    if (nw != NULL)
        named_count(nw, r, now_ms);
    lk_quota_add(test ? &ws->test : &ws->live, today, 1);
    lk_quota_add(test ? &ws->unsaved_test : &ws->unsaved_live, today, 1);
    if (cost > 0) {
        ws->avail -= ws_cost;
        ws->unsaved_spend += ws_cost;
        ws->spent_total += ws_cost;
        st->spent += cost;
        /* Spend of a day not yet written stays with that day. */
        if (st->unsaved > 0 && st->unsaved_day != today) {
            lk_counters_spill(c, LK_CTR_SPEND,
                              &(struct lk_counter_row){.key_rowid = st->rowid,
                                                       .period = st->unsaved_day,
                                                       .n = st->unsaved});
            st->unsaved = 0;
        }
        st->unsaved_day = today;
        st->unsaved += cost;
    }
out:
    if (rl.limit > 0 && !rl_local) {
        /* What this node holds plus what Redis had left at its last answer. */
        const struct lk_slice *sl = &st->sh_rl;
        int64_t end = sl->full_until > now_ms ? sl->full_until : sl->period + RL_MARGIN_MS;
        bool open = end > now_ms;
        info->has_rl = true;
        info->rl_limit = rl.limit;
        info->rl_remaining = open ? (sl->avail > 0 ? sl->avail : 0) + sl->left : rl.limit;
        if (info->rl_remaining > rl.limit)
            info->rl_remaining = rl.limit;
        info->rl_reset = open ? (end - now_ms + 999) / 1000 : rl.window_s;
    } else if (rl.limit > 0) {
        bool open = !lk_window_expired(&st->rl, now, rl.window_s);
        info->has_rl = true;
        info->rl_limit = rl.limit;
        info->rl_remaining = open ? rl.limit - st->rl.count : rl.limit;
        if (info->rl_remaining < 0)
            info->rl_remaining = 0;
        info->rl_reset = open ? st->rl.start + rl.window_s - now : rl.window_s;
    }
    if (!test && spend_cap >= 0) {
        info->has_cap = true;
        info->cap = spend_cap;
        info->spent_today = st->spent;
        if (shared) {
            /* Granted to any node counts as spent: at most this much is. */
            int64_t spent = spend_cap - st->sh_sp.left - day_avail(&st->sh_sp, today);
            info->spent_today = clamp(spent, st->spent, spend_cap);
        }
    }
    info->remaining_credits = ws->db_balance + ws->avail;
    if (nw != NULL)
        named_report(nw, r, now_ms, info);
    lk_wstate_unlock(ws);
    if (e == LK_OK) {
        lk_counters_queue_ws(c, ws);
        if (cost > 0)
            lk_counters_queue_key(c, st);
    }
    return e;
}
