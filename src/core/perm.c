#include "core/perm.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* What each byte is to a permission, as a table: every check validates its
 * query. SEG: may be in a segment; a segment that is exactly "*" is a wildcard. */
enum { BAD = 0, SEG = 1, COLON = 2, STAR = 3 };
#define SEG_LOWER                                                                          \
    ['a'] = SEG, ['b'] = SEG, ['c'] = SEG, ['d'] = SEG, ['e'] = SEG, ['f'] = SEG,          \
    ['g'] = SEG, ['h'] = SEG, ['i'] = SEG, ['j'] = SEG, ['k'] = SEG, ['l'] = SEG,          \
    ['m'] = SEG, ['n'] = SEG, ['o'] = SEG, ['p'] = SEG, ['q'] = SEG, ['r'] = SEG,          \
    ['s'] = SEG, ['t'] = SEG, ['u'] = SEG, ['v'] = SEG, ['w'] = SEG, ['x'] = SEG,          \
    ['y'] = SEG, ['z'] = SEG
static const unsigned char perm_chars[256] = {
    SEG_LOWER, ['0'] = SEG, ['1'] = SEG, ['2'] = SEG, ['3'] = SEG, ['4'] = SEG, ['5'] = SEG,
    ['6'] = SEG, ['7'] = SEG, ['8'] = SEG, ['9'] = SEG, ['_'] = SEG, ['.'] = SEG, ['-'] = SEG,
    [':'] = COLON, ['*'] = STAR,
};

bool lk_perm_valid(const char *p, size_t len)
{
    size_t n = 0; /* bytes of the current segment */
    bool star = false;

    if (len == 0 || len > LK_PERM_MAX_LEN)
        return false;
    /* One pass: a segment is non-empty, and a '*' in it must be all of it. */
    for (size_t i = 0; i < len; i++) {
        unsigned char t = perm_chars[(unsigned char)p[i]];
        if (t == SEG) {
            n++;
        } else if (t == STAR) {
            star = true;
            n++;
        } else if (t == COLON && n > 0 && !(star && n > 1)) {
            n = 0;
            star = false;
        } else {
            return false;
        }
    }
    return n > 0 && !(star && n > 1);
}

static bool is_all(const char *p, size_t len)
{
    return (len == 1 && p[0] == '*') || (len == 3 && memcmp(p, "all", 3) == 0);
}

bool lk_perm_covers(const char *granted, size_t glen, const char *needed, size_t nlen)
{
    size_t gi = 0, ni = 0;

    if (is_all(granted, glen))
        return true;
    /* Walk both segment by segment, byte by byte (segments are a few bytes: a
     * call to memcmp per segment cost more than the compare); the counts must
     * agree. */
    for (;;) {
        if (gi < glen && granted[gi] == '*' && (gi + 1 == glen || granted[gi + 1] == ':')) {
            gi++; /* a wildcard segment: any one needed segment */
            while (ni < nlen && needed[ni] != ':')
                ni++;
        } else {
            while (gi < glen && ni < nlen && granted[gi] != ':' && granted[gi] == needed[ni]) {
                gi++;
                ni++;
            }
            if (!(gi == glen || granted[gi] == ':') || !(ni == nlen || needed[ni] == ':'))
                return false;
        }
        if (gi == glen || ni == nlen)
            return gi == glen && ni == nlen;
        gi++;
        ni++;
    }
}
