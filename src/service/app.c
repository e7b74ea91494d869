#include "service/app.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <urcu.h>

#include "base/common.h"
#include "base/clock.h"
#include "base/log.h"
#include "service/app_int.h"
#include "service/credits.h"
#include "service/leaks.h"
#include "service/hooks.h"
#include "service/limits.h"
#include "service/throttle.h"
#include "service/users.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define PEPPER_FILE_MAX 4096

static enum lk_err read_pepper(const char *path, struct lk_pepper **out, struct lk_errinfo *ei)
{
    uint8_t buf[PEPPER_FILE_MAX];
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "pepper-file", "cannot open %s: %s",
                              path, strerror(errno));
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
        len += (size_t)n;
    close(fd);
    /* A trailing newline from `echo` or an editor is not part of the pepper. */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    *out = lk_pepper_new(buf, len);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (*out == NULL)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "pepper-file",
                              "%s: a pepper needs at least 16 bytes", path);
    return LK_OK;
}

/* The node keeps its counters in its state directory (held by it alone), so
 * they survive a kill; everyone else, and an in-memory database, keeps them in
 * memory. The counts belong to this database: for an SQLite file its inode (a
 * copy or a restored backup does not take another file's counts for its own),
 * else the node. */
static enum lk_err open_counters(struct lk_app *app, const struct lk_app_config *cfg,
                                 bool *recovered, struct lk_errinfo *ei)
{
    const char *db = cfg->db_url, *path;
    char owner[64];
    struct stat st;

    *recovered = false;
    if (app->node == NULL) {
        app->counters = lk_counters_new();
        return LK_OK;
    }
    path = lk_node_counters_path(app->node);
    if (strncmp(db, "sqlite:", 7) == 0) {
        if (stat(db + 7, &st) != 0)
            return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot stat %s: %s",
                                  db + 7, strerror(errno));
        snprintf(owner, sizeof(owner), "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
    } else {
        snprintf(owner, sizeof(owner), "%s", lk_node_id(app->node));
    }
    if (lk_counters_open(path, owner, &app->counters, recovered) != LK_OK)
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "db", "cannot open %s", path);
    if (!*recovered)
        lk_info("counter file %s starts afresh (new, from another boot, or not readable)", path);
    return LK_OK;
}

/* A published rule table: the rules first, so a table's address is its box's. */
struct routes_box {
    struct lk_route_rules rules;
    atomic_long refs; /* the app's reference (while in force) and the holds */
};

static struct lk_route_rules *routes_box_new(struct lk_route_rules *rules)
{
    struct routes_box *b = lk_calloc(1, sizeof(*b));

    b->rules = *rules;
    memset(rules, 0, sizeof(*rules));
    atomic_init(&b->refs, 1);
    return &b->rules;
}

const struct lk_route_rules *lk_app_routes_hold(const struct lk_route_rules *r)
{
    /* Under the read lock the app's reference is not dropped yet (the swap waits
     * for a grace period first), so the count is above zero here. */
    atomic_fetch_add(&((struct routes_box *)(uintptr_t)r)->refs, 1);
    return r;
}

void lk_app_routes_put(const struct lk_route_rules *r)
{
    struct routes_box *b = (struct routes_box *)(uintptr_t)r;

    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    lk_route_rules_free(&b->rules);
    free(b);
}

const struct lk_route_rules *lk_app_routes(struct lk_app *app)
{
    return rcu_dereference(app->routes);
}

void lk_app_routes_swap(struct lk_app *app, struct lk_route_rules *fresh)
{
    struct lk_route_rules *old = rcu_xchg_pointer(&app->routes, routes_box_new(fresh));

    synchronize_rcu(); /* every request that read old without a hold is done */
    lk_app_routes_put(old);
}

enum lk_err lk_app_routes_load(const char *path, struct lk_route_rules *out,
                               struct lk_errinfo *ei)
{
    char *text = lk_malloc(LK_ROUTES_MAX_BYTES + 1);
    FILE *f = fopen(path, "r");
    enum lk_err e;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (f == NULL) {
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "routes", "cannot read: %s",
                           strerror(errno));
        goto out;
    }
    n = fread(text, 1, LK_ROUTES_MAX_BYTES + 1, f); /* one more: the parser refuses a larger file */
    fclose(f);
    if ((e = lk_route_rules_parse(text, n, out, ei)) != LK_OK) {
        lk_route_rules_free(out);
    } else if (out->n == 0) {
        /* Not "let everything through", as no file at all means. */
        lk_route_rules_free(out);
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "routes",
                           "no rules (forward-auth would refuse every request)");
    }
out:
    free(text);
    return e;
}

enum lk_err lk_app_routes_reload(struct lk_app *app, struct lk_errinfo *ei)
{
    struct lk_route_rules fresh;
    enum lk_err e;

    if (app->routes_file[0] == '\0')
        return LK_OK;
    if ((e = lk_app_routes_load(app->routes_file, &fresh, ei)) != LK_OK)
        return e;
    lk_app_routes_swap(app, &fresh);
    return LK_OK;
}

static struct lk_throttle *throttle_of(struct lk_rate r)
{
    return r.limit > 0 ? lk_throttle_new(r.limit, r.window_s) : NULL;
}

struct lk_throttle *lk_app_route_ip(struct lk_app *app, int64_t limit, int64_t window_s)
{
    struct lk_throttle *t = NULL;

    pthread_mutex_lock(&app->route_ip_mu);
    for (size_t i = 0; i < LK_APP_ROUTE_IP_TABLES && t == NULL; i++) {
        if (app->route_ip[i].t == NULL) {
            app->route_ip[i].limit = limit;
            app->route_ip[i].window_s = window_s;
            app->route_ip[i].t = lk_throttle_new(limit, window_s);
        }
        if (app->route_ip[i].limit == limit && app->route_ip[i].window_s == window_s)
            t = app->route_ip[i].t;
    }
    pthread_mutex_unlock(&app->route_ip_mu);
    return t;
}

enum lk_err lk_app_open(const struct lk_app_config *cfg, struct lk_app **out,
                        struct lk_errinfo *ei)
{
    struct lk_app *app = lk_calloc(1, sizeof(*app));
    bool recovered = false;
    enum lk_err e;

    pthread_mutex_init(&app->write_mu, NULL);
    pthread_mutex_init(&app->route_ip_mu, NULL);
    app->serving = cfg->serving;
    app->trusted_proxies = cfg->trusted_proxies;
    app->limits = cfg->limits;
    app->failed_keys = throttle_of(cfg->limits.failed_key);
    app->login_rate = throttle_of(cfg->limits.login);
    if (cfg->routes != NULL && cfg->routes->n > 0) {
        app->routes = routes_box_new(cfg->routes);
    } else {
        /* No route file: forward-auth lets any valid key through. */
        static const char any[] = "* /** any\n";
        struct lk_route_rules r;
        lk_assert(lk_route_rules_parse(any, sizeof(any) - 1, &r, NULL) == LK_OK);
        app->routes = routes_box_new(&r);
    }
    if (cfg->routes_file != NULL &&
        (size_t)snprintf(app->routes_file, sizeof(app->routes_file), "%s", cfg->routes_file) >=
            sizeof(app->routes_file)) {
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "routes", "routes file path too long");
        goto out;
    }
    app->login_by_email = lk_throttle_new(LK_LOGIN_EMAIL_LIMIT, LK_LOGIN_WINDOW);
    app->login_by_address = lk_throttle_new(LK_LOGIN_ADDR_LIMIT, LK_LOGIN_WINDOW);
    lk_keycache_thread_online();
    if (cfg->pepper_file && (e = read_pepper(cfg->pepper_file, &app->pepper, ei)) != LK_OK)
        goto out;
    if ((e = lk_leaks_open(cfg->leaks_github_keys_file, cfg->leaks_report_secret_file,
                           cfg->limits.failed_key, &app->leaks, ei)) != LK_OK)
        goto out;
    bool memory = strcmp(cfg->db_url, "sqlite::memory:") == 0;
    if (cfg->serving && !memory &&
        (e = lk_node_open(cfg->db_url, cfg->state_dir, &app->node, ei)) != LK_OK)
        goto out;
    if ((e = lk_store_open(cfg->db_url, &app->store, ei)) != LK_OK)
        goto out;
    /* An in-memory database is private to its connection: nothing to open twice. */
    app->feed_store = app->store;
    if (cfg->serving && !memory &&
        (e = lk_store_open(cfg->db_url, &app->feed_store, ei)) != LK_OK) {
        app->feed_store = NULL;
        goto out;
    }
    if (cfg->serving && cfg->redis_url != NULL && cfg->redis_url[0] != '\0') {
        char url[400];
        if ((e = lk_shared_open(cfg->redis_url, &app->shared, ei)) != LK_OK)
            goto out;
        app->fail_open_rate_limits = cfg->redis_fail_open_rate_limits;
        lk_shared_describe(app->shared, url, sizeof(url));
        lk_info("shared counters in %s (rate limits fail %s while it is down)", url,
                app->fail_open_rate_limits ? "open" : "closed");
    }
    /* Registered (beating from now) before anything is settled: others do not
     * take this node's leases for a dead one's while it recovers them. */
    if (app->node != NULL &&
        (e = lk_node_register(app->node, app->store, lk_clock_now_s())) != LK_OK) {
        lk_errinfo_set(ei, e, "db", "cannot register this node in the database");
        goto out;
    }
    if ((e = open_counters(app, cfg, &recovered, ei)) != LK_OK)
        goto out;
    app->cache = lk_keycache_new(app->counters);
    if ((e = lk_feed_open(app, cfg->serving, cfg->feed_stale_after_ms, &app->feed, ei)) != LK_OK)
        goto out;
    if ((e = lk_credits_load(app, app->node != NULL, recovered, lk_clock_now_s())) != LK_OK) {
        lk_errinfo_set(ei, e, "db", "cannot read credits and counters from the database");
        goto out;
    }
    if ((e = lk_hooks_new(app, &cfg->hooks, cfg->db_url,
                          app->node ? lk_node_id(app->node) : NULL, app->node != NULL,
                          &app->hooks, ei)) != LK_OK)
        goto out;
    app->usage = lk_usage_new(app);
    if (app->node != NULL)
        lk_node_start(app->node, app);
out:
    if (e != LK_OK) {
        lk_app_close(app);
        return e;
    }
    *out = app;
    return LK_OK;
}

void lk_app_close(struct lk_app *app)
{
    if (app == NULL)
        return;
    bool clean = false;

    /* The heartbeat (and its reclaiming) stops first; the feed next, so nothing
     * writes the cache while it goes. */
    if (app->node != NULL)
        lk_node_stop(app->node);
    lk_feed_free(app->feed);
    /* Once spending is written, what is left of the leases goes back to the
     * balance; if it could not be written the leases stay, and the next start
     * of this node counts them as spent: never more spent than was topped up. */
    if (lk_usage_free(app->usage) && app->node != NULL) {
        lk_credits_release(app);
        clean = lk_credits_leased(app) == 0;
    } else if (app->usage != NULL && app->node != NULL) {
        lk_error("spending could not be written at stop; leased credits stay leased");
    }
    lk_hooks_free(app->hooks); /* after the recorder's last flush, which observes */
    app->hooks = NULL;
    lk_limits_give_back(app); /* unspent slices of today, for the other nodes */
    lk_shared_free(app->shared);
    /* A node that gave everything back leaves the list; one that could not
     * stays, and its leases are settled at its next start or reclaimed. */
    lk_node_free(app->node, app->store, clean);
    lk_keycache_free(app->cache);
    lk_counters_free(app->counters);
    if (app->feed_store != app->store)
        lk_store_close(app->feed_store);
    lk_store_close(app->store);
    lk_pepper_free(app->pepper);
    lk_leaks_free(app->leaks);
    lk_throttle_free(app->login_by_email);
    lk_throttle_free(app->login_by_address);
    lk_throttle_free(app->failed_keys);
    lk_app_routes_put(app->routes); /* no request is left to read them */
    lk_throttle_free(app->login_rate);
    for (size_t i = 0; i < LK_APP_ROUTE_IP_TABLES; i++)
        lk_throttle_free(app->route_ip[i].t);
    pthread_mutex_destroy(&app->route_ip_mu);
    pthread_mutex_destroy(&app->write_mu);
    free(app);
}

const char *lk_app_shared_status(struct lk_app *app)
{
    return app->shared != NULL ? lk_shared_status(app->shared) : NULL;
}

void lk_app_digest(const struct lk_app *app, const char *secret, size_t len,
                   uint8_t out[LK_DIGEST_LEN])
{
    lk_digest_secret(app->pepper, secret, len, out);
}

const char *lk_app_routes_file(const struct lk_app *app)
{
    return app->routes_file;
}

const struct lk_netaddr_list *lk_app_trusted_proxies(const struct lk_app *app)
{
    return &app->trusted_proxies;
}

const struct lk_limits_config *lk_app_limits(const struct lk_app *app)
{
    return &app->limits;
}

const char *lk_app_operator_ws(const struct lk_app *app)
{
    return app->operator_ws;
}

struct lk_keycache *lk_app_keycache(struct lk_app *app)
{
    return app->cache;
}
