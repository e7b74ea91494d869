/*
 * test_hotbody.c — src/http/hotbody.c: the scanner for common verify bodies. It
 * reads the plain bodies exactly as lk_jsonin_verify() does, and declines every
 * body whose answer the full decoder must give (each error, and the valid JSON
 * it does not read), so no answer changes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "http/hotbody.h"
#include "http/jsonin.h"

/* Accepted by both with the same fields. */
static void same(const char *body)
{
    struct lk_verify_body a, b;
    struct lk_errinfo ei;
    size_t n = strlen(body);

    lk_errinfo_clear(&ei);
    if (!lk_hotbody_verify(body, n, &a))
        fail_msg("declined: %s", body);
    assert_int_equal(lk_jsonin_verify(body, n, &b, &ei), LK_OK);
    assert_int_equal(a.key == NULL, b.key == NULL);
    if (a.key != NULL) {
        assert_int_equal(a.key_len, b.key_len);
        assert_memory_equal(a.key, b.key, a.key_len);
    }
    assert_int_equal(a.permissions == NULL, b.permissions == NULL);
    if (a.permissions != NULL)
        assert_string_equal(a.permissions, b.permissions);
    assert_int_equal(a.environment, b.environment);
    assert_int_equal(a.cost, b.cost);
    assert_int_equal(a.has_cost, b.has_cost);
    lk_verify_body_release(&a);
    lk_verify_body_release(&b);
}

static void declined(const char *body, size_t n)
{
    struct lk_verify_body a;

    if (lk_hotbody_verify(body, n, &a))
        fail_msg("accepted: %.*s", (int)n, body);
    assert_null(a.key);
    assert_null(a.permissions);
    assert_int_equal(a.environment, -1);
    assert_false(a.has_cost);
}

#define DECLINED(s) declined((s), sizeof(s) - 1)

static void test_plain_bodies(void **state)
{
    (void)state;
    same("{\"key\":\"lk_live_abc\"}");
    same(" \t\r\n{ \"key\" : \"lk_live_abc\" , \"cost\" : 1 } \n");
    same("{\"key\":\"k\",\"cost\":0}");
    same("{\"key\":\"k\",\"cost\":1000000000}");
    same("{\"cost\":7,\"key\":\"k\",\"environment\":\"test\",\"permissions\":\"a:b AND c:d\"}");
    same("{\"key\":\"k\",\"environment\":\"live\"}");
    same("{\"key\":\"\"}");
    same("{}");
    same("{\"permissions\":\"x\"}");
}

static void test_declines_what_the_decoder_answers(void **state)
{
    (void)state;
    /* Errors: every one is the full decoder's to word. */
    DECLINED("");
    DECLINED("   ");
    DECLINED("{");
    DECLINED("{\"key\":\"k\"");
    DECLINED("{\"key\":\"k\",}");
    DECLINED("{,}");
    DECLINED("{\"key\":\"k\"}x");
    DECLINED("{\"key\":\"k\"}{}");
    DECLINED("[]");
    DECLINED("\"k\"");
    DECLINED("{\"key\":\"k\",\"key\":\"k\"}");          /* duplicate */
    DECLINED("{\"key\":\"k\",\"cost\":1,\"cost\":1}");
    DECLINED("{\"key\":\"k\",\"extra\":1}");             /* unknown field */
    DECLINED("{\"Key\":\"k\"}");
    DECLINED("{\"key\":1}");                              /* wrong types */
    DECLINED("{\"key\":null}");
    DECLINED("{\"key\":\"k\",\"cost\":-1}");
    DECLINED("{\"key\":\"k\",\"cost\":1000000001}");
    DECLINED("{\"key\":\"k\",\"cost\":99999999999}");
    DECLINED("{\"key\":\"k\",\"cost\":1.5}");
    DECLINED("{\"key\":\"k\",\"cost\":1e3}");
    DECLINED("{\"key\":\"k\",\"cost\":01}");
    DECLINED("{\"key\":\"k\",\"cost\":\"1\"}");
    DECLINED("{\"key\":\"k\",\"cost\":1");
    DECLINED("{\"key\":\"k\",\"environment\":\"prod\"}");
    DECLINED("{\"key\":\"k\",\"environment\":\"LIVE\"}");
    DECLINED("{\"key\":\"k\",\"permissions\":\"\"}");
    DECLINED("{\"key\":\"k\",\"permissions\":[\"a:b\"]}");
    DECLINED("{\"key\":\"k\x01\"}");                   /* control bytes, NUL, bad UTF-8 */
    declined("{\"key\":\"k\0\"}", 10);
    declined("{\"key\":\"k\"}\0", 12);
    DECLINED("{\"key\":\"k\xff\"}");
    DECLINED("\xef\xbb\xbf{\"key\":\"k\"}");             /* a BOM */
    /* Valid JSON it leaves to the full decoder, which accepts it. */
    DECLINED("{\"key\":\"k\\u0041\"}");
    DECLINED("{\"key\":\"caf\xc3\xa9\"}");
    DECLINED("{\"k\\u0065y\":\"k\"}");
    DECLINED("{\"key\":\"k\",\"cost\":-0}");
}

static void test_long_permissions(void **state)
{
    char body[1200];
    int n;

    (void)state;
    n = snprintf(body, sizeof(body), "{\"permissions\":\"%01024d\"}", 0);
    assert_true(n > 0);
    same(body);
    n = snprintf(body, sizeof(body), "{\"permissions\":\"%01025d\"}", 0);
    declined(body, (size_t)n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_bodies),
        cmocka_unit_test(test_declines_what_the_decoder_answers),
        cmocka_unit_test(test_long_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
