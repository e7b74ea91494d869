/*
 * h_webhooks.c — a workspace's webhook endpoints (docs/webhooks.md):
 * GET/POST /v1/webhooks, DELETE /v1/webhooks/{id}, GET /v1/webhooks/{id}/deliveries,
 * GET/PUT /v1/webhooks/settings. On management workers; services only.
 */
#include <openssl/crypto.h>

#include "base/common.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/render.h"
#include "service/hooks.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define LOG_DEFAULT_LIMIT 50

static json_t *render_endpoint(const struct lk_hook_endpoint_row *r)
{
    json_t *events = json_array();
    const char *p = r->events;

    /* stored as ",a,b,": the names between the commas */
    while (*p == ',' && p[1] != '\0') {
        const char *q = strchr(p + 1, ',');
        if (q == NULL)
            break;
        json_array_append_new(events, json_stringn(p + 1, (size_t)(q - p - 1)));
        p = q;
    }
    return json_pack("{s:s, s:s, s:o, s:s, s:o}", "id", r->id, "url", r->url, "events", events,
                     "description", r->description, "created_at", lk_render_time(r->created_at));
}

static int add_endpoint(void *arg, const struct lk_hook_endpoint_row *r)
{
    json_array_append_new(arg, render_endpoint(r));
    return 0;
}

void lk_h_webhooks_list(struct lk_mreq *m)
{
    struct lk_actor who;
    json_t *data;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    data = json_array();
    lk_mreq_list(m, lk_hooks_list(m->app, &who, add_endpoint, data), data);
}

void lk_h_webhooks_create(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_errinfo ei;
    struct lk_webhook_body b;
    struct lk_hook_spec spec = {0};
    struct lk_hook_endpoint_row row;
    char secret[LK_HOOKSIG_SECRET_MAX];
    json_t *out;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_webhook(m->body, m->body_len, &b, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    spec.url = b.url;
    spec.url_len = strlen(b.url);
    spec.nevents = b.nevents;
    for (size_t i = 0; i < b.nevents; i++)
        spec.events[i] = b.events[i];
    spec.description = b.description;
    if ((e = lk_hooks_create(m->app, &who, &spec, m->now, &row, secret, &ei)) != LK_OK) {
        lk_mreq_error(m, e, ei.detail[0] ? &ei : NULL);
        return;
    }
    out = render_endpoint(&row);
    json_object_set_new(out, "secret", json_string(secret)); /* shown once */
    OPENSSL_cleanse(secret, sizeof(secret));
    lk_mreq_json(m, 201, out);
}

static const char *id_param(struct lk_mreq *m)
{
    size_t n = strlen(m->params[0]);
    return m->param_too_long || n == 0 || n >= LK_ID_MAX ? NULL : m->params[0];
}

void lk_h_webhooks_delete(struct lk_mreq *m)
{
    struct lk_actor who;
    const char *id;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    if ((id = id_param(m)) == NULL) {
        lk_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
        return;
    }
    if ((e = lk_hooks_delete(m->app, &who, id, m->now)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_mreq_no_content(m);
}

static json_t *ms_time(int64_t ms)
{
    return ms > 0 ? lk_render_time(ms / 1000) : json_null();
}

static int add_attempt(void *arg, const struct lk_hook_attempt_row *a)
{
    json_t *item = json_pack(
        "{s:s, s:s, s:i, s:o, s:o, s:o, s:I}", "event_id", a->event_id, "type", a->type, "attempt",
        a->attempt, "status", a->status > 0 ? json_integer(a->status) : json_null(), "error",
        a->error[0] ? json_string(a->error) : json_null(), "started_at", ms_time(a->started_ms),
        "duration_ms", (json_int_t)(a->finished_ms - a->started_ms));

    return lk_page_add(arg, item, a->id);
}

void lk_h_webhooks_deliveries(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_page pg;
    int64_t before;
    const char *id;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    if ((id = id_param(m)) == NULL) {
        lk_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
        return;
    }
    if (!lk_mreq_page(m, LOG_DEFAULT_LIMIT, LK_HOOKS_LOG_MAX, 'd', &pg, &before))
        return;
    e = lk_hooks_deliveries(m->app, &who, id, before, pg.want + 1, add_attempt, &pg);
    if (e != LK_OK) {
        json_decref(pg.data);
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_page_answer(m, &pg, json_pack("{s:s}", "endpoint_id", id), NULL);
}

static void answer_settings(struct lk_mreq *m, const struct lk_actor *who, int64_t threshold)
{
    lk_mreq_json(m, 200,
                 json_pack("{s:s, s:o}", "workspace_id", who->workspace_id, "credits_low_threshold",
                           threshold >= 0 ? json_integer(threshold) : json_null()));
}

void lk_h_webhooks_settings_get(struct lk_mreq *m)
{
    struct lk_actor who;
    int64_t threshold = -1;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    if ((e = lk_hooks_threshold_get(m->app, &who, &threshold)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    answer_settings(m, &who, threshold);
}

void lk_h_webhooks_settings_put(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_errinfo ei;
    int64_t threshold = -1;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_webhook_settings(m->body, m->body_len, &threshold, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    if ((e = lk_hooks_threshold_set(m->app, &who, threshold, m->now)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    answer_settings(m, &who, threshold);
}
