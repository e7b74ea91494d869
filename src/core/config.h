/*
 * config.h — the server's configuration file (`latchkey serve --config FILE`):
 * one `name = value` a line, `#` starts a comment, blank lines are ignored.
 *
 *   listen      = 127.0.0.1:8080
 *   db          = sqlite:/var/lib/latchkey/latchkey.db
 *   pepper_file = /etc/latchkey/pepper
 *   threads     = 2
 *
 * Flags given on the command line win over the file. Pure: the caller reads the
 * file; this parses its text.
 */
#ifndef LK_CONFIG_H
#define LK_CONFIG_H

#include <stddef.h>

#include "core/err.h"

#define LK_CONFIG_MAX_BYTES (64 * 1024) /* a config file larger than this is refused */
#define LK_CONFIG_MAX_LINE 1024
#define LK_CONFIG_MAX_VALUE 512

struct lk_config {
    char listen[LK_CONFIG_MAX_VALUE];      /* "" when not set */
    char db[LK_CONFIG_MAX_VALUE];
    char pepper_file[LK_CONFIG_MAX_VALUE];
    int threads;                           /* 0 when not set */
};

/* Parses text[0..len) into *out (zeroed first). Returns LK_OK, or
 * LK_ERR_INVALID_REQUEST with ei->offset set to the line number (1-based),
 * ei->field to the setting and ei->detail saying what is wrong. */
enum lk_err lk_config_parse(const char *text, size_t len, struct lk_config *out /* OUT */,
                            struct lk_errinfo *ei);

#endif
