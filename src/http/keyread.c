#include "http/keyread.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */


int lk_query_find(const char *q, size_t qlen, const char *name, size_t *from, char *out,
                  size_t outsz)
{
    size_t nlen = strlen(name), pos = *from;

    while (pos < qlen) {
        const char *s = q + pos;
        const char *amp = memchr(s, '&', qlen - pos);
        size_t stop = amp ? (size_t)(amp - q) : qlen;
        const char *eq = memchr(s, '=', stop - pos);
        size_t kend = eq ? (size_t)(eq - q) : stop;

        if (kend - pos == nlen && memcmp(s, name, nlen) == 0) {
            size_t v = eq ? kend + 1 : stop, n = 0;
            *from = stop + 1;
            /* URL-decode: '+' is a space; a malformed escape stays as it is. */
            for (size_t i = v; i < stop; i++) {
                int hi, lo;
                char ch = q[i];
                if (ch == '%' && i + 2 < stop && (hi = lk_hex_value(q[i + 1])) >= 0 &&
                    (lo = lk_hex_value(q[i + 2])) >= 0) {
                    ch = (char)(hi << 4 | lo);
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                /* A NUL would cut the value short for every C string reader after
                 * us: refuse it rather than read a different value. */
                if (n + 1 >= outsz || ch == '\0')
                    return -1;
                out[n++] = ch;
            }
            out[n] = '\0';
            return 1;
        }
        pos = stop + 1;
    }
    *from = qlen;
    return 0;
}

/* The query string of req (without '?'), or an empty view. */
static h2o_iovec_t query_of(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

int lk_query_param(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    h2o_iovec_t q = query_of(req);
    char *buf = h2o_mem_alloc_pool(&req->pool, q.len + 1);
    size_t from = 0;
    int found = lk_query_find(q.base, q.len, name, &from, buf, q.len + 1);

    if (found != 1)
        return 0;
    *out = h2o_iovec_init(buf, strlen(buf));
    return 1;
}

static void trim(h2o_iovec_t *v)
{
    while (v->len > 0 && (v->base[0] == ' ' || v->base[0] == '\t')) {
        v->base++;
        v->len--;
    }
    while (v->len > 0 && (v->base[v->len - 1] == ' ' || v->base[v->len - 1] == '\t'))
        v->len--;
}

/* Takes one more candidate: the first non-empty one is the key; any other that
 * differs makes the request malformed. */
static enum lk_err consider(h2o_iovec_t *key, h2o_iovec_t v)
{
    trim(&v);
    if (v.len == 0)
        return LK_OK;
    if (v.len > LK_KEYREAD_MAX)
        return LK_ERR_MALFORMED_KEY;
    if (key->base == NULL)
        *key = v;
    else if (key->len != v.len || memcmp(key->base, v.base, v.len) != 0)
        return LK_ERR_MALFORMED_KEY;
    return LK_OK;
}

enum lk_err lk_keyread(h2o_req_t *req, h2o_iovec_t *key)
{
    return lk_keyread_query(req, query_of(req), key);
}

enum lk_err lk_keyread_query(h2o_req_t *req, h2o_iovec_t q, h2o_iovec_t *key)
{
    static const char *const headers[] = {"x-api-key", "x-auth-token"};
    h2o_iovec_t v;
    ssize_t i = -1;
    size_t from = 0;
    enum lk_err e;
    int found;

    *key = h2o_iovec_init(NULL, 0);
    /* Every occurrence of every place counts: a repeated header or query parameter
     * with a different key is as ambiguous as two places. */
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i)) != -1) {
        v = req->headers.entries[i].value;
        /* Only the Bearer scheme carries a key; other schemes are not ours. */
        if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) &&
            (e = consider(key, h2o_iovec_init(v.base + 7, v.len - 7))) != LK_OK)
            return e;
    }
    for (size_t h = 0; h < sizeof(headers) / sizeof(headers[0]); h++) {
        i = -1;
        while ((i = h2o_find_header_by_str(&req->headers, headers[h], strlen(headers[h]), i)) !=
               -1)
            if ((e = consider(key, req->headers.entries[i].value)) != LK_OK)
                return e;
    }
    while (from < q.len) {
        char *buf = h2o_mem_alloc_pool(&req->pool, LK_KEYREAD_MAX + 1);
        if ((found = lk_query_find(q.base, q.len, "auth_token", &from, buf, LK_KEYREAD_MAX + 1)) < 0)
            return LK_ERR_MALFORMED_KEY;
        if (found == 0)
            break;
        if ((e = consider(key, h2o_iovec_init(buf, strlen(buf)))) != LK_OK)
            return e;
    }
    return LK_OK;
}
