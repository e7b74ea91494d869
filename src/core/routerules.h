/*
 * routerules.h — forward-auth route rules (DESIGN §5, `latchkey serve --routes
 * FILE`): which permission a forwarded request needs, from its method and path.
 * One rule a line, first match wins, `#` starts a comment; DESIGN §5 has an
 * example file. A line is
 * `METHOD PATH-PATTERN NEEDS [cost=N] [env=live|test] [per_ip=N/S]`.
 *
 * METHOD is a method or `*`; in PATH-PATTERN `*` is one path segment and `**`
 * (last only) any rest, none included; NEEDS is a permission query, `any` (any
 * valid key) or `public` (no key needed). `per_ip=N/S` lets each client address
 * (as trusted_proxies defines it) make at most N requests matching the rule in a
 * window of S seconds, keyed or public. Pure: the caller reads the file.
 *
 * A line whose first word is lower case is a directive, not a rule (methods are
 * upper case). One exists: `path_params reject|strip|literal`, at most once, says
 * what a `;` in a path segment means (Tomcat, Jetty and Spring serve
 * `/admin;x/users` as `/admin/users`, and `/public/..;/admin` as `/admin`):
 *   reject   (the default) a path with `;` (or `%3B`) is refused: no rule judges it;
 *   strip    `;` to the end of its segment is dropped before `.`/`..` are
 *            resolved, as those servers do (`%3B` is still refused);
 *   literal  `;` is an ordinary character, for backends that never split on it.
 */
#ifndef LK_ROUTERULES_H
#define LK_ROUTERULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LK_ROUTES_MAX_BYTES (256 * 1024)
#define LK_ROUTES_MAX_RULES 4096
#define LK_ROUTES_MAX_LINE 1024
#define LK_ROUTES_MAX_COST 1000000000
#define LK_ROUTES_MAX_PER_IP 1000000    /* per_ip=N: N at most this */
#define LK_ROUTES_MAX_PER_IP_S 86400    /* per_ip=N/S: S at most a day */
/* Distinct per_ip=N/S settings in one file: each is one address table in memory. */
#define LK_ROUTES_MAX_IP_LIMITS 16

enum lk_route_needs { LK_NEEDS_QUERY = 0, LK_NEEDS_ANY, LK_NEEDS_PUBLIC };

/* What `;` in a path segment means (the `path_params` directive). */
enum lk_route_params { LK_PARAMS_REJECT = 0, LK_PARAMS_STRIP, LK_PARAMS_LITERAL };

struct lk_route_rule {
    char method[16];          /* upper case, or "*" */
    char *pattern;            /* owned */
    enum lk_route_needs needs;
    char *query;              /* LK_NEEDS_QUERY: the permission query (owned) */
    int64_t cost;             /* credits a passing request spends */
    int env;                  /* -1: either, else enum lk_env */
    int64_t ip_limit;         /* per_ip=N/S: N requests per address, 0: none */
    int64_t ip_window;        /* ... in S seconds */
    long line;                /* in the file, for messages */
};

struct lk_route_rules {
    struct lk_route_rule *rules;
    size_t n;
    enum lk_route_params params; /* LK_PARAMS_REJECT unless the file says otherwise */
};

/* Parses text[0..len) into *out (zeroed first). Returns LK_OK, or
 * LK_ERR_INVALID_REQUEST with ei->offset = the line and ei->detail saying what is
 * wrong. Caller frees with lk_route_rules_free() (also after a failure). */
enum lk_err lk_route_rules_parse(const char *text, size_t len, struct lk_route_rules *out /* OUT */,
                                 struct lk_errinfo *ei);
void lk_route_rules_free(struct lk_route_rules *r);

/* The index of the first rule matching method[0..mlen) and path[0..plen) (a
 * path without query string), or -1. A HEAD matches GET rules too. */
long lk_route_rules_match(const struct lk_route_rules *r, const char *method, size_t mlen,
                          const char *path, size_t plen);

/* Puts path[0..len) in the form a web server serves it under, so a rule cannot
 * be dodged by spelling the path another way: %XX decoded, `;` parameters as
 * `params` says, `.` and `..` segments resolved, repeated slashes merged.
 * Writes at most outsz - 1 bytes and a NUL to out; returns the length, or -1 for
 * a path no rule should judge: not starting with '/', `..` above the root, an
 * encoded '/' or '%', a '\' or control character, a bad %-escape, a `;` that
 * `params` refuses, a result that is not UTF-8 (overlong forms included), or
 * too long. */
long lk_route_path_normalize(const char *path, size_t len, enum lk_route_params params,
                             char *out, size_t outsz);

/* True when path[0..plen) matches the pattern. */
bool lk_route_pattern_match(const char *pattern, const char *path, size_t plen);

#endif
