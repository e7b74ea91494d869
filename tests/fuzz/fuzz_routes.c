/*
 * fuzz_routes.c — the forward-auth route file parser and matcher: never crashes
 * or leaks; an accepted rule is well-formed (pattern starting with '/', cost and
 * env in range, a query exactly when NEEDS is one) and matching it against paths
 * cut from the input stays in bounds; the path normalizer's output has nothing
 * left to resolve (and no `;` unless path_params is literal); a path_params
 * directive sets a known mode.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/routerules.h"

/* A normalized path is absolute, in bounds, and has nothing left to resolve;
 * unless `;` is literal, none is left. */
static void check_normalize(const char *path, size_t len, enum lk_route_params params)
{
    char out[256];
    long n = lk_route_path_normalize(path, len, params, out, sizeof(out));

    if (n < 0)
        return;
    if ((size_t)n >= sizeof(out) || out[n] != '\0' || strlen(out) != (size_t)n || out[0] != '/' ||
        strstr(out, "//") != NULL || strstr(out, "/./") != NULL || strstr(out, "/../") != NULL ||
        strchr(out, '\\') != NULL || (params != LK_PARAMS_LITERAL && strchr(out, ';') != NULL))
        __builtin_trap();
    /* Normalizing again changes nothing. */
    char again[256];
    if (lk_route_path_normalize(out, (size_t)n, params, again, sizeof(again)) != n ||
        memcmp(out, again, (size_t)n) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_route_rules r;
    struct lk_errinfo ei;
    const char *text = (const char *)data;

    lk_errinfo_clear(&ei);
    check_normalize(text, size, LK_PARAMS_REJECT);
    check_normalize(text, size, LK_PARAMS_STRIP);
    check_normalize(text, size, LK_PARAMS_LITERAL);
    if (lk_route_rules_parse(text, size, &r, &ei) == LK_OK) {
        for (size_t i = 0; i < r.n; i++) {
            const struct lk_route_rule *x = &r.rules[i];
            if (x->pattern[0] != '/' || x->cost < 0 || x->cost > LK_ROUTES_MAX_COST ||
                x->env < -1 || x->env > 1 || (x->needs == LK_NEEDS_QUERY) != (x->query != NULL) ||
                (x->ip_limit == 0) != (x->ip_window == 0) || x->ip_limit < 0 ||
                x->ip_limit > LK_ROUTES_MAX_PER_IP || x->ip_window < 0 ||
                x->ip_window > LK_ROUTES_MAX_PER_IP_S)
                __builtin_trap();
        }
        if (r.params != LK_PARAMS_REJECT && r.params != LK_PARAMS_STRIP &&
            r.params != LK_PARAMS_LITERAL)
            __builtin_trap();
        /* Every line of the input is also a path to match. */
        for (size_t pos = 0; pos < size;) {
            const char *nl = memchr(text + pos, '\n', size - pos);
            size_t end = nl ? (size_t)(nl - text) : size;
            long m = lk_route_rules_match(&r, "GET", 3, text + pos, end - pos);
            if (m < -1 || m >= (long)r.n)
                __builtin_trap();
            pos = end + 1;
        }
    } else if (ei.offset < 0 || (size_t)ei.offset > size + 1) {
        __builtin_trap();
    }
    lk_route_rules_free(&r);
    return 0;
}
