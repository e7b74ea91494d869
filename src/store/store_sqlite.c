/*
 * store_sqlite.c — the embedded SQLite backend (DESIGN §7): one connection in WAL
 * mode with synchronous=FULL, so a commit is on disk before it returns; a
 * recursive mutex serialises callers and lets a transaction span several calls.
 */
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <sqlite3.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "store/store_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* Versioned migrations: entry i takes the schema from version i to i+1
 * (PRAGMA user_version). Append only; never edit a shipped entry. */
static const char *const migrations[] = {
    /* 1: workspaces, keys, audit events */
    "CREATE TABLE workspaces("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, key_prefix TEXT NOT NULL,"
    "  key_format INTEGER NOT NULL, is_operator INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE keys("
    "  rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id), name TEXT NOT NULL,"
    "  environment INTEGER NOT NULL, kind INTEGER NOT NULL, permissions TEXT NOT NULL,"
    "  meta TEXT NOT NULL, hint TEXT NOT NULL, enabled INTEGER NOT NULL,"
    "  expires_at INTEGER, revoked_at INTEGER, created_at INTEGER NOT NULL,"
    "  last_used_at INTEGER, rl_limit INTEGER, rl_window_s INTEGER, daily_spend_cap INTEGER,"
    "  digest BLOB NOT NULL UNIQUE, pepper_id INTEGER NOT NULL,"
    "  prev_digest BLOB, prev_pepper_id INTEGER, prev_until INTEGER, created_by TEXT);"
    "CREATE INDEX keys_by_workspace ON keys(workspace_id, rowid);"
    "CREATE TABLE audit_events("
    "  id INTEGER PRIMARY KEY, workspace_id TEXT, actor TEXT NOT NULL, action TEXT NOT NULL,"
    "  target TEXT, address TEXT, request_id TEXT, created_at INTEGER NOT NULL);"
    "CREATE INDEX audit_by_workspace ON audit_events(workspace_id, id);",
    /* 2: people */
    "CREATE TABLE users("
    "  id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE members("
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    "  user_id TEXT NOT NULL REFERENCES users(id), role INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, PRIMARY KEY(workspace_id, user_id));"
    "CREATE INDEX members_by_user ON members(user_id);"
    "CREATE TABLE sessions("
    "  digest BLOB PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),"
    "  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);",
    /* 3: limits and money */
    "ALTER TABLE workspaces ADD COLUMN quota INTEGER;"
    "ALTER TABLE workspaces ADD COLUMN test_quota INTEGER;"
    "CREATE TABLE credit_accounts("
    "  workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),"
    "  balance INTEGER NOT NULL DEFAULT 0 CHECK(balance >= 0),"
    "  leased INTEGER NOT NULL DEFAULT 0 CHECK(leased >= 0),"
    "  spent INTEGER NOT NULL DEFAULT 0, topped_up INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE credit_ledger("
    "  id INTEGER PRIMARY KEY, workspace_id TEXT NOT NULL, kind TEXT NOT NULL,"
    "  amount INTEGER NOT NULL, period INTEGER, actor TEXT, note TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX ledger_by_workspace ON credit_ledger(workspace_id, id);"
    "CREATE UNIQUE INDEX ledger_by_period ON credit_ledger(workspace_id, kind, period)"
    "  WHERE period IS NOT NULL;"
    "CREATE TABLE quota_days("
    "  workspace_id TEXT NOT NULL, day INTEGER NOT NULL, live INTEGER NOT NULL,"
    "  test INTEGER NOT NULL, PRIMARY KEY(workspace_id, day)) WITHOUT ROWID;"
    "CREATE TABLE key_spend("
    "  key_rowid INTEGER NOT NULL, day INTEGER NOT NULL, spent INTEGER NOT NULL,"
    "  PRIMARY KEY(key_rowid, day)) WITHOUT ROWID;"
    "CREATE INDEX key_spend_by_day ON key_spend(day);"
    "CREATE TABLE usage_hours("
    "  key_rowid INTEGER NOT NULL, hour INTEGER NOT NULL, code INTEGER NOT NULL,"
    "  count INTEGER NOT NULL, PRIMARY KEY(key_rowid, hour, code)) WITHOUT ROWID;"
    "CREATE INDEX usage_by_hour ON usage_hours(hour);",
    /* 4: a digest, current or previous, belongs to one key in the whole store;
     * temporary keys end within a day (both closed holes a request could open).
     * key_digests holds both digests of every key and is kept by triggers in the
     * statement's own transaction, so its primary key refuses an import (or any
     * write) of a digest some key already has. Existing data: a previous digest
     * that another key holds (current or previous) cannot keep both owners; its
     * grace period ends here, and the digest stays with the key that has it as
     * its current secret (or, between two previous ones, the older key). */
    "UPDATE keys SET prev_digest = NULL, prev_pepper_id = NULL, prev_until = NULL"
    "  WHERE prev_digest IS NOT NULL AND (prev_digest = digest"
    "    OR EXISTS (SELECT 1 FROM keys o WHERE o.digest = keys.prev_digest)"
    "    OR EXISTS (SELECT 1 FROM keys o WHERE o.prev_digest = keys.prev_digest"
    "               AND o.rowid < keys.rowid));"
    "CREATE TABLE key_digests("
    "  digest BLOB PRIMARY KEY, key_rowid INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX key_digests_by_key ON key_digests(key_rowid);"
    "INSERT INTO key_digests SELECT digest, rowid FROM keys;"
    "INSERT INTO key_digests SELECT prev_digest, rowid FROM keys WHERE prev_digest IS NOT NULL;"
    "CREATE TRIGGER key_digests_insert AFTER INSERT ON keys BEGIN"
    "  INSERT INTO key_digests VALUES(NEW.digest, NEW.rowid);"
    "  INSERT INTO key_digests SELECT NEW.prev_digest, NEW.rowid"
    "    WHERE NEW.prev_digest IS NOT NULL;"
    "END;"
    "CREATE TRIGGER key_digests_update AFTER UPDATE OF digest, prev_digest ON keys BEGIN"
    "  DELETE FROM key_digests WHERE key_rowid = OLD.rowid;"
    "  INSERT INTO key_digests VALUES(NEW.digest, NEW.rowid);"
    "  INSERT INTO key_digests SELECT NEW.prev_digest, NEW.rowid"
    "    WHERE NEW.prev_digest IS NOT NULL;"
    "END;"
    "CREATE TRIGGER key_digests_delete AFTER DELETE ON keys BEGIN"
    "  DELETE FROM key_digests WHERE key_rowid = OLD.rowid;"
    "END;"
    /* and a temporary key (kind 1) that an epoch expires_at once made immortal,
     * or that lives longer than a day, ends a day after its creation */
    "UPDATE keys SET expires_at = created_at + 86400 WHERE kind = 1"
    "  AND (expires_at IS NULL OR expires_at > created_at + 86400);",
    /* 5: invitations (a user joins a workspace only by accepting one) */
    "CREATE TABLE invitations("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    "  email TEXT NOT NULL COLLATE NOCASE, role INTEGER NOT NULL,"
    "  digest BLOB NOT NULL UNIQUE, invited_by TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
    "CREATE INDEX invitations_by_workspace ON invitations(workspace_id, expires_at);",
    /* 6: several nodes on one database. The change log, appended by triggers in
     * the transaction of the change itself (no writer can forget it; last-used
     * times are not changes), the nodes with their heartbeats, and each node's
     * part of a workspace's leased credits. Seqs come from the rowid: SQLite has
     * one writer, so they are visible in commit order, and pruning keeps the
     * newest row so none is ever reused. */
    "CREATE TABLE changes("
    "  seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, key_rowid INTEGER, ref_id TEXT,"
    "  workspace_id TEXT, at INTEGER NOT NULL);"
    "CREATE INDEX changes_by_at ON changes(at);"
    "CREATE TABLE nodes("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, started_at INTEGER NOT NULL,"
    "  heartbeat_at INTEGER NOT NULL);"
    "CREATE TABLE credit_leases("
    "  workspace_id TEXT NOT NULL, node_id TEXT NOT NULL,"
    "  amount INTEGER NOT NULL CHECK(amount >= 0),"
    "  PRIMARY KEY(workspace_id, node_id)) WITHOUT ROWID;"
    "CREATE TRIGGER changes_key_insert AFTER INSERT ON keys BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(1, NEW.rowid, NEW.id, NEW.workspace_id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_key_update AFTER UPDATE OF id, workspace_id, name, environment,"
    "  kind, permissions, meta, hint, enabled, expires_at, revoked_at, created_at, rl_limit,"
    "  rl_window_s, daily_spend_cap, digest, pepper_id, prev_digest, prev_pepper_id, prev_until,"
    "  created_by ON keys BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(1, NEW.rowid, NEW.id, NEW.workspace_id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_ws_insert AFTER INSERT ON workspaces BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(2, 0, NEW.id, NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_ws_update AFTER UPDATE ON workspaces BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(2, 0, NEW.id, NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_member_insert AFTER INSERT ON members BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(3, 0, NEW.user_id, NEW.workspace_id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_member_update AFTER UPDATE ON members BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(3, 0, NEW.user_id, NEW.workspace_id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_member_delete AFTER DELETE ON members BEGIN"
    "  INSERT INTO changes(kind, key_rowid, ref_id, workspace_id, at)"
    "    VALUES(3, 0, OLD.user_id, OLD.workspace_id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;",
    /* 7: a lease's mark, so a node killed during a lease write knows afterwards
     * whether it committed (service/credits.c). */
    "ALTER TABLE credit_leases ADD COLUMN op INTEGER NOT NULL DEFAULT 0;",
    /* 8: what an event says beyond its action and target (a leak report's
     * source URL), as JSON text; '' for none. */
    "ALTER TABLE audit_events ADD COLUMN detail TEXT NOT NULL DEFAULT '';",
    /* 9: webhooks (service/hooks.c): endpoints (the signing secret is derived,
     * never stored: only its salt is), the outbox of events, one delivery row
     * per event and subscribed endpoint (claimed by a node under an expiring
     * lease), the log of attempts, the alarms that make a threshold's crossing
     * one event, and the credits-low threshold of a workspace. */
    "CREATE TABLE webhook_endpoints("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, url TEXT NOT NULL,"
    "  events TEXT NOT NULL, description TEXT NOT NULL, salt TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX webhook_endpoints_by_ws ON webhook_endpoints(workspace_id, created_at);"
    "CREATE TABLE webhook_events("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, type TEXT NOT NULL,"
    "  payload TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE webhook_deliveries("
    "  event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,"
    "  lease_until_ms INTEGER NOT NULL DEFAULT 0, lease_node TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY(event_id, endpoint_id)) WITHOUT ROWID;"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_ms);"
    "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id);"
    "CREATE TABLE webhook_attempts("
    "  id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL,"
    "  workspace_id TEXT NOT NULL, type TEXT NOT NULL, attempt INTEGER NOT NULL,"
    "  status INTEGER NOT NULL, error TEXT NOT NULL, started_ms INTEGER NOT NULL,"
    "  finished_ms INTEGER NOT NULL);"
    "CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts(endpoint_id, id);"
    "CREATE TABLE webhook_alarms("
    "  workspace_id TEXT NOT NULL, name TEXT NOT NULL, at INTEGER NOT NULL,"
    "  PRIMARY KEY(workspace_id, name)) WITHOUT ROWID;"
    "CREATE TABLE webhook_settings("
    "  workspace_id TEXT PRIMARY KEY, credits_low INTEGER);",
    /* 10: identities (who a key is for, by the caller's own external_id), a
     * key's own credits with their refill, and its named rate limits. The
     * key's external_id is its identity's, kept beside identity_id so a key
     * reads as one row; key_credits is what checks spent of a credits_gen,
     * written apart from keys so spending is not a change the feed follows. */
    "CREATE TABLE identities("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    "  external_id TEXT NOT NULL, meta TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  UNIQUE(workspace_id, external_id));"
    "ALTER TABLE keys ADD COLUMN identity_id TEXT;"
    "ALTER TABLE keys ADD COLUMN external_id TEXT;"
    "ALTER TABLE keys ADD COLUMN credits_remaining INTEGER;"
    "ALTER TABLE keys ADD COLUMN credits_refill INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE keys ADD COLUMN credits_refill_amount INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE keys ADD COLUMN credits_refill_day INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE keys ADD COLUMN credits_gen INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE keys ADD COLUMN credits_set_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE keys ADD COLUMN rate_limits TEXT;"
    "CREATE INDEX keys_by_identity ON keys(identity_id, rowid) WHERE identity_id IS NOT NULL;"
    "CREATE TABLE key_credits("
    "  key_rowid INTEGER PRIMARY KEY, gen INTEGER NOT NULL, remaining INTEGER NOT NULL,"
    "  period INTEGER NOT NULL);",
};

enum stmt_id {
    ST_WS_INSERT,
    ST_WS_GET,
    ST_WS_LIST,
    ST_WS_COUNT,
    ST_KEY_INSERT,
    ST_KEY_UPDATE,
    ST_KEY_GET,
    ST_KEY_SCAN,
    ST_KEY_SCAN_CACHE,
    ST_KEY_ROWID_MAX,
    ST_KEY_TOUCH,
    ST_AUDIT_INSERT,
    ST_AUDIT_LIST,
    ST_USAGE_WS,
    ST_PERMS_IN_USE,
    ST_WS_BY_NUMBER,
    ST_USER_INSERT,
    ST_USER_BY_EMAIL,
    ST_USER_GET,
    ST_MEMBER_PUT,
    ST_MEMBER_GET,
    ST_MEMBER_DELETE,
    ST_MEMBER_LIST,
    ST_MEMBER_LIST_USER,
    ST_MEMBER_COUNT,
    ST_SESSION_INSERT,
    ST_SESSION_GET,
    ST_SESSION_DELETE,
    ST_WS_SET_QUOTA,
    ST_CREDIT_ENSURE,
    ST_CREDIT_MOVE,
    ST_CREDIT_GET,
    ST_CREDIT_SCAN,
    ST_LEDGER_ADD,
    ST_LEDGER_LIST,
    ST_QUOTA_ADD,
    ST_QUOTA_SCAN,
    ST_SPEND_ADD,
    ST_SPEND_SCAN,
    ST_USAGE_ADD,
    ST_USAGE_LIST,
    ST_USAGE_HOUR,
    ST_QUOTA_RAISE,
    ST_SPEND_RAISE,
    ST_USAGE_RAISE,
    ST_PRUNE_USAGE,
    ST_PRUNE_QUOTA,
    ST_PRUNE_SPEND,
    ST_INVITE_INSERT,
    ST_INVITE_BY_DIGEST,
    ST_INVITE_DELETE,
    ST_INVITE_LIST,
    ST_INVITE_COUNT,
    ST_INVITE_PRUNE,
    ST_USER_SCAN,
    ST_SESSION_SCAN,
    ST_INVITE_SCAN,
    ST_LEDGER_SCAN,
    ST_AUDIT_SCAN,
    ST_WS_IMPORT,
    ST_CHANGES_SINCE,
    ST_CHANGES_HEAD,
    ST_CHANGES_PRUNE,
    ST_KEY_BY_ROWID,
    ST_DATA_VERSION,
    ST_NODE_PUT,
    ST_NODE_BEAT,
    ST_NODE_LIST,
    ST_NODE_DELETE,
    ST_LEASE_ENSURE,
    ST_LEASE_MOVE,
    ST_LEASE_TIDY,
    ST_LEASE_SCAN,
    ST_LEASE_MARK,
    ST_HOOK_EP_INSERT,
    ST_HOOK_EP_LIST,
    ST_HOOK_EP_DELETE,
    ST_HOOK_EP_DEL_DELIVERIES,
    ST_HOOK_EP_DEL_ATTEMPTS,
    ST_HOOK_EV_INSERT,
    ST_HOOK_EV_FANOUT,
    ST_HOOK_DUE,
    ST_HOOK_LEASE,
    ST_HOOK_ATTEMPT_INSERT,
    ST_HOOK_DELIVERY_MOVE,
    ST_HOOK_RELEASE,
    ST_HOOK_ATTEMPT_LIST,
    ST_HOOK_ALARM_SET,
    ST_HOOK_ALARM_CLEAR,
    ST_HOOK_THRESHOLD_SET,
    ST_HOOK_THRESHOLD_GET,
    ST_HOOK_KEY_SPEND,
    ST_HOOK_WORKSPACES,
    ST_HOOK_PRUNE_ATTEMPTS,
    ST_HOOK_PRUNE_EVENTS,
    ST_HOOK_PRUNE_DELIVERIES,
    ST_IDN_INSERT,
    ST_IDN_GET,
    ST_IDN_BY_EXT,
    ST_IDN_LIST,
    ST_KCR_PUT,
    ST_KCR_GET,
    ST__COUNT
};

#define WS_COLS "id, name, key_prefix, key_format, is_operator, created_at, rowid, quota, test_quota"
#define CREDIT_COLS "balance, leased, spent, topped_up"
#define MEMBER_COLS "m.workspace_id, m.user_id, u.email, m.role, m.created_at"

#define KEY_COLS                                                                                   \
    "rowid, id, workspace_id, name, environment, kind, permissions, meta, hint, enabled,"         \
    " expires_at, revoked_at, created_at, last_used_at, rl_limit, rl_window_s, daily_spend_cap,"  \
    " digest, pepper_id, prev_digest, prev_pepper_id, prev_until, created_by, identity_id,"       \
    " external_id, credits_remaining, credits_refill, credits_refill_amount, credits_refill_day," \
    " credits_gen, credits_set_at, rate_limits"
/* KEY_COLS and what checks spent of the key's credits (key_credits of its gen) */
#define KEY_READ KEY_COLS ", " KEY_CREDITS_NOW
#define KEY_CREDITS_NOW                                                                            \
    "(SELECT c.remaining FROM key_credits c WHERE c.key_rowid = keys.rowid"                        \
    " AND c.gen = keys.credits_gen), (SELECT c.period FROM key_credits c"                           \
    " WHERE c.key_rowid = keys.rowid AND c.gen = keys.credits_gen)"
/* KEY_READ in the same places, with constants for what the cache does not keep */
#define KEY_COLS_CACHE                                                                             \
    "rowid, id, workspace_id, name, environment, kind, permissions, NULLIF(meta, '{}'),"          \
    " CASE WHEN hint = '" LK_KEY_HINT_IMPORTED "' THEN hint ELSE '' END,"                          \
    " enabled, expires_at, revoked_at, 0, last_used_at, rl_limit, rl_window_s, daily_spend_cap,"   \
    " digest, pepper_id, prev_digest, prev_pepper_id, prev_until, '', identity_id, external_id,"   \
    " credits_remaining, 0, 0, 0, 0,"                                                              \
    " 0, rate_limits, NULL, NULL"

static const char *const stmt_sql[ST__COUNT] = {
    [ST_WS_INSERT] = "INSERT INTO workspaces(id, name, key_prefix, key_format, is_operator, "
                     "created_at, quota, test_quota) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_WS_GET] = "SELECT " WS_COLS " FROM workspaces WHERE id = ?1",
    [ST_WS_LIST] = "SELECT " WS_COLS " FROM workspaces ORDER BY rowid",
    [ST_WS_BY_NUMBER] = "SELECT " WS_COLS " FROM workspaces WHERE rowid = ?1",
    [ST_WS_COUNT] = "SELECT count(*) FROM workspaces",
    [ST_KEY_INSERT] = "INSERT INTO keys(" KEY_COLS ") VALUES(NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                      "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
                      "?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)",
    [ST_KEY_UPDATE] = "UPDATE keys SET name = ?4, environment = ?5, kind = ?6, permissions = ?7, "
                      "meta = ?8, hint = ?9, enabled = ?10, expires_at = ?11, revoked_at = ?12, "
                      "rl_limit = ?15, rl_window_s = ?16, daily_spend_cap = ?17, digest = ?18, "
                      "pepper_id = ?19, prev_digest = ?20, prev_pepper_id = ?21, prev_until = ?22, "
                      "identity_id = ?24, external_id = ?25, credits_remaining = ?26, "
                      "credits_refill = ?27, credits_refill_amount = ?28, "
                      "credits_refill_day = ?29, credits_gen = ?30, credits_set_at = ?31, "
                      "rate_limits = ?32 WHERE id = ?2 AND workspace_id = ?3",
    [ST_KEY_GET] = "SELECT " KEY_READ " FROM keys WHERE workspace_id = ?1 AND id = ?2",
    [ST_KEY_SCAN] = "SELECT " KEY_READ " FROM keys WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid",
    [ST_KEY_SCAN_CACHE] = "SELECT " KEY_COLS_CACHE " FROM keys WHERE rowid > ?1 AND rowid <= ?2"
                          " ORDER BY rowid",
    [ST_KEY_ROWID_MAX] = "SELECT coalesce(max(rowid), 0) FROM keys",
    [ST_KEY_TOUCH] = "UPDATE keys SET last_used_at = ?2 WHERE rowid = ?1 AND "
                     "(last_used_at IS NULL OR last_used_at < ?2)",
    [ST_AUDIT_INSERT] = "INSERT INTO audit_events(workspace_id, actor, action, target, address, "
                        "request_id, created_at, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* Filters: ?4 actor, ?5 action (with ?6 = 1: a prefix), created_at in
     * [?7, ?8); '' and the widest times keep everything. */
    [ST_AUDIT_LIST] = "SELECT id, workspace_id, actor, action, target, address, request_id, "
                      "created_at, detail FROM audit_events WHERE workspace_id = ?1 AND id < ?2 "
                      "AND (?4 = '' OR actor = ?4) "
                      "AND (?5 = '' OR action = ?5 OR "
                      "(?6 = 1 AND substr(action, 1, length(?5)) = ?5)) "
                      "AND created_at >= ?7 AND created_at < ?8 "
                      "ORDER BY id DESC LIMIT ?3",
    [ST_USAGE_WS] = "SELECT '', u.key_rowid, u.hour, u.code, u.count, 0 FROM usage_hours u "
                    "JOIN keys k ON k.rowid = u.key_rowid "
                    "WHERE k.workspace_id = ?1 AND u.hour >= ?2 AND u.hour < ?3",
    /* permissions is a JSON array of strings (written by the service). */
    [ST_PERMS_IN_USE] = "SELECT DISTINCT j.value FROM keys k, json_each(k.permissions) j "
                        "WHERE k.workspace_id = ?1 AND k.revoked_at IS NULL "
                        "AND j.type = 'text' ORDER BY 1",
    [ST_USER_INSERT] = "INSERT INTO users(id, email, password_hash, created_at) "
                       "VALUES(?1, ?2, ?3, ?4)",
    [ST_USER_BY_EMAIL] = "SELECT id, email, password_hash, created_at FROM users WHERE email = ?1",
    [ST_USER_GET] = "SELECT id, email, password_hash, created_at FROM users WHERE id = ?1",
    [ST_MEMBER_PUT] = "INSERT INTO members(workspace_id, user_id, role, created_at) "
                      "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(workspace_id, user_id) "
                      "DO UPDATE SET role = excluded.role",
    [ST_MEMBER_GET] = "SELECT " MEMBER_COLS " FROM members m JOIN users u ON u.id = m.user_id "
                      "WHERE m.workspace_id = ?1 AND m.user_id = ?2",
    [ST_MEMBER_DELETE] = "DELETE FROM members WHERE workspace_id = ?1 AND user_id = ?2",
    [ST_MEMBER_LIST] = "SELECT " MEMBER_COLS " FROM members m JOIN users u ON u.id = m.user_id "
                       "WHERE m.workspace_id = ?1 ORDER BY m.created_at, u.email",
    [ST_MEMBER_LIST_USER] = "SELECT " MEMBER_COLS " FROM members m JOIN users u "
                            "ON u.id = m.user_id WHERE m.user_id = ?1 ORDER BY m.created_at",
    [ST_MEMBER_COUNT] = "SELECT count(*) FROM members WHERE workspace_id = ?1 AND role = ?2",
    [ST_SESSION_INSERT] = "INSERT INTO sessions(digest, user_id, created_at, expires_at) "
                          "VALUES(?1, ?2, ?3, ?4)",
    [ST_SESSION_GET] = "SELECT digest, user_id, created_at, expires_at FROM sessions "
                       "WHERE digest = ?1",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE digest = ?1",
    [ST_WS_SET_QUOTA] = "UPDATE workspaces SET quota = ?2, test_quota = ?3 WHERE id = ?1",
    [ST_CREDIT_ENSURE] = "INSERT INTO credit_accounts(workspace_id) VALUES(?1) "
                         "ON CONFLICT(workspace_id) DO NOTHING",
    [ST_CREDIT_MOVE] = "UPDATE credit_accounts SET balance = balance + ?2, leased = leased + ?3, "
                       "spent = spent + ?4, topped_up = topped_up + ?5 WHERE workspace_id = ?1 "
                       "AND balance + ?2 >= 0 AND leased + ?3 >= 0 "
                       "AND topped_up + ?5 <= 9007199254740991", /* 2^53 - 1: exact in JSON */
    [ST_CREDIT_GET] = "SELECT workspace_id, " CREDIT_COLS " FROM credit_accounts "
                      "WHERE workspace_id = ?1",
    [ST_CREDIT_SCAN] = "SELECT workspace_id, " CREDIT_COLS " FROM credit_accounts",
    [ST_LEDGER_ADD] = "INSERT INTO credit_ledger(workspace_id, kind, amount, period, actor, note, "
                      "created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                      "ON CONFLICT(workspace_id, kind, period) WHERE period IS NOT NULL "
                      "DO UPDATE SET amount = amount + excluded.amount",
    [ST_LEDGER_LIST] = "SELECT id, workspace_id, kind, amount, period, actor, note, created_at "
                       "FROM credit_ledger WHERE workspace_id = ?1 AND id < ?2 "
                       "ORDER BY id DESC LIMIT ?3",
    [ST_QUOTA_ADD] = "INSERT INTO quota_days(workspace_id, day, live, test) VALUES(?1, ?2, ?3, ?4) "
                     "ON CONFLICT(workspace_id, day) DO UPDATE SET live = live + excluded.live, "
                     "test = test + excluded.test",
    /* The three counter scans share one shape (row_counter) and one binding
     * (key_rowid, from, to); `?1 = ?1` takes the key row id where none applies. */
    [ST_QUOTA_SCAN] = "SELECT workspace_id, 0, day, 0, live, test FROM quota_days "
                      "WHERE day >= ?2 AND day < ?3 AND ?1 = ?1",
    [ST_SPEND_ADD] = "INSERT INTO key_spend(key_rowid, day, spent) VALUES(?1, ?2, ?3) "
                     "ON CONFLICT(key_rowid, day) DO UPDATE SET spent = spent + excluded.spent",
    [ST_SPEND_SCAN] = "SELECT '', key_rowid, day, 0, spent, 0 FROM key_spend "
                      "WHERE day >= ?2 AND day < ?3 AND ?1 = ?1",
    [ST_USAGE_ADD] = "INSERT INTO usage_hours(key_rowid, hour, code, count) VALUES(?1, ?2, ?3, ?4) "
                     "ON CONFLICT(key_rowid, hour, code) DO UPDATE SET "
                     "count = count + excluded.count",
    [ST_USAGE_LIST] = "SELECT '', key_rowid, hour, code, count, 0 FROM usage_hours "
                      "WHERE key_rowid = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour, code",
    [ST_USAGE_HOUR] = "SELECT '', key_rowid, hour, code, count, 0 FROM usage_hours "
                      "WHERE hour >= ?2 AND hour < ?3 AND ?1 = ?1",
    [ST_QUOTA_RAISE] = "INSERT INTO quota_days(workspace_id, day, live, test) "
                       "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(workspace_id, day) DO UPDATE SET "
                       "live = max(live, excluded.live), test = max(test, excluded.test)",
    [ST_SPEND_RAISE] = "INSERT INTO key_spend(key_rowid, day, spent) VALUES(?1, ?2, ?3) "
                       "ON CONFLICT(key_rowid, day) DO UPDATE SET "
                       "spent = max(spent, excluded.spent)",
    [ST_USAGE_RAISE] = "INSERT INTO usage_hours(key_rowid, hour, code, count) "
                       "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(key_rowid, hour, code) DO UPDATE SET "
                       "count = max(count, excluded.count)",
    [ST_PRUNE_USAGE] = "DELETE FROM usage_hours WHERE hour < ?1",
    [ST_PRUNE_QUOTA] = "DELETE FROM quota_days WHERE day < ?1",
    [ST_PRUNE_SPEND] = "DELETE FROM key_spend WHERE day < ?1",
#define INVITE_COLS "id, workspace_id, email, role, digest, invited_by, created_at, expires_at"
    [ST_INVITE_INSERT] = "INSERT INTO invitations(" INVITE_COLS ") "
                         "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_INVITE_BY_DIGEST] = "SELECT " INVITE_COLS " FROM invitations WHERE digest = ?1",
    [ST_INVITE_DELETE] = "DELETE FROM invitations WHERE workspace_id = ?1 AND id = ?2",
    [ST_INVITE_LIST] = "SELECT " INVITE_COLS " FROM invitations WHERE workspace_id = ?1 "
                       "AND expires_at > ?2 ORDER BY created_at DESC, id",
    [ST_INVITE_COUNT] = "SELECT count(*) FROM invitations WHERE workspace_id = ?1 "
                        "AND expires_at > ?2",
    [ST_INVITE_PRUNE] = "DELETE FROM invitations WHERE workspace_id = ?1 AND expires_at <= ?2",
    /* Scans for copying a database (`latchkey migrate`): every row. */
    [ST_USER_SCAN] = "SELECT id, email, password_hash, created_at FROM users ORDER BY rowid",
    [ST_SESSION_SCAN] = "SELECT digest, user_id, created_at, expires_at FROM sessions",
    [ST_INVITE_SCAN] = "SELECT " INVITE_COLS " FROM invitations ORDER BY created_at, id",
    [ST_LEDGER_SCAN] = "SELECT id, workspace_id, kind, amount, period, actor, note, created_at "
                       "FROM credit_ledger ORDER BY id",
    [ST_AUDIT_SCAN] = "SELECT id, workspace_id, actor, action, target, address, request_id, "
                      "created_at, detail FROM audit_events ORDER BY id",
    /* the number is the rowid: later inserts take max(rowid) + 1 */
    [ST_WS_IMPORT] = "INSERT INTO workspaces(rowid, id, name, key_prefix, key_format, "
                     "is_operator, created_at, quota, test_quota) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_CHANGES_SINCE] = "SELECT seq, kind, key_rowid, ref_id, workspace_id, at FROM changes "
                         "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [ST_CHANGES_HEAD] = "SELECT coalesce(max(seq), 0) FROM changes",
    [ST_CHANGES_PRUNE] = "DELETE FROM changes WHERE at < ?1 "
                         "AND seq < (SELECT max(seq) FROM changes)",
    [ST_KEY_BY_ROWID] = "SELECT " KEY_READ " FROM keys WHERE rowid = ?1",
    [ST_DATA_VERSION] = "PRAGMA data_version",
    [ST_NODE_PUT] = "INSERT INTO nodes(id, name, started_at, heartbeat_at) VALUES(?1, ?2, ?3, ?4) "
                    "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                    "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
    [ST_NODE_BEAT] = "UPDATE nodes SET heartbeat_at = ?2 WHERE id = ?1",
    [ST_NODE_LIST] = "SELECT id, name, started_at, heartbeat_at FROM nodes ORDER BY started_at, id",
    [ST_NODE_DELETE] = "DELETE FROM nodes WHERE id = ?1",
    [ST_LEASE_ENSURE] = "INSERT INTO credit_leases(workspace_id, node_id, amount) "
                        "VALUES(?1, ?2, 0) ON CONFLICT(workspace_id, node_id) DO NOTHING",
    [ST_LEASE_MOVE] = "UPDATE credit_leases SET amount = amount + ?3 "
                      "WHERE workspace_id = ?1 AND node_id = ?2 AND amount + ?3 >= 0",
    [ST_LEASE_TIDY] = "DELETE FROM credit_leases WHERE workspace_id = ?1 AND node_id = ?2 "
                      "AND amount = 0",
    [ST_LEASE_MARK] = "UPDATE credit_leases SET op = ?3 WHERE workspace_id = ?1 AND node_id = ?2",
    [ST_IDN_INSERT] = "INSERT INTO identities(id, workspace_id, external_id, meta, created_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_IDN_GET] = "SELECT id, workspace_id, external_id, meta, created_at FROM identities "
                   "WHERE workspace_id = ?1 AND id = ?2",
    [ST_IDN_BY_EXT] = "SELECT id, workspace_id, external_id, meta, created_at FROM identities "
                      "WHERE workspace_id = ?1 AND external_id = ?2",
    [ST_IDN_LIST] = "SELECT id, workspace_id, external_id, meta, created_at FROM identities "
                    "WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    /* only while gen is the key's: a management write since replaced the number */
    [ST_KCR_PUT] = "INSERT INTO key_credits(key_rowid, gen, remaining, period) "
                   "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS(SELECT 1 FROM keys "
                   "WHERE rowid = ?1 AND credits_gen = ?2) "
                   "ON CONFLICT(key_rowid) DO UPDATE SET gen = excluded.gen, "
                   "remaining = excluded.remaining, period = excluded.period",
    [ST_KCR_GET] = "SELECT c.key_rowid, c.gen, c.remaining, c.period FROM key_credits c "
                   "JOIN keys k ON k.rowid = c.key_rowid AND k.credits_gen = c.gen "
                   "WHERE c.key_rowid = ?1",
    [ST_LEASE_SCAN] = "SELECT workspace_id, node_id, amount, op FROM credit_leases "
                      "WHERE (?1 IS NULL OR node_id = ?1) AND amount > 0 "
                      "ORDER BY node_id, workspace_id",
#define HOOK_EP_COLS "id, workspace_id, url, events, description, salt, created_at"
    [ST_HOOK_EP_INSERT] = "INSERT INTO webhook_endpoints(" HOOK_EP_COLS ") "
                          "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_HOOK_EP_LIST] = "SELECT " HOOK_EP_COLS " FROM webhook_endpoints WHERE workspace_id = ?1 "
                        "ORDER BY created_at, id",
    [ST_HOOK_EP_DELETE] = "DELETE FROM webhook_endpoints WHERE workspace_id = ?1 AND id = ?2",
    [ST_HOOK_EP_DEL_DELIVERIES] = "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
    [ST_HOOK_EP_DEL_ATTEMPTS] = "DELETE FROM webhook_attempts WHERE endpoint_id = ?1",
    /* An event is kept only when some endpoint is subscribed to it. */
    [ST_HOOK_EV_INSERT] = "INSERT OR IGNORE INTO webhook_events(id, workspace_id, type, payload, "
                          "created_at) SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM "
                          "webhook_endpoints WHERE workspace_id = ?2 AND (instr(events, ',' || "
                          "?3 || ',') > 0 OR instr(events, ',*,') > 0))",
    [ST_HOOK_EV_FANOUT] = "INSERT OR IGNORE INTO webhook_deliveries(event_id, endpoint_id, next_ms) "
                          "SELECT ?1, id, ?4 FROM webhook_endpoints WHERE workspace_id = ?2 AND "
                          "(instr(events, ',' || ?3 || ',') > 0 OR instr(events, ',*,') > 0)",
    /* Round-robin: each workspace's first due delivery (each of its endpoints
     * in turn), then each one's second, ...; deliveries leased (in flight on any
     * node) count first, and a workspace has at most 4 in flight: one
     * workspace's backlog or black-holed receivers cannot fill every claim. */
    [ST_HOOK_DUE] = "SELECT v.id, v.workspace_id, v.type, v.payload, v.created_at, e.id, "
                    "e.workspace_id, e.url, e.events, e.description, e.salt, e.created_at, "
                    "q.attempts FROM (SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.ws "
                    "ORDER BY p.busy DESC, p.ep_rank, p.next_ms) AS ws_rank FROM (SELECT d.event_id, "
                    "d.endpoint_id, d.attempts, d.next_ms, e.workspace_id AS ws, "
                    "CASE WHEN d.lease_until_ms > ?1 THEN 1 ELSE 0 END AS busy, "
                    "ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY "
                    "CASE WHEN d.lease_until_ms > ?1 THEN 1 ELSE 0 END DESC, d.next_ms) AS ep_rank "
                    "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
                    "WHERE d.state = 0 AND d.next_ms <= ?1) p) q "
                    "JOIN webhook_events v ON v.id = q.event_id "
                    "JOIN webhook_endpoints e ON e.id = q.endpoint_id "
                    "WHERE q.busy = 0 AND q.ws_rank <= 4 "
                    "ORDER BY q.ws_rank, q.next_ms, q.event_id, q.endpoint_id LIMIT ?2",
    [ST_HOOK_LEASE] = "UPDATE webhook_deliveries SET lease_until_ms = ?3, lease_node = ?4 "
                      "WHERE event_id = ?1 AND endpoint_id = ?2 AND state = 0 "
                      "AND lease_until_ms <= ?5",
    [ST_HOOK_ATTEMPT_INSERT] = "INSERT INTO webhook_attempts(event_id, endpoint_id, workspace_id, "
                               "type, attempt, status, error, started_ms, finished_ms) "
                               "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_HOOK_DELIVERY_MOVE] = "UPDATE webhook_deliveries SET state = ?4, attempts = ?5, "
                              "next_ms = ?6, lease_until_ms = 0, lease_node = '' "
                              "WHERE event_id = ?1 AND endpoint_id = ?2 AND lease_node = ?3 "
                              "AND state = 0",
    [ST_HOOK_RELEASE] = "UPDATE webhook_deliveries SET lease_until_ms = 0, lease_node = '' "
                        "WHERE lease_node = ?1 AND state = 0",
    [ST_HOOK_ATTEMPT_LIST] = "SELECT id, event_id, endpoint_id, workspace_id, type, attempt, "
                             "status, error, started_ms, finished_ms FROM webhook_attempts "
                             "WHERE workspace_id = ?1 AND endpoint_id = ?2 AND id < ?3 "
                             "ORDER BY id DESC LIMIT ?4",
    [ST_HOOK_ALARM_SET] = "INSERT OR IGNORE INTO webhook_alarms(workspace_id, name, at) "
                          "VALUES(?1, ?2, ?3)",
    [ST_HOOK_ALARM_CLEAR] = "DELETE FROM webhook_alarms WHERE workspace_id = ?1 AND name = ?2",
    [ST_HOOK_THRESHOLD_SET] = "INSERT INTO webhook_settings(workspace_id, credits_low) "
                              "VALUES(?1, ?2) ON CONFLICT(workspace_id) DO UPDATE SET "
                              "credits_low = excluded.credits_low",
    [ST_HOOK_THRESHOLD_GET] = "SELECT credits_low FROM webhook_settings WHERE workspace_id = ?1 "
                              "AND credits_low IS NOT NULL",
    [ST_HOOK_WORKSPACES] = "SELECT e.workspace_id, s.credits_low FROM (SELECT DISTINCT "
                           "workspace_id FROM webhook_endpoints) e LEFT JOIN webhook_settings s "
                           "ON s.workspace_id = e.workspace_id",
    [ST_HOOK_PRUNE_ATTEMPTS] = "DELETE FROM webhook_attempts WHERE finished_ms < ?1",
    [ST_HOOK_PRUNE_EVENTS] = "DELETE FROM webhook_events WHERE created_at < ?1 AND NOT EXISTS "
                             "(SELECT 1 FROM webhook_deliveries d WHERE "
                             "d.event_id = webhook_events.id AND d.state = 0)",
    [ST_HOOK_PRUNE_DELIVERIES] = "DELETE FROM webhook_deliveries WHERE state <> 0 AND NOT "
                                 "EXISTS (SELECT 1 FROM webhook_events v WHERE "
                                 "v.id = webhook_deliveries.event_id)",
    [ST_HOOK_KEY_SPEND] = "SELECT spent FROM key_spend WHERE key_rowid = ?1 AND day = ?2",
};

#define BUSY_MS 5000            /* how long a call waits for another process's lock */
#define BACKGROUND_BUSY_MS 100  /* the same for the recorder, which can try again */

#define WAIT_POLL_MS 25 /* how often a waiter looks for other processes' commits */

struct sqlite_store {
    struct lk_store base;
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *st[ST__COUNT];
    /* A second connection for the change log's readers (the feed), so they
     * neither wait behind this process's writers nor see their uncommitted
     * rows; NULL for an in-memory database, which has no second connection. */
    struct sqlite_store *reader;
    int64_t data_version; /* the reader's last PRAGMA data_version */
};

#define SQ(s) ((struct sqlite_store *)(s))

/* In-process wake-up, bumped after every commit of any store this process opened:
 * the feed reads through a store of its own (service/app.c), and a commit of the
 * main store must still end its wait at once. A store of another file waking
 * too only costs that waiter one early read. */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static uint64_t wake_gen;

static void wake_init(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wake_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static enum lk_err fail(struct sqlite_store *s, int rc, const char *what)
{
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return LK_ERR_CONFLICT;
    lk_error("sqlite: %s: %s", what, sqlite3_errmsg(s->db));
    return LK_ERR_STORAGE_UNAVAILABLE;
}

/* Returns the cached prepared statement, reset and unbound; NULL on failure.
 * Caller holds s->mu. */
static sqlite3_stmt *stmt(struct sqlite_store *s, enum stmt_id id)
{
    if (s->st[id] == NULL) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id],
                               NULL) != SQLITE_OK) {
            lk_error("sqlite: prepare: %s", sqlite3_errmsg(s->db));
            return NULL;
        }
    }
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
    return s->st[id];
}

static void bind_opt_i64(sqlite3_stmt *st, int i, int64_t v, int64_t none)
{
    if (v == none)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static int64_t col_opt_i64(sqlite3_stmt *st, int i, int64_t none)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? none : sqlite3_column_int64(st, i);
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t outsz)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;

    /* memcpy, not snprintf: this runs for every column of every key at start. */
    if (n >= outsz)
        n = outsz - 1;
    if (n > 0)
        memcpy(out, t, n);
    out[n] = '\0';
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return lk_strndup(t ? (const char *)t : "", t ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

static void col_blob32(sqlite3_stmt *st, int i, uint8_t out[LK_DIGEST_LEN])
{
    const void *b = sqlite3_column_blob(st, i);
    if (b != NULL && sqlite3_column_bytes(st, i) == LK_DIGEST_LEN)
        memcpy(out, b, LK_DIGEST_LEN);
    else
        memset(out, 0, LK_DIGEST_LEN);
}

static void bind_key(sqlite3_stmt *st, const struct lk_key_row *k)
{
    sqlite3_bind_text(st, 2, k->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->workspace_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, (int)k->env);
    sqlite3_bind_int(st, 6, (int)k->kind);
    sqlite3_bind_text(st, 7, k->permissions ? k->permissions : "[\"*\"]", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, k->meta ? k->meta : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, k->hint, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 10, k->enabled);
    bind_opt_i64(st, 11, k->expires_at, 0);
    bind_opt_i64(st, 12, k->revoked_at, 0);
    sqlite3_bind_int64(st, 13, k->created_at);
    bind_opt_i64(st, 14, k->last_used_at, 0);
    bind_opt_i64(st, 15, k->rl_limit, 0);
    bind_opt_i64(st, 16, k->rl_window_s, 0);
    bind_opt_i64(st, 17, k->daily_spend_cap, -1);
    sqlite3_bind_blob(st, 18, k->digest, LK_DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 19, k->pepper_id);
    if (k->has_prev) {
        sqlite3_bind_blob(st, 20, k->prev_digest, LK_DIGEST_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 21, k->prev_pepper_id);
        sqlite3_bind_int64(st, 22, k->prev_until);
    }
    sqlite3_bind_text(st, 23, k->created_by, -1, SQLITE_STATIC);
    if (k->identity_id[0] != '\0') {
        sqlite3_bind_text(st, 24, k->identity_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 25, k->external_id, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 24);
        sqlite3_bind_null(st, 25);
    }
    if (k->has_credits)
        sqlite3_bind_int64(st, 26, k->credits_remaining);
    else
        sqlite3_bind_null(st, 26);
    sqlite3_bind_int(st, 27, (int)k->credits_refill);
    sqlite3_bind_int64(st, 28, k->credits_refill_amount);
    sqlite3_bind_int(st, 29, k->credits_refill_day);
    sqlite3_bind_int64(st, 30, k->credits_gen);
    sqlite3_bind_int64(st, 31, k->credits_set_at);
    if (k->n_rate_limits > 0) {
        char rl[LK_NAMEDRL_TEXT_MAX];
        lk_namedrl_encode(k->rate_limits, k->n_rate_limits, rl);
        sqlite3_bind_text(st, 32, rl, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(st, 32);
    }
}

/* The column's text as the statement holds it: valid until the next step. */
static char *col_view(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return (char *)(t ? t : (const unsigned char *)"");
}

/* With `view`, permissions and meta point into the statement (valid until its
 * next step; never released): a scan of a million keys allocates nothing a row. */
static void read_key_as(sqlite3_stmt *st, struct lk_key_row *k, bool view)
{
    memset(k, 0, sizeof(*k));
    k->rowid = sqlite3_column_int64(st, 0);
    col_text(st, 1, k->id, sizeof(k->id));
    col_text(st, 2, k->workspace_id, sizeof(k->workspace_id));
    col_text(st, 3, k->name, sizeof(k->name));
    k->env = sqlite3_column_int(st, 4) == LK_ENV_TEST ? LK_ENV_TEST : LK_ENV_LIVE;
    k->kind = (enum lk_key_kind)sqlite3_column_int(st, 5);
    k->permissions = view ? col_view(st, 6) : col_dup(st, 6);
    k->meta = view ? col_view(st, 7) : col_dup(st, 7);
    col_text(st, 8, k->hint, sizeof(k->hint));
    k->enabled = sqlite3_column_int(st, 9) != 0;
    k->expires_at = col_opt_i64(st, 10, 0);
    k->revoked_at = col_opt_i64(st, 11, 0);
    k->created_at = sqlite3_column_int64(st, 12);
    k->last_used_at = col_opt_i64(st, 13, 0);
    k->rl_limit = col_opt_i64(st, 14, 0);
    k->rl_window_s = col_opt_i64(st, 15, 0);
    k->daily_spend_cap = col_opt_i64(st, 16, -1);
    col_blob32(st, 17, k->digest);
    k->pepper_id = (uint32_t)sqlite3_column_int64(st, 18);
    k->has_prev = sqlite3_column_type(st, 19) != SQLITE_NULL;
    if (k->has_prev) {
        col_blob32(st, 19, k->prev_digest);
        k->prev_pepper_id = (uint32_t)sqlite3_column_int64(st, 20);
        k->prev_until = sqlite3_column_int64(st, 21);
    }
    col_text(st, 22, k->created_by, sizeof(k->created_by));
    /* the rarely set columns are NULL for most keys: one call each then */
    if (sqlite3_column_type(st, 23) != SQLITE_NULL) {
        col_text(st, 23, k->identity_id, sizeof(k->identity_id));
        col_text(st, 24, k->external_id, sizeof(k->external_id));
    }
    k->has_credits = sqlite3_column_type(st, 25) != SQLITE_NULL;
    if (k->has_credits) {
        k->credits_remaining = sqlite3_column_int64(st, 25);
        k->credits_refill = (enum lk_credit_refill)sqlite3_column_int(st, 26);
        if (k->credits_refill > LK_CREDIT_REFILL_MONTHLY)
            k->credits_refill = LK_CREDIT_REFILL_NONE;
        k->credits_refill_amount = sqlite3_column_int64(st, 27);
        k->credits_refill_day = sqlite3_column_int(st, 28);
    }
    k->credits_gen = sqlite3_column_int64(st, 29);
    k->credits_set_at = sqlite3_column_int64(st, 30);
    if (sqlite3_column_type(st, 31) != SQLITE_NULL) {
        struct lk_key_rl rl[LK_KEY_RATE_LIMITS_MAX];
        int n = lk_namedrl_decode(col_view(st, 31), rl);
        if (n > 0) {
            k->rate_limits = lk_malloc((size_t)n * sizeof(*rl));
            memcpy(k->rate_limits, rl, (size_t)n * sizeof(*rl));
            k->n_rate_limits = n;
        }
    }
    k->credits_now = -1;
    if (sqlite3_column_type(st, 32) != SQLITE_NULL) {
        k->credits_now = sqlite3_column_int64(st, 32);
        k->credits_period = col_opt_i64(st, 33, 0);
    }
}

static void read_key(sqlite3_stmt *st, struct lk_key_row *k)
{
    read_key_as(st, k, false);
}

static void read_ws(sqlite3_stmt *st, struct lk_ws_row *w)
{
    memset(w, 0, sizeof(*w));
    col_text(st, 0, w->id, sizeof(w->id));
    col_text(st, 1, w->name, sizeof(w->name));
    col_text(st, 2, w->key_prefix, sizeof(w->key_prefix));
    w->key_format = sqlite3_column_int(st, 3) == LK_FORMAT_HEX ? LK_FORMAT_HEX : LK_FORMAT_DEFAULT;
    w->is_operator = sqlite3_column_int(st, 4) != 0;
    w->created_at = sqlite3_column_int64(st, 5);
    w->number = sqlite3_column_int64(st, 6);
    w->quota = col_opt_i64(st, 7, -1);
    w->test_quota = col_opt_i64(st, 8, -1);
}

/* Runs a statement that returns no rows. Caller holds s->mu. */
static enum lk_err step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    enum lk_err e = rc == SQLITE_DONE ? LK_OK : fail(s, rc, what);
    sqlite3_reset(st);
    return e;
}

static enum lk_err exec(struct sqlite_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lk_error("sqlite: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return LK_ERR_STORAGE_UNAVAILABLE;
    }
    return LK_OK;
}

static enum lk_err migrate(struct sqlite_store *s, struct lk_errinfo *ei)
{
    sqlite3_stmt *st = NULL;
    int version;
    char sql[64];

    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot read schema version");
    }
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > (int)LK_ARRAY_LEN(migrations))
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db",
                              "database schema %d is newer than this latchkey (%d)", version,
                              (int)LK_ARRAY_LEN(migrations));
    for (; version < (int)LK_ARRAY_LEN(migrations); version++) {
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
        if (exec(s, "BEGIN IMMEDIATE") != LK_OK)
            return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot migrate");
        if (exec(s, migrations[version]) != LK_OK || exec(s, sql) != LK_OK) {
            exec(s, "ROLLBACK");
            return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db",
                                  "schema migration %d failed", version + 1);
        }
        if (exec(s, "COMMIT") != LK_OK)
            return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot migrate");
    }
    return LK_OK;
}

static void sq_close(struct lk_store *base)
{
    struct sqlite_store *s = SQ(base);

    if (s->reader != NULL)
        sq_close(&s->reader->base);
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The change log's own connection to the same file (WAL: it reads the last
 * commit without waiting for writers). */
static enum lk_err open_reader(struct sqlite_store *s, const char *path, struct lk_errinfo *ei)
{
    struct sqlite_store *r = lk_calloc(1, sizeof(*r));

    r->base.ops = &lk__store_sqlite_ops;
    pthread_mutex_init(&r->mu, NULL);
    s->reader = r;
    if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot open %s: %s", path,
                              r->db ? sqlite3_errmsg(r->db) : "out of memory");
    sqlite3_busy_timeout(r->db, BACKGROUND_BUSY_MS);
    return LK_OK;
}

static enum lk_err sq_open(const char *url, struct lk_store **out, struct lk_errinfo *ei)
{
    const char *path = url + strlen("sqlite:");
    struct sqlite_store *s = NULL;
    pthread_mutexattr_t attr;
    enum lk_err e = LK_OK;

    if (*path == '\0')
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "db", "sqlite: URL needs a path");
    s = lk_calloc(1, sizeof(*s));
    s->base.ops = &lk__store_sqlite_ops;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_once(&wake_once, wake_init);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        e = lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot open %s: %s", path,
                           s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(s->db, BUSY_MS);
    /* WAL + FULL: a commit is durable when it returns, and readers never block it. */
    if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") !=
        LK_OK) {
        e = lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot set up %s", path);
        goto out;
    }
    if ((e = migrate(s, ei)) == LK_OK && strcmp(path, ":memory:") != 0)
        e = open_reader(s, path, ei);
out:
    if (e != LK_OK) {
        sq_close(&s->base);
        return e;
    }
    *out = &s->base;
    return LK_OK;
}

static enum lk_err sq_ping(struct lk_store *base)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = stmt(s, ST_WS_COUNT);
    e = st && sqlite3_step(st) == SQLITE_ROW ? LK_OK : LK_ERR_STORAGE_UNAVAILABLE;
    if (st)
        sqlite3_reset(st);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_begin(struct lk_store *base)
{
    struct sqlite_store *s = SQ(base);

    pthread_mutex_lock(&s->mu); /* held until commit or rollback */
    if (exec(s, "BEGIN IMMEDIATE") != LK_OK) {
        pthread_mutex_unlock(&s->mu);
        return LK_ERR_STORAGE_UNAVAILABLE;
    }
    return LK_OK;
}

/* For background writers (the recorder): waits for another process's lock only
 * briefly, so a management call queued behind this one is not kept waiting for a
 * second busy timeout; the caller tries again later. */
static enum lk_err sq_begin_background(struct lk_store *base)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    sqlite3_busy_timeout(s->db, BACKGROUND_BUSY_MS);
    e = exec(s, "BEGIN IMMEDIATE");
    sqlite3_busy_timeout(s->db, BUSY_MS);
    if (e != LK_OK)
        pthread_mutex_unlock(&s->mu);
    return e;
}

/* Wakes this process's change waiters once a commit is visible. */
static void wake(void)
{
    pthread_mutex_lock(&wake_mu);
    wake_gen++;
    pthread_cond_broadcast(&wake_cv);
    pthread_mutex_unlock(&wake_mu);
}

static enum lk_err sq_commit(struct lk_store *base)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = exec(s, "COMMIT");

    if (e != LK_OK)
        exec(s, "ROLLBACK");
    pthread_mutex_unlock(&s->mu);
    if (e == LK_OK)
        wake();
    return e;
}

static void sq_rollback(struct lk_store *base)
{
    struct sqlite_store *s = SQ(base);

    exec(s, "ROLLBACK");
    pthread_mutex_unlock(&s->mu);
}

static enum lk_err sq_ws_insert(struct lk_store *base, struct lk_ws_row *w)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_WS_INSERT)) == NULL)
        goto out;
    sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, w->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, w->key_prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)w->key_format);
    sqlite3_bind_int(st, 5, w->is_operator);
    sqlite3_bind_int64(st, 6, w->created_at);
    bind_opt_i64(st, 7, w->quota, -1);
    bind_opt_i64(st, 8, w->test_quota, -1);
    if ((e = step_done(s, st, "insert workspace")) == LK_OK)
        w->number = sqlite3_last_insert_rowid(s->db);
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_ws_get(struct lk_store *base, const char *id, struct lk_ws_row *out)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;
    int rc;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_WS_GET)) == NULL)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_ws(st, out);
        e = LK_OK;
    } else {
        e = rc == SQLITE_DONE ? LK_ERR_NOT_FOUND : fail(s, rc, "get workspace");
    }
    sqlite3_reset(st);
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_ws_list(struct lk_store *base, lk_ws_row_cb cb, void *arg)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    struct lk_ws_row w;
    sqlite3_stmt *st;
    int rc;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_WS_LIST)) == NULL)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_ws(st, &w);
        if (cb(arg, &w) != 0)
            break;
    }
    e = rc == SQLITE_ROW || rc == SQLITE_DONE ? LK_OK : fail(s, rc, "list workspaces");
    sqlite3_reset(st);
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* The one integer a statement without parameters answers (a count, a maximum). */
static enum lk_err one_i64(struct lk_store *base, enum stmt_id id, int64_t *out)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, id)) != NULL && sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        e = LK_OK;
    }
    if (st)
        sqlite3_reset(st);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_ws_count(struct lk_store *base, int64_t *out)
{
    return one_i64(base, ST_WS_COUNT, out);
}

static enum lk_err sq_key_insert(struct lk_store *base, struct lk_key_row *k)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_KEY_INSERT)) == NULL)
        goto out;
    bind_key(st, k);
    if ((e = step_done(s, st, "insert key")) == LK_OK)
        k->rowid = sqlite3_last_insert_rowid(s->db);
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* One prepared statement, stepped n times: a row costs no round trip here. Under
 * a savepoint, so that a refused row leaves none of the call's rows behind, as
 * PostgreSQL's one statement does. */
static enum lk_err sq_keys_insert(struct lk_store *base, struct lk_key_row *k, size_t n)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((e = exec(s, "SAVEPOINT lk_keys")) != LK_OK)
        goto out;
    if ((st = stmt(s, ST_KEY_INSERT)) == NULL)
        e = LK_ERR_STORAGE_UNAVAILABLE;
    for (size_t i = 0; i < n && e == LK_OK; i++) {
        sqlite3_clear_bindings(st); /* a key without a previous digest binds no ?20-?22 */
        bind_key(st, &k[i]);
        if ((e = step_done(s, st, "insert key")) == LK_OK)
            k[i].rowid = sqlite3_last_insert_rowid(s->db);
    }
    if (e != LK_OK)
        exec(s, "ROLLBACK TO lk_keys");
    if (exec(s, "RELEASE lk_keys") != LK_OK && e == LK_OK)
        e = LK_ERR_STORAGE_UNAVAILABLE;
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_key_update(struct lk_store *base, const struct lk_key_row *k)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_KEY_UPDATE)) == NULL)
        goto out;
    bind_key(st, k);
    if ((e = step_done(s, st, "update key")) == LK_OK && sqlite3_changes(s->db) == 0)
        e = LK_ERR_NOT_FOUND;
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_key_get(struct lk_store *base, const char *ws_id, const char *id,
                              struct lk_key_row *out)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;
    int rc;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_KEY_GET)) == NULL)
        goto out;
    sqlite3_bind_text(st, 1, ws_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_key(st, out);
        e = LK_OK;
    } else {
        e = rc == SQLITE_DONE ? LK_ERR_NOT_FOUND : fail(s, rc, "get key");
    }
    sqlite3_reset(st);
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* Steps st, handing each row to cb. Caller holds s->mu. */
/* Each row to cb, as a view valid for the call only (store.h). */
static enum lk_err each_key(struct sqlite_store *s, sqlite3_stmt *st, lk_key_row_cb cb, void *arg)
{
    struct lk_key_row k;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int stop;
        read_key_as(st, &k, true);
        stop = cb(arg, &k);
        free(k.rate_limits); /* the one part of a view that is the row's own */
        if (stop)
            break;
    }
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? LK_OK : fail(s, rc, "read keys");
}

static enum lk_err sq_key_list(struct lk_store *base, const char *ws_id,
                               const struct lk_key_filter *f, lk_key_row_cb cb, void *arg)
{
    static const char *const status_sql[] = {
        [LK_STATUS_ANY] = "",
        [LK_STATUS_ACTIVE] = " AND revoked_at IS NULL AND enabled = 1"
                             " AND (expires_at IS NULL OR expires_at > ?4)",
        [LK_STATUS_DISABLED] = " AND revoked_at IS NULL AND enabled = 0"
                               " AND (expires_at IS NULL OR expires_at > ?4)",
        [LK_STATUS_EXPIRED] = " AND revoked_at IS NULL AND expires_at <= ?4",
        [LK_STATUS_REVOKED] = " AND revoked_at IS NOT NULL",
    };
    struct sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    char sql[1024];
    enum lk_err e;

    /* Filters vary, so this statement is built per call; its parts are constants. */
    snprintf(sql, sizeof(sql),
             "SELECT " KEY_READ " FROM keys WHERE workspace_id = ?1 AND rowid < ?2%s%s%s"
             " ORDER BY rowid DESC LIMIT ?5",
             f->env >= 0 ? " AND environment = ?3" : "", status_sql[f->status],
             f->identity_id[0] ? " AND identity_id = ?6" : "");
    pthread_mutex_lock(&s->mu);
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        e = fail(s, SQLITE_ERROR, "list keys");
        goto out;
    }
    sqlite3_bind_text(st, 1, ws_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, f->before_rowid > 0 ? f->before_rowid : INT64_MAX);
    if (f->env >= 0)
        sqlite3_bind_int(st, 3, f->env);
    sqlite3_bind_int64(st, 4, f->now);
    sqlite3_bind_int(st, 5, f->limit);
    if (f->identity_id[0])
        sqlite3_bind_text(st, 6, f->identity_id, -1, SQLITE_STATIC);
    e = each_key(s, st, cb, arg);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_key_scan(struct lk_store *base, enum lk_key_cols cols, int64_t after,
                               int64_t upto, lk_key_row_cb cb, void *arg)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, cols == LK_KEY_COLS_CACHE ? ST_KEY_SCAN_CACHE : ST_KEY_SCAN)) != NULL) {
        sqlite3_bind_int64(st, 1, after);
        sqlite3_bind_int64(st, 2, upto);
        e = each_key(s, st, cb, arg);
        sqlite3_reset(st);
        /* The pages a scan of the whole table leaves in this connection's cache
         * are not what its next calls read; two connections scan at start. */
        sqlite3_db_release_memory(s->db);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_key_rowid_max(struct lk_store *base, int64_t *out)
{
    return one_i64(base, ST_KEY_ROWID_MAX, out);
}

static enum lk_err sq_keys_touch(struct lk_store *base, const struct lk_touch *t, size_t n)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_OK;
    sqlite3_stmt *st;
    bool own;

    if (n == 0)
        return LK_OK;
    pthread_mutex_lock(&s->mu);
    /* Inside the caller's transaction, or in one of its own. */
    own = sqlite3_get_autocommit(s->db) != 0;
    if (own && (e = sq_begin(base)) != LK_OK)
        goto out;
    if ((st = stmt(s, ST_KEY_TOUCH)) == NULL)
        e = LK_ERR_STORAGE_UNAVAILABLE;
    for (size_t i = 0; i < n && e == LK_OK; i++) {
        sqlite3_bind_int64(st, 1, t[i].rowid);
        sqlite3_bind_int64(st, 2, t[i].at);
        e = step_done(s, st, "touch key");
    }
    if (own && e != LK_OK)
        sq_rollback(base);
    else if (own)
        e = sq_commit(base);
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_audit_insert(struct lk_store *base, const struct lk_audit_row *a)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;

    pthread_mutex_lock(&s->mu);
    if ((st = stmt(s, ST_AUDIT_INSERT)) == NULL)
        goto out;
    sqlite3_bind_text(st, 1, a->workspace_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, a->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, a->created_at);
    sqlite3_bind_text(st, 8, a->detail, -1, SQLITE_STATIC);
    e = step_done(s, st, "insert audit event");
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* --- generic statements: bind by a format, run, read rows ------------------------------ */

/* Binds the arguments by fmt: 's' text, 'i' int64, 'n' int64 with -1 as NULL,
 * 'd' 32-byte digest blob.
 * Caller holds s->mu. Returns the statement, or NULL. */
static sqlite3_stmt *bindv(struct sqlite_store *s, enum stmt_id id, const char *fmt, va_list ap)
{
    sqlite3_stmt *st = stmt(s, id);

    if (st == NULL)
        return NULL;
    for (int i = 1; *fmt; fmt++, i++) {
        switch (*fmt) {
        case 's': sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT); break;
        case 'i': sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
        case 'n': bind_opt_i64(st, i, va_arg(ap, int64_t), -1); break;
        case 'd': sqlite3_bind_blob(st, i, va_arg(ap, const uint8_t *), LK_DIGEST_LEN,
                                    SQLITE_TRANSIENT); break;
        default: lk_assert(!"bad bind format");
        }
    }
    return st;
}

/* Runs a write. LK_ERR_NOT_FOUND when it changed no row and `must_change`. */
static enum lk_err write_stmt(struct sqlite_store *s, enum stmt_id id, bool must_change,
                              const char *what, const char *fmt, ...)
{
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;
    va_list ap;

    pthread_mutex_lock(&s->mu);
    va_start(ap, fmt);
    st = bindv(s, id, fmt, ap);
    va_end(ap);
    if (st != NULL && (e = step_done(s, st, what)) == LK_OK && must_change &&
        sqlite3_changes(s->db) == 0)
        e = LK_ERR_NOT_FOUND;
    pthread_mutex_unlock(&s->mu);
    return e;
}

typedef int (*row_fn)(sqlite3_stmt *st, void *arg);

/* Runs a query, handing each row to fn (nonzero stops). With `one`, no row is
 * LK_ERR_NOT_FOUND. */
static enum lk_err read_stmt(struct sqlite_store *s, enum stmt_id id, bool one, row_fn fn,
                             void *arg, const char *what, const char *fmt, ...)
{
    enum lk_err e = LK_ERR_STORAGE_UNAVAILABLE;
    sqlite3_stmt *st;
    va_list ap;
    int rc, rows = 0;

    pthread_mutex_lock(&s->mu);
    va_start(ap, fmt);
    st = bindv(s, id, fmt, ap);
    va_end(ap);
    if (st != NULL) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            rows++;
            if (fn(st, arg) != 0)
                break;
        }
        e = rc == SQLITE_ROW || rc == SQLITE_DONE ? LK_OK : fail(s, rc, what);
        if (e == LK_OK && one && rows == 0)
            e = LK_ERR_NOT_FOUND;
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int row_ws(sqlite3_stmt *st, void *arg)
{
    read_ws(st, arg);
    return 1;
}

static int row_user(sqlite3_stmt *st, void *arg)
{
    struct lk_user_row *u = arg;
    memset(u, 0, sizeof(*u));
    col_text(st, 0, u->id, sizeof(u->id));
    col_text(st, 1, u->email, sizeof(u->email));
    col_text(st, 2, u->password_hash, sizeof(u->password_hash));
    u->created_at = sqlite3_column_int64(st, 3);
    return 1;
}

static void read_member(sqlite3_stmt *st, struct lk_member_row *m)
{
    memset(m, 0, sizeof(*m));
    col_text(st, 0, m->workspace_id, sizeof(m->workspace_id));
    col_text(st, 1, m->user_id, sizeof(m->user_id));
    col_text(st, 2, m->email, sizeof(m->email));
    m->role = (enum lk_role)sqlite3_column_int(st, 3);
    m->created_at = sqlite3_column_int64(st, 4);
}

static int row_member(sqlite3_stmt *st, void *arg)
{
    read_member(st, arg);
    return 1;
}

struct member_cb {
    lk_member_row_cb cb;
    void *arg;
};

static int row_member_cb(sqlite3_stmt *st, void *arg)
{
    struct member_cb *mc = arg;
    struct lk_member_row m;
    read_member(st, &m);
    return mc->cb(mc->arg, &m);
}

static int row_count(sqlite3_stmt *st, void *arg)
{
    *(int64_t *)arg = sqlite3_column_int64(st, 0);
    return 1;
}

static int row_session(sqlite3_stmt *st, void *arg)
{
    struct lk_session_row *r = arg;
    memset(r, 0, sizeof(*r));
    col_blob32(st, 0, r->digest);
    col_text(st, 1, r->user_id, sizeof(r->user_id));
    r->created_at = sqlite3_column_int64(st, 2);
    r->expires_at = sqlite3_column_int64(st, 3);
    return 1;
}

struct audit_cb {
    lk_audit_cb cb;
    void *arg;
};

static int row_audit(sqlite3_stmt *st, void *arg)
{
    struct audit_cb *ac = arg;
    struct lk_audit_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.id = sqlite3_column_int64(st, 0);
    col_text(st, 1, ev.row.workspace_id, sizeof(ev.row.workspace_id));
    col_text(st, 2, ev.row.actor, sizeof(ev.row.actor));
    col_text(st, 3, ev.row.action, sizeof(ev.row.action));
    col_text(st, 4, ev.row.target, sizeof(ev.row.target));
    col_text(st, 5, ev.row.address, sizeof(ev.row.address));
    col_text(st, 6, ev.row.request_id, sizeof(ev.row.request_id));
    ev.row.created_at = sqlite3_column_int64(st, 7);
    col_text(st, 8, ev.row.detail, sizeof(ev.row.detail));
    return ac->cb(ac->arg, &ev);
}

static enum lk_err sq_audit_list(struct lk_store *base, const char *ws_id,
                                 const struct lk_audit_filter *f, int64_t before_id, int limit,
                                 lk_audit_cb cb, void *arg)
{
    static const struct lk_audit_filter none = {{0}};
    struct audit_cb ac = {cb, arg};

    if (f == NULL)
        f = &none;
    return read_stmt(SQ(base), ST_AUDIT_LIST, false, row_audit, &ac, "list audit events",
                     "siissiii", ws_id, before_id > 0 ? before_id : INT64_MAX, (int64_t)limit,
                     f->actor, f->action, (int64_t)(f->action_prefix ? 1 : 0),
                     f->from > 0 ? f->from : INT64_MIN, f->to > 0 ? f->to : INT64_MAX);
}

struct string_cb {
    lk_string_cb cb;
    void *arg;
};

static int row_string(sqlite3_stmt *st, void *arg)
{
    struct string_cb *sc = arg;
    const unsigned char *v = sqlite3_column_text(st, 0);
    return sc->cb(sc->arg, v ? (const char *)v : "");
}

static enum lk_err sq_permissions_in_use(struct lk_store *base, const char *ws_id,
                                         lk_string_cb cb, void *arg)
{
    struct string_cb sc = {cb, arg};
    return read_stmt(SQ(base), ST_PERMS_IN_USE, false, row_string, &sc, "list permissions in use",
                     "s", ws_id);
}

static enum lk_err sq_ws_get_by_number(struct lk_store *base, int64_t number,
                                       struct lk_ws_row *out)
{
    return read_stmt(SQ(base), ST_WS_BY_NUMBER, true, row_ws, out, "get workspace", "i", number);
}

static enum lk_err sq_user_insert(struct lk_store *base, const struct lk_user_row *u)
{
    return write_stmt(SQ(base), ST_USER_INSERT, false, "insert user", "sssi", u->id, u->email,
                      u->password_hash, u->created_at);
}

static enum lk_err sq_user_by_email(struct lk_store *base, const char *email,
                                    struct lk_user_row *out)
{
    return read_stmt(SQ(base), ST_USER_BY_EMAIL, true, row_user, out, "get user", "s", email);
}

static enum lk_err sq_user_get(struct lk_store *base, const char *id, struct lk_user_row *out)
{
    return read_stmt(SQ(base), ST_USER_GET, true, row_user, out, "get user", "s", id);
}

static enum lk_err sq_member_put(struct lk_store *base, const struct lk_member_row *m)
{
    return write_stmt(SQ(base), ST_MEMBER_PUT, false, "put member", "ssii", m->workspace_id,
                      m->user_id, (int64_t)m->role, m->created_at);
}

static enum lk_err sq_member_get(struct lk_store *base, const char *ws_id, const char *user_id,
                                 struct lk_member_row *out)
{
    return read_stmt(SQ(base), ST_MEMBER_GET, true, row_member, out, "get member", "ss", ws_id,
                     user_id);
}

static enum lk_err sq_member_delete(struct lk_store *base, const char *ws_id, const char *user_id)
{
    return write_stmt(SQ(base), ST_MEMBER_DELETE, true, "delete member", "ss", ws_id, user_id);
}

static enum lk_err sq_member_list(struct lk_store *base, const char *ws_id, lk_member_row_cb cb,
                                  void *arg)
{
    struct member_cb mc = {cb, arg};
    return read_stmt(SQ(base), ST_MEMBER_LIST, false, row_member_cb, &mc, "list members", "s",
                     ws_id);
}

static enum lk_err sq_member_list_user(struct lk_store *base, const char *user_id,
                                       lk_member_row_cb cb, void *arg)
{
    struct member_cb mc = {cb, arg};
    return read_stmt(SQ(base), ST_MEMBER_LIST_USER, false, row_member_cb, &mc,
                     "list memberships", "s", user_id);
}

static enum lk_err sq_member_count(struct lk_store *base, const char *ws_id, enum lk_role role,
                                   int64_t *out)
{
    *out = 0;
    return read_stmt(SQ(base), ST_MEMBER_COUNT, false, row_count, out, "count members", "si",
                     ws_id, (int64_t)role);
}

static enum lk_err sq_session_insert(struct lk_store *base, const struct lk_session_row *r)
{
    return write_stmt(SQ(base), ST_SESSION_INSERT, false, "insert session", "dsii", r->digest,
                      r->user_id, r->created_at, r->expires_at);
}

static enum lk_err sq_session_get(struct lk_store *base, const uint8_t digest[LK_DIGEST_LEN],
                                  struct lk_session_row *out)
{
    return read_stmt(SQ(base), ST_SESSION_GET, true, row_session, out, "get session", "d",
                     digest);
}

static enum lk_err sq_session_delete(struct lk_store *base, const uint8_t digest[LK_DIGEST_LEN])
{
    return write_stmt(SQ(base), ST_SESSION_DELETE, false, "delete session", "d", digest);
}

/* --- limits and money ------------------------------------------------------------------ */

static enum lk_err sq_ws_set_quota(struct lk_store *base, const char *ws_id, int64_t quota,
                                   int64_t test_quota)
{
    return write_stmt(SQ(base), ST_WS_SET_QUOTA, true, "set quota", "snn", ws_id, quota,
                      test_quota);
}

static int row_credit(sqlite3_stmt *st, void *arg)
{
    struct lk_credit_account *a = arg;
    memset(a, 0, sizeof(*a));
    col_text(st, 0, a->workspace_id, sizeof(a->workspace_id));
    a->balance = sqlite3_column_int64(st, 1);
    a->leased = sqlite3_column_int64(st, 2);
    a->spent = sqlite3_column_int64(st, 3);
    a->topped_up = sqlite3_column_int64(st, 4);
    return 1;
}

static enum lk_err sq_credits_get(struct lk_store *base, const char *ws_id,
                                  struct lk_credit_account *out)
{
    enum lk_err e = read_stmt(SQ(base), ST_CREDIT_GET, true, row_credit, out, "get credits", "s",
                              ws_id);
    if (e == LK_ERR_NOT_FOUND) {
        memset(out, 0, sizeof(*out));
        snprintf(out->workspace_id, sizeof(out->workspace_id), "%s", ws_id);
        e = LK_OK;
    }
    return e;
}

static enum lk_err sq_credits_move(struct lk_store *base, const char *ws_id, int64_t d_balance,
                                   int64_t d_leased, int64_t d_spent, int64_t d_topped_up)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu); /* recursive: keeps the two statements together */
    e = write_stmt(s, ST_CREDIT_ENSURE, false, "open credit account", "s", ws_id);
    if (e == LK_OK)
        e = write_stmt(s, ST_CREDIT_MOVE, true, "move credits", "siiii", ws_id, d_balance,
                       d_leased, d_spent, d_topped_up);
    pthread_mutex_unlock(&s->mu);
    return e == LK_ERR_NOT_FOUND ? LK_ERR_CONFLICT : e;
}

struct credit_cb {
    lk_credit_cb cb;
    void *arg;
};

static int row_credit_cb(sqlite3_stmt *st, void *arg)
{
    struct credit_cb *c = arg;
    struct lk_credit_account a;
    row_credit(st, &a);
    return c->cb(c->arg, &a);
}

static enum lk_err sq_credits_scan(struct lk_store *base, lk_credit_cb cb, void *arg)
{
    struct credit_cb c = {cb, arg};
    return read_stmt(SQ(base), ST_CREDIT_SCAN, false, row_credit_cb, &c, "scan credits", "");
}

static enum lk_err sq_ledger_add(struct lk_store *base, struct lk_ledger_row *r)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s, ST_LEDGER_ADD, false, "add ledger entry", "ssinssi", r->workspace_id,
                   r->kind, r->amount, r->period > 0 ? r->period : (int64_t)-1, r->actor, r->note,
                   r->created_at);
    if (e == LK_OK)
        r->id = sqlite3_last_insert_rowid(s->db);
    pthread_mutex_unlock(&s->mu);
    return e;
}

struct ledger_cb {
    lk_ledger_cb cb;
    void *arg;
};

static int row_ledger(sqlite3_stmt *st, void *arg)
{
    struct ledger_cb *c = arg;
    struct lk_ledger_row r;

    memset(&r, 0, sizeof(r));
    r.id = sqlite3_column_int64(st, 0);
    col_text(st, 1, r.workspace_id, sizeof(r.workspace_id));
    col_text(st, 2, r.kind, sizeof(r.kind));
    r.amount = sqlite3_column_int64(st, 3);
    r.period = col_opt_i64(st, 4, 0);
    col_text(st, 5, r.actor, sizeof(r.actor));
    col_text(st, 6, r.note, sizeof(r.note));
    r.created_at = sqlite3_column_int64(st, 7);
    return c->cb(c->arg, &r);
}

static enum lk_err sq_ledger_list(struct lk_store *base, const char *ws_id, int64_t before_id,
                                  int limit, lk_ledger_cb cb, void *arg)
{
    struct ledger_cb c = {cb, arg};
    return read_stmt(SQ(base), ST_LEDGER_LIST, false, row_ledger, &c, "list ledger", "sii", ws_id,
                     before_id > 0 ? before_id : INT64_MAX, (int64_t)limit);
}

static enum lk_err sq_counter_add(struct lk_store *base, enum lk_counter_kind kind,
                                  const struct lk_counter_row *r)
{
    struct sqlite_store *s = SQ(base);

    switch (kind) {
    case LK_CTR_QUOTA:
        return write_stmt(s, ST_QUOTA_ADD, false, "add quota", "siii", r->workspace_id, r->period,
                          r->n, r->n_test);
    case LK_CTR_SPEND:
        return write_stmt(s, ST_SPEND_ADD, false, "add key spend", "iii", r->key_rowid, r->period,
                          r->n);
    case LK_CTR_USAGE:
        return write_stmt(s, ST_USAGE_ADD, false, "add usage", "iiii", r->key_rowid, r->period,
                          (int64_t)r->code, r->n);
    }
    return LK_ERR_INTERNAL;
}

struct ctr_ref {
    enum lk_counter_kind kind;
    const struct lk_counter_row *r;
};

static int ctr_order(const void *a, const void *b)
{
    const struct ctr_ref *x = a, *y = b;

    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->r->key_rowid != y->r->key_rowid)
        return x->r->key_rowid < y->r->key_rowid ? -1 : 1;
    return (x->r->period > y->r->period) - (x->r->period < y->r->period);
}

/* A statement a row, in the caller's transaction, in key order: the upserts walk
 * each counter table's index forwards instead of jumping about it. Sums do not
 * depend on the order. */
static enum lk_err sq_counters_add(struct lk_store *base, const enum lk_counter_kind *kinds,
                                   const struct lk_counter_row *rows, size_t n)
{
    struct ctr_ref *refs;
    enum lk_err e = LK_OK;

    if (n == 0)
        return LK_OK;
    refs = lk_malloc(n * sizeof(*refs));
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct ctr_ref){kinds[i], &rows[i]};
    qsort(refs, n, sizeof(*refs), ctr_order);
    for (size_t i = 0; i < n && e == LK_OK; i++)
        e = sq_counter_add(base, refs[i].kind, refs[i].r);
    free(refs);
    return e;
}

static enum lk_err sq_counter_raise(struct lk_store *base, enum lk_counter_kind kind,
                                    const struct lk_counter_row *r)
{
    struct sqlite_store *s = SQ(base);

    switch (kind) {
    case LK_CTR_QUOTA:
        return write_stmt(s, ST_QUOTA_RAISE, false, "raise quota", "siii", r->workspace_id,
                          r->period, r->n, r->n_test);
    case LK_CTR_SPEND:
        return write_stmt(s, ST_SPEND_RAISE, false, "raise key spend", "iii", r->key_rowid,
                          r->period, r->n);
    case LK_CTR_USAGE:
        return write_stmt(s, ST_USAGE_RAISE, false, "raise usage", "iiii", r->key_rowid, r->period,
                          (int64_t)r->code, r->n);
    }
    return LK_ERR_INTERNAL;
}

struct counter_cb {
    lk_counter_cb cb;
    void *arg;
};

static int row_counter(sqlite3_stmt *st, void *arg)
{
    struct counter_cb *c = arg;
    struct lk_counter_row r;

    memset(&r, 0, sizeof(r));
    col_text(st, 0, r.workspace_id, sizeof(r.workspace_id));
    r.key_rowid = sqlite3_column_int64(st, 1);
    r.period = sqlite3_column_int64(st, 2);
    r.code = sqlite3_column_int(st, 3);
    r.n = sqlite3_column_int64(st, 4);
    r.n_test = sqlite3_column_int64(st, 5);
    return c->cb(c->arg, &r);
}

static enum lk_err sq_counter_scan(struct lk_store *base, enum lk_counter_kind kind,
                                   int64_t key_rowid, int64_t from, int64_t to, lk_counter_cb cb,
                                   void *arg)
{
    static const enum stmt_id ids[] = {[LK_CTR_QUOTA] = ST_QUOTA_SCAN,
                                       [LK_CTR_SPEND] = ST_SPEND_SCAN,
                                       [LK_CTR_USAGE] = ST_USAGE_LIST};
    struct counter_cb c = {cb, arg};
    enum stmt_id id = kind == LK_CTR_USAGE && key_rowid == 0 ? ST_USAGE_HOUR : ids[kind];
    return read_stmt(SQ(base), id, false, row_counter, &c, "scan counters", "iii", key_rowid, from,
                     to);
}

static enum lk_err sq_usage_scan_ws(struct lk_store *base, const char *ws_id, int64_t from,
                                    int64_t to, lk_counter_cb cb, void *arg)
{
    struct counter_cb c = {cb, arg};
    return read_stmt(SQ(base), ST_USAGE_WS, false, row_counter, &c, "scan workspace usage", "sii",
                     ws_id, from, to);
}

static enum lk_err sq_counter_prune(struct lk_store *base, int64_t usage_before,
                                    int64_t day_before)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e = write_stmt(s, ST_PRUNE_USAGE, false, "prune usage", "i", usage_before);

    if (e == LK_OK)
        e = write_stmt(s, ST_PRUNE_QUOTA, false, "prune quota", "i", day_before);
    if (e == LK_OK)
        e = write_stmt(s, ST_PRUNE_SPEND, false, "prune spend", "i", day_before);
    return e;
}

/* --- invitations ------------------------------------------------------------------- */

static int row_invitation(sqlite3_stmt *st, void *arg)
{
    struct lk_invitation_row *r = arg;
    memset(r, 0, sizeof(*r));
    col_text(st, 0, r->id, sizeof(r->id));
    col_text(st, 1, r->workspace_id, sizeof(r->workspace_id));
    col_text(st, 2, r->email, sizeof(r->email));
    r->role = (enum lk_role)sqlite3_column_int(st, 3);
    col_blob32(st, 4, r->digest);
    col_text(st, 5, r->invited_by, sizeof(r->invited_by));
    r->created_at = sqlite3_column_int64(st, 6);
    r->expires_at = sqlite3_column_int64(st, 7);
    return 1;
}

struct invitation_cb {
    lk_invitation_cb cb;
    void *arg;
};

static int row_invitation_cb(sqlite3_stmt *st, void *arg)
{
    struct invitation_cb *ic = arg;
    struct lk_invitation_row r;
    row_invitation(st, &r);
    return ic->cb(ic->arg, &r);
}

static enum lk_err sq_invitation_insert(struct lk_store *base, const struct lk_invitation_row *r)
{
    return write_stmt(SQ(base), ST_INVITE_INSERT, false, "insert invitation", "sssidsii", r->id,
                      r->workspace_id, r->email, (int64_t)r->role, r->digest, r->invited_by,
                      r->created_at, r->expires_at);
}

static enum lk_err sq_invitation_by_digest(struct lk_store *base,
                                           const uint8_t digest[LK_DIGEST_LEN],
                                           struct lk_invitation_row *out)
{
    return read_stmt(SQ(base), ST_INVITE_BY_DIGEST, true, row_invitation, out, "get invitation",
                     "d", digest);
}

static enum lk_err sq_invitation_delete(struct lk_store *base, const char *ws_id, const char *id)
{
    return write_stmt(SQ(base), ST_INVITE_DELETE, true, "delete invitation", "ss", ws_id, id);
}

static enum lk_err sq_invitation_list(struct lk_store *base, const char *ws_id, int64_t now,
                                      lk_invitation_cb cb, void *arg)
{
    struct invitation_cb ic = {cb, arg};
    return read_stmt(SQ(base), ST_INVITE_LIST, false, row_invitation_cb, &ic, "list invitations",
                     "si", ws_id, now);
}

static enum lk_err sq_invitation_prune(struct lk_store *base, const char *ws_id, int64_t now)
{
    return write_stmt(SQ(base), ST_INVITE_PRUNE, false, "prune invitations", "si", ws_id, now);
}

static enum lk_err sq_invitation_count(struct lk_store *base, const char *ws_id, int64_t now,
                                       int64_t *out)
{
    *out = 0;
    return read_stmt(SQ(base), ST_INVITE_COUNT, false, row_count, out, "count invitations", "si",
                     ws_id, now);
}

/* --- scans for copying a database -------------------------------------------------- */

struct user_cb {
    lk_user_row_cb cb;
    void *arg;
};

static int row_user_cb(sqlite3_stmt *st, void *arg)
{
    struct user_cb *uc = arg;
    struct lk_user_row u;
    row_user(st, &u);
    return uc->cb(uc->arg, &u);
}

static enum lk_err sq_user_scan(struct lk_store *base, lk_user_row_cb cb, void *arg)
{
    struct user_cb uc = {cb, arg};
    return read_stmt(SQ(base), ST_USER_SCAN, false, row_user_cb, &uc, "scan users", "");
}

struct session_cb {
    lk_session_row_cb cb;
    void *arg;
};

static int row_session_cb(sqlite3_stmt *st, void *arg)
{
    struct session_cb *sc = arg;
    struct lk_session_row r;
    row_session(st, &r);
    return sc->cb(sc->arg, &r);
}

static enum lk_err sq_session_scan(struct lk_store *base, lk_session_row_cb cb, void *arg)
{
    struct session_cb sc = {cb, arg};
    return read_stmt(SQ(base), ST_SESSION_SCAN, false, row_session_cb, &sc, "scan sessions", "");
}

static enum lk_err sq_invitation_scan(struct lk_store *base, lk_invitation_cb cb, void *arg)
{
    struct invitation_cb ic = {cb, arg};
    return read_stmt(SQ(base), ST_INVITE_SCAN, false, row_invitation_cb, &ic, "scan invitations",
                     "");
}

static enum lk_err sq_ws_import(struct lk_store *base, const struct lk_ws_row *w)
{
    if (w->number <= 0)
        return LK_ERR_INVALID_REQUEST;
    return write_stmt(SQ(base), ST_WS_IMPORT, false, "import workspace", "isssiiinn", w->number,
                      w->id, w->name, w->key_prefix, (int64_t)w->key_format,
                      (int64_t)(w->is_operator ? 1 : 0), w->created_at, w->quota, w->test_quota);
}

static enum lk_err sq_ledger_scan(struct lk_store *base, lk_ledger_cb cb, void *arg)
{
    struct ledger_cb c = {cb, arg};
    return read_stmt(SQ(base), ST_LEDGER_SCAN, false, row_ledger, &c, "scan ledger", "");
}

static enum lk_err sq_audit_scan(struct lk_store *base, lk_audit_cb cb, void *arg)
{
    struct audit_cb ac = {cb, arg};
    return read_stmt(SQ(base), ST_AUDIT_SCAN, false, row_audit, &ac, "scan audit events", "");
}

/* --- the change log, nodes and leases ------------------------------------------------- */

/* Where the change log is read: the reader connection when there is one. */
static struct sqlite_store *rd(struct sqlite_store *s)
{
    return s->reader != NULL ? s->reader : s;
}

struct change_cb {
    lk_change_cb cb;
    void *arg;
};

static int row_change(sqlite3_stmt *st, void *arg)
{
    struct change_cb *c = arg;
    struct lk_change_row r;

    memset(&r, 0, sizeof(r));
    r.seq = sqlite3_column_int64(st, 0);
    r.kind = (enum lk_change_kind)sqlite3_column_int(st, 1);
    r.key_rowid = col_opt_i64(st, 2, 0);
    col_text(st, 3, r.ref_id, sizeof(r.ref_id));
    col_text(st, 4, r.workspace_id, sizeof(r.workspace_id));
    r.at = sqlite3_column_int64(st, 5);
    return c->cb(c->arg, &r);
}

static enum lk_err sq_changes_since(struct lk_store *base, int64_t after, int limit,
                                    lk_change_cb cb, void *arg)
{
    struct change_cb c = {cb, arg};
    return read_stmt(rd(SQ(base)), ST_CHANGES_SINCE, false, row_change, &c, "read changes", "ii",
                     after, (int64_t)(limit > 0 ? limit : 1));
}

static enum lk_err sq_changes_head(struct lk_store *base, int64_t *out)
{
    *out = 0;
    return read_stmt(rd(SQ(base)), ST_CHANGES_HEAD, false, row_count, out, "read change head",
                     "");
}

/* True when another connection committed since the last look (PRAGMA
 * data_version of the reader changes with every commit but its own, and the
 * reader never writes). */
static bool other_commit(struct sqlite_store *s)
{
    int64_t v = 0;

    if (s->reader == NULL ||
        read_stmt(s->reader, ST_DATA_VERSION, false, row_count, &v, "read data version", "") !=
            LK_OK)
        return false;
    if (v == s->data_version)
        return false;
    s->data_version = v;
    return true;
}

static enum lk_err sq_changes_wait(struct lk_store *base, int timeout_ms)
{
    struct sqlite_store *s = SQ(base);
    struct timespec until;
    uint64_t gen;
    int left = timeout_ms;

    pthread_mutex_lock(&wake_mu);
    gen = wake_gen;
    pthread_mutex_unlock(&wake_mu);
    while (left > 0) {
        int slice = left < WAIT_POLL_MS ? left : WAIT_POLL_MS;
        bool woken;

        until = lk_clock_after_ms(CLOCK_MONOTONIC, slice);
        pthread_mutex_lock(&wake_mu);
        while (wake_gen == gen && pthread_cond_timedwait(&wake_cv, &wake_mu, &until) == 0)
            ;
        woken = wake_gen != gen;
        pthread_mutex_unlock(&wake_mu);
        if (woken || other_commit(s))
            return LK_OK;
        left -= slice;
    }
    return LK_OK;
}

static enum lk_err sq_changes_prune(struct lk_store *base, int64_t before_at)
{
    return write_stmt(SQ(base), ST_CHANGES_PRUNE, false, "prune changes", "i", before_at);
}

static int row_key(sqlite3_stmt *st, void *arg)
{
    read_key(st, arg);
    return 1;
}

static enum lk_err sq_key_get_by_rowid(struct lk_store *base, int64_t rowid,
                                       struct lk_key_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(rd(SQ(base)), ST_KEY_BY_ROWID, true, row_key, out, "get key", "i", rowid);
}

static void read_identity(sqlite3_stmt *st, struct lk_identity_row *r)
{
    memset(r, 0, sizeof(*r));
    col_text(st, 0, r->id, sizeof(r->id));
    col_text(st, 1, r->workspace_id, sizeof(r->workspace_id));
    col_text(st, 2, r->external_id, sizeof(r->external_id));
    r->meta = col_dup(st, 3);
    r->created_at = sqlite3_column_int64(st, 4);
}

static int row_identity(sqlite3_stmt *st, void *arg)
{
    read_identity(st, arg);
    return 1;
}

struct identity_cb {
    lk_identity_row_cb cb;
    void *arg;
};

static int row_identity_cb(sqlite3_stmt *st, void *arg)
{
    struct identity_cb *c = arg;
    struct lk_identity_row r;
    int stop;

    read_identity(st, &r);
    stop = c->cb(c->arg, &r);
    lk_identity_row_release(&r);
    return stop;
}

static enum lk_err sq_identity_insert(struct lk_store *base, const struct lk_identity_row *r)
{
    return write_stmt(SQ(base), ST_IDN_INSERT, false, "insert identity", "ssssi", r->id,
                      r->workspace_id, r->external_id, r->meta ? r->meta : "{}", r->created_at);
}

static enum lk_err sq_identity_get(struct lk_store *base, const char *ws_id, const char *id,
                                   struct lk_identity_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(rd(SQ(base)), ST_IDN_GET, true, row_identity, out, "get identity", "ss",
                     ws_id, id);
}

static enum lk_err sq_identity_by_external(struct lk_store *base, const char *ws_id,
                                           const char *external_id, struct lk_identity_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(rd(SQ(base)), ST_IDN_BY_EXT, true, row_identity, out, "get identity", "ss",
                     ws_id, external_id);
}

static enum lk_err sq_identity_list(struct lk_store *base, const char *ws_id,
                                    const char *after_id, int limit, lk_identity_row_cb cb,
                                    void *arg)
{
    struct identity_cb c = {cb, arg};

    return read_stmt(rd(SQ(base)), ST_IDN_LIST, false, row_identity_cb, &c, "list identities",
                     "ssi", ws_id, after_id ? after_id : "", (int64_t)limit);
}

static int row_key_credits(sqlite3_stmt *st, void *arg)
{
    struct lk_key_credit_row *r = arg;

    r->key_rowid = sqlite3_column_int64(st, 0);
    r->gen = sqlite3_column_int64(st, 1);
    r->remaining = sqlite3_column_int64(st, 2);
    r->period = sqlite3_column_int64(st, 3);
    return 1;
}

static enum lk_err sq_key_credits_put(struct lk_store *base, const struct lk_key_credit_row *r)
{
    return write_stmt(SQ(base), ST_KCR_PUT, false, "write key credits", "iiii", r->key_rowid,
                      r->gen, r->remaining, r->period);
}

static enum lk_err sq_key_credits_get(struct lk_store *base, int64_t key_rowid,
                                      struct lk_key_credit_row *out)
{
    memset(out, 0, sizeof(*out));
    return read_stmt(rd(SQ(base)), ST_KCR_GET, true, row_key_credits, out, "read key credits",
                     "i", key_rowid);
}

static enum lk_err sq_node_put(struct lk_store *base, const struct lk_node_row *n)
{
    return write_stmt(SQ(base), ST_NODE_PUT, false, "register node", "ssii", n->id, n->name,
                      n->started_at, n->heartbeat_at);
}

static enum lk_err sq_node_heartbeat(struct lk_store *base, const char *id, int64_t now)
{
    return write_stmt(SQ(base), ST_NODE_BEAT, true, "node heartbeat", "si", id, now);
}

struct node_cb {
    lk_node_cb cb;
    void *arg;
};

static int row_node(sqlite3_stmt *st, void *arg)
{
    struct node_cb *c = arg;
    struct lk_node_row n;

    memset(&n, 0, sizeof(n));
    col_text(st, 0, n.id, sizeof(n.id));
    col_text(st, 1, n.name, sizeof(n.name));
    n.started_at = sqlite3_column_int64(st, 2);
    n.heartbeat_at = sqlite3_column_int64(st, 3);
    return c->cb(c->arg, &n);
}

static enum lk_err sq_node_list(struct lk_store *base, lk_node_cb cb, void *arg)
{
    struct node_cb c = {cb, arg};
    return read_stmt(SQ(base), ST_NODE_LIST, false, row_node, &c, "list nodes", "");
}

static enum lk_err sq_node_delete(struct lk_store *base, const char *id)
{
    return write_stmt(SQ(base), ST_NODE_DELETE, false, "delete node", "s", id);
}

static enum lk_err sq_lease_move(struct lk_store *base, const char *ws_id, const char *node_id,
                                 int64_t d)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu); /* recursive: keeps the statements together */
    e = write_stmt(s, ST_LEASE_ENSURE, false, "open lease", "ss", ws_id, node_id);
    if (e == LK_OK)
        e = write_stmt(s, ST_LEASE_MOVE, true, "move lease", "ssi", ws_id, node_id, d);
    /* A lease given back in full leaves no row behind. */
    if (e == LK_OK || e == LK_ERR_NOT_FOUND) {
        enum lk_err t = write_stmt(s, ST_LEASE_TIDY, false, "tidy lease", "ss", ws_id, node_id);
        if (e == LK_OK)
            e = t;
    }
    pthread_mutex_unlock(&s->mu);
    return e == LK_ERR_NOT_FOUND ? LK_ERR_CONFLICT : e;
}

struct lease_cb {
    lk_lease_cb cb;
    void *arg;
};

static int row_lease(sqlite3_stmt *st, void *arg)
{
    struct lease_cb *c = arg;
    struct lk_lease_row l;

    memset(&l, 0, sizeof(l));
    col_text(st, 0, l.workspace_id, sizeof(l.workspace_id));
    col_text(st, 1, l.node_id, sizeof(l.node_id));
    l.amount = sqlite3_column_int64(st, 2);
    l.op = sqlite3_column_int64(st, 3);
    return c->cb(c->arg, &l);
}

static enum lk_err sq_lease_mark(struct lk_store *base, const char *ws_id, const char *node_id,
                                 int64_t op)
{
    return write_stmt(SQ(base), ST_LEASE_MARK, true, "mark lease", "ssi", ws_id, node_id, op);
}

static enum lk_err sq_lease_scan(struct lk_store *base, const char *node_id, lk_lease_cb cb,
                                 void *arg)
{
    struct lease_cb c = {cb, arg};
    return read_stmt(SQ(base), ST_LEASE_SCAN, false, row_lease, &c, "scan leases", "s", node_id);
}

/* --- webhooks ------------------------------------------------------------------------- */

static void read_hook_ep(sqlite3_stmt *st, int c, struct lk_hook_endpoint_row *r)
{
    col_text(st, c + 0, r->id, sizeof(r->id));
    col_text(st, c + 1, r->workspace_id, sizeof(r->workspace_id));
    col_text(st, c + 2, r->url, sizeof(r->url));
    col_text(st, c + 3, r->events, sizeof(r->events));
    col_text(st, c + 4, r->description, sizeof(r->description));
    col_text(st, c + 5, r->salt, sizeof(r->salt));
    r->created_at = sqlite3_column_int64(st, c + 6);
}

static enum lk_err sq_hook_endpoint_insert(struct lk_store *base,
                                           const struct lk_hook_endpoint_row *r)
{
    return write_stmt(SQ(base), ST_HOOK_EP_INSERT, false, "insert webhook endpoint", "ssssssi",
                      r->id, r->workspace_id, r->url, r->events, r->description, r->salt,
                      r->created_at);
}

struct hook_ep_cb {
    lk_hook_endpoint_cb cb;
    void *arg;
};

static int row_hook_ep_cb(sqlite3_stmt *st, void *arg)
{
    struct hook_ep_cb *c = arg;
    struct lk_hook_endpoint_row r;

    memset(&r, 0, sizeof(r));
    read_hook_ep(st, 0, &r);
    return c->cb(c->arg, &r);
}

static enum lk_err sq_hook_endpoint_list(struct lk_store *base, const char *ws_id,
                                         lk_hook_endpoint_cb cb, void *arg)
{
    struct hook_ep_cb c = {cb, arg};

    return read_stmt(SQ(base), ST_HOOK_EP_LIST, false, row_hook_ep_cb, &c,
                     "list webhook endpoints", "s", ws_id);
}

static enum lk_err sq_hook_endpoint_delete(struct lk_store *base, const char *ws_id,
                                           const char *id)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu); /* recursive: keeps the statements together */
    e = write_stmt(s, ST_HOOK_EP_DELETE, true, "delete webhook endpoint", "ss", ws_id, id);
    if (e == LK_OK)
        e = write_stmt(s, ST_HOOK_EP_DEL_DELIVERIES, false, "delete webhook deliveries", "s", id);
    if (e == LK_OK)
        e = write_stmt(s, ST_HOOK_EP_DEL_ATTEMPTS, false, "delete webhook attempts", "s", id);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_hook_event_insert(struct lk_store *base, const struct lk_hook_event_row *r,
                                        int64_t due_ms, bool *inserted)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s, ST_HOOK_EV_INSERT, false, "insert webhook event", "ssssi", r->id,
                   r->workspace_id, r->type, r->payload, r->created_at);
    *inserted = e == LK_OK && sqlite3_changes(s->db) > 0;
    if (*inserted)
        e = write_stmt(s, ST_HOOK_EV_FANOUT, false, "queue webhook deliveries", "sssi", r->id,
                       r->workspace_id, r->type, due_ms);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int row_hook_job(sqlite3_stmt *st, void *arg)
{
    struct lk_hook_job *x = lk__hook_jobs_add(arg);

    col_text(st, 0, x->ev.id, sizeof(x->ev.id));
    col_text(st, 1, x->ev.workspace_id, sizeof(x->ev.workspace_id));
    col_text(st, 2, x->ev.type, sizeof(x->ev.type));
    col_text(st, 3, x->ev.payload, sizeof(x->ev.payload));
    x->ev.created_at = sqlite3_column_int64(st, 4);
    read_hook_ep(st, 5, &x->ep);
    x->attempt = sqlite3_column_int(st, 12) + 1;
    return 0;
}

static enum lk_err sq_hook_due(struct lk_store *base, int64_t now_ms, int limit,
                               struct lk__hook_jobs *j)
{
    return read_stmt(SQ(base), ST_HOOK_DUE, false, row_hook_job, j, "find due webhook deliveries",
                     "ii", now_ms, (int64_t)limit);
}

static enum lk_err sq_hook_lease(struct lk_store *base, const char *event_id,
                                 const char *endpoint_id, const char *node_id, int64_t now_ms,
                                 int64_t lease_until_ms)
{
    return write_stmt(SQ(base), ST_HOOK_LEASE, true, "lease webhook delivery", "ssisi", event_id,
                      endpoint_id, lease_until_ms, node_id, now_ms);
}

static enum lk_err sq_hook_attempt_done(struct lk_store *base, const char *node_id,
                                        const struct lk_hook_attempt_row *a,
                                        enum lk_hook_state state, int64_t next_ms)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s, ST_HOOK_ATTEMPT_INSERT, false, "log webhook attempt", "ssssiisii",
                   a->event_id, a->endpoint_id, a->workspace_id, a->type, (int64_t)a->attempt,
                   (int64_t)a->status, a->error, a->started_ms, a->finished_ms);
    if (e == LK_OK)
        e = write_stmt(s, ST_HOOK_DELIVERY_MOVE, false, "move webhook delivery", "sssiii",
                       a->event_id, a->endpoint_id, node_id, (int64_t)state, (int64_t)a->attempt,
                       next_ms);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_hook_release(struct lk_store *base, const char *node_id)
{
    return write_stmt(SQ(base), ST_HOOK_RELEASE, false, "release webhook leases", "s", node_id);
}

struct hook_attempt_cb {
    lk_hook_attempt_cb cb;
    void *arg;
};

static int row_hook_attempt_cb(sqlite3_stmt *st, void *arg)
{
    struct hook_attempt_cb *c = arg;
    struct lk_hook_attempt_row r;

    memset(&r, 0, sizeof(r));
    r.id = sqlite3_column_int64(st, 0);
    col_text(st, 1, r.event_id, sizeof(r.event_id));
    col_text(st, 2, r.endpoint_id, sizeof(r.endpoint_id));
    col_text(st, 3, r.workspace_id, sizeof(r.workspace_id));
    col_text(st, 4, r.type, sizeof(r.type));
    r.attempt = sqlite3_column_int(st, 5);
    r.status = sqlite3_column_int(st, 6);
    col_text(st, 7, r.error, sizeof(r.error));
    r.started_ms = sqlite3_column_int64(st, 8);
    r.finished_ms = sqlite3_column_int64(st, 9);
    return c->cb(c->arg, &r);
}

static enum lk_err sq_hook_attempt_list(struct lk_store *base, const char *ws_id,
                                        const char *endpoint_id, int64_t before_id, int limit,
                                        lk_hook_attempt_cb cb, void *arg)
{
    struct hook_attempt_cb c = {cb, arg};

    return read_stmt(SQ(base), ST_HOOK_ATTEMPT_LIST, false, row_hook_attempt_cb, &c,
                     "list webhook attempts", "ssii", ws_id, endpoint_id,
                     before_id > 0 ? before_id : INT64_MAX, (int64_t)limit);
}

static enum lk_err sq_hook_alarm(struct lk_store *base, const char *ws_id, const char *name,
                                 bool set, int64_t now, bool *changed)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    if (set)
        e = write_stmt(s, ST_HOOK_ALARM_SET, false, "set webhook alarm", "ssi", ws_id, name, now);
    else
        e = write_stmt(s, ST_HOOK_ALARM_CLEAR, false, "clear webhook alarm", "ss", ws_id, name);
    *changed = e == LK_OK && sqlite3_changes(s->db) > 0;
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_hook_threshold_set(struct lk_store *base, const char *ws_id,
                                         int64_t threshold)
{
    return write_stmt(SQ(base), ST_HOOK_THRESHOLD_SET, false, "set credits threshold", "sn",
                      ws_id, threshold);
}

static enum lk_err sq_hook_threshold_get(struct lk_store *base, const char *ws_id, int64_t *out)
{
    enum lk_err e = read_stmt(SQ(base), ST_HOOK_THRESHOLD_GET, true, row_count, out,
                              "get credits threshold", "s", ws_id);

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

static int row_hook_ws(sqlite3_stmt *st, void *arg)
{
    struct hook_ws_cb *c = arg;
    char ws[LK_ID_MAX];

    col_text(st, 0, ws, sizeof(ws));
    return c->cb(c->arg, ws, col_opt_i64(st, 1, -1));
}

static enum lk_err sq_hook_workspaces(struct lk_store *base, lk_hook_ws_cb cb, void *arg)
{
    struct hook_ws_cb c = {cb, arg};

    return read_stmt(SQ(base), ST_HOOK_WORKSPACES, false, row_hook_ws, &c,
                     "list webhook workspaces", "");
}

static enum lk_err sq_hook_prune(struct lk_store *base, int64_t before_s, int64_t before_ms)
{
    struct sqlite_store *s = SQ(base);
    enum lk_err e;

    pthread_mutex_lock(&s->mu);
    e = write_stmt(s, ST_HOOK_PRUNE_ATTEMPTS, false, "prune webhook attempts", "i", before_ms);
    if (e == LK_OK)
        e = write_stmt(s, ST_HOOK_PRUNE_EVENTS, false, "prune webhook events", "i", before_s);
    if (e == LK_OK)
        e = write_stmt(s, ST_HOOK_PRUNE_DELIVERIES, false, "prune webhook deliveries", "");
    pthread_mutex_unlock(&s->mu);
    return e;
}

static enum lk_err sq_hook_key_spend(struct lk_store *base, int64_t key_rowid, int64_t day,
                                     int64_t *out)
{
    return read_stmt(SQ(base), ST_HOOK_KEY_SPEND, false, row_count, out, "read key spend", "ii",
                     key_rowid, day);
}

const struct lk_store_ops lk__store_sqlite_ops = {
    .scheme = "sqlite:",
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .begin_background = sq_begin_background,
    .ws_insert = sq_ws_insert,
    .ws_get = sq_ws_get,
    .ws_list = sq_ws_list,
    .ws_count = sq_ws_count,
    .key_insert = sq_key_insert,
    .keys_insert = sq_keys_insert,
    .key_update = sq_key_update,
    .key_get = sq_key_get,
    .key_list = sq_key_list,
    .key_scan = sq_key_scan,
    .key_rowid_max = sq_key_rowid_max,
    .keys_touch = sq_keys_touch,
    .audit_insert = sq_audit_insert,
    .audit_list = sq_audit_list,
    .ws_get_by_number = sq_ws_get_by_number,
    .user_insert = sq_user_insert,
    .user_by_email = sq_user_by_email,
    .user_get = sq_user_get,
    .member_put = sq_member_put,
    .member_get = sq_member_get,
    .member_delete = sq_member_delete,
    .member_list = sq_member_list,
    .member_list_user = sq_member_list_user,
    .member_count = sq_member_count,
    .session_insert = sq_session_insert,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .ws_set_quota = sq_ws_set_quota,
    .credits_get = sq_credits_get,
    .credits_move = sq_credits_move,
    .credits_scan = sq_credits_scan,
    .ledger_add = sq_ledger_add,
    .ledger_list = sq_ledger_list,
    .counter_add = sq_counter_add,
    .counters_add = sq_counters_add,
    .counter_raise = sq_counter_raise,
    .counter_scan = sq_counter_scan,
    .usage_scan_ws = sq_usage_scan_ws,
    .permissions_in_use = sq_permissions_in_use,
    .counter_prune = sq_counter_prune,
    .invitation_insert = sq_invitation_insert,
    .invitation_by_digest = sq_invitation_by_digest,
    .invitation_delete = sq_invitation_delete,
    .invitation_list = sq_invitation_list,
    .invitation_count = sq_invitation_count,
    .invitation_prune = sq_invitation_prune,
    .user_scan = sq_user_scan,
    .session_scan = sq_session_scan,
    .invitation_scan = sq_invitation_scan,
    .ws_import = sq_ws_import,
    .ledger_scan = sq_ledger_scan,
    .audit_scan = sq_audit_scan,
    .changes_since = sq_changes_since,
    .changes_head = sq_changes_head,
    .changes_wait = sq_changes_wait,
    .changes_prune = sq_changes_prune,
    .key_get_by_rowid = sq_key_get_by_rowid,
    .node_put = sq_node_put,
    .node_heartbeat = sq_node_heartbeat,
    .node_list = sq_node_list,
    .node_delete = sq_node_delete,
    .lease_move = sq_lease_move,
    .lease_mark = sq_lease_mark,
    .lease_scan = sq_lease_scan,
    .hook_endpoint_insert = sq_hook_endpoint_insert,
    .hook_endpoint_list = sq_hook_endpoint_list,
    .hook_endpoint_delete = sq_hook_endpoint_delete,
    .hook_event_insert = sq_hook_event_insert,
    .hook_due = sq_hook_due,
    .hook_lease = sq_hook_lease,
    .hook_attempt_done = sq_hook_attempt_done,
    .hook_release = sq_hook_release,
    .hook_attempt_list = sq_hook_attempt_list,
    .hook_alarm = sq_hook_alarm,
    .hook_threshold_set = sq_hook_threshold_set,
    .hook_threshold_get = sq_hook_threshold_get,
    .hook_key_spend = sq_hook_key_spend,
    .hook_workspaces = sq_hook_workspaces,
    .hook_prune = sq_hook_prune,
    .identity_insert = sq_identity_insert,
    .identity_get = sq_identity_get,
    .identity_by_external = sq_identity_by_external,
    .identity_list = sq_identity_list,
    .key_credits_put = sq_key_credits_put,
    .key_credits_get = sq_key_credits_get,
};
