/*
 * client.h — the command line's HTTP client: one blocking request to a running
 * latchkey (h2o's HTTP/1 client on a private event loop; http and https).
 */
#ifndef LK_CLIENT_H
#define LK_CLIENT_H

#include <stddef.h>

#define LK_CLIENT_MAX_RESPONSE (16 * 1024 * 1024)

struct lk_client_resp {
    int status; /* 0 when no response arrived */
    char *body; /* NUL-terminated; caller frees */
    size_t len;
    char retry_after[16]; /* the Retry-After header, "" when none (or not a number) */
};

/* Sends METHOD server+path with the bearer token (may be NULL) and JSON body (may
 * be NULL). Returns 0 with *out filled, or -1 with a message in err. */
int lk_client_call(const char *server, const char *token, const char *method, const char *path,
                   const char *body, struct lk_client_resp *out /* OUT */, char *err,
                   size_t errsz);

#endif
