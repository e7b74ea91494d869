/*
 * server.h — latchkey's HTTP server: h2o's event loop, one per thread, each with
 * its own listening socket on the same port (SO_REUSEPORT), so the kernel spreads
 * connections across cores with no shared accept lock. A loop that accepts while
 * another holds fewer connections hands the new one over, so the loops stay even.
 */
#ifndef LK_SERVER_H
#define LK_SERVER_H

#include <signal.h>

#include <h2o.h>

#include "core/err.h"
#include "service/app.h"

#define LK_SERVER_MAX_LOOPS 64 /* event loops at most (--threads) */

struct lk_server_config {
    const char *host; /* numeric address, e.g. "127.0.0.1" */
    unsigned short port;
    int threads; /* event loops; 0 = one per online core */
    /* Both set: serve HTTPS (http/tls.h) with this PEM certificate chain and
     * key; both NULL: plain HTTP. */
    const char *tls_cert, *tls_key;
};

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every thread it
 * starts later) and ignores SIGPIPE; fills set with the two. Call before any
 * thread exists, so a stop signal always reaches lk_server_run's sigwait and
 * never kills a worker mid-flush. */
void lk_server_block_signals(sigset_t *set /* OUT */);

struct lk_server;
struct lk_mgmt;

/* Opens the listening sockets for cfg, one per event loop, and loads the TLS
 * certificate and key when cfg names them, and nothing else: a start binds
 * before it touches the database, so a taken port or a bad certificate fails it
 * with nothing changed. Caller passes *out to lk_server_run() and then frees it with
 * lk_server_free(). Errors (address in use, not an IPv4 address) in ei. */
enum lk_err lk_server_listen(const struct lk_server_config *cfg, struct lk_server **out /* OUT */,
                             struct lk_errinfo *ei);

/* Serves app on srv's sockets until SIGINT or SIGTERM, then stops the loops and
 * returns. On SIGHUP reloads the TLS certificate and key and the app's route
 * rules (a bad file keeps what is in force and logs why). Prints "latchkey
 * listening on http://HOST:PORT" (https with TLS) to stdout once every loop is
 * ready. The caller closes the app afterwards (which flushes usage). */
enum lk_err lk_server_run(struct lk_server *srv, struct lk_app *app, struct lk_errinfo *ei);

/* Connections open on each running event loop, into out[0..cap); returns how
 * many loops it filled (0 when no server runs). For /metrics. */
int lk_server_loop_connections(int *out, int cap);

/* Closes the sockets no loop took. Accepts NULL. */
void lk_server_free(struct lk_server *srv);

/* Initialises conf exactly as the server runs it: limits, one host, latchkey's
 * handler for app (management calls go to mgmt) and the error-shape filter. The
 * server uses it; so does the whole-request fuzz target, which drives requests
 * through conf without a socket. conf, app and mgmt must outlive every request. */
void lk_server_configure(h2o_globalconf_t *conf, struct lk_app *app, struct lk_mgmt *mgmt);

#endif
