/*
 * tls.h — HTTPS for `latchkey serve --tls-cert FILE --tls-key FILE`.
 *
 * One OpenSSL context (TLS 1.2 and 1.3 only, no compression, no renegotiation,
 * forward-secret AEAD ciphers), offering HTTP/2 ("h2") and HTTP/1.1 by ALPN. A
 * reload (SIGHUP) builds a whole new context from the files and publishes it for
 * the connections accepted after; open connections keep the context they
 * started with (each SSL object holds a reference), so nothing is dropped. A
 * reload that fails keeps the old context.
 *
 * After the handshake an HTTP/2 connection goes to h2o; an HTTP/1.1 one goes
 * through the first-head gate (http/reqhead.h) exactly as a plain connection.
 */
#ifndef LK_TLS_H
#define LK_TLS_H

#include <h2o.h>

#include "core/err.h"

struct lk_tls;

/* Loads the certificate chain (PEM, leaf first) and the private key (PEM, not
 * encrypted) and checks they match. Caller frees with lk_tls_free(). Errors
 * name the file and OpenSSL's reason in ei. */
enum lk_err lk_tls_new(const char *cert_file, const char *key_file, struct lk_tls **out /* OUT */,
                       struct lk_errinfo *ei);

/* Reads the same two files again and, when they load, swaps the new context in
 * for connections accepted from now on. On failure the old one stays and ei
 * says why. Any thread but the loops' (they never block on it for long). */
enum lk_err lk_tls_reload(struct lk_tls *tls, struct lk_errinfo *ei);

/* Frees tls once no loop accepts any more. Accepts NULL. */
void lk_tls_free(struct lk_tls *tls);

/* Takes over a newly accepted socket: the TLS handshake (within the context's
 * handshake timeout), then HTTP/2 or HTTP/1.1 by ALPN as above. A failed or
 * stalled handshake is a silent close. Loop thread only. */
void lk_tls_accept(struct lk_tls *tls, h2o_accept_ctx_t *actx, h2o_socket_t *sock);

#endif
