/*
 * cmd_migrate.c — `latchkey migrate --from URL --to URL`: copies a database
 * into a new, empty one (service/migrate.h), with every server on the source
 * stopped. Exit status: 0 copied, 1 the copy failed (the target is as it was),
 * 2 usage or a URL no backend takes, 3 the target is not empty, 4 a server is
 * running on the source (or one was killed and left credits leased).
 */
#include <getopt.h>

#include "base/common.h"
#include "cli/cmd.h"
#include "service/migrate.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

enum { EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_TARGET_NOT_EMPTY = 3, EXIT_SOURCE_IN_USE = 4 };

static int run_migrate(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct lk_migrate_counts n;
    struct lk_errinfo ei;
    const char *from = NULL, *to = NULL;
    bool json = false;
    enum lk_err e;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            return lk_cli_help(self);
        default:
            return lk_cli_usage(self);
        }
    }
    if (optind < argc) {
        lk_cli_fail("unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (from == NULL || to == NULL) {
        lk_cli_fail("migrate needs --from URL and --to URL");
        return EXIT_USAGE;
    }
    lk_errinfo_clear(&ei);
    if ((e = lk_migrate(from, to, &n, &ei)) != LK_OK) {
        lk_cli_fail("%s", ei.detail[0] ? ei.detail : lk_err_message(e));
        if (e == LK_ERR_INVALID_REQUEST)
            return EXIT_USAGE;
        if (e == LK_ERR_CONFLICT && strcmp(ei.field, "to") == 0)
            return EXIT_TARGET_NOT_EMPTY;
        if (e == LK_ERR_CONFLICT && strcmp(ei.field, "from") == 0)
            return EXIT_SOURCE_IN_USE;
        return EXIT_FAILED;
    }
    const struct {
        const char *name;
        int64_t n;
    } rows[] = {
        {"workspaces", n.workspaces},
        {"users", n.users},
        {"members", n.members},
        {"sessions", n.sessions},
        {"invitations", n.invitations},
        {"keys", n.keys},
        {"credit_accounts", n.credit_accounts},
        {"ledger", n.ledger},
        {"quota_days", n.quota_days},
        {"spend_days", n.spend_days},
        {"usage_rows", n.usage_rows},
        {"audit_events", n.audit_events},
        {"skipped", n.skipped},
    };
    if (json) {
        json_t *doc = json_object();
        for (size_t i = 0; i < LK_ARRAY_LEN(rows); i++)
            json_object_set_new(doc, rows[i].name, json_integer(rows[i].n));
        lk_cli_print_json(doc);
        json_decref(doc);
        return 0;
    }
    printf("copied, in one transaction:\n");
    for (size_t i = 0; i < LK_ARRAY_LEN(rows); i++)
        if (strcmp(rows[i].name, "skipped") != 0)
            printf("  %-16s %lld\n", rows[i].name, (long long)rows[i].n);
    if (n.skipped > 0)
        printf("skipped %lld spend and usage rows of keys the source does not have\n",
               (long long)n.skipped);
    return 0;
}

const struct lk_cmd lk_cmd_migrate = {
    "migrate", "migrate --from URL --to URL [--json]",
    "copy every workspace, key, person and count into a new, empty database", run_migrate,
    "  --from URL             the database to copy (sqlite:PATH or postgres://...); stop\n"
    "                         every server on it first; it is only read\n"
    "  --to URL               the new database; it must hold no workspace and no user\n"
    "  --json                 print the rows copied per table as JSON\n"
    "\n"
    "exit status: 0 copied; 1 the copy failed (nothing was written); 2 usage or a bad\n"
    "URL; 3 the target is not empty; 4 a server is running on the source, or a killed\n"
    "one left credits leased (start and stop latchkey on it once, then migrate)\n"};
