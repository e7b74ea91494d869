/*
 * cmd_workspaces.c — `latchkey workspaces create|list|update` (operator root key).
 */
#include <getopt.h>

#include "base/common.h"
#include "cli/cmd.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static int run_workspaces(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct option opts[] = {{"server", required_argument, NULL, 's'},
                                         {"token", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"prefix", required_argument, NULL, 'p'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"quota", required_argument, NULL, 'q'},
                                         {"test-quota", required_argument, NULL, 'Q'},
                                         {NULL, 0, NULL, 0}};
    struct lk_cli_conn conn;
    json_t *body, *res = NULL, *w;
    bool create, update;
    const char *id = NULL;
    char path[128];
    size_t i;
    int c, li = 0, rc = 1;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return lk_cli_help(self);
    if (argc < 2 || (strcmp(argv[1], "create") != 0 && strcmp(argv[1], "list") != 0 &&
                      strcmp(argv[1], "update") != 0))
        return lk_cli_usage(self);
    create = strcmp(argv[1], "create") == 0;
    update = strcmp(argv[1], "update") == 0;
    lk_cli_conn_defaults(&conn);
    body = json_object();
    argc--, argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        switch (c) {
        case 's': conn.server = optarg; break;
        case 't': conn.token = optarg; break;
        case 'j': conn.json = true; break;
        case 'n': json_object_set_new(body, "name", json_string(optarg)); break;
        case 'p': json_object_set_new(body, "key_prefix", json_string(optarg)); break;
        case 'f': json_object_set_new(body, "key_format", json_string(optarg)); break;
        case 'q':
        case 'Q': {
            /* a count of checks, or `none`: unlimited (quota) / not set (test quota) */
            const char *field = c == 'q' ? "quota" : "test_quota";
            int64_t n;
            if (strcmp(optarg, "none") == 0) {
                json_object_set_new(body, field, json_null());
                break;
            }
            if (lk_parse_i64(optarg, strlen(optarg), 0, INT64_MAX, &n) != 0) {
                rc = lk_cli_fail("--%s wants a whole number of checks or `none`",
                                 c == 'q' ? "quota" : "test-quota");
                goto out;
            }
            json_object_set_new(body, field, json_integer(n));
            break;
        }
        default: rc = lk_cli_usage(self); goto out;
        }
        if (!create && c != 's' && c != 't' && c != 'j' && (!update || (c != 'q' && c != 'Q'))) {
            rc = lk_cli_fail("option --%s does not apply to 'workspaces %s'", opts[li].name,
                             argv[0]);
            goto out;
        }
    }
    if (optind < argc)
        id = argv[optind++];
    if (optind < argc || (id != NULL && !update)) {
        rc = lk_cli_fail("unexpected argument '%s'", argv[optind - 1]);
        goto out;
    }
    if (update) {
        if (id == NULL || !lk_cli_is_id(id)) {
            rc = lk_cli_fail(id ? "not a workspace id: %s" : "workspaces update needs a workspace id%s",
                             id ? id : "");
            goto out;
        }
        if (json_object_size(body) == 0) {
            rc = lk_cli_fail("workspaces update needs --quota or --test-quota");
            goto out;
        }
        snprintf(path, sizeof(path), "/v1/workspaces/%s", id);
        if (lk_cli_call(&conn, "PATCH", path, body, &res))
            goto out;
        rc = 0;
        if (conn.json) {
            lk_cli_print_json(res);
        } else {
            char *q = json_dumps(json_object_get(res, "quota"), JSON_ENCODE_ANY);
            char *tq = json_dumps(json_object_get(res, "test_quota"), JSON_ENCODE_ANY);
            printf("%-12s %s\n%-12s %s\n%-12s %s\n", "id",
                   json_string_value(json_object_get(res, "id")), "quota", q ? q : "-",
                   "test_quota", tq ? tq : "-");
            free(q);
            free(tq);
        }
        goto out;
    }
    if (create && json_object_get(body, "name") == NULL) {
        rc = lk_cli_fail("workspaces create needs --name");
        goto out;
    }
    if (lk_cli_call(&conn, create ? "POST" : "GET", "/v1/workspaces", create ? body : NULL, &res))
        goto out;
    rc = 0;
    if (conn.json) {
        lk_cli_print_json(res);
    } else if (create) {
        printf("created workspace %s (%s)\nsecrets (shown once; store them now):\n"
               "  root key:              %s\n  application read-write: %s\n"
               "  application read-only:  %s\n",
               json_string_value(json_object_get(res, "id")),
               json_string_value(json_object_get(res, "name")),
               json_string_value(json_object_get(res, "root_key")),
               json_string_value(json_object_get(json_object_get(res, "application_keys"), "read_write")),
               json_string_value(json_object_get(json_object_get(res, "application_keys"), "read_only")));
    } else {
        printf("%-22s %-24s %-8s %s\n", "ID", "NAME", "PREFIX", "CREATED");
        json_array_foreach(json_object_get(res, "data"), i, w)
            printf("%-22s %-24.24s %-8s %s\n", json_string_value(json_object_get(w, "id")),
                   json_string_value(json_object_get(w, "name")),
                   json_string_value(json_object_get(w, "key_prefix")),
                   json_string_value(json_object_get(w, "created_at")));
    }
out:
    json_decref(body);
    json_decref(res);
    return rc;
}

const struct lk_cmd lk_cmd_workspaces = {
    "workspaces",
    "workspaces create|list|update [ID] [--name N] [--prefix P] [--format default|hex] "
    "[--quota N] [--test-quota N]",
    "create, list and set the quotas of workspaces (operator root key)", run_workspaces,
    "  create                 new workspace (--name required); prints its keys once\n"
    "  list                   every workspace\n"
    "  update ID              set --quota and/or --test-quota\n"
    "\n"
    "  --name N               create: the workspace's name\n"
    "  --prefix P             create: key prefix, [a-z][a-z0-9_]{0,15} (default lk)\n"
    "  --format default|hex   create: key format\n"
    "  --quota N              create, update: valid live checks per 30 days, or none\n"
    "  --test-quota N         create, update: valid test checks per 30 days, or none\n"
    LK_CLI_CONN_HELP};
