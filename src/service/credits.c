#include "service/credits.h"

#include <inttypes.h>
#include <stdatomic.h>

#include "base/common.h"
#include "service/app_int.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/stats.h"
#include "core/quota.h"
#include "counters/wallet.h"
#include "service/audit.h"
#include "service/keys.h"
#include "service/node.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct load_ctx {
    struct lk_app *app;
    int64_t now;
    bool recovered; /* the counter file was read back: its counts are exact */
};

/* This node's id, or NULL for a process that is not a node (init, seed). */
static const char *node_of(struct lk_app *app)
{
    return app->node != NULL ? lk_node_id(app->node) : NULL;
}

/* Books `amount` of node_id's lease of ws_id as spent, not knowing how much of
 * it was: `lease_lost`, as after any unclean stop. Inside a transaction. */
static enum lk_err lose_lease(struct lk_app *app, const char *ws_id, const char *node_id,
                              int64_t amount, int64_t now)
{
    struct lk_ledger_row r = {.amount = amount, .created_at = now};
    enum lk_err e;

    /* The node leased these and may have spent any part of them. */
    snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", ws_id);
    snprintf(r.kind, sizeof(r.kind), "lease_lost");
    snprintf(r.note, sizeof(r.note),
             "credits leased by a server that stopped without "
             "returning them; counted as spent");
    if ((node_id != NULL && (e = lk_store_lease_move(app->store, ws_id, node_id, -amount)) != LK_OK) ||
        (e = lk_store_credits_move(app->store, ws_id, 0, -amount, amount, 0)) != LK_OK ||
        (e = lk_store_ledger_add(app->store, &r)) != LK_OK)
        return e;
    lk_warn("workspace %s: %" PRId64 " leased credits of node %s recorded as spent (unclean stop)",
            ws_id, amount, node_id != NULL ? node_id : "(none)");
    return LK_OK;
}

/* A killed node's counter file says exactly what it spent of its lease: what
 * the stored lease holds beyond what memory had left (`avail`) was spent and
 * not yet booked. That much is booked, the rest goes back to the balance. */
static enum lk_err settle_lease(struct load_ctx *lc, const struct lk_lease_row *l,
                                const struct lk_wallet *w)
{
    int64_t avail = w->avail;
    /* A lease write under way at the kill: the stored lease's mark says whether
     * it committed, and so whether memory was about to hold it too. */
    if (w->lease_pending != 0 && w->lease_op != 0 && l->op == w->lease_op)
        avail += w->lease_pending;
    int64_t spent = l->amount - avail;
    struct lk_ledger_row r = {.amount = spent, .period = lc->now - lc->now % 3600};
    enum lk_err e;

    /* A file that does not fit the store: believe neither. */
    if (avail < 0 || spent < 0 || spent > l->amount)
        return lose_lease(lc->app, l->workspace_id, l->node_id, l->amount, lc->now);
    snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", l->workspace_id);
    snprintf(r.kind, sizeof(r.kind), "spend");
    r.created_at = r.period;
    if ((e = lk_store_lease_move(lc->app->store, l->workspace_id, l->node_id, -l->amount)) !=
            LK_OK ||
        (e = lk_store_credits_move(lc->app->store, l->workspace_id, l->amount - spent, -l->amount,
                                   spent, 0)) != LK_OK ||
        (spent > 0 && (e = lk_store_ledger_add(lc->app->store, &r)) != LK_OK))
        return e;
    lk_info("workspace %s: after an unclean stop, %" PRId64 " spent credits recorded and %" PRId64
            " returned to the balance",
            l->workspace_id, spent, l->amount - spent);
    return LK_OK;
}

/* Leases are read into a list first: the store's scan must not be written to
 * from its own callback. */
struct lease_list {
    struct lk_lease_row *rows;
    size_t n, cap;
};

static int add_lease(void *arg, const struct lk_lease_row *l)
{
    struct lease_list *ll = arg;

    ll->rows = lk_grow(ll->rows, ll->n, &ll->cap, sizeof(*ll->rows));
    ll->rows[ll->n++] = *l;
    return 0;
}

/* This node's own leases, left by its last run: settled exactly from the
 * counter file when it was read back, else counted as spent. */
static enum lk_err recover_own(struct load_ctx *lc)
{
    struct lease_list ll = {0};
    enum lk_err e;

    if ((e = lk_store_lease_scan(lc->app->store, node_of(lc->app), add_lease, &ll)) != LK_OK)
        goto out;
    for (size_t i = 0; i < ll.n && e == LK_OK; i++) {
        const struct lk_lease_row *l = &ll.rows[i];
        struct lk_wstate *ws =
            lc->recovered ? lk_counters_find_ws(lc->app->counters, l->workspace_id) : NULL;
        struct lk_wallet w = {0};
        if (ws != NULL)
            lk_wallet_get(ws, &w);
        if (w.recovered)
            e = settle_lease(lc, l, &w);
        else
            e = lose_lease(lc->app, l->workspace_id, l->node_id, l->amount, lc->now);
    }
out:
    free(ll.rows);
    return e;
}

struct nodes_ctx {
    const char *self;
    const struct lk_dead_node *cand; /* nodes seen without a beat for the bound */
    size_t ncand;
    char (*dead)[LK_ID_MAX];
    size_t ndead, dead_cap;
    char (*live)[LK_ID_MAX];
    size_t nlive, live_cap;
};

static int sort_node(void *arg, const struct lk_node_row *n)
{
    struct nodes_ctx *nc = arg;
    bool dead = false;

    if (nc->self != NULL && strcmp(n->id, nc->self) == 0)
        return 0;
    /* Dead only if the heartbeat is still the one seen unchanged for the
     * bound: a node that beat meanwhile is alive, whatever the clocks say. */
    for (size_t i = 0; i < nc->ncand && !dead; i++)
        dead = strcmp(nc->cand[i].id, n->id) == 0 && nc->cand[i].heartbeat_at == n->heartbeat_at;
    if (dead) {
        nc->dead = lk_grow(nc->dead, nc->ndead, &nc->dead_cap, sizeof(*nc->dead));
        memcpy(nc->dead[nc->ndead++], n->id, LK_ID_MAX);
    } else {
        nc->live = lk_grow(nc->live, nc->nlive, &nc->live_cap, sizeof(*nc->live));
        memcpy(nc->live[nc->nlive++], n->id, LK_ID_MAX);
    }
    return 0;
}

static bool listed(char (*ids)[LK_ID_MAX], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

struct reclaim_arg {
    struct lk_app *app;
    const char *self;
    const struct lk_dead_node *cand;
    size_t ncand;
    int64_t now;
    bool orphans; /* also leases of nodes no longer registered at all */
};

/* Inside one transaction: the nodes are read there, so a node cannot beat
 * between being found dead and losing its leases. */
static enum lk_err reclaim_txn(struct lk_store *s, void *argp)
{
    struct reclaim_arg *ra = argp;
    struct nodes_ctx nc = {.self = ra->self, .cand = ra->cand, .ncand = ra->ncand};
    struct lease_list ll = {0};
    enum lk_err e;

    if ((e = lk_store_node_list(s, sort_node, &nc)) != LK_OK)
        goto out;
    if (nc.ndead == 0 && !ra->orphans)
        goto out;
    if ((e = lk_store_lease_scan(s, NULL, add_lease, &ll)) != LK_OK)
        goto out;
    for (size_t i = 0; i < ll.n && e == LK_OK; i++) {
        const struct lk_lease_row *l = &ll.rows[i];
        bool dead = listed(nc.dead, nc.ndead, l->node_id);
        bool orphan = ra->orphans && !dead && !listed(nc.live, nc.nlive, l->node_id) &&
                      (ra->self == NULL || strcmp(l->node_id, ra->self) != 0);
        if (dead || orphan)
            e = lose_lease(ra->app, l->workspace_id, l->node_id, l->amount, ra->now);
    }
    for (size_t i = 0; i < nc.ndead && e == LK_OK; i++) {
        lk_warn("node %s has not beaten for %d s: its leases are reclaimed", nc.dead[i],
                LK_NODE_DEAD_AFTER_S);
        e = lk_store_node_delete(s, nc.dead[i]);
    }
out:
    free(ll.rows);
    free(nc.dead);
    free(nc.live);
    return e;
}

enum lk_err lk_credits_reclaim_dead(struct lk_app *app, const char *self,
                                    const struct lk_dead_node *dead, size_t n, int64_t now)
{
    struct reclaim_arg ra = {app, self, dead, n, now, false};

    if (n == 0)
        return LK_OK;
    return lk_store_txn(app->store, LK_TXN_BACKGROUND, reclaim_txn, &ra);
}

struct legacy_ctx {
    struct lk_credit_account *accts;
    size_t n, cap;
};

static int add_acct(void *arg, const struct lk_credit_account *a)
{
    struct legacy_ctx *lc = arg;

    if (a->leased > 0) {
        lc->accts = lk_grow(lc->accts, lc->n, &lc->cap, sizeof(*lc->accts));
        lc->accts[lc->n++] = *a;
    }
    return 0;
}

static int sum_lease(void *arg, const struct lk_lease_row *l)
{
    struct lk_credit_account *a = arg;

    if (strcmp(l->workspace_id, a->workspace_id) == 0)
        a->leased -= l->amount;
    return 0;
}

/* Leased credits no node holds (a database from before leases belonged to
 * nodes, whose one server stopped uncleanly): counted as spent, as then. */
static enum lk_err reclaim_unowned(struct lk_app *app, int64_t now)
{
    struct legacy_ctx lc = {0};
    enum lk_err e;

    if ((e = lk_store_credits_scan(app->store, add_acct, &lc)) != LK_OK)
        goto out;
    for (size_t i = 0; i < lc.n && e == LK_OK; i++) {
        struct lk_credit_account *a = &lc.accts[i];
        if ((e = lk_store_lease_scan(app->store, NULL, sum_lease, a)) == LK_OK && a->leased > 0)
            e = lose_lease(app, a->workspace_id, NULL, a->leased, now);
    }
out:
    free(lc.accts);
    return e;
}

/* The counts a killed process left in the file, exact, into the store. */
static enum lk_err raise_recovered(struct lk_app *app)
{
    struct lk_counter_rows rows = {0};
    enum lk_err e = LK_OK;

    lk_counters_recovered_rows(app->counters, &rows);
    for (size_t i = 0; i < rows.n; i++) {
        enum lk_err r = lk_store_counter_raise(app->store, rows.kinds[i], &rows.rows[i]);
        if (r != LK_OK && e == LK_OK)
            e = r;
    }
    lk_counter_rows_free(&rows);
    return e;
}

static int load_balance(void *arg, const struct lk_credit_account *a)
{
    struct load_ctx *lc = arg;
    struct lk_wstate *ws = lk_counters_ws(lc->app->counters, a->workspace_id);

    lk_wallet_load(ws, a->balance, a->spent);
    return 0;
}

static int load_quota(void *arg, const struct lk_counter_row *r)
{
    struct load_ctx *lc = arg;
    struct lk_wstate *ws = lk_counters_ws(lc->app->counters, r->workspace_id);

    lk_counters_load_quota(ws, r->period, r->n, r->n_test);
    return 0;
}

static int load_spend(void *arg, const struct lk_counter_row *r)
{
    struct load_ctx *lc = arg;
    /* The key's workspace is filled in when it is first checked. */
    struct lk_kstate *st = lk_counters_key(lc->app->counters, r->key_rowid, NULL);

    lk_counters_load_spend(st, r->period, r->n);
    return 0;
}

/* Usage is counted in totals of the hour, so the hour's stored counts start them. */
static int load_usage(void *arg, const struct lk_counter_row *r)
{
    struct load_ctx *lc = arg;
    struct lk_kstate *st = lk_counters_key(lc->app->counters, r->key_rowid, NULL);

    if (r->n >= 0 && r->n <= UINT32_MAX)
        lk_counters_load_count(lc->app->counters, st, r->period, r->code, (uint32_t)r->n);
    return 0;
}

struct start_arg {
    struct load_ctx *lc;
};

/* One transaction: the file's counts and the leases are settled together, and
 * settling again after a crash here changes nothing. */
static enum lk_err start_txn(struct lk_store *s, void *argp)
{
    struct load_ctx *lc = ((struct start_arg *)argp)->lc;
    struct reclaim_arg ra = {lc->app, node_of(lc->app), NULL, 0, lc->now, true};
    enum lk_err e;

    (void)s;
    if (lc->recovered && (e = raise_recovered(lc->app)) != LK_OK)
        return e;
    if ((e = recover_own(lc)) != LK_OK || (e = reclaim_txn(lc->app->store, &ra)) != LK_OK ||
        (e = reclaim_unowned(lc->app, lc->now)) != LK_OK)
        return e;
    return LK_OK;
}

enum lk_err lk_credits_load(struct lk_app *app, bool reclaim, bool recovered, int64_t now)
{
    struct load_ctx lc = {app, now, recovered && reclaim};
    struct start_arg sa = {&lc};
    int64_t today = lk_day_of(now), hour = now - now % 3600;
    enum lk_err e;

    if (reclaim) {
        if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, start_txn, &sa)) != LK_OK)
            return e;
        if (lc.recovered)
            lk_counters_settle(app->counters);
    }
    if ((e = lk_store_credits_scan(app->store, load_balance, &lc)) != LK_OK ||
        (e = lk_store_counter_scan(app->store, LK_CTR_QUOTA, 0, today - LK_QUOTA_DAYS + 1,
                                   today + 1, load_quota, &lc)) != LK_OK ||
        (e = lk_store_counter_scan(app->store, LK_CTR_SPEND, 0, today, today + 1, load_spend,
                                   &lc)) != LK_OK ||
        (e = lk_store_counter_scan(app->store, LK_CTR_USAGE, 0, hour, hour + 3600, load_usage,
                                   &lc)) != LK_OK)
        return e;
    return LK_OK;
}

/* A lease of this node moves with the account: both in one transaction. */
struct lease_move_arg {
    const char *ws_id, *node_id;
    int64_t d;  /* to the lease: taken from (> 0) or given back to (< 0) the balance */
    int64_t op; /* the mark written with it (0: none) */
};

static enum lk_err lease_move_txn(struct lk_store *s, void *argp)
{
    struct lease_move_arg *a = argp;
    enum lk_err e = lk_store_credits_move(s, a->ws_id, -a->d, a->d, 0, 0);

    if (e == LK_OK && a->node_id != NULL)
        e = lk_store_lease_move(s, a->ws_id, a->node_id, a->d);
    /* A lease given back in full leaves no row to mark: its absence says it. */
    if (e == LK_OK && a->node_id != NULL && a->op != 0) {
        e = lk_store_lease_mark(s, a->ws_id, a->node_id, a->op);
        if (e == LK_ERR_NOT_FOUND)
            e = LK_OK;
    }
    return e;
}

/* A mark no earlier write of this lease can have had. */
static int64_t new_mark(void)
{
    uint64_t r = 0;

    while (r == 0) {
        lk_rand_bytes((uint8_t *)&r, sizeof(r));
        r >>= 1; /* a positive int64 */
    }
    return (int64_t)r;
}

struct lease_arg {
    struct lk_app *app;
    int64_t need, now;
};

/* Under the workspace's lease lock: how much to lease, the write, and memory. */
static enum lk_err lease_serial(void *argp, struct lk_wstate *ws)
{
    struct lease_arg *la = argp;
    struct lk_app *app = la->app;
    const char *ws_id = lk_wstate_id(ws);
    struct lk_credit_account a;
    struct lk_wallet w;
    int64_t size, grown, op;
    enum lk_err e;

    lk_wallet_get(ws, &w);
    size = w.lease_size > LK_LEASE_MIN ? w.lease_size : LK_LEASE_MIN;
    if (la->need > w.avail && la->need - w.avail > size)
        size = la->need - w.avail;
    if (la->need > 0 && w.avail >= la->need)
        size = 0; /* someone leased while this one waited */
    else if (la->need == 0 && w.avail * 2 >= size)
        size = 0; /* the lease is not low (any more) */
    if (size > w.db_balance)
        size = w.db_balance;
    if (size <= 0)
        return LK_OK;
    /* In the counter file before the write: a kill before memory has the lease
     * leaves it marked, and the next start does not guess. */
    op = new_mark();
    lk_wallet_mark(ws, op, size);
    e = lk_store_txn(app->store, LK_TXN_DEFAULT, lease_move_txn,
                     &(struct lease_move_arg){ws_id, node_of(app), size, op});
    if (e != LK_OK)
        lk_wallet_unmark(ws);
    if (e == LK_ERR_CONFLICT) {
        /* The stored balance is lower than the mirror says (another node leased):
         * believe the store. */
        if ((e = lk_store_credits_get(app->store, ws_id, &a)) == LK_OK)
            lk_wallet_set_balance(ws, a.balance);
        return e;
    }
    if (e != LK_OK)
        return e;
    lk_stats_add(LK_STAT_LEASE_OPS, 1);
    /* Leases that run out within a couple of seconds grow, so a busy workspace
     * writes a lease rarely; a quiet one keeps small leases (less to lose). Only
     * lease operations change the size, and this is the one under way. */
    if (la->now - w.last_lease_at <= 2)
        grown = w.lease_size * 2 < LK_LEASE_MAX ? w.lease_size * 2 : LK_LEASE_MAX;
    else
        grown = w.lease_size / 2;
    lk_wallet_moved(ws, size, grown < LK_LEASE_MIN ? LK_LEASE_MIN : grown, la->now);
    return LK_OK;
}

enum lk_err lk_credits_lease(struct lk_app *app, struct lk_wstate *ws, int64_t need, int64_t now)
{
    return lk_wallet_serial(ws, lease_serial, &(struct lease_arg){app, need, now});
}

static enum lk_err release_serial(void *arg, struct lk_wstate *ws)
{
    struct lk_app *app = arg;
    int64_t op = new_mark();
    int64_t give = lk_wallet_mark_return(ws, op);

    if (give > 0 && lk_store_txn(app->store, LK_TXN_DEFAULT, lease_move_txn,
                                 &(struct lease_move_arg){lk_wstate_id(ws), node_of(app), -give,
                                                          op}) == LK_OK) {
        lk_stats_add(LK_STAT_LEASE_OPS, 1);
        lk_wallet_moved(ws, -give, 0, 0);
    } else if (give > 0) {
        lk_wallet_unmark(ws);
        lk_warn("workspace %s: could not return %" PRId64 " leased credits", lk_wstate_id(ws),
                give);
    }
    return LK_OK;
}

static void release_one(void *arg, struct lk_wstate *ws)
{
    lk_wallet_serial(ws, release_serial, arg);
}

static void add_leased(void *arg, struct lk_wstate *ws)
{
    int64_t *sum = arg;
    struct lk_wallet w;

    lk_wallet_get(ws, &w);
    *sum += w.avail;
}

int64_t lk_credits_leased(struct lk_app *app)
{
    int64_t sum = 0;

    lk_counters_each_ws(app->counters, add_leased, &sum);
    return sum;
}

void lk_credits_release(struct lk_app *app)
{
    lk_counters_each_ws(app->counters, release_one, app);
}

enum lk_err lk_credits_book_spend(struct lk_app *app, const char *ws_id, int64_t amount)
{
    const char *node = node_of(app);
    enum lk_err e;

    /* The node's own lease first: gone (reclaimed while this node was taken
     * for dead, and counted as spent then) means not booked twice. */
    if (node != NULL && (e = lk_store_lease_move(app->store, ws_id, node, -amount)) != LK_OK)
        return e;
    e = lk_store_credits_move(app->store, ws_id, 0, -amount, amount, 0);
    if (e != LK_OK && node != NULL && lk_store_lease_move(app->store, ws_id, node, amount) != LK_OK)
        return LK_ERR_STORAGE_UNAVAILABLE; /* the caller rolls the transaction back */
    return e;
}

static enum lk_err forget_serial(void *arg, struct lk_wstate *ws)
{
    (void)arg;
    lk_wallet_forget(ws);
    return LK_OK;
}

static void forget_one(void *arg, struct lk_wstate *ws)
{
    lk_wallet_serial(ws, forget_serial, arg);
}

void lk_credits_forget_leases(struct lk_app *app)
{
    lk_counters_each_ws(app->counters, forget_one, NULL);
}

static int refresh_one(void *arg, const struct lk_credit_account *a)
{
    struct lk_wstate *ws = lk_counters_find_ws(((struct lk_app *)arg)->counters, a->workspace_id);

    /* A lease racing this only makes the mirror high for a moment: the store
     * refuses a lease past the balance, and the refusal reads it again. */
    if (ws != NULL)
        lk_wallet_set_balance(ws, a->balance);
    return 0;
}

enum lk_err lk_credits_refresh(struct lk_app *app)
{
    return lk_store_credits_scan(app->store, refresh_one, app);
}

struct get_arg {
    struct lk_app *app;
    struct lk_credit_account *out;
};

static enum lk_err get_serial(void *argp, struct lk_wstate *ws)
{
    struct get_arg *ga = argp;
    struct lk_wallet w;
    enum lk_err e;

    if ((e = lk_store_credits_get(ga->app->store, lk_wstate_id(ws), ga->out)) == LK_OK) {
        lk_wallet_get(ws, &w);
        ga->out->balance += w.avail;
        ga->out->leased -= w.avail + w.unsaved_spend;
        ga->out->spent += w.unsaved_spend;
    }
    return e;
}

enum lk_err lk_credits_get(struct lk_app *app, const char *ws_id, struct lk_credit_account *out)
{
    struct lk_wstate *ws = lk_counters_ws(app->counters, ws_id);
    enum lk_err e;

    /* With the recorder paused no spending is half-way to the store, and under
     * the lease lock no lease moves credits between store and memory: the
     * stored account plus what memory holds unwritten is exact. */
    if (app->usage != NULL)
        lk_usage_pause(app->usage);
    e = lk_wallet_serial(ws, get_serial, &(struct get_arg){app, out});
    if (app->usage != NULL)
        lk_usage_resume(app->usage);
    return e;
}

struct top_up {
    struct lk_store *store;
    const struct lk_actor *who;
    struct lk_ledger_row *entry;
    int64_t now;
    int64_t *balance; /* OUT */
};

/* The balance, its ledger entry and the audit event, together. */
static enum lk_err top_up_txn(struct lk_store *s, void *arg)
{
    struct top_up *t = arg;
    const char *ws_id = t->entry->workspace_id;
    enum lk_err e;

    if ((e = lk_store_credits_move(s, ws_id, t->entry->amount, 0, 0, t->entry->amount)) != LK_OK ||
        (e = lk_store_ledger_add(s, t->entry)) != LK_OK)
        return e;
    return lk_audit_write(s, t->who, "credits.top_up", ws_id, t->now);
}

/* Under the workspace's lease lock: no lease moves credits meanwhile. */
static enum lk_err top_up_serial(void *arg, struct lk_wstate *ws)
{
    struct top_up *t = arg;
    enum lk_err e = lk_store_txn(t->store, LK_TXN_DEFAULT, top_up_txn, t);

    /* The answer comes from memory: once committed, a top-up must not answer
     * with an error a client would retry. */
    if (e == LK_OK)
        *t->balance = lk_wallet_top_up(ws, t->entry->amount);
    return e;
}

enum lk_err lk_credits_top_up(struct lk_app *app, const struct lk_actor *who, int64_t amount,
                              const char *note, int64_t now, struct lk_ledger_row *entry,
                              int64_t *balance)
{
    const char *ws_id = who->workspace_id;
    struct lk_wstate *ws = lk_counters_ws(app->counters, ws_id);

    memset(entry, 0, sizeof(*entry));
    snprintf(entry->workspace_id, sizeof(entry->workspace_id), "%s", ws_id);
    snprintf(entry->kind, sizeof(entry->kind), "top_up");
    snprintf(entry->actor, sizeof(entry->actor), "%s", who->id);
    snprintf(entry->note, sizeof(entry->note), "%s", note ? note : "");
    entry->amount = amount;
    entry->created_at = now;
    return lk_wallet_serial(ws, top_up_serial, &(struct top_up){app->store, who, entry, now, balance});
}

enum lk_err lk_credits_ledger(struct lk_app *app, const struct lk_actor *who, int64_t before_id,
                              int limit, lk_ledger_cb cb, void *arg)
{
    return lk_store_ledger_list(app->store, who->workspace_id, before_id, limit, cb, arg);
}
