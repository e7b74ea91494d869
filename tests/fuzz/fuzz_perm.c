/*
 * fuzz_perm.c — lk_perm_valid and lk_perm_covers on arbitrary bytes, split at the
 * first NUL or newline into a granted and a needed permission.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/perm.h"

#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_all(const char *p, size_t n)
{
    return (n == 1 && p[0] == '*') || (n == 3 && memcmp(p, "all", 3) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *g = (const char *)data, *n;
    size_t glen = 0, nlen;
    bool gv, nv, gn, ng;

    if (size > 2 * LK_PERM_MAX_LEN + 8)
        return 0;
    while (glen < size && data[glen] != '\0' && data[glen] != '\n')
        glen++;
    n = g + glen + (glen < size);
    nlen = size - (size_t)(n - g);

    gv = lk_perm_valid(g, glen);
    nv = lk_perm_valid(n, nlen);
    gn = lk_perm_covers(g, glen, n, nlen); /* defined on any bytes; must not crash */
    ng = lk_perm_covers(n, nlen, g, glen);
    if (gv)
        CHECK(glen <= LK_PERM_MAX_LEN && lk_perm_covers(g, glen, g, glen));
    if (gv && nv) {
        CHECK(lk_perm_covers("*", 1, n, nlen) && lk_perm_covers("all", 3, n, nlen));
        /* Mutual coverage means the same permission, up to the two spellings of "all". */
        if (gn && ng)
            CHECK((glen == nlen && memcmp(g, n, glen) == 0) ||
                  (is_all(g, glen) && is_all(n, nlen)));
        /* "*" and "all" are covered only by themselves. */
        if (is_all(n, nlen))
            CHECK(gn == is_all(g, glen));
    }
    return 0;
}
