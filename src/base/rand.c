#include "base/rand.h"

#include <openssl/rand.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

void lk_rand_bytes(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        fputs("latchkey: CSPRNG failure\n", stderr);
        abort();
    }
}

void lk_rand_id(const char *prefix, char *out, size_t outsz)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char raw[16];
    size_t plen = strlen(prefix), i;

    lk_assert(outsz >= plen + 17);
    lk_rand_bytes(raw, sizeof(raw));
    memcpy(out, prefix, plen);
    /* 256 % 62 != 0, so reject-free modulo is slightly biased; fine for names, not secrets. */
    for (i = 0; i < 16; i++)
        out[plen + i] = alphabet[raw[i] % 62];
    out[plen + 16] = '\0';
}
