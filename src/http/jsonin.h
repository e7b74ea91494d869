/*
 * jsonin.h — decoders for JSON request bodies. Each takes the raw body, checks
 * that it is one JSON object (LK_ERR_BAD_JSON otherwise), that it has no unknown
 * fields and that every field has the right type and range
 * (LK_ERR_INVALID_REQUEST, with ei->field naming the field), and fills a plain
 * struct. Every decoder is a table of its fields read by one driver
 * (docs/internals/jsonin.md); messages quote input only through lk_quote(), so
 * ei is always bounded, valid UTF-8. Pure: no I/O, no globals, safe from any
 * thread; tests/fuzz/fuzz_jsonin.c runs them all.
 */
#ifndef LK_JSONIN_H
#define LK_JSONIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "service/keys.h"
#include "service/users.h"
#include "service/verify.h"
#include "service/workspaces.h"

#define LK_JSON_MAX_BODY (64 * 1024) /* bytes in a request body */
#define LK_JSON_MAX_META 4096        /* bytes of serialised `meta` */
#define LK_JSON_MAX_EXPIRES_IN 315360000 /* ten years */

/* POST /v1/verify. Views point into the decoder's own copies, owned by the struct. */
/* The named rate limits a verify body asks for (its "ratelimits"). */
struct lk_verify_ratelimits {
    int n;
    struct lk_rl_use use[LK_KEY_RATE_LIMITS_MAX]; /* names point into name[] */
    char name[LK_KEY_RATE_LIMITS_MAX][LK_RL_NAME_MAX + 1];
};

struct lk_verify_body {
    char *key;         /* NULL when absent */
    size_t key_len;
    int environment;   /* -1 when absent, else enum lk_env */
    char *permissions; /* NULL when absent */
    int64_t cost;      /* 0 when absent */
    bool has_cost;     /* the body had a `cost` (0 included) */
    struct lk_verify_ratelimits *rl; /* owned; NULL when the body named none */
};

enum lk_err lk_jsonin_verify(const char *body, size_t len, struct lk_verify_body *out /* OUT */,
                             struct lk_errinfo *ei);
/* Wipes and frees what out holds (the key is a secret). */
void lk_verify_body_release(struct lk_verify_body *b);

/* POST /v1/keys (create = true) and PATCH /v1/keys/{id} (create = false). `now`
 * converts `expires_at` given as Unix seconds or RFC 3339. Caller releases with
 * lk_key_spec_release(). */
enum lk_err lk_jsonin_key_spec(const char *body, size_t len, bool create,
                               struct lk_key_spec *out /* OUT */, struct lk_errinfo *ei);

/* POST /v1/keys/{id}/regenerate; an empty body means the defaults. */
enum lk_err lk_jsonin_regenerate(const char *body, size_t len, int64_t *grace_s /* OUT */,
                                 struct lk_errinfo *ei);

/* POST /v1/auth/login: email and password into caller buffers (the password is
 * NUL-terminated; the caller wipes it). */
enum lk_err lk_jsonin_login(const char *body, size_t len, char *email /* OUT */, size_t email_sz,
                            char *password /* OUT */, size_t password_sz, struct lk_errinfo *ei);

/* POST /v1/keys/generate-temp: which workspace (a number, *folder > 0, or an id in
 * workspace), and the key's expires_in, permissions and name in *spec. */
enum lk_err lk_jsonin_temp(const char *body, size_t len, int64_t *folder /* OUT */,
                           char *workspace /* OUT */, size_t workspace_sz,
                           struct lk_key_spec *spec /* OUT */, struct lk_errinfo *ei);

/* POST /v1/workspaces (create = true: name required) and PATCH
 * /v1/workspaces/{id} (create = false: quota and test_quota only). */
enum lk_err lk_jsonin_workspace(const char *body, size_t len, bool create,
                                struct lk_ws_spec *out /* OUT */, struct lk_errinfo *ei);

#define LK_JSON_MAX_CREDITS 1000000000000000 /* 10^15 credits in one top-up */

/* POST /v1/credits: amount and an optional note ("" when absent). */
enum lk_err lk_jsonin_top_up(const char *body, size_t len, int64_t *amount /* OUT */,
                             char *note /* OUT */, size_t note_sz, struct lk_errinfo *ei);

/* --- people: invitations and roles --- */

/* POST /v1/members (an invitation): email and role; nothing else (a password is
 * an unknown field: the invited person chooses theirs). */
enum lk_err lk_jsonin_invite(const char *body, size_t len, char *email /* OUT */, size_t email_sz,
                             enum lk_role *role /* OUT */, struct lk_errinfo *ei);
/* PATCH /v1/members/{user_id}: {"role"}. */
enum lk_err lk_jsonin_role(const char *body, size_t len, enum lk_role *role /* OUT */,
                           struct lk_errinfo *ei);
/* POST /v1/invitations/accept: token and password (8 to password_sz - 1 bytes)
 * into caller buffers, both NUL-terminated; the caller wipes both. */
enum lk_err lk_jsonin_accept(const char *body, size_t len, char *token /* OUT */, size_t token_sz,
                             char *password /* OUT */, size_t password_sz,
                             struct lk_errinfo *ei);

#endif
