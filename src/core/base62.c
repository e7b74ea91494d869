#include "core/base62.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

bool lk_base62_is_digit(char c)
{
    return digit_value(c) >= 0;
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
