/*
 * err.h — latchkey's one error enum, generated from err.def, and its lookups.
 * Every response body latchkey renders for an error comes from this table.
 */
#ifndef LK_ERR_H
#define LK_ERR_H

#include <stddef.h>

enum lk_err {
#define LK_ERR(e, code, status, msg, hint) LK_ERR_##e,
#include "core/err.def"
#undef LK_ERR
    LK_ERR__COUNT
};

#define LK_OK LK_ERR_OK

/* Lookups for a valid enum value; out-of-range values map to internal_error. */
const char *lk_err_code(enum lk_err e);
int lk_err_status(enum lk_err e);
const char *lk_err_message(enum lk_err e);
const char *lk_err_hint(enum lk_err e);

/* Finds the enum for a code string ("invalid_key"); returns LK_ERR__COUNT if none. */
enum lk_err lk_err_from_code(const char *code);

/*
 * Where and why a parser or validator failed, so a 400 can point at it.
 * `field` and `detail` are NUL-terminated (empty when unknown); `offset` is a
 * byte offset into the input or -1.
 */
struct lk_errinfo {
    char field[64];
    char detail[192];
    long offset;
};

void lk_errinfo_clear(struct lk_errinfo *ei);

/* Fills ei (if not NULL) and returns e. field and detail are cut to fit and then
 * to valid UTF-8; a message quoting outside input quotes it with lk_quote(). */
enum lk_err lk_errinfo_set(struct lk_errinfo *ei, enum lk_err e, const char *field, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

#endif
