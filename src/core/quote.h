/*
 * quote.h — the one way a message quotes outside input (a field name, a config
 * word, a header value): bounded, valid UTF-8, and free of control characters,
 * so any message built with it can be rendered as a JSON string and printed to a
 * terminal as it is.
 *
 * The quotation keeps every well-formed UTF-8 character of the input (shortest
 * form, no surrogates, at most U+10FFFF) whole and escapes everything else as
 * text: a byte that is not part of such a character, and every control
 * character (U+0000-U+001F, U+007F, U+0080-U+009F), becomes `\xNN` (each byte of
 * a C1 control so escaped), and `\` itself becomes `\\`, so the quotation reads
 * back unambiguously. When the input does not fit, it is cut after the last
 * whole character or escape that leaves room for "...", which is appended: never
 * inside a character or an escape.
 *
 * Pure: no I/O, no allocation, safe from any thread.
 */
#ifndef LK_QUOTE_H
#define LK_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

/* A buffer for a quotation in a message: up to 63 bytes of output and the NUL,
 * the size of lk_errinfo.field. */
#define LK_QUOTE_SIZE 64

/* Quotes in[0..len) into out (outsz ≥ 4 bytes, NUL-terminated), as above.
 * Returns out, so it can stand as a printf argument. in may hold NUL bytes. */
char *lk_quote(char *out /* OUT */, size_t outsz, const char *in, size_t len);

/* The length of the longest prefix of s[0..len) that is whole, valid UTF-8
 * (the rule above, without the control-character part). */
size_t lk_utf8_valid_prefix(const char *s, size_t len);

/* True when all of s[0..len) is valid UTF-8. */
bool lk_utf8_valid(const char *s, size_t len);

/* Makes the NUL-terminated s valid UTF-8 in place by cutting it before the
 * first byte that is not (used after a truncating snprintf, which may cut a
 * character in two). */
void lk_utf8_trim(char *s);

#endif
