/*
 * reqhead.h — checks of an HTTP/1 request head that h2o 2.2 does not make.
 *
 * h2o takes Content-Length and Transfer-Encoding out of req->headers and frames
 * the body by the first Content-Length, or by Transfer-Encoding when there is
 * one, silently: a request with two lengths, or a length and chunked encoding,
 * means one thing to h2o and another to a proxy in front, and the bytes the two
 * disagree on are read as a second request (request smuggling). These checks
 * parse the head again, with h2o's own parser, from the connection's input
 * buffer, where it still lies, whole, when the handler runs.
 *
 * The first request of each connection is also read here before h2o sees it
 * (lk_reqhead_accept), so that a malformed or oversized head gets latchkey's
 * error shape and no more than LK_MAX_REQUEST_HEAD bytes are buffered for it.
 * Later requests on a kept-alive connection are read by h2o alone: see
 * docs/http-api.md for what h2o answers itself.
 */
#ifndef LK_REQHEAD_H
#define LK_REQHEAD_H

#include <h2o.h>

#include "core/err.h"

#define LK_MAX_REQUEST_HEAD 8192 /* request line and headers, as the README promises */

/* LK_OK, or: LK_ERR_INVALID_REQUEST when the body's framing is ambiguous (more
 * than one Content-Length, more than one Transfer-Encoding, or both);
 * LK_ERR_HEADERS_TOO_LARGE when the head is over LK_MAX_REQUEST_HEAD. ei says
 * which. Either way the caller answers and closes the connection (nothing after
 * the head can be trusted to be where h2o thinks). HTTP/2 requests: LK_OK (their
 * framing is the frames'). Loop thread only. */
enum lk_err lk_reqhead_check(h2o_req_t *req, struct lk_errinfo *ei);

/* Takes over a newly accepted socket: reads its first request head (at most
 * LK_MAX_REQUEST_HEAD bytes, within the context's HTTP/1 request timeout) and
 * then hands the socket, with what was read, to h2o_accept(actx, sock). A head
 * h2o would refuse with its plain-text 400 (picohttpparser refuses it) is
 * answered 400 invalid_request, one over the size 431 headers_too_large, both
 * in the error shape, and the connection is closed. HTTP/2 with prior knowledge
 * goes to h2o untouched. Loop thread only. */
void lk_reqhead_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock);

#endif
