#include "core/quote.h"

#include <stdint.h>
#include <string.h>

#include "base/banned.h" /* last: bans unsafe calls below this line */

/* The length (1-4) of the well-formed UTF-8 character at s[0..len), or 0 when
 * the bytes there are not one (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t char_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    /* The second byte's range excludes overlong forms, surrogates and > U+10FFFF. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

size_t lk_utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len && (n = char_len(u + i, len - i)) != 0)
        i += n;
    return i;
}

bool lk_utf8_valid(const char *s, size_t len)
{
    return lk_utf8_valid_prefix(s, len) == len;
}

void lk_utf8_trim(char *s)
{
    s[lk_utf8_valid_prefix(s, strlen(s))] = '\0';
}

char *lk_quote(char *out, size_t outsz, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    static const char more[] = "...";
    const unsigned char *u = (const unsigned char *)in;
    size_t o = 0, i = 0, fit = 0; /* fit: where output stops if "..." must follow */
    size_t cap = outsz - 1;       /* room for output bytes */

    while (i < len) {
        char piece[16];
        size_t plen = 0, n = char_len(u + i, len - i);
        /* C1 controls are U+0080-U+009F: 0xc2 0x80-0x9f. */
        bool ctrl = n == 1 ? u[i] < 0x20 || u[i] == 0x7f
                           : n == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0;

        if (n == 0 || ctrl) {
            size_t k = n == 0 ? 1 : n;
            for (size_t j = 0; j < k; j++) {
                piece[plen++] = '\\';
                piece[plen++] = 'x';
                piece[plen++] = hex[u[i + j] >> 4];
                piece[plen++] = hex[u[i + j] & 15];
            }
            n = k;
        } else if (u[i] == '\\') {
            piece[plen++] = '\\';
            piece[plen++] = '\\';
        } else {
            memcpy(piece, in + i, n);
            plen = n;
        }
        if (o + plen > cap)
            break;
        memcpy(out + o, piece, plen);
        o += plen;
        i += n;
        if (o + sizeof(more) - 1 <= cap)
            fit = o;
    }
    if (i < len) { /* cut: back to the last piece boundary that leaves room for "..." */
        o = fit;
        memcpy(out + o, more, sizeof(more) - 1);
        o += sizeof(more) - 1;
    }
    out[o] = '\0';
    return out;
}
