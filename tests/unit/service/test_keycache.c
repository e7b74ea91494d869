/*
 * test_keycache.c — src/service/keycache.c: the open-addressed table of
 * digests. Digests are made up here so that prefixes (tags) and slot indexes
 * collide on purpose; readers run on other threads while the one writer
 * inserts, replaces, deletes and grows, and must only ever see whole entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "base/common.h"
#include "counters/counters.h"
#include "service/keycache.h"

#define PERMS "[\"storage:read\",\"workflows:*\"]"

/* A digest from (tag bytes 0..7, index bytes 8..15, rest): tag and index are
 * what the table hashes on, so equal ones collide. */
static void make_digest(uint8_t d[LK_DIGEST_LEN], uint64_t tag, uint64_t index, uint64_t rest)
{
    memcpy(d, &tag, 8);
    memcpy(d + 8, &index, 8);
    memcpy(d + 16, &rest, 8);
    memcpy(d + 24, &rest, 8);
}

static void make_row(struct lk_key_row *r, int64_t rowid, const uint8_t d[LK_DIGEST_LEN],
                     const char *name)
{
    memset(r, 0, sizeof(*r));
    r->rowid = rowid;
    snprintf(r->id, sizeof(r->id), "key_%lld", (long long)rowid);
    memcpy(r->workspace_id, "ws_test", 8);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->env = LK_ENV_LIVE;
    r->kind = LK_KIND_PERMANENT;
    r->enabled = true;
    r->permissions = (char *)PERMS;
    r->daily_spend_cap = -1;
    memcpy(r->digest, d, LK_DIGEST_LEN);
}

struct fixture {
    struct lk_counters *ctr;
    struct lk_keycache *c;
};

static int setup(void **state)
{
    struct fixture *f = lk_calloc(1, sizeof(*f));

    lk_keycache_thread_online();
    f->ctr = lk_counters_new();
    f->c = lk_keycache_new(f->ctr);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    lk_keycache_free(f->c);
    lk_counters_free(f->ctr);
    lk_keycache_thread_offline();
    free(f);
    return 0;
}

static const struct lk_ckey *find(struct lk_keycache *c, const uint8_t d[LK_DIGEST_LEN])
{
    const struct lk_ckey *k;

    lk_keycache_read_lock();
    k = lk_keycache_find(c, d);
    lk_keycache_read_unlock();
    return k; /* compared by address only: no writer runs meanwhile */
}

/* Same tag, same index, different tails: every one is found, each its own. */
static void test_prefix_collisions(void **state)
{
    struct fixture *f = *state;
    struct lk_key_row r;
    uint8_t d[LK_DIGEST_LEN];

    for (int i = 0; i < 50; i++) {
        make_digest(d, 0x1122334455667788u, 7, (uint64_t)i + 1);
        make_row(&r, i + 1, d, "collide");
        lk_keycache_put(f->c, &r);
    }
    assert_int_equal(lk_keycache_count(f->c), 50);
    for (int i = 0; i < 50; i++) {
        make_digest(d, 0x1122334455667788u, 7, (uint64_t)i + 1);
        const struct lk_ckey *k = find(f->c, d);
        assert_non_null(k);
        assert_int_equal(k->rowid, i + 1);
        assert_memory_equal(k->digest, d, LK_DIGEST_LEN);
    }
    make_digest(d, 0x1122334455667788u, 7, 999); /* same prefix, not stored */
    assert_null(find(f->c, d));
    /* Tags 0 and 1 mark empty and deleted slots: digests starting so still work. */
    make_digest(d, 0, 7, 5000);
    make_row(&r, 5000, d, "zero");
    lk_keycache_put(f->c, &r);
    make_digest(d, 1, 7, 5001);
    make_row(&r, 5001, d, "one");
    lk_keycache_put(f->c, &r);
    make_digest(d, 0, 7, 5000);
    assert_non_null(find(f->c, d));
    assert_int_equal(find(f->c, d)->rowid, 5000);
    make_digest(d, 1, 7, 5001);
    assert_int_equal(find(f->c, d)->rowid, 5001);
    make_digest(d, 2, 7, 5001); /* shares its tag with the one of prefix 0: told apart */
    assert_null(find(f->c, d));
}

/* A replaced entry carries the new record and keeps last_used; a regenerated
 * key keeps its previous digest until a second regeneration drops it. */
static void test_replace_and_drop(void **state)
{
    struct fixture *f = *state;
    struct lk_key_row r;
    uint8_t d1[LK_DIGEST_LEN], d2[LK_DIGEST_LEN], d3[LK_DIGEST_LEN];
    const struct lk_ckey *k;

    make_digest(d1, 11, 1, 1);
    make_digest(d2, 22, 2, 2);
    make_digest(d3, 33, 3, 3);
    make_row(&r, 9, d1, "first");
    lk_keycache_put(f->c, &r);
    k = find(f->c, d1);
    atomic_store(&((struct lk_ckey *)k)->last_used, 12345);
    make_row(&r, 9, d1, "renamed");
    r.revoked_at = 77;
    lk_keycache_put(f->c, &r);
    k = find(f->c, d1);
    assert_string_equal(k->name_json, "\"renamed\"");
    assert_int_equal(k->revoked_at, 77);
    assert_int_equal(atomic_load(&k->last_used), 12345);
    assert_int_equal(lk_keycache_count(f->c), 1);

    make_row(&r, 9, d2, "regen"); /* d1 stays until 500 */
    r.has_prev = true;
    memcpy(r.prev_digest, d1, LK_DIGEST_LEN);
    r.prev_until = 500;
    lk_keycache_put(f->c, &r);
    assert_int_equal(lk_keycache_count(f->c), 2);
    assert_int_equal(find(f->c, d1)->retired_at, 500);
    assert_int_equal(find(f->c, d2)->retired_at, 0);

    make_row(&r, 9, d3, "regen again"); /* d1 goes now */
    r.has_prev = true;
    memcpy(r.prev_digest, d2, LK_DIGEST_LEN);
    r.prev_until = 900;
    lk_keycache_put(f->c, &r);
    assert_null(find(f->c, d1));
    assert_int_equal(find(f->c, d2)->retired_at, 900);
    assert_non_null(find(f->c, d3));
    assert_int_equal(lk_keycache_count(f->c), 2);

    make_row(&r, 9, d3, "no grace"); /* d2 goes, d3 stays */
    lk_keycache_put(f->c, &r);
    assert_null(find(f->c, d2));
    assert_non_null(find(f->c, d3));
    assert_int_equal(lk_keycache_count(f->c), 1);
}

/* Every key regenerated over and over leaves a table made mostly of deleted
 * slots; lookups of present and absent digests still end, and answer right. */
static void test_tombstones(void **state)
{
    struct fixture *f = *state;
    struct lk_key_row r;
    uint8_t d[LK_DIGEST_LEN];
    const int keys = 64, gens = 200;

    for (int g = 0; g < gens; g++)
        for (int i = 0; i < keys; i++) {
            /* All in one run of slots: index 0, and tags that differ. */
            make_digest(d, 1000u * (uint64_t)g + (uint64_t)i + 2, 0, (uint64_t)g);
            make_row(&r, i + 1, d, "churn");
            lk_keycache_put(f->c, &r);
        }
    assert_int_equal(lk_keycache_count(f->c), keys);
    for (int g = 0; g < gens; g++)
        for (int i = 0; i < keys; i++) {
            make_digest(d, 1000u * (uint64_t)g + (uint64_t)i + 2, 0, (uint64_t)g);
            const struct lk_ckey *k = find(f->c, d);
            if (g == gens - 1) {
                assert_non_null(k);
                assert_int_equal(k->rowid, i + 1);
            } else {
                assert_null(k);
            }
        }
    lk_keycache_fit(f->c);
    make_digest(d, 1000u * (uint64_t)(gens - 1) + 2, 0, (uint64_t)(gens - 1));
    assert_int_equal(find(f->c, d)->rowid, 1);
    make_digest(d, 424242, 0, 1);
    assert_null(find(f->c, d));
}

/* Growing from the smallest table to 200 000 entries keeps every one. */
static void test_resize(void **state)
{
    struct fixture *f = *state;
    struct lk_key_row r;
    uint8_t d[LK_DIGEST_LEN];
    const int n = 200000;

    for (int i = 0; i < n; i++) {
        uint64_t h = (uint64_t)i * UINT64_C(0x9e3779b97f4a7c15) + 2;
        make_digest(d, h, h >> 7, (uint64_t)i);
        make_row(&r, i + 1, d, "grow");
        lk_keycache_put(f->c, &r);
    }
    assert_int_equal(lk_keycache_count(f->c), n);
    for (int i = 0; i < n; i++) {
        uint64_t h = (uint64_t)i * UINT64_C(0x9e3779b97f4a7c15) + 2;
        make_digest(d, h, h >> 7, (uint64_t)i);
        const struct lk_ckey *k = find(f->c, d);
        assert_non_null(k);
        assert_int_equal(k->rowid, i + 1);
    }
    assert_true(lk_keycache_bytes(f->c) > (size_t)n * 16);
}

/* --- readers against the writer ----------------------------------------- */

#define STABLE 2000 /* keys never removed: always found */
#define CHURN 500   /* keys regenerated without grace on every round */

struct race {
    struct lk_keycache *c;
    _Atomic bool stop;
    _Atomic long bad, reads;
};

static void stable_digest(uint8_t d[LK_DIGEST_LEN], int i)
{
    /* Indexes in a narrow range: the stable keys share probe runs with churn. */
    make_digest(d, (uint64_t)i * 7919u + 5, (uint64_t)i % 97, (uint64_t)i);
}

static void churn_digest(uint8_t d[LK_DIGEST_LEN], int i, int gen)
{
    make_digest(d, (uint64_t)gen * 100003u + (uint64_t)i + 3, (uint64_t)i % 97,
                UINT64_C(0xc0ffee) + (uint64_t)gen);
}

static void *reader(void *arg)
{
    struct race *rc = arg;
    uint8_t d[LK_DIGEST_LEN];
    long reads = 0;

    lk_keycache_thread_online();
    while (!atomic_load(&rc->stop)) {
        lk_keycache_read_lock();
        for (int i = 0; i < STABLE; i++) {
            stable_digest(d, i);
            const struct lk_ckey *k = lk_keycache_find(rc->c, d);
            /* Present, and whole: its digest, rowid and name agree. */
            if (k == NULL || k->rowid != i + 1 || memcmp(k->digest, d, LK_DIGEST_LEN) != 0 ||
                strcmp(k->name_json, "\"stable\"") != 0 || k->perms->n != 2)
                atomic_fetch_add(&rc->bad, 1);
            reads++;
        }
        for (int i = 0; i < CHURN; i++) {
            churn_digest(d, i, 0);
            const struct lk_ckey *k = lk_keycache_find(rc->c, d);
            /* Gone or not, never another key's entry. */
            if (k != NULL && (memcmp(k->digest, d, LK_DIGEST_LEN) != 0 || k->rowid != 100000 + i))
                atomic_fetch_add(&rc->bad, 1);
        }
        lk_keycache_read_unlock();
    }
    atomic_fetch_add(&rc->reads, reads);
    lk_keycache_thread_offline();
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    struct fixture *f = *state;
    struct race rc = {.c = f->c};
    struct lk_key_row r;
    uint8_t d[LK_DIGEST_LEN];
    pthread_t th[2];

    for (int i = 0; i < STABLE; i++) {
        stable_digest(d, i);
        make_row(&r, i + 1, d, "stable");
        lk_keycache_put(f->c, &r);
    }
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, reader, &rc), 0);
    /* Churn: replace, regenerate (delete), grow past several resizes. */
    for (int gen = 0; gen < 60; gen++) {
        for (int i = 0; i < CHURN; i++) {
            churn_digest(d, i, gen);
            make_row(&r, 100000 + i, d, "churn");
            lk_keycache_put(f->c, &r);
        }
        for (int i = 0; i < STABLE; i += 7) { /* the same record again: a replace */
            stable_digest(d, i);
            make_row(&r, i + 1, d, "stable");
            lk_keycache_put(f->c, &r);
        }
        for (int i = 0; i < 1000; i++) { /* new keys: the table grows */
            uint64_t h = (uint64_t)(gen * 1000 + i) * UINT64_C(0x9e3779b97f4a7c15) + 7;
            make_digest(d, h, h >> 9, h);
            make_row(&r, 200000 + gen * 1000 + i, d, "more");
            lk_keycache_put(f->c, &r);
        }
        lk_keycache_fit(f->c);
    }
    atomic_store(&rc.stop, true);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&rc.bad), 0);
    assert_true(atomic_load(&rc.reads) > 0);
    assert_int_equal(lk_keycache_count(f->c), STABLE + CHURN + 60 * 1000);
}

/* Meta and identity ride in ext: a key without them (or with meta {}) has no
 * ext at all; one with only them has ext but is not on the limits' path; a
 * change that removes them leaves no ext, and the bytes counted come back. */
static void test_meta_and_identity(void **state)
{
    struct fixture *f = *state;
    struct lk_key_row r;
    uint8_t d[LK_DIGEST_LEN];
    const struct lk_ckey *k;
    size_t plain_bytes;

    make_digest(d, 0x5151515151515151u, 3, 1);
    make_row(&r, 1, d, "plain");
    r.meta = (char *)"{}";
    lk_keycache_put(f->c, &r);
    k = find(f->c, d);
    assert_null(k->ext);
    assert_false(k->ext_limits);
    plain_bytes = lk_keycache_bytes(f->c);

    r.meta = (char *)"{\"plan\":\"pro\"}";
    snprintf(r.identity_id, sizeof(r.identity_id), "idn_abc");
    snprintf(r.external_id, sizeof(r.external_id), "user \"1\"");
    lk_keycache_put(f->c, &r);
    k = find(f->c, d);
    assert_non_null(k->ext);
    assert_false(k->ext_limits);
    assert_string_equal(k->ext->meta_json, "{\"plan\":\"pro\"}");
    assert_int_equal(k->ext->meta_len, strlen(k->ext->meta_json));
    assert_string_equal(k->ext->identity_id, "idn_abc");
    assert_string_equal(k->ext->external_json, "\"user \\\"1\\\"\"");
    assert_true(lk_keycache_bytes(f->c) > plain_bytes);

    r.has_credits = true; /* with credits: the limits' path, meta kept */
    lk_keycache_put(f->c, &r);
    k = find(f->c, d);
    assert_true(k->ext_limits);
    assert_string_equal(k->ext->meta_json, "{\"plan\":\"pro\"}");

    r.has_credits = false;
    r.meta = (char *)"";
    r.identity_id[0] = r.external_id[0] = '\0';
    lk_keycache_put(f->c, &r);
    k = find(f->c, d);
    assert_null(k->ext);
    assert_int_equal(lk_keycache_bytes(f->c), plain_bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefix_collisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_and_identity, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
