#include "http/hotbody.h"

#include "base/common.h"
#include "core/secret.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* The subset, and why each limit keeps the answers of lk_jsonin_verify():
 * - whitespace is JSON's four (jansson skips exactly these);
 * - strings hold bytes 0x20-0x7e but '"' and '\\': no escapes, no UTF-8 to
 *   validate, no NUL, so the bytes between the quotes are the string;
 * - each member at most once (jansson refuses duplicates with its own message);
 * - cost is 1-10 digits without a leading zero (or "0"), at most 10^9, followed by
 *   whitespace, ',' or '}' (a fraction or an exponent is declined): an integer
 *   jansson reads the same and the table's range accepts;
 * - environment is "live" or "test", permissions 1-1024 bytes (the table's bounds).
 * Declining costs nothing but the full decode, so when in doubt it declines. */

#define HB_COST_MAX 1000000000
#define HB_PERMISSIONS_MAX 1024

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p == s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

/* A plain string (see above); *v and *n view its bytes. */
static bool plain_string(struct scan *s, const char **v, size_t *n)
{
    const char *q;

    if (!eat(s, '"'))
        return false;
    for (q = s->p; q < s->end && *q != '"'; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e || *q == '\\')
            return false;
    if (q == s->end)
        return false;
    *v = s->p;
    *n = (size_t)(q - s->p);
    s->p = q + 1;
    return true;
}

static bool plain_cost(struct scan *s, int64_t *out)
{
    int64_t v = 0;
    int digits = 0;

    skip_ws(s);
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (++digits > 10 || (digits == 2 && v == 0))
            return false; /* too long, or a leading zero */
        v = v * 10 + (*s->p++ - '0');
    }
    if (digits == 0 || v > HB_COST_MAX || s->p == s->end)
        return false;
    if (*s->p != ',' && *s->p != '}' && *s->p != ' ' && *s->p != '\t' && *s->p != '\n' &&
        *s->p != '\r')
        return false;
    *out = v;
    return true;
}

static bool is_name(const char *v, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(v, name, n) == 0;
}

static bool member(struct scan *s, struct lk_verify_body *out, unsigned *seen)
{
    const char *name, *v;
    size_t nl, n;

    if (!plain_string(s, &name, &nl) || !eat(s, ':'))
        return false;
    if (is_name(name, nl, "key") && !(*seen & 1)) {
        if (!plain_string(s, &v, &n))
            return false;
        out->key = lk_strndup(v, n);
        out->key_len = n;
        *seen |= 1;
    } else if (is_name(name, nl, "environment") && !(*seen & 2)) {
        if (!plain_string(s, &v, &n))
            return false;
        if (is_name(v, n, "live"))
            out->environment = LK_ENV_LIVE;
        else if (is_name(v, n, "test"))
            out->environment = LK_ENV_TEST;
        else
            return false;
        *seen |= 2;
    } else if (is_name(name, nl, "permissions") && !(*seen & 4)) {
        if (!plain_string(s, &v, &n) || n < 1 || n > HB_PERMISSIONS_MAX)
            return false;
        out->permissions = lk_strndup(v, n);
        *seen |= 4;
    } else if (is_name(name, nl, "cost") && !(*seen & 8)) {
        if (!plain_cost(s, &out->cost))
            return false;
        out->has_cost = true;
        *seen |= 8;
    } else {
        return false; /* unknown or repeated: the full decoder words the answer */
    }
    return true;
}

bool lk_hotbody_verify(const char *body, size_t len, struct lk_verify_body *out)
{
    struct scan s = {body, body + len};
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    out->environment = -1;
    if (body == NULL || !eat(&s, '{'))
        goto decline;
    if (!eat(&s, '}')) {
        do {
            if (!member(&s, out, &seen))
                goto decline;
        } while (eat(&s, ','));
        if (!eat(&s, '}'))
            goto decline;
    }
    skip_ws(&s);
    if (s.p != s.end)
        goto decline;
    return true;
decline:
    lk_verify_body_release(out);
    out->environment = -1;
    return false;
}
