#include "http/accesslog.h"

#include <stdatomic.h>

#include "base/common.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define METHOD_MAX 16 /* longer methods are cut in the log line */
#define ACCESS_LINE_MAX 512

_Static_assert(LK_ERR__COUNT <= LK_STATS_CODES, "LK_STATS_CODES must cover err.def");

struct note {
    uint64_t start_ns;
    const char *route; /* a route-table pattern, or NULL when none matched */
    int endpoint;      /* enum lk_stats_hist of a check endpoint, or -1 */
    enum lk_err code;
    bool has_code, code_fixed;
    char request_id[24];
    char key_id[32];
};

static atomic_bool enabled = true;
static const char marker[] = "latchkey-note"; /* its address names the env slot */

void lk_accesslog_set_enabled(bool on)
{
    atomic_store(&enabled, on);
}

static struct note *find(h2o_req_t *req)
{
    if (req->env.size >= 2 && req->env.entries[0].base == marker)
        return (struct note *)req->env.entries[1].base;
    return NULL;
}

/* The note of req, made when there is none yet (h2o's own errors come without). */
static struct note *note_of(h2o_req_t *req)
{
    struct note *n = find(req);

    if (n != NULL)
        return n;
    n = h2o_mem_alloc_pool(&req->pool, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->endpoint = -1;
    n->start_ns = lk_stats_now_ns();
    /* Put first, so find() looks at one place. */
    h2o_vector_reserve(&req->pool, &req->env, req->env.size + 2);
    memmove(req->env.entries + 2, req->env.entries, req->env.size * sizeof(h2o_iovec_t));
    req->env.entries[0] = h2o_iovec_init(marker, sizeof(marker));
    req->env.entries[1] = h2o_iovec_init(n, sizeof(*n));
    req->env.size += 2;
    return n;
}

void lk_accesslog_begin(h2o_req_t *req, const char *request_id)
{
    struct note *n = note_of(req);

    lk_strcopy(n->request_id, sizeof(n->request_id), request_id);
}

void lk_accesslog_route(h2o_req_t *req, const char *pattern, int endpoint)
{
    struct note *n = note_of(req);

    n->route = pattern;
    n->endpoint = endpoint;
}

void lk_accesslog_outcome(h2o_req_t *req, enum lk_err e, const char *key_id)
{
    struct note *n = note_of(req);

    n->code = e;
    n->has_code = n->code_fixed = true;
    if (key_id != NULL)
        lk_strcopy(n->key_id, sizeof(n->key_id), key_id);
}

void lk_accesslog_key(h2o_req_t *req, const char *key_id)
{
    lk_strcopy(note_of(req)->key_id, sizeof(((struct note *)NULL)->key_id), key_id);
}

void lk_accesslog_sent(h2o_req_t *req, enum lk_err e)
{
    struct note *n = note_of(req);

    if (!n->code_fixed) {
        n->code = e;
        n->has_code = true;
    }
}

/* Appends s to the line, `{}` of a pattern written as `{id}`. */
static size_t put_route(char *p, size_t cap, const char *s)
{
    size_t o = 0;

    for (; *s != '\0' && o + 5 < cap; s++) {
        if (s[0] == '{' && s[1] == '}') {
            memcpy(p + o, "{id}", 4);
            o += 4;
            s++;
        } else {
            p[o++] = *s;
        }
    }
    return o;
}

/* The method is the client's: only token characters, at most METHOD_MAX. */
static size_t put_method(char *p, h2o_iovec_t m)
{
    size_t n = m.len < METHOD_MAX ? m.len : METHOD_MAX;

    for (size_t i = 0; i < n; i++) {
        char c = m.base[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        p[i] = ok ? c : '?';
    }
    return n;
}

static void write_line(h2o_req_t *req, const struct note *n, uint64_t ns)
{
    char line[ACCESS_LINE_MAX], stamp[32];
    size_t o;
    int k;

    lk_log_stamp(stamp);
    k = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"info\",\"type\":\"access\","
                 "\"request_id\":", stamp);
    o = (size_t)k;
    if (n != NULL && n->request_id[0] != '\0')
        o += (size_t)snprintf(line + o, sizeof(line) - o, "\"%s\"", n->request_id);
    else
        o += (size_t)snprintf(line + o, sizeof(line) - o, "null");
    o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"method\":\"");
    o += put_method(line + o, req->method);
    o += (size_t)snprintf(line + o, sizeof(line) - o, "\",\"route\":");
    if (n != NULL && n->route != NULL) {
        line[o++] = '"';
        o += put_route(line + o, 128, n->route);
        line[o++] = '"';
    } else {
        o += (size_t)snprintf(line + o, sizeof(line) - o, "null");
    }
    o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"status\":%d,\"code\":", req->res.status);
    if (n != NULL && n->has_code && (n->code != LK_OK || n->endpoint >= 0))
        o += (size_t)snprintf(line + o, sizeof(line) - o, "\"%s\"", lk_err_code(n->code));
    else
        o += (size_t)snprintf(line + o, sizeof(line) - o, "null");
    if (n != NULL && n->key_id[0] != '\0')
        o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"key_id\":\"%s\"", n->key_id);
    else
        o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"key_id\":null");
    o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"latency_us\":%llu}",
                          (unsigned long long)(ns / 1000));
    if (o < sizeof(line))
        lk_log_access(line, o);
}

static void on_dispose(h2o_logger_t *self, h2o_req_t *req)
{
    struct note *n = find(req);
    uint64_t ns = n != NULL ? lk_stats_now_ns() - n->start_ns : 0;

    (void)self;
    if (n != NULL && n->endpoint >= 0 && n->has_code)
        lk_stats_check((enum lk_stats_hist)n->endpoint, (unsigned)n->code, ns);
    if (atomic_load_explicit(&enabled, memory_order_relaxed) && lk_log_enabled(LK_LOG_INFO))
        write_line(req, n, ns);
}

void lk_accesslog_register(h2o_pathconf_t *pathconf)
{
    h2o_logger_t *l = h2o_create_logger(pathconf, sizeof(*l));

    l->log_access = on_dispose;
}
