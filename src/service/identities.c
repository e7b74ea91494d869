#include "service/identities.h"

#include <string.h>

#include "base/common.h"
#include "base/rand.h"
#include "core/quote.h"
#include "service/app_int.h"
#include "service/audit.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

bool lk_external_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > LK_EXTERNAL_ID_MAX || !lk_utf8_valid(s, len))
        return false;
    /* printable: no C0 controls or DEL (nor NUL, which would cut the id short) */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

enum lk_err lk__identities_link(struct lk_store *s, const struct lk_actor *who,
                                const char *external_id, int64_t now, char id[LK_ID_MAX] /* OUT */)
{
    struct lk_identity_row r;
    enum lk_err e;

    /* Twice: another node may make the same identity between our read and our
     * insert; its row is then the one to link. */
    for (int tries = 0; tries < 2; tries++) {
        e = lk_store_identity_by_external(s, who->workspace_id, external_id, &r);
        if (e == LK_OK) {
            memcpy(id, r.id, LK_ID_MAX);
            lk_identity_row_release(&r);
            return LK_OK;
        }
        lk_identity_row_release(&r);
        if (e != LK_ERR_NOT_FOUND)
            return e;
        memset(&r, 0, sizeof(r));
        lk_rand_id("idn_", r.id, sizeof(r.id));
        memcpy(r.workspace_id, who->workspace_id, LK_ID_MAX);
        snprintf(r.external_id, sizeof(r.external_id), "%s", external_id);
        r.meta = (char *)"{}";
        r.created_at = now;
        e = lk_store_identity_insert(s, &r);
        if (e == LK_OK) {
            memcpy(id, r.id, LK_ID_MAX);
            return lk_audit_write(s, who, "identity.create", r.id, now);
        }
        if (e != LK_ERR_CONFLICT)
            return e;
    }
    return LK_ERR_CONFLICT;
}

enum lk_err lk_identities_get(struct lk_app *app, const struct lk_actor *who, const char *id,
                              struct lk_identity_row *out)
{
    return lk_store_identity_get(app->store, who->workspace_id, id, out);
}

enum lk_err lk_identities_by_external(struct lk_app *app, const struct lk_actor *who,
                                      const char *external_id, struct lk_identity_row *out)
{
    return lk_store_identity_by_external(app->store, who->workspace_id, external_id, out);
}

enum lk_err lk_identities_list(struct lk_app *app, const struct lk_actor *who, const char *after_id,
                               int limit, lk_identity_row_cb cb, void *arg)
{
    if (limit < 1 || limit > 100)
        limit = 100;
    return lk_store_identity_list(app->store, who->workspace_id, after_id, limit, cb, arg);
}
