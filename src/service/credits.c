#include "service/credits.h"

#include <inttypes.h>
#include <stdatomic.h>

#include "base/common.h"
#include "service/app_int.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/stats.h"
#include "core/quota.h"
#include "service/audit.h"
#include "service/keys.h"
#include "service/node.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct load_ctx {
    struct lk_app *app;
    int64_t now;
    bool recovered; /* the counter file was read back: its counts are exact */
    enum lk_err err;
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
                                const struct lk_wstate *ws)
{
    int64_t avail = ws->avail;
    /* A lease write under way at the kill: the stored lease's mark says whether
     * it committed, and so whether memory was about to hold it too. */
    if (ws->lease_pending != 0 && ws->lease_op != 0 && l->op == ws->lease_op)
        avail += ws->lease_pending;
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
        if (ws != NULL && ws->recovered)
            e = settle_lease(lc, l, ws);
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

static enum lk_err raise_row(struct load_ctx *lc, enum lk_counter_kind kind,
                             const struct lk_counter_row *r)
{
    enum lk_err e = lk_store_counter_raise(lc->app->store, kind, r);

    if (e != LK_OK && lc->err == LK_OK)
        lc->err = e;
    return e;
}

static void raise_quota(struct load_ctx *lc, const struct lk_wstate *ws, const struct lk_quota *q,
                        bool test)
{
    for (int i = 0; i < LK_QUOTA_DAYS; i++) {
        if (q->day[i] < 0 || q->count[i] == 0)
            continue;
        struct lk_counter_row r = {.period = q->day[i]};
        snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", ws->id);
        *(test ? &r.n_test : &r.n) = q->count[i];
        raise_row(lc, LK_CTR_QUOTA, &r);
    }
}

/* The quota days of a killed process, exact in the file, into the store. */
static void raise_ws(void *arg, struct lk_wstate *ws)
{
    struct load_ctx *lc = arg;

    if (!ws->recovered)
        return;
    raise_quota(lc, ws, &ws->live, false);
    raise_quota(lc, ws, &ws->test, true);
}

/* The same for a key's spend of the day (and the day before) and its usage of
 * the hour (and the hour before). */
static void raise_key(void *arg, struct lk_kstate *k)
{
    struct load_ctx *lc = arg;
    int64_t hour = atomic_load(&k->count_hour);

    if (!k->recovered)
        return;
    if (k->spend_day > 0 && k->spent > 0)
        raise_row(
            lc, LK_CTR_SPEND,
            &(struct lk_counter_row){.key_rowid = k->rowid, .period = k->spend_day, .n = k->spent});
    if (k->prev_day > 0 && k->prev_spent > 0)
        raise_row(lc, LK_CTR_SPEND,
                  &(struct lk_counter_row){
                      .key_rowid = k->rowid, .period = k->prev_day, .n = k->prev_spent});
    for (int code = 0; code < LK_USAGE_CODES; code++) {
        uint32_t n = atomic_load(&k->counts[code]);
        if (hour > 0 && n > 0)
            raise_row(lc, LK_CTR_USAGE,
                      &(struct lk_counter_row){
                          .key_rowid = k->rowid, .period = hour, .code = code, .n = n});
        if (k->prev_hour > 0 && k->prev_hour != hour && k->prev_counts[code] > 0)
            raise_row(lc, LK_CTR_USAGE,
                      &(struct lk_counter_row){.key_rowid = k->rowid,
                                               .period = k->prev_hour,
                                               .code = code,
                                               .n = k->prev_counts[code]});
    }
}

/* Once the store has everything the file held, the file's states start from
 * the store again: leases are back, nothing is unsaved, quota rings and day
 * spends are loaded below. Rate windows stay as they were. */
static void settle_ws(void *arg, struct lk_wstate *ws)
{
    (void)arg;
    ws->avail = ws->unsaved_spend = 0;
    ws->spent_total = 0; /* the stored `spent`, for a workspace with an account */
    lk_quota_init(&ws->live);
    lk_quota_init(&ws->test);
    lk_quota_init(&ws->unsaved_live);
    lk_quota_init(&ws->unsaved_test);
}

static void settle_key(void *arg, struct lk_kstate *k)
{
    struct load_ctx *lc = arg;

    /* Today's spend is loaded from the store below; older days are written. */
    k->spend_day = k->spent = k->prev_day = k->prev_spent = k->unsaved = 0;
    k->prev_hour = 0;
    memset(k->prev_counts, 0, sizeof(k->prev_counts));
    lk_counters_settle_counts(lc->app->counters, k);
}

static int load_balance(void *arg, const struct lk_credit_account *a)
{
    struct load_ctx *lc = arg;
    struct lk_wstate *ws = lk_counters_ws(lc->app->counters, a->workspace_id);

    lk_wstate_lock(ws);
    ws->db_balance = a->balance;
    ws->spent_total = a->spent;
    lk_wstate_unlock(ws);
    return 0;
}

static int load_quota(void *arg, const struct lk_counter_row *r)
{
    struct load_ctx *lc = arg;
    struct lk_wstate *ws = lk_counters_ws(lc->app->counters, r->workspace_id);

    lk_wstate_lock(ws);
    lk_quota_add(&ws->live, r->period, r->n);
    lk_quota_add(&ws->test, r->period, r->n_test);
    lk_wstate_unlock(ws);
    return 0;
}

static int load_spend(void *arg, const struct lk_counter_row *r)
{
    struct load_ctx *lc = arg;
    /* The key's workspace is filled in when it is first checked. */
    struct lk_kstate *st = lk_counters_key(lc->app->counters, r->key_rowid, NULL);

    st->spend_day = r->period;
    st->spent = r->n;
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
    lc->err = LK_OK;
    if (lc->recovered) {
        lk_counters_each_ws(lc->app->counters, raise_ws, lc);
        lk_counters_each_key(lc->app->counters, raise_key, lc);
    }
    if (lc->err != LK_OK)
        return lc->err;
    if ((e = recover_own(lc)) != LK_OK || (e = reclaim_txn(lc->app->store, &ra)) != LK_OK ||
        (e = reclaim_unowned(lc->app, lc->now)) != LK_OK)
        return e;
    return LK_OK;
}

enum lk_err lk_credits_load(struct lk_app *app, bool reclaim, bool recovered, int64_t now)
{
    struct load_ctx lc = {app, now, recovered && reclaim, LK_OK};
    struct start_arg sa = {&lc};
    int64_t today = lk_day_of(now), hour = now - now % 3600;
    enum lk_err e;

    if (reclaim) {
        if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, start_txn, &sa)) != LK_OK)
            return e;
        if (lc.recovered) {
            lk_counters_each_ws(app->counters, settle_ws, &lc);
            lk_counters_each_key(app->counters, settle_key, &lc);
        }
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

enum lk_err lk_credits_lease(struct lk_app *app, struct lk_wstate *ws, int64_t need, int64_t now)
{
    struct lk_credit_account a;
    int64_t size;
    enum lk_err e = LK_OK;

    pthread_mutex_lock(&ws->lease_mu);
    lk_wstate_lock(ws);
    size = ws->lease_size > LK_LEASE_MIN ? ws->lease_size : LK_LEASE_MIN;
    if (need > ws->avail && need - ws->avail > size)
        size = need - ws->avail;
    if (need > 0 && ws->avail >= need)
        size = 0; /* someone leased while this one waited */
    else if (need == 0 && ws->avail * 2 >= size)
        size = 0; /* the lease is not low (any more) */
    if (size > ws->db_balance)
        size = ws->db_balance;
    lk_wstate_unlock(ws);
    if (size <= 0)
        goto out;
    /* In the counter file before the write: a kill before memory has the lease
     * leaves it marked, and the next start does not guess. */
    int64_t op = new_mark();
    lk_wstate_lock(ws);
    ws->lease_op = op;
    atomic_signal_fence(memory_order_seq_cst); /* the mark first, then the pending amount */
    ws->lease_pending = size;
    lk_wstate_unlock(ws);
    e = lk_store_txn(app->store, LK_TXN_DEFAULT, lease_move_txn,
                     &(struct lease_move_arg){ws->id, node_of(app), size, op});
    if (e != LK_OK) {
        lk_wstate_lock(ws);
        ws->lease_pending = 0;
        lk_wstate_unlock(ws);
    }
    if (e == LK_ERR_CONFLICT) {
        /* The stored balance is lower than the mirror says (another node leased):
         * believe the store. */
        if ((e = lk_store_credits_get(app->store, ws->id, &a)) == LK_OK) {
            lk_wstate_lock(ws);
            ws->db_balance = a.balance;
            lk_wstate_unlock(ws);
        }
        goto out;
    }
    if (e != LK_OK)
        goto out;
    lk_stats_add(LK_STAT_LEASE_OPS, 1);
    lk_wstate_lock(ws);
    ws->avail += size;
    atomic_signal_fence(memory_order_seq_cst); /* avail first, then the mark goes */
    ws->lease_pending = 0;
    ws->db_balance -= size;
    /* Leases that run out within a couple of seconds grow, so a busy workspace
     * writes a lease rarely; a quiet one keeps small leases (less to lose). */
    if (now - ws->last_lease_at <= 2)
        ws->lease_size = ws->lease_size * 2 < LK_LEASE_MAX ? ws->lease_size * 2 : LK_LEASE_MAX;
    else
        ws->lease_size /= 2;
    if (ws->lease_size < LK_LEASE_MIN)
        ws->lease_size = LK_LEASE_MIN;
    ws->last_lease_at = now;
    lk_wstate_unlock(ws);
out:
    pthread_mutex_unlock(&ws->lease_mu);
    return e;
}

static void release_one(void *arg, struct lk_wstate *ws)
{
    struct lk_app *app = arg;
    int64_t give;

    int64_t op = new_mark();

    pthread_mutex_lock(&ws->lease_mu);
    lk_wstate_lock(ws);
    give = ws->avail;
    if (give > 0) {
        ws->lease_op = op;
        atomic_signal_fence(memory_order_seq_cst);
        ws->lease_pending = -give;
    }
    lk_wstate_unlock(ws);
    if (give > 0 && lk_store_txn(app->store, LK_TXN_DEFAULT, lease_move_txn,
                                 &(struct lease_move_arg){ws->id, node_of(app), -give, op}) ==
                        LK_OK) {
        lk_stats_add(LK_STAT_LEASE_OPS, 1);
        lk_wstate_lock(ws);
        ws->avail -= give;
        atomic_signal_fence(memory_order_seq_cst);
        ws->lease_pending = 0;
        ws->db_balance += give;
        lk_wstate_unlock(ws);
    } else if (give > 0) {
        lk_wstate_lock(ws);
        ws->lease_pending = 0;
        lk_wstate_unlock(ws);
        lk_warn("workspace %s: could not return %" PRId64 " leased credits", ws->id, give);
    }
    pthread_mutex_unlock(&ws->lease_mu);
}

static void add_leased(void *arg, struct lk_wstate *ws)
{
    int64_t *sum = arg;

    lk_wstate_lock(ws);
    *sum += ws->avail;
    lk_wstate_unlock(ws);
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

static void forget_one(void *arg, struct lk_wstate *ws)
{
    (void)arg;
    pthread_mutex_lock(&ws->lease_mu);
    lk_wstate_lock(ws);
    ws->avail = ws->unsaved_spend = 0;
    ws->lease_pending = 0;
    lk_wstate_unlock(ws);
    pthread_mutex_unlock(&ws->lease_mu);
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
    if (ws != NULL) {
        lk_wstate_lock(ws);
        ws->db_balance = a->balance;
        lk_wstate_unlock(ws);
    }
    return 0;
}

enum lk_err lk_credits_refresh(struct lk_app *app)
{
    return lk_store_credits_scan(app->store, refresh_one, app);
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
    pthread_mutex_lock(&ws->lease_mu);
    if ((e = lk_store_credits_get(app->store, ws_id, out)) == LK_OK) {
        lk_wstate_lock(ws);
        out->balance += ws->avail;
        out->leased -= ws->avail + ws->unsaved_spend;
        out->spent += ws->unsaved_spend;
        lk_wstate_unlock(ws);
    }
    pthread_mutex_unlock(&ws->lease_mu);
    if (app->usage != NULL)
        lk_usage_resume(app->usage);
    return e;
}

struct top_up {
    const struct lk_actor *who;
    struct lk_ledger_row *entry;
    int64_t now;
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

enum lk_err lk_credits_top_up(struct lk_app *app, const struct lk_actor *who, int64_t amount,
                              const char *note, int64_t now, struct lk_ledger_row *entry,
                              int64_t *balance)
{
    const char *ws_id = who->workspace_id;
    struct lk_wstate *ws = lk_counters_ws(app->counters, ws_id);
    enum lk_err e;

    memset(entry, 0, sizeof(*entry));
    snprintf(entry->workspace_id, sizeof(entry->workspace_id), "%s", ws_id);
    snprintf(entry->kind, sizeof(entry->kind), "top_up");
    snprintf(entry->actor, sizeof(entry->actor), "%s", who->id);
    snprintf(entry->note, sizeof(entry->note), "%s", note ? note : "");
    entry->amount = amount;
    entry->created_at = now;
    pthread_mutex_lock(&ws->lease_mu);
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, top_up_txn,
                          &(struct top_up){who, entry, now})) != LK_OK)
        goto out;
    /* The answer comes from memory: once committed, a top-up must not answer
     * with an error a client would retry. */
    lk_wstate_lock(ws);
    ws->db_balance += amount;
    *balance = ws->db_balance + ws->avail;
    lk_wstate_unlock(ws);
out:
    pthread_mutex_unlock(&ws->lease_mu);
    return e;
}

enum lk_err lk_credits_ledger(struct lk_app *app, const struct lk_actor *who, int64_t before_id,
                              int limit, lk_ledger_cb cb, void *arg)
{
    return lk_store_ledger_list(app->store, who->workspace_id, before_id, limit, cb, arg);
}
