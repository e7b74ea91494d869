/*
 * namedrl.h — a key's named rate limits (beside its "default" one) as the
 * store keeps them: one text column, "NAME LIMIT WINDOW_MS AUTO" per limit
 * joined by ",", so a key row is still one row and a scan of a million keys
 * reads no second table. Names are 1..LK_RL_NAME_MAX of [A-Za-z0-9_.:-], so
 * neither separator can occur in one. Pure.
 */
#ifndef LK_NAMEDRL_H
#define LK_NAMEDRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LK_KEY_RATE_LIMITS_MAX 8 /* named limits per key, "default" included */
#define LK_RL_NAME_MAX 64        /* bytes of a limit's name */
#define LK_RL_WINDOW_MS_MIN 1000
#define LK_RL_WINDOW_MS_MAX 86400000 /* one day */
/* The limit named "default" is the key's rate_limit ({"limit", "window_s"} on
 * /v1), whose window may be 31 days: every API takes that much for it, so what
 * one API shows another takes back. */
#define LK_RL_DEFAULT_WINDOW_MS_MAX 2678400000LL
#define LK_RL_LIMIT_MAX 1000000000
/* room for the encoding of LK_KEY_RATE_LIMITS_MAX limits, NUL included */
#define LK_NAMEDRL_TEXT_MAX (LK_KEY_RATE_LIMITS_MAX * (LK_RL_NAME_MAX + 32))

struct lk_key_rl {
    char name[LK_RL_NAME_MAX + 1];
    int64_t limit;     /* checks per window, 1..LK_RL_LIMIT_MAX */
    int64_t window_ms; /* LK_RL_WINDOW_MS_MIN .. LK_RL_WINDOW_MS_MAX */
    bool auto_apply;   /* applies to every check, not only those that name it */
};

/* True when s (len bytes) is a valid limit name. */
bool lk_namedrl_name_ok(const char *s, size_t len);

/* Writes the n limits into buf (LK_NAMEDRL_TEXT_MAX bytes). "" for none. */
void lk_namedrl_encode(const struct lk_key_rl *rl, int n, char *buf);

/* Reads text into out (room for LK_KEY_RATE_LIMITS_MAX); returns how many,
 * skipping any part that is not a valid limit (the column is written by this
 * module only, but a database is outside input). */
int lk_namedrl_decode(const char *text, struct lk_key_rl *out);

#endif
