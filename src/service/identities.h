/*
 * identities.h — who keys are for: an identity of a workspace, named by the
 * caller's own id (external_id), made on the first key created or changed with
 * that external_id (lk_keys_create / lk_keys_update), read here. Confined to
 * the actor's workspace.
 *
 * Errors: LK_ERR_NOT_FOUND for none (or one of another workspace);
 * LK_ERR_STORAGE_UNAVAILABLE when the store fails.
 */
#ifndef LK_IDENTITIES_H
#define LK_IDENTITIES_H

#include "service/auth.h"

/* True when s (len bytes) is a valid external_id: 1..LK_EXTERNAL_ID_MAX bytes
 * of UTF-8 without control characters. */
bool lk_external_id_valid(const char *s, size_t len);

/* The identity with this id ("idn_…") of the actor's workspace (caller releases). */
enum lk_err lk_identities_get(struct lk_app *app, const struct lk_actor *who, const char *id,
                              struct lk_identity_row *out /* OUT */);
/* The identity with this external_id of the actor's workspace (caller releases). */
enum lk_err lk_identities_by_external(struct lk_app *app, const struct lk_actor *who,
                                      const char *external_id,
                                      struct lk_identity_row *out /* OUT */);
/* The actor's workspace's identities in id order after after_id ("": from the
 * first), at most limit (1..100); each row (borrowed) goes to cb. */
enum lk_err lk_identities_list(struct lk_app *app, const struct lk_actor *who, const char *after_id,
                               int limit, lk_identity_row_cb cb, void *arg);

/* For key changes (service/keys.c), inside their transaction on s: the id of
 * the actor's workspace's identity with this external_id, made (and audited)
 * when there is none. */
enum lk_err lk__identities_link(struct lk_store *s, const struct lk_actor *who,
                                const char *external_id, int64_t now, char id[LK_ID_MAX] /* OUT */);

#endif
