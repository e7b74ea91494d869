#include "service/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/common.h"
#include "store/store.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct rowid_pair {
    int64_t from, to;
};

struct copy {
    struct lk_store *src, *dst;
    struct lk_errinfo *ei;
    struct lk_migrate_counts n;
    /* the source's workspaces, read before the copy (in number order) */
    struct lk_ws_row *ws;
    size_t n_ws, cap_ws;
    /* key row ids, source → target, sorted by the source's */
    struct rowid_pair *keys;
    size_t n_keys, cap_keys;
    /* keys read but not yet written: KEY_BATCH a lk_store_keys_insert (owned copies) */
    struct lk_key_row *batch;
    int64_t *batch_from; /* their rowids in the source */
    size_t n_batch;
    enum lk_err e; /* the first failure a callback met */
    int64_t nodes, live_nodes, leased_ws;
    char node_name[LK_NODE_NAME_MAX + 1], leased_id[LK_ID_MAX];
    int64_t leased;
    int64_t now;
};

/* A write the target refused: stops the scan, and the transaction rolls back. */
static int refused(struct copy *c, enum lk_err e, const char *what, const char *id)
{
    c->e = e;
    lk_errinfo_set(c->ei, e, "copy", "the target refused %s %s: %s", what, id,
                   e == LK_ERR_CONFLICT
                       ? "it conflicts with a row there, or refers to a row that is missing"
                       : lk_err_message(e));
    return 1;
}

/* After a scan of the source: the callback's failure, or the scan's own. */
static enum lk_err scanned(struct copy *c, enum lk_err e, const char *what)
{
    if (c->e != LK_OK)
        return c->e;
    if (e != LK_OK)
        return lk_errinfo_set(c->ei, e, "from", "cannot read %s from the source: %s", what,
                              lk_err_message(e));
    return LK_OK;
}

static int collect_ws(void *arg, const struct lk_ws_row *w)
{
    struct copy *c = arg;

    c->ws = lk_grow(c->ws, c->n_ws, &c->cap_ws, sizeof(*c->ws));
    c->ws[c->n_ws++] = *w;
    return 0;
}

static int by_number(const void *a, const void *b)
{
    const struct lk_ws_row *x = a, *y = b;
    return (x->number > y->number) - (x->number < y->number);
}

static int by_source_rowid(const void *a, const void *b)
{
    const struct rowid_pair *x = a, *y = b;
    return (x->from > y->from) - (x->from < y->from);
}

/* The target's row id of the source's key, or 0 when the source has no such key. */
static int64_t target_rowid(const struct copy *c, int64_t from)
{
    size_t lo = 0, hi = c->n_keys;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->keys[mid].from == from)
            return c->keys[mid].to;
        if (c->keys[mid].from < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* --- the checks before the copy ------------------------------------------------------ */

static int count_node(void *arg, const struct lk_node_row *n)
{
    struct copy *c = arg;

    if (c->nodes++ == 0)
        snprintf(c->node_name, sizeof(c->node_name), "%s", n->name);
    if (n->heartbeat_at >= c->now - LK_MIGRATE_LIVE_NODE_S)
        c->live_nodes++;
    return 0;
}

static int find_leased(void *arg, const struct lk_credit_account *a)
{
    struct copy *c = arg;

    if (a->leased != 0) {
        if (c->leased_ws++ == 0) {
            snprintf(c->leased_id, sizeof(c->leased_id), "%s", a->workspace_id);
            c->leased = a->leased;
        }
    }
    return 0;
}

static int any_user(void *arg, const struct lk_user_row *u)
{
    (void)u;
    *(bool *)arg = true;
    return 1;
}

/* LK_OK when s holds no workspace and no user. */
static enum lk_err target_empty(struct lk_store *s, struct lk_errinfo *ei)
{
    int64_t n = 0;
    bool user = false;
    enum lk_err e;

    if ((e = lk_store_ws_count(s, &n)) != LK_OK ||
        (e = lk_store_user_scan(s, any_user, &user)) != LK_OK)
        return lk_errinfo_set(ei, e, "to", "cannot read the target: %s", lk_err_message(e));
    if (n > 0 || user)
        return lk_errinfo_set(ei, LK_ERR_CONFLICT, "to",
                              "the target database is not empty (it has %s); migrate only "
                              "into a new, empty database",
                              n > 0 ? "workspaces" : "users");
    return LK_OK;
}

/* A server running on an SQLite source holds an exclusive lock on a file
 * beside it (`<path>.serve.lock`, or its counter file `<path>.counters`):
 * taking them here both detects one and keeps one from starting during the
 * copy. fds[] gets what was taken (-1: none). */
static const char *const source_locks[] = {".serve.lock", ".counters"};

static enum lk_err take_source_locks(const char *url, int fds[], struct lk_errinfo *ei)
{
    char path[4096];

    for (size_t i = 0; i < LK_ARRAY_LEN(source_locks); i++)
        fds[i] = -1;
    if (strncmp(url, "sqlite:", 7) != 0)
        return LK_OK;
    for (size_t i = 0; i < LK_ARRAY_LEN(source_locks); i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s%s", url + 7, source_locks[i]) >= sizeof(path))
            continue;
        if ((fds[i] = open(path, O_RDWR | O_CLOEXEC)) < 0)
            continue; /* no such file: no server ever served it here */
        if (flock(fds[i], LOCK_EX | LOCK_NB) != 0)
            return lk_errinfo_set(ei, LK_ERR_CONFLICT, "from",
                                  "a latchkey server is running on the source; stop it first");
    }
    return LK_OK;
}

static enum lk_err check_source(struct copy *c)
{
    enum lk_err e;

    /* A node deletes its row when it stops cleanly: a row is a node running,
     * or one killed whose last counts are still in its counter file. A backend
     * without nodes answers unavailable here; the locks and leases still speak. */
    if (lk_store_node_list(c->src, count_node, c) == LK_OK && c->live_nodes > 0)
        return lk_errinfo_set(c->ei, LK_ERR_CONFLICT, "from",
                              "%lld latchkey node(s) are running on the source (%s among "
                              "them), or were killed moments ago; stop every one first (a "
                              "killed one: start latchkey again with its state directory and "
                              "stop it)",
                              (long long)c->live_nodes, c->node_name);
    if (c->nodes > 0)
        return lk_errinfo_set(c->ei, LK_ERR_CONFLICT, "from",
                              "node %s did not stop cleanly on the source; start latchkey "
                              "again with its state directory and stop it, then migrate",
                              c->node_name);
    /* Credits leased into a server's memory are neither balance nor spent yet:
     * only that server knows how many it spent. */
    if ((e = scanned(c, lk_store_credits_scan(c->src, find_leased, c), "credits")) != LK_OK)
        return e;
    if (c->leased_ws > 0)
        return lk_errinfo_set(c->ei, LK_ERR_CONFLICT, "from",
                              "workspace %s has %lld credits leased by a server that did not "
                              "stop cleanly; start latchkey on the source and stop it again (it "
                              "settles the leases), then migrate",
                              c->leased_id, (long long)c->leased);
    return LK_OK;
}

/* --- the copy, one transaction on the target --------------------------------------- */

static int copy_user(void *arg, const struct lk_user_row *u)
{
    struct copy *c = arg;
    enum lk_err e = lk_store_user_insert(c->dst, u);

    if (e != LK_OK)
        return refused(c, e, "user", u->id);
    c->n.users++;
    return 0;
}

static int copy_member(void *arg, const struct lk_member_row *m)
{
    struct copy *c = arg;
    enum lk_err e = lk_store_member_put(c->dst, m);

    if (e != LK_OK)
        return refused(c, e, "the membership of user", m->user_id);
    c->n.members++;
    return 0;
}

struct identity_page {
    struct copy *c;
    char last[LK_ID_MAX];
    int rows;
};

static int copy_identity(void *arg, const struct lk_identity_row *r)
{
    struct identity_page *p = arg;
    enum lk_err e = lk_store_identity_insert(p->c->dst, r);

    if (e != LK_OK)
        return refused(p->c, e, "identity", r->id);
    memcpy(p->last, r->id, LK_ID_MAX);
    p->rows++;
    return 0;
}

/* The identities of workspace ws_id, a page at a time in id order. */
static enum lk_err copy_identities(struct copy *c, const char *ws_id)
{
    struct identity_page p = {.c = c};
    enum lk_err e;

    do {
        p.rows = 0;
        e = lk_store_identity_list(c->src, ws_id, p.last, 100, copy_identity, &p);
    } while (e == LK_OK && c->e == LK_OK && p.rows == 100);
    return e;
}

static int copy_session(void *arg, const struct lk_session_row *r)
{
    struct copy *c = arg;
    enum lk_err e = lk_store_session_insert(c->dst, r);

    if (e != LK_OK)
        return refused(c, e, "a session of user", r->user_id);
    c->n.sessions++;
    return 0;
}

static int copy_invitation(void *arg, const struct lk_invitation_row *r)
{
    struct copy *c = arg;
    enum lk_err e = lk_store_invitation_insert(c->dst, r);

    if (e != LK_OK)
        return refused(c, e, "invitation", r->id);
    c->n.invitations++;
    return 0;
}

/* keys a write on the target: one statement on PostgreSQL, whose change log then
 * costs one entry a key, not a transaction growing quadratically */
#define KEY_BATCH 500

/* Writes the batch, its last-used times and its row ids; 1 when refused. */
static int flush_keys(struct copy *c)
{
    struct lk_touch t[KEY_BATCH];
    size_t n = c->n_batch, nt = 0;
    enum lk_err e = n > 0 ? lk_store_keys_insert(c->dst, c->batch, n) : LK_OK;
    int stop = 0;

    /* Refused: a key conflicts or lacks its workspace, and the batch left
     * nothing. Which key, one at a time says (the copy rolls back anyway). */
    for (size_t i = 0; i < n && e == LK_ERR_CONFLICT && !stop; i++) {
        struct lk_key_row k = c->batch[i];
        enum lk_err e1 = lk_store_key_insert(c->dst, &k);
        if (e1 != LK_OK) {
            e = e1;
            stop = refused(c, e1, "key", k.id);
        }
    }
    if (e != LK_OK && !stop)
        stop = refused(c, e, "one of the keys from", c->batch[0].id);
    for (size_t i = 0; i < n && !stop; i++) {
        /* A backend may leave last_used_at to the usage recorder's one way of
         * writing it; this keeps it whichever way the insert took it. */
        if (c->batch[i].last_used_at > 0)
            t[nt++] = (struct lk_touch){c->batch[i].rowid, c->batch[i].last_used_at};
        c->keys = lk_grow(c->keys, c->n_keys, &c->cap_keys, sizeof(*c->keys));
        c->keys[c->n_keys++] = (struct rowid_pair){c->batch_from[i], c->batch[i].rowid};
        c->n.keys++;
    }
    if (!stop && nt > 0 && (e = lk_store_keys_touch(c->dst, t, nt)) != LK_OK)
        stop = refused(c, e, "the last use of a key from", c->batch[0].id);
    for (size_t i = 0; i < n; i++)
        lk_key_row_release(&c->batch[i]);
    c->n_batch = 0;
    return stop;
}

static int copy_key(void *arg, const struct lk_key_row *row)
{
    struct copy *c = arg;

    lk_key_row_copy(&c->batch[c->n_batch], row);
    c->batch_from[c->n_batch++] = row->rowid;
    return c->n_batch == KEY_BATCH ? flush_keys(c) : 0;
}

static int copy_credits(void *arg, const struct lk_credit_account *a)
{
    struct copy *c = arg;
    enum lk_err e;

    if (a->leased != 0) /* checked before; a server started since */
        return refused(c, LK_ERR_CONFLICT, "the leased credits of workspace", a->workspace_id);
    e = lk_store_credits_move(c->dst, a->workspace_id, a->balance, 0, a->spent, a->topped_up);
    if (e != LK_OK)
        return refused(c, e, "the credits of workspace", a->workspace_id);
    c->n.credit_accounts++;
    return 0;
}

static int copy_ledger(void *arg, const struct lk_ledger_row *row)
{
    struct copy *c = arg;
    struct lk_ledger_row r = *row;
    enum lk_err e = lk_store_ledger_add(c->dst, &r);

    if (e != LK_OK)
        return refused(c, e, "a ledger entry of workspace", row->workspace_id);
    c->n.ledger++;
    return 0;
}

static int copy_quota(void *arg, const struct lk_counter_row *row)
{
    struct copy *c = arg;
    enum lk_err e = lk_store_counter_add(c->dst, LK_CTR_QUOTA, row);

    if (e != LK_OK)
        return refused(c, e, "a quota day of workspace", row->workspace_id);
    c->n.quota_days++;
    return 0;
}

/* Spend and usage rows name a key by row id, which the target numbers afresh. */
static int copy_key_counter(struct copy *c, enum lk_counter_kind kind,
                            const struct lk_counter_row *row, int64_t *count)
{
    struct lk_counter_row r = *row;
    enum lk_err e;

    if ((r.key_rowid = target_rowid(c, row->key_rowid)) == 0) {
        c->n.skipped++;
        return 0;
    }
    if ((e = lk_store_counter_add(c->dst, kind, &r)) != LK_OK)
        return refused(c, e, kind == LK_CTR_SPEND ? "a spend day" : "a usage hour", "of a key");
    (*count)++;
    return 0;
}

static int copy_spend(void *arg, const struct lk_counter_row *row)
{
    struct copy *c = arg;
    return copy_key_counter(c, LK_CTR_SPEND, row, &c->n.spend_days);
}

static int copy_usage(void *arg, const struct lk_counter_row *row)
{
    struct copy *c = arg;
    return copy_key_counter(c, LK_CTR_USAGE, row, &c->n.usage_rows);
}

/* What checks left of a key's own credits: key_credits is not part of the key
 * row a copy inserts, and without it the copy would read the set number. */
static int copy_key_credits(void *arg, const struct lk_key_row *k)
{
    struct copy *c = arg;
    int64_t to;
    enum lk_err e;

    if (!k->has_credits || k->credits_now < 0)
        return 0;
    if ((to = target_rowid(c, k->rowid)) <= 0)
        return refused(c, LK_ERR_NOT_FOUND, "the credits of key", k->id);
    e = lk_store_key_credits_put(
        c->dst, &(struct lk_key_credit_row){to, k->credits_gen, k->credits_now, k->credits_period});
    return e == LK_OK ? 0 : refused(c, e, "the credits of key", k->id);
}

static int copy_audit(void *arg, const struct lk_audit_event *ev)
{
    struct copy *c = arg;
    enum lk_err e = lk_store_audit_insert(c->dst, &ev->row);

    if (e != LK_OK)
        return refused(c, e, "an audit event of workspace", ev->row.workspace_id);
    c->n.audit_events++;
    return 0;
}

/* Every row of a counter kind, whatever its period. */
static enum lk_err copy_counters(struct copy *c, enum lk_counter_kind kind, lk_counter_cb cb,
                                 const char *what)
{
    return scanned(c, lk_store_counter_scan(c->src, kind, 0, INT64_MIN, INT64_MAX, cb, c), what);
}

static enum lk_err copy_all(struct lk_store *dst, void *arg)
{
    struct copy *c = arg;
    enum lk_err e;

    /* It may run again (a retried transaction): start from nothing. */
    memset(&c->n, 0, sizeof(c->n));
    c->n_keys = 0;
    for (size_t i = 0; i < c->n_batch; i++) /* left by a failed try */
        lk_key_row_release(&c->batch[i]);
    c->n_batch = 0;
    c->e = LK_OK;
    /* Again inside the transaction: nobody wrote the target since the check. */
    if ((e = target_empty(dst, c->ei)) != LK_OK)
        return e;
    /* With their numbers: they are known outside (Flexweg's storage folder). */
    for (size_t i = 0; i < c->n_ws; i++) {
        if ((e = lk_store_ws_import(dst, &c->ws[i])) != LK_OK) {
            refused(c, e, "workspace", c->ws[i].id);
            return e;
        }
        c->n.workspaces++;
    }
    if ((e = scanned(c, lk_store_user_scan(c->src, copy_user, c), "users")) != LK_OK)
        return e;
    for (size_t i = 0; i < c->n_ws; i++)
        if ((e = scanned(c, lk_store_member_list(c->src, c->ws[i].id, copy_member, c),
                         "members")) != LK_OK ||
            (e = scanned(c, copy_identities(c, c->ws[i].id), "identities")) != LK_OK)
            return e;
    if ((e = scanned(c, lk_store_session_scan(c->src, copy_session, c), "sessions")) != LK_OK ||
        (e = scanned(c, lk_store_invitation_scan(c->src, copy_invitation, c), "invitations")) !=
            LK_OK ||
        (e = scanned(c, lk_store_key_scan(c->src, LK_KEY_COLS_ALL, copy_key, c), "keys")) != LK_OK ||
        (e = scanned(c, flush_keys(c) ? c->e : LK_OK, "keys")) != LK_OK)
        return e;
    if (c->n_keys > 1)
        qsort(c->keys, c->n_keys, sizeof(*c->keys), by_source_rowid);
    if ((e = scanned(c, lk_store_key_scan(c->src, LK_KEY_COLS_ALL, copy_key_credits, c),
                     "key credits")) != LK_OK)
        return e;
    if ((e = scanned(c, lk_store_credits_scan(c->src, copy_credits, c), "credits")) != LK_OK ||
        (e = scanned(c, lk_store_ledger_scan(c->src, copy_ledger, c), "the ledger")) != LK_OK ||
        (e = copy_counters(c, LK_CTR_QUOTA, copy_quota, "quota days")) != LK_OK ||
        (e = copy_counters(c, LK_CTR_SPEND, copy_spend, "key spend")) != LK_OK ||
        (e = copy_counters(c, LK_CTR_USAGE, copy_usage, "usage")) != LK_OK ||
        (e = scanned(c, lk_store_audit_scan(c->src, copy_audit, c), "audit events")) != LK_OK)
        return e;
    return LK_OK;
}

/* Opens one side, naming it in the message (never quoting the URL). */
static enum lk_err open_side(const char *url, const char *side, struct lk_store **out,
                             struct lk_errinfo *ei)
{
    struct lk_errinfo oei;
    enum lk_err e;

    lk_errinfo_clear(&oei);
    if ((e = lk_store_open(url, out, &oei)) != LK_OK)
        lk_errinfo_set(ei, e, side, "--%s: %s", side, oei.detail);
    return e;
}

enum lk_err lk_migrate(const char *from_url, const char *to_url, struct lk_migrate_counts *out,
                       struct lk_errinfo *ei)
{
    struct copy c = {.ei = ei, .now = lk_clock_now_s()};
    int lock_fds[LK_ARRAY_LEN(source_locks)];
    struct stat st;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    if (ei != NULL)
        lk_errinfo_clear(ei);
    if (strcmp(from_url, to_url) == 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "to",
                              "--to names the same database as --from");
    /* Opening an SQLite path creates it: a mistyped source would read as empty. */
    if (strncmp(from_url, "sqlite:", 7) == 0) {
        const char *path = from_url + 7;
        if (strcmp(path, ":memory:") == 0 || *path == '\0' || stat(path, &st) != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "from",
                                  "--from: no database file at %s", path);
    }
    if ((e = take_source_locks(from_url, lock_fds, ei)) != LK_OK ||
        (e = open_side(from_url, "from", &c.src, ei)) != LK_OK || (e = check_source(&c)) != LK_OK)
        goto out;
    if ((e = scanned(&c, lk_store_ws_list(c.src, collect_ws, &c), "workspaces")) != LK_OK)
        goto out;
    if (c.n_ws > 1)
        qsort(c.ws, c.n_ws, sizeof(*c.ws), by_number);
    if ((e = open_side(to_url, "to", &c.dst, ei)) != LK_OK ||
        (e = target_empty(c.dst, ei)) != LK_OK)
        goto out;
    c.batch = lk_calloc(KEY_BATCH, sizeof(*c.batch));
    c.batch_from = lk_calloc(KEY_BATCH, sizeof(*c.batch_from));
    e = lk_store_txn(c.dst, LK_TXN_DEFAULT, copy_all, &c);
    if (e != LK_OK && ei != NULL && ei->detail[0] == '\0')
        lk_errinfo_set(ei, e, "to", "cannot commit the copy on the target: %s", lk_err_message(e));
    if (e == LK_OK)
        *out = c.n;
out:
    lk_store_close(c.dst);
    lk_store_close(c.src);
    for (size_t i = 0; i < LK_ARRAY_LEN(lock_fds); i++)
        if (lock_fds[i] >= 0)
            close(lock_fds[i]);
    for (size_t i = 0; i < c.n_batch; i++)
        lk_key_row_release(&c.batch[i]);
    free(c.batch);
    free(c.batch_from);
    free(c.ws);
    free(c.keys);
    return e;
}
