/*
 * fuzz_hookurl.c — lk_hookurl_parse on arbitrary bytes (a webhook endpoint URL is
 * hostile input): it never reads outside url[0..len), and what it accepts is
 * http(s), a host of the allowed characters that fits, a port, a path inside the
 * input starting with '/', printable ASCII only; a refusal names the field and
 * says why in bounded, valid text; an address literal it accepts is one the
 * SSRF classifier (lk_hookaddr_public) judges.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hooksig.h"
#include "core/quote.h"

#define CHECK(c) ((c) ? (void)0 : abort())
#define MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_hookurl u;
    struct lk_errinfo ei;
    const char *s = (const char *)data;

    if (size > 2 * MAX)
        return 0;
    lk_errinfo_clear(&ei);
    if (lk_hookurl_parse(s, size, MAX, &u, &ei) != LK_OK) {
        CHECK(strcmp(ei.field, "url") == 0 && ei.detail[0] != '\0');
        CHECK(lk_utf8_valid(ei.detail, strlen(ei.detail)));
        return 0;
    }
    CHECK(size >= 8 && size <= MAX);
    CHECK(memcmp(s, u.https ? "https://" : "http://", u.https ? 8 : 7) == 0);
    CHECK(u.port >= 1);
    size_t hl = strlen(u.host);
    CHECK(hl >= 1 && hl <= LK_HOOKURL_HOST_MAX);
    for (size_t i = 0; i < hl; i++)
        CHECK(u.host[i] > 0x20 && u.host[i] < 0x7f && u.host[i] != '/' && u.host[i] != '@');
    CHECK(u.path_len >= 1 && u.path[0] == '/');
    /* a view into the input, or the "/" of a URL without a path */
    CHECK((u.path >= s && u.path + u.path_len <= s + size) || u.path_len == 1);
    for (size_t i = 0; i < size; i++)
        CHECK(data[i] > 0x20 && data[i] < 0x7f && data[i] != '#');
    if (u.host_is_ip) { /* the SSRF classifier takes every literal the parser lets through */
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        if (inet_pton(AF_INET6, u.host, &s6.sin6_addr) == 1)
            (void)lk_hookaddr_public((const struct sockaddr *)&s6);
        else
            CHECK(inet_pton(AF_INET, u.host, &s4.sin_addr) == 1 &&
                  (lk_hookaddr_public((const struct sockaddr *)&s4) || true));
    }
    return 0;
}
