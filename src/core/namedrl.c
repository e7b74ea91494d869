#include "core/namedrl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

bool lk_namedrl_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > LK_RL_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

void lk_namedrl_encode(const struct lk_key_rl *rl, int n, char *buf)
{
    size_t len = 0;

    buf[0] = '\0';
    for (int i = 0; i < n && i < LK_KEY_RATE_LIMITS_MAX; i++)
        len += (size_t)snprintf(buf + len, LK_NAMEDRL_TEXT_MAX - len, "%s%s %lld %lld %d",
                                i ? "," : "", rl[i].name, (long long)rl[i].limit,
                                (long long)rl[i].window_ms, rl[i].auto_apply ? 1 : 0);
}

/* A decimal in [lo, hi] from *p up to the next space, comma or end. */
static bool num(const char **p, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v = 0;
    const char *s = *p;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > hi / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v < lo || v > hi)
        return false;
    *p = s;
    *out = v;
    return true;
}

int lk_namedrl_decode(const char *text, struct lk_key_rl *out)
{
    int n = 0;
    const char *p = text ? text : "";

    while (*p != '\0' && n < LK_KEY_RATE_LIMITS_MAX) {
        const char *name = p, *end = strchr(p, ',');
        size_t nlen = strcspn(p, " ,");
        int64_t limit, win, aut;
        struct lk_key_rl *r = &out[n];

        if (end == NULL)
            end = p + strlen(p);
        p = name + nlen;
        if (lk_namedrl_name_ok(name, nlen) && *p == ' ' &&
            (p++, num(&p, 1, LK_RL_LIMIT_MAX, &limit)) && *p == ' ' &&
            (p++, num(&p, LK_RL_WINDOW_MS_MIN, LK_RL_WINDOW_MS_MAX, &win)) && *p == ' ' &&
            (p++, num(&p, 0, 1, &aut)) && p == end) {
            memcpy(r->name, name, nlen);
            r->name[nlen] = '\0';
            r->limit = limit;
            r->window_ms = win;
            r->auto_apply = aut == 1;
            n++;
        }
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}
