#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "base/stats.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static _Atomic int min_level = LK_LOG_INFO;
static int out_fd = 2;

/* The writer thread and what waits for it. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    char *buf; /* guarded by mu */
    size_t len, cap;
    bool started, stopping;
} w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static _Thread_local char tl_buf[LK_LOG_THREAD_BUF];
static _Thread_local size_t tl_len;

void lk_log_set_level(enum lk_log_level level)
{
    atomic_store(&min_level, (int)level);
}

int lk_log_parse_level(const char *s, size_t len, enum lk_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};

    for (int i = 0; i < (int)LK_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            *out = (enum lk_log_level)i;
            return 0;
        }
    return -1;
}

bool lk_log_enabled(enum lk_log_level level)
{
    return level != LK_LOG_OFF && (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

int lk_log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0)
        return -1;
    out_fd = fd;
    return 0;
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(out_fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return; /* nowhere to report that logging failed */
        p += r;
        n -= (size_t)r;
    }
}

static void *writer_main(void *arg)
{
    char *mine = NULL;
    size_t n, cap = 0;

    (void)arg;
    pthread_mutex_lock(&w.mu);
    for (;;) {
        while (w.len == 0 && !w.stopping)
            pthread_cond_wait(&w.cond, &w.mu);
        if (w.len == 0)
            break;
        /* Swap buffers: the loops go on appending while this one is written. */
        char *p = w.buf;
        size_t c = w.cap;
        n = w.len;
        w.buf = mine;
        w.cap = cap;
        w.len = 0;
        mine = p;
        cap = c;
        pthread_mutex_unlock(&w.mu);
        write_all(mine, n);
        pthread_mutex_lock(&w.mu);
    }
    pthread_mutex_unlock(&w.mu);
    free(mine);
    return NULL;
}

void lk_log_start(void)
{
    pthread_mutex_lock(&w.mu);
    if (!w.started && pthread_create(&w.thread, NULL, writer_main, NULL) == 0)
        w.started = true;
    pthread_mutex_unlock(&w.mu);
}

void lk_log_stop(void)
{
    lk_log_flush_thread();
    pthread_mutex_lock(&w.mu);
    if (!w.started) {
        pthread_mutex_unlock(&w.mu);
        return;
    }
    w.stopping = true;
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.mu);
    pthread_join(w.thread, NULL);
    pthread_mutex_lock(&w.mu);
    w.started = w.stopping = false;
    free(w.buf);
    w.buf = NULL;
    w.len = w.cap = 0;
    pthread_mutex_unlock(&w.mu);
}

/* Gives p[0..n) to the writer, or writes it now when there is none. */
static void hand_over(const char *p, size_t n)
{
    pthread_mutex_lock(&w.mu);
    if (!w.started) {
        write_all(p, n); /* under mu: lines of two threads never interleave */
    } else if (w.len + n > LK_LOG_BACKLOG_MAX) {
        lk_stats_add(LK_STAT_LOG_DROPPED, 1);
    } else {
        if (w.len + n > w.cap) {
            size_t cap = w.cap ? w.cap : 65536;
            while (cap < w.len + n)
                cap *= 2;
            w.buf = lk_realloc(w.buf, cap);
            w.cap = cap;
        }
        memcpy(w.buf + w.len, p, n);
        if (w.len == 0)
            pthread_cond_signal(&w.cond);
        w.len += n;
    }
    pthread_mutex_unlock(&w.mu);
}

void lk_log_flush_thread(void)
{
    if (tl_len > 0) {
        hand_over(tl_buf, tl_len);
        tl_len = 0;
    }
}

void lk_log_access(const char *line, size_t len)
{
    if (len + 1 > sizeof(tl_buf) - tl_len)
        lk_log_flush_thread();
    if (len + 1 > sizeof(tl_buf)) {
        lk_stats_add(LK_STAT_LOG_DROPPED, 1); /* lines are bounded far below this */
        return;
    }
    memcpy(tl_buf + tl_len, line, len);
    tl_buf[tl_len + len] = '\n';
    tl_len += len + 1;
}

void lk_log_stamp(char out[32])
{
    /* One gmtime per thread per second: access lines are written per request. */
    static _Thread_local time_t last = -1;
    static _Thread_local char prefix[24];
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last) {
        gmtime_r(&ts.tv_sec, &tm);
        strftime(prefix, sizeof(prefix), "%Y-%m-%dT%H:%M:%S", &tm);
        last = ts.tv_sec;
    }
    snprintf(out, 32, "%.19s.%03dZ", prefix, (int)(ts.tv_nsec / 1000000) % 1000);
}

void lk_log(enum lk_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024], stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    va_list ap;
    int n;

    if (!lk_log_enabled(level))
        return;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    n = snprintf(line, sizeof(line), "%s latchkey %s: ", stamp, names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    hand_over(line, (size_t)n);
}
