#include "http/tls.h"

#include <errno.h>
#include <pthread.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <h2o/http2.h>

#include "base/common.h"
#include "http/reqhead.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* Mozilla's "intermediate" TLS 1.2 list without the DHE suites (they need
 * parameters of their own): ECDHE only, AEAD only. TLS 1.3 suites are
 * OpenSSL's defaults, all of them fine. None is on HTTP/2's block list. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* What ALPN offers, best first. h2o's own list (h2o_http2_alpn_protocols) also
 * names the h2-14/h2-16 drafts no client sends any more, and not http/1.1, which
 * a client that offers only it should see acknowledged. */
static const h2o_iovec_t alpn_protocols[] = {
    {H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};

struct lk_tls {
    char cert_file[4096], key_file[4096];
    pthread_mutex_t mu; /* guards ctx: a loop takes a reference under it */
    SSL_CTX *ctx;
};

/* A handshake in progress. */
struct hs {
    h2o_accept_ctx_t *actx;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout;
};

/* OpenSSL's reason for a failure ("no start line", "key values mismatch"),
 * and the queue emptied: the first error queued is the cause, the later ones
 * only the callers passing it up ("PEM lib"). */
static const char *ossl_reason(char *buf, size_t sz)
{
    unsigned long code = ERR_peek_error();
    const char *r = code ? ERR_reason_error_string(code) : NULL;

    snprintf(buf, sz, "%s", r ? r : "unknown error");
    ERR_clear_error();
    return buf;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* LK_OK when path can be opened for reading; else says why, naming what. */
static enum lk_err readable(const char *path, const char *field, const char *what,
                            struct lk_errinfo *ei)
{
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field, "cannot read the TLS %s %s: %s",
                              what, path, strerror(errno));
    fclose(f);
    return LK_OK;
}

static enum lk_err build(const char *cert, const char *key, SSL_CTX **out, struct lk_errinfo *ei)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[256];
    enum lk_err e;

    *out = NULL;
    if ((e = readable(cert, "tls-cert", "certificate", ei)) != LK_OK ||
        (e = readable(key, "tls-key", "private key", ei)) != LK_OK) {
        SSL_CTX_free(ctx);
        return e;
    }
    ERR_clear_error();
    if (ctx == NULL)
        return lk_errinfo_set(ei, LK_ERR_INTERNAL, "tls", "cannot create a TLS context: %s",
                              ossl_reason(why, sizeof(why)));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* OpenSSL 3 refuses client-started renegotiation unless told otherwise;
     * NO_RENEGOTIATION also stops the server side and older libraries. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle keep-alive connections are many */
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        e = lk_errinfo_set(ei, LK_ERR_INTERNAL, "tls", "cannot set the cipher list: %s",
                           ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        e = lk_errinfo_set(
            ei, LK_ERR_INVALID_REQUEST, "tls-cert",
            "cannot load the TLS certificate %s: no PEM certificate chain in it (OpenSSL: %s)",
            cert, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "tls-key",
                               "the TLS private key %s does not match the certificate %s", key,
                               cert);
            goto fail;
        }
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "tls-key",
                           "cannot load the TLS private key %s: no unencrypted PEM private key in "
                           "it (OpenSSL: %s)",
                           key, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "tls-key",
                           "the TLS private key %s does not match the certificate %s: %s", key,
                           cert, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, alpn_protocols);
    *out = ctx;
    return LK_OK;
fail:
    SSL_CTX_free(ctx);
    return e;
}

enum lk_err lk_tls_new(const char *cert_file, const char *key_file, struct lk_tls **out,
                       struct lk_errinfo *ei)
{
    struct lk_tls *tls;
    SSL_CTX *ctx;
    enum lk_err e;

    *out = NULL;
    if (strlen(cert_file) >= sizeof(tls->cert_file) || strlen(key_file) >= sizeof(tls->key_file))
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "tls", "TLS file path too long");
    if ((e = build(cert_file, key_file, &ctx, ei)) != LK_OK)
        return e;
    tls = lk_calloc(1, sizeof(*tls));
    snprintf(tls->cert_file, sizeof(tls->cert_file), "%s", cert_file);
    snprintf(tls->key_file, sizeof(tls->key_file), "%s", key_file);
    pthread_mutex_init(&tls->mu, NULL);
    tls->ctx = ctx;
    *out = tls;
    return LK_OK;
}

enum lk_err lk_tls_reload(struct lk_tls *tls, struct lk_errinfo *ei)
{
    SSL_CTX *fresh, *old;
    enum lk_err e;

    if ((e = build(tls->cert_file, tls->key_file, &fresh, ei)) != LK_OK)
        return e;
    pthread_mutex_lock(&tls->mu);
    old = tls->ctx;
    tls->ctx = fresh;
    pthread_mutex_unlock(&tls->mu);
    SSL_CTX_free(old); /* freed for good once its last connection closes */
    return LK_OK;
}

void lk_tls_free(struct lk_tls *tls)
{
    if (tls == NULL)
        return;
    SSL_CTX_free(tls->ctx);
    pthread_mutex_destroy(&tls->mu);
    free(tls);
}

static struct hs *hs_of_timeout(h2o_timeout_entry_t *e)
{
    return (struct hs *)((char *)e - offsetof(struct hs, timeout));
}

static void hs_free(struct hs *h)
{
    if (h2o_timeout_is_linked(&h->timeout))
        h2o_timeout_unlink(&h->timeout);
    free(h);
}

static void on_handshake_timeout(h2o_timeout_entry_t *e)
{
    struct hs *h = hs_of_timeout(e);
    h2o_socket_t *sock = h->sock;

    sock->data = NULL;
    hs_free(h);
    h2o_socket_close(sock); /* as h2o's own accept does */
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    struct hs *h = sock->data;
    h2o_accept_ctx_t *actx = h->actx;
    h2o_iovec_t proto;

    sock->data = NULL;
    hs_free(h);
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    proto = h2o_socket_ssl_get_selected_protocol(sock);
    if (h2o_memis(proto.base, proto.len, H2O_STRLIT("h2"))) {
        h2o_http2_accept(actx, sock, *h2o_get_timestamp(actx->ctx, NULL, NULL));
        return;
    }
    /* actx has no ssl_ctx: h2o_accept, at the gate's end, starts HTTP/1 on the
     * socket as it is, decrypting. */
    lk_reqhead_accept(actx, sock);
}

void lk_tls_accept(struct lk_tls *tls, h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    struct hs *h = lk_calloc(1, sizeof(*h));
    SSL_CTX *ctx;

    h->actx = actx;
    h->sock = sock;
    h->timeout.cb = on_handshake_timeout;
    sock->data = h;
    h2o_timeout_link(actx->ctx->loop, &actx->ctx->handshake_timeout, &h->timeout);
    pthread_mutex_lock(&tls->mu);
    ctx = tls->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&tls->mu);
    h2o_socket_ssl_handshake(sock, ctx, NULL, on_handshake); /* the SSL holds its own reference */
    SSL_CTX_free(ctx);
}
