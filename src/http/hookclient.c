#include "http/hookclient.h"

#include <h2o.h>
#include <h2o/http1client.h>
#include <openssl/ssl.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define MAX_AT_ONCE 16
#define HEAD_MAX 4096

/* The delivery thread's loop, made on its first send. */
static _Thread_local struct {
    h2o_evloop_t *loop;
    h2o_timeout_t io_timeout;
    int64_t timeout_ms;
    SSL_CTX *ssl;
    h2o_http1client_ctx_t ctx;
} T;

struct call {
    struct lk_hook_request *r;
    h2o_socketpool_t pool;
    h2o_http1client_t *client;
    h2o_iovec_t bufs[2];
    char head[HEAD_MAX];
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

static void start(struct call *c)
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

void lk_hookclient_send(struct lk_hook_request *reqs, size_t n, int64_t timeout_ms)
{
    struct call calls[MAX_AT_ONCE];
    int64_t deadline;
    size_t left;

    if (reqs == NULL) { /* the delivery thread ends: its loop goes with it */
        if (T.loop != NULL) {
            h2o_timeout_dispose(T.loop, &T.io_timeout);
            h2o_evloop_destroy(T.loop);
            T.loop = NULL;
        }
        SSL_CTX_free(T.ssl);
        T.ssl = NULL;
        return;
    }
    if (n > MAX_AT_ONCE)
        n = MAX_AT_ONCE;
    if (!setup(timeout_ms)) {
        for (size_t i = 0; i < n; i++)
            snprintf(reqs[i].error, sizeof(reqs[i].error), "no TLS context");
        return;
    }
    memset(calls, 0, sizeof(calls));
    for (size_t i = 0; i < n; i++) {
        calls[i].r = &reqs[i];
        reqs[i].status = 0;
        reqs[i].error[0] = '\0';
        start(&calls[i]);
    }
    deadline = lk_clock_now_ms() + timeout_ms;
    for (;;) {
        int64_t now = lk_clock_now_ms();
        left = 0;
        for (size_t i = 0; i < n; i++)
            left += !calls[i].done;
        if (left == 0 || now >= deadline)
            break;
        h2o_evloop_run(T.loop, (int32_t)(deadline - now < 100 ? deadline - now : 100));
    }
    for (size_t i = 0; i < n; i++) {
        if (!calls[i].done) {
            if (calls[i].client != NULL)
                h2o_http1client_cancel(calls[i].client);
            finish(&calls[i], 0, "timed out");
        }
    }
    /* Let closed sockets go before their pools do. */
    h2o_evloop_run(T.loop, 0);
    for (size_t i = 0; i < n; i++)
        if (calls[i].pooled)
            h2o_socketpool_dispose(&calls[i].pool);
}
