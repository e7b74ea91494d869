/*
 * audit.h — the audit log (DESIGN §1): who did what to which object, from where,
 * in which request. Every change a management call makes is recorded here in
 * the same transaction as the change itself, so the log never holds an event
 * that did not happen nor misses one that did. Events never hold a secret.
 *
 * Thread safety: every function is safe from any thread; lk_audit_write only
 * inside the caller's transaction (lk_store_txn), on the store handle it got.
 */
#ifndef LK_AUDIT_H
#define LK_AUDIT_H

#include "service/auth.h"

/* Writes one event of who (workspace, actor, address, request id) doing
 * `action` to `target` (may be NULL: none) at `now`, through s: the store
 * handle of the caller's transaction. LK_ERR_STORAGE_UNAVAILABLE when the
 * store fails (the caller rolls back). */
enum lk_err lk_audit_write(struct lk_store *s, const struct lk_actor *who, const char *action,
                           const char *target, int64_t now);

/* The same with a detail: the text of a JSON object (NULL or "": none) shown as
 * the event's `detail`, shorter than LK_AUDIT_DETAIL_MAX; never a secret. */
enum lk_err lk_audit_write_detail(struct lk_store *s, const struct lk_actor *who,
                                  const char *action, const char *target, const char *detail,
                                  int64_t now);

/* Records a sign-in event (`auth.login`, `auth.login_failed`, `auth.logout`) of
 * user_id in each workspace it is a member of, in one transaction: a sign-in is
 * about no one workspace, so each of them sees it. Best effort: a failure is
 * logged, never answered (the sign-in itself already happened or failed). */
void lk_audit_sign_in(struct lk_app *app, const char *user_id, const char *action,
                      const char *address, const char *request_id, int64_t now);

/* Events of the actor's workspace, newest first, below before_id (0: from the
 * newest), that f keeps (NULL: every one), at most `limit`; each (borrowed) goes
 * to cb, which returns nonzero to stop. */
enum lk_err lk_audit_list(struct lk_app *app, const struct lk_actor *who,
                          const struct lk_audit_filter *f, int64_t before_id, int limit,
                          lk_audit_cb cb, void *arg);

#endif
