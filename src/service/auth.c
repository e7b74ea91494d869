#include "service/auth.h"

#include "base/common.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum lk_err lk_auth_actor(struct lk_app *app, const char *secret, size_t len, int64_t now,
                          struct lk_actor *out)
{
    struct lk_verify_req req = {secret, len, LK_VERIFY_ANY_ENV, NULL, 0, now, false};
    const struct lk_ckey *k;
    enum lk_err e;

    lk_keycache_read_lock();
    if ((e = lk_verify(app, &req, &k)) != LK_OK)
        goto out;
    if (k->kind != LK_KIND_ROOT && k->kind != LK_KIND_APPLICATION) {
        e = LK_ERR_INSUFFICIENT_PERMISSIONS;
        goto out;
    }
    memcpy(out->workspace_id, k->workspace_id, LK_ID_MAX);
    memcpy(out->id, k->id, LK_ID_MAX);
    out->kind = k->kind;
    out->can_read = lk_verify_key_covers(k, "keys:read", 9);
    out->can_write = lk_verify_key_covers(k, "keys:write", 10);
    out->is_operator = k->kind == LK_KIND_ROOT && app->operator_ws[0] != '\0' &&
                       strcmp(app->operator_ws, k->workspace_id) == 0;
    if (!out->can_read)
        e = LK_ERR_INSUFFICIENT_PERMISSIONS;
out:
    lk_keycache_read_unlock();
    return e;
}
