#include "core/hooksig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/common.h"
#include "core/digest.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_hooksig_sign(const uint8_t *key, size_t keylen, const char *id, int64_t ts,
                     const void *body, size_t len, char sig[LK_HOOKSIG_MAX])
{
    uint8_t mac[32];
    char head[96];
    int n = snprintf(head, sizeof(head), "%s.%lld.", id, (long long)ts);

    lk_assert(n > 0 && (size_t)n < sizeof(head));
    lk_hmac_sha256(key, keylen, (struct lk_bytes[]){{head, (size_t)n}, {body, len}}, 2, mac);
    memcpy(sig, "v1,", 3);
    EVP_EncodeBlock((uint8_t *)sig + 3, mac, (int)sizeof(mac)); /* 44 chars + NUL */
    OPENSSL_cleanse(mac, sizeof(mac));
}

void lk_hooksig_secret_text(const uint8_t key[LK_HOOKSIG_KEY_LEN], char out[LK_HOOKSIG_SECRET_MAX])
{
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((uint8_t *)out + 6, key, LK_HOOKSIG_KEY_LEN);
}

void lk_hooksig_derive(const uint8_t *master, size_t mlen, const char *endpoint_id,
                       const char *salt, uint8_t key[LK_HOOKSIG_KEY_LEN])
{
    static const char label[] = "latchkey-webhook-v1"; /* with its NUL */

    lk_hmac_sha256(master, mlen,
                   (struct lk_bytes[]){{label, sizeof(label)},
                                       {endpoint_id, strlen(endpoint_id) + 1},
                                       {salt, strlen(salt)}},
                   3, key);
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

enum lk_err lk_hookurl_parse(const char *url, size_t len, size_t max, struct lk_hookurl *out,
                             struct lk_errinfo *ei)
{
    const char *p, *end = url + len, *hs, *he, *auth_end;
    struct in6_addr a6;
    struct in_addr a4;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > max)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url", "url must be 1 to %zu bytes", max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                                  "url must be printable ASCII without spaces");
    if (len > 8 && memcmp(url, "https://", 8) == 0) {
        out->https = true;
        p = url + 8;
    } else if (len > 7 && memcmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                              "url must start with http:// or https://");
    }
    if (memchr(url, '#', len) != NULL)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url", "url must not have a fragment");
    for (auth_end = p; auth_end < end && *auth_end != '/' && *auth_end != '?'; auth_end++)
        ;
    if (memchr(p, '@', (size_t)(auth_end - p)) != NULL)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                              "url must not carry a user name or password");
    if (p < auth_end && *p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(auth_end - hs));
        if (he == NULL)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url", "unclosed [ in the host");
        p = he + 1;
    } else {
        hs = p;
        for (he = hs; he < auth_end && *he != ':'; he++)
            if (!host_char(*he))
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                                      "the host may hold letters, digits, '-' and '.'");
        p = he;
    }
    if (he == hs || (size_t)(he - hs) > LK_HOOKURL_HOST_MAX)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                              "url needs a host of at most %d bytes", LK_HOOKURL_HOST_MAX);
    memcpy(out->host, hs, (size_t)(he - hs));
    out->host[he - hs] = '\0';
    if (hs > url && hs[-1] == '[') {
        if (inet_pton(AF_INET6, out->host, &a6) != 1)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url",
                                  "bad IPv6 address in the host");
        out->host_is_ip = true;
    } else {
        out->host_is_ip = inet_pton(AF_INET, out->host, &a4) == 1;
    }
    out->port = out->https ? 443 : 80;
    if (p < auth_end) {
        int64_t port;
        if (*p != ':' || lk_parse_i64(p + 1, (size_t)(auth_end - p - 1), 1, 65535, &port) != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url", "bad port (1 to 65535)");
        out->port = (uint16_t)port;
    }
    if (auth_end == end) {
        out->path = "/";
        out->path_len = 1;
    } else if (*auth_end == '?') {
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "url", "url needs a / before its query");
    } else {
        out->path = auth_end;
        out->path_len = (size_t)(end - auth_end);
    }
    return LK_OK;
}

static bool v4_public(uint32_t a)
{
    static const struct {
        uint32_t net, mask;
    } closed[] = {
        {0x00000000, 0xff000000}, /* 0/8: "this network" */
        {0x0a000000, 0xff000000}, /* 10/8 */
        {0x64400000, 0xffc00000}, /* 100.64/10: carrier-grade NAT */
        {0x7f000000, 0xff000000}, /* 127/8: loopback */
        {0xa9fe0000, 0xffff0000}, /* 169.254/16: link-local (cloud metadata) */
        {0xac100000, 0xfff00000}, /* 172.16/12 */
        {0xc0000000, 0xffffff00}, /* 192.0.0/24 */
        {0xc0a80000, 0xffff0000}, /* 192.168/16 */
        {0xc6120000, 0xfffe0000}, /* 198.18/15: benchmarking */
        {0xe0000000, 0xe0000000}, /* 224/3: multicast, reserved, broadcast */
    };

    for (size_t i = 0; i < LK_ARRAY_LEN(closed); i++)
        if ((a & closed[i].mask) == closed[i].net)
            return false;
    return true;
}

static uint32_t v4_at(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* An IPv6 address whose traffic ends at an IPv4 one (mapped, compatible,
 * translated, NAT64, 6to4) is judged by that IPv4 address; ranges that never
 * reach a public host (local, site-local, discard, documentation, local-use
 * NAT64, Teredo, whose client address cannot be judged) are closed. */
static bool v6_public(const uint8_t *b)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const struct {
        uint8_t net[4];
        unsigned bits;
    } closed[] = {
        {{0x01, 0x00, 0x00, 0x00}, 64}, /* 100::/64: discard-only (prefix /32 here) */
        {{0x00, 0x64, 0xff, 0x9b}, 32}, /* 64:ff9b::/32 outside its /96: local-use NAT64 */
        {{0x20, 0x01, 0x00, 0x00}, 32}, /* 2001::/32: Teredo */
        {{0x20, 0x01, 0x0d, 0xb8}, 32}, /* 2001:db8::/32: documentation */
        {{0x3f, 0xff, 0x00, 0x00}, 20}, /* 3fff::/20: documentation */
        {{0xfc, 0x00, 0x00, 0x00}, 7},  /* fc00::/7: unique-local */
        {{0xfe, 0x80, 0x00, 0x00}, 10}, /* fe80::/10: link-local */
        {{0xfe, 0xc0, 0x00, 0x00}, 10}, /* fec0::/10: site-local */
        {{0xff, 0x00, 0x00, 0x00}, 8},  /* ff00::/8: multicast */
    };
    uint32_t head = v4_at(b);

    if (memcmp(b, mapped, 12) == 0 || memcmp(b, translated, 12) == 0 ||
        memcmp(b, nat64, 12) == 0 || (memcmp(b, zero, 12) == 0 && (b[12] | b[13]) != 0))
        return v4_public(v4_at(b + 12)); /* mapped, translated, NAT64, compatible */
    if (memcmp(b, zero, 15) == 0)
        return false; /* :: and ::1 */
    if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16: 6to4 wraps the IPv4 after it */
        return v4_public(v4_at(b + 2));
    for (size_t i = 0; i < LK_ARRAY_LEN(closed); i++) {
        uint32_t mask = closed[i].bits >= 32 ? 0xffffffffu : ~(0xffffffffu >> closed[i].bits);
        if ((head & mask) != v4_at(closed[i].net))
            continue;
        /* 100::/64 is the only entry longer than 32 bits: its next 4 bytes are 0. */
        if (closed[i].bits > 32 && memcmp(b + 4, zero, 4) != 0)
            continue;
        return false;
    }
    return true;
}

bool lk_hookaddr_public(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_public(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return v6_public(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return false;
}
