/*
 * textout.h — appending to an answer buffer sized beforehand, without printf:
 * the check answers (POST /v1/verify, POST /v2/keys.verifyKey) are rendered
 * this way for every request. Header-only, static inline, so that each append
 * compiles into the renderer on the hot path. The caller sizes the buffer for
 * the longest answer; writing past it is a bug of ours, asserted (never
 * input-driven).
 */
#ifndef LK_TEXTOUT_H
#define LK_TEXTOUT_H

#include <stdint.h>
#include <string.h>

#include "base/common.h"

struct lk_textout {
    char *p, *end; /* the next byte; one past the buffer */
};

static inline void lk_textout_put(struct lk_textout *o, const char *s, size_t n)
{
    lk_assert(n <= (size_t)(o->end - o->p));
    memcpy(o->p, s, n);
    o->p += n;
}

/* A string literal, its length known at compile time. */
#define LK_TEXTOUT_LIT(o, lit) lk_textout_put((o), (lit), sizeof(lit) - 1)

static inline void lk_textout_str(struct lk_textout *o, const char *s)
{
    lk_textout_put(o, s, strlen(s));
}

/* v in decimal. */
static inline void lk_textout_i64(struct lk_textout *o, int64_t v)
{
    char buf[LK_I64_DEC_MAX];

    lk_textout_put(o, buf, lk_i64_dec(buf, v));
}

/* v in decimal; negative numbers as 0 (every number here is a count or a time). */
static inline void lk_textout_uint(struct lk_textout *o, int64_t v)
{
    lk_textout_i64(o, v < 0 ? 0 : v);
}

#endif
