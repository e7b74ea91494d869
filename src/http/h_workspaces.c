#include <openssl/crypto.h>

#include "base/common.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/render.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

int lk_h_workspaces_create(struct lk_reqctx *rc)
{
    struct lk_actor who;
    struct lk_ws_spec spec;
    struct lk_ws_row w;
    struct lk_ws_secrets sec;
    struct lk_errinfo ei;
    h2o_iovec_t body = lk_http_body(rc);
    enum lk_err e;
    json_t *o;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_workspace(body.base, body.len, &spec, &ei)) != LK_OK)
        return lk_respond_error(rc, e, &ei);
    if ((e = lk_workspaces_create(rc->app, &who, &spec, rc->now, &w, &sec)) != LK_OK)
        return lk_respond_error(rc, e, NULL);
    o = lk_render_ws(&w);
    json_object_set_new(o, "root_key", json_string(sec.root_key));
    json_object_set_new(o, "application_keys",
                        json_pack("{s:s, s:s}", "read_write", sec.read_write, "read_only",
                                  sec.read_only));
    OPENSSL_cleanse(&sec, sizeof(sec));
    return lk_respond_json(rc, 201, o);
}

static int add_ws(void *arg, const struct lk_ws_row *w)
{
    json_array_append_new(arg, lk_render_ws(w));
    return 0;
}

int lk_h_workspaces_list(struct lk_reqctx *rc)
{
    struct lk_actor who;
    json_t *data;
    enum lk_err e;

    if (lk_http_actor(rc, &who) != LK_OK)
        return 0;
    data = json_array();
    if ((e = lk_workspaces_list(rc->app, &who, add_ws, data)) != LK_OK) {
        json_decref(data);
        return lk_respond_error(rc, e, NULL);
    }
    return lk_respond_json(rc, 200, json_pack("{s:o}", "data", data));
}
