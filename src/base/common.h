/*
 * common.h — what every latchkey translation unit shares: fixed-width types,
 * assertions that are always on, and the banned-function list.
 */
#ifndef LK_COMMON_H
#define LK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Invariants of our own code only; outside input never reaches an assert. */
#define lk_assert(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            lk__assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

_Noreturn void lk__assert_fail(const char *what, const char *file, int line);

/* Parses all of s[0..len) as a decimal integer within [min, max]; a leading '-'
 * is allowed only when min < 0. Returns 0 on success, -1 on any other input
 * ('+', spaces, overflow, empty). */
int lk_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out /* OUT */);

/* Writes v in decimal to out (not terminated); returns its length (at most
 * 20). printf-free: for numbers written on every request. */
#define LK_I64_DEC_MAX 20
size_t lk_i64_dec(char out[LK_I64_DEC_MAX], int64_t v);

/* The value of hex digit c (either case), or -1. */
int lk_hex_value(char c);

/* malloc/calloc/strdup that abort on exhaustion: latchkey does not limp on without memory. */
void *lk_malloc(size_t n);
void *lk_calloc(size_t n, size_t size);
void *lk_realloc(void *p, size_t n);
/* Room for item n (0-based) of `size` bytes in array p of *cap items: grows it
 * (doubling) when full. Returns the array, maybe moved. */
void *lk_grow(void *p, size_t n, size_t *cap, size_t size);
char *lk_strndup(const char *s, size_t n);
/* Copies the C string src into dst of size bytes (size > 0), cut to fit and always
 * NUL-terminated, as snprintf(dst, size, "%s", src) without the format machinery
 * (the hot path copies ids this way). Returns the bytes copied. */
size_t lk_strcopy(char *dst, size_t size, const char *src);

#endif
