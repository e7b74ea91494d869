/*
 * netaddr.h — IP addresses and address ranges (CIDR), IPv4 and IPv6, for
 * `trusted_proxies`: which peers may tell latchkey who the client is.
 *
 * An address is held in 16 bytes; an IPv4 address as its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d), so "203.0.113.7" and "::ffff:203.0.113.7" are one address, one
 * throttle entry and one match, and a range is a prefix of those 128 bits.
 * Pure: no I/O.
 */
#ifndef LK_NETADDR_H
#define LK_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LK_NETADDR_TEXT_MAX 46   /* the longest IPv6 text form, with its NUL */
#define LK_NETADDR_LIST_MAX 64   /* ranges in one list */

struct lk_netaddr {
    uint8_t b[16];
};

/* A range: every address whose first `bits` bits (0–128, of the 16-byte form)
 * equal those of `addr`; bits beyond them are zero in `addr`. */
struct lk_netaddr_range {
    struct lk_netaddr addr;
    uint8_t bits;
};

struct lk_netaddr_list {
    size_t n;
    struct lk_netaddr_range r[LK_NETADDR_LIST_MAX];
};

/* Parses all of s[0..len) as an IPv4 dotted quad or an IPv6 address (no zone,
 * no brackets, no port). Returns 0, or -1. */
int lk_netaddr_parse(const char *s, size_t len, struct lk_netaddr *out /* OUT */);

/* Writes a's canonical text (dotted quad for an IPv4 address, RFC 5952 IPv6
 * otherwise) to out, which holds at least LK_NETADDR_TEXT_MAX bytes. */
void lk_netaddr_format(const struct lk_netaddr *a, char *out, size_t outsz);

/* Puts s[0..len) in canonical text (lk_netaddr_format) if it is an address:
 * two spellings of one address become one string. Returns 0, or -1. */
int lk_netaddr_canon(const char *s, size_t len, char *out, size_t outsz);

/* Parses "ADDRESS" or "ADDRESS/BITS" (BITS 0–32 for IPv4, 0–128 for IPv6; bits
 * past the prefix are cleared, as nginx does). A lone address is the range of
 * itself. Returns 0, or -1. */
int lk_netaddr_range_parse(const char *s, size_t len, struct lk_netaddr_range *out /* OUT */);

/* Appends the ranges in s[0..len), separated by commas and/or blanks, to *list;
 * "none" adds nothing. Returns LK_OK, or LK_ERR_INVALID_REQUEST with ei->detail
 * naming the bad entry (quoted, bounded) or saying the list is full. */
enum lk_err lk_netaddr_list_add(struct lk_netaddr_list *list, const char *s, size_t len,
                                struct lk_errinfo *ei);

/* True when a lies in a range of list. */
bool lk_netaddr_list_contains(const struct lk_netaddr_list *list, const struct lk_netaddr *a);

#endif
