#include "core/perm.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static bool seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
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
