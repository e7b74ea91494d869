/*
 * keyperms.h — adding, removing and setting a key's permissions as one change
 * (Unkey's keys.addPermissions, keys.removePermissions, keys.setPermissions):
 * the key is read, its list merged and written back, and audited
 * (`key.update`) in one transaction, so two concurrent additions to one key
 * both survive, from this process or another node on the same database. The
 * change reaches this node's cache before the call returns.
 *
 * Only the keys the Unkey-compatible API shows are changed: permanent and
 * temporary keys that are not revoked; any other (root and application keys
 * included) is LK_ERR_NOT_FOUND, as is a key of another workspace. Safe from
 * any management worker.
 */
#ifndef LK_KEYPERMS_H
#define LK_KEYPERMS_H

#include "service/keys.h"

enum lk_keyperms_op { LK_KEYPERMS_ADD, LK_KEYPERMS_REMOVE, LK_KEYPERMS_SET };

/* Applies op with `perms` (a JSON array text of valid, distinct permissions) to
 * key `id` of who's workspace at `now`. Adding keeps the key's order and
 * appends what is new; removing a permission the key lacks is no error. On
 * LK_OK *out is the key as stored after (caller releases). LK_ERR_INVALID_REQUEST
 * (ei) when the result would hold more than LK_PERM_MAX_COUNT permissions;
 * LK_ERR_STORAGE_UNAVAILABLE when the store fails (nothing changed). */
enum lk_err lk_keyperms_change(struct lk_app *app, const struct lk_actor *who, const char *id,
                               enum lk_keyperms_op op, const char *perms, int64_t now,
                               struct lk_key_row *out /* OUT */, struct lk_errinfo *ei);

/* Whether key row k is one the Unkey-compatible API shows (see above). */
bool lk_keyperms_visible(const struct lk_key_row *k);

#endif
