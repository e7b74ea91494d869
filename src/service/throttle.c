#include "service/throttle.h"

#include <pthread.h>
#include <stdatomic.h>

#include <sodium.h>

#include "base/common.h"
#include "core/netaddr.h"
#include "core/window.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* An open-addressed table of 64-bit keyed hashes (SipHash with a random key, so
 * nobody can make their name collide with someone else's to lock them out); the
 * count is capped, so a linear probe over a fixed array is all it needs. */
#define SLOTS (LK_THROTTLE_MAX_NAMES * 2)

struct slot {
    uint64_t key; /* 0: empty */
    struct lk_window w;
};

struct lk_throttle {
    pthread_mutex_t mu;
    int64_t limit, window_s;
    size_t used;
    struct slot *slots;
    /* No name is blocked at or after this time: lets lk_throttle_blocked() answer
     * the common case without the lock. */
    _Atomic int64_t horizon;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

/* An IPv6 client counts by its /64: a host (or a home) is given a whole /64,
 * and counting each address alone would let it rotate past every limit. An
 * IPv4 address and any other name count as themselves. */
static uint64_t key_of(const struct lk_throttle *t, const char *name)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    unsigned char out[crypto_shorthash_BYTES];
    char net[LK_NETADDR_TEXT_MAX + 3];
    struct lk_netaddr a;
    uint64_t k;

    if (lk_netaddr_parse(name, strlen(name), &a) == 0 && memcmp(a.b, mapped, 12) != 0) {
        memset(a.b + 8, 0, 8);
        lk_netaddr_format(&a, net, LK_NETADDR_TEXT_MAX);
        memcpy(net + strlen(net), "/64", 4);
        name = net;
    }
    crypto_shorthash(out, (const unsigned char *)name, strlen(name), t->hash_key);
    memcpy(&k, out, sizeof(k));
    return k ? k : 1;
}

struct lk_throttle *lk_throttle_new(int64_t limit, int64_t window_s)
{
    struct lk_throttle *t = lk_calloc(1, sizeof(*t));

    pthread_mutex_init(&t->mu, NULL);
    t->limit = limit;
    t->window_s = window_s;
    t->slots = lk_calloc(SLOTS, sizeof(struct slot));
    lk_assert(sodium_init() >= 0);
    randombytes_buf(t->hash_key, sizeof(t->hash_key));
    return t;
}

void lk_throttle_free(struct lk_throttle *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

/* The slot holding key, or NULL. Caller holds t->mu. */
static struct slot *find(struct lk_throttle *t, uint64_t key)
{
    for (size_t i = key % SLOTS, n = 0; n < SLOTS; i = (i + 1) % SLOTS, n++) {
        if (t->slots[i].key == 0)
            return NULL;
        if (t->slots[i].key == key)
            return &t->slots[i];
    }
    return NULL;
}

/* Rebuilds the table without closed windows (and, if that frees nothing, without
 * the oldest one), so there is room. Caller holds t->mu. */
static void make_room(struct lk_throttle *t, int64_t now)
{
    struct slot *old = t->slots, *oldest = NULL;

    for (size_t i = 0; i < SLOTS; i++)
        if (old[i].key && (oldest == NULL || old[i].w.start < oldest->w.start))
            oldest = &old[i];
    t->slots = lk_calloc(SLOTS, sizeof(struct slot));
    t->used = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        if (!old[i].key || lk_window_expired(&old[i].w, now, t->window_s) || &old[i] == oldest)
            continue;
        size_t j = old[i].key % SLOTS;
        while (t->slots[j].key)
            j = (j + 1) % SLOTS;
        t->slots[j] = old[i];
        t->used++;
    }
    free(old);
}


/* The slot of key, made if missing. Caller holds t->mu. */
static struct slot *slot_for(struct lk_throttle *t, uint64_t key, int64_t now)
{
    struct slot *s;

    if ((s = find(t, key)) == NULL) {
        size_t i;
        if (t->used >= LK_THROTTLE_MAX_NAMES)
            make_room(t, now);
        i = key % SLOTS;
        while (t->slots[i].key)
            i = (i + 1) % SLOTS;
        s = &t->slots[i];
        s->key = key;
        s->w = (struct lk_window){0};
        t->used++;
    }
    return s;
}


bool lk_throttle_take(struct lk_throttle *t, const char *name, int64_t now, int64_t *retry_after)
{
    uint64_t key = key_of(t, name);
    struct slot *s;
    bool ok;

    pthread_mutex_lock(&t->mu);
    s = slot_for(t, key, now);
    ok = !lk_window_full(&s->w, now, t->limit, t->window_s, retry_after);
    if (ok)
        lk_window_add(&s->w, now, t->window_s);
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void lk_throttle_refund(struct lk_throttle *t, const char *name)
{
    uint64_t key = key_of(t, name);
    struct slot *s;

    pthread_mutex_lock(&t->mu);
    if ((s = find(t, key)) != NULL && s->w.count > 0)
        s->w.count--;
    pthread_mutex_unlock(&t->mu);
}

void lk_throttle_clear(struct lk_throttle *t, const char *name)
{
    uint64_t key = key_of(t, name);
    struct slot *s;

    pthread_mutex_lock(&t->mu);
    /* Keep the slot (open addressing needs it for probing); just empty the window. */
    if ((s = find(t, key)) != NULL)
        s->w = (struct lk_window){0};
    pthread_mutex_unlock(&t->mu);
}

bool lk_throttle_blocked(struct lk_throttle *t, const char *name, int64_t now,
                         int64_t *retry_after)
{
    struct slot *s;
    bool blocked = false;

    if (t == NULL || now >= atomic_load_explicit(&t->horizon, memory_order_relaxed))
        return false;
    uint64_t key = key_of(t, name);
    pthread_mutex_lock(&t->mu);
    if ((s = find(t, key)) != NULL)
        blocked = lk_window_full(&s->w, now, t->limit, t->window_s, retry_after);
    pthread_mutex_unlock(&t->mu);
    return blocked;
}

bool lk_throttle_note(struct lk_throttle *t, const char *name, int64_t now, int64_t *retry_after)
{
    struct slot *s;
    bool counted;

    if (t == NULL)
        return true;
    uint64_t key = key_of(t, name);
    pthread_mutex_lock(&t->mu);
    s = slot_for(t, key, now);
    if ((counted = !lk_window_full(&s->w, now, t->limit, t->window_s, retry_after)))
        lk_window_add(&s->w, now, t->window_s);
    if (s->w.count >= t->limit && s->w.start + t->window_s > atomic_load(&t->horizon))
        atomic_store(&t->horizon, s->w.start + t->window_s);
    pthread_mutex_unlock(&t->mu);
    return counted;
}
