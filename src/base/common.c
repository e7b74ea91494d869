#include "base/common.h"

#include <errno.h>
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk__assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "latchkey: assertion failed: %s (%s:%d)\n", what, file, line);
    abort();
}

size_t lk_i64_dec(char out[LK_I64_DEC_MAX], int64_t v)
{
    char buf[LK_I64_DEC_MAX];
    size_t i = sizeof(buf);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do
        buf[--i] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        buf[--i] = '-';
    memcpy(out, buf + i, sizeof(buf) - i);
    return sizeof(buf) - i;
}

int lk_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    size_t i = 0;

    if (len == 0)
        return -1;
    if (s[0] == '-' && min < 0) {
        neg = true;
        if (++i == len)
            return -1;
    }
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -1;
        int64_t r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        if (r < min || r > max)
            return -1;
        *out = r;
        return 0;
    }
    if (v > (uint64_t)INT64_MAX || (int64_t)v < min || (int64_t)v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int lk_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void *lk_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fputs("latchkey: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *lk_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fputs("latchkey: out of memory\n", stderr);
        abort();
    }
    return q;
}

void *lk_grow(void *p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 16;
    return lk_realloc(p, *cap * size);
}

void *lk_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fputs("latchkey: out of memory\n", stderr);
        abort();
    }
    return p;
}

size_t lk_strcopy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

char *lk_strndup(const char *s, size_t n)
{
    char *p = lk_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
