/*
 * test_shared_url.c — src/counters/counters_redis.c: which Redis URLs are
 * taken, what they are logged as, and that a refused one is never quoted (it
 * may carry a password). Nothing listens on the ports used: the backend keeps
 * dialling in the background and reserving fails at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "counters/shared.h"

static void expect_described(const char *url, const char *want)
{
    struct lk_shared *s = NULL;
    struct lk_errinfo ei;
    char out[400];

    lk_errinfo_clear(&ei);
    assert_int_equal(lk_shared_open(url, &s, &ei), LK_OK);
    lk_shared_describe(s, out, sizeof(out));
    assert_string_equal(out, want);
    assert_null(strstr(out, "Sekr1t"));
    lk_shared_free(s);
}

static void test_taken(void **state)
{
    (void)state;
    expect_described("redis://127.0.0.1", "redis://127.0.0.1:6379/0");
    expect_described("redis://127.0.0.1:1/3", "redis://127.0.0.1:1/3");
    expect_described("redis://:Sekr1t@127.0.0.1:1/0", "redis://***@127.0.0.1:1/0");
    expect_described("redis://app:Sekr1t%40x@127.0.0.1:1", "redis://***@127.0.0.1:1/0");
    expect_described("redis://:p@ss@Sekr1t@127.0.0.1:1", "redis://***@127.0.0.1:1/0");
    expect_described("redis://[::1]:1/0", "redis://[::1]:1/0");
    expect_described("redis://localhost:1/", "redis://localhost:1/0");
}

static void test_refused_without_quoting(void **state)
{
    static const char *bad[] = {
        "http://127.0.0.1:6379", "redis://", "redis://:Sekr1t@", "redis://h:0",
        "redis://h:65536", "redis://h:1/x", "redis://Sekr1t@h:1", "redis://h o:1",
        "redis://:%zzSekr1t@h:1", "redis://[::1", "redis://[::1]x", "redis://h:1/-1",
        "redis://h:Sekr1t", "redis://h:1/1/2",
    };

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        struct lk_shared *s = (struct lk_shared *)1;
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_shared_open(bad[i], &s, &ei), LK_ERR_INVALID_REQUEST);
        assert_null(s);
        assert_string_equal(ei.field, "redis");
        assert_non_null(strstr(ei.detail, "redis URL: "));
        assert_null(strstr(ei.detail, "Sekr1t"));
    }
}

static void test_down_fails_at_once(void **state)
{
    struct lk_shared *s = NULL;
    struct lk_shared_req q = {.key_rowid = 1, .ws_id = "ws_a", .rl_want = 1, .rl_limit = 5,
                              .rl_window_s = 60};
    struct lk_shared_grant g;

    (void)state;
    /* Port 1 on loopback: nothing listens, connecting is refused. */
    assert_int_equal(lk_shared_open("redis://127.0.0.1:1", &s, NULL), LK_OK);
    assert_false(lk_shared_up(s));
    assert_int_equal(lk_shared_reserve(s, &q, &g), LK_ERR_STORAGE_UNAVAILABLE);
    assert_int_equal(g.rl_grant, 0);
    assert_string_not_equal(lk_shared_status(s), "ok");
    lk_shared_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_taken),
        cmocka_unit_test(test_refused_without_quoting),
        cmocka_unit_test(test_down_fails_at_once),
    };
    return cmocka_run_group_tests_name("counters/shared_url", tests, NULL, NULL);
}
