#include "core/config.h"

#include "base/common.h"
#include "base/log.h"
#include "core/quote.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static enum lk_err fail(struct lk_errinfo *ei, long line, const char *field, const char *what)
{
    lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field, "config line %ld: %s", line, what);
    if (ei)
        ei->offset = line;
    return LK_ERR_INVALID_REQUEST;
}

/* Sets one setting; name and value are trimmed views. */
static enum lk_err set(struct lk_config *c, const char *name, size_t nlen, const char *value,
                       size_t vlen, long line, struct lk_errinfo *ei)
{
    static const struct {
        const char *name;
        size_t off;
    } strings[] = {
        {"listen", offsetof(struct lk_config, listen)},
        {"db", offsetof(struct lk_config, db)},
        {"pepper_file", offsetof(struct lk_config, pepper_file)},
        {"routes", offsetof(struct lk_config, routes)},
        {"tls_cert", offsetof(struct lk_config, tls_cert)},
        {"tls_key", offsetof(struct lk_config, tls_key)},
        {"log_file", offsetof(struct lk_config, log_file)},
        {"redis", offsetof(struct lk_config, redis)},
        {"state_dir", offsetof(struct lk_config, state_dir)},
        {"leaks_github_keys_file", offsetof(struct lk_config, leaks_github_keys_file)},
        {"leaks_report_secret_file", offsetof(struct lk_config, leaks_report_secret_file)},
        {"webhook_key_file", offsetof(struct lk_config, webhook_key_file)},
    };
    char field[32];

    lk_quote(field, sizeof(field), name, nlen);
    if (vlen == 0)
        return fail(ei, line, field, "missing value");
    if (vlen >= LK_CONFIG_MAX_VALUE)
        return fail(ei, line, field, "value too long");
    if (memchr(value, '\0', vlen) != NULL)
        return fail(ei, line, field, "NUL byte in value");
    for (size_t i = 0; i < LK_ARRAY_LEN(strings); i++) {
        if (strlen(strings[i].name) == nlen && memcmp(strings[i].name, name, nlen) == 0) {
            char *dst = (char *)c + strings[i].off;
            memcpy(dst, value, vlen);
            dst[vlen] = '\0';
            return LK_OK;
        }
    }
    if (nlen == 7 && memcmp(name, "threads", 7) == 0) {
        int64_t n;
        if (lk_parse_i64(value, vlen, 1, 64, &n) != 0)
            return fail(ei, line, field, "threads must be 1 to 64");
        c->threads = (int)n;
        return LK_OK;
    }
    if (nlen == 19 && memcmp(name, "feed_stale_after_ms", 19) == 0) {
        int64_t n;
        if (lk_parse_i64(value, vlen, 100, 3600000, &n) != 0)
            return fail(ei, line, field, "feed_stale_after_ms must be 100 to 3600000");
        c->feed_stale_after_ms = n;
        return LK_OK;
    }
    static const struct {
        const char *name;
        size_t off;
        int64_t min, max;
    } ints[] = {
        {"webhook_retry_base_ms", offsetof(struct lk_config, webhook_retry_base_ms), 10, 3600000},
        {"webhook_timeout_ms", offsetof(struct lk_config, webhook_timeout_ms), 100, 600000},
        {"webhook_max_attempts", offsetof(struct lk_config, webhook_max_attempts), 1, 50},
    };
    for (size_t i = 0; i < LK_ARRAY_LEN(ints); i++) {
        if (strlen(ints[i].name) == nlen && memcmp(ints[i].name, name, nlen) == 0) {
            char msg[96];
            if (lk_parse_i64(value, vlen, ints[i].min, ints[i].max,
                             (int64_t *)(void *)((char *)c + ints[i].off)) == 0)
                return LK_OK;
            snprintf(msg, sizeof(msg), "%s must be %lld to %lld", ints[i].name,
                     (long long)ints[i].min, (long long)ints[i].max);
            return fail(ei, line, field, msg);
        }
    }
    if (nlen == 21 && memcmp(name, "webhook_allow_private", 21) == 0) {
        if ((vlen == 2 && memcmp(value, "on", 2) == 0) || (vlen == 3 && memcmp(value, "off", 3) == 0)) {
            c->webhook_allow_private = vlen == 2;
            return LK_OK;
        }
        return fail(ei, line, field, "webhook_allow_private must be on or off");
    }
    if (nlen == 9 && memcmp(name, "log_level", 9) == 0) {
        enum lk_log_level lv;
        if (lk_log_parse_level(value, vlen, &lv) != 0)
            return fail(ei, line, field, "log_level must be debug, info, warn, error or off");
        c->log_level = (int)lv;
        return LK_OK;
    }
    if (nlen == 10 && memcmp(name, "access_log", 10) == 0) {
        if ((vlen == 2 && memcmp(value, "on", 2) == 0) || (vlen == 3 && memcmp(value, "off", 3) == 0)) {
            c->access_log = vlen == 2;
            return LK_OK;
        }
        return fail(ei, line, field, "access_log must be on or off");
    }
    if (nlen == 27 && memcmp(name, "redis_fail_open_rate_limits", 27) == 0) {
        if ((vlen == 2 && memcmp(value, "on", 2) == 0) || (vlen == 3 && memcmp(value, "off", 3) == 0)) {
            c->redis_fail_open_rate_limits = vlen == 2;
            return LK_OK;
        }
        return fail(ei, line, field, "redis_fail_open_rate_limits must be on or off");
    }
    if (nlen == 15 && memcmp(name, "trusted_proxies", 15) == 0) {
        struct lk_errinfo lei;
        lk_errinfo_clear(&lei);
        if (lk_netaddr_list_add(&c->trusted_proxies, value, vlen, &lei) != LK_OK)
            return fail(ei, line, field, lei.detail);
        return LK_OK;
    }
    static const struct {
        const char *name;
        size_t off;
    } rates[] = {
        {"rate_limit", offsetof(struct lk_config, rate_limit)},
        {"test_rate_limit", offsetof(struct lk_config, test_rate_limit)},
        {"failed_key_limit", offsetof(struct lk_config, failed_key_limit)},
        {"login_rate_limit", offsetof(struct lk_config, login_rate_limit)},
    };
    for (size_t i = 0; i < LK_ARRAY_LEN(rates); i++) {
        if (strlen(rates[i].name) == nlen && memcmp(rates[i].name, name, nlen) == 0) {
            if (lk_rate_parse(value, vlen, (struct lk_rate *)((char *)c + rates[i].off)) != 0)
                return fail(ei, line, field, "want N/SECONDS (e.g. 100/60) or none");
            return LK_OK;
        }
    }
    return fail(ei, line, field, "unknown setting");
}

int lk_rate_parse(const char *s, size_t len, struct lk_rate *out)
{
    const char *slash = memchr(s, '/', len);
    size_t n;

    if (len == 4 && memcmp(s, "none", 4) == 0) {
        out->limit = out->window_s = 0;
        return 0;
    }
    if (slash == NULL)
        return -1;
    n = (size_t)(slash - s);
    if (lk_parse_i64(s, n, 1, 1000000000, &out->limit) != 0 ||
        lk_parse_i64(slash + 1, len - n - 1, 1, 86400 * 31, &out->window_s) != 0)
        return -1;
    return 0;
}

enum lk_err lk_config_parse(const char *text, size_t len, struct lk_config *out,
                            struct lk_errinfo *ei)
{
    size_t pos = 0;
    long line = 0;
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    out->rate_limit = out->test_rate_limit = (struct lk_rate){-1, 0};
    out->failed_key_limit = out->login_rate_limit = (struct lk_rate){-1, 0};
    out->log_level = out->access_log = -1;
    if (len > LK_CONFIG_MAX_BYTES)
        return fail(ei, 0, "config", "file too large");
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, s = pos, eq;
        const char *hash;

        line++;
        if (end - pos > LK_CONFIG_MAX_LINE)
            return fail(ei, line, "config", "line too long");
        /* A '#' starts a comment anywhere on the line. */
        if ((hash = memchr(text + pos, '#', end - pos)) != NULL)
            end = (size_t)(hash - text);
        while (s < end && space(text[s]))
            s++;
        while (end > s && space(text[end - 1]))
            end--;
        if (s < end) {
            const char *eqp = memchr(text + s, '=', end - s);
            size_t ne, vs;
            if (eqp == NULL)
                return fail(ei, line, "config", "expected name = value");
            eq = (size_t)(eqp - text);
            ne = eq;
            while (ne > s && space(text[ne - 1]))
                ne--;
            vs = eq + 1;
            while (vs < end && space(text[vs]))
                vs++;
            if (ne == s)
                return fail(ei, line, "config", "missing name before '='");
            if ((e = set(out, text + s, ne - s, text + vs, end - vs, line, ei)) != LK_OK)
                return e;
        }
        pos = nl ? (size_t)(nl - text) + 1 : len;
    }
    return LK_OK;
}
