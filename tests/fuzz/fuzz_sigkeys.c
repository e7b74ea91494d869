/*
 * fuzz_sigkeys.c — lk_sigkeys_parse on arbitrary bytes (a public keys file in
 * GitHub's `public_keys` format): no crash or leak; a refusal says why in valid
 * UTF-8; a key set it accepts holds 1..32 keys and refuses a signature that is
 * not one (GitHub's sample signature over the input).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/quote.h"
#include "core/sigverify.h"

#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sig[] = "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4Xa"
                              "eSt/AO1RtBY66YcAdjxji410VQV4xg==";
    struct lk_sigkeys *k = NULL;
    struct lk_errinfo ei;

    if (size > LK_SIGKEYS_MAX_BYTES + 16)
        return 0;
    lk_errinfo_clear(&ei);
    if (lk_sigkeys_parse((const char *)data, size, &k, &ei) != LK_OK) {
        CHECK(k == NULL && ei.detail[0] != '\0');
        CHECK(lk_utf8_valid(ei.detail, strlen(ei.detail)));
        return 0;
    }
    CHECK(lk_sigkeys_count(k) >= 1 && lk_sigkeys_count(k) <= LK_SIGKEYS_MAX);
    CHECK(lk_sigkeys_current(k) <= lk_sigkeys_count(k));
    /* Whatever key this names, the sample signature is not one over these bytes. */
    CHECK(lk_sigkeys_verify(k, "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c",
                            64, sig, strlen(sig), data, size, NULL) != LK_OK);
    lk_sigkeys_free(k);
    return 0;
}
