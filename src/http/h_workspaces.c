/*
 * h_workspaces.c — /v1/workspaces (operator root key: create, list, set quotas),
 * on management workers, since it touches the database. /healthz is h_ops.c's.
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/render.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_h_workspaces_create(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_ws_spec spec;
    struct lk_ws_row w;
    struct lk_ws_secrets sec;
    struct lk_errinfo ei;
    enum lk_err e;
    json_t *o;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_workspace(m->body, m->body_len, true, &spec, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    if ((e = lk_workspaces_create(m->app, &who, &spec, m->now, &w, &sec)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    o = lk_render_ws(&w);
    json_object_set_new(o, "root_key", json_string(sec.root_key));
    json_object_set_new(o, "application_keys",
                        json_pack("{s:s, s:s}", "read_write", sec.read_write, "read_only",
                                  sec.read_only));
    OPENSSL_cleanse(&sec, sizeof(sec));
    lk_mreq_json(m, 201, o);
}

void lk_h_workspaces_update(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_ws_spec spec;
    struct lk_ws_row w;
    struct lk_errinfo ei;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_workspace(m->body, m->body_len, false, &spec, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    if ((e = lk_workspaces_set_quota(m->app, &who, m->params[0], &spec, m->now, &w)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_mreq_json(m, 200, lk_render_ws(&w));
}

static int add_ws(void *arg, const struct lk_ws_row *w)
{
    json_array_append_new(arg, lk_render_ws(w));
    return 0;
}

void lk_h_workspaces_list(struct lk_mreq *m)
{
    struct lk_actor who;
    json_t *data;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    data = json_array();
    e = lk_workspaces_list(m->app, &who, add_ws, data);
    lk_mreq_list(m, e, data);
}
