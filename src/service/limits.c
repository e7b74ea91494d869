#include "service/limits.h"

#include "base/common.h"
#include "service/app_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct lk_kstate *lk_limits_state(struct lk_app *app, const struct lk_ckey *k)
{
    _Atomic(struct lk_kstate *) *slot = (_Atomic(struct lk_kstate *) *)&k->st;
    struct lk_kstate *st = atomic_load_explicit(slot, memory_order_acquire);

    /* Entries of one key (old and new versions, old and new secrets) all find the
     * same state through the registry; the entry keeps it for the next check. */
    if (st == NULL) {
        st = lk_counters_key(app->counters, k->rowid, k->ws);
        atomic_store_explicit(slot, st, memory_order_release);
    }
    return st;
}

void lk_limits_count(struct lk_app *app, const struct lk_ckey *k, enum lk_err outcome,
                     int64_t now)
{
    lk_counters_count(app->counters, lk_limits_state(app, k), outcome, now);
}

static struct lk_rate rate_of(const struct lk_app *app, const struct lk_ckey *k)
{
    if (k->rl_limit > 0)
        return (struct lk_rate){k->rl_limit, k->rl_window_s};
    return k->env == LK_ENV_TEST ? app->limits.test_rate : app->limits.live_rate;
}

enum lk_err lk_limits_apply(struct lk_app *app, const struct lk_ckey *k, int64_t cost, int64_t now,
                            struct lk_limits_info *info)
{
    struct lk_kstate *st = lk_limits_state(app, k);
    struct lk_wstate *ws = k->ws;
    bool test = k->env == LK_ENV_TEST;
    struct lk_rate rl = rate_of(app, k);
    int64_t today = lk_day_of(now), quota, retry = 0;
    enum lk_err e = LK_OK;

    memset(info, 0, sizeof(*info));
    if (test)
        cost = 0; /* test keys spend nothing */
    lk_wstate_lock(ws);
    if (st->spend_day != today) {
        st->prev_day = st->spend_day; /* until written, for recovery */
        st->prev_spent = st->spent;
        st->spend_day = today;
        st->spent = 0;
    }
    /* DESIGN §4's order: spend cap, credits, rate limit, quota. */
    if (cost > 0 && k->spend_cap >= 0 && st->spent + cost > k->spend_cap) {
        e = LK_ERR_SPEND_CAP_EXCEEDED;
        info->retry_after = lk_day_left(now);
        goto out;
    }
    if (cost > 0 && ws->avail < cost) {
        info->need_lease = ws->avail + ws->db_balance >= cost;
        e = LK_ERR_INSUFFICIENT_CREDITS;
        goto out;
    }
    if (rl.limit > 0 && lk_window_full(&st->rl, now, rl.limit, rl.window_s, &retry)) {
        e = LK_ERR_RATE_LIMITED;
        info->retry_after = retry;
        goto out;
    }
    quota = test ? ws->test_quota : ws->quota;
    if (quota >= 0 && lk_quota_used(test ? &ws->test : &ws->live, today) >= quota) {
        e = LK_ERR_QUOTA_EXCEEDED;
        info->retry_after = lk_day_left(now);
        goto out;
    }
    /* Every check passed: now, and only now, count and spend. */
    if (rl.limit > 0)
        lk_window_add(&st->rl, now, rl.window_s);
    lk_quota_add(test ? &ws->test : &ws->live, today, 1);
    lk_quota_add(test ? &ws->unsaved_test : &ws->unsaved_live, today, 1);
    if (cost > 0) {
        ws->avail -= cost;
        ws->unsaved_spend += cost;
        ws->spent_total += cost;
        st->spent += cost;
        /* Spend of a day not yet written stays with that day. */
        if (st->unsaved > 0 && st->unsaved_day != today) {
            lk_counters_spill(app->counters, LK_CTR_SPEND,
                              &(struct lk_counter_row){.key_rowid = st->rowid,
                                                       .period = st->unsaved_day,
                                                       .n = st->unsaved});
            st->unsaved = 0;
        }
        st->unsaved_day = today;
        st->unsaved += cost;
    }
out:
    if (rl.limit > 0) {
        bool open = !lk_window_expired(&st->rl, now, rl.window_s);
        info->has_rl = true;
        info->rl_limit = rl.limit;
        info->rl_remaining = open ? rl.limit - st->rl.count : rl.limit;
        if (info->rl_remaining < 0)
            info->rl_remaining = 0;
        info->rl_reset = open ? st->rl.start + rl.window_s - now : rl.window_s;
    }
    if (!test && k->spend_cap >= 0) {
        info->has_cap = true;
        info->cap = k->spend_cap;
        info->spent_today = st->spent;
    }
    info->remaining_credits = ws->db_balance + ws->avail;
    lk_wstate_unlock(ws);
    if (e == LK_OK) {
        lk_counters_queue_ws(app->counters, ws);
        if (cost > 0)
            lk_counters_queue_key(app->counters, st);
    }
    return e;
}
