/*
 * bench_verify.c — the core verify call in-process (the goal: under 1 µs per
 * verification, flat from 1 000 to 1 000 000 keys). Seeds N keys into a scratch
 * database and opens it as `serve` does (the keys loaded into the cache), then
 * times lk_verify() on secrets drawn from them in a shuffled order:
 * format and checksum, SHA-256, cache lookup, state checks and last-used
 * recording, exactly as a request runs them, without HTTP, with the counters
 * in a memory-mapped file as `serve` keeps them.
 *
 * usage: bench_verify [N ...]    (default: 1000 100000 1000000)
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "core/secret.h"
#include "service/app.h"
#include "service/keys.h"
#include "service/verify.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define SAMPLE 4096      /* secrets kept to verify */
#define ROUNDS 2000000   /* verifications timed per size */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

static void run(long n)
{
    struct lk_app *app = NULL;
    struct lk_app_config cfg = {0};
    struct lk_errinfo ei;
    struct lk_ws_row w;
    struct lk_ws_secrets sec;
    struct sample sm = {lk_calloc(SAMPLE, LK_SECRET_MAX), lk_calloc(SAMPLE, sizeof(size_t))};
    char dir[] = "/tmp/lk-bench-XXXXXX", url[96], ws_id[LK_ID_MAX];
    int64_t now = lk_clock_now_s();
    double t0, t1;
    long valid = 0;

    lk_assert(mkdtemp(dir) != NULL);
    snprintf(url, sizeof(url), "sqlite:%s/bench.db", dir);
    cfg.db_url = url;
    /* The keys go into the store as `latchkey seed` puts them there ... */
    lk_assert(lk_app_open(&cfg, &app, &ei) == LK_OK);
    lk_assert(lk_workspaces_bootstrap(app, now, &w, &sec) == LK_OK);
    OPENSSL_cleanse(&sec, sizeof(sec));
    lk_assert(lk_keys_seed(app, n, "[\"storage:read\",\"workflows:*\"]", now, keep_secret, &sm,
                           ws_id) == LK_OK);
    lk_app_close(app);
    lk_keycache_thread_offline(); /* lk_app_open put this thread online */
    /* ... and `serve` loads them into the cache, its counters in a mapped file. */
    cfg.serving = true;
    t0 = now_ns();
    lk_assert(lk_app_open(&cfg, &app, &ei) == LK_OK);
    t1 = now_ns();
    long m = n < SAMPLE ? n : SAMPLE;
    double load_s = (t1 - t0) / 1e9;

    lk_keycache_read_lock();
    t0 = now_ns();
    for (long r = 0; r < ROUNDS; r++) {
        /* A stride co-prime with the sample walks it in a scattered order. */
        long i = (r * 2654435761L) % m;
        struct lk_verify_req req = {sm.secrets[i], sm.lens[i], LK_VERIFY_ANY_ENV,
                                    "storage:read", 12, now, true};
        struct lk_limits_info info;
        const struct lk_ckey *k;
        if (lk_verify(app, &req, &k, &info) == LK_OK)
            valid++;
        if ((r & 1023) == 1023) { /* let writers' grace periods pass, as a loop would */
            lk_keycache_read_unlock();
            lk_keycache_read_lock();
        }
    }
    t1 = now_ns();
    lk_keycache_read_unlock();
    lk_assert(valid == ROUNDS);
    printf("%9ld keys: %6.0f ns per verify (%ld verifications; store loaded into the cache in "
           "%.2f s)\n",
           n, (t1 - t0) / ROUNDS, (long)ROUNDS, load_s);
    fflush(stdout);
    lk_app_close(app);
    lk_keycache_thread_offline();
    remove_files(dir);
    OPENSSL_cleanse(sm.secrets, (size_t)SAMPLE * LK_SECRET_MAX);
    free(sm.secrets);
    free(sm.lens);
}

int main(int argc, char **argv)
{
    static const long sizes[] = {1000, 100000, 1000000};

    printf("in-process lk_verify (format, checksum, SHA-256, lookup, checks, last-used):\n");
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int64_t n;
            if (lk_parse_i64(argv[i], strlen(argv[i]), 1, 100000000, &n) != 0) {
                fprintf(stderr, "bench_verify: not a key count: %s\n", argv[i]);
                return 2;
            }
            run((long)n);
        }
    } else {
        for (size_t i = 0; i < LK_ARRAY_LEN(sizes); i++)
            run(sizes[i]);
    }
    return 0;
}
