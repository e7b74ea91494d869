/*
 * test_routerules.c — src/core/routerules.c: the forward-auth route file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "core/routerules.h"
#include "core/secret.h"

static const char design_example[] =
    "# METHOD  PATH-PATTERN     NEEDS                               [cost=N] [env=live|test]\n"
    "GET       /content/**      content:read\n"
    "POST      /content/*/run   workflows:execute AND storage:read  cost=5   env=live\n"
    "*         /public/**       public\n"
    "*         /**              any\n";

static long match(const struct lk_route_rules *r, const char *method, const char *path)
{
    return lk_route_rules_match(r, method, strlen(method), path, strlen(path));
}

static void test_design_example(void **state)
{
    struct lk_route_rules r;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_route_rules_parse(design_example, strlen(design_example), &r, &ei), LK_OK);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.rules[0].query, "content:read");
    assert_string_equal(r.rules[1].query, "workflows:execute AND storage:read");
    assert_int_equal(r.rules[1].cost, 5);
    assert_int_equal(r.rules[1].env, LK_ENV_LIVE);
    assert_int_equal(r.rules[2].needs, LK_NEEDS_PUBLIC);
    assert_int_equal(r.rules[3].needs, LK_NEEDS_ANY);
    assert_int_equal(match(&r, "GET", "/content/a/b"), 0);
    assert_int_equal(match(&r, "GET", "/content"), 0); /* ** includes nothing */
    assert_int_equal(match(&r, "POST", "/content/42/run"), 1);
    assert_int_equal(match(&r, "POST", "/content/42/run/x"), 3);
    assert_int_equal(match(&r, "POST", "/content//run"), 3); /* * is one non-empty segment */
    assert_int_equal(match(&r, "DELETE", "/public/x"), 2);
    assert_int_equal(match(&r, "PUT", "/"), 3);
    /* HEAD runs the GET handler: judged by the GET rule, not the catch-all */
    assert_int_equal(match(&r, "HEAD", "/content/a"), 0);
    assert_int_equal(match(&r, "HEAD", "/public/x"), 2);
    assert_int_equal(match(&r, "OPTIONS", "/content/a"), 3);
    assert_int_equal(match(&r, "HEADX", "/content/a"), 3);
    lk_route_rules_free(&r);
}

static void test_patterns(void **state)
{
    static const struct {
        const char *pattern, *path;
        bool match;
    } cases[] = {
        {"/", "/", true},        {"/", "/a", false},         {"/a", "/a", true},
        {"/a", "/a/", false},    {"/a", "/ab", false},        {"/a/*", "/a/b", true},
        {"/a/*", "/a/", false},  {"/a/*", "/a", false},       {"/a/**", "/a", true},
        {"/a/**", "/ab", false}, {"/a/**", "/a/b/c/", true},  {"/*/b", "/x/b", true},
        {"/**", "/", true},      {"/a", "a", false},          {"/a", "", false},
    };
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        bool got = lk_route_pattern_match(cases[i].pattern, cases[i].path, strlen(cases[i].path));
        if (got != cases[i].match)
            fail_msg("%s vs %s: got %d", cases[i].pattern, cases[i].path, got);
    }
}

static void test_no_match_without_catch_all(void **state)
{
    static const char text[] = "GET /a/** a:read\n";
    struct lk_route_rules r;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_route_rules_parse(text, strlen(text), &r, &ei), LK_OK);
    assert_int_equal(match(&r, "POST", "/a/x"), -1);
    assert_int_equal(match(&r, "get", "/a/x"), -1); /* methods are exact */
    lk_route_rules_free(&r);
}

static void test_bad_lines(void **state)
{
    static const struct {
        const char *text;
        long line;
    } bad[] = {
        {"GET /a\n", 1},
        {"\nget /a any\n", 2},
        {"GET a any\n", 1},
        {"GET /a* any\n", 1},
        {"GET /**/a any\n", 1},
        {"GET /a a:read AND\n", 1},
        {"GET /a a:read cost=-1\n", 1},
        {"GET /a a:read cost=1 cost=2\n", 1},
        {"GET /a a:read env=prod\n", 1},
        {"GET /a public cost=1\n", 1},
        {"GET /a any cost=1000000001\n", 1},
    };
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        struct lk_route_rules r;
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        if (lk_route_rules_parse(bad[i].text, strlen(bad[i].text), &r, &ei) !=
            LK_ERR_INVALID_REQUEST)
            fail_msg("accepted: %s", bad[i].text);
        assert_int_equal(ei.offset, bad[i].line);
        lk_route_rules_free(&r);
    }
}

static void test_normalize(void **state)
{
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"/", "/"},
        {"/a/b", "/a/b"},
        {"/a/b/", "/a/b/"},
        {"//a///b", "/a/b"},
        {"/./a/./b/.", "/a/b/"},
        {"/public/../admin/users", "/admin/users"},
        {"/public/%2e%2e/admin", "/admin"},
        {"/public/%2E%2E/admin", "/admin"},
        {"/x/../admin/users", "/admin/users"},
        {"/%61dmin/users", "/admin/users"},
        {"/a/b/..", "/a/"},
        {"/a/..", "/"},
        {"/..", NULL},
        {"/a/../..", NULL},
        {"/a%2fb", NULL},
        {"/a%252e%252e/b", NULL},
        {"/a%5cb", NULL},
        {"/a\\b", NULL},
        {"/a%00", NULL},
        {"/a%zz", NULL},
        {"/a%2", NULL},
        {"a/b", NULL},
        {"", NULL},
        {"/caf%C3%A9", "/caf\xc3\xa9"},
        {"/public/%C0%AE%C0%AE/admin", NULL}, /* overlong '.' */
        {"/public/%E0%80%AE/admin", NULL},
        {"/a/\xc0\xae", NULL},
        {"/a/%FF", NULL},
        {"/a/%ED%A0%80", NULL}, /* a surrogate */
    };
    char out[256];

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        long n = lk_route_path_normalize(cases[i].in, strlen(cases[i].in), LK_PARAMS_REJECT, out,
                                         sizeof(out));
        if (cases[i].out == NULL) {
            if (n != -1)
                fail_msg("%s: accepted as %s", cases[i].in, out);
        } else if (n < 0 || strcmp(out, cases[i].out) != 0 || (size_t)n != strlen(out)) {
            fail_msg("%s: got %s, want %s", cases[i].in, n < 0 ? "(refused)" : out,
                     cases[i].out);
        }
    }
    /* too long for the buffer: refused, never cut */
    assert_int_equal(lk_route_path_normalize("/abcdef", 7, LK_PARAMS_REJECT, out, 4), -1);
}

/* `;` under each path_params mode (NULL: refused). */
static void test_path_params(void **state)
{
    static const struct {
        const char *in, *reject, *strip, *literal;
    } cases[] = {
        {"/admin;x/users", NULL, "/admin/users", "/admin;x/users"},
        {"/public/..;/admin/users", NULL, "/admin/users", "/public/..;/admin/users"},
        {"/public/.;x/admin", NULL, "/public/admin", "/public/.;x/admin"},
        {"/a;jsessionid=1", NULL, "/a", "/a;jsessionid=1"},
        {"/;x/admin", NULL, "/admin", "/;x/admin"},
        {"/a;b;c/d", NULL, "/a/d", "/a;b;c/d"},
        {"/a/b;", NULL, "/a/b", "/a/b;"},
        {"/admin%3bx/users", NULL, NULL, "/admin;x/users"},
        {"/public/..%3B/admin", NULL, NULL, "/public/..;/admin"},
        {"/..;/x", NULL, NULL, "/..;/x"}, /* strip: `..` above the root */
        {"/a;%2f/b", NULL, "/a/b", NULL},  /* stripped parameters are not decoded */
        {"/a/b", "/a/b", "/a/b", "/a/b"},
    };
    const enum lk_route_params modes[] = {LK_PARAMS_REJECT, LK_PARAMS_STRIP, LK_PARAMS_LITERAL};
    char out[256];

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        const char *want[] = {cases[i].reject, cases[i].strip, cases[i].literal};
        for (size_t m = 0; m < 3; m++) {
            long n = lk_route_path_normalize(cases[i].in, strlen(cases[i].in), modes[m], out,
                                             sizeof(out));
            if (want[m] == NULL ? n != -1 : n < 0 || strcmp(out, want[m]) != 0)
                fail_msg("%s (mode %zu): got %s, want %s", cases[i].in, m,
                         n < 0 ? "(refused)" : out, want[m] ? want[m] : "(refused)");
        }
    }
}

static void test_path_params_directive(void **state)
{
    static const struct {
        const char *text;
        long line;                 /* 0: accepted */
        enum lk_route_params mode; /* when accepted */
    } cases[] = {
        {"GET /a any\n", 0, LK_PARAMS_REJECT},
        {"path_params strip\nGET /a any\n", 0, LK_PARAMS_STRIP},
        {"GET /a any\npath_params literal   # after the rules is fine too\n", 0, LK_PARAMS_LITERAL},
        {"\tpath_params reject\nGET /a any\n", 0, LK_PARAMS_REJECT},
        {"path_params strip\npath_params strip\nGET /a any\n", 2, 0},
        {"path_params\nGET /a any\n", 1, 0},
        {"path_params Strip\n", 1, 0},
        {"path_params strip extra\n", 1, 0},
        {"get /a any\n", 1, 0},
        {"options /a any\n", 1, 0},
    };

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_route_rules r;
        struct lk_errinfo ei;
        enum lk_err e;
        lk_errinfo_clear(&ei);
        e = lk_route_rules_parse(cases[i].text, strlen(cases[i].text), &r, &ei);
        if (cases[i].line == 0) {
            if (e != LK_OK || r.params != cases[i].mode)
                fail_msg("%s: %d mode %d (%s)", cases[i].text, e, r.params, ei.detail);
        } else if (e != LK_ERR_INVALID_REQUEST || ei.offset != cases[i].line) {
            fail_msg("%s: %d at line %ld", cases[i].text, e, ei.offset);
        }
        lk_route_rules_free(&r);
    }
}

static void test_per_ip(void **state)
{
    static const char text[] = "POST /publish public per_ip=30/60\n"
                               "GET /x content:read cost=2 per_ip=1/1 env=live\n"
                               "GET /y any\n";
    static const char *const bad[] = {
        "GET /p public per_ip=\n",          "GET /p public per_ip=5\n",
        "GET /p public per_ip=5/\n",        "GET /p public per_ip=/60\n",
        "GET /p public per_ip=0/60\n",      "GET /p public per_ip=5/0\n",
        "GET /p public per_ip=-1/60\n",     "GET /p public per_ip=1000001/60\n",
        "GET /p public per_ip=5/86401\n",   "GET /p public per_ip=5/60 per_ip=5/60\n",
        "GET /p public per_ip=5/60/1\n",    "GET /p public per_ip=5x/60\n",
        "GET /p public per_ip=5/6 0\n",
    };
    struct lk_route_rules r;
    struct lk_errinfo ei;
    char many[2048];
    size_t n = 0;

    (void)state;
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_route_rules_parse(text, strlen(text), &r, &ei), LK_OK);
    assert_int_equal(r.rules[0].needs, LK_NEEDS_PUBLIC);
    assert_int_equal(r.rules[0].ip_limit, 30);
    assert_int_equal(r.rules[0].ip_window, 60);
    assert_int_equal(r.rules[1].ip_limit, 1);
    assert_int_equal(r.rules[1].ip_window, 1);
    assert_int_equal(r.rules[1].cost, 2);
    assert_int_equal(r.rules[1].env, LK_ENV_LIVE);
    assert_string_equal(r.rules[1].query, "content:read");
    assert_int_equal(r.rules[2].ip_limit, 0);
    lk_route_rules_free(&r);
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        lk_errinfo_clear(&ei);
        if (lk_route_rules_parse(bad[i], strlen(bad[i]), &r, &ei) != LK_ERR_INVALID_REQUEST ||
            ei.offset != 1)
            fail_msg("accepted: %s", bad[i]);
        lk_route_rules_free(&r);
    }
    /* Sixteen distinct settings fit (repeats are free); a seventeenth does not. */
    for (int i = 1; i <= 17; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "GET /a%d public per_ip=%d/60\n"
                              "GET /b%d public per_ip=%d/60\n", i, i, i, i);
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_route_rules_parse(many, n, &r, &ei), LK_ERR_INVALID_REQUEST);
    assert_int_equal(ei.offset, 33);
    lk_route_rules_free(&r);
    assert_int_equal(lk_route_rules_parse(many, n - strlen("GET /a17 public per_ip=17/60\n"
                                                           "GET /b17 public per_ip=17/60\n"),
                                          &r, &ei),
                     LK_OK);
    assert_int_equal(r.n, 32);
    lk_route_rules_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_no_match_without_catch_all),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_path_params),
        cmocka_unit_test(test_path_params_directive),
        cmocka_unit_test(test_per_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
