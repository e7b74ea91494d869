/*
 * h_keys.c — /v1/keys: create, list, read, change, revoke, regenerate. These run
 * on management workers (mgmt.h), never on an event loop.
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/render.h"
#include "service/identities.h"
#include "service/keys.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 100

/* The {id} path segment, or NULL when it cannot be a key id. */
static const char *key_id_param(const struct lk_mreq *m)
{
    size_t n = strlen(m->params[0]);
    return m->param_too_long || n == 0 || n >= LK_ID_MAX ? NULL : m->params[0];
}

/* Resolves the credential and the {id} segment; on failure answers and returns NULL. */
static const char *actor_and_id(struct lk_mreq *m, struct lk_actor *who)
{
    const char *id;

    if (lk_mreq_actor(m, who) != LK_OK)
        return NULL;
    if ((id = key_id_param(m)) == NULL)
        lk_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
    return id;
}

static void answer_key(struct lk_mreq *m, int status, struct lk_key_row *k, char *secret)
{
    /* An imported key has no secret to show. */
    json_t *o = lk_render_key(k, m->now, secret && secret[0] ? secret : NULL);

    lk_key_row_release(k);
    if (secret != NULL)
        OPENSSL_cleanse(secret, LK_SECRET_MAX);
    lk_mreq_json(m, status, o); /* the mreq wipes the rendered secret when it is sent */
}

void lk_h_keys_create(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_spec spec;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char secret[LK_SECRET_MAX];
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_key_spec(m->body, m->body_len, true, &spec, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    e = lk_keys_create(m->app, &who, &spec, m->now, &k, secret, &ei);
    lk_key_spec_release(&spec);
    if (e != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    answer_key(m, 201, &k, secret);
}

/* Reads the list filters from the query string into f. */
static enum lk_err list_filter(struct lk_mreq *m, struct lk_key_filter *f, struct lk_errinfo *ei)
{
    static const char *const statuses[] = {"any", "active", "disabled", "expired", "revoked"};
    int64_t before = f->before_rowid; /* read with the page parameters */
    char v[64];
    enum lk_env env;
    size_t i;
    int found;

    *f = (struct lk_key_filter){.env = -1, .now = m->now, .before_rowid = before};
    if ((found = lk_mreq_query(m, "environment", v, sizeof(v))) != 0) {
        if (found < 0 || lk_env_parse(v, &env) != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "environment",
                                  "'environment' must be live or test");
        f->env = (int)env;
    }
    if ((found = lk_mreq_query(m, "status", v, sizeof(v))) != 0) {
        for (i = 0; found > 0 && i < LK_ARRAY_LEN(statuses); i++)
            if (strcmp(v, statuses[i]) == 0)
                break;
        if (found < 0 || i == LK_ARRAY_LEN(statuses))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "status",
                                  "'status' must be active, disabled, expired or revoked");
        f->status = (enum lk_key_status_filter)i;
    }
    return LK_OK;
}

/* ?external_id=: the keys of that identity. *none when the workspace has no
 * such identity (an empty page, not an error). */
static enum lk_err identity_filter(struct lk_mreq *m, const struct lk_actor *who,
                                   struct lk_key_filter *f, bool *none, struct lk_errinfo *ei)
{
    char v[LK_EXTERNAL_ID_MAX + 1];
    struct lk_identity_row r;
    enum lk_err e;
    int found;

    *none = false;
    if ((found = lk_mreq_query(m, "external_id", v, sizeof(v))) == 0)
        return LK_OK;
    if (found < 0 || !lk_external_id_valid(v, strlen(v)))
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "external_id",
                              "'external_id' must be 1 to 255 bytes of printable UTF-8");
    e = lk_identities_by_external(m->app, who, v, &r);
    if (e == LK_OK)
        memcpy(f->identity_id, r.id, LK_ID_MAX);
    lk_identity_row_release(&r);
    if (e == LK_ERR_NOT_FOUND) {
        *none = true;
        return LK_OK;
    }
    return e;
}

struct key_page {
    struct lk_page pg;
    int64_t now;
};

static int add_to_page(void *arg, const struct lk_key_row *k)
{
    struct key_page *kp = arg;
    return lk_page_add_ref(&kp->pg, lk_render_key(k, kp->now, NULL), k->id);
}

void lk_h_keys_list(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_filter f;
    struct lk_errinfo ei;
    struct key_page kp = {.now = m->now};
    enum lk_err e;
    bool none;

    if (lk_mreq_actor(m, &who) != LK_OK ||
        !lk_mreq_page(m, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, 0, &kp.pg, &f.before_rowid))
        return;
    lk_errinfo_clear(&ei);
    if ((e = list_filter(m, &f, &ei)) != LK_OK ||
        (e = lk_keys_cursor(m->app, &who, kp.pg.cursor, &f.before_rowid, &ei)) != LK_OK ||
        (e = identity_filter(m, &who, &f, &none, &ei)) != LK_OK) {
        json_decref(kp.pg.data);
        lk_mreq_error(m, e, &ei);
        return;
    }
    f.limit = kp.pg.want + 1;
    if (!none && (e = lk_keys_list(m->app, &who, &f, add_to_page, &kp)) != LK_OK) {
        json_decref(kp.pg.data);
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_page_answer(m, &kp.pg, NULL, NULL);
}

void lk_h_keys_get(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_row k;
    const char *id;
    enum lk_err e;

    if ((id = actor_and_id(m, &who)) == NULL)
        return;
    if ((e = lk_keys_get(m->app, &who, id, &k)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    answer_key(m, 200, &k, NULL);
}

void lk_h_keys_update(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_spec spec;
    struct lk_key_row k;
    struct lk_errinfo ei;
    const char *id;
    enum lk_err e;

    if ((id = actor_and_id(m, &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_key_spec(m->body, m->body_len, false, &spec, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    e = lk_keys_update(m->app, &who, id, &spec, m->now, &k, &ei);
    lk_key_spec_release(&spec);
    if (e != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    answer_key(m, 200, &k, NULL);
}

void lk_h_keys_delete(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_errinfo ei;
    const char *id;
    enum lk_err e;

    if ((id = actor_and_id(m, &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_keys_revoke(m->app, &who, id, m->now, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    lk_mreq_no_content(m);
}

void lk_h_keys_regenerate(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_row k;
    struct lk_errinfo ei;
    char secret[LK_SECRET_MAX];
    const char *id;
    int64_t grace;
    enum lk_err e;

    if ((id = actor_and_id(m, &who)) == NULL)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_regenerate(m->body, m->body_len, &grace, &ei)) != LK_OK ||
        (e = lk_keys_regenerate(m->app, &who, id, grace, m->now, &k, secret, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    answer_key(m, 200, &k, secret);
}

void lk_h_keys_generate_temp(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_spec spec;
    struct lk_key_row k;
    struct lk_ws_row w;
    struct lk_errinfo ei;
    char secret[LK_SECRET_MAX];
    int64_t folder;
    json_t *o;
    enum lk_err e;

    /* Who asks comes before what is asked: an API key is refused whatever the body. */
    if (m->key_err != LK_OK || !lk_auth_is_session(m->key, m->key_len)) {
        if (lk_mreq_actor(m, &who) == LK_OK)
            lk_mreq_error(m, lk_errinfo_set(&ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                                            "temporary keys are made with a user session, "
                                            "not an API key"),
                          &ei);
        return;
    }
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_temp(m->body, m->body_len, &folder, m->workspace, sizeof(m->workspace),
                            &spec, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    /* Flexweg names the site by number; the session then acts in that workspace. */
    if (folder > 0) {
        if ((e = lk_workspaces_get_by_number(m->app, folder, &w)) != LK_OK) {
            lk_key_spec_release(&spec);
            lk_mreq_error(m, e, NULL);
            return;
        }
        snprintf(m->workspace, sizeof(m->workspace), "%s", w.id);
    }
    if (lk_mreq_actor(m, &who) != LK_OK) {
        lk_key_spec_release(&spec);
        return;
    }
    e = lk_keys_generate_temp(m->app, &who, &spec, m->now, &k, secret, &ei);
    lk_key_spec_release(&spec);
    if (e != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    o = json_pack("{s:s, s:s, s:o, s:s, s:o}", "key", secret, "id", k.id, "expires_at",
                  lk_render_time(k.expires_at), "workspace_id", k.workspace_id, "permissions",
                  json_loads(k.permissions ? k.permissions : "[\"*\"]", 0, NULL));
    OPENSSL_cleanse(secret, sizeof(secret));
    lk_key_row_release(&k);
    lk_mreq_json(m, 201, o);
}
