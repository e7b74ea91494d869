#include "service/audit.h"

#include "base/common.h"
#include "base/log.h"
#include "service/app_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum lk_err lk_audit_write(struct lk_store *s, const struct lk_actor *who, const char *action,
                           const char *target, int64_t now)
{
    return lk_audit_write_detail(s, who, action, target, NULL, now);
}

enum lk_err lk_audit_write_detail(struct lk_store *s, const struct lk_actor *who,
                                  const char *action, const char *target, const char *detail,
                                  int64_t now)
{
    struct lk_audit_row a = {.created_at = now};

    if (detail != NULL) {
        /* The caller bounds it; a detail that does not fit is a bug of ours. */
        lk_assert(strlen(detail) < sizeof(a.detail));
        memcpy(a.detail, detail, strlen(detail) + 1);
    }

    snprintf(a.workspace_id, sizeof(a.workspace_id), "%s", who->workspace_id);
    snprintf(a.actor, sizeof(a.actor), "%s", who->id);
    snprintf(a.action, sizeof(a.action), "%s", action);
    snprintf(a.target, sizeof(a.target), "%s", target ? target : "");
    snprintf(a.address, sizeof(a.address), "%s", who->address);
    snprintf(a.request_id, sizeof(a.request_id), "%s", who->request_id);
    return lk_store_audit_insert(s, &a);
}

/* The workspaces of one user, read before any event is written: no write runs
 * while a listing is open. */
struct ws_ids {
    char (*ids)[LK_ID_MAX];
    size_t n, cap;
};

static int add_ws_id(void *arg, const struct lk_member_row *m)
{
    struct ws_ids *w = arg;

    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 8;
        w->ids = lk_realloc(w->ids, w->cap * sizeof(*w->ids));
    }
    memcpy(w->ids[w->n++], m->workspace_id, LK_ID_MAX);
    return 0;
}

struct sign_in {
    struct lk_actor actor;
    const char *action;
    int64_t now;
    struct ws_ids ws;
};

static enum lk_err sign_in_txn(struct lk_store *s, void *arg)
{
    struct sign_in *si = arg;
    enum lk_err e;

    si->ws.n = 0; /* a retry lists again */
    if ((e = lk_store_member_list_user(s, si->actor.id, add_ws_id, &si->ws)) != LK_OK)
        return e;
    for (size_t i = 0; i < si->ws.n; i++) {
        memcpy(si->actor.workspace_id, si->ws.ids[i], LK_ID_MAX);
        if ((e = lk_audit_write(s, &si->actor, si->action, si->actor.id, si->now)) != LK_OK)
            return e;
    }
    return LK_OK;
}

void lk_audit_sign_in(struct lk_app *app, const char *user_id, const char *action,
                      const char *address, const char *request_id, int64_t now)
{
    struct sign_in si = {.action = action, .now = now};

    snprintf(si.actor.id, sizeof(si.actor.id), "%s", user_id);
    snprintf(si.actor.address, sizeof(si.actor.address), "%s", address);
    snprintf(si.actor.request_id, sizeof(si.actor.request_id), "%s", request_id);
    si.actor.is_user = true;
    if (lk_store_txn(app->store, LK_TXN_DEFAULT, sign_in_txn, &si) != LK_OK)
        lk_warn("could not record %s", action);
    free(si.ws.ids);
}

enum lk_err lk_audit_list(struct lk_app *app, const struct lk_actor *who,
                          const struct lk_audit_filter *f, int64_t before_id, int limit,
                          lk_audit_cb cb, void *arg)
{
    return lk_store_audit_list(app->store, who->workspace_id, f, before_id, limit, cb, arg);
}
