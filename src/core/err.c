#include "core/err.h"

#include <stdarg.h>

#include "base/common.h"
#include "core/quote.h"

static const struct {
    const char *code;
    int status;
    const char *message;
    const char *hint;
} table[] = {
#define LK_ERR(e, code, status, msg, hint) {code, status, msg, hint},
#include "core/err.def"
#include "base/banned.h" /* last: bans unsafe calls below this line */
#undef LK_ERR
};

_Static_assert(LK_ARRAY_LEN(table) == LK_ERR__COUNT, "err.def and its table differ");

static enum lk_err clamp(enum lk_err e)
{
    return (unsigned)e < LK_ERR__COUNT ? e : LK_ERR_INTERNAL;
}

const char *lk_err_code(enum lk_err e)
{
    return table[clamp(e)].code;
}

int lk_err_status(enum lk_err e)
{
    return table[clamp(e)].status;
}

const char *lk_err_message(enum lk_err e)
{
    return table[clamp(e)].message;
}

const char *lk_err_hint(enum lk_err e)
{
    return table[clamp(e)].hint;
}

enum lk_err lk_err_from_code(const char *code)
{
    for (size_t i = 0; i < LK_ARRAY_LEN(table); i++)
        if (strcmp(table[i].code, code) == 0)
            return (enum lk_err)i;
    return LK_ERR__COUNT;
}

void lk_errinfo_clear(struct lk_errinfo *ei)
{
    ei->field[0] = '\0';
    ei->detail[0] = '\0';
    ei->offset = -1;
}

enum lk_err lk_errinfo_set(struct lk_errinfo *ei, enum lk_err e, const char *field, const char *fmt,
                           ...)
{
    va_list ap;

    if (ei == NULL)
        return e;
    snprintf(ei->field, sizeof(ei->field), "%s", field ? field : "");
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(ei->detail, sizeof(ei->detail), fmt, ap);
        va_end(ap);
    } else {
        ei->detail[0] = '\0';
    }
    /* Truncation may have cut a character in two; what is rendered must stay UTF-8. */
    lk_utf8_trim(ei->field);
    lk_utf8_trim(ei->detail);
    return e;
}
