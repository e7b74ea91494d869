/*
 * sigverify.h — checking who signed a leak report: GitHub's secret scanning
 * signatures (ECDSA on P-256 with SHA-256, DER, base64) against a set of public
 * keys read from GitHub's `public_keys` JSON document, and the HMAC-SHA256
 * signature of the generic report. Pure: the caller reads files and headers;
 * this parses their text and checks bytes. Always over the raw body, exactly
 * as received: a body parsed and written again would not be the bytes signed.
 *
 * Thread safety: a parsed key set is read-only; any number of threads may
 * verify against one set at once (OpenSSL's EVP_PKEY is shared read-only).
 */
#ifndef LK_SIGVERIFY_H
#define LK_SIGVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LK_SIGKEYS_MAX_BYTES (64 * 1024) /* a public keys file larger than this is refused */
#define LK_SIGKEYS_MAX 32                /* keys in one file */
#define LK_SIGKEY_ID_MAX 128             /* bytes of a key_identifier */
#define LK_SIGKEY_PEM_MAX 4096           /* bytes of one key's PEM */
#define LK_SIG_B64_MAX 256    /* base64 of a DER P-256 signature is at most 96 characters */
#define LK_HMAC_SECRET_MIN 32 /* bytes of a generic report's shared secret */
#define LK_HMAC_SECRET_MAX 1024

/* A set of public keys, each named by its key_identifier. */
struct lk_sigkeys;

/* Parses a document {"public_keys": [{"key_identifier", "key", "is_current"}]}
 * (members it does not know are ignored, as GitHub may add some) from
 * text[0..len). Every key must be a PEM "PUBLIC KEY" of an EC key on P-256;
 * identifiers are 1..LK_SIGKEY_ID_MAX printable ASCII bytes, unique. At least
 * one key. Returns LK_OK and *out (caller frees with lk_sigkeys_free()), or
 * LK_ERR_INVALID_REQUEST with ei saying which key and why (quoted input is
 * bounded and valid UTF-8). */
enum lk_err lk_sigkeys_parse(const char *text, size_t len, struct lk_sigkeys **out /* OUT */,
                             struct lk_errinfo *ei);

/* Accepts NULL. */
void lk_sigkeys_free(struct lk_sigkeys *k);

/* The number of keys, and how many are marked is_current. */
size_t lk_sigkeys_count(const struct lk_sigkeys *k);
size_t lk_sigkeys_current(const struct lk_sigkeys *k);

/* Checks that sig_b64 (standard base64 of a DER ECDSA signature) is the
 * signature of body[0..body_len) by the key named id. Returns LK_OK, or
 * LK_ERR_INVALID_SIGNATURE with ei saying which of: no key of that name, a
 * signature that is not base64 or not DER, a signature that does not match. A
 * key not marked is_current still verifies (GitHub rotates keys by adding the
 * new one first). Never quotes the signature. */
enum lk_err lk_sigkeys_verify(const struct lk_sigkeys *k, const char *id, size_t id_len,
                              const char *sig_b64, size_t sig_len, const void *body,
                              size_t body_len, struct lk_errinfo *ei);

/* The generic report's signature: sig is "sha256=<64 hex digits>", the
 * HMAC-SHA256 under secret of "<timestamp>.<body>", where timestamp is the
 * decimal Unix time of the X-Latchkey-Timestamp header, within max_skew_s of
 * now. Compared in constant time. Returns LK_OK or LK_ERR_INVALID_SIGNATURE
 * (ei says which part is wrong, never quoting the signature). */
enum lk_err lk_sig_hmac_check(const uint8_t *secret, size_t secret_len, const char *ts,
                              size_t ts_len, const char *sig, size_t sig_len, const void *body,
                              size_t body_len, int64_t now, int64_t max_skew_s,
                              struct lk_errinfo *ei);

/* Writes "sha256=<hex>" of the HMAC above into out (72 bytes with the NUL), for
 * tests and scanners' reference. */
void lk_sig_hmac_sign(const uint8_t *secret, size_t secret_len, const char *ts, size_t ts_len,
                      const void *body, size_t body_len, char out[72] /* OUT */);

#endif
