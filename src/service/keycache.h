/*
 * keycache.h — every key's record in memory, found by the digest of its secret
 * in O(1), so verification never queries the database (DESIGN §8).
 *
 * Design (docs/internals/keycache.md): an open-addressed table of 16-byte slots
 * (a digest prefix beside a pointer to a compact entry), read without locks
 * under liburcu's RCU. Entries are immutable snapshots; a change publishes a
 * new entry and frees the old one after a grace period, so readers take no lock
 * and never see a half-written record. A key has one entry per live digest: its current
 * secret and, after a regeneration, its previous one (retired_at set).
 *
 * Thread safety: every thread that calls any function here must first call
 * lk_keycache_thread_online() once. Readers bracket lookups and every use of the
 * returned entry with lk_keycache_read_lock()/unlock(). Writers (put) may run
 * from any registered thread, one at a time (the feed serialises them).
 */
#ifndef LK_KEYCACHE_H
#define LK_KEYCACHE_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/digest.h"
#include "store/store.h"

/* The counters (counters/counters.h) stay opaque here: the layers above see
 * entries, never the counters they point at. */
struct lk_counters;
struct lk_wstate;
struct lk_kstate;

/* A key's permissions, parsed once and shared by every entry that has the same
 * permissions text (most keys of a workspace carry one of a few sets). */
struct lk_permlist {
    size_t n;
    const char *const *p; /* the permissions, n of them */
    const size_t *len;    /* their lengths */
};

/* A named rate limit of a key (other than "default", which is rl_limit). */
struct lk_ckey_rl {
    uint64_t name_hash; /* FNV-1a of the name: the counters' window is found by it */
    int64_t limit, window_ms;
    bool auto_apply;
    uint8_t name_len;
    char name[LK_RL_NAME_MAX + 1];
};

/* What few keys have, behind one pointer so that a key without them pays
 * nothing for them: its own credits (spent in the store, service/keycredits.h),
 * its named rate limits, its meta and its identity (shown by Unkey's verify).
 * The strings live in the same allocation, after rl[]. */
struct lk_ckey_ext {
    bool credits; /* the key has its own credits */
    int n_rl;     /* named limits in rl[] */
    uint32_t bytes;            /* the whole allocation */
    uint32_t meta_len;         /* bytes of meta_json */
    const char *meta_json;     /* the key's meta, a JSON object's text; NULL: none ({}) */
    const char *identity_id;   /* the key's identity; NULL: none */
    const char *external_json; /* the identity's external_id as a JSON string, quoted */
    struct lk_ckey_rl rl[];
};

/* One cached digest of one key. Read-only except `last_used`. The first 109
 * bytes are what every check of a key without own credits or named limits
 * reads (the digest compared, the key's state, its counting), so such a check
 * reads two cache lines of the entry, or three; the rest is for answers. */
struct lk_ckey {
    uint8_t digest[LK_DIGEST_LEN];
    int64_t expires_at, revoked_at; /* 0: none */
    int64_t retired_at;             /* 0: current secret; else refused from this time */
    _Atomic(struct lk_kstate *) st; /* the key's counters, made on first check */
    struct lk_wstate *ws;           /* the workspace: its id (lk_wstate_id) and counters */
    const struct lk_permlist *perms;
    _Atomic int64_t last_used;     /* Unix seconds of the last verification, 0 if none */
    int64_t spend_cap;             /* daily spend cap; -1: none */
    int32_t rl_limit, rl_window_s; /* the key's own rate limit; 0: none */
    uint8_t env;  /* enum lk_env */
    uint8_t kind; /* enum lk_key_kind */
    bool enabled;
    /* ext has own credits or named limits: the checks' slower path. A key whose
     * ext holds only its meta or identity is checked as a plain one. */
    bool ext_limits;
    /* The secret was made here (the key's current secret, not imported): its
     * checksum is right by construction, so a check that found it needs none. */
    bool made_here;
    const struct lk_ckey_ext *ext; /* NULL: no credits, named limits, meta or identity */
    int64_t rowid;
    const char *permissions_json; /* JSON array text */
    const char *name_json;        /* the key's name as a JSON string, quotes included */
    char id[LK_ID_MAX];
};

struct lk_keycache;

/* Entries point at their workspace's state in `counters` (borrowed; it must
 * outlive the cache). Caller frees with lk_keycache_free() (after every reader
 * thread has stopped). */
struct lk_keycache *lk_keycache_new(struct lk_counters *counters);
void lk_keycache_free(struct lk_keycache *c);

void lk_keycache_thread_online(void);
void lk_keycache_thread_offline(void);
void lk_keycache_read_lock(void);
void lk_keycache_read_unlock(void);

/* Entry for digest d, or NULL. Valid until lk_keycache_read_unlock(). */
const struct lk_ckey *lk_keycache_find(struct lk_keycache *c, const uint8_t d[LK_DIGEST_LEN]);

/* Publishes the key `row` (current digest and, if any, previous digest) and
 * removes the key's entries of digests `row` no longer has (found by rowid).
 * Keeps last_used across versions. The feed (service/feed.c) is its one caller
 * while serving. */
void lk_keycache_put(struct lk_keycache *c, const struct lk_key_row *row);

/* Makes room for n entries at once, so a bulk load of n keys never copies the
 * table as it grows. Called by the writer. */
void lk_keycache_reserve(struct lk_keycache *c, unsigned long n);

/* Rebuilds the table without its deleted slots when they are many. Called by
 * the writer after a bulk load. */
void lk_keycache_fit(struct lk_keycache *c);

/* Starts fetching the table slot for digest d into the cache, so the lookup
 * that follows other work finds it there. Inside the read lock. */
void lk_keycache_prefetch(struct lk_keycache *c, const uint8_t d[LK_DIGEST_LEN]);

/* Bytes the cache holds (table, entries, permission sets), for the bench. */
size_t lk_keycache_bytes(struct lk_keycache *c);

/* The id of the workspace of entry k: what the http layer names, without
 * reaching into the counters the entry points at. Inside the read lock. */
const char *lk_ckey_workspace_id(const struct lk_ckey *k);

/* Number of entries (digests). */
unsigned long lk_keycache_count(struct lk_keycache *c);

/* The peppers digests in the cache were made with: bit 0 = none, bit 1 = the
 * configured pepper. Lets verification skip digests no key can have. */
unsigned lk_keycache_pepper_mask(struct lk_keycache *c, uint32_t configured_pepper_id);

#endif
