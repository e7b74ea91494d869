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
#include "counters/counters.h"

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

static void fill(struct lk_counters *c)
{
    struct lk_wstate *ws = lk_counters_ws(c, "ws_abc");
    struct lk_kstate *k = lk_counters_key(c, 7, ws);

    ws->avail = 40;
    ws->spent_total = 1234;
    lk_quota_add(&ws->live, 20000, 17);
    k->rl = (struct lk_window){.start = 72000000, .count = 99};
    k->spend_day = 20000;
    k->spent = 555;
    lk_counters_count(c, k, LK_OK, 72000000);
    lk_counters_count(c, k, LK_OK, 72000000);
}

static void test_read_back_on_the_same_boot(void **state)
{
    struct lk_counters *c = open_file(false);
    struct lk_wstate *ws;
    struct lk_kstate *k;

    (void)state;
    fill(c);
    lk_counters_free(c); /* as a kill would leave it: nothing more is written */
    c = open_file(true);
    ws = lk_counters_find_ws(c, "ws_abc");
    assert_non_null(ws);
    assert_true(ws->recovered);
    assert_int_equal(ws->avail, 40);
    assert_int_equal(ws->spent_total, 1234);
    assert_int_equal(lk_quota_day(&ws->live, 20000), 17);
    k = lk_counters_key(c, 7, ws);
    assert_true(k->recovered);
    assert_ptr_equal(k->ws, ws);
    assert_int_equal(k->rl.start, 72000000);
    assert_int_equal(k->rl.count, 99);
    assert_int_equal(k->spent, 555);
    assert_int_equal(atomic_load(&k->counts[LK_OK]), 2);
    assert_int_equal(atomic_load(&k->count_hour), 72000000);
    /* states made now are new ones, in the same file */
    assert_false(lk_counters_ws(c, "ws_new")->recovered);
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
    assert_int_equal(lk_counters_key(c, 7, NULL)->rl.count, 0);
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

static void test_a_file_that_is_not_sane_counts_as_lost(void **state)
{
    struct lk_wstate bad_ws = {.avail = -5};
    uint8_t junk[4096];

    (void)state;
    damaged(9, "\xff", 1);                /* the header */
    damaged(4096 + 16, "ws_\x01\x02", 5); /* a workspace id that is not one */
    damaged(4096 + 16 + offsetof(struct lk_wstate, avail), &bad_ws.avail,
            sizeof(bad_ws.avail));        /* a count out of bounds */
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

static void test_grows_in_chunks_and_keeps_pointers(void **state)
{
    struct lk_counters *c = open_file(false);
    struct lk_wstate *ws = lk_counters_ws(c, "ws_big");
    enum { N = 20000 }; /* several chunks of states */
    struct lk_kstate **keys = lk_calloc(N, sizeof(*keys));

    (void)state;
    for (int i = 0; i < N; i++) {
        if (i % 1500 == 0 && i < N / 2)
            lk_counters_reserve(c); /* as the recorder does: a spare chunk ahead */
        keys[i] = lk_counters_key(c, i + 1, ws);
        keys[i]->spent = i;
    }
    for (int i = 0; i < N; i++) /* earlier pointers still point at the same state */
        assert_int_equal(keys[i]->spent, i);
    lk_counters_free(c);
    c = open_file(true);
    for (int i = 0; i < N; i++) {
        struct lk_kstate *k = lk_counters_key(c, i + 1, NULL);
        assert_true(k->recovered);
        assert_int_equal(k->spent, i);
    }
    lk_counters_reserve(c);
    assert_false(lk_counters_key(c, N + 1, NULL)->recovered);
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
    };
    return cmocka_run_group_tests_name("counters/file", tests, NULL, NULL);
}
