#include "core/base62.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Digit values by byte, -1 outside the alphabet: one load per character on the
 * verification path instead of a chain of range tests. */
static const signed char values[256] = {
#define R10(b) b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9
#define NO16 -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
    NO16, NO16, NO16,
    R10(0), -1, -1, -1, -1, -1, -1,                              /* '0'..'9' at 0x30 */
    -1, R10(10), R10(20), 30, 31, 32, 33, 34, 35, -1, -1, -1, -1, -1, /* 'A'..'Z' at 0x41 */
    -1, R10(36), R10(46), 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, /* 'a'..'z' at 0x61 */
    NO16, NO16, NO16, NO16, NO16, NO16, NO16, NO16,
#undef R10
#undef NO16
};

static int digit_value(char c)
{
    return values[(unsigned char)c];
}

bool lk_base62_is_digit(char c)
{
    return values[(unsigned char)c] >= 0;
}

bool lk_base62_all_digits(const char *s, size_t len)
{
    int bad = 0;
    for (size_t i = 0; i < len; i++)
        bad |= values[(unsigned char)s[i]];
    return bad >= 0;
}

bool lk_base62_encode(const uint8_t *in, size_t n, char *out, size_t width)
{
    uint8_t num[64];
    size_t i, w;

    if (n > sizeof(num))
        return false;
    memcpy(num, in, n);
    /* Schoolbook division of the big-endian number by 62, one digit per pass. */
    for (w = width; w > 0; w--) {
        unsigned rem = 0;
        for (i = 0; i < n; i++) {
            unsigned cur = (rem << 8) | num[i];
            num[i] = (uint8_t)(cur / 62);
            rem = cur % 62;
        }
        out[w - 1] = alphabet[rem];
    }
    for (i = 0; i < n; i++)
        if (num[i] != 0)
            return false;
    return true;
}

void lk_base62_encode_u32(uint32_t v, char *out)
{
    for (int i = LK_BASE62_LEN_U32 - 1; i >= 0; i--) {
        out[i] = alphabet[v % 62];
        v /= 62;
    }
}

bool lk_base62_decode_u32(const char *in, uint32_t *out)
{
    uint64_t v = 0;

    for (int i = 0; i < LK_BASE62_LEN_U32; i++) {
        int d = digit_value(in[i]);
        if (d < 0)
            return false;
        v = v * 62 + (uint64_t)d;
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}
