#include "core/secret.h"

#include <pthread.h>
#include <stdatomic.h>

#include "base/common.h"
#include "core/base62.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define BODY_LEN LK_BASE62_LEN_256
#define CHECK_LEN LK_BASE62_LEN_U32
#define ENV_PART_LEN 6 /* "_live_" */
#define HEX_LEN 64

const char *lk_env_name(enum lk_env env)
{
    return env == LK_ENV_TEST ? "test" : "live";
}

int lk_env_parse(const char *s, enum lk_env *out)
{
    if (strcmp(s, "live") == 0)
        *out = LK_ENV_LIVE;
    else if (strcmp(s, "test") == 0)
        *out = LK_ENV_TEST;
    else
        return -1;
    return 0;
}

bool lk_secret_prefix_valid(const char *p, size_t len)
{
    if (len == 0 || len > LK_PREFIX_MAX || p[0] < 'a' || p[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* CRC-32 (the zlib/IEEE polynomial), sixteen bytes per step from sixteen
 * tables built once: a secret's ~50 bytes are three steps and a short tail, a
 * few times faster than zlib's call (tuned for long buffers), and it runs on
 * every verification. */
#define CRC_TABLES 16
static uint32_t crc_tab[CRC_TABLES][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static _Atomic bool crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < CRC_TABLES; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    atomic_store_explicit(&crc_ready, true, memory_order_release);
}

static uint32_t crc_of(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t c = 0xffffffffu;

    /* The flag spares the call into pthread_once once the tables exist. */
    if (!atomic_load_explicit(&crc_ready, memory_order_acquire))
        pthread_once(&crc_once, crc_init);
    for (; len >= 16; len -= 16, p += 16) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_tab[15][lo & 0xff] ^ crc_tab[14][(lo >> 8) & 0xff] ^
            crc_tab[13][(lo >> 16) & 0xff] ^ crc_tab[12][lo >> 24] ^ crc_tab[11][p[4]] ^
            crc_tab[10][p[5]] ^ crc_tab[9][p[6]] ^ crc_tab[8][p[7]] ^ crc_tab[7][p[8]] ^
            crc_tab[6][p[9]] ^ crc_tab[5][p[10]] ^ crc_tab[4][p[11]] ^ crc_tab[3][p[12]] ^
            crc_tab[2][p[13]] ^ crc_tab[1][p[14]] ^ crc_tab[0][p[15]];
    }
    while (len-- > 0)
        c = crc_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static bool is_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The number of base62 characters at s[0..len). */
static size_t base62_run(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && lk_base62_is_digit(s[n]))
        n++;
    return n;
}

/* "_live_" or "_test_" at s (room for ENV_PART_LEN), the word in any case. */
static bool is_env_part(const char *s)
{
    char w[4];

    if (s[0] != '_' || s[5] != '_')
        return false;
    for (size_t i = 0; i < 4; i++)
        w[i] = s[1 + i] >= 'A' && s[1 + i] <= 'Z' ? (char)(s[1 + i] + 32) : s[1 + i];
    return memcmp(w, "live", 4) == 0 || memcmp(w, "test", 4) == 0;
}

bool lk_secret_scan(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t run = base62_run(s + i, len - i);
        if (run >= LK_SECRET_SCAN_RUN)
            return true;
        if (run > 0) {
            i += run;
            continue;
        }
        if (s[i] == '_' && len - i > ENV_PART_LEN && is_env_part(s + i) &&
            base62_run(s + i + ENV_PART_LEN, len - i - ENV_PART_LEN) >= LK_SECRET_SCAN_AFTER_ENV)
            return true;
        i++;
    }
    return false;
}

enum lk_err lk_secret_parse_shape(const char *s, size_t len, struct lk_secret_view *out)
{
    const size_t tail = ENV_PART_LEN + BODY_LEN + CHECK_LEN;
    const char *envp;

    if (len == HEX_LEN && is_lower_hex(s, len)) {
        *out = (struct lk_secret_view){LK_FORMAT_HEX, LK_ENV_LIVE, NULL, 0, s, len};
        return LK_OK;
    }
    /* The prefix may itself hold '_', so parse from the fixed-width right end. */
    if (len <= tail || len > tail + LK_PREFIX_MAX)
        return LK_ERR_MALFORMED_KEY;
    envp = s + len - tail;
    if (memcmp(envp, "_live_", ENV_PART_LEN) == 0)
        out->env = LK_ENV_LIVE;
    else if (memcmp(envp, "_test_", ENV_PART_LEN) == 0)
        out->env = LK_ENV_TEST;
    else
        return LK_ERR_MALFORMED_KEY;
    if (!lk_secret_prefix_valid(s, (size_t)(envp - s)))
        return LK_ERR_MALFORMED_KEY;
    if (!lk_base62_all_digits(s + len - BODY_LEN - CHECK_LEN, BODY_LEN + CHECK_LEN))
        return LK_ERR_MALFORMED_KEY;
    out->format = LK_FORMAT_DEFAULT;
    out->prefix = s;
    out->prefix_len = (size_t)(envp - s);
    out->body = s + len - BODY_LEN - CHECK_LEN;
    out->body_len = BODY_LEN;
    return LK_OK;
}

bool lk_secret_checksum_ok(const char *s, size_t len, const struct lk_secret_view *v)
{
    uint32_t want;

    if (v->format == LK_FORMAT_HEX)
        return true; /* legacy secrets carry none */
    return lk_base62_decode_u32(s + len - CHECK_LEN, &want) && crc_of(s, len - CHECK_LEN) == want;
}

enum lk_err lk_secret_parse(const char *s, size_t len, struct lk_secret_view *out)
{
    enum lk_err e = lk_secret_parse_shape(s, len, out);

    return e == LK_OK && !lk_secret_checksum_ok(s, len, out) ? LK_ERR_MALFORMED_KEY : e;
}

size_t lk_secret_format(enum lk_key_format fmt, const char *prefix, enum lk_env env,
                        const uint8_t bytes[LK_SECRET_BYTES], char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t n;

    if (fmt == LK_FORMAT_HEX) {
        for (size_t i = 0; i < LK_SECRET_BYTES; i++) {
            out[2 * i] = hex[bytes[i] >> 4];
            out[2 * i + 1] = hex[bytes[i] & 15];
        }
        out[HEX_LEN] = '\0';
        return HEX_LEN;
    }
    n = strlen(prefix);
    lk_assert(lk_secret_prefix_valid(prefix, n));
    memcpy(out, prefix, n);
    out[n++] = '_';
    memcpy(out + n, lk_env_name(env), 4);
    n += 4;
    out[n++] = '_';
    lk_assert(lk_base62_encode(bytes, LK_SECRET_BYTES, out + n, BODY_LEN));
    n += BODY_LEN;
    lk_base62_encode_u32(crc_of(out, n), out + n);
    n += CHECK_LEN;
    out[n] = '\0';
    return n;
}

void lk_secret_hint(const struct lk_secret_view *v, char *out)
{
    const char *last4 = v->body + v->body_len - 4;

    if (v->format == LK_FORMAT_HEX)
        snprintf(out, LK_HINT_MAX, "...%.4s", last4);
    else
        snprintf(out, LK_HINT_MAX, "%.*s_%s_...%.4s", (int)v->prefix_len, v->prefix,
                 lk_env_name(v->env), last4);
}

const char *lk_secret_diagnose(const char *s, size_t len)
{
    const size_t tail = ENV_PART_LEN + BODY_LEN + CHECK_LEN;
    struct lk_secret_view v;
    const char *envp;

    if (lk_secret_parse(s, len, &v) == LK_OK)
        return NULL;
    if (len == 0)
        return "empty";
    if (len == HEX_LEN)
        return "64 characters but not all lowercase hex (the legacy format)";
    if (len <= tail || len > tail + LK_PREFIX_MAX)
        return "wrong length: want PREFIX_live_ or PREFIX_test_ and 49 base62 characters";
    envp = s + len - tail;
    if (memcmp(envp, "_live_", ENV_PART_LEN) != 0 && memcmp(envp, "_test_", ENV_PART_LEN) != 0)
        return memmem(s, len, "_live_", ENV_PART_LEN) || memmem(s, len, "_test_", ENV_PART_LEN)
                   ? "wrong length: want 49 base62 characters after _live_ or _test_"
                   : "no _live_ or _test_ where the environment belongs";
    if (!lk_secret_prefix_valid(s, (size_t)(envp - s)))
        return "the prefix must be a lowercase letter, then up to 15 of a-z, 0-9 and _";
    if (!lk_base62_all_digits(s + len - BODY_LEN - CHECK_LEN, BODY_LEN + CHECK_LEN))
        return "the body and checksum must be base62 characters (0-9, A-Z, a-z)";
    return "the checksum does not match: a character was changed, lost or added";
}
