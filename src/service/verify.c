#include "service/verify.h"

#include "base/common.h"
#include "service/app_int.h"
#include "core/perm.h"
#include "core/permquery.h"
#include "core/secret.h"
#include "service/credits.h"
#include "service/keycredits.h"
#include "service/throttle.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

bool lk_verify_key_covers(const struct lk_ckey *k, const char *needs, size_t len)
{
    const struct lk_permlist *pl = k->perms;

    for (size_t i = 0; i < pl->n; i++)
        if (lk_perm_covers(pl->p[i], pl->len[i], needs, len))
            return true;
    return false;
}

static bool key_has(void *arg, const char *p, size_t len)
{
    return lk_verify_key_covers(arg, p, len);
}

/* The digests of a secret, computed before the format checks so the cache
 * slots they name are on their way from memory while those run. */
struct digests {
    unsigned mask; /* bit 0: sha is worth looking up; bit 1: peppered */
    uint8_t sha[LK_DIGEST_LEN], pep[LK_DIGEST_LEN];
};

static void digest_and_prefetch(struct lk_app *app, const char *secret, size_t len,
                                struct digests *d)
{
    /* Imported or pre-pepper keys may be stored as plain SHA-256: each kind of
     * digest some key actually has is tried, the configured pepper first. */
    d->mask = lk_keycache_pepper_mask(app->cache, lk_pepper_id(app->pepper));
    lk_sha256(secret, len, d->sha);
    if (d->mask & 2) {
        lk_digest_pepper(app->pepper, d->sha, d->pep);
        lk_keycache_prefetch(app->cache, d->pep);
    }
    if (d->mask & 1)
        lk_keycache_prefetch(app->cache, d->sha);
}

static const struct lk_ckey *lookup(struct lk_app *app, const struct digests *d)
{
    const struct lk_ckey *k = NULL;

    if (d->mask & 2)
        k = lk_keycache_find(app->cache, d->pep);
    if (k == NULL && (d->mask & 1))
        k = lk_keycache_find(app->cache, d->sha);
    return k;
}

/* Whether query q is one permission, the common case, which needs no parser:
 * the parser would read it as one word and judge it with lk_perm_valid too
 * (a bare AND or OR is a keyword to it, never a permission). */
static bool one_permission(const char *q, size_t len)
{
    if (len == 2 && (q[0] | 0x20) == 'o' && (q[1] | 0x20) == 'r')
        return false;
    if (len == 3 && (q[0] | 0x20) == 'a' && (q[1] | 0x20) == 'n' && (q[2] | 0x20) == 'd')
        return false;
    return lk_perm_valid(q, len);
}

/* The key's state, environment and permissions, in DESIGN §4's order. */
static enum lk_err check_key(const struct lk_ckey *k, const struct lk_verify_req *req)
{
    if (k->expires_at != 0 && req->now >= k->expires_at)
        return LK_ERR_EXPIRED_KEY;
    if (k->revoked_at != 0 || (k->retired_at != 0 && req->now >= k->retired_at))
        return LK_ERR_REVOKED_KEY;
    if (req->want_env != LK_VERIFY_ANY_ENV && (int)k->env != req->want_env)
        return LK_ERR_ENVIRONMENT_MISMATCH;
    if (!k->enabled)
        return LK_ERR_INACTIVE_KEY;
    if (req->needs != NULL) {
        bool ok = false;
        if (one_permission(req->needs, req->needs_len))
            ok = lk_verify_key_covers(k, req->needs, req->needs_len);
        /* The caller checked the query's syntax; a failure here still refuses. */
        else if (lk_permquery_eval(req->needs, req->needs_len, key_has, (void *)k, &ok, NULL) !=
                 LK_OK)
            ok = false;
        if (!ok)
            return LK_ERR_INSUFFICIENT_PERMISSIONS;
    }
    return LK_OK;
}

/* The limits of a key with the rare parts (k->ext): its own credits, which a
 * check with a cost reserves in the store first, and its named rate limits,
 * which with shared counters are taken from them first (both off the event
 * loop: need_lease with LK_INFO_NEED_KEY_CREDITS or LK_INFO_NEED_NAMED). */
static enum lk_err apply_ext(struct lk_app *app, const struct lk_ckey *k,
                             const struct lk_verify_req *req, struct lk_limits_info *info)
{
    const struct lk_limits_prior *p = req->prior;
    enum lk_key_credits_state kc = p ? p->key_credits : LK_KC_UNDECIDED;
    enum lk_err e;

    if (k->ext->credits && req->cost > 0 && kc == LK_KC_UNDECIDED) {
        info->ext |= LK_INFO_NEED_KEY_CREDITS;
        info->need_lease = true;
        return LK_ERR_INSUFFICIENT_CREDITS;
    }
    e = lk_limits_apply_ext(app, k, req->cost, req->now, p, req->ratelimits, req->n_ratelimits,
                            info);
    if (kc == LK_KC_RESERVED || kc == LK_KC_SHORT) {
        info->ext |= LK_INFO_KEY_CREDITS;
        info->key_credits_remaining = p->key_credits_left;
        info->key_credits_short = kc == LK_KC_SHORT;
    }
    return e;
}

/* No worker to hand the named limits to (refill_inline): one bounded round
 * trip to the shared counters here, as a refill, then decide. */
static enum lk_err named_inline(struct lk_app *app, const struct lk_ckey *k,
                                const struct lk_verify_req *req, struct lk_limits_info *info)
{
    struct lk_limits_prior p = {0};
    struct lk_verify_req r = *req;
    enum lk_err e;

    if (req->prior != NULL)
        p = *req->prior;
    lk_limits_named_list(k, req->ratelimits, req->n_ratelimits, &p);
    if (lk_limits_named_take(app, k->rowid, &p) != LK_OK) {
        info->need_lease = false;
        return LK_ERR_STORAGE_UNAVAILABLE;
    }
    r.prior = &p;
    info->ext = 0;
    info->need_lease = false;
    e = apply_ext(app, k, &r, info);
    /* refused, or waiting on a refill (after which this runs again): not counted */
    if (e != LK_OK)
        lk_limits_named_give(app, k->rowid, &p);
    return e;
}

enum lk_err lk_verify(struct lk_app *app, const struct lk_verify_req *req,
                      const struct lk_ckey **key, struct lk_limits_info *info)
{
    struct lk_secret_view view;
    const struct lk_ckey *k;
    struct digests d;
    enum lk_err e;

    *key = NULL;
    /* What every caller reads; the rest only under its flag (limits.h). */
    info->has_rl = info->has_cap = info->need_lease = false;
    info->retry_after = info->remaining_credits = 0;
    info->refill.parts = 0;
    info->ext = 0;
    if (req->secret == NULL || req->len == 0)
        return LK_ERR_MISSING_KEY;
    /* An address that guessed too often learns nothing more, not even that a key
     * is right. */
    if (req->address != NULL &&
        lk_throttle_blocked(app->failed_keys, req->address, req->now, &info->retry_after))
        return LK_ERR_TOO_MANY_REQUESTS;
    /* No secret is longer than LK_SECRET_MAX: a longer input is refused below
     * without the cost of hashing it. */
    if (req->len < LK_SECRET_MAX)
        digest_and_prefetch(app, req->secret, req->len, &d);
    else
        d.mask = 0;
    e = lk_secret_parse_shape(req->secret, req->len, &view) != LK_OK ? LK_ERR_MALFORMED_KEY
        /* A cache this node cannot vouch for answers nothing about keys: not a
         * stale "valid", and not "unknown" for a key created elsewhere. */
        : lk_feed_stale(app->feed) ? LK_ERR_STORAGE_UNAVAILABLE
                                   : LK_OK;
    k = e == LK_OK ? lookup(app, &d) : NULL;
    explicit_bzero(&d, sizeof(d)); /* as lk_sha256's context: cheaper than OPENSSL_cleanse */
    /* The checksum tells a typo (malformed) from a wrong key (invalid). A
     * secret found among those made here has it right: only the others pay. */
    if (e == LK_OK && (k == NULL || !k->made_here) &&
        !lk_secret_checksum_ok(req->secret, req->len, &view)) {
        k = NULL;
        e = LK_ERR_MALFORMED_KEY;
    }
    if (e != LK_OK)
        return e;
    if (k == NULL) {
        /* Counted under the throttle's lock: a guess that finds the limit
         * reached since the check above is refused like one blocked there. */
        if (req->address != NULL &&
            !lk_throttle_note(app->failed_keys, req->address, req->now, &info->retry_after))
            return LK_ERR_TOO_MANY_REQUESTS;
        return LK_ERR_INVALID_KEY;
    }
    *key = k;
    if (req->record)
        lk_limits_prefetch(k); /* its misses overlap the checks below */
    e = check_key(k, req);
    if (!req->record)
        return e;
    if (e == LK_OK && req->n_ratelimits > 0 &&
        (info->rl_unknown = lk_limits_named_unknown(k, req->ratelimits, req->n_ratelimits)) >= 0)
        return LK_ERR_INVALID_REQUEST; /* the caller's mistake: not counted */
    if (e == LK_OK && k->ext_limits) {
        e = apply_ext(app, k, req, info);
        if (info->need_lease && info->ext == LK_INFO_NEED_NAMED && req->refill_inline)
            e = named_inline(app, k, req, info);
        else if (info->need_lease && (info->ext & (LK_INFO_NEED_KEY_CREDITS | LK_INFO_NEED_NAMED)))
            return e; /* decided once reserved or taken, off the event loop */
    } else if (e == LK_OK) {
        e = lk_limits_apply(app, k, req->cost, req->now, info);
    }
    if (info->need_lease && info->refill.parts != 0 && req->refill_inline) {
        /* No worker to hand this to: one bounded round trip, then decide. */
        if (lk_limits_refill(app, &info->refill, req->now) != LK_OK &&
            !(info->refill.parts == LK_REFILL_RATE && app->fail_open_rate_limits))
            return LK_ERR_STORAGE_UNAVAILABLE;
        e = k->ext_limits ? apply_ext(app, k, req, info)
                          : lk_limits_apply(app, k, req->cost, req->now, info);
        if (k->ext_limits && info->need_lease && info->ext == LK_INFO_NEED_NAMED)
            e = named_inline(app, k, req, info);
        if (info->need_lease && info->refill.parts != 0)
            return LK_ERR_STORAGE_UNAVAILABLE; /* taken by other checks meanwhile */
    }
    if (info->need_lease)
        return e; /* decided again after the lease; counted then */
    lk_limits_count(app, k, e, req->now);
    if (e == LK_OK)
        lk_usage_touch(app->usage, k, req->now);
    return e;
}

#define LEASE_TRIES 16

/* A check that reserved the key's own credits, or took named limits from the
 * shared counters, and then was refused or failed gives them back. */
static enum lk_err unreserve(struct lk_app *app, const struct lk_verify_req *r, int64_t rowid,
                             const struct lk_key_spend *ks, enum lk_err e)
{
    const struct lk_limits_prior *p = r->prior;

    if (p->key_credits == LK_KC_RESERVED)
        lk_keycredits_refund(app->store, rowid, ks, r->cost);
    if (p->named == LK_NAMED_TAKEN)
        lk_limits_named_give(app, rowid, p);
    return e;
}

enum lk_err lk_verify_leasing(struct lk_app *app, const struct lk_verify_req *req,
                              lk_verify_done_fn done, void *arg)
{
    struct lk_limits_prior prior = {0};
    struct lk_verify_req r = *req; /* with what was decided off the loop */
    struct lk_key_spend ks = {0};
    struct lk_limits_info info;
    const struct lk_ckey *k;
    int64_t rowid = 0;
    enum lk_err e;

    r.prior = &prior;
    for (int tries = 0;; tries++) {
        struct lk_limits_refill refill;
        struct lk_wstate *ws;
        lk_keycache_read_lock();
        e = lk_verify(app, &r, &k, &info);
        if (info.need_lease && (info.ext & LK_INFO_NEED_KEY_CREDITS)) {
            /* once: a reserved check is decided by the next lk_verify */
            rowid = k->rowid;
            lk_keycache_read_unlock();
            if (lk_keycredits_reserve(app->store, rowid, r.cost, r.now, &ks) != LK_OK)
                return LK_ERR_STORAGE_UNAVAILABLE;
            prior.key_credits = ks.none ? LK_KC_NONE : ks.short_ ? LK_KC_SHORT : LK_KC_RESERVED;
            prior.key_credits_left = ks.left;
            continue;
        }
        if (info.need_lease && (info.ext & LK_INFO_NEED_NAMED)) {
            /* once too: the list is made under the lock, Redis asked without it */
            rowid = k->rowid;
            lk_limits_named_list(k, r.ratelimits, r.n_ratelimits, &prior);
            lk_keycache_read_unlock();
            if (lk_limits_named_take(app, rowid, &prior) != LK_OK)
                return unreserve(app, &r, rowid, &ks, LK_ERR_STORAGE_UNAVAILABLE);
            continue;
        }
        if (info.need_lease && info.refill.parts != 0 && tries >= LEASE_TRIES) {
            lk_keycache_read_unlock();
            /* never "valid" for a check not decided */
            return unreserve(app, &r, rowid, &ks, LK_ERR_STORAGE_UNAVAILABLE);
        }
        if (!info.need_lease || tries >= LEASE_TRIES) {
            bool refund = e != LK_OK && (prior.key_credits == LK_KC_RESERVED ||
                                         prior.named == LK_NAMED_TAKEN);
            if (refund && prior.key_credits == LK_KC_RESERVED && (info.ext & LK_INFO_KEY_CREDITS))
                info.key_credits_remaining += r.cost; /* as it is once given back */
            done(arg, e, k, &info);
            lk_keycache_read_unlock();
            if (refund)
                unreserve(app, &r, rowid, &ks, e);
            return LK_OK;
        }
        ws = k->ws; /* workspace states live as long as the app */
        refill = info.refill;
        lk_keycache_read_unlock();
        if (refill.parts != 0) {
            /* Redis went away during the call: a rate limit that may fail open is
             * decided by this node's window on the next try. */
            if (lk_limits_refill(app, &refill, r.now) != LK_OK &&
                !(refill.parts == LK_REFILL_RATE && app->fail_open_rate_limits))
                return unreserve(app, &r, rowid, &ks, LK_ERR_STORAGE_UNAVAILABLE);
        } else if (lk_credits_lease(app, ws, r.cost, r.now) != LK_OK) {
            return unreserve(app, &r, rowid, &ks, LK_ERR_STORAGE_UNAVAILABLE);
        }
    }
}

int64_t lk_verify_retry_after(enum lk_err e, const struct lk_limits_info *info)
{
    return lk_err_status(e) == 429 ? info->retry_after : 0;
}
