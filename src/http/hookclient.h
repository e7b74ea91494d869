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

/* The lk_hook_send_fn (service/hooks.h): requests in flight on the thread's
 * loop, each with its own deadline, handed back as each ends. */
size_t lk_hookclient_send(struct lk_hook_request *const *start, size_t nstart, int64_t timeout_ms,
                          int64_t wait_ms, struct lk_hook_request **done, size_t cap);

#endif
