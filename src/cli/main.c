/*
 * main.c — `latchkey VERB ...`: finds the verb in the command table and runs it.
 */
#include <malloc.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "cli/cmd.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const struct lk_cmd *const commands[] = {
    &lk_cmd_init,  &lk_cmd_serve,   &lk_cmd_keys,  &lk_cmd_workspaces,
    &lk_cmd_login, &lk_cmd_members, &lk_cmd_accept, &lk_cmd_audit, &lk_cmd_credits, &lk_cmd_quota,
    &lk_cmd_usage, &lk_cmd_seed,  &lk_cmd_logout, &lk_cmd_routes, &lk_cmd_migrate,
};

static void help(FILE *f)
{
    fputs("latchkey — API keys issued, verified, scoped and revoked\n\nusage:\n", f);
    fprintf(f, "  latchkey %-60s %s\n", "--version", "print the version and the git commit");
    for (size_t i = 0; i < LK_ARRAY_LEN(commands); i++)
        fprintf(f, "  latchkey %-60s %s\n", commands[i]->usage, commands[i]->summary);
    fputs("\nAdmin verbs talk to a running server: --server URL (or LATCHKEY_URL),\n"
          "--token KEY (or LATCHKEY_TOKEN). `latchkey VERB --help` lists a verb's flags.\n",
          f);
}

/* jansson holds request bodies and answers, some with a secret or a password in
 * them: every block it frees is wiped first. */
static void wiping_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
    }
}

int main(int argc, char **argv)
{
    json_set_alloc_funcs(malloc, wiping_free);
    lk_clock_init();
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
        return lk_cli_version();
    for (size_t i = 0; i < LK_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i]->name) != 0)
            continue;
        /* `latchkey keys create --help` is help too, not a call */
        for (int j = 2; j < argc && strcmp(argv[j], "--") != 0; j++)
            if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0)
                return lk_cli_help(commands[i]);
        return commands[i]->run(commands[i], argc - 1, argv + 1);
    }
    fprintf(stderr, "latchkey: unknown command '%s'\n\n", argv[1]);
    help(stderr);
    return 2;
}
