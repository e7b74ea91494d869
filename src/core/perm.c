#include "core/perm.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* The bytes a segment may hold, as a table: every check validates its query. */
#define SEG_LOWER                                                                          \
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, \
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, \
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, \
    ['y'] = 1, ['z'] = 1
static const bool seg_chars[256] = {
    SEG_LOWER, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['_'] = 1, ['.'] = 1, ['-'] = 1,
};

static bool seg_char(char c)
{
    return seg_chars[(unsigned char)c];
}

bool lk_perm_valid(const char *p, size_t len)
{
    size_t seg_start = 0;

    if (len == 0 || len > LK_PERM_MAX_LEN)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == ':') {
            size_t n = i - seg_start;
            if (n == 0)
                return false;
            if (n > 1 || p[seg_start] != '*') {
                for (size_t j = seg_start; j < i; j++)
                    if (!seg_char(p[j]))
                        return false;
            }
            seg_start = i + 1;
        }
    }
    return true;
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
    /* Walk both segment by segment; the counts must agree. */
    for (;;) {
        size_t ge = gi, ne = ni;
        while (ge < glen && granted[ge] != ':')
            ge++;
        while (ne < nlen && needed[ne] != ':')
            ne++;
        bool wild = ge - gi == 1 && granted[gi] == '*';
        if (!wild && (ge - gi != ne - ni || memcmp(granted + gi, needed + ni, ge - gi) != 0))
            return false;
        if (ge == glen || ne == nlen)
            return ge == glen && ne == nlen;
        gi = ge + 1;
        ni = ne + 1;
    }
}
