/*
 * permquery.h — permission queries (DESIGN §1): permissions joined by AND and OR,
 * grouped with parentheses, e.g. `storage:read AND (workflows:read OR
 * workflows:execute)`. AND binds tighter than OR; the keywords are
 * case-insensitive. Pure; safe from any thread.
 */
#ifndef LK_PERMQUERY_H
#define LK_PERMQUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define LK_PERMQUERY_MAX_LEN 1024 /* bytes in a query */
#define LK_PERMQUERY_MAX_DEPTH 16 /* nested parentheses */

/* Answers whether the caller holds permission p[0..len). */
typedef bool (*lk_perm_has_fn)(void *arg, const char *p, size_t len);

/* Parses q[0..len) and evaluates it with `has`. Returns LK_OK with *result, or
 * LK_ERR_BAD_QUERY with ei->offset at the offending byte and ei->detail saying
 * what was expected there. The whole query is checked even when the answer is
 * known early, so a malformed query never passes. */
enum lk_err lk_permquery_eval(const char *q, size_t len, lk_perm_has_fn has, void *arg,
                              bool *result /* OUT */, struct lk_errinfo *ei);

#endif
