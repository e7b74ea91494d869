#include "core/quota.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

int64_t lk_day_of(int64_t t)
{
    /* Floor division: times before 1970 still fall on the right day. */
    return t >= 0 ? t / LK_DAY_S : -((-t + LK_DAY_S - 1) / LK_DAY_S);
}

int64_t lk_day_left(int64_t t)
{
    return (lk_day_of(t) + 1) * LK_DAY_S - t;
}

void lk_quota_init(struct lk_quota *q)
{
    for (int i = 0; i < LK_QUOTA_DAYS; i++) {
        q->day[i] = -1;
        q->count[i] = 0;
    }
}

static int slot_of(int64_t day)
{
    int64_t m = day % LK_QUOTA_DAYS;
    return (int)(m < 0 ? m + LK_QUOTA_DAYS : m);
}

int64_t lk_quota_used(const struct lk_quota *q, int64_t today)
{
    int64_t sum = 0;

    for (int i = 0; i < LK_QUOTA_DAYS; i++)
        if (q->day[i] > today - LK_QUOTA_DAYS && q->day[i] <= today)
            sum += q->count[i];
    return sum;
}

int64_t lk_quota_day(const struct lk_quota *q, int64_t day)
{
    int s = slot_of(day);
    return q->day[s] == day ? q->count[s] : 0;
}

void lk_quota_add(struct lk_quota *q, int64_t day, int64_t n)
{
    int s = slot_of(day);

    /* A slot holds one day; a newer day takes it over, an older one is dropped. */
    if (q->day[s] != day) {
        if (q->day[s] > day)
            return;
        q->day[s] = day;
        q->count[s] = 0;
    }
    q->count[s] += n;
}
