/*
 * cmd_people.c — `latchkey login`, `latchkey members ...`, `latchkey accept`
 * (an invitation) and `latchkey audit`, over HTTP. Passwords are read from standard input
 * (--password-stdin), never from the command line, where `ps` would show them.
 */
#include <getopt.h>

#include <openssl/crypto.h>

#include "base/common.h"
#include "cli/cmd.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define PASSWORD_MAX 256

/* Reads the first line of stdin into buf (newline dropped). 0, or -1 when empty. */
static int read_password(char *buf, size_t sz)
{
    size_t n;

    if (fgets(buf, (int)sz, stdin) == NULL)
        return -1;
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return n > 0 ? 0 : -1;
}

enum { O_EMAIL = LK_OPT_VERB, O_ROLE, O_PWSTDIN, O_LIMIT, O_CURSOR, O_WS };

static const struct option opts[] = {
    LK_CLI_CONN_OPTIONS,
    {"email", required_argument, NULL, O_EMAIL},
    {"role", required_argument, NULL, O_ROLE},
    {"password-stdin", no_argument, NULL, O_PWSTDIN},
    {"limit", required_argument, NULL, O_LIMIT},
    {"cursor", required_argument, NULL, O_CURSOR},
    {"workspace", required_argument, NULL, O_WS},
    {NULL, 0, NULL, 0},
};

struct args {
    struct lk_cli_conn conn;
    const char *email, *role, *limit, *cursor, *workspace;
    bool password_stdin;
    const char *arg; /* the one positional argument, if any */
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
        case O_EMAIL: a->email = optarg; break;
        case O_ROLE: a->role = optarg; break;
        case O_PWSTDIN: a->password_stdin = true; break;
        case O_LIMIT: a->limit = optarg; break;
        case O_CURSOR: a->cursor = optarg; break;
        case O_WS: a->workspace = optarg; break;
        default: return 2;
        }
    }
    if (optind < argc)
        a->arg = argv[optind++];
    if (optind < argc)
        return lk_cli_fail("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* A query string from the arguments that every listing shares. Values are passed
 * through as typed: the server refuses what is not valid. */
static void query(const struct args *a, char *out, size_t sz)
{
    size_t n = 0;

    out[0] = '\0';
    if (a->limit)
        n += (size_t)snprintf(out + n, sz - n, "%climit=%s", n ? '&' : '?', a->limit);
    if (a->cursor && n < sz)
        n += (size_t)snprintf(out + n, sz - n, "%ccursor=%s", n ? '&' : '?', a->cursor);
    if (a->workspace && n < sz)
        snprintf(out + n, sz - n, "%cworkspace_id=%s", n ? '&' : '?', a->workspace);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* --- login ---------------------------------------------------------------------- */

static int run_login(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    char password[PASSWORD_MAX];
    json_t *body, *res = NULL;
    int rc;

    if ((rc = parse(self, argc, argv, &a)) != 0)
        return rc == 2 ? lk_cli_usage(self) : rc;
    if (a.email == NULL || !a.password_stdin)
        return lk_cli_usage(self);
    if (read_password(password, sizeof(password)) != 0)
        return lk_cli_fail("no password on standard input");
    a.conn.token = NULL; /* signing in needs no credential */
    body = json_pack("{s:s, s:s}", "email", a.email, "password", password);
    OPENSSL_cleanse(password, sizeof(password));
    rc = lk_cli_call(&a.conn, "POST", "/v1/auth/login", body, &res);
    json_decref(body); /* jansson wipes what it frees (main.c) */
    if (rc != 0)
        return 1;
    if (a.conn.json)
        lk_cli_print_json(res);
    else
        printf("signed in as %s until %s\nsession token (use as LATCHKEY_TOKEN):\n  %s\n",
               str(json_object_get(res, "user"), "email"), str(res, "expires_at"),
               str(res, "token"));
    json_decref(res);
    return 0;
}

/* --- members -------------------------------------------------------------------- */

/* An invitation: the person accepts it with `latchkey accept`; the token is
 * printed once. */
static int members_add(struct args *a)
{
    json_t *body, *res = NULL;
    int rc;

    if (a->email == NULL || a->role == NULL)
        return lk_cli_fail("members add needs --email and --role");
    if (a->password_stdin)
        return lk_cli_fail("members add invites: the person chooses their own password with "
                           "`latchkey accept`");
    body = json_pack("{s:s, s:s}", "email", a->email, "role", a->role);
    rc = lk_cli_call(&a->conn, "POST", "/v1/members", body, &res);
    json_decref(body);
    if (rc != 0)
        return 1;
    if (a->conn.json)
        lk_cli_print_json(res);
    else
        printf("invited %s as %s (%s), until %s\n"
               "invitation token (shown once; the person runs `latchkey accept`):\n  %s\n",
               str(res, "email"), str(res, "role"), str(res, "id"), str(res, "expires_at"),
               str(res, "token"));
    json_decref(res);
    return 0;
}

static int members_role(struct args *a)
{
    char path[160];
    json_t *body, *res = NULL;
    int rc;

    if (a->arg == NULL || a->role == NULL)
        return lk_cli_fail("members role needs a user id and --role");
    if (!lk_cli_is_id(a->arg))
        return lk_cli_fail("not a user id: %s", a->arg);
    snprintf(path, sizeof(path), "/v1/members/%s", a->arg);
    body = json_pack("{s:s}", "role", a->role);
    rc = lk_cli_call(&a->conn, "PATCH", path, body, &res);
    json_decref(body);
    if (rc != 0)
        return 1;
    if (a->conn.json)
        lk_cli_print_json(res);
    else
        printf("%s (%s) is %s\n", str(res, "email"), str(res, "user_id"), str(res, "role"));
    json_decref(res);
    return 0;
}

/* GETs a listing of people and prints it: the JSON as it came, or a table of
 * an id, the email, the role and a time, under the headings given. */
static int list_people(struct args *a, const char *path, const char *id_head, const char *id_key,
                       const char *time_head, const char *time_key)
{
    json_t *res, *m;
    size_t i;

    if (lk_cli_call(&a->conn, "GET", path, NULL, &res))
        return 1;
    if (a->conn.json) {
        lk_cli_print_json(res);
    } else {
        printf("%-22s %-32s %-7s %s\n", id_head, "EMAIL", "ROLE", time_head);
        json_array_foreach(json_object_get(res, "data"), i, m)
            printf("%-22s %-32s %-7s %s\n", str(m, id_key), str(m, "email"), str(m, "role"),
                   str(m, time_key));
    }
    json_decref(res);
    return 0;
}

static int members_invitations(struct args *a)
{
    return list_people(a, "/v1/invitations", "INVITATION", "id", "EXPIRES", "expires_at");
}

static int members_uninvite(struct args *a)
{
    char path[160];
    json_t *res;

    if (a->arg == NULL || !lk_cli_is_id(a->arg))
        return lk_cli_fail("members uninvite needs an invitation id");
    snprintf(path, sizeof(path), "/v1/invitations/%s", a->arg);
    if (lk_cli_call(&a->conn, "DELETE", path, NULL, &res))
        return 1;
    json_decref(res);
    printf(a->conn.json ? "{\"id\": \"%s\", \"revoked\": true}\n" : "revoked %s\n", a->arg);
    return 0;
}

static int members_list(struct args *a)
{
    char path[512], q[400];

    query(a, q, sizeof(q));
    snprintf(path, sizeof(path), "/v1/members%s", q);
    return list_people(a, path, "USER", "user_id", "SINCE", "created_at");
}

static int members_remove(struct args *a)
{
    char path[160];
    json_t *res;

    if (a->arg == NULL)
        return lk_cli_fail("members remove needs a user id");
    if (!lk_cli_is_id(a->arg))
        return lk_cli_fail("not a user id: %s", a->arg);
    snprintf(path, sizeof(path), "/v1/members/%s", a->arg);
    if (lk_cli_call(&a->conn, "DELETE", path, NULL, &res))
        return 1;
    json_decref(res);
    printf(a->conn.json ? "{\"user_id\": \"%s\", \"removed\": true}\n" : "removed %s\n", a->arg);
    return 0;
}

static int run_members(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(struct args *a);
    } subs[] = {{"add", members_add},
                {"list", members_list},
                {"remove", members_remove},
                {"role", members_role},
                {"invitations", members_invitations},
                {"uninvite", members_uninvite}};
    struct args a = {0};
    int rc;

    if (argc < 2)
        return lk_cli_usage(self);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
        return lk_cli_help(self);
    for (size_t i = 0; i < LK_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        if ((rc = parse(self, argc - 1, argv + 1, &a)) != 0)
            return rc == 2 ? lk_cli_usage(self) : rc;
        return subs[i].run(&a);
    }
    return lk_cli_usage(self);
}

/* --- accept ---------------------------------------------------------------------- */

/* `latchkey accept [TOKEN] --password-stdin`: without TOKEN, the first line of
 * standard input is the token and the second the password (so neither shows in
 * `ps`). */
static int run_accept(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    char token[PASSWORD_MAX], password[PASSWORD_MAX];
    json_t *body, *res = NULL;
    int rc;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return lk_cli_help(self);
    if ((rc = parse(self, argc, argv, &a)) != 0)
        return rc == 2 ? lk_cli_usage(self) : rc;
    if (!a.password_stdin)
        return lk_cli_usage(self);
    if (a.arg != NULL)
        snprintf(token, sizeof(token), "%s", a.arg);
    else if (read_password(token, sizeof(token)) != 0)
        return lk_cli_fail("no invitation token on standard input");
    if (read_password(password, sizeof(password)) != 0) {
        OPENSSL_cleanse(token, sizeof(token));
        return lk_cli_fail("no password on standard input");
    }
    a.conn.token = NULL; /* the invitation is the credential */
    body = json_pack("{s:s, s:s}", "token", token, "password", password);
    OPENSSL_cleanse(token, sizeof(token));
    OPENSSL_cleanse(password, sizeof(password));
    rc = lk_cli_call(&a.conn, "POST", "/v1/invitations/accept", body, &res);
    json_decref(body);
    if (rc != 0)
        return 1;
    if (a.conn.json)
        lk_cli_print_json(res);
    else
        printf("%s (%s) is %s of %s\n", str(res, "email"), str(res, "user_id"), str(res, "role"),
               str(res, "workspace_id"));
    json_decref(res);
    return 0;
}

/* --- audit ---------------------------------------------------------------------- */

static int run_audit(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    char path[512], q[400];
    json_t *res, *ev;
    size_t i;
    int rc;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return lk_cli_help(self);
    if ((rc = parse(self, argc, argv, &a)) != 0)
        return rc == 2 ? lk_cli_usage(self) : rc;
    query(&a, q, sizeof(q));
    snprintf(path, sizeof(path), "/v1/audit%s", q);
    if (lk_cli_call(&a.conn, "GET", path, NULL, &res))
        return 1;
    if (a.conn.json) {
        lk_cli_print_json(res);
    } else {
        printf("%-20s %-22s %-20s %-22s %s\n", "WHEN", "ACTOR", "ACTION", "TARGET", "FROM");
        json_array_foreach(json_object_get(res, "data"), i, ev)
            printf("%-20s %-22s %-20s %-22s %s\n", str(ev, "created_at"), str(ev, "actor"),
                   str(ev, "action"), str(ev, "target"), str(ev, "address"));
        if (json_is_string(json_object_get(res, "next_cursor")))
            printf("(more: --cursor %s)\n", str(res, "next_cursor"));
    }
    json_decref(res);
    return 0;
}

const struct lk_cmd lk_cmd_login = {
    "login", "login --email E --password-stdin [--json] [--server URL]",
    "sign in; prints a session token to use as LATCHKEY_TOKEN", run_login,
    "  --email E              the user's email\n"
    "  --password-stdin       read the password from the first line of standard input\n"
    "  --server URL           the latchkey to talk to (or LATCHKEY_URL)\n"
    "  --json                 print the server's JSON answer\n"};

const struct lk_cmd lk_cmd_members = {
    "members",
    "members add --email E --role owner|editor|viewer | list | remove USER_ID | role USER_ID "
    "--role R | invitations | uninvite INVITATION_ID",
    "manage the people of a workspace (add invites; the token is printed once)", run_members,
    "  add                    invite --email with --role; prints the invitation token once\n"
    "  list                   members and their roles\n"
    "  remove USER_ID         take a member out\n"
    "  role USER_ID           give a member --role\n"
    "  invitations            pending invitations\n"
    "  uninvite INVITATION_ID revoke an invitation\n"
    "\n"
    "  --email E              add: the person's email\n"
    "  --role R               add, role: owner, editor or viewer\n"
    "  --limit N              list, invitations: page size\n"
    "  --cursor C             list, invitations: the next page\n"
    "  --workspace WS         the workspace, for a session with several memberships\n"
    LK_CLI_CONN_HELP};

const struct lk_cmd lk_cmd_accept = {
    "accept", "accept [TOKEN] --password-stdin [--json] [--server URL]",
    "accept an invitation (a new user sets this password; a known one gives theirs)",
    run_accept,
    "  --password-stdin       read the password (after the token, when TOKEN is not given)\n"
    "                         from standard input\n"
    "  --server URL           the latchkey to talk to (or LATCHKEY_URL)\n"
    "  --json                 print the server's JSON answer\n"};

const struct lk_cmd lk_cmd_audit = {"audit", "audit [--limit N] [--cursor C] [--json]",
                                    "show the workspace's audit log, newest first", run_audit,
                                    "  --limit N              page size (1-100)\n"
                                    "  --cursor C             the next page\n"
                                    "  --workspace WS         the workspace, for a session with "
                                    "several memberships\n" LK_CLI_CONN_HELP};

/* --- logout --------------------------------------------------------------------- */

/* Ends the session whose token is --token / LATCHKEY_TOKEN. */
static int run_logout(const struct lk_cmd *self, int argc, char **argv)
{
    struct args a = {0};
    json_t *res = NULL;
    int rc;

    if ((rc = parse(self, argc, argv, &a)) != 0)
        return rc == 2 ? lk_cli_usage(self) : rc;
    if (a.arg != NULL)
        return lk_cli_usage(self);
    if (a.conn.token == NULL)
        return lk_cli_fail("logout needs the session token: set --token or LATCHKEY_TOKEN");
    if (lk_cli_call(&a.conn, "POST", "/v1/auth/logout", NULL, &res))
        return 1;
    json_decref(res);
    if (a.conn.json)
        printf("{\"logged_out\": true}\n");
    else
        printf("signed out: the session token no longer works\n");
    return 0;
}

const struct lk_cmd lk_cmd_logout = {"logout", "logout [--token SESSION_TOKEN]",
                                     "end a session (the token from `latchkey login`)",
                                     run_logout, LK_CLI_CONN_HELP};
