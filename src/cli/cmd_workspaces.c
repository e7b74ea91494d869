/*
 * cmd_workspaces.c — `latchkey workspaces create|list` (operator root key).
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
                                         {NULL, 0, NULL, 0}};
    struct lk_cli_conn conn;
    json_t *body, *res = NULL, *w;
    bool create;
    size_t i;
    int c, rc = 1;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return lk_cli_help(self);
    if (argc < 2 || (strcmp(argv[1], "create") != 0 && strcmp(argv[1], "list") != 0))
        return lk_cli_usage(self);
    create = strcmp(argv[1], "create") == 0;
    lk_cli_conn_defaults(&conn);
    body = json_object();
    argc--, argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': conn.server = optarg; break;
        case 't': conn.token = optarg; break;
        case 'j': conn.json = true; break;
        case 'n': json_object_set_new(body, "name", json_string(optarg)); break;
        case 'p': json_object_set_new(body, "key_prefix", json_string(optarg)); break;
        case 'f': json_object_set_new(body, "key_format", json_string(optarg)); break;
        default: rc = lk_cli_usage(self); goto out;
        }
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
    "workspaces", "workspaces create|list [--name N] [--prefix P] [--format default|hex]",
    "create and list workspaces (operator root key)", run_workspaces};
