#include "http/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "base/stats.h"
#include "http/hookclient.h"
#include "http/jsonin.h"
#include "http/mgmt.h"
#include "http/reqhead.h"
#include "http/respond.h"
#include "http/routes.h"
#include "http/tls.h"
#include "service/leaks.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define MAX_THREADS LK_SERVER_MAX_LOOPS
#define LOOP_WAKE_MS 100 /* how often an idle loop looks at the stop flag */
/* Out of descriptors (or kernel memory), accept4 fails while the connection
 * waits in the backlog and the listener stays readable: retrying at once spins
 * the loop. It stops accepting this long instead, as nginx does. */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_WARN_EVERY_MS 10000 /* one warning per loop this often at most */

struct lk_handler {
    h2o_handler_t super;
    struct lk_app *app;
    struct lk_mgmt *mgmt;
};

struct loop_thread {
    pthread_t tid;
    int fd;
    h2o_globalconf_t *conf;
    struct lk_app *app;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    struct lk_tls *tls; /* NULL: plain HTTP */
    struct loop_thread *all; /* every loop, this one among them */
    int n;
    atomic_int conns; /* connections open on this loop */
    h2o_multithread_receiver_t handoff; /* connections accepted by another loop */
    h2o_timeout_t accept_pause;         /* ACCEPT_PAUSE_MS */
    h2o_timeout_entry_t accept_resume;  /* linked while not accepting */
    int64_t warned_ms;                  /* last out-of-descriptors warning */
};

/* A connection accepted by one loop for another to serve. */
struct handoff {
    h2o_multithread_message_t msg; /* must stay first: the receiver gets this */
    int fd;
};

static atomic_bool stopping;
static atomic_int ready;
/* The running loops, for lk_server_loop_connections (set before they start,
 * cleared after they stop; /metrics asks from a loop). */
static struct loop_thread *running;
static int running_n;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct lk_reqctx rc;

    lk_reqctx_init(&rc, req, ((struct lk_handler *)self)->app);
    rc.mgmt = ((struct lk_handler *)self)->mgmt;
    return lk_routes_dispatch(&rc);
}

static void on_conn_close(void *data)
{
    struct loop_thread *t = data;

    atomic_fetch_sub_explicit(&t->conns, 1, memory_order_relaxed);
    lk_stats_add(LK_STAT_CONN_CLOSED, 1);
}

/* A new connection (accepted fd) on t: TLS handshake or the first request
 * head, then h2o. */
static void serve_conn(struct loop_thread *t, int fd)
{
    h2o_socket_t *sock =
        h2o_evloop_socket_create(t->loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);

    /* /metrics: connections accepted and open (h2o calls on_close as it frees). */
    lk_stats_add(LK_STAT_CONN_ACCEPTED, 1);
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = t;
    if (t->tls != NULL)
        lk_tls_accept(t->tls, &t->accept_ctx, sock); /* the handshake, then as below */
    else
        lk_reqhead_accept(&t->accept_ctx, sock); /* reads the first head, then h2o_accept() */
}

/* The loop with the fewest open connections, t itself on a tie. The kernel
 * hashes each connection to one loop's socket (SO_REUSEPORT), and a few dozen
 * keep-alive connections split unevenly: 32 often land 19 and 13, so one loop
 * saturates while the other idles. Keep-alive clients hold a connection for many
 * requests, so an even count is an even load. */
static struct loop_thread *least_loaded(struct loop_thread *t)
{
    struct loop_thread *best = t;
    int least = atomic_load_explicit(&t->conns, memory_order_relaxed);

    for (int i = 0; i < t->n; i++) {
        int c = atomic_load_explicit(&t->all[i].conns, memory_order_relaxed);
        if (c < least) {
            least = c;
            best = &t->all[i];
        }
    }
    return best;
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_accept_resume(h2o_timeout_entry_t *entry)
{
    struct loop_thread *t = H2O_STRUCT_FROM_MEMBER(struct loop_thread, accept_resume, entry);

    if (!atomic_load(&stopping))
        h2o_socket_read_start(t->listener, on_accept);
}

/* accept4 failed for want of a resource: pause accepting (see ACCEPT_PAUSE_MS).
 * Connections open meanwhile are served as before, and closing them is what
 * frees the descriptors. */
static void pause_accepting(struct loop_thread *t, int err)
{
    int64_t now = lk_clock_mono_coarse_ms();

    h2o_socket_read_stop(t->listener);
    if (!h2o_timeout_is_linked(&t->accept_resume))
        h2o_timeout_link(t->loop, &t->accept_pause, &t->accept_resume);
    lk_stats_add(LK_STAT_ACCEPT_PAUSED, 1);
    if (t->warned_ms == 0 || now - t->warned_ms >= ACCEPT_WARN_EVERY_MS) {
        t->warned_ms = now;
        lk_log(LK_LOG_WARN,
               "cannot accept connections: %s; pausing %d ms at a time (raise the open-files "
               "limit, ulimit -n, or lower the clients' connections)",
               err == EMFILE || err == ENFILE ? "out of file descriptors" : "out of memory",
               ACCEPT_PAUSE_MS);
    }
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct loop_thread *t = listener->data, *to;
    struct handoff *h;
    int fd, on = 1;

    if (err != NULL)
        return;
    /* Accepted here whichever loop serves it: an h2o socket belongs to one loop,
     * so the fd is made one on the loop that takes it. */
    if ((fd = accept4(h2o_socket_get_fd(listener), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            pause_accepting(t, errno);
        return; /* EAGAIN, ECONNABORTED, EINTR: the next readiness says */
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    to = least_loaded(t);
    /* Counted now, so the next accept, on any loop, sees it placed. */
    atomic_fetch_add_explicit(&to->conns, 1, memory_order_relaxed);
    if (to == t) {
        serve_conn(t, fd);
        return;
    }
    h = lk_calloc(1, sizeof(*h));
    h->fd = fd;
    h2o_multithread_send_message(&to->handoff, &h->msg);
}

static void on_handoff(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct loop_thread *t = H2O_STRUCT_FROM_MEMBER(struct loop_thread, handoff, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        struct handoff *h = (struct handoff *)messages->next;
        h2o_linklist_unlink(&h->msg.link);
        serve_conn(t, h->fd);
        free(h);
    }
}

/* SO_REUSEPORT would also let a second latchkey (or anything of the same user)
 * join the port and take half the connections with a cache of its own. A bind
 * without it fails when anyone holds the port, so probe that way first. */
static int port_is_free(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok, on = 1;

    if (fd < 0)
        return 0;
    /* SO_REUSEADDR lets a restart bind past the old server's closing connections
     * (TIME_WAIT) while still failing against a live listener. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    ok = bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
    close(fd);
    return ok;
}

static int open_listener(const struct lk_server_config *cfg, bool first, struct lk_errinfo *ei)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    int fd, on = 1;

    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "listen", "not an IPv4 address: %s",
                       cfg->host);
        return -1;
    }
    if (first && !port_is_free(&addr)) {
        lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "listen", "cannot listen on %s:%u: %s",
                       cfg->host, cfg->port, strerror(EADDRINUSE));
        return -1;
    }
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "listen", "cannot listen on %s:%u: %s",
                       cfg->host, cfg->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void *loop_main(void *arg)
{
    struct loop_thread *t = arg;

    lk_keycache_thread_online();
    t->loop = h2o_evloop_create();
    lk_mgmt_attach_loop(t->loop);
    h2o_context_init(&t->ctx, t->loop, t->conf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = t->conf->hosts;
    h2o_multithread_register_receiver(h2o_multithread_create_queue(t->loop), &t->handoff,
                                      on_handoff);
    t->listener = h2o_evloop_socket_create(t->loop, t->fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_timeout_init(t->loop, &t->accept_pause, ACCEPT_PAUSE_MS);
    t->accept_resume.cb = on_accept_resume;
    /* Accept only once every loop can take a connection handed to it. */
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < t->n && !atomic_load(&stopping))
        usleep(1000);
    h2o_socket_read_start(t->listener, on_accept);
    while (!atomic_load(&stopping)) {
        h2o_evloop_run(t->loop, LOOP_WAKE_MS);
        lk_log_flush_thread(); /* this iteration's access lines, to the log writer */
    }
    if (h2o_timeout_is_linked(&t->accept_resume))
        h2o_timeout_unlink(&t->accept_resume);
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    /* The context is not disposed: h2o 2.2 asserts when keep-alive connections are
     * still open, and the process exits next anyway. Every acknowledged write is
     * already durable. */
    lk_keycache_thread_offline();
    return NULL;
}

int lk_server_loop_connections(int *out, int cap)
{
    int n = running_n < cap ? running_n : cap;

    for (int i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&running[i].conns, memory_order_relaxed);
    return n;
}

void lk_server_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP); /* reload: lk_server_run */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

struct lk_server {
    char host[64];
    unsigned short port;
    int n;                /* event loops, one listening socket each */
    int fds[MAX_THREADS]; /* -1 once handed to a running loop */
    struct lk_tls *tls;   /* NULL: plain HTTP */
};

enum lk_err lk_server_listen(const struct lk_server_config *cfg, struct lk_server **out,
                             struct lk_errinfo *ei)
{
    struct lk_server *srv = lk_calloc(1, sizeof(*srv));
    int n = cfg->threads;

    *out = NULL;
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0 || n > MAX_THREADS)
        n = n <= 0 ? 1 : MAX_THREADS;
    snprintf(srv->host, sizeof(srv->host), "%s", cfg->host);
    srv->port = cfg->port;
    srv->n = n;
    for (int i = 0; i < n; i++)
        srv->fds[i] = -1;
    for (int i = 0; i < n; i++)
        if ((srv->fds[i] = open_listener(cfg, i == 0, ei)) < 0) {
            lk_server_free(srv);
            return LK_ERR_INVALID_REQUEST;
        }
    if (cfg->tls_cert != NULL || cfg->tls_key != NULL) {
        enum lk_err e;
        if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
            e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "tls",
                               "TLS needs both --tls-cert and --tls-key (or tls_cert and "
                               "tls_key in the config file)");
        else
            e = lk_tls_new(cfg->tls_cert, cfg->tls_key, &srv->tls, ei);
        if (e != LK_OK) {
            lk_server_free(srv);
            return e;
        }
    }
    *out = srv;
    return LK_OK;
}

void lk_server_free(struct lk_server *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; i < srv->n; i++)
        if (srv->fds[i] >= 0)
            close(srv->fds[i]);
    lk_tls_free(srv->tls);
    free(srv);
}

void lk_server_configure(h2o_globalconf_t *conf, struct lk_app *app, struct lk_mgmt *mgmt)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    struct lk_handler *handler;

    h2o_config_init(conf);
    /* Bodies over the limit are refused while reading, before any handler runs;
     * respond.c's filter gives that 413 the error shape. */
    conf->max_request_entity_size = LK_JSON_MAX_BODY;
    conf->server_name = h2o_iovec_init(H2O_STRLIT("latchkey"));
    host = h2o_config_register_host(conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (struct lk_handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->app = app;
    handler->mgmt = mgmt;
    lk_respond_register_filter(path);
    lk_respond_register_filter(&host->fallback_path);
}

/* SIGHUP: the TLS certificate and key, the leak reports' keys and the route
 * rules, each read again and
 * swapped in whole, or kept as they are when the new files do not load. Open
 * connections and requests under way are not touched. */
static void reload(struct lk_server *srv, struct lk_app *app)
{
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    if (srv->tls != NULL) {
        if (lk_tls_reload(srv->tls, &ei) == LK_OK)
            lk_info("SIGHUP: TLS certificate and key reloaded");
        else
            lk_error("SIGHUP: TLS certificate and key not reloaded, the old ones stay: %s",
                     ei.detail);
    }
    lk_leaks_reload(app); /* GitHub's public keys and the report secret; logs itself */
    lk_errinfo_clear(&ei);
    if (lk_app_routes_file(app)[0] == '\0')
        return;
    if (lk_app_routes_reload(app, &ei) == LK_OK)
        lk_info("SIGHUP: route rules reloaded from %s", lk_app_routes_file(app));
    else
        lk_error("SIGHUP: route rules not reloaded from %s, the old ones stay: %s",
                 lk_app_routes_file(app), ei.detail);
}

enum lk_err lk_server_run(struct lk_server *srv, struct lk_app *app, struct lk_errinfo *ei)
{
    static h2o_globalconf_t conf;
    struct loop_thread *threads = NULL;
    struct lk_mgmt *mgmt = lk_mgmt_new(app);
    sigset_t sigs;
    int n = srv->n, started = 0, sig;
    enum lk_err e = LK_OK;

    lk_server_configure(&conf, app, mgmt);
    lk_hooks_set_sender(app, lk_hookclient_send); /* webhooks go out through h2o's client */

    /* Only the main thread takes SIGINT/SIGTERM (sigwait below); the caller blocked
     * them before starting any thread (lk_server_block_signals). */
    lk_server_block_signals(&sigs);

    threads = lk_calloc((size_t)n, sizeof(*threads));
    for (int i = 0; i < n; i++) {
        threads[i].fd = srv->fds[i];
        threads[i].conf = &conf;
        threads[i].app = app;
        threads[i].tls = srv->tls;
        threads[i].all = threads;
        threads[i].n = n;
    }
    running = threads;
    running_n = n;
    for (; started < n; started++) {
        if (pthread_create(&threads[started].tid, NULL, loop_main, &threads[started]) != 0) {
            e = lk_errinfo_set(ei, LK_ERR_INTERNAL, "", "cannot start event loop threads");
            goto out;
        }
        pthread_setname_np(threads[started].tid, "lk-loop"); /* for top -H and perf */
        srv->fds[started] = -1; /* the loop closes it */
    }
    while (atomic_load(&ready) < n)
        usleep(1000);
    printf("latchkey listening on %s://%s:%u (%d event loops)\n", srv->tls ? "https" : "http",
           srv->host, srv->port, n);
    fflush(stdout);
    lk_info("serving on %s:%u with %d event loops%s", srv->host, srv->port, n,
            srv->tls ? " (TLS)" : "");
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
        reload(srv, app);
    lk_info("signal %d: stopping", sig);
out:
    atomic_store(&stopping, true);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i].tid, NULL);
    running = NULL;
    running_n = 0;
    free(threads);
    /* After the loops: a worker may still be finishing a write; let it, then stop. */
    lk_mgmt_free(mgmt);
    return e;
}
