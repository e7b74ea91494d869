#include "service/node.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/common.h"
#include "service/app_int.h"
#include "base/log.h"
#include "base/rand.h"
#include "service/app.h"
#include "service/credits.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define PATH_MAX_LK 4096
#define CHANGES_KEEP_S 3600 /* changes kept; a node away longer takes a new snapshot */
#define PRUNE_EVERY_S 600

/* Another node's heartbeat as this node last saw it, and since when (this
 * node's monotonic clock): a node is dead when its beat stops changing, which
 * no clock skew between machines can fake. */
struct seen {
    char id[LK_ID_MAX];
    int64_t heartbeat_at, since_ms;
    bool present;
};

struct lk_node {
    char id[LK_ID_MAX];
    struct seen *seen; /* the heartbeat thread's own */
    size_t nseen, seen_cap;
    char counters_path[PATH_MAX_LK];
    int lock_fd;
    struct lk_app *app;
    pthread_t thread;
    bool started;
    _Atomic bool stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static enum lk_err state_paths(const char *db_url, const char *state_dir, char *node_path,
                               char *counters_path, struct lk_errinfo *ei)
{
    bool sqlite_file = strncmp(db_url, "sqlite:", 7) == 0 && strcmp(db_url + 7, ":memory:") != 0;
    int a, b;

    if (state_dir != NULL && state_dir[0] != '\0') {
        if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "state-dir", "cannot make %s: %s",
                                  state_dir, strerror(errno));
        a = snprintf(node_path, PATH_MAX_LK, "%s/node", state_dir);
        b = snprintf(counters_path, PATH_MAX_LK, "%s/counters", state_dir);
    } else if (sqlite_file) {
        a = snprintf(node_path, PATH_MAX_LK, "%s.node", db_url + 7);
        b = snprintf(counters_path, PATH_MAX_LK, "%s.counters", db_url + 7);
    } else {
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "state-dir",
                              "a node of this database needs --state-dir DIR (config "
                              "`state_dir`): a directory of its own for its id and counters");
    }
    if (a < 0 || a >= PATH_MAX_LK || b < 0 || b >= PATH_MAX_LK)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "state-dir", "state path too long");
    return LK_OK;
}

static bool id_ok(const char *s, size_t n)
{
    if (n < 6 || n >= LK_ID_MAX || strncmp(s, "node_", 5) != 0)
        return false;
    for (size_t i = 5; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

/* Reads the node id from path, or makes one and writes it there (durably:
 * the same directory must name the same node after a crash). */
static enum lk_err node_id(const char *path, char id[LK_ID_MAX], struct lk_errinfo *ei)
{
    char buf[64];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        if (n > 0 && id_ok(buf, (size_t)n)) {
            memcpy(id, buf, (size_t)n);
            id[n] = '\0';
            return LK_OK;
        }
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "state-dir",
                              "%s does not hold a node id (node_ and letters or digits)", path);
    }
    if (errno != ENOENT)
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "state-dir", "cannot read %s: %s",
                              path, strerror(errno));
    lk_rand_id("node_", id, LK_ID_MAX);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "state-dir", "cannot write %s: %s",
                              path, strerror(errno));
    snprintf(buf, sizeof(buf), "%s\n", id);
    n = write(fd, buf, strlen(buf));
    if (n != (ssize_t)strlen(buf) || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        return lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "state-dir", "cannot write %s",
                              path);
    }
    close(fd);
    return LK_OK;
}

enum lk_err lk_node_open(const char *db_url, const char *state_dir, struct lk_node **out,
                         struct lk_errinfo *ei)
{
    struct lk_node *n = lk_calloc(1, sizeof(*n));
    char node_path[PATH_MAX_LK];
    enum lk_err e;

    n->lock_fd = -1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if ((e = state_paths(db_url, state_dir, node_path, n->counters_path, ei)) != LK_OK)
        goto fail;
    n->lock_fd = open(n->counters_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (n->lock_fd < 0) {
        e = lk_errinfo_set(ei, LK_ERR_STORAGE_UNAVAILABLE, "state-dir", "cannot open %s: %s",
                           n->counters_path, strerror(errno));
        goto fail;
    }
    /* One process per state directory: two would count into one file. */
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        e = lk_errinfo_set(ei, LK_ERR_CONFLICT, "state-dir",
                           "%s is in use by another latchkey node: give each node its own "
                           "--state-dir",
                           n->counters_path);
        goto fail;
    }
    if ((e = node_id(node_path, n->id, ei)) != LK_OK)
        goto fail;
    *out = n;
    return LK_OK;
fail:
    lk_node_free(n, NULL, false);
    return e;
}

const char *lk_node_id(const struct lk_node *n)
{
    return n->id;
}

const char *lk_node_counters_path(const struct lk_node *n)
{
    return n->counters_path;
}

static void node_name(char *out, size_t outsz)
{
    char host[LK_NODE_NAME_MAX - 12];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(out, outsz, "%s:%ld", host, (long)getpid());
}

enum lk_err lk_node_register(struct lk_node *n, struct lk_store *store, int64_t now)
{
    struct lk_node_row r = {.started_at = now, .heartbeat_at = now};

    memcpy(r.id, n->id, LK_ID_MAX);
    node_name(r.name, sizeof(r.name));
    return lk_store_node_put(store, &r);
}

struct beat_arg {
    const char *id;
    int64_t now;
};

static enum lk_err beat_txn(struct lk_store *s, void *arg)
{
    struct beat_arg *b = arg;
    return lk_store_node_heartbeat(s, b->id, b->now);
}

static enum lk_err prune_txn(struct lk_store *s, void *arg)
{
    return lk_store_changes_prune(s, *(int64_t *)arg - CHANGES_KEEP_S);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int see_node(void *arg, const struct lk_node_row *r)
{
    struct lk_node *n = arg;
    int64_t now = mono_ms();
    size_t i;

    if (strcmp(r->id, n->id) == 0)
        return 0;
    for (i = 0; i < n->nseen && strcmp(n->seen[i].id, r->id) != 0; i++)
        ;
    if (i == n->nseen) {
        n->seen = lk_grow(n->seen, n->nseen, &n->seen_cap, sizeof(*n->seen));
        memset(&n->seen[i], 0, sizeof(n->seen[i]));
        memcpy(n->seen[i].id, r->id, LK_ID_MAX);
        n->seen[i].heartbeat_at = r->heartbeat_at;
        n->seen[i].since_ms = now;
        n->nseen++;
    } else if (n->seen[i].heartbeat_at != r->heartbeat_at) {
        n->seen[i].heartbeat_at = r->heartbeat_at;
        n->seen[i].since_ms = now;
    }
    n->seen[i].present = true;
    return 0;
}

/* Looks at every node's heartbeat and reclaims the leases of those whose beat
 * has not changed for LK_NODE_DEAD_AFTER_S. */
static void watch_nodes(struct lk_node *n, int64_t now)
{
    struct lk_dead_node *dead = NULL;
    size_t ndead = 0, cap = 0, keep = 0;
    int64_t t = mono_ms();

    for (size_t i = 0; i < n->nseen; i++)
        n->seen[i].present = false;
    if (lk_store_node_list(n->app->store, see_node, n) != LK_OK)
        return;
    for (size_t i = 0; i < n->nseen; i++) {
        if (!n->seen[i].present)
            continue; /* deleted: forgotten */
        if (t - n->seen[i].since_ms >= (int64_t)LK_NODE_DEAD_AFTER_S * 1000) {
            dead = lk_grow(dead, ndead, &cap, sizeof(*dead));
            memcpy(dead[ndead].id, n->seen[i].id, LK_ID_MAX);
            dead[ndead++].heartbeat_at = n->seen[i].heartbeat_at;
        }
        n->seen[keep++] = n->seen[i];
    }
    n->nseen = keep;
    lk_credits_reclaim_dead(n->app, n->id, dead, ndead, now);
    free(dead);
}

static void *node_main(void *arg)
{
    struct lk_node *n = arg;
    struct lk_app *app = n->app;
    int64_t pruned_at = 0;
    bool beat_failed = false;

    lk_keycache_thread_online();
    pthread_mutex_lock(&n->mu);
    while (!atomic_load(&n->stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += LK_NODE_BEAT_MS / 1000;
        pthread_cond_timedwait(&n->cv, &n->mu, &until);
        if (atomic_load(&n->stopping))
            break;
        pthread_mutex_unlock(&n->mu);
        int64_t now = lk_clock_now_s();
        struct beat_arg ba = {n->id, now};
        /* Background writes: a database another process holds locked delays a
         * beat by a moment, never this process's management calls. */
        enum lk_err e = lk_store_txn(app->store, LK_TXN_BACKGROUND, beat_txn, &ba);
        if (e == LK_ERR_NOT_FOUND) {
            /* Deleted as dead while it could not beat: its leases are gone, the
             * counters know it (lk_credits_reclaim_dead never touches a live
             * node's); it comes back as a node with nothing leased. */
            lk_warn("this node was taken for dead and its leases reclaimed; registering again");
            lk_credits_forget_leases(app);
            e = lk_node_register(n, app->store, now);
        }
        if (e != LK_OK && !beat_failed)
            lk_error("node heartbeat could not be written; others reclaim this node's leases "
                     "after %d s", LK_NODE_DEAD_AFTER_S);
        beat_failed = e != LK_OK;
        if (e == LK_OK) {
            watch_nodes(n, now);
            lk_credits_refresh(app);
        }
        if (now - pruned_at >= PRUNE_EVERY_S &&
            lk_store_txn(app->store, LK_TXN_BACKGROUND, prune_txn, &now) == LK_OK)
            pruned_at = now;
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    lk_keycache_thread_offline();
    return NULL;
}

void lk_node_start(struct lk_node *n, struct lk_app *app)
{
    pthread_condattr_t ca;

    pthread_cond_destroy(&n->cv);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    n->app = app;
    lk_assert(pthread_create(&n->thread, NULL, node_main, n) == 0);
    pthread_setname_np(n->thread, "lk-node");
    n->started = true;
}

void lk_node_stop(struct lk_node *n)
{
    if (n == NULL || !n->started)
        return;
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stopping, true);
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    n->started = false;
}

void lk_node_free(struct lk_node *n, struct lk_store *store, bool clean)
{
    if (n == NULL)
        return;
    lk_node_stop(n);
    if (clean && store != NULL && n->id[0] != '\0')
        lk_store_node_delete(store, n->id);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n->seen);
    if (n->lock_fd >= 0)
        close(n->lock_fd); /* releases the state directory */
    free(n);
}
