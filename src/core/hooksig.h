/*
 * hooksig.h — the pure parts of signed webhooks (Standard Webhooks,
 * https://www.standardwebhooks.com): the signature header, the `whsec_` secret
 * text, the derivation of an endpoint's secret from the server's master key,
 * and the checks a hostile endpoint URL and the address it resolves to must
 * pass. No I/O, no clock: callers pass the time.
 *
 * Thread safety: every function is safe from any thread.
 */
#ifndef LK_HOOKSIG_H
#define LK_HOOKSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"

#define LK_HOOKSIG_KEY_LEN 32    /* bytes of an endpoint's signing key */
#define LK_HOOKSIG_MAX 64        /* "v1," + base64 of 32 bytes + NUL, with room */
#define LK_HOOKSIG_SECRET_MAX 64 /* "whsec_" + base64 of 32 bytes + NUL, with room */
#define LK_HOOKURL_HOST_MAX 253

/* sig = "v1," base64(HMAC-SHA256(key, id "." ts "." body)). */
void lk_hooksig_sign(const uint8_t *key, size_t keylen, const char *id, int64_t ts,
                     const void *body, size_t len, char sig[LK_HOOKSIG_MAX] /* OUT */);

/* The secret as shown to the integrator: "whsec_" base64(key). */
void lk_hooksig_secret_text(const uint8_t key[LK_HOOKSIG_KEY_LEN],
                            char out[LK_HOOKSIG_SECRET_MAX] /* OUT */);

/* key = HMAC-SHA256(master, "latchkey-webhook-v1" NUL endpoint_id NUL salt):
 * nothing stored lets anyone compute it without the master key. */
void lk_hooksig_derive(const uint8_t *master, size_t mlen, const char *endpoint_id,
                       const char *salt, uint8_t key[LK_HOOKSIG_KEY_LEN] /* OUT */);

/* An endpoint URL taken apart. host is without brackets for an IPv6 literal. */
struct lk_hookurl {
    bool https;
    char host[LK_HOOKURL_HOST_MAX + 1];
    uint16_t port;
    const char *path; /* into the URL: "/..." with its query; "/" when empty */
    size_t path_len;
    bool host_is_ip;
};

/* Checks url[0..len) (at most max bytes): http:// or https://, a host of
 * letters, digits, '-', '.' or a bracketed IPv6 literal, an optional port,
 * no user part, no fragment, printable ASCII only. LK_ERR_INVALID_REQUEST with
 * ei (field "url") naming what is wrong. */
enum lk_err lk_hookurl_parse(const char *url, size_t len, size_t max,
                             struct lk_hookurl *out /* OUT */, struct lk_errinfo *ei);

/* True when sa is a destination webhooks may reach by default: not loopback,
 * private, link-local, unique-local, carrier-grade NAT, multicast, unspecified
 * or reserved (IPv4-mapped IPv6 addresses are judged as their IPv4 address). */
bool lk_hookaddr_public(const struct sockaddr *sa);

#endif
