#include "http/reqhead.h"

#include <jansson.h>

#include "base/common.h"
#include "http/respond.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* h2o 2.2 links picohttpparser, its HTTP/1 parser, but installs no header for
 * it: the declarations of picohttpparser.h. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

enum lk_err lk_reqhead_check(h2o_req_t *req, struct lk_errinfo *ei)
{
    struct phr_header headers[H2O_MAX_HEADERS];
    size_t nh = H2O_MAX_HEADERS, mlen, plen, lengths = 0, codings = 0;
    const char *method, *path;
    h2o_socket_t *sock;
    int minor, n;

    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL ||
        (sock = req->conn->callbacks->get_socket(req->conn)) == NULL || sock->input == NULL)
        return LK_OK;
    /* The head h2o parsed starts the buffer (it consumes a request's bytes only
     * once it is answered); h2o lower-cased the names in place. */
    n = phr_parse_request(sock->input->bytes, sock->input->size, &method, &mlen, &path, &plen,
                          &minor, headers, &nh, 0);
    if (n <= 0) /* h2o parsed it: another answer means the buffer is not what we think */
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "",
                              "The request head could not be read back");
    if ((size_t)n > LK_MAX_REQUEST_HEAD)
        return lk_errinfo_set(ei, LK_ERR_HEADERS_TOO_LARGE, "",
                              "The request line and headers are over %d bytes",
                              LK_MAX_REQUEST_HEAD);
    for (size_t i = 0; i < nh; i++) {
        if (h2o_lcstris(headers[i].name, headers[i].name_len, H2O_STRLIT("content-length")))
            lengths++;
        else if (h2o_lcstris(headers[i].name, headers[i].name_len,
                             H2O_STRLIT("transfer-encoding")))
            codings++;
    }
    if (lengths > 1 || codings > 1 || (lengths > 0 && codings > 0))
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "",
                              "The request's body framing is ambiguous: more than one "
                              "Content-Length or Transfer-Encoding header, or both; the "
                              "connection is closed");
    return LK_OK;
}

/* --- the first request of a connection ------------------------------------------------ */

struct gate {
    h2o_socket_t *sock;
    h2o_accept_ctx_t *actx;
    h2o_timeout_entry_t timeout;
    h2o_iovec_t answer; /* heap: written, then the connection closes */
};

static const char http2_preface[] = "PRI * HTTP/2.0\r\n";

static struct gate *gate_of_timeout(h2o_timeout_entry_t *e)
{
    return (struct gate *)((char *)e - offsetof(struct gate, timeout));
}

static void gate_close(struct gate *g)
{
    if (h2o_timeout_is_linked(&g->timeout))
        h2o_timeout_unlink(&g->timeout);
    h2o_socket_close(g->sock);
    free(g->answer.base);
    free(g);
}

static void on_answer_written(h2o_socket_t *sock, const char *err)
{
    (void)err;
    gate_close(sock->data);
}

/* Answers e in the error shape, then closes. */
static void gate_refuse(struct gate *g, enum lk_err e, const char *detail)
{
    char rid[24], head[256];
    struct lk_errinfo ei;
    json_t *body;
    size_t n;
    int hn;

    lk_errinfo_clear(&ei);
    snprintf(ei.detail, sizeof(ei.detail), "%s", detail);
    lk_respond_new_request_id(rid);
    body = lk_respond_error_body(e, &ei, rid);
    n = json_dumpb(body, NULL, 0, JSON_COMPACT);
    hn = snprintf(head, sizeof(head),
                  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                  "X-Request-Id: %s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
                  lk_err_status(e), e == LK_ERR_HEADERS_TOO_LARGE ? "Request Header Fields Too Large"
                                                                 : "Bad Request",
                  rid, n);
    if (hn <= 0 || (size_t)hn >= sizeof(head)) { /* cannot happen: every part is ours */
        json_decref(body);
        gate_close(g);
        return;
    }
    g->answer.base = lk_malloc((size_t)hn + n);
    memcpy(g->answer.base, head, (size_t)hn);
    g->answer.len = (size_t)hn + json_dumpb(body, g->answer.base + hn, n, JSON_COMPACT);
    json_decref(body);
    h2o_timeout_unlink(&g->timeout);
    h2o_socket_read_stop(g->sock);
    h2o_socket_write(g->sock, &g->answer, 1, on_answer_written);
}

static void gate_on_timeout(h2o_timeout_entry_t *e)
{
    gate_close(gate_of_timeout(e)); /* as h2o does: a silent close */
}

static bool crlf_only(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static void gate_on_read(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->data;
    struct phr_header headers[H2O_MAX_HEADERS];
    size_t nh = H2O_MAX_HEADERS, mlen, plen, have, cmp;
    const char *method, *path, *in;
    h2o_accept_ctx_t *actx;
    int minor, n;

    if (err != NULL) {
        gate_close(g);
        return;
    }
    in = sock->input->bytes;
    have = sock->input->size;
    /* HTTP/2 with prior knowledge is h2o's: wait until it can be told apart. */
    cmp = have < sizeof(http2_preface) - 1 ? have : sizeof(http2_preface) - 1;
    if (memcmp(in, http2_preface, cmp) == 0 && have < sizeof(http2_preface) - 1)
        return;
    if (cmp == sizeof(http2_preface) - 1 && memcmp(in, http2_preface, cmp) == 0)
        goto hand_over;
    n = phr_parse_request(in, have < LK_MAX_REQUEST_HEAD ? have : LK_MAX_REQUEST_HEAD, &method,
                          &mlen, &path, &plen, &minor, headers, &nh, 0);
    if (n > 0)
        goto hand_over;
    if (n == -2 && have < LK_MAX_REQUEST_HEAD)
        return; /* more to come */
    if (n == -2) {
        gate_refuse(g, LK_ERR_HEADERS_TOO_LARGE, "The request line and headers are over 8192 bytes");
        return;
    }
    if (have <= 4 && crlf_only(in, have)) { /* as h2o does */
        gate_close(g);
        return;
    }
    gate_refuse(g, LK_ERR_INVALID_REQUEST,
                "Malformed HTTP/1.1 request head: the request line, a header line, or more than "
                "100 headers");
    return;

hand_over:
    actx = g->actx;
    h2o_timeout_unlink(&g->timeout);
    h2o_socket_read_stop(sock);
    sock->data = NULL;
    free(g);
    h2o_accept(actx, sock); /* h2o parses what is already in sock->input at once */
}

void lk_reqhead_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    struct gate *g = lk_calloc(1, sizeof(*g));

    g->sock = sock;
    g->actx = actx;
    g->timeout.cb = gate_on_timeout;
    sock->data = g;
    h2o_timeout_link(actx->ctx->loop, &actx->ctx->http1.req_timeout, &g->timeout);
    h2o_socket_read_start(sock, gate_on_read);
    /* After a TLS handshake the request may already be read and decrypted, with
     * no further read to come. */
    if (sock->input->size != 0)
        gate_on_read(sock, NULL);
}
