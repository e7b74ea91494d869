/*
 * cmd_keys.c — `latchkey keys create|list|get|update|disable|enable|revoke|
 * regenerate|generate-temp|docs`, over HTTP, so that a revocation from the
 * command line is a revocation on the server.
 */
#include <getopt.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/common.h"
#include "cli/cmd.h"
#include "core/secret.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum { O_NAME = LK_OPT_VERB, O_ENV, O_KIND, O_PERM, O_EXPIRES_IN,
       O_EXPIRES_AT, O_META, O_RATE, O_CAP, O_STATUS, O_LIMIT, O_CURSOR, O_GRACE, O_WS,
       O_FOLDER, O_SHA256, O_NOPERM };

/* Options every subcommand shares; the others are refused where they mean nothing. */
static const struct option opts[] = {
    LK_CLI_CONN_OPTIONS,
    {"name", required_argument, NULL, O_NAME},
    {"env", required_argument, NULL, O_ENV},
    {"environment", required_argument, NULL, O_ENV},
    {"kind", required_argument, NULL, O_KIND},
    {"permission", required_argument, NULL, O_PERM},
    {"expires-in", required_argument, NULL, O_EXPIRES_IN},
    {"expires-at", required_argument, NULL, O_EXPIRES_AT},
    {"meta", required_argument, NULL, O_META},
    {"rate-limit", required_argument, NULL, O_RATE},
    {"daily-spend-cap", required_argument, NULL, O_CAP},
    {"status", required_argument, NULL, O_STATUS},
    {"limit", required_argument, NULL, O_LIMIT},
    {"cursor", required_argument, NULL, O_CURSOR},
    {"grace", required_argument, NULL, O_GRACE},
    {"workspace", required_argument, NULL, O_WS},
    {"storage-folder", required_argument, NULL, O_FOLDER},
    {"sha256", required_argument, NULL, O_SHA256},
    {"no-permissions", no_argument, NULL, O_NOPERM},
    {NULL, 0, NULL, 0},
};

struct args {
    struct lk_cli_conn conn;
    json_t *body;  /* create: the request */
    char query[512];
    const char *id;
    int64_t grace;
    const char *bad; /* an option given where it does not apply */
    bool no_perm, some_perm;
};

static int int_arg(const char *flag, const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (lk_parse_i64(v, strlen(v), min, max, out) != 0)
        return lk_cli_fail("%s wants an integer from %lld to %lld", flag, (long long)min,
                           (long long)max);
    return 0;
}

static void add_query(struct args *a, const char *k, const char *v)
{
    size_t n = strlen(a->query);
    snprintf(a->query + n, sizeof(a->query) - n, "%c%s=%s", n ? '&' : '?', k, v);
}

/* Parses argv into a; `sub` is the subcommand. Returns 0, or the exit status. */
static int parse(const char *sub, int argc, char **argv, struct args *a)
{
    bool temp = strcmp(sub, "generate-temp") == 0;
    bool create = strcmp(sub, "create") == 0 || temp, list = strcmp(sub, "list") == 0;
    bool update = strcmp(sub, "update") == 0;
    int64_t n;
    int c, li = 0;

    lk_cli_conn_defaults(&a->conn);
    a->body = json_object();
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        if (c == '?')
            return 2;
        if (lk_cli_conn_option(&a->conn, c, optarg))
            continue;
        /* update changes only what PATCH takes; regenerate takes only --grace */
        if ((c != O_GRACE && !create && !list && !update) ||
            (update && c != O_NAME && c != O_PERM && c != O_NOPERM && c != O_RATE &&
             c != O_CAP && c != O_EXPIRES_AT && c != O_META) ||
            (c == O_NOPERM && !create && !update)) {
            a->bad = opts[li].name;
            continue;
        }
        switch (c) {
        case O_NAME: json_object_set_new(a->body, "name", json_string(optarg)); break;
        case O_ENV:
            if (list)
                add_query(a, "environment", optarg);
            else
                json_object_set_new(a->body, "environment", json_string(optarg));
            break;
        case O_KIND: json_object_set_new(a->body, "kind", json_string(optarg)); break;
        case O_PERM: {
            json_t *p = json_object_get(a->body, "permissions");
            if (p == NULL)
                json_object_set_new(a->body, "permissions", p = json_array());
            json_array_append_new(p, json_string(optarg));
            a->some_perm = true;
            break;
        }
        case O_NOPERM: json_object_set_new(a->body, "permissions", json_array()); a->no_perm = true; break;
        case O_EXPIRES_IN:
            if (int_arg("--expires-in", optarg, 1, INT64_MAX, &n))
                return 1;
            json_object_set_new(a->body, "expires_in", json_integer(n));
            break;
        case O_EXPIRES_AT:
            json_object_set_new(a->body, "expires_at",
                                strcmp(optarg, "never") == 0 ? json_null() : json_string(optarg));
            break;
        case O_META: {
            json_t *m = json_loads(optarg, 0, NULL);
            if (m == NULL)
                return lk_cli_fail("--meta wants a JSON object");
            json_object_set_new(a->body, "meta", m);
            break;
        }
        case O_RATE: {
            /* LIMIT/WINDOW_S, e.g. 100/60; `none` removes the key's own limit */
            int64_t limit, window;
            const char *slash = strchr(optarg, '/');
            if (strcmp(optarg, "none") == 0) {
                json_object_set_new(a->body, "rate_limit", json_null());
                break;
            }
            if (slash == NULL ||
                lk_parse_i64(optarg, (size_t)(slash - optarg), 1, INT64_MAX, &limit) ||
                lk_parse_i64(slash + 1, strlen(slash + 1), 1, INT64_MAX, &window))
                return lk_cli_fail("--rate-limit wants LIMIT/WINDOW_SECONDS, e.g. 100/60");
            json_object_set_new(a->body, "rate_limit",
                                json_pack("{s:I, s:I}", "limit", (json_int_t)limit, "window_s",
                                          (json_int_t)window));
            break;
        }
        case O_CAP:
            if (strcmp(optarg, "none") == 0) {
                json_object_set_new(a->body, "daily_spend_cap", json_null());
                break;
            }
            if (int_arg("--daily-spend-cap", optarg, 0, INT64_MAX, &n))
                return 1;
            json_object_set_new(a->body, "daily_spend_cap", json_integer(n));
            break;
        case O_STATUS: add_query(a, "status", optarg); break;
        case O_LIMIT: add_query(a, "limit", optarg); break;
        case O_CURSOR: add_query(a, "cursor", optarg); break;
        case O_GRACE:
            if (int_arg("--grace", optarg, 0, INT64_MAX, &a->grace))
                return 1;
            break;
        case O_WS: json_object_set_new(a->body, "workspace_id", json_string(optarg)); break;
        case O_FOLDER:
            if (int_arg("--storage-folder", optarg, 1, INT64_MAX, &n))
                return 1;
            json_object_set_new(a->body, "storage_folder_id", json_integer(n));
            break;
        case O_SHA256: json_object_set_new(a->body, "sha256", json_string(optarg)); break;
        }
    }
    if (a->bad)
        return lk_cli_fail("option --%s does not apply to 'keys %s' (see latchkey keys --help)",
                           a->bad, sub);
    if (a->no_perm && a->some_perm)
        return lk_cli_fail("--no-permissions and --permission contradict each other");
    if (optind < argc)
        a->id = argv[optind++];
    if (optind < argc)
        return lk_cli_fail("unexpected argument '%s'", argv[optind]);
    return 0;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_key(json_t *k)
{
    static const char *const fields[] = {"id", "name", "workspace_id", "environment", "kind",
                                         "status", "hint", "expires_at", "revoked_at",
                                         "created_at", "last_used_at"};
    char *perms = json_dumps(json_object_get(k, "permissions"), JSON_COMPACT);

    for (size_t i = 0; i < LK_ARRAY_LEN(fields); i++)
        printf("%-14s %s\n", fields[i], str(k, fields[i]));
    printf("%-14s %s\n", "permissions", perms ? perms : "-");
    free(perms);
}

static int with_key_result(const struct args *a, json_t *res, bool show_secret)
{
    if (a->conn.json) {
        lk_cli_print_json(res);
    } else {
        print_key(res);
        if (show_secret)
            printf("\nsecret (shown once; store it now, it cannot be shown again):\n  %s\n",
                   str(res, "secret"));
    }
    json_decref(res);
    return 0;
}

static int keys_create(struct args *a)
{
    json_t *res;

    if (json_object_get(a->body, "name") == NULL)
        return lk_cli_fail("keys create needs --name");
    if (lk_cli_call(&a->conn, "POST", "/v1/keys", a->body, &res))
        return 1;
    return with_key_result(a, res, true);
}

static int keys_list(struct args *a)
{
    char path[600];
    json_t *res, *k;
    size_t i;

    snprintf(path, sizeof(path), "/v1/keys%s", a->query);
    if (lk_cli_call(&a->conn, "GET", path, NULL, &res))
        return 1;
    if (a->conn.json) {
        lk_cli_print_json(res);
    } else {
        printf("%-22s %-20s %-5s %-11s %-9s %-22s %s\n", "ID", "NAME", "ENV", "KIND", "STATUS",
               "HINT", "LAST USED");
        json_array_foreach(json_object_get(res, "data"), i, k)
            printf("%-22s %-20.20s %-5s %-11s %-9s %-22s %s\n", str(k, "id"), str(k, "name"),
                   str(k, "environment"), str(k, "kind"), str(k, "status"), str(k, "hint"),
                   str(k, "last_used_at"));
        if (json_is_string(json_object_get(res, "next_cursor")))
            printf("(more: --cursor %s)\n", str(res, "next_cursor"));
    }
    json_decref(res);
    return 0;
}

/* The id must be a plain key id: it goes into a URL path. */
static int check_id(const struct args *a, const char *sub)
{
    if (a->id == NULL)
        return lk_cli_fail("keys %s needs a key id", sub);
    if (!lk_cli_is_id(a->id))
        return lk_cli_fail("not a key id: %s", a->id);
    return 0;
}

static int keys_get(struct args *a)
{
    char path[128];
    json_t *res;

    if (check_id(a, "get"))
        return 1;
    snprintf(path, sizeof(path), "/v1/keys/%s", a->id);
    if (lk_cli_call(&a->conn, "GET", path, NULL, &res))
        return 1;
    return with_key_result(a, res, false);
}

static int keys_revoke(struct args *a)
{
    char path[128];
    json_t *res;

    if (check_id(a, "revoke"))
        return 1;
    snprintf(path, sizeof(path), "/v1/keys/%s", a->id);
    if (lk_cli_call(&a->conn, "DELETE", path, NULL, &res))
        return 1;
    json_decref(res);
    if (a->conn.json)
        printf("{\"id\": \"%s\", \"revoked\": true}\n", a->id);
    else
        printf("revoked %s\n", a->id);
    return 0;
}

static int keys_regenerate(struct args *a)
{
    char path[160];
    json_t *res, *body = json_pack("{s:I}", "grace_period_s", (json_int_t)a->grace);
    int rc;

    if (check_id(a, "regenerate")) {
        json_decref(body);
        return 1;
    }
    snprintf(path, sizeof(path), "/v1/keys/%s/regenerate", a->id);
    rc = lk_cli_call(&a->conn, "POST", path, body, &res);
    json_decref(body);
    if (rc)
        return 1;
    return with_key_result(a, res, true);
}

/* PATCH /v1/keys/ID with body; prints the key. */
static int patch_key(struct args *a, const char *sub, json_t *body)
{
    char path[128];
    json_t *res;

    if (check_id(a, sub))
        return 1;
    snprintf(path, sizeof(path), "/v1/keys/%s", a->id);
    if (lk_cli_call(&a->conn, "PATCH", path, body, &res))
        return 1;
    return with_key_result(a, res, false);
}

static int keys_update(struct args *a)
{
    if (json_object_size(a->body) == 0)
        return lk_cli_fail("keys update needs something to change: --name, --permission, "
                           "--no-permissions, --rate-limit, --daily-spend-cap, --expires-at "
                           "or --meta");
    return patch_key(a, "update", a->body);
}

static int set_enabled(struct args *a, const char *sub, bool on)
{
    json_t *body = json_pack("{s:b}", "enabled", on);
    int rc = patch_key(a, sub, body);

    json_decref(body);
    return rc;
}

static int keys_disable(struct args *a) { return set_enabled(a, "disable", false); }
static int keys_enable(struct args *a) { return set_enabled(a, "enable", true); }

/* The OpenAPI document of what the key may call; JSON whatever --json says. */
static int keys_docs(struct args *a)
{
    char path[160];
    json_t *res;

    if (check_id(a, "docs"))
        return 1;
    snprintf(path, sizeof(path), "/v1/keys/%s/openapi", a->id);
    if (lk_cli_call(&a->conn, "GET", path, NULL, &res))
        return 1;
    lk_cli_print_json(res);
    json_decref(res);
    return 0;
}

static int keys_generate_temp(struct args *a)
{
    json_t *res;

    if (lk_cli_call(&a->conn, "POST", "/v1/keys/generate-temp", a->body, &res))
        return 1;
    if (a->conn.json)
        lk_cli_print_json(res);
    else
        printf("temporary key %s in %s, valid until %s\n"
               "key (shown once; hand it to the agent now):\n  %s\n",
               str(res, "id"), str(res, "workspace_id"), str(res, "expires_at"), str(res, "key"));
    json_decref(res);
    return 0;
}

#define CHECK_INPUT_MAX 4096 /* bytes read from stdin: far more than any secret */

/* `keys check-format SECRET|-`: offline, no server. The secret is read from
 * stdin with `-`, so it need not sit in the shell's history or in `ps`; it is
 * never printed. Exit 0 for a well-formed, checksum-valid secret, 1 otherwise. */
static int keys_check_format(const struct lk_cmd *self, int argc, char **argv)
{
    char buf[CHECK_INPUT_MAX + 1];
    const char *s, *why;
    struct lk_secret_view v;
    char hint[LK_HINT_MAX];
    size_t len = 0;
    ssize_t n;
    int rc;

    if (argc != 3)
        return lk_cli_usage(self);
    if (strcmp(argv[2], "--help") == 0)
        return lk_cli_help(self);
    /* It takes no option; a secret never starts with "--". */
    if (strncmp(argv[2], "--", 2) == 0) {
        size_t opt = strcspn(argv[2] + 2, "=");
        return lk_cli_fail("option --%.*s does not apply to 'keys check-format' (see latchkey "
                           "keys --help)",
                           (int)(opt > 64 ? 64 : opt), argv[2] + 2);
    }
    if (strcmp(argv[2], "-") == 0) {
        while (len < sizeof(buf) && (n = read(STDIN_FILENO, buf + len, sizeof(buf) - len)) > 0)
            len += (size_t)n;
        if (len > CHECK_INPUT_MAX) {
            OPENSSL_cleanse(buf, sizeof(buf));
            return lk_cli_fail("not a latchkey secret: more than %d bytes on stdin",
                               CHECK_INPUT_MAX);
        }
        /* One line, as `echo` or a pipe from a password manager gives it. */
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        s = buf;
    } else {
        s = argv[2];
        len = strlen(s);
    }
    if ((why = lk_secret_diagnose(s, len)) != NULL) {
        rc = lk_cli_fail("not a latchkey secret: %s", why);
    } else {
        lk_assert(lk_secret_parse(s, len, &v) == LK_OK);
        lk_secret_hint(&v, hint);
        if (v.format == LK_FORMAT_HEX)
            printf("well-formed: a legacy 64-hex-digit secret (%s); it carries no checksum\n",
                   hint);
        else
            printf("well-formed: a %s secret with prefix %.*s and a valid checksum (%s)\n",
                   lk_env_name(v.env), (int)v.prefix_len, v.prefix, hint);
        rc = 0;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

static const struct {
    const char *name;
    int (*run)(struct args *a);
} subs[] = {
    {"generate-temp", keys_generate_temp},
    {"create", keys_create}, {"list", keys_list},           {"get", keys_get},
    {"revoke", keys_revoke}, {"regenerate", keys_regenerate},
    {"update", keys_update}, {"disable", keys_disable}, {"enable", keys_enable},
    {"docs", keys_docs},
};

static int run_keys(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    int rc;

    if (argc < 2)
        return lk_cli_usage(self);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
        return lk_cli_help(self);
    if (strcmp(argv[1], "check-format") == 0)
        return keys_check_format(self, argc, argv);
    for (size_t i = 0; i < LK_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        rc = parse(argv[1], argc - 1, argv + 1, &a);
        if (rc == 0)
            rc = subs[i].run(&a);
        json_decref(a.body);
        return rc;
    }
    return lk_cli_usage(self);
}

const struct lk_cmd lk_cmd_keys = {
    "keys",
    "keys create|list|get|update|disable|enable|revoke|regenerate|generate-temp|docs [ID] "
    "[options] | keys check-format SECRET|-",
    "manage keys on a running server",
    run_keys,
    "  create                 new key (--name required); prints its secret once\n"
    "  list                   keys of the workspace, newest first\n"
    "  get ID                 one key\n"
    "  update ID              change name, permissions, limits, caps, expiry, meta\n"
    "  disable ID, enable ID  refuse the key (inactive_key) or take it back\n"
    "  revoke ID              revoke for good\n"
    "  regenerate ID          new secret; the old one works --grace more seconds\n"
    "  generate-temp          temporary key for an agent (session only)\n"
    "  docs ID                OpenAPI document of the API this key may call\n"
    "  check-format SECRET    offline: exit 0 for a well-formed secret with a valid\n"
    "                         checksum, 1 and why otherwise; `-` reads it from stdin\n"
    "\n"
    "  --name NAME            create, update: the key's name\n"
    "  --env live|test        create: environment (default live); list: filter\n"
    "  --environment ENV      the same as --env\n"
    "  --kind KIND            create: permanent (default), temporary or root\n"
    "  --permission P         create, update: a permission; repeat for more (default *)\n"
    "  --no-permissions       create, update: an empty permission list\n"
    "  --expires-in S         create, generate-temp: lifetime in seconds\n"
    "  --expires-at T         create, update: RFC 3339 time or Unix seconds; update: never\n"
    "  --meta JSON            create, update: a JSON object kept with the key\n"
    "  --rate-limit N/S       create, update: N checks per S seconds; update: none\n"
    "  --daily-spend-cap C    create, update: credits a day; update: none\n"
    "  --status S             list: any, active, disabled, expired or revoked\n"
    "  --limit N              list: page size (1-100)\n"
    "  --cursor C             list: the next page\n"
    "  --grace S              regenerate: seconds the old secret keeps working\n"
    "  --workspace WS         generate-temp: the workspace id\n"
    "  --storage-folder N     generate-temp: the workspace number\n"
    "  --sha256 HEX           create: import the SHA-256 of a secret issued elsewhere\n"
    LK_CLI_CONN_HELP};
