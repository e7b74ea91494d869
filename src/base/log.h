/*
 * log.h — the one logging sink: lines to stderr with a UTC timestamp and level.
 * Never pass a secret, a digest of one, or a request body: only ids, codes and counts.
 * Safe from any thread (one fprintf per line; stdio locks the stream).
 */
#ifndef LK_LOG_H
#define LK_LOG_H

enum lk_log_level { LK_LOG_DEBUG, LK_LOG_INFO, LK_LOG_WARN, LK_LOG_ERROR };

void lk_log_set_level(enum lk_log_level level);
void lk_log(enum lk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lk_info(...) lk_log(LK_LOG_INFO, __VA_ARGS__)
#define lk_warn(...) lk_log(LK_LOG_WARN, __VA_ARGS__)
#define lk_error(...) lk_log(LK_LOG_ERROR, __VA_ARGS__)

#endif
