#include "core/timefmt.h"

#include <time.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_time_format(int64_t t, char out[LK_TIME_STRLEN])
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, LK_TIME_STRLEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, LK_TIME_STRLEN, "1970-01-01T00:00:00Z");
}

static int num(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    return lk_parse_i64(s, n, min, max, out);
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm): no timegm, no TZ. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int lk_time_parse(const char *s, size_t len, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y, mo, d, h, mi, sec, off = 0, t;
    size_t i = 19;

    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    if (num(s, 4, 1970, 9999, &y) || num(s + 5, 2, 1, 12, &mo) || num(s + 8, 2, 1, 31, &d) ||
        num(s + 11, 2, 0, 23, &h) || num(s + 14, 2, 0, 59, &mi) || num(s + 17, 2, 0, 60, &sec))
        return -1;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
        return -1;
    if (s[i] == '.') {
        size_t j = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == j)
            return -1;
    }
    if (i == len - 1 && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int64_t oh, om;
        if (num(s + i + 1, 2, 0, 23, &oh) || num(s + i + 4, 2, 0, 59, &om))
            return -1;
        off = (oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1);
    } else {
        return -1;
    }
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    /* Only times lk_time_format can write back: 1970 up to the end of 9999 UTC. */
    if (t < 0 || t >= LK_TIME_MAX)
        return -1;
    *out = t;
    return 0;
}

/* The start of the refill day of month mo of year y: `day`, or the month's
 * last day when it is shorter. */
static int64_t refill_boundary(int64_t y, int64_t mo, int day)
{
    int64_t first = days_from_civil(y, mo, 1);
    int64_t next = mo == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, mo + 1, 1);
    int64_t d = day < 1 ? 1 : day;

    if (d > next - first)
        d = next - first;
    return (first + d - 1) * 86400;
}

int64_t lk_refill_period(bool monthly, int day, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    int64_t y, mo, m;

    if (!monthly)
        return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    if (gmtime_r(&tt, &tm) == NULL)
        return 0;
    y = (int64_t)tm.tm_year + 1900;
    mo = (int64_t)tm.tm_mon + 1;
    m = (y - 1970) * 12 + (mo - 1);
    return t >= refill_boundary(y, mo, day) ? m : m - 1;
}
