#include "core/permquery.h"

#include "base/common.h"
#include "core/perm.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/*
 * Recursive descent over
 *   or     := and ( "OR" and )*
 *   and    := factor ( "AND" factor )*
 *   factor := PERMISSION | "(" or ")"
 * evaluating as it goes. Depth is capped, so the recursion is bounded.
 */
struct parser {
    const char *q;
    size_t len, pos;
    int depth;
    lk_perm_has_fn has;
    void *arg;
    struct lk_errinfo *ei;
};

static enum lk_err fail(struct parser *p, const char *what)
{
    lk_errinfo_set(p->ei, LK_ERR_BAD_QUERY, "permissions",
                   "invalid permission query at position %zu: %s", p->pos, what);
    if (p->ei)
        p->ei->offset = (long)p->pos;
    return LK_ERR_BAD_QUERY;
}

static void skip_space(struct parser *p)
{
    while (p->pos < p->len && (p->q[p->pos] == ' ' || p->q[p->pos] == '\t'))
        p->pos++;
}

static bool word_char(char c)
{
    return c != ' ' && c != '\t' && c != '(' && c != ')';
}

/* Length of the word at the current position (0 at a parenthesis or the end). */
static size_t word_len(const struct parser *p)
{
    size_t n = 0;
    while (p->pos + n < p->len && word_char(p->q[p->pos + n]))
        n++;
    return n;
}

/* Whether the word of n bytes at the current position is kw (upper case, any
 * case in the query). */
static bool is_kw(const struct parser *p, size_t n, const char *kw, size_t k)
{
    if (n != k)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((p->q[p->pos + i] & ~0x20) != kw[i])
            return false;
    return true;
}

static bool is_keyword(const struct parser *p, const char *kw)
{
    return is_kw(p, word_len(p), kw, strlen(kw));
}

static enum lk_err parse_or(struct parser *p, bool *out);

static enum lk_err parse_factor(struct parser *p, bool *out)
{
    size_t n;
    enum lk_err e;

    skip_space(p);
    if (p->pos == p->len)
        return fail(p, "expected a permission or '('");
    if (p->q[p->pos] == '(') {
        if (++p->depth > LK_PERMQUERY_MAX_DEPTH)
            return fail(p, "parentheses nested too deep");
        p->pos++;
        if ((e = parse_or(p, out)) != LK_OK)
            return e;
        skip_space(p);
        if (p->pos == p->len || p->q[p->pos] != ')')
            return fail(p, "expected ')'");
        p->pos++;
        p->depth--;
        return LK_OK;
    }
    if (p->q[p->pos] == ')')
        return fail(p, "unexpected ')'");
    n = word_len(p);
    if (is_kw(p, n, "AND", 3) || is_kw(p, n, "OR", 2))
        return fail(p, "expected a permission, found an operator");
    if (!lk_perm_valid(p->q + p->pos, n))
        return fail(p, "not a permission (want resource:action)");
    *out = p->has(p->arg, p->q + p->pos, n);
    p->pos += n;
    return LK_OK;
}

static enum lk_err parse_and(struct parser *p, bool *out)
{
    bool v, rhs;
    enum lk_err e;

    if ((e = parse_factor(p, &v)) != LK_OK)
        return e;
    for (;;) {
        skip_space(p);
        if (!is_keyword(p, "AND"))
            break;
        p->pos += 3;
        if ((e = parse_factor(p, &rhs)) != LK_OK)
            return e;
        v = v && rhs;
    }
    *out = v;
    return LK_OK;
}

static enum lk_err parse_or(struct parser *p, bool *out)
{
    bool v, rhs;
    enum lk_err e;

    if ((e = parse_and(p, &v)) != LK_OK)
        return e;
    for (;;) {
        skip_space(p);
        if (!is_keyword(p, "OR"))
            break;
        p->pos += 2;
        if ((e = parse_and(p, &rhs)) != LK_OK)
            return e;
        v = v || rhs;
    }
    *out = v;
    return LK_OK;
}

enum lk_err lk_permquery_eval(const char *q, size_t len, lk_perm_has_fn has, void *arg,
                              bool *result, struct lk_errinfo *ei)
{
    struct parser p = {q, len, 0, 0, has, arg, ei};
    enum lk_err e;

    if (len == 0 || len > LK_PERMQUERY_MAX_LEN)
        return lk_errinfo_set(ei, LK_ERR_BAD_QUERY, "permissions",
                              "a permission query has 1 to %d bytes", LK_PERMQUERY_MAX_LEN);
    /* Most queries are one permission: a single word is answered without the
     * descent, with the same checks parse_factor makes on it. */
    if (word_len(&p) == len && !is_kw(&p, len, "AND", 3) && !is_kw(&p, len, "OR", 2) &&
        lk_perm_valid(q, len)) {
        *result = has(arg, q, len);
        return LK_OK;
    }
    if ((e = parse_or(&p, result)) != LK_OK)
        return e;
    skip_space(&p);
    if (p.pos != p.len)
        return fail(&p, p.q[p.pos] == ')' ? "unexpected ')'" : "expected AND, OR or the end");
    return LK_OK;
}
