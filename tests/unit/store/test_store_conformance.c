/*
 * test_store_conformance.c — every backend behind src/store/store.h answers the
 * same: the same rows back, the same errors (a taken id, email or digest is
 * LK_ERR_CONFLICT), the same refusals (credits and leases never below zero),
 * the same change log. Each test runs against SQLite (a temp file) and, when
 * LATCHKEY_TEST_PG_URL names a PostgreSQL server whose role may create
 * databases, against PostgreSQL, on a fresh database each time.
 *
 * An op a backend does not have yet answers LK_ERR_STORAGE_UNAVAILABLE; on
 * SQLite such a case is skipped rather than failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "store/store.h"

static bool on_pg;
static char url[1024], tmpdir[64], dbname[64];
static struct lk_store *st;

/* --- a fresh database per test ------------------------------------------------------ */

static char pg_base[1024];

/* pg_base with its database path replaced by name. */
static void pg_url_for(const char *name, char *out, size_t outsz)
{
    const char *p = strstr(pg_base, "://");
    const char *slash = p ? strchr(p + 3, '/') : NULL;
    const char *q = strchr(pg_base, '?');
    size_t host_len = slash ? (size_t)(slash - pg_base) : q ? (size_t)(q - pg_base) : strlen(pg_base);

    snprintf(out, outsz, "%.*s/%s%s", (int)host_len, pg_base, name, q ? q : "");
}

static void pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(pg_base);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static int setup(void **state)
{
    struct lk_errinfo ei;

    (void)state;
    if (on_pg) {
        snprintf(dbname, sizeof(dbname), "lk_unit_%ld_%u", (long)getpid(), (unsigned)random());
        char sql[128];
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
        pg_admin(sql);
        pg_url_for(dbname, url, sizeof(url));
    } else {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/lk-store-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        snprintf(url, sizeof(url), "sqlite:%s/db", tmpdir);
    }
    if (lk_store_open(url, &st, &ei) != LK_OK)
        fail_msg("open: %s", ei.detail);
    return 0;
}

static int teardown(void **state)
{
    char path[128];

    (void)state;
    lk_store_close(st);
    st = NULL;
    if (on_pg) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", dbname);
        pg_admin(sql);
    } else {
        const char *suffix[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < LK_ARRAY_LEN(suffix); i++) {
            snprintf(path, sizeof(path), "%s/db%s", tmpdir, suffix[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
    return 0;
}

/* An op this backend lacks so far (LK_ERR_STORAGE_UNAVAILABLE on SQLite): skip. */
#define NEEDS(call)                                                                                \
    do {                                                                                           \
        enum lk_err e_ = (call);                                                                   \
        if (e_ == LK_ERR_STORAGE_UNAVAILABLE && !on_pg)                                            \
            skip();                                                                                \
        assert_int_equal(e_, LK_OK);                                                               \
    } while (0)

/* --- rows ------------------------------------------------------------------------------ */

static void make_ws(struct lk_ws_row *w, const char *id)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->id, sizeof(w->id), "%s", id);
    snprintf(w->name, sizeof(w->name), "name of %s", id);
    snprintf(w->key_prefix, sizeof(w->key_prefix), "lk");
    w->created_at = 1700000000;
    w->quota = w->test_quota = -1;
}

static void put_ws(const char *id)
{
    struct lk_ws_row w;
    make_ws(&w, id);
    assert_int_equal(lk_store_ws_insert(st, &w), LK_OK);
}

static void make_key(struct lk_key_row *k, const char *id, const char *ws, uint8_t digest_byte)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->id, sizeof(k->id), "%s", id);
    snprintf(k->workspace_id, sizeof(k->workspace_id), "%s", ws);
    snprintf(k->name, sizeof(k->name), "key %s", id);
    snprintf(k->hint, sizeof(k->hint), "lk_...%02x", digest_byte);
    k->permissions = (char *)"[\"read\"]";
    k->meta = (char *)"{\"team\":\"x\"}";
    k->enabled = true;
    k->created_at = 1700000100;
    k->daily_spend_cap = -1;
    memset(k->digest, digest_byte, LK_DIGEST_LEN);
    k->pepper_id = 1;
}

static int64_t head(void)
{
    int64_t h = -1;
    NEEDS(lk_store_changes_head(st, &h));
    return h;
}

struct changes {
    int n;
    struct lk_change_row rows[32];
};

static int add_change(void *arg, const struct lk_change_row *row)
{
    struct changes *c = arg;
    if (c->n < (int)LK_ARRAY_LEN(c->rows))
        c->rows[c->n++] = *row;
    return 0;
}

static struct changes since(int64_t after)
{
    struct changes c = {0};
    NEEDS(lk_store_changes_since(st, after, 100, add_change, &c));
    return c;
}

/* --- workspaces and keys ----------------------------------------------------------------- */

static int count_ws(void *arg, const struct lk_ws_row *w)
{
    (void)w;
    (*(int *)arg)++;
    return 0;
}

static void test_workspaces(void **state)
{
    struct lk_ws_row a, b, got;
    int64_t n = 0;
    int listed = 0;

    (void)state;
    make_ws(&a, "ws_a");
    a.is_operator = true;
    assert_int_equal(lk_store_ws_insert(st, &a), LK_OK);
    make_ws(&b, "ws_b");
    b.key_format = LK_FORMAT_HEX;
    b.quota = 5000000000LL; /* beyond 32 bits */
    b.test_quota = 0;
    assert_int_equal(lk_store_ws_insert(st, &b), LK_OK);
    assert_true(b.number > a.number && a.number > 0);
    assert_int_equal(lk_store_ws_insert(st, &b), LK_ERR_CONFLICT);

    assert_int_equal(lk_store_ws_get(st, "ws_b", &got), LK_OK);
    assert_string_equal(got.name, "name of ws_b");
    assert_int_equal(got.key_format, LK_FORMAT_HEX);
    assert_false(got.is_operator);
    assert_int_equal(got.quota, 5000000000LL);
    assert_int_equal(got.test_quota, 0);
    assert_int_equal(lk_store_ws_get_by_number(st, a.number, &got), LK_OK);
    assert_string_equal(got.id, "ws_a");
    assert_true(got.is_operator);
    assert_int_equal(got.quota, -1);
    assert_int_equal(lk_store_ws_get(st, "ws_none", &got), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_ws_count(st, &n), LK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(lk_store_ws_list(st, count_ws, &listed), LK_OK);
    assert_int_equal(listed, 2);
    assert_int_equal(lk_store_ws_set_quota(st, "ws_a", 10, -1), LK_OK);
    assert_int_equal(lk_store_ws_get(st, "ws_a", &got), LK_OK);
    assert_int_equal(got.quota, 10);
    assert_int_equal(got.test_quota, -1);
    assert_int_equal(lk_store_ws_set_quota(st, "ws_none", 10, 10), LK_ERR_NOT_FOUND);
}

struct key_ids {
    int n;
    char ids[16][LK_ID_MAX];
};

static int add_key_id(void *arg, const struct lk_key_row *k)
{
    struct key_ids *ki = arg;
    if (ki->n < 16)
        snprintf(ki->ids[ki->n++], LK_ID_MAX, "%s", k->id);
    return 0;
}

static void test_keys(void **state)
{
    struct lk_key_row k, k2, got;
    struct key_ids ki = {0};
    struct lk_key_filter f = {.env = -1, .status = LK_STATUS_ANY, .now = 1700000500, .limit = 10};

    int64_t none = -1;

    (void)state;
    assert_int_equal(lk_store_key_rowid_max(st, &none), LK_OK);
    assert_int_equal(none, 0); /* no key yet */
    put_ws("ws_a");
    make_key(&k, "key_1", "ws_a", 0x11);
    k.expires_at = 1800000000;
    k.rl_limit = 100;
    k.rl_window_s = 60;
    k.daily_spend_cap = 5000000000LL;
    snprintf(k.created_by, sizeof(k.created_by), "key_root");
    assert_int_equal(lk_store_key_insert(st, &k), LK_OK);
    assert_true(k.rowid > 0);

    assert_int_equal(lk_store_key_get(st, "ws_a", "key_1", &got), LK_OK);
    assert_int_equal(got.rowid, k.rowid);
    assert_string_equal(got.permissions, "[\"read\"]");
    assert_string_equal(got.meta, "{\"team\":\"x\"}");
    assert_memory_equal(got.digest, k.digest, LK_DIGEST_LEN);
    assert_int_equal(got.expires_at, 1800000000);
    assert_int_equal(got.revoked_at, 0);
    assert_int_equal(got.last_used_at, 0);
    assert_int_equal(got.rl_limit, 100);
    assert_int_equal(got.daily_spend_cap, 5000000000LL);
    assert_false(got.has_prev);
    assert_true(got.enabled);
    assert_string_equal(got.created_by, "key_root");
    lk_key_row_release(&got);
    /* another workspace's key is not found by id alone */
    assert_int_equal(lk_store_key_get(st, "ws_b", "key_1", &got), LK_ERR_NOT_FOUND);

    /* a taken id or digest is a conflict */
    make_key(&k2, "key_1", "ws_a", 0x22);
    assert_int_equal(lk_store_key_insert(st, &k2), LK_ERR_CONFLICT);
    make_key(&k2, "key_2", "ws_a", 0x11);
    assert_int_equal(lk_store_key_insert(st, &k2), LK_ERR_CONFLICT);

    /* regenerate: the old digest stays as the previous one */
    memcpy(k.prev_digest, k.digest, LK_DIGEST_LEN);
    k.has_prev = true;
    k.prev_pepper_id = 1;
    k.prev_until = 1700090000;
    memset(k.digest, 0x12, LK_DIGEST_LEN);
    k.env = LK_ENV_TEST;
    k.revoked_at = 1700000400;
    assert_int_equal(lk_store_key_update(st, &k), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_1", &got), LK_OK);
    assert_true(got.has_prev);
    assert_int_equal(got.prev_digest[0], 0x11);
    assert_int_equal(got.digest[0], 0x12);
    assert_int_equal(got.prev_until, 1700090000);
    assert_int_equal(got.env, LK_ENV_TEST);
    assert_int_equal(got.revoked_at, 1700000400);
    lk_key_row_release(&got);

    /* a digest is one key's in the whole store, current or previous */
    make_key(&k2, "key_2", "ws_a", 0x11); /* k's previous digest */
    assert_int_equal(lk_store_key_insert(st, &k2), LK_ERR_CONFLICT);
    make_key(&k2, "key_2", "ws_a", 0x33);
    k2.has_prev = true;
    memset(k2.prev_digest, 0x12, LK_DIGEST_LEN); /* k's current digest */
    k2.prev_until = 1700090000;
    assert_int_equal(lk_store_key_insert(st, &k2), LK_ERR_CONFLICT);
    k2.has_prev = false;
    assert_int_equal(lk_store_key_insert(st, &k2), LK_OK);
    int64_t rowid2 = k2.rowid;
    /* nor may an update take another key's digest */
    memset(k2.digest, 0x12, LK_DIGEST_LEN);
    assert_int_equal(lk_store_key_update(st, &k2), LK_ERR_CONFLICT);

    make_key(&k2, "key_none", "ws_a", 0x44);
    assert_int_equal(lk_store_key_update(st, &k2), LK_ERR_NOT_FOUND);

    /* newest first; filters */
    assert_int_equal(lk_store_key_list(st, "ws_a", &f, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 2);
    assert_string_equal(ki.ids[0], "key_2");
    assert_string_equal(ki.ids[1], "key_1");
    ki.n = 0;
    f.status = LK_STATUS_REVOKED;
    assert_int_equal(lk_store_key_list(st, "ws_a", &f, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 1);
    assert_string_equal(ki.ids[0], "key_1");
    ki.n = 0;
    f.status = LK_STATUS_ACTIVE;
    f.env = LK_ENV_LIVE;
    assert_int_equal(lk_store_key_list(st, "ws_a", &f, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 1);
    assert_string_equal(ki.ids[0], "key_2");
    ki.n = 0;
    f.status = LK_STATUS_ANY;
    f.env = -1;
    f.before_rowid = rowid2;
    assert_int_equal(lk_store_key_list(st, "ws_a", &f, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 1);
    assert_string_equal(ki.ids[0], "key_1");
    ki.n = 0;
    assert_int_equal(lk_store_key_scan(st, LK_KEY_COLS_ALL, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 2);
    assert_string_equal(ki.ids[0], "key_1"); /* by rowid */
    /* a range of rowids, after < rowid <= upto: the halves a start reads at once */
    int64_t max = -1;
    assert_int_equal(lk_store_key_rowid_max(st, &max), LK_OK);
    assert_int_equal(max, rowid2);
    ki.n = 0;
    assert_int_equal(lk_store_key_scan_range(st, LK_KEY_COLS_CACHE, 0, rowid2 - 1, add_key_id,
                                             &ki),
                     LK_OK);
    assert_int_equal(ki.n, 1);
    assert_string_equal(ki.ids[0], "key_1");
    ki.n = 0;
    assert_int_equal(lk_store_key_scan_range(st, LK_KEY_COLS_CACHE, rowid2 - 1, INT64_MAX,
                                             add_key_id, &ki),
                     LK_OK);
    assert_int_equal(ki.n, 1);
    assert_string_equal(ki.ids[0], "key_2");
    ki.n = 0;
    assert_int_equal(lk_store_key_scan_range(st, LK_KEY_COLS_ALL, rowid2, INT64_MAX, add_key_id,
                                             &ki),
                     LK_OK);
    assert_int_equal(ki.n, 0);

    /* last-used times never move backwards */
    struct lk_touch t[] = {{k.rowid, 1700000600}, {k.rowid, 1700000500}};
    assert_int_equal(lk_store_keys_touch(st, t, 2), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_1", &got), LK_OK);
    assert_int_equal(got.last_used_at, 1700000600);
    lk_key_row_release(&got);

    NEEDS(lk_store_key_get_by_rowid(st, rowid2, &got));
    assert_string_equal(got.id, "key_2");
    lk_key_row_release(&got);
    assert_int_equal(lk_store_key_get_by_rowid(st, 999999, &got), LK_ERR_NOT_FOUND);
}

static int add_string(void *arg, const char *s)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s|", s);
    return 0;
}

static void test_permissions_in_use_in_byte_order(void **state)
{
    struct lk_key_row k;
    char out[256] = "";

    (void)state;
    put_ws("ws_a");
    make_key(&k, "key_1", "ws_a", 1);
    k.permissions = (char *)"[\"b\",\"B\",\"\xc3\xa9\",\"a\"]";
    assert_int_equal(lk_store_key_insert(st, &k), LK_OK);
    make_key(&k, "key_2", "ws_a", 2);
    k.permissions = (char *)"[\"a\",\"*\"]";
    assert_int_equal(lk_store_key_insert(st, &k), LK_OK);
    make_key(&k, "key_3", "ws_a", 3); /* revoked: not in use */
    k.permissions = (char *)"[\"zzz\"]";
    k.revoked_at = 1700000001;
    assert_int_equal(lk_store_key_insert(st, &k), LK_OK);
    assert_int_equal(lk_store_permissions_in_use(st, "ws_a", add_string, out), LK_OK);
    assert_string_equal(out, "*|B|a|b|\xc3\xa9|");
}

/* --- people -------------------------------------------------------------------------------- */

static void make_user(struct lk_user_row *u, const char *id, const char *email)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "%s", id);
    snprintf(u->email, sizeof(u->email), "%s", email);
    snprintf(u->password_hash, sizeof(u->password_hash), "$argon2id$v=19$x");
    u->created_at = 1700000000;
}

static void test_users_emails_case_insensitive(void **state)
{
    struct lk_user_row u, got;

    (void)state;
    make_user(&u, "usr_1", "Ann@Example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    make_user(&u, "usr_2", "ann@EXAMPLE.COM");
    assert_int_equal(lk_store_user_insert(st, &u), LK_ERR_CONFLICT);
    make_user(&u, "usr_1", "other@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_user_by_email(st, "ANN@example.COM", &got), LK_OK);
    assert_string_equal(got.id, "usr_1");
    assert_string_equal(got.email, "Ann@Example.com");
    assert_int_equal(lk_store_user_get(st, "usr_1", &got), LK_OK);
    assert_string_equal(got.password_hash, "$argon2id$v=19$x");
    assert_int_equal(lk_store_user_by_email(st, "nobody@example.com", &got), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_user_get(st, "usr_9", &got), LK_ERR_NOT_FOUND);
}

struct members {
    int n;
    struct lk_member_row rows[8];
};

static int add_member(void *arg, const struct lk_member_row *m)
{
    struct members *ms = arg;
    if (ms->n < 8)
        ms->rows[ms->n++] = *m;
    return 0;
}

static void test_members(void **state)
{
    struct lk_user_row u;
    struct lk_member_row m, got;
    struct members ms = {0};
    int64_t n = -1;

    (void)state;
    put_ws("ws_a");
    put_ws("ws_b");
    make_user(&u, "usr_1", "one@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    make_user(&u, "usr_2", "two@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    memset(&m, 0, sizeof(m));
    snprintf(m.workspace_id, sizeof(m.workspace_id), "ws_a");
    snprintf(m.user_id, sizeof(m.user_id), "usr_1");
    m.role = LK_ROLE_OWNER;
    m.created_at = 1700000001;
    assert_int_equal(lk_store_member_put(st, &m), LK_OK);
    snprintf(m.user_id, sizeof(m.user_id), "usr_2");
    m.role = LK_ROLE_VIEWER;
    m.created_at = 1700000002;
    assert_int_equal(lk_store_member_put(st, &m), LK_OK);
    snprintf(m.workspace_id, sizeof(m.workspace_id), "ws_b");
    assert_int_equal(lk_store_member_put(st, &m), LK_OK);

    /* put again changes the role */
    snprintf(m.workspace_id, sizeof(m.workspace_id), "ws_a");
    m.role = LK_ROLE_EDITOR;
    assert_int_equal(lk_store_member_put(st, &m), LK_OK);
    assert_int_equal(lk_store_member_get(st, "ws_a", "usr_2", &got), LK_OK);
    assert_int_equal(got.role, LK_ROLE_EDITOR);
    assert_string_equal(got.email, "two@example.com");
    assert_int_equal(lk_store_member_count(st, "ws_a", LK_ROLE_OWNER, &n), LK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(lk_store_member_count(st, "ws_a", LK_ROLE_VIEWER, &n), LK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(lk_store_member_list(st, "ws_a", add_member, &ms), LK_OK);
    assert_int_equal(ms.n, 2);
    assert_string_equal(ms.rows[0].user_id, "usr_1");
    assert_string_equal(ms.rows[1].email, "two@example.com");
    ms.n = 0;
    assert_int_equal(lk_store_member_list_user(st, "usr_2", add_member, &ms), LK_OK);
    assert_int_equal(ms.n, 2);
    assert_int_equal(lk_store_member_delete(st, "ws_a", "usr_2"), LK_OK);
    assert_int_equal(lk_store_member_delete(st, "ws_a", "usr_2"), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_member_get(st, "ws_a", "usr_2", &got), LK_ERR_NOT_FOUND);
}

static void test_sessions(void **state)
{
    struct lk_user_row u;
    struct lk_session_row r, got;

    (void)state;
    make_user(&u, "usr_1", "one@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    memset(&r, 0, sizeof(r));
    memset(r.digest, 0xab, LK_DIGEST_LEN);
    r.digest[31] = 0x00; /* a zero byte is data, not an end */
    snprintf(r.user_id, sizeof(r.user_id), "usr_1");
    r.created_at = 1700000000;
    r.expires_at = 1700086400;
    assert_int_equal(lk_store_session_insert(st, &r), LK_OK);
    assert_int_equal(lk_store_session_insert(st, &r), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_session_get(st, r.digest, &got), LK_OK);
    assert_memory_equal(got.digest, r.digest, LK_DIGEST_LEN);
    assert_string_equal(got.user_id, "usr_1");
    assert_int_equal(got.expires_at, 1700086400);
    assert_int_equal(lk_store_session_delete(st, r.digest), LK_OK);
    assert_int_equal(lk_store_session_get(st, r.digest, &got), LK_ERR_NOT_FOUND);
}

static int count_inv(void *arg, const struct lk_invitation_row *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static void make_inv(struct lk_invitation_row *r, const char *id, uint8_t d, int64_t expires)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->workspace_id, sizeof(r->workspace_id), "ws_a");
    snprintf(r->email, sizeof(r->email), "Guest@example.com");
    r->role = LK_ROLE_EDITOR;
    memset(r->digest, d, LK_DIGEST_LEN);
    snprintf(r->invited_by, sizeof(r->invited_by), "key_root");
    r->created_at = expires - 1000;
    r->expires_at = expires;
}

static void test_invitations(void **state)
{
    struct lk_invitation_row r, got;
    int64_t n = -1;
    int listed = 0;

    (void)state;
    put_ws("ws_a");
    make_inv(&r, "inv_1", 1, 2000);
    assert_int_equal(lk_store_invitation_insert(st, &r), LK_OK);
    make_inv(&r, "inv_2", 1, 3000); /* the same token digest */
    assert_int_equal(lk_store_invitation_insert(st, &r), LK_ERR_CONFLICT);
    make_inv(&r, "inv_2", 2, 3000);
    assert_int_equal(lk_store_invitation_insert(st, &r), LK_OK);
    assert_int_equal(lk_store_invitation_by_digest(st, r.digest, &got), LK_OK);
    assert_string_equal(got.id, "inv_2");
    assert_string_equal(got.email, "Guest@example.com");
    assert_int_equal(got.role, LK_ROLE_EDITOR);
    assert_int_equal(lk_store_invitation_count(st, "ws_a", 2500, &n), LK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(lk_store_invitation_list(st, "ws_a", 1500, count_inv, &listed), LK_OK);
    assert_int_equal(listed, 2);
    assert_int_equal(lk_store_invitation_prune(st, "ws_a", 2500), LK_OK);
    memset(r.digest, 1, LK_DIGEST_LEN);
    assert_int_equal(lk_store_invitation_by_digest(st, r.digest, &got), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_invitation_delete(st, "ws_a", "inv_2"), LK_OK);
    assert_int_equal(lk_store_invitation_delete(st, "ws_a", "inv_2"), LK_ERR_NOT_FOUND);
}

/* --- money --------------------------------------------------------------------------------- */

static void test_credits_refuse_overdraft(void **state)
{
    struct lk_credit_account a;

    (void)state;
    put_ws("ws_a");
    assert_int_equal(lk_store_credits_get(st, "ws_a", &a), LK_OK);
    assert_int_equal(a.balance, 0);
    assert_string_equal(a.workspace_id, "ws_a");
    assert_int_equal(lk_store_credits_move(st, "ws_a", 5000000000LL, 0, 0, 5000000000LL), LK_OK);
    /* lease 3e9, spend 1e9 of it */
    assert_int_equal(lk_store_credits_move(st, "ws_a", -3000000000LL, 3000000000LL, 0, 0), LK_OK);
    assert_int_equal(lk_store_credits_move(st, "ws_a", 0, -1000000000LL, 1000000000LL, 0), LK_OK);
    /* neither balance nor leased may go below zero, nor topped_up past 2^53 - 1 */
    assert_int_equal(lk_store_credits_move(st, "ws_a", -2000000001LL, 2000000001LL, 0, 0),
                     LK_ERR_CONFLICT);
    assert_int_equal(lk_store_credits_move(st, "ws_a", 0, -2000000001LL, 0, 0), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_credits_move(st, "ws_a", 1, 0, 0, 9007199254740991LL),
                     LK_ERR_CONFLICT);
    assert_int_equal(lk_store_credits_get(st, "ws_a", &a), LK_OK);
    assert_int_equal(a.balance, 2000000000LL);
    assert_int_equal(a.leased, 2000000000LL);
    assert_int_equal(a.spent, 1000000000LL);
    assert_int_equal(a.topped_up, 5000000000LL);
    assert_int_equal(a.balance + a.leased + a.spent, a.topped_up);
    /* an account that never had credits cannot be overdrawn either */
    put_ws("ws_b");
    assert_int_equal(lk_store_credits_move(st, "ws_b", -1, 1, 0, 0), LK_ERR_CONFLICT);
}

struct ledger {
    int n;
    struct lk_ledger_row rows[8];
};

static int add_ledger(void *arg, const struct lk_ledger_row *r)
{
    struct ledger *l = arg;
    if (l->n < 8)
        l->rows[l->n++] = *r;
    return 0;
}

static void test_ledger(void **state)
{
    struct lk_ledger_row r;
    struct ledger l = {0};

    (void)state;
    put_ws("ws_a");
    memset(&r, 0, sizeof(r));
    snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_a");
    snprintf(r.kind, sizeof(r.kind), "top_up");
    snprintf(r.actor, sizeof(r.actor), "key_root");
    snprintf(r.note, sizeof(r.note), "first");
    r.amount = 100;
    r.created_at = 1700000000;
    assert_int_equal(lk_store_ledger_add(st, &r), LK_OK);
    int64_t top_id = r.id;
    /* spend entries of one hour add up into one row */
    snprintf(r.kind, sizeof(r.kind), "spend");
    r.note[0] = '\0';
    r.period = 1700000000 / 3600 * 3600;
    r.amount = 3;
    assert_int_equal(lk_store_ledger_add(st, &r), LK_OK);
    r.amount = 4;
    assert_int_equal(lk_store_ledger_add(st, &r), LK_OK);
    assert_int_equal(lk_store_ledger_list(st, "ws_a", 0, 10, add_ledger, &l), LK_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.rows[0].kind, "spend");
    assert_int_equal(l.rows[0].amount, 7);
    assert_int_equal(l.rows[0].period, r.period);
    assert_string_equal(l.rows[1].note, "first");
    assert_int_equal(l.rows[1].period, 0);
    assert_int_equal(l.rows[1].id, top_id);
    l.n = 0;
    assert_int_equal(lk_store_ledger_list(st, "ws_a", l.rows[0].id + 0, 10, add_ledger, &l),
                     LK_OK);
    assert_true(l.n >= 1);
}

struct counters {
    int n;
    struct lk_counter_row rows[16];
};

static int add_counter(void *arg, const struct lk_counter_row *r)
{
    struct counters *c = arg;
    if (c->n < 16)
        c->rows[c->n++] = *r;
    return 0;
}

static void test_counters(void **state)
{
    struct lk_key_row k;
    struct counters c = {0};
    struct lk_counter_row r;

    (void)state;
    put_ws("ws_a");
    make_key(&k, "key_1", "ws_a", 1);
    assert_int_equal(lk_store_key_insert(st, &k), LK_OK);

    memset(&r, 0, sizeof(r));
    snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_a");
    r.period = 19700;
    r.n = 5;
    r.n_test = 1;
    assert_int_equal(lk_store_counter_add(st, LK_CTR_QUOTA, &r), LK_OK);
    assert_int_equal(lk_store_counter_add(st, LK_CTR_QUOTA, &r), LK_OK);
    r.n = 7; /* raise: 10 stays, 2 becomes 3 */
    r.n_test = 3;
    assert_int_equal(lk_store_counter_raise(st, LK_CTR_QUOTA, &r), LK_OK);
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_QUOTA, 0, 19700, 19701, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rows[0].n, 10);
    assert_int_equal(c.rows[0].n_test, 3);
    assert_string_equal(c.rows[0].workspace_id, "ws_a");

    memset(&r, 0, sizeof(r));
    r.key_rowid = k.rowid;
    r.period = 19700;
    r.n = 1LL << 40; /* 64-bit */
    assert_int_equal(lk_store_counter_add(st, LK_CTR_SPEND, &r), LK_OK);
    r.n = 1;
    assert_int_equal(lk_store_counter_raise(st, LK_CTR_SPEND, &r), LK_OK);
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_SPEND, 0, 0, 100000, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rows[0].n, 1LL << 40);
    assert_int_equal(c.rows[0].key_rowid, k.rowid);

    for (int h = 0; h < 3; h++) {
        r.period = 1700000000 / 3600 * 3600 + h * 3600;
        r.code = h == 1 ? 4 : 0;
        r.n = 10 + h;
        assert_int_equal(lk_store_counter_add(st, LK_CTR_USAGE, &r), LK_OK);
    }
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_USAGE, k.rowid, 0, INT64_MAX, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 3);
    assert_true(c.rows[0].period < c.rows[1].period && c.rows[1].period < c.rows[2].period);
    assert_int_equal(c.rows[1].code, 4);
    c.n = 0;
    assert_int_equal(lk_store_usage_scan_ws(st, "ws_a", 0, INT64_MAX, add_counter, &c), LK_OK);
    assert_int_equal(c.n, 3);
    c.n = 0;
    assert_int_equal(lk_store_usage_scan_ws(st, "ws_b", 0, INT64_MAX, add_counter, &c), LK_OK);
    assert_int_equal(c.n, 0);

    /* prune: usage before the second hour, day counters before day 19701 */
    assert_int_equal(lk_store_counter_prune(st, 1700000000 / 3600 * 3600 + 3600, 19701), LK_OK);
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_USAGE, 0, 0, INT64_MAX, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 2);
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_QUOTA, 0, 0, INT64_MAX, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 0);
}

struct batch_arg {
    const enum lk_counter_kind *kinds;
    const struct lk_counter_row *rows;
    size_t n;
};

static enum lk_err batch_txn(struct lk_store *s, void *arg)
{
    const struct batch_arg *b = arg;

    return lk_store_counters_add(s, b->kinds, b->rows, b->n);
}

static struct lk_counter_row ctr(const char *ws, int64_t rowid, int64_t period, int code,
                                 int64_t n, int64_t n_test)
{
    struct lk_counter_row r;

    memset(&r, 0, sizeof(r));
    snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", ws);
    r.key_rowid = rowid;
    r.period = period;
    r.code = code;
    r.n = n;
    r.n_test = n_test;
    return r;
}

/* A flush's batch: kinds mixed, the same counter several times in it, counters
 * already stored; the result is what adding the rows one by one gives. */
static void test_counters_batch_with_repeats(void **state)
{
    const int64_t hour = 1700000000 / 3600 * 3600;
    struct lk_key_row k1, k2;
    struct counters c = {0};

    (void)state;
    put_ws("ws_a");
    put_ws("ws_\"q\\"); /* quoted in an array literal */
    make_key(&k1, "key_1", "ws_a", 1);
    make_key(&k2, "key_2", "ws_a", 2);
    assert_int_equal(lk_store_key_insert(st, &k1), LK_OK);
    assert_int_equal(lk_store_key_insert(st, &k2), LK_OK);
    struct lk_counter_row first = ctr("", k1.rowid, hour, 0, 100, 0);
    assert_int_equal(lk_store_counter_add(st, LK_CTR_USAGE, &first), LK_OK);
    assert_int_equal(lk_store_counters_add(st, NULL, NULL, 0), LK_OK);

    enum lk_counter_kind kinds[] = {LK_CTR_USAGE, LK_CTR_QUOTA, LK_CTR_USAGE, LK_CTR_SPEND,
                                    LK_CTR_USAGE, LK_CTR_QUOTA, LK_CTR_SPEND, LK_CTR_QUOTA,
                                    LK_CTR_USAGE};
    struct lk_counter_row rows[] = {
        ctr("", k1.rowid, hour, 0, 1, 0),       ctr("ws_a", 0, 19700, 0, 5, 1),
        ctr("", k1.rowid, hour, 0, 2, 0),       ctr("", k2.rowid, 19700, 0, 1LL << 40, 0),
        ctr("", k1.rowid, hour, 4, 3, 0),       ctr("ws_a", 0, 19700, 0, 6, 2),
        ctr("", k2.rowid, 19700, 0, 7, 0),      ctr("ws_\"q\\", 0, 19700, 0, 9, 0),
        ctr("", k2.rowid, hour + 3600, 0, 4, 0),
    };
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, batch_txn,
                                  &(struct batch_arg){kinds, rows, LK_ARRAY_LEN(rows)}),
                     LK_OK);

    assert_int_equal(lk_store_counter_scan(st, LK_CTR_USAGE, k1.rowid, 0, INT64_MAX, add_counter,
                                           &c),
                     LK_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.rows[0].code, 0);
    assert_int_equal(c.rows[0].n, 103);
    assert_int_equal(c.rows[1].code, 4);
    assert_int_equal(c.rows[1].n, 3);
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_USAGE, k2.rowid, 0, INT64_MAX, add_counter,
                                           &c),
                     LK_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rows[0].period, hour + 3600);
    assert_int_equal(c.rows[0].n, 4);
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_SPEND, 0, 0, 100000, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rows[0].n, (1LL << 40) + 7);
    c.n = 0;
    assert_int_equal(lk_store_counter_scan(st, LK_CTR_QUOTA, 0, 19700, 19701, add_counter, &c),
                     LK_OK);
    assert_int_equal(c.n, 2);
    for (int i = 0; i < 2; i++) {
        bool a = strcmp(c.rows[i].workspace_id, "ws_a") == 0;
        assert_true(a || strcmp(c.rows[i].workspace_id, "ws_\"q\\") == 0);
        assert_int_equal(c.rows[i].n, a ? 11 : 9);
        assert_int_equal(c.rows[i].n_test, a ? 3 : 0);
    }
}

/* --- audit ------------------------------------------------------------------------------------ */

struct audit {
    int n;
    char actions[16][48];
};

static int add_audit(void *arg, const struct lk_audit_event *ev)
{
    struct audit *a = arg;
    if (a->n < 16)
        snprintf(a->actions[a->n++], 48, "%s", ev->row.action);
    return 0;
}

static void test_audit_filters(void **state)
{
    static const char *const actions[] = {"key.create", "key.revoke", "workspace.update",
                                          "key.create"};
    struct lk_audit_row r;
    struct lk_audit_filter f;
    struct audit a = {0};

    (void)state;
    for (int i = 0; i < 4; i++) {
        memset(&r, 0, sizeof(r));
        snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_a");
        snprintf(r.actor, sizeof(r.actor), i == 3 ? "usr_2" : "usr_1");
        snprintf(r.action, sizeof(r.action), "%s", actions[i]);
        snprintf(r.target, sizeof(r.target), "key_%d", i);
        r.created_at = 1000 + i;
        assert_int_equal(lk_store_audit_insert(st, &r), LK_OK);
    }
    assert_int_equal(lk_store_audit_list(st, "ws_a", NULL, 0, 10, add_audit, &a), LK_OK);
    assert_int_equal(a.n, 4);
    assert_string_equal(a.actions[0], "key.create"); /* newest first */
    assert_string_equal(a.actions[1], "workspace.update");

    memset(&f, 0, sizeof(f));
    snprintf(f.action, sizeof(f.action), "key.");
    f.action_prefix = true;
    a.n = 0;
    assert_int_equal(lk_store_audit_list(st, "ws_a", &f, 0, 10, add_audit, &a), LK_OK);
    assert_int_equal(a.n, 3);
    f.action_prefix = false; /* exact: "key." is no action */
    a.n = 0;
    assert_int_equal(lk_store_audit_list(st, "ws_a", &f, 0, 10, add_audit, &a), LK_OK);
    assert_int_equal(a.n, 0);

    memset(&f, 0, sizeof(f));
    snprintf(f.actor, sizeof(f.actor), "usr_1");
    f.from = 1001;
    f.to = 1003;
    a.n = 0;
    assert_int_equal(lk_store_audit_list(st, "ws_a", &f, 0, 10, add_audit, &a), LK_OK);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.actions[0], "workspace.update");
    assert_string_equal(a.actions[1], "key.revoke");
    a.n = 0;
    assert_int_equal(lk_store_audit_list(st, "ws_a", NULL, 0, 1, add_audit, &a), LK_OK);
    assert_int_equal(a.n, 1);
    a.n = 0;
    assert_int_equal(lk_store_audit_list(st, "ws_b", NULL, 0, 10, add_audit, &a), LK_OK);
    assert_int_equal(a.n, 0);
}

/* An event's detail (a leak report's URL) comes back as written, from the
 * listing and from the scan migrate copies with; events without one have "". */
static int keep_detail(void *arg, const struct lk_audit_event *ev)
{
    if (strcmp(ev->row.action, "key.leaked") == 0 || strcmp(ev->row.action, "key.revoke") == 0)
        snprintf((char *)arg + (ev->row.action[4] == 'l' ? 0 : LK_AUDIT_DETAIL_MAX),
                 LK_AUDIT_DETAIL_MAX, "%s", ev->row.detail[0] ? ev->row.detail : "(none)");
    return 0;
}

static void test_audit_detail(void **state)
{
    static char got[2][LK_AUDIT_DETAIL_MAX];
    struct lk_audit_row r;
    char detail[LK_AUDIT_DETAIL_MAX];
    size_t n = (size_t)snprintf(detail, sizeof(detail),
                                "{\"scanner\":\"github\",\"url\":\"https://ex.example/\u00e9");

    (void)state;
    /* The longest detail there is room for. */
    while (n < sizeof(detail) - 3)
        detail[n++] = 'x';
    memcpy(detail + n, "\"}", 3);
    memset(&r, 0, sizeof(r));
    snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_a");
    snprintf(r.action, sizeof(r.action), "key.leaked");
    memcpy(r.detail, detail, sizeof(detail));
    assert_int_equal(lk_store_audit_insert(st, &r), LK_OK);
    memset(r.detail, 0, sizeof(r.detail));
    snprintf(r.action, sizeof(r.action), "key.revoke");
    assert_int_equal(lk_store_audit_insert(st, &r), LK_OK);
    memset(got, 0, sizeof(got));
    assert_int_equal(lk_store_audit_list(st, "ws_a", NULL, 0, 10, keep_detail, got), LK_OK);
    assert_string_equal(got[0], detail);
    assert_string_equal(got[1], "(none)");
    memset(got, 0, sizeof(got));
    assert_int_equal(lk_store_audit_scan(st, keep_detail, got), LK_OK);
    assert_string_equal(got[0], detail);
    assert_string_equal(got[1], "(none)");
}

/* --- the change log ------------------------------------------------------------------------ */

static void test_change_log(void **state)
{
    struct lk_key_row k;
    struct lk_user_row u;
    struct lk_member_row m;
    int64_t h0, h1;
    struct changes c;

    (void)state;
    h0 = head();
    put_ws("ws_a");
    make_key(&k, "key_1", "ws_a", 1);
    assert_int_equal(lk_store_key_insert(st, &k), LK_OK);
    k.enabled = false;
    assert_int_equal(lk_store_key_update(st, &k), LK_OK);
    /* a last-used time is not a change */
    struct lk_touch t = {k.rowid, 1700000999};
    assert_int_equal(lk_store_keys_touch(st, &t, 1), LK_OK);
    make_user(&u, "usr_1", "one@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    memset(&m, 0, sizeof(m));
    snprintf(m.workspace_id, sizeof(m.workspace_id), "ws_a");
    snprintf(m.user_id, sizeof(m.user_id), "usr_1");
    m.role = LK_ROLE_OWNER;
    assert_int_equal(lk_store_member_put(st, &m), LK_OK);
    assert_int_equal(lk_store_member_delete(st, "ws_a", "usr_1"), LK_OK);
    assert_int_equal(lk_store_ws_set_quota(st, "ws_a", 5, 5), LK_OK);

    c = since(h0);
    assert_int_equal(c.n, 6);
    for (int i = 1; i < c.n; i++)
        assert_true(c.rows[i].seq > c.rows[i - 1].seq);
    assert_int_equal(c.rows[0].kind, LK_CHANGE_WORKSPACE);
    assert_string_equal(c.rows[0].ref_id, "ws_a");
    assert_int_equal(c.rows[1].kind, LK_CHANGE_KEY);
    assert_int_equal(c.rows[1].key_rowid, k.rowid);
    assert_string_equal(c.rows[1].ref_id, "key_1");
    assert_string_equal(c.rows[1].workspace_id, "ws_a");
    assert_int_equal(c.rows[2].kind, LK_CHANGE_KEY);
    assert_int_equal(c.rows[3].kind, LK_CHANGE_MEMBER);
    assert_string_equal(c.rows[3].ref_id, "usr_1");
    assert_string_equal(c.rows[3].workspace_id, "ws_a");
    assert_int_equal(c.rows[3].key_rowid, 0);
    assert_int_equal(c.rows[4].kind, LK_CHANGE_MEMBER);
    assert_int_equal(c.rows[5].kind, LK_CHANGE_WORKSPACE);
    assert_true(c.rows[0].at > 0);
    h1 = head();
    assert_int_equal(h1, c.rows[5].seq);

    /* after, limit */
    struct changes c2 = {0};
    NEEDS(lk_store_changes_since(st, c.rows[1].seq, 2, add_change, &c2));
    assert_int_equal(c2.n, 2);
    assert_int_equal(c2.rows[0].seq, c.rows[2].seq);
    assert_int_equal(since(h1).n, 0);

    /* prune keeps the newest row */
    NEEDS(lk_store_changes_prune(st, INT64_MAX));
    c = since(0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rows[0].seq, h1);
    assert_int_equal(head(), h1);
    /* a wait times out (or wakes) without an error */
    NEEDS(lk_store_changes_wait(st, 50));
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct waiter {
    enum lk_err e;
    double took;
};

static void *wait_for_change(void *arg)
{
    struct waiter *w = arg;
    double t0 = mono_s();
    w->e = lk_store_changes_wait(st, 20000);
    w->took = mono_s() - t0;
    return NULL;
}

/* Another connection's (another node's) commit wakes a waiter long before its
 * timeout, and what it committed is in the log then. */
static void test_changes_wait_wakes_on_another_commit(void **state)
{
    struct lk_store *other = NULL;
    struct lk_errinfo ei;
    struct waiter w = {LK_ERR_INTERNAL, 0};
    pthread_t t;
    int64_t h0;

    (void)state;
    h0 = head();
    NEEDS(lk_store_changes_wait(st, 10)); /* the listener is set up */
    assert_int_equal(lk_store_open(url, &other, &ei), LK_OK);
    assert_int_equal(pthread_create(&t, NULL, wait_for_change, &w), 0);
    struct timespec pause = {0, 200 * 1000000L};
    nanosleep(&pause, NULL);
    struct lk_ws_row ws;
    make_ws(&ws, "ws_other");
    assert_int_equal(lk_store_ws_insert(other, &ws), LK_OK);
    pthread_join(t, NULL);
    lk_store_close(other);
    assert_int_equal(w.e, LK_OK);
    assert_true(w.took < 10.0); /* woken, not timed out (20 s) */
    struct changes c = since(h0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.rows[0].ref_id, "ws_other");
}

static enum lk_err insert_two_keys(struct lk_store *s, void *arg)
{
    struct lk_key_row k;
    enum lk_err e;

    (void)arg;
    make_key(&k, "key_t1", "ws_a", 0x51);
    if ((e = lk_store_key_insert(s, &k)) != LK_OK)
        return e;
    make_key(&k, "key_t2", "ws_a", 0x51); /* the same digest: refused */
    return lk_store_key_insert(s, &k);
}

static enum lk_err conflict_then_go_on(struct lk_store *s, void *arg)
{
    struct lk_key_row k;
    enum lk_err e;

    (void)arg;
    make_key(&k, "key_t1", "ws_a", 0x61);
    if ((e = lk_store_key_insert(s, &k)) != LK_OK)
        return e;
    make_key(&k, "key_t2", "ws_a", 0x61);
    if (lk_store_key_insert(s, &k) != LK_ERR_CONFLICT)
        return LK_ERR_INTERNAL;
    /* the transaction goes on after a refused statement, as on SQLite */
    memset(k.digest, 0x62, LK_DIGEST_LEN);
    return lk_store_key_insert(s, &k);
}

static void test_txn_rollback_leaves_nothing(void **state)
{
    struct lk_key_row got;
    struct key_ids ki = {0};
    int64_t h0 = 0;
    bool have_log;

    (void)state;
    put_ws("ws_a");
    have_log = lk_store_changes_head(st, &h0) == LK_OK;
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_two_keys, NULL), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_t1", &got), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_key_scan(st, LK_KEY_COLS_ALL, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 0);
    if (have_log) {
        int64_t h1 = -1;
        assert_int_equal(lk_store_changes_head(st, &h1), LK_OK);
        assert_int_equal(h1, h0); /* nor a change */
    }
    /* rolled back by hand, too */
    assert_int_equal(lk_store_begin(st), LK_OK);
    put_ws("ws_gone");
    lk_store_rollback(st);
    struct lk_ws_row w;
    assert_int_equal(lk_store_ws_get(st, "ws_gone", &w), LK_ERR_NOT_FOUND);

    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, conflict_then_go_on, NULL), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_t2", &got), LK_OK);
    assert_int_equal(got.digest[0], 0x62);
    lk_key_row_release(&got);
    /* a background transaction commits as well */
    assert_int_equal(lk_store_begin_background(st), LK_OK);
    put_ws("ws_bg");
    assert_int_equal(lk_store_commit(st), LK_OK);
    assert_int_equal(lk_store_ws_get(st, "ws_bg", &w), LK_OK);
}

/* More than one insert statement and one scan page on PostgreSQL (500 and 5000). */
#define BULK 5003

struct bulk {
    struct lk_key_row *k;
    size_t n;
};

static void make_bulk_key(struct lk_key_row *k, size_t i, uint8_t mark)
{
    char id[LK_ID_MAX];

    snprintf(id, sizeof(id), "key_b%c%zu", (char)('a' + mark), i);
    make_key(k, id, "ws_a", 0);
    k->digest[0] = mark;
    k->digest[1] = (uint8_t)(i >> 8);
    k->digest[2] = (uint8_t)i;
}

static enum lk_err insert_bulk(struct lk_store *s, void *arg)
{
    struct bulk *b = arg;
    return lk_store_keys_insert(s, b->k, b->n);
}

/* A refused bulk leaves none of its keys, and the transaction goes on. */
static enum lk_err refused_bulk_then_go_on(struct lk_store *s, void *arg)
{
    struct bulk *b = arg;
    struct lk_key_row k;

    if (lk_store_keys_insert(s, b->k, b->n) != LK_ERR_CONFLICT)
        return LK_ERR_INTERNAL;
    make_key(&k, "key_after", "ws_a", 0x78);
    return lk_store_key_insert(s, &k);
}

struct scan_check {
    size_t n;
    int64_t last_rowid;
    bool ordered;
};

static int check_scan(void *arg, const struct lk_key_row *k)
{
    struct scan_check *c = arg;
    if (k->rowid <= c->last_rowid)
        c->ordered = false;
    c->last_rowid = k->rowid;
    c->n++;
    return 0;
}

struct change_check {
    size_t n;
    int64_t last_seq;
    const struct lk_key_row *k;
    bool in_order;
};

static int check_change(void *arg, const struct lk_change_row *row)
{
    struct change_check *c = arg;
    if (row->seq != c->last_seq + 1 || row->kind != LK_CHANGE_KEY ||
        row->key_rowid != c->k[c->n].rowid || strcmp(row->ref_id, c->k[c->n].id) != 0 ||
        strcmp(row->workspace_id, "ws_a") != 0)
        c->in_order = false;
    c->last_seq = row->seq;
    c->n++;
    return c->n == BULK;
}

static void test_keys_insert_in_bulk(void **state)
{
    struct bulk b = {lk_calloc(BULK, sizeof(struct lk_key_row)), BULK};
    struct scan_check sc = {0, 0, true};
    struct lk_key_row got, one;
    int64_t h0 = -1, h1 = -1;

    (void)state;
    put_ws("ws_a");
    /* a key whose previous digest a bulk key will take (in a later statement on
     * PostgreSQL than the first): refused, all or nothing */
    make_key(&one, "key_one", "ws_a", 0x77);
    one.has_prev = true;
    memset(one.prev_digest, 0, LK_DIGEST_LEN);
    one.prev_digest[0] = 2;
    one.prev_digest[1] = (uint8_t)(4000 >> 8);
    one.prev_digest[2] = (uint8_t)4000;
    one.prev_pepper_id = 1;
    one.prev_until = 1800000000;
    assert_int_equal(lk_store_key_insert(st, &one), LK_OK);
    NEEDS(lk_store_changes_head(st, &h0));
    for (size_t i = 0; i < BULK; i++)
        make_bulk_key(&b.k[i], i, 2);
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_bulk, &b), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[0].id, &got), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_changes_head(st, &h1), LK_OK);
    assert_int_equal(h1, h0);
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, refused_bulk_then_go_on, &b), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_after", &got), LK_OK);
    lk_key_row_release(&got);
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[0].id, &got), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_changes_head(st, &h0), LK_OK); /* key_after's change */

    for (size_t i = 0; i < BULK; i++)
        make_bulk_key(&b.k[i], i, 1);
    /* one key with a previous secret: the key after it has none */
    b.k[3].has_prev = true;
    make_bulk_key(&got, 3, 3);
    memcpy(b.k[3].prev_digest, got.digest, LK_DIGEST_LEN);
    b.k[3].prev_pepper_id = 1;
    b.k[3].prev_until = 1800000000;
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_bulk, &b), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[3].id, &got), LK_OK);
    assert_true(got.has_prev);
    assert_memory_equal(got.prev_digest, b.k[3].prev_digest, LK_DIGEST_LEN);
    assert_int_equal(got.prev_until, 1800000000);
    lk_key_row_release(&got);
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[4].id, &got), LK_OK);
    assert_false(got.has_prev);
    lk_key_row_release(&got);
    for (size_t i = 1; i < BULK; i++)
        assert_true(b.k[i].rowid > b.k[i - 1].rowid);
    assert_true(b.k[0].rowid > one.rowid);
    /* every row as written, the last of the last statement too */
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[BULK - 1].id, &got), LK_OK);
    assert_int_equal(got.rowid, b.k[BULK - 1].rowid);
    assert_memory_equal(got.digest, b.k[BULK - 1].digest, LK_DIGEST_LEN);
    assert_string_equal(got.permissions, "[\"read\"]");
    assert_string_equal(got.hint, b.k[BULK - 1].hint);
    assert_false(got.has_prev);
    lk_key_row_release(&got);
    /* each digest belongs to its key: a single insert of a bulk key's digest is refused */
    make_key(&got, "key_dup", "ws_a", 0);
    memcpy(got.digest, b.k[700].digest, LK_DIGEST_LEN);
    assert_int_equal(lk_store_key_insert(st, &got), LK_ERR_CONFLICT);

    /* last-used times of many keys in one call: a key twice takes its latest,
     * and none moves backwards */
    struct lk_touch t[] = {{b.k[0].rowid, 1700000200},
                           {b.k[BULK - 1].rowid, 1700000050},
                           {b.k[0].rowid, 1700000300},
                           {b.k[0].rowid, 1700000100}};
    assert_int_equal(lk_store_keys_touch(st, t, LK_ARRAY_LEN(t)), LK_OK);
    struct lk_touch back = {b.k[BULK - 1].rowid, 1700000040};
    assert_int_equal(lk_store_keys_touch(st, &back, 1), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[0].id, &got), LK_OK);
    assert_int_equal(got.last_used_at, 1700000300);
    lk_key_row_release(&got);
    assert_int_equal(lk_store_key_get(st, "ws_a", b.k[BULK - 1].id, &got), LK_OK);
    assert_int_equal(got.last_used_at, 1700000050);
    lk_key_row_release(&got);

    /* the scan reads every key once, in rowid order, across its pages */
    assert_int_equal(lk_store_key_scan(st, LK_KEY_COLS_ALL, check_scan, &sc), LK_OK);
    assert_int_equal(sc.n, BULK + 2);
    assert_true(sc.ordered);

    /* the log has one change a key, in rowid order, with consecutive seqs */
    struct change_check cc = {0, h0, b.k, true};
    assert_int_equal(lk_store_changes_since(st, h0, BULK, check_change, &cc), LK_OK);
    assert_int_equal(cc.n, BULK);
    assert_true(cc.in_order);
    assert_int_equal(lk_store_changes_head(st, &h1), LK_OK);
    assert_int_equal(h1, h0 + BULK);
    free(b.k);
}

/* Both scans, row by row: each key's whole row, and what a key cache keeps. */
struct scan_pair {
    struct lk_key_row whole[2];
    int n;
};

static int keep_whole(void *arg, const struct lk_key_row *k)
{
    struct scan_pair *p = arg;

    lk_key_row_copy(&p->whole[p->n++], k); /* the row is valid for the call only */
    return 0;
}

static int compare_cached(void *arg, const struct lk_key_row *k)
{
    struct scan_pair *p = arg;
    const struct lk_key_row *w = &p->whole[p->n++];

    assert_int_equal(k->rowid, w->rowid);
    assert_string_equal(k->id, w->id);
    assert_string_equal(k->workspace_id, w->workspace_id);
    assert_string_equal(k->name, w->name);
    assert_int_equal(k->env, w->env);
    assert_int_equal(k->kind, w->kind);
    assert_string_equal(k->permissions, w->permissions);
    assert_int_equal(k->enabled, w->enabled);
    assert_int_equal(k->expires_at, w->expires_at);
    assert_int_equal(k->revoked_at, w->revoked_at);
    assert_int_equal(k->last_used_at, w->last_used_at);
    assert_int_equal(k->rl_limit, w->rl_limit);
    assert_int_equal(k->rl_window_s, w->rl_window_s);
    assert_int_equal(k->daily_spend_cap, w->daily_spend_cap);
    assert_memory_equal(k->digest, w->digest, LK_DIGEST_LEN);
    assert_int_equal(k->pepper_id, w->pepper_id);
    assert_int_equal(k->has_prev, w->has_prev);
    if (k->has_prev) {
        assert_memory_equal(k->prev_digest, w->prev_digest, LK_DIGEST_LEN);
        assert_int_equal(k->prev_pepper_id, w->prev_pepper_id);
        assert_int_equal(k->prev_until, w->prev_until);
    }
    /* meta when it says something ("" for {}), the identity; what the cache
     * does not keep is not read */
    assert_string_equal(k->meta, strcmp(w->meta, "{}") == 0 ? "" : w->meta);
    assert_string_equal(k->identity_id, w->identity_id);
    assert_string_equal(k->external_id, w->external_id);
    /* the one hint the cache reads: it tells imported keys from those made here */
    assert_string_equal(k->hint, strcmp(w->hint, LK_KEY_HINT_IMPORTED) == 0 ? w->hint : "");
    assert_string_equal(k->created_by, "");
    return 0;
}

static void test_key_scan_for_the_cache(void **state)
{
    struct scan_pair p = {0};
    struct lk_key_row a, b;

    (void)state;
    put_ws("ws_a");
    make_key(&a, "key_1", "ws_a", 1);
    a.expires_at = 1800000000;
    a.rl_limit = 10;
    a.rl_window_s = 60;
    a.daily_spend_cap = 0;
    snprintf(a.created_by, sizeof(a.created_by), "usr_1");
    make_key(&b, "key_2", "ws_a", 2);
    b.enabled = false;
    b.revoked_at = 1700000500;
    b.has_prev = true;
    memset(b.prev_digest, 9, LK_DIGEST_LEN);
    b.prev_pepper_id = 1;
    b.prev_until = 1700000900;
    b.meta = (char *)"{}";
    snprintf(b.identity_id, sizeof(b.identity_id), "idn_1");
    snprintf(b.external_id, sizeof(b.external_id), "user \"1\"");
    snprintf(b.hint, sizeof(b.hint), "%s", LK_KEY_HINT_IMPORTED);
    assert_int_equal(lk_store_key_insert(st, &a), LK_OK);
    assert_int_equal(lk_store_key_insert(st, &b), LK_OK);
    struct lk_touch t = {a.rowid, 1700000600};
    assert_int_equal(lk_store_keys_touch(st, &t, 1), LK_OK);
    assert_int_equal(lk_store_key_scan(st, LK_KEY_COLS_ALL, keep_whole, &p), LK_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.whole[0].meta, "{\"team\":\"x\"}");
    assert_string_equal(p.whole[0].created_by, "usr_1");
    assert_string_equal(p.whole[1].meta, "{}");
    assert_string_equal(p.whole[1].external_id, "user \"1\"");
    assert_string_equal(p.whole[0].hint, "lk_...01");
    assert_string_equal(p.whole[1].hint, LK_KEY_HINT_IMPORTED);
    p.n = 0;
    assert_int_equal(lk_store_key_scan(st, LK_KEY_COLS_CACHE, compare_cached, &p), LK_OK);
    assert_int_equal(p.n, 2);
    for (int i = 0; i < 2; i++)
        lk_key_row_release(&p.whole[i]);
}

/* --- nodes and leases -------------------------------------------------------------------- */

static int count_nodes(void *arg, const struct lk_node_row *n)
{
    struct lk_node_row *last = arg;
    last[0].started_at++;
    last[1] = *n;
    return 0;
}

static void test_nodes(void **state)
{
    struct lk_node_row n, seen[2];

    (void)state;
    memset(&n, 0, sizeof(n));
    snprintf(n.id, sizeof(n.id), "node_1");
    snprintf(n.name, sizeof(n.name), "host-a:123");
    n.started_at = 1000;
    n.heartbeat_at = 1000;
    NEEDS(lk_store_node_put(st, &n));
    n.started_at = 2000; /* replaces */
    n.heartbeat_at = 2000;
    assert_int_equal(lk_store_node_put(st, &n), LK_OK);
    assert_int_equal(lk_store_node_heartbeat(st, "node_1", 2500), LK_OK);
    assert_int_equal(lk_store_node_heartbeat(st, "node_none", 2500), LK_ERR_NOT_FOUND);
    memset(seen, 0, sizeof(seen));
    assert_int_equal(lk_store_node_list(st, count_nodes, seen), LK_OK);
    assert_int_equal(seen[0].started_at, 1);
    assert_string_equal(seen[1].name, "host-a:123");
    assert_int_equal(seen[1].started_at, 2000);
    assert_int_equal(seen[1].heartbeat_at, 2500);
    assert_int_equal(lk_store_node_delete(st, "node_1"), LK_OK);
    memset(seen, 0, sizeof(seen));
    assert_int_equal(lk_store_node_list(st, count_nodes, seen), LK_OK);
    assert_int_equal(seen[0].started_at, 0);
}

struct leases {
    int n;
    struct lk_lease_row rows[8];
};

static int add_lease(void *arg, const struct lk_lease_row *r)
{
    struct leases *l = arg;
    if (l->n < 8)
        l->rows[l->n++] = *r;
    return 0;
}

/* A get that finds nothing leaves its row empty, so a caller may release it
 * whatever the outcome (the feed does, also when the database is away). */
static void test_failed_gets_leave_a_releasable_row(void **state)
{
    struct lk_key_row k;

    (void)state;
    put_ws("ws_a");
    memset(&k, 0xab, sizeof(k));
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_none", &k), LK_ERR_NOT_FOUND);
    assert_null(k.permissions);
    lk_key_row_release(&k);
    memset(&k, 0xab, sizeof(k));
    assert_int_equal(lk_store_key_get_by_rowid(st, 987654321, &k), LK_ERR_NOT_FOUND);
    assert_null(k.permissions);
    lk_key_row_release(&k);
}

static enum lk_err mark_then_fail(struct lk_store *s, void *arg)
{
    (void)arg;
    assert_int_equal(lk_store_lease_mark(s, "ws_a", "node_1", 77), LK_OK);
    return LK_ERR_INTERNAL;
}

static void test_leases(void **state)
{
    struct leases l = {0};

    (void)state;
    put_ws("ws_a");
    NEEDS(lk_store_lease_move(st, "ws_a", "node_1", 3000000000LL));
    assert_int_equal(lk_store_lease_move(st, "ws_a", "node_1", -1000000000LL), LK_OK);
    assert_int_equal(lk_store_lease_move(st, "ws_a", "node_2", 5), LK_OK);
    /* never below zero, for a lease held or missing */
    assert_int_equal(lk_store_lease_move(st, "ws_a", "node_2", -6), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_lease_move(st, "ws_a", "node_3", -1), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_lease_move(st, "ws_a", "node_2", -5), LK_OK);

    assert_int_equal(lk_store_lease_scan(st, "node_1", add_lease, &l), LK_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.rows[0].amount, 2000000000LL);
    assert_string_equal(l.rows[0].workspace_id, "ws_a");
    assert_string_equal(l.rows[0].node_id, "node_1");
    l.n = 0;
    assert_int_equal(lk_store_lease_scan(st, NULL, add_lease, &l), LK_OK);
    assert_int_equal(l.n, 1); /* node_2's is zero: not listed */
    assert_int_equal(l.rows[0].op, 0);

    /* a lease's mark: kept until the next mark, untouched by moves without one */
    assert_int_equal(lk_store_lease_mark(st, "ws_a", "node_1", 4242), LK_OK);
    assert_int_equal(lk_store_lease_move(st, "ws_a", "node_1", -1), LK_OK);
    assert_int_equal(lk_store_lease_mark(st, "ws_a", "node_9", 1), LK_ERR_NOT_FOUND);
    l.n = 0;
    assert_int_equal(lk_store_lease_scan(st, "node_1", add_lease, &l), LK_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.rows[0].op, 4242);
    /* a mark rolled back with its transaction is not there */
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, mark_then_fail, NULL), LK_ERR_INTERNAL);
    l.n = 0;
    assert_int_equal(lk_store_lease_scan(st, "node_1", add_lease, &l), LK_OK);
    assert_int_equal(l.rows[0].op, 4242);
}

/* --- scans for copying -------------------------------------------------------------------- */

static int count_user(void *arg, const struct lk_user_row *u)
{
    (void)u;
    (*(int *)arg)++;
    return 0;
}

static int count_session(void *arg, const struct lk_session_row *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static void test_scans(void **state)
{
    struct lk_user_row u;
    struct lk_session_row r;
    struct lk_invitation_row inv;
    int users = 0, sessions = 0, invs = 0;

    (void)state;
    put_ws("ws_a");
    make_user(&u, "usr_1", "one@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    make_user(&u, "usr_2", "two@example.com");
    assert_int_equal(lk_store_user_insert(st, &u), LK_OK);
    memset(&r, 0, sizeof(r));
    snprintf(r.user_id, sizeof(r.user_id), "usr_1");
    memset(r.digest, 7, LK_DIGEST_LEN);
    assert_int_equal(lk_store_session_insert(st, &r), LK_OK);
    make_inv(&inv, "inv_1", 1, 10); /* long expired: still copied */
    assert_int_equal(lk_store_invitation_insert(st, &inv), LK_OK);
    make_inv(&inv, "inv_2", 2, 4000000000LL);
    assert_int_equal(lk_store_invitation_insert(st, &inv), LK_OK);

    NEEDS(lk_store_user_scan(st, count_user, &users));
    assert_int_equal(users, 2);
    NEEDS(lk_store_session_scan(st, count_session, &sessions));
    assert_int_equal(sessions, 1);
    NEEDS(lk_store_invitation_scan(st, count_inv, &invs));
    assert_int_equal(invs, 2);
}

/* --- webhooks ------------------------------------------------------------------------- */

static void make_endpoint(struct lk_hook_endpoint_row *r, const char *id, const char *ws,
                          const char *events, int64_t at)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->workspace_id, sizeof(r->workspace_id), "%s", ws);
    snprintf(r->url, sizeof(r->url), "https://example.com/%s", id);
    snprintf(r->events, sizeof(r->events), "%s", events);
    snprintf(r->description, sizeof(r->description), "d %s", id);
    snprintf(r->salt, sizeof(r->salt), "00112233445566778899aabbccddeeff");
    r->created_at = at;
}

static void make_event(struct lk_hook_event_row *e, const char *id, const char *ws,
                       const char *type)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->workspace_id, sizeof(e->workspace_id), "%s", ws);
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->payload, sizeof(e->payload), "{\"id\":\"%s\"}", id);
    e->created_at = 1700000000;
}

struct endpoints {
    int n;
    struct lk_hook_endpoint_row rows[4];
};

static int add_endpoint_row(void *arg, const struct lk_hook_endpoint_row *r)
{
    struct endpoints *e = arg;
    if (e->n < 4)
        e->rows[e->n++] = *r;
    return 0;
}

struct jobs {
    int n;
    struct lk_hook_job rows[8];
};

static int add_job(void *arg, const struct lk_hook_job *j)
{
    struct jobs *x = arg;
    if (x->n < 8)
        x->rows[x->n++] = *j;
    return 0;
}

struct attempts {
    int n;
    struct lk_hook_attempt_row rows[8];
};

static int add_attempt_row(void *arg, const struct lk_hook_attempt_row *a)
{
    struct attempts *x = arg;
    if (x->n < 8)
        x->rows[x->n++] = *a;
    return 0;
}

static enum lk_err insert_event_txn(struct lk_store *s, void *arg)
{
    bool inserted;
    enum lk_err e = lk_store_hook_event_insert(s, arg, 5000, &inserted);
    return e != LK_OK ? e : inserted ? LK_OK : LK_ERR_CONFLICT;
}

/* Endpoints of a workspace only; an event once by its id, to the endpoints
 * subscribed to its type; claims under a lease another node cannot take; the
 * attempt log; a released lease is claimable at once. */
static void test_webhooks(void **state)
{
    struct lk_hook_endpoint_row a, b, c;
    struct lk_hook_event_row ev;
    struct endpoints eps = {0};
    struct jobs jobs = {0};
    struct attempts log = {0};

    (void)state;
    put_ws("ws_a");
    put_ws("ws_b");
    make_endpoint(&a, "wh_a", "ws_a", ",key.created,key.revoked,", 10);
    make_endpoint(&b, "wh_b", "ws_a", ",*,", 20);
    make_endpoint(&c, "wh_c", "ws_b", ",key.created,", 30);
    NEEDS(lk_store_hook_endpoint_insert(st, &a));
    assert_int_equal(lk_store_hook_endpoint_insert(st, &b), LK_OK);
    assert_int_equal(lk_store_hook_endpoint_insert(st, &c), LK_OK);
    assert_int_equal(lk_store_hook_endpoint_insert(st, &c), LK_ERR_CONFLICT);
    assert_int_equal(lk_store_hook_endpoint_list(st, "ws_a", add_endpoint_row, &eps), LK_OK);
    assert_int_equal(eps.n, 2);
    assert_string_equal(eps.rows[0].id, "wh_a");
    assert_string_equal(eps.rows[0].events, ",key.created,key.revoked,");
    assert_string_equal(eps.rows[0].salt, a.salt);
    assert_string_equal(eps.rows[1].url, "https://example.com/wh_b");

    /* key.revoked of ws_a: to wh_a and wh_b (all), not to ws_b's wh_c */
    make_event(&ev, "evt_1", "ws_a", "key.revoked");
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_event_txn, &ev), LK_OK);
    /* the same id again: nothing new */
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_event_txn, &ev), LK_ERR_CONFLICT);
    /* an event nobody subscribes to is not kept */
    make_event(&ev, "evt_2", "ws_b", "quota.warning");
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_event_txn, &ev), LK_ERR_CONFLICT);

    /* not due yet at 4999 ms */
    assert_int_equal(lk_store_hook_claim(st, "node_1", 4999, 9999, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 0);
    assert_int_equal(lk_store_hook_claim(st, "node_1", 5000, 60000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 2);
    assert_string_equal(jobs.rows[0].ev.id, "evt_1");
    assert_string_equal(jobs.rows[0].ev.payload, "{\"id\":\"evt_1\"}");
    assert_int_equal(jobs.rows[0].attempt, 1);
    assert_true(strcmp(jobs.rows[0].ep.id, "wh_a") == 0 || strcmp(jobs.rows[0].ep.id, "wh_b") == 0);
    /* leased: another node finds nothing until the lease ends */
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 6000, 70000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 0);

    /* attempt 1 to wh_a failed: pending again at 8000; to wh_b delivered */
    struct lk_hook_attempt_row at = {.attempt = 1, .status = 500, .started_ms = 5000,
                                     .finished_ms = 5100};
    snprintf(at.event_id, sizeof(at.event_id), "evt_1");
    snprintf(at.endpoint_id, sizeof(at.endpoint_id), "wh_a");
    snprintf(at.workspace_id, sizeof(at.workspace_id), "ws_a");
    snprintf(at.type, sizeof(at.type), "key.revoked");
    snprintf(at.error, sizeof(at.error), "HTTP 500");
    assert_int_equal(lk_store_hook_attempt_done(st, "node_1", &at, LK_HOOK_PENDING, 8000), LK_OK);
    snprintf(at.endpoint_id, sizeof(at.endpoint_id), "wh_b");
    at.status = 204;
    at.error[0] = '\0';
    assert_int_equal(lk_store_hook_attempt_done(st, "node_1", &at, LK_HOOK_DELIVERED, 0), LK_OK);
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 7999, 70000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 0);
    assert_int_equal(lk_store_hook_claim(st, "node_2", 8000, 70000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 1);
    assert_string_equal(jobs.rows[0].ep.id, "wh_a");
    assert_int_equal(jobs.rows[0].attempt, 2);
    /* node_1 no longer holds it: its late report moves nothing */
    at.attempt = 2;
    snprintf(at.endpoint_id, sizeof(at.endpoint_id), "wh_a");
    assert_int_equal(lk_store_hook_attempt_done(st, "node_1", &at, LK_HOOK_DELIVERED, 0), LK_OK);
    /* node_2 restarts: its leases are released and the delivery is due again */
    assert_int_equal(lk_store_hook_release(st, "node_2"), LK_OK);
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 9000, 70000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 1);
    assert_int_equal(jobs.rows[0].attempt, 2);

    /* the log, newest first, of one endpoint of one workspace */
    assert_int_equal(lk_store_hook_attempt_list(st, "ws_a", "wh_a", 0, 8, add_attempt_row, &log),
                     LK_OK);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.rows[0].attempt, 2);
    assert_int_equal(log.rows[1].status, 500);
    assert_string_equal(log.rows[1].error, "HTTP 500");
    assert_int_equal(log.rows[1].finished_ms, 5100);
    log.n = 0;
    assert_int_equal(lk_store_hook_attempt_list(st, "ws_b", "wh_a", 0, 8, add_attempt_row, &log),
                     LK_OK);
    assert_int_equal(log.n, 0);

    /* prune: the log goes, the event with a pending delivery stays */
    assert_int_equal(lk_store_hook_prune(st, 1700000001, 5101), LK_OK);
    log.n = 0;
    assert_int_equal(lk_store_hook_attempt_list(st, "ws_a", "wh_a", 0, 8, add_attempt_row, &log),
                     LK_OK);
    assert_int_equal(log.n, 0); /* every attempt ended before 5101 ms */
    assert_int_equal(lk_store_hook_release(st, "node_2"), LK_OK);
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 9000, 70000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 1); /* evt_1 to wh_a is still pending: kept */

    /* delete: another workspace's is not found; the own one goes with its work */
    assert_int_equal(lk_store_hook_endpoint_delete(st, "ws_b", "wh_a"), LK_ERR_NOT_FOUND);
    assert_int_equal(lk_store_hook_endpoint_delete(st, "ws_a", "wh_a"), LK_OK);
    assert_int_equal(lk_store_hook_release(st, "node_2"), LK_OK);
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 99000, 170000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 0);
    log.n = 0;
    assert_int_equal(lk_store_hook_attempt_list(st, "ws_a", "wh_a", 0, 8, add_attempt_row, &log),
                     LK_OK);
    assert_int_equal(log.n, 0);
    /* an event whose deliveries are all finished goes with them */
    make_event(&ev, "evt_3", "ws_b", "key.created");
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_event_txn, &ev), LK_OK);
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_1", 99000, 170000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 1);
    at.attempt = 1;
    at.status = 200;
    snprintf(at.event_id, sizeof(at.event_id), "evt_3");
    snprintf(at.endpoint_id, sizeof(at.endpoint_id), "wh_c");
    assert_int_equal(lk_store_hook_attempt_done(st, "node_1", &at, LK_HOOK_DELIVERED, 0), LK_OK);
    assert_int_equal(lk_store_hook_prune(st, 1700000001, 0), LK_OK);
    /* the same id is new again once pruned (ids of crossings carry their day) */
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_event_txn, &ev), LK_OK);
}

static enum lk_err insert_late_event_txn(struct lk_store *s, void *arg)
{
    return lk_store_hook_event_insert(s, arg, 5500, NULL);
}

/* Claims go round-robin between workspaces, not by due time alone, and a
 * workspace has at most 4 deliveries leased at once, on all nodes together. */
static void test_webhook_claims_are_fair(void **state)
{
    struct lk_hook_endpoint_row a, b;
    struct lk_hook_event_row ev;
    struct jobs jobs = {0};
    int of_b = 0;

    (void)state;
    put_ws("ws_a");
    put_ws("ws_b");
    make_endpoint(&a, "wh_a", "ws_a", ",*,", 10);
    make_endpoint(&b, "wh_b", "ws_b", ",*,", 20);
    NEEDS(lk_store_hook_endpoint_insert(st, &a));
    assert_int_equal(lk_store_hook_endpoint_insert(st, &b), LK_OK);
    for (int i = 0; i < 6; i++) { /* ws_a's six, due first */
        char id[32];
        snprintf(id, sizeof(id), "evt_a%d", i);
        make_event(&ev, id, "ws_a", "key.created");
        assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_event_txn, &ev), LK_OK);
    }
    make_event(&ev, "evt_b", "ws_b", "key.created");
    assert_int_equal(lk_store_txn(st, LK_TXN_DEFAULT, insert_late_event_txn, &ev), LK_OK);

    /* three claimed: ws_b's one among them, though ws_a's six were due before it */
    assert_int_equal(lk_store_hook_claim(st, "node_1", 6000, 60000, 3, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 3);
    for (int i = 0; i < jobs.n; i++)
        of_b += strcmp(jobs.rows[i].ev.workspace_id, "ws_b") == 0;
    assert_int_equal(of_b, 1);
    /* ws_a has two in flight on node_1: another node gets two more, not four */
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 6000, 60000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 2);
    jobs.n = 0;
    assert_int_equal(lk_store_hook_claim(st, "node_2", 6000, 60000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 0);
    /* node_1's leases given back: ws_b's first (it has none in flight), then
     * two of ws_a's, up to its four */
    assert_int_equal(lk_store_hook_release(st, "node_1"), LK_OK);
    assert_int_equal(lk_store_hook_claim(st, "node_2", 6000, 60000, 8, add_job, &jobs), LK_OK);
    assert_int_equal(jobs.n, 3);
    assert_string_equal(jobs.rows[0].ev.workspace_id, "ws_b");
    assert_string_equal(jobs.rows[1].ev.workspace_id, "ws_a");
    assert_string_equal(jobs.rows[2].ev.workspace_id, "ws_a");
}

static void test_webhook_alarms_and_settings(void **state)
{
    bool changed = false;
    int64_t v = 0;

    (void)state;
    put_ws("ws_a");
    NEEDS(lk_store_hook_alarm(st, "ws_a", "quota.warning:live:5", true, 100, &changed));
    assert_true(changed);
    assert_int_equal(lk_store_hook_alarm(st, "ws_a", "quota.warning:live:5", true, 200, &changed),
                     LK_OK);
    assert_false(changed); /* raised once */
    assert_int_equal(lk_store_hook_alarm(st, "ws_b", "quota.warning:live:5", true, 200, &changed),
                     LK_OK);
    assert_true(changed); /* per workspace */
    assert_int_equal(lk_store_hook_alarm(st, "ws_a", "quota.warning:live:5", false, 300, &changed),
                     LK_OK);
    assert_true(changed);
    assert_int_equal(lk_store_hook_alarm(st, "ws_a", "quota.warning:live:5", false, 300, &changed),
                     LK_OK);
    assert_false(changed);
    assert_int_equal(lk_store_hook_threshold_get(st, "ws_a", &v), LK_OK);
    assert_int_equal(v, -1);
    assert_int_equal(lk_store_hook_threshold_set(st, "ws_a", 50), LK_OK);
    assert_int_equal(lk_store_hook_threshold_get(st, "ws_a", &v), LK_OK);
    assert_int_equal(v, 50);
    assert_int_equal(lk_store_hook_threshold_set(st, "ws_a", -1), LK_OK);
    assert_int_equal(lk_store_hook_threshold_get(st, "ws_a", &v), LK_OK);
    assert_int_equal(v, -1);
    assert_int_equal(lk_store_hook_key_spend(st, 42, 19000, &v), LK_OK);
    assert_int_equal(v, 0);
    struct lk_counter_row r = {.key_rowid = 42, .period = 19000, .n = 7};
    assert_int_equal(lk_store_counter_add(st, LK_CTR_SPEND, &r), LK_OK);
    assert_int_equal(lk_store_hook_key_spend(st, 42, 19000, &v), LK_OK);
    assert_int_equal(v, 7);
}

struct idn_ids {
    int n;
    char ids[8][LK_ID_MAX], ext[8][64];
};

static int add_identity(void *arg, const struct lk_identity_row *r)
{
    struct idn_ids *x = arg;
    if (x->n < 8) {
        snprintf(x->ids[x->n], LK_ID_MAX, "%s", r->id);
        snprintf(x->ext[x->n++], 64, "%.63s", r->external_id);
    }
    return 0;
}

static void test_identities(void **state)
{
    struct lk_identity_row r = {.created_at = 1700000100}, got;
    struct idn_ids x = {0};

    (void)state;
    put_ws("ws_a");
    put_ws("ws_b");
    snprintf(r.id, sizeof(r.id), "idn_2");
    snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_a");
    snprintf(r.external_id, sizeof(r.external_id), "user \xc3\xa9 1");
    r.meta = (char *)"{\"plan\":\"pro\"}";
    NEEDS(lk_store_identity_insert(st, &r));
    /* an external_id is one identity's per workspace, not across workspaces */
    snprintf(r.id, sizeof(r.id), "idn_3");
    assert_int_equal(lk_store_identity_insert(st, &r), LK_ERR_CONFLICT);
    snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_b");
    assert_int_equal(lk_store_identity_insert(st, &r), LK_OK);
    snprintf(r.id, sizeof(r.id), "idn_1");
    snprintf(r.workspace_id, sizeof(r.workspace_id), "ws_a");
    snprintf(r.external_id, sizeof(r.external_id), "other");
    r.meta = NULL; /* stored as {} */
    assert_int_equal(lk_store_identity_insert(st, &r), LK_OK);

    assert_int_equal(lk_store_identity_get(st, "ws_a", "idn_2", &got), LK_OK);
    assert_string_equal(got.external_id, "user \xc3\xa9 1");
    assert_string_equal(got.meta, "{\"plan\":\"pro\"}");
    assert_int_equal(got.created_at, 1700000100);
    lk_identity_row_release(&got);
    assert_int_equal(lk_store_identity_get(st, "ws_b", "idn_2", &got), LK_ERR_NOT_FOUND);
    lk_identity_row_release(&got);
    assert_int_equal(lk_store_identity_by_external(st, "ws_b", "user \xc3\xa9 1", &got), LK_OK);
    assert_string_equal(got.id, "idn_3");
    lk_identity_row_release(&got);
    assert_int_equal(lk_store_identity_by_external(st, "ws_b", "other", &got), LK_ERR_NOT_FOUND);
    lk_identity_row_release(&got);
    assert_int_equal(lk_store_identity_get(st, "ws_a", "idn_1", &got), LK_OK);
    assert_string_equal(got.meta, "{}");
    lk_identity_row_release(&got);

    /* in id order, paged after an id */
    assert_int_equal(lk_store_identity_list(st, "ws_a", "", 10, add_identity, &x), LK_OK);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.ids[0], "idn_1");
    assert_string_equal(x.ids[1], "idn_2");
    x.n = 0;
    assert_int_equal(lk_store_identity_list(st, "ws_a", "idn_1", 10, add_identity, &x), LK_OK);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.ids[0], "idn_2");
    x.n = 0;
    assert_int_equal(lk_store_identity_list(st, "ws_a", "", 1, add_identity, &x), LK_OK);
    assert_int_equal(x.n, 1);
}

static void test_key_model_fields(void **state)
{
    struct lk_key_row k, k2, got;
    struct key_ids ki = {0};
    struct lk_key_filter f = {.env = -1, .status = LK_STATUS_ANY, .now = 1700000500, .limit = 10};
    struct lk_key_rl rl[2] = {{"tokens", 100, 60000, true}, {"per:sec-1.x_y", 5, 1000, false}};
    struct lk_key_credit_row cr;

    (void)state;
    put_ws("ws_a");
    make_key(&k, "key_1", "ws_a", 0x51);
    snprintf(k.identity_id, sizeof(k.identity_id), "idn_1");
    snprintf(k.external_id, sizeof(k.external_id), "cust-1");
    k.has_credits = true;
    k.credits_remaining = 0; /* none left is not "no credits" */
    k.credits_refill = LK_CREDIT_REFILL_MONTHLY;
    k.credits_refill_amount = 1000;
    k.credits_refill_day = 31;
    k.credits_gen = 3;
    k.credits_set_at = 1700000200;
    k.rate_limits = rl;
    k.n_rate_limits = 2;
    NEEDS(lk_store_key_insert(st, &k));
    make_key(&k2, "key_2", "ws_a", 0x52); /* a zeroed key has none of them */
    assert_int_equal(lk_store_key_insert(st, &k2), LK_OK);

    assert_int_equal(lk_store_key_get(st, "ws_a", "key_1", &got), LK_OK);
    assert_string_equal(got.identity_id, "idn_1");
    assert_string_equal(got.external_id, "cust-1");
    assert_true(got.has_credits);
    assert_int_equal(got.credits_remaining, 0);
    assert_int_equal(got.credits_refill, LK_CREDIT_REFILL_MONTHLY);
    assert_int_equal(got.credits_refill_amount, 1000);
    assert_int_equal(got.credits_refill_day, 31);
    assert_int_equal(got.credits_gen, 3);
    assert_int_equal(got.credits_set_at, 1700000200);
    assert_int_equal(got.credits_now, -1); /* nothing spent yet */
    assert_int_equal(got.n_rate_limits, 2);
    assert_string_equal(got.rate_limits[1].name, "per:sec-1.x_y");
    assert_int_equal(got.rate_limits[0].limit, 100);
    assert_int_equal(got.rate_limits[0].window_ms, 60000);
    assert_true(got.rate_limits[0].auto_apply);
    assert_false(got.rate_limits[1].auto_apply);
    lk_key_row_release(&got);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_2", &got), LK_OK);
    assert_false(got.has_credits);
    assert_string_equal(got.identity_id, "");
    assert_int_equal(got.n_rate_limits, 0);
    assert_null(got.rate_limits);
    lk_key_row_release(&got);

    /* the list by identity */
    snprintf(f.identity_id, sizeof(f.identity_id), "idn_1");
    assert_int_equal(lk_store_key_list(st, "ws_a", &f, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 1);
    assert_string_equal(ki.ids[0], "key_1");
    ki.n = 0;
    snprintf(f.identity_id, sizeof(f.identity_id), "idn_9");
    assert_int_equal(lk_store_key_list(st, "ws_a", &f, add_key_id, &ki), LK_OK);
    assert_int_equal(ki.n, 0);

    /* what checks spent counts for the key's generation only */
    cr = (struct lk_key_credit_row){k.rowid, 3, 7, 123};
    assert_int_equal(lk_store_key_credits_put(st, &cr), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_1", &got), LK_OK);
    assert_int_equal(got.credits_now, 7);
    assert_int_equal(got.credits_period, 123);
    lk_key_row_release(&got);
    cr.remaining = 5;
    assert_int_equal(lk_store_key_credits_put(st, &cr), LK_OK); /* replaced */
    assert_int_equal(lk_store_key_credits_get(st, k.rowid, &cr), LK_OK);
    assert_int_equal(cr.remaining, 5);
    /* a management write (a new generation) is never undone by an older one's spend */
    k.credits_gen = 4;
    k.credits_remaining = 50;
    k.rate_limits = NULL;
    k.n_rate_limits = 0;
    assert_int_equal(lk_store_key_update(st, &k), LK_OK);
    assert_int_equal(lk_store_key_credits_get(st, k.rowid, &cr), LK_ERR_NOT_FOUND);
    cr = (struct lk_key_credit_row){k.rowid, 3, 1, 123};
    assert_int_equal(lk_store_key_credits_put(st, &cr), LK_OK);
    assert_int_equal(lk_store_key_get(st, "ws_a", "key_1", &got), LK_OK);
    assert_int_equal(got.credits_now, -1);
    assert_int_equal(got.credits_remaining, 50);
    assert_int_equal(got.n_rate_limits, 0); /* cleared by the update */
    lk_key_row_release(&got);
    cr = (struct lk_key_credit_row){k.rowid, 4, 49, 124};
    assert_int_equal(lk_store_key_credits_put(st, &cr), LK_OK);
    assert_int_equal(lk_store_key_credits_get(st, k.rowid, &cr), LK_OK);
    assert_int_equal(cr.remaining, 49);
    assert_int_equal(cr.gen, 4);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static const struct CMUnitTest tests[] = {
    T(test_workspaces),
    T(test_keys),
    T(test_permissions_in_use_in_byte_order),
    T(test_users_emails_case_insensitive),
    T(test_members),
    T(test_sessions),
    T(test_invitations),
    T(test_credits_refuse_overdraft),
    T(test_ledger),
    T(test_counters),
    T(test_counters_batch_with_repeats),
    T(test_audit_filters),
    T(test_audit_detail),
    T(test_change_log),
    T(test_changes_wait_wakes_on_another_commit),
    T(test_txn_rollback_leaves_nothing),
    T(test_keys_insert_in_bulk),
    T(test_nodes),
    T(test_leases),
    T(test_failed_gets_leave_a_releasable_row),
    T(test_scans),
    T(test_key_scan_for_the_cache),
    T(test_webhooks),
    T(test_webhook_claims_are_fair),
    T(test_webhook_alarms_and_settings),
    T(test_identities),
    T(test_key_model_fields),
};

int main(void)
{
    const char *pg = getenv("LATCHKEY_TEST_PG_URL");
    int failed;

    srandom((unsigned)getpid());
    on_pg = false;
    failed = cmocka_run_group_tests_name("store conformance: sqlite", tests, NULL, NULL);
    if (pg == NULL || pg[0] == '\0') {
        printf("store conformance: postgres skipped (LATCHKEY_TEST_PG_URL is not set)\n");
        return failed;
    }
    snprintf(pg_base, sizeof(pg_base), "%s", pg);
    on_pg = true;
    failed += cmocka_run_group_tests_name("store conformance: postgres", tests, NULL, NULL);
    return failed;
}
