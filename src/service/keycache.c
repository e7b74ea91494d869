#include "service/keycache.h"

#include <jansson.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "base/common.h"
#include "base/log.h"
#include "counters/counters.h"
#include "core/perm.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* One allocation per entry, 64-byte aligned: the hash node and the digest the
 * lookup compares share the first cache line, and the strings a verification
 * reads (permissions, name) follow the record instead of living elsewhere. */
struct centry {
    struct cds_lfht_node node;
    struct cds_lfht_node rnode; /* in the table by rowid: a key's entries, found again */
    struct lk_ckey k;
    struct rcu_head rcu;
    uint32_t pepper_id;
    _Alignas(max_align_t) char mem[]; /* perm pointers, perm lengths, then the strings */
};

struct lk_keycache {
    struct cds_lfht *ht;
    struct cds_lfht *by_rowid; /* the same entries by their key's rowid (duplicates) */
    struct lk_counters *counters;
    _Atomic unsigned long count;
    _Atomic unsigned plain_count;    /* entries whose digest has no pepper */
    _Atomic unsigned peppered_count; /* entries with a pepper */
};

static unsigned long hash_of(const uint8_t d[LK_DIGEST_LEN])
{
    unsigned long h;
    /* Digests are uniformly random: any 8 bytes are a good hash. */
    memcpy(&h, d, sizeof(h));
    return h;
}

static unsigned long hash_rowid(int64_t rowid)
{
    uint64_t h = (uint64_t)rowid * UINT64_C(0x9e3779b97f4a7c15);
    return (unsigned long)(h ^ (h >> 29));
}

static int match_rowid(struct cds_lfht_node *node, const void *key)
{
    const struct centry *e = caa_container_of(node, struct centry, rnode);
    return e->k.rowid == *(const int64_t *)key;
}

static int match(struct cds_lfht_node *node, const void *key)
{
    const struct centry *e = caa_container_of(node, struct centry, node);
    return lk_digest_equal(e->k.digest, key);
}

struct lk_keycache *lk_keycache_new(struct lk_counters *counters)
{
    struct lk_keycache *c = lk_calloc(1, sizeof(*c));

    c->counters = counters;
    c->ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    c->by_rowid = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    lk_assert(c->ht != NULL && c->by_rowid != NULL);
    return c;
}

static void centry_free(struct centry *e)
{
    free(e);
}

static void centry_free_rcu(struct rcu_head *head)
{
    centry_free(caa_container_of(head, struct centry, rcu));
}

void lk_keycache_free(struct lk_keycache *c)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;

    if (c == NULL)
        return;
    rcu_read_lock();
    cds_lfht_first(c->ht, &it);
    while ((node = cds_lfht_iter_get_node(&it)) != NULL) {
        struct centry *e = caa_container_of(node, struct centry, node);
        cds_lfht_next(c->ht, &it);
        if (cds_lfht_del(c->ht, node) == 0) {
            cds_lfht_del(c->by_rowid, &e->rnode);
            call_rcu(&e->rcu, centry_free_rcu);
        }
    }
    rcu_read_unlock();
    rcu_barrier(); /* every deferred free has run */
    cds_lfht_destroy(c->ht, NULL);
    cds_lfht_destroy(c->by_rowid, NULL);
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
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;

    cds_lfht_lookup(c->ht, hash_of(d), match, d, &it);
    node = cds_lfht_iter_get_node(&it);
    return node ? &caa_container_of(node, struct centry, node)->k : NULL;
}

/* True when s can stand in a JSON string as it is: printable ASCII, no quote or
 * backslash. Most names are, and then no encoder is needed at start. */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    return true;
}

/* Builds an entry for one digest of row. */
static struct centry *centry_new(const struct lk_key_row *row, const uint8_t d[LK_DIGEST_LEN],
                                 uint32_t pepper_id, int64_t retired_at)
{
    const char *perms = row->permissions ? row->permissions : "[\"*\"]";
    bool star = strcmp(perms, "[\"*\"]") == 0; /* the default; skip the parser */
    json_t *arr = star ? json_pack("[s]", "*") : json_loads(perms, 0, NULL), *name = NULL;
    char *name_json = NULL;
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0, size, i, nlen;
    size_t plen = strlen(perms);

    if (json_plain(row->name)) {
        nlen = strlen(row->name) + 2;
        name_json = lk_malloc(nlen + 1);
        name_json[0] = '"';
        memcpy(name_json + 1, row->name, nlen - 2);
        name_json[nlen - 1] = '"';
        name_json[nlen] = '\0';
    } else {
        name = json_string(row->name);
        name_json = name ? json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        nlen = name_json ? strlen(name_json) : 2;
    }
    struct centry *e;
    char **ptrs, *str;
    size_t *lens;

    /* Permissions were validated on the way in; they are parsed once here, and the
     * name is JSON-encoded once, so no request parses or escapes them. */
    size = sizeof(*e) + n * (sizeof(char *) + sizeof(size_t)) + plen + 1 + nlen + 1;
    for (i = 0; i < n; i++)
        size += json_string_length(json_array_get(arr, i)) + 1;
    size = (size + 63) & ~(size_t)63;
    e = aligned_alloc(64, size);
    lk_assert(e != NULL);
    memset(e, 0, size);
    ptrs = (char **)e->mem;
    lens = (size_t *)(ptrs + n);
    str = (char *)(lens + n);

    memcpy(e->k.digest, d, LK_DIGEST_LEN);
    e->pepper_id = pepper_id;
    e->k.rowid = row->rowid;
    e->k.expires_at = row->expires_at;
    e->k.revoked_at = row->revoked_at;
    e->k.retired_at = retired_at;
    e->k.env = row->env;
    e->k.kind = row->kind;
    e->k.enabled = row->enabled;
    memcpy(e->k.id, row->id, sizeof(e->k.id));
    atomic_init(&e->k.last_used, row->last_used_at);
    /* Validated on the way in: a limit ≤ 10^9, a window ≤ 31 days. */
    e->k.rl_limit = (int32_t)row->rl_limit;
    e->k.rl_window_s = (int32_t)row->rl_window_s;
    e->k.spend_cap = row->daily_spend_cap;
    atomic_init(&e->k.st, NULL);

    memcpy(str, perms, plen + 1);
    e->k.permissions_json = str;
    str += plen + 1;
    memcpy(str, name_json ? name_json : "\"\"", nlen + 1);
    e->k.name_json = str;
    str += nlen + 1;
    for (i = 0; i < n; i++) {
        json_t *p = json_array_get(arr, i);
        size_t l = json_string_length(p);
        memcpy(str, json_string_value(p), l + 1);
        ptrs[i] = str;
        lens[i] = l;
        str += l + 1;
    }
    e->k.nperms = n;
    e->k.perms = (const char *const *)ptrs;
    e->k.perm_lens = lens;
    json_decref(arr);
    json_decref(name);
    free(name_json);
    return e;
}

static void account(struct lk_keycache *c, uint32_t pepper_id, int delta)
{
    atomic_fetch_add(&c->count, (unsigned long)(long)delta);
    if (pepper_id == 0)
        atomic_fetch_add(&c->plain_count, (unsigned)delta);
    else
        atomic_fetch_add(&c->peppered_count, (unsigned)delta);
}

static void publish(struct lk_keycache *c, struct centry *e)
{
    struct cds_lfht_node *old_node;
    const struct lk_ckey *prev;

    rcu_read_lock();
    if ((prev = lk_keycache_find(c, e->k.digest)) != NULL) {
        int64_t lu = atomic_load(&((struct lk_ckey *)prev)->last_used);
        if (lu > atomic_load(&e->k.last_used))
            atomic_store(&e->k.last_used, lu);
    }
    old_node = cds_lfht_add_replace(c->ht, hash_of(e->k.digest), match, e->k.digest, &e->node);
    cds_lfht_add(c->by_rowid, hash_rowid(e->k.rowid), &e->rnode);
    account(c, e->pepper_id, 1);
    if (old_node != NULL) {
        struct centry *old = caa_container_of(old_node, struct centry, node);
        cds_lfht_del(c->by_rowid, &old->rnode);
        account(c, old->pepper_id, -1);
        call_rcu(&old->rcu, centry_free_rcu);
    }
    rcu_read_unlock();
}

static void drop(struct lk_keycache *c, const uint8_t d[LK_DIGEST_LEN])
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;

    rcu_read_lock();
    cds_lfht_lookup(c->ht, hash_of(d), match, d, &it);
    if ((node = cds_lfht_iter_get_node(&it)) != NULL && cds_lfht_del(c->ht, node) == 0) {
        struct centry *e = caa_container_of(node, struct centry, node);
        cds_lfht_del(c->by_rowid, &e->rnode);
        account(c, e->pepper_id, -1);
        call_rcu(&e->rcu, centry_free_rcu);
    }
    rcu_read_unlock();
}

/* Whether d is one of row's digests. */
static bool row_has(const struct lk_key_row *row, const uint8_t d[LK_DIGEST_LEN])
{
    return lk_digest_equal(row->digest, d) || (row->has_prev && lk_digest_equal(row->prev_digest, d));
}

void lk_keycache_put(struct lk_keycache *c, const struct lk_key_row *row)
{
    struct lk_wstate *ws = lk_counters_ws(c->counters, row->workspace_id);
    struct centry *e = centry_new(row, row->digest, row->pepper_id, 0);
    uint8_t stale[4][LK_DIGEST_LEN];
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;
    size_t nstale = 0;

    e->k.ws = ws;
    publish(c, e);
    if (row->has_prev) {
        e = centry_new(row, row->prev_digest, row->prev_pepper_id, row->prev_until);
        e->k.ws = ws;
        publish(c, e);
    }
    /* Entries of digests the key no longer has (a secret whose grace period a
     * second regeneration ended) go. */
    rcu_read_lock();
    cds_lfht_lookup(c->by_rowid, hash_rowid(row->rowid), match_rowid, &row->rowid, &it);
    while ((node = cds_lfht_iter_get_node(&it)) != NULL && nstale < LK_ARRAY_LEN(stale)) {
        const struct centry *o = caa_container_of(node, struct centry, rnode);
        if (!row_has(row, o->k.digest))
            memcpy(stale[nstale++], o->k.digest, LK_DIGEST_LEN);
        cds_lfht_next_duplicate(c->by_rowid, match_rowid, &row->rowid, &it);
    }
    rcu_read_unlock();
    for (size_t i = 0; i < nstale; i++)
        drop(c, stale[i]);
}

void lk_keycache_fit(struct lk_keycache *c)
{
    unsigned long want = 1024, n = atomic_load(&c->count);

    while (want < n && want < (1UL << 30))
        want <<= 1;
    cds_lfht_resize(c->ht, want);
    cds_lfht_resize(c->by_rowid, want);
}

unsigned long lk_keycache_count(struct lk_keycache *c)
{
    return atomic_load(&c->count);
}

unsigned lk_keycache_pepper_mask(struct lk_keycache *c, uint32_t configured_pepper_id)
{
    unsigned m = 0;

    if (atomic_load(&c->plain_count) > 0)
        m |= 1;
    if (configured_pepper_id != 0 && atomic_load(&c->peppered_count) > 0)
        m |= 2;
    return m;
}

const char *lk_ckey_workspace_id(const struct lk_ckey *k)
{
    return lk_wstate_id(k->ws);
}
