#include "service/keycache.h"

#include <jansson.h>
#include <sys/mman.h>
#include <urcu.h>

#include "base/common.h"
#include "base/log.h"
#include "counters/counters.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/*
 * Open addressing (docs/internals/keycache.md). A slot is a 64-bit tag (the
 * digest's first 8 bytes; 0 = never used, 1 = deleted) and a pointer to the
 * entry; four slots share a cache line, and the slot's index comes from the
 * digest's next 8 bytes. Digests are uniformly random, so probes are short and
 * a lookup reads one slot line, then the entry.
 *
 * Publication: the one writer fills an entry, then stores its pointer, then the
 * tag (release); a reader loads the tag, then the pointer (acquire), and
 * compares the whole digest in the entry, so a slot caught mid-change yields
 * either the old entry or the new one, both complete. A slot never goes back
 * to empty while the table is in use: deleting leaves a tombstone that probes
 * pass. Growing or purging tombstones builds a new table, publishes it with
 * a release store and frees the old one after a grace period; the writer
 * never touches the old one again.
 */

#define TAG_EMPTY 0u
#define TAG_DELETED 1u
#define MIN_SLOTS 1024u

struct slot {
    _Atomic uint64_t tag;
    struct centry *_Atomic e;
};

struct table {
    size_t mask;
    size_t used; /* slots not empty: live plus deleted (writer only) */
    size_t live;
    struct rcu_head rcu;
    _Atomic bool gone; /* stored (release) as the table goes to RCU */
    bool mapped;
    struct slot *slots;
};

/* A permission set, shared by every entry with the same permissions text:
 * most keys of a workspace carry one of a few sets. Written once. */
struct permset {
    struct permset *next; /* in the writer's intern table */
    uint64_t hash;
    size_t refs;          /* writer only */
    _Atomic bool gone;    /* stored (release) as the set goes to RCU */
    struct rcu_head rcu;
    struct lk_permlist list;
    char json[]; /* then the parsed permissions */
};

/* An entry: the key's record, one writer-only link, then its name. Its
 * permission set is found from k.perms, and entries leave in batches with one
 * RCU head per batch (struct retired), so an entry carries neither. */
struct centry {
    struct lk_ckey k;
    struct centry *rnext; /* the other entries of the same key (writer only) */
    bool peppered;        /* digest made with a pepper */
    char name_json[];
};

static void centry_free(struct centry *e);

#define RETIRED_MAX 8

/* Entries out of the table, freed together after a grace period. */
struct retired {
    struct rcu_head rcu;
    size_t n;
    _Atomic size_t handed; /* n, stored (release) as the batch goes to RCU */
    struct centry *e[RETIRED_MAX];
};

/* Writer only: a key's entries by rowid, to drop digests a key no longer has.
 * A slot is the chain's first entry (its rowid is in it); NULL: empty. */
struct rowslot {
    struct centry *head;
};

/* What readers load on every check sits alone on the first cache line, so the
 * writer's bookkeeping on every put does not take that line from the loops. */
struct lk_keycache {
    _Alignas(64) struct table *_Atomic t;
    _Atomic unsigned kinds; /* bit 0: some digest has no pepper; bit 1: some has */
    _Alignas(64) struct lk_counters *counters;
    struct rowslot *rows;
    size_t rows_mask, rows_used;
    struct retired *retired; /* entries of the put under way that left */
    struct permset **sets;
    size_t sets_mask, sets_n;
    size_t entry_bytes, set_bytes;
    /* The workspace of the last key put (writer only; workspace states live as
     * long as the counters): a snapshot puts a workspace's keys in a row. */
    char last_ws_id[LK_ID_MAX];
    struct lk_wstate *last_ws;
    _Atomic unsigned long count;
    size_t plain_n, peppered_n; /* entries whose digest has no pepper / has one */
};

static uint64_t tag_of(const uint8_t d[LK_DIGEST_LEN])
{
    uint64_t h;
    memcpy(&h, d, sizeof(h));
    return h > TAG_DELETED ? h : h + 2;
}

static size_t index_of(const struct table *t, const uint8_t d[LK_DIGEST_LEN])
{
    uint64_t h;
    memcpy(&h, d + 8, sizeof(h));
    return (size_t)h & t->mask;
}

/* Whole-digest equality without early exit (as CRYPTO_memcmp, inline). */
static bool same_digest(const uint8_t a[LK_DIGEST_LEN], const uint8_t b[LK_DIGEST_LEN])
{
    uint64_t x[4], y[4];
    memcpy(x, a, sizeof(x));
    memcpy(y, b, sizeof(y));
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static struct table *table_new(size_t nslots)
{
    struct table *t = lk_calloc(1, sizeof(*t));
    size_t bytes = nslots * sizeof(struct slot);

    t->mask = nslots - 1;
    if (bytes >= (2u << 20)) {
        /* Big tables in huge pages where the kernel has them: a random slot
         * then costs a cache miss, not also a page walk. */
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        lk_assert(p != MAP_FAILED);
        madvise(p, bytes, MADV_HUGEPAGE);
        t->slots = p;
        t->mapped = true;
    } else {
        t->slots = lk_calloc(nslots, sizeof(struct slot));
    }
    return t;
}

static void table_free(struct table *t)
{
    if (t->mapped)
        munmap(t->slots, (t->mask + 1) * sizeof(struct slot));
    else
        free(t->slots);
    free(t);
}

static void table_free_rcu(struct rcu_head *head)
{
    struct table *t = caa_container_of(head, struct table, rcu);

    lk_assert(atomic_load_explicit(&t->gone, memory_order_acquire)); /* see retired_free_rcu */
    table_free(t);
}

/* Into a table no reader sees yet, or a free slot of the current one. */
static void table_insert(struct table *t, struct centry *e)
{
    uint64_t tag = tag_of(e->k.digest);
    size_t i = index_of(t, e->k.digest);

    for (;;) {
        uint64_t s = atomic_load_explicit(&t->slots[i].tag, memory_order_relaxed);
        if (s == TAG_EMPTY || s == TAG_DELETED) {
            atomic_store_explicit(&t->slots[i].e, e, memory_order_release);
            atomic_store_explicit(&t->slots[i].tag, tag, memory_order_release);
            if (s == TAG_EMPTY)
                t->used++;
            t->live++;
            return;
        }
        i = (i + 1) & t->mask;
    }
}

/* The entry of digest d and, if slot is not NULL, its slot; NULL if absent.
 * The entry is the one loaded and compared: a slot reused meanwhile is never
 * read twice. */
static struct centry *table_find(struct table *t, const uint8_t d[LK_DIGEST_LEN],
                                 struct slot **slot)
{
    uint64_t tag = tag_of(d);
    size_t i = index_of(t, d);

    for (;;) {
        struct slot *s = &t->slots[i];
        uint64_t st = atomic_load_explicit(&s->tag, memory_order_acquire);
        if (st == TAG_EMPTY)
            return NULL;
        if (st == tag) {
            struct centry *e = atomic_load_explicit(&s->e, memory_order_acquire);
            if (e != NULL && same_digest(e->k.digest, d)) {
                if (slot != NULL)
                    *slot = s;
                return e;
            }
        }
        i = (i + 1) & t->mask;
    }
}

/* Builds a table of nslots with every live entry of the current one and
 * publishes it; readers still in the old one finish there. */
static void rebuild(struct lk_keycache *c, size_t nslots)
{
    struct table *old = atomic_load_explicit(&c->t, memory_order_relaxed);
    struct table *t = table_new(nslots);

    for (size_t i = 0; old != NULL && i <= old->mask; i++) {
        struct centry *e = atomic_load_explicit(&old->slots[i].e, memory_order_relaxed);
        uint64_t tag = atomic_load_explicit(&old->slots[i].tag, memory_order_relaxed);
        if (e != NULL && tag > TAG_DELETED)
            table_insert(t, e);
    }
    atomic_store_explicit(&c->t, t, memory_order_release);
    if (old != NULL) {
        atomic_store_explicit(&old->gone, true, memory_order_release);
        call_rcu(&old->rcu, table_free_rcu);
    }
}

/* Slots for n live entries at most half full. */
static size_t slots_for(size_t n)
{
    size_t want = MIN_SLOTS;
    while (want < 2 * n)
        want <<= 1;
    return want;
}

/* Room for one more entry: grow at half full, purge when tombstones fill it. */
static void make_room(struct lk_keycache *c)
{
    struct table *t = atomic_load_explicit(&c->t, memory_order_relaxed);
    size_t cap = t->mask + 1;

    if (2 * (t->used + 1) <= cap)
        return;
    rebuild(c, 2 * (t->live + 1) > cap / 2 ? 2 * cap : cap);
}

/* --- the writer's rowid index ----------------------------------------- */

/* Rowids are dense (the store numbers rows 1, 2, ...): their low bits spread
 * them with no collision, and a snapshot's scan fills the slots in order. */
static size_t row_index(int64_t rowid, size_t mask)
{
    return (size_t)rowid & mask;
}

/* The slot of rowid, or the empty slot where it would go. A slot whose chain
 * emptied keeps a NULL head only until its key's next entry: see row_head. */
static struct rowslot *row_slot(struct lk_keycache *c, int64_t rowid)
{
    size_t i = row_index(rowid, c->rows_mask);

    while (c->rows[i].head != NULL && c->rows[i].head->k.rowid != rowid)
        i = (i + 1) & c->rows_mask;
    return &c->rows[i];
}

static void rows_grow(struct lk_keycache *c, size_t nslots)
{
    struct rowslot *old = c->rows;
    size_t old_n = c->rows ? c->rows_mask + 1 : 0;

    c->rows = lk_calloc(nslots, sizeof(*c->rows));
    c->rows_mask = nslots - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].head != NULL)
            *row_slot(c, old[i].head->k.rowid) = old[i];
    free(old);
}

/* The rowid's chain head; an empty slot for a new rowid, with room made. A
 * chain never empties: a key stays in the cache (revoked keys too) with at
 * least its current digest, and a new entry joins before an old one leaves. */
static struct centry **row_head(struct lk_keycache *c, int64_t rowid)
{
    struct rowslot *r = row_slot(c, rowid);

    if (r->head == NULL) {
        if (2 * (c->rows_used + 1) > c->rows_mask + 1) {
            rows_grow(c, 2 * (c->rows_mask + 1));
            r = row_slot(c, rowid);
        }
        c->rows_used++;
    }
    return &r->head;
}

static void row_unlink(struct lk_keycache *c, struct centry *e)
{
    struct centry **p = row_head(c, e->k.rowid);

    while (*p != NULL && *p != e)
        p = &(*p)->rnext;
    if (*p == e)
        *p = e->rnext;
}

/* --- permission sets ------------------------------------------------------ */

static uint64_t text_hash(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static void sets_grow(struct lk_keycache *c)
{
    size_t n = (c->sets_mask + 1) * 2;
    struct permset **b = lk_calloc(n, sizeof(*b));

    for (size_t i = 0; i <= c->sets_mask; i++) {
        struct permset *p = c->sets[i], *next;
        for (; p != NULL; p = next) {
            next = p->next;
            p->next = b[p->hash & (n - 1)];
            b[p->hash & (n - 1)] = p;
        }
    }
    free(c->sets);
    c->sets = b;
    c->sets_mask = n - 1;
}

/* The set for permissions text `perms` (a JSON array), one more reference. */
static struct permset *permset_get(struct lk_keycache *c, const char *perms)
{
    uint64_t h = text_hash(perms);
    struct permset *p;
    bool star = strcmp(perms, "[\"*\"]") == 0; /* the default; skip the parser */
    json_t *arr;
    size_t n, size, plen = strlen(perms), *lens;
    const char **ptrs;
    char *str;

    for (p = c->sets[h & c->sets_mask]; p != NULL; p = p->next)
        if (p->hash == h && strcmp(p->json, perms) == 0) {
            p->refs++;
            return p;
        }
    /* Permissions were validated on the way in; they are parsed once here, so
     * no request parses them. */
    arr = star ? json_pack("[s]", "*") : json_loads(perms, 0, NULL);
    n = json_is_array(arr) ? json_array_size(arr) : 0;
    size = sizeof(*p) + plen + 1 + n * (sizeof(char *) + sizeof(size_t)) + sizeof(char *);
    for (size_t i = 0; i < n; i++)
        size += json_string_length(json_array_get(arr, i)) + 1;
    p = lk_calloc(1, size);
    p->hash = h;
    p->refs = 1;
    memcpy(p->json, perms, plen + 1);
    ptrs = (const char **)(((uintptr_t)(p->json + plen + 1) + 7) & ~(uintptr_t)7);
    lens = (size_t *)(ptrs + n);
    str = (char *)(lens + n);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        size_t l = json_string_length(v);
        memcpy(str, json_string_value(v), l + 1);
        ptrs[i] = str;
        lens[i] = l;
        str += l + 1;
    }
    p->list = (struct lk_permlist){n, ptrs, lens};
    json_decref(arr);
    c->set_bytes += size;
    p->next = c->sets[h & c->sets_mask];
    c->sets[h & c->sets_mask] = p;
    if (++c->sets_n > c->sets_mask + 1)
        sets_grow(c);
    return p;
}

static void permset_free_rcu(struct rcu_head *head)
{
    struct permset *p = caa_container_of(head, struct permset, rcu);

    lk_assert(atomic_load_explicit(&p->gone, memory_order_acquire)); /* see retired_free_rcu */
    free(p);
}

/* One reference fewer; the last one unlinks the set and frees it after a
 * grace period (readers may still hold an entry that points at it). */
static void permset_put(struct lk_keycache *c, struct permset *p)
{
    struct permset **pp = &c->sets[p->hash & c->sets_mask];

    if (--p->refs > 0)
        return;
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    c->sets_n--;
    atomic_store_explicit(&p->gone, true, memory_order_release);
    call_rcu(&p->rcu, permset_free_rcu);
}

/* --- entries ------------------------------------------------------------ */

/* True when s can stand in a JSON string as it is: printable ASCII, no quote or
 * backslash. Most names are, and then no encoder is needed at start. */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    return true;
}

static void retired_free_rcu(struct rcu_head *head)
{
    struct retired *r = caa_container_of(head, struct retired, rcu);
    /* Pairs with flush_retired: liburcu's queue orders this for the machine,
     * the atomic makes it visible to ThreadSanitizer too. */
    size_t n = atomic_load_explicit(&r->handed, memory_order_acquire);

    for (size_t i = 0; i < n; i++)
        centry_free(r->e[i]);
    free(r);
}

/* Hands the entries retired so far to RCU: freed once no reader holds them. */
static void flush_retired(struct lk_keycache *c)
{
    if (c->retired != NULL) {
        atomic_store_explicit(&c->retired->handed, c->retired->n, memory_order_release);
        call_rcu(&c->retired->rcu, retired_free_rcu);
    }
    c->retired = NULL;
}

static struct permset *set_of(const struct centry *e)
{
    return caa_container_of(e->k.perms, struct permset, list);
}

/* Whether a key's meta text says something: "{}" (the default) and "" say
 * nothing, and a key with nothing to say pays nothing for it. Meta is an
 * object's compact JSON (checked on the way in); anything else is not shown. */
static bool meta_said(const char *meta)
{
    size_t n = meta ? strlen(meta) : 0;

    return n > 2 && meta[0] == '{' && meta[n - 1] == '}';
}

/* The rarely used part of row's entries, or NULL when it has none of it: own
 * credits, named limits, meta (compact JSON of at most 4096 bytes, checked on
 * the way in) and identity, in one allocation. */
static const struct lk_ckey_ext *ext_new(struct lk_keycache *c, const struct lk_key_row *row)
{
    int n = row->n_rate_limits > LK_KEY_RATE_LIMITS_MAX ? LK_KEY_RATE_LIMITS_MAX
                                                       : row->n_rate_limits;
    bool meta = meta_said(row->meta), idn = row->identity_id[0] != '\0';
    size_t size, mlen = meta ? strlen(row->meta) : 0, ilen = idn ? strlen(row->identity_id) : 0;
    json_t *xs = NULL;
    char *xj = NULL, *p;
    size_t xlen = 0;
    struct lk_ckey_ext *x;

    if (!row->has_credits && n <= 0 && !meta && !idn)
        return NULL;
    if (n < 0)
        n = 0;
    if (idn) {
        xs = json_string(row->external_id);
        xj = xs ? json_dumps(xs, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(xs);
        xlen = xj ? strlen(xj) : 2;
    }
    size = sizeof(*x) + (size_t)n * sizeof(x->rl[0]) + (meta ? mlen + 1 : 0) +
           (idn ? ilen + 1 + xlen + 1 : 0);
    x = lk_calloc(1, size);
    c->entry_bytes += size;
    x->credits = row->has_credits;
    x->n_rl = n;
    x->bytes = (uint32_t)size;
    for (int i = 0; i < n; i++) {
        const struct lk_key_rl *r = &row->rate_limits[i];
        x->rl[i].limit = r->limit;
        x->rl[i].window_ms = r->window_ms;
        x->rl[i].auto_apply = r->auto_apply;
        x->rl[i].name_len = (uint8_t)strnlen(r->name, LK_RL_NAME_MAX);
        memcpy(x->rl[i].name, r->name, x->rl[i].name_len);
        x->rl[i].name_hash = UINT64_C(14695981039346656037);
        for (size_t j = 0; j < x->rl[i].name_len; j++)
            x->rl[i].name_hash = (x->rl[i].name_hash ^ (uint8_t)r->name[j]) * UINT64_C(1099511628211);
    }
    p = (char *)&x->rl[n];
    if (meta) {
        memcpy(p, row->meta, mlen + 1);
        x->meta_json = p;
        x->meta_len = (uint32_t)mlen;
        p += mlen + 1;
    }
    if (idn) {
        memcpy(p, row->identity_id, ilen + 1);
        x->identity_id = p;
        p += ilen + 1;
        memcpy(p, xj ? xj : "\"\"", xlen + 1);
        x->external_json = p;
    }
    free(xj);
    return x;
}

static size_t ext_size(const struct lk_ckey_ext *x)
{
    return x ? x->bytes : 0;
}

static void centry_free(struct centry *e)
{
    free((void *)e->k.ext);
    free(e);
}

/* Builds an entry for one digest of row; the name is JSON-encoded once here. */
static struct centry *centry_new(struct lk_keycache *c, const struct lk_key_row *row,
                                 const uint8_t d[LK_DIGEST_LEN], bool peppered,
                                 int64_t retired_at)
{
    json_t *name = NULL;
    char *enc = NULL;
    const char *nj;
    size_t nlen;
    struct centry *e;

    if (json_plain(row->name)) {
        nj = row->name;
        nlen = strlen(row->name) + 2;
    } else {
        name = json_string(row->name);
        enc = name ? json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        nj = enc ? enc : "\"\"";
        nlen = strlen(nj);
    }
    e = lk_malloc(offsetof(struct centry, name_json) + nlen + 1);
    memset(e, 0, offsetof(struct centry, name_json));
    if (enc == NULL && name == NULL) {
        e->name_json[0] = '"';
        memcpy(e->name_json + 1, nj, nlen - 2);
        e->name_json[nlen - 1] = '"';
        e->name_json[nlen] = '\0';
    } else {
        memcpy(e->name_json, nj, nlen + 1);
    }
    json_decref(name);
    free(enc);
    c->entry_bytes += offsetof(struct centry, name_json) + nlen + 1;

    memcpy(e->k.digest, d, LK_DIGEST_LEN);
    e->peppered = peppered;
    e->k.rowid = row->rowid;
    e->k.expires_at = row->expires_at;
    e->k.revoked_at = row->revoked_at;
    e->k.retired_at = retired_at;
    e->k.env = (uint8_t)row->env;
    e->k.kind = (uint8_t)row->kind;
    e->k.enabled = row->enabled;
    /* A previous secret may be an imported one the key was regenerated from. */
    e->k.made_here = retired_at == 0 && d == row->digest &&
                     strcmp(row->hint, LK_KEY_HINT_IMPORTED) != 0;
    memcpy(e->k.id, row->id, sizeof(e->k.id));
    atomic_init(&e->k.last_used, row->last_used_at);
    /* Validated on the way in: a limit ≤ 10^9, a window ≤ 31 days. */
    e->k.rl_limit = (int32_t)row->rl_limit;
    e->k.rl_window_s = (int32_t)row->rl_window_s;
    e->k.spend_cap = row->daily_spend_cap;
    e->k.ext = ext_new(c, row);
    e->k.ext_limits = e->k.ext != NULL && (e->k.ext->credits || e->k.ext->n_rl > 0);
    atomic_init(&e->k.st, NULL);
    struct permset *ps = permset_get(c, row->permissions ? row->permissions : "[\"*\"]");
    e->k.permissions_json = ps->json;
    e->k.perms = &ps->list;
    e->k.name_json = e->name_json;
    return e;
}

static void account(struct lk_keycache *c, bool peppered, int delta)
{
    unsigned kinds;

    atomic_store_explicit(&c->count, atomic_load_explicit(&c->count, memory_order_relaxed) +
                                         (unsigned long)(long)delta,
                          memory_order_relaxed);
    if (!peppered)
        c->plain_n += (size_t)(long)delta;
    else
        c->peppered_n += (size_t)(long)delta;
    kinds = (c->plain_n > 0 ? 1u : 0u) | (c->peppered_n > 0 ? 2u : 0u);
    if (kinds != atomic_load_explicit(&c->kinds, memory_order_relaxed))
        atomic_store_explicit(&c->kinds, kinds, memory_order_release);
}

/* An entry out of the table: out of its key's chain and freed once no reader
 * can hold it. */
static void retire(struct lk_keycache *c, struct centry *e)
{
    row_unlink(c, e);
    account(c, e->peppered, -1);
    c->entry_bytes -= offsetof(struct centry, name_json) + strlen(e->name_json) + 1 +
                      ext_size(e->k.ext);
    permset_put(c, set_of(e));
    if (c->retired != NULL && c->retired->n == RETIRED_MAX)
        flush_retired(c);
    if (c->retired == NULL)
        c->retired = lk_calloc(1, sizeof(*c->retired));
    c->retired->e[c->retired->n++] = e;
}

static void publish(struct lk_keycache *c, struct centry *e)
{
    struct table *t = atomic_load_explicit(&c->t, memory_order_relaxed);
    struct slot *s = NULL;
    struct centry *old = table_find(t, e->k.digest, &s), **head;

    head = row_head(c, e->k.rowid);
    e->rnext = *head;
    *head = e;
    account(c, e->peppered, 1);
    if (old != NULL) {
        int64_t lu = atomic_load(&old->k.last_used);
        if (lu > atomic_load(&e->k.last_used))
            atomic_store(&e->k.last_used, lu);
        atomic_store_explicit(&s->e, e, memory_order_release);
        retire(c, old);
    } else {
        make_room(c);
        table_insert(atomic_load_explicit(&c->t, memory_order_relaxed), e);
    }
}

/* Whether d is one of row's digests. */
static bool row_has(const struct lk_key_row *row, const uint8_t d[LK_DIGEST_LEN])
{
    return same_digest(row->digest, d) || (row->has_prev && same_digest(row->prev_digest, d));
}

void lk_keycache_put(struct lk_keycache *c, const struct lk_key_row *row)
{
    struct lk_wstate *ws = c->last_ws;
    struct centry *e = centry_new(c, row, row->digest, row->pepper_id != 0, 0), **p;

    if (ws == NULL || strcmp(c->last_ws_id, row->workspace_id) != 0) {
        ws = c->last_ws = lk_counters_ws(c->counters, row->workspace_id);
        snprintf(c->last_ws_id, sizeof(c->last_ws_id), "%s", row->workspace_id);
    }
    e->k.ws = ws;
    publish(c, e);
    if (row->has_prev) {
        e = centry_new(c, row, row->prev_digest, row->prev_pepper_id != 0, row->prev_until);
        e->k.ws = ws;
        publish(c, e);
    }
    /* Entries of digests the key no longer has (a secret whose grace period a
     * second regeneration ended) go: a tombstone, then the entry after a grace
     * period. */
    p = row_head(c, row->rowid);
    while (*p != NULL) {
        struct centry *o = *p;
        if (row_has(row, o->k.digest)) {
            p = &o->rnext;
            continue;
        }
        struct table *t = atomic_load_explicit(&c->t, memory_order_relaxed);
        struct slot *s = NULL;
        if (table_find(t, o->k.digest, &s) != NULL) {
            atomic_store_explicit(&s->tag, TAG_DELETED, memory_order_release);
            atomic_store_explicit(&s->e, NULL, memory_order_release);
            t->live--;
        }
        retire(c, o); /* unlinks *p */
    }
    flush_retired(c);
}

struct lk_keycache *lk_keycache_new(struct lk_counters *counters)
{
    struct lk_keycache *c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);

    lk_assert(c != NULL);
    memset(c, 0, sizeof(*c));
    c->counters = counters;
    atomic_init(&c->t, table_new(MIN_SLOTS));
    c->rows = lk_calloc(MIN_SLOTS, sizeof(*c->rows));
    c->rows_mask = MIN_SLOTS - 1;
    c->sets = lk_calloc(64, sizeof(*c->sets));
    c->sets_mask = 63;
    return c;
}

void lk_keycache_free(struct lk_keycache *c)
{
    struct table *t;

    if (c == NULL)
        return;
    rcu_barrier(); /* every deferred free has run */
    t = atomic_load(&c->t);
    for (size_t i = 0; i <= t->mask; i++) {
        struct centry *e = atomic_load(&t->slots[i].e);
        if (e != NULL && atomic_load(&t->slots[i].tag) > TAG_DELETED)
            centry_free(e);
    }
    table_free(t);
    for (size_t i = 0; i <= c->sets_mask; i++) {
        struct permset *p = c->sets[i], *next;
        for (; p != NULL; p = next) {
            next = p->next;
            free(p);
        }
    }
    free(c->sets);
    free(c->rows);
    free(c);
}

void lk_keycache_thread_online(void)
{
    rcu_register_thread();
}

void lk_keycache_thread_offline(void)
{
    rcu_unregister_thread();
}

void lk_keycache_read_lock(void)
{
    rcu_read_lock();
}

void lk_keycache_read_unlock(void)
{
    rcu_read_unlock();
}

const struct lk_ckey *lk_keycache_find(struct lk_keycache *c, const uint8_t d[LK_DIGEST_LEN])
{
    struct centry *e = table_find(atomic_load_explicit(&c->t, memory_order_acquire), d, NULL);

    return e ? &e->k : NULL;
}

void lk_keycache_prefetch(struct lk_keycache *c, const uint8_t d[LK_DIGEST_LEN])
{
    struct table *t = atomic_load_explicit(&c->t, memory_order_acquire);
    __builtin_prefetch(&t->slots[index_of(t, d)]);
}

void lk_keycache_reserve(struct lk_keycache *c, unsigned long n)
{
    struct table *t = atomic_load_explicit(&c->t, memory_order_relaxed);
    size_t want = slots_for(t->live + n), rows = slots_for(c->rows_used + n);

    if (want > t->mask + 1)
        rebuild(c, want);
    if (rows > c->rows_mask + 1)
        rows_grow(c, rows);
}

void lk_keycache_fit(struct lk_keycache *c)
{
    struct table *t = atomic_load_explicit(&c->t, memory_order_relaxed);

    if (t->used - t->live > t->live / 4 + MIN_SLOTS / 8)
        rebuild(c, slots_for(t->live));
}

size_t lk_keycache_bytes(struct lk_keycache *c)
{
    struct table *t = atomic_load_explicit(&c->t, memory_order_relaxed);

    return (t->mask + 1) * sizeof(struct slot) + (c->rows_mask + 1) * sizeof(struct rowslot) +
           (c->sets_mask + 1) * sizeof(struct permset *) + c->entry_bytes + c->set_bytes;
}

unsigned long lk_keycache_count(struct lk_keycache *c)
{
    return atomic_load(&c->count);
}

unsigned lk_keycache_pepper_mask(struct lk_keycache *c, uint32_t configured_pepper_id)
{
    unsigned m = atomic_load_explicit(&c->kinds, memory_order_acquire);

    return configured_pepper_id != 0 ? m : m & 1;
}

const char *lk_ckey_workspace_id(const struct lk_ckey *k)
{
    return lk_wstate_id(k->ws);
}
