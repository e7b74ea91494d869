#include "http/hookclient.h"

#include <h2o.h>
#include <h2o/http1client.h>
#include <openssl/ssl.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define HEAD_MAX 4096

/* The delivery thread's loop, made on its first send. */
static _Thread_local struct {
    h2o_evloop_t *loop;
    h2o_timeout_t io_timeout;
    int64_t timeout_ms;
    SSL_CTX *ssl;
    h2o_http1client_ctx_t ctx;
    struct call *fly[LK_HOOK_IN_FLIGHT]; /* started, not yet handed back */
    size_t nfly;
    struct call *closing[LK_HOOK_IN_FLIGHT]; /* handed back; their sockets still closing */
    size_t nclosing;
    struct lk_hook_request scratch;
} T;

struct call {
    struct lk_hook_request *r;
    h2o_socketpool_t pool;
    h2o_http1client_t *client;
    h2o_iovec_t bufs[2];
    char head[HEAD_MAX];
    int64_t deadline_ms;
    bool done, pooled;
};

static void finish(struct call *c, int status, const char *error)
{
    if (c->done)
        return;
    c->done = true;
    c->client = NULL;
    c->r->status = status;
    if (error != NULL)
        snprintf(c->r->error, sizeof(c->r->error), "%s", error);
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       h2o_header_t *headers, size_t num_headers, int rlen)
{
    struct call *c = client->data;

    (void)minor_version, (void)msg, (void)headers, (void)num_headers, (void)rlen;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        finish(c, 0, errstr);
        return NULL;
    }
    /* The status is all a delivery needs: the body is not read, the connection closes. */
    finish(c, status, NULL);
    return NULL;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct call *c = client->data;

    if (errstr != NULL) {
        finish(c, 0, errstr);
        return NULL;
    }
    *reqbufs = c->bufs;
    *reqbufcnt = 2;
    *method_is_head = 0;
    return on_head;
}

static bool setup(int64_t timeout_ms)
{
    if (T.loop != NULL)
        return true;
    T.loop = h2o_evloop_create();
    T.timeout_ms = timeout_ms;
    h2o_timeout_init(T.loop, &T.io_timeout, (uint64_t)timeout_ms);
    T.ssl = SSL_CTX_new(TLS_client_method());
    if (T.ssl == NULL)
        return false;
    SSL_CTX_set_min_proto_version(T.ssl, TLS1_2_VERSION);
    SSL_CTX_set_default_verify_paths(T.ssl);
    SSL_CTX_set_verify(T.ssl, SSL_VERIFY_PEER, NULL);
    T.ctx = (h2o_http1client_ctx_t){.loop = T.loop, .io_timeout = &T.io_timeout, .ssl_ctx = T.ssl};
    return true;
}

static void start_call(struct call *c)
{
    const struct lk_hook_request *r = c->r;
    const struct lk_hookurl *u = r->url;
    bool bracket = r->addr->sa_family == AF_INET6 && u->host_is_ip;
    char host[LK_HOOKURL_HOST_MAX + 16];
    int n;

    if (u->port == (u->https ? 443 : 80))
        snprintf(host, sizeof(host), "%s%s%s", bracket ? "[" : "", u->host, bracket ? "]" : "");
    else
        snprintf(host, sizeof(host), "%s%s%s:%u", bracket ? "[" : "", u->host, bracket ? "]" : "",
                 (unsigned)u->port);
    n = snprintf(c->head, sizeof(c->head),
                 "POST %.*s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nUser-Agent: latchkey-webhooks\r\nConnection: close\r\n"
                 "%s\r\n",
                 (int)u->path_len, u->path, host, r->len, r->headers);
    if (n < 0 || (size_t)n >= sizeof(c->head)) {
        finish(c, 0, "request head too long");
        return;
    }
    c->bufs[0] = h2o_iovec_init(c->head, (size_t)n);
    c->bufs[1] = h2o_iovec_init(r->body, r->len);
    h2o_socketpool_init_by_address(&c->pool, (struct sockaddr *)r->addr, r->addrlen, u->https, 1);
    c->pooled = true;
    h2o_socketpool_set_timeout(&c->pool, T.loop, 1000); /* gives the pool its loop's clock */
    h2o_http1client_connect_with_pool(&c->client, c, &T.ctx, &c->pool, on_connect);
    /* The certificate must name the URL's host, not the address connected to. */
    if (!c->done && c->client != NULL && u->https) {
        free(c->client->ssl.server_name);
        c->client->ssl.server_name = h2o_strdup(NULL, u->host, strlen(u->host)).base;
    }
}

/* Frees the calls handed back before the last turn of the loop: their sockets
 * are gone by now, so their pools may go too. */
static void drop_closing(void)
{
    for (size_t i = 0; i < T.nclosing; i++) {
        if (T.closing[i]->pooled)
            h2o_socketpool_dispose(&T.closing[i]->pool);
        free(T.closing[i]);
    }
    T.nclosing = 0;
}

static void end_call(struct call *c, const char *why)
{
    if (!c->done) {
        if (c->client != NULL)
            h2o_http1client_cancel(c->client);
        finish(c, 0, why);
    }
}

static void shut_down(void)
{
    for (size_t i = 0; i < T.nfly; i++) {
        T.fly[i]->r = &T.scratch; /* the caller's request is not written again */
        end_call(T.fly[i], "stopped");
        T.closing[T.nclosing++] = T.fly[i];
    }
    T.nfly = 0;
    if (T.loop != NULL) {
        h2o_evloop_run(T.loop, 0);
        drop_closing();
        h2o_timeout_dispose(T.loop, &T.io_timeout);
        h2o_evloop_destroy(T.loop);
        T.loop = NULL;
    }
    SSL_CTX_free(T.ssl);
    T.ssl = NULL;
}

size_t lk_hookclient_send(struct lk_hook_request *const *start, size_t nstart, int64_t timeout_ms,
                          int64_t wait_ms, struct lk_hook_request **done, size_t cap)
{
    int64_t until;
    size_t ndone = 0;

    if (start == NULL && wait_ms < 0) { /* the delivery thread ends: its loop goes with it */
        shut_down();
        return 0;
    }
    if (!setup(timeout_ms)) {
        for (size_t i = 0; i < nstart && ndone < cap; i++) {
            snprintf(start[i]->error, sizeof(start[i]->error), "no TLS context");
            start[i]->status = 0;
            done[ndone++] = start[i];
        }
        return ndone;
    }
    for (size_t i = 0; i < nstart; i++) {
        struct call *c;
        if (T.nfly == LK_HOOK_IN_FLIGHT) { /* the caller holds no more than this: never */
            snprintf(start[i]->error, sizeof(start[i]->error), "too many requests in flight");
            start[i]->status = 0;
            if (ndone < cap)
                done[ndone++] = start[i];
            continue;
        }
        c = lk_calloc(1, sizeof(*c));
        c->r = start[i];
        c->r->status = 0;
        c->r->error[0] = '\0';
        c->deadline_ms = lk_clock_now_ms() + timeout_ms;
        T.fly[T.nfly++] = c;
        start_call(c);
    }
    until = lk_clock_now_ms() + (wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        int64_t now = lk_clock_now_ms(), next = until;
        /* Hand back what ended, each on its own deadline. */
        for (size_t i = 0; i < T.nfly && ndone < cap;) {
            struct call *c = T.fly[i];
            if (!c->done && now >= c->deadline_ms)
                end_call(c, "timed out");
            if (!c->done) {
                if (c->deadline_ms < next)
                    next = c->deadline_ms;
                i++;
                continue;
            }
            done[ndone++] = c->r;
            T.closing[T.nclosing++] = c;
            T.fly[i] = T.fly[--T.nfly];
        }
        if (ndone > 0 || now >= until)
            break;
        h2o_evloop_run(T.loop, (int32_t)(next - now < 100 ? next - now : 100));
    }
    /* Let closed sockets go before their pools do. */
    h2o_evloop_run(T.loop, 0);
    drop_closing();
    return ndone;
}
