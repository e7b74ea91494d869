/*
 * base62.h — base62 with the alphabet 0-9A-Za-z, most significant digit first,
 * fixed width (left-padded with '0'), as used by key secrets (DESIGN §2).
 */
#ifndef LK_BASE62_H
#define LK_BASE62_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters needed for 32 bytes (62^43 > 2^256) and for a CRC32 (62^6 > 2^32). */
#define LK_BASE62_LEN_256 43
#define LK_BASE62_LEN_U32 6

/* Encodes the big-endian number in in[0..n) into exactly `width` characters of out
 * (no NUL). Returns false if the number does not fit in `width` digits. */
bool lk_base62_encode(const uint8_t *in, size_t n, char *out, size_t width);

/* Encodes v into exactly 6 characters of out (no NUL). */
void lk_base62_encode_u32(uint32_t v, char *out);

/* Decodes exactly 6 characters; false on a character outside the alphabet or a
 * value above UINT32_MAX. */
bool lk_base62_decode_u32(const char *in, uint32_t *out /* OUT */);

/* True when c is in the alphabet. */
bool lk_base62_is_digit(char c);

/* True when every one of s[0..len) is in the alphabet. */
bool lk_base62_all_digits(const char *s, size_t len);

#endif
