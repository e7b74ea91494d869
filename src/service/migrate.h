/*
 * migrate.h — copies one latchkey database into another, empty one, through the
 * store interface (`latchkey migrate`; docs/operations.md "Moving to another
 * database"): from the embedded SQLite file to PostgreSQL, or between any two
 * backends.
 *
 * Everything is copied: workspaces (with their numbers), keys (digests only:
 * secrets are never stored, so none is read or written), people, memberships,
 * sessions, invitations, credit accounts, the ledger, the quota, spend and usage
 * counters and the audit events. Key row ids may differ on the target; the
 * counters that refer to them are mapped. Ledger and audit ids are renumbered in
 * their original order.
 *
 * The copy is one transaction on the target: it is all there or none of it is.
 * The source is only read (opening it brings its schema to this version, as
 * `serve` would).
 */
#ifndef LK_MIGRATE_H
#define LK_MIGRATE_H

#include <stdint.h>

#include "core/err.h"

/* Rows copied, per table. */
struct lk_migrate_counts {
    int64_t workspaces, users, members, sessions, invitations, keys, credit_accounts, ledger,
        quota_days, spend_days, usage_rows, audit_events;
    int64_t skipped; /* spend and usage rows of a key the source does not have */
};

/* Seconds a node's heartbeat counts as a running server on the source (a
 * node beats every second). */
#define LK_MIGRATE_LIVE_NODE_S 10

/* Copies the database at from_url into the one at to_url. Errors, with
 * ei->field naming the side ("from" or "to"):
 *  - LK_ERR_INVALID_REQUEST: a URL no backend takes, or a source file that
 *    does not exist;
 *  - LK_ERR_CONFLICT, field "to": the target already holds a workspace or a user;
 *  - LK_ERR_CONFLICT, field "from": a server is running on the source, or one
 *    was killed and left its node registered or credits leased (start and stop
 *    latchkey on it once);
 *  - anything else (field "copy" when the target refused a row): the copy
 *    failed and the target was left as it was.
 * Messages never quote a URL (it may carry a password). */
enum lk_err lk_migrate(const char *from_url, const char *to_url,
                       struct lk_migrate_counts *out /* OUT */, struct lk_errinfo *ei);

#endif
