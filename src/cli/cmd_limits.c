/*
 * cmd_limits.c — `latchkey credits [top-up AMOUNT]`, `latchkey quota` and
 * `latchkey usage KEY_ID`, over HTTP: the workspace's money and use.
 */
#include <getopt.h>

#include "base/common.h"
#include "cli/cmd.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum { O_NOTE = LK_OPT_VERB, O_GRAN, O_FROM, O_TO };

static const struct option opts[] = {
    LK_CLI_CONN_OPTIONS,
    {"note", required_argument, NULL, O_NOTE},
    {"granularity", required_argument, NULL, O_GRAN},
    {"from", required_argument, NULL, O_FROM},
    {"to", required_argument, NULL, O_TO},
    {NULL, 0, NULL, 0},
};

struct args {
    struct lk_cli_conn conn;
    const char *note, *granularity, *from, *to;
    const char *pos[2]; /* positional arguments */
    int npos;
};

static int parse(const struct lk_cmd *self, int argc, char **argv, struct args *a)
{
    int c, li = 0;

    lk_cli_conn_defaults(&a->conn);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        /* one table serves several verbs: each takes only what its help lists */
        if (c != '?' && !lk_cli_flag_applies(self, opts[li].name))
            return 1;
        if (lk_cli_conn_option(&a->conn, c, optarg))
            continue;
        switch (c) {
        case O_NOTE: a->note = optarg; break;
        case O_GRAN: a->granularity = optarg; break;
        case O_FROM: a->from = optarg; break;
        case O_TO: a->to = optarg; break;
        default: return 2;
        }
    }
    while (optind < argc) {
        if (a->npos == 2)
            return lk_cli_fail("unexpected argument '%s'", argv[optind]);
        a->pos[a->npos++] = argv[optind++];
    }
    return 0;
}

/* --help, the options, and min..max positional arguments: returns -1 to go on,
 * else the exit status to return. */
static int start(const struct lk_cmd *self, int argc, char **argv, struct args *a, int min,
                 int max)
{
    int rc;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return lk_cli_help(self);
    if ((rc = parse(self, argc, argv, a)) != 0)
        return rc == 2 ? lk_cli_usage(self) : rc;
    if (a->npos < min || a->npos > max)
        return lk_cli_usage(self);
    return -1;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static long long num(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static int run_credits(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    json_t *res, *e, *body = NULL;
    size_t i;
    int rc;

    if ((rc = start(self, argc, argv, &a, 0, 2)) >= 0)
        return rc;
    if (a.npos == 2 && strcmp(a.pos[0], "top-up") == 0) {
        int64_t amount;
        if (lk_parse_i64(a.pos[1], strlen(a.pos[1]), 1, INT64_MAX, &amount) != 0)
            return lk_cli_fail("top-up wants a whole number of credits");
        body = json_pack("{s:I}", "amount", (json_int_t)amount);
        if (a.note)
            json_object_set_new(body, "note", json_string(a.note));
        rc = lk_cli_call(&a.conn, "POST", "/v1/credits", body, &res);
        json_decref(body);
        if (rc)
            return 1;
        if (a.conn.json)
            lk_cli_print_json(res);
        else
            printf("balance %lld (topped up %lld)\n", num(res, "balance"),
                   (long long)json_integer_value(json_object_get(json_object_get(res, "entry"),
                                                                 "amount")));
        json_decref(res);
        return 0;
    }
    if (a.npos != 0)
        return lk_cli_usage(self);
    if (lk_cli_call(&a.conn, "GET", "/v1/credits", NULL, &res))
        return 1;
    if (a.conn.json) {
        lk_cli_print_json(res);
    } else {
        printf("balance %lld, topped up %lld, spent %lld\n\n", num(res, "balance"),
               num(res, "topped_up"), num(res, "spent"));
        printf("%-20s %-11s %14s  %s\n", "WHEN", "KIND", "AMOUNT", "NOTE");
        json_array_foreach(json_object_get(res, "ledger"), i, e)
            printf("%-20s %-11s %14lld  %s\n", str(e, "created_at"), str(e, "kind"),
                   num(e, "amount"), str(e, "note"));
    }
    json_decref(res);
    return 0;
}

static void print_quota(const char *name, json_t *q)
{
    json_t *limit = json_object_get(q, "limit");

    if (json_is_integer(limit))
        printf("%-5s %lld of %lld used, %lld left\n", name, num(q, "used"),
               (long long)json_integer_value(limit), num(q, "remaining"));
    else
        printf("%-5s %lld used, no limit\n", name, num(q, "used"));
}

static int run_quota(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    json_t *res;
    int rc;

    if ((rc = start(self, argc, argv, &a, 0, 0)) >= 0)
        return rc;
    if (lk_cli_call(&a.conn, "GET", "/v1/quota", NULL, &res))
        return 1;
    if (a.conn.json) {
        lk_cli_print_json(res);
    } else {
        printf("the last %lld days:\n", num(res, "window_days"));
        print_quota("live", json_object_get(res, "live"));
        print_quota("test", json_object_get(res, "test"));
    }
    json_decref(res);
    return 0;
}

/* Appends `&name=value` (or `?...` first) to the query in out. Values are passed
 * as typed, escaped for the URL; the server refuses what is not valid. */
static void add_param(char *out, size_t sz, const char *name, const char *value)
{
    size_t n = strlen(out);

    if (value == NULL || n >= sz)
        return;
    n += (size_t)snprintf(out + n, sz - n, "%c%s=", strchr(out, '?') ? '&' : '?', name);
    for (const char *p = value; *p && n + 4 < sz; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == ':')
            out[n++] = (char)ch;
        else
            n += (size_t)snprintf(out + n, sz - n, "%%%02X", ch);
    }
    out[n < sz ? n : sz - 1] = '\0';
}

static int run_usage(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    char path[512];
    json_t *res, *b, *totals;
    const char *code;
    json_t *v;
    size_t i;
    int rc;

    if ((rc = start(self, argc, argv, &a, 1, 1)) >= 0)
        return rc;
    if (!lk_cli_is_id(a.pos[0]))
        return lk_cli_fail("'%s' is not a key id", a.pos[0]);
    snprintf(path, sizeof(path), "/v1/keys/%s/usage", a.pos[0]);
    add_param(path, sizeof(path), "granularity", a.granularity);
    add_param(path, sizeof(path), "from", a.from);
    add_param(path, sizeof(path), "to", a.to);
    if (lk_cli_call(&a.conn, "GET", path, NULL, &res))
        return 1;
    if (a.conn.json) {
        lk_cli_print_json(res);
    } else {
        printf("%-20s %8s  %s\n", "FROM", "CHECKS", "BY OUTCOME");
        json_array_foreach(json_object_get(res, "data"), i, b) {
            if (num(b, "total") == 0)
                continue;
            printf("%-20s %8lld ", str(b, "start"), num(b, "total"));
            json_object_foreach(json_object_get(b, "outcomes"), code, v)
                printf(" %s=%lld", code, (long long)json_integer_value(v));
            printf("\n");
        }
        totals = json_object_get(res, "totals");
        printf("total:");
        json_object_foreach(totals, code, v)
            printf(" %s=%lld", code, (long long)json_integer_value(v));
        printf("%s\n", json_object_size(totals) ? "" : " none");
    }
    json_decref(res);
    return 0;
}

const struct lk_cmd lk_cmd_credits = {
    "credits", "credits [top-up AMOUNT [--note TEXT]] [--json]",
    "show the workspace's credit balance and ledger, or top it up", run_credits,
    "  top-up AMOUNT          add AMOUNT credits (root key or owner session)\n"
    "  --note TEXT            top-up: a note kept in the ledger\n" LK_CLI_CONN_HELP};

const struct lk_cmd lk_cmd_quota = {"quota", "quota [--json]",
                                    "show the workspace's rolling 30-day quota and use",
                                    run_quota, LK_CLI_CONN_HELP};

const struct lk_cmd lk_cmd_usage = {
    "usage", "usage KEY_ID [--granularity hour|day] [--from T] [--to T] [--json]",
    "show a key's checks per hour or day, by outcome", run_usage,
    "  --granularity hour|day per hour (default, last 24 h) or per day (last 30 days)\n"
    "  --from T               start: RFC 3339 time or Unix seconds\n"
    "  --to T                 end: RFC 3339 time or Unix seconds\n" LK_CLI_CONN_HELP};
