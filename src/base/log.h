/*
 * log.h — the one logging sink: diagnostic lines ("TIME latchkey LEVEL: text")
 * and the JSON access lines of http/accesslog.c, to stderr or a file.
 * Never pass a secret, a digest of one, or a request body: only ids, codes and counts.
 *
 * Until lk_log_start() every line is written at once (the CLI). After it, lines
 * go to a writer thread, so an event loop never waits on a slow disk or a full
 * pipe to journald: access lines gather in a per-thread buffer handed over after
 * each loop iteration (lk_log_flush_thread), diagnostics are handed over at once.
 * If the writer falls more than LK_LOG_BACKLOG_MAX behind, lines are dropped and
 * counted (latchkey_log_dropped_total) rather than slowing the loops.
 * Safe from any thread.
 */
#ifndef LK_LOG_H
#define LK_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define LK_LOG_BACKLOG_MAX (8u << 20) /* bytes waiting for the writer */
#define LK_LOG_THREAD_BUF 16384       /* bytes of access lines one thread gathers */

enum lk_log_level { LK_LOG_DEBUG, LK_LOG_INFO, LK_LOG_WARN, LK_LOG_ERROR, LK_LOG_OFF };

void lk_log_set_level(enum lk_log_level level);
/* "debug", "info", "warn", "error" or "off" into *out; returns 0, or -1. */
int lk_log_parse_level(const char *s, size_t len, enum lk_log_level *out /* OUT */);
/* Whether a line of this level would be written. */
bool lk_log_enabled(enum lk_log_level level);

/* Appends every later line to path (created 0640) instead of stderr. Call
 * before lk_log_start. Returns 0, or -1 with errno set. */
int lk_log_open_file(const char *path);
/* Starts the writer thread. lk_log_stop() writes what is left and stops it. */
void lk_log_start(void);
void lk_log_stop(void);

void lk_log(enum lk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One access line: line[0..len) without its newline, gathered in this thread's
 * buffer. The caller checked lk_log_enabled(LK_LOG_INFO). */
void lk_log_access(const char *line, size_t len);
/* Hands this thread's gathered lines to the writer (each event loop, after
 * each iteration, and before it ends). */
void lk_log_flush_thread(void);

/* "2026-01-31T12:00:00.123Z" (NUL-terminated) for the current time. */
void lk_log_stamp(char out[32]);

#define lk_debug(...) lk_log(LK_LOG_DEBUG, __VA_ARGS__)
#define lk_info(...) lk_log(LK_LOG_INFO, __VA_ARGS__)
#define lk_warn(...) lk_log(LK_LOG_WARN, __VA_ARGS__)
#define lk_error(...) lk_log(LK_LOG_ERROR, __VA_ARGS__)

#endif
