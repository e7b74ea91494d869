#include "http/render.h"

#include "base/common.h"
#include "core/timefmt.h"
#include "service/keys.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

const char *lk_render_kind(enum lk_key_kind kind)
{
    static const char *const names[] = {"permanent", "temporary", "application", "root"};
    return (unsigned)kind < LK_ARRAY_LEN(names) ? names[kind] : "permanent";
}

json_t *lk_render_time(int64_t t)
{
    char buf[LK_TIME_STRLEN];

    if (t == 0)
        return json_null();
    lk_time_format(t, buf);
    return json_string(buf);
}

static json_t *parsed_or(const char *text, const char *fallback)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_loads(fallback, 0, NULL);
}

/* The key's own credits as they are now (credits_now, which lk_keys_get
 * makes current), or null. */
static json_t *render_credits(const struct lk_key_row *k)
{
    static const char *const intervals[] = {"none", "daily", "monthly"};
    json_t *refill = json_null();

    if (!k->has_credits)
        return json_null();
    if (k->credits_refill != LK_CREDIT_REFILL_NONE) {
        refill = json_pack("{s:s, s:I}", "interval", intervals[k->credits_refill], "amount",
                           (json_int_t)k->credits_refill_amount);
        if (k->credits_refill == LK_CREDIT_REFILL_MONTHLY)
            json_object_set_new(refill, "refill_day", json_integer(k->credits_refill_day));
    }
    return json_pack("{s:I, s:o}", "remaining",
                     (json_int_t)(k->credits_now >= 0 ? k->credits_now : k->credits_remaining),
                     "refill", refill);
}

static json_t *render_rl(const char *name, int64_t limit, int64_t window_ms, bool auto_apply)
{
    return json_pack("{s:s, s:I, s:I, s:b}", "name", name, "limit", (json_int_t)limit,
                     "window_ms", (json_int_t)window_ms, "auto_apply", auto_apply);
}

/* Every named limit, "default" (the rate_limit) first. */
static json_t *render_rate_limits(const struct lk_key_row *k)
{
    json_t *a = json_array();

    if (k->rl_limit > 0)
        json_array_append_new(a, render_rl("default", k->rl_limit, k->rl_window_s * 1000, true));
    for (int i = 0; i < k->n_rate_limits; i++)
        json_array_append_new(a, render_rl(k->rate_limits[i].name, k->rate_limits[i].limit,
                                           k->rate_limits[i].window_ms,
                                           k->rate_limits[i].auto_apply));
    return a;
}

json_t *lk_render_key(const struct lk_key_row *k, int64_t now, const char *secret)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(k->id));
    json_object_set_new(o, "name", json_string(k->name));
    json_object_set_new(o, "workspace_id", json_string(k->workspace_id));
    json_object_set_new(o, "environment", json_string(lk_env_name(k->env)));
    json_object_set_new(o, "kind", json_string(lk_render_kind(k->kind)));
    json_object_set_new(o, "permissions", parsed_or(k->permissions, "[\"*\"]"));
    json_object_set_new(o, "hint", json_string(k->hint));
    json_object_set_new(o, "enabled", json_boolean(k->enabled));
    json_object_set_new(o, "status", json_string(lk_keys_status(k, now)));
    json_object_set_new(o, "expires_at", lk_render_time(k->expires_at));
    json_object_set_new(o, "revoked_at", lk_render_time(k->revoked_at));
    json_object_set_new(o, "created_at", lk_render_time(k->created_at));
    json_object_set_new(o, "last_used_at", lk_render_time(k->last_used_at));
    if (k->rl_limit > 0)
        json_object_set_new(o, "rate_limit",
                            json_pack("{s:I, s:I}", "limit", (json_int_t)k->rl_limit, "window_s",
                                      (json_int_t)k->rl_window_s));
    else
        json_object_set_new(o, "rate_limit", json_null());
    json_object_set_new(o, "daily_spend_cap",
                        k->daily_spend_cap >= 0 ? json_integer(k->daily_spend_cap) : json_null());
    json_object_set_new(o, "meta", parsed_or(k->meta, "{}"));
    json_object_set_new(o, "external_id", k->identity_id[0] ? json_string(k->external_id) : json_null());
    json_object_set_new(o, "identity_id", k->identity_id[0] ? json_string(k->identity_id) : json_null());
    json_object_set_new(o, "credits", render_credits(k));
    json_object_set_new(o, "rate_limits", render_rate_limits(k));
    json_object_set_new(o, "created_by", k->created_by[0] ? json_string(k->created_by) : json_null());
    if (secret != NULL)
        json_object_set_new(o, "secret", json_string(secret));
    return o;
}

static json_t *opt_int(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

json_t *lk_render_ws(const struct lk_ws_row *w)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:o}", "id", w->id, "number",
                     (json_int_t)w->number, "name", w->name, "key_prefix", w->key_prefix,
                     "key_format", w->key_format == LK_FORMAT_HEX ? "hex" : "default",
                     "created_at", lk_render_time(w->created_at), "quota", opt_int(w->quota),
                     "test_quota", opt_int(w->test_quota));
}
