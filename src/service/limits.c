#include "service/limits.h"

#include "base/clock.h"
#include "base/common.h"
#include "service/app_int.h"
#include "counters/charge.h"
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

void lk_limits_prefetch(const struct lk_ckey *k)
{
    struct lk_kstate *st = atomic_load_explicit((_Atomic(struct lk_kstate *) *)&k->st,
                                                memory_order_acquire);

    if (st != NULL)
        lk_counters_prefetch_key(st);
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

_Static_assert(LK_REFILL_RATE == LK_CHARGE_RATE && LK_REFILL_QUOTA == LK_CHARGE_QUOTA &&
                   LK_REFILL_SPEND == LK_CHARGE_SPEND,
               "refill parts pass through unchanged");

enum lk_err lk_limits_refill(struct lk_app *app, const struct lk_limits_refill *r, int64_t now)
{
    struct lk_charge_refill cr = {r->parts, r->key_rowid, r->cost, r->rl_limit, r->rl_window_s,
                                  r->quota, r->spend_cap, r->test, r->ws, r->st};

    return lk_charge_refill(app->shared, &cr, now);
}

void lk_limits_give_back(struct lk_app *app)
{
    lk_charge_give_back(app->counters, app->shared, lk_clock_now_s());
}

static enum lk_err apply(struct lk_app *app, const struct lk_ckey *k, int64_t cost, int64_t now,
                         bool key_credits, bool key_short, const struct lk_charge_named *named,
                         int n_named, int shared_named_full, struct lk_limits_info *info)
{
    struct lk_rate rl = rate_of(app, k);
    bool test = k->env == LK_ENV_TEST;
    struct lk_charge_req r = {.cost = cost, /* lk_charge: a test key spends nothing */
                              .test = test,
                              .rl_limit = rl.limit,
                              .rl_window_s = rl.window_s,
                              .spend_cap = k->spend_cap,
                              .shared = app->shared,
                              .fail_open_rate_limits = app->fail_open_rate_limits,
                              .now = now,
                              .key_credits = key_credits,
                              .key_short = key_short,
                              .named = named,
                              .n_named = n_named,
                              .shared_named_full = shared_named_full};
    struct lk_charge_out o;
    enum lk_err e = lk_charge(app->counters, k->ws, lk_limits_state(app, k), &r, &o);
    const struct lk_charge_refill *f = &o.refill;

    /* Field by field, under the flags that make them meaningful (limits.h). */
    info->has_rl = o.has_rl;
    info->retry_after = o.retry_after;
    info->has_cap = o.has_cap;
    info->remaining_credits = o.remaining_credits;
    info->need_lease = o.need_lease;
    info->refill.parts = f->parts;
    if (o.has_rl) {
        info->rl_limit = o.rl_limit;
        info->rl_remaining = o.rl_remaining;
        info->rl_reset = o.rl_reset;
    }
    if (o.has_cap) {
        info->cap = o.cap;
        info->spent_today = o.spent_today;
    }
    if (f->parts != 0)
        info->refill = (struct lk_limits_refill){f->parts, f->key_rowid, f->cost, f->rl_limit,
                                                 f->rl_window_s, f->quota, f->spend_cap,
                                                 f->test, f->ws, f->st};
    if (n_named > 0) {
        info->n_named = n_named;
        info->rl_refused = o.named_refused;
        for (int i = 0; i < n_named; i++) {
            info->named[i].limit = named[i].limit;
            info->named[i].remaining = o.named[i].remaining;
            info->named[i].reset_at = o.named[i].reset_at_ms;
            info->named[i].exceeded = o.named[i].exceeded;
        }
    }
    return e;
}

enum lk_err lk_limits_apply(struct lk_app *app, const struct lk_ckey *k, int64_t cost, int64_t now,
                            struct lk_limits_info *info)
{
    return apply(app, k, cost, now, false, false, NULL, 0, 0, info);
}

void lk_limits_named_list(const struct lk_ckey *k, const struct lk_rl_use *uses, int n_uses,
                          struct lk_limits_prior *p)
{
    p->n_named = 0;
    for (int i = 0; k->ext != NULL && i < k->ext->n_rl; i++) {
        const struct lk_ckey_rl *rl = &k->ext->rl[i];
        int64_t c = rl->auto_apply ? 1 : -1;
        for (int j = 0; j < n_uses; j++)
            if (uses[j].name_len == rl->name_len &&
                memcmp(uses[j].name, rl->name, rl->name_len) == 0)
                c = uses[j].cost;
        if (c < 0)
            continue; /* neither asked for nor applied by itself */
        p->nl[p->n_named++] =
            (struct lk_prior_named){rl->name_hash, rl->limit, rl->window_ms, c, 0, 0};
    }
}

enum lk_err lk_limits_named_take(struct lk_app *app, int64_t rowid, struct lk_limits_prior *p)
{
    struct lk_shared_named l[LK_KEY_RATE_LIMITS_MAX];
    int refused = -1;

    for (int i = 0; i < p->n_named; i++)
        l[i] = (struct lk_shared_named){p->nl[i].name_hash, p->nl[i].limit, p->nl[i].window_ms,
                                        p->nl[i].cost, 0, 0};
    if (lk_shared_named_take(app->shared, rowid, l, p->n_named, &refused) != LK_OK) {
        if (!app->fail_open_rate_limits)
            return LK_ERR_STORAGE_UNAVAILABLE;
        p->named = LK_NAMED_LOCAL; /* this node's own windows decide */
        return LK_OK;
    }
    for (int i = 0; i < p->n_named; i++) {
        p->nl[i].count = l[i].count;
        p->nl[i].ttl_ms = l[i].ttl_ms;
    }
    p->named = refused >= 0 ? LK_NAMED_REFUSED : LK_NAMED_TAKEN;
    p->named_refused = refused;
    return LK_OK;
}

void lk_limits_named_give(struct lk_app *app, int64_t rowid, const struct lk_limits_prior *p)
{
    struct lk_shared_named l[LK_KEY_RATE_LIMITS_MAX];

    if (p->named != LK_NAMED_TAKEN)
        return;
    for (int i = 0; i < p->n_named; i++)
        l[i] = (struct lk_shared_named){p->nl[i].name_hash, p->nl[i].limit, p->nl[i].window_ms,
                                        p->nl[i].cost, 0, 0};
    lk_shared_named_give(app->shared, rowid, l, p->n_named);
}

enum lk_err lk_limits_apply_ext(struct lk_app *app, const struct lk_ckey *k, int64_t cost,
                                int64_t now, const struct lk_limits_prior *prior,
                                const struct lk_rl_use *uses, int n_uses,
                                struct lk_limits_info *info)
{
    struct lk_limits_prior own;
    struct lk_charge_named named[LK_CHARGE_NAMED_MAX] = {{0}};
    enum lk_key_credits_state kc = prior ? prior->key_credits : LK_KC_UNDECIDED;
    enum lk_named_state ns = prior ? prior->named : LK_NAMED_UNDECIDED;
    bool shared_named;
    int n;
    enum lk_err e;

    _Static_assert(LK_CHARGE_NAMED_MAX == LK_KEY_RATE_LIMITS_MAX, "a window for every limit");
    lk_limits_named_list(k, uses, n_uses, &own);
    n = own.n_named;
    shared_named = n > 0 && app->shared != NULL && ns != LK_NAMED_LOCAL;
    if (shared_named && ns == LK_NAMED_UNDECIDED) {
        /* Not decided on the loop: a worker takes them from Redis first. */
        info->ext |= LK_INFO_NEED_NAMED;
        info->need_lease = true;
        return LK_ERR_RATE_LIMITED;
    }
    for (int i = 0; i < n; i++) {
        const struct lk_ckey_rl *rl = NULL;
        for (int j = 0; j < k->ext->n_rl && rl == NULL; j++)
            if (k->ext->rl[j].name_hash == own.nl[i].name_hash)
                rl = &k->ext->rl[j];
        info->named[i].name = rl ? rl->name : "";
        info->named[i].name_len = rl ? rl->name_len : 0;
        named[i] = (struct lk_charge_named){own.nl[i].name_hash, own.nl[i].limit,
                                            own.nl[i].window_ms, own.nl[i].cost};
    }
    e = apply(app, k, cost, now, kc == LK_KC_RESERVED || kc == LK_KC_SHORT, kc == LK_KC_SHORT,
              shared_named ? NULL : named, shared_named ? 0 : n,
              shared_named && ns == LK_NAMED_REFUSED ? prior->named_refused + 1 : 0, info);
    if (shared_named) {
        /* what Redis counted (or, refused, had) when the worker asked */
        int64_t now_ms = lk_clock_now_ms();
        info->n_named = n < prior->n_named ? n : prior->n_named;
        info->rl_refused = ns == LK_NAMED_REFUSED && e == LK_ERR_RATE_LIMITED
                               ? prior->named_refused
                               : -1;
        for (int i = 0; i < info->n_named; i++) {
            const struct lk_prior_named *x = &prior->nl[i];
            int64_t left = x->limit - x->count;
            info->named[i].limit = x->limit;
            info->named[i].remaining = left > 0 ? left : 0;
            info->named[i].reset_at = now_ms + (x->ttl_ms > 0 ? x->ttl_ms : x->window_ms);
            info->named[i].exceeded = info->rl_refused == i;
        }
        if (e == LK_ERR_RATE_LIMITED && info->rl_refused >= 0) {
            int64_t ttl = prior->nl[info->rl_refused].ttl_ms;
            info->retry_after = ttl > 0 ? (ttl + 999) / 1000 : 1;
        }
    }
    if (n > 0)
        info->ext |= LK_INFO_NAMED;
    return e;
}

int lk_limits_named_unknown(const struct lk_ckey *k, const struct lk_rl_use *uses, int n_uses)
{
    for (int j = 0; j < n_uses; j++) {
        bool found = uses[j].name_len == 7 && memcmp(uses[j].name, "default", 7) == 0 &&
                     k->rl_limit > 0;
        for (int i = 0; k->ext != NULL && i < k->ext->n_rl && !found; i++)
            found = uses[j].name_len == k->ext->rl[i].name_len &&
                    memcmp(uses[j].name, k->ext->rl[i].name, uses[j].name_len) == 0;
        if (!found)
            return j;
    }
    return -1;
}
