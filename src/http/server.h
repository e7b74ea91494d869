/*
 * server.h — latchkey's HTTP server: h2o's event loop, one per thread, each with
 * its own listening socket on the same port (SO_REUSEPORT), so the kernel spreads
 * connections across cores with no shared accept lock (DESIGN §8).
 */
#ifndef LK_SERVER_H
#define LK_SERVER_H

#include <signal.h>

#include "core/err.h"
#include "service/app.h"

struct lk_server_config {
    const char *host; /* numeric address, e.g. "127.0.0.1" */
    unsigned short port;
    int threads; /* event loops; 0 = one per online core */
};

/* Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it
 * starts later) and ignores SIGPIPE; fills set with the two. Call before any
 * thread exists, so a stop signal always reaches lk_server_run's sigwait and
 * never kills a worker mid-flush. */
void lk_server_block_signals(sigset_t *set /* OUT */);

/* Serves until SIGINT or SIGTERM, then stops the loops and returns. Prints
 * "latchkey listening on http://HOST:PORT" to stdout once every loop is ready.
 * The caller closes the app afterwards (which flushes usage). */
enum lk_err lk_server_run(struct lk_app *app, const struct lk_server_config *cfg,
                          struct lk_errinfo *ei);

#endif
