/*
 * h_unkey.h — what the Unkey-compatible routes (POST /v2/keys.*, /v2/apis.listKeys)
 * share: the envelope `{"meta": {"requestId"}, "data": ...}`, Unkey's error shape
 * (`{"meta", "error": {"title", "detail", "status", "type", "errors"?}}`, a 429 as
 * application/problem+json), a table-driven check of request bodies, the
 * credential check in Unkey's error shape, and the mapping between Unkey's
 * `.`-separated permissions and latchkey's `:`-separated ones. docs/unkey.md
 * says why each choice was made.
 *
 * Invariants: an answer never holds a JSON null (optional fields are left out);
 * times are Unix milliseconds; `apiId` is the caller's workspace id.
 */
#ifndef LK_H_UNKEY_H
#define LK_H_UNKEY_H

#include <jansson.h>

#include "http/mgmt.h"
#include "http/respond.h"
#include "service/keys.h"

/* An error rendered for the Unkey surface: status, content type and body. */
struct lk_unkey_error {
    int status;
    const char *content_type; /* static: application/json or application/problem+json */
    char *body;               /* malloc'd; caller frees */
    size_t len;
};

/* Renders latchkey's e (with ei's field and detail, may be NULL) in Unkey's
 * shape. ei->field becomes errors[0].location "body.<field>" on a 400, and
 * a 404 about field "apiId" is Unkey's api_not_found. Never fails. */
void lk_unkey_error_render(enum lk_err e, const struct lk_errinfo *ei, const char *request_id,
                           struct lk_unkey_error *out /* OUT */);

/* Answers e in Unkey's shape from a worker / from the event loop. */
void lk_unkey_mreq_error(struct lk_mreq *m, enum lk_err e, const struct lk_errinfo *ei);
int lk_unkey_respond_error(struct lk_reqctx *rc, enum lk_err e, const struct lk_errinfo *ei);

/* Answers 200 {"meta": {"requestId"}, "data": data} plus `extra`'s members
 * (may be NULL; e.g. "pagination"). Takes both references. */
void lk_unkey_mreq_data(struct lk_mreq *m, json_t *data, json_t *extra);

/* The credential key[0..len) (NULL: none) of a v2 call: a root or application
 * key, never a session, holding `need`, checked from memory (safe on the event
 * loop). Returns LK_OK with *who, or the outcome lk_auth_actor gives. */
enum lk_err lk_unkey_credential(struct lk_app *app, const char *key, size_t len, int64_t now,
                                const char *address, unsigned need, struct lk_actor *who,
                                struct lk_errinfo *ei);

/* The same from a worker, for m->need. On failure answers in Unkey's shape and
 * returns false. */
bool lk_unkey_actor(struct lk_mreq *m, struct lk_actor *who /* OUT */);

/* --- request bodies ---------------------------------------------------------- */

enum lk_unkey_type {
    LK_UT_STRING,
    LK_UT_INT,
    LK_UT_BOOL,
    LK_UT_OBJECT,
    LK_UT_STRINGS,
    LK_UT_OBJECTS
};

#define LK_UF_REQUIRED 1u
#define LK_UF_NULLABLE 2u /* null is allowed (and means "clear") */

/* One member a body may have. max bounds a string's bytes, an array's items or
 * an integer's value; min an integer's value or a string's bytes. */
struct lk_unkey_field {
    const char *name;
    enum lk_unkey_type type;
    unsigned flags;
    int64_t min, max;
};

/* Parses body into *root (caller decrefs) and checks it against the table:
 * a JSON object, no member the table does not name, each of its type and
 * bounds, the required ones present. On failure returns the error with ei set
 * (field names the member, as Unkey's errors[].location). `prefix` names the
 * object in messages ("" for the body itself, "credits." inside). */
enum lk_err lk_unkey_body(const char *body, size_t len, const struct lk_unkey_field *fields,
                          size_t n, json_t **root /* OUT */, struct lk_errinfo *ei);
/* The same check for an object inside the body. */
enum lk_err lk_unkey_object(json_t *obj, const char *prefix, const struct lk_unkey_field *fields,
                            size_t n, struct lk_errinfo *ei);

/* Reads body member `keyId` of a body already checked (a string), into id
 * (LK_ID_MAX). False when it cannot be a key id (then any lookup is 404). */
bool lk_unkey_key_id(json_t *root, char id[LK_ID_MAX] /* OUT */);

/* --- permissions -------------------------------------------------------------- */

/* Unkey's "a.b.*" is latchkey's "a:b:*": each `.` becomes `:`. Converts
 * in[0..len) into out (outsz bytes, NUL-terminated). False when it does not fit
 * or in holds a `:` (which Unkey's names cannot tell from a `.`). */
bool lk_unkey_perm_in(const char *in, size_t len, char *out, size_t outsz);

/* The latchkey permission p[0..len) as Unkey shows it (each `:` a `.`), into
 * out (outsz bytes, NUL-terminated, cut to fit). */
void lk_unkey_perm_out(const char *p, size_t len, char *out, size_t outsz);

/* A JSON array of Unkey permission names into latchkey's JSON array text
 * (malloc'd, caller frees) in *out; each must be a valid permission once
 * converted. `field` names the member in errors. */
enum lk_err lk_unkey_perms_in(json_t *arr, const char *field, char **out /* OUT */,
                              struct lk_errinfo *ei);

/* latchkey's permission JSON array text as a JSON array of Unkey names. */
json_t *lk_unkey_perms_out(const char *permissions_json);

/* --- keys --------------------------------------------------------------------- */

/* The id Unkey shows for key key_id's rate limit `name` (name_len bytes) into
 * out (LK_UNKEY_RL_ID_MAX bytes): "rl_", the key's id, "_" and the name's
 * letters and digits (other bytes '_'); nothing in it needs escaping. */
#define LK_UNKEY_RL_ID_MAX (LK_ID_MAX + 72)
void lk_unkey_rl_id(const char *key_id, const char *name, size_t name_len, char *out, size_t outsz);

/* Unkey's KeyResponseData for k. */
json_t *lk_unkey_render_key(const struct lk_key_row *k);

#endif
