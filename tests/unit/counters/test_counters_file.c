/*
 * test_counters_file.c — src/counters/counters.c: the memory-mapped counter
 * file is read back exactly on the same boot, and never believed after another
 * boot or when it is not sane (it is outside input: garbage must not crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/common.h"
#include "base/rand.h"
#include "counters/charge.h"
#include "counters/counters.h"
#include "counters/wallet.h"

static char dir[64], path[128], boot[128];
static const char *owner = "db-one";

static void set_boot(const char *id)
{
    int fd = open(boot, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, id, strlen(id)), (ssize_t)strlen(id));
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/lk-counters-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/db.counters", dir);
    snprintf(boot, sizeof(boot), "%s/boot_id", dir);
    setenv("LATCHKEY_BOOT_ID_FILE", boot, 1);
    set_boot("boot-one\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unlink(boot);
    rmdir(dir);
    unsetenv("LATCHKEY_BOOT_ID_FILE");
    return 0;
}

static struct lk_counters *open_file(bool want_recovered)
{
    struct lk_counters *c = NULL;
    bool recovered = !want_recovered;

    assert_int_equal(lk_counters_open(path, owner, &c, &recovered), LK_OK);
    assert_non_null(c);
    assert_int_equal(recovered, want_recovered);
    return c;
}

/* Writes n bytes of `b` at offset `at` of the file. */
static void poke(off_t at, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, n, at), (ssize_t)n);
    close(fd);
}

#define DAY 20000
#define NOW ((int64_t)DAY * 86400) /* on the hour */
#define AVAIL INT64_C(0x123456789AB) /* a value to find in the file */
#define FREE_CHECKS 3

/* One check of key k with a rate limit of 99 a minute. */
static enum lk_err check(struct lk_counters *c, struct lk_wstate *ws, struct lk_kstate *k)
{
    struct lk_charge_req r = {.rl_limit = 99, .rl_window_s = 60, .spend_cap = -1, .now = NOW};
    struct lk_charge_out out;

    return lk_charge(c, ws, k, &r, &out);
}

static void fill(struct lk_counters *c)
{
    struct lk_wstate *ws = lk_counters_ws(c, "ws_abc");
    struct lk_kstate *k = lk_counters_key(c, 7, ws);

    lk_wallet_load(ws, AVAIL + 1000, 1234);
    lk_wallet_mark(ws, 77, AVAIL);
    lk_wallet_moved(ws, AVAIL, 16, NOW);
    lk_wallet_mark(ws, 99, 5); /* a lease write under way at the kill */
    for (int i = 0; i < 99; i++)
        assert_int_equal(check(c, ws, k), LK_OK);
    /* free checks, counted without the workspace's lock: in the file as well */
    for (int i = 0; i < FREE_CHECKS; i++) {
        struct lk_charge_req r = {.spend_cap = -1, .now = NOW};
        struct lk_charge_out out;
        assert_int_equal(lk_charge(c, ws, k, &r, &out), LK_OK);
    }
    lk_counters_load_quota(ws, DAY, 17, 0);
    lk_counters_load_spend(k, DAY, 555);
    lk_counters_count(c, k, LK_OK, NOW);
    lk_counters_count(c, k, LK_OK, NOW);
}

/* The row of `kind` for (ws_id or rowid, period, code) among rows, or NULL. */
static const struct lk_counter_row *row_of(const struct lk_counter_rows *rows,
                                           enum lk_counter_kind kind, const char *ws_id,
                                           int64_t rowid, int64_t period, int code)
{
    for (size_t i = 0; i < rows->n; i++) {
        const struct lk_counter_row *r = &rows->rows[i];
        if (rows->kinds[i] == kind && r->period == period && r->code == code &&
            (ws_id != NULL ? strcmp(r->workspace_id, ws_id) == 0 : r->key_rowid == rowid))
            return r;
    }
    return NULL;
}

static void test_read_back_on_the_same_boot(void **state)
{
    struct lk_counters *c = open_file(false);
    struct lk_counter_rows rows = {0};
    const struct lk_counter_row *r;
    struct lk_quota_view q;
    struct lk_wallet w;
    struct lk_wstate *ws;

    (void)state;
    fill(c);
    lk_counters_free(c); /* as a kill would leave it: nothing more is written */
    c = open_file(true);
    ws = lk_counters_find_ws(c, "ws_abc");
    assert_non_null(ws);
    lk_wallet_get(ws, &w);
    assert_true(w.recovered);
    assert_int_equal(w.avail, AVAIL);
    assert_int_equal(w.db_balance, 1000);
    assert_int_equal(w.spent_total, 1234);
    assert_int_equal(w.lease_pending, 5);
    assert_int_equal(w.lease_op, 99);
    lk_counters_quota_view(ws, &q);
    assert_int_equal(lk_quota_day(&q.live, DAY), 99 + 17 + FREE_CHECKS);
    /* what the store is raised to at start */
    lk_counters_recovered_rows(c, &rows);
    assert_non_null(r = row_of(&rows, LK_CTR_QUOTA, "ws_abc", 0, DAY, 0));
    assert_int_equal(r->n, 99 + 17 + FREE_CHECKS);
    assert_non_null(r = row_of(&rows, LK_CTR_SPEND, NULL, 7, DAY, 0));
    assert_int_equal(r->n, 555);
    assert_non_null(r = row_of(&rows, LK_CTR_USAGE, NULL, 7, NOW, LK_OK));
    assert_int_equal(r->n, 2);
    lk_counter_rows_free(&rows);
    /* the rate window is the dead process's: full */
    assert_int_equal(check(c, ws, lk_counters_key(c, 7, ws)), LK_ERR_RATE_LIMITED);
    /* states made now are new ones, in the same file */
    lk_wallet_get(lk_counters_ws(c, "ws_new"), &w);
    assert_false(w.recovered);
    lk_counters_free(c);
    c = open_file(true);
    assert_non_null(lk_counters_find_ws(c, "ws_new"));
    lk_counters_free(c);
}

static void test_another_database_starts_afresh(void **state)
{
    struct lk_counters *c = open_file(false);

    (void)state;
    fill(c);
    lk_counters_free(c);
    owner = "db-two";
    c = open_file(false);
    owner = "db-one";
    assert_null(lk_counters_find_ws(c, "ws_abc"));
    lk_counters_free(c);
}

static void test_another_boot_starts_afresh(void **state)
{
    struct lk_counters *c = open_file(false);

    (void)state;
    fill(c);
    lk_counters_free(c);
    set_boot("boot-two");
    c = open_file(false);
    assert_null(lk_counters_find_ws(c, "ws_abc"));
    assert_int_equal(check(c, lk_counters_ws(c, "ws_abc"), lk_counters_key(c, 7, NULL)), LK_OK);
    lk_counters_free(c);
    /* an unknown boot id never matches, not even itself */
    set_boot("");
    lk_counters_free(open_file(false));
    lk_counters_free(open_file(false));
}

static struct lk_counters *open_any(void)
{
    struct lk_counters *c = NULL;
    bool recovered;

    assert_int_equal(lk_counters_open(path, owner, &c, &recovered), LK_OK);
    assert_non_null(c);
    return c;
}

/* A good file, damaged at `at`, is not believed: it starts afresh. */
static void damaged(off_t at, const void *b, size_t n)
{
    struct lk_counters *c = open_any();

    lk_counters_free(c);
    assert_int_equal(truncate(path, 0), 0); /* fill() puts ws_abc first */
    c = open_file(false);
    fill(c);
    lk_counters_free(c);
    poke(at, b, n);
    c = open_file(false);
    assert_null(lk_counters_find_ws(c, "ws_abc"));
    lk_counters_free(c);
}

/* The first offset past the header, a multiple of `step`, where the file holds
 * the n bytes of `want`. */
static off_t find_at(const void *want, size_t n, off_t step)
{
    uint8_t got[16];
    off_t at;
    int fd;

    assert_true(n <= sizeof(got));
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    for (at = 4096; pread(fd, got, n, at) == (ssize_t)n; at += step)
        if (memcmp(got, want, n) == 0)
            break;
    close(fd);
    assert_memory_equal(got, want, n);
    return at;
}

/* Where fill() put ws_abc's `avail` in the file (the layout is private). */
static off_t avail_at(void)
{
    struct lk_counters *c = open_any();
    int64_t v = AVAIL;

    lk_counters_free(c);
    assert_int_equal(truncate(path, 0), 0);
    c = open_file(false);
    fill(c);
    lk_counters_free(c);
    return find_at(&v, sizeof(v), 8);
}

static void test_a_file_that_is_not_sane_counts_as_lost(void **state)
{
    int64_t bad = -5;
    uint8_t junk[4096];

    (void)state;
    damaged(9, "\xff", 1);                /* the header */
    damaged(4096 + 16, "ws_\x01\x02", 5); /* a workspace id that is not one */
    damaged(avail_at(), &bad, sizeof(bad)); /* a count out of bounds */
    damaged(4096, "\x12\x34\x56\x78", 4); /* an unknown slot tag */
    damaged(1 << 20, "x", 1);             /* not whole chunks */
    /* random bytes where the states are: whatever they say, no crash */
    for (int round = 0; round < 64; round++) {
        struct lk_counters *c = open_any();
        fill(c);
        lk_counters_free(c);
        lk_rand_bytes(junk, sizeof(junk));
        poke(4096 + (off_t)(round % 8) * 48, junk, sizeof(junk) - (size_t)round * 32);
        lk_counters_free(open_any());
    }
    assert_int_equal(truncate(path, 0), 0);
    lk_counters_free(open_file(false));
}

/* Named rate limits: two of key 7's, 5 an hour each (the windows run on the
 * wall clock, so an hour outlasts the test). */
#define NAMED_LIMIT 5
static const struct lk_charge_named named_limits[2] = {
    {.name_hash = 0x1111, .limit = NAMED_LIMIT, .window_ms = 3600000, .cost = 1},
    {.name_hash = 0x2222, .limit = 1000, .window_ms = 3600000, .cost = 1},
};

static enum lk_err check_named(struct lk_counters *c, struct lk_wstate *ws, struct lk_kstate *k,
                               struct lk_charge_out *out)
{
    struct lk_charge_req r = {.spend_cap = -1, .now = NOW, .named = named_limits, .n_named = 2};

    return lk_charge(c, ws, k, &r, out);
}

/* ws_abc's key 7 with both named windows spent to NAMED_LIMIT, and key 8
 * with none, in a file of their own. */
static void fill_named(void)
{
    struct lk_counters *c = open_any();
    struct lk_wstate *ws;
    struct lk_charge_out out;

    lk_counters_free(c);
    assert_int_equal(truncate(path, 0), 0);
    c = open_file(false);
    ws = lk_counters_ws(c, "ws_abc");
    assert_int_equal(check(c, ws, lk_counters_key(c, 8, ws)), LK_OK);
    for (int i = 0; i < NAMED_LIMIT; i++)
        assert_int_equal(check_named(c, ws, lk_counters_key(c, 7, ws), &out), LK_OK);
    lk_counters_free(c); /* as a kill would leave it */
}

/* Where fill_named() put key 7's named windows in the file: past their tag. */
static off_t named_at(void)
{
    const uint32_t tag = 0x4e525731; /* "NRW1", counters.c */

    return find_at(&tag, sizeof(tag), 16) + 16; /* the slot header */
}

static void test_named_windows_are_read_back(void **state)
{
    struct lk_counters *c;
    struct lk_wstate *ws;
    struct lk_charge_out out;

    (void)state;
    fill_named();
    c = open_file(true);
    ws = lk_counters_find_ws(c, "ws_abc");
    assert_non_null(ws);
    /* the dead process's window is full, and nothing was counted */
    assert_int_equal(check_named(c, ws, lk_counters_key(c, 7, ws), &out), LK_ERR_RATE_LIMITED);
    assert_int_equal(out.named_refused, 0);
    assert_int_equal(out.named[0].remaining, 0);
    assert_int_equal(out.named[1].remaining, 1000 - NAMED_LIMIT);
    /* a key without named limits has none and makes none */
    assert_int_equal(check(c, ws, lk_counters_key(c, 8, ws)), LK_OK);
    /* one made now is in the file too, after its key */
    assert_int_equal(check_named(c, ws, lk_counters_key(c, 9, ws), &out), LK_OK);
    lk_counters_free(c);
    c = open_file(true);
    ws = lk_counters_find_ws(c, "ws_abc");
    assert_int_equal(check_named(c, ws, lk_counters_key(c, 9, ws), &out), LK_OK);
    assert_int_equal(out.named[0].remaining, NAMED_LIMIT - 2);
    assert_int_equal(check_named(c, ws, lk_counters_key(c, 7, ws), &out), LK_ERR_RATE_LIMITED);
    lk_counters_free(c);
}

/* fill_named()'s file with `n` bytes of `b` at `off` into key 7's windows is
 * not believed: the whole file starts afresh. */
static void named_damaged(off_t off, const void *b, size_t n)
{
    struct lk_counters *c;
    struct lk_wstate *ws;
    struct lk_charge_out out;

    fill_named();
    poke(named_at() + off, b, n);
    c = open_file(false);
    assert_null(lk_counters_find_ws(c, "ws_abc"));
    ws = lk_counters_ws(c, "ws_abc");
    assert_int_equal(check_named(c, ws, lk_counters_key(c, 7, ws), &out), LK_OK);
    lk_counters_free(c);
}

static void test_damaged_named_windows_count_as_lost(void **state)
{
    /* the layout of struct lk_named_windows: rowid, heap, n, then each
     * window's name hash, start and count */
    enum { ROWID = 0, N = 12, W0 = 16, W1 = 40, START = 8, COUNT = 16 };
    int64_t v;
    int32_t n;
    uint8_t junk[512];

    (void)state;
    v = 12345;
    named_damaged(ROWID, &v, sizeof(v)); /* of a key the file has not */
    n = LK_CHARGE_NAMED_MAX + 1;
    named_damaged(N, &n, sizeof(n)); /* more windows than there is room for */
    n = -1;
    named_damaged(N, &n, sizeof(n));
    v = -1;
    named_damaged(W0 + COUNT, &v, sizeof(v)); /* a count out of bounds */
    v = INT64_MAX;
    named_damaged(W1 + START, &v, sizeof(v)); /* a start out of bounds */
    v = 0x1111;
    named_damaged(W1, &v, sizeof(v)); /* one name twice */
    /* a second slot for the same key: copy the slot after itself */
    {
        uint8_t slot[16 + 16 + 24 * LK_CHARGE_NAMED_MAX];
        int fd;
        fill_named();
        assert_true((fd = open(path, O_RDONLY)) >= 0);
        assert_int_equal(pread(fd, slot, sizeof(slot), named_at() - 16), (ssize_t)sizeof(slot));
        close(fd);
        named_damaged(-16 + 256, slot, sizeof(slot));
    }
    /* random bytes over the windows: whatever they say, no crash */
    for (int round = 0; round < 32; round++) {
        struct lk_counters *c;
        struct lk_wstate *ws;
        struct lk_charge_out out;
        fill_named();
        lk_rand_bytes(junk, sizeof(junk));
        poke(named_at() - 16 + round % 4, junk, sizeof(junk) - (size_t)round * 8);
        c = open_any();
        ws = lk_counters_ws(c, "ws_abc");
        (void)check_named(c, ws, lk_counters_key(c, 7, ws), &out);
        (void)check_named(c, ws, lk_counters_key(c, 8, ws), &out);
        lk_counters_free(c);
    }
}

static void test_grows_in_chunks_and_keeps_pointers(void **state)
{
    struct lk_counters *c = open_file(false);
    struct lk_wstate *ws = lk_counters_ws(c, "ws_big");
    enum { N = 20000 }; /* several chunks of states */
    struct lk_kstate **keys = lk_calloc(N, sizeof(*keys));
    struct lk_counter_rows rows = {0};

    (void)state;
    for (int i = 0; i < N; i++) {
        if (i % 1500 == 0 && i < N / 2)
            lk_counters_reserve(c); /* as the recorder does: a spare chunk ahead */
        keys[i] = lk_counters_key(c, i + 1, ws);
        lk_counters_load_spend(keys[i], DAY, i + 1);
    }
    for (int i = 0; i < N; i++) /* earlier pointers still point at the same state */
        assert_ptr_equal(lk_counters_key(c, i + 1, ws), keys[i]);
    lk_counters_free(c);
    c = open_file(true);
    lk_counters_reserve(c);
    lk_counters_load_spend(lk_counters_key(c, N + 1, NULL), DAY, 1); /* a new one */
    lk_counters_recovered_rows(c, &rows);
    assert_int_equal(rows.n, N);
    for (int i = 0; i < N; i++) {
        const struct lk_counter_row *r = row_of(&rows, LK_CTR_SPEND, NULL, i + 1, DAY, 0);
        assert_non_null(r);
        assert_int_equal(r->n, i + 1);
    }
    lk_counter_rows_free(&rows);
    lk_counters_free(c);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_back_on_the_same_boot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_boot_starts_afresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_database_starts_afresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_file_that_is_not_sane_counts_as_lost, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_grows_in_chunks_and_keeps_pointers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_windows_are_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_named_windows_count_as_lost, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("counters/file", tests, NULL, NULL);
}
