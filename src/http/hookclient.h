/*
 * hookclient.h — the webhooks' HTTP/1.1 client (h2o's http1client on an event
 * loop of its own): POSTs a few signed deliveries at once, to the addresses the
 * service resolved and checked (service/hooks.h), never to a name resolved
 * again here. HTTPS verifies the peer's certificate against the system's
 * roots and the URL's host name.
 *
 * Thread safety: lk_hookclient_send() runs on the delivery thread only (its
 * loop is that thread's).
 */
#ifndef LK_HOOKCLIENT_H
#define LK_HOOKCLIENT_H

#include "service/hooks.h"

/* An lk_hook_send_fn: sends reqs[0..n) concurrently, each bounded by timeout_ms;
 * reqs NULL frees the thread's loop and TLS context. */
void lk_hookclient_send(struct lk_hook_request *reqs, size_t n, int64_t timeout_ms);

#endif
