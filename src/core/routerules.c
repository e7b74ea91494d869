#include "core/routerules.h"

#include "base/common.h"
#include "core/permquery.h"
#include "core/quote.h"
#include "core/secret.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define MAX_TOKENS 64

struct token {
    const char *s;
    size_t len;
};

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool tok_is(const struct token *t, const char *word)
{
    return t->len == strlen(word) && memcmp(t->s, word, t->len) == 0;
}

static enum lk_err fail(struct lk_errinfo *ei, long line, const char *what)
{
    lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "routes", "routes line %ld: %s", line, what);
    if (ei)
        ei->offset = line;
    return LK_ERR_INVALID_REQUEST;
}

static bool method_ok(const struct token *t)
{
    if (tok_is(t, "*"))
        return true;
    if (t->len == 0 || t->len >= sizeof(((struct lk_route_rule *)0)->method))
        return false;
    for (size_t i = 0; i < t->len; i++)
        if (t->s[i] < 'A' || t->s[i] > 'Z')
            return false;
    return true;
}

/* `/` then segments: literal (no `*`), `*`, or `**` as the last one. */
static bool pattern_ok(const struct token *t)
{
    size_t i = 1;

    if (t->len == 0 || t->s[0] != '/')
        return false;
    while (i < t->len) {
        size_t start = i;
        while (i < t->len && t->s[i] != '/')
            i++;
        size_t n = i - start;
        const char *seg = t->s + start;
        bool star = memchr(seg, '*', n) != NULL;
        if (star && !(n == 1 || (n == 2 && seg[0] == '*' && seg[1] == '*')))
            return false; /* `*` only as a whole segment */
        if (n == 2 && seg[0] == '*' && seg[1] == '*' && i != t->len)
            return false; /* `**` only at the end */
        i++;
    }
    return true;
}

static bool never(void *arg, const char *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return false;
}

/* Parses one non-empty line of tokens into r. */
static enum lk_err parse_rule(struct token *tk, size_t n, long line, struct lk_route_rule *r,
                              struct lk_errinfo *ei)
{
    size_t last = n;
    int64_t v;
    char *q;
    size_t qlen = 0, at = 0;

    if (n < 3)
        return fail(ei, line, "expected METHOD PATH-PATTERN NEEDS [cost=N] [env=live|test] "
                              "[per_ip=N/S]");
    if (!method_ok(&tk[0]))
        return fail(ei, line, "METHOD must be an upper-case method name or *");
    if (!pattern_ok(&tk[1]))
        return fail(ei, line, "PATH-PATTERN must start with / and use * or ** (last) as whole "
                              "segments");
    r->line = line;
    r->env = -1;
    memcpy(r->method, tk[0].s, tk[0].len);
    r->method[tk[0].len] = '\0';
    r->pattern = lk_strndup(tk[1].s, tk[1].len);
    /* Options come last, each at most once. */
    while (last > 3) {
        struct token *o = &tk[last - 1];
        if (o->len > 5 && memcmp(o->s, "cost=", 5) == 0) {
            if (r->cost != 0 || lk_parse_i64(o->s + 5, o->len - 5, 0, LK_ROUTES_MAX_COST, &v) != 0)
                return fail(ei, line, "cost= wants one whole number of credits");
            r->cost = v;
        } else if (o->len > 4 && memcmp(o->s, "env=", 4) == 0) {
            char env[8];
            enum lk_env e;
            if (r->env != -1 || o->len - 4 >= sizeof(env))
                return fail(ei, line, "env= wants live or test, once");
            memcpy(env, o->s + 4, o->len - 4);
            env[o->len - 4] = '\0';
            if (lk_env_parse(env, &e) != 0)
                return fail(ei, line, "env= wants live or test");
            r->env = (int)e;
        } else if (o->len > 7 && memcmp(o->s, "per_ip=", 7) == 0) {
            const char *slash = memchr(o->s + 7, '/', o->len - 7);
            int64_t w;
            if (r->ip_limit != 0 || slash == NULL ||
                lk_parse_i64(o->s + 7, (size_t)(slash - o->s) - 7, 1, LK_ROUTES_MAX_PER_IP,
                             &v) != 0 ||
                lk_parse_i64(slash + 1, (size_t)(o->s + o->len - slash - 1), 1,
                             LK_ROUTES_MAX_PER_IP_S, &w) != 0)
                return fail(ei, line, "per_ip= wants N/S, once: at most N requests per client "
                                      "address in S seconds (N 1-1000000, S 1-86400)");
            r->ip_limit = v;
            r->ip_window = w;
        } else {
            break;
        }
        last--;
    }
    if (last == 3 && tok_is(&tk[2], "any")) {
        r->needs = LK_NEEDS_ANY;
        return LK_OK;
    }
    if (last == 3 && tok_is(&tk[2], "public")) {
        if (r->cost != 0 || r->env != -1)
            return fail(ei, line, "a public route takes no cost= or env= (per_ip= it does)");
        r->needs = LK_NEEDS_PUBLIC;
        return LK_OK;
    }
    /* A permission query: the tokens between, joined by single spaces. */
    for (size_t i = 2; i < last; i++)
        qlen += tk[i].len + 1;
    q = lk_malloc(qlen);
    for (size_t i = 2; i < last; i++) {
        memcpy(q + at, tk[i].s, tk[i].len);
        at += tk[i].len;
        q[at++] = i + 1 < last ? ' ' : '\0';
    }
    r->needs = LK_NEEDS_QUERY;
    r->query = q;
    {
        bool ignored;
        struct lk_errinfo qe;
        lk_errinfo_clear(&qe);
        if (lk_permquery_eval(q, strlen(q), never, NULL, &ignored, &qe) != LK_OK)
            return fail(ei, line, qe.detail[0] ? qe.detail : "NEEDS is not a permission query");
    }
    return LK_OK;
}

/* Notes the last rule's per_ip setting in set[*n]; false when it would be one
 * distinct setting more than LK_ROUTES_MAX_IP_LIMITS. */
static bool ip_limit_note(const struct lk_route_rule *x, int64_t set[][2], size_t *n)
{
    if (x->ip_limit == 0)
        return true;
    for (size_t i = 0; i < *n; i++)
        if (set[i][0] == x->ip_limit && set[i][1] == x->ip_window)
            return true;
    if (*n == LK_ROUTES_MAX_IP_LIMITS)
        return false;
    set[*n][0] = x->ip_limit;
    set[*n][1] = x->ip_window;
    (*n)++;
    return true;
}

/* A line starting with a lower-case word: `path_params MODE`. */
static enum lk_err parse_directive(struct token *tk, size_t n, long line, bool *seen,
                                   struct lk_route_rules *out, struct lk_errinfo *ei)
{
    static const struct {
        const char *name;
        enum lk_route_params mode;
    } modes[] = {{"reject", LK_PARAMS_REJECT},
                 {"strip", LK_PARAMS_STRIP},
                 {"literal", LK_PARAMS_LITERAL}};

    if (!tok_is(&tk[0], "path_params"))
        return fail(ei, line, "unknown directive (a rule's METHOD is upper case or *)");
    if (*seen)
        return fail(ei, line, "path_params is set once");
    for (size_t i = 0; n == 2 && i < LK_ARRAY_LEN(modes); i++)
        if (tok_is(&tk[1], modes[i].name)) {
            out->params = modes[i].mode;
            *seen = true;
            return LK_OK;
        }
    return fail(ei, line, "path_params wants reject, strip or literal");
}

enum lk_err lk_route_rules_parse(const char *text, size_t len, struct lk_route_rules *out,
                                 struct lk_errinfo *ei)
{
    size_t pos = 0, cap = 0;
    long line = 0;
    bool params_seen = false;
    int64_t ipset[LK_ROUTES_MAX_IP_LIMITS][2];
    size_t nip = 0;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    if (len > LK_ROUTES_MAX_BYTES)
        return fail(ei, 0, "file too large");
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, i = pos, n = 0;
        const char *hash;
        struct token tk[MAX_TOKENS];

        line++;
        if (end - pos > LK_ROUTES_MAX_LINE)
            return fail(ei, line, "line too long");
        if (memchr(text + pos, '\0', end - pos) != NULL)
            return fail(ei, line, "NUL byte");
        if ((hash = memchr(text + pos, '#', end - pos)) != NULL)
            end = (size_t)(hash - text);
        while (i < end) {
            while (i < end && space(text[i]))
                i++;
            if (i == end)
                break;
            if (n == MAX_TOKENS)
                return fail(ei, line, "too many words");
            tk[n].s = text + i;
            while (i < end && !space(text[i]))
                i++;
            tk[n].len = (size_t)((text + i) - tk[n].s);
            n++;
        }
        pos = nl ? (size_t)(nl - text) + 1 : len;
        if (n == 0)
            continue;
        if (tk[0].s[0] >= 'a' && tk[0].s[0] <= 'z') {
            if ((e = parse_directive(tk, n, line, &params_seen, out, ei)) != LK_OK)
                return e;
            continue;
        }
        if (out->n == LK_ROUTES_MAX_RULES)
            return fail(ei, line, "too many rules");
        out->rules = lk_grow(out->rules, out->n, &cap, sizeof(*out->rules));
        memset(&out->rules[out->n], 0, sizeof(out->rules[0]));
        e = parse_rule(tk, n, line, &out->rules[out->n], ei);
        out->n++; /* counted even when bad, so free releases what it holds */
        if (e != LK_OK)
            return e;
        if (!ip_limit_note(&out->rules[out->n - 1], ipset, &nip))
            return fail(ei, line, "too many different per_ip= settings (at most 16 in a file)");
    }
    return LK_OK;
}

void lk_route_rules_free(struct lk_route_rules *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->rules[i].pattern);
        free(r->rules[i].query);
    }
    free(r->rules);
    memset(r, 0, sizeof(*r));
}

long lk_route_path_normalize(const char *path, size_t len, enum lk_route_params params,
                             char *out, size_t outsz)
{
    size_t n = 0, i = 1; /* out holds "/seg/seg" (n bytes), or nothing for the root */
    bool dir = false;    /* the path names a directory: ends in '/', '.' or '..' */

    if (len == 0 || path[0] != '/' || outsz < 2)
        return -1;
    while (i <= len) {
        size_t start = n;
        bool dot = false, dotdot = false;

        if (n + 1 >= outsz)
            return -1;
        out[n++] = '/';
        /* One segment, decoded, appended after the '/'. */
        while (i < len && path[i] != '/') {
            int hi, lo;
            unsigned char ch = (unsigned char)path[i];
            if (ch == ';' && params != LK_PARAMS_LITERAL) {
                if (params == LK_PARAMS_REJECT)
                    return -1; /* a servlet container would drop what follows */
                while (i < len && path[i] != '/')
                    i++; /* strip: the parameters are no part of the name */
                break;
            }
            if (ch == '%') {
                if (i + 2 >= len || (hi = lk_hex_value(path[i + 1])) < 0 ||
                    (lo = lk_hex_value(path[i + 2])) < 0)
                    return -1;
                ch = (unsigned char)(hi << 4 | lo);
                /* An encoded separator, or an encoded '%' that a server decoding
                 * twice would read as another escape: a path with more than one
                 * meaning, which no rule judges. So is an encoded ';' unless ';'
                 * means nothing. */
                if (ch == '/' || ch == '%' || (ch == ';' && params != LK_PARAMS_LITERAL))
                    return -1;
                i += 3;
            } else {
                i++;
            }
            if (ch == '\\' || ch < 0x20 || ch == 0x7f || n + 1 >= outsz)
                return -1;
            out[n++] = (char)ch;
        }
        i++; /* past the '/' (or the end) */
        size_t sn = n - start - 1;
        dot = sn == 1 && out[start + 1] == '.';
        dotdot = sn == 2 && out[start + 1] == '.' && out[start + 2] == '.';
        dir = sn == 0 || dot || dotdot;
        if (sn == 0 || dot) {
            n = start; /* `//` and `/./` add nothing */
        } else if (dotdot) {
            if (start == 0)
                return -1; /* above the root */
            n = start;
            while (n > 0 && out[n - 1] != '/')
                n--;
            n--; /* drop the previous segment with its '/' */
        }
    }
    if (n == 0 || dir) {
        if (n + 1 >= outsz)
            return -1;
        out[n++] = '/';
    }
    /* Overlong forms (%C0%AE is '.' to a lax decoder) and other bytes that are
     * not UTF-8 are no one path: every server may read them its own way. */
    if (!lk_utf8_valid(out, n))
        return -1;
    out[n] = '\0';
    return (long)n;
}

bool lk_route_pattern_match(const char *pattern, const char *path, size_t plen)
{
    const char *p = pattern;
    size_t i = 0;

    if (plen == 0 || path[0] != '/' || *p != '/')
        return false;
    p++;
    i++;
    for (;;) {
        const char *pend = strchr(p, '/');
        size_t pn = pend ? (size_t)(pend - p) : strlen(p);
        if (pn == 2 && p[0] == '*' && p[1] == '*')
            return true; /* any rest, none included */
        size_t start = i;
        while (i < plen && path[i] != '/')
            i++;
        size_t sn = i - start;
        if (pn == 1 && p[0] == '*') {
            if (sn == 0)
                return false;
        } else if (pn != sn || memcmp(p, path + start, sn) != 0) {
            return false;
        }
        if (pend == NULL)
            return i == plen; /* both end here */
        if (i == plen) {
            /* The path ended; only a trailing `**` may match nothing more. */
            return strcmp(pend + 1, "**") == 0;
        }
        p = pend + 1;
        i++;
    }
}

long lk_route_rules_match(const struct lk_route_rules *r, const char *method, size_t mlen,
                          const char *path, size_t plen)
{
    /* Web frameworks answer HEAD with the GET handler (RFC 9110 §9.3.2): a HEAD
     * is judged by GET rules too, or a key that may not GET would run the GET
     * handler through a looser rule further down. */
    bool head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;

    for (size_t i = 0; i < r->n; i++) {
        const struct lk_route_rule *x = &r->rules[i];
        if (!(x->method[0] == '*' ||
              (strlen(x->method) == mlen && memcmp(x->method, method, mlen) == 0) ||
              (head && strcmp(x->method, "GET") == 0)))
            continue;
        if (lk_route_pattern_match(x->pattern, path, plen))
            return (long)i;
    }
    return -1;
}
