/*
 * cmd.h — the `latchkey` command (DESIGN §6): a table of verbs, each
 * {name, usage, run} in its own cmd_<verb>.c. run() returns the exit status.
 */
#ifndef LK_CMD_H
#define LK_CMD_H

#include <jansson.h>

#include "cli/client.h"

struct lk_cmd {
    const char *name;
    const char *usage;
    const char *summary;
    int (*run)(const struct lk_cmd *self, int argc, char **argv);
    /* `--help`'s list of flags, one "  --flag ARG   what it does\n" line each. It is
     * also the list of flags the verb takes: lk_cli_flag_applies refuses others. */
    const char *flags;
};

/* The help lines of the options every admin verb takes (LK_CLI_CONN_OPTIONS). */
#define LK_CLI_CONN_HELP                                                                           \
    "  --server URL           the latchkey to talk to (or LATCHKEY_URL; default\n"               \
    "                         http://127.0.0.1:8080)\n"                                          \
    "  --token KEY            root or application key, or session token (or LATCHKEY_TOKEN)\n"  \
    "  --json                 print the server's JSON answer instead of a table\n"

extern const struct lk_cmd lk_cmd_init, lk_cmd_serve, lk_cmd_seed, lk_cmd_keys,
    lk_cmd_workspaces, lk_cmd_login, lk_cmd_members, lk_cmd_accept, lk_cmd_audit, lk_cmd_credits, lk_cmd_quota,
    lk_cmd_usage, lk_cmd_logout, lk_cmd_routes, lk_cmd_migrate;

/* Prints "latchkey: <msg>" to stderr and returns 1 (or 2 for usage errors via
 * lk_cli_usage). */
int lk_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int lk_cli_usage(const struct lk_cmd *cmd);
/* Prints the usage, summary and flags to stdout for --help; returns 0. */
int lk_cli_help(const struct lk_cmd *cmd);
/* True when cmd's flags list `--name`; else prints that it does not apply and
 * returns false. For verbs that share one getopt table. */
bool lk_cli_flag_applies(const struct lk_cmd *cmd, const char *name);

/* Prints "latchkey VERSION (commit COMMIT)" to stdout; returns 0. */
int lk_cli_version(void);

/* The server and token for admin verbs: --server/--token, else LATCHKEY_URL /
 * LATCHKEY_TOKEN, else http://127.0.0.1:8080 and no token. */
struct lk_cli_conn {
    const char *server;
    const char *token;
    bool json;
};
void lk_cli_conn_defaults(struct lk_cli_conn *c);

/* The options every admin verb takes, for its getopt_long table (with
 * <getopt.h>); a verb numbers its own options from LK_OPT_VERB. */
enum { LK_OPT_SERVER = 900, LK_OPT_TOKEN, LK_OPT_JSON, LK_OPT_VERB = 1000 };
#define LK_CLI_CONN_OPTIONS                                                                        \
    {"server", required_argument, NULL, LK_OPT_SERVER},                                            \
        {"token", required_argument, NULL, LK_OPT_TOKEN}, {"json", no_argument, NULL, LK_OPT_JSON}

/* Applies option c to conn when it is one of LK_OPT_SERVER/TOKEN/JSON; returns
 * false for any other option. */
bool lk_cli_conn_option(struct lk_cli_conn *conn, int c, const char *arg);

/* Calls the server and parses a JSON answer. On 2xx returns 0 with *out (may be
 * NULL for 204; caller decrefs). Otherwise prints the server's error (code,
 * message, Retry-After, and which flag or variable to set when the credential is
 * missing or refused) or the transport failure and returns 1. */
int lk_cli_call(const struct lk_cli_conn *c, const char *method, const char *path,
                json_t *body /* may be NULL; borrowed */, json_t **out /* OUT */);

/* True when s is a plain object id ([A-Za-z0-9_]+): safe to place in a URL path. */
bool lk_cli_is_id(const char *s);

/* Prints j as indented JSON on stdout. */
void lk_cli_print_json(json_t *j);

#endif
