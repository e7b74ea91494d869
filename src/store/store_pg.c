/*
 * store_pg.c — the PostgreSQL backend (libpq), chosen by postgres:// or
 * postgresql:// URLs. It behaves as store_sqlite.c does, statement for
 * statement: the same answers, the same errors (a uniqueness or check
 * violation is LK_ERR_CONFLICT), the same change log written by triggers.
 *
 * One connection serves every call, guarded by a recursive mutex: a transaction
 * holds it from begin to commit, as on SQLite. Transactions run at SERIALIZABLE,
 * as SQLite's are, so a read-then-write check ("is this the first workspace",
 * "the last owner") holds across nodes; a serialization failure or deadlock
 * with another node (40001, 40P01) is `retryable`, so lk_store_txn runs the
 * work again. Commits are durable (synchronous_commit on).
 *
 * A lost server is answered with LK_ERR_STORAGE_UNAVAILABLE at once: every
 * statement runs against a deadline, and the next calls reconnect with a
 * backoff (100 ms doubling to 5 s). A second connection LISTENs on
 * latchkey_changes for changes_wait. The URL's password never reaches a log line
 * or a message: they name the database by its URL with the password masked.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include "base/common.h"
#include "base/log.h"
#include "store/store_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define QUERY_TIMEOUT_MS 5000  /* no call waits longer on one statement */
#define SCAN_TIMEOUT_MS 120000 /* ... but a scan of a whole table (start, migrate) */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MIGRATE_LOCK 0x6c6b6d6967LL /* pg_advisory_xact_lock key: "lkmig" */
#define MAX_PARAMS 40

/* Connection settings the URL may override (it comes last): bounded waits for
 * a server that is down or unreachable. */
static const char *const conn_keys[] = {
    "connect_timeout",     "keepalives",       "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "application_name",    "dbname",           NULL};
static const char *const conn_vals_default[] = {"3", "1", "5", "1", "3", "5000", "latchkey"};

/* Set on every session; not the URL's to change. */
static const char session_setup[] =
    "SET synchronous_commit = on; SET statement_timeout = 5000; SET lock_timeout = 5000;"
    " SET client_encoding = 'UTF8'; SET standard_conforming_strings = on;"
    " SET client_min_messages = warning";

#define KEY_TRIGGER_COLS                                                                           \
    "id, workspace_id, name, environment, kind, permissions, meta, hint, enabled, expires_at,"     \
    " revoked_at, rl_limit, rl_window_s, daily_spend_cap, digest, pepper_id, prev_digest,"         \
    " prev_pepper_id, prev_until, created_by"

/* Versioned migrations: entry i takes the schema from version i to i+1 (rows of
 * latchkey_schema). Append only; never edit a shipped entry. */
static const char *const migrations[] = {
    /* 1: the tables of SQLite's migrations 1 to 5, in their final form */
    "CREATE TABLE workspaces("
    "  number BIGSERIAL UNIQUE, id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    "  key_prefix TEXT NOT NULL, key_format BIGINT NOT NULL,"
    "  is_operator BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL,"
    "  quota BIGINT, test_quota BIGINT);"
    "CREATE TABLE keys("
    "  rowid BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id), name TEXT NOT NULL,"
    "  environment BIGINT NOT NULL, kind BIGINT NOT NULL, permissions TEXT NOT NULL,"
    "  meta TEXT NOT NULL, hint TEXT NOT NULL, enabled BIGINT NOT NULL,"
    "  expires_at BIGINT, revoked_at BIGINT, created_at BIGINT NOT NULL,"
    "  last_used_at BIGINT, rl_limit BIGINT, rl_window_s BIGINT, daily_spend_cap BIGINT,"
    "  digest BYTEA NOT NULL UNIQUE, pepper_id BIGINT NOT NULL,"
    "  prev_digest BYTEA, prev_pepper_id BIGINT, prev_until BIGINT, created_by TEXT);"
    "CREATE INDEX keys_by_workspace ON keys(workspace_id, rowid);"
    /* A digest, current or previous, belongs to one key in the whole store:
     * key_digests holds both of every key, kept by triggers in the statement's
     * own transaction, so its primary key refuses any write of a taken digest. */
    "CREATE TABLE key_digests(digest BYTEA PRIMARY KEY, key_rowid BIGINT NOT NULL);"
    "CREATE INDEX key_digests_by_key ON key_digests(key_rowid);"
    "CREATE FUNCTION latchkey_key_digests() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP <> 'INSERT' THEN DELETE FROM key_digests WHERE key_rowid = OLD.rowid; END IF;"
    "  IF TG_OP <> 'DELETE' THEN"
    "    INSERT INTO key_digests VALUES(NEW.digest, NEW.rowid);"
    "    IF NEW.prev_digest IS NOT NULL THEN"
    "      INSERT INTO key_digests VALUES(NEW.prev_digest, NEW.rowid);"
    "    END IF;"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER key_digests_insert AFTER INSERT ON keys"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_key_digests();"
    "CREATE TRIGGER key_digests_update AFTER UPDATE OF digest, prev_digest ON keys"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_key_digests();"
    "CREATE TRIGGER key_digests_delete AFTER DELETE ON keys"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_key_digests();"
    "CREATE TABLE audit_events("
    "  id BIGSERIAL PRIMARY KEY, workspace_id TEXT, actor TEXT NOT NULL, action TEXT NOT NULL,"
    "  target TEXT, address TEXT, request_id TEXT, created_at BIGINT NOT NULL);"
    "CREATE INDEX audit_by_workspace ON audit_events(workspace_id, id);"
    /* Emails compare as SQLite's NOCASE does: ASCII letters folded, nothing else
     * (lower() under the "C" collation). */
    "CREATE TABLE users("
    "  id TEXT PRIMARY KEY, email TEXT NOT NULL, password_hash TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX users_by_email ON users(lower(email COLLATE \"C\"));"
    "CREATE TABLE members("
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    "  user_id TEXT NOT NULL REFERENCES users(id), role BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL, PRIMARY KEY(workspace_id, user_id));"
    "CREATE INDEX members_by_user ON members(user_id);"
    "CREATE TABLE sessions("
    "  digest BYTEA PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),"
    "  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);"
    "CREATE TABLE credit_accounts("
    "  workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),"
    "  balance BIGINT NOT NULL DEFAULT 0 CHECK(balance >= 0),"
    "  leased BIGINT NOT NULL DEFAULT 0 CHECK(leased >= 0),"
    "  spent BIGINT NOT NULL DEFAULT 0, topped_up BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE credit_ledger("
    "  id BIGSERIAL PRIMARY KEY, workspace_id TEXT NOT NULL, kind TEXT NOT NULL,"
    "  amount BIGINT NOT NULL, period BIGINT, actor TEXT, note TEXT,"
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX ledger_by_workspace ON credit_ledger(workspace_id, id);"
    "CREATE UNIQUE INDEX ledger_by_period ON credit_ledger(workspace_id, kind, period)"
    "  WHERE period IS NOT NULL;"
    "CREATE TABLE quota_days("
    "  workspace_id TEXT NOT NULL, day BIGINT NOT NULL, live BIGINT NOT NULL,"
    "  test BIGINT NOT NULL, PRIMARY KEY(workspace_id, day));"
    "CREATE TABLE key_spend("
    "  key_rowid BIGINT NOT NULL, day BIGINT NOT NULL, spent BIGINT NOT NULL,"
    "  PRIMARY KEY(key_rowid, day));"
    "CREATE INDEX key_spend_by_day ON key_spend(day);"
    "CREATE TABLE usage_hours("
    "  key_rowid BIGINT NOT NULL, hour BIGINT NOT NULL, code BIGINT NOT NULL,"
    "  count BIGINT NOT NULL, PRIMARY KEY(key_rowid, hour, code));"
    "CREATE INDEX usage_by_hour ON usage_hours(hour);"
    "CREATE TABLE invitations("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    "  email TEXT NOT NULL, role BIGINT NOT NULL, digest BYTEA NOT NULL UNIQUE,"
    "  invited_by TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);"
    "CREATE INDEX invitations_by_workspace ON invitations(workspace_id, expires_at);",
    /* 2: the change log. Its seqs must become visible in commit order: the
     * trigger takes the next one from the one row of change_head, whose row lock
     * is held to commit, so a later seq never commits before an earlier one; the
     * notification is delivered at commit. */
    "CREATE TABLE change_head(one BOOLEAN PRIMARY KEY DEFAULT true CHECK(one),"
    "  seq BIGINT NOT NULL);"
    "INSERT INTO change_head VALUES(true, 0);"
    "CREATE TABLE changes("
    "  seq BIGINT PRIMARY KEY, kind BIGINT NOT NULL, key_rowid BIGINT NOT NULL DEFAULT 0,"
    "  ref_id TEXT NOT NULL, workspace_id TEXT, at BIGINT NOT NULL);"
    "CREATE INDEX changes_by_at ON changes(at);"
    "CREATE FUNCTION latchkey_change(k BIGINT, r BIGINT, ref TEXT, ws TEXT) RETURNS void"
    "  LANGUAGE plpgsql AS $$"
    " DECLARE s BIGINT;"
    " BEGIN"
    "  UPDATE change_head SET seq = seq + 1 RETURNING seq INTO s;"
    "  INSERT INTO changes VALUES(s, k, r, ref, ws,"
    "    floor(extract(epoch FROM clock_timestamp()))::bigint);"
    "  PERFORM pg_notify('latchkey_changes', s::text);"
    " END $$;"
    "CREATE FUNCTION latchkey_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM latchkey_change(1, NEW.rowid, NEW.id, NEW.workspace_id); RETURN NULL; END $$;"
    "CREATE FUNCTION latchkey_workspace_changed() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM latchkey_change(2, 0, NEW.id, NEW.id); RETURN NULL; END $$;"
    "CREATE FUNCTION latchkey_member_changed() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'DELETE' THEN PERFORM latchkey_change(3, 0, OLD.user_id, OLD.workspace_id);"
    "  ELSE PERFORM latchkey_change(3, 0, NEW.user_id, NEW.workspace_id); END IF;"
    "  RETURN NULL;"
    " END $$;"
    /* every column but last_used_at, which only keys_touch writes */
    "CREATE TRIGGER changes_key_insert AFTER INSERT ON keys"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_key_changed();"
    "CREATE TRIGGER changes_key_update AFTER UPDATE OF " KEY_TRIGGER_COLS " ON keys"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_key_changed();"
    "CREATE TRIGGER changes_workspace AFTER INSERT OR UPDATE ON workspaces"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_workspace_changed();"
    "CREATE TRIGGER changes_member AFTER INSERT OR UPDATE OR DELETE ON members"
    "  FOR EACH ROW EXECUTE FUNCTION latchkey_member_changed();",
    /* 3: nodes and their credit leases */
    "CREATE TABLE nodes("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, started_at BIGINT NOT NULL,"
    "  heartbeat_at BIGINT NOT NULL);"
    "CREATE TABLE credit_leases("
    "  workspace_id TEXT NOT NULL, node_id TEXT NOT NULL,"
    "  amount BIGINT NOT NULL CHECK(amount >= 0), PRIMARY KEY(workspace_id, node_id));"
    "CREATE INDEX credit_leases_by_node ON credit_leases(node_id);",
    /* 4: a lease's mark (SQLite's migration 7) */
    "ALTER TABLE credit_leases ADD COLUMN op BIGINT NOT NULL DEFAULT 0;",
    /* 5: inserted keys are logged per statement, not per row. Each UPDATE of
     * the one change_head row in a transaction leaves a version that only
     * commit frees, which the next UPDATE reads past: per row, a transaction
     * inserting n keys cost O(n^2). Now a statement takes its n seqs at once
     * (the row lock is held to commit as before, so seqs still become visible
     * in commit order), and a notification carries no payload, so a
     * transaction's notifications collapse into one, delivered at commit. */
    "CREATE OR REPLACE FUNCTION latchkey_change(k BIGINT, r BIGINT, ref TEXT, ws TEXT)"
    "  RETURNS void LANGUAGE plpgsql AS $$"
    " DECLARE s BIGINT;"
    " BEGIN"
    "  UPDATE change_head SET seq = seq + 1 RETURNING seq INTO s;"
    "  INSERT INTO changes VALUES(s, k, r, ref, ws,"
    "    floor(extract(epoch FROM clock_timestamp()))::bigint);"
    "  PERFORM pg_notify('latchkey_changes', '');"
    " END $$;"
    "CREATE FUNCTION latchkey_keys_inserted() RETURNS trigger LANGUAGE plpgsql AS $$"
    " DECLARE n BIGINT; s BIGINT;"
    " BEGIN"
    "  INSERT INTO key_digests SELECT digest, rowid FROM lk_new"
    "    UNION ALL SELECT prev_digest, rowid FROM lk_new WHERE prev_digest IS NOT NULL;"
    "  SELECT count(*) INTO n FROM lk_new;"
    "  IF n > 0 THEN"
    "    UPDATE change_head SET seq = seq + n RETURNING seq INTO s;"
    "    INSERT INTO changes SELECT s - n + row_number() OVER (ORDER BY rowid), 1, rowid, id,"
    "      workspace_id, floor(extract(epoch FROM clock_timestamp()))::bigint FROM lk_new;"
    "    PERFORM pg_notify('latchkey_changes', '');"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "DROP TRIGGER changes_key_insert ON keys;"
    "DROP TRIGGER key_digests_insert ON keys;"
    "CREATE TRIGGER keys_inserted AFTER INSERT ON keys REFERENCING NEW TABLE AS lk_new"
    "  FOR EACH STATEMENT EXECUTE FUNCTION latchkey_keys_inserted();",
    /* 6: an audit event's detail (SQLite's migration 8) */
    "ALTER TABLE audit_events ADD COLUMN detail TEXT NOT NULL DEFAULT '';",
    /* 7: webhooks (SQLite's migration 9) */
    "CREATE TABLE webhook_endpoints("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, url TEXT NOT NULL,"
    "  events TEXT NOT NULL, description TEXT NOT NULL, salt TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX webhook_endpoints_by_ws ON webhook_endpoints(workspace_id, created_at);"
    "CREATE TABLE webhook_events("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, type TEXT NOT NULL,"
    "  payload TEXT NOT NULL, created_at BIGINT NOT NULL);"
    "CREATE TABLE webhook_deliveries("
    "  event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, state BIGINT NOT NULL DEFAULT 0,"
    "  attempts BIGINT NOT NULL DEFAULT 0, next_ms BIGINT NOT NULL,"
    "  lease_until_ms BIGINT NOT NULL DEFAULT 0, lease_node TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY(event_id, endpoint_id));"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_ms);"
    "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id);"
    "CREATE TABLE webhook_attempts("
    "  id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL,"
    "  workspace_id TEXT NOT NULL, type TEXT NOT NULL, attempt BIGINT NOT NULL,"
    "  status BIGINT NOT NULL, error TEXT NOT NULL, started_ms BIGINT NOT NULL,"
    "  finished_ms BIGINT NOT NULL);"
    "CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts(endpoint_id, id);"
    "CREATE TABLE webhook_alarms("
    "  workspace_id TEXT NOT NULL, name TEXT NOT NULL, at BIGINT NOT NULL,"
    "  PRIMARY KEY(workspace_id, name));"
    "CREATE TABLE webhook_settings("
    "  workspace_id TEXT PRIMARY KEY, credits_low BIGINT);",
    /* 8: identities, a key's own credits and its named rate limits (SQLite's
     * migration 10, which says why) */
    "CREATE TABLE identities("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    "  external_id TEXT NOT NULL, meta TEXT NOT NULL, created_at BIGINT NOT NULL,"
    "  UNIQUE(workspace_id, external_id));"
    "ALTER TABLE keys ADD COLUMN identity_id TEXT, ADD COLUMN external_id TEXT,"
    "  ADD COLUMN credits_remaining BIGINT,"
    "  ADD COLUMN credits_refill BIGINT NOT NULL DEFAULT 0,"
    "  ADD COLUMN credits_refill_amount BIGINT NOT NULL DEFAULT 0,"
    "  ADD COLUMN credits_refill_day BIGINT NOT NULL DEFAULT 0,"
    "  ADD COLUMN credits_gen BIGINT NOT NULL DEFAULT 0,"
    "  ADD COLUMN credits_set_at BIGINT NOT NULL DEFAULT 0, ADD COLUMN rate_limits TEXT;"
    "CREATE INDEX keys_by_identity ON keys(identity_id, rowid) WHERE identity_id IS NOT NULL;"
    "CREATE TABLE key_credits("
    "  key_rowid BIGINT PRIMARY KEY, gen BIGINT NOT NULL, remaining BIGINT NOT NULL,"
    "  period BIGINT NOT NULL);",
};

#define WS_COLS                                                                                    \
    "id, name, key_prefix, key_format, is_operator, created_at, number, quota, test_quota"
#define CREDIT_COLS "balance, leased, spent, topped_up"
#define MEMBER_COLS "m.workspace_id, m.user_id, u.email, m.role, m.created_at"
#define INVITE_COLS "id, workspace_id, email, role, digest, invited_by, created_at, expires_at"
#define KEY_COLS                                                                                   \
    "rowid, id, workspace_id, name, environment, kind, permissions, meta, hint, enabled,"          \
    " expires_at, revoked_at, created_at, last_used_at, rl_limit, rl_window_s, daily_spend_cap,"   \
    " digest, pepper_id, prev_digest, prev_pepper_id, prev_until, created_by, identity_id,"        \
    " external_id, credits_remaining, credits_refill, credits_refill_amount, credits_refill_day,"  \
    " credits_gen, credits_set_at, rate_limits, " KEY_CREDITS_NOW
/* what checks spent of the key's credits (key_credits of its gen) */
#define KEY_CREDITS_NOW                                                                            \
    "(SELECT c.remaining FROM key_credits c WHERE c.key_rowid = keys.rowid"                        \
    " AND c.gen = keys.credits_gen), (SELECT c.period FROM key_credits c"                           \
    " WHERE c.key_rowid = keys.rowid AND c.gen = keys.credits_gen)"
/* KEY_COLS in the same places, with constants for what the cache does not keep */
#define KEY_COLS_CACHE                                                                             \
    "rowid, id, workspace_id, name, environment, kind, permissions, NULLIF(meta, '{}'),"          \
    " CASE WHEN hint = '" LK_KEY_HINT_IMPORTED "' THEN hint ELSE '' END,"                          \
    " enabled, expires_at, revoked_at, 0, last_used_at, rl_limit, rl_window_s, daily_spend_cap,"   \
    " digest, pepper_id, prev_digest, prev_pepper_id, prev_until, '', identity_id, external_id,"   \
    " credits_remaining, 0, 0, 0, 0,"                                                              \
    " 0, rate_limits, NULL, NULL"
#define CHANGE_COLS "seq, kind, key_rowid, ref_id, workspace_id, at"

struct pg_store {
    struct lk_store base;
    pthread_mutex_t mu; /* recursive: a transaction holds it from begin to commit */
    char *url;          /* with the password: only ever handed to libpq */
    char *safe_url;     /* the password masked: for messages */
    char *password;     /* as libpq decoded it, to scrub from its messages */
    PGconn *conn;
    int timeout_ms; /* run()'s deadline: QUERY_TIMEOUT_MS but during a scan */
    bool in_txn;
    char last_state[6]; /* SQLSTATE of the last failure in this transaction */
    uint64_t retry_at_ns;
    int backoff_ms;
    /* changes_wait's own connection, which LISTENs */
    pthread_mutex_t lmu;
    PGconn *lconn;
    uint64_t lretry_at_ns;
    int lbackoff_ms;
};

#define PG(s) ((struct pg_store *)(s))

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- URLs and messages without the password ------------------------------------------ */

/* The URL with the password of its user part, and any password= parameter,
 * replaced by "***". */
static char *redact_url(const char *url)
{
    size_t n = strlen(url), cap = n + 16, o = 0;
    char *out = lk_malloc(cap);
    const char *p = strstr(url, "://");
    const char *auth = p ? p + 3 : url;
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *at = NULL;

    for (const char *q = auth; q < auth_end; q++)
        if (*q == '@')
            at = q;
    for (const char *q = url; *q;) {
        if (at != NULL && q >= auth && q < at && *q == ':') {
            /* user:PASSWORD@ */
            memcpy(out + o, ":***", 4);
            o += 4;
            q = at;
            continue;
        }
        if (q > auth_end && (q[-1] == '?' || q[-1] == '&') && strncmp(q, "password=", 9) == 0) {
            memcpy(out + o, "password=***", 12);
            o += 12;
            q += strcspn(q, "&#");
            continue;
        }
        if (o + 13 >= cap) {
            cap *= 2;
            out = lk_realloc(out, cap);
        }
        out[o++] = *q++;
    }
    out[o] = '\0';
    return out;
}

/* Copies msg into out with every occurrence of the password masked, and the
 * line breaks libpq ends its messages with turned to spaces. */
static void scrub(const struct pg_store *s, const char *msg, char *out, size_t outsz)
{
    size_t o = 0, plen = s->password ? strlen(s->password) : 0;

    for (const char *q = msg ? msg : ""; *q && o + 1 < outsz;) {
        if (plen > 0 && strncmp(q, s->password, plen) == 0) {
            for (const char *m = "***"; *m && o + 1 < outsz; m++)
                out[o++] = *m;
            q += plen;
            continue;
        }
        out[o++] = (*q == '\n' || *q == '\r' || *q == '\t') ? ' ' : *q;
        q++;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

static void log_conn_error(struct pg_store *s, PGconn *c, const char *what)
{
    char msg[512];
    scrub(s, c ? PQerrorMessage(c) : "out of memory", msg, sizeof(msg));
    lk_error("postgres: %s (%s): %s", what, s->safe_url, msg);
}

/* --- connections -------------------------------------------------------------------- */

/* The server's warnings go to latchkey's log, not raw to stderr. */
static void on_notice(void *arg, const char *message)
{
    char msg[512];
    scrub(arg, message, msg, sizeof(msg));
    lk_warn("postgres: %s", msg);
}

static PGconn *connect_db(struct pg_store *s)
{
    const char *vals[LK_ARRAY_LEN(conn_keys)];
    PGconn *c;

    for (size_t i = 0; i + 2 < LK_ARRAY_LEN(conn_keys); i++)
        vals[i] = conn_vals_default[i];
    vals[LK_ARRAY_LEN(conn_keys) - 2] = s->url; /* last: the URL overrides the defaults */
    vals[LK_ARRAY_LEN(conn_keys) - 1] = NULL;
    c = PQconnectdbParams(conn_keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        log_conn_error(s, c, "cannot connect");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, s);
    PGresult *r = PQexec(c, session_setup);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        log_conn_error(s, c, "cannot set up the session");
        PQclear(r);
        PQfinish(c);
        return NULL;
    }
    PQclear(r);
    return c;
}

/* A connection the server closed (a restart, an idle timeout) shows as a
 * readable socket: notice it before sending, so the call reconnects at once
 * instead of failing. */
static bool conn_alive(PGconn *c)
{
    struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};

    if (PQstatus(c) != CONNECTION_OK || pfd.fd < 0)
        return false;
    if (poll(&pfd, 1, 0) <= 0)
        return true;
    if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
        return false;
    /* a notice or an error the server sent before closing: read on to the EOF */
    if (poll(&pfd, 1, 0) > 0 && (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK))
        return false;
    return true;
}

static void drop_conn(struct pg_store *s)
{
    PQfinish(s->conn);
    s->conn = NULL;
}

/* Makes s->conn usable, reconnecting when it is lost and the backoff allows.
 * Caller holds s->mu. */
static enum lk_err ensure_conn(struct pg_store *s)
{
    if (s->conn != NULL && conn_alive(s->conn))
        return LK_OK;
    if (s->in_txn) {
        /* the transaction died with its connection; commit or rollback ends it */
        if (s->conn != NULL)
            drop_conn(s);
        return LK_ERR_STORAGE_UNAVAILABLE;
    }
    if (s->conn != NULL) {
        lk_warn("postgres: connection to %s lost; reconnecting", s->safe_url);
        drop_conn(s);
        s->retry_at_ns = 0; /* the first try is at once */
    }
    if (now_ns() < s->retry_at_ns)
        return LK_ERR_STORAGE_UNAVAILABLE;
    if ((s->conn = connect_db(s)) == NULL) {
        s->retry_at_ns = now_ns() + (uint64_t)s->backoff_ms * 1000000u;
        s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
        return LK_ERR_STORAGE_UNAVAILABLE;
    }
    if (s->backoff_ms > BACKOFF_MIN_MS)
        lk_info("postgres: connected to %s again", s->safe_url);
    s->backoff_ms = BACKOFF_MIN_MS;
    return LK_OK;
}

/* Sends one statement and waits for its result against a deadline; NULL when
 * the connection failed or the deadline passed (the connection is then dropped:
 * its state is unknown). Caller holds s->mu. */
static PGresult *run(struct pg_store *s, const char *sql, int n, const Oid *types,
                     const char *const *vals, const int *lens, const int *fmts)
{
    PGconn *c = s->conn;
    uint64_t deadline = now_ns() + (uint64_t)s->timeout_ms * 1000000u;
    PGresult *res = NULL, *r;

    if (c == NULL)
        return NULL;
    if (!PQsendQueryParams(c, sql, n, types, vals, lens, fmts, 0))
        goto lost;
    while (PQisBusy(c)) {
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        uint64_t t = now_ns();
        if (t >= deadline) {
            lk_error("postgres: no answer from %s within %d ms", s->safe_url, s->timeout_ms);
            drop_conn(s);
            return NULL;
        }
        int rc = poll(&pfd, 1, (int)((deadline - t) / 1000000u) + 1);
        if (rc < 0 && errno != EINTR)
            goto lost;
        if (rc > 0 && !PQconsumeInput(c))
            goto lost;
    }
    while ((r = PQgetResult(c)) != NULL) {
        if (res == NULL)
            res = r;
        else
            PQclear(r);
    }
    if (res != NULL && PQstatus(c) == CONNECTION_OK)
        return res;
    PQclear(res);
lost:
    log_conn_error(s, c, "query failed");
    drop_conn(s);
    return NULL;
}

static bool state_is(const char *st, const char *want)
{
    return st != NULL && strcmp(st, want) == 0;
}

/* Maps a failed result to an error, as SQLite's SQLITE_CONSTRAINT maps to a
 * conflict: integrity violations (class 23) and numbers out of range. */
static enum lk_err fail_res(struct pg_store *s, PGresult *r, const char *what)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char msg[512];

    /* the first failure of a transaction is what makes it retryable; the
     * statements after it fail only because it is aborted */
    if (!state_is(s->last_state, "40001") && !state_is(s->last_state, "40P01"))
        snprintf(s->last_state, sizeof(s->last_state), "%s", st ? st : "");
    if (st != NULL && (strncmp(st, "23", 2) == 0 || strcmp(st, "22003") == 0))
        return LK_ERR_CONFLICT;
    if (r != NULL) {
        scrub(s, PQresultErrorMessage(r), msg, sizeof(msg));
        if (state_is(st, "40001") || state_is(st, "40P01"))
            lk_debug("postgres: %s: %s (retried)", what, msg);
        else
            lk_error("postgres: %s: %s", what, msg);
    }
    return LK_ERR_STORAGE_UNAVAILABLE;
}

static enum lk_err exec_simple(struct pg_store *s, const char *sql, const char *what)
{
    PGresult *r = run(s, sql, 0, NULL, NULL, NULL, NULL);
    enum lk_err e;

    if (r == NULL)
        return LK_ERR_STORAGE_UNAVAILABLE;
    e = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK
            ? LK_OK
            : fail_res(s, r, what);
    PQclear(r);
    return e;
}

/* --- parameters by a format, like store_sqlite.c's bindv ------------------------------- */

/* 's' text (NULL pointer: NULL), 'i' int64, 'n' int64 with -1 as NULL, 'z' int64
 * with 0 as NULL, 'd' 32-byte digest (NULL pointer: NULL). */
struct params {
    int n;
    Oid types[MAX_PARAMS];
    const char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    char num[MAX_PARAMS][24];
};

static void params_v(struct params *p, const char *fmt, va_list ap)
{
    p->n = 0;
    for (; *fmt; fmt++) {
        int i = p->n++;
        int64_t v;
        lk_assert(i < MAX_PARAMS);
        p->lens[i] = 0;
        p->fmts[i] = 0;
        switch (*fmt) {
        case 's':
            p->types[i] = 25; /* text */
            p->vals[i] = va_arg(ap, const char *);
            break;
        case 'd':
            p->types[i] = 17; /* bytea, sent as binary */
            p->vals[i] = (const char *)va_arg(ap, const uint8_t *);
            p->lens[i] = LK_DIGEST_LEN;
            p->fmts[i] = 1;
            break;
        case 'i':
        case 'n':
        case 'z':
            p->types[i] = 20; /* int8 */
            v = va_arg(ap, int64_t);
            if ((*fmt == 'n' && v == -1) || (*fmt == 'z' && v == 0)) {
                p->vals[i] = NULL;
            } else {
                snprintf(p->num[i], sizeof(p->num[i]), "%lld", (long long)v);
                p->vals[i] = p->num[i];
            }
            break;
        default:
            lk_assert(!"bad parameter format");
        }
    }
}

/* Runs a statement that returns no rows we read; *changed gets the rows it
 * changed. Inside a transaction, a statement that may fail as an answer (a
 * conflict) runs under a savepoint, so the transaction goes on after it as
 * SQLite's does. Caller holds s->mu. */
static enum lk_err write_p(struct pg_store *s, const char *sql, bool guard, int64_t *changed,
                           const char *what, struct params *p)
{
    enum lk_err e;
    PGresult *r;
    bool sp;

    if ((e = ensure_conn(s)) != LK_OK)
        return e;
    sp = guard && s->in_txn;
    if (sp && (e = exec_simple(s, "SAVEPOINT lk_stmt", "savepoint")) != LK_OK)
        return e;
    if ((r = run(s, sql, p->n, p->types, p->vals, p->lens, p->fmts)) == NULL)
        return LK_ERR_STORAGE_UNAVAILABLE;
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
        if (changed != NULL) {
            const char *t = PQcmdTuples(r);
            if (lk_parse_i64(t, strlen(t), 0, INT64_MAX, changed) != 0)
                *changed = 0;
        }
        PQclear(r);
        if (sp)
            e = exec_simple(s, "RELEASE SAVEPOINT lk_stmt", "release savepoint");
        return e;
    }
    e = fail_res(s, r, what);
    PQclear(r);
    /* a serialization failure must end the transaction: leave it aborted */
    if (sp && e == LK_ERR_CONFLICT)
        exec_simple(s, "ROLLBACK TO SAVEPOINT lk_stmt", "rollback to savepoint");
    return e;
}

/* A write. LK_ERR_NOT_FOUND when it changed no row and `must_change`. */
static enum lk_err write_stmt(struct pg_store *s, const char *sql, bool guard, bool must_change,
                              const char *what, const char *fmt, ...)
{
    struct params p;
    int64_t changed = 0;
    enum lk_err e;
    va_list ap;

    va_start(ap, fmt);
    params_v(&p, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    e = write_p(s, sql, guard, &changed, what, &p);
    pthread_mutex_unlock(&s->mu);
    if (e == LK_OK && must_change && changed == 0)
        e = LK_ERR_NOT_FOUND;
    return e;
}

typedef int (*row_fn)(PGresult *r, int row, void *arg);

/* Runs a query (or a write with RETURNING), handing each row to fn (nonzero
 * stops). With `one`, no row is LK_ERR_NOT_FOUND. `guard` as for write_p. */
static enum lk_err query_raw(struct pg_store *s, const char *sql, bool one, bool guard, row_fn fn,
                             void *arg, const char *what, int n, const Oid *types,
                             const char *const *vals, const int *lens, const int *fmts)
{
    enum lk_err e;
    PGresult *r;
    bool sp;

    if ((e = ensure_conn(s)) != LK_OK)
        return e;
    sp = guard && s->in_txn;
    if (sp && (e = exec_simple(s, "SAVEPOINT lk_stmt", "savepoint")) != LK_OK)
        return e;
    if ((r = run(s, sql, n, types, vals, lens, fmts)) == NULL)
        return LK_ERR_STORAGE_UNAVAILABLE;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail_res(s, r, what);
        PQclear(r);
        if (sp && e == LK_ERR_CONFLICT)
            exec_simple(s, "ROLLBACK TO SAVEPOINT lk_stmt", "rollback to savepoint");
        return e;
    }
    int rows = PQntuples(r);
    if (sp)
        e = exec_simple(s, "RELEASE SAVEPOINT lk_stmt", "release savepoint");
    /* The rows are all in memory: a callback may call the store again. */
    for (int i = 0; i < rows && e == LK_OK; i++)
        if (fn(r, i, arg) != 0)
            break;
    PQclear(r);
    if (e == LK_OK && one && rows == 0)
        e = LK_ERR_NOT_FOUND;
    return e;
}

static enum lk_err query_p(struct pg_store *s, const char *sql, bool one, bool guard, row_fn fn,
                           void *arg, const char *what, const struct params *p)
{
    return query_raw(s, sql, one, guard, fn, arg, what, p->n, p->types, p->vals, p->lens, p->fmts);
}

static enum lk_err read_stmt(struct pg_store *s, const char *sql, bool one, row_fn fn, void *arg,
                             const char *what, const char *fmt, ...)
{
    struct params p;
    enum lk_err e;
    va_list ap;

    va_start(ap, fmt);
    params_v(&p, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    e = query_p(s, sql, one, false, fn, arg, what, &p);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* read_stmt for a scan of a whole table, which may take longer than a call
 * should: a longer deadline and statement_timeout for this statement only. */
static enum lk_err scan_stmt(struct pg_store *s, const char *sql, row_fn fn, void *arg,
                             const char *what)
{
    struct params p = {0};
    enum lk_err e;
    char set[64];

    pthread_mutex_lock(&s->mu);
    if ((e = ensure_conn(s)) == LK_OK) {
        snprintf(set, sizeof(set), "SET statement_timeout = %d", SCAN_TIMEOUT_MS);
        e = exec_simple(s, set, "set statement_timeout");
    }
    if (e == LK_OK) {
        s->timeout_ms = SCAN_TIMEOUT_MS + 5000;
        e = query_p(s, sql, false, false, fn, arg, what, &p);
        s->timeout_ms = QUERY_TIMEOUT_MS;
        if (s->conn != NULL) {
            snprintf(set, sizeof(set), "SET statement_timeout = %d", QUERY_TIMEOUT_MS);
            exec_simple(s, set, "set statement_timeout");
        }
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* A write with RETURNING one row (an id), which may conflict. */
static enum lk_err insert_returning(struct pg_store *s, const char *sql, row_fn fn, void *arg,
                                    const char *what, const char *fmt, ...)
{
    struct params p;
    enum lk_err e;
    va_list ap;

    va_start(ap, fmt);
    params_v(&p, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    e = query_p(s, sql, true, true, fn, arg, what, &p);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* --- reading columns ---------------------------------------------------------------- */

static int64_t col_i64(PGresult *r, int row, int col, int64_t none)
{
    const char *v;
    int64_t out;

    if (PQgetisnull(r, row, col))
        return none;
    v = PQgetvalue(r, row, col);
    return lk_parse_i64(v, (size_t)PQgetlength(r, row, col), INT64_MIN, INT64_MAX, &out) == 0
               ? out
               : none;
}

static void col_text(PGresult *r, int row, int col, char *out, size_t outsz)
{
    size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);

    if (n >= outsz)
        n = outsz - 1;
    if (n > 0)
        memcpy(out, PQgetvalue(r, row, col), n);
    out[n] = '\0';
}

static char *col_dup(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return lk_strndup("", 0);
    return lk_strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

/* bytea in text form: "\x" and hex digits. */
static void col_digest(PGresult *r, int row, int col, uint8_t out[LK_DIGEST_LEN])
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);

    memset(out, 0, LK_DIGEST_LEN);
    if (strlen(v) != 2 + 2 * LK_DIGEST_LEN || v[0] != '\\' || v[1] != 'x')
        return;
    for (int i = 0; i < LK_DIGEST_LEN; i++) {
        int hi = lk_hex_value(v[2 + 2 * i]), lo = lk_hex_value(v[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            memset(out, 0, LK_DIGEST_LEN);
            return;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

/* --- rows read by a table of columns, as jsonin.c reads JSON objects ----------------------- */

enum col_type { COL_TEXT, COL_I64, COL_INT, COL_DIGEST };

/* Result column i of a row goes to the member at `off` of the row struct. */
struct col {
    enum col_type type;
    size_t off, size; /* size: the member's (a text buffer's room, a number's width) */
};

/* clang-format off */
#define TEXT(T, m) {COL_TEXT, offsetof(T, m), sizeof(((T *)0)->m)}
#define I64(T, m) {COL_I64, offsetof(T, m), sizeof(((T *)0)->m)}
#define INT(T, m) {COL_INT, offsetof(T, m), sizeof(((T *)0)->m)} /* an int or an enum */
#define DIGEST(T, m) {COL_DIGEST, offsetof(T, m), sizeof(((T *)0)->m)}
/* clang-format on */

static void read_row(PGresult *r, int i, const struct col *cols, size_t ncols, void *out,
                     size_t outsz)
{
    memset(out, 0, outsz);
    for (size_t c = 0; c < ncols; c++) {
        char *at = (char *)out + cols[c].off;
        int64_t v;
        int n;

        switch (cols[c].type) {
        case COL_TEXT:
            col_text(r, i, (int)c, at, cols[c].size);
            break;
        case COL_I64: /* NULL: 0, as every column read this way wants */
            lk_assert(cols[c].size == sizeof(v));
            v = col_i64(r, i, (int)c, 0);
            memcpy(at, &v, sizeof(v));
            break;
        case COL_INT:
            lk_assert(cols[c].size == sizeof(n));
            n = (int)col_i64(r, i, (int)c, 0);
            memcpy(at, &n, sizeof(n));
            break;
        case COL_DIGEST:
            col_digest(r, i, (int)c, (uint8_t *)at);
            break;
        }
    }
}

/* For a row type T read by the columns after cb_t: row_NAME reads one row into
 * its argument (a get); row_NAME_cb hands each row to the callback of a struct
 * NAME_cb (a listing). The readers differ in nothing else. */
#define ROW_READERS(name, T, cb_t, ...)                                                            \
    static const struct col name##_cols[] = {__VA_ARGS__};                                         \
    __attribute__((unused)) static int row_##name(PGresult *r, int i, void *arg)                   \
    {                                                                                              \
        read_row(r, i, name##_cols, LK_ARRAY_LEN(name##_cols), arg, sizeof(T));                    \
        return 1;                                                                                  \
    }                                                                                              \
    struct name##_cb {                                                                             \
        cb_t cb;                                                                                   \
        void *arg;                                                                                 \
    };                                                                                             \
    __attribute__((unused)) static int row_##name##_cb(PGresult *r, int i, void *arg)              \
    {                                                                                              \
        struct name##_cb *c = arg;                                                                 \
        T x;                                                                                       \
        read_row(r, i, name##_cols, LK_ARRAY_LEN(name##_cols), &x, sizeof(x));                     \
        return c->cb(c->arg, &x);                                                                  \
    }

#define U struct lk_user_row
ROW_READERS(user, U, lk_user_row_cb, TEXT(U, id), TEXT(U, email), TEXT(U, password_hash),
            I64(U, created_at))
#undef U
#define M struct lk_member_row
ROW_READERS(member, M, lk_member_row_cb, TEXT(M, workspace_id), TEXT(M, user_id), TEXT(M, email),
            INT(M, role), I64(M, created_at))
#undef M
#define S struct lk_session_row
ROW_READERS(session, S, lk_session_row_cb, DIGEST(S, digest), TEXT(S, user_id), I64(S, created_at),
            I64(S, expires_at))
#undef S
#define C struct lk_credit_account
ROW_READERS(credit, C, lk_credit_cb, TEXT(C, workspace_id), I64(C, balance), I64(C, leased),
            I64(C, spent), I64(C, topped_up))
#undef C
#define I struct lk_invitation_row
ROW_READERS(invitation, I, lk_invitation_cb, TEXT(I, id), TEXT(I, workspace_id), TEXT(I, email),
            INT(I, role), DIGEST(I, digest), TEXT(I, invited_by), I64(I, created_at),
            I64(I, expires_at))
#undef I
#define A struct lk_audit_event
ROW_READERS(audit, A, lk_audit_cb, I64(A, id), TEXT(A, row.workspace_id), TEXT(A, row.actor),
            TEXT(A, row.action), TEXT(A, row.target), TEXT(A, row.address), TEXT(A, row.request_id),
            I64(A, row.created_at), TEXT(A, row.detail))
#undef A
#define L struct lk_ledger_row
ROW_READERS(ledger, L, lk_ledger_cb, I64(L, id), TEXT(L, workspace_id), TEXT(L, kind),
            I64(L, amount), I64(L, period), TEXT(L, actor), TEXT(L, note), I64(L, created_at))
#undef L
#define K struct lk_counter_row
ROW_READERS(counter, K, lk_counter_cb, TEXT(K, workspace_id), I64(K, key_rowid), I64(K, period),
            INT(K, code), I64(K, n), I64(K, n_test))
#undef K
#define H struct lk_change_row
ROW_READERS(change, H, lk_change_cb, I64(H, seq), INT(H, kind), I64(H, key_rowid), TEXT(H, ref_id),
            TEXT(H, workspace_id), I64(H, at))
#undef H
#define N struct lk_node_row
ROW_READERS(node, N, lk_node_cb, TEXT(N, id), TEXT(N, name), I64(N, started_at),
            I64(N, heartbeat_at))
#undef N
#define E struct lk_lease_row
ROW_READERS(lease, E, lk_lease_cb, TEXT(E, workspace_id), TEXT(E, node_id), I64(E, amount),
            I64(E, op))
#undef E

static int row_id(PGresult *r, int row, void *arg)
{
    *(int64_t *)arg = col_i64(r, row, 0, 0);
    return 1;
}

static int row_count(PGresult *r, int row, void *arg)
{
    *(int64_t *)arg = col_i64(r, row, 0, 0);
    return 1;
}

static void read_ws(PGresult *r, int i, struct lk_ws_row *w)
{
    memset(w, 0, sizeof(*w));
    col_text(r, i, 0, w->id, sizeof(w->id));
    col_text(r, i, 1, w->name, sizeof(w->name));
    col_text(r, i, 2, w->key_prefix, sizeof(w->key_prefix));
    w->key_format = col_i64(r, i, 3, 0) == LK_FORMAT_HEX ? LK_FORMAT_HEX : LK_FORMAT_DEFAULT;
    w->is_operator = col_i64(r, i, 4, 0) != 0;
    w->created_at = col_i64(r, i, 5, 0);
    w->number = col_i64(r, i, 6, 0);
    w->quota = col_i64(r, i, 7, -1);
    w->test_quota = col_i64(r, i, 8, -1);
}

/* With `view`, permissions and meta point into the result (valid until it is
 * cleared; never released): a scan allocates nothing a row. A NULL is "" (the
 * result's own empty string for a null field). */
static void read_key_as(PGresult *r, int i, struct lk_key_row *k, bool view)
{
    memset(k, 0, sizeof(*k));
    k->rowid = col_i64(r, i, 0, 0);
    col_text(r, i, 1, k->id, sizeof(k->id));
    col_text(r, i, 2, k->workspace_id, sizeof(k->workspace_id));
    col_text(r, i, 3, k->name, sizeof(k->name));
    k->env = col_i64(r, i, 4, 0) == LK_ENV_TEST ? LK_ENV_TEST : LK_ENV_LIVE;
    k->kind = (enum lk_key_kind)col_i64(r, i, 5, 0);
    k->permissions = view ? PQgetvalue(r, i, 6) : col_dup(r, i, 6);
    k->meta = view ? PQgetvalue(r, i, 7) : col_dup(r, i, 7);
    col_text(r, i, 8, k->hint, sizeof(k->hint));
    k->enabled = col_i64(r, i, 9, 0) != 0;
    k->expires_at = col_i64(r, i, 10, 0);
    k->revoked_at = col_i64(r, i, 11, 0);
    k->created_at = col_i64(r, i, 12, 0);
    k->last_used_at = col_i64(r, i, 13, 0);
    k->rl_limit = col_i64(r, i, 14, 0);
    k->rl_window_s = col_i64(r, i, 15, 0);
    k->daily_spend_cap = col_i64(r, i, 16, -1);
    col_digest(r, i, 17, k->digest);
    k->pepper_id = (uint32_t)col_i64(r, i, 18, 0);
    k->has_prev = !PQgetisnull(r, i, 19);
    if (k->has_prev) {
        col_digest(r, i, 19, k->prev_digest);
        k->prev_pepper_id = (uint32_t)col_i64(r, i, 20, 0);
        k->prev_until = col_i64(r, i, 21, 0);
    }
    col_text(r, i, 22, k->created_by, sizeof(k->created_by));
    col_text(r, i, 23, k->identity_id, sizeof(k->identity_id));
    col_text(r, i, 24, k->external_id, sizeof(k->external_id));
    k->has_credits = !PQgetisnull(r, i, 25);
    k->credits_remaining = col_i64(r, i, 25, 0);
    k->credits_refill = (enum lk_credit_refill)col_i64(r, i, 26, 0);
    if (k->credits_refill > LK_CREDIT_REFILL_MONTHLY)
        k->credits_refill = LK_CREDIT_REFILL_NONE;
    k->credits_refill_amount = col_i64(r, i, 27, 0);
    k->credits_refill_day = (int)col_i64(r, i, 28, 0);
    k->credits_gen = col_i64(r, i, 29, 0);
    k->credits_set_at = col_i64(r, i, 30, 0);
    if (!PQgetisnull(r, i, 31)) {
        struct lk_key_rl rl[LK_KEY_RATE_LIMITS_MAX];
        int n = lk_namedrl_decode(PQgetvalue(r, i, 31), rl);
        if (n > 0) {
            k->rate_limits = lk_malloc((size_t)n * sizeof(*rl));
            memcpy(k->rate_limits, rl, (size_t)n * sizeof(*rl));
            k->n_rate_limits = n;
        }
    }
    k->credits_now = col_i64(r, i, 32, -1);
    k->credits_period = col_i64(r, i, 33, 0);
}

/* The text of k's named rate limits in buf (LK_NAMEDRL_TEXT_MAX), or NULL. */
static const char *rl_text(const struct lk_key_row *k, char *buf)
{
    if (k->n_rate_limits <= 0)
        return NULL;
    lk_namedrl_encode(k->rate_limits, k->n_rate_limits, buf);
    return buf;
}

static void read_key(PGresult *r, int i, struct lk_key_row *k)
{
    read_key_as(r, i, k, false);
}

/* --- open, close, transactions --------------------------------------------------------- */

static enum lk_err migrate(struct pg_store *s, struct lk_errinfo *ei)
{
    char sql[160], msg[256];
    int64_t version = 0;
    PGresult *r;

    /* One transaction, under an advisory lock: two nodes starting at once on an
     * empty database apply each migration once, the second waiting for the first. */
    if (exec_simple(s, "BEGIN", "begin migration") != LK_OK)
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot migrate %s",
                              s->safe_url);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%lld)", (long long)MIGRATE_LOCK);
    if (exec_simple(s, sql, "lock for migration") != LK_OK ||
        exec_simple(s,
                    "CREATE TABLE IF NOT EXISTS latchkey_schema(version BIGINT PRIMARY KEY,"
                    " applied_at BIGINT NOT NULL)",
                    "create latchkey_schema") != LK_OK)
        goto failed;
    r = s->conn ? run(s, "SELECT COALESCE(max(version), 0) FROM latchkey_schema", 0, NULL, NULL,
                      NULL, NULL)
                : NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        PQclear(r);
        goto failed;
    }
    version = col_i64(r, 0, 0, 0);
    PQclear(r);
    if (version > (int64_t)LK_ARRAY_LEN(migrations)) {
        exec_simple(s, "ROLLBACK", "rollback migration");
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db",
                              "database schema %lld is newer than this latchkey (%d)",
                              (long long)version, (int)LK_ARRAY_LEN(migrations));
    }
    for (; version < (int64_t)LK_ARRAY_LEN(migrations); version++) {
        /* PQexec: a migration is several statements, with no parameters */
        r = PQexec(s->conn, migrations[version]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            scrub(s, PQresultErrorMessage(r), msg, sizeof(msg));
            lk_error("postgres: schema migration %lld: %s", (long long)version + 1, msg);
            PQclear(r);
            if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
                exec_simple(s, "ROLLBACK", "rollback migration");
            return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db",
                                  "schema migration %lld failed", (long long)version + 1);
        }
        PQclear(r);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO latchkey_schema VALUES(%lld,"
                 " floor(extract(epoch FROM now()))::bigint)",
                 (long long)version + 1);
        if (exec_simple(s, sql, "record migration") != LK_OK)
            goto failed;
    }
    if (exec_simple(s, "COMMIT", "commit migration") != LK_OK)
        goto failed;
    return LK_OK;
failed:
    if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
        exec_simple(s, "ROLLBACK", "rollback migration");
    return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot migrate %s", s->safe_url);
}

static void pg_close(struct lk_store *base)
{
    struct pg_store *s = PG(base);

    PQfinish(s->conn);
    PQfinish(s->lconn);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->lmu);
    if (s->password != NULL)
        memset(s->password, 0, strlen(s->password));
    if (s->url != NULL)
        memset(s->url, 0, strlen(s->url));
    free(s->password);
    free(s->url);
    free(s->safe_url);
    free(s);
}

static enum lk_err pg_open(const char *url, struct lk_store **out, struct lk_errinfo *ei)
{
    struct pg_store *s = lk_calloc(1, sizeof(*s));
    pthread_mutexattr_t attr;
    PQconninfoOption *opts;
    char *err = NULL, msg[256];
    enum lk_err e = LK_OK;

    s->base.ops = &lk__store_pg_ops;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_mutex_init(&s->lmu, NULL);
    s->url = lk_strndup(url, strlen(url));
    s->safe_url = redact_url(url);
    s->backoff_ms = s->lbackoff_ms = BACKOFF_MIN_MS;
    s->timeout_ms = QUERY_TIMEOUT_MS;
    /* libpq's own reading of the URL: what it would send as the password */
    if ((opts = PQconninfoParse(url, &err)) == NULL) {
        scrub(s, err, msg, sizeof(msg));
        PQfreemem(err);
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "db", "bad PostgreSQL URL %s: %s",
                           s->safe_url, msg);
        goto out;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0])
            s->password = lk_strndup(o->val, strlen(o->val));
    PQconninfoFree(opts);
    if ((s->conn = connect_db(s)) == NULL) {
        e = lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot connect to %s",
                           s->safe_url);
        goto out;
    }
    e = migrate(s, ei);
out:
    if (e != LK_OK) {
        pg_close(&s->base);
        return e;
    }
    *out = &s->base;
    return LK_OK;
}

static enum lk_err pg_ping(struct lk_store *base)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = ensure_conn(s);
    if (e == LK_OK)
        e = exec_simple(s, "SELECT 1", "ping");
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err begin_with(struct pg_store *s, const char *then)
{
    enum lk_err e;

    pthread_mutex_lock(&s->mu); /* held until commit or rollback */
    s->last_state[0] = '\0';
    if ((e = ensure_conn(s)) == LK_OK &&
        (e = exec_simple(s, "BEGIN ISOLATION LEVEL SERIALIZABLE", "begin")) == LK_OK) {
        if (then == NULL || (e = exec_simple(s, then, "begin")) == LK_OK) {
            s->in_txn = true;
            return LK_OK;
        }
        exec_simple(s, "ROLLBACK", "rollback");
    }
    pthread_mutex_unlock(&s->mu);
    return LK_ERR_STORAGE_UNAVAILABLE;
}

static enum lk_err pg_begin(struct lk_store *base)
{
    return begin_with(PG(base), NULL);
}

/* For background writers (the recorder): waits for another node's row locks
 * only briefly, and the caller tries again later. */
static enum lk_err pg_begin_background(struct lk_store *base)
{
    return begin_with(PG(base), "SET LOCAL lock_timeout = 100");
}

static void end_txn(struct pg_store *s)
{
    s->in_txn = false;
    pthread_mutex_unlock(&s->mu);
}

static enum lk_err pg_commit(struct lk_store *base)
{
    struct pg_store *s = PG(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;

    if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK) {
        /* COMMIT of a failed transaction answers "ROLLBACK" without an error */
        if (PQtransactionStatus(s->conn) == PQTRANS_INTRANS) {
            e = exec_simple(s, "COMMIT", "commit");
        } else {
            exec_simple(s, "ROLLBACK", "rollback");
            e = LK_ERR_STORAGE_UNAVAILABLE;
        }
        if (e != LK_OK && s->conn != NULL && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
            exec_simple(s, "ROLLBACK", "rollback");
    }
    end_txn(s);
    return e == LK_ERR_CONFLICT ? LK_ERR_STORAGE_UNAVAILABLE : e;
}

static void pg_rollback(struct lk_store *base)
{
    struct pg_store *s = PG(base);

    if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
        exec_simple(s, "ROLLBACK", "rollback");
    end_txn(s);
}

static bool pg_retryable(struct lk_store *base)
{
    struct pg_store *s = PG(base);
    return state_is(s->last_state, "40001") || state_is(s->last_state, "40P01");
}

/* --- workspaces and keys --------------------------------------------------------------- */

static enum lk_err pg_ws_insert(struct lk_store *base, struct lk_ws_row *w)
{
    return insert_returning(PG(base),
                            "INSERT INTO workspaces(id, name, key_prefix, key_format, is_operator,"
                            " created_at, quota, test_quota)"
                            " VALUES($1, $2, $3, $4, $5, $6, $7, $8) RETURNING number",
                            row_id, &w->number, "insert workspace", "sssiiinn", w->id, w->name,
                            w->key_prefix, (int64_t)w->key_format, (int64_t)w->is_operator,
                            w->created_at, w->quota, w->test_quota);
}

static int row_ws(PGresult *r, int i, void *arg)
{
    read_ws(r, i, arg);
    return 1;
}

static enum lk_err pg_ws_get(struct lk_store *base, const char *id, struct lk_ws_row *out)
{
    return read_stmt(PG(base), "SELECT " WS_COLS " FROM workspaces WHERE id = $1", true, row_ws,
                     out, "get workspace", "s", id);
}

static enum lk_err pg_ws_get_by_number(struct lk_store *base, int64_t number, struct lk_ws_row *out)
{
    return read_stmt(PG(base), "SELECT " WS_COLS " FROM workspaces WHERE number = $1", true, row_ws,
                     out, "get workspace", "i", number);
}

struct ws_cb {
    lk_ws_row_cb cb;
    void *arg;
};

static int row_ws_cb(PGresult *r, int i, void *arg)
{
    struct ws_cb *c = arg;
    struct lk_ws_row w;
    read_ws(r, i, &w);
    return c->cb(c->arg, &w);
}

static enum lk_err pg_ws_list(struct lk_store *base, lk_ws_row_cb cb, void *arg)
{
    struct ws_cb c = {cb, arg};
    return read_stmt(PG(base), "SELECT " WS_COLS " FROM workspaces ORDER BY number", false,
                     row_ws_cb, &c, "list workspaces", "");
}

static enum lk_err pg_ws_count(struct lk_store *base, int64_t *out)
{
    *out = 0;
    return read_stmt(PG(base), "SELECT count(*) FROM workspaces", false, row_count, out,
                     "count workspaces", "");
}

/* The 32 written key columns in KEY_COLS order ($1, the rowid, is unused by
 * writes); rl is rl_text's. */
#define KEY_FMT "isssiisssizzizzzndidnnsssniiiiis"
#define KEY_ARGS(k, rl)                                                                            \
    (int64_t)0, (k)->id, (k)->workspace_id, (k)->name, (int64_t)(k)->env, (int64_t)(k)->kind,      \
        (k)->permissions ? (k)->permissions : "[\"*\"]", (k)->meta ? (k)->meta : "{}", (k)->hint,  \
        (int64_t)(k)->enabled, (k)->expires_at, (k)->revoked_at, (k)->created_at,                  \
        (k)->last_used_at, (k)->rl_limit, (k)->rl_window_s, (k)->daily_spend_cap, (k)->digest,     \
        (int64_t)(k)->pepper_id, (k)->has_prev ? (k)->prev_digest : NULL,                          \
        (k)->has_prev ? (int64_t)(k)->prev_pepper_id : (int64_t)-1,                                \
        (k)->has_prev ? (k)->prev_until : (int64_t)-1, (k)->created_by,                            \
        (k)->identity_id[0] ? (k)->identity_id : NULL,                                             \
        (k)->identity_id[0] ? (k)->external_id : NULL,                                              \
        (k)->has_credits ? (k)->credits_remaining : (int64_t)-1,                     \
        (int64_t)(k)->credits_refill, (k)->credits_refill_amount, (int64_t)(k)->credits_refill_day, \
        (k)->credits_gen, (k)->credits_set_at, (rl)

#define KEY_INSERT                                                                                 \
    "INSERT INTO keys(id, workspace_id, name, environment, kind, permissions, meta, hint,"         \
    " enabled, expires_at, revoked_at, created_at, last_used_at, rl_limit, rl_window_s,"           \
    " daily_spend_cap, digest, pepper_id, prev_digest, prev_pepper_id, prev_until, created_by,"    \
    " identity_id, external_id, credits_remaining, credits_refill, credits_refill_amount,"         \
    " credits_refill_day, credits_gen, credits_set_at, rate_limits)"                               \
    " VALUES"
#define KEY_INSERT_PARAMS 31 /* KEY_FMT but the unused rowid */
/* keys_insert's rows a statement: 22 parameters each, far under libpq's 65535 */
#define KEYS_BATCH 500

static enum lk_err pg_key_insert(struct lk_store *base, struct lk_key_row *k)
{
    char rl[LK_NAMEDRL_TEXT_MAX];

    /* $1 is typed but unused: the server numbers the row */
    return insert_returning(PG(base),
                            KEY_INSERT
                            "($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
                            " $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26,"
                            " $27, $28, $29, $30, $31, $32) RETURNING rowid",
                            row_id, &k->rowid, "insert key", KEY_FMT, KEY_ARGS(k, rl_text(k, rl)));
}

static void params_set(struct params *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    params_v(p, fmt, ap);
    va_end(ap);
}

struct key_batch {
    struct lk_key_row *k;
    size_t n, next;
};

/* RETURNING rowid, id: rows come back in VALUES order, but are matched by id. */
static int row_batch_rowid(PGresult *r, int i, void *arg)
{
    struct key_batch *b = arg;
    const char *id = PQgetvalue(r, i, 1);

    for (size_t j = 0; j < b->n; j++) {
        size_t at = (b->next + j) % b->n;
        if (strcmp(b->k[at].id, id) == 0) {
            b->k[at].rowid = col_i64(r, i, 0, 0);
            b->next = at + 1;
            break;
        }
    }
    return 0;
}

/* One multi-row INSERT a batch: the insert trigger then logs each batch with
 * one change_head update (migration 5), and the rows take one round trip. The
 * batches run in a transaction of their own, or under a savepoint in the
 * caller's, so that a refused key leaves none of the call's keys. */
static enum lk_err pg_keys_insert(struct lk_store *base, struct lk_key_row *k, size_t n)
{
    struct pg_store *s = PG(base);
    size_t cap = n < KEYS_BATCH ? n : KEYS_BATCH, np_max = cap * KEY_INSERT_PARAMS;
    /* "$NNNNN, " a parameter, "),(" a row */
    size_t sqlsz = sizeof(KEY_INSERT) + np_max * 8 + cap * 4 + 32;
    struct params *rows;
    char (*rlbuf)[LK_NAMEDRL_TEXT_MAX];
    Oid *types;
    const char **vals;
    int *lens, *fmts;
    char *sql;
    enum lk_err e = LK_OK;
    bool own;

    if (n == 0)
        return LK_OK;
    rows = lk_calloc(cap, sizeof(*rows));
    rlbuf = lk_calloc(cap, sizeof(*rlbuf));
    types = lk_calloc(np_max, sizeof(*types));
    vals = lk_calloc(np_max, sizeof(*vals));
    lens = lk_calloc(np_max, sizeof(*lens));
    fmts = lk_calloc(np_max, sizeof(*fmts));
    sql = lk_malloc(sqlsz);
    pthread_mutex_lock(&s->mu);
    own = !s->in_txn;
    if (own)
        e = pg_begin(base);
    else if ((e = ensure_conn(s)) == LK_OK)
        e = exec_simple(s, "SAVEPOINT lk_keys", "savepoint");
    for (size_t at = 0; at < n && e == LK_OK; at += cap) {
        struct key_batch b = {k + at, n - at < cap ? n - at : cap, 0};
        size_t len = (size_t)snprintf(sql, sqlsz, "%s", KEY_INSERT), np = 0;

        for (size_t i = 0; i < b.n; i++) {
            params_set(&rows[i], KEY_FMT, KEY_ARGS(&b.k[i], rl_text(&b.k[i], rlbuf[i])));
            for (int j = 1; j <= KEY_INSERT_PARAMS; j++, np++) {
                types[np] = rows[i].types[j];
                vals[np] = rows[i].vals[j];
                lens[np] = rows[i].lens[j];
                fmts[np] = rows[i].fmts[j];
                /* "(" opens the first row, ",(" the others; ")" closes each */
                const char *sep = j > 1 ? ", " : i > 0 ? ",(" : "(";
                len += (size_t)snprintf(sql + len, sqlsz - len, "%s$%zu%s", sep, np + 1,
                                        j == KEY_INSERT_PARAMS ? ")" : "");
            }
        }
        len += (size_t)snprintf(sql + len, sqlsz - len, " RETURNING rowid, id");
        lk_assert(len < sqlsz);
        e = query_raw(s, sql, false, true, row_batch_rowid, &b, "insert keys", (int)np, types, vals,
                      lens, fmts);
    }
    if (own && e == LK_OK)
        e = pg_commit(base);
    else if (own)
        pg_rollback(base);
    else if (e == LK_OK)
        e = exec_simple(s, "RELEASE SAVEPOINT lk_keys", "release savepoint");
    else if (e == LK_ERR_CONFLICT) /* a serialization failure leaves the transaction aborted */
        exec_simple(s, "ROLLBACK TO SAVEPOINT lk_keys", "rollback to savepoint");
    pthread_mutex_unlock(&s->mu);
    free(sql);
    free(fmts);
    free(lens);
    free(vals);
    free(types);
    free(rows);
    free(rlbuf);
    return e;
}

static enum lk_err pg_key_update(struct lk_store *base, const struct lk_key_row *k)
{
    char rl[LK_NAMEDRL_TEXT_MAX];

    return write_stmt(
        PG(base),
        "UPDATE keys SET name = $4, environment = $5, kind = $6, permissions = $7, meta = $8,"
        " hint = $9, enabled = $10, expires_at = $11, revoked_at = $12, rl_limit = $15,"
        " rl_window_s = $16, daily_spend_cap = $17, digest = $18, pepper_id = $19,"
        " prev_digest = $20, prev_pepper_id = $21, prev_until = $22, identity_id = $24,"
        " external_id = $25, credits_remaining = $26, credits_refill = $27,"
        " credits_refill_amount = $28, credits_refill_day = $29, credits_gen = $30,"
        " credits_set_at = $31, rate_limits = $32"
        " WHERE id = $2 AND workspace_id = $3",
        true, true, "update key", KEY_FMT, KEY_ARGS(k, rl_text(k, rl)));
}

static int row_key(PGresult *r, int i, void *arg)
{
    read_key(r, i, arg);
    return 1;
}

static enum lk_err pg_key_get(struct lk_store *base, const char *ws_id, const char *id,
                              struct lk_key_row *out)
{
    return read_stmt(PG(base), "SELECT " KEY_COLS " FROM keys WHERE workspace_id = $1 AND id = $2",
                     true, row_key, out, "get key", "ss", ws_id, id);
}

static enum lk_err pg_key_get_by_rowid(struct lk_store *base, int64_t rowid, struct lk_key_row *out)
{
    return read_stmt(PG(base), "SELECT " KEY_COLS " FROM keys WHERE rowid = $1", true, row_key, out,
                     "get key", "i", rowid);
}

struct key_cb {
    lk_key_row_cb cb;
    void *arg;
};

static int row_key_cb(PGresult *r, int i, void *arg)
{
    struct key_cb *c = arg;
    struct lk_key_row k;

    int stop;

    read_key_as(r, i, &k, true);
    stop = c->cb(c->arg, &k);
    free(k.rate_limits); /* the one part of a view that is the row's own */
    return stop;
}

static enum lk_err pg_key_list(struct lk_store *base, const char *ws_id,
                               const struct lk_key_filter *f, lk_key_row_cb cb, void *arg)
{
    static const char *const status_sql[] = {
        [LK_STATUS_ANY] = "",
        [LK_STATUS_ACTIVE] = " AND revoked_at IS NULL AND enabled = 1"
                             " AND (expires_at IS NULL OR expires_at > $4)",
        [LK_STATUS_DISABLED] = " AND revoked_at IS NULL AND enabled = 0"
                               " AND (expires_at IS NULL OR expires_at > $4)",
        [LK_STATUS_EXPIRED] = " AND revoked_at IS NULL AND expires_at <= $4",
        [LK_STATUS_REVOKED] = " AND revoked_at IS NOT NULL",
    };
    struct key_cb c = {cb, arg};
    char sql[1024];

    /* Filters vary, so the statement is built per call; its parts are constants
     * and every parameter is typed, used or not. */
    snprintf(sql, sizeof(sql),
             "SELECT " KEY_COLS " FROM keys WHERE workspace_id = $1 AND rowid < $2%s%s"
             " AND ($6 = '' OR identity_id = $6) ORDER BY rowid DESC LIMIT $5",
             f->env >= 0 ? " AND environment = $3" : "", status_sql[f->status]);
    return read_stmt(PG(base), sql, false, row_key_cb, &c, "list keys", "siiiis", ws_id,
                     f->before_rowid > 0 ? f->before_rowid : INT64_MAX, (int64_t)f->env, f->now,
                     (int64_t)f->limit, f->identity_id);
}

/* keys a page of key_scan: a million-key start holds one page, not the table */
#define SCAN_PAGE 5000

struct key_page {
    lk_key_row_cb cb;
    void *arg;
    int64_t last; /* the rowid of the page's last row */
    int rows;
    bool stopped;
};

static int row_key_page(PGresult *r, int i, void *arg)
{
    struct key_page *pg = arg;
    struct lk_key_row k;

    read_key_as(r, i, &k, true);
    pg->last = k.rowid;
    pg->rows++;
    pg->stopped = pg->cb(pg->arg, &k) != 0;
    free(k.rate_limits);
    return pg->stopped;
}

/* In rowid order, a page at a time after the last rowid read (keyset paging,
 * no transaction held open across pages): a key committed meanwhile may or
 * may not be in the scan, which the feed covers by reading the log from a head
 * taken before it (docs/internals/feed.md). */
static enum lk_err pg_key_scan(struct lk_store *base, enum lk_key_cols cols, int64_t after,
                               int64_t upto, lk_key_row_cb cb, void *arg)
{
    static const char *const sql[] = {
        [LK_KEY_COLS_ALL] = "SELECT " KEY_COLS " FROM keys WHERE rowid > $1 AND rowid <= $3"
                            " ORDER BY rowid LIMIT $2",
        [LK_KEY_COLS_CACHE] = "SELECT " KEY_COLS_CACHE " FROM keys WHERE rowid > $1"
                              " AND rowid <= $3 ORDER BY rowid LIMIT $2",
    };
    struct key_page pg = {cb, arg, after, 0, false};
    enum lk_err e;

    do {
        pg.rows = 0;
        e = read_stmt(PG(base), sql[cols == LK_KEY_COLS_CACHE], false, row_key_page, &pg,
                      "scan keys", "iii", pg.last, (int64_t)SCAN_PAGE, upto);
    } while (e == LK_OK && !pg.stopped && pg.rows == SCAN_PAGE);
    return e;
}

static enum lk_err pg_key_rowid_max(struct lk_store *base, int64_t *out)
{
    return read_stmt(PG(base), "SELECT coalesce(max(rowid), 0) FROM keys", false, row_count, out,
                     "find the last key", "");
}

/* An array literal ("{1,2,3}", "{\"ws_a\"}") built element by element. */
struct arr {
    char *p;
    size_t len, cap;
};

static void arr_put(struct arr *a, const char *s, size_t n)
{
    if (a->len + n + 2 > a->cap) {
        a->cap = (a->len + n + 2) * 2;
        a->p = realloc(a->p, a->cap);
        lk_assert(a->p != NULL);
    }
    memcpy(a->p + a->len, s, n);
    a->len += n;
    a->p[a->len] = '\0';
}

static void arr_sep(struct arr *a)
{
    arr_put(a, a->len == 0 ? "{" : ",", 1);
}

static void arr_i64(struct arr *a, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);

    arr_sep(a);
    arr_put(a, num, (size_t)n);
}

/* A text element, quoted: only a backslash and a double quote need escaping. */
static void arr_text(struct arr *a, const char *t)
{
    arr_sep(a);
    arr_put(a, "\"", 1);
    for (; *t; t++) {
        if (*t == '\\' || *t == '"')
            arr_put(a, "\\", 1);
        arr_put(a, t, 1);
    }
    arr_put(a, "\"", 1);
}

/* Closes the literal (an empty one is "{}"); the caller frees it. */
static char *arr_end(struct arr *a)
{
    if (a->len == 0)
        arr_put(a, "{", 1);
    arr_put(a, "}", 1);
    return a->p;
}

/* The rowids or times of t as an array literal: numbers, nothing to quote. */
static char *i64_array(const struct lk_touch *t, size_t n, bool at)
{
    struct arr a = {0};

    for (size_t i = 0; i < n; i++)
        arr_i64(&a, at ? t[i].at : t[i].rowid);
    return arr_end(&a);
}

/* One statement for the whole batch: a flush of many keys' last-used times is
 * one round trip, not one a key, so the connection it holds (which the feed's
 * reads of the log share) is free again at once. */
static enum lk_err pg_keys_touch(struct lk_store *base, const struct lk_touch *t, size_t n)
{
    /* not a change: the trigger ignores last_used_at; a key twice takes its latest */
    static const char sql[] =
        "UPDATE keys k SET last_used_at = t.at"
        " FROM (SELECT rowid, max(at) AS at FROM unnest($1::bigint[], $2::bigint[])"
        " AS u(rowid, at) GROUP BY rowid) t"
        " WHERE k.rowid = t.rowid AND (k.last_used_at IS NULL OR k.last_used_at < t.at)";
    struct pg_store *s = PG(base);
    enum lk_err e = LK_OK;
    struct params p = {0};
    char *rowids, *ats;

    if (n == 0)
        return LK_OK;
    rowids = i64_array(t, n, false);
    ats = i64_array(t, n, true);
    p.n = 2;
    p.types[0] = p.types[1] = 1016; /* int8[] */
    p.vals[0] = rowids;
    p.vals[1] = ats;
    pthread_mutex_lock(&s->mu);
    e = write_p(s, sql, false, NULL, "touch keys", &p);
    pthread_mutex_unlock(&s->mu);
    free(ats);
    free(rowids);
    return e;
}

/* --- audit ------------------------------------------------------------------------------- */

static enum lk_err pg_audit_insert(struct lk_store *base, const struct lk_audit_row *a)
{
    return write_stmt(PG(base),
                      "INSERT INTO audit_events(workspace_id, actor, action, target, address,"
                      " request_id, created_at, detail) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
                      false, false, "insert audit event", "ssssssis", a->workspace_id, a->actor,
                      a->action, a->target, a->address, a->request_id, a->created_at, a->detail);
}

static enum lk_err pg_audit_list(struct lk_store *base, const char *ws_id,
                                 const struct lk_audit_filter *f, int64_t before_id, int limit,
                                 lk_audit_cb cb, void *arg)
{
    static const struct lk_audit_filter none = {{0}};
    struct audit_cb ac = {cb, arg};

    if (f == NULL)
        f = &none;
    /* $4 actor, $5 action (with $6 = 1: a prefix, compared bytewise), created_at
     * in [$7, $8); '' and the widest times keep everything. */
    return read_stmt(PG(base),
                     "SELECT id, workspace_id, actor, action, target, address, request_id,"
                     " created_at, detail FROM audit_events WHERE workspace_id = $1 AND id < $2"
                     " AND ($4 = '' OR actor = $4)"
                     " AND ($5 = '' OR action = $5 OR"
                     " ($6 = 1 AND substr(action, 1, length($5)) = $5))"
                     " AND created_at >= $7 AND created_at < $8"
                     " ORDER BY id DESC LIMIT $3",
                     false, row_audit_cb, &ac, "list audit events", "siissiii", ws_id,
                     before_id > 0 ? before_id : INT64_MAX, (int64_t)limit, f->actor, f->action,
                     (int64_t)(f->action_prefix ? 1 : 0), f->from > 0 ? f->from : INT64_MIN,
                     f->to > 0 ? f->to : INT64_MAX);
}

struct string_cb {
    lk_string_cb cb;
    void *arg;
};

static int row_string(PGresult *r, int i, void *arg)
{
    struct string_cb *sc = arg;
    return sc->cb(sc->arg, PQgetisnull(r, i, 0) ? "" : PQgetvalue(r, i, 0));
}

static enum lk_err pg_permissions_in_use(struct lk_store *base, const char *ws_id, lk_string_cb cb,
                                         void *arg)
{
    struct string_cb sc = {cb, arg};
    /* permissions is a JSON array of strings (written by the service); byte
     * order, as SQLite's BINARY collation gives */
    return read_stmt(PG(base),
                     "SELECT DISTINCT (j.value #>> '{}') COLLATE \"C\" FROM keys k,"
                     " json_array_elements(k.permissions::json) j"
                     " WHERE k.workspace_id = $1 AND k.revoked_at IS NULL"
                     " AND json_typeof(j.value) = 'string' ORDER BY 1",
                     false, row_string, &sc, "list permissions in use", "s", ws_id);
}

/* --- people ------------------------------------------------------------------------------ */

static enum lk_err pg_user_insert(struct lk_store *base, const struct lk_user_row *u)
{
    return write_stmt(PG(base),
                      "INSERT INTO users(id, email, password_hash, created_at)"
                      " VALUES($1, $2, $3, $4)",
                      true, false, "insert user", "sssi", u->id, u->email, u->password_hash,
                      u->created_at);
}

static enum lk_err pg_user_by_email(struct lk_store *base, const char *email,
                                    struct lk_user_row *out)
{
    return read_stmt(PG(base),
                     "SELECT id, email, password_hash, created_at FROM users"
                     " WHERE lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")",
                     true, row_user, out, "get user", "s", email);
}

static enum lk_err pg_user_get(struct lk_store *base, const char *id, struct lk_user_row *out)
{
    return read_stmt(PG(base),
                     "SELECT id, email, password_hash, created_at FROM users WHERE id = $1", true,
                     row_user, out, "get user", "s", id);
}

static enum lk_err pg_user_scan(struct lk_store *base, lk_user_row_cb cb, void *arg)
{
    struct user_cb c = {cb, arg};
    return scan_stmt(PG(base), "SELECT id, email, password_hash, created_at FROM users ORDER BY id",
                     row_user_cb, &c, "scan users");
}

static enum lk_err pg_member_put(struct lk_store *base, const struct lk_member_row *m)
{
    return write_stmt(PG(base),
                      "INSERT INTO members(workspace_id, user_id, role, created_at)"
                      " VALUES($1, $2, $3, $4) ON CONFLICT(workspace_id, user_id)"
                      " DO UPDATE SET role = excluded.role",
                      true, false, "put member", "ssii", m->workspace_id, m->user_id,
                      (int64_t)m->role, m->created_at);
}

static enum lk_err pg_member_get(struct lk_store *base, const char *ws_id, const char *user_id,
                                 struct lk_member_row *out)
{
    return read_stmt(PG(base),
                     "SELECT " MEMBER_COLS " FROM members m JOIN users u ON u.id = m.user_id"
                     " WHERE m.workspace_id = $1 AND m.user_id = $2",
                     true, row_member, out, "get member", "ss", ws_id, user_id);
}

static enum lk_err pg_member_delete(struct lk_store *base, const char *ws_id, const char *user_id)
{
    return write_stmt(PG(base), "DELETE FROM members WHERE workspace_id = $1 AND user_id = $2",
                      false, true, "delete member", "ss", ws_id, user_id);
}

static enum lk_err pg_member_list(struct lk_store *base, const char *ws_id, lk_member_row_cb cb,
                                  void *arg)
{
    struct member_cb mc = {cb, arg};
    /* as SQLite orders them: its email column compares NOCASE */
    return read_stmt(PG(base),
                     "SELECT " MEMBER_COLS " FROM members m JOIN users u ON u.id = m.user_id"
                     " WHERE m.workspace_id = $1"
                     " ORDER BY m.created_at, lower(u.email COLLATE \"C\")",
                     false, row_member_cb, &mc, "list members", "s", ws_id);
}

static enum lk_err pg_member_list_user(struct lk_store *base, const char *user_id,
                                       lk_member_row_cb cb, void *arg)
{
    struct member_cb mc = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT " MEMBER_COLS " FROM members m JOIN users u ON u.id = m.user_id"
                     " WHERE m.user_id = $1 ORDER BY m.created_at, m.workspace_id COLLATE \"C\"",
                     false, row_member_cb, &mc, "list memberships", "s", user_id);
}

static enum lk_err pg_member_count(struct lk_store *base, const char *ws_id, enum lk_role role,
                                   int64_t *out)
{
    *out = 0;
    return read_stmt(PG(base), "SELECT count(*) FROM members WHERE workspace_id = $1 AND role = $2",
                     false, row_count, out, "count members", "si", ws_id, (int64_t)role);
}

static enum lk_err pg_session_insert(struct lk_store *base, const struct lk_session_row *x)
{
    return write_stmt(PG(base),
                      "INSERT INTO sessions(digest, user_id, created_at, expires_at)"
                      " VALUES($1, $2, $3, $4)",
                      true, false, "insert session", "dsii", x->digest, x->user_id, x->created_at,
                      x->expires_at);
}

static enum lk_err pg_session_get(struct lk_store *base, const uint8_t digest[LK_DIGEST_LEN],
                                  struct lk_session_row *out)
{
    return read_stmt(PG(base),
                     "SELECT digest, user_id, created_at, expires_at FROM sessions"
                     " WHERE digest = $1",
                     true, row_session, out, "get session", "d", digest);
}

static enum lk_err pg_session_delete(struct lk_store *base, const uint8_t digest[LK_DIGEST_LEN])
{
    return write_stmt(PG(base), "DELETE FROM sessions WHERE digest = $1", false, false,
                      "delete session", "d", digest);
}

static enum lk_err pg_session_scan(struct lk_store *base, lk_session_row_cb cb, void *arg)
{
    struct session_cb c = {cb, arg};
    return scan_stmt(PG(base), "SELECT digest, user_id, created_at, expires_at FROM sessions",
                     row_session_cb, &c, "scan sessions");
}

/* --- limits and money ------------------------------------------------------------------- */

static enum lk_err pg_ws_set_quota(struct lk_store *base, const char *ws_id, int64_t quota,
                                   int64_t test_quota)
{
    return write_stmt(PG(base), "UPDATE workspaces SET quota = $2, test_quota = $3 WHERE id = $1",
                      false, true, "set quota", "snn", ws_id, quota, test_quota);
}

static enum lk_err pg_credits_get(struct lk_store *base, const char *ws_id,
                                  struct lk_credit_account *out)
{
    enum lk_err e = read_stmt(PG(base),
                              "SELECT workspace_id, " CREDIT_COLS " FROM credit_accounts"
                              " WHERE workspace_id = $1",
                              true, row_credit, out, "get credits", "s", ws_id);
    if (e == LK_ERR_NOT_FOUND) {
        memset(out, 0, sizeof(*out));
        snprintf(out->workspace_id, sizeof(out->workspace_id), "%s", ws_id);
        e = LK_OK;
    }
    return e;
}

static enum lk_err pg_credits_move(struct lk_store *base, const char *ws_id, int64_t d_balance,
                                   int64_t d_leased, int64_t d_spent, int64_t d_topped_up)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu); /* recursive: keeps the two statements together */
    e = write_stmt(s,
                   "INSERT INTO credit_accounts(workspace_id) VALUES($1)"
                   " ON CONFLICT(workspace_id) DO NOTHING",
                   true, false, "open credit account", "s", ws_id);
    if (e == LK_OK)
        e = write_stmt(s,
                       "UPDATE credit_accounts SET balance = balance + $2, leased = leased + $3,"
                       " spent = spent + $4, topped_up = topped_up + $5 WHERE workspace_id = $1"
                       " AND balance + $2 >= 0 AND leased + $3 >= 0"
                       " AND topped_up + $5 <= 9007199254740991", /* 2^53 - 1: exact in JSON */
                       true, true, "move credits", "siiii", ws_id, d_balance, d_leased, d_spent,
                       d_topped_up);
    pthread_mutex_unlock(&s->mu);
    return e == LK_ERR_NOT_FOUND ? LK_ERR_CONFLICT : e;
}

static enum lk_err pg_credits_scan(struct lk_store *base, lk_credit_cb cb, void *arg)
{
    struct credit_cb c = {cb, arg};
    return read_stmt(PG(base), "SELECT workspace_id, " CREDIT_COLS " FROM credit_accounts", false,
                     row_credit_cb, &c, "scan credits", "");
}

static enum lk_err pg_ledger_add(struct lk_store *base, struct lk_ledger_row *r)
{
    return insert_returning(
        PG(base),
        "INSERT INTO credit_ledger(workspace_id, kind, amount, period, actor, note, created_at)"
        " VALUES($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT(workspace_id, kind, period) WHERE period IS NOT NULL"
        " DO UPDATE SET amount = credit_ledger.amount + excluded.amount RETURNING id",
        row_id, &r->id, "add ledger entry", "ssinssi", r->workspace_id, r->kind, r->amount,
        r->period > 0 ? r->period : (int64_t)-1, r->actor, r->note, r->created_at);
}

static enum lk_err pg_ledger_list(struct lk_store *base, const char *ws_id, int64_t before_id,
                                  int limit, lk_ledger_cb cb, void *arg)
{
    struct ledger_cb c = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT id, workspace_id, kind, amount, period, actor, note, created_at"
                     " FROM credit_ledger WHERE workspace_id = $1 AND id < $2"
                     " ORDER BY id DESC LIMIT $3",
                     false, row_ledger_cb, &c, "list ledger", "sii", ws_id,
                     before_id > 0 ? before_id : INT64_MAX, (int64_t)limit);
}

static enum lk_err pg_counter_add(struct lk_store *base, enum lk_counter_kind kind,
                                  const struct lk_counter_row *r)
{
    struct pg_store *s = PG(base);

    switch (kind) {
    case LK_CTR_QUOTA:
        return write_stmt(s,
                          "INSERT INTO quota_days(workspace_id, day, live, test)"
                          " VALUES($1, $2, $3, $4) ON CONFLICT(workspace_id, day) DO UPDATE"
                          " SET live = quota_days.live + excluded.live,"
                          " test = quota_days.test + excluded.test",
                          false, false, "add quota", "siii", r->workspace_id, r->period, r->n,
                          r->n_test);
    case LK_CTR_SPEND:
        return write_stmt(s,
                          "INSERT INTO key_spend(key_rowid, day, spent) VALUES($1, $2, $3)"
                          " ON CONFLICT(key_rowid, day) DO UPDATE"
                          " SET spent = key_spend.spent + excluded.spent",
                          false, false, "add key spend", "iii", r->key_rowid, r->period, r->n);
    case LK_CTR_USAGE:
        return write_stmt(s,
                          "INSERT INTO usage_hours(key_rowid, hour, code, count)"
                          " VALUES($1, $2, $3, $4) ON CONFLICT(key_rowid, hour, code) DO UPDATE"
                          " SET count = usage_hours.count + excluded.count",
                          false, false, "add usage", "iiii", r->key_rowid, r->period,
                          (int64_t)r->code, r->n);
    }
    return LK_ERR_INTERNAL;
}

#define COUNTER_ARRAYS 4 /* the most columns a kind has: usage's key, hour, code, count */

/* One kind's rows of a batch, a statement for all: rows for the same counter are
 * summed first (an upsert may not touch a row twice in one statement), and
 * written in key order so two nodes' flushes lock shared rows in one order. */
static enum lk_err counters_add_kind(struct pg_store *s, enum lk_counter_kind kind,
                                     const enum lk_counter_kind *kinds,
                                     const struct lk_counter_row *rows, size_t n)
{
    static const char *const sql[] = {
        [LK_CTR_QUOTA] = "INSERT INTO quota_days(workspace_id, day, live, test)"
                         " SELECT w, d, sum(l)::bigint, sum(t)::bigint FROM"
                         " unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])"
                         " AS u(w, d, l, t) GROUP BY w, d ORDER BY w, d"
                         " ON CONFLICT(workspace_id, day) DO UPDATE"
                         " SET live = quota_days.live + excluded.live,"
                         " test = quota_days.test + excluded.test",
        [LK_CTR_SPEND] = "INSERT INTO key_spend(key_rowid, day, spent)"
                         " SELECT r, d, sum(v)::bigint FROM"
                         " unnest($1::bigint[], $2::bigint[], $3::bigint[])"
                         " AS u(r, d, v) GROUP BY r, d ORDER BY r, d"
                         " ON CONFLICT(key_rowid, day) DO UPDATE"
                         " SET spent = key_spend.spent + excluded.spent",
        [LK_CTR_USAGE] = "INSERT INTO usage_hours(key_rowid, hour, code, count)"
                         " SELECT r, h, c, sum(v)::bigint FROM"
                         " unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])"
                         " AS u(r, h, c, v) GROUP BY r, h, c ORDER BY r, h, c"
                         " ON CONFLICT(key_rowid, hour, code) DO UPDATE"
                         " SET count = usage_hours.count + excluded.count",
    };
    struct arr a[COUNTER_ARRAYS] = {{0}};
    struct params p = {0};
    size_t used = 0;
    enum lk_err e;

    for (size_t i = 0; i < n; i++) {
        const struct lk_counter_row *r = &rows[i];
        if (kinds[i] != kind)
            continue;
        used++;
        if (kind == LK_CTR_QUOTA)
            arr_text(&a[0], r->workspace_id);
        else
            arr_i64(&a[0], r->key_rowid);
        arr_i64(&a[1], r->period);
        if (kind == LK_CTR_USAGE)
            arr_i64(&a[2], r->code);
        arr_i64(&a[kind == LK_CTR_USAGE ? 3 : 2], r->n);
        if (kind == LK_CTR_QUOTA)
            arr_i64(&a[3], r->n_test);
    }
    p.n = kind == LK_CTR_SPEND ? 3 : 4;
    for (int i = 0; i < p.n; i++) {
        p.types[i] = i == 0 && kind == LK_CTR_QUOTA ? 1009 : 1016; /* text[], int8[] */
        p.vals[i] = arr_end(&a[i]);
    }
    e = LK_OK;
    if (used > 0) {
        pthread_mutex_lock(&s->mu);
        e = write_p(s, sql[kind], false, NULL, "add counters", &p);
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; i < COUNTER_ARRAYS; i++)
        free(a[i].p);
    return e;
}

/* A flush of a thousand keys is three round trips, not a thousand. */
static enum lk_err pg_counters_add(struct lk_store *base, const enum lk_counter_kind *kinds,
                                   const struct lk_counter_row *rows, size_t n)
{
    static const enum lk_counter_kind order[] = {LK_CTR_QUOTA, LK_CTR_SPEND, LK_CTR_USAGE};
    enum lk_err e = LK_OK;

    for (size_t i = 0; i < LK_ARRAY_LEN(order) && e == LK_OK; i++)
        e = counters_add_kind(PG(base), order[i], kinds, rows, n);
    return e;
}

static enum lk_err pg_counter_raise(struct lk_store *base, enum lk_counter_kind kind,
                                    const struct lk_counter_row *r)
{
    struct pg_store *s = PG(base);

    switch (kind) {
    case LK_CTR_QUOTA:
        return write_stmt(s,
                          "INSERT INTO quota_days(workspace_id, day, live, test)"
                          " VALUES($1, $2, $3, $4) ON CONFLICT(workspace_id, day) DO UPDATE"
                          " SET live = greatest(quota_days.live, excluded.live),"
                          " test = greatest(quota_days.test, excluded.test)",
                          false, false, "raise quota", "siii", r->workspace_id, r->period, r->n,
                          r->n_test);
    case LK_CTR_SPEND:
        return write_stmt(s,
                          "INSERT INTO key_spend(key_rowid, day, spent) VALUES($1, $2, $3)"
                          " ON CONFLICT(key_rowid, day) DO UPDATE"
                          " SET spent = greatest(key_spend.spent, excluded.spent)",
                          false, false, "raise key spend", "iii", r->key_rowid, r->period, r->n);
    case LK_CTR_USAGE:
        return write_stmt(s,
                          "INSERT INTO usage_hours(key_rowid, hour, code, count)"
                          " VALUES($1, $2, $3, $4) ON CONFLICT(key_rowid, hour, code) DO UPDATE"
                          " SET count = greatest(usage_hours.count, excluded.count)",
                          false, false, "raise usage", "iiii", r->key_rowid, r->period,
                          (int64_t)r->code, r->n);
    }
    return LK_ERR_INTERNAL;
}

static enum lk_err pg_counter_scan(struct lk_store *base, enum lk_counter_kind kind,
                                   int64_t key_rowid, int64_t from, int64_t to, lk_counter_cb cb,
                                   void *arg)
{
    /* one shape (row_counter_cb) and one binding (key_rowid, from, to) for all */
    static const char *const sql[] = {
        [LK_CTR_QUOTA] = "SELECT workspace_id, 0, day, 0, live, test FROM quota_days"
                         " WHERE day >= $2 AND day < $3",
        [LK_CTR_SPEND] = "SELECT '', key_rowid, day, 0, spent, 0 FROM key_spend"
                         " WHERE day >= $2 AND day < $3",
        [LK_CTR_USAGE] = "SELECT '', key_rowid, hour, code, count, 0 FROM usage_hours"
                         " WHERE key_rowid = $1 AND hour >= $2 AND hour < $3"
                         " ORDER BY hour, code",
    };
    struct counter_cb c = {cb, arg};
    const char *q = kind == LK_CTR_USAGE && key_rowid == 0
                        ? "SELECT '', key_rowid, hour, code, count, 0 FROM usage_hours"
                          " WHERE hour >= $2 AND hour < $3"
                        : sql[kind];
    return read_stmt(PG(base), q, false, row_counter_cb, &c, "scan counters", "iii", key_rowid,
                     from, to);
}

static enum lk_err pg_usage_scan_ws(struct lk_store *base, const char *ws_id, int64_t from,
                                    int64_t to, lk_counter_cb cb, void *arg)
{
    struct counter_cb c = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT '', u.key_rowid, u.hour, u.code, u.count, 0 FROM usage_hours u"
                     " JOIN keys k ON k.rowid = u.key_rowid"
                     " WHERE k.workspace_id = $1 AND u.hour >= $2 AND u.hour < $3",
                     false, row_counter_cb, &c, "scan workspace usage", "sii", ws_id, from, to);
}

static enum lk_err pg_counter_prune(struct lk_store *base, int64_t usage_before, int64_t day_before)
{
    struct pg_store *s = PG(base);
    enum lk_err e = write_stmt(s, "DELETE FROM usage_hours WHERE hour < $1", false, false,
                               "prune usage", "i", usage_before);

    if (e == LK_OK)
        e = write_stmt(s, "DELETE FROM quota_days WHERE day < $1", false, false, "prune quota", "i",
                       day_before);
    if (e == LK_OK)
        e = write_stmt(s, "DELETE FROM key_spend WHERE day < $1", false, false, "prune spend", "i",
                       day_before);
    return e;
}

/* --- invitations ------------------------------------------------------------------------- */

static enum lk_err pg_invitation_insert(struct lk_store *base, const struct lk_invitation_row *x)
{
    return write_stmt(PG(base),
                      "INSERT INTO invitations(" INVITE_COLS ") VALUES($1, $2, $3, $4, $5, $6,"
                      " $7, $8)",
                      true, false, "insert invitation", "sssidsii", x->id, x->workspace_id,
                      x->email, (int64_t)x->role, x->digest, x->invited_by, x->created_at,
                      x->expires_at);
}

static enum lk_err pg_invitation_by_digest(struct lk_store *base,
                                           const uint8_t digest[LK_DIGEST_LEN],
                                           struct lk_invitation_row *out)
{
    return read_stmt(PG(base), "SELECT " INVITE_COLS " FROM invitations WHERE digest = $1", true,
                     row_invitation, out, "get invitation", "d", digest);
}

static enum lk_err pg_invitation_delete(struct lk_store *base, const char *ws_id, const char *id)
{
    return write_stmt(PG(base), "DELETE FROM invitations WHERE workspace_id = $1 AND id = $2",
                      false, true, "delete invitation", "ss", ws_id, id);
}

static enum lk_err pg_invitation_list(struct lk_store *base, const char *ws_id, int64_t now,
                                      lk_invitation_cb cb, void *arg)
{
    struct invitation_cb ic = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT " INVITE_COLS " FROM invitations WHERE workspace_id = $1"
                     " AND expires_at > $2 ORDER BY created_at DESC, id COLLATE \"C\"",
                     false, row_invitation_cb, &ic, "list invitations", "si", ws_id, now);
}

static enum lk_err pg_invitation_prune(struct lk_store *base, const char *ws_id, int64_t now)
{
    return write_stmt(PG(base),
                      "DELETE FROM invitations WHERE workspace_id = $1 AND expires_at <= $2", false,
                      false, "prune invitations", "si", ws_id, now);
}

static enum lk_err pg_invitation_count(struct lk_store *base, const char *ws_id, int64_t now,
                                       int64_t *out)
{
    *out = 0;
    return read_stmt(PG(base),
                     "SELECT count(*) FROM invitations WHERE workspace_id = $1 AND expires_at > $2",
                     false, row_count, out, "count invitations", "si", ws_id, now);
}

static enum lk_err pg_invitation_scan(struct lk_store *base, lk_invitation_cb cb, void *arg)
{
    struct invitation_cb ic = {cb, arg};
    return scan_stmt(PG(base), "SELECT " INVITE_COLS " FROM invitations", row_invitation_cb, &ic,
                     "scan invitations");
}

/* --- the change log ------------------------------------------------------------------------ */

static enum lk_err pg_changes_since(struct lk_store *base, int64_t after, int limit,
                                    lk_change_cb cb, void *arg)
{
    struct change_cb c = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT " CHANGE_COLS " FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                     false, row_change_cb, &c, "read changes", "ii", after, (int64_t)limit);
}

static enum lk_err pg_changes_head(struct lk_store *base, int64_t *out)
{
    *out = 0;
    return read_stmt(PG(base), "SELECT COALESCE(max(seq), 0) FROM changes", false, row_count, out,
                     "read change head", "");
}

static enum lk_err pg_changes_prune(struct lk_store *base, int64_t before_at)
{
    return write_stmt(PG(base),
                      "DELETE FROM changes WHERE at < $1"
                      " AND seq < (SELECT max(seq) FROM changes)",
                      false, false, "prune changes", "i", before_at);
}

/* The listening connection; caller holds s->lmu. */
static enum lk_err ensure_listener(struct pg_store *s, bool *fresh)
{
    PGresult *r;

    *fresh = false;
    if (s->lconn != NULL && PQstatus(s->lconn) == CONNECTION_OK)
        return LK_OK;
    if (s->lconn != NULL) {
        PQfinish(s->lconn);
        s->lconn = NULL;
        s->lretry_at_ns = 0;
    }
    if (now_ns() < s->lretry_at_ns)
        return LK_ERR_STORAGE_UNAVAILABLE;
    if ((s->lconn = connect_db(s)) != NULL) {
        r = PQexec(s->lconn, "LISTEN latchkey_changes");
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            s->lbackoff_ms = BACKOFF_MIN_MS;
            *fresh = true;
            return LK_OK;
        }
        PQclear(r);
        log_conn_error(s, s->lconn, "cannot listen");
        PQfinish(s->lconn);
        s->lconn = NULL;
    }
    s->lretry_at_ns = now_ns() + (uint64_t)s->lbackoff_ms * 1000000u;
    s->lbackoff_ms = s->lbackoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->lbackoff_ms * 2;
    return LK_ERR_STORAGE_UNAVAILABLE;
}

static bool drain_notifies(PGconn *c)
{
    PGnotify *n;
    bool any = false;

    while ((n = PQnotifies(c)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

/* Waits for a NOTIFY from any node's commit. A notification may be missed (a
 * reconnect): the caller reads the log after every wake-up and every timeout,
 * so nothing is lost. */
static enum lk_err pg_changes_wait(struct lk_store *base, int timeout_ms)
{
    struct pg_store *s = PG(base);
    enum lk_err e = LK_OK;
    bool fresh;

    if (timeout_ms < 0)
        timeout_ms = 0;
    pthread_mutex_lock(&s->lmu);
    if ((e = ensure_listener(s, &fresh)) != LK_OK) {
        pthread_mutex_unlock(&s->lmu);
        /* not a busy loop for a caller that waits again at once */
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return e;
    }
    if (fresh || drain_notifies(s->lconn))
        goto out; /* what came while not listening is in the log */
    struct pollfd pfd = {.fd = PQsocket(s->lconn), .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc > 0) {
        if (!PQconsumeInput(s->lconn) || PQstatus(s->lconn) != CONNECTION_OK) {
            log_conn_error(s, s->lconn, "lost the change notifications");
            PQfinish(s->lconn);
            s->lconn = NULL;
            e = LK_ERR_STORAGE_UNAVAILABLE;
            goto out;
        }
        drain_notifies(s->lconn);
    } else if (rc < 0 && errno != EINTR) {
        e = LK_ERR_STORAGE_UNAVAILABLE;
    }
out:
    pthread_mutex_unlock(&s->lmu);
    return e;
}

/* --- nodes and leases ------------------------------------------------------------------------ */

static enum lk_err pg_node_put(struct lk_store *base, const struct lk_node_row *n)
{
    return write_stmt(PG(base),
                      "INSERT INTO nodes(id, name, started_at, heartbeat_at) VALUES($1, $2, $3, $4)"
                      " ON CONFLICT(id) DO UPDATE SET name = excluded.name,"
                      " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                      true, false, "put node", "ssii", n->id, n->name, n->started_at,
                      n->heartbeat_at);
}

static enum lk_err pg_node_heartbeat(struct lk_store *base, const char *id, int64_t now)
{
    return write_stmt(PG(base), "UPDATE nodes SET heartbeat_at = $2 WHERE id = $1", false, true,
                      "node heartbeat", "si", id, now);
}

static enum lk_err pg_node_list(struct lk_store *base, lk_node_cb cb, void *arg)
{
    struct node_cb c = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT id, name, started_at, heartbeat_at FROM nodes"
                     " ORDER BY started_at, id COLLATE \"C\"",
                     false, row_node_cb, &c, "list nodes", "");
}

static enum lk_err pg_node_delete(struct lk_store *base, const char *id)
{
    return write_stmt(PG(base), "DELETE FROM nodes WHERE id = $1", false, false, "delete node", "s",
                      id);
}

static enum lk_err pg_lease_move(struct lk_store *base, const char *ws_id, const char *node_id,
                                 int64_t d)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    /* Two statements, as credits_move: a CHECK refuses a negative row before
     * ON CONFLICT could turn the insert into an update. */
    pthread_mutex_lock(&s->mu);
    e = write_stmt(s,
                   "INSERT INTO credit_leases(workspace_id, node_id, amount) VALUES($1, $2, 0)"
                   " ON CONFLICT(workspace_id, node_id) DO NOTHING",
                   true, false, "open lease", "ss", ws_id, node_id);
    if (e == LK_OK)
        e = write_stmt(s,
                       "UPDATE credit_leases SET amount = amount + $3"
                       " WHERE workspace_id = $1 AND node_id = $2 AND amount + $3 >= 0",
                       true, true, "move lease", "ssi", ws_id, node_id, d);
    if (e == LK_OK) /* an empty lease is no row, as on SQLite */
        e = write_stmt(s,
                       "DELETE FROM credit_leases"
                       " WHERE workspace_id = $1 AND node_id = $2 AND amount = 0",
                       true, false, "tidy lease", "ss", ws_id, node_id);
    pthread_mutex_unlock(&s->mu);
    return e == LK_ERR_NOT_FOUND ? LK_ERR_CONFLICT : e;
}

static enum lk_err pg_lease_mark(struct lk_store *base, const char *ws_id, const char *node_id,
                                 int64_t op)
{
    return write_stmt(PG(base),
                      "UPDATE credit_leases SET op = $3 WHERE workspace_id = $1 AND node_id = $2",
                      true, true, "mark lease", "ssi", ws_id, node_id, op);
}

static enum lk_err pg_lease_scan(struct lk_store *base, const char *node_id, lk_lease_cb cb,
                                 void *arg)
{
    struct lease_cb c = {cb, arg};
    return read_stmt(PG(base),
                     "SELECT workspace_id, node_id, amount, op FROM credit_leases"
                     " WHERE ($1::text IS NULL OR node_id = $1) AND amount <> 0"
                     " ORDER BY node_id COLLATE \"C\", workspace_id COLLATE \"C\"",
                     false, row_lease_cb, &c, "scan leases", "s", node_id);
}

/* One op a line. */
/* Copies (latchkey migrate): a workspace with its own number, and the ledger and
 * audit events whole, in id order. */
static enum lk_err pg_ws_import(struct lk_store *base, const struct lk_ws_row *w)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    if (w->number <= 0)
        return LK_ERR_INVALID_REQUEST;
    pthread_mutex_lock(&s->mu); /* recursive: keeps the two statements together */
    e = write_stmt(s,
                   "INSERT INTO workspaces(number, id, name, key_prefix, key_format, is_operator,"
                   " created_at, quota, test_quota) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                   true, false, "import workspace", "isssiiinn", w->number, w->id, w->name,
                   w->key_prefix, (int64_t)w->key_format, (int64_t)w->is_operator, w->created_at,
                   w->quota, w->test_quota);
    if (e == LK_OK) /* numbers given later come after the highest */
        e = write_stmt(s,
                       "SELECT setval(pg_get_serial_sequence('workspaces', 'number'),"
                       " GREATEST((SELECT max(number) FROM workspaces), $1))",
                       false, false, "import workspace", "i", w->number);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err pg_ledger_scan(struct lk_store *base, lk_ledger_cb cb, void *arg)
{
    struct ledger_cb c = {cb, arg};

    return scan_stmt(PG(base),
                     "SELECT id, workspace_id, kind, amount, period, actor, note, created_at"
                     " FROM credit_ledger ORDER BY id",
                     row_ledger_cb, &c, "scan ledger");
}

static enum lk_err pg_audit_scan(struct lk_store *base, lk_audit_cb cb, void *arg)
{
    struct audit_cb ac = {cb, arg};

    return scan_stmt(PG(base),
                     "SELECT id, workspace_id, actor, action, target, address, request_id,"
                     " created_at, detail FROM audit_events ORDER BY id",
                     row_audit_cb, &ac, "scan audit events");
}

/* --- webhooks (as store_sqlite.c's) ---------------------------------------------------- */

#define HOOK_EP_COLS "id, workspace_id, url, events, description, salt, created_at"
#define HOOK_MATCH "(strpos(events, ',' || $3 || ',') > 0 OR strpos(events, ',*,') > 0)"

#define W struct lk_hook_endpoint_row
ROW_READERS(hook_ep, W, lk_hook_endpoint_cb, TEXT(W, id), TEXT(W, workspace_id), TEXT(W, url),
            TEXT(W, events), TEXT(W, description), TEXT(W, salt), I64(W, created_at))
#undef W
#define T struct lk_hook_attempt_row
ROW_READERS(hook_attempt, T, lk_hook_attempt_cb, I64(T, id), TEXT(T, event_id),
            TEXT(T, endpoint_id), TEXT(T, workspace_id), TEXT(T, type), INT(T, attempt),
            INT(T, status), TEXT(T, error), I64(T, started_ms), I64(T, finished_ms))
#undef T
#define J struct lk_hook_job
static const struct col hook_job_cols[] = {
    TEXT(J, ev.id), TEXT(J, ev.workspace_id), TEXT(J, ev.type), TEXT(J, ev.payload),
    I64(J, ev.created_at), TEXT(J, ep.id), TEXT(J, ep.workspace_id), TEXT(J, ep.url),
    TEXT(J, ep.events), TEXT(J, ep.description), TEXT(J, ep.salt), I64(J, ep.created_at),
    INT(J, attempt)};
#undef J

static enum lk_err pg_hook_endpoint_insert(struct lk_store *base,
                                           const struct lk_hook_endpoint_row *r)
{
    return write_stmt(PG(base),
                      "INSERT INTO webhook_endpoints(" HOOK_EP_COLS ")"
                      " VALUES($1, $2, $3, $4, $5, $6, $7)",
                      true, false, "insert webhook endpoint", "ssssssi", r->id, r->workspace_id,
                      r->url, r->events, r->description, r->salt, r->created_at);
}

static enum lk_err pg_hook_endpoint_list(struct lk_store *base, const char *ws_id,
                                         lk_hook_endpoint_cb cb, void *arg)
{
    struct hook_ep_cb c = {cb, arg};

    return read_stmt(PG(base),
                     "SELECT " HOOK_EP_COLS " FROM webhook_endpoints WHERE workspace_id = $1"
                     " ORDER BY created_at, id COLLATE \"C\"",
                     false, row_hook_ep_cb, &c, "list webhook endpoints", "s", ws_id);
}

static enum lk_err pg_hook_endpoint_delete(struct lk_store *base, const char *ws_id,
                                           const char *id)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s, "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2", false,
                   true, "delete webhook endpoint", "ss", ws_id, id);
    if (e == LK_OK)
        e = write_stmt(s, "DELETE FROM webhook_deliveries WHERE endpoint_id = $1", false, false,
                       "delete webhook deliveries", "s", id);
    if (e == LK_OK)
        e = write_stmt(s, "DELETE FROM webhook_attempts WHERE endpoint_id = $1", false, false,
                       "delete webhook attempts", "s", id);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err pg_hook_event_insert(struct lk_store *base, const struct lk_hook_event_row *r,
                                        int64_t due_ms, bool *inserted)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s,
                   "INSERT INTO webhook_events(id, workspace_id, type, payload, created_at)"
                   " SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM webhook_endpoints"
                   " WHERE workspace_id = $2 AND " HOOK_MATCH ") ON CONFLICT(id) DO NOTHING",
                   false, true, "insert webhook event", "ssssi", r->id, r->workspace_id, r->type,
                   r->payload, r->created_at);
    *inserted = e == LK_OK;
    if (e == LK_ERR_NOT_FOUND)
        e = LK_OK;
    if (*inserted)
        e = write_stmt(s,
                       "INSERT INTO webhook_deliveries(event_id, endpoint_id, next_ms)"
                       " SELECT $1, id, $4 FROM webhook_endpoints WHERE workspace_id = $2 AND "
                       HOOK_MATCH " ON CONFLICT DO NOTHING",
                       false, false, "queue webhook deliveries", "sssi", r->id, r->workspace_id,
                       r->type, due_ms);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int row_hook_job(PGresult *r, int i, void *arg)
{
    struct lk_hook_job *x = lk__hook_jobs_add(arg);

    read_row(r, i, hook_job_cols, LK_ARRAY_LEN(hook_job_cols), x, sizeof(*x));
    x->attempt += 1;
    return 0;
}

/* Round-robin between workspaces and a workspace's endpoints, at most 4 of a
 * workspace in flight, as the SQLite store does (ST_HOOK_DUE there). */
static enum lk_err pg_hook_due(struct lk_store *base, int64_t now_ms, int limit,
                               struct lk__hook_jobs *j)
{
    return read_stmt(PG(base),
                     "SELECT v.id, v.workspace_id, v.type, v.payload, v.created_at, e.id, "
                     "e.workspace_id, e.url, e.events, e.description, e.salt, e.created_at, "
                     "q.attempts FROM (SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.ws "
                     "ORDER BY p.busy DESC, p.ep_rank, p.next_ms) AS ws_rank FROM (SELECT d.event_id, "
                     "d.endpoint_id, d.attempts, d.next_ms, e.workspace_id AS ws, "
                     "CASE WHEN d.lease_until_ms > $1 THEN 1 ELSE 0 END AS busy, "
                     "ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY "
                     "CASE WHEN d.lease_until_ms > $1 THEN 1 ELSE 0 END DESC, d.next_ms) AS ep_rank "
                     "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
                     "WHERE d.state = 0 AND d.next_ms <= $1) p) q "
                     "JOIN webhook_events v ON v.id = q.event_id "
                     "JOIN webhook_endpoints e ON e.id = q.endpoint_id "
                     "WHERE q.busy = 0 AND q.ws_rank <= 4 "
                     "ORDER BY q.ws_rank, q.next_ms, q.event_id, q.endpoint_id LIMIT $2",
                     false, row_hook_job, j, "find due webhook deliveries", "ii", now_ms,
                     (int64_t)limit);
}

static enum lk_err pg_hook_lease(struct lk_store *base, const char *event_id,
                                 const char *endpoint_id, const char *node_id, int64_t now_ms,
                                 int64_t lease_until_ms)
{
    return write_stmt(PG(base),
                      "UPDATE webhook_deliveries SET lease_until_ms = $3, lease_node = $4"
                      " WHERE event_id = $1 AND endpoint_id = $2 AND state = 0"
                      " AND lease_until_ms <= $5",
                      false, true, "lease webhook delivery", "ssisi", event_id, endpoint_id,
                      lease_until_ms, node_id, now_ms);
}

static enum lk_err pg_hook_attempt_done(struct lk_store *base, const char *node_id,
                                        const struct lk_hook_attempt_row *a,
                                        enum lk_hook_state state, int64_t next_ms)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s,
                   "INSERT INTO webhook_attempts(event_id, endpoint_id, workspace_id, type,"
                   " attempt, status, error, started_ms, finished_ms)"
                   " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                   false, false, "log webhook attempt", "ssssiisii", a->event_id, a->endpoint_id,
                   a->workspace_id, a->type, (int64_t)a->attempt, (int64_t)a->status, a->error,
                   a->started_ms, a->finished_ms);
    if (e == LK_OK)
        e = write_stmt(s,
                       "UPDATE webhook_deliveries SET state = $4, attempts = $5, next_ms = $6,"
                       " lease_until_ms = 0, lease_node = '' WHERE event_id = $1"
                       " AND endpoint_id = $2 AND lease_node = $3 AND state = 0",
                       false, false, "move webhook delivery", "sssiii", a->event_id,
                       a->endpoint_id, node_id, (int64_t)state, (int64_t)a->attempt, next_ms);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err pg_hook_release(struct lk_store *base, const char *node_id)
{
    return write_stmt(PG(base),
                      "UPDATE webhook_deliveries SET lease_until_ms = 0, lease_node = ''"
                      " WHERE lease_node = $1 AND state = 0",
                      false, false, "release webhook leases", "s", node_id);
}

static enum lk_err pg_hook_attempt_list(struct lk_store *base, const char *ws_id,
                                        const char *endpoint_id, int64_t before_id, int limit,
                                        lk_hook_attempt_cb cb, void *arg)
{
    struct hook_attempt_cb c = {cb, arg};

    return read_stmt(PG(base),
                     "SELECT id, event_id, endpoint_id, workspace_id, type, attempt, status,"
                     " error, started_ms, finished_ms FROM webhook_attempts"
                     " WHERE workspace_id = $1 AND endpoint_id = $2 AND id < $3"
                     " ORDER BY id DESC LIMIT $4",
                     false, row_hook_attempt_cb, &c, "list webhook attempts", "ssii", ws_id,
                     endpoint_id, before_id > 0 ? before_id : INT64_MAX, (int64_t)limit);
}

static enum lk_err pg_hook_alarm(struct lk_store *base, const char *ws_id, const char *name,
                                 bool set, int64_t now, bool *changed)
{
    enum lk_err e;

    if (set)
        e = write_stmt(PG(base),
                       "INSERT INTO webhook_alarms(workspace_id, name, at) VALUES($1, $2, $3)"
                       " ON CONFLICT DO NOTHING",
                       false, true, "set webhook alarm", "ssi", ws_id, name, now);
    else
        e = write_stmt(PG(base), "DELETE FROM webhook_alarms WHERE workspace_id = $1 AND name = $2",
                       false, true, "clear webhook alarm", "ss", ws_id, name);
    *changed = e == LK_OK;
    return e == LK_ERR_NOT_FOUND ? LK_OK : e;
}

static enum lk_err pg_hook_threshold_set(struct lk_store *base, const char *ws_id,
                                         int64_t threshold)
{
    return write_stmt(PG(base),
                      "INSERT INTO webhook_settings(workspace_id, credits_low) VALUES($1, $2)"
                      " ON CONFLICT(workspace_id) DO UPDATE SET credits_low = excluded.credits_low",
                      false, false, "set credits threshold", "sn", ws_id, threshold);
}

static enum lk_err pg_hook_threshold_get(struct lk_store *base, const char *ws_id, int64_t *out)
{
    enum lk_err e = read_stmt(PG(base),
                              "SELECT credits_low FROM webhook_settings WHERE workspace_id = $1"
                              " AND credits_low IS NOT NULL",
                              true, row_count, out, "get credits threshold", "s", ws_id);

    if (e == LK_ERR_NOT_FOUND) {
        *out = -1;
        e = LK_OK;
    }
    return e;
}

struct hook_ws_cb {
    lk_hook_ws_cb cb;
    void *arg;
};

static int row_hook_ws(PGresult *r, int i, void *arg)
{
    struct hook_ws_cb *c = arg;
    char ws[LK_ID_MAX];

    col_text(r, i, 0, ws, sizeof(ws));
    return c->cb(c->arg, ws, col_i64(r, i, 1, -1));
}

static enum lk_err pg_hook_workspaces(struct lk_store *base, lk_hook_ws_cb cb, void *arg)
{
    struct hook_ws_cb c = {cb, arg};

    return read_stmt(PG(base),
                     "SELECT e.workspace_id, s.credits_low FROM (SELECT DISTINCT workspace_id"
                     " FROM webhook_endpoints) e LEFT JOIN webhook_settings s"
                     " ON s.workspace_id = e.workspace_id",
                     false, row_hook_ws, &c, "list webhook workspaces", "");
}

static enum lk_err pg_hook_prune(struct lk_store *base, int64_t before_s, int64_t before_ms)
{
    struct pg_store *s = PG(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s, "DELETE FROM webhook_attempts WHERE finished_ms < $1", false, false,
                   "prune webhook attempts", "i", before_ms);
    if (e == LK_OK)
        e = write_stmt(s,
                       "DELETE FROM webhook_events WHERE created_at < $1 AND NOT EXISTS"
                       " (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id"
                       " AND d.state = 0)",
                       false, false, "prune webhook events", "i", before_s);
    if (e == LK_OK)
        e = write_stmt(s,
                       "DELETE FROM webhook_deliveries WHERE state <> 0 AND NOT EXISTS"
                       " (SELECT 1 FROM webhook_events v WHERE v.id = webhook_deliveries.event_id)",
                       false, false, "prune webhook deliveries", "");
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err pg_hook_key_spend(struct lk_store *base, int64_t key_rowid, int64_t day,
                                     int64_t *out)
{
    return read_stmt(PG(base), "SELECT spent FROM key_spend WHERE key_rowid = $1 AND day = $2",
                     false, row_count, out, "read key spend", "ii", key_rowid, day);
}

/* --- identities and a key's spent credits ------------------------------------------- */

#define IDN_COLS "id, workspace_id, external_id, meta, created_at"

static void read_identity(PGresult *r, int i, struct lk_identity_row *x)
{
    memset(x, 0, sizeof(*x));
    col_text(r, i, 0, x->id, sizeof(x->id));
    col_text(r, i, 1, x->workspace_id, sizeof(x->workspace_id));
    col_text(r, i, 2, x->external_id, sizeof(x->external_id));
    x->meta = col_dup(r, i, 3);
    x->created_at = col_i64(r, i, 4, 0);
}

static int row_identity(PGresult *r, int i, void *arg)
{
    read_identity(r, i, arg);
    return 1;
}

struct identity_cb {
    lk_identity_row_cb cb;
    void *arg;
};

static int row_identity_cb(PGresult *r, int i, void *arg)
{
    struct identity_cb *c = arg;
    struct lk_identity_row x;
    int stop;

    read_identity(r, i, &x);
    stop = c->cb(c->arg, &x);
    lk_identity_row_release(&x);
    return stop;
}

static enum lk_err pg_identity_insert(struct lk_store *base, const struct lk_identity_row *x)
{
    return write_stmt(PG(base),
                      "INSERT INTO identities(" IDN_COLS ") VALUES($1, $2, $3, $4, $5)", true,
                      false, "insert identity", "ssssi", x->id, x->workspace_id, x->external_id,
                      x->meta ? x->meta : "{}", x->created_at);
}

static enum lk_err pg_identity_get(struct lk_store *base, const char *ws_id, const char *id,
                                   struct lk_identity_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(PG(base),
                     "SELECT " IDN_COLS " FROM identities WHERE workspace_id = $1 AND id = $2",
                     true, row_identity, out, "get identity", "ss", ws_id, id);
}

static enum lk_err pg_identity_by_external(struct lk_store *base, const char *ws_id,
                                           const char *external_id, struct lk_identity_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(PG(base),
                     "SELECT " IDN_COLS " FROM identities WHERE workspace_id = $1"
                     " AND external_id = $2",
                     true, row_identity, out, "get identity", "ss", ws_id, external_id);
}

static enum lk_err pg_identity_list(struct lk_store *base, const char *ws_id, const char *after_id,
                                    int limit, lk_identity_row_cb cb, void *arg)
{
    struct identity_cb c = {cb, arg};

    /* COLLATE "C": ids compare by byte, as SQLite's do */
    return read_stmt(PG(base),
                     "SELECT " IDN_COLS " FROM identities WHERE workspace_id = $1"
                     " AND id COLLATE \"C\" > $2 ORDER BY id COLLATE \"C\" LIMIT $3",
                     false, row_identity_cb, &c, "list identities", "ssi", ws_id,
                     after_id ? after_id : "", (int64_t)limit);
}

static int row_key_credits(PGresult *r, int i, void *arg)
{
    struct lk_key_credit_row *x = arg;

    x->key_rowid = col_i64(r, i, 0, 0);
    x->gen = col_i64(r, i, 1, 0);
    x->remaining = col_i64(r, i, 2, 0);
    x->period = col_i64(r, i, 3, 0);
    return 1;
}

static enum lk_err pg_key_credits_put(struct lk_store *base, const struct lk_key_credit_row *x)
{
    /* only while gen is the key's: a management write since replaced the number */
    return write_stmt(PG(base),
                      "INSERT INTO key_credits(key_rowid, gen, remaining, period)"
                      " SELECT $1, $2, $3, $4 WHERE EXISTS(SELECT 1 FROM keys"
                      " WHERE rowid = $1 AND credits_gen = $2)"
                      " ON CONFLICT(key_rowid) DO UPDATE SET gen = excluded.gen,"
                      " remaining = excluded.remaining, period = excluded.period",
                      false, false, "write key credits", "iiii", x->key_rowid, x->gen,
                      x->remaining, x->period);
}

static enum lk_err pg_key_credits_get(struct lk_store *base, int64_t key_rowid,
                                      struct lk_key_credit_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(PG(base),
                     "SELECT c.key_rowid, c.gen, c.remaining, c.period FROM key_credits c"
                     " JOIN keys k ON k.rowid = c.key_rowid AND k.credits_gen = c.gen"
                     " WHERE c.key_rowid = $1",
                     true, row_key_credits, out, "read key credits", "i", key_rowid);
}

/* clang-format off */
#define PG_OPS(name)                                                                               \
    .scheme = name,                                                                                \
    .open = pg_open,                                                                               \
    .close = pg_close,                                                                             \
    .ping = pg_ping,                                                                               \
    .begin = pg_begin,                                                                             \
    .commit = pg_commit,                                                                           \
    .rollback = pg_rollback,                                                                       \
    .begin_background = pg_begin_background,                                                       \
    .retryable = pg_retryable,                                                                     \
    .ws_insert = pg_ws_insert,                                                                     \
    .ws_get = pg_ws_get,                                                                           \
    .ws_list = pg_ws_list,                                                                         \
    .ws_count = pg_ws_count,                                                                       \
    .key_insert = pg_key_insert,                                                                   \
    .keys_insert = pg_keys_insert,                                                                 \
    .key_update = pg_key_update,                                                                   \
    .key_get = pg_key_get,                                                                         \
    .key_list = pg_key_list,                                                                       \
    .key_scan = pg_key_scan,                                                                       \
    .key_rowid_max = pg_key_rowid_max,                                                             \
    .keys_touch = pg_keys_touch,                                                                   \
    .audit_insert = pg_audit_insert,                                                               \
    .audit_list = pg_audit_list,                                                                   \
    .usage_scan_ws = pg_usage_scan_ws,                                                             \
    .permissions_in_use = pg_permissions_in_use,                                                   \
    .ws_get_by_number = pg_ws_get_by_number,                                                       \
    .user_insert = pg_user_insert,                                                                 \
    .user_by_email = pg_user_by_email,                                                             \
    .user_get = pg_user_get,                                                                       \
    .member_put = pg_member_put,                                                                   \
    .member_get = pg_member_get,                                                                   \
    .member_delete = pg_member_delete,                                                             \
    .member_list = pg_member_list,                                                                 \
    .member_list_user = pg_member_list_user,                                                       \
    .member_count = pg_member_count,                                                               \
    .session_insert = pg_session_insert,                                                           \
    .session_get = pg_session_get,                                                                 \
    .session_delete = pg_session_delete,                                                           \
    .ws_set_quota = pg_ws_set_quota,                                                               \
    .credits_get = pg_credits_get,                                                                 \
    .credits_move = pg_credits_move,                                                               \
    .credits_scan = pg_credits_scan,                                                               \
    .ledger_add = pg_ledger_add,                                                                   \
    .ledger_list = pg_ledger_list,                                                                 \
    .counter_add = pg_counter_add,                                                                 \
    .counters_add = pg_counters_add,                                                               \
    .counter_raise = pg_counter_raise,                                                             \
    .counter_scan = pg_counter_scan,                                                               \
    .counter_prune = pg_counter_prune,                                                             \
    .invitation_insert = pg_invitation_insert,                                                     \
    .invitation_by_digest = pg_invitation_by_digest,                                               \
    .invitation_delete = pg_invitation_delete,                                                     \
    .invitation_list = pg_invitation_list,                                                         \
    .invitation_prune = pg_invitation_prune,                                                       \
    .invitation_count = pg_invitation_count,                                                       \
    .changes_since = pg_changes_since,                                                             \
    .changes_head = pg_changes_head,                                                               \
    .changes_wait = pg_changes_wait,                                                               \
    .changes_prune = pg_changes_prune,                                                             \
    .key_get_by_rowid = pg_key_get_by_rowid,                                                       \
    .node_put = pg_node_put,                                                                       \
    .node_heartbeat = pg_node_heartbeat,                                                           \
    .node_list = pg_node_list,                                                                     \
    .node_delete = pg_node_delete,                                                                 \
    .lease_move = pg_lease_move,                                                                   \
    .lease_mark = pg_lease_mark,                                                                   \
    .lease_scan = pg_lease_scan,                                                                   \
    .user_scan = pg_user_scan,                                                                     \
    .session_scan = pg_session_scan,                                                               \
    .invitation_scan = pg_invitation_scan,                                                         \
    .ws_import = pg_ws_import,                                                                     \
    .ledger_scan = pg_ledger_scan,                                                                 \
    .audit_scan = pg_audit_scan,                                                                   \
    .hook_endpoint_insert = pg_hook_endpoint_insert,                                               \
    .hook_endpoint_list = pg_hook_endpoint_list,                                                   \
    .hook_endpoint_delete = pg_hook_endpoint_delete,                                               \
    .hook_event_insert = pg_hook_event_insert,                                                     \
    .hook_due = pg_hook_due,                                                                       \
    .hook_lease = pg_hook_lease,                                                                   \
    .hook_attempt_done = pg_hook_attempt_done,                                                     \
    .hook_release = pg_hook_release,                                                               \
    .hook_attempt_list = pg_hook_attempt_list,                                                     \
    .hook_alarm = pg_hook_alarm,                                                                   \
    .hook_threshold_set = pg_hook_threshold_set,                                                   \
    .hook_threshold_get = pg_hook_threshold_get,                                                   \
    .hook_key_spend = pg_hook_key_spend,                                                           \
    .hook_workspaces = pg_hook_workspaces,                                                         \
    .hook_prune = pg_hook_prune,                                                                   \
    .identity_insert = pg_identity_insert,                                                         \
    .identity_get = pg_identity_get,                                                               \
    .identity_by_external = pg_identity_by_external,                                               \
    .identity_list = pg_identity_list,                                                             \
    .key_credits_put = pg_key_credits_put,                                                         \
    .key_credits_get = pg_key_credits_get,
/* clang-format on */

/* libpq reads both forms of the URL. */
const struct lk_store_ops lk__store_pg_ops = {PG_OPS("postgres://")};
const struct lk_store_ops lk__store_pgsql_ops = {PG_OPS("postgresql://")};
