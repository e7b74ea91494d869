/*
 * counters_redis.c — the shared counters (counters/shared.h) in Redis, through
 * hiredis: one connection, one Lua script that reserves slices of a rate
 * window, of a workspace's 30-day quota and of a key's day spend, atomically on
 * the server. A thread keeps the connection: it dials with backoff while Redis
 * is away and pings it while it is there; callers never dial, so a check finds
 * a dead Redis at once instead of waiting on a connect.
 *
 * What is written (docs/operations.md "Redis"):
 *   latchkey:rl:<key rowid>              hash {s: window start ms, n: granted}, expires with the window
 *   latchkey:q:<workspace>:<l|t>:<day>   granted checks of a UTC day, expires after 31 days
 *   latchkey:sp:<key rowid>:<day>        granted spend of a UTC day, expires after 2 days
 *   latchkey:nrl:<key rowid>:<name hash> count of a named limit's window, expires with it
 */
#include "counters/shared.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "base/stats.h"
#include "core/quota.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define HOST_MAX 256
#define USER_MAX 128
#define PASS_MAX 512
#define PING_EVERY_MS 1000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define NAME_MAX_LEN 128
#define NKEYS 34 /* rate, 30 quota days, spend, the two days given back to */
#define NARGS 42 /* 11, the 30 quota floors and the spend floor */

/* The script (reserve.lua, built in): slices of a rate window, a quota and a day
 * spend, and what is given back, in one atomic call. The window opens at the
 * first grant, on the server's clock, so every node sees the same window. */
__asm__(".pushsection .rodata\n"
        ".global lk_reserve_lua\n"
        ".global lk_reserve_lua_end\n"
        "lk_reserve_lua:\n"
        ".incbin \"src/counters/reserve.lua\"\n"
        "lk_reserve_lua_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const char lk_reserve_lua[], lk_reserve_lua_end[];

/* named.lua: a key's named rate limits, all or none. Sent whole (EVAL): Redis
 * keeps its compiled form by its digest. */
__asm__(".pushsection .rodata\n"
        ".global lk_named_lua\n"
        ".global lk_named_lua_end\n"
        "lk_named_lua:\n"
        ".incbin \"src/counters/named.lua\"\n"
        "lk_named_lua_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const char lk_named_lua[], lk_named_lua_end[];
#define SCRIPT lk_reserve_lua
#define SCRIPT_LEN ((size_t)(lk_reserve_lua_end - lk_reserve_lua))

struct lk_shared {
    char host[HOST_MAX], user[USER_MAX], pass[PASS_MAX];
    int port;
    int64_t db;
    pthread_mutex_t mu; /* guards ctx and sha: one call on the connection at a time */
    redisContext *ctx;  /* NULL while down */
    char sha[48];
    _Atomic bool up;
    _Atomic(const char *) status; /* a static string */
    pthread_t thread;
    pthread_mutex_t wait_mu; /* guards stopping, with wake */
    pthread_cond_t wake;
    bool stopping;
};

/* --- the URL ----------------------------------------------------------------------- */

static bool decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? lk_hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? lk_hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

static enum lk_err bad_url(struct lk_errinfo *ei, const char *why)
{
    /* Never the URL itself: it may carry a password. */
    return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "redis", "redis URL: %s", why);
}

static enum lk_err parse_url(struct lk_shared *s, const char *url, struct lk_errinfo *ei)
{
    const char *p, *at, *slash, *end, *colon, *host;
    size_t hlen;
    int64_t v;

    if (strncmp(url, "redis://", 8) != 0)
        return bad_url(ei, "want redis://[:password@]host:port[/db]");
    p = url + 8;
    end = p + strlen(p);
    if ((at = strrchr(p, '@')) != NULL) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return bad_url(ei, "credentials want [user]:password@");
        if (!decode(p, (size_t)(colon - p), s->user, sizeof(s->user)) ||
            !decode(colon + 1, (size_t)(at - colon - 1), s->pass, sizeof(s->pass)))
            return bad_url(ei, "user or password too long or badly %-escaped");
        p = at + 1;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    if (slash == NULL)
        slash = end;
    host = p;
    if (*p == '[') { /* [IPv6]:port */
        const char *close = memchr(p, ']', (size_t)(slash - p));
        if (close == NULL)
            return bad_url(ei, "unclosed [ in host");
        host = p + 1;
        hlen = (size_t)(close - host);
        colon = close + 1 < slash && close[1] == ':' ? close + 1 : NULL;
        if (close + 1 < slash && colon == NULL)
            return bad_url(ei, "want host:port");
    } else {
        colon = memchr(p, ':', (size_t)(slash - p));
        hlen = (size_t)((colon ? colon : slash) - p);
    }
    if (hlen == 0 || hlen >= sizeof(s->host))
        return bad_url(ei, "missing or too long host");
    for (size_t i = 0; i < hlen; i++)
        if (host[i] <= 0x20 || host[i] >= 0x7f)
            return bad_url(ei, "host has spaces or odd bytes");
    memcpy(s->host, host, hlen);
    s->host[hlen] = '\0';
    s->port = 6379;
    if (colon != NULL) {
        if (lk_parse_i64(colon + 1, (size_t)(slash - colon - 1), 1, 65535, &v) != 0)
            return bad_url(ei, "port must be 1 to 65535");
        s->port = (int)v;
    }
    s->db = 0;
    if (slash < end && slash + 1 < end &&
        lk_parse_i64(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &s->db) != 0)
        return bad_url(ei, "database must be a number");
    return LK_OK;
}

void lk_shared_describe(const struct lk_shared *s, char *out, size_t cap)
{
    bool v6 = strchr(s->host, ':') != NULL;

    snprintf(out, cap, "redis://%s%s%s%s:%d/%lld", s->pass[0] ? "***@" : "", v6 ? "[" : "",
             s->host, v6 ? "]" : "", s->port, (long long)s->db);
}

/* --- the connection ---------------------------------------------------------------- */

static bool reply_ok(redisReply *r)
{
    bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;

    freeReplyObject(r);
    return ok;
}

/* A new connection, authenticated, on its database, with the script loaded;
 * NULL (and *why) if any step fails. */
static redisContext *dial(struct lk_shared *s, char sha[48], const char **why)
{
    struct timeval tv = {0, LK_SHARED_TIMEOUT_MS * 1000};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    redisReply *r;

    *why = "unreachable";
    if (c == NULL || c->err)
        goto fail;
    if (redisSetTimeout(c, tv) != REDIS_OK)
        goto fail;
    if (s->pass[0] != '\0') {
        r = s->user[0] != '\0'
                ? redisCommand(c, "AUTH %b %b", s->user, strlen(s->user), s->pass, strlen(s->pass))
                : redisCommand(c, "AUTH %b", s->pass, strlen(s->pass));
        if (!reply_ok(r)) {
            *why = c->err ? "unreachable" : "authentication refused";
            goto fail;
        }
    }
    if (s->db != 0 && !reply_ok(redisCommand(c, "SELECT %lld", (long long)s->db))) {
        *why = c->err ? "unreachable" : "database refused";
        goto fail;
    }
    r = redisCommand(c, "SCRIPT LOAD %b", SCRIPT, SCRIPT_LEN);
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len >= 48) {
        *why = c->err ? "unreachable" : "script refused";
        freeReplyObject(r);
        goto fail;
    }
    memcpy(sha, r->str, r->len);
    sha[r->len] = '\0';
    freeReplyObject(r);
    return c;
fail:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* Drops a broken connection; the keeper dials again. Caller holds s->mu. */
static void drop_locked(struct lk_shared *s, const char *why)
{
    char url[HOST_MAX + 64];

    if (s->ctx == NULL)
        return;
    redisFree(s->ctx);
    s->ctx = NULL;
    atomic_store(&s->up, false);
    atomic_store(&s->status, why);
    lk_shared_describe(s, url, sizeof(url));
    lk_warn("redis %s: connection lost (%s); checks that need it answer 503 until it is back",
            url, why);
    pthread_mutex_lock(&s->wait_mu);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->wait_mu);
}

/* Sleeps ms, or less when woken; false once stopping. */
static bool nap(struct lk_shared *s, int64_t ms)
{
    struct timespec t;
    bool go;

    t = lk_clock_after_ms(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&s->wait_mu);
    if (!s->stopping)
        pthread_cond_timedwait(&s->wake, &s->wait_mu, &t);
    go = !s->stopping;
    pthread_mutex_unlock(&s->wait_mu);
    return go;
}

/* The keeper: dials with backoff while down, pings while up. */
static void *keeper(void *arg)
{
    struct lk_shared *s = arg;
    int64_t backoff = BACKOFF_MIN_MS;
    char url[HOST_MAX + 64];
    bool warned = false;

    lk_shared_describe(s, url, sizeof(url));
    do {
        pthread_mutex_lock(&s->mu);
        bool connected = s->ctx != NULL;
        if (connected) {
            redisReply *r = redisCommand(s->ctx, "PING");
            bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
            freeReplyObject(r);
            if (!ok)
                drop_locked(s, "unreachable");
        }
        pthread_mutex_unlock(&s->mu);
        if (connected)
            continue;
        char sha[48];
        const char *why;
        redisContext *c = dial(s, sha, &why);
        if (c == NULL) {
            atomic_store(&s->status, why);
            if (!warned)
                lk_warn("redis %s: %s; retrying with backoff", url, why);
            warned = true;
            backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
            continue; /* naps for the backoff below */
        }
        pthread_mutex_lock(&s->mu);
        s->ctx = c;
        memcpy(s->sha, sha, sizeof(s->sha));
        atomic_store(&s->status, "ok");
        atomic_store(&s->up, true);
        pthread_mutex_unlock(&s->mu);
        lk_info("redis %s: connected", url);
        warned = false;
        backoff = BACKOFF_MIN_MS;
    } while (nap(s, atomic_load(&s->up) ? PING_EVERY_MS : backoff));
    return NULL;
}

enum lk_err lk_shared_open(const char *url, struct lk_shared **out, struct lk_errinfo *ei)
{
    struct lk_shared *s = lk_calloc(1, sizeof(*s));
    enum lk_err e;

    *out = NULL;
    if ((e = parse_url(s, url, ei)) != LK_OK) {
        OPENSSL_cleanse(s, sizeof(*s));
        free(s);
        return e;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->wait_mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    atomic_init(&s->up, false);
    atomic_init(&s->status, "connecting");
    lk_assert(pthread_create(&s->thread, NULL, keeper, s) == 0);
    pthread_setname_np(s->thread, "lk-redis");
    *out = s;
    return LK_OK;
}

void lk_shared_free(struct lk_shared *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->wait_mu);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->wait_mu);
    pthread_join(s->thread, NULL);
    if (s->ctx != NULL)
        redisFree(s->ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->wait_mu);
    pthread_cond_destroy(&s->wake);
    OPENSSL_cleanse(s->pass, sizeof(s->pass));
    free(s);
}

bool lk_shared_up(const struct lk_shared *s)
{
    return atomic_load_explicit(&s->up, memory_order_relaxed);
}

const char *lk_shared_status(const struct lk_shared *s)
{
    return atomic_load(&s->status);
}

/* --- one reservation --------------------------------------------------------------- */

/* The end of a call on the connection (s->mu held since t0): unlocks and
 * counts it for the metrics. */
static void call_end(struct lk_shared *s, enum lk_err e, uint64_t t0)
{
    pthread_mutex_unlock(&s->mu);
    lk_stats_add(LK_STAT_SHARED_CALLS, 1);
    if (e != LK_OK)
        lk_stats_add(LK_STAT_SHARED_ERRORS, 1);
    else
        lk_stats_observe(LK_HIST_SHARED, lk_stats_now_ns() - t0);
}

static bool int_reply(const redisReply *r, size_t i, int64_t *v)
{
    if (r->element[i]->type != REDIS_REPLY_INTEGER)
        return false;
    *v = r->element[i]->integer;
    return true;
}

enum lk_err lk_shared_reserve(struct lk_shared *s, const struct lk_shared_req *q,
                              struct lk_shared_grant *g)
{
    char names[NKEYS][NAME_MAX_LEN], nums[NARGS][24], nkeys[8];
    const char *argv[3 + NKEYS + NARGS];
    size_t lens[3 + NKEYS + NARGS];
    char env = q->test ? 't' : 'l';
    int64_t args[NARGS] = {q->rl_want,  q->rl_limit, q->rl_window_s * 1000,
                           q->q_want,   q->q_min,    q->q_limit,
                           q->sp_want,  q->sp_min,   q->sp_cap,
                           q->q_ret_n,  q->sp_ret_n};

    _Static_assert(LK_QUOTA_DAYS == 30, "reserve.lua sums 30 days");
    for (int d = 0; d < LK_QUOTA_DAYS; d++)
        args[11 + d] = q->q_least[d];
    args[41] = q->sp_least;
    redisReply *r;
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    uint64_t t0;
    int n = 0;

    memset(g, 0, sizeof(*g));
    snprintf(names[0], NAME_MAX_LEN, "latchkey:rl:%lld", (long long)q->key_rowid);
    for (int d = 0; d < LK_QUOTA_DAYS; d++)
        snprintf(names[1 + d], NAME_MAX_LEN, "latchkey:q:%s:%c:%lld", q->ws_id, env,
                 (long long)(q->q_day - (LK_QUOTA_DAYS - 1) + d));
    snprintf(names[31], NAME_MAX_LEN, "latchkey:sp:%lld:%lld", (long long)q->key_rowid,
             (long long)q->sp_day);
    snprintf(names[32], NAME_MAX_LEN, "latchkey:q:%s:%c:%lld", q->ws_id, env,
             (long long)q->q_ret_day);
    snprintf(names[33], NAME_MAX_LEN, "latchkey:sp:%lld:%lld", (long long)q->key_rowid,
             (long long)q->sp_ret_day);
    snprintf(nkeys, sizeof(nkeys), "%d", NKEYS);
    argv[n] = "EVALSHA", lens[n++] = 7;
    argv[n++] = NULL; /* the script or its sha, below */
    argv[n] = nkeys, lens[n] = strlen(nkeys), n++;
    for (int i = 0; i < NKEYS; i++)
        argv[n] = names[i], lens[n] = strlen(names[i]), n++;
    for (int i = 0; i < NARGS; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)args[i]);
        argv[n] = nums[i], lens[n] = strlen(nums[i]), n++;
    }
    t0 = lk_stats_now_ns();
    pthread_mutex_lock(&s->mu);
    if (s->ctx == NULL)
        goto out;
    argv[1] = s->sha, lens[1] = strlen(s->sha);
    r = redisCommandArgv(s->ctx, n, argv, lens);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* Redis lost its script cache (a restart, SCRIPT FLUSH): send it whole. */
        freeReplyObject(r);
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = SCRIPT, lens[1] = SCRIPT_LEN;
        r = redisCommandArgv(s->ctx, n, argv, lens);
    }
    if (r == NULL) {
        drop_locked(s, "unreachable"); /* an I/O error or the timeout */
        goto out;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 7 && int_reply(r, 0, &g->rl_grant) &&
        int_reply(r, 1, &g->rl_left) && int_reply(r, 2, &g->rl_ttl_ms) &&
        int_reply(r, 3, &g->q_grant) && int_reply(r, 4, &g->q_left) &&
        int_reply(r, 5, &g->sp_grant) && int_reply(r, 6, &g->sp_left))
        e = LK_OK;
    else if (r->type == REDIS_REPLY_ERROR)
        lk_warn("redis refused a reservation: %.120s", r->str); /* Redis's own words */
    else
        lk_warn("redis answered a reservation with something else");
    freeReplyObject(r);
out:
    call_end(s, e, t0);
    if (e != LK_OK)
        memset(g, 0, sizeof(*g));
    return e;
}

/* --- a key's named rate limits ------------------------------------------------------ */

#define NAMED_MAX 8

/* One call of named.lua; *reply (caller frees) is its answer. */
static enum lk_err named_call(struct lk_shared *s, int64_t key_rowid, const struct lk_shared_named *l,
                              int n, bool take, redisReply **reply)
{
    char names[NAMED_MAX][NAME_MAX_LEN], nums[NAMED_MAX * 3][24], nkeys[8];
    const char *argv[3 + NAMED_MAX + 1 + NAMED_MAX * 3];
    size_t lens[3 + NAMED_MAX + 1 + NAMED_MAX * 3];
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    redisReply *r;
    uint64_t t0;
    int a = 0;

    *reply = NULL;
    if (n <= 0 || n > NAMED_MAX)
        return n == 0 ? LK_OK : LK_ERR_INTERNAL;
    snprintf(nkeys, sizeof(nkeys), "%d", n);
    argv[a] = "EVAL", lens[a++] = 4;
    argv[a] = lk_named_lua, lens[a++] = (size_t)(lk_named_lua_end - lk_named_lua);
    argv[a] = nkeys, lens[a] = strlen(nkeys), a++;
    for (int i = 0; i < n; i++) {
        snprintf(names[i], NAME_MAX_LEN, "latchkey:nrl:%lld:%016llx", (long long)key_rowid,
                 (unsigned long long)l[i].name_hash);
        argv[a] = names[i], lens[a] = strlen(names[i]), a++;
    }
    argv[a] = take ? "take" : "give", lens[a] = 4, a++;
    for (int i = 0; i < n; i++) {
        const int64_t v[3] = {l[i].limit, l[i].window_ms, l[i].cost};
        for (int j = 0; j < 3; j++) {
            snprintf(nums[i * 3 + j], sizeof(nums[0]), "%lld", (long long)v[j]);
            argv[a] = nums[i * 3 + j], lens[a] = strlen(nums[i * 3 + j]), a++;
        }
    }
    t0 = lk_stats_now_ns();
    pthread_mutex_lock(&s->mu);
    if (s->ctx == NULL)
        goto out;
    r = redisCommandArgv(s->ctx, a, argv, lens);
    if (r == NULL) {
        drop_locked(s, "unreachable"); /* an I/O error or the timeout */
        goto out;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == (take ? 1 + 2 * (size_t)n : 1)) {
        *reply = r;
        e = LK_OK;
    } else {
        if (r->type == REDIS_REPLY_ERROR)
            lk_warn("redis refused a named rate limit: %.120s", r->str); /* Redis's own words */
        else
            lk_warn("redis answered a named rate limit with something else");
        freeReplyObject(r);
    }
out:
    call_end(s, e, t0);
    return e;
}

enum lk_err lk_shared_named_take(struct lk_shared *s, int64_t key_rowid, struct lk_shared_named *l,
                                 int n, int *refused)
{
    redisReply *r;
    int64_t first = 0;
    enum lk_err e = named_call(s, key_rowid, l, n, true, &r);

    *refused = -1;
    if (e != LK_OK || r == NULL)
        return e;
    if (!int_reply(r, 0, &first) || first < 0 || first > n)
        e = LK_ERR_STORAGE_UNAVAILABLE;
    for (int i = 0; i < n && e == LK_OK; i++)
        if (!int_reply(r, 1 + 2 * (size_t)i, &l[i].count) ||
            !int_reply(r, 2 + 2 * (size_t)i, &l[i].ttl_ms))
            e = LK_ERR_STORAGE_UNAVAILABLE;
    if (e == LK_OK)
        *refused = (int)first - 1;
    freeReplyObject(r);
    return e;
}

enum lk_err lk_shared_named_give(struct lk_shared *s, int64_t key_rowid,
                                 const struct lk_shared_named *l, int n)
{
    redisReply *r;
    enum lk_err e = named_call(s, key_rowid, l, n, false, &r);

    if (r != NULL)
        freeReplyObject(r);
    return e;
}
