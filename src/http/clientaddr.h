/*
 * clientaddr.h — who the client of a request is. The TCP peer, unless the peer
 * is one of `trusted_proxies`: then the proxy's word is taken, as nginx's
 * set_real_ip_from and Express's `trust proxy` take it. Every per-address limit
 * (failed keys, logins) and every audit address uses this one answer.
 *
 * From a trusted peer: X-Real-IP (the last one) if it holds an address that is
 * not itself trusted; else the right-most hop of X-Forwarded-For that is not
 * trusted (hops right of it were added by trusted proxies; hops left of it are
 * the client's own say); a hop that is not an address ends the walk at the
 * trusted hop before it. X-Forwarded-Proto: https marks the request secure.
 * From any other peer these headers are ignored.
 */
#ifndef LK_CLIENTADDR_H
#define LK_CLIENTADDR_H

#include <stdbool.h>

#include <h2o.h>

#include "core/netaddr.h"

struct lk_clientaddr {
    char text[LK_NETADDR_TEXT_MAX]; /* canonical (core/netaddr.h); "" if unknown */
    bool secure;                    /* TLS to us, or to the trusted proxy */
};

/* Fills *out for req. Loop thread only (reads the connection). */
void lk_clientaddr_resolve(h2o_req_t *req, const struct lk_netaddr_list *trusted,
                           struct lk_clientaddr *out /* OUT */);

#endif
