#include "base/clock.h"

#include <time.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

int64_t lk_clock_now_s(void)
{
    struct timespec ts;
    /* Coarse clock: a vDSO read of a few ns, ticking every few ms. Compared with
     * whole-second expiries it errs by at most a tick. */
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t lk_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
