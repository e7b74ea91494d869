#include "http/jsonin.h"

#include <jansson.h>
#include <openssl/crypto.h>

#include "base/common.h"
#include "core/digest.h"
#include "core/perm.h"
#include "core/quote.h"
#include "core/namedrl.h"
#include "core/timefmt.h"
#include "service/identities.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/*
 * Every body is read by one driver, decode(), from a table of its fields, as
 * core/config.c reads the config file: a field has a name, a type, bounds,
 * whether it is required, and where its value goes in the output struct. The
 * driver refuses unknown fields and wrong values with messages built here from
 * the table (never from the input, except through lk_quote()), so a decoder
 * added later cannot forget a bound, a check or the quoting.
 */

/* A caller's buffer for a string field (the field's `off` points at one). */
struct strbuf {
    char *p;
    size_t size;
};

struct field;
/* Reads v (present, maybe null) into the output `out` at f->off. */
typedef enum lk_err (*field_type)(const struct field *f, json_t *v, void *out,
                                  struct lk_errinfo *ei);

enum {
    F_REQUIRED = 1 << 0, /* absent: "field 'x' is required" */
    F_MUST = 1 << 1,     /* absent: "field 'x' must be <what>" */
    F_NULLABLE = 1 << 2, /* null is a value (clear it, unlimited): the type says which */
    F_SECRET = 1 << 3,   /* wiped in jansson's copy before it is freed */
};

struct field {
    const char *name;  /* the member's name in its object */
    const char *label; /* its name in messages (a path such as "rate_limit.limit"); NULL: name */
    field_type type;
    int64_t min, max; /* integers: the range; strings: length in bytes (max 0: the buffer's) */
    unsigned flags;
    size_t off;       /* where the value goes */
    size_t size;      /* strings: the size of an inline buffer at off; 0: a struct strbuf */
    size_t len_off;   /* duplicated strings: 1 + offset of their size_t length; 0: none */
    size_t has_off;   /* 1 + offset of a bool set when the field is present; 0: none */
    unsigned bit;     /* set in the table's mask when present (LK_SPEC_*) */
    const char *what; /* "must be <what>" for a wrong value; NULL: the type's own words */
    const char *alt;  /* for a value the validator refuses (and F_MUST); NULL: what */
    int (*parse)(const char *s, int *out);      /* word types */
    bool (*valid)(const char *s, size_t len);   /* string types: one more check */
};

struct table {
    const struct field *fields;
    size_t n;
    size_t set_off; /* 1 + offset of the `unsigned set` mask fields' bits go to; 0: none */
};

#define TABLE(f, mask) {f, LK_ARRAY_LEN(f), mask}
#define AT(type, member) .off = offsetof(type, member)
#define HAS(type, member) .has_off = offsetof(type, member) + 1
#define INLINE(type, member) AT(type, member), .size = sizeof(((type *)0)->member)

static enum lk_err bad(struct lk_errinfo *ei, const char *field, const char *what)
{
    return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, field, "field '%s' must be %s", field, what);
}

static const char *label(const struct field *f)
{
    return f->label ? f->label : f->name;
}

static enum lk_err wrong(const struct field *f, struct lk_errinfo *ei, const char *own)
{
    return bad(ei, label(f), f->what ? f->what : own);
}

/* Parses body as one JSON object; NULL and LK_ERR_BAD_JSON otherwise. */
static json_t *load_object(const char *body, size_t len, enum lk_err *e, struct lk_errinfo *ei)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        /* jansson ends many messages with " near '<input>'": that may be a cut-off
         * secret or password, so it is dropped, and the rest is quoted. */
        char q[128], *near = strstr(jerr.text, " near ");
        if (near != NULL)
            *near = '\0';
        lk_quote(q, sizeof(q), jerr.text, strlen(jerr.text));
        *e = lk_errinfo_set(ei, LK_ERR_BAD_JSON, "", "invalid JSON at byte %d: %s",
                            jerr.position, q);
        if (ei)
            ei->offset = jerr.position;
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *e = lk_errinfo_set(ei, LK_ERR_BAD_JSON, "", "the request body must be a JSON object");
        return NULL;
    }
    *e = LK_OK;
    return root;
}

/* Refuses a member of obj that no field of t names; the name is quoted. */
static enum lk_err check_fields(json_t *obj, const struct table *t, struct lk_errinfo *ei)
{
    const char *k;
    json_t *v;

    json_object_foreach(obj, k, v) {
        size_t i;
        for (i = 0; i < t->n; i++)
            if (strcmp(k, t->fields[i].name) == 0)
                break;
        if (i == t->n) {
            char q[LK_QUOTE_SIZE];
            lk_quote(q, sizeof(q), k, strlen(k));
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, q, "unknown field '%s'", q);
        }
    }
    return LK_OK;
}

/* --- field types ---------------------------------------------------------------------- */

/* An integer in [min, max]; with F_NULLABLE, null is -1 (no cap, unlimited). */
static enum lk_err t_int(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    int64_t *dst = (int64_t *)((char *)out + f->off);
    char own[96];

    if ((f->flags & F_NULLABLE) && json_is_null(v)) {
        *dst = -1;
        return LK_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
        snprintf(own, sizeof(own), "an integer from %lld to %lld", (long long)f->min,
                 (long long)f->max);
        return wrong(f, ei, own);
    }
    *dst = json_integer_value(v);
    return LK_OK;
}

/* A string of min..max bytes without NUL bytes, copied into a buffer (inline, or the
 * caller's struct strbuf), and passing f->valid if there is one. */
static enum lk_err t_string(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    char *dst = (char *)out + f->off, own[64];
    size_t cap = f->size, n;

    if (cap == 0) {
        struct strbuf *b = (struct strbuf *)(void *)dst;
        dst = b->p;
        cap = b->size;
    }
    if (cap == 0)
        return wrong(f, ei, "a shorter string");
    if (f->max > 0 && (size_t)f->max + 1 < cap)
        cap = (size_t)f->max + 1;
    if (!json_is_string(v) || (n = json_string_length(v)) < (size_t)f->min || n >= cap ||
        memchr(json_string_value(v), '\0', n) != NULL) {
        snprintf(own, sizeof(own), "a string of %lld to %zu bytes", (long long)f->min, cap - 1);
        return wrong(f, ei, own);
    }
    if (f->valid != NULL && !f->valid(json_string_value(v), n))
        return bad(ei, label(f), f->alt ? f->alt : f->what ? f->what : "valid");
    memcpy(dst, json_string_value(v), n + 1);
    return LK_OK;
}

/* A string of min..max bytes (max 0: any), duplicated: the output owns it. Its
 * length goes to len_off when the table asks (a secret may hold NUL bytes). */
static enum lk_err t_strdup(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    char **dst = (char **)(void *)((char *)out + f->off);
    size_t n;

    if (!json_is_string(v) || (n = json_string_length(v)) < (size_t)f->min ||
        (f->max > 0 && n > (size_t)f->max) ||
        (f->len_off == 0 && memchr(json_string_value(v), '\0', n) != NULL))
        return wrong(f, ei, "a string");
    *dst = lk_strndup(json_string_value(v), n);
    if (f->len_off != 0)
        *(size_t *)(void *)((char *)out + f->len_off - 1) = n;
    return LK_OK;
}

/* One of a few words, turned into an enum (stored as int) by f->parse. */
static enum lk_err t_word(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    int *dst = (int *)(void *)((char *)out + f->off);

    if (!json_is_string(v) || f->parse(json_string_value(v), dst) != 0)
        return wrong(f, ei, "one of the documented words");
    return LK_OK;
}

static enum lk_err t_bool(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    if (!json_is_boolean(v))
        return wrong(f, ei, "true or false");
    *(bool *)((char *)out + f->off) = json_is_true(v);
    return LK_OK;
}

/* A time: RFC 3339 string or Unix seconds; with F_NULLABLE, null clears it (0). */
static enum lk_err t_time(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    int64_t *dst = (int64_t *)((char *)out + f->off);

    if ((f->flags & F_NULLABLE) && json_is_null(v)) {
        *dst = 0;
        return LK_OK;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < LK_TIME_MAX)
        *dst = json_integer_value(v);
    else if (!json_is_string(v) ||
             lk_time_parse(json_string_value(v), json_string_length(v), dst) != 0)
        return wrong(f, ei, "an RFC 3339 time such as \"2030-01-01T00:00:00Z\" or Unix seconds");
    /* 0 stands for "no expiry" inside: the Unix epoch is a time in the past, never that. */
    if (*dst == 0)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label(f), "%s must be in the future",
                              label(f));
    return LK_OK;
}

/* An array of permission strings, kept as compact JSON text. DESIGN §1: only an
 * omitted field means `*` (the caller's default); an empty list grants nothing. */
static enum lk_err t_permissions(const struct field *f, json_t *v, void *out,
                                 struct lk_errinfo *ei)
{
    char **dst = (char **)(void *)((char *)out + f->off);
    size_t i;
    json_t *p;

    if (!json_is_array(v) || json_array_size(v) > LK_PERM_MAX_COUNT)
        return wrong(f, ei, "an array of at most 64 permission strings");
    json_array_foreach(v, i, p) {
        if (!json_is_string(p) || !lk_perm_valid(json_string_value(p), json_string_length(p)))
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label(f),
                                  "%s[%zu] must look like \"resource:action\" "
                                  "(lowercase, '*' as a whole segment)",
                                  label(f), i);
    }
    if ((*dst = json_dumps(v, JSON_COMPACT)) == NULL)
        return wrong(f, ei, "an array of at most 64 permission strings");
    return LK_OK;
}

/* A JSON object of at most LK_JSON_MAX_META bytes, kept as sorted compact text. */
static enum lk_err t_meta(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    char **dst = (char **)(void *)((char *)out + f->off), *s;

    if (!json_is_object(v))
        return wrong(f, ei, "a JSON object");
    if ((s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
        strlen(s) > LK_JSON_MAX_META) {
        free(s);
        return wrong(f, ei, "an object of at most 4096 bytes");
    }
    *dst = s;
    return LK_OK;
}

/* A SHA-256 as 64 hex characters, into LK_DIGEST_LEN bytes. */
static enum lk_err t_sha256(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    if (!json_is_string(v) || !lk_digest_from_hex(json_string_value(v), json_string_length(v),
                                                  (uint8_t *)out + f->off))
        return wrong(f, ei, "the SHA-256 of a secret as 64 hex characters");
    return LK_OK;
}

static enum lk_err decode_into(json_t *obj, const struct table *t, void *out,
                               struct lk_errinfo *ei);

/* A key's rate limit: {"limit", "window_s"} (both), or null for none. Its own
 * table; errors inside name the outer field. */
static const struct field rate_limit_fields[] = {
    {.name = "limit", .label = "rate_limit.limit", .type = t_int, .min = 1, .max = 1000000000,
     AT(struct lk_key_spec, rl_limit)},
    {.name = "window_s", .label = "rate_limit.window_s", .type = t_int, .min = 1, .max = LK_RL_DEFAULT_WINDOW_MS_MAX / 1000,
     AT(struct lk_key_spec, rl_window_s)},
};

/* check_fields for an object inside a field: a refusal names the field `outer`. */
static enum lk_err check_fields_in(json_t *obj, const struct table *t, const char *outer,
                                   struct lk_errinfo *ei)
{
    enum lk_err e = check_fields(obj, t, ei);

    if (e != LK_OK && ei)
        snprintf(ei->field, sizeof(ei->field), "%s", outer);
    return e;
}

static enum lk_err t_rate_limit(const struct field *f, json_t *v, void *out,
                                struct lk_errinfo *ei)
{
    static const struct table t = TABLE(rate_limit_fields, 0);
    struct lk_key_spec *s = out;
    enum lk_err e;

    if (json_is_null(v)) {
        s->rl_limit = s->rl_window_s = 0;
        return LK_OK;
    }
    if (!json_is_object(v))
        return wrong(f, ei, "an object {\"limit\", \"window_s\"} or null");
    if ((e = check_fields_in(v, &t, label(f), ei)) != LK_OK)
        return e;
    if (json_object_get(v, "limit") == NULL || json_object_get(v, "window_s") == NULL)
        return bad(ei, label(f), "an object with both \"limit\" and \"window_s\"");
    return decode_into(v, &t, out, ei);
}

/* A key's external_id: printable UTF-8 of at most LK_EXTERNAL_ID_MAX bytes;
 * null or "" unlinks the key from its identity. */
static enum lk_err t_external_id(const struct field *f, json_t *v, void *out,
                                 struct lk_errinfo *ei)
{
    struct lk_key_spec *s = out;
    size_t n;

    if (json_is_null(v)) {
        s->external_id[0] = '\0';
        return LK_OK;
    }
    if (!json_is_string(v) ||
        ((n = json_string_length(v)) > 0 && !lk_external_id_valid(json_string_value(v), n)))
        return wrong(f, ei, "a string of at most 255 bytes of printable UTF-8, or null");
    memcpy(s->external_id, json_string_value(v), n + 1);
    return LK_OK;
}

static int parse_refill_interval(const char *s, int *out)
{
    if (strcmp(s, "daily") == 0)
        *out = LK_CREDIT_REFILL_DAILY;
    else if (strcmp(s, "monthly") == 0)
        *out = LK_CREDIT_REFILL_MONTHLY;
    else
        return -1;
    return 0;
}

/* The parts of credits and rate_limits, decoded into a scratch struct. */
struct credits_in {
    int64_t remaining, amount, day;
    int interval;
    bool has_day;
};

static const struct field refill_fields[] = {
    {.name = "interval", .label = "credits.refill.interval", .type = t_word,
     .parse = parse_refill_interval, .flags = F_REQUIRED, AT(struct credits_in, interval),
     .what = "\"daily\" or \"monthly\""},
    {.name = "amount", .label = "credits.refill.amount", .type = t_int, .min = 1,
     .max = INT64_C(1) << 53, .flags = F_REQUIRED, AT(struct credits_in, amount)},
    {.name = "refill_day", .label = "credits.refill.refill_day", .type = t_int, .min = 1,
     .max = 31, AT(struct credits_in, day), HAS(struct credits_in, has_day)},
};

static const struct field credits_fields[] = {
    {.name = "remaining", .label = "credits.remaining", .type = t_int, .min = 0,
     .max = INT64_C(1) << 53, .flags = F_REQUIRED, AT(struct credits_in, remaining)},
    {.name = "refill", .label = "credits.refill", .type = NULL},
};

/* An object of t's fields only (errors name `outer`), decoded into out. */
static enum lk_err sub_object(json_t *v, const struct table *t, const char *outer, void *out,
                              struct lk_errinfo *ei)
{
    enum lk_err e = check_fields_in(v, t, outer, ei);

    return e != LK_OK ? e : decode_into(v, t, out, ei);
}

/* A key's own credits: {"remaining", "refill": null | {"interval", "amount",
 * "refill_day"}}, or null for none (unlimited). */
static enum lk_err t_credits(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    static const struct table tc = TABLE(credits_fields, 0);
    static const struct table tr = TABLE(refill_fields, 0);
    struct lk_key_spec *s = out;
    struct credits_in c = {0};
    json_t *refill;
    enum lk_err e;

    s->credits_refill = LK_CREDIT_REFILL_NONE;
    s->credits_refill_amount = 0;
    s->credits_refill_day = 0;
    if (json_is_null(v)) {
        s->credits_remaining = -1;
        return LK_OK;
    }
    if (!json_is_object(v))
        return wrong(f, ei, "an object {\"remaining\", \"refill\"} or null");
    /* "refill" is read by hand below: the table only names it */
    if ((e = check_fields_in(v, &tc, label(f), ei)) != LK_OK)
        return e;
    if (json_object_get(v, "remaining") == NULL)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "credits.remaining",
                              "field 'credits.remaining' is required");
    if ((e = t_int(&credits_fields[0], json_object_get(v, "remaining"), &c, ei)) != LK_OK)
        return e;
    s->credits_remaining = c.remaining;
    refill = json_object_get(v, "refill");
    if (refill == NULL || json_is_null(refill))
        return LK_OK;
    if (!json_is_object(refill))
        return bad(ei, "credits.refill", "an object {\"interval\", \"amount\", \"refill_day\"} or null");
    if ((e = sub_object(refill, &tr, "credits.refill", &c, ei)) != LK_OK)
        return e;
    if (c.has_day && c.interval != LK_CREDIT_REFILL_MONTHLY)
        return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "credits.refill.refill_day",
                              "refill_day is for a monthly refill");
    s->credits_refill = (enum lk_credit_refill)c.interval;
    s->credits_refill_amount = c.amount;
    s->credits_refill_day = c.interval == LK_CREDIT_REFILL_MONTHLY ? (c.has_day ? (int)c.day : 1) : 0;
    return LK_OK;
}

struct rl_in {
    char name[LK_RL_NAME_MAX + 1];
    int64_t limit, window_ms;
    bool auto_apply, has_auto;
};

static bool valid_rl_name(const char *s, size_t len)
{
    return lk_namedrl_name_ok(s, len);
}

static const struct field named_rl_fields[] = {
    {.name = "name", .label = "rate_limits[].name", .type = t_string, .min = 1,
     .flags = F_REQUIRED, INLINE(struct rl_in, name), .valid = valid_rl_name,
     .what = "1 to 64 of the characters A-Z a-z 0-9 _ . : -"},
    {.name = "limit", .label = "rate_limits[].limit", .type = t_int, .min = 1,
     .max = LK_RL_LIMIT_MAX, .flags = F_REQUIRED, AT(struct rl_in, limit)},
    {.name = "window_ms", .label = "rate_limits[].window_ms", .type = t_int,
     .min = LK_RL_WINDOW_MS_MIN, .max = LK_RL_DEFAULT_WINDOW_MS_MAX, .flags = F_REQUIRED,
     AT(struct rl_in, window_ms)},
    {.name = "auto_apply", .label = "rate_limits[].auto_apply", .type = t_bool,
     AT(struct rl_in, auto_apply), HAS(struct rl_in, has_auto)},
};

/* A key's whole set of named rate limits: [{"name", "limit", "window_ms",
 * "auto_apply"}], at most LK_KEY_RATE_LIMITS_MAX; [] or null: none. */
static enum lk_err t_rate_limits(const struct field *f, json_t *v, void *out,
                                 struct lk_errinfo *ei)
{
    static const struct table t = TABLE(named_rl_fields, 0);
    struct lk_key_spec *s = out;
    size_t i;
    json_t *x;
    enum lk_err e;

    s->n_rate_limits = 0;
    if (json_is_null(v))
        return LK_OK;
    if (!json_is_array(v) || json_array_size(v) > LK_KEY_RATE_LIMITS_MAX)
        return wrong(f, ei, "an array of at most 8 rate limits");
    json_array_foreach(v, i, x) {
        struct rl_in r = {0};
        struct lk_key_rl *dst = &s->rate_limits[i];
        if (!json_is_object(x))
            return wrong(f, ei, "an array of objects {\"name\", \"limit\", \"window_ms\"}");
        if ((e = sub_object(x, &t, label(f), &r, ei)) != LK_OK)
            return e;
        if (r.window_ms > LK_RL_WINDOW_MS_MAX && strcmp(r.name, "default") != 0)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "rate_limits[].window_ms",
                                  "rate_limits[%zu].window_ms must be between %d and %d; only "
                                  "the limit named default may be up to %lld",
                                  i, LK_RL_WINDOW_MS_MIN, LK_RL_WINDOW_MS_MAX,
                                  LK_RL_DEFAULT_WINDOW_MS_MAX);
        memcpy(dst->name, r.name, sizeof(dst->name));
        dst->limit = r.limit;
        dst->window_ms = r.window_ms;
        /* "default" is the key's rate_limit, which always applies */
        dst->auto_apply = r.has_auto ? r.auto_apply : strcmp(r.name, "default") == 0;
        s->n_rate_limits = (int)i + 1;
    }
    return LK_OK;
}

/* --- the driver ----------------------------------------------------------------------- */

/* Reads the fields of t from obj into out, in table order. */
static enum lk_err decode_into(json_t *obj, const struct table *t, void *out,
                               struct lk_errinfo *ei)
{
    enum lk_err e;

    for (size_t i = 0; i < t->n; i++) {
        const struct field *f = &t->fields[i];
        json_t *v = json_object_get(obj, f->name);

        if (v == NULL) {
            if (f->flags & F_REQUIRED)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, label(f),
                                      "field '%s' is required", label(f));
            if (f->flags & F_MUST)
                return bad(ei, label(f), f->alt ? f->alt : f->what ? f->what : "given");
            continue;
        }
        if ((e = f->type(f, v, out, ei)) != LK_OK)
            return e;
        if (f->has_off != 0)
            *(bool *)((char *)out + f->has_off - 1) = true;
        if (f->bit != 0 && t->set_off != 0)
            *(unsigned *)(void *)((char *)out + t->set_off - 1) |= f->bit;
    }
    return LK_OK;
}

/* Wipes jansson's copies of the secret fields of t before root is freed. */
static void wipe_secrets(json_t *root, const struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        json_t *v;
        if ((t->fields[i].flags & F_SECRET) &&
            json_is_string(v = json_object_get(root, t->fields[i].name)))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    }
}

/* Parses body as one object of the fields of t and decodes it into out. */
static enum lk_err decode(const char *body, size_t len, const struct table *t, void *out,
                          struct lk_errinfo *ei)
{
    json_t *root;
    enum lk_err e;

    if ((root = load_object(body, len, &e, ei)) == NULL)
        return e;
    if ((e = check_fields(root, t, ei)) == LK_OK)
        e = decode_into(root, t, out, ei);
    wipe_secrets(root, t);
    json_decref(root);
    return e;
}

/* --- word parsers ----------------------------------------------------------------------- */

_Static_assert(sizeof(enum lk_env) == sizeof(int) && sizeof(enum lk_key_kind) == sizeof(int) &&
                   sizeof(enum lk_key_format) == sizeof(int) && sizeof(enum lk_role) == sizeof(int),
               "word fields are stored as int");

static int word_index(const char *s, const char *const *words, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, words[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    return -1;
}

static int parse_env(const char *s, int *out)
{
    enum lk_env env;

    if (lk_env_parse(s, &env) != 0)
        return -1;
    *out = (int)env;
    return 0;
}

static int parse_kind(const char *s, int *out)
{
    /* In enum lk_key_kind's order; "application" is refused later, by the service. */
    static const char *const kinds[] = {"permanent", "temporary", "application", "root"};
    return word_index(s, kinds, LK_ARRAY_LEN(kinds), out);
}

static int parse_key_format(const char *s, int *out)
{
    static const char *const formats[] = {[LK_FORMAT_DEFAULT] = "default", [LK_FORMAT_HEX] = "hex"};
    return word_index(s, formats, LK_ARRAY_LEN(formats), out);
}

static int parse_role(const char *s, int *out)
{
    enum lk_role role;

    if (lk_role_parse(s, &role) != 0)
        return -1;
    *out = (int)role;
    return 0;
}

static bool valid_prefix(const char *s, size_t len)
{
    return lk_secret_prefix_valid(s, len);
}

static bool valid_email(const char *s, size_t len)
{
    (void)len; /* t_string refused NUL bytes: s is a C string of len bytes */
    return lk_users_email_valid(s);
}

/* --- POST /v1/verify ------------------------------------------------------------------ */

struct rl_use_in {
    char name[LK_RL_NAME_MAX + 1];
    int64_t cost;
    bool has_cost;
};

static const struct field rl_use_fields[] = {
    {.name = "name", .label = "ratelimits[].name", .type = t_string, .min = 1,
     .flags = F_REQUIRED, INLINE(struct rl_use_in, name), .valid = valid_rl_name,
     .what = "the name of one of the key's rate limits"},
    {.name = "cost", .label = "ratelimits[].cost", .type = t_int, .min = 0,
     .max = LK_RL_LIMIT_MAX, AT(struct rl_use_in, cost), HAS(struct rl_use_in, has_cost)},
};

/* [{"name", "cost"}]: the key's named rate limits a check applies (cost 1
 * when absent; "default", the key's rate_limit, counts 1 a check). */
static enum lk_err t_verify_ratelimits(const struct field *f, json_t *v, void *out,
                                       struct lk_errinfo *ei)
{
    static const struct table t = TABLE(rl_use_fields, 0);
    struct lk_verify_body *b = out;
    size_t i;
    json_t *x;
    enum lk_err e;

    if (!json_is_array(v) || json_array_size(v) > LK_KEY_RATE_LIMITS_MAX)
        return wrong(f, ei, "an array of at most 8 objects {\"name\", \"cost\"}");
    b->rl = lk_calloc(1, sizeof(*b->rl));
    json_array_foreach(v, i, x) {
        struct rl_use_in r = {0};
        if (!json_is_object(x))
            return wrong(f, ei, "an array of at most 8 objects {\"name\", \"cost\"}");
        if ((e = sub_object(x, &t, label(f), &r, ei)) != LK_OK)
            return e;
        for (size_t j = 0; j < i; j++)
            if (strcmp(b->rl->name[j], r.name) == 0)
                return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits",
                                      "rate limit %s is named twice", r.name);
        if (strcmp(r.name, "default") == 0 && r.has_cost && r.cost != 1)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "ratelimits[].cost",
                                  "the rate limit named default counts 1 a check");
        memcpy(b->rl->name[i], r.name, sizeof(r.name));
        b->rl->use[i] = (struct lk_rl_use){b->rl->name[i], strlen(r.name),
                                           r.has_cost ? r.cost : 1};
        b->rl->n = (int)i + 1;
    }
    return LK_OK;
}

#define VB struct lk_verify_body
static const struct field verify_fields[] = {
    {.name = "key", .type = t_strdup, .flags = F_SECRET, AT(VB, key),
     .len_off = offsetof(VB, key_len) + 1},
    {.name = "environment", .type = t_word, .parse = parse_env, AT(VB, environment),
     .what = "\"live\" or \"test\""},
    {.name = "permissions", .type = t_strdup, .min = 1, .max = 1024, AT(VB, permissions),
     .what = "a permission query string of at most 1024 bytes"},
    {.name = "cost", .type = t_int, .min = 0, .max = 1000000000, AT(VB, cost), HAS(VB, has_cost)},
    {.name = "ratelimits", .type = t_verify_ratelimits},
};
#undef VB

void lk_verify_body_release(struct lk_verify_body *b)
{
    if (b == NULL)
        return;
    if (b->key != NULL) {
        OPENSSL_cleanse(b->key, b->key_len);
        free(b->key);
    }
    free(b->permissions);
    free(b->rl);
    memset(b, 0, sizeof(*b));
}

enum lk_err lk_jsonin_verify(const char *body, size_t len, struct lk_verify_body *out,
                             struct lk_errinfo *ei)
{
    static const struct table t = TABLE(verify_fields, 0);
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    out->environment = -1;
    if ((e = decode(body, len, &t, out, ei)) != LK_OK)
        lk_verify_body_release(out);
    return e;
}

/* --- POST /v1/keys, PATCH /v1/keys/{id} ---------------------------------------------- */

#define KS struct lk_key_spec
#define KEY_NAME(fl)                                                                            \
    {.name = "name", .type = t_string, .min = 1, .flags = (fl), INLINE(KS, name),             \
     .bit = LK_SPEC_NAME, .what = "a non-empty string of at most 200 bytes"}
#define KEY_PERMISSIONS                                                                            \
    {.name = "permissions", .type = t_permissions, AT(KS, permissions), .bit = LK_SPEC_PERMISSIONS}
#define KEY_EXPIRES_AT(fl)                                                                      \
    {.name = "expires_at", .type = t_time, .flags = (fl), AT(KS, expires_at),                 \
     .bit = LK_SPEC_EXPIRES_AT}
#define KEY_COMMON_TAIL                                                                            \
    {.name = "rate_limit", .type = t_rate_limit, .bit = LK_SPEC_RATE_LIMIT},                     \
    {.name = "daily_spend_cap", .type = t_int, .min = 0, .max = INT64_C(1) << 53,                \
     .flags = F_NULLABLE, AT(KS, daily_spend_cap), .bit = LK_SPEC_SPEND_CAP},                    \
    {.name = "meta", .type = t_meta, AT(KS, meta), .bit = LK_SPEC_META},                         \
    {.name = "external_id", .type = t_external_id, .bit = LK_SPEC_EXTERNAL_ID},                  \
    {.name = "credits", .type = t_credits, .bit = LK_SPEC_CREDITS},                              \
    {.name = "rate_limits", .type = t_rate_limits, .bit = LK_SPEC_RATE_LIMITS}

static const struct field key_create_fields[] = {
    KEY_NAME(F_REQUIRED),
    {.name = "environment", .type = t_word, .parse = parse_env, AT(KS, env), .bit = LK_SPEC_ENV,
     .what = "\"live\" or \"test\""},
    {.name = "kind", .type = t_word, .parse = parse_kind, AT(KS, kind), .bit = LK_SPEC_KIND,
     .what = "\"permanent\", \"temporary\" or \"root\""},
    KEY_PERMISSIONS,
    {.name = "expires_in", .type = t_int, .min = 1, .max = LK_JSON_MAX_EXPIRES_IN,
     AT(KS, expires_in), .bit = LK_SPEC_EXPIRES_IN},
    KEY_EXPIRES_AT(0),
    KEY_COMMON_TAIL,
    {.name = "sha256", .type = t_sha256, AT(KS, sha256), .bit = LK_SPEC_SHA256},
};

static const struct field key_patch_fields[] = {
    KEY_NAME(0),
    KEY_PERMISSIONS,
    KEY_EXPIRES_AT(F_NULLABLE),
    KEY_COMMON_TAIL,
    {.name = "enabled", .type = t_bool, AT(KS, enabled), .bit = LK_SPEC_ENABLED},
};

enum lk_err lk_jsonin_key_spec(const char *body, size_t len, bool create, struct lk_key_spec *out,
                               struct lk_errinfo *ei)
{
    static const struct table tc = TABLE(key_create_fields, offsetof(KS, set) + 1);
    static const struct table tp = TABLE(key_patch_fields, offsetof(KS, set) + 1);
    enum lk_err e;

    memset(out, 0, sizeof(*out));
    out->daily_spend_cap = -1;
    if ((e = decode(body, len, create ? &tc : &tp, out, ei)) != LK_OK)
        lk_key_spec_release(out);
    return e;
}

/* --- POST /v1/keys/{id}/regenerate ------------------------------------------------------ */

struct regen_body {
    int64_t grace_s;
};

static const struct field regen_fields[] = {
    {.name = "grace_period_s", .type = t_int, .min = 0, .max = LK_GRACE_MAX,
     AT(struct regen_body, grace_s)},
};

enum lk_err lk_jsonin_regenerate(const char *body, size_t len, int64_t *grace_s,
                                 struct lk_errinfo *ei)
{
    static const struct table t = TABLE(regen_fields, 0);
    struct regen_body o = {0};
    enum lk_err e;

    *grace_s = 0;
    if (len == 0)
        return LK_OK;
    if ((e = decode(body, len, &t, &o, ei)) == LK_OK)
        *grace_s = o.grace_s;
    return e;
}

/* --- POST /v1/workspaces, PATCH /v1/workspaces/{id} ------------------------------------ */

#define WS struct lk_ws_spec
#define WS_QUOTAS                                                                                  \
    {.name = "quota", .type = t_int, .min = 0, .max = INT64_C(1) << 53, .flags = F_NULLABLE,     \
     AT(WS, quota), HAS(WS, has_quota),                                                          \
     .what = "an integer of at least 0, or null for unlimited"},                                 \
    {.name = "test_quota", .type = t_int, .min = 0, .max = INT64_C(1) << 53,                     \
     .flags = F_NULLABLE, AT(WS, test_quota), HAS(WS, has_test_quota),                           \
     .what = "an integer of at least 0, or null for unlimited"}

static const struct field ws_create_fields[] = {
    WS_QUOTAS,
    {.name = "name", .type = t_string, .min = 1, .flags = F_REQUIRED, INLINE(WS, name),
     .what = "a non-empty string of at most 200 bytes"},
    {.name = "key_prefix", .type = t_string, .min = 1, INLINE(WS, key_prefix),
     .valid = valid_prefix, .what = "1-16 characters of [a-z0-9_], starting with a letter"},
    {.name = "key_format", .type = t_word, .parse = parse_key_format, AT(WS, key_format),
     .what = "\"default\" or \"hex\""},
};

static const struct field ws_patch_fields[] = {WS_QUOTAS};
#undef WS_QUOTAS

enum lk_err lk_jsonin_workspace(const char *body, size_t len, bool create, struct lk_ws_spec *out,
                                struct lk_errinfo *ei)
{
    static const struct table tc = TABLE(ws_create_fields, 0);
    static const struct table tp = TABLE(ws_patch_fields, 0);

    memset(out, 0, sizeof(*out));
    out->quota = out->test_quota = -1;
    return decode(body, len, create ? &tc : &tp, out, ei);
}

/* --- two strings and a password: login, accepting an invitation ------------------------- */

struct pair_body {
    struct strbuf first, password;
};

/* Decodes t (fields over a struct pair_body) into the caller's buffers. On
 * failure the password is wiped, and so is the first string when t marks it
 * secret. */
static enum lk_err decode_pair(const char *body, size_t len, const struct table *t, char *first,
                               size_t first_sz, char *password, size_t password_sz,
                               struct lk_errinfo *ei)
{
    struct pair_body o = {{first, first_sz}, {password, password_sz}};
    enum lk_err e;

    first[0] = password[0] = '\0';
    if ((e = decode(body, len, t, &o, ei)) != LK_OK) {
        if (t->fields[0].flags & F_SECRET)
            OPENSSL_cleanse(first, first_sz);
        OPENSSL_cleanse(password, password_sz);
    }
    return e;
}

/* --- POST /v1/auth/login, POST /v1/members ------------------------------------------------ */

static const struct field login_fields[] = {
    {.name = "email", .type = t_string, .min = 1, .flags = F_REQUIRED,
     AT(struct pair_body, first)},
    {.name = "password", .type = t_string, .min = 1, .flags = F_REQUIRED | F_SECRET,
     AT(struct pair_body, password)},
};

enum lk_err lk_jsonin_login(const char *body, size_t len, char *email, size_t email_sz,
                            char *password, size_t password_sz, struct lk_errinfo *ei)
{
    static const struct table t = TABLE(login_fields, 0);

    return decode_pair(body, len, &t, email, email_sz, password, password_sz, ei);
}

/* --- POST /v1/keys/generate-temp ---------------------------------------------------------- */

struct temp_body {
    int64_t folder;
    struct strbuf workspace;
    struct lk_key_spec spec;
};

#define TB struct temp_body
static const struct field temp_fields[] = {
    {.name = "storage_folder_id", .type = t_int, .min = 1, .max = INT64_MAX, AT(TB, folder)},
    {.name = "workspace_id", .type = t_string, .min = 1, AT(TB, workspace)},
    {.name = "expires_in", .type = t_int, .min = 1, .max = LK_TEMP_MAX_TTL,
     AT(TB, spec.expires_in), .bit = LK_SPEC_EXPIRES_IN},
    {.name = "permissions", .type = t_permissions, AT(TB, spec.permissions),
     .bit = LK_SPEC_PERMISSIONS},
    {.name = "name", .type = t_string, .min = 1, INLINE(TB, spec.name), .bit = LK_SPEC_NAME,
     .what = "a non-empty string of at most 200 bytes"},
};

/* Which workspace, checked before the key's own fields. */
#define TEMP_SELECTORS 2

enum lk_err lk_jsonin_temp(const char *body, size_t len, int64_t *folder, char *workspace,
                           size_t workspace_sz, struct lk_key_spec *spec, struct lk_errinfo *ei)
{
    static const struct table all = TABLE(temp_fields, offsetof(TB, spec.set) + 1);
    static const struct table head = {temp_fields, TEMP_SELECTORS, 0};
    static const struct table tail = {temp_fields + TEMP_SELECTORS,
                                      LK_ARRAY_LEN(temp_fields) - TEMP_SELECTORS,
                                      offsetof(TB, spec.set) + 1};
    struct temp_body o = {.workspace = {workspace, workspace_sz}};
    json_t *root;
    enum lk_err e;

    *folder = 0;
    workspace[0] = '\0';
    o.spec.daily_spend_cap = -1;
    if ((root = load_object(body, len, &e, ei)) == NULL)
        goto out;
    if ((e = check_fields(root, &all, ei)) == LK_OK &&
        (e = decode_into(root, &head, &o, ei)) == LK_OK) {
        if ((o.folder == 0) == (workspace[0] == '\0'))
            e = lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "workspace_id",
                               "give storage_folder_id or workspace_id (one of them)");
        else
            e = decode_into(root, &tail, &o, ei);
    }
    json_decref(root);
out:
    if (e != LK_OK) {
        lk_key_spec_release(&o.spec);
        workspace[0] = '\0';
        memset(spec, 0, sizeof(*spec));
        spec->daily_spend_cap = -1;
        return e;
    }
    *folder = o.folder;
    *spec = o.spec; /* ownership of its strings moves to the caller */
    return LK_OK;
}
#undef TB

/* --- POST /v1/credits ------------------------------------------------------------------ */

struct top_up_body {
    int64_t amount;
    struct strbuf note;
};

static const struct field top_up_fields[] = {
    {.name = "amount", .type = t_int, .min = 1, .max = LK_JSON_MAX_CREDITS, .flags = F_REQUIRED,
     AT(struct top_up_body, amount)},
    {.name = "note", .type = t_string, .min = 0, AT(struct top_up_body, note)},
};

enum lk_err lk_jsonin_top_up(const char *body, size_t len, int64_t *amount, char *note,
                             size_t note_sz, struct lk_errinfo *ei)
{
    static const struct table t = TABLE(top_up_fields, 0);
    struct top_up_body o = {.note = {note, note_sz}};
    enum lk_err e;

    *amount = 0;
    note[0] = '\0';
    if ((e = decode(body, len, &t, &o, ei)) == LK_OK)
        *amount = o.amount;
    return e;
}

/* --- people: invitations and roles ------------------------------------------------- */

#define ROLE_FIELD(body)                                                                      \
    {.name = "role", .type = t_word, .parse = parse_role, .flags = F_MUST, AT(body, role),     \
     .what = "\"owner\", \"editor\" or \"viewer\""}

struct invite_body {
    struct strbuf email;
    int role;
};

static const struct field invite_fields[] = {
    {.name = "email", .type = t_string, .min = 1, .flags = F_MUST, AT(struct invite_body, email),
     .valid = valid_email, .alt = "an email address"},
    ROLE_FIELD(struct invite_body),
};

enum lk_err lk_jsonin_invite(const char *body, size_t len, char *email, size_t email_sz,
                             enum lk_role *role, struct lk_errinfo *ei)
{
    static const struct table t = TABLE(invite_fields, 0);
    struct invite_body o = {{email, email_sz}, 0};
    enum lk_err e;

    email[0] = '\0';
    if ((e = decode(body, len, &t, &o, ei)) == LK_OK)
        *role = (enum lk_role)o.role;
    return e;
}

struct role_body {
    int role;
};

static const struct field role_fields[] = {ROLE_FIELD(struct role_body)};
#undef ROLE_FIELD

enum lk_err lk_jsonin_role(const char *body, size_t len, enum lk_role *role,
                           struct lk_errinfo *ei)
{
    static const struct table t = TABLE(role_fields, 0);
    struct role_body o = {0};
    enum lk_err e;

    if ((e = decode(body, len, &t, &o, ei)) == LK_OK)
        *role = (enum lk_role)o.role;
    return e;
}

static const struct field accept_fields[] = {
    {.name = "token", .type = t_string, .min = 1, .flags = F_REQUIRED | F_SECRET,
     AT(struct pair_body, first)},
    {.name = "password", .type = t_string, .min = LK_PASSWORD_MIN,
     .flags = F_REQUIRED | F_SECRET, AT(struct pair_body, password)},
};

enum lk_err lk_jsonin_accept(const char *body, size_t len, char *token, size_t token_sz,
                             char *password, size_t password_sz, struct lk_errinfo *ei)
{
    static const struct table t = TABLE(accept_fields, 0);

    return decode_pair(body, len, &t, token, token_sz, password, password_sz, ei);
}

/* --- webhooks -------------------------------------------------------------------------- */

/* An array of 1 to LK_HOOKS_MAX_EVENTS short strings (the service checks the names). */
static enum lk_err t_events(const struct field *f, json_t *v, void *out, struct lk_errinfo *ei)
{
    struct lk_webhook_body *b = out;
    size_t i;
    json_t *p;

    (void)f;
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > LK_HOOKS_MAX_EVENTS)
        return bad(ei, "events", "an array of 1 to 16 event types");
    json_array_foreach(v, i, p) {
        size_t n = json_is_string(p) ? json_string_length(p) : 0;
        if (n == 0 || n >= LK_HOOK_TYPE_MAX || memchr(json_string_value(p), '\0', n) != NULL)
            return lk_errinfo_set(ei, LK_ERR_INVALID_REQUEST, "events",
                                  "events[%zu] must be an event type such as \"key.created\"", i);
        memcpy(b->events[i], json_string_value(p), n + 1);
    }
    b->nevents = json_array_size(v);
    return LK_OK;
}

#define WB struct lk_webhook_body
static const struct field webhook_fields[] = {
    {.name = "url", .type = t_string, .min = 1, .flags = F_REQUIRED, INLINE(WB, url)},
    {.name = "events", .type = t_events, .flags = F_REQUIRED, AT(WB, events)},
    {.name = "description", .type = t_string, .min = 0, INLINE(WB, description)},
};
#undef WB

enum lk_err lk_jsonin_webhook(const char *body, size_t len, struct lk_webhook_body *out,
                              struct lk_errinfo *ei)
{
    static const struct table t = TABLE(webhook_fields, 0);

    memset(out, 0, sizeof(*out));
    return decode(body, len, &t, out, ei);
}

struct webhook_settings_body {
    int64_t threshold;
};

static const struct field webhook_settings_fields[] = {
    {.name = "credits_low_threshold", .type = t_int, .min = 1, .max = LK_JSON_MAX_CREDITS,
     .flags = F_REQUIRED | F_NULLABLE, AT(struct webhook_settings_body, threshold)},
};

enum lk_err lk_jsonin_webhook_settings(const char *body, size_t len, int64_t *threshold,
                                       struct lk_errinfo *ei)
{
    static const struct table t = TABLE(webhook_settings_fields, 0);
    struct webhook_settings_body o = {-1};
    enum lk_err e;

    if ((e = decode(body, len, &t, &o, ei)) == LK_OK)
        *threshold = o.threshold;
    return e;
}
