#include "base/common.h"
#include "http/handlers.h"
#include "http/keyread.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum lk_err lk_http_actor(struct lk_reqctx *rc, struct lk_actor *who)
{
    h2o_iovec_t key;
    enum lk_err e;

    memset(who, 0, sizeof(*who));
    if ((e = lk_keyread(rc->req, &key)) == LK_OK)
        e = lk_auth_actor(rc->app, key.base, key.len, rc->now, who);
    if (e != LK_OK) {
        lk_respond_error(rc, e, NULL);
        return e;
    }
    snprintf(who->address, sizeof(who->address), "%s", rc->address);
    snprintf(who->request_id, sizeof(who->request_id), "%s", rc->request_id);
    return LK_OK;
}

h2o_iovec_t lk_http_body(struct lk_reqctx *rc)
{
    return rc->req->entity.base ? rc->req->entity : h2o_iovec_init("", 0);
}
