#include "http/clientaddr.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static bool peer_of(h2o_req_t *req, struct lk_netaddr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

    if (n > 0 && ss.ss_family == AF_INET) {
        memcpy(out->b, mapped, sizeof(mapped));
        memcpy(out->b + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return true;
    }
    if (n > 0 && ss.ss_family == AF_INET6) {
        memcpy(out->b, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* The connection itself is TLS. Not req->scheme: over cleartext HTTP/2 that is
 * the client's own `:scheme`, and a client saying "https" is not TLS. */
static bool over_tls(h2o_req_t *req)
{
    h2o_socket_t *sock;

    return req->conn->callbacks->get_socket != NULL &&
           (sock = req->conn->callbacks->get_socket(req->conn)) != NULL && sock->ssl != NULL;
}

static h2o_iovec_t trim(h2o_iovec_t v)
{
    while (v.len > 0 && (v.base[0] == ' ' || v.base[0] == '\t')) {
        v.base++;
        v.len--;
    }
    while (v.len > 0 && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* The last header named name (lower case), or NULL. */
static const h2o_header_t *last_header(h2o_req_t *req, const char *name, size_t len)
{
    const h2o_header_t *found = NULL;

    for (size_t i = 0; i < req->headers.size; i++)
        if (h2o_memis(req->headers.entries[i].name->base, req->headers.entries[i].name->len,
                      name, len))
            found = &req->headers.entries[i];
    return found;
}

/* Walks X-Forwarded-For from the right (the last header's last hop first).
 * *client starts as the peer (trusted); each trusted hop moves it left, the
 * first untrusted hop is the answer. Returns true when the walk ended. */
static bool walk_xff(h2o_req_t *req, const struct lk_netaddr_list *trusted,
                     struct lk_netaddr *client)
{
    for (size_t i = req->headers.size; i > 0; i--) {
        const h2o_header_t *h = &req->headers.entries[i - 1];
        size_t end;

        if (!h2o_memis(h->name->base, h->name->len, H2O_STRLIT("x-forwarded-for")))
            continue;
        end = h->value.len;
        for (;;) {
            size_t start = end;
            struct lk_netaddr hop;
            h2o_iovec_t v;

            while (start > 0 && h->value.base[start - 1] != ',')
                start--;
            v = trim(h2o_iovec_init(h->value.base + start, end - start));
            /* An empty hop ("a,,b", a trailing comma) is no hop. */
            if (v.len != 0) {
                if (lk_netaddr_parse(v.base, v.len, &hop) != 0)
                    return true; /* not an address: the trusted hop before it answers */
                *client = hop;
                if (!lk_netaddr_list_contains(trusted, &hop))
                    return true;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return false;
}

void lk_clientaddr_resolve(h2o_req_t *req, const struct lk_netaddr_list *trusted,
                           struct lk_clientaddr *out)
{
    struct lk_netaddr peer, client, rip;
    const h2o_header_t *h;

    memset(out, 0, sizeof(*out));
    out->secure = over_tls(req);
    if (!peer_of(req, &peer))
        return;
    client = peer;
    if (trusted->n > 0 && lk_netaddr_list_contains(trusted, &peer)) {
        h = last_header(req, H2O_STRLIT("x-real-ip"));
        if (h != NULL && lk_netaddr_parse(trim(h->value).base, trim(h->value).len, &rip) == 0 &&
            !lk_netaddr_list_contains(trusted, &rip))
            client = rip;
        else
            walk_xff(req, trusted, &client);
        h = last_header(req, H2O_STRLIT("x-forwarded-proto"));
        if (h != NULL && h2o_lcstris(trim(h->value).base, trim(h->value).len,
                                     H2O_STRLIT("https")))
            out->secure = true;
    }
    lk_netaddr_format(&client, out->text, sizeof(out->text));
}
