#include "core/sigverify.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/common.h"
#include "core/digest.h"
#include "core/quote.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define DER_SIG_MAX 80 /* a DER ECDSA P-256 signature is at most 72 bytes */

struct sigkey {
    char id[LK_SIGKEY_ID_MAX + 1];
    size_t id_len;
    EVP_PKEY *pkey;
    bool current;
};

struct lk_sigkeys {
    size_t n, current;
    struct sigkey keys[LK_SIGKEYS_MAX];
};

void lk_sigkeys_free(struct lk_sigkeys *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++)
        EVP_PKEY_free(k->keys[i].pkey);
    free(k);
}

size_t lk_sigkeys_count(const struct lk_sigkeys *k)
{
    return k->n;
}

size_t lk_sigkeys_current(const struct lk_sigkeys *k)
{
    return k->current;
}

static bool printable_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* The PEM of one key, which must be an EC key on P-256: GitHub signs with
 * ECDSA-NIST-P256V1-SHA256, and a key of another curve or type in the file is a
 * mistake to report, not one to verify with. NULL and why otherwise. */
static EVP_PKEY *p256_of(const char *pem, size_t len, const char **why)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    char group[64] = "";
    size_t glen = 0;

    BIO_free(bio);
    *why = NULL;
    if (pk == NULL)
        *why = "key is not a PEM public key";
    else if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC)
        *why = "key is not an EC key (ECDSA P-256 is needed)";
    else if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                            &glen) != 1 ||
             strcmp(group, "prime256v1") != 0)
        *why = "key is not on the P-256 curve";
    ERR_clear_error(); /* the thread's error queue is not ours to leave full */
    if (*why != NULL) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

enum lk_err lk_sigkeys_parse(const char *text, size_t len, struct lk_sigkeys **out,
                             struct lk_errinfo *ei)
{
    struct lk_sigkeys *k = NULL;
    json_t *root = NULL, *arr;
    json_error_t jerr;
    enum lk_err e = LK_ERR_INVALID_REQUEST;
    size_t i;

    *out = NULL;
    if (len > LK_SIGKEYS_MAX_BYTES) {
        lk_errinfo_set(ei, e, "public_keys", "file larger than %d bytes", LK_SIGKEYS_MAX_BYTES);
        goto out;
    }
    if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        /* jansson's text may quote the file: only the position is kept. */
        lk_errinfo_set(ei, e, "public_keys", "not JSON (line %d, column %d)", jerr.line,
                       jerr.column);
        goto out;
    }
    if (!json_is_object(root) || !json_is_array(arr = json_object_get(root, "public_keys"))) {
        lk_errinfo_set(ei, e, "public_keys", "want an object with a \"public_keys\" array");
        goto out;
    }
    if (json_array_size(arr) == 0 || json_array_size(arr) > LK_SIGKEYS_MAX) {
        lk_errinfo_set(ei, e, "public_keys", "want 1 to %d keys", LK_SIGKEYS_MAX);
        goto out;
    }
    k = lk_calloc(1, sizeof(*k));
    for (i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i), *id, *pem, *cur;
        struct sigkey *sk = &k->keys[k->n];
        const char *why = NULL;
        char q[LK_QUOTE_SIZE];

        if (!json_is_object(o)) {
            lk_errinfo_set(ei, e, "public_keys", "key %zu is not an object", i + 1);
            goto out;
        }
        id = json_object_get(o, "key_identifier");
        pem = json_object_get(o, "key");
        cur = json_object_get(o, "is_current");
        if (!json_is_string(id) || json_string_length(id) == 0 ||
            json_string_length(id) > LK_SIGKEY_ID_MAX ||
            !printable_ascii(json_string_value(id), json_string_length(id))) {
            lk_errinfo_set(ei, e, "public_keys",
                           "key %zu: key_identifier must be 1 to %d printable ASCII characters",
                           i + 1, LK_SIGKEY_ID_MAX);
            goto out;
        }
        lk_quote(q, sizeof(q), json_string_value(id), json_string_length(id));
        if (!json_is_string(pem) || json_string_length(pem) > LK_SIGKEY_PEM_MAX) {
            lk_errinfo_set(ei, e, "public_keys", "key %s: key must be a PEM string", q);
            goto out;
        }
        if (cur != NULL && !json_is_boolean(cur)) {
            lk_errinfo_set(ei, e, "public_keys", "key %s: is_current must be true or false", q);
            goto out;
        }
        for (size_t j = 0; j < k->n; j++) {
            if (k->keys[j].id_len == json_string_length(id) &&
                memcmp(k->keys[j].id, json_string_value(id), k->keys[j].id_len) == 0) {
                lk_errinfo_set(ei, e, "public_keys", "key %s: key_identifier repeated", q);
                goto out;
            }
        }
        if ((sk->pkey = p256_of(json_string_value(pem), json_string_length(pem), &why)) == NULL) {
            lk_errinfo_set(ei, e, "public_keys", "key %s: %s", q, why);
            goto out;
        }
        sk->id_len = json_string_length(id);
        memcpy(sk->id, json_string_value(id), sk->id_len);
        sk->current = json_is_true(cur);
        k->current += sk->current;
        k->n++;
    }
    *out = k;
    k = NULL;
    e = LK_OK;
out:
    lk_sigkeys_free(k);
    json_decref(root);
    return e;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict standard base64 (RFC 4648 §4, padded) of s[0..len) into out
 * (room for cap bytes). Returns the length decoded, or -1. */
static long b64_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0, pad = 0;

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    if (s[len - 1] == '=')
        pad = s[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = b64_value((unsigned char)s[i + j]);
            if (d < 0 && !(i + 4 == len && j >= 4 - pad))
                return -1;
            v = v << 6 | (uint32_t)(d < 0 ? 0 : d);
        }
        out[n++] = (uint8_t)(v >> 16);
        if (i + 4 < len || pad < 2)
            out[n++] = (uint8_t)(v >> 8);
        if (i + 4 < len || pad < 1)
            out[n++] = (uint8_t)v;
    }
    return (long)n;
}

enum lk_err lk_sigkeys_verify(const struct lk_sigkeys *k, const char *id, size_t id_len,
                              const char *sig_b64, size_t sig_len, const void *body,
                              size_t body_len, struct lk_errinfo *ei)
{
    const struct sigkey *sk = NULL;
    uint8_t der[DER_SIG_MAX];
    EVP_MD_CTX *ctx = NULL;
    enum lk_err e = LK_ERR_INVALID_SIGNATURE;
    long n;

    for (size_t i = 0; k != NULL && i < k->n && sk == NULL; i++)
        if (k->keys[i].id_len == id_len && memcmp(k->keys[i].id, id, id_len) == 0)
            sk = &k->keys[i];
    if (sk == NULL) {
        lk_errinfo_set(ei, e, "Github-Public-Key-Identifier",
                       id_len == 0 ? "no key identifier" : "no public key of this identifier");
        goto out;
    }
    if (sig_len == 0 || sig_len > LK_SIG_B64_MAX ||
        (n = b64_decode(sig_b64, sig_len, der, sizeof(der))) <= 0) {
        lk_errinfo_set(ei, e, "Github-Public-Key-Signature",
                       sig_len == 0 ? "no signature"
                                    : "signature is not base64 of a DER signature");
        goto out;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, sk->pkey) != 1) {
        lk_errinfo_set(ei, LK_ERR_INTERNAL, "Github-Public-Key-Signature", "cannot verify");
        e = LK_ERR_INTERNAL;
        goto out;
    }
    /* 1 is a match; 0 a mismatch; below 0 a signature that is not DER. */
    if (EVP_DigestVerify(ctx, der, (size_t)n, body, body_len) != 1) {
        lk_errinfo_set(ei, e, "Github-Public-Key-Signature", "signature does not match the body");
        goto out;
    }
    e = LK_OK;
out:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    OPENSSL_cleanse(der, sizeof(der));
    return e;
}

static void hmac_of(const uint8_t *secret, size_t secret_len, const char *ts, size_t ts_len,
                    const void *body, size_t body_len, uint8_t mac[32])
{
    lk_hmac_sha256(secret, secret_len,
                   (struct lk_bytes[]){{ts, ts_len}, {".", 1}, {body, body_len}}, 3, mac);
}

void lk_sig_hmac_sign(const uint8_t *secret, size_t secret_len, const char *ts, size_t ts_len,
                      const void *body, size_t body_len, char out[72])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t mac[32];

    hmac_of(secret, secret_len, ts, ts_len, body, body_len, mac);
    memcpy(out, "sha256=", 7);
    for (size_t i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[71] = '\0';
}

enum lk_err lk_sig_hmac_check(const uint8_t *secret, size_t secret_len, const char *ts,
                              size_t ts_len, const char *sig, size_t sig_len, const void *body,
                              size_t body_len, int64_t now, int64_t max_skew_s,
                              struct lk_errinfo *ei)
{
    uint8_t want[32], got[32];
    int64_t t;
    enum lk_err e = LK_ERR_INVALID_SIGNATURE;

    if (ts_len == 0 || lk_parse_i64(ts, ts_len, 0, INT64_C(1) << 40, &t) != 0)
        return lk_errinfo_set(ei, e, "X-Latchkey-Timestamp",
                              ts_len == 0 ? "no timestamp" : "timestamp is not Unix seconds");
    if (t < now - max_skew_s || t > now + max_skew_s)
        return lk_errinfo_set(ei, e, "X-Latchkey-Timestamp",
                              "timestamp more than %lld s from this server's clock",
                              (long long)max_skew_s);
    if (sig_len != 71 || memcmp(sig, "sha256=", 7) != 0)
        return lk_errinfo_set(ei, e, "X-Latchkey-Signature",
                              sig_len == 0 ? "no signature" : "want sha256=<64 hex digits>");
    for (size_t i = 0; i < 32; i++) {
        int hi = lk_hex_value(sig[7 + 2 * i]), lo = lk_hex_value(sig[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return lk_errinfo_set(ei, e, "X-Latchkey-Signature", "want sha256=<64 hex digits>");
        got[i] = (uint8_t)(hi << 4 | lo);
    }
    hmac_of(secret, secret_len, ts, ts_len, body, body_len, want);
    if (CRYPTO_memcmp(want, got, sizeof(want)) != 0)
        e = lk_errinfo_set(ei, e, "X-Latchkey-Signature", "signature does not match the body");
    else
        e = LK_OK;
    OPENSSL_cleanse(want, sizeof(want));
    return e;
}
