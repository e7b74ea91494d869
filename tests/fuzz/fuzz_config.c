/*
 * fuzz_config.c — the config file parser: never crashes; what it accepts is
 * NUL-terminated and in range, and a failure names a line inside the input;
 * trusted_proxies ranges stay within the list's cap and their prefix length, with
 * no bit set past the prefix.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_config c;
    struct lk_errinfo ei;

    lk_errinfo_clear(&ei);
    if (lk_config_parse((const char *)data, size, &c, &ei) == LK_OK) {
        if (memchr(c.listen, '\0', sizeof(c.listen)) == NULL ||
            memchr(c.db, '\0', sizeof(c.db)) == NULL ||
            memchr(c.pepper_file, '\0', sizeof(c.pepper_file)) == NULL || c.threads < 0 ||
            c.threads > 64)
            __builtin_trap();
        if (c.trusted_proxies.n > LK_NETADDR_LIST_MAX)
            __builtin_trap();
        for (size_t i = 0; i < c.trusted_proxies.n; i++) {
            const struct lk_netaddr_range *r = &c.trusted_proxies.r[i];
            if (r->bits > 128)
                __builtin_trap();
            for (int b = r->bits; b < 128; b++)
                if (r->addr.b[b / 8] & (0x80 >> (b % 8)))
                    __builtin_trap();
        }
    } else if (ei.offset < 0 || (size_t)ei.offset > size + 1) {
        __builtin_trap();
    }
    return 0;
}
