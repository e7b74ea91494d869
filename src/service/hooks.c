#include "service/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "base/rand.h"
#include "core/digest.h"
#include "core/quota.h"
#include "core/quote.h"
#include "core/timefmt.h"
#include "service/app_int.h"
#include "service/audit.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define MASTER_LEN 32
#define QUEUE_MAX 65536 /* signals held for the writer; more wait for the next flush */
#define CLAIM_BATCH 8   /* deliveries sent at once */
#define POLL_MS 250     /* how often the delivery thread looks for due work */
#define CLAIM_GAP_MS 20 /* at least this between two claims (each reads every due row) */
#define LEASE_MARGIN_MS 30000
#define LOOKUPS_STALE_MAX 64 /* given-up name lookups still running; past it, no new ones */
#define BACKOFF_CAP_MS (10LL * 3600 * 1000)
#define WORKSPACES_TTL_S 5 /* which workspaces have endpoints is read again after this */
#define MAP_BUCKETS 1024
#define MAP_MAX 200000      /* remembered alarm states; past it the map starts again */
#define KEEP_S (30 * 86400) /* finished events and the delivery log are kept this long */
#define PRUNE_EVERY_S 3600

enum sig_kind { SIG_WS = 1, SIG_CAP = 2 };

/* What the recorder hands the writer: which workspace or key to look at. */
struct sig {
    int kind;
    char ws[LK_ID_MAX];
    int64_t rowid, day;
};

/* The writer's memory of alarms it set or cleared and thresholds it read:
 * each state moves in the store once per change, not every second. */
struct ment {
    char *name;
    int64_t v, at;
    struct ment *next;
};

struct lk_hooks {
    struct lk_app *app;
    struct lk_hooks_config cfg;
    uint8_t master[MASTER_LEN];
    bool have_key;
    char node_id[LK_ID_MAX];
    _Atomic(lk_hook_send_fn) send;

    pthread_mutex_t mu; /* guards the queue, stopping and the wake-ups */
    pthread_cond_t wcv, dcv;
    bool stopping, running;
    struct sig *q;
    size_t nq, qcap;
    pthread_t writer, deliverer;

    struct ment *map[MAP_BUCKETS]; /* the writer thread's only */
    size_t nmap;
    int64_t gen, gen_at; /* the last read of the workspaces with endpoints, and when */
    int64_t pruned_at;
    struct lookup *stale; /* the delivery thread's only, then lk_hooks_free's */
    int64_t claimed_at;   /* the delivery thread's last claim */
};

/* --- small pieces ---------------------------------------------------------------------- */

static const char *const types[] = {
#define T_(s) s,
    LK_HOOK_TYPES(T_)
#undef T_
};

static bool known_type(const char *t, size_t n)
{
    for (size_t i = 0; i < LK_ARRAY_LEN(types); i++)
        if (strlen(types[i]) == n && memcmp(types[i], t, n) == 0)
            return true;
    return false;
}

/* "evt_" and 18 hex digits of SHA-256 over the parts joined by NULs: the same
 * crossing detected twice (after a restart, on another node) has one id. */
static void derived_id(char out[LK_ID_MAX], const char *a, const char *b, const char *c)
{
    char buf[512];
    uint8_t d[LK_DIGEST_LEN];
    int n = snprintf(buf, sizeof(buf), "%s%c%s%c%s", a, 0, b, 0, c);

    lk_sha256(buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf), d);
    memcpy(out, "evt_", 4);
    for (int i = 0; i < 9; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", d[i]);
}

static void day_text(int64_t day, char out[16])
{
    char t[LK_TIME_STRLEN];

    lk_time_format(day * 86400, t);
    snprintf(out, 16, "%.10s", t);
}

/* Writes event `type` of ws with `data` (taken) as its payload, if some
 * endpoint subscribes to it. Inside the caller's transaction. */
static enum lk_err put_event(struct lk_store *s, const char *ws, const char *type, const char *id,
                             json_t *data, int64_t now)
{
    struct lk_hook_event_row ev = {.created_at = now};
    char ts[LK_TIME_STRLEN];
    json_t *doc;
    char *text;
    enum lk_err e;

    lk_time_format(now, ts);
    doc = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "type", type, "timestamp", ts, "data", data);
    text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text == NULL || strlen(text) > LK_HOOK_PAYLOAD_MAX) {
        /* Never the reason a change (a revocation above all) fails: the event is
         * dropped, loudly. */
        lk_error("webhook event %s (%s) could not be built; not sent", id, type);
        free(text);
        return LK_OK;
    }
    snprintf(ev.id, sizeof(ev.id), "%s", id);
    snprintf(ev.workspace_id, sizeof(ev.workspace_id), "%s", ws);
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.payload, sizeof(ev.payload), "%s", text);
    free(text);
    e = lk_store_hook_event_insert(s, &ev, lk_clock_now_ms(), NULL);
    return e;
}

static const char *env_name(enum lk_env env)
{
    return env == LK_ENV_TEST ? "test" : "live";
}

/* A JSON string of s, or of "?" for text that is not UTF-8 (a name written to
 * the database by something else): an event is never refused for it. */
static json_t *text_of(const char *s)
{
    return json_string(lk_utf8_valid(s, strlen(s)) ? s : "?");
}

static json_t *key_data(const struct lk_key_row *k)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:s}", "key_id", text_of(k->id), "workspace_id",
                     text_of(k->workspace_id), "name", text_of(k->name), "hint", text_of(k->hint),
                     "environment", env_name(k->env));
}

/* --- events of management calls -------------------------------------------------------- */

enum lk_err lk_hooks_key_created(struct lk_store *s, const struct lk_actor *who,
                                 const struct lk_key_row *k, int64_t now)
{
    char id[LK_ID_MAX];
    json_t *d = key_data(k);

    lk_rand_id("evt_", id, sizeof(id));
    json_object_set_new(d, "actor", json_string(who->id));
    return put_event(s, k->workspace_id, "key.created", id, d, now);
}

enum lk_err lk_hooks_key_leaked(struct lk_store *s, const struct lk_key_row *k, const char *source,
                                int64_t now)
{
    char id[LK_ID_MAX];
    json_t *d = key_data(k);

    lk_rand_id("evt_", id, sizeof(id));
    if (source != NULL)
        json_object_set_new(d, "source", json_stringn(source, strnlen(source, 2048)));
    return put_event(s, k->workspace_id, "key.leaked", id, d, now);
}

enum lk_err lk_hooks_key_changed(struct lk_store *s, const struct lk_actor *who, const char *action,
                                 const struct lk_key_row *old, const struct lk_key_row *k,
                                 int64_t now)
{
    char id[LK_ID_MAX];
    json_t *d;

    if (old->revoked_at != 0 || k->revoked_at == 0)
        return LK_OK; /* only the revocation itself is an event */
    if (action != NULL && strstr(action, "leak") != NULL)
        return lk_hooks_key_leaked(s, k, NULL, now);
    lk_rand_id("evt_", id, sizeof(id));
    d = key_data(k);
    json_object_set_new(d, "actor", json_string(who->id));
    return put_event(s, k->workspace_id, "key.revoked", id, d, now);
}

/* --- the writer: crossings found after the recorder's flush ------------------------------ */

void lk_hooks_observe(struct lk_hooks *h, const struct lk_counters_batch *b, int64_t now)
{
    if (h == NULL || !h->running)
        return;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < b->rows.n + b->nspends && h->nq < QUEUE_MAX; i++) {
        struct sig g = {0};
        if (i >= b->rows.n) {
            g.kind = SIG_WS;
            snprintf(g.ws, sizeof(g.ws), "%s", lk_wstate_id(b->spends[i - b->rows.n].ws));
        } else if (b->rows.kinds[i] == LK_CTR_QUOTA) {
            g.kind = SIG_WS;
            snprintf(g.ws, sizeof(g.ws), "%s", b->rows.rows[i].workspace_id);
        } else if (b->rows.kinds[i] == LK_CTR_USAGE &&
                   b->rows.rows[i].code == LK_ERR_SPEND_CAP_EXCEEDED) {
            g.kind = SIG_CAP;
            g.rowid = b->rows.rows[i].key_rowid;
            g.day = lk_day_of(b->rows.rows[i].period);
        } else {
            continue;
        }
        h->q = lk_grow(h->q, h->nq, &h->qcap, sizeof(*h->q));
        h->q[h->nq++] = g;
    }
    (void)now;
    if (h->nq > 0)
        pthread_cond_signal(&h->wcv);
    pthread_mutex_unlock(&h->mu);
}

static uint64_t str_hash(const char *s)
{
    uint64_t x = 1469598103934665603u;

    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211u;
    return x;
}

static void map_clear(struct lk_hooks *h)
{
    for (size_t i = 0; i < MAP_BUCKETS; i++) {
        struct ment *m = h->map[i], *n;
        for (; m != NULL; m = n) {
            n = m->next;
            free(m->name);
            free(m);
        }
        h->map[i] = NULL;
    }
    h->nmap = 0;
    h->gen_at = 0; /* the workspaces with endpoints are read again at once */
}

static struct ment *map_get(struct lk_hooks *h, const char *name, bool make)
{
    size_t b = str_hash(name) % MAP_BUCKETS;
    struct ment *m;

    for (m = h->map[b]; m != NULL; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    if (!make)
        return NULL;
    if (h->nmap >= MAP_MAX)
        map_clear(h); /* bounded: forgetting only costs one more store write each */
    m = lk_calloc(1, sizeof(*m));
    m->name = lk_strndup(name, strlen(name));
    m->v = -2; /* unknown */
    m->next = h->map[b];
    h->map[b] = m;
    h->nmap++;
    return m;
}

struct alarm_txn {
    const char *ws, *alarm, *type;
    bool set;
    json_t *data; /* taken by the first run */
    int64_t now;
};

static enum lk_err alarm_txn(struct lk_store *s, void *arg)
{
    struct alarm_txn *a = arg;
    char id[LK_ID_MAX], day[24];
    bool changed = false;
    enum lk_err e;

    if ((e = lk_store_hook_alarm(s, a->ws, a->alarm, a->set, a->now, &changed)) != LK_OK)
        return e;
    if (!a->set || !changed)
        return LK_OK; /* already raised: by an earlier start or another node */
    snprintf(day, sizeof(day), "%lld", (long long)lk_day_of(a->now));
    derived_id(id, a->ws, a->alarm, day);
    return put_event(s, a->ws, a->type, id, json_deep_copy(a->data), a->now);
}

/* Moves alarm `alarm` of ws to `on`, writing event `type` (data, taken) when it
 * rises. Remembers the state, so an unchanged one costs nothing. */
static void move_alarm(struct lk_hooks *h, const char *ws, const char *alarm_name, const char *type,
                       bool on, json_t *data, int64_t now)
{
    char key[160];
    struct ment *m;

    snprintf(key, sizeof(key), "a|%s|%s", ws, alarm_name);
    m = map_get(h, key, true);
    if (m->v == (on ? 1 : 0)) {
        json_decref(data);
        return;
    }
    struct alarm_txn a = {ws, alarm_name, type, on, data, now};
    if (lk_store_txn(h->app->store, LK_TXN_BACKGROUND, alarm_txn, &a) == LK_OK)
        m->v = on ? 1 : 0; /* else: tried again at the next flush */
    json_decref(data);
}

static void check_quota(struct lk_hooks *h, const char *ws, int64_t now)
{
    struct lk_wstate *st = lk_counters_find_ws(h->app->counters, ws);
    struct lk_quota_view v;
    int64_t today = lk_day_of(now);

    if (st == NULL)
        return;
    lk_counters_quota_view(st, &v);
    for (int test = 0; test < 2; test++) {
        int64_t quota = test ? v.test_quota : v.quota;
        int64_t used = lk_quota_used(test ? &v.test : &v.live, today);
        const char *env = test ? "test" : "live";
        static const struct {
            const char *type;
            int pct;
        } marks[] = {{"quota.warning", 80}, {"quota.exhausted", 100}};
        if (quota <= 0)
            continue;
        for (size_t i = 0; i < LK_ARRAY_LEN(marks); i++) {
            char name[96];
            bool on = used * 100 >= quota * marks[i].pct;
            /* the limit is in the name: a new quota is a new crossing */
            snprintf(name, sizeof(name), "%s:%s:%lld", marks[i].type, env, (long long)quota);
            move_alarm(h, ws, name, marks[i].type, on,
                       on ? json_pack("{s:s, s:s, s:I, s:I, s:i}", "workspace_id", ws,
                                      "environment", env, "used", (json_int_t)used, "quota",
                                      (json_int_t)quota, "percent", marks[i].pct)
                          : NULL,
                       now);
        }
    }
}

/* The workspace's entry in the last read of the workspaces with endpoints
 * (v: its credits threshold); NULL when it has none: nothing to look at. */
static struct ment *subscribed(struct lk_hooks *h, const char *ws)
{
    char key[64];
    struct ment *m;

    snprintf(key, sizeof(key), "w|%s", ws);
    m = map_get(h, key, false);
    return m != NULL && m->at == h->gen ? m : NULL;
}

static int note_ws(void *arg, const char *ws, int64_t threshold)
{
    struct lk_hooks *h = arg;
    char key[64];
    struct ment *m;

    snprintf(key, sizeof(key), "w|%s", ws);
    m = map_get(h, key, true);
    m->v = threshold;
    m->at = h->gen;
    return 0;
}

/* One query every few seconds, not one per workspace: a workspace without
 * endpoints costs the writer nothing but this lookup. */
static void refresh_workspaces(struct lk_hooks *h, int64_t now)
{
    if (h->gen != 0 && now - h->gen_at < WORKSPACES_TTL_S)
        return;
    h->gen++;
    if (lk_store_hook_workspaces(h->app->store, note_ws, h) == LK_OK)
        h->gen_at = now;
}

static void check_credits(struct lk_hooks *h, const char *ws, int64_t threshold, int64_t now)
{
    struct lk_credit_account acc;
    int64_t remaining;
    char name[96];

    if (threshold < 0 || lk_store_credits_get(h->app->store, ws, &acc) != LK_OK)
        return;
    remaining = acc.balance + acc.leased;
    if (remaining >= threshold)
        return; /* a top-up is a new alarm name (below): nothing to clear */
    /* topped_up in the name: each top-up arms the alarm again */
    snprintf(name, sizeof(name), "credits.low:%lld:%lld", (long long)threshold,
             (long long)acc.topped_up);
    move_alarm(h, ws, name, "credits.low", true,
               json_pack("{s:s, s:I, s:I}", "workspace_id", ws, "remaining", (json_int_t)remaining,
                         "threshold", (json_int_t)threshold),
               now);
}

struct cap_txn {
    const struct lk_key_row *k;
    int64_t day, now;
};

static enum lk_err cap_txn(struct lk_store *s, void *arg)
{
    struct cap_txn *c = arg;
    char id[LK_ID_MAX], day[16], dn[24];
    json_t *d = key_data(c->k);

    day_text(c->day, day);
    snprintf(dn, sizeof(dn), "%lld", (long long)c->day);
    derived_id(id, c->k->id, "spend_cap.reached", dn);
    json_object_set_new(d, "day", json_string(day));
    json_object_set_new(d, "daily_spend_cap", json_integer(c->k->daily_spend_cap));
    return put_event(s, c->k->workspace_id, "spend_cap.reached", id, d, c->now);
}

static void check_cap(struct lk_hooks *h, int64_t rowid, int64_t day, int64_t now)
{
    char key[64];
    struct ment *m;
    struct lk_key_row k;

    snprintf(key, sizeof(key), "c|%lld|%lld", (long long)rowid, (long long)day);
    m = map_get(h, key, true);
    if (m->v == 1)
        return;
    memset(&k, 0, sizeof(k));
    if (lk_store_key_get_by_rowid(h->app->store, rowid, &k) == LK_OK &&
        lk_store_txn(h->app->store, LK_TXN_BACKGROUND, cap_txn, &(struct cap_txn){&k, day, now}) ==
            LK_OK)
        m->v = 1;
    lk_key_row_release(&k);
}

static int sig_cmp(const void *a, const void *b)
{
    const struct sig *x = a, *y = b;
    int c;

    if (x->kind != y->kind)
        return x->kind - y->kind;
    if ((c = strcmp(x->ws, y->ws)) != 0)
        return c;
    if (x->rowid != y->rowid)
        return x->rowid < y->rowid ? -1 : 1;
    return (x->day > y->day) - (x->day < y->day);
}

static void *writer_main(void *arg)
{
    struct lk_hooks *h = arg;

    lk_keycache_thread_online();
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t t = lk_clock_now_s();
        if (t - h->pruned_at >= PRUNE_EVERY_S) {
            pthread_mutex_unlock(&h->mu);
            if (lk_store_hook_prune(h->app->store, t - KEEP_S, (t - KEEP_S) * 1000) == LK_OK)
                h->pruned_at = t;
            else
                h->pruned_at = t - PRUNE_EVERY_S + 60; /* again in a minute */
            pthread_mutex_lock(&h->mu);
            continue;
        }
        if (h->nq == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 60; /* wakes for the hourly prune too */
            pthread_cond_timedwait(&h->wcv, &h->mu, &ts);
            continue;
        }
        struct sig *q = h->q;
        size_t n = h->nq;
        h->q = NULL;
        h->nq = h->qcap = 0;
        pthread_mutex_unlock(&h->mu);
        int64_t now = lk_clock_now_s();
        qsort(q, n, sizeof(*q), sig_cmp);
        refresh_workspaces(h, now);
        for (size_t i = 0; i < n; i++) {
            struct ment *sub;
            if (i > 0 && sig_cmp(&q[i], &q[i - 1]) == 0)
                continue;
            if (q[i].kind == SIG_WS) {
                if ((sub = subscribed(h, q[i].ws)) == NULL)
                    continue;
                int64_t threshold = sub->v;
                check_quota(h, q[i].ws, now);
                check_credits(h, q[i].ws, threshold, now);
            } else {
                check_cap(h, q[i].rowid, q[i].day, now);
            }
        }
        free(q);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    lk_keycache_thread_offline();
    return NULL;
}

/* --- delivery ---------------------------------------------------------------------- */

struct job {
    struct lk_hook_job j;
    struct lk_hookurl url;
    struct sockaddr_storage addr;
    unsigned addrlen;
    char headers[512];
    struct lk_hook_request req;
    struct lookup *lookup; /* while its host's name is looked up */
    int64_t claimed_ms;
    bool ready, started;
};

/* What this node's delivery thread holds: claimed, being resolved or in flight. */
struct held {
    struct job *v[LK_HOOK_IN_FLIGHT];
    size_t n;
};

static int on_job(void *arg, const struct lk_hook_job *j)
{
    struct held *c = arg;
    struct job *jb;

    if (c->n == LK_HOOK_IN_FLIGHT)
        return 1;
    jb = lk_calloc(1, sizeof(*jb));
    jb->j = *j;
    c->v[c->n++] = jb;
    return 0;
}

/* A name lookup of its own (getaddrinfo_a), so a resolver that does not
 * answer holds the delivery thread for at most the timeout. One given up on
 * while glibc's helper thread still runs it cannot be freed yet: it waits in
 * h->stale until it ends. */
struct lookup {
    struct gaicb cb;
    struct addrinfo hints;
    char host[LK_HOOKURL_HOST_MAX + 1];
    char port[8];
    struct lookup *next;
};

static void lookup_free(struct lookup *l)
{
    if (l == NULL)
        return;
    if (l->cb.ar_result != NULL)
        freeaddrinfo(l->cb.ar_result);
    free(l);
}

/* Frees the stale lookups that have ended; returns how many still run. */
static size_t reap_stale(struct lk_hooks *h)
{
    struct lookup **p = &h->stale;
    size_t left = 0;

    while (*p != NULL) {
        struct lookup *l = *p;
        if (gai_error(&l->cb) == EAI_INPROGRESS) {
            left++;
            p = &l->next;
            continue;
        }
        *p = l->next;
        lookup_free(l);
    }
    return left;
}

/* Starts a lookup of jb's host, or sets jb->req.error. */
static struct lookup *lookup_start(struct lk_hooks *h, struct job *jb)
{
    struct lookup *l;
    struct gaicb *list[1];

    if (reap_stale(h) >= LOOKUPS_STALE_MAX) {
        snprintf(jb->req.error, sizeof(jb->req.error),
                 "cannot resolve the host: too many name lookups still unanswered");
        return NULL;
    }
    l = lk_calloc(1, sizeof(*l));
    snprintf(l->host, sizeof(l->host), "%s", jb->url.host);
    snprintf(l->port, sizeof(l->port), "%u", (unsigned)jb->url.port);
    l->hints = (struct addrinfo){.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    l->cb = (struct gaicb){.ar_name = l->host, .ar_service = l->port, .ar_request = &l->hints};
    list[0] = &l->cb;
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
        snprintf(jb->req.error, sizeof(jb->req.error), "cannot resolve the host: no lookup thread");
        free(l);
        return NULL;
    }
    return l;
}

/* Ends lookup l for jb: its answer, or NULL with jb->req.error set; a lookup
 * still running is given up on (kept in h->stale until it ends). */
static struct addrinfo *lookup_end(struct lk_hooks *h, struct job *jb, struct lookup *l)
{
    int rc = gai_error(&l->cb);

    if (rc == EAI_INPROGRESS && gai_cancel(&l->cb) != EAI_CANCELED &&
        gai_error(&l->cb) == EAI_INPROGRESS) {
        l->next = h->stale;
        h->stale = l;
        snprintf(jb->req.error, sizeof(jb->req.error), "cannot resolve the host: timed out");
        return NULL;
    }
    if (rc == EAI_INPROGRESS)
        rc = gai_error(&l->cb);
    if (rc != 0) {
        snprintf(jb->req.error, sizeof(jb->req.error), "cannot resolve the host: %s",
                 rc == EAI_CANCELED || rc == EAI_INPROGRESS ? "timed out" : gai_strerror(rc));
        return NULL;
    }
    return l->cb.ar_result;
}

/* Picks an address of res the endpoint may reach: the one connected to, so a
 * name that resolves elsewhere later changes nothing. */
static bool pick(struct lk_hooks *h, struct job *jb, const struct addrinfo *res)
{
    bool refused = false;

    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(jb->addr))
            continue;
        if (!h->cfg.private_targets && !lk_hookaddr_public(a->ai_addr)) {
            refused = true;
            continue;
        }
        memcpy(&jb->addr, a->ai_addr, a->ai_addrlen);
        jb->addrlen = (unsigned)a->ai_addrlen;
        return true;
    }
    snprintf(jb->req.error, sizeof(jb->req.error), "%s",
             refused ? "refused: the host resolves to a private or loopback address "
                       "(webhook_allow_private)"
                     : "no usable address for the host");
    return false;
}

/* An address literal needs no resolver: getaddrinfo only parses it. */
static bool resolve_literal(struct lk_hooks *h, struct job *jb)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
                    *res = NULL;
    char port[8];
    int rc;
    bool ok;

    snprintf(port, sizeof(port), "%u", (unsigned)jb->url.port);
    if ((rc = getaddrinfo(jb->url.host, port, &hints, &res)) != 0) {
        snprintf(jb->req.error, sizeof(jb->req.error), "cannot resolve the host: %s",
                 gai_strerror(rc));
        return false;
    }
    ok = pick(h, jb, res);
    freeaddrinfo(res);
    return ok;
}

/* Parses jb's URL; false (jb->req.error set) when it is bad. */
static bool parse_url(struct job *jb)
{
    struct lk_errinfo ei;

    memset(&jb->req, 0, sizeof(jb->req));
    lk_errinfo_clear(&ei);
    if (lk_hookurl_parse(jb->j.ep.url, strlen(jb->j.ep.url), LK_HOOK_URL_MAX, &jb->url, &ei) !=
        LK_OK) {
        snprintf(jb->req.error, sizeof(jb->req.error), "bad url: %s", ei.detail);
        return false;
    }
    return true;
}

/* Signs jb's request, its address resolved and checked. */
static void prepare(struct lk_hooks *h, struct job *jb, int64_t now)
{
    uint8_t key[LK_HOOKSIG_KEY_LEN];
    char sig[LK_HOOKSIG_MAX];
    const struct lk_hook_job *j = &jb->j;

    lk_hooksig_derive(h->master, MASTER_LEN, j->ep.id, j->ep.salt, key);
    lk_hooksig_sign(key, sizeof(key), j->ev.id, now, j->ev.payload, strlen(j->ev.payload), sig);
    OPENSSL_cleanse(key, sizeof(key));
    snprintf(jb->headers, sizeof(jb->headers),
             "webhook-id: %s\r\nwebhook-timestamp: %lld\r\nwebhook-signature: %s\r\n", j->ev.id,
             (long long)now, sig);
    jb->req = (struct lk_hook_request){.url = &jb->url,
                                       .addr = (const struct sockaddr *)&jb->addr,
                                       .addrlen = jb->addrlen,
                                       .headers = jb->headers,
                                       .body = j->ev.payload,
                                       .len = strlen(j->ev.payload)};
    jb->ready = true;
}

/* The delay before attempt n + 1 after attempt n failed: base * 4^(n-1), at
 * most 10 hours, within ±20 % (jitter: endpoints that failed together do not
 * all come back at once). */
static int64_t backoff_ms(const struct lk_hooks *h, int n)
{
    int64_t d = h->cfg.retry_base_ms;
    uint32_t r;

    for (int i = 1; i < n && d < BACKOFF_CAP_MS; i++)
        d *= 4;
    if (d > BACKOFF_CAP_MS)
        d = BACKOFF_CAP_MS;
    lk_rand_bytes(&r, sizeof(r));
    return d * (80 + (int64_t)(r % 41)) / 100;
}

static void record(struct lk_hooks *h, struct job *jb, int64_t started_ms)
{
    const struct lk_hook_job *j = &jb->j;
    struct lk_hook_attempt_row a = {.attempt = j->attempt,
                                    .status = jb->req.status,
                                    .started_ms = started_ms,
                                    .finished_ms = lk_clock_now_ms()};
    bool ok = jb->req.status >= 200 && jb->req.status < 300;
    enum lk_hook_state state = ok ? LK_HOOK_DELIVERED : LK_HOOK_PENDING;
    int64_t next = 0;

    snprintf(a.event_id, sizeof(a.event_id), "%s", j->ev.id);
    snprintf(a.endpoint_id, sizeof(a.endpoint_id), "%s", j->ep.id);
    snprintf(a.workspace_id, sizeof(a.workspace_id), "%s", j->ev.workspace_id);
    snprintf(a.type, sizeof(a.type), "%s", j->ev.type);
    if (!ok && jb->req.error[0] == '\0')
        snprintf(jb->req.error, sizeof(jb->req.error), "HTTP %d", jb->req.status);
    snprintf(a.error, sizeof(a.error), "%s", ok ? "" : jb->req.error);
    if (!ok) {
        if (j->attempt >= h->cfg.max_attempts)
            state = LK_HOOK_FAILED;
        else
            next = a.finished_ms + backoff_ms(h, j->attempt);
    }
    if (lk_store_hook_attempt_done(h->app->store, h->node_id, &a, state, next) != LK_OK)
        lk_warn("webhook %s to %s: could not record attempt %d; its lease will expire", a.event_id,
                a.endpoint_id, a.attempt);
}

/* Claims up to `want` more deliveries into hd (each one's lease covers its
 * lookup and its request, each bounded by the timeout) and starts their
 * lookups. Returns how many it claimed. */
static size_t claim_more(struct lk_hooks *h, struct held *hd, size_t want, int64_t now_ms)
{
    size_t first = hd->n;

    if (lk_store_hook_claim(h->app->store, h->node_id, now_ms,
                            now_ms + 2 * h->cfg.timeout_ms + LEASE_MARGIN_MS, (int)want, on_job,
                            hd) != LK_OK)
        lk_warn("webhooks: could not claim due deliveries");
    for (size_t i = first; i < hd->n; i++) {
        struct job *jb = hd->v[i];
        jb->claimed_ms = now_ms;
        if (!parse_url(jb))
            continue;
        if (!jb->url.host_is_ip)
            jb->lookup = lookup_start(h, jb);
        else if (resolve_literal(h, jb))
            prepare(h, jb, now_ms / 1000);
    }
    return hd->n - first;
}

/* Moves on the lookups that ended or ran out of time; true while some run. */
static bool step_lookups(struct lk_hooks *h, struct held *hd, int64_t now_ms)
{
    bool running = false;

    for (size_t i = 0; i < hd->n; i++) {
        struct job *jb = hd->v[i];
        struct lookup *l = jb->lookup;
        if (l == NULL)
            continue;
        if (gai_error(&l->cb) == EAI_INPROGRESS && now_ms < jb->claimed_ms + h->cfg.timeout_ms) {
            running = true;
            continue;
        }
        const struct addrinfo *res = lookup_end(h, jb, l);
        if (res != NULL && pick(h, jb, res))
            prepare(h, jb, now_ms / 1000);
        if (h->stale != l)
            lookup_free(l);
        jb->lookup = NULL;
    }
    return running;
}

/* Records job i's attempt and lets it go. */
static void settle(struct lk_hooks *h, struct held *hd, size_t i)
{
    struct job *jb = hd->v[i];

    record(h, jb, jb->claimed_ms);
    free(jb);
    hd->v[i] = hd->v[--hd->n];
}

/* Lets go of what is held when the thread stops: lookups still running are
 * left to glibc, requests in flight were dropped by the sender; the leases are
 * given back so another node (or this one, started again) sends them at once. */
static void drop_held(struct lk_hooks *h, struct held *hd)
{
    for (size_t i = 0; i < hd->n; i++) {
        struct lookup *l = hd->v[i]->lookup;
        if (l != NULL && (gai_cancel(&l->cb) == EAI_CANCELED || gai_error(&l->cb) != EAI_INPROGRESS)) {
            lookup_free(l);
        } else if (l != NULL) {
            l->next = h->stale;
            h->stale = l;
        }
        free(hd->v[i]);
    }
    if (hd->n > 0 && lk_store_hook_release(h->app->store, h->node_id) != LK_OK)
        lk_warn("webhooks: could not give back this node's deliveries; their leases will expire");
    hd->n = 0;
}

/* One turn of the delivery thread: refills what it holds up to
 * LK_HOOK_IN_FLIGHT (round-robin claims, store side), records what ended, each
 * delivery on its own: a receiver that never answers holds one slot for the
 * timeout, never the others. *next_claim_ms is when to look for due work again.
 * Returns false when there is nothing to wait for but the next claim. */
static bool deliver_turn(struct lk_hooks *h, lk_hook_send_fn send, struct held *hd,
                         int64_t *next_claim_ms)
{
    struct lk_hook_request *start[LK_HOOK_IN_FLIGHT], *done[LK_HOOK_IN_FLIGHT];
    size_t nstart = 0, ndone;
    int64_t now_ms = lk_clock_now_ms(), wait;
    bool resolving;

    if (hd->n < LK_HOOK_IN_FLIGHT && now_ms >= *next_claim_ms &&
        now_ms >= h->claimed_at + CLAIM_GAP_MS) {
        size_t want = LK_HOOK_IN_FLIGHT - hd->n;
        if (want > CLAIM_BATCH)
            want = CLAIM_BATCH;
        h->claimed_at = now_ms;
        /* A full claim says more may be due: look again at once. */
        *next_claim_ms = claim_more(h, hd, want, now_ms) == want ? now_ms : now_ms + POLL_MS;
    }
    int64_t next = *next_claim_ms > h->claimed_at + CLAIM_GAP_MS ? *next_claim_ms
                                                                 : h->claimed_at + CLAIM_GAP_MS;
    resolving = step_lookups(h, hd, now_ms);
    for (size_t i = 0; i < hd->n;) {
        struct job *jb = hd->v[i];
        if (!jb->ready && jb->lookup == NULL) {
            settle(h, hd, i); /* bad url, no address, refused: nothing to send */
            continue;
        }
        if (jb->ready && !jb->started) {
            jb->started = true;
            start[nstart++] = &jb->req;
        }
        i++;
    }
    if (hd->n == 0)
        return next <= now_ms;
    wait = hd->n == LK_HOOK_IN_FLIGHT ? POLL_MS : next - now_ms;
    if (resolving && wait > 20)
        wait = 20;
    if (wait > POLL_MS)
        wait = POLL_MS;
    if (wait < 0)
        wait = 0;
    ndone = send(start, nstart, h->cfg.timeout_ms, wait, done, LK_HOOK_IN_FLIGHT);
    for (size_t k = 0; k < ndone; k++)
        for (size_t i = 0; i < hd->n; i++)
            if (&hd->v[i]->req == done[k]) {
                settle(h, hd, i);
                break;
            }
    if (ndone > 0)
        *next_claim_ms = now_ms; /* a slot is free: refill it at once */
    return true;
}

static void *deliverer_main(void *arg)
{
    struct lk_hooks *h = arg;
    struct held hd = {.n = 0};
    int64_t next_claim_ms = 0;
    struct timespec ts;
    bool released = false;

    lk_keycache_thread_online();
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        lk_hook_send_fn send = atomic_load(&h->send);
        bool busy = false;
        pthread_mutex_unlock(&h->mu);
        /* Work this node held when it died is taken back at once, not after its
         * lease: the receiver sees it again with the same webhook-id. */
        if (!released)
            released = lk_store_hook_release(h->app->store, h->node_id) == LK_OK;
        if (send != NULL && released && h->have_key)
            busy = deliver_turn(h, send, &hd, &next_claim_ms);
        pthread_mutex_lock(&h->mu);
        if (h->stopping)
            break;
        if (busy)
            continue;
        ts = lk_clock_after_ms(CLOCK_REALTIME, POLL_MS);
        pthread_cond_timedwait(&h->dcv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    lk_hook_send_fn send = atomic_load(&h->send);
    if (send != NULL)
        send(NULL, 0, 0, -1, NULL, 0);
    drop_held(h, &hd);
    lk_keycache_thread_offline();
    return NULL;
}

void lk_hooks_set_sender(struct lk_app *app, lk_hook_send_fn fn)
{
    if (app->hooks != NULL)
        atomic_store(&app->hooks->send, fn);
}

/* --- life ---------------------------------------------------------------------------- */

/* Reads the master key from path, or makes it there (0600, 32 random bytes)
 * when missing and `make`. */
static enum lk_err load_key(struct lk_hooks *h, const char *path, bool make, struct lk_errinfo *ei)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0 && errno == ENOENT && make) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            lk_rand_bytes(h->master, MASTER_LEN);
            bool ok = write(fd, h->master, MASTER_LEN) == MASTER_LEN && fsync(fd) == 0;
            close(fd);
            if (!ok) {
                unlink(path);
                return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "webhook_key_file",
                                      "cannot write %s", path);
            }
            lk_info("made the webhook master key %s", path);
            h->have_key = true;
            return LK_OK;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC); /* another process made it first */
    }
    if (fd < 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "webhook_key_file", "cannot read %s: %s",
                              path, strerror(errno));
    n = read(fd, h->master, MASTER_LEN);
    close(fd);
    if (n != MASTER_LEN)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "webhook_key_file",
                              "%s must hold at least %d bytes", path, MASTER_LEN);
    h->have_key = true;
    return LK_OK;
}

enum lk_err lk_hooks_new(struct lk_app *app, const struct lk_hooks_config *cfg, const char *db_url,
                         const char *node_id, bool serving, struct lk_hooks **out,
                         struct lk_errinfo *ei)
{
    struct lk_hooks *h = lk_calloc(1, sizeof(*h));
    enum lk_err e = LK_OK;

    h->app = app;
    if (cfg != NULL)
        h->cfg = *cfg;
    if (h->cfg.retry_base_ms <= 0)
        h->cfg.retry_base_ms = 5000;
    if (h->cfg.timeout_ms <= 0)
        h->cfg.timeout_ms = 10000;
    if (h->cfg.max_attempts <= 0)
        h->cfg.max_attempts = 8;
    snprintf(h->node_id, sizeof(h->node_id), "%s", node_id ? node_id : "");
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->wcv, NULL);
    pthread_cond_init(&h->dcv, NULL);
    if (h->cfg.key_file != NULL && h->cfg.key_file[0] != '\0') {
        e = load_key(h, h->cfg.key_file, false, ei);
    } else if (strncmp(db_url, "sqlite:", 7) == 0 && strcmp(db_url, "sqlite::memory:") != 0) {
        char path[4200];
        if ((size_t)snprintf(path, sizeof(path), "%s.webhook-key", db_url + 7) < sizeof(path))
            e = load_key(h, path, serving, ei);
        if (!serving)
            e = LK_OK; /* a command that only reads: no webhooks to sign */
    }
    if (e != LK_OK) {
        lk_hooks_free(h);
        return e;
    }
    if (serving && node_id != NULL) {
        h->running = true;
        lk_assert(pthread_create(&h->writer, NULL, writer_main, h) == 0);
        lk_assert(pthread_create(&h->deliverer, NULL, deliverer_main, h) == 0);
        pthread_setname_np(h->writer, "lk-hook-writer");
        pthread_setname_np(h->deliverer, "lk-hook-send");
    }
    *out = h;
    return LK_OK;
}

void lk_hooks_free(struct lk_hooks *h)
{
    if (h == NULL)
        return;
    if (h->running) {
        pthread_mutex_lock(&h->mu);
        h->stopping = true;
        pthread_cond_broadcast(&h->wcv);
        pthread_cond_broadcast(&h->dcv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->writer, NULL);
        pthread_join(h->deliverer, NULL);
    }
    /* A lookup glibc still runs is left to it (its helper writes into it). */
    for (int64_t until = lk_clock_now_ms() + 1000; reap_stale(h) > 0 && lk_clock_now_ms() < until;)
        usleep(10000);
    map_clear(h);
    free(h->q);
    OPENSSL_cleanse(h->master, sizeof(h->master));
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->wcv);
    pthread_cond_destroy(&h->dcv);
    free(h);
}

/* --- management -------------------------------------------------------------------- */

struct count_ctx {
    int n;
};

static int count_one(void *arg, const struct lk_hook_endpoint_row *r)
{
    (void)r;
    ((struct count_ctx *)arg)->n++;
    return 0;
}

struct create_ctx {
    const struct lk_actor *who;
    struct lk_hook_endpoint_row *r;
    int64_t now;
};

static enum lk_err create_txn(struct lk_store *s, void *arg)
{
    struct create_ctx *c = arg;
    struct count_ctx n = {0};
    enum lk_err e;

    if ((e = lk_store_hook_endpoint_list(s, c->who->workspace_id, count_one, &n)) != LK_OK)
        return e;
    if (n.n >= LK_HOOKS_MAX_ENDPOINTS)
        return LK_ERR_CONFLICT;
    if ((e = lk_store_hook_endpoint_insert(s, c->r)) != LK_OK)
        return e;
    return lk_audit_write(s, c->who, "webhook.create", c->r->id, c->now);
}

enum lk_err lk_hooks_create(struct lk_app *app, const struct lk_actor *who,
                            const struct lk_hook_spec *spec, int64_t now,
                            struct lk_hook_endpoint_row *out, char secret[LK_HOOKSIG_SECRET_MAX],
                            struct lk_errinfo *ei)
{
    struct lk_hook_endpoint_row *r = out;
    struct lk_hookurl u;
    uint8_t salt[16], key[LK_HOOKSIG_KEY_LEN];
    size_t used = 0;
    enum lk_err e;

    memset(r, 0, sizeof(*r));
    secret[0] = '\0';
    lk_assert(app->hooks != NULL); /* opened with the app */
    if ((e = lk_hookurl_parse(spec->url, spec->url_len, LK_HOOK_URL_MAX, &u, ei)) != LK_OK)
        return e;
    if (!app->hooks->cfg.private_targets) {
        /* Any numeric form the resolver takes (also "0x7f000001" or "2130706433"),
         * not only the dotted one; names are judged at each delivery. */
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *res = NULL;
        bool numeric = getaddrinfo(u.host, NULL, &hints, &res) == 0;
        bool pub = !numeric || lk_hookaddr_public(res->ai_addr);
        if (numeric)
            freeaddrinfo(res);
        if (!pub)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                                  "url points to a loopback, private or link-local address");
    }
    if (strcmp(u.host, "localhost") == 0 && !app->hooks->cfg.private_targets)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url", "url points to localhost");
    if (spec->nevents == 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "events",
                              "events must name at least one event type (or \"*\")");
    used = (size_t)snprintf(r->events, sizeof(r->events), ",");
    for (size_t i = 0; i < spec->nevents; i++) {
        const char *t = spec->events[i];
        size_t n = strlen(t);
        char probe[LK_HOOK_TYPE_MAX + 3];
        if (!(n == 1 && t[0] == '*') && !known_type(t, n))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "events",
                                  "events[%zu] is not a known event type", i);
        snprintf(probe, sizeof(probe), ",%s,", t);
        if (strstr(r->events, probe) != NULL)
            continue; /* named twice */
        used += (size_t)snprintf(r->events + used, sizeof(r->events) - used, "%s,", t);
    }
    if (spec->description != NULL)
        snprintf(r->description, sizeof(r->description), "%s", spec->description);
    if (!app->hooks->have_key)
        return lk_errinfo_set(ei, LK_ERR_CONFLICT, "url",
                              "webhooks need a master key: set webhook_key_file in the server's "
                              "configuration");
    lk_rand_id("wh_", r->id, sizeof(r->id));
    snprintf(r->workspace_id, sizeof(r->workspace_id), "%s", who->workspace_id);
    memcpy(r->url, spec->url, spec->url_len);
    r->url[spec->url_len] = '\0';
    lk_rand_bytes(salt, sizeof(salt));
    for (size_t i = 0; i < sizeof(salt); i++)
        snprintf(r->salt + 2 * i, 3, "%02x", salt[i]);
    r->created_at = now;
    e = lk_store_txn(app->store, LK_TXN_DEFAULT, create_txn, &(struct create_ctx){who, r, now});
    if (e == LK_ERR_CONFLICT)
        return lk_errinfo_set(ei, e, "url", "a workspace has at most %d webhook endpoints",
                              LK_HOOKS_MAX_ENDPOINTS);
    if (e != LK_OK)
        return e;
    lk_hooksig_derive(app->hooks->master, MASTER_LEN, r->id, r->salt, key);
    lk_hooksig_secret_text(key, secret);
    OPENSSL_cleanse(key, sizeof(key));
    return LK_OK;
}

enum lk_err lk_hooks_list(struct lk_app *app, const struct lk_actor *who, lk_hook_endpoint_cb cb,
                          void *arg)
{
    return lk_store_hook_endpoint_list(app->store, who->workspace_id, cb, arg);
}

struct delete_ctx {
    const struct lk_actor *who;
    const char *id;
    int64_t now;
};

static enum lk_err delete_txn(struct lk_store *s, void *arg)
{
    struct delete_ctx *c = arg;
    enum lk_err e;

    if ((e = lk_store_hook_endpoint_delete(s, c->who->workspace_id, c->id)) != LK_OK)
        return e;
    return lk_audit_write(s, c->who, "webhook.delete", c->id, c->now);
}

enum lk_err lk_hooks_delete(struct lk_app *app, const struct lk_actor *who, const char *id,
                            int64_t now)
{
    return lk_store_txn(app->store, LK_TXN_DEFAULT, delete_txn, &(struct delete_ctx){who, id, now});
}

struct find_ctx {
    const char *id;
    bool found;
};

static int find_one(void *arg, const struct lk_hook_endpoint_row *r)
{
    struct find_ctx *f = arg;

    if (strcmp(r->id, f->id) == 0)
        f->found = true;
    return f->found;
}

enum lk_err lk_hooks_deliveries(struct lk_app *app, const struct lk_actor *who, const char *id,
                                int64_t before_id, int limit, lk_hook_attempt_cb cb, void *arg)
{
    struct find_ctx f = {id, false};
    enum lk_err e = lk_store_hook_endpoint_list(app->store, who->workspace_id, find_one, &f);

    if (e != LK_OK)
        return e;
    if (!f.found)
        return LK_ERR_NOT_FOUND;
    return lk_store_hook_attempt_list(app->store, who->workspace_id, id, before_id, limit, cb, arg);
}

enum lk_err lk_hooks_threshold_get(struct lk_app *app, const struct lk_actor *who, int64_t *out)
{
    return lk_store_hook_threshold_get(app->store, who->workspace_id, out);
}

struct threshold_ctx {
    const struct lk_actor *who;
    int64_t threshold, now;
};

static enum lk_err threshold_txn(struct lk_store *s, void *arg)
{
    struct threshold_ctx *c = arg;
    enum lk_err e;

    if ((e = lk_store_hook_threshold_set(s, c->who->workspace_id, c->threshold)) != LK_OK)
        return e;
    return lk_audit_write(s, c->who, "webhook.settings", c->who->workspace_id, c->now);
}

enum lk_err lk_hooks_threshold_set(struct lk_app *app, const struct lk_actor *who,
                                   int64_t threshold, int64_t now)
{
    return lk_store_txn(app->store, LK_TXN_DEFAULT, threshold_txn,
                        &(struct threshold_ctx){who, threshold, now});
}
