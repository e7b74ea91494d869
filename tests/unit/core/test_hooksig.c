/* test_hooksig.c — src/core/hooksig.c: the Standard Webhooks signature (its own
 * test vector), the secret text, URL checks and which addresses are private. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>
#include <openssl/evp.h>

#include "core/hooksig.h"

static void test_standard_webhooks_vector(void **state)
{
    /* libraries/go/webhook_test.go of standard-webhooks: TestWebhookSign */
    static const char secret_b64[] = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    static const char body[] = "{\"test\": 2432232314}";
    uint8_t key[64];
    char sig[LK_HOOKSIG_MAX];
    int n = EVP_DecodeBlock(key, (const uint8_t *)secret_b64, (int)strlen(secret_b64));

    (void)state;
    assert_true(n == 24);
    lk_hooksig_sign(key, 24, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* one byte more is another signature */
    lk_hooksig_sign(key, 24, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body) - 1,
                    sig);
    assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void test_secret_text_and_derivation(void **state)
{
    uint8_t master[32] = {1, 2, 3}, k1[32], k2[32], k3[32], back[48];
    char text[LK_HOOKSIG_SECRET_MAX];

    (void)state;
    lk_hooksig_derive(master, sizeof(master), "wh_1", "aa", k1);
    lk_hooksig_derive(master, sizeof(master), "wh_1", "ab", k2);
    lk_hooksig_derive(master, sizeof(master), "wh_2", "aa", k3);
    assert_memory_not_equal(k1, k2, 32);
    assert_memory_not_equal(k1, k3, 32);
    lk_hooksig_derive(master, sizeof(master), "wh_1", "aa", k2);
    assert_memory_equal(k1, k2, 32); /* the same inputs, the same key: nothing stored */
    lk_hooksig_secret_text(k1, text);
    assert_int_equal(strncmp(text, "whsec_", 6), 0);
    assert_int_equal(strlen(text), 6 + 44);
    assert_int_equal(EVP_DecodeBlock(back, (const uint8_t *)text + 6, 44), 33); /* 32 + pad */
    assert_memory_equal(back, k1, 32);
}

static void test_urls(void **state)
{
    static const struct {
        const char *url;
        bool ok, https, ip;
        const char *host, *path;
        unsigned port;
    } cases[] = {
        {"https://example.com/hook", true, true, false, "example.com", "/hook", 443},
        {"http://example.com", true, false, false, "example.com", "/", 80},
        {"http://127.0.0.1:8080/a?b=c", true, false, true, "127.0.0.1", "/a?b=c", 8080},
        {"http://[::1]:9/x", true, false, true, "::1", "/x", 9},
        {"HTTP://example.com/", false},
        {"ftp://example.com/", false},
        {"http://", false},
        {"http:///x", false},
        {"http://a@example.com/", false},
        {"http://example.com:0/", false},
        {"http://example.com:65536/", false},
        {"http://example.com:/", false},
        {"http://example.com/#x", false},
        {"http://exa mple.com/", false},
        {"http://ex_ample.com/", false},
        {"http://[::1/", false},
        {"http://[zz::1]/", false},
        {"http://example.com?x", false},
        {"javascript:alert(1)", false},
    };
    struct lk_hookurl u;
    struct lk_errinfo ei;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum lk_err e = lk_hookurl_parse(cases[i].url, strlen(cases[i].url), 2048, &u, &ei);
        if (!cases[i].ok) {
            if (e != LK_ERR_INVALID_REQUEST)
                fail_msg("%s: accepted", cases[i].url);
            assert_string_equal(ei.field, "url");
            continue;
        }
        if (e != LK_OK)
            fail_msg("%s: %s", cases[i].url, ei.detail);
        assert_int_equal(u.https, cases[i].https);
        assert_int_equal(u.host_is_ip, cases[i].ip);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_int_equal(u.path_len, strlen(cases[i].path));
        assert_memory_equal(u.path, cases[i].path, u.path_len);
    }
    char big[3000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "http://e.com/", 13);
    assert_int_equal(lk_hookurl_parse(big, sizeof(big), 2048, &u, &ei), LK_ERR_INVALID_REQUEST);
    assert_int_equal(lk_hookurl_parse(big, 2048, 2048, &u, &ei), LK_OK);
}

static void test_addresses(void **state)
{
    static const struct {
        const char *a;
        bool pub;
    } cases[] = {
        {"8.8.8.8", true},        {"93.184.216.34", true}, {"127.0.0.1", false},
        {"127.255.0.9", false},   {"10.0.0.1", false},     {"172.16.0.1", false},
        {"172.31.255.255", false}, {"172.32.0.1", true},   {"192.168.0.1", false},
        {"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false},
        {"224.0.0.1", false},     {"255.255.255.255", false}, {"198.18.0.1", false},
        {"::1", false},           {"::", false},           {"fe80::1", false},
        {"fc00::1", false},       {"fd12::1", false},      {"ff02::1", false},
        {"::ffff:127.0.0.1", false}, {"::ffff:8.8.8.8", true}, {"64:ff9b::a00:1", false},
        {"2606:4700::1111", true},
        /* site-local, discard-only, documentation, Teredo, local-use NAT64 */
        {"fec0::1", false},       {"feff::1", false},      {"100::1", false},
        {"100::ffff:1", false},   {"100:0:0:1::1", true},  {"2001:db8::1", false},
        {"3fff::1", false},       {"3fff:fff::1", false},  {"3fff:1000::1", true},
        {"2001::1", false},       {"2001:0:4136:e378::1", false}, {"2001:4860::8888", true},
        {"64:ff9b:1::a00:1", false}, {"64:ff9b:1::808:808", false}, {"64:ff9b::808:808", true},
        /* IPv4-translated and 6to4 are judged by the IPv4 address they carry */
        {"::ffff:0:127.0.0.1", false}, {"::ffff:0:10.0.0.1", false}, {"::ffff:0:8.8.8.8", true},
        {"2002:7f00:1::", false}, {"2002:a00:1::", false}, {"2002:a9fe:a9fe::1", false},
        {"2002:c0a8:101::", false}, {"2002:808:808::1", true},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (strchr(cases[i].a, ':') != NULL) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, cases[i].a, &s6->sin6_addr), 1);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, cases[i].a, &s4->sin_addr), 1);
        }
        if (lk_hookaddr_public((struct sockaddr *)&ss) != cases[i].pub)
            fail_msg("%s: expected %s", cases[i].a, cases[i].pub ? "public" : "private");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_webhooks_vector),
        cmocka_unit_test(test_secret_text_and_derivation),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
