#include "core/base62.h"

#include "base/common.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
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

#ifdef __SSE2__
/* Lanes of v outside '0'-'9', 'A'-'Z' and 'a'-'z', as a bit mask. */
static unsigned not_digits16(__m128i v)
{
    /* Signed compares: bytes >= 0x80 are negative, so below every range. */
    __m128i dig = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    __m128i low = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* 'A'-'Z' onto 'a'-'z' */
    __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(low, _mm_set1_epi8('a' - 1)),
                                  _mm_cmplt_epi8(low, _mm_set1_epi8('z' + 1)));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(dig, alpha)) ^ 0xffffu;
}
#endif

bool lk_base62_all_digits(const char *s, size_t len)
{
    int bad = 0;
    size_t i = 0;

#ifdef __SSE2__
    /* Sixteen bytes a step (every secret's body is checked on every
     * verification); the last block overlaps the one before it. */
    if (len >= 16) {
        unsigned m = 0;
        for (; i + 16 <= len; i += 16)
            m |= not_digits16(_mm_loadu_si128((const __m128i *)(const void *)(s + i)));
        if (i < len)
            m |= not_digits16(_mm_loadu_si128((const __m128i *)(const void *)(s + len - 16)));
        return m == 0;
    }
#endif
    for (; i < len; i++)
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
