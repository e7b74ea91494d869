/*
 * test_keycredits.c — src/service/keycredits.c against a real SQLite store: a
 * check's reservation of a key's own credits, and giving it back when the check
 * is refused after all. The clock is the `now` each call is given, so a refill
 * boundary falls exactly between a reservation and its refund.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <unistd.h>

#include "base/common.h"
#include "service/keycredits.h"
#include "store/store.h"

#define DAY 86400
#define T0 (1700006400 - 60) /* a minute before a UTC midnight (1700006400 = 00:00) */

struct fixture {
    char dir[64];
    struct lk_store *store;
    int64_t rowid;
};

static int setup(void **state)
{
    struct fixture *f = lk_calloc(1, sizeof(*f));
    struct lk_errinfo ei;
    struct lk_ws_row w = {0};
    struct lk_key_row k = {0};
    char url[128];

    snprintf(f->dir, sizeof(f->dir), "/tmp/lk-keycredits-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(url, sizeof(url), "sqlite:%s/db", f->dir);
    if (lk_store_open(url, &f->store, &ei) != LK_OK)
        fail_msg("open: %s", ei.detail);
    snprintf(w.id, sizeof(w.id), "ws_a");
    snprintf(w.name, sizeof(w.name), "a");
    snprintf(w.key_prefix, sizeof(w.key_prefix), "lk");
    w.quota = w.test_quota = -1;
    assert_int_equal(lk_store_ws_insert(f->store, &w), LK_OK);
    snprintf(k.id, sizeof(k.id), "key_1");
    snprintf(k.workspace_id, sizeof(k.workspace_id), "ws_a");
    snprintf(k.name, sizeof(k.name), "k");
    snprintf(k.hint, sizeof(k.hint), "lk_...01");
    k.permissions = (char *)"[]";
    k.meta = (char *)"{}";
    k.enabled = true;
    k.daily_spend_cap = -1;
    memset(k.digest, 1, LK_DIGEST_LEN);
    k.pepper_id = 1;
    /* 10 credits, refilled to 10 every UTC day; set the day before T0 */
    k.has_credits = true;
    k.credits_remaining = 10;
    k.credits_refill = LK_CREDIT_REFILL_DAILY;
    k.credits_refill_amount = 10;
    k.credits_gen = 1;
    k.credits_set_at = T0 - 3600;
    k.created_at = T0 - 3600;
    assert_int_equal(lk_store_key_insert(f->store, &k), LK_OK);
    f->rowid = k.rowid;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[128];

    lk_store_close(f->store);
    for (const char *const *s = (const char *const[]){"/db", "/db-wal", "/db-shm", NULL}; *s; s++) {
        snprintf(path, sizeof(path), "%s%s", f->dir, *s);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t left_at(struct fixture *f, int64_t now)
{
    struct lk_key_row k;
    int64_t n;

    assert_int_equal(lk_store_key_get_by_rowid(f->store, f->rowid, &k), LK_OK);
    n = lk_keycredits_now(&k, now);
    lk_key_row_release(&k);
    return n;
}

/* A check reserved before the day's refill and refused after another check did
 * the refill gives nothing back: the cost was taken from yesterday's credits,
 * which the refill replaced. Given back, the key would have more than its
 * refill amount. */
static void test_a_refund_after_a_refill_gives_nothing_back(void **state)
{
    struct fixture *f = *state;
    struct lk_key_spend a, b;

    assert_int_equal(lk_keycredits_reserve(f->store, f->rowid, 4, T0, &a), LK_OK);
    assert_false(a.none || a.short_);
    assert_int_equal(a.left, 6);
    /* after midnight: another check refills to 10 and takes 1 */
    assert_int_equal(lk_keycredits_reserve(f->store, f->rowid, 1, T0 + 120, &b), LK_OK);
    assert_int_equal(b.left, 9);
    assert_int_equal(lk_keycredits_refund(f->store, f->rowid, &a, 4), LK_OK);
    assert_int_equal(left_at(f, T0 + 180), 9);
}

/* Within one period the refund gives the cost back exactly. */
static void test_a_refund_in_the_same_period_gives_it_back(void **state)
{
    struct fixture *f = *state;
    struct lk_key_spend a, b;

    assert_int_equal(lk_keycredits_reserve(f->store, f->rowid, 4, T0, &a), LK_OK);
    assert_int_equal(lk_keycredits_reserve(f->store, f->rowid, 1, T0 + 1, &b), LK_OK);
    assert_int_equal(lk_keycredits_refund(f->store, f->rowid, &a, 4), LK_OK);
    assert_int_equal(left_at(f, T0 + 2), 9);
    /* and a refund after the boundary that no check has crossed yet: the next
     * check's refill replaces the number, so nothing is counted twice */
    assert_int_equal(lk_keycredits_reserve(f->store, f->rowid, 2, T0 + 3, &a), LK_OK);
    assert_int_equal(lk_keycredits_refund(f->store, f->rowid, &a, 2), LK_OK);
    assert_int_equal(left_at(f, T0 + DAY / 2), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_refund_after_a_refill_gives_nothing_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_refund_in_the_same_period_gives_it_back, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
