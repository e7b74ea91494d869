/*
 * bench_verify.c — the core verify call in-process (the goal: under 300 ns per
 * verification, flat from 1 000 to 1 000 000 keys). For each size it builds
 * the key cache, then times lk_verify() on secrets drawn from it in a scattered
 * order: format and checksum, SHA-256, cache lookup, state checks, the
 * permission query, counting and last-used recording, exactly as a request runs
 * them, without HTTP. See bench/README.md, "In process".
 *
 * Sizes up to BENCH_DB_MAX keys (default 100000) are seeded into a scratch
 * SQLite database and opened as `serve` opens it (the load time is the start);
 * larger ones are put straight into the cache ("synthetic"): the lookup cannot
 * tell, and seeding ten million rows into SQLite would take the bench's whole
 * run. Each size runs in its own process, so its resident memory is its own.
 *
 * usage: bench_verify [N ...]    (default: 1000 100000 1000000 10000000)
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/rand.h"
#include "core/digest.h"
#include "core/secret.h"
#include "service/app.h"
#include "service/auth.h"
#include "service/credits.h"
#include "service/keycache.h"
#include "service/keys.h"
#include "service/verify.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define SAMPLE 4096    /* secrets kept to verify */
#define PASSES 7       /* timed passes per measure; the median is reported */
#define ROUNDS 300000  /* verifications per pass */
#define PERMS "[\"storage:read\",\"workflows:*\"]"

static double now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct sample {
    char (*secrets)[LK_SECRET_MAX];
    size_t *lens;
};

static int keep_secret(void *arg, int64_t i, const char *secret)
{
    struct sample *sm = arg;

    if (i < SAMPLE) {
        sm->lens[i] = strlen(secret);
        memcpy(sm->secrets[i], secret, sm->lens[i] + 1);
    }
    return 0;
}

/* A fresh well-formed secret, in sm[i]. */
static void make_secret(struct sample *sm, long i)
{
    uint8_t bytes[LK_SECRET_BYTES];

    lk_rand_bytes(bytes, sizeof(bytes));
    sm->lens[i] = lk_secret_format(LK_FORMAT_DEFAULT, "lk", LK_ENV_LIVE, bytes, sm->secrets[i]);
    OPENSSL_cleanse(bytes, sizeof(bytes));
}

static void remove_files(const char *dir)
{
    static const char *const names[] = {"bench.db", "bench.db-wal", "bench.db-shm",
                                        "bench.db.counters", "bench.db.serve.lock"};
    char path[96];

    for (size_t i = 0; i < LK_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    long kb = -1;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kb;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* n keys straight into the cache, as the feed's snapshot would put them: the
 * first SAMPLE with secrets kept, the rest with random digests. */
static void fill_synthetic(struct lk_app *app, long n, const char *ws_id, int64_t now,
                           struct sample *sm)
{
    struct lk_key_row k = {.env = LK_ENV_LIVE, .kind = LK_KIND_PERMANENT, .enabled = true,
                           .daily_spend_cap = -1, .created_at = now};
    uint64_t seed = (uint64_t)now;

    k.permissions = (char *)PERMS;
    memcpy(k.workspace_id, ws_id, LK_ID_MAX);
    lk_keycache_reserve(lk_app_keycache(app), (unsigned long)n);
    for (long i = 0; i < n; i++) {
        k.rowid = i + 1;
        snprintf(k.id, sizeof(k.id), "key_%016lx", (unsigned long)i);
        snprintf(k.name, sizeof(k.name), "seed-%ld", i);
        if (i < SAMPLE) {
            make_secret(sm, i);
            lk_sha256(sm->secrets[i], sm->lens[i], k.digest);
        } else {
            for (int w = 0; w < 4; w++) {
                uint64_t v = splitmix(&seed);
                memcpy(k.digest + 8 * w, &v, 8);
            }
        }
        lk_keycache_put(lk_app_keycache(app), &k);
    }
}

struct loop {
    struct lk_app *app;
    const struct sample *sm;
    long first, m, rounds;
    int64_t now;
    enum lk_err want;
    int64_t cost; /* > 0: each check spends this from the workspace's credits */
    double cpu_ns;
};

static void on_decided(void *arg, enum lk_err e, const struct lk_ckey *k,
                       const struct lk_limits_info *info)
{
    (void)k;
    (void)info;
    *(enum lk_err *)arg = e;
}

static void *verify_loop(void *arg)
{
    struct loop *l = arg;
    double t0;
    long ok = 0;

    lk_keycache_thread_online();
    lk_keycache_read_lock();
    t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    for (long r = 0; r < l->rounds; r++) {
        /* The sample is shuffled (shuffle()), so walking it in order reads the
         * secrets as a server reads requests it just received, and still
         * meets the keys in a scattered order. */
        long i = l->first + r % l->m;
        struct lk_verify_req req = {l->sm->secrets[i], l->sm->lens[i], LK_VERIFY_ANY_ENV,
                                    "storage:read", 12, l->now, true, l->cost};
        struct lk_limits_info info;
        const struct lk_ckey *k;
        enum lk_err e = LK_ERR_INTERNAL;
        if (l->cost == 0)
            e = lk_verify(l->app, &req, &k, &info);
        else /* as a loop's worker does: a check that needs a lease gets one */
            lk_verify_leasing(l->app, &req, on_decided, &e);
        if (e == l->want)
            ok++;
        if ((r & 1023) == 1023) { /* let writers' grace periods pass, as a loop would */
            lk_keycache_read_unlock();
            lk_keycache_read_lock();
        }
    }
    l->cpu_ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    lk_keycache_read_unlock();
    lk_keycache_thread_offline();
    lk_assert(ok == l->rounds);
    return NULL;
}

/* Shuffles sm[0..m) in place, so consecutive secrets belong to keys put far
 * apart: the cache's entries, counters and slots are met in no order, as on a
 * server where each request names any key. */
static void shuffle(struct sample *sm, long m, uint64_t seed)
{
    char tmp[LK_SECRET_MAX];

    for (long i = m - 1; i > 0; i--) {
        long j = (long)(splitmix(&seed) % (uint64_t)(i + 1));
        size_t len = sm->lens[i];
        memcpy(tmp, sm->secrets[i], LK_SECRET_MAX);
        memcpy(sm->secrets[i], sm->secrets[j], LK_SECRET_MAX);
        memcpy(sm->secrets[j], tmp, LK_SECRET_MAX);
        sm->lens[i] = sm->lens[j];
        sm->lens[j] = len;
    }
    OPENSSL_cleanse(tmp, sizeof(tmp));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Verifications per second on `threads` threads, each on its share of the
 * sample; *cpu_ns: CPU time per verification on the first thread. */
static double throughput(struct lk_app *app, const struct sample *sm, long m, int threads,
                         int64_t now, enum lk_err want, int64_t cost, double *cpu_ns)
{
    pthread_t th[2];
    struct loop l[2];
    double t0 = now_ns(CLOCK_MONOTONIC), t1;

    for (int t = 0; t < threads; t++) {
        l[t] = (struct loop){app, sm, t * (m / threads), m / threads, ROUNDS, now, want, cost, 0};
        lk_assert(pthread_create(&th[t], NULL, verify_loop, &l[t]) == 0);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    t1 = now_ns(CLOCK_MONOTONIC);
    if (cpu_ns != NULL)
        *cpu_ns = l[0].cpu_ns / ROUNDS;
    return (double)ROUNDS * threads / ((t1 - t0) / 1e9);
}

/* The median of PASSES passes of throughput(): on a shared machine a pass
 * that another program disturbed is slower, never faster, and one such pass
 * must not decide the figure. *cpu_ns: the median CPU time per check. */
static double measure(struct lk_app *app, const struct sample *sm, long m, int threads,
                      int64_t now, enum lk_err want, int64_t cost, double *cpu_ns)
{
    double rate[PASSES], ns[PASSES];

    for (int p = 0; p < PASSES; p++)
        rate[p] = throughput(app, sm, m, threads, now, want, cost, &ns[p]);
    if (cpu_ns != NULL)
        *cpu_ns = median(ns, PASSES);
    return median(rate, PASSES);
}

/* Credits for the checks with a cost: more than they can spend. */
static void top_up(struct lk_app *app, const char *ws_id, int64_t now)
{
    struct lk_actor who = {.perms = ~0u};
    struct lk_ledger_row entry;
    int64_t balance;

    memcpy(who.workspace_id, ws_id, LK_ID_MAX);
    snprintf(who.id, sizeof(who.id), "bench");
    lk_assert(lk_credits_top_up(app, &who, INT64_C(1) << 40, "bench", now, &entry, &balance) ==
              LK_OK);
}

static void run(long n, long db_max)
{
    struct lk_app *app = NULL;
    struct lk_app_config cfg = {0};
    struct lk_errinfo ei;
    struct lk_ws_row w;
    struct lk_ws_secrets sec;
    struct sample sm = {lk_calloc(SAMPLE, LK_SECRET_MAX), lk_calloc(SAMPLE, sizeof(size_t))};
    struct sample unknown = {lk_calloc(SAMPLE, LK_SECRET_MAX),
                             lk_calloc(SAMPLE, sizeof(size_t))};
    char dir[] = "/tmp/lk-bench-XXXXXX", url[96], ws_id[LK_ID_MAX];
    int64_t now = lk_clock_now_s();
    bool synthetic = n > db_max;
    long m = n < SAMPLE ? n : SAMPLE, rss0;
    double t0, load_s, valid_ns, unknown_ns, one, two, cost_ns, cost_one, cost_two;

    lk_assert(mkdtemp(dir) != NULL);
    snprintf(url, sizeof(url), "sqlite:%s/bench.db", dir);
    cfg.db_url = url;
    lk_assert(lk_app_open(&cfg, &app, &ei) == LK_OK);
    lk_assert(lk_workspaces_bootstrap(app, now, &w, &sec) == LK_OK);
    OPENSSL_cleanse(&sec, sizeof(sec));
    if (!synthetic) {
        /* The keys go into the store as `latchkey seed` puts them there ... */
        lk_assert(lk_keys_seed(app, n, PERMS, now, keep_secret, &sm, ws_id) == LK_OK);
        lk_app_close(app);
        lk_keycache_thread_offline(); /* lk_app_open put this thread online */
    }
    rss0 = rss_kib();
    t0 = now_ns(CLOCK_MONOTONIC);
    if (synthetic) {
        fill_synthetic(app, n, w.id, now, &sm);
    } else {
        /* ... and `serve` loads them into the cache, its counters in a mapped file. */
        cfg.serving = true;
        lk_assert(lk_app_open(&cfg, &app, &ei) == LK_OK);
    }
    load_s = (now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    for (long i = 0; i < SAMPLE; i++)
        make_secret(&unknown, i);
    top_up(app, synthetic ? w.id : ws_id, now);
    shuffle(&sm, m, (uint64_t)now);
    lk_keycache_thread_offline(); /* the loops come online on their own threads */

    /* Warm up (the counters of each sampled key are made on its first check). */
    throughput(app, &sm, m, 1, now, LK_OK, 0, NULL);
    one = measure(app, &sm, m, 1, now, LK_OK, 0, &valid_ns);
    two = measure(app, &sm, m, 2, now, LK_OK, 0, NULL);
    measure(app, &unknown, SAMPLE, 1, now, LK_ERR_INVALID_KEY, 0, &unknown_ns);
    /* With a cost: the workspace's credits, under its lock (docs/internals/limits.md). */
    throughput(app, &sm, m, 1, now, LK_OK, 1, NULL);
    cost_one = measure(app, &sm, m, 1, now, LK_OK, 1, &cost_ns);
    cost_two = measure(app, &sm, m, 2, now, LK_OK, 1, NULL);

    size_t cache = lk_keycache_bytes(lk_app_keycache(app));
    printf("| %10ld | %-9s | %8.2f | %8.0f | %9.0f | %5.0f | %10.0f | %9.0f | %7.2f | %7.2f "
           "| %9.0f | %7.2f | %7.2f |\n",
           n, synthetic ? "synthetic" : "sqlite", load_s, rss_kib() / 1024.0,
           (double)cache / 1048576.0, (double)cache / (double)n, valid_ns, unknown_ns, one / 1e6,
           two / 1e6, cost_ns, cost_one / 1e6, cost_two / 1e6);
    (void)rss0;
    fflush(stdout);
    lk_keycache_thread_online();
    lk_app_close(app);
    lk_keycache_thread_offline();
    remove_files(dir);
    OPENSSL_cleanse(sm.secrets, (size_t)SAMPLE * LK_SECRET_MAX);
    free(sm.secrets);
    free(sm.lens);
    free(unknown.secrets);
    free(unknown.lens);
}

/* Each size in a child process: its resident memory is its own. */
static int run_apart(long n, long db_max)
{
    pid_t pid = fork();
    int st = 0;

    if (pid == 0) {
        run(n, db_max);
        _exit(0);
    }
    lk_assert(pid > 0);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const long sizes[] = {1000, 100000, 1000000, 10000000};
    const char *env = getenv("BENCH_DB_MAX");
    int64_t db_max = 100000;
    int bad = 0;

    if (env != NULL && lk_parse_i64(env, strlen(env), 0, 100000000, &db_max) != 0) {
        fprintf(stderr, "bench_verify: BENCH_DB_MAX is not a key count: %s\n", env);
        return 2;
    }
    printf("in-process lk_verify: format, checksum, SHA-256, lookup, state, permission query "
           "\"storage:read\", counting, last-used\n"
           "(ns: CPU time per verification on one thread; M/s: millions of verifications per "
           "second, wall clock; each the median of %d passes of %d checks)\n\n",
           PASSES, ROUNDS);
    printf("| keys       | source    | load (s) | RSS(MiB) | cache(MiB)| B/key | valid (ns) "
           "| unknown (ns) | 1 thr M/s | 2 thr M/s | cost (ns) | cost 1 thr | cost 2 thr |\n");
    printf("|-----------:|-----------|---------:|---------:|----------:|------:|-----------:"
           "|----------:|--------:|--------:|----------:|--------:|--------:|\n");
    fflush(stdout);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int64_t n;
            if (lk_parse_i64(argv[i], strlen(argv[i]), 1, 100000000, &n) != 0) {
                fprintf(stderr, "bench_verify: not a key count: %s\n", argv[i]);
                return 2;
            }
            bad |= run_apart((long)n, (long)db_max);
        }
    } else {
        for (size_t i = 0; i < LK_ARRAY_LEN(sizes); i++)
            bad |= run_apart(sizes[i], (long)db_max);
    }
    return bad;
}
