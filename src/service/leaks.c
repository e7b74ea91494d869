#include "service/leaks.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "base/common.h"
#include "base/log.h"
#include "core/quote.h"
#include "core/secret.h"
#include "core/sigverify.h"
#include "service/app_int.h"
#include "service/audit.h"
#include "service/hooks.h"
#include "service/keys.h"
#include "service/throttle.h"
#include "service/verify.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define PATH_MAX_LEN 4096

struct lk_leaks {
    /* Held for reading through one verification, for writing by a reload's swap. */
    pthread_rwlock_t mu;
    char github_file[PATH_MAX_LEN]; /* "" : GitHub reports are not accepted */
    char secret_file[PATH_MAX_LEN]; /* "" : generic reports are not accepted */
    struct lk_sigkeys *github;      /* NULL until loaded */
    uint8_t *secret;                /* wiped when replaced or freed */
    size_t secret_len;
    struct lk_throttle *failures; /* refused reports per client address */
};

/* Reads all of path, at most max bytes (a larger file is refused). Caller frees
 * *out (wiping it when it is a secret). */
static enum lk_err read_file(const char *what, const char *path, size_t max, char **out,
                             size_t *len, struct lk_errinfo *ei)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t n = 0;
    ssize_t r;

    *out = NULL;
    if (fd < 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, what, "cannot open %s: %s", path,
                              strerror(errno));
    buf = lk_malloc(max + 1);
    while (n <= max && (r = read(fd, buf + n, max + 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (n > max) {
        OPENSSL_cleanse(buf, max + 1);
        free(buf);
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, what, "%s: larger than %zu bytes", path,
                              max);
    }
    *out = buf;
    *len = n;
    return LK_OK;
}

static enum lk_err load_github(const char *path, struct lk_sigkeys **out, struct lk_errinfo *ei)
{
    struct lk_errinfo pe;
    char *text;
    size_t len;
    enum lk_err e;

    if ((e = read_file("leaks_github_keys_file", path, LK_SIGKEYS_MAX_BYTES, &text, &len, ei)) !=
        LK_OK)
        return e;
    lk_errinfo_clear(&pe);
    if ((e = lk_sigkeys_parse(text, len, out, &pe)) != LK_OK)
        lk_errinfo_set(ei, e, "leaks_github_keys_file", "%s: %s", path, pe.detail);
    free(text);
    return e;
}

static enum lk_err load_secret(const char *path, uint8_t **out, size_t *out_len,
                               struct lk_errinfo *ei)
{
    char *text;
    size_t len;
    enum lk_err e;

    if ((e = read_file("leaks_report_secret_file", path, LK_HMAC_SECRET_MAX + 2, &text, &len,
                       ei)) != LK_OK)
        return e;
    /* A trailing newline from `echo` or an editor is not part of the secret. */
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len < LK_HMAC_SECRET_MIN || len > LK_HMAC_SECRET_MAX) {
        OPENSSL_cleanse(text, len);
        free(text);
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "leaks_report_secret_file",
                              "%s: the secret must be %d to %d bytes", path, LK_HMAC_SECRET_MIN,
                              LK_HMAC_SECRET_MAX);
    }
    *out = (uint8_t *)text;
    *out_len = len;
    return LK_OK;
}

static void secret_free(uint8_t *s, size_t len)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, len);
        free(s);
    }
}

void lk_leaks_free(struct lk_leaks *l)
{
    if (l == NULL)
        return;
    lk_sigkeys_free(l->github);
    secret_free(l->secret, l->secret_len);
    lk_throttle_free(l->failures);
    pthread_rwlock_destroy(&l->mu);
    free(l);
}

static bool set_path(char *dst, const char *src)
{
    return (size_t)snprintf(dst, PATH_MAX_LEN, "%s", src ? src : "") < PATH_MAX_LEN;
}

enum lk_err lk_leaks_open(const char *github_keys_file, const char *report_secret_file,
                          struct lk_rate failed, struct lk_leaks **out, struct lk_errinfo *ei)
{
    struct lk_leaks *l = lk_calloc(1, sizeof(*l));
    enum lk_err e = LK_OK;

    pthread_rwlock_init(&l->mu, NULL);
    /* Its own table: checks' unknown keys and forged reports do not add up. */
    if (failed.limit > 0)
        l->failures = lk_throttle_new(failed.limit, failed.window_s);
    if (!set_path(l->github_file, github_keys_file) ||
        !set_path(l->secret_file, report_secret_file)) {
        e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "leaks", "file path too long");
        goto out;
    }
    if (l->github_file[0] != '\0' && (e = load_github(l->github_file, &l->github, ei)) != LK_OK)
        goto out;
    if (l->secret_file[0] != '\0' &&
        (e = load_secret(l->secret_file, &l->secret, &l->secret_len, ei)) != LK_OK)
        goto out;
    if (l->github != NULL)
        lk_info("leak reports from GitHub: %zu public keys from %s", lk_sigkeys_count(l->github),
                l->github_file);
out:
    if (e != LK_OK) {
        lk_leaks_free(l);
        l = NULL;
    }
    *out = l;
    return e;
}

void lk_leaks_reload(struct lk_app *app)
{
    struct lk_leaks *l = app->leaks;
    struct lk_errinfo ei;

    if (l == NULL)
        return;
    if (l->github_file[0] != '\0') {
        struct lk_sigkeys *fresh = NULL, *old;
        lk_errinfo_clear(&ei);
        if (load_github(l->github_file, &fresh, &ei) == LK_OK) {
            pthread_rwlock_wrlock(&l->mu);
            old = l->github;
            l->github = fresh;
            pthread_rwlock_unlock(&l->mu);
            lk_sigkeys_free(old);
            lk_info("SIGHUP: GitHub public keys reloaded from %s (%zu keys)", l->github_file,
                    lk_sigkeys_count(fresh));
        } else {
            lk_error("SIGHUP: GitHub public keys not reloaded, the old ones stay: %s", ei.detail);
        }
    }
    if (l->secret_file[0] != '\0') {
        uint8_t *fresh = NULL, *old;
        size_t len = 0, old_len;
        lk_errinfo_clear(&ei);
        if (load_secret(l->secret_file, &fresh, &len, &ei) == LK_OK) {
            pthread_rwlock_wrlock(&l->mu);
            old = l->secret;
            old_len = l->secret_len;
            l->secret = fresh;
            l->secret_len = len;
            pthread_rwlock_unlock(&l->mu);
            secret_free(old, old_len);
            lk_info("SIGHUP: leak report secret reloaded from %s", l->secret_file);
        } else {
            lk_error("SIGHUP: leak report secret not reloaded, the old one stays: %s", ei.detail);
        }
    }
}

/* One signature check of a report from address at now, GitHub's (a: the key
 * identifier, b: the signature) or the generic one's (a: the timestamp, b: the
 * signature). Refused at once while the address is blocked; a failure is
 * counted. A genuine scanner never fails one, so only forgeries are slowed,
 * and once an address is blocked they no longer cost a verification each. */
static enum lk_err check(struct lk_app *app, bool github, const char *a, const char *b,
                         const char *body, size_t body_len, const char *address, int64_t now,
                         int64_t *retry_after, struct lk_errinfo *ei)
{
    struct lk_leaks *l = app->leaks;
    enum lk_err e;

    *retry_after = 0;
    if (l != NULL && address != NULL && lk_throttle_blocked(l->failures, address, now, retry_after))
        return lk_errinfo_set(ei, LK_ERR_TOO_MANY_REQUESTS, "",
                              "too many reports with a wrong signature from this address");
    if (l == NULL || (github ? l->github_file : l->secret_file)[0] == '\0')
        return lk_errinfo_set(ei, LK_ERR_INVALID_SIGNATURE, "", "%s",
                              github ? "GitHub leak reports are not enabled on this server: it "
                                       "knows no public key (leaks_github_keys_file)"
                                     : "signed leak reports are not enabled on this server: it "
                                       "has no secret to check them with "
                                       "(leaks_report_secret_file)");
    pthread_rwlock_rdlock(&l->mu);
    e = github ? lk_sigkeys_verify(l->github, a, strlen(a), b, strlen(b), body, body_len, ei)
               : lk_sig_hmac_check(l->secret, l->secret_len, a, strlen(a), b, strlen(b), body,
                                   body_len, now, LK_LEAKS_REPORT_SKEW_S, ei);
    pthread_rwlock_unlock(&l->mu);
    if (e == LK_ERR_INVALID_SIGNATURE && address != NULL &&
        !lk_throttle_note(l->failures, address, now, retry_after))
        return lk_errinfo_set(ei, LK_ERR_TOO_MANY_REQUESTS, "",
                              "too many reports with a wrong signature from this address");
    return e;
}

enum lk_err lk_leaks_check_github(struct lk_app *app, const char *key_id, const char *sig_b64,
                                  const char *body, size_t body_len, const char *address,
                                  int64_t now, int64_t *retry_after, struct lk_errinfo *ei)
{
    return check(app, true, key_id, sig_b64, body, body_len, address, now, retry_after, ei);
}

enum lk_err lk_leaks_check_report(struct lk_app *app, const char *ts, const char *sig,
                                  const char *body, size_t body_len, const char *address,
                                  int64_t now, int64_t *retry_after, struct lk_errinfo *ei)
{
    return check(app, false, ts, sig, body, body_len, address, now, retry_after, ei);
}

/* --- handling a report ------------------------------------------------------------------ */

static const char *const scanner_names[] = {"github", "report"};
/* The actor of the revoke and of the event: no key or user, the scanner. */
static const char *const scanner_actors[] = {"scanner:github", "scanner:report"};

/* What the cache knows of the key a token names, copied out of the read lock. */
struct found {
    char id[LK_ID_MAX];
    char workspace_id[LK_ID_MAX];
    enum lk_key_kind kind;
    bool revoked;
};

/* LK_OK and f for a key of this server; LK_ERR_INVALID_KEY for a token that is
 * none; LK_ERR_STORAGE_UNAVAILABLE when this node cannot vouch for its cache
 * (feed_stale_after_ms): then it cannot tell, and must not answer "not ours". */
static enum lk_err find_key(struct lk_app *app, const struct lk_leak_item *it, int64_t now,
                            struct found *f)
{
    struct lk_verify_req req = {
        .secret = it->token, .len = it->token_len, .want_env = LK_VERIFY_ANY_ENV, .now = now};
    struct lk_limits_info info;
    const struct lk_ckey *k = NULL;
    enum lk_err e;

    lk_keycache_read_lock();
    /* No record, no address: a lookup, counting nothing against anyone. */
    e = lk_verify(app, &req, &k, &info);
    if (e != LK_ERR_STORAGE_UNAVAILABLE)
        e = k != NULL ? LK_OK : LK_ERR_INVALID_KEY;
    if (k != NULL) {
        snprintf(f->id, sizeof(f->id), "%s", k->id);
        snprintf(f->workspace_id, sizeof(f->workspace_id), "%s", lk_ckey_workspace_id(k));
        f->kind = (enum lk_key_kind)k->kind;
        /* A previous secret past its grace period is already refused: the key's
         * current secret is not the one that leaked. */
        f->revoked = k->revoked_at != 0 || (k->retired_at != 0 && now >= k->retired_at);
    }
    lk_keycache_read_unlock();
    return e;
}

/* The event's detail: the scanner, where the token was found, and the key's
 * hint, never the token. The URL is cut (at a whole character) until the text
 * fits an audit event. */
static void leak_detail(enum lk_leak_scanner scanner, const struct lk_leak_item *it,
                        char out[LK_AUDIT_DETAIL_MAX])
{
    struct lk_secret_view v;
    char hint[LK_HINT_MAX] = "";
    char url[LK_LEAK_URL_MAX + 4];
    size_t cut;

    if (lk_secret_parse(it->token, it->token_len, &v) == LK_OK)
        lk_secret_hint(&v, hint);
    snprintf(url, sizeof(url), "%s", it->url);
    cut = strlen(url);
    for (;;) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "scanner", scanner_names[scanner], "url",
                              url, "source", it->source, "type", it->type, "hint", hint);
        size_t n = o ? json_dumpb(o, out, LK_AUDIT_DETAIL_MAX - 1, JSON_COMPACT) : 0;
        json_decref(o);
        if (n > 0 && n < LK_AUDIT_DETAIL_MAX) {
            out[n] = '\0';
            return;
        }
        cut = lk_utf8_valid_prefix(url, cut / 2);
        memcpy(url + cut, "...", 4);
        if (cut == 0) {
            snprintf(out, LK_AUDIT_DETAIL_MAX, "{\"scanner\":\"%s\"}", scanner_names[scanner]);
            return;
        }
    }
}

/* Bytes the URL may take in the key.leaked webhook event, JSON-escaped: the
 * rest of the event is at most ~1.8 KiB (a 200-byte name and a hint escaped
 * six times over, ids, the envelope), so it always fits LK_HOOK_PAYLOAD_MAX
 * and the event is always sent. */
#define EVENT_URL_MAX 2048

static size_t escaped_len(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    size_t n = j ? json_dumpb(j, NULL, 0, JSON_ENCODE_ANY) : SIZE_MAX;

    json_decref(j);
    return n;
}

/* url (of room LK_LEAK_URL_MAX + 4) cut at a whole UTF-8 character, "..."
 * after it, until it takes at most max bytes JSON-escaped. */
static void cut_url(char *url, size_t max)
{
    size_t len = strlen(url), lo = 0, hi;

    if (escaped_len(url, len) <= max)
        return;
    /* The longest prefix that fits with its "...": escaping only grows with it. */
    hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2, cut = lk_utf8_valid_prefix(url, mid);
        char save[4];
        memcpy(save, url + cut, 4);
        memcpy(url + cut, "...", 4);
        bool fits = escaped_len(url, cut + 3) <= max;
        memcpy(url + cut, save, 4);
        if (fits)
            lo = mid;
        else
            hi = mid - 1;
    }
    lo = lk_utf8_valid_prefix(url, lo);
    memcpy(url + lo, "...", 4);
}

struct leaked_txn {
    const struct lk_actor *who;
    const char *workspace_id, *key_id, *detail;
    const char *url; /* where it was found, cut to fit the webhook event */
    int64_t now;
};

/* The one place a leak is recorded, once per key a report ended: the audit
 * event and the `key.leaked` webhook event, in one transaction. The revoke
 * itself went before, with its own `key.revoked` event. */
static enum lk_err leaked_event(struct lk_store *s, void *arg)
{
    struct leaked_txn *t = arg;
    struct lk_key_row row;
    enum lk_err e;

    if ((e = lk_audit_write_detail(s, t->who, "key.leaked", t->key_id, t->detail, t->now)) != LK_OK)
        return e;
    if ((e = lk_store_key_get(s, t->workspace_id, t->key_id, &row)) != LK_OK)
        return e == LK_ERR_NOT_FOUND ? LK_OK : e; /* deleted meanwhile */
    e = lk_hooks_key_leaked(s, &row, t->url[0] ? t->url : NULL, t->now);
    lk_key_row_release(&row);
    return e;
}

/* Ends the leaked secret of key f: revoked, or for an application key
 * (which cannot be revoked) regenerated with no grace, the new secret
 * dropped. Then the audit event. */
static enum lk_err end_key(struct lk_app *app, const struct lk_actor *who, const struct found *f,
                           enum lk_leak_scanner scanner, const struct lk_leak_item *it, int64_t now)
{
    struct lk_errinfo ei;
    char detail[LK_AUDIT_DETAIL_MAX];
    char url[LK_LEAK_URL_MAX + 4];
    enum lk_err e;

    lk_errinfo_clear(&ei);
    if (f->kind == LK_KIND_APPLICATION) {
        struct lk_key_row row;
        char secret[LK_SECRET_MAX];
        e = lk_keys_regenerate(app, who, f->id, 0, now, &row, secret, &ei);
        OPENSSL_cleanse(secret, sizeof(secret));
        if (e == LK_OK)
            lk_key_row_release(&row);
    } else {
        e = lk_keys_revoke(app, who, f->id, now, &ei);
    }
    if (e == LK_ERR_NOT_FOUND) /* deleted meanwhile: nothing is left to end */
        return LK_OK;
    if (e != LK_OK) {
        lk_error("leak report (%s): key %s could not be revoked: %s", scanner_names[scanner], f->id,
                 lk_err_code(e));
        return LK_ERR_STORAGE_UNAVAILABLE;
    }
    leak_detail(scanner, it, detail);
    snprintf(url, sizeof(url), "%s", it->url);
    cut_url(url, EVENT_URL_MAX);
    struct leaked_txn t = {who, f->workspace_id, f->id, detail, url, now};
    if ((e = lk_store_txn(app->store, LK_TXN_DEFAULT, leaked_event, &t)) != LK_OK)
        lk_error("leak report (%s): key %s revoked, its key.leaked event not written: %s",
                 scanner_names[scanner], f->id, lk_err_code(e));
    lk_warn("leak report (%s): key %s of workspace %s was found in public and is revoked",
            scanner_names[scanner], f->id, f->workspace_id);
    return LK_OK;
}

enum lk_err lk_leaks_handle(struct lk_app *app, enum lk_leak_scanner scanner,
                            const struct lk_leak_report *r, const char *address,
                            const char *request_id, int64_t now, struct lk_leak_outcome *out)
{
    enum lk_err result = LK_OK;

    for (size_t i = 0; i < r->n; i++) {
        const struct lk_leak_item *it = &r->items[i];
        uint8_t d[LK_DIGEST_LEN];
        struct found f;
        enum lk_err e;

        memset(&out[i], 0, sizeof(out[i]));
        lk_sha256(it->token, it->token_len, d);
        lk_digest_to_hex(d, out[i].token_hash);
        if ((e = find_key(app, it, now, &f)) == LK_ERR_STORAGE_UNAVAILABLE)
            result = e;
        if (e != LK_OK)
            continue;
        out[i].ours = true;
        if (f.revoked)
            continue;
        /* The scanner acts as an unrestricted root key of the key's workspace,
         * for this one revoke: a leaked root key is revoked like any other. */
        struct lk_actor who = {.kind = LK_KIND_ROOT, .perms = (1u << LK_MPERM__COUNT) - 1};
        snprintf(who.workspace_id, sizeof(who.workspace_id), "%s", f.workspace_id);
        snprintf(who.id, sizeof(who.id), "%s", scanner_actors[scanner]);
        snprintf(who.address, sizeof(who.address), "%s", address ? address : "");
        snprintf(who.request_id, sizeof(who.request_id), "%s", request_id ? request_id : "");
        if (end_key(app, &who, &f, scanner, it, now) != LK_OK)
            result = LK_ERR_STORAGE_UNAVAILABLE;
        else
            out[i].revoked = true;
    }
    return result;
}
