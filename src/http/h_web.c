/*
 * h_web.c — the dashboard: web/dist/{index.html,app.js,app.css}, built from web/
 * and built into the binary, answered on the event loop from static memory.
 * Every answer carries a strict Content-Security-Policy (no inline script or
 * style, nothing from another origin) and refuses framing.
 */
#include "base/common.h"
#include "http/accesslog.h"
#include "http/handlers.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* The three files, as the assembler includes them; paths are relative to the
 * directory the compiler runs in (the repository root, for make and fuzz.mk). */
#define LK_EMBED(sym, path)                                                                        \
    ".global " sym "\n.global " sym "_end\n.balign 16\n" sym ":\n.incbin \"" path "\"\n" sym      \
    "_end:\n.byte 0\n"
__asm__(".pushsection .rodata\n" LK_EMBED("lk_web_index_html", "web/dist/index.html")
            LK_EMBED("lk_web_app_js", "web/dist/app.js")
                LK_EMBED("lk_web_app_css", "web/dist/app.css") ".popsection\n");
extern const char lk_web_index_html[], lk_web_index_html_end[];
extern const char lk_web_app_js[], lk_web_app_js_end[];
extern const char lk_web_app_css[], lk_web_app_css_end[];

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
                          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static void add(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                          strlen(value));
}

static int send_file(struct lk_reqctx *rc, const char *type, const char *body, size_t len)
{
    h2o_req_t *req = rc->req;

    req->res.status = 200;
    req->res.reason = "OK";
    lk_accesslog_sent(req, LK_OK);
    add(req, "content-type", type);
    add(req, "content-security-policy", csp);
    add(req, "x-frame-options", "DENY");
    add(req, "x-content-type-options", "nosniff");
    add(req, "referrer-policy", "no-referrer");
    /* The page names no versioned files: never keep a stale one. */
    add(req, "cache-control", "no-store");
    add(req, "x-request-id", h2o_strdup(&req->pool, rc->request_id, SIZE_MAX).base);
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
    return 0;
}

int lk_h_web_index(struct lk_reqctx *rc)
{
    return send_file(rc, "text/html; charset=utf-8", lk_web_index_html,
                     (size_t)(lk_web_index_html_end - lk_web_index_html));
}

int lk_h_web_js(struct lk_reqctx *rc)
{
    return send_file(rc, "text/javascript; charset=utf-8", lk_web_app_js,
                     (size_t)(lk_web_app_js_end - lk_web_app_js));
}

int lk_h_web_css(struct lk_reqctx *rc)
{
    return send_file(rc, "text/css; charset=utf-8", lk_web_app_css,
                     (size_t)(lk_web_app_css_end - lk_web_app_css));
}

bool lk_web_fallback_path(const char *path, size_t len)
{
    static const char *const api[] = {"/v1", "/api", "/healthz", "/readyz", "/metrics",
                                      "/openapi.json"};

    if (len == 0 || path[0] != '/')
        return false;
    /* The page's own links are plain paths (its routes live in the hash): a dot
     * segment (`..`, `.git`), an escape or an odd byte is a probe, and gets 404. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= ' ' || c >= 0x7f || c == '%' || c == '\\' || (c == '.' && path[i - 1] == '/'))
            return false;
    }
    /* /v2/... and later versions of the API are the API's too. */
    if (len >= 3 && path[1] == 'v' && path[2] >= '0' && path[2] <= '9')
        return false;
    for (size_t i = 0; i < LK_ARRAY_LEN(api); i++) {
        size_t n = strlen(api[i]);
        if (len >= n && memcmp(path, api[i], n) == 0)
            return false;
    }
    return true;
}
