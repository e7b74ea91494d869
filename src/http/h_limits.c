/*
 * h_limits.c — what a workspace may use and has used: GET /v1/quota,
 * GET/POST /v1/credits, GET /v1/keys/{id}/usage. On management workers.
 */
#include "base/common.h"
#include "core/quota.h"
#include "core/timefmt.h"
#include "http/handlers.h"
#include "http/jsonin.h"
#include "http/render.h"
#include "service/credits.h"
#include "service/keys.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define LEDGER_DEFAULT_LIMIT 50
#define LEDGER_MAX_LIMIT 100
#define USAGE_MAX_HOURS 744 /* 31 days */
#define USAGE_MAX_DAYS 90
#define USAGE_EPOCH 946684800 /* 2000-01-01: no usage is older */

static json_t *opt_int(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *quota_part(int64_t limit, int64_t used)
{
    return json_pack("{s:o, s:I, s:o}", "limit", opt_int(limit), "used", (json_int_t)used,
                     "remaining", limit >= 0 ? json_integer(limit > used ? limit - used : 0)
                                             : json_null());
}

static json_t *date_of(int64_t day)
{
    char buf[LK_TIME_STRLEN];

    lk_time_format(day * LK_DAY_S, buf);
    buf[10] = '\0'; /* YYYY-MM-DD */
    return json_string(buf);
}

void lk_h_quota(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_ws_quota q;
    int64_t today = lk_day_of(m->now);
    json_t *days;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_workspaces_quota(m->app, &who, &q);
    days = json_array();
    for (int64_t d = today - LK_QUOTA_DAYS + 1; d <= today; d++)
        json_array_append_new(days, json_pack("{s:o, s:I, s:I}", "date", date_of(d), "live",
                                              (json_int_t)lk_quota_day(&q.live, d), "test",
                                              (json_int_t)lk_quota_day(&q.test, d)));
    lk_mreq_json(m, 200,
                 json_pack("{s:s, s:i, s:o, s:o, s:o}", "workspace_id", who.workspace_id,
                           "window_days", LK_QUOTA_DAYS, "live",
                           quota_part(q.quota, lk_quota_used(&q.live, today)), "test",
                           quota_part(q.test_quota, lk_quota_used(&q.test, today)), "days", days));
}

static json_t *render_entry(const struct lk_ledger_row *r)
{
    return json_pack("{s:I, s:s, s:I, s:s, s:s, s:o}", "id", (json_int_t)r->id, "kind", r->kind,
                     "amount", (json_int_t)r->amount, "note", r->note, "actor", r->actor,
                     "created_at", lk_render_time(r->created_at));
}

static int add_entry(void *arg, const struct lk_ledger_row *r)
{
    return lk_page_add(arg, render_entry(r), r->id);
}

void lk_h_credits_get(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_credit_account a;
    struct lk_page pg;
    int64_t before;
    enum lk_err e;
    json_t *o;

    if (lk_mreq_actor(m, &who) != LK_OK ||
        !lk_mreq_page(m, LEDGER_DEFAULT_LIMIT, LEDGER_MAX_LIMIT, 'l', &pg, &before))
        return;
    if ((e = lk_credits_get(m->app, who.workspace_id, &a)) != LK_OK ||
        (e = lk_credits_ledger(m->app, &who, before, pg.want + 1, add_entry, &pg)) != LK_OK) {
        json_decref(pg.data);
        lk_mreq_error(m, e, NULL);
        return;
    }
    o = json_pack("{s:s, s:I, s:I, s:I}", "workspace_id", who.workspace_id, "balance",
                  (json_int_t)a.balance, "topped_up", (json_int_t)a.topped_up, "spent",
                  (json_int_t)a.spent);
    lk_page_answer(m, &pg, o, "ledger");
}

void lk_h_credits_top_up(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_ledger_row entry;
    struct lk_errinfo ei;
    char note[LK_LEDGER_NOTE_MAX + 1];
    int64_t amount, balance;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    lk_errinfo_clear(&ei);
    if ((e = lk_jsonin_top_up(m->body, m->body_len, &amount, note, sizeof(note), &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    if ((e = lk_credits_top_up(m->app, &who, amount, note, m->now, &entry, &balance)) != LK_OK) {
        if (e == LK_ERR_CONFLICT)
            lk_errinfo_set(&ei, e, "amount", "the total topped up would pass 2^53 - 1 credits");
        lk_mreq_error(m, e, e == LK_ERR_CONFLICT ? &ei : NULL);
        return;
    }
    lk_mreq_json(m, 201,
                 json_pack("{s:s, s:I, s:o}", "workspace_id", who.workspace_id, "balance",
                           (json_int_t)balance, "entry", render_entry(&entry)));
}

/* --- usage ----------------------------------------------------------------------------- */

struct usage_buckets {
    int64_t from, step, n;
    json_t **outcomes; /* one object per bucket */
    int64_t *totals;
    int64_t sums[LK_KEYS_USAGE_CODES];
};

static int add_usage(void *arg, const struct lk_counter_row *r)
{
    struct usage_buckets *ub = arg;
    int64_t i = (r->period - ub->from) / ub->step;
    json_t *o, *prev;

    if (i < 0 || i >= ub->n || r->code < 0 || r->code >= LK_KEYS_USAGE_CODES)
        return 0;
    o = ub->outcomes[i];
    prev = json_object_get(o, lk_err_code((enum lk_err)r->code));
    json_object_set_new(o, lk_err_code((enum lk_err)r->code),
                        json_integer((prev ? json_integer_value(prev) : 0) + r->n));
    ub->totals[i] += r->n;
    ub->sums[r->code] += r->n;
    return 0;
}

/* `from` / `to`: RFC 3339 or Unix seconds; 0 when absent, -1 when bad. */
static int64_t time_param(struct lk_mreq *m, const char *name)
{
    char v[48];
    int64_t t;
    int found = lk_mreq_query(m, name, v, sizeof(v));

    if (found == 0)
        return 0;
    if (found < 0)
        return -1;
    if (lk_parse_i64(v, strlen(v), USAGE_EPOCH, INT64_C(253402300799), &t) == 0)
        return t;
    return lk_time_parse(v, strlen(v), &t) == 0 && t >= USAGE_EPOCH ? t : -1;
}

static void usage_error(struct lk_mreq *m, const char *field, const char *what)
{
    struct lk_errinfo ei;
    lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, field, "%s", what);
    lk_mreq_error(m, LK_ERR_INVALID_REQUEST, &ei);
}

/* GET /v1/keys/{id}/usage (one key) and GET /v1/usage (the whole workspace):
 * one shape, the workspace's without key_id. */
static void usage_answer(struct lk_mreq *m, bool workspace)
{
    struct lk_actor who;
    struct lk_key_row k;
    struct usage_buckets ub = {0};
    char g[16];
    int found;
    int64_t from, to, max;
    json_t *data, *totals, *body;
    enum lk_err e;

    memset(&k, 0, sizeof(k));
    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    if ((found = lk_mreq_query(m, "granularity", g, sizeof(g))) == 0)
        snprintf(g, sizeof(g), "hour");
    if (found < 0 || (strcmp(g, "hour") != 0 && strcmp(g, "day") != 0)) {
        usage_error(m, "granularity", "'granularity' must be hour or day");
        return;
    }
    ub.step = g[0] == 'h' ? 3600 : LK_DAY_S;
    max = ub.step == 3600 ? USAGE_MAX_HOURS : USAGE_MAX_DAYS;
    if ((from = time_param(m, "from")) < 0 || (to = time_param(m, "to")) < 0) {
        usage_error(m, from < 0 ? "from" : "to",
                    "a time after 2000-01-01 as RFC 3339 or Unix seconds");
        return;
    }
    /* Whole buckets: from rounds down, to up to a bucket's end (the bucket of
     * `now` included); by default the last 24 hours or 30 days. */
    if (to == 0)
        to = m->now;
    if (to % ub.step != 0)
        to = to - to % ub.step + ub.step;
    if (from == 0)
        from = to - (ub.step == 3600 ? 24 : LK_QUOTA_DAYS) * ub.step;
    from -= from % ub.step;
    if (to <= from) {
        usage_error(m, "to", "'to' must be after 'from'");
        return;
    }
    if ((to - from) / ub.step > max) {
        usage_error(m, "from", ub.step == 3600 ? "at most 744 hours at a time"
                                               : "at most 90 days at a time");
        return;
    }
    if (!workspace && (e = lk_keys_get(m->app, &who, m->params[0], &k)) != LK_OK) {
        lk_mreq_error(m, e, NULL);
        return;
    }
    ub.from = from;
    ub.n = (to - from) / ub.step;
    ub.outcomes = lk_calloc((size_t)ub.n, sizeof(json_t *));
    ub.totals = lk_calloc((size_t)ub.n, sizeof(int64_t));
    for (int64_t i = 0; i < ub.n; i++)
        ub.outcomes[i] = json_object();
    e = workspace ? lk_keys_workspace_usage(m->app, &who, from, to, add_usage, &ub)
                  : lk_keys_usage(m->app, &who, &k, from, to, add_usage, &ub);
    data = json_array();
    for (int64_t i = 0; i < ub.n; i++)
        json_array_append_new(data, json_pack("{s:o, s:I, s:o}", "start",
                                              lk_render_time(from + i * ub.step), "total",
                                              (json_int_t)ub.totals[i], "outcomes",
                                              ub.outcomes[i]));
    totals = json_object();
    for (int c = 0; c < LK_KEYS_USAGE_CODES; c++)
        if (ub.sums[c] > 0)
            json_object_set_new(totals, lk_err_code((enum lk_err)c), json_integer(ub.sums[c]));
    free(ub.outcomes);
    free(ub.totals);
    if (e != LK_OK) {
        json_decref(data);
        json_decref(totals);
        if (!workspace)
            lk_key_row_release(&k);
        lk_mreq_error(m, e, NULL);
        return;
    }
    body = json_pack("{s:s*, s:s, s:o, s:o, s:o, s:o}", "key_id", workspace ? NULL : k.id,
                     "granularity", g, "from", lk_render_time(from), "to", lk_render_time(to),
                     "data", data, "totals", totals);
    if (!workspace)
        lk_key_row_release(&k);
    lk_mreq_json(m, 200, body);
}

void lk_h_keys_usage(struct lk_mreq *m)
{
    usage_answer(m, false);
}

void lk_h_usage(struct lk_mreq *m)
{
    usage_answer(m, true);
}

static int add_permission(void *arg, const char *perm)
{
    json_array_append_new(arg, json_string(perm));
    return 0;
}

/* GET /v1/permissions: what the key form offers to pick from. */
void lk_h_permissions(struct lk_mreq *m)
{
    struct lk_actor who;
    json_t *data;
    enum lk_err e;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    data = json_array();
    e = lk_keys_permissions_in_use(m->app, &who, add_permission, data);
    lk_mreq_list(m, e, data);
}
