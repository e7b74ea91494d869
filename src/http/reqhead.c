#include "http/reqhead.h"

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* h2o 2.2 links picohttpparser, its HTTP/1 parser, but installs no header for
 * it: the declarations of picohttpparser.h. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

enum lk_err lk_reqhead_check(h2o_req_t *req, struct lk_errinfo *ei)
{
    struct phr_header headers[H2O_MAX_HEADERS];
    size_t nh = H2O_MAX_HEADERS, mlen, plen, lengths = 0, codings = 0;
    const char *method, *path;
    h2o_socket_t *sock;
    int minor, n;

    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL ||
        (sock = req->conn->callbacks->get_socket(req->conn)) == NULL || sock->input == NULL)
        return LK_OK;
    /* The head h2o parsed starts the buffer (it consumes a request's bytes only
     * once it is answered); h2o lower-cased the names in place. */
    n = phr_parse_request(sock->input->bytes, sock->input->size, &method, &mlen, &path, &plen,
                          &minor, headers, &nh, 0);
    if (n <= 0) /* h2o parsed it: another answer means the buffer is not what we think */
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "",
                              "The request head could not be read back");
    if ((size_t)n > LK_MAX_REQUEST_HEAD)
        return lk_errinfo_set(ei, LK_ERR_HEADERS_TOO_LARGE, "",
                              "The request line and headers are over %d bytes",
                              LK_MAX_REQUEST_HEAD);
    for (size_t i = 0; i < nh; i++) {
        if (h2o_lcstris(headers[i].name, headers[i].name_len, H2O_STRLIT("content-length")))
            lengths++;
        else if (h2o_lcstris(headers[i].name, headers[i].name_len,
                             H2O_STRLIT("transfer-encoding")))
            codings++;
    }
    if (lengths > 1 || codings > 1 || (lengths > 0 && codings > 0))
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "",
                              "The request's body framing is ambiguous: more than one "
                              "Content-Length or Transfer-Encoding header, or both; the "
                              "connection is closed");
    return LK_OK;
}
