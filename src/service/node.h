/*
 * node.h — this serving process as one node of a database (docs/internals/feed.md
 * "Nodes"): its id and counter file in its state directory, its row in the
 * store's `nodes` with a heartbeat every second, and the periodic work a node
 * does for the others: reclaiming the credit leases of nodes whose heartbeat
 * stopped, pruning the change log.
 *
 * The state directory holds `node` (the id, made at the first start) and
 * `counters` (service/credits.c's exact counts across a kill). Beside an
 * SQLite file without --state-dir they are `<db>.node` and `<db>.counters`.
 * The counter file is held with an exclusive flock while serving, so two
 * processes never share a state directory.
 *
 * Thread safety: open/free from one thread; lk_node_id() from any.
 */
#ifndef LK_NODE_H
#define LK_NODE_H

#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

struct lk_app;
struct lk_node;

/* A node whose heartbeat is older than this is dead: its leases may be
 * reclaimed and its row deleted. */
#define LK_NODE_DEAD_AFTER_S 10
#define LK_NODE_BEAT_MS 1000

/* Resolves the state directory (state_dir, or beside an SQLite file; NULL is
 * refused for other databases), makes it if missing, takes the counter file's
 * lock and reads or makes the node id. */
enum lk_err lk_node_open(const char *db_url, const char *state_dir, struct lk_node **out /* OUT */,
                         struct lk_errinfo *ei);
/* Stops the heartbeat thread (the node still holds its directory). */
void lk_node_stop(struct lk_node *n);

/* Deletes the node's row when it stopped cleanly (its leases were returned),
 * stops the thread, releases the lock. Accepts NULL. */
void lk_node_free(struct lk_node *n, struct lk_store *store, bool clean);

const char *lk_node_id(const struct lk_node *n);
/* The counter file's path. */
const char *lk_node_counters_path(const struct lk_node *n);

/* Registers the node (started and beating now). */
enum lk_err lk_node_register(struct lk_node *n, struct lk_store *store, int64_t now);

/* Starts the heartbeat thread: a beat every second; leases of dead nodes
 * reclaimed (lk_credits_reclaim_dead); old changes pruned. */
void lk_node_start(struct lk_node *n, struct lk_app *app);

#endif
