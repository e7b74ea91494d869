/*
 * fuzz_permquery.c — the permission query parser: never crashes or recurses
 * without bound; a query that parses gives the same answer twice, and a failure
 * points inside the input.
 */
#include <stddef.h>
#include <stdint.h>

#include "core/permquery.h"

static bool has_odd(void *arg, const char *p, size_t len)
{
    (void)arg;
    return (len + (unsigned char)p[0]) % 2 == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_errinfo ei;
    bool a = false, b = false;
    enum lk_err e;

    if (size > LK_PERMQUERY_MAX_LEN + 8)
        return 0;
    lk_errinfo_clear(&ei);
    e = lk_permquery_eval((const char *)data, size, has_odd, NULL, &a, &ei);
    if (e == LK_OK) {
        if (lk_permquery_eval((const char *)data, size, has_odd, NULL, &b, NULL) != LK_OK || a != b)
            __builtin_trap();
    } else if (e != LK_ERR_BAD_QUERY || ei.offset > (long)size) {
        __builtin_trap();
    }
    return 0;
}
