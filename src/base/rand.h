/*
 * rand.h — the OS CSPRNG (OpenSSL RAND_bytes) and ids made from it.
 * Safe from any thread.
 */
#ifndef LK_RAND_H
#define LK_RAND_H

#include <stddef.h>

/* Fills buf with n CSPRNG bytes; aborts if the CSPRNG fails (never limp on with weak keys). */
void lk_rand_bytes(void *buf, size_t n);

/* Writes `<prefix><16 base62 chars>` and a NUL into out (needs strlen(prefix) + 17 bytes).
 * Ids are not secrets: they name objects. */
void lk_rand_id(const char *prefix, char *out, size_t outsz);

#endif
