#include "http/mgmt.h"

#include <pthread.h>

#include <openssl/crypto.h>

#include "base/common.h"
#include "base/log.h"
#include "http/accesslog.h"
#include "http/keyread.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

struct job {
    h2o_multithread_message_t msg; /* must stay first: the receiver gets this */
    h2o_multithread_receiver_t *back;
    h2o_req_t *req;             /* NULL once h2o disposed the request (loop thread only) */
    struct sentinel *sentinel;  /* lives in the request's pool */
    lk_mgmt_fn fn;
    struct lk_mreq m;
    struct job *next;
};

/* Tied to the request's pool: when h2o disposes the request (client gone), the
 * job learns it and its answer is dropped. Both sides run on the loop thread. */
struct sentinel {
    struct job *job;
};

struct lk_mgmt {
    struct lk_app *app;
    pthread_t threads[LK_MGMT_WORKERS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct job *head, *tail;
    bool stopping;
};

static _Thread_local h2o_multithread_receiver_t *tl_back;

static void job_free(struct job *j)
{
    struct lk_mreq *m = &j->m;

    if (m->key) {
        OPENSSL_cleanse(m->key, m->key_len);
        free(m->key);
    }
    if (m->body) {
        OPENSSL_cleanse(m->body, m->body_len);
        free(m->body);
    }
    if (m->out) { /* may hold a new secret */
        OPENSSL_cleanse(m->out, m->out_len);
        free(m->out);
    }
    if (m->set_cookie) {
        OPENSSL_cleanse(m->set_cookie, strlen(m->set_cookie));
        free(m->set_cookie);
    }
    free(m->query);
    lk_app_routes_put(m->fwd_rules);
    free(j);
}

/* --- loop side -------------------------------------------------------------- */

static void on_req_gone(void *p)
{
    struct sentinel *s = p;
    if (s->job != NULL)
        s->job->req = NULL;
}

static void on_answers(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct job *j = (struct job *)messages->next;
        h2o_linklist_unlink(&j->msg.link);
        if (j->req != NULL) {
            h2o_req_t *req = j->req;
            char *body = h2o_mem_alloc_pool(&req->pool, j->m.out_len + 1);
            memcpy(body, j->m.out ? j->m.out : "", j->m.out_len);
            j->sentinel->job = NULL;
            if (j->m.set_cookie != NULL) {
                h2o_iovec_t v = h2o_strdup(&req->pool, j->m.set_cookie, SIZE_MAX);
                h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v.base,
                               v.len);
            }
            lk_respond_limit_headers(req, &j->m.limits, j->m.retry_after);
            if (j->m.fwd_key_id[0] != '\0')
                lk_respond_identity(req, j->m.fwd_key_id, j->m.fwd_workspace_id, j->m.fwd_env);
            if (j->m.fwd && j->m.err != LK_OK)
                h2o_add_header_by_str(&req->pool, &req->res.headers,
                                      H2O_STRLIT("x-latchkey-error-code"), 0, NULL,
                                      lk_err_code(j->m.err), strlen(lk_err_code(j->m.err)));
            if (j->m.check_err != LK_OK || j->m.check_key_id[0] != '\0')
                lk_accesslog_outcome(req, j->m.check_err,
                                     j->m.check_key_id[0] ? j->m.check_key_id : NULL);
            lk_respond_send_typed(req, j->m.status, j->m.request_id, j->m.err, j->m.content_type,
                                  body, j->m.out_len);
        }
        job_free(j);
    }
}

void lk_mgmt_attach_loop(h2o_loop_t *loop)
{
    h2o_multithread_queue_t *q = h2o_multithread_create_queue(loop);

    tl_back = lk_calloc(1, sizeof(*tl_back));
    h2o_multithread_register_receiver(q, tl_back, on_answers);
}

static void enqueue(struct lk_mgmt *mg, struct job *j)
{
    pthread_mutex_lock(&mg->mu);
    if (mg->tail)
        mg->tail->next = j;
    else
        mg->head = j;
    mg->tail = j;
    pthread_cond_signal(&mg->cond);
    pthread_mutex_unlock(&mg->mu);
}

/* The value of the lk_session cookie, or an empty view. */
static h2o_iovec_t session_cookie(h2o_req_t *req)
{
    static const char name[] = LK_SESSION_COOKIE "=";
    ssize_t i = -1;

    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p)), *stop = semi ? semi : end;
            while (p < stop && *p == ' ')
                p++;
            if ((size_t)(stop - p) > sizeof(name) - 1 && memcmp(p, name, sizeof(name) - 1) == 0)
                return h2o_iovec_init(p + sizeof(name) - 1, (size_t)(stop - p) - (sizeof(name) - 1));
            p = stop + 1;
        }
    }
    return h2o_iovec_init(NULL, 0);
}

/* Header `name` into out ("" when absent); one that does not fit sets *too_long. */
static void copy_header(h2o_req_t *req, const char *name, size_t nlen, char *out, size_t outsz,
                        bool *too_long)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, nlen, -1);

    out[0] = '\0';
    if (i == -1)
        return;
    if (req->headers.entries[i].value.len >= outsz) {
        *too_long = true;
        return;
    }
    memcpy(out, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    out[req->headers.entries[i].value.len] = '\0';
}

/* A signed report's headers (GitHub's, or the generic report's). */
static void signature_headers(h2o_req_t *req, struct lk_mreq *m)
{
    copy_header(req, H2O_STRLIT("github-public-key-identifier"), m->sig_key_id,
                sizeof(m->sig_key_id), &m->sig_too_long);
    copy_header(req, H2O_STRLIT("github-public-key-signature"), m->sig, sizeof(m->sig),
                &m->sig_too_long);
    if (m->sig[0] == '\0')
        copy_header(req, H2O_STRLIT("x-latchkey-signature"), m->sig, sizeof(m->sig),
                    &m->sig_too_long);
    copy_header(req, H2O_STRLIT("x-latchkey-timestamp"), m->sig_ts, sizeof(m->sig_ts),
                &m->sig_too_long);
}

/* Which workspace a session acts in: X-Latchkey-Workspace, else ?workspace_id=. */
static void workspace_hint(h2o_req_t *req, char *out, size_t outsz)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-latchkey-workspace"), -1);
    h2o_iovec_t v;

    out[0] = '\0';
    if (i != -1)
        v = req->headers.entries[i].value;
    else if (!lk_query_param(req, "workspace_id", &v))
        return;
    /* An over-long name is cut, not dropped: cut, it names no workspace (404);
     * dropped, the request would fall back to the caller's default one. */
    if (v.len >= outsz)
        v.len = outsz - 1;
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
}

/* A browser sends the session cookie with a cross-site form post too (a page on
 * a sibling subdomain is "same site" to SameSite=Strict), and such a post, or a
 * no-cors fetch, can only say text/plain, a form or multipart. So a change the
 * cookie alone signs must say it is JSON, which only a page of latchkey's own
 * origin (or one CORS lets in) can. A credential in a header is no browser's. */
static bool cross_site_form(h2o_req_t *req, unsigned need)
{
    static const char json[] = "application/json";
    h2o_iovec_t key, v;
    ssize_t i;

    if (need == LK_MPERM_NONE || !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return false;
    if (lk_keyread(req, &key) != LK_OK || key.base != NULL || session_cookie(req).base == NULL)
        return false;
    if ((i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1)) == -1)
        return true;
    v = req->headers.entries[i].value;
    return !(v.len >= sizeof(json) - 1 && h2o_lcstris(v.base, sizeof(json) - 1, H2O_STRLIT(json)) &&
             (v.len == sizeof(json) - 1 || v.base[sizeof(json) - 1] == ';' ||
              v.base[sizeof(json) - 1] == ' '));
}

/* A write the session cookie alone signs. */
static bool cookie_write(h2o_req_t *req, unsigned need)
{
    h2o_iovec_t key;

    if (need == LK_MPERM_NONE || !(h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) ||
                                   h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PATCH")) ||
                                   h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT")) ||
                                   h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))))
        return false;
    return lk_keyread(req, &key) == LK_OK && key.base == NULL && session_cookie(req).base != NULL;
}

/* The JSON rule above stops forms; a page of another origin that CORS lets in
 * (or a sibling subdomain) may still send JSON, and a browser then names its
 * origin. So a cookie-signed write whose Origin is not latchkey's own (the
 * scheme it was reached by, the Host it was asked for) is refused. A request
 * without Origin is no browser's cross-origin one. */
/* ASCII case-insensitive on both sides (h2o_lcstris lowers only one). */
static bool same_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h2o_tolower(a[i]) != h2o_tolower(b[i]))
            return false;
    return true;
}

static bool foreign_origin(h2o_req_t *req, bool secure)
{
    const char *scheme = secure ? "https://" : "http://";
    const char *dflt = secure ? ":443" : ":80";
    size_t sl = strlen(scheme), dl = strlen(dflt);
    h2o_iovec_t origin, host = req->authority;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);

    if (i == -1)
        return false;
    if (h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), i) != -1)
        return true; /* two answers to one question: trust neither */
    origin = req->headers.entries[i].value;
    /* Browsers leave the default port out of Origin; a Host may carry it. */
    if (host.len > dl && memcmp(host.base + host.len - dl, dflt, dl) == 0)
        host.len -= dl;
    if (host.len == 0 || origin.len != sl + host.len)
        return true;
    return !(same_nocase(origin.base, scheme, sl) &&
             same_nocase(origin.base + sl, host.base, host.len));
}

int lk_mgmt_submit(struct lk_mgmt *mg, struct lk_reqctx *rc, lk_mgmt_fn fn)
{
    return lk_mgmt_submit_as(mg, rc, fn, LK_MPERM_NONE);
}

int lk_mgmt_submit_as(struct lk_mgmt *mg, struct lk_reqctx *rc, lk_mgmt_fn fn, unsigned need)
{
    h2o_req_t *req = rc->req;
    struct job *j;
    struct lk_mreq *m;
    h2o_iovec_t key;

    if (cross_site_form(req, need)) {
        struct lk_errinfo ei;
        lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "",
                       "a POST signed in by the session cookie must send Content-Type: "
                       "application/json");
        return lk_respond_error(rc, LK_ERR_INVALID_REQUEST, &ei);
    }
    if (cookie_write(req, need) && foreign_origin(req, rc->secure)) {
        struct lk_errinfo ei;
        lk_errinfo_set(&ei, LK_ERR_INSUFFICIENT_PERMISSIONS, "",
                       "this origin is not allowed: a change signed in by the session cookie "
                       "must come from latchkey's own origin");
        return lk_respond_error(rc, LK_ERR_INSUFFICIENT_PERMISSIONS, &ei);
    }
    j = lk_calloc(1, sizeof(*j));
    m = &j->m;
    lk_assert(tl_back != NULL);
    j->back = tl_back;
    j->req = req;
    j->fn = fn;
    m->app = rc->app;
    m->now = rc->now;
    m->need = need;
    memcpy(m->request_id, rc->request_id, sizeof(m->request_id));
    memcpy(m->address, rc->address, sizeof(m->address));
    if (rc->fwd_key.base != NULL) {
        key = rc->fwd_key;
        m->key_err = LK_OK;
    } else {
        m->key_err = lk_keyread(req, &key);
    }
    m->fwd_rule = rc->fwd_rule;
    m->fwd = rc->fwd_key.base != NULL;
    m->fwd_rules = rc->fwd_rules; /* the hold passes to the job */
    rc->fwd_rules = NULL;
    if (m->key_err == LK_OK && key.base == NULL && rc->fwd_key.base == NULL)
        key = session_cookie(req); /* the dashboard's credential */
    if (m->key_err == LK_OK && key.base != NULL) {
        m->key = lk_strndup(key.base, key.len);
        m->key_len = key.len;
    }
    workspace_hint(req, m->workspace, sizeof(m->workspace));
    signature_headers(req, m);
    m->secure = rc->secure;
    if (req->entity.base != NULL) {
        m->body = lk_strndup(req->entity.base, req->entity.len);
        m->body_len = req->entity.len;
    }
    if (req->query_at != SIZE_MAX) {
        m->query_len = req->path.len - req->query_at - 1;
        m->query = lk_strndup(req->path.base + req->query_at + 1, m->query_len);
    } else {
        m->query = lk_strndup("", 0);
    }
    for (int i = 0; i < LK_ROUTE_MAX_PARAMS; i++) {
        if (rc->params[i].len >= LK_MGMT_PARAM_MAX)
            m->param_too_long = true;
        else if (rc->params[i].base)
            memcpy(m->params[i], rc->params[i].base, rc->params[i].len);
    }
    j->sentinel = h2o_mem_alloc_shared(&req->pool, sizeof(*j->sentinel), on_req_gone);
    j->sentinel->job = j;
    enqueue(mg, j);
    return 0;
}

/* --- worker side ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct lk_mgmt *mg = arg;

    lk_keycache_thread_online();
    pthread_mutex_lock(&mg->mu);
    for (;;) {
        struct job *j;
        while (mg->head == NULL && !mg->stopping)
            pthread_cond_wait(&mg->cond, &mg->mu);
        if ((j = mg->head) == NULL)
            break; /* stopping and drained */
        if ((mg->head = j->next) == NULL)
            mg->tail = NULL;
        pthread_mutex_unlock(&mg->mu);
        j->fn(&j->m);
        if (j->m.status == 0)
            lk_mreq_error(&j->m, LK_ERR_INTERNAL, NULL);
        h2o_multithread_send_message(j->back, &j->msg);
        pthread_mutex_lock(&mg->mu);
    }
    pthread_mutex_unlock(&mg->mu);
    lk_keycache_thread_offline();
    return NULL;
}

struct lk_mgmt *lk_mgmt_new(struct lk_app *app)
{
    struct lk_mgmt *mg = lk_calloc(1, sizeof(*mg));

    mg->app = app;
    pthread_mutex_init(&mg->mu, NULL);
    pthread_cond_init(&mg->cond, NULL);
    for (; mg->nthreads < LK_MGMT_WORKERS; mg->nthreads++) {
        lk_assert(pthread_create(&mg->threads[mg->nthreads], NULL, worker_main, mg) == 0);
        pthread_setname_np(mg->threads[mg->nthreads], "lk-worker");
    }
    return mg;
}

void lk_mgmt_free(struct lk_mgmt *mg)
{
    if (mg == NULL)
        return;
    pthread_mutex_lock(&mg->mu);
    mg->stopping = true;
    pthread_cond_broadcast(&mg->cond);
    pthread_mutex_unlock(&mg->mu);
    for (int i = 0; i < mg->nthreads; i++)
        pthread_join(mg->threads[i], NULL);
    pthread_mutex_destroy(&mg->mu);
    pthread_cond_destroy(&mg->cond);
    free(mg);
}

/* --- for handlers ----------------------------------------------------------- */

enum lk_err lk_mreq_actor(struct lk_mreq *m, struct lk_actor *who)
{
    enum lk_err e = m->key_err;
    struct lk_errinfo ei;

    memset(who, 0, sizeof(*who));
    lk_errinfo_clear(&ei);
    if (e == LK_OK)
        e = lk_auth_actor(m->app, m->key, m->key_len, m->now, m->workspace, m->address, m->need,
                          who, &ei);
    if (e != LK_OK) {
        /* A blocked address waits out at most the failed-key window. */
        if (e == LK_ERR_TOO_MANY_REQUESTS)
            m->retry_after = lk_app_limits(m->app)->failed_key.window_s;
        lk_mreq_error(m, e, &ei);
        return e;
    }
    snprintf(who->address, sizeof(who->address), "%s", m->address);
    snprintf(who->request_id, sizeof(who->request_id), "%s", m->request_id);
    return LK_OK;
}

int lk_mreq_query(const struct lk_mreq *m, const char *name, char *out, size_t outsz)
{
    size_t from = 0;
    return lk_query_find(m->query, m->query_len, name, &from, out, outsz);
}

bool lk_mreq_page(struct lk_mreq *m, int def, int max, char prefix, struct lk_page *pg,
                  int64_t *before)
{
    struct lk_errinfo ei;
    char v[48];
    int64_t n;
    int found;

    lk_errinfo_clear(&ei);
    *pg = (struct lk_page){.want = def, .prefix = prefix};
    *before = 0;
    if ((found = lk_mreq_query(m, "limit", v, sizeof(v))) != 0) {
        if (found < 0 || lk_parse_i64(v, strlen(v), 1, max, &n) != 0) {
            lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "limit",
                           "'limit' must be an integer from 1 to %d", max);
            lk_mreq_error(m, LK_ERR_INVALID_REQUEST, &ei);
            return false;
        }
        pg->want = (int)n;
    }
    if ((found = lk_mreq_query(m, "cursor", v, sizeof(v))) != 0 && (found < 0 || v[0])) {
        if (prefix == 0 && found > 0 && strlen(v) < sizeof(pg->cursor)) {
            memcpy(pg->cursor, v, strlen(v) + 1);
        } else if (prefix == 0 || found < 0 || v[0] != prefix ||
            lk_parse_i64(v + 1, strlen(v + 1), 1, INT64_MAX, before) != 0) {
            lk_errinfo_set(&ei, LK_ERR_INVALID_REQUEST, "cursor",
                           "'cursor' must be a next_cursor from an earlier page");
            lk_mreq_error(m, LK_ERR_INVALID_REQUEST, &ei);
            return false;
        }
    }
    pg->data = json_array();
    return true;
}

int lk_page_add(struct lk_page *pg, json_t *item, int64_t id)
{
    if (++pg->seen > pg->want) {
        json_decref(item);
        return 1;
    }
    json_array_append_new(pg->data, item);
    pg->last_id = id;
    return 0;
}

int lk_page_add_ref(struct lk_page *pg, json_t *item, const char *ref)
{
    if (lk_page_add(pg, item, 0) != 0)
        return 1;
    snprintf(pg->last_ref, sizeof(pg->last_ref), "%s", ref);
    return 0;
}

void lk_page_answer(struct lk_mreq *m, struct lk_page *pg, json_t *fields, const char *name)
{
    char cursor[32];

    if (pg->prefix == 0)
        snprintf(cursor, sizeof(cursor), "%s", pg->last_ref);
    else
        snprintf(cursor, sizeof(cursor), "%c%lld", pg->prefix, (long long)pg->last_id);
    if (fields == NULL)
        fields = json_object();
    json_object_set_new(fields, name ? name : "data", pg->data);
    json_object_set_new(fields, "next_cursor",
                        pg->seen > pg->want ? json_string(cursor) : json_null());
    pg->data = NULL;
    lk_mreq_json(m, 200, fields);
}

void lk_mreq_list(struct lk_mreq *m, enum lk_err e, json_t *data)
{
    if (e != LK_OK) {
        json_decref(data);
        lk_mreq_error(m, e, NULL);
        return;
    }
    lk_mreq_json(m, 200, json_pack("{s:o}", "data", data));
}

static void set_out(struct lk_mreq *m, int status, enum lk_err e, json_t *body)
{
    if (m->out) {
        OPENSSL_cleanse(m->out, m->out_len);
        free(m->out);
    }
    m->status = status;
    m->err = e;
    m->out = body ? json_dumps(body, JSON_COMPACT) : NULL;
    m->out_len = m->out ? strlen(m->out) : 0;
    json_decref(body);
    if (m->out == NULL && status != 204) { /* never an empty answer: a fixed error */
        m->err = e == LK_OK ? LK_ERR_INTERNAL : e;
        m->status = lk_err_status(m->err);
        m->out = lk_respond_error_text(m->err, NULL, m->request_id, &m->out_len);
    }
}

void lk_mreq_json(struct lk_mreq *m, int status, json_t *body)
{
    set_out(m, status, LK_OK, body);
}

void lk_mreq_error(struct lk_mreq *m, enum lk_err e, const struct lk_errinfo *ei)
{
    if (m->out) {
        OPENSSL_cleanse(m->out, m->out_len);
        free(m->out);
    }
    m->status = lk_err_status(e);
    m->err = e;
    m->out = lk_respond_error_text(e, ei, m->request_id, &m->out_len);
}

void lk_mreq_raw(struct lk_mreq *m, int status, const char *body, size_t len)
{
    char *copy = lk_malloc(len + 1);

    memcpy(copy, body, len);
    copy[len] = '\0';
    free(m->out);
    m->out = copy;
    m->out_len = len;
    m->status = status;
    m->err = LK_OK;
}

void lk_mreq_no_content(struct lk_mreq *m)
{
    set_out(m, 204, LK_OK, NULL);
}
