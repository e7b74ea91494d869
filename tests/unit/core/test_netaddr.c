/*
 * test_netaddr.c — src/core/netaddr.c: addresses, their one spelling, ranges and
 * lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>

#include "base/common.h"
#include "core/netaddr.h"

/* Spellings and the one canonical text each stands for (NULL: not an address). */
static const struct {
    const char *in, *canon;
} spellings[] = {
    {"203.0.113.7", "203.0.113.7"},
    {"::ffff:203.0.113.7", "203.0.113.7"}, /* IPv4-mapped is the IPv4 address */
    {"::FFFF:cb00:7107", "203.0.113.7"},
    {"2001:DB8::7", "2001:db8::7"},
    {"2001:db8:0:0:0:0:0:7", "2001:db8::7"},
    {"2001:0db8::0007", "2001:db8::7"},
    {"::1", "::1"},
    {"0.0.0.0", "0.0.0.0"},
    {"203.0.113.999", NULL},
    {"203.0.113", NULL},
    {"0203.0.113.7", NULL}, /* no octal */
    {"0x7f.0.0.1", NULL},
    {"203.0.113.7 ", NULL},
    {"[::1]", NULL},
    {"fe80::1%eth0", NULL},
    {"203.0.113.7:80", NULL},
    {"localhost", NULL},
    {"", NULL},
    {"1111:2222:3333:4444:5555:6666:7777:8888:9999", NULL},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL},
};

static void test_canon(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(spellings); i++) {
        char out[LK_NETADDR_TEXT_MAX];
        int r = lk_netaddr_canon(spellings[i].in, strlen(spellings[i].in), out, sizeof(out));
        if (spellings[i].canon == NULL) {
            if (r != -1)
                fail_msg("accepted %s as %s", spellings[i].in, out);
        } else if (r != 0 || strcmp(out, spellings[i].canon) != 0) {
            fail_msg("%s: %d %s", spellings[i].in, r, r == 0 ? out : "");
        }
    }
}

/* The dotted quad is written by hand: it must match inet_ntop for every octet. */
static void test_v4_format_matches_inet_ntop(void **state)
{
    char want[INET_ADDRSTRLEN], got[LK_NETADDR_TEXT_MAX];
    struct lk_netaddr a;
    uint8_t q[4];

    (void)state;
    for (unsigned v = 0; v < 256; v++) {
        q[0] = (uint8_t)v, q[1] = (uint8_t)(255 - v), q[2] = (uint8_t)(v * 7), q[3] = (uint8_t)(v / 3);
        inet_ntop(AF_INET, q, want, sizeof(want));
        assert_int_equal(lk_netaddr_parse(want, strlen(want), &a), 0);
        lk_netaddr_format(&a, got, sizeof(got));
        assert_string_equal(got, want);
    }
}

static void test_nul_inside(void **state)
{
    struct lk_netaddr a;

    (void)state;
    assert_int_equal(lk_netaddr_parse("1.2.3.4\0junk", 12, &a), -1);
    assert_int_equal(lk_netaddr_parse("1.2.3.4", 7, &a), 0);
}

/* range, address, in it? */
static const struct {
    const char *range, *addr;
    bool in;
} ranges[] = {
    {"127.0.0.1", "127.0.0.1", true},
    {"127.0.0.1", "127.0.0.2", false},
    {"127.0.0.0/8", "127.255.1.2", true},
    {"127.0.0.0/8", "128.0.0.1", false},
    {"10.1.2.3/8", "10.200.0.1", true}, /* host bits are cleared, as nginx does */
    {"192.168.1.0/23", "192.168.0.255", true},
    {"192.168.1.0/23", "192.168.2.0", false},
    {"0.0.0.0/0", "8.8.8.8", true},
    {"0.0.0.0/0", "2001:db8::1", false}, /* an IPv4 range holds only IPv4 */
    {"::/0", "2001:db8::1", true},
    {"::/0", "8.8.8.8", true}, /* as ::ffff:8.8.8.8 */
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"2001:db8::/127", "2001:db8::1", true},
    {"2001:db8::/127", "2001:db8::2", false},
    {"::1", "::1", true},
    {"::1", "127.0.0.1", false},
    {"::ffff:10.0.0.0/104", "10.3.4.5", true}, /* mapped form, IPv6 prefix */
    {"10.0.0.0/8", "::ffff:10.3.4.5", true},
};

static void test_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(ranges); i++) {
        struct lk_netaddr_list l = {0};
        struct lk_netaddr a;
        if (lk_netaddr_list_add(&l, ranges[i].range, strlen(ranges[i].range), NULL) != LK_OK ||
            l.n != 1)
            fail_msg("refused %s", ranges[i].range);
        assert_int_equal(lk_netaddr_parse(ranges[i].addr, strlen(ranges[i].addr), &a), 0);
        if (lk_netaddr_list_contains(&l, &a) != ranges[i].in)
            fail_msg("%s in %s: want %d", ranges[i].addr, ranges[i].range, ranges[i].in);
    }
}

static const char *const bad_ranges[] = {
    "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "::/129",
    "/8", "10.0.0.0/08x", "10.0.0.0 /8x", "example.com", "1.2.3.4.5", "10.0.0.0/1e1",
};

static void test_bad_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(bad_ranges); i++) {
        struct lk_netaddr_list l = {0};
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        if (lk_netaddr_list_add(&l, bad_ranges[i], strlen(bad_ranges[i]), &ei) == LK_OK)
            fail_msg("accepted %s", bad_ranges[i]);
        assert_non_null(strstr(ei.detail, "not an address"));
    }
}

static void test_lists(void **state)
{
    static const char many[] = "1.1.1.1 ";
    struct lk_netaddr_list l = {0};
    struct lk_errinfo ei;
    struct lk_netaddr a;

    (void)state;
    static const char three[] = " 127.0.0.1,::1 ,\t10.0.0.0/8,,";
    assert_int_equal(lk_netaddr_list_add(&l, three, strlen(three), NULL), LK_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(lk_netaddr_list_add(&l, "none", 4, NULL), LK_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(lk_netaddr_parse("::1", 3, &a), 0);
    assert_true(lk_netaddr_list_contains(&l, &a));
    /* the list has a cap, and says so */
    l.n = 0;
    for (int i = 0; i < LK_NETADDR_LIST_MAX; i++)
        assert_int_equal(lk_netaddr_list_add(&l, many, strlen(many), NULL), LK_OK);
    lk_errinfo_clear(&ei);
    assert_int_equal(lk_netaddr_list_add(&l, many, strlen(many), &ei), LK_ERR_INVALID_REQUEST);
    assert_non_null(strstr(ei.detail, "more than"));
    /* a bad entry is quoted bounded and printable */
    l.n = 0;
    lk_errinfo_clear(&ei);
    static const char junk[] = "1.2.3.4,\x01\xff"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(lk_netaddr_list_add(&l, junk, strlen(junk), &ei), LK_ERR_INVALID_REQUEST);
    assert_non_null(strstr(ei.detail, "\"??aaaa"));
    assert_true(strlen(ei.detail) < 100);
    /* an empty list trusts nobody */
    l.n = 0;
    assert_false(lk_netaddr_list_contains(&l, &a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon),
        cmocka_unit_test(test_v4_format_matches_inet_ntop),
        cmocka_unit_test(test_nul_inside),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_bad_ranges),
        cmocka_unit_test(test_lists),
    };
    return cmocka_run_group_tests_name("core/netaddr", tests, NULL, NULL);
}
