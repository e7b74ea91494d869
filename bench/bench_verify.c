/*
 * bench_verify.c — the core verify call in-process (the goal: under 1 µs per
 * verification, flat from 1 000 to 1 000 000 keys). Fills the key cache with N
 * keys, then times lk_verify() on secrets drawn from them in a shuffled order:
 * format and checksum, SHA-256, cache lookup, state checks and last-used
 * recording, exactly as a request runs them, without HTTP, with the counters
 * in a memory-mapped file as `serve` keeps them.
 *
 * usage: bench_verify [N ...]    (default: 1000 100000 1000000)
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/rand.h"
#include "core/secret.h"
#include "service/app.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define SAMPLE 4096      /* secrets kept to verify */
#define ROUNDS 2000000   /* verifications timed per size */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run(long n)
{
    struct lk_app app = {0};
    struct lk_errinfo ei;
    char (*sample)[LK_SECRET_MAX] = lk_calloc(SAMPLE, LK_SECRET_MAX);
    size_t *lens = lk_calloc(SAMPLE, sizeof(size_t));
    int64_t now = lk_clock_now_s();
    double t0, t1;
    long valid = 0;

    char dir[] = "/tmp/lk-bench-XXXXXX", path[64];
    bool recovered;

    lk_assert(lk_store_open("sqlite::memory:", &app.store, &ei) == LK_OK);
    /* The counters in a mapped file, as `serve` keeps them. */
    lk_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/bench.counters", dir);
    lk_assert(lk_counters_open(path, "bench", &app.counters, &recovered) == LK_OK);
    app.cache = lk_keycache_new(app.counters);
    app.usage = lk_usage_new(&app);
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        struct lk_key_row k = {.rowid = i + 1, .env = LK_ENV_LIVE, .enabled = true,
                               .daily_spend_cap = -1, .created_at = now};
        uint8_t bytes[LK_SECRET_BYTES];
        char secret[LK_SECRET_MAX];
        size_t len;

        lk_rand_bytes(bytes, sizeof(bytes));
        len = lk_secret_format(LK_FORMAT_DEFAULT, "lk", LK_ENV_LIVE, bytes, secret);
        lk_rand_id("key_", k.id, sizeof(k.id));
        snprintf(k.workspace_id, sizeof(k.workspace_id), "ws_bench");
        snprintf(k.name, sizeof(k.name), "bench-%ld", i);
        k.permissions = (char *)"[\"storage:read\",\"workflows:*\"]";
        lk_app_digest(&app, secret, len, k.digest);
        lk_keycache_put(app.cache, &k);
        if (i < SAMPLE) {
            memcpy(sample[i], secret, len + 1);
            lens[i] = len;
        }
    }
    lk_keycache_fit(app.cache); /* as lk_app_open does after loading */
    t1 = now_ns();
    long m = n < SAMPLE ? n : SAMPLE;
    double load_s = (t1 - t0) / 1e9;

    lk_keycache_read_lock();
    t0 = now_ns();
    for (long r = 0; r < ROUNDS; r++) {
        /* A stride co-prime with the sample walks it in a scattered order. */
        long i = (r * 2654435761L) % m;
        struct lk_verify_req req = {sample[i], lens[i], LK_VERIFY_ANY_ENV, "storage:read", 12,
                                    now, true};
        struct lk_limits_info info;
        const struct lk_ckey *k;
        if (lk_verify(&app, &req, &k, &info) == LK_OK)
            valid++;
        if ((r & 1023) == 1023) { /* let writers' grace periods pass, as a loop would */
            lk_keycache_read_unlock();
            lk_keycache_read_lock();
        }
    }
    t1 = now_ns();
    lk_keycache_read_unlock();
    lk_assert(valid == ROUNDS);
    printf("%9ld keys: %6.0f ns per verify (%ld verifications; cache filled in %.2f s)\n", n,
           (t1 - t0) / ROUNDS, (long)ROUNDS, load_s);
    fflush(stdout);
    lk_usage_free(app.usage);
    lk_keycache_free(app.cache);
    lk_counters_free(app.counters);
    unlink(path);
    rmdir(dir);
    lk_store_close(app.store);
    free(sample);
    free(lens);
}

int main(int argc, char **argv)
{
    static const long sizes[] = {1000, 100000, 1000000};

    lk_keycache_thread_online();
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
    lk_keycache_thread_offline();
    return 0;
}
