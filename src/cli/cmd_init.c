/*
 * cmd_init.c — `latchkey init` and `latchkey serve`: the two verbs that open the
 * database themselves rather than talk to a server.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/log.h"
#include "cli/cmd.h"
#include "core/config.h"
#include "http/accesslog.h"
#include "http/server.h"
#include "service/health.h"
#include "service/workspaces.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define DEFAULT_DB "sqlite:latchkey.db"
#define DEFAULT_LISTEN "127.0.0.1:8080"

/* Opens --root-key-file for the one write of the first root key: a new file
 * only readers with the service's user id can open, never an existing one (a
 * key written into a file someone else prepared could be read by them). */
static FILE *open_key_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    FILE *f;

    if (fd < 0) {
        lk_cli_fail("cannot create --root-key-file %s: %s%s", path, strerror(errno),
                    errno == EEXIST ? " (refusing to overwrite; nothing changed)" : "");
        return NULL;
    }
    if ((f = fdopen(fd, "w")) == NULL)
        close(fd);
    return f;
}

/* Creates the first workspace if there is none and prints its root key once,
 * to stdout or, with key_file, into that new file (0600) and nowhere else.
 * Returns 0 when created, 1 when the database already had one (message printed
 * only if `quiet_if_exists` is false), or 1 on failure. */
static int bootstrap(struct lk_app *app, bool json, bool quiet_if_exists, const char *key_file,
                     bool *created)
{
    struct lk_ws_row w;
    struct lk_ws_secrets sec;
    FILE *out = stdout;
    enum lk_err e;
    int rc = 0;

    *created = false;
    /* Only a start that will create a key wants the file: a restart of a
     * service whose file is already there must go on. */
    if (key_file != NULL && lk_app_operator_ws(app)[0] == '\0') {
        if ((out = open_key_file(key_file)) == NULL)
            return 1;
        json = true;
    }
    e = lk_workspaces_bootstrap(app, lk_clock_now_s(), &w, &sec);
    if (e == LK_ERR_CONFLICT) {
        if (!quiet_if_exists)
            rc = lk_cli_fail("this database already has a workspace (%s); nothing changed", w.id);
        goto out;
    }
    if (e != LK_OK) {
        rc = lk_cli_fail("cannot create the first workspace: %s", lk_err_message(e));
        goto out;
    }
    *created = true;
    if (json) {
        json_t *o = json_pack("{s:s, s:s}", "workspace_id", w.id, "root_key", sec.root_key);
        json_dumpf(o, out, JSON_COMPACT);
        fputc('\n', out);
        json_decref(o);
    } else {
        printf("created workspace %s\n"
               "root key (shown once; store it now, it cannot be shown again):\n  %s\n",
               w.id, sec.root_key);
    }
    if (fflush(out) != 0 || (out != stdout && fsync(fileno(out)) != 0))
        rc = lk_cli_fail("cannot write the root key: %s", strerror(errno));
    else if (out != stdout)
        printf("created workspace %s; its root key is in %s\n", w.id, key_file);
    OPENSSL_cleanse(&sec, sizeof(sec));
out:
    if (out != stdout) {
        fclose(out);
        if (!*created)
            unlink(key_file);
    }
    fflush(stdout);
    return rc;
}

/* The limits of the config file, defaults for what it does not set. */
static struct lk_limits_config limits_of(const struct lk_config *file)
{
    struct lk_limits_config l = {
        .live_rate = file->rate_limit,
        .test_rate = file->test_rate_limit,
        .failed_key = file->failed_key_limit,
        .login = file->login_rate_limit,
    };

    if (l.live_rate.limit < 0)
        l.live_rate = (struct lk_rate){0, 0};
    if (l.test_rate.limit < 0)
        l.test_rate = (struct lk_rate){0, 0};
    if (l.failed_key.limit < 0)
        l.failed_key = LK_FAILED_KEY_DEFAULT;
    if (l.login.limit < 0)
        l.login = LK_LOGIN_RATE_DEFAULT;
    return l;
}

static int open_app(const char *db, const char *pepper, const struct lk_config *file,
                    struct lk_route_rules *routes, const char *routes_file, bool serving,
                    const char *state_dir, struct lk_app **app)
{
    struct lk_app_config cfg = {.db_url = db, .pepper_file = pepper, .limits = limits_of(file),
                                .routes = routes, .routes_file = routes_file, .serving = serving,
                                .trusted_proxies = file->trusted_proxies,
                                .redis_url = file->redis,
                                .redis_fail_open_rate_limits =
                                    file->redis_fail_open_rate_limits == 1,
                                .state_dir = state_dir,
                                .feed_stale_after_ms = file->feed_stale_after_ms,
                                /* Only a server takes leak reports. */
                                .leaks_github_keys_file =
                                    serving ? file->leaks_github_keys_file : NULL,
                                .leaks_report_secret_file =
                                    serving ? file->leaks_report_secret_file : NULL,
                                .hooks = {.key_file = file->webhook_key_file[0]
                                                          ? file->webhook_key_file
                                                          : NULL,
                                          .private_targets = file->webhook_allow_private == 1,
                                          .retry_base_ms = file->webhook_retry_base_ms,
                                          .timeout_ms = file->webhook_timeout_ms,
                                          .max_attempts = (int)file->webhook_max_attempts}};
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    if (lk_app_open(&cfg, app, &ei) != LK_OK)
        return lk_cli_fail("%s", ei.detail[0] ? ei.detail : "cannot open the database");
    return 0;
}

static int run_init(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"pepper-file", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = DEFAULT_DB, *pepper = NULL;
    struct lk_config defaults;
    bool json = false, created;
    struct lk_app *app = NULL;
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'j': json = true; break;
        case 'p': pepper = optarg; break;
        case 'h': return lk_cli_help(self);
        default: return lk_cli_usage(self);
        }
    }
    if (optind != argc)
        return lk_cli_usage(self);
    lk_config_parse("", 0, &defaults, NULL);
    if ((rc = open_app(db, pepper, &defaults, NULL, NULL, false, NULL, &app)) != 0)
        return rc;
    rc = bootstrap(app, json, false, NULL, &created);
    lk_app_close(app);
    return rc;
}

static int parse_listen(const char *s, char *host, size_t hostsz, unsigned short *port)
{
    const char *colon = strrchr(s, ':');
    int64_t p;

    if (colon == NULL || colon == s || (size_t)(colon - s) >= hostsz ||
        lk_parse_i64(colon + 1, strlen(colon + 1), 1, 65535, &p) != 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, hostsz, "127.0.0.1");
    *port = (unsigned short)p;
    return 0;
}

/* Reads the file at path (at most max bytes; one more is read so the parser can
 * refuse a larger file). Caller frees *text. */
static int read_file(const char *path, const char *what, size_t max, char **text, size_t *n)
{
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return lk_cli_fail("cannot read %s %s", what, path);
    *text = lk_malloc(max + 1);
    *n = fread(*text, 1, max + 1, f);
    fclose(f);
    return 0;
}

/* Reads and parses the config file at path into *cfg. */
static int load_config(const char *path, struct lk_config *cfg)
{
    struct lk_errinfo ei;
    char *text = NULL;
    size_t n = 0;
    int rc;

    if ((rc = read_file(path, "config file", LK_CONFIG_MAX_BYTES, &text, &n)) != 0)
        return rc;
    lk_errinfo_clear(&ei);
    if (lk_config_parse(text, n, cfg, &ei) != LK_OK)
        rc = lk_cli_fail("%s: %s", path, ei.detail);
    free(text);
    return rc;
}

/* Reads and parses the forward-auth route rules at path into *routes: as a
 * reload (SIGHUP) does. */
static int load_routes(const char *path, struct lk_route_rules *routes)
{
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    if (lk_app_routes_load(path, routes, &ei) != LK_OK)
        return lk_cli_fail("%s: %s", path, ei.detail);
    return 0;
}

static int run_serve(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"pepper-file", required_argument, NULL, 'p'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"routes", required_argument, NULL, 'r'},
                                         {"trusted-proxies", required_argument, NULL, 'T'},
                                         {"tls-cert", required_argument, NULL, 'C'},
                                         {"tls-key", required_argument, NULL, 'K'},
                                         {"log-file", required_argument, NULL, 'L'},
                                         {"log-level", required_argument, NULL, 'v'},
                                         {"no-access-log", no_argument, NULL, 'A'},
                                         {"root-key-file", required_argument, NULL, 'R'},
                                         {"redis", required_argument, NULL, 'X'},
                                         {"state-dir", required_argument, NULL, 'S'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *listen = NULL, *pepper = NULL, *config = NULL, *routes_file = NULL;
    const char *trusted = NULL, *tls_cert = NULL, *tls_key = NULL;
    const char *log_file = NULL, *log_level = NULL, *key_file = NULL, *redis = NULL;
    const char *state_dir = NULL;
    bool no_access_log = false;
    enum lk_log_level level = LK_LOG_INFO;
    struct lk_route_rules routes = {0};
    struct lk_config file = {0};
    sigset_t sigs;
    struct lk_server_config sc = {0};
    struct lk_server *srv = NULL;
    struct lk_app *app = NULL;
    struct lk_errinfo ei;
    char host[64];
    int64_t threads = 0;
    bool created;
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'l': listen = optarg; break;
        case 'p': pepper = optarg; break;
        case 't':
            if (lk_parse_i64(optarg, strlen(optarg), 1, 64, &threads) != 0)
                return lk_cli_fail("--threads must be 1 to 64");
            break;
        case 'c': config = optarg; break;
        case 'r': routes_file = optarg; break;
        case 'T': trusted = optarg; break;
        case 'C': tls_cert = optarg; break;
        case 'K': tls_key = optarg; break;
        case 'L': log_file = optarg; break;
        case 'v': log_level = optarg; break;
        case 'A': no_access_log = true; break;
        case 'R': key_file = optarg; break;
        case 'X': redis = optarg; break;
        case 'S': state_dir = optarg; break;
        case 'V': return lk_cli_version();
        case 'h': return lk_cli_help(self);
        default: return lk_cli_usage(self);
        }
    }
    if (optind != argc)
        return lk_cli_usage(self);
    /* Flags win over the file, the file over the defaults. */
    lk_config_parse("", 0, &file, NULL); /* the defaults */
    if (config != NULL && (rc = load_config(config, &file)) != 0)
        return rc;
    if (db == NULL)
        db = file.db[0] ? file.db : DEFAULT_DB;
    if (listen == NULL)
        listen = file.listen[0] ? file.listen : DEFAULT_LISTEN;
    if (pepper == NULL && file.pepper_file[0])
        pepper = file.pepper_file;
    if (threads == 0)
        threads = file.threads;
    if (routes_file == NULL && file.routes[0])
        routes_file = file.routes;
    if (state_dir == NULL && file.state_dir[0])
        state_dir = file.state_dir;
    if (tls_cert == NULL && file.tls_cert[0])
        tls_cert = file.tls_cert;
    if (tls_key == NULL && file.tls_key[0])
        tls_key = file.tls_key;
    if (redis != NULL &&
        (size_t)snprintf(file.redis, sizeof(file.redis), "%s", redis) >= sizeof(file.redis))
        return lk_cli_fail("--redis: URL too long");
    if (trusted != NULL) { /* the flag's list replaces the file's */
        file.trusted_proxies.n = 0;
        lk_errinfo_clear(&ei);
        if (lk_netaddr_list_add(&file.trusted_proxies, trusted, strlen(trusted), &ei) != LK_OK)
            return lk_cli_fail("--trusted-proxies: %s", ei.detail);
    }
    if (log_level != NULL && lk_log_parse_level(log_level, strlen(log_level), &level) != 0)
        return lk_cli_fail("--log-level must be debug, info, warn, error or off");
    if (log_level == NULL && file.log_level >= 0)
        level = (enum lk_log_level)file.log_level;
    if (log_file == NULL && file.log_file[0])
        log_file = file.log_file;
    if (parse_listen(listen, host, sizeof(host), &sc.port) != 0)
        return lk_cli_fail("--listen wants HOST:PORT, e.g. 127.0.0.1:8080");
    if (routes_file != NULL && (rc = load_routes(routes_file, &routes)) != 0)
        return rc;
    sc.host = host;
    sc.threads = (int)threads;
    sc.tls_cert = tls_cert;
    sc.tls_key = tls_key;
    if (log_file != NULL && lk_log_open_file(log_file) != 0) {
        lk_route_rules_free(&routes);
        return lk_cli_fail("cannot open --log-file %s: %s", log_file, strerror(errno));
    }
    lk_log_set_level(level);
    lk_accesslog_set_enabled(!no_access_log && file.access_log != 0);
    lk_server_block_signals(&sigs);
    lk_log_start(); /* after the signal mask: its thread must not take SIGTERM */
    /* Bind before the database is opened: a start that cannot serve must not
     * create the first workspace and print a root key nobody will see again. */
    lk_errinfo_clear(&ei);
    if (lk_server_listen(&sc, &srv, &ei) != LK_OK) {
        lk_route_rules_free(&routes);
        lk_log_stop();
        return lk_cli_fail("%s", ei.detail[0] ? ei.detail : "cannot listen");
    }
    rc = open_app(db, pepper, &file, &routes, routes_file, true, state_dir, &app);
    lk_route_rules_free(&routes); /* emptied when the app took them */
    if (rc != 0)
        goto out;
    /* An empty database gets its first workspace, as `init` would. */
    if ((rc = bootstrap(app, false, true, key_file, &created)) != 0)
        goto out;
    lk_info("%lu key digests loaded", lk_health_keys_cached(app));
    lk_errinfo_clear(&ei);
    if (lk_server_run(srv, app, &ei) != LK_OK)
        rc = lk_cli_fail("%s", ei.detail[0] ? ei.detail : "cannot serve");
out:
    lk_server_free(srv);
    lk_app_close(app);
    lk_log_stop();
    return rc;
}

const struct lk_cmd lk_cmd_init = {
    "init", "init [--db URL] [--json] [--pepper-file FILE]",
    "create the database and its first workspace; print the root key once", run_init,
    "  --db URL               the database (default sqlite:latchkey.db)\n"
    "  --json                 print {\"workspace_id\", \"root_key\"} as one JSON line\n"
    "  --pepper-file FILE     secret pepper mixed into stored key digests\n"};

const struct lk_cmd lk_cmd_serve = {
    "serve",
    "serve [--listen HOST:PORT] [--db URL] [--config FILE] [--routes FILE] [--pepper-file FILE] "
    "[--threads N] [--trusted-proxies ADDR[/BITS],...] [--tls-cert FILE --tls-key FILE] "
    "[--log-file PATH] [--log-level debug|info|warn|error|off] [--no-access-log] "
    "[--root-key-file PATH] [--redis redis://[:PASSWORD@]HOST:PORT[/DB]] [--state-dir DIR]",
    "serve the HTTP API (default 127.0.0.1:8080, sqlite:latchkey.db); HTTPS and HTTP/2 with "
    "--tls-cert/--tls-key; SIGHUP reloads them and the routes file",
    run_serve,
    "  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080)\n"
    "  --db URL               the database (default sqlite:latchkey.db)\n"
    "  --config FILE          configuration file (settings as `name = value` lines)\n"
    "  --routes FILE          forward-auth route rules (docs/routes.md; reloaded on SIGHUP)\n"
    "  --pepper-file FILE     secret pepper mixed into stored key digests\n"
    "  --threads N            event loops (default one per core)\n"
    "  --trusted-proxies LIST proxies whose X-Forwarded-* / X-Real-IP are believed\n"
    "  --tls-cert FILE        serve HTTPS (and HTTP/2 by ALPN) with this PEM certificate chain\n"
    "  --tls-key FILE         the certificate's PEM private key (reloaded with it on SIGHUP)\n"
    "  --log-file PATH        write logs here instead of stderr\n"
    "  --log-level LEVEL      debug, info, warn, error or off (default info)\n"
    "  --no-access-log        no JSON line per request (for benchmarks)\n"
    "  --root-key-file PATH   on an empty database, write the first root key to this new\n"
    "                         0600 file instead of printing it\n"
    "  --redis URL            share rate limits, quotas and day spend with every node\n"
    "                         using this Redis (docs/operations.md; a password is\n"
    "                         better kept in the config file's `redis`)\n"
    "  --state-dir DIR        this node's id and counter file (default: beside an SQLite\n"
    "                         database, <db>.node and <db>.counters; one node per directory)\n"
    "  --version              print the version and exit\n"};
