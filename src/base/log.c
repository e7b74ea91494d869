#include "base/log.h"

#include <stdarg.h>
#include <time.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static enum lk_log_level min_level = LK_LOG_INFO;

void lk_log_set_level(enum lk_log_level level)
{
    min_level = level;
}

void lk_log(enum lk_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024], stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    va_list ap;

    if (level < min_level)
        return;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s latchkey %s: %s\n", stamp, names[level], line);
}
