/*
 * fuzz_timefmt.c — lk_time_parse on arbitrary bytes: no read outside s[0..len), and
 * what it accepts formats to RFC 3339 text that parses back to the same instant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/timefmt.h"

#define CHECK(c) ((c) ? (void)0 : abort())
#define T_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[LK_TIME_STRLEN];
    int64_t t, back;

    if (size > 64)
        return 0;
    if (lk_time_parse((const char *)data, size, &t) != 0)
        return 0;
    /* Every field is digits ("-0" once passed as a two-digit field). */
    {
        static const unsigned char pos[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
        for (size_t i = 0; i < sizeof(pos); i++)
            CHECK(data[pos[i]] >= '0' && data[pos[i]] <= '9');
        if (data[size - 1] != 'Z' && data[size - 1] != 'z')
            for (size_t i = size - 5; i < size; i += i == size - 4 ? 2 : 1)
                CHECK(data[i] >= '0' && data[i] <= '9');
    }
    /* Only instants that format back are accepted. */
    CHECK(t >= 0 && t <= T_MAX);
    lk_time_format(t, out);
    CHECK(memchr(out, '\0', sizeof(out)) != NULL);
    CHECK(lk_time_parse(out, strlen(out), &back) == 0 && back == t);
    return 0;
}
