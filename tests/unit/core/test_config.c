/*
 * test_config.c — src/core/config.c: accepted files and refused lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/common.h"
#include "base/log.h"
#include "core/config.h"

static void test_full(void **state)
{
    static const char text[] = "# latchkey\n\n  listen = 0.0.0.0:9000\n"
                               "db=sqlite:/var/lib/lk.db   # the store\r\n"
                               "pepper_file = /etc/lk pepper\nthreads = 4";
    struct lk_config c;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_config_parse(text, strlen(text), &c, &ei), LK_OK);
    assert_string_equal(c.listen, "0.0.0.0:9000");
    assert_string_equal(c.db, "sqlite:/var/lib/lk.db");
    assert_string_equal(c.pepper_file, "/etc/lk pepper");
    assert_int_equal(c.threads, 4);
}

static void test_limits(void **state)
{
    static const char text[] = "rate_limit = 600/60\ntest_rate_limit = none\n"
                               "failed_key_limit = 5 / 2\n";
    struct lk_config c;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_config_parse(text, strlen(text), &c, &ei), LK_ERR_INVALID_REQUEST);
    /* no spaces inside a limit; the rest parses */
    static const char ok[] = "rate_limit = 600/60\ntest_rate_limit = none\nfailed_key_limit=5/2";
    assert_int_equal(lk_config_parse(ok, strlen(ok), &c, &ei), LK_OK);
    assert_int_equal(c.rate_limit.limit, 600);
    assert_int_equal(c.rate_limit.window_s, 60);
    assert_int_equal(c.test_rate_limit.limit, 0); /* none */
    assert_int_equal(c.failed_key_limit.limit, 5);
    assert_int_equal(c.failed_key_limit.window_s, 2);
    assert_int_equal(c.login_rate_limit.limit, -1); /* not set: the built-in default applies */
}

static const struct {
    const char *text;
    long line;
    const char *field;
} bad[] = {
    {"listen 127.0.0.1:1\n", 1, "config"},
    {"\n\nport = 80\n", 3, "port"},
    {"threads = 0\n", 1, "threads"},
    {"threads = 65\n", 1, "threads"},
    {"threads = -1\n", 1, "threads"},
    {"rate_limit = 100\n", 1, "rate_limit"},
    {"rate_limit = 0/60\n", 1, "rate_limit"},
    {"rate_limit = 10/0\n", 1, "rate_limit"},
    {"test_rate_limit = ten/60\n", 1, "test_rate_limit"},
    {"failed_key_limit = 5/-1\n", 1, "failed_key_limit"},
    {"login_rate_limit = off\n", 1, "login_rate_limit"},
    {"db =\n", 1, "db"},
    {" = x\n", 1, "config"},
    {"trusted_proxies = 127.0.0.1\ntrusted_proxies = 10.0.0.0/33\n", 2, "trusted_proxies"},
    {"trusted_proxies = localhost\n", 1, "trusted_proxies"},
    {"trusted_proxies = 127.0.0.1;::1\n", 1, "trusted_proxies"},
    {"log_level = loud\n", 1, "log_level"},
    {"log_level = INFO\n", 1, "log_level"},
    {"access_log = yes\n", 1, "access_log"},
    {"log_file =\n", 1, "log_file"},
};

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(bad); i++) {
        struct lk_config c;
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        if (lk_config_parse(bad[i].text, strlen(bad[i].text), &c, &ei) != LK_ERR_INVALID_REQUEST)
            fail_msg("accepted: %s", bad[i].text);
        if (ei.offset != bad[i].line || strcmp(ei.field, bad[i].field) != 0)
            fail_msg("%s: line %ld field %s", bad[i].text, ei.offset, ei.field);
    }
}

static void test_trusted_proxies(void **state)
{
    static const char text[] = "trusted_proxies = 127.0.0.1, ::1\n"
                               "trusted_proxies = 10.0.0.0/8 2001:db8::/32  # repeated: adds\n";
    struct lk_config c;
    struct lk_errinfo ei;
    struct lk_netaddr a;

    (void)state;
    assert_int_equal(lk_config_parse(text, strlen(text), &c, &ei), LK_OK);
    assert_int_equal(c.trusted_proxies.n, 4);
    assert_int_equal(lk_netaddr_parse("10.9.8.7", 8, &a), 0);
    assert_true(lk_netaddr_list_contains(&c.trusted_proxies, &a));
    assert_int_equal(lk_netaddr_parse("2001:db8:ffff::1", 16, &a), 0);
    assert_true(lk_netaddr_list_contains(&c.trusted_proxies, &a));
    assert_int_equal(lk_netaddr_parse("127.0.0.2", 9, &a), 0);
    assert_false(lk_netaddr_list_contains(&c.trusted_proxies, &a));
    /* none by default, and "none" says so */
    assert_int_equal(lk_config_parse("", 0, &c, NULL), LK_OK);
    assert_int_equal(c.trusted_proxies.n, 0);
    assert_int_equal(lk_config_parse("trusted_proxies = none", 22, &c, NULL), LK_OK);
    assert_int_equal(c.trusted_proxies.n, 0);
}

static void test_tls(void **state)
{
    static const char text[] = "tls_cert = /etc/lk/cert.pem\ntls_key=/etc/lk/key.pem # PEM\n";
    struct lk_config c;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_config_parse(text, strlen(text), &c, &ei), LK_OK);
    assert_string_equal(c.tls_cert, "/etc/lk/cert.pem");
    assert_string_equal(c.tls_key, "/etc/lk/key.pem");
    assert_int_equal(lk_config_parse("tls_key =\n", 10, &c, &ei), LK_ERR_INVALID_REQUEST);
    assert_int_equal(ei.offset, 1);
    assert_string_equal(c.tls_cert, "");
}

static void test_empty(void **state)
{
    struct lk_config c;

    (void)state;
    assert_int_equal(lk_config_parse("", 0, &c, NULL), LK_OK);
    assert_string_equal(c.db, "");
    assert_int_equal(c.threads, 0);
    assert_int_equal(c.log_level, -1); /* not set: serve's default (info) applies */
    assert_int_equal(c.access_log, -1);
    assert_string_equal(c.log_file, "");
}

static void test_logging(void **state)
{
    static const char text[] = "log_file = /var/log/latchkey.log\nlog_level = warn\n"
                               "access_log = off\n";
    struct lk_config c;

    (void)state;
    assert_int_equal(lk_config_parse(text, sizeof(text) - 1, &c, NULL), LK_OK);
    assert_string_equal(c.log_file, "/var/log/latchkey.log");
    assert_int_equal(c.log_level, LK_LOG_WARN);
    assert_int_equal(c.access_log, 0);
    assert_int_equal(lk_config_parse("access_log = on", 15, &c, NULL), LK_OK);
    assert_int_equal(c.access_log, 1);
    assert_int_equal(lk_config_parse("log_level = off", 15, &c, NULL), LK_OK);
    assert_int_equal(c.log_level, LK_LOG_OFF);
}

static void test_redis(void **state)
{
    static const char text[] = "redis = redis://:pw@10.0.0.5:6379/2\n"
                               "redis_fail_open_rate_limits = on\n";
    struct lk_config c;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_config_parse("", 0, &c, NULL), LK_OK);
    assert_string_equal(c.redis, "");
    assert_int_equal(c.redis_fail_open_rate_limits, 0); /* off by default */
    assert_int_equal(lk_config_parse(text, sizeof(text) - 1, &c, NULL), LK_OK);
    assert_string_equal(c.redis, "redis://:pw@10.0.0.5:6379/2");
    assert_int_equal(c.redis_fail_open_rate_limits, 1);
    assert_int_equal(lk_config_parse("redis_fail_open_rate_limits = yes", 33, &c, &ei),
                     LK_ERR_INVALID_REQUEST);
    assert_string_equal(ei.field, "redis_fail_open_rate_limits");
}

static void test_nodes(void **state)
{
    static const char text[] = "state_dir = /var/lib/latchkey/node-a\nfeed_stale_after_ms = 250\n";
    static const char *const refused[] = {"feed_stale_after_ms = 99\n", "feed_stale_after_ms = 0\n",
                                          "feed_stale_after_ms = 3600001\n",
                                          "feed_stale_after_ms = 1s\n", "state_dir =\n"};
    struct lk_config c;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_config_parse(text, strlen(text), &c, &ei), LK_OK);
    assert_string_equal(c.state_dir, "/var/lib/latchkey/node-a");
    assert_int_equal(c.feed_stale_after_ms, 250);
    assert_int_equal(lk_config_parse("", 0, &c, &ei), LK_OK);
    assert_string_equal(c.state_dir, "");
    assert_int_equal(c.feed_stale_after_ms, 0); /* not set: the default applies */
    for (size_t i = 0; i < LK_ARRAY_LEN(refused); i++) {
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_config_parse(refused[i], strlen(refused[i]), &c, &ei),
                         LK_ERR_INVALID_REQUEST);
        assert_int_equal(ei.offset, 1);
    }
}

static void test_webhooks(void **state)
{
    static const char text[] = "webhook_key_file = /etc/latchkey/webhook-key\n"
                               "webhook_allow_private = on\nwebhook_retry_base_ms = 300\n"
                               "webhook_timeout_ms = 5000\nwebhook_max_attempts = 4\n";
    static const char *const refused[] = {
        "webhook_allow_private = yes\n", "webhook_retry_base_ms = 9\n",
        "webhook_retry_base_ms = 3600001\n", "webhook_timeout_ms = 99\n",
        "webhook_max_attempts = 0\n", "webhook_max_attempts = 51\n", "webhook_key_file =\n",
        "webhook_max_attempts = 3x\n"};
    struct lk_config c;
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_config_parse(text, strlen(text), &c, &ei), LK_OK);
    assert_string_equal(c.webhook_key_file, "/etc/latchkey/webhook-key");
    assert_int_equal(c.webhook_allow_private, 1);
    assert_int_equal(c.webhook_retry_base_ms, 300);
    assert_int_equal(c.webhook_timeout_ms, 5000);
    assert_int_equal(c.webhook_max_attempts, 4);
    assert_int_equal(lk_config_parse("", 0, &c, &ei), LK_OK);
    assert_int_equal(c.webhook_allow_private, 0); /* off by default */
    assert_int_equal(c.webhook_max_attempts, 0);  /* not set: the default applies */
    for (size_t i = 0; i < LK_ARRAY_LEN(refused); i++) {
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_config_parse(refused[i], strlen(refused[i]), &c, &ei),
                         LK_ERR_INVALID_REQUEST);
        assert_int_equal(ei.offset, 1);
        assert_int_equal(strncmp(ei.field, "webhook_", 8), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_logging),
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_webhooks),
    };
    return cmocka_run_group_tests_name("core/config", tests, NULL, NULL);
}
