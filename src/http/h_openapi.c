/*
 * h_openapi.c — GET /openapi.json, the OpenAPI 3.1 document of latchkey's own
 * HTTP API (docs/openapi.json, built into the binary), and GET
 * /v1/keys/{id}/openapi, a document of the protected API behind forward auth cut
 * down to what one key may call (service/apidocs.h).
 */
#include "base/common.h"
#include "core/secret.h"
#include "http/handlers.h"
#include "service/apidocs.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* docs/openapi.json, as the assembler includes it, NUL-terminated: one file is
 * the source of truth, and the binary serves exactly what the repository holds.
 * The path is relative to the directory the compiler runs in (the repository). */
__asm__(".pushsection .rodata\n"
        ".global lk_openapi_json\n"
        ".global lk_openapi_json_end\n"
        ".balign 16\n"
        "lk_openapi_json:\n"
        ".incbin \"docs/openapi.json\"\n"
        "lk_openapi_json_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const char lk_openapi_json[], lk_openapi_json_end[];

int lk_h_openapi(struct lk_reqctx *rc)
{
    return lk_respond_raw(rc, 200, lk_openapi_json,
                          (size_t)(lk_openapi_json_end - lk_openapi_json));
}

/* The methods a `*` rule stands for. */
static const char *const any_methods[] = {"get",     "put",  "post", "delete",
                                          "options", "head", "patch"};

/* Room for any template: a pattern of LK_ROUTES_MAX_LINE bytes is at most
 * LK_ROUTES_MAX_LINE / 2 one-segment wildcards, each written as `/{segNNN}`. */
#define TEMPLATE_MAX (LK_ROUTES_MAX_LINE * 5)

/* Turns a rule pattern into a path template: `*` is {segN}, a trailing `**` is
 * {rest}. Adds the path parameters to params. */
static void path_template(const char *pattern, char *out, size_t outsz, json_t *params)
{
    size_t n = 0;
    int seg = 0;
    const char *p = pattern;

    out[0] = '\0';
    while (*p == '/' && n < outsz) {
        const char *end = strchr(p + 1, '/');
        size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        char name[24];
        const char *what = NULL;
        if (len == 2 && p[1] == '*' && p[2] == '*') {
            snprintf(name, sizeof(name), "rest");
            what = "any rest of the path: one or more segments, `/` included (the rule "
                   "also matches the path without it)";
        } else if (len == 1 && p[1] == '*') {
            snprintf(name, sizeof(name), "seg%d", ++seg);
            what = "any one path segment";
        }
        if (what != NULL) {
            n += (size_t)snprintf(out + n, n < outsz ? outsz - n : 0, "/{%s}", name);
            json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", name,
                                                    "in", "path", "required", 1, "description",
                                                    what, "schema", "type", "string"));
        } else {
            n += (size_t)snprintf(out + n, n < outsz ? outsz - n : 0, "/%.*s", (int)len, p + 1);
        }
        if (end == NULL)
            break;
        p = end;
    }
    if (out[0] == '\0')
        snprintf(out, outsz, "/");
}

static json_t *refused(void)
{
    return json_pack("{s:s}", "$ref", "#/components/responses/Refused");
}

static json_t *operation(const struct lk_key_op *o, const struct lk_key_row *k, const char *method,
                         json_t *params)
{
    int64_t cost = k->env == LK_ENV_TEST ? 0 : o->cost;
    char id[64], desc[1600];
    size_t n;
    json_t *op, *resp;

    snprintf(id, sizeof(id), "%s_line%ld", method, o->line);
    if (o->needs == LK_NEEDS_PUBLIC)
        n = (size_t)snprintf(desc, sizeof(desc), "Public: no key needed.");
    else if (o->needs == LK_NEEDS_ANY)
        n = (size_t)snprintf(desc, sizeof(desc), "Any valid key.");
    else
        n = (size_t)snprintf(desc, sizeof(desc), "Needs the permissions `%s`.", o->query);
    if (n < sizeof(desc))
        n += (size_t)snprintf(desc + n, sizeof(desc) - n, " Costs %lld credits a call%s.",
                              (long long)cost,
                              k->env == LK_ENV_TEST && o->cost ? " (test keys spend nothing)" : "");
    if (o->env >= 0 && n < sizeof(desc))
        n += (size_t)snprintf(desc + n, sizeof(desc) - n, " Only for %s keys.",
                              lk_env_name((enum lk_env)o->env));
    if (n < sizeof(desc))
        snprintf(desc + n, sizeof(desc) - n, " Route rule at line %ld of the routes file.",
                 o->line);
    resp = json_pack("{s:{s:s}, s:o, s:o, s:o}", "200", "description", "the protected API's answer",
                     "401", refused(), "403", refused(), "429", refused());
    if (cost > 0)
        json_object_set_new(resp, "402", refused());
    op = json_pack("{s:s, s:s, s:o, s:I, s:s*}", "operationId", id, "description", desc,
                   "responses", resp, "x-latchkey-cost", (json_int_t)cost, "x-latchkey-permission",
                   o->needs == LK_NEEDS_QUERY ? o->query : NULL);
    if (json_array_size(params) > 0)
        json_object_set(op, "parameters", params);
    if (o->needs == LK_NEEDS_PUBLIC)
        json_object_set_new(op, "security", json_array());
    return op;
}

static json_t *key_document(const struct lk_key_ops *ko)
{
    const struct lk_key_row *k = &ko->key;
    const char *env = lk_env_name(k->env);
    json_t *paths = json_object(), *perms, *doc;
    char title[LK_NAME_MAX + 64], desc[512];

    for (size_t i = 0; i < ko->n; i++) {
        const struct lk_key_op *o = &ko->ops[i];
        json_t *params = json_array(), *item;
        char tpl[TEMPLATE_MAX];
        char lower[16];
        path_template(o->pattern, tpl, sizeof(tpl), params);
        /* jansson refuses a key that is not UTF-8 (a pattern's bytes are not
         * checked): such a rule is left out rather than break the document. */
        if ((item = json_object_get(paths, tpl)) == NULL &&
            json_object_set_new(paths, tpl, item = json_object()) != 0) {
            json_decref(params);
            continue;
        }
        if (strcmp(o->method, "*") == 0) {
            for (size_t m = 0; m < LK_ARRAY_LEN(any_methods); m++)
                if (json_object_get(item, any_methods[m]) == NULL) /* an earlier rule wins */
                    json_object_set_new(item, any_methods[m],
                                        operation(o, k, any_methods[m], params));
        } else {
            size_t j;
            for (j = 0; o->method[j] != '\0' && j + 1 < sizeof(lower); j++)
                lower[j] = (char)(o->method[j] >= 'A' && o->method[j] <= 'Z' ? o->method[j] + 32
                                                                             : o->method[j]);
            lower[j] = '\0';
            if (json_object_get(item, lower) == NULL)
                json_object_set_new(item, lower, operation(o, k, lower, params));
        }
        json_decref(params);
    }
    perms = json_loads(k->permissions ? k->permissions : "[]", 0, NULL);
    snprintf(title, sizeof(title), "API for key %s", k->name);
    snprintf(desc, sizeof(desc),
             "The operations key %s (%s environment) may call through latchkey's forward "
             "auth, from the route rules. Send the key in one of the security schemes' "
             "places; a refusal is latchkey's error.",
             k->id, env);
    doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:o}, s:o, s:[{s:[]}, {s:[]}, {s:[]}, {s:[]}],"
        " s:{s:{s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}},"
        " s:{s:{s:s, s:{s:{s:{s:s, s:{s:{s:s}}}}}}}}}",
        "openapi", "3.1.0", "info", "title", title, "version", "1", "description", desc,
        "x-latchkey-key", "id", k->id, "name", k->name, "environment", env, "permissions",
        perms ? perms : json_array(), "paths", paths, "security", "bearer", "apiKey", "authToken",
        "authTokenQuery", "components", "securitySchemes", "bearer", "type", "http", "scheme",
        "bearer", "apiKey", "type", "apiKey", "in", "header", "name", "X-API-Key", "authToken",
        "type", "apiKey", "in", "header", "name", "X-AUTH-TOKEN", "authTokenQuery", "type",
        "apiKey", "in", "query", "name", "auth_token", "responses", "Refused", "description",
        "refused by latchkey, in its error shape", "content", "application/json", "schema", "type",
        "object", "properties", "error", "type", "object");
    return doc;
}

void lk_h_keys_openapi(struct lk_mreq *m)
{
    struct lk_actor who;
    struct lk_key_ops ko;
    size_t n = strlen(m->params[0]);
    enum lk_err e;
    json_t *doc;

    if (lk_mreq_actor(m, &who) != LK_OK)
        return;
    if (m->param_too_long || n == 0 || n >= LK_ID_MAX) {
        lk_mreq_error(m, LK_ERR_NOT_FOUND, NULL);
        return;
    }
    if ((e = lk_keys_operations(m->app, &who, m->params[0], &ko)) != LK_OK) {
        lk_key_ops_release(&ko);
        lk_mreq_error(m, e, NULL);
        return;
    }
    doc = key_document(&ko);
    lk_key_ops_release(&ko);
    if (doc == NULL) {
        lk_mreq_error(m, LK_ERR_INTERNAL, NULL);
        return;
    }
    lk_mreq_json(m, 200, doc);
}
