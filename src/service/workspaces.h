/*
 * workspaces.h — workspaces (DESIGN §1): each is created with its root key and
 * its two application keys, read-write (`*`) and read-only (`*:read`) — Flotiq.
 * The first workspace is the operator's: its root keys create the others.
 */
#ifndef LK_WORKSPACES_H
#define LK_WORKSPACES_H

#include "core/quota.h"
#include "service/auth.h"

struct lk_ws_spec {
    char name[LK_NAME_MAX + 1];
    char key_prefix[LK_PREFIX_MAX + 1]; /* "" for the default "lk" */
    enum lk_key_format key_format;
    int64_t quota, test_quota;        /* -1: unlimited */
    bool has_quota, has_test_quota;   /* given in the request (PATCH changes only those) */
};

/* The secrets a new workspace comes with, shown once. Caller wipes them. */
struct lk_ws_secrets {
    char root_key[LK_SECRET_MAX];
    char read_write[LK_SECRET_MAX];
    char read_only[LK_SECRET_MAX];
};

/* Creates a workspace. `who` holds workspaces:write (lk_auth_actor checked it:
 * only root keys of the operator workspace may). */
enum lk_err lk_workspaces_create(struct lk_app *app, const struct lk_actor *who,
                                 const struct lk_ws_spec *spec, int64_t now,
                                 struct lk_ws_row *out /* OUT */,
                                 struct lk_ws_secrets *secrets /* OUT */);

/* Creates the operator workspace of an empty database (`latchkey init`).
 * LK_ERR_CONFLICT, with out describing the existing one, if there is any; the
 * check and the creation are one transaction. */
enum lk_err lk_workspaces_bootstrap(struct lk_app *app, int64_t now,
                                    struct lk_ws_row *out /* OUT */,
                                    struct lk_ws_secrets *secrets /* OUT */);

/* Sets the quotas the spec gives of workspace `id` (`who` holds
 * workspaces:write); *out
 * gets the workspace after the change. */
enum lk_err lk_workspaces_set_quota(struct lk_app *app, const struct lk_actor *who,
                                    const char *id, const struct lk_ws_spec *spec, int64_t now,
                                    struct lk_ws_row *out /* OUT */);

enum lk_err lk_workspaces_list(struct lk_app *app, const struct lk_actor *who, lk_ws_row_cb cb,
                               void *arg);

/* The actor's own workspace. */
enum lk_err lk_workspaces_own(struct lk_app *app, const struct lk_actor *who,
                              struct lk_ws_row *out /* OUT */);

/* The workspace with this number (Flexweg's folder id), whoever asks: the
 * caller then acts in it only through a membership. LK_ERR_NOT_FOUND. */
enum lk_err lk_workspaces_get_by_number(struct lk_app *app, int64_t number,
                                        struct lk_ws_row *out /* OUT */);

/* A workspace's quotas and its checks per day, as the counters hold them now. */
struct lk_ws_quota {
    struct lk_quota live, test;
    int64_t quota, test_quota; /* -1: unlimited */
};

/* The actor's workspace's quota state (GET /v1/quota). */
void lk_workspaces_quota(struct lk_app *app, const struct lk_actor *who,
                         struct lk_ws_quota *out /* OUT */);

#endif
