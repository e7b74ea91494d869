/*
 * test_keyload.c — src/service/keyload.c: every key of a real SQLite store
 * reaches the cache whole, though a reader thread copies the rows out of the
 * scan in batches and the calling thread puts them. Enough keys for many
 * batches and for the readers to wait for the writer, with one reader and
 * with two (each half of the table); permissions, meta, named
 * rate limits and previous secrets vary from key to key, so a row that took
 * another's strings, or lost its own when its batch was refilled, shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "counters/counters.h"
#include "service/keycache.h"
#include "service/keyload.h"
#include "store/store.h"

#define NKEYS 24000 /* about a hundred batches; enough for two readers */

static char tmpdir[64], url[128];

static void digest_of(uint8_t d[LK_DIGEST_LEN], int i, int prev)
{
    for (int b = 0; b < LK_DIGEST_LEN; b++)
        d[b] = (uint8_t)((i * 2654435761u) >> (b % 4 * 8)) ^ (uint8_t)(b * 37 + prev * 101);
    memcpy(d, &i, sizeof(i));
    d[4] = (uint8_t)prev;
}

static void make_key(struct lk_key_row *k, int i, char *perms, size_t psz, char *meta, size_t msz)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->id, sizeof(k->id), "key_%06d", i);
    snprintf(k->workspace_id, sizeof(k->workspace_id), "ws_a");
    snprintf(k->name, sizeof(k->name), "key number %d", i);
    k->env = i % 2 ? LK_ENV_TEST : LK_ENV_LIVE;
    k->kind = LK_KIND_PERMANENT;
    k->enabled = true;
    k->created_at = 1700000000;
    k->daily_spend_cap = -1;
    digest_of(k->digest, i, 0);
    /* permissions of growing length, so the batch's text arena grows and moves */
    snprintf(perms, psz, "[\"perm:%d\",\"%.*s\"]", i, i % 200, "abcdefghijklmnopqrstuvwxyz"
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
             "abcdefghijklmnopqrstuvwxyz");
    k->permissions = perms;
    if (i % 5 == 0) {
        snprintf(meta, msz, "{\"i\":%d}", i);
        k->meta = meta;
    }
    if (i % 11 == 0) {
        k->has_prev = true;
        digest_of(k->prev_digest, i, 1);
        k->prev_until = 1900000000 + i;
    }
}

static void load_and_check(bool two_readers)
{
    struct lk_store *st = NULL, *st2 = NULL;
    struct lk_counters *ctr;
    struct lk_keycache *c;
    struct lk_errinfo ei;
    struct lk_ws_row w = {0};
    unsigned long prevs = 0;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/lk-keyload-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(url, sizeof(url), "sqlite:%s/db", tmpdir);
    if (lk_store_open(url, &st, &ei) != LK_OK)
        fail_msg("open: %s", ei.detail);
    snprintf(w.id, sizeof(w.id), "ws_a");
    snprintf(w.name, sizeof(w.name), "a");
    snprintf(w.key_prefix, sizeof(w.key_prefix), "lk");
    w.created_at = 1700000000;
    w.quota = w.test_quota = -1;
    assert_int_equal(lk_store_ws_insert(st, &w), LK_OK);
    assert_int_equal(lk_store_begin(st), LK_OK);
    for (int i = 0; i < NKEYS; i++) {
        struct lk_key_row k;
        struct lk_key_rl rl = {.limit = 10 + i, .window_ms = 60000};
        char perms[512], meta[64];
        make_key(&k, i, perms, sizeof(perms), meta, sizeof(meta));
        if (i % 7 == 0) {
            snprintf(rl.name, sizeof(rl.name), "tokens");
            k.rate_limits = &rl;
            k.n_rate_limits = 1;
        }
        assert_int_equal(lk_store_key_insert(st, &k), LK_OK);
        prevs += k.has_prev;
    }
    assert_int_equal(lk_store_commit(st), LK_OK);

    lk_keycache_thread_online();
    ctr = lk_counters_new();
    c = lk_keycache_new(ctr);
    if (two_readers && lk_store_open(url, &st2, &ei) != LK_OK)
        fail_msg("open a second connection: %s", ei.detail);
    assert_int_equal(lk_keyload(st, st2, c), LK_OK);
    assert_int_equal(lk_keycache_count(c), NKEYS + prevs);

    lk_keycache_read_lock();
    for (int i = 0; i < NKEYS; i++) {
        struct lk_key_row want;
        char perms[512], meta[64], name_json[64], id[LK_ID_MAX];
        uint8_t d[LK_DIGEST_LEN];
        const struct lk_ckey *k;

        make_key(&want, i, perms, sizeof(perms), meta, sizeof(meta));
        k = lk_keycache_find(c, want.digest);
        assert_non_null(k);
        snprintf(id, sizeof(id), "key_%06d", i);
        assert_string_equal(k->id, id);
        snprintf(name_json, sizeof(name_json), "\"key number %d\"", i);
        assert_string_equal(k->name_json, name_json);
        assert_string_equal(k->permissions_json, perms);
        assert_int_equal(k->env, i % 2 ? LK_ENV_TEST : LK_ENV_LIVE);
        assert_int_equal(k->retired_at, 0);
        if (i % 5 == 0) {
            assert_non_null(k->ext);
            assert_non_null(k->ext->meta_json);
            assert_memory_equal(k->ext->meta_json, meta, strlen(meta));
            assert_int_equal(k->ext->meta_len, strlen(meta));
        } else {
            assert_true(k->ext == NULL || k->ext->meta_json == NULL);
        }
        if (i % 7 == 0) {
            assert_non_null(k->ext);
            assert_int_equal(k->ext->n_rl, 1);
        } else {
            assert_true(k->ext == NULL || k->ext->n_rl == 0);
        }
        digest_of(d, i, 1);
        k = lk_keycache_find(c, d);
        if (i % 11 == 0) {
            assert_non_null(k);
            assert_string_equal(k->id, id);
            assert_int_equal(k->retired_at, 1900000000 + i);
        } else {
            assert_null(k);
        }
    }
    lk_keycache_read_unlock();

    lk_keycache_free(c);
    lk_counters_free(ctr);
    lk_keycache_thread_offline();
    lk_store_close(st2);
    lk_store_close(st);
    {
        const char *suffix[] = {"", "-wal", "-shm", "-journal", ".counters", ".webhook-key"};
        char path[160];
        for (size_t i = 0; i < LK_ARRAY_LEN(suffix); i++) {
            snprintf(path, sizeof(path), "%s/db%s", tmpdir, suffix[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
}

static void test_every_key_arrives_whole(void **state)
{
    (void)state;
    load_and_check(false);
}

/* Each reader its half of the rowids, on a connection of its own. */
static void test_two_readers_bring_every_key_once(void **state)
{
    (void)state;
    load_and_check(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key_arrives_whole),
        cmocka_unit_test(test_two_readers_bring_every_key_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
