/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose
 * per-call dispatch costs more than the hash itself on a short secret; the
 * low-level calls run the same assembly (SHA-NI where the CPU has it). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core/digest.h"

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct lk_pepper {
    uint8_t *key;
    size_t len;
    uint32_t id;
    uint64_t generation; /* unique per pepper ever made: addresses get reused */
};

static _Atomic uint64_t next_generation = 1;

/* Per-thread reusable HMAC contexts: reuse avoids a fetch and an allocation
 * per digest. */
struct tl_ctx {
    EVP_MAC_CTX *mac;
    uint64_t mac_for; /* generation of the pepper t->mac is keyed with */
};

static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_mac;

static void tl_free(void *arg)
{
    struct tl_ctx *t = arg;
    EVP_MAC_CTX_free(t->mac);
    free(t);
}

static void tl_init(void)
{
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    lk_assert(hmac_mac != NULL);
    lk_assert(pthread_key_create(&tl_key, tl_free) == 0);
}

static struct tl_ctx *tl_get(void)
{
    struct tl_ctx *t;

    pthread_once(&tl_once, tl_init);
    if ((t = pthread_getspecific(tl_key)) == NULL) {
        t = lk_calloc(1, sizeof(*t));
        pthread_setspecific(tl_key, t);
    }
    return t;
}

struct lk_pepper *lk_pepper_new(const uint8_t *key, size_t len)
{
    struct lk_pepper *p;
    uint8_t h[LK_DIGEST_LEN];

    if (len < 16)
        return NULL;
    p = lk_calloc(1, sizeof(*p));
    p->key = lk_malloc(len);
    memcpy(p->key, key, len);
    p->len = len;
    p->generation = atomic_fetch_add(&next_generation, 1);
    /* The id is a hash of a hash: it names the pepper without revealing it. */
    lk_sha256(key, len, h);
    lk_sha256(h, sizeof(h), h);
    p->id = ((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]) | 1u;
    OPENSSL_cleanse(h, sizeof(h));
    return p;
}

void lk_pepper_free(struct lk_pepper *p)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p->key, p->len);
    free(p->key);
    free(p);
}

uint32_t lk_pepper_id(const struct lk_pepper *p)
{
    return p ? p->id : 0;
}

void lk_sha256(const void *data, size_t len, uint8_t out[LK_DIGEST_LEN])
{
    SHA256_CTX ctx;

    lk_assert(SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, data, len) == 1 &&
              SHA256_Final(out, &ctx) == 1);
    /* It held the secret's last block. explicit_bzero: glibc's memset the
     * compiler may not drop, a few stores where OPENSSL_cleanse's loop costs
     * more on every verification. */
    explicit_bzero(&ctx, sizeof(ctx));
}

void lk_digest_pepper(const struct lk_pepper *p, const uint8_t sha[LK_DIGEST_LEN],
                      uint8_t out[LK_DIGEST_LEN])
{
    struct tl_ctx *t = tl_get();
    size_t n = 0;

    if (t->mac_for != p->generation) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
            OSSL_PARAM_construct_end(),
        };
        EVP_MAC_CTX_free(t->mac);
        t->mac = EVP_MAC_CTX_new(hmac_mac);
        lk_assert(t->mac != NULL);
        lk_assert(EVP_MAC_init(t->mac, p->key, p->len, params) == 1);
        t->mac_for = p->generation;
    } else {
        /* A NULL key re-initialises with the key already set. */
        lk_assert(EVP_MAC_init(t->mac, NULL, 0, NULL) == 1);
    }
    lk_assert(EVP_MAC_update(t->mac, sha, LK_DIGEST_LEN) == 1);
    lk_assert(EVP_MAC_final(t->mac, out, &n, LK_DIGEST_LEN) == 1 && n == LK_DIGEST_LEN);
}

void lk_hmac_sha256(const uint8_t *key, size_t keylen, const struct lk_bytes *parts, size_t n,
                    uint8_t out[LK_DIGEST_LEN])
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *c;
    size_t outlen = 0;

    pthread_once(&tl_once, tl_init);
    c = EVP_MAC_CTX_new(hmac_mac);
    /* Failures here are the library's (memory), never the input's: any key
     * length and any message authenticate. A NULL key would ask OpenSSL for a
     * key set before, of which there is none: an empty key is "". */
    lk_assert(c != NULL &&
              EVP_MAC_init(c, key != NULL ? key : (const uint8_t *)"", keylen, params) == 1);
    for (size_t i = 0; i < n; i++)
        lk_assert(EVP_MAC_update(c, parts[i].p, parts[i].n) == 1);
    lk_assert(EVP_MAC_final(c, out, &outlen, LK_DIGEST_LEN) == 1 && outlen == LK_DIGEST_LEN);
    EVP_MAC_CTX_free(c);
}

void lk_digest_secret(const struct lk_pepper *p, const char *secret, size_t len,
                      uint8_t out[LK_DIGEST_LEN])
{
    uint8_t sha[LK_DIGEST_LEN];

    lk_sha256(secret, len, p ? sha : out);
    if (p != NULL) {
        lk_digest_pepper(p, sha, out);
        OPENSSL_cleanse(sha, sizeof(sha));
    }
}

bool lk_digest_equal(const uint8_t a[LK_DIGEST_LEN], const uint8_t b[LK_DIGEST_LEN])
{
    return CRYPTO_memcmp(a, b, LK_DIGEST_LEN) == 0;
}

void lk_digest_to_hex(const uint8_t d[LK_DIGEST_LEN], char out[2 * LK_DIGEST_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < LK_DIGEST_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * LK_DIGEST_LEN] = '\0';
}


bool lk_digest_from_hex(const char *s, size_t len, uint8_t out[LK_DIGEST_LEN])
{
    if (len != 2 * LK_DIGEST_LEN)
        return false;
    for (size_t i = 0; i < LK_DIGEST_LEN; i++) {
        int hi = lk_hex_value(s[2 * i]), lo = lk_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}
