/*
 * test_store_copy.c — the store operations `latchkey migrate` copies with, on the
 * embedded backend: the scans return every row (of every workspace, expired and
 * orphaned ones too) in the order the copy relies on, and lk_store_ws_import
 * keeps a workspace's number, with later numbers after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <unistd.h>

#include "base/common.h"
#include "store/store.h"

static char dir[64], url[128];
static struct lk_store *st;

static int setup(void **state)
{
    struct lk_errinfo ei;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/lk-store-copy-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/db", dir);
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_store_open(url, &st, &ei), LK_OK);
    return 0;
}

static int teardown(void **state)
{
    char cmd[160];

    (void)state;
    lk_store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static struct lk_ws_row ws(const char *id, int64_t number)
{
    struct lk_ws_row w = {.number = number, .key_format = LK_FORMAT_DEFAULT, .created_at = 100,
                          .quota = -1, .test_quota = 7};
    snprintf(w.id, sizeof(w.id), "%s", id);
    snprintf(w.name, sizeof(w.name), "name of %s", id);
    snprintf(w.key_prefix, sizeof(w.key_prefix), "lk");
    return w;
}

static void test_ws_import_keeps_the_number(void **state)
{
    struct lk_ws_row a = ws("ws_a", 41), b = ws("ws_b", 0), got;

    (void)state;
    assert_int_equal(lk_store_ws_import(st, &a), LK_OK);
    assert_int_equal(lk_store_ws_get(st, "ws_a", &got), LK_OK);
    assert_int_equal(got.number, 41);
    assert_int_equal(got.quota, -1);
    assert_int_equal(got.test_quota, 7);
    assert_string_equal(got.name, "name of ws_a");
    /* a later workspace comes after it */
    assert_int_equal(lk_store_ws_insert(st, &b), LK_OK);
    assert_int_equal(b.number, 42);
    /* a taken number or id is a conflict; no number is refused */
    struct lk_ws_row c = ws("ws_c", 41), d = ws("ws_a", 50), e = ws("ws_e", 0);
    assert_int_equal(lk_store_ws_import(st, &c), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_ws_import(st, &d), LK_ERR_CONFLICT);
    assert_int_not_equal(lk_store_ws_import(st, &e), LK_OK);
}

static int count_user(void *arg, const struct lk_user_row *u)
{
    (void)u;
    (*(int *)arg)++;
    return 0;
}
static int count_session(void *arg, const struct lk_session_row *r)
{
    assert_string_equal(r->user_id, "usr_1");
    (*(int *)arg)++;
    return 0;
}
static int count_invitation(void *arg, const struct lk_invitation_row *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static void test_people_scans_return_every_row(void **state)
{
    struct lk_ws_row w = ws("ws_p", 0);
    struct lk_user_row u1 = {"usr_1", "one@example.com", "$argon2id$x", 1};
    struct lk_user_row u2 = {"usr_2", "two@example.com", "$argon2id$y", 2};
    struct lk_session_row s1 = {.user_id = "usr_1", .created_at = 1, .expires_at = 2};
    struct lk_session_row s2 = {.user_id = "usr_1", .created_at = 1, .expires_at = 9999999999};
    struct lk_invitation_row i1 = {"inv_1", "ws_p", "x@example.com", LK_ROLE_VIEWER, {1},
                                   "usr_1", 10, 20}; /* expired */
    struct lk_invitation_row i2 = {"inv_2", "ws_p", "y@example.com", LK_ROLE_OWNER, {2},
                                   "usr_1", 10, 9999999999};
    int n = 0;

    (void)state;
    s1.digest[0] = 1;
    s2.digest[0] = 2;
    assert_int_equal(lk_store_ws_insert(st, &w), LK_OK);
    assert_int_equal(lk_store_user_insert(st, &u1), LK_OK);
    assert_int_equal(lk_store_user_insert(st, &u2), LK_OK);
    assert_int_equal(lk_store_session_insert(st, &s1), LK_OK);
    assert_int_equal(lk_store_session_insert(st, &s2), LK_OK);
    assert_int_equal(lk_store_invitation_insert(st, &i1), LK_OK);
    assert_int_equal(lk_store_invitation_insert(st, &i2), LK_OK);
    assert_int_equal(lk_store_user_scan(st, count_user, &n), LK_OK);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(lk_store_session_scan(st, count_session, &n), LK_OK);
    assert_int_equal(n, 2); /* expired ones too */
    n = 0;
    assert_int_equal(lk_store_invitation_scan(st, count_invitation, &n), LK_OK);
    assert_int_equal(n, 2);
}

struct seen {
    int64_t last_id;
    int n;
};

static int ledger_in_order(void *arg, const struct lk_ledger_row *r)
{
    struct seen *s = arg;
    assert_true(r->id > s->last_id);
    s->last_id = r->id;
    s->n++;
    if (strcmp(r->kind, "spend") == 0)
        assert_int_equal(r->period, 3600);
    else
        assert_int_equal(r->period, 0);
    return 0;
}

static int audit_in_order(void *arg, const struct lk_audit_event *ev)
{
    struct seen *s = arg;
    assert_true(ev->id > s->last_id);
    assert_int_equal(ev->row.created_at, 1000 + s->n);
    s->last_id = ev->id;
    s->n++;
    return 0;
}

static void test_ledger_and_audit_scans_cover_every_workspace_in_id_order(void **state)
{
    struct lk_ws_row a = ws("ws_l1", 0), b = ws("ws_l2", 0);
    struct seen seen = {0};

    (void)state;
    assert_int_equal(lk_store_ws_insert(st, &a), LK_OK);
    assert_int_equal(lk_store_ws_insert(st, &b), LK_OK);
    for (int i = 0; i < 6; i++) {
        struct lk_ledger_row r = {.amount = i + 1, .created_at = 50 + i};
        snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", i % 2 ? "ws_l1" : "ws_l2");
        snprintf(r.kind, sizeof(r.kind), "%s", i < 4 ? "top_up" : "spend");
        r.period = i < 4 ? 0 : 3600;
        assert_int_equal(lk_store_ledger_add(st, &r), LK_OK);
    }
    assert_int_equal(lk_store_ledger_scan(st, ledger_in_order, &seen), LK_OK);
    assert_int_equal(seen.n, 6);
    /* events of two workspaces, interleaved, and one of no workspace */
    for (int i = 0; i < 5; i++) {
        struct lk_audit_row r = {.created_at = 1000 + i};
        snprintf(r.workspace_id, sizeof(r.workspace_id), "%s",
                 i == 4 ? "" : (i % 2 ? "ws_l1" : "ws_l2"));
        snprintf(r.actor, sizeof(r.actor), "key_x");
        snprintf(r.action, sizeof(r.action), "key.create");
        assert_int_equal(lk_store_audit_insert(st, &r), LK_OK);
    }
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(lk_store_audit_scan(st, audit_in_order, &seen), LK_OK);
    assert_int_equal(seen.n, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ws_import_keeps_the_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_people_scans_return_every_row, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_and_audit_scans_cover_every_workspace_in_id_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
