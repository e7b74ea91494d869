/*
 * cmd_routes.c — `latchkey routes check FILE`: reads a forward-auth routes file
 * offline, as `serve --routes` would, and prints each rule as it is understood,
 * so a mistake shows before a server refuses to start (or lets the wrong request
 * through).
 */
#include <getopt.h>

#include "base/common.h"
#include "cli/cmd.h"
#include "core/routerules.h"
#include "core/secret.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const char *params_name(enum lk_route_params p)
{
    switch (p) {
    case LK_PARAMS_STRIP:
        return "strip";
    case LK_PARAMS_LITERAL:
        return "literal";
    default:
        return "reject";
    }
}

static void print_rule(const struct lk_route_rule *r)
{
    printf("line %-4ld %-7s %-32s ", r->line, r->method[0] == '*' ? "ANY" : r->method, r->pattern);
    if (r->needs == LK_NEEDS_PUBLIC)
        printf("public: no key needed");
    else if (r->needs == LK_NEEDS_ANY)
        printf("any valid key");
    else
        printf("a key holding: %s", r->query);
    if (r->cost > 0)
        printf("; costs %lld credits", (long long)r->cost);
    if (r->env >= 0)
        printf("; %s keys only", lk_env_name((enum lk_env)r->env));
    putchar('\n');
}

static int check(const char *path)
{
    struct lk_route_rules rules = {0};
    struct lk_errinfo ei;
    FILE *f = fopen(path, "r");
    char *text;
    size_t n;
    int rc = 1;

    if (f == NULL)
        return lk_cli_fail("cannot read routes file %s", path);
    text = lk_malloc(LK_ROUTES_MAX_BYTES + 1);
    n = fread(text, 1, LK_ROUTES_MAX_BYTES + 1, f);
    fclose(f);
    lk_errinfo_clear(&ei);
    if (lk_route_rules_parse(text, n, &rules, &ei) != LK_OK) {
        lk_cli_fail("%s:%ld: %s", path, ei.offset, ei.detail);
        goto out;
    }
    if (rules.n == 0) {
        lk_cli_fail("%s: no rules (forward-auth would refuse every request)", path);
        goto out;
    }
    printf("%s: %zu rule%s, first match wins; `;` in a path: %s\n", path, rules.n,
           rules.n == 1 ? "" : "s", params_name(rules.params));
    for (size_t i = 0; i < rules.n; i++)
        print_rule(&rules.rules[i]);
    printf("anything else: refused (403 insufficient_permissions)\n");
    rc = 0;
out:
    lk_route_rules_free(&rules);
    free(text);
    return rc;
}

static int run_routes(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};

    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return lk_cli_usage(self);
    optind = 1;
    if (getopt_long(argc - 1, argv + 1, "", none, NULL) != -1) /* it takes no flags */
        return lk_cli_usage(self);
    if (optind != argc - 2)
        return lk_cli_usage(self);
    return check(argv[argc - 1]);
}

const struct lk_cmd lk_cmd_routes = {
    "routes", "routes check FILE",
    "check a forward-auth routes file offline and print each rule as it is understood", run_routes,
    "  check FILE             parse FILE as `serve --routes FILE` would; exits 1 with\n"
    "                         FILE:LINE: on the first bad line\n"};
