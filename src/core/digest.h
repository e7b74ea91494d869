/*
 * digest.h — what storage keeps of a secret (DESIGN §2): SHA-256(secret), or,
 * with a pepper, HMAC-SHA256(pepper, SHA-256(secret)). Each digest records the
 * id of the pepper that made it (0 = none), so a pepper can be rotated and
 * digests imported from another system (plain SHA-256) can be peppered later.
 *
 * Thread safety: every function is safe from any thread; hashing contexts are
 * per thread and reused, which is what keeps a digest near 100 ns.
 */
#ifndef LK_DIGEST_H
#define LK_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LK_DIGEST_LEN 32

struct lk_pepper;

/* Makes a pepper from key[0..len) (len >= 16). Returns NULL if len is too short.
 * Caller frees with lk_pepper_free(). */
struct lk_pepper *lk_pepper_new(const uint8_t *key, size_t len);
void lk_pepper_free(struct lk_pepper *p);

/* Nonzero id naming this pepper in storage (derived from its key, not secret). */
uint32_t lk_pepper_id(const struct lk_pepper *p);

/* out = SHA-256(data). */
void lk_sha256(const void *data, size_t len, uint8_t out[LK_DIGEST_LEN]);

/* out = the stored digest of secret[0..len) under pepper p (NULL: plain SHA-256). */
void lk_digest_secret(const struct lk_pepper *p, const char *secret, size_t len,
                      uint8_t out[LK_DIGEST_LEN]);

/* out = HMAC-SHA256(p, sha): pepper a plain SHA-256 digest (import, rotation). */
void lk_digest_pepper(const struct lk_pepper *p, const uint8_t sha[LK_DIGEST_LEN],
                      uint8_t out[LK_DIGEST_LEN]);

/* A piece of a message to authenticate. */
struct lk_bytes {
    const void *p;
    size_t n;
};

/* out = HMAC-SHA256(key, the n parts one after another), for signatures of
 * messages built from pieces (webhooks, signed leak reports). */
void lk_hmac_sha256(const uint8_t *key, size_t keylen, const struct lk_bytes *parts, size_t n,
                    uint8_t out[LK_DIGEST_LEN]);

/* Constant-time equality of two digests. */
bool lk_digest_equal(const uint8_t a[LK_DIGEST_LEN], const uint8_t b[LK_DIGEST_LEN]);

/* 64 lowercase hex chars + NUL. */
void lk_digest_to_hex(const uint8_t d[LK_DIGEST_LEN], char out[2 * LK_DIGEST_LEN + 1]);
/* Parses exactly 64 hex chars (either case); false otherwise. */
bool lk_digest_from_hex(const char *s, size_t len, uint8_t out[LK_DIGEST_LEN]);

#endif
