/*
 * app_int.h — the fields of `struct lk_app`, private to the service layer:
 * include it from the .c files of src/service/ only (scripts/check-layers.sh fails
 * the build otherwise). The http and cli layers see the opaque declaration in app.h and
 * call services and app.h's accessors instead.
 */
#ifndef LK_APP_INT_H
#define LK_APP_INT_H

#include <pthread.h>

#include "counters/counters.h"
#include "counters/shared.h"
#include "service/app.h"
#include "service/feed.h"
#include "service/keycache.h"
#include "service/node.h"
#include "service/usage.h"
#include "store/store.h"

struct lk_throttle;
struct lk_leaks;

/* per_ip settings a process keeps tables for, over reloads of the rules. */
#define LK_APP_ROUTE_IP_TABLES (4 * LK_ROUTES_MAX_IP_LIMITS)

struct lk_app {
    struct lk_store *store;
    /* The feed's own handle on the same database when serving (else the same as
     * store): its reads of the log never queue behind the recorder's writes on
     * store's connection (docs/internals/feed.md). */
    struct lk_store *feed_store;
    struct lk_counters *counters;
    struct lk_shared *shared; /* counters shared by every node (Redis); NULL: none */
    bool fail_open_rate_limits;
    struct lk_keycache *cache;
    struct lk_feed *feed; /* the cache's one writer (service/feed.h) */
    struct lk_node *node; /* this serving process as a node; NULL when not serving */
    struct lk_usage *usage;
    struct lk_hooks *hooks; /* webhooks (service/hooks.h); NULL when not opened */
    struct lk_pepper *pepper; /* NULL when none is configured */
    /* Orders this process's writes of keys and workspaces with what they
     * publish to the cache and counters after commit, so both see changes of
     * one key in the same order. It is not what keeps the store right: checks
     * and changes that must see each other run in one lk_store_txn, which holds
     * against other processes and nodes too. */
    pthread_mutex_t write_mu;
    char operator_ws[LK_ID_MAX]; /* "" until the first workspace exists */
    struct lk_throttle *login_by_email;   /* failed logins per email */
    struct lk_throttle *login_by_address; /* failed logins per client address */
    struct lk_limits_config limits;
    struct lk_throttle *failed_keys; /* unknown keys per address; NULL: no limit */
    struct lk_throttle *login_rate;  /* login attempts per address; NULL: no limit */
    /* Forward-auth rules, published with RCU: read them with lk_app_routes(). */
    struct lk_route_rules *routes;
    char routes_file[4096]; /* "" when none */
    bool serving;
    struct lk_leaks *leaks; /* who may sign leak reports (service/leaks.h) */
    struct lk_netaddr_list trusted_proxies; /* read-only after open */
    /* Route rules' per_ip=N/S tables, one per distinct setting, made on first use
     * (lk_app_route_ip) so rules loaded later find theirs too. */
    pthread_mutex_t route_ip_mu;
    struct {
        int64_t limit, window_s;
        struct lk_throttle *t;
    } route_ip[LK_APP_ROUTE_IP_TABLES];
};

#endif
