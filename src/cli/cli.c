#include <stdarg.h>

#include "base/common.h"
#include "base/version.h"
#include "cli/cmd.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

int lk_cli_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("latchkey: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int lk_cli_usage(const struct lk_cmd *cmd)
{
    fprintf(stderr, "usage: latchkey %s\n", cmd->usage);
    return 2;
}

int lk_cli_help(const struct lk_cmd *cmd)
{
    printf("usage: latchkey %s\n  %s\n", cmd->usage, cmd->summary);
    if (cmd->flags != NULL && cmd->flags[0] != '\0')
        printf("\noptions:\n%s", cmd->flags);
    printf("  --help                 print this help\n");
    return 0;
}

bool lk_cli_flag_applies(const struct lk_cmd *cmd, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = cmd->flags; p != NULL && (p = strstr(p, "--")) != NULL; p += 2)
        if (strncmp(p + 2, name, n) == 0 && (p[2 + n] == ' ' || p[2 + n] == '\n'))
            return true;
    lk_cli_fail("option --%s does not apply to '%s' (see latchkey %s --help)", name, cmd->name,
                cmd->name);
    return false;
}

int lk_cli_version(void)
{
    printf("latchkey %s (commit %s)\n", lk_version(), lk_version_commit());
    return 0;
}

bool lk_cli_conn_option(struct lk_cli_conn *conn, int c, const char *arg)
{
    switch (c) {
    case LK_OPT_SERVER: conn->server = arg; return true;
    case LK_OPT_TOKEN: conn->token = arg; return true;
    case LK_OPT_JSON: conn->json = true; return true;
    default: return false;
    }
}

void lk_cli_conn_defaults(struct lk_cli_conn *c)
{
    const char *v;

    c->server = (v = getenv("LATCHKEY_URL")) && *v ? v : "http://127.0.0.1:8080";
    c->token = (v = getenv("LATCHKEY_TOKEN")) && *v ? v : NULL;
    c->json = false;
}

bool lk_cli_is_id(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

void lk_cli_print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
}

int lk_cli_call(const struct lk_cli_conn *c, const char *method, const char *path, json_t *body,
                json_t **out)
{
    struct lk_client_resp resp;
    char err[256], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_t *j = NULL;
    int rc;

    *out = NULL;
    rc = lk_client_call(c->server, c->token, method, path, text, &resp, err, sizeof(err));
    free(text);
    if (rc != 0)
        return lk_cli_fail("cannot reach %s: %s (set --server or LATCHKEY_URL)", c->server, err);
    if (resp.len > 0)
        j = json_loadb(resp.body, resp.len, 0, NULL);
    free(resp.body);
    if (resp.status >= 200 && resp.status < 300) {
        *out = j;
        return 0;
    }
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code != NULL)
        lk_cli_fail("%s (%d): %s", code, resp.status, msg ? msg : "");
    else
        lk_cli_fail("server answered HTTP %d", resp.status);
    if (resp.retry_after[0] != '\0')
        fprintf(stderr, "latchkey: retry after %s seconds (Retry-After)\n", resp.retry_after);
    if (resp.status == 401)
        fputs(c->token == NULL
                  ? "latchkey: no credential: set --token KEY or LATCHKEY_TOKEN\n"
                  : "latchkey: the server refused the credential: check --token or LATCHKEY_TOKEN\n",
              stderr);
    json_decref(j);
    return 1;
}
