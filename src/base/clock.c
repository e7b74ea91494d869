#include "base/clock.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define OFFSET_REREAD_MS 100

/* The test clock: LATCHKEY_CLOCK_OFFSET_FILE names a file holding seconds to add
 * to the wall clock, so tests can cross UTC days without waiting for them. */
static const char *offset_file;
static _Atomic int64_t offset_s;
static _Atomic int64_t offset_read_ms;

void lk_clock_init(void)
{
    const char *f = getenv("LATCHKEY_CLOCK_OFFSET_FILE");
    offset_file = f != NULL && f[0] != '\0' ? f : NULL;
}

int64_t lk_clock_mono_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t offset_now(void)
{
    int64_t now = lk_clock_mono_coarse_ms(),
            last = atomic_load_explicit(&offset_read_ms, memory_order_relaxed);
    char buf[32];
    int64_t v = 0;
    ssize_t n;
    int fd;

    if (now - last < OFFSET_REREAD_MS ||
        !atomic_compare_exchange_strong(&offset_read_ms, &last, now))
        return atomic_load_explicit(&offset_s, memory_order_relaxed);
    if ((fd = open(offset_file, O_RDONLY | O_CLOEXEC)) >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        size_t len = n > 0 ? (size_t)n : 0;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
            len--;
        if (len == 0 || lk_parse_i64(buf, len, -(INT64_C(1) << 40), INT64_C(1) << 40, &v) != 0)
            v = 0;
    }
    atomic_store(&offset_s, v);
    return v;
}

int64_t lk_clock_now_s(void)
{
    struct timespec ts;
    /* Coarse clock: a vDSO read of a few ns, ticking every few ms. Compared with
     * whole-second expiries it errs by at most a tick. */
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec + (offset_file != NULL ? offset_now() : 0);
}

int64_t lk_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
           (offset_file != NULL ? offset_now() * 1000 : 0);
}

struct timespec lk_clock_after_ms(clockid_t clk, int64_t ms)
{
    struct timespec t;

    clock_gettime(clk, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}
