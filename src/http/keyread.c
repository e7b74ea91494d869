#include "http/keyread.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* URL-decodes s[0..len) into pool memory ('+' is a space, bad escapes stay as they are). */
static h2o_iovec_t url_decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    return h2o_iovec_init(out, n);
}

/* Finds the next query parameter `name` at or after *from (a byte offset into the
 * query string), URL-decoding it into pool memory. */
static int query_param_from(h2o_req_t *req, const char *name, size_t *from, h2o_iovec_t *out)
{
    size_t nlen = strlen(name);
    const char *q, *end;

    if (req->query_at == SIZE_MAX)
        return 0;
    q = req->path.base + req->query_at + 1 + *from;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : stop;
            *out = url_decode(&req->pool, v, (size_t)(stop - v));
            *from = (size_t)(stop - (req->path.base + req->query_at + 1));
            return 1;
        }
        q = stop + 1;
    }
    return 0;
}

int lk_query_param(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    size_t from = 0;
    return query_param_from(req, name, &from, out);
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
    static const char *const headers[] = {"x-api-key", "x-auth-token"};
    h2o_iovec_t v;
    ssize_t i = -1;
    size_t from = 0;
    enum lk_err e;

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
    while (query_param_from(req, "auth_token", &from, &v))
        if ((e = consider(key, v)) != LK_OK)
            return e;
    return LK_OK;
}
