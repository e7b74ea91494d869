/*
 * test_charge.c — the contract of the counters' operations the service layer
 * uses (counters/charge.h, counters/wallet.h, the recorder's batch of
 * counters/counters.h): a refused check leaves nothing applied, a passed one
 * counts and spends exactly once, a check a shared slice must decide is not
 * decided without the backend, and a batch given back after a failed write is
 * taken again by the next one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/quota.h"
#include "counters/charge.h"
#include "counters/counters.h"
#include "counters/wallet.h"

#define DAY 20000
#define NOW ((int64_t)DAY * 86400 + 3600)

static struct lk_counters *c;
static struct lk_wstate *ws;
static struct lk_kstate *k;

static int setup(void **state)
{
    (void)state;
    c = lk_counters_new();
    ws = lk_counters_ws(c, "ws_one");
    k = lk_counters_key(c, 7, ws);
    /* 100 credits stored, 10 of them leased to memory */
    lk_wallet_load(ws, 100, 0);
    lk_wallet_mark(ws, 1, 10);
    lk_wallet_moved(ws, 10, 16, NOW);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lk_counters_free(c);
    return 0;
}

static enum lk_err charge(int64_t cost, int64_t rl_limit, int64_t spend_cap,
                          struct lk_charge_out *out)
{
    struct lk_charge_req r = {.cost = cost, .rl_limit = rl_limit, .rl_window_s = 60,
                              .spend_cap = spend_cap, .now = NOW};

    return lk_charge(c, ws, k, &r, out);
}

static int64_t avail(void)
{
    struct lk_wallet w;

    lk_wallet_get(ws, &w);
    return w.avail;
}

static int64_t quota_today(void)
{
    struct lk_quota_view q;

    lk_counters_quota_view(ws, &q);
    return lk_quota_day(&q.live, DAY);
}

/* What a batch taken now holds: spent credits, quota checks, key spend. */
static void taken(int64_t *spent, int64_t *quota, int64_t *key_spend)
{
    struct lk_counters_batch b = {0};

    *spent = *quota = *key_spend = 0;
    lk_counters_take_batch(c, &b);
    for (size_t i = 0; i < b.nspends; i++)
        *spent += b.spends[i].amount;
    for (size_t i = 0; i < b.rows.n; i++) {
        if (b.rows.kinds[i] == LK_CTR_QUOTA)
            *quota += b.rows.rows[i].n;
        if (b.rows.kinds[i] == LK_CTR_SPEND)
            *key_spend += b.rows.rows[i].n;
    }
    lk_counters_batch_free(&b);
}

static void test_a_refused_check_applies_nothing(void **state)
{
    struct lk_charge_out out;
    int64_t spent, quota, key_spend;

    (void)state;
    /* the spend cap first: refused until the day ends */
    assert_int_equal(charge(5, 0, 4, &out), LK_ERR_SPEND_CAP_EXCEEDED);
    assert_int_equal(out.retry_after, 86400 - 3600);
    /* credits: the lease is short while the stored balance covers it */
    assert_int_equal(charge(20, 0, -1, &out), LK_ERR_INSUFFICIENT_CREDITS);
    assert_true(out.need_lease);
    assert_int_equal(out.remaining_credits, 100);
    /* more than there is at all: no lease helps */
    assert_int_equal(charge(101, 0, -1, &out), LK_ERR_INSUFFICIENT_CREDITS);
    assert_false(out.need_lease);
    /* the rate limit: a refusal is not counted in the window */
    assert_int_equal(charge(0, 1, -1, &out), LK_OK);
    assert_int_equal(charge(0, 1, -1, &out), LK_ERR_RATE_LIMITED);
    assert_int_equal(charge(3, 1, -1, &out), LK_ERR_RATE_LIMITED);
    assert_true(out.retry_after > 0);
    /* the quota */
    lk_counters_set_quota(ws, 2, -1);
    assert_int_equal(charge(0, 0, -1, &out), LK_OK);
    assert_int_equal(charge(2, 0, -1, &out), LK_ERR_QUOTA_EXCEEDED);
    assert_int_equal(out.retry_after, 86400 - 3600);
    /* of all the refusals only the two checks that passed count, nothing spent */
    assert_int_equal(avail(), 10);
    assert_int_equal(quota_today(), 2);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(spent, 0);
    assert_int_equal(quota, 2);
    assert_int_equal(key_spend, 0);
}

static void test_a_passed_check_counts_and_spends_once(void **state)
{
    struct lk_charge_out out;
    int64_t spent, quota, key_spend;

    (void)state;
    assert_int_equal(charge(3, 10, 50, &out), LK_OK);
    assert_int_equal(out.remaining_credits, 97);
    assert_true(out.has_rl);
    assert_int_equal(out.rl_remaining, 9);
    assert_true(out.has_cap);
    assert_int_equal(out.spent_today, 3);
    assert_int_equal(avail(), 7);
    assert_int_equal(quota_today(), 1);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(spent, 3);
    assert_int_equal(quota, 1);
    assert_int_equal(key_spend, 3);
    /* taken once: the next batch is empty */
    taken(&spent, &quota, &key_spend);
    assert_int_equal(spent + quota + key_spend, 0);
}

static void test_a_batch_given_back_is_taken_again(void **state)
{
    struct lk_counters_batch b = {0};
    struct lk_charge_out out;
    int64_t spent, quota, key_spend;

    (void)state;
    assert_int_equal(charge(4, 0, 50, &out), LK_OK);
    lk_counters_take_batch(c, &b);
    assert_int_equal(b.nspends, 1);
    assert_string_equal(lk_wstate_id(b.spends[0].ws), "ws_one");
    /* a check between the take and the failed write is not lost either */
    assert_int_equal(charge(1, 0, 50, &out), LK_OK);
    lk_counters_return_batch(c, &b);
    lk_counters_batch_free(&b);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(spent, 5);
    assert_int_equal(quota, 2);
    assert_int_equal(key_spend, 5);
}

static void test_a_lease_write_is_marked_until_it_lands(void **state)
{
    struct lk_wallet w;

    (void)state;
    lk_wallet_mark(ws, 42, 30);
    lk_wallet_get(ws, &w);
    assert_int_equal(w.lease_pending, 30);
    assert_int_equal(w.lease_op, 42);
    assert_int_equal(w.avail, 10); /* not yet memory's */
    lk_wallet_moved(ws, 30, 32, NOW + 1);
    lk_wallet_get(ws, &w);
    assert_int_equal(w.lease_pending, 0);
    assert_int_equal(w.avail, 40);
    assert_int_equal(w.db_balance, 60);
    assert_int_equal(w.lease_size, 32);
    assert_int_equal(w.last_lease_at, NOW + 1);
    /* giving all back marks exactly what is leased */
    assert_int_equal(lk_wallet_mark_return(ws, 43), 40);
    lk_wallet_get(ws, &w);
    assert_int_equal(w.lease_pending, -40);
    lk_wallet_unmark(ws); /* the write failed */
    lk_wallet_get(ws, &w);
    assert_int_equal(w.lease_pending, 0);
    assert_int_equal(w.avail, 40);
    assert_int_equal(lk_wallet_top_up(ws, 5), 105);
}

/* A shared backend that is down: nothing it should decide is decided here. */
static void test_a_check_a_shared_slice_cannot_decide_applies_nothing(void **state)
{
    struct lk_errinfo ei = {0};
    struct lk_shared *sh = NULL;
    struct lk_charge_req r = {.cost = 2, .rl_limit = 1, .rl_window_s = 60, .spend_cap = -1,
                              .now = NOW};
    struct lk_charge_out out;
    int64_t spent, quota, key_spend;

    (void)state;
    /* a port nothing listens on: the backend is never up */
    assert_int_equal(lk_shared_open("redis://127.0.0.1:1", &sh, &ei), LK_OK);
    r.shared = sh;
    assert_int_equal(lk_charge(c, ws, k, &r, &out), LK_ERR_STORAGE_UNAVAILABLE);
    assert_true(out.need_lease);
    assert_int_equal(out.refill.parts, LK_CHARGE_RATE);
    assert_ptr_equal(out.refill.ws, ws);
    assert_ptr_equal(out.refill.st, k);
    assert_int_equal(lk_charge_refill(sh, &out.refill, NOW), LK_ERR_STORAGE_UNAVAILABLE);
    assert_int_equal(avail(), 10);
    assert_int_equal(quota_today(), 0);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(spent + quota + key_spend, 0);
    /* with fail-open, the rate limit is this node's window: decided, once */
    r.fail_open_rate_limits = true;
    assert_int_equal(lk_charge(c, ws, k, &r, &out), LK_OK);
    assert_int_equal(lk_charge(c, ws, k, &r, &out), LK_ERR_RATE_LIMITED);
    assert_int_equal(avail(), 8);
    lk_shared_free(sh);
}

static enum lk_err charge_at(int64_t now, bool test, int64_t cost, int64_t rl_limit,
                             struct lk_charge_out *out)
{
    struct lk_charge_req r = {.cost = cost, .test = test, .rl_limit = rl_limit,
                              .rl_window_s = 60, .spend_cap = -1, .now = now};

    return lk_charge(c, ws, k, &r, out);
}

/* Checks with nothing to decide are counted without the workspace's lock: they
 * must still be in the quota view, in the recorder's batch (once), and count
 * against a quota or a rate limit set afterwards, at once. */
static void test_a_free_check_still_counts_and_limits_set_later_apply_at_once(void **state)
{
    struct lk_charge_out out;
    struct lk_quota_view q;
    int64_t spent, quota, key_spend;

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
        assert_false(out.has_rl);
        assert_false(out.has_cap);
        assert_int_equal(out.remaining_credits, 100);
    }
    assert_int_equal(charge_at(NOW, true, 7, 0, &out), LK_OK); /* a test key spends nothing */
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 5);
    assert_int_equal(lk_quota_day(&q.test, DAY), 1);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(quota, 5);
    assert_int_equal(spent + key_spend, 0);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(quota, 0); /* taken once */
    /* the balance a free check reports follows every change of it */
    assert_int_equal(lk_wallet_top_up(ws, 5), 105);
    assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
    assert_int_equal(out.remaining_credits, 105);
    /* a quota set now counts the checks made without it */
    lk_counters_set_quota(ws, 7, -1);
    assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
    assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_ERR_QUOTA_EXCEEDED);
    lk_counters_set_quota(ws, -1, -1);
    /* a rate limit from the next check on */
    assert_int_equal(charge_at(NOW, false, 0, 1, &out), LK_OK);
    assert_true(out.has_rl);
    assert_int_equal(charge_at(NOW, false, 0, 1, &out), LK_ERR_RATE_LIMITED);
    assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 9);
}

/* Free checks on both sides of midnight count on their own days. */
static void test_free_checks_count_on_their_day(void **state)
{
    struct lk_charge_out out;
    struct lk_quota_view q;

    (void)state;
    assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
    assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
    assert_int_equal(charge_at(NOW + 86400, false, 0, 0, &out), LK_OK);
    assert_int_equal(charge_at(NOW + 86400, false, 0, 0, &out), LK_OK);
    assert_int_equal(charge_at(NOW + 86400, false, 0, 0, &out), LK_OK);
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 2);
    assert_int_equal(lk_quota_day(&q.live, DAY + 1), 3);
}

/* A locked check without a quota leaves the lanes alone unless its own lane
 * is on another day: the lanes' counts still reach the rings on their days,
 * the quota view and the recorder's batch, once. */
static void test_paying_checks_leave_the_lanes_counts_on_their_days(void **state)
{
    struct lk_charge_out out;
    struct lk_quota_view q;
    int64_t spent, quota, key_spend;

    (void)state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(charge_at(NOW, false, 0, 0, &out), LK_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(charge_at(NOW, false, 1, 0, &out), LK_OK);
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 5);
    /* the next day: the paying check finds its lane on the day before */
    assert_int_equal(charge_at(NOW + 86400, false, 1, 0, &out), LK_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(charge_at(NOW + 86400, false, 0, 0, &out), LK_OK);
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 5);
    assert_int_equal(lk_quota_day(&q.live, DAY + 1), 3);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(quota, 8);
    assert_int_equal(spent, 3);
    taken(&spent, &quota, &key_spend);
    assert_int_equal(quota, 0);
}

#define RACE_CHECKS 1000000

static _Atomic int checkers_left;

static void *free_checker(void *arg)
{
    struct lk_charge_out out;

    (void)arg;
    for (int i = 0; i < RACE_CHECKS; i++)
        if (charge_at(NOW, false, 0, 0, &out) != LK_OK)
            fail_msg("a free check was refused");
    atomic_fetch_sub(&checkers_left, 1);
    return NULL;
}

/* Two loops counting without the lock while the recorder takes batches and a
 * paying check takes the lock: every check is counted, and taken, exactly once. */
static void test_free_checks_from_two_threads_are_all_counted_once(void **state)
{
    pthread_t th[2];
    struct lk_charge_out out;
    struct lk_quota_view q;
    int64_t total = 0, spent, quota, key_spend, paid = 0;

    (void)state;
    atomic_store(&checkers_left, 2);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, free_checker, NULL), 0);
    while (atomic_load(&checkers_left) > 0) {
        if (paid < 10 && charge_at(NOW, false, 1, 0, &out) == LK_OK)
            paid++;
        taken(&spent, &quota, &key_spend);
        total += quota;
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    taken(&spent, &quota, &key_spend);
    total += quota;
    assert_int_equal(total, 2 * RACE_CHECKS + paid);
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 2 * RACE_CHECKS + paid);
}

/* Named limits: a check passes only when every one has room, and then counts
 * every one; a refusal (by one of them, or by the shared counters' answer)
 * counts in none, nor in the quota or the balance. */
static void test_named_limits_count_all_or_none(void **state)
{
    struct lk_charge_named nl[2] = {{0x1111, 3, 60000, 2}, {0x2222, 10, 60000, 1}};
    struct lk_charge_req r = {.cost = 1, .spend_cap = -1, .now = NOW, .named = nl, .n_named = 2};
    struct lk_charge_out o;

    (void)state;
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_OK);
    assert_int_equal(o.named_refused, -1);
    assert_int_equal(o.named[0].remaining, 1);
    assert_int_equal(o.named[1].remaining, 9);
    assert_false(o.named[0].exceeded);
    /* 2 more of the first does not fit its 1 left: nothing counted anywhere */
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_ERR_RATE_LIMITED);
    assert_int_equal(o.named_refused, 0);
    assert_true(o.named[0].exceeded);
    assert_int_equal(o.named[1].remaining, 9);
    assert_true(o.retry_after >= 1 && o.retry_after <= 60);
    assert_int_equal(avail(), 9);
    assert_int_equal(quota_today(), 1);
    /* a cost of 0 on the first still counts the second */
    nl[0].cost = 0;
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_OK);
    assert_int_equal(o.named[0].remaining, 1);
    assert_int_equal(o.named[1].remaining, 8);
    /* the shared counters found one full: refused, nothing counted */
    r = (struct lk_charge_req){.cost = 1, .spend_cap = -1, .now = NOW, .shared_named_full = 1};
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_ERR_RATE_LIMITED);
    assert_int_equal(avail(), 8);
    assert_int_equal(quota_today(), 2);
}

/* A key's own credits too few (kept in the store): insufficient credits in
 * the credits' place, after the spend cap; a workspace that never had credits
 * spends nothing of its balance for a key that pays with its own. */
static void test_a_keys_own_credits_in_the_order(void **state)
{
    struct lk_charge_req r = {.cost = 5, .spend_cap = 3, .now = NOW, .key_credits = true,
                              .key_short = true};
    struct lk_charge_out o;
    struct lk_wstate *empty = lk_counters_ws(c, "ws_none");
    struct lk_kstate *k2 = lk_counters_key(c, 8, empty);

    (void)state;
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_ERR_SPEND_CAP_EXCEEDED);
    r.spend_cap = -1;
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_ERR_INSUFFICIENT_CREDITS);
    assert_int_equal(avail(), 10);
    r.key_short = false;
    assert_int_equal(lk_charge(c, empty, k2, &r, &o), LK_OK);
    assert_int_equal(lk_charge(c, ws, k, &r, &o), LK_OK); /* this one has credits: both pay */
    assert_int_equal(avail(), 5);
    r.key_credits = false; /* a plain key in the empty workspace: its balance decides */
    assert_int_equal(lk_charge(c, empty, k2, &r, &o), LK_ERR_INSUFFICIENT_CREDITS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_refused_check_applies_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_limits_count_all_or_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_keys_own_credits_in_the_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_passed_check_counts_and_spends_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_given_back_is_taken_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lease_write_is_marked_until_it_lands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_free_check_still_counts_and_limits_set_later_apply_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_checks_count_on_their_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paying_checks_leave_the_lanes_counts_on_their_days,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_checks_from_two_threads_are_all_counted_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_check_a_shared_slice_cannot_decide_applies_nothing,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("counters/charge", tests, NULL, NULL);
}
