/*
 * fuzz_http.c — raw HTTP/1.1 request bytes through the whole request path, in
 * process and without sockets: h2o's request parser, latchkey's handler and
 * error filter exactly as the server configures them (lk_server_configure), the
 * route table, the decoders, the handlers — management calls on their worker
 * threads, answered back on the event loop — and error rendering.
 *
 * Every answer must have a documented status (src/core/err.def, 201, 204; a 500
 * is a bug too), a JSON body that is valid UTF-8, and for errors the error shape
 * {"error":{"status","code","message","hint_for_ai","request_id"}} with the code
 * and status err.def pairs and the request id of the X-Request-Id header; on
 * /v2/ (Unkey's API) Unkey's shapes instead, without a null anywhere.
 * Every answer carries X-Request-Id, a 401 WWW-Authenticate; response header
 * values must be free of CR, LF and NUL. A request must be answered within
 * HANG_MS. Any breach aborts, so libFuzzer keeps the input.
 *
 * The process opens one app on a scratch SQLite database with a workspace, its
 * keys, a second workspace and a signed-in owner. Their secrets are random, so
 * inputs name them by placeholder and the harness substitutes them first:
 *   @ROOT@ @RW@ @RO@   the first (operator) workspace's root, read-write and
 *                      read-only application keys; @WSID@ its id
 *   @KEY@ @KEYID@      a permanent live key of it and its id; @TKEY@ a test key
 *   @ROOT2@ @WS2@      the root key and id of a second workspace
 *   @SESSION@ @USERID@ an owner's session token and user id; the owner signs in
 *                      as owner@fuzz.test with password fuzz-password-1
 * After RECYCLE_AFTER created objects or RECYCLE_RUNS inputs the database is
 * replaced by a fresh one, so it stays small and the known keys usable however
 * long the fuzzer runs.
 *
 * What stays h2o's, where latchkey's code never runs, is skipped: request heads
 * picohttpparser refuses (h2o answers them with its plain-text 400 straight on
 * the socket) and `Upgrade: h2c` (h2o's HTTP/2 code takes the connection over).
 *
 * FUZZ_HTTP_TRACE=1 prints every request line and answer to stderr.
 */
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/err.h"
#include "core/quote.h"
#include "http/mgmt.h"
#include "http/server.h"
#include "service/app.h"
#include "service/auth.h"
#include "service/credits.h"
#include "service/keycache.h"
#include "service/keys.h"
#include "service/users.h"
#include "service/workspaces.h"

/* picohttpparser ships inside libh2o without its header; its API is stable. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#define MAX_INPUT_BYTES (128 * 1024) /* bytes of one input, after substitution */
#define MAX_PIPELINED 4              /* requests taken from one input, as keep-alive would */
#define HANG_MS 5000                 /* an answer later than this is a hang */
#define RECYCLE_AFTER 400            /* 201 answers before the database is replaced */
#define RECYCLE_RUNS 2000            /* inputs before it is replaced anyway */
#define OWNER_EMAIL "owner@fuzz.test"
#define OWNER_PASSWORD "fuzz-password-1"

/* --- the world: one app, its h2o configuration and one event loop ----------------- */

/* len: the length of what the placeholder stands for. tests/fuzz/http_seeds.py
 * writes each seed's Content-Length for the body after substitution from the same
 * table, so a change in secret or id formats must change both. */
struct placeholder {
    const char *name;
    size_t len;
    char value[LK_SECRET_MAX + LK_SESSION_TOKEN_MAX];
};

enum {
    P_ROOT,
    P_RW,
    P_RO,
    P_WSID,
    P_KEY,
    P_KEYID,
    P_TKEY,
    P_ROOT2,
    P_WS2,
    P_SESSION,
    P_USERID,
    P_COUNT
};

static struct {
    char dir[64];
    struct lk_app *app;
    struct lk_mgmt *mgmt;
    h2o_globalconf_t conf;
    h2o_context_t ctx;
    h2o_loop_t *loop;
    struct placeholder ph[P_COUNT];
    long created; /* 201 answers since the database was made */
    long runs;    /* inputs since then */
} W = {.ph = {{"@ROOT@", 57, ""},
              {"@RW@", 57, ""},
              {"@RO@", 57, ""},
              {"@WSID@", 19, ""},
              {"@KEY@", 57, ""},
              {"@KEYID@", 20, ""},
              {"@TKEY@", 57, ""},
              {"@ROOT2@", 57, ""},
              {"@WS2@", 19, ""},
              {"@SESSION@", 47, ""},
              {"@USERID@", 20, ""}}};

static bool trace; /* FUZZ_HTTP_TRACE=1: print every answer */

static void die(const char *what, enum lk_err e)
{
    fprintf(stderr, "fuzz_http setup: %s: %s\n", what, lk_err_code(e));
    abort();
}

static void set_ph(int i, const char *v)
{
    snprintf(W.ph[i].value, sizeof(W.ph[i].value), "%s", v);
    if (strlen(v) != W.ph[i].len) {
        fprintf(stderr,
                "fuzz_http setup: %s is %zu bytes, the seeds expect %zu: update the "
                "table here and in tests/fuzz/http_seeds.py, then the seeds\n",
                W.ph[i].name, strlen(v), W.ph[i].len);
        abort();
    }
}

static struct lk_key_row create_key(const struct lk_actor *who, const char *name, bool test,
                                    char *secret)
{
    struct lk_key_spec spec = {.set = LK_SPEC_NAME};
    struct lk_key_row row;
    struct lk_errinfo ei;
    enum lk_err e;

    snprintf(spec.name, sizeof(spec.name), "%s", name);
    if (test) {
        spec.set |= LK_SPEC_ENV;
        spec.env = LK_ENV_TEST;
    }
    lk_errinfo_clear(&ei);
    if ((e = lk_keys_create(W.app, who, &spec, lk_clock_now_s(), &row, secret, &ei)) != LK_OK)
        die("create key", e);
    return row;
}

/* The app on a new database, with the objects the placeholders name. */
static void world_open(void)
{
    struct lk_app_config cfg = {0};
    struct lk_errinfo ei;
    struct lk_ws_row w, w2;
    struct lk_ws_secrets sec, sec2;
    struct lk_ws_spec ws2 = {.name = "second", .quota = -1, .test_quota = -1};
    struct lk_actor root = {0};
    struct lk_member_row member;
    struct lk_invitation_row invitation;
    char invite_token[LK_INVITE_TOKEN_MAX];
    struct lk_ledger_row entry;
    struct lk_login login;
    struct lk_key_row k;
    char db[96], secret[LK_SECRET_MAX];
    int64_t now = lk_clock_now_s(), balance, retry;
    enum lk_err e;

    snprintf(W.dir, sizeof(W.dir), "/tmp/lk-fuzz-http-XXXXXX");
    if (mkdtemp(W.dir) == NULL) {
        perror("fuzz_http: mkdtemp");
        abort();
    }
    snprintf(db, sizeof(db), "sqlite:%s/fuzz.db", W.dir);
    cfg.db_url = db;
    cfg.serving = true;
    /* Every input comes from one address: a per-address limit on unknown keys
     * would soon lock the known ones out too. Logins keep theirs (argon2 is slow). */
    cfg.limits.failed_key = (struct lk_rate){0, 0};
    cfg.limits.login = LK_LOGIN_RATE_DEFAULT;
    lk_errinfo_clear(&ei);
    if ((e = lk_app_open(&cfg, &W.app, &ei)) != LK_OK) {
        fprintf(stderr, "fuzz_http setup: open %s: %s\n", db, ei.detail);
        abort();
    }
    if ((e = lk_workspaces_bootstrap(W.app, now, &w, &sec)) != LK_OK)
        die("bootstrap", e);
    set_ph(P_ROOT, sec.root_key);
    set_ph(P_RW, sec.read_write);
    set_ph(P_RO, sec.read_only);
    set_ph(P_WSID, w.id);
    lk_errinfo_clear(&ei);
    if ((e = lk_auth_actor(W.app, sec.root_key, strlen(sec.root_key), now, NULL, "127.0.0.1",
                           LK_MPERM_KEYS_WRITE, &root, &ei)) != LK_OK)
        die("root actor", e);
    k = create_key(&root, "fuzz-live", false, secret);
    set_ph(P_KEY, secret);
    set_ph(P_KEYID, k.id);
    lk_key_row_release(&k);
    k = create_key(&root, "fuzz-test", true, secret);
    set_ph(P_TKEY, secret);
    lk_key_row_release(&k);
    if ((e = lk_credits_top_up(W.app, &root, 1000000, "fuzz", now, &entry, &balance)) != LK_OK)
        die("top up", e);
    if ((e = lk_workspaces_create(W.app, &root, &ws2, now, &w2, &sec2)) != LK_OK)
        die("second workspace", e);
    set_ph(P_ROOT2, sec2.root_key);
    set_ph(P_WS2, w2.id);
    lk_errinfo_clear(&ei);
    if ((e = lk_members_invite(W.app, &root, OWNER_EMAIL, LK_ROLE_OWNER, now, &invitation,
                               invite_token, &ei)) != LK_OK)
        die("invite owner", e);
    if ((e = lk_invitations_accept(W.app, invite_token, OWNER_PASSWORD, "127.0.0.1", "req_setup",
                                   now, &member, &retry, &ei)) != LK_OK)
        die("owner", e);
    OPENSSL_cleanse(invite_token, sizeof(invite_token));
    set_ph(P_USERID, member.user_id);
    if ((e = lk_users_login(W.app, OWNER_EMAIL, OWNER_PASSWORD, "127.0.0.1", "req_setup", now,
                            &login, &retry)) != LK_OK)
        die("login", e);
    set_ph(P_SESSION, login.token);
    OPENSSL_cleanse(&sec, sizeof(sec));
    OPENSSL_cleanse(&sec2, sizeof(sec2));
    OPENSSL_cleanse(&login, sizeof(login));

    W.mgmt = lk_mgmt_new(W.app);
    lk_server_configure(&W.conf, W.app, W.mgmt);
    h2o_context_init(&W.ctx, W.loop, &W.conf);
    W.created = 0;
    W.runs = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void world_close(void)
{
    h2o_context_dispose(&W.ctx);
    h2o_config_dispose(&W.conf);
    lk_mgmt_free(W.mgmt);
    lk_app_close(W.app);
    lk_keycache_thread_offline(); /* lk_app_open put this thread online */
    W.app = NULL;
    nftw(W.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void at_exit(void)
{
    if (W.app != NULL)
        world_close();
}

/* h2o 2.2's evloop never frees a context's queue (h2o_multithread_destroy_queue
 * closes it only): one per database replaced. tests/lsan.supp says the same for
 * the server. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_multithread_create_queue\n";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lk_log_set_level(LK_LOG_ERROR); /* keep libFuzzer's output readable */
    trace = getenv("FUZZ_HTTP_TRACE") != NULL;
    W.loop = h2o_evloop_create();
    lk_mgmt_attach_loop(W.loop);
    world_open();
    atexit(at_exit);
    return 0;
}

/* --- one request, without a socket --------------------------------------------- */

/* The connection h2o's request refers to; the peer is a local client. */
struct fake_conn {
    h2o_conn_t super;
};

static socklen_t fake_addr(struct sockaddr *sa, uint16_t port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;

    memset(in, 0, sizeof(*in));
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(port);
    return sizeof(*in);
}

static socklen_t get_sockname(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    return fake_addr(sa, 8080);
}

static socklen_t get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    return fake_addr(sa, 40000);
}

static h2o_socket_t *get_socket(h2o_conn_t *conn)
{
    (void)conn;
    return NULL;
}

static const h2o_conn_callbacks_t fake_callbacks = {
    .get_sockname = get_sockname, .get_peername = get_peername, .get_socket = get_socket};

/* The end of the output chain, where h2o's connection would write: keeps the body. */
struct capture {
    h2o_ostream_t super;
    char *body;
    size_t len, cap;
    bool done;
};

static void capture_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                         h2o_send_state_t state)
{
    struct capture *c = (struct capture *)self;

    for (size_t i = 0; i < n; i++) {
        if (bufs[i].len == 0)
            continue;
        if (c->len + bufs[i].len > c->cap) {
            c->cap = (c->len + bufs[i].len) * 2;
            c->body = realloc(c->body, c->cap);
            if (c->body == NULL)
                abort();
        }
        memcpy(c->body + c->len, bufs[i].base, bufs[i].len);
        c->len += bufs[i].len;
    }
    if (h2o_send_state_is_in_progress(state))
        h2o_proceed_response(req); /* a socket would be writable again at once */
    else
        c->done = true;
}

/* --- what an answer must be --------------------------------------------------- */

static const struct documented {
    const char *code;
    int status;
} documented[] = {
#define LK_ERR(name, code, status, message, hint) {code, status},
#include "core/err.def"
#undef LK_ERR
};

static const h2o_req_t *cur_req;
static const char *cur_input;
static size_t cur_input_len;

static void fail(const struct capture *c, const char *fmt, const char *arg)
{
    fprintf(stderr, "\nfuzz_http: bad answer: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n  request: %.*s %.*s\n  status: %d\n  body: %.*s\n",
            (int)cur_req->input.method.len, cur_req->input.method.base,
            (int)(cur_req->input.path.len > 300 ? 300 : cur_req->input.path.len),
            cur_req->input.path.base, cur_req->res.status, (int)(c->len > 2000 ? 2000 : c->len),
            c->body ? c->body : "");
    fprintf(stderr, "  input (%zu bytes, placeholders substituted): %.*s\n", cur_input_len,
            (int)(cur_input_len > 2000 ? 2000 : cur_input_len), cur_input);
    abort();
}

static bool status_documented(int status)
{
    if (status == 201 || status == 204)
        return true;
    for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
        if (documented[i].status == status)
            return true;
    return false;
}

static const char *res_header(const h2o_req_t *req, const char *name)
{
    static char buf[128];
    ssize_t i = h2o_find_header_by_str(&req->res.headers, name, strlen(name), -1);

    if (i < 0)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)req->res.headers.entries[i].value.len,
             req->res.headers.entries[i].value.base);
    return buf;
}

static void check_error_shape(const struct capture *c, const h2o_req_t *req, json_t *doc)
{
    json_t *err = json_object_get(doc, "error");
    json_t *status = json_object_get(err, "status"), *code = json_object_get(err, "code");
    json_t *message = json_object_get(err, "message"), *hint = json_object_get(err, "hint_for_ai");
    json_t *rid = json_object_get(err, "request_id");
    const char *hdr_rid = res_header(req, "x-request-id");
    bool known = false;

    if (!json_is_object(err) || !json_is_integer(status) || !json_is_string(code) ||
        !json_is_string(message) || !json_is_string(hint) || !json_is_string(rid))
        fail(c, "%s", "an error without the error shape");
    if (json_integer_value(status) != req->res.status)
        fail(c, "%s", "error.status differs from the HTTP status");
    for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
        if (strcmp(documented[i].code, json_string_value(code)) == 0)
            known = documented[i].status == req->res.status;
    if (!known)
        fail(c, "error code %s is not err.def's for this status", json_string_value(code));
    if (json_string_length(message) == 0 ||
        json_string_length(message) >= sizeof(((struct lk_errinfo *)0)->detail) + 64)
        fail(c, "%s", "an empty or unbounded error message");
    if (hdr_rid == NULL || strcmp(hdr_rid, json_string_value(rid)) != 0)
        fail(c, "%s", "error.request_id differs from X-Request-Id");
}

/* Unkey's v2 API (h_unkey.h): no null anywhere in an answer. */
static bool has_null(json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;

    if (json_is_null(v))
        return true;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) if (has_null(x)) return true;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (has_null(x)) return true;
    }
    return false;
}

/* An answer of the v2 handlers: {"meta":{"requestId"}, "data"} or, for an
 * error, {"meta", "error":{"title","detail","status","type","errors"?}}. */
static void check_unkey_shape(const struct capture *c, const h2o_req_t *req, json_t *doc)
{
    json_t *rid = json_object_get(json_object_get(doc, "meta"), "requestId");
    json_t *err = json_object_get(doc, "error");
    const char *hdr_rid = res_header(req, "x-request-id");

    if (!json_is_string(rid) || hdr_rid == NULL || strcmp(hdr_rid, json_string_value(rid)) != 0)
        fail(c, "%s", "meta.requestId differs from X-Request-Id");
    if (has_null(doc))
        fail(c, "%s", "a v2 answer with a null");
    if (req->res.status < 400) {
        if (req->res.status != 200 || json_object_get(doc, "data") == NULL || err != NULL)
            fail(c, "%s", "a v2 success that is not 200 {meta, data}");
        return;
    }
    if (!json_is_string(json_object_get(err, "title")) ||
        json_string_length(json_object_get(err, "detail")) == 0 ||
        json_string_length(json_object_get(err, "detail")) >=
            sizeof(((struct lk_errinfo *)0)->detail) + 64 ||
        !json_is_string(json_object_get(err, "type")) ||
        json_integer_value(json_object_get(err, "status")) != req->res.status ||
        json_is_array(json_object_get(err, "errors")) != (req->res.status == 400))
        fail(c, "%s", "a v2 error without Unkey's shape");
}

static void check_answer(const struct capture *c, const h2o_req_t *req, bool head,
                         bool forward_auth)
{
    bool v2 = req->input.path.len > 4 && memcmp(req->input.path.base, "/v2/", 4) == 0;
    int status = req->res.status;
    const char *ctype;
    char ctype_buf[128];
    json_error_t jerr;
    json_t *doc;

    if (!status_documented(status) || status == 500)
        fail(c, "%s", "an undocumented status (or 500)");
    for (size_t i = 0; i < req->res.headers.size; i++) {
        h2o_iovec_t v = req->res.headers.entries[i].value;
        for (size_t j = 0; j < v.len; j++)
            if (v.base[j] == '\r' || v.base[j] == '\n' || v.base[j] == '\0')
                fail(c, "header %s carries CR, LF or NUL", req->res.headers.entries[i].name->base);
    }
    if (res_header(req, "x-request-id") == NULL)
        fail(c, "%s", "an answer without X-Request-Id");
    if (status == 401 && res_header(req, "www-authenticate") == NULL)
        fail(c, "%s", "a 401 without WWW-Authenticate");
    if (status == 204) {
        if (c->len != 0)
            fail(c, "%s", "204 with a body");
        return;
    }
    /* res_header() answers in one static buffer: keep the type apart */
    if ((ctype = res_header(req, "content-type")) != NULL) {
        snprintf(ctype_buf, sizeof(ctype_buf), "%s", ctype);
        ctype = ctype_buf;
    }
    /* The dashboard's page and assets (h_web.c): always under its CSP. */
    if (status == 200 && ctype != NULL &&
        (strncmp(ctype, "text/html", 9) == 0 || strncmp(ctype, "text/javascript", 15) == 0 ||
         strncmp(ctype, "text/css", 8) == 0) &&
        (res_header(req, "content-security-policy") == NULL ||
         res_header(req, "x-frame-options") == NULL))
        fail(c, "%s", "a dashboard answer without its CSP and X-Frame-Options");
    if (head)
        return; /* h2o sends no body to HEAD */
    if (req->res.content_length != SIZE_MAX && req->res.content_length != c->len)
        fail(c, "%s", "Content-Length differs from the body");
    if (status < 400 && c->len == 0 && forward_auth) /* a pass: an empty 200, for keep-alive */
        return;
    if (status < 400 && ctype != NULL && strncmp(ctype, "text/", 5) == 0) {
        /* /metrics and the dashboard's pages: text, so valid UTF-8 */
        if (!lk_utf8_valid(c->body ? c->body : "", c->len))
            fail(c, "%s", "a text body that is not valid UTF-8");
        return;
    }
    if (v2 && status == 429 && ctype != NULL && strcmp(ctype, "application/problem+json") == 0)
        ctype = "application/json"; /* Unkey's 429 */
    if (ctype == NULL || strcmp(ctype, "application/json") != 0)
        fail(c, "content type %s, not application/json", ctype ? ctype : "(none)");
    /* jansson refuses invalid UTF-8 (and NUL in strings) when it loads. */
    doc = json_loadb(c->body ? c->body : "", c->len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        fail(c, "body is not valid UTF-8 JSON: %s", jerr.text);
    if (v2 && json_object_get(doc, "meta") != NULL)
        check_unkey_shape(c, req, doc);
    else if (status >= 400)
        check_error_shape(c, req, doc);
    else if (!json_is_object(doc) && !json_is_array(doc))
        fail(c, "%s", "a 2xx body that is neither object nor array");
    json_decref(doc);
}

/* --- feeding h2o a parsed head, as its HTTP/1 connection does ----------------- */

static void add_headers(h2o_req_t *req, const struct phr_header *src, size_t n,
                        const struct phr_header **entity, h2o_iovec_t *expect, bool *upgrade)
{
    h2o_iovec_t connection = {NULL, 0}, upgrade_v = {NULL, 0};

    *entity = NULL;
    *expect = h2o_iovec_init(NULL, 0);
    h2o_vector_reserve(&req->pool, &req->headers, n);
    for (size_t i = 0; i < n; i++) {
        char *name = h2o_mem_alloc_pool(&req->pool, src[i].name_len + 1);
        h2o_iovec_t value = h2o_strdup(&req->pool, src[i].value, src[i].value_len);
        const h2o_token_t *tok;

        if (src[i].name == NULL)
            continue; /* a folded continuation line: h2o drops it too */
        memcpy(name, src[i].name, src[i].name_len);
        h2o_strtolower(name, src[i].name_len);
        tok = h2o_lookup_token(name, src[i].name_len);
        if (tok == H2O_TOKEN_HOST) {
            req->input.authority = value;
        } else if (tok == H2O_TOKEN_CONTENT_LENGTH) {
            if (*entity == NULL) /* the first one counts */
                *entity = &src[i];
        } else if (tok == H2O_TOKEN_TRANSFER_ENCODING) {
            *entity = &src[i]; /* wins over any Content-Length */
        } else if (tok == H2O_TOKEN_EXPECT) {
            *expect = value;
        } else if (tok == H2O_TOKEN_UPGRADE) {
            upgrade_v = value;
        } else if (tok != NULL) {
            h2o_add_header(&req->pool, &req->headers, tok, NULL, value.base, value.len);
            if (tok == H2O_TOKEN_CONNECTION)
                connection = value;
        } else {
            h2o_add_header_by_str(&req->pool, &req->headers, name, src[i].name_len, 0, NULL,
                                  value.base, value.len);
        }
    }
    req->http1_is_persistent = req->version >= 0x101;
    if (connection.base != NULL) {
        req->http1_is_persistent =
            h2o_contains_token(connection.base, connection.len, H2O_STRLIT("keep-alive"), ',');
        if (upgrade_v.base != NULL &&
            h2o_contains_token(connection.base, connection.len, H2O_STRLIT("upgrade"), ','))
            req->upgrade = upgrade_v;
    }
    *upgrade = req->upgrade.len >= 3 && h2o_lcstris(req->upgrade.base, 3, H2O_STRLIT("h2c"));
}

/* Reads the body the entity header announces from buf[0..len). Returns the bytes
 * used, 0 when the input ends first (a client that never finishes: no answer),
 * or -1 after sending h2o's own error (which latchkey's filter shapes). */
static ssize_t read_entity(h2o_req_t *req, const struct phr_header *entity, char *buf, size_t len)
{
    size_t max = req->conn->ctx->globalconf->max_request_entity_size;

    if (entity->name_len == sizeof("transfer-encoding") - 1) {
        struct phr_chunked_decoder dec = {.consume_trailer = 1};
        size_t n = len;
        ssize_t rest;

        if (!h2o_lcstris(entity->value, entity->value_len, H2O_STRLIT("chunked"))) {
            req->http1_is_persistent = 0;
            h2o_send_error_400(req, "Invalid Request", "unknown transfer-encoding",
                               H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
            return -1;
        }
        rest = phr_decode_chunked(&dec, buf, &n);
        if (rest != -1 && n >= max) {
            h2o_send_error_generic(req, 413, "Request Entity Too Large",
                                   "request entity is too large",
                                   H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
            return -1;
        }
        if (rest == -2)
            return 0;
        if (rest == -1) {
            h2o_send_error_400(req, "Invalid Request", "broken chunked-encoding",
                               H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
            return -1;
        }
        req->entity = h2o_strdup(&req->pool, buf, n);
        /* Decoding packed the body to the front; what follows it (the next
         * request) goes back to the end, where the caller looks for it. */
        memmove(buf + len - (size_t)rest, buf + n, (size_t)rest);
        return (ssize_t)(len - (size_t)rest);
    } else {
        size_t cl = h2o_strtosize(entity->value, entity->value_len);

        if (cl == SIZE_MAX) {
            h2o_send_error_400(req, "Invalid Request", "broken content-length header",
                               H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
            return -1;
        }
        if (cl > max) {
            h2o_send_error_generic(req, 413, "Request Entity Too Large",
                                   "request entity is too large",
                                   H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
            return -1;
        }
        if (cl > len)
            return 0;
        req->entity = h2o_strdup(&req->pool, buf, cl);
        return cl == 0 ? -2 : (ssize_t)cl; /* -2: an empty body, nothing used */
    }
}

/* Runs one request from buf[0..len); returns the bytes it used, or 0 to stop. */
static size_t run_one(char *buf, size_t len)
{
    struct fake_conn conn = {
        .super = {.ctx = &W.ctx, .hosts = W.conf.hosts, .callbacks = &fake_callbacks}};
    struct capture cap = {.super = {.do_send = capture_send}};
    struct phr_header headers[H2O_MAX_HEADERS];
    size_t nheaders = H2O_MAX_HEADERS, used;
    const struct phr_header *entity;
    const char *method, *path;
    size_t method_len, path_len;
    h2o_iovec_t expect;
    h2o_req_t req;
    bool upgrade, persistent;
    int minor, head_len;
    struct timespec t0, t1;

    head_len = phr_parse_request(buf, len < H2O_MAX_REQLEN ? len : H2O_MAX_REQLEN, &method,
                                 &method_len, &path, &path_len, &minor, headers, &nheaders, 0);
    if (head_len <= 0)
        return 0; /* h2o's plain 400, or a head that never ends */
    used = (size_t)head_len;
    h2o_init_request(&req, &conn.super, NULL);
    req.input.scheme = &H2O_URL_SCHEME_HTTP;
    req.version = 0x100 | (minor != 0);
    req.input.method = h2o_strdup(&req.pool, method, method_len);
    req.input.path = h2o_strdup(&req.pool, path, path_len);
    add_headers(&req, headers, nheaders, &entity, &expect, &upgrade);
    if (upgrade) {
        h2o_dispose_request(&req);
        return 0; /* h2o's HTTP/2 upgrade: needs a real socket */
    }
    req._ostr_top = &cap.super;
    cur_req = &req;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (entity != NULL && expect.base != NULL &&
        !h2o_lcstris(expect.base, expect.len, H2O_STRLIT("100-continue"))) {
        h2o_send_error_417(&req, "Expectation Failed", "unknown expectation",
                           H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    } else if (entity != NULL) {
        ssize_t n = read_entity(&req, entity, buf + used, len - used);
        if (n == 0) {
            h2o_dispose_request(&req);
            return 0;
        }
        if (n > 0)
            used += (size_t)n;
        if (n != -1)
            h2o_process_request(&req);
    } else {
        h2o_process_request(&req);
    }
    while (!cap.done) {
        h2o_evloop_run(W.loop, 10);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > HANG_MS)
            fail(&cap, "%s", "no answer within HANG_MS");
    }
    check_answer(&cap, &req, h2o_memis(method, method_len, H2O_STRLIT("HEAD")),
                 path_len >= 16 && memcmp(path, "/v1/forward-auth", 16) == 0);
    if (trace)
        fprintf(stderr, "fuzz_http: %.*s %.*s -> %d %.*s\n", (int)method_len, method, (int)path_len,
                path, req.res.status, (int)(cap.len > 300 ? 300 : cap.len),
                cap.body ? cap.body : "");
    if (req.res.status == 201)
        W.created++;
    persistent = req.http1_is_persistent;
    h2o_dispose_request(&req);
    free(cap.body);
    return persistent ? used : 0;
}

/* Copies in[0..n) with every placeholder replaced; caller frees. */
static char *substitute(const uint8_t *in, size_t n, size_t *outlen)
{
    size_t cap = n + 1, len = 0;
    char *out = malloc(cap);

    for (size_t i = 0; i < n;) {
        const char *v = NULL;
        size_t skip = 1, vlen = 1;
        if (in[i] == '@')
            for (int p = 0; p < P_COUNT; p++) {
                size_t pl = strlen(W.ph[p].name);
                if (n - i >= pl && memcmp(in + i, W.ph[p].name, pl) == 0) {
                    v = W.ph[p].value;
                    skip = pl;
                    vlen = strlen(v);
                    break;
                }
            }
        if (len + vlen + 1 > cap) {
            cap = (len + vlen + 1) * 2;
            out = realloc(out, cap);
        }
        if (out == NULL)
            abort();
        memcpy(out + len, v ? v : (const char *)in + i, vlen);
        len += vlen;
        i += skip;
    }
    out[len] = '\0';
    *outlen = len;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len, off = 0;
    char *buf;

    if (size > MAX_INPUT_BYTES)
        return 0;
    /* Inputs may disable, revoke or rate-limit the known keys, and create objects:
     * a fresh database now and then keeps both in bounds. */
    if (W.created >= RECYCLE_AFTER || ++W.runs >= RECYCLE_RUNS) {
        world_close();
        world_open();
    }
    buf = substitute(data, size, &len);
    cur_input = buf;
    cur_input_len = len;
    for (int i = 0; i < MAX_PIPELINED && off < len; i++) {
        size_t used = run_one(buf + off, len - off);
        if (used == 0)
            break;
        off += used;
    }
    free(buf);
    return 0;
}
