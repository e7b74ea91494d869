/*
 * config.h — the server's configuration file (`latchkey serve --config FILE`):
 * one `name = value` a line, `#` starts a comment, blank lines are ignored.
 *
 *   listen      = 127.0.0.1:8080
 *   db          = sqlite:/var/lib/latchkey/latchkey.db
 *   pepper_file = /etc/latchkey/pepper
 *   threads     = 2
 *   rate_limit  = 600/60     # default per-key limit: 600 checks per 60 s
 *   failed_key_limit = none
 *   trusted_proxies = 127.0.0.1, ::1, 10.0.0.0/8   # may be repeated: the lists add up
 *   tls_cert    = /etc/latchkey/cert.pem   # with tls_key: serve HTTPS (HTTP/2 by ALPN)
 *   tls_key     = /etc/latchkey/key.pem
 *   log_file    = /var/log/latchkey.log   # default: stderr
 *   log_level   = info                    # debug, info, warn, error or off
 *   access_log  = on                      # off: no line per request
 *   redis       = redis://:password@10.0.0.5:6379/0   # limits shared by every node
 *   redis_fail_open_rate_limits = off     # on: rate limits per node while Redis is down
 *   state_dir   = /var/lib/latchkey/node  # this node's id and counters (--state-dir)
 *   feed_stale_after_ms = 1000            # verification answers 503 past this
 *   leaks_github_keys_file = /etc/latchkey/github-keys.json  # GitHub secret scanning
 *   leaks_report_secret_file = /etc/latchkey/leak-report.secret  # signed leak reports
 *   webhook_key_file = /etc/latchkey/webhook-key  # signs webhooks (docs/webhooks.md)
 *   webhook_allow_private = off           # on: endpoints on loopback/private addresses
 *   webhook_retry_base_ms = 5000          # the first retry's delay; x4 each time
 *   webhook_timeout_ms = 10000            # one delivery attempt's bound
 *   webhook_max_attempts = 8
 *
 * Flags given on the command line win over the file. Pure: the caller reads the
 * file; this parses its text.
 */
#ifndef LK_CONFIG_H
#define LK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/netaddr.h"

#define LK_CONFIG_MAX_BYTES (64 * 1024) /* a config file larger than this is refused */
#define LK_CONFIG_MAX_LINE 1024
#define LK_CONFIG_MAX_VALUE 512

/* A limit of `limit` events per `window_s` seconds; limit 0 is "none", -1 "not set". */
struct lk_rate {
    int64_t limit, window_s;
};

struct lk_config {
    char listen[LK_CONFIG_MAX_VALUE];      /* "" when not set */
    char db[LK_CONFIG_MAX_VALUE];
    char pepper_file[LK_CONFIG_MAX_VALUE];
    char routes[LK_CONFIG_MAX_VALUE];      /* forward-auth route rules file */
    char tls_cert[LK_CONFIG_MAX_VALUE];    /* PEM certificate chain: serve HTTPS */
    char tls_key[LK_CONFIG_MAX_VALUE];     /* its PEM private key */
    int threads;                           /* 0 when not set */
    struct lk_rate rate_limit;       /* default for live keys without their own */
    struct lk_rate test_rate_limit;  /* default for test keys without their own */
    struct lk_rate failed_key_limit; /* unknown keys per client address */
    struct lk_rate login_rate_limit; /* login attempts per client address */
    /* Peers whose X-Forwarded-For / X-Real-IP / X-Forwarded-Proto are believed;
     * empty (the default): nobody's. */
    struct lk_netaddr_list trusted_proxies;
    char log_file[LK_CONFIG_MAX_VALUE]; /* "" : stderr */
    int log_level;                      /* enum lk_log_level, or -1 when not set */
    int access_log;                     /* 1 on, 0 off, -1 when not set */
    char redis[LK_CONFIG_MAX_VALUE];    /* redis://… ; "" : no shared counters */
    int redis_fail_open_rate_limits;    /* 1 on, 0 off (the default) */
    char state_dir[LK_CONFIG_MAX_VALUE]; /* "" : beside an SQLite file */
    int64_t feed_stale_after_ms;         /* 0 when not set */
    /* Leak reports (docs/leaks.md): GitHub's secret scanning public keys, in
     * GitHub's `public_keys` JSON; the generic report's HMAC secret. "" : none. */
    char leaks_github_keys_file[LK_CONFIG_MAX_VALUE];
    char leaks_report_secret_file[LK_CONFIG_MAX_VALUE];
    char webhook_key_file[LK_CONFIG_MAX_VALUE]; /* "" : beside an SQLite file */
    int webhook_allow_private;                  /* 1 on, 0 off (the default) */
    int64_t webhook_retry_base_ms;              /* 0 when not set */
    int64_t webhook_timeout_ms;                 /* 0 when not set */
    int64_t webhook_max_attempts;               /* 0 when not set */
};

/* Parses "N/W" (N ≥ 1 events per W ≥ 1 seconds) or "none". Returns 0, or -1. */
int lk_rate_parse(const char *s, size_t len, struct lk_rate *out /* OUT */);

/* Parses text[0..len) into *out (zeroed first). Returns LK_OK, or
 * LK_ERR_INVALID_REQUEST with ei->offset set to the line number (1-based),
 * ei->field to the setting and ei->detail saying what is wrong. */
enum lk_err lk_config_parse(const char *text, size_t len, struct lk_config *out /* OUT */,
                            struct lk_errinfo *ei);

#endif
