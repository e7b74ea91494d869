/*
 * accesslog.h — what latchkey notes about each request, and the one hook that
 * turns the note into metrics and an access line when h2o disposes of the
 * request (after the answer went out, or the client went away).
 *
 * The note lives in the request's pool, reached through req->env (latchkey
 * runs no CGI-like handler that would read it). It holds only route templates
 * from the route table, outcome codes from core/err.def, ids latchkey issued,
 * and times: never a path, a query, a header or a body, so no secret can reach
 * the log through it. Loop thread only.
 */
#ifndef LK_ACCESSLOG_H
#define LK_ACCESSLOG_H

#include <stdbool.h>

#include <h2o.h>

#include "core/err.h"

/* Access lines on (the default) or off (`access_log = off`, for benchmarks). */
void lk_accesslog_set_enabled(bool on);

/* Starts the note of req: its request id and the time it began. */
void lk_accesslog_begin(h2o_req_t *req, const char *request_id);

/* The route that matched: its pattern from the route table (static) and,
 * for the three check endpoints, which (enum lk_stats_hist; -1 for none). */
void lk_accesslog_route(h2o_req_t *req, const char *pattern, int endpoint);

/* The outcome of a check answered 200 whatever it found (/v1/verify), and the
 * key it found (may be NULL). An outcome set here is not replaced by the one
 * lk_accesslog_sent is told. */
void lk_accesslog_outcome(h2o_req_t *req, enum lk_err e, const char *key_id);

/* The key a check found (forward-auth's identity headers). */
void lk_accesslog_key(h2o_req_t *req, const char *key_id);

/* The answer being sent carries outcome e (respond.c, for every answer). */
void lk_accesslog_sent(h2o_req_t *req, enum lk_err e);

/* Registers the hook on pathconf. */
void lk_accesslog_register(h2o_pathconf_t *pathconf);

#endif
