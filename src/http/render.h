/*
 * render.h — the JSON shapes of latchkey's objects (docs/http-api.md).
 * Each returns a new reference the caller owns.
 */
#ifndef LK_RENDER_H
#define LK_RENDER_H

#include <jansson.h>

#include "service/keys.h"
#include "service/workspaces.h"

const char *lk_render_kind(enum lk_key_kind kind);

/* A key as the API shows it; `secret` (may be NULL) is added as "secret". */
json_t *lk_render_key(const struct lk_key_row *k, int64_t now, const char *secret);

json_t *lk_render_ws(const struct lk_ws_row *w);

/* RFC 3339 string, or JSON null for 0. */
json_t *lk_render_time(int64_t t);

#endif
