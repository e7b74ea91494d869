/*
 * test_sigverify.c — src/core/sigverify.c: GitHub's secret scanning signatures
 * against a public_keys document, and the generic report's HMAC.
 * The sample is GitHub's own (docs.github.com, "Secret scanning partner
 * program", "Sample HTTP POST sent to verify endpoint") with the public key
 * api.github.com/meta/public_keys/secret_scanning serves under its identifier;
 * the HMAC vector was computed with Python's hmac module.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/common.h"
#include "core/sigverify.h"

static const char sample_body[] =
    "[{\"source\":\"commit\",\"token\":\"some_token\",\"type\":\"some_type\","
    "\"url\":\"https://example.com/base-repo-url/\"}]";
static const char sample_id[] = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";
static const char sample_sig[] =
    "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/"
    "AO1RtBY66YcAdjxji410VQV4xg==";
/* As GitHub serves it, with an older key beside it that did not sign. */
static const char sample_keys[] =
    "{\"public_keys\": ["
    "{\"key_identifier\": \"90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a\","
    " \"key\": \"-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq"
    "\\nkCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==\\n-----END PUBLIC KEY-----\\n\","
    " \"is_current\": false},"
    "{\"key_identifier\": \"bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c\","
    " \"key\": \"-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd"
    "\\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\\n-----END PUBLIC KEY-----\\n\","
    " \"is_current\": true, \"added_later\": 1}]}";

static struct lk_sigkeys *parse_ok(const char *text)
{
    struct lk_sigkeys *k = NULL;
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    assert_int_equal(lk_sigkeys_parse(text, strlen(text), &k, &ei), LK_OK);
    assert_non_null(k);
    return k;
}

static enum lk_err verify(const struct lk_sigkeys *k, const char *id, const char *sig,
                          const char *body, size_t len, struct lk_errinfo *ei)
{
    return lk_sigkeys_verify(k, id, strlen(id), sig, strlen(sig), body, len, ei);
}

static void test_githubs_sample_verifies(void **state)
{
    struct lk_sigkeys *k = parse_ok(sample_keys);
    struct lk_errinfo ei;

    (void)state;
    assert_int_equal(lk_sigkeys_count(k), 2);
    assert_int_equal(lk_sigkeys_current(k), 1);
    assert_int_equal(verify(k, sample_id, sample_sig, sample_body, strlen(sample_body), &ei),
                     LK_OK);
    /* The other key of the file did not sign it. */
    assert_int_equal(verify(k, "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a",
                            sample_sig, sample_body, strlen(sample_body), &ei),
                     LK_ERR_INVALID_SIGNATURE);
    lk_sigkeys_free(k);
}

static void test_every_one_byte_change_of_the_body_is_refused(void **state)
{
    struct lk_sigkeys *k = parse_ok(sample_keys);
    char body[sizeof(sample_body)];
    struct lk_errinfo ei;
    size_t n = strlen(sample_body);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        memcpy(body, sample_body, sizeof(body));
        body[i] ^= 0x20;
        lk_errinfo_clear(&ei);
        assert_int_equal(verify(k, sample_id, sample_sig, body, n, &ei), LK_ERR_INVALID_SIGNATURE);
        assert_string_equal(ei.detail, "signature does not match the body");
    }
    /* One byte more or less, a trailing newline as an editor would add. */
    assert_int_equal(verify(k, sample_id, sample_sig, sample_body, n - 1, &ei),
                     LK_ERR_INVALID_SIGNATURE);
    memcpy(body, sample_body, n);
    body[n] = '\n';
    assert_int_equal(verify(k, sample_id, sample_sig, body, n + 1, &ei),
                     LK_ERR_INVALID_SIGNATURE);
    lk_sigkeys_free(k);
}

static void test_bad_signatures_are_refused_with_why(void **state)
{
    static const struct {
        const char *id, *sig, *detail;
    } cases[] = {
        {"", sample_sig, "no key identifier"},
        {"nope", sample_sig, "no public key of this identifier"},
        {sample_id, "", "no signature"},
        {sample_id, "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/"
                    "AO1RtBY66YcAdjxji410VQV4xg=", "signature is not base64 of a DER signature"},
        {sample_id, "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/"
                    "AO1RtBY66YcAdjxji410VQV4x===", "signature is not base64 of a DER signature"},
        {sample_id, "ME=CIQDa", "signature is not base64 of a DER signature"},
        {sample_id, "ME-CIQDa", "signature is not base64 of a DER signature"},
        {sample_id, "QUJD", "signature does not match the body"}, /* "ABC": not DER */
        /* A valid signature's bytes changed: still DER, no longer the signature. */
        {sample_id, "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/"
                    "AO1RtBY66YcAdjxji410VQV4xw==", "signature does not match the body"},
    };
    struct lk_sigkeys *k = parse_ok(sample_keys);
    char huge[LK_SIG_B64_MAX + 8];

    (void)state;
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        assert_int_equal(verify(k, cases[i].id, cases[i].sig, sample_body, strlen(sample_body),
                                &ei),
                         LK_ERR_INVALID_SIGNATURE);
        assert_string_equal(ei.detail, cases[i].detail);
    }
    memset(huge, 'A', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(verify(k, sample_id, huge, sample_body, strlen(sample_body), NULL),
                     LK_ERR_INVALID_SIGNATURE);
    assert_int_equal(verify(NULL, sample_id, sample_sig, sample_body, strlen(sample_body), NULL),
                     LK_ERR_INVALID_SIGNATURE);
    lk_sigkeys_free(k);
}

/* The PEM of a fresh public key of `type`/`param` ("EC"/"P-256", "RSA"), and with
 * a P-256 key its private half, for signing. */
static char *fresh_pem(const char *type, const char *param, EVP_PKEY **priv)
{
    EVP_PKEY *pk = strcmp(type, "EC") == 0 ? EVP_EC_gen(param) : EVP_RSA_gen(1024);
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_non_null(pk);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
    n = BIO_get_mem_data(bio, &data);
    out = lk_malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    if (priv != NULL)
        *priv = pk;
    else
        EVP_PKEY_free(pk);
    return out;
}

/* {"public_keys": [{"key_identifier": id, "key": pem}]} with the PEM's newlines escaped. */
static char *doc_of(const char *id, const char *pem)
{
    size_t cap = strlen(pem) * 2 + 256, n;
    char *d = lk_malloc(cap);

    n = (size_t)snprintf(d, cap, "{\"public_keys\":[{\"key_identifier\":\"%s\",\"key\":\"", id);
    for (const char *p = pem; *p; p++) {
        if (*p == '\n') {
            d[n++] = '\\';
            d[n++] = 'n';
        } else {
            d[n++] = *p;
        }
    }
    snprintf(d + n, cap - n, "\",\"is_current\":true}]}");
    return d;
}

static void test_a_key_pair_of_our_own_signs_and_verifies(void **state)
{
    EVP_PKEY *priv = NULL;
    char *pem = fresh_pem("EC", "P-256", &priv), *doc = doc_of("mine", pem), b64[128];
    struct lk_sigkeys *k = parse_ok(doc);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t dlen = sizeof(der);
    const char body[] = "[{\"token\":\"lk_live_x\"}]";

    (void)state;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, priv), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)body, strlen(body)), 1);
    assert_true(EVP_EncodeBlock((unsigned char *)b64, der, (int)dlen) > 0);
    assert_int_equal(verify(k, "mine", b64, body, strlen(body), NULL), LK_OK);
    assert_int_equal(verify(k, "mine", b64, body, strlen(body) - 1, NULL),
                     LK_ERR_INVALID_SIGNATURE);
    /* GitHub's signature of its sample is no signature of ours. */
    assert_int_equal(verify(k, "mine", sample_sig, sample_body, strlen(sample_body), NULL),
                     LK_ERR_INVALID_SIGNATURE);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(priv);
    lk_sigkeys_free(k);
    free(doc);
    free(pem);
}

static void test_bad_key_files_are_refused_with_why(void **state)
{
    char *p384 = fresh_pem("EC", "P-384", NULL), *rsa = fresh_pem("RSA", NULL, NULL);
    char *d384 = doc_of("k1", p384), *drsa = doc_of("k1", rsa);
    char many[LK_SIGKEYS_MAX_BYTES], big[LK_SIGKEYS_MAX_BYTES + 2];
    const struct {
        const char *text, *detail;
    } cases[] = {
        {"", "not JSON*"},
        {"{\"public_keys\": [", "not JSON*"},
        {"[]", "want an object with a \"public_keys\" array"},
        {"{\"public_keys\": {}}", "want an object with a \"public_keys\" array"},
        {"{\"public_keys\": []}", "want 1 to 32 keys"},
        {"{\"public_keys\": [1]}", "key 1 is not an object"},
        {"{\"public_keys\": [{\"key\": \"x\"}]}",
         "key 1: key_identifier must be 1 to 128 printable ASCII characters"},
        {"{\"public_keys\": [{\"key_identifier\": \"a b\", \"key\": \"x\"}]}",
         "key 1: key_identifier must be 1 to 128 printable ASCII characters"},
        {"{\"public_keys\": [{\"key_identifier\": \"\xc3\xa9\", \"key\": \"x\"}]}",
         "key 1: key_identifier must be 1 to 128 printable ASCII characters"},
        {"{\"public_keys\": [{\"key_identifier\": \"k1\", \"key\": 5}]}",
         "key k1: key must be a PEM string"},
        {"{\"public_keys\": [{\"key_identifier\": \"k1\", \"key\": \"x\", \"is_current\": 1}]}",
         "key k1: is_current must be true or false"},
        {"{\"public_keys\": [{\"key_identifier\": \"k1\", \"key\": \"x\"}]}",
         "key k1: key is not a PEM public key"},
        {d384, "key k1: key is not on the P-256 curve"},
        {drsa, "key k1: key is not an EC key (ECDSA P-256 is needed)"},
        {"{\"public_keys\": [1], \"public_keys\": [2]}", NULL}, /* jansson's own words */
        {many, "want 1 to 32 keys"},
        {big, "file larger than 65536 bytes"},
    };
    size_t n = (size_t)snprintf(many, sizeof(many), "{\"public_keys\": [");

    (void)state;
    for (int i = 0; i <= LK_SIGKEYS_MAX; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s{}", i ? "," : "");
    snprintf(many + n, sizeof(many) - n, "]}");
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_sigkeys *k = (struct lk_sigkeys *)&k;
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_sigkeys_parse(cases[i].text, strlen(cases[i].text), &k, &ei),
                         LK_ERR_INVALID_REQUEST);
        assert_null(k);
        if (cases[i].detail != NULL && cases[i].detail[strlen(cases[i].detail) - 1] == '*')
            assert_memory_equal(ei.detail, cases[i].detail, strlen(cases[i].detail) - 1);
        else if (cases[i].detail != NULL)
            assert_string_equal(ei.detail, cases[i].detail);
        else
            assert_true(ei.detail[0] != '\0');
    }
    /* The same identifier twice: the second is refused. */
    {
        char *pem = fresh_pem("EC", "P-256", NULL), *one = doc_of("k1", pem);
        size_t len = strlen(one);
        char *two = lk_malloc(2 * len + 8), *entry = strchr(one, '[') + 1;
        size_t elen = strlen(entry) - 2; /* without "]}" */
        struct lk_sigkeys *k = NULL;
        struct lk_errinfo ei;
        n = (size_t)snprintf(two, 2 * len + 8, "{\"public_keys\":[%.*s,%.*s]}", (int)elen, entry,
                             (int)elen, entry);
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_sigkeys_parse(two, n, &k, &ei), LK_ERR_INVALID_REQUEST);
        assert_string_equal(ei.detail, "key k1: key_identifier repeated");
        free(two);
        free(one);
        free(pem);
    }
    free(d384);
    free(drsa);
    free(p384);
    free(rsa);
}

static void test_hmac_of_the_generic_report(void **state)
{
    static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
    static const char body[] = "[{\"token\":\"x\"}]", ts[] = "1700000000";
    /* Python: hmac.new(secret, b"1700000000." + body, hashlib.sha256).hexdigest() */
    static const char want[] =
        "sha256=c12be10c2d9ce44ae21519f3d73d0e61ba0331335def2a7083ab534b879ad5be";
    const size_t sl = sizeof(secret) - 1, bl = sizeof(body) - 1, tl = sizeof(ts) - 1;
    const int64_t now = 1700000000;
    char sig[72], bad[72];
    const struct {
        const char *ts, *sig;
        int64_t now;
        const char *detail;
    } cases[] = {
        {"", want, now, "no timestamp"},
        {"17e8", want, now, "timestamp is not Unix seconds"},
        {"-1", want, now, "timestamp is not Unix seconds"},
        {ts, want, now + 301, "timestamp more than 300 s from this server's clock"},
        {ts, want, now - 301, "timestamp more than 300 s from this server's clock"},
        {ts, "", now, "no signature"},
        {ts, "sha1=c12be10c2d9ce44ae21519f3d73d0e61ba0331335def2a7083ab534b879ad5be", now,
         "want sha256=<64 hex digits>"},
        {ts, "sha256=c12be10c2d9ce44ae21519f3d73d0e61ba0331335def2a7083ab534b879ad5bz", now,
         "want sha256=<64 hex digits>"},
        {ts, bad, now, "signature does not match the body"},
        {"1700000001", want, now, "signature does not match the body"},
    };

    (void)state;
    lk_sig_hmac_sign(secret, sl, ts, tl, body, bl, sig);
    assert_string_equal(sig, want);
    assert_int_equal(lk_sig_hmac_check(secret, sl, ts, tl, want, 71, body, bl, now, 300, NULL),
                     LK_OK);
    assert_int_equal(lk_sig_hmac_check(secret, sl, ts, tl, want, 71, body, bl, now + 300, 300,
                                       NULL),
                     LK_OK);
    /* Upper-case hex is the same signature. */
    char upper[72];
    for (size_t i = 0; i < sizeof(upper); i++)
        upper[i] = i >= 7 && want[i] >= 'a' && want[i] <= 'f' ? (char)(want[i] - 32) : want[i];
    assert_int_equal(lk_sig_hmac_check(secret, sl, ts, tl, upper, 71, body, bl, now, 300, NULL),
                     LK_OK);
    memcpy(bad, want, sizeof(bad));
    bad[40] = bad[40] == '0' ? '1' : '0';
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        struct lk_errinfo ei;
        lk_errinfo_clear(&ei);
        assert_int_equal(lk_sig_hmac_check(secret, sl, cases[i].ts, strlen(cases[i].ts),
                                           cases[i].sig, strlen(cases[i].sig), body, bl,
                                           cases[i].now, 300, &ei),
                         LK_ERR_INVALID_SIGNATURE);
        assert_string_equal(ei.detail, cases[i].detail);
    }
    /* Another secret, or the body changed by a byte. */
    assert_int_equal(lk_sig_hmac_check((const uint8_t *)"another secret of thirty-two b..", 32,
                                       ts, tl, want, 71, body, bl, now, 300, NULL),
                     LK_ERR_INVALID_SIGNATURE);
    assert_int_equal(lk_sig_hmac_check(secret, sl, ts, tl, want, 71, "[{\"token\":\"y\"}]", bl,
                                       now, 300, NULL),
                     LK_ERR_INVALID_SIGNATURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_githubs_sample_verifies),
        cmocka_unit_test(test_every_one_byte_change_of_the_body_is_refused),
        cmocka_unit_test(test_bad_signatures_are_refused_with_why),
        cmocka_unit_test(test_a_key_pair_of_our_own_signs_and_verifies),
        cmocka_unit_test(test_bad_key_files_are_refused_with_why),
        cmocka_unit_test(test_hmac_of_the_generic_report),
    };
    return cmocka_run_group_tests_name("core/sigverify", tests, NULL, NULL);
}
