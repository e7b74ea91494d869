/*
 * perm.h — permission strings (DESIGN §1): "resource:action", where `*` as a whole
 * segment is a wildcard ("storage:*", "*:read", "*"), and "all" means "*" (FloImg).
 * Pure functions, safe from any thread.
 */
#ifndef LK_PERM_H
#define LK_PERM_H

#include <stdbool.h>
#include <stddef.h>

#define LK_PERM_MAX_LEN 128  /* bytes in one permission string */
#define LK_PERM_MAX_COUNT 64 /* permissions on one key */

/* True when p[0..len) is a well-formed permission: 1–128 bytes of segments made of
 * [a-z0-9_.-] or a lone `*`, joined by ':'; or "all". */
bool lk_perm_valid(const char *p, size_t len);

/* True when the granted permission covers the needed one. */
bool lk_perm_covers(const char *granted, size_t glen, const char *needed, size_t nlen);

#endif
