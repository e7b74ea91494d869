/*
 * secret.h — the key secret format of DESIGN §2, with no I/O.
 *
 *   default: <prefix>_<env>_<body><check>
 *            prefix [a-z][a-z0-9_]{0,15}, env "live"|"test",
 *            body = 32 CSPRNG bytes in base62 (43 chars),
 *            check = base62 CRC32 of everything before it (6 chars)
 *   legacy:  64 lowercase hex characters (32 bytes)
 *
 * Parsing never touches storage: a malformed secret or a wrong checksum is
 * rejected here. The caller supplies the random bytes, so this module is pure.
 */
#ifndef LK_SECRET_H
#define LK_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LK_SECRET_BYTES 32
#define LK_SECRET_MAX 80 /* longest secret + NUL, with room to spare */
#define LK_PREFIX_MAX 16
#define LK_HINT_MAX 40

enum lk_env { LK_ENV_LIVE = 0, LK_ENV_TEST = 1 };
enum lk_key_format { LK_FORMAT_DEFAULT = 0, LK_FORMAT_HEX = 1 };

/* A parsed secret: views into the caller's string, valid while it lives. */
struct lk_secret_view {
    enum lk_key_format format;
    enum lk_env env;           /* LK_ENV_LIVE for legacy hex secrets, which carry none */
    const char *prefix;        /* NULL for legacy */
    size_t prefix_len;
    const char *body;          /* base62 body, or the whole hex string */
    size_t body_len;
};

/* Parses s[0..len). Returns LK_OK or LK_ERR_MALFORMED_KEY. */
enum lk_err lk_secret_parse(const char *s, size_t len, struct lk_secret_view *out /* OUT */);

/* lk_secret_parse in its two steps: the shape (everything but the checksum),
 * then, for a secret of that shape, the checksum. A caller that looks the
 * secret up in between may skip the second step for a secret it made itself,
 * whose checksum is right by construction. */
enum lk_err lk_secret_parse_shape(const char *s, size_t len, struct lk_secret_view *out /* OUT */);
bool lk_secret_checksum_ok(const char *s, size_t len, const struct lk_secret_view *v);

/* Why s[0..len) is not a secret lk_secret_parse takes (a short sentence, never
 * quoting it), or NULL when it is one. For `latchkey keys check-format`. */
const char *lk_secret_diagnose(const char *s, size_t len);

/* True when s[0..len) holds something shaped like a secret, or enough of one
 * to guess the rest: "_live_" or "_test_" (in any case) followed by 16 or more
 * base62 characters, or a run of LK_SECRET_SCAN_RUN or more base62 characters
 * (a whole body, or a legacy hex secret). A Git object name (40 hex) is not
 * one. Not a parse: checksums are not checked, so a changed character does
 * not hide a secret. For text from outside that must never hold one. */
#define LK_SECRET_SCAN_RUN 43
#define LK_SECRET_SCAN_AFTER_ENV 16
bool lk_secret_scan(const char *s, size_t len);

/* True when p[0..len) is a valid workspace prefix. */
bool lk_secret_prefix_valid(const char *p, size_t len);

/* Writes the secret for the given random bytes into out (NUL-terminated).
 * out must hold LK_SECRET_MAX bytes; prefix must be valid (ignored for HEX).
 * Returns the length written. */
size_t lk_secret_format(enum lk_key_format fmt, const char *prefix, enum lk_env env,
                        const uint8_t bytes[LK_SECRET_BYTES], char *out);

/* The display hint of a parsed secret: "lk_live_...Ab3x" (last 4 body characters),
 * or "...3fa9" for legacy secrets. out holds LK_HINT_MAX bytes. */
void lk_secret_hint(const struct lk_secret_view *v, char *out);

const char *lk_env_name(enum lk_env env);
/* Returns 0 and sets *out for "live"/"test", else -1. */
int lk_env_parse(const char *s, enum lk_env *out /* OUT */);

#endif
