#include "cli/client.h"

#include <h2o.h>
#include <h2o/http1client.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define IO_TIMEOUT_MS 10000

struct call {
    h2o_iovec_t req;
    struct lk_client_resp *out;
    char *err;
    size_t errsz;
    int done;
    int failed;
};

static void fail(struct call *c, const char *what)
{
    snprintf(c->err, c->errsz, "%s", what);
    c->failed = 1;
    c->done = 1;
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    struct call *c = client->data;
    h2o_buffer_t *in = client->sock->input;

    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        fail(c, errstr);
        return -1;
    }
    if (c->out->len + in->size > LK_CLIENT_MAX_RESPONSE) {
        fail(c, "response too large");
        return -1;
    }
    c->out->body = realloc(c->out->body, c->out->len + in->size + 1);
    lk_assert(c->out->body != NULL);
    memcpy(c->out->body + c->out->len, in->bytes, in->size);
    c->out->len += in->size;
    c->out->body[c->out->len] = '\0';
    h2o_buffer_consume(&client->sock->input, in->size);
    if (errstr == h2o_http1client_error_is_eos)
        c->done = 1;
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       h2o_header_t *headers, size_t num_headers, int rlen)
{
    struct call *c = client->data;

    (void)minor_version, (void)msg, (void)rlen;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        fail(c, errstr);
        return NULL;
    }
    c->out->status = status;
    /* Kept only when it is a small number: it is printed to a terminal. */
    for (size_t i = 0; i < num_headers; i++) {
        h2o_iovec_t v = headers[i].value;
        bool digits = v.len > 0 && v.len < sizeof(c->out->retry_after);
        for (size_t j = 0; digits && j < v.len; j++)
            digits = v.base[j] >= '0' && v.base[j] <= '9';
        if (headers[i].name == &H2O_TOKEN_RETRY_AFTER->buf && digits) {
            memcpy(c->out->retry_after, v.base, v.len);
            c->out->retry_after[v.len] = '\0';
        }
    }
    if (errstr == h2o_http1client_error_is_eos) {
        c->done = 1;
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct call *c = client->data;

    if (errstr != NULL) {
        fail(c, errstr);
        return NULL;
    }
    *reqbufs = &c->req;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

int lk_client_call(const char *server, const char *token, const char *method, const char *path,
                   const char *body, struct lk_client_resp *out, char *err, size_t errsz)
{
    h2o_multithread_receiver_t getaddr_receiver;
    h2o_multithread_queue_t *queue = NULL;
    h2o_timeout_t io_timeout;
    h2o_http1client_ctx_t ctx = {NULL, &getaddr_receiver, &io_timeout, NULL, NULL};
    h2o_url_t url;
    struct call c = {.out = out, .err = err, .errsz = errsz};
    size_t blen = body ? strlen(body) : 0, cap;
    int is_ssl, rc = -1;
    char *req = NULL;

    memset(out, 0, sizeof(*out));
    if (h2o_url_parse(server, SIZE_MAX, &url) != 0) {
        snprintf(err, errsz, "not a server URL: %s (want http://HOST:PORT)", server);
        return -1;
    }
    is_ssl = url.scheme == &H2O_URL_SCHEME_HTTPS;
    cap = 1024 + strlen(path) + url.path.len + url.authority.len + (token ? strlen(token) : 0) + blen;
    req = lk_malloc(cap);
    /* The server URL may carry a path prefix (behind a proxy); drop its trailing '/'. */
    size_t plen = url.path.len;
    if (plen > 0 && url.path.base[plen - 1] == '/')
        plen--;
    c.req.len = (size_t)snprintf(req, cap,
                                 "%s %.*s%s HTTP/1.1\r\nhost: %.*s\r\nuser-agent: latchkey-cli\r\n"
                                 "accept: application/json\r\n%s%s%s"
                                 "content-type: application/json\r\ncontent-length: %zu\r\n"
                                 "connection: close\r\n\r\n%s",
                                 method, (int)plen, url.path.base, path, (int)url.authority.len,
                                 url.authority.base, token ? "authorization: Bearer " : "",
                                 token ? token : "", token ? "\r\n" : "", blen, body ? body : "");
    c.req.base = req;

    ctx.loop = h2o_evloop_create();
    queue = h2o_multithread_create_queue(ctx.loop);
    h2o_multithread_register_receiver(queue, ctx.getaddr_receiver, h2o_hostinfo_getaddr_receiver);
    h2o_timeout_init(ctx.loop, &io_timeout, IO_TIMEOUT_MS);
    if (is_ssl) {
        ctx.ssl_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_default_verify_paths(ctx.ssl_ctx);
        SSL_CTX_set_verify(ctx.ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    h2o_http1client_connect(NULL, &c, &ctx, url.host, h2o_url_get_port(&url), is_ssl, on_connect);
    while (!c.done)
        h2o_evloop_run(ctx.loop, INT32_MAX);
    rc = c.failed ? -1 : 0;
    if (rc != 0) {
        free(out->body);
        memset(out, 0, sizeof(*out));
    } else if (out->body == NULL) {
        out->body = lk_strndup("", 0);
    }
    /* Let the closed socket's callbacks run before the loop goes. */
    h2o_evloop_run(ctx.loop, 0);
    h2o_timeout_dispose(ctx.loop, &io_timeout);
    h2o_multithread_unregister_receiver(queue, ctx.getaddr_receiver);
    h2o_multithread_destroy_queue(queue);
    h2o_evloop_destroy(ctx.loop);
    if (ctx.ssl_ctx)
        SSL_CTX_free(ctx.ssl_ctx);
    OPENSSL_cleanse(req, cap); /* it held the token */
    free(req);
    return rc;
}
