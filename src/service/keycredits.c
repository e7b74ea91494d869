#include "service/keycredits.h"

#include "base/common.h"
#include "base/log.h"
#include "core/timefmt.h"
#include "service/app_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* The key's credits and the refill period they are of, at now (due refill
 * applied); *refilled says whether one was due. */
static void current(const struct lk_key_row *k, int64_t now, int64_t *left, int64_t *period,
                    bool *refilled)
{
    bool monthly = k->credits_refill == LK_CREDIT_REFILL_MONTHLY;
    int day = k->credits_refill_day;

    *refilled = false;
    if (k->credits_now >= 0) {
        *left = k->credits_now;
        *period = k->credits_period;
    } else {
        /* nothing spent yet: the set number, in the period it was set in */
        *left = k->credits_remaining;
        *period = k->credits_refill != LK_CREDIT_REFILL_NONE
                      ? lk_refill_period(monthly, day, k->credits_set_at)
                      : 0;
    }
    if (k->credits_refill != LK_CREDIT_REFILL_NONE) {
        int64_t p = lk_refill_period(monthly, day, now);
        /* a clock that went back refills nothing */
        if (p > *period) {
            *left = k->credits_refill_amount;
            *period = p;
            *refilled = true;
        }
    }
}

int64_t lk_keycredits_now(const struct lk_key_row *k, int64_t now)
{
    int64_t left, period;
    bool refilled;

    if (!k->has_credits)
        return -1;
    current(k, now, &left, &period, &refilled);
    return left;
}

struct reserve {
    int64_t rowid, cost, now;
    struct lk_key_spend *out;
};

static enum lk_err reserve_txn(struct lk_store *s, void *arg)
{
    struct reserve *r = arg;
    struct lk_key_row k;
    int64_t left, period;
    bool refilled;
    enum lk_err e;

    *r->out = (struct lk_key_spend){0};
    if ((e = lk_store_key_get_by_rowid(s, r->rowid, &k)) != LK_OK) {
        lk_key_row_release(&k);
        return e;
    }
    if (!k.has_credits) {
        r->out->none = true;
        lk_key_row_release(&k);
        return LK_OK;
    }
    current(&k, r->now, &left, &period, &refilled);
    r->out->gen = k.credits_gen;
    r->out->period = period;
    lk_key_row_release(&k);
    if (left < r->cost) {
        r->out->short_ = true;
        r->out->left = left;
        if (!refilled)
            return LK_OK;
    } else {
        left -= r->cost;
        r->out->left = left;
    }
    return lk_store_key_credits_put(
        s, &(struct lk_key_credit_row){r->rowid, r->out->gen, left, period});
}

enum lk_err lk_keycredits_reserve(struct lk_store *store, int64_t rowid, int64_t cost,
                                  int64_t now, struct lk_key_spend *out)
{
    struct reserve r = {rowid, cost, now, out};
    enum lk_err e = lk_store_txn(store, LK_TXN_DEFAULT, reserve_txn, &r);

    /* a key deleted from under us cannot be: keys are revoked, never removed */
    return e == LK_OK ? LK_OK : LK_ERR_STORAGE_UNAVAILABLE;
}

struct refund {
    int64_t rowid, cost;
    const struct lk_key_spend *sp;
};

static enum lk_err refund_txn(struct lk_store *s, void *arg)
{
    struct refund *r = arg;
    struct lk_key_credit_row c;
    enum lk_err e = lk_store_key_credits_get(s, r->rowid, &c);

    /* Gone with a management write that replaced the number, or with a refill
     * since (a refill changes the period, not gen): the cost was taken from a
     * number that is no more, so nothing is given back, or it would be counted
     * on top of the fresh one. */
    if (e == LK_ERR_NOT_FOUND ||
        (e == LK_OK && (c.gen != r->sp->gen || c.period != r->sp->period)))
        return LK_OK;
    if (e != LK_OK)
        return e;
    c.remaining += r->cost;
    return lk_store_key_credits_put(s, &c);
}

enum lk_err lk_keycredits_refund(struct lk_store *store, int64_t rowid,
                                 const struct lk_key_spend *sp, int64_t cost)
{
    struct refund r = {rowid, cost, sp};
    enum lk_err e;

    if (sp->none || sp->short_ || cost <= 0)
        return LK_OK;
    if ((e = lk_store_txn(store, LK_TXN_DEFAULT, refund_txn, &r)) != LK_OK)
        lk_log(LK_LOG_ERROR,
               "keys: could not give back %lld credits of a refused check to key row %lld",
               (long long)cost, (long long)rowid);
    return e;
}
