/*
 * mgmt.h — management requests run off the event loops.
 *
 * A management call may wait on the database (an fsync, or a lock another
 * process holds for seconds); verification on the same event loop must not wait
 * with it. So the loop copies what the call needs out of the h2o request into a
 * `struct lk_mreq`, hands it to a small pool of worker threads, and goes on
 * serving. The worker runs the handler, which writes its answer into the mreq;
 * the answer is posted back to the loop (h2o's multithread queue), which sends it
 * if the client is still there. Workers never touch h2o objects.
 */
#ifndef LK_MGMT_H
#define LK_MGMT_H

#include <h2o.h>
#include <jansson.h>

#include "http/respond.h"
#include "service/auth.h"

#define LK_MGMT_WORKERS 2
#define LK_MGMT_PARAM_MAX 128 /* bytes in one captured path segment */
#define LK_MGMT_SIG_ID_MAX 130 /* a signing key's identifier, NUL included */
#define LK_MGMT_SIG_MAX 260    /* a signature header's value, NUL included */

/* One management request, detached from h2o. Everything is owned by the mreq. */
struct lk_mreq {
    struct lk_app *app;
    int64_t now;
    char request_id[24];
    char address[64];
    enum lk_err key_err; /* outcome of reading the key places */
    char *key;           /* the credential, wiped when freed; NULL when none */
    size_t key_len;
    char *body;
    size_t body_len;
    char *query; /* the query string without '?', "" when none */
    size_t query_len;
    char params[LK_ROUTE_MAX_PARAMS][LK_MGMT_PARAM_MAX];
    bool param_too_long;
    char workspace[LK_MGMT_PARAM_MAX]; /* X-Latchkey-Workspace or ?workspace_id=, "" if none */
    bool secure; /* the request came over TLS (cookies get Secure) */
    /* A signed leak report's headers (h_leaks.c), "" when absent:
     * Github-Public-Key-Identifier, and Github-Public-Key-Signature or
     * X-Latchkey-Signature; X-Latchkey-Timestamp. A value that does not fit
     * sets sig_too_long instead (the report is refused). */
    char sig_key_id[LK_MGMT_SIG_ID_MAX];
    char sig[LK_MGMT_SIG_MAX];
    char sig_ts[24];
    bool sig_too_long;
    unsigned need; /* the management permission of the route (lk_mperm) */
    /* The answer the handler writes. */
    int status;
    enum lk_err err;
    char *out;
    size_t out_len;
    char *set_cookie;    /* a Set-Cookie value to send, or NULL (owned, wiped) */
    int64_t retry_after; /* seconds for Retry-After, or 0 */
    const char *content_type; /* static; NULL: application/json */
    struct lk_limits_info limits; /* RateLimit-* headers when limits.has_rl */
    long fwd_rule;                /* forward-auth: the route rule that matched */
    bool fwd;                     /* forward-auth: a refusal names its code in a header */
    const struct lk_route_rules *fwd_rules; /* ... in this table (held; put when freed) */
    /* A verify answered 200 whatever it found: its outcome and key, for the
     * access log and metrics (check_err LK_OK and "" when not a check). */
    enum lk_err check_err;
    char check_key_id[LK_ID_MAX];
    /* Forward-auth: the X-Latchkey-* identity headers to send ("" for none). */
    char fwd_key_id[LK_ID_MAX], fwd_workspace_id[LK_ID_MAX], fwd_env[8];
};

typedef void (*lk_mgmt_fn)(struct lk_mreq *m);

struct lk_mgmt;

/* Starts the workers. Caller frees with lk_mgmt_free() after the loops stopped. */
struct lk_mgmt *lk_mgmt_new(struct lk_app *app);
/* Finishes queued jobs, stops the workers. Accepts NULL. */
void lk_mgmt_free(struct lk_mgmt *mg);

/* On each event loop thread, once, before it serves: the queue answers come back on. */
void lk_mgmt_attach_loop(h2o_loop_t *loop);

/* Detaches rc's request into a job for fn and queues it; lk_mreq_actor will
 * give fn an actor only if it holds `need` (an lk_mperm, from the route table;
 * lk_mgmt_submit: LK_MPERM_NONE). Loop thread; returns 0. */
int lk_mgmt_submit_as(struct lk_mgmt *mg, struct lk_reqctx *rc, lk_mgmt_fn fn, unsigned need);
int lk_mgmt_submit(struct lk_mgmt *mg, struct lk_reqctx *rc, lk_mgmt_fn fn);

/* --- for handlers (worker threads) ----------------------------------------- */

/* The session cookie's name. */
#define LK_SESSION_COOKIE "lk_session"

/* Resolves the credential and checks it holds the route's permission (m->need);
 * on failure writes the error answer and returns it. On a route that needs
 * none, a valid credential gets insufficient_permissions. */
enum lk_err lk_mreq_actor(struct lk_mreq *m, struct lk_actor *who /* OUT */);

/* Query parameter `name`, URL-decoded into out (NUL-terminated). Returns 1 when
 * present, 0 when absent, -1 when longer than outsz - 1. */
int lk_mreq_query(const struct lk_mreq *m, const char *name, char *out, size_t outsz);

/* One page of a listing, newest first: a store query asks for want + 1 rows;
 * the extra one only tells that there is a next page. */
#define LK_PAGE_REF_MAX 32
struct lk_page {
    json_t *data;    /* the items */
    int want, seen;
    int64_t last_id; /* of the last item kept: the next page starts below it */
    char prefix;     /* of this listing's cursors ("c123"); 0: by reference */
    /* Listings by reference (prefix 0), whose row numbers would tell how many
     * rows all workspaces have: the cursor given ("" : none), which the caller
     * resolves within its workspace, and the last item's reference (its id). */
    char cursor[LK_PAGE_REF_MAX];
    char last_ref[LK_PAGE_REF_MAX];
};

/* Reads `limit` (1..max, default def) and `cursor` (a next_cursor of this
 * listing, into *before; 0 without one; with prefix 0 into pg->cursor as it
 * is) and starts pg. On a bad value writes the 400 answer and returns false. */
bool lk_mreq_page(struct lk_mreq *m, int def, int max, char prefix, struct lk_page *pg /* OUT */,
                  int64_t *before /* OUT */);
/* Adds item (taken) with id; returns nonzero once the page is full (stop). */
int lk_page_add(struct lk_page *pg, json_t *item, int64_t id);
/* The same for a listing by reference: ref (an id) is the next cursor. */
int lk_page_add_ref(struct lk_page *pg, json_t *item, const char *ref);
/* Answers 200 with `fields` (taken; may be NULL) plus the items, under `name`
 * ("data" when NULL), and "next_cursor". */
void lk_page_answer(struct lk_mreq *m, struct lk_page *pg, json_t *fields, const char *name);
/* Answers a listing of one page only, which a service call with outcome e
 * filled into `data`: 200 {"data": [...]}, or the error for e. Takes data. */
void lk_mreq_list(struct lk_mreq *m, enum lk_err e, json_t *data);

/* Writes the answer: a JSON body (takes ownership of `body`), an error, or 204. */
void lk_mreq_json(struct lk_mreq *m, int status, json_t *body);
void lk_mreq_error(struct lk_mreq *m, enum lk_err e, const struct lk_errinfo *ei);
void lk_mreq_no_content(struct lk_mreq *m);
/* Writes a pre-rendered JSON answer (copied). */
void lk_mreq_raw(struct lk_mreq *m, int status, const char *body, size_t len);

#endif
