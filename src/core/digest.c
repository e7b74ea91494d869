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

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

/* SHA-256 with the CPU's SHA extensions, for the digest of every verification:
 * a secret is one or two blocks, and OpenSSL's SHA256_Init/Update/Final around
 * the same instructions (a copy into its context, padding in place, a cleanse
 * of the context) cost a quarter of the hash itself. The message schedule and
 * rounds follow Intel's reference for these instructions; test_digest.c holds
 * the result to OpenSSL's at every length up to three blocks. */
static const uint32_t sha_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

/* state: ABEF and CDGH, as the round instruction takes them. */
SHANI static void shani_blocks(__m128i st[2], const uint8_t *p, size_t blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i s0 = st[0], s1 = st[1];

    for (; blocks > 0; blocks--, p += 64) {
        __m128i m[4], save0 = s0, save1 = s1;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __m128i w;
            if (g < 4)
                m[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            w = _mm_add_epi32(m[g & 3], _mm_load_si128((const __m128i *)(sha_k + 4 * g)));
            s1 = _mm_sha256rnds2_epu32(s1, s0, w);
            if (g >= 3 && g < 15) {
                __m128i t = _mm_alignr_epi8(m[g & 3], m[(g - 1) & 3], 4);
                m[(g + 1) & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(m[(g + 1) & 3], t), m[g & 3]);
            }
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(w, 0x0e));
            if (g >= 1 && g < 13)
                m[(g - 1) & 3] = _mm_sha256msg1_epu32(m[(g - 1) & 3], m[g & 3]);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    st[0] = s0;
    st[1] = s1;
}

SHANI static void sha256_shani(const uint8_t *p, size_t len, uint8_t out[LK_DIGEST_LEN])
{
    /* The initial hash as ABEF, CDGH (lanes low to high: F E B A, H G D C). */
    __m128i st[2] = {_mm_set_epi32(0x6a09e667, (int)0xbb67ae85, 0x510e527f, (int)0x9b05688c),
                     _mm_set_epi32(0x3c6ef372, (int)0xa54ff53a, 0x1f83d9ab, 0x5be0cd19)};
    uint8_t tail[128];
    size_t full = len / 64, rest = len % 64, n = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    __m128i t, abcd, efgh;

    shani_blocks(st, p, full);
    if (rest > 0)
        memcpy(tail, p + full * 64, rest);
    tail[rest] = 0x80;
    memset(tail + rest + 1, 0, n - rest - 9);
    bits = __builtin_bswap64(bits); /* the length ends the padding, big-endian */
    memcpy(tail + n - 8, &bits, 8);
    shani_blocks(st, tail, n / 64);
    explicit_bzero(tail, rest); /* the secret's last bytes; the rest is padding */
    /* Back to A B C D, E F G H, each word big-endian. */
    t = _mm_shuffle_epi32(st[0], 0x1b); /* lanes A B E F */
    efgh = _mm_shuffle_epi32(st[1], 0xb1); /* lanes G H C D */
    abcd = _mm_blend_epi16(t, efgh, 0xf0);
    efgh = _mm_alignr_epi8(efgh, t, 8);
    {
        const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
        _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(abcd, bswap));
        _mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(efgh, bswap));
    }
}

/* 1: the CPU has SHA-NI (and the SSE it needs); -1: it has not; 0: not asked yet. */
static _Atomic int have_shani;

static bool use_shani(void)
{
    int v = atomic_load_explicit(&have_shani, memory_order_relaxed);
    unsigned a, b, c, d;

    if (v == 0) {
        bool yes = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) && (c & bit_SSSE3) &&
                   __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
        v = yes ? 1 : -1;
        atomic_store_explicit(&have_shani, v, memory_order_relaxed);
    }
    return v > 0;
}
#else
static bool use_shani(void)
{
    return false;
}
static void sha256_shani(const uint8_t *p, size_t len, uint8_t out[LK_DIGEST_LEN])
{
    (void)p, (void)len, (void)out;
}
#endif

static void sha256_openssl(const void *data, size_t len, uint8_t out[LK_DIGEST_LEN])
{
    SHA256_CTX ctx;

    lk_assert(SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, data, len) == 1 &&
              SHA256_Final(out, &ctx) == 1);
    /* It held the secret's last block. explicit_bzero: glibc's memset the
     * compiler may not drop, a few stores where OPENSSL_cleanse's loop costs
     * more on every verification. */
    explicit_bzero(&ctx, sizeof(ctx));
}

void lk_sha256(const void *data, size_t len, uint8_t out[LK_DIGEST_LEN])
{
    if (use_shani())
        sha256_shani(data, len, out);
    else
        sha256_openssl(data, len, out);
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
