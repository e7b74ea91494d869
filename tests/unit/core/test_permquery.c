/*
 * test_permquery.c — src/core/permquery.c: every query form against a fixed set
 * of granted permissions, and malformed queries with the position they fail at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/perm.h"
#include "core/permquery.h"

static const char *const granted[] = {"storage:read", "workflows:execute", "content.*:read"};

static bool has(void *arg, const char *p, size_t len)
{
    (void)arg;
    for (size_t i = 0; i < LK_ARRAY_LEN(granted); i++)
        if (lk_perm_covers(granted[i], strlen(granted[i]), p, len))
            return true;
    return false;
}

static const struct {
    const char *q;
    bool want;
} good[] = {
    {"storage:read", true},
    {"storage:write", false},
    {"storage:read AND workflows:execute", true},
    {"storage:read AND workflows:read", false},
    {"storage:write OR workflows:execute", true},
    {"storage:read AND (workflows:read OR workflows:execute)", true},
    {"storage:write AND (workflows:read OR workflows:execute)", false},
    {"storage:write OR storage:read AND workflows:execute", true}, /* AND binds tighter */
    {"(storage:write OR storage:read) AND workflows:read", false},
    {"  ( ( storage:read ) )  ", true},
    {"storage:read and workflows:execute", true},
    {"storage:read Or nope:x", true},
    {"content.products:read", false}, /* `*` is a whole segment, not a glob inside one */
};

static const struct {
    const char *q;
    long offset;
} bad[] = {
    {"", -1},
    {"AND", 0},
    {"storage:read AND", 16},
    {"storage:read AND AND x:y", 17},
    {"(storage:read", 13},
    {"storage:read)", 12},
    {"storage:read x:y", 13},
    {"Storage:Read", 0},
    {"()", 1},
    {"storage:read OR (", 17},
    {"((((((((((((((((((a:b))))))))))))))))))", 16},
};

static void test_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(good); i++) {
        struct lk_errinfo ei;
        bool r = !good[i].want;
        lk_errinfo_clear(&ei);
        if (lk_permquery_eval(good[i].q, strlen(good[i].q), has, NULL, &r, &ei) != LK_OK)
            fail_msg("\"%s\" refused: %s", good[i].q, ei.detail);
        if (r != good[i].want)
            fail_msg("\"%s\" gave %d", good[i].q, r);
    }
}

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        struct lk_errinfo ei;
        bool r;
        lk_errinfo_clear(&ei);
        if (lk_permquery_eval(bad[i].q, strlen(bad[i].q), has, NULL, &r, &ei) != LK_ERR_BAD_QUERY)
            fail_msg("\"%s\" accepted", bad[i].q);
        if (ei.offset != bad[i].offset)
            fail_msg("\"%s\": offset %ld, want %ld", bad[i].q, ei.offset, bad[i].offset);
        if (strcmp(ei.field, "permissions") != 0 || ei.detail[0] == '\0')
            fail_msg("\"%s\": no field or detail", bad[i].q);
    }
}

static void test_too_long(void **state)
{
    char q[LK_PERMQUERY_MAX_LEN + 2];
    bool r;

    (void)state;
    memset(q, 'a', sizeof(q));
    assert_int_equal(lk_permquery_eval(q, sizeof(q), has, NULL, &r, NULL), LK_ERR_BAD_QUERY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests_name("core/permquery", tests, NULL, NULL);
}
