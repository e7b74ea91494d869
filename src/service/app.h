/*
 * app.h — one running latchkey: the store, the key cache filled from it, the
 * usage recorder and the configuration, tied together. Every service call takes
 * a `struct lk_app *`.
 *
 * Thread safety: after lk_app_open() returns, the app may be used from any thread
 * that has called lk_keycache_thread_online(). The accessors read what does not
 * change after open (or, for the operator workspace, changes once, under the
 * app's write lock); any thread.
 */
#ifndef LK_APP_H
#define LK_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/routerules.h"
/* Services hand out cached keys (struct lk_ckey) to the layers above. */
#include "service/keycache.h"

struct lk_throttle;

/* Limits from the configuration (core/config.h); limit 0 is none. */
struct lk_limits_config {
    struct lk_rate live_rate, test_rate; /* defaults for keys without their own */
    struct lk_rate failed_key;           /* unknown keys per client address */
    struct lk_rate login;                /* login attempts per client address */
};

/* Built-in defaults for limits the configuration does not set. */
#define LK_FAILED_KEY_DEFAULT ((struct lk_rate){100, 60})
#define LK_LOGIN_RATE_DEFAULT ((struct lk_rate){60, 60})

/* Webhooks (service/hooks.h; config file, docs/operations.md). 0 and NULL:
 * the defaults. */
struct lk_hooks_config {
    const char *key_file;  /* webhook_key_file; NULL: beside an SQLite database */
    bool private_targets;  /* webhook_allow_private: loopback and private ranges allowed */
    int64_t retry_base_ms; /* webhook_retry_base_ms: the first retry's delay (5000) */
    int64_t timeout_ms;    /* webhook_timeout_ms: one attempt's bound (10000) */
    int max_attempts;      /* webhook_max_attempts (8) */
};

struct lk_app_config {
    const char *db_url;      /* "sqlite:PATH" */
    const char *pepper_file; /* NULL: no pepper */
    struct lk_limits_config limits;
    /* Forward-auth route rules, taken over by the app (the caller's copy is
     * emptied); NULL or none: one rule letting any valid key through, whatever the
     * method and path. */
    struct lk_route_rules *routes;
    /* The file the rules came from, re-read by lk_app_routes_reload(); NULL:
     * none (a reload keeps the rules as they are). */
    const char *routes_file;
    /* This process serves the database as one of its nodes: it holds its state
     * directory, registers and beats, follows the change log and may reclaim
     * credit leases that dead nodes left. False for commands that only read or
     * add (init, seed): they leave leases alone. */
    bool serving;
    /* The node's state directory (config `state_dir`, --state-dir); NULL: beside
     * an SQLite file (`<db>.node`, `<db>.counters`), required for other stores. */
    const char *state_dir;
    /* Verification answers 503 once the feed has not confirmed the cache is
     * current for this long (config `feed_stale_after_ms`); 0: the default. */
    int64_t feed_stale_after_ms;
    /* Peers believed about the client's address and scheme (config
     * `trusted_proxies`); none: every peer is the client. */
    struct lk_netaddr_list trusted_proxies;
    /* `redis://…` (config `redis`, --redis): rate limits, quota days and day
     * spend shared with every node using it; NULL: this node's own counters.
     * Only a serving process connects. */
    const char *redis_url;
    /* With redis: while Redis is down, rate limits fall back to this node's own
     * windows (config `redis_fail_open_rate_limits`); quota and spend never do. */
    bool redis_fail_open_rate_limits;
    /* Leak reports (service/leaks.h): GitHub's secret scanning public keys
     * (config `leaks_github_keys_file`) and the generic report's HMAC secret
     * (`leaks_report_secret_file`); NULL or "": not accepted. Read at open and
     * again by lk_leaks_reload(). */
    const char *leaks_github_keys_file;
    const char *leaks_report_secret_file;
    struct lk_hooks_config hooks;
};

/* One running latchkey. Opaque outside src/service/ (its fields: service/app_int.h):
 * the http and cli layers hold it, pass it to services and read what they need
 * through the accessors below. */
struct lk_app;
struct lk_keycache;

/* The per-address table for a route rule's per_ip=limit/window_s, made on first
 * use; NULL when LK_APP_ROUTE_IP_TABLES settings are already in use (the caller
 * refuses the request rather than let it through uncounted). Any thread. */
struct lk_throttle *lk_app_route_ip(struct lk_app *app, int64_t limit, int64_t window_s);

/* Opens the store (applying migrations), reads the pepper, loads every key into
 * the cache (the feed's snapshot) and starts the usage recorder; when serving,
 * also the node (state directory, registration, heartbeat) and the feed's
 * thread. The calling thread is put online for
 * the cache. Caller frees with lk_app_close(). Errors are described in ei. */
enum lk_err lk_app_open(const struct lk_app_config *cfg, struct lk_app **out /* OUT */,
                        struct lk_errinfo *ei);

/* Flushes usage and releases everything. Accepts NULL. */
void lk_app_close(struct lk_app *app);

/* The state of the shared counters for /readyz: NULL when none is configured,
 * else "ok" or what is wrong (e.g. "unreachable"). */
const char *lk_app_shared_status(struct lk_app *app);

/* The digest a secret is stored under with the configured pepper. */
void lk_app_digest(const struct lk_app *app, const char *secret, size_t len,
                   uint8_t out[LK_DIGEST_LEN]);

/* The route rules file the app re-reads on reload; "" when it has none. */
const char *lk_app_routes_file(const struct lk_app *app);

/* Peers believed about the client's address and scheme (lk_app_config). */
const struct lk_netaddr_list *lk_app_trusted_proxies(const struct lk_app *app);

/* The limits of the configuration, defaults filled in. */
const struct lk_limits_config *lk_app_limits(const struct lk_app *app);

/* The key cache, for the in-process benchmark that fills it directly
 * (bench/bench_verify.c); serving code reaches keys through the services. */
struct lk_keycache *lk_app_keycache(struct lk_app *app);

/* The operator workspace's id; "" until the first workspace exists. */
const char *lk_app_operator_ws(const struct lk_app *app);

/* --- forward-auth route rules, replaceable while serving ---------------------------- */

/* Reads the route rules file at path and parses it into *out (at least one rule:
 * an empty file would refuse every request). On failure ei says why, with the
 * line for a parse error, and *out is empty. Caller frees with
 * lk_route_rules_free(). */
enum lk_err lk_app_routes_load(const char *path, struct lk_route_rules *out /* OUT */,
                               struct lk_errinfo *ei);

/* The rules in force. Call between lk_keycache_read_lock() and its unlock: the
 * table stays as it is, and valid, until the unlock, whatever a reload does. */
const struct lk_route_rules *lk_app_routes(struct lk_app *app);

/* Keeps r (from lk_app_routes(), under the read lock) valid past the unlock, for
 * a request that finishes on another thread; lk_app_routes_put() when done
 * (any thread; accepts NULL). Returns r. */
const struct lk_route_rules *lk_app_routes_hold(const struct lk_route_rules *r);
void lk_app_routes_put(const struct lk_route_rules *r);

/* Puts fresh in force (taken; the caller's copy is emptied). A request already
 * reading the old rules finishes with them; they are freed once the last such
 * request is done. Blocks until then for readers under the read lock; never
 * call it under the read lock or from an event loop. */
void lk_app_routes_swap(struct lk_app *app, struct lk_route_rules *fresh);

/* Reads the app's routes file again (lk_app_config.routes_file) and swaps the
 * rules in. When the file does not load, the rules in force stay and ei says
 * why. LK_OK with nothing done when the app has no routes file. */
enum lk_err lk_app_routes_reload(struct lk_app *app, struct lk_errinfo *ei);

#endif
