#include "core/netaddr.h"

#include <arpa/inet.h>

#include "base/common.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const struct lk_netaddr *a)
{
    return memcmp(a->b, v4_mapped, sizeof(v4_mapped)) == 0;
}

int lk_netaddr_parse(const char *s, size_t len, struct lk_netaddr *out)
{
    char buf[LK_NETADDR_TEXT_MAX];
    uint8_t v4[4];

    if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* glibc's inet_pton takes only the strict dotted quad (no octal, no short
     * forms), so one address has one IPv4 spelling. */
    if (inet_pton(AF_INET, buf, v4) == 1) {
        memcpy(out->b, v4_mapped, sizeof(v4_mapped));
        memcpy(out->b + 12, v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -1;
}

/* The dotted quad, as inet_ntop writes it, without its sprintf: every request
 * formats its client's address. out has room for 16 bytes. */
static void format_v4(const uint8_t *b, char *out)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

void lk_netaddr_format(const struct lk_netaddr *a, char *out, size_t outsz)
{
    if (is_v4(a) && outsz >= 16)
        format_v4(a->b + 12, out);
    else if (is_v4(a))
        inet_ntop(AF_INET, a->b + 12, out, (socklen_t)outsz);
    else
        inet_ntop(AF_INET6, a->b, out, (socklen_t)outsz);
}

int lk_netaddr_canon(const char *s, size_t len, char *out, size_t outsz)
{
    struct lk_netaddr a;

    if (outsz < LK_NETADDR_TEXT_MAX || lk_netaddr_parse(s, len, &a) != 0)
        return -1;
    lk_netaddr_format(&a, out, outsz);
    return 0;
}

int lk_netaddr_range_parse(const char *s, size_t len, struct lk_netaddr_range *out)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    int64_t bits;

    if (lk_netaddr_parse(s, alen, &out->addr) != 0)
        return -1;
    bits = 128;
    if (slash != NULL) {
        bool v4 = is_v4(&out->addr) && memchr(s, ':', alen) == NULL;
        if (lk_parse_i64(slash + 1, len - alen - 1, 0, v4 ? 32 : 128, &bits) != 0)
            return -1;
        if (v4)
            bits += 96;
    }
    out->bits = (uint8_t)bits;
    for (int i = 0; i < 16; i++) {
        int keep = (int)bits - 8 * i; /* bits of byte i inside the prefix */
        if (keep <= 0)
            out->addr.b[i] = 0;
        else if (keep < 8)
            out->addr.b[i] &= (uint8_t)(0xff << (8 - keep));
    }
    return 0;
}

static bool blank(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

enum lk_err lk_netaddr_list_add(struct lk_netaddr_list *list, const char *s, size_t len,
                                struct lk_errinfo *ei)
{
    size_t i = 0;

    if (len == 4 && memcmp(s, "none", 4) == 0)
        return LK_OK;
    while (i < len) {
        size_t start;
        while (i < len && blank(s[i]))
            i++;
        if (i == len)
            break;
        start = i;
        while (i < len && !blank(s[i]))
            i++;
        if (list->n == LK_NETADDR_LIST_MAX)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "", "more than %d ranges",
                                  LK_NETADDR_LIST_MAX);
        if (lk_netaddr_range_parse(s + start, i - start, &list->r[list->n]) != 0) {
            char shown[LK_NETADDR_TEXT_MAX + 8];
            size_t n = i - start;
            /* Quote at most a bounded, printable-ASCII prefix of the entry. */
            if (n >= sizeof(shown))
                n = sizeof(shown) - 1;
            for (size_t j = 0; j < n; j++) {
                unsigned char c = (unsigned char)s[start + j];
                shown[j] = c >= 0x20 && c < 0x7f ? (char)c : '?';
            }
            shown[n] = '\0';
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "",
                                  "not an address or ADDRESS/BITS range: \"%s\"", shown);
        }
        list->n++;
    }
    return LK_OK;
}

bool lk_netaddr_list_contains(const struct lk_netaddr_list *list, const struct lk_netaddr *a)
{
    for (size_t k = 0; k < list->n; k++) {
        const struct lk_netaddr_range *r = &list->r[k];
        size_t whole = r->bits / 8;
        unsigned rest = r->bits % 8;

        if (memcmp(r->addr.b, a->b, whole) != 0)
            continue;
        if (rest != 0 && ((r->addr.b[whole] ^ a->b[whole]) & (uint8_t)(0xff << (8 - rest))) != 0)
            continue;
        return true;
    }
    return false;
}
