#include "counters/counters.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "base/log.h"
#include "counters/counters_int.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

/* The counter file: chunks of CHUNK_SIZE bytes, each mapped on its own (a chunk
 * is never moved, so pointers into it stay valid while the file grows). Chunk 0
 * starts with the header; then, in every chunk, slots one after the other until
 * a zero tag: a slot header and a workspace or key state, or a key's named
 * rate-limit windows (after its key's slot). A slot is zeroed, then
 * filled, then tagged, so a kill while making one leaves a free slot. Nothing in
 * the file is believed unchecked: the header names the magic, version, this
 * build's layout, the boot and the database file, with a checksum; every state
 * read back must be sane (ids, bounds, no duplicates), or the whole file counts
 * as lost. */
#define FILE_MAGIC "LKCTRS01"
/* 2: named rate-limit windows in slots of their own; 3: a key's hot fields first */
#define FILE_VERSION 3
#define CHUNK_SIZE ((size_t)1 << 20)
#define HEADER_SIZE 4096
#define MAX_CHUNKS 16384 /* 16 GiB: far beyond any real file; bounds a hostile one */
#define BOOT_ID_MAX 64
#define SANE_MAX (INT64_C(1) << 53) /* every count and amount stays below */
#define SANE_TIME (INT64_C(1) << 40)

enum {
    SLOT_FREE = 0,
    SLOT_WS = 0x57535431,   /* "WST1" */
    SLOT_KEY = 0x4b535431,  /* "KST1" */
    SLOT_NAMED = 0x4e525731 /* "NRW1" */
};

struct file_header {
    char magic[8];
    uint32_t version, chunk_size;
    uint32_t ws_size, key_size; /* this build's layout: another build starts afresh */
    uint32_t named_size, pad;
    char boot_id[BOOT_ID_MAX];
    char owner[BOOT_ID_MAX]; /* the database file the counts belong to */
    uint64_t check;          /* FNV-1a of the bytes above */
};

struct slot {
    _Atomic uint32_t tag;
    uint32_t pad[3];
};

#define SLOT_ROUND(n) (((n) + 63) & ~(size_t)63)
#define WS_SLOT SLOT_ROUND(sizeof(struct slot) + sizeof(struct lk_wstate))
#define KEY_SLOT SLOT_ROUND(sizeof(struct slot) + sizeof(struct lk_kstate))
#define NAMED_SLOT SLOT_ROUND(sizeof(struct slot) + sizeof(struct lk_named_windows))

/* Two open-addressed tables (workspace id → state, key row id → state), grown
 * at half full. Only the first check of a key and management calls look here;
 * the cache entries keep the pointers. */
struct table {
    void **slots;
    size_t cap, used;
};

struct lk_counters {
    pthread_mutex_t mu; /* guards the tables, the lists and the file's growth */
    struct table ws, keys;
    int fd; /* the counter file; -1: states on the heap */
    uint8_t **chunks;
    size_t nchunks, chunk_cap;
    size_t cur, used; /* states are made in chunk `cur`, of which `used` bytes are taken */
    char boot_id[BOOT_ID_MAX], owner[BOOT_ID_MAX];
    bool warned; /* that the file could not grow */
    struct lk_wstate *all_ws;
    /* The dirty lists: pushed without mu (a check that makes a state dirty
     * takes no lock all loops share), taken whole by the recorder. */
    _Atomic(struct lk_wstate *) dirty_ws;
    _Atomic(struct lk_kstate *) dirty_keys;
    struct lk_counter_rows spill; /* rows of closed hours and days */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: ids are random already */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t hash_i64(int64_t v)
{
    uint64_t h = (uint64_t)v * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

typedef uint64_t (*hash_fn)(const void *item);

static uint64_t ws_hash(const void *item)
{
    return hash_str(((const struct lk_wstate *)item)->id);
}

static uint64_t key_hash(const void *item)
{
    return hash_i64(((const struct lk_kstate *)item)->rowid);
}

static void table_put(struct table *t, void *item, hash_fn hash)
{
    if ((t->used + 1) * 2 > t->cap) {
        struct table bigger = {lk_calloc(t->cap ? t->cap * 2 : 64, sizeof(void *)),
                               t->cap ? t->cap * 2 : 64, 0};
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i] != NULL)
                table_put(&bigger, t->slots[i], hash);
        free(t->slots);
        *t = bigger;
    }
    size_t i = hash(item) & (t->cap - 1);
    while (t->slots[i] != NULL)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = item;
    t->used++;
}

struct lk_counters *lk_counters_new(void)
{
    struct lk_counters *c = lk_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->fd = -1;
    return c;
}

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The kernel's boot id, which changes at every boot; "" when unknown (then no
 * file is ever believed). LATCHKEY_BOOT_ID_FILE replaces it for tests. */
static void read_boot_id(char out[BOOT_ID_MAX])
{
    const char *f = getenv("LATCHKEY_BOOT_ID_FILE");
    int fd = open(f != NULL && f[0] != '\0' ? f : "/proc/sys/kernel/random/boot_id",
                  O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, BOOT_ID_MAX - 1) : -1;
    size_t len = n > 0 ? (size_t)n : 0;

    if (fd >= 0)
        close(fd);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
        len--;
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (out[i] < 0x21 || out[i] > 0x7e) {
            out[0] = '\0'; /* not an id */
            break;
        }
}

static void header_fill(struct lk_counters *c, struct file_header *h)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, FILE_MAGIC, sizeof(h->magic));
    h->version = FILE_VERSION;
    h->chunk_size = (uint32_t)CHUNK_SIZE;
    h->ws_size = (uint32_t)sizeof(struct lk_wstate);
    h->key_size = (uint32_t)sizeof(struct lk_kstate);
    h->named_size = (uint32_t)sizeof(struct lk_named_windows);
    memcpy(h->boot_id, c->boot_id, BOOT_ID_MAX);
    memcpy(h->owner, c->owner, BOOT_ID_MAX);
    h->check = fnv(h, offsetof(struct file_header, check));
}

/* Maps one more chunk at the end of the file, its blocks allocated (a write to
 * a hole on a full disk would be SIGBUS). Caller holds c->mu or is alone. */
static bool add_chunk(struct lk_counters *c)
{
    off_t at = (off_t)(c->nchunks * CHUNK_SIZE);
    void *p;

    if (c->nchunks >= MAX_CHUNKS || posix_fallocate(c->fd, at, (off_t)CHUNK_SIZE) != 0)
        return false;
    p = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, at);
    if (p == MAP_FAILED)
        return false;
    c->chunks = lk_grow(c->chunks, c->nchunks, &c->chunk_cap, sizeof(*c->chunks));
    c->chunks[c->nchunks++] = p;
    return true;
}

static void unmap_all(struct lk_counters *c)
{
    for (size_t i = 0; i < c->nchunks; i++)
        munmap(c->chunks[i], CHUNK_SIZE);
    free(c->chunks);
    c->chunks = NULL;
    c->nchunks = c->chunk_cap = c->cur = c->used = 0;
}

/* A zeroed state of `size` bytes, in the file when it can grow, else on the
 * heap (then it does not survive the process: the next start treats it as lost).
 * The caller fills it and then calls tag(). Caller holds c->mu or is alone. */
static void *alloc_state(struct lk_counters *c, size_t slot_size, size_t size, bool *heap)
{
    uint8_t *p;

    *heap = false;
    if (c->fd >= 0 && c->used + slot_size > CHUNK_SIZE &&
        (c->cur + 1 < c->nchunks || add_chunk(c))) {
        c->cur++; /* the spare the recorder mapped ahead, or one mapped now */
        c->used = 0;
    }
    if (c->fd >= 0 && c->used + slot_size <= CHUNK_SIZE) {
        p = c->chunks[c->cur] + c->used;
        c->used += slot_size;
        memset(p, 0, slot_size);
        return p + sizeof(struct slot);
    }
    if (c->fd >= 0 && !c->warned) {
        c->warned = true;
        lk_warn("the counter file cannot grow; new counters are kept in memory only");
    }
    *heap = true;
    return lk_calloc(1, size);
}

static void tag(void *state, bool heap, uint32_t kind)
{
    if (!heap)
        atomic_store_explicit(&((struct slot *)((uint8_t *)state - sizeof(struct slot)))->tag, kind,
                              memory_order_release);
}

static bool sane(int64_t v)
{
    return v >= 0 && v < SANE_MAX;
}

static bool sane_quota(const struct lk_quota *q)
{
    for (int i = 0; i < LK_QUOTA_DAYS; i++)
        if (q->day[i] < -1 || q->day[i] > SANE_TIME || !sane(q->count[i]))
            return false;
    return true;
}

/* The lanes of checks counted without the lock: days the rings could hold,
 * counts below the bound lk_charge keeps them under. */
static bool sane_lanes(const struct lk_wstate *w)
{
    for (int l = 0; l < LK_PEND_LANES; l++)
        for (int t = 0; t < 2; t++) {
            uint64_t v = atomic_load(&w->pend[l].n[t]);
            if (LK_PEND_DAY(v) > SANE_TIME / LK_DAY_S || LK_PEND_N(v) > INT32_MAX)
                return false;
        }
    return true;
}

static bool ws_sane(const struct lk_wstate *w)
{
    size_t len = strnlen(w->id, sizeof(w->id));

    if (len == 0 || len == sizeof(w->id))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((w->id[i] >= '0' && w->id[i] <= '9') || (w->id[i] >= 'a' && w->id[i] <= 'z') ||
              (w->id[i] >= 'A' && w->id[i] <= 'Z') || w->id[i] == '_'))
            return false;
    return sane(w->avail) && sane(w->db_balance) && sane(w->unsaved_spend) &&
           sane(w->spent_total) && sane(w->lease_size) && w->last_lease_at >= 0 &&
           w->last_lease_at < SANE_TIME && sane_quota(&w->live) && sane_quota(&w->test) &&
           sane_quota(&w->unsaved_live) && sane_quota(&w->unsaved_test) && sane_lanes(w);
}

static bool key_sane(const struct lk_kstate *k)
{
    int64_t hour = atomic_load(&k->count_hour);

    return k->rowid > 0 && sane(k->rl.start) && k->rl.start < SANE_TIME && sane(k->rl.count) &&
           sane(k->spend_day) && k->spend_day < SANE_TIME && sane(k->spent) && sane(k->prev_day) &&
           k->prev_day < SANE_TIME && sane(k->prev_spent) && sane(k->unsaved_day) &&
           k->unsaved_day < SANE_TIME && sane(k->unsaved) && sane(hour) && hour < SANE_TIME &&
           hour % 3600 == 0 && sane(k->prev_hour) && k->prev_hour < SANE_TIME &&
           k->prev_hour % 3600 == 0;
}

static struct lk_wstate *find_ws_locked(struct lk_counters *c, const char *id);
static struct lk_kstate *find_key_locked(struct lk_counters *c, int64_t rowid);

/* Named windows read back: of a key read back before them (their slot is made
 * after the key's), that has none yet, at most LK_CHARGE_NAMED_MAX of them,
 * each name once (charge.c finds a window by name and relies on room for
 * every limit), times and counts in bounds. Entries past n are never read. */
static struct lk_kstate *named_owner(struct lk_counters *c, const struct lk_named_windows *nw)
{
    struct lk_kstate *k = nw->rowid > 0 ? find_key_locked(c, nw->rowid) : NULL;

    if (k == NULL || atomic_load(&k->named) != NULL || nw->n < 0 || nw->n > LK_CHARGE_NAMED_MAX)
        return NULL;
    for (int i = 0; i < nw->n; i++) {
        const struct lk_named_window *w = &nw->w[i];
        if (!sane(w->start_ms) || w->start_ms >= SANE_TIME * 1000 || !sane(w->count))
            return NULL;
        for (int j = 0; j < i; j++)
            if (nw->w[j].name_hash == w->name_hash)
                return NULL;
    }
    return k;
}

/* What a state keeps from the last process: its counts. Locks, lists and
 * pointers are this process's. */
static void ws_attach(struct lk_counters *c, struct lk_wstate *w, bool recovered)
{
    pthread_spin_init(&w->mu, PTHREAD_PROCESS_PRIVATE);
    pthread_mutex_init(&w->lease_mu, NULL);
    pthread_mutex_init(&w->refill_mu, NULL);
    w->quota = w->test_quota = -1;
    /* A dead process's lock-free counts join its rings; fresh states are zero. */
    if (recovered)
        lk_wstate_fold(w, 0);
    atomic_store(&w->credits_pub, w->db_balance + w->avail);
    memset(&w->sh_q_live, 0, sizeof(w->sh_q_live)); /* a dead process's slices stay unspent */
    memset(&w->sh_q_test, 0, sizeof(w->sh_q_test));
    atomic_store(&w->queued, false);
    w->next_dirty = NULL;
    w->recovered = recovered;
    table_put(&c->ws, w, ws_hash);
    w->next_all = c->all_ws;
    c->all_ws = w;
}

static void key_attach(struct lk_counters *c, struct lk_kstate *k, bool recovered)
{
    k->ws = NULL; /* filled in at the key's first check */
    memset(&k->sh_rl, 0, sizeof(k->sh_rl));
    memset(&k->sh_sp, 0, sizeof(k->sh_sp));
    atomic_init(&k->named, NULL); /* a dead process's pointer means nothing */
    atomic_store(&k->queued, false);
    k->next_dirty = NULL;
    k->recovered = recovered;
    table_put(&c->keys, k, key_hash);
}

/* Reads the states of a mapped file back; false if anything is not sane. */
static bool read_back(struct lk_counters *c)
{
    const struct file_header *h = (const struct file_header *)c->chunks[0];
    struct file_header want;

    header_fill(c, &want);
    if (c->boot_id[0] == '\0' || memcmp(h, &want, sizeof(want)) != 0)
        return false;
    for (size_t i = 0; i < c->nchunks; i++) {
        size_t off = i == 0 ? HEADER_SIZE : 0;
        while (off + sizeof(struct slot) <= CHUNK_SIZE) {
            uint8_t *p = c->chunks[i] + off;
            uint32_t kind = atomic_load(&((struct slot *)p)->tag);
            size_t size = kind == SLOT_WS    ? WS_SLOT
                          : kind == SLOT_KEY   ? KEY_SLOT
                          : kind == SLOT_NAMED ? NAMED_SLOT
                                               : 0;

            if (kind == SLOT_FREE)
                break;
            if (size == 0 || off + size > CHUNK_SIZE)
                return false;
            if (kind == SLOT_WS) {
                struct lk_wstate *w = (struct lk_wstate *)(p + sizeof(struct slot));
                if (!ws_sane(w) || find_ws_locked(c, w->id) != NULL)
                    return false;
                w->heap = false;
                ws_attach(c, w, true);
            } else if (kind == SLOT_KEY) {
                struct lk_kstate *k = (struct lk_kstate *)(p + sizeof(struct slot));
                if (!key_sane(k) || find_key_locked(c, k->rowid) != NULL)
                    return false;
                k->heap = false;
                key_attach(c, k, true);
            } else {
                struct lk_named_windows *nw = (struct lk_named_windows *)(p + sizeof(struct slot));
                struct lk_kstate *k = named_owner(c, nw);
                if (k == NULL)
                    return false;
                nw->heap = false;
                atomic_store_explicit(&k->named, nw, memory_order_release);
            }
            off += size;
        }
        c->cur = i;
        c->used = off;
    }
    return true;
}

static void forget_states(struct lk_counters *c)
{
    free(c->ws.slots);
    free(c->keys.slots);
    memset(&c->ws, 0, sizeof(c->ws));
    memset(&c->keys, 0, sizeof(c->keys));
    c->all_ws = NULL;
}

/* An empty file of one chunk with a fresh header. */
static bool start_afresh(struct lk_counters *c)
{
    struct file_header h;

    unmap_all(c);
    forget_states(c);
    if (ftruncate(c->fd, 0) != 0 || !add_chunk(c))
        return false;
    header_fill(c, &h);
    memcpy(c->chunks[0], &h, sizeof(h));
    c->cur = 0;
    c->used = HEADER_SIZE;
    return true;
}

enum lk_err lk_counters_open(const char *path, const char *owner, struct lk_counters **out,
                             bool *recovered)
{
    struct lk_counters *c = lk_counters_new();
    struct stat st;
    size_t n;

    *out = NULL;
    *recovered = false;
    read_boot_id(c->boot_id);
    snprintf(c->owner, sizeof(c->owner), "%s", owner);
    c->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (c->fd < 0 || fstat(c->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        lk_error("cannot open the counter file %s: %s", path, strerror(errno));
        goto fail;
    }
    n = (size_t)st.st_size / CHUNK_SIZE;
    if (st.st_size > 0 && (size_t)st.st_size % CHUNK_SIZE == 0 && n <= MAX_CHUNKS) {
        for (size_t i = 0; i < n; i++) {
            void *p = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd,
                           (off_t)(i * CHUNK_SIZE));
            if (p == MAP_FAILED)
                break;
            c->chunks = lk_grow(c->chunks, c->nchunks, &c->chunk_cap, sizeof(*c->chunks));
            c->chunks[c->nchunks++] = p;
        }
        *recovered = c->nchunks == n && read_back(c);
    }
    if (!*recovered && !start_afresh(c)) {
        lk_error("cannot make the counter file %s: %s", path, strerror(errno));
        goto fail;
    }
    *out = c;
    return LK_OK;
fail:
    lk_counters_free(c);
    return LK_ERR_STORAGE_UNAVAILABLE;
}

void lk_counters_free(struct lk_counters *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->keys.cap; i++) {
        struct lk_kstate *k = c->keys.slots[i];
        struct lk_named_windows *nw = k != NULL ? atomic_load(&k->named) : NULL;
        if (nw != NULL && nw->heap)
            free(nw);
        if (k != NULL && k->heap)
            free(k);
    }
    while (c->all_ws != NULL) {
        struct lk_wstate *w = c->all_ws;
        c->all_ws = w->next_all;
        pthread_spin_destroy(&w->mu);
        pthread_mutex_destroy(&w->lease_mu);
        pthread_mutex_destroy(&w->refill_mu);
        if (w->heap)
            free(w);
    }
    free(c->keys.slots);
    free(c->ws.slots);
    unmap_all(c); /* the file keeps the counts for the next start */
    if (c->fd >= 0)
        close(c->fd);
    lk_counter_rows_free(&c->spill);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static struct lk_wstate *find_ws_locked(struct lk_counters *c, const char *id)
{
    if (c->ws.cap == 0)
        return NULL;
    for (size_t i = hash_str(id) & (c->ws.cap - 1); c->ws.slots[i] != NULL;
         i = (i + 1) & (c->ws.cap - 1)) {
        struct lk_wstate *x = c->ws.slots[i];
        if (strcmp(x->id, id) == 0)
            return x;
    }
    return NULL;
}

static struct lk_kstate *find_key_locked(struct lk_counters *c, int64_t rowid)
{
    if (c->keys.cap == 0)
        return NULL;
    for (size_t i = hash_i64(rowid) & (c->keys.cap - 1); c->keys.slots[i] != NULL;
         i = (i + 1) & (c->keys.cap - 1)) {
        struct lk_kstate *x = c->keys.slots[i];
        if (x->rowid == rowid)
            return x;
    }
    return NULL;
}

struct lk_wstate *lk_counters_find_ws(struct lk_counters *c, const char *id)
{
    struct lk_wstate *w;

    pthread_mutex_lock(&c->mu);
    w = find_ws_locked(c, id);
    pthread_mutex_unlock(&c->mu);
    return w;
}

struct lk_wstate *lk_counters_ws(struct lk_counters *c, const char *id)
{
    struct lk_wstate *w;
    bool heap;

    pthread_mutex_lock(&c->mu);
    if ((w = find_ws_locked(c, id)) == NULL) {
        w = alloc_state(c, WS_SLOT, sizeof(*w), &heap);
        w->heap = heap;
        snprintf(w->id, sizeof(w->id), "%s", id);
        lk_quota_init(&w->live);
        lk_quota_init(&w->test);
        lk_quota_init(&w->unsaved_live);
        lk_quota_init(&w->unsaved_test);
        ws_attach(c, w, false);
        tag(w, heap, SLOT_WS);
    }
    pthread_mutex_unlock(&c->mu);
    return w;
}

struct lk_kstate *lk_counters_key(struct lk_counters *c, int64_t rowid, struct lk_wstate *ws)
{
    struct lk_kstate *k;
    bool heap;

    pthread_mutex_lock(&c->mu);
    if ((k = find_key_locked(c, rowid)) == NULL) {
        k = alloc_state(c, KEY_SLOT, sizeof(*k), &heap);
        k->heap = heap;
        k->rowid = rowid;
        key_attach(c, k, false);
        tag(k, heap, SLOT_KEY);
    }
    if (k->ws == NULL)
        k->ws = ws;
    pthread_mutex_unlock(&c->mu);
    return k;
}

struct lk_named_windows *lk_counters_named(struct lk_counters *c, struct lk_kstate *k)
{
    struct lk_named_windows *nw;
    bool heap = true;

    pthread_mutex_lock(&c->mu);
    if ((nw = atomic_load_explicit(&k->named, memory_order_acquire)) == NULL) {
        /* A key on the heap keeps its windows there: a slot in the file without
         * its key's before it would make the file unbelievable. */
        nw = k->heap ? lk_calloc(1, sizeof(*nw)) : alloc_state(c, NAMED_SLOT, sizeof(*nw), &heap);
        nw->heap = heap;
        nw->rowid = k->rowid;
        tag(nw, heap, SLOT_NAMED);
        atomic_store_explicit(&k->named, nw, memory_order_release);
    }
    pthread_mutex_unlock(&c->mu);
    return nw;
}

void lk_counters_reserve(struct lk_counters *c)
{
    /* The grown chunk is the next one states go to; the event loops rarely
     * have to grow the file themselves. */
    pthread_mutex_lock(&c->mu);
    if (c->fd >= 0 && c->cur + 1 >= c->nchunks && c->used > CHUNK_SIZE / 2)
        add_chunk(c);
    pthread_mutex_unlock(&c->mu);
}

void lk_counters_set_quota(struct lk_wstate *ws, int64_t quota, int64_t test_quota)
{
    if (quota >= 0 && test_quota < 0)
        test_quota = quota / 10 > 0 ? quota / 10 : 1;
    lk_wstate_lock(ws);
    ws->quota = quota;
    ws->test_quota = test_quota;
    lk_wstate_unlock(ws);
}

/* Pushes a state that just became queued (so it is on no list) onto its dirty
 * list: a lock-free stack, safe because the only removal takes the whole list
 * at once. The release publishes next_dirty to the recorder's acquire. */
static void push_dirty_ws(struct lk_counters *c, struct lk_wstate *ws)
{
    struct lk_wstate *head = atomic_load_explicit(&c->dirty_ws, memory_order_relaxed);

    do
        ws->next_dirty = head;
    while (!atomic_compare_exchange_weak_explicit(&c->dirty_ws, &head, ws, memory_order_release,
                                                  memory_order_relaxed));
}

static void push_dirty_key(struct lk_counters *c, struct lk_kstate *k)
{
    struct lk_kstate *head = atomic_load_explicit(&c->dirty_keys, memory_order_relaxed);

    do
        k->next_dirty = head;
    while (!atomic_compare_exchange_weak_explicit(&c->dirty_keys, &head, k, memory_order_release,
                                                  memory_order_relaxed));
}

void lk_counters_queue_ws(struct lk_counters *c, struct lk_wstate *ws)
{
    bool no = false;

    /* Sequentially consistent with the count before it (a lock-free one
     * too) and the recorder's clear-then-take: a count is either taken or
     * finds the workspace unqueued. */
    if (atomic_load(&ws->queued) || !atomic_compare_exchange_strong(&ws->queued, &no, true))
        return;
    push_dirty_ws(c, ws);
}

void lk_counters_queue_key(struct lk_counters *c, struct lk_kstate *k)
{
    bool no = false;

    /* Sequentially consistent with the count before it and the recorder's
     * clear-then-take: a count is either taken or finds the key unqueued. */
    if (atomic_load(&k->queued) || !atomic_compare_exchange_strong(&k->queued, &no, true))
        return;
    push_dirty_key(c, k);
}

void lk_counter_rows_add(struct lk_counter_rows *l, enum lk_counter_kind kind,
                         const struct lk_counter_row *r)
{
    size_t cap = l->cap;

    l->rows = lk_grow(l->rows, l->n, &cap, sizeof(*l->rows));
    l->kinds = lk_grow(l->kinds, l->n, &l->cap, sizeof(*l->kinds));
    l->kinds[l->n] = kind;
    l->rows[l->n++] = *r;
}

void lk_counter_rows_free(struct lk_counter_rows *l)
{
    free(l->rows);
    free(l->kinds);
    memset(l, 0, sizeof(*l));
}

/* Caller holds c->mu. */
static void spill_locked(struct lk_counters *c, enum lk_counter_kind kind,
                         const struct lk_counter_row *r)
{
    lk_counter_rows_add(&c->spill, kind, r);
}

void lk_counters_spill(struct lk_counters *c, enum lk_counter_kind kind,
                       const struct lk_counter_row *r)
{
    pthread_mutex_lock(&c->mu);
    spill_locked(c, kind, r);
    pthread_mutex_unlock(&c->mu);
}

/* Moves k's unsaved counts of its old hour aside. Caller holds c->mu. */
static void roll_locked(struct lk_counters *c, struct lk_kstate *k, int64_t hour)
{
    int64_t old = atomic_load(&k->count_hour);

    if (old == hour)
        return;
    /* The old hour's totals stay in the file until it is written (recovery). */
    k->prev_hour = old;
    for (int code = 0; code < LK_USAGE_CODES; code++)
        k->prev_counts[code] = atomic_load(&k->counts[code]);
    for (int code = 0; code < LK_USAGE_CODES; code++) {
        uint32_t n = atomic_exchange(&k->counts[code], 0);
        k->prev_counts[code] = n;
        n = n > k->saved[code] ? n - k->saved[code] : 0;
        k->saved[code] = 0;
        if (n > 0 && old != 0)
            spill_locked(c, LK_CTR_USAGE,
                         &(struct lk_counter_row){.key_rowid = k->rowid, .period = old,
                                                  .code = code, .n = n});
    }
    atomic_store(&k->count_hour, hour);
}

void lk_counters_prefetch_key(const struct lk_kstate *k)
{
    __builtin_prefetch(&k->count_hour, 1); /* the line of counts and queued too */
}

void lk_counters_count(struct lk_counters *c, struct lk_kstate *k, enum lk_err outcome,
                       int64_t now)
{
    int64_t hour = now - now % 3600;

    if ((int)outcome < 0 || (int)outcome >= LK_USAGE_CODES)
        return;
    /* A new hour: the counts so far belong to the old one. (A check racing the
     * change of hour may land on either side of it.) */
    if (atomic_load_explicit(&k->count_hour, memory_order_relaxed) != hour) {
        pthread_mutex_lock(&c->mu);
        roll_locked(c, k, hour);
        pthread_mutex_unlock(&c->mu);
    }
    atomic_fetch_add(&k->counts[outcome], 1);
    lk_counters_queue_key(c, k);
}

static int64_t take_counts(struct lk_counters *c, struct lk_kstate *k,
                                uint32_t out[LK_USAGE_CODES])
{
    int64_t hour;

    pthread_mutex_lock(&c->mu); /* no roll in between: counts and hour agree */
    hour = atomic_load(&k->count_hour);
    for (int code = 0; code < LK_USAGE_CODES; code++) {
        uint32_t n = atomic_load(&k->counts[code]);
        out[code] = n > k->saved[code] ? n - k->saved[code] : 0;
        k->saved[code] = n;
    }
    pthread_mutex_unlock(&c->mu);
    return hour;
}

static void settle_counts(struct lk_counters *c, struct lk_kstate *k)
{
    pthread_mutex_lock(&c->mu);
    for (int code = 0; code < LK_USAGE_CODES; code++)
        k->saved[code] = atomic_load(&k->counts[code]);
    pthread_mutex_unlock(&c->mu);
}

void lk_counters_load_count(struct lk_counters *c, struct lk_kstate *k, int64_t hour, int code,
                            uint32_t n)
{
    if (code < 0 || code >= LK_USAGE_CODES)
        return;
    pthread_mutex_lock(&c->mu);
    roll_locked(c, k, hour); /* settled before: spills nothing */
    atomic_store(&k->counts[code], n);
    k->saved[code] = n;
    pthread_mutex_unlock(&c->mu);
}

static void take_dirty(struct lk_counters *c, struct lk_wstate **ws, struct lk_kstate **keys,
                            struct lk_counter_rows *spilled)
{
    pthread_mutex_lock(&c->mu);
    *ws = atomic_exchange_explicit(&c->dirty_ws, NULL, memory_order_acquire);
    *keys = atomic_exchange_explicit(&c->dirty_keys, NULL, memory_order_acquire);
    *spilled = c->spill;
    memset(&c->spill, 0, sizeof(c->spill));
    pthread_mutex_unlock(&c->mu);
}

/* The list of every workspace state; it only grows at its head, so walking
 * from a snapshot of it is safe. */
static struct lk_wstate *all_ws(struct lk_counters *c)
{
    struct lk_wstate *w;

    pthread_mutex_lock(&c->mu);
    w = c->all_ws;
    pthread_mutex_unlock(&c->mu);
    return w;
}

void lk_counters_each_ws(struct lk_counters *c, void (*fn)(void *arg, struct lk_wstate *ws),
                         void *arg)
{
    for (struct lk_wstate *w = all_ws(c); w != NULL; w = w->next_all)
        fn(arg, w);
}

void lk_counters_each_key(struct lk_counters *c, void (*fn)(void *arg, struct lk_kstate *k),
                          void *arg)
{
    for (size_t i = 0; i < c->keys.cap; i++)
        if (c->keys.slots[i] != NULL)
            fn(arg, c->keys.slots[i]);
}

const char *lk_wstate_id(const struct lk_wstate *ws)
{
    return ws->id;
}

void lk_counters_load_spend(struct lk_kstate *k, int64_t day, int64_t n)
{
    k->spend_day = day; /* at start: no check runs, and k's workspace may be unknown */
    k->spent = n;
}

void lk_counters_load_quota(struct lk_wstate *ws, int64_t day, int64_t n, int64_t n_test)
{
    lk_wstate_lock(ws);
    lk_quota_add(&ws->live, day, n);
    lk_quota_add(&ws->test, day, n_test);
    lk_wstate_unlock(ws);
}

void lk_counters_quota_view(struct lk_wstate *ws, struct lk_quota_view *out)
{
    lk_wstate_lock(ws);
    lk_wstate_fold(ws, 0);
    out->live = ws->live;
    out->test = ws->test;
    out->quota = ws->quota;
    out->test_quota = ws->test_quota;
    lk_wstate_unlock(ws);
}

/* The days of a quota ring that hold a count, as rows (of ws; n or n_test). */
static void quota_rows(struct lk_counter_rows *out, const struct lk_wstate *ws,
                       const struct lk_quota *q, bool test)
{
    for (int i = 0; i < LK_QUOTA_DAYS; i++) {
        if (q->day[i] < 0 || q->count[i] == 0)
            continue;
        struct lk_counter_row r = {.period = q->day[i]};
        snprintf(r.workspace_id, sizeof(r.workspace_id), "%s", ws->id);
        *(test ? &r.n_test : &r.n) = q->count[i];
        lk_counter_rows_add(out, LK_CTR_QUOTA, &r);
    }
}

void lk_counters_recovered_rows(struct lk_counters *c, struct lk_counter_rows *out)
{
    for (struct lk_wstate *ws = all_ws(c); ws != NULL; ws = ws->next_all) {
        if (!ws->recovered)
            continue;
        quota_rows(out, ws, &ws->live, false);
        quota_rows(out, ws, &ws->test, true);
    }
    for (size_t i = 0; i < c->keys.cap; i++) {
        const struct lk_kstate *k = c->keys.slots[i];
        int64_t hour;

        if (k == NULL || !k->recovered)
            continue;
        hour = atomic_load(&k->count_hour);
        if (k->spend_day > 0 && k->spent > 0)
            lk_counter_rows_add(out, LK_CTR_SPEND,
                                &(struct lk_counter_row){.key_rowid = k->rowid,
                                                         .period = k->spend_day, .n = k->spent});
        if (k->prev_day > 0 && k->prev_spent > 0)
            lk_counter_rows_add(out, LK_CTR_SPEND,
                                &(struct lk_counter_row){.key_rowid = k->rowid,
                                                         .period = k->prev_day,
                                                         .n = k->prev_spent});
        for (int code = 0; code < LK_USAGE_CODES; code++) {
            uint32_t n = atomic_load(&k->counts[code]);
            if (hour > 0 && n > 0)
                lk_counter_rows_add(out, LK_CTR_USAGE,
                                    &(struct lk_counter_row){.key_rowid = k->rowid,
                                                             .period = hour, .code = code,
                                                             .n = n});
            if (k->prev_hour > 0 && k->prev_hour != hour && k->prev_counts[code] > 0)
                lk_counter_rows_add(out, LK_CTR_USAGE,
                                    &(struct lk_counter_row){.key_rowid = k->rowid,
                                                             .period = k->prev_hour,
                                                             .code = code,
                                                             .n = k->prev_counts[code]});
        }
    }
}

void lk_counters_settle(struct lk_counters *c)
{
    for (struct lk_wstate *ws = all_ws(c); ws != NULL; ws = ws->next_all) {
        ws->avail = ws->unsaved_spend = 0;
        ws->spent_total = 0; /* the stored `spent`, for a workspace with an account */
        lk_quota_init(&ws->live);
        lk_quota_init(&ws->test);
        lk_quota_init(&ws->unsaved_live);
        lk_quota_init(&ws->unsaved_test);
        for (int l = 0; l < LK_PEND_LANES; l++)
            atomic_store(&ws->pend[l].n[0], 0), atomic_store(&ws->pend[l].n[1], 0);
        atomic_store(&ws->credits_pub, ws->db_balance);
    }
    for (size_t i = 0; i < c->keys.cap; i++) {
        struct lk_kstate *k = c->keys.slots[i];
        if (k == NULL)
            continue;
        /* Today's spend is loaded from the store next; older days are written. */
        k->spend_day = k->spent = k->prev_day = k->prev_spent = k->unsaved = 0;
        k->prev_hour = 0;
        memset(k->prev_counts, 0, sizeof(k->prev_counts));
        settle_counts(c, k);
    }
}

/* Moves a quota ring's unsaved days into rows and empties it. */
static void take_quota(struct lk_counter_rows *out, const struct lk_wstate *ws, struct lk_quota *q,
                       bool test)
{
    quota_rows(out, ws, q, test);
    lk_quota_init(q);
}

void lk_counters_take_batch(struct lk_counters *c, struct lk_counters_batch *b)
{
    struct lk_wstate *ws, *wnext;
    struct lk_kstate *k, *knext;

    /* Rows set aside for closed hours and days start the batch. */
    take_dirty(c, &ws, &k, &b->rows);
    for (; ws != NULL; ws = wnext) {
        /* next first, then unqueue: a later change queues it again, which
         * rewrites next_dirty; then take what is unsaved. */
        wnext = ws->next_dirty;
        atomic_store(&ws->queued, false);
        lk_wstate_lock(ws);
        lk_wstate_fold(ws, 0);
        take_quota(&b->rows, ws, &ws->unsaved_live, false);
        take_quota(&b->rows, ws, &ws->unsaved_test, true);
        if (ws->unsaved_spend > 0) {
            b->spends = lk_grow(b->spends, b->nspends, &b->spend_cap, sizeof(*b->spends));
            b->spends[b->nspends++] = (struct lk_batch_spend){ws, ws->unsaved_spend};
            ws->unsaved_spend = 0;
        }
        bool low = ws->db_balance > 0 && ws->avail * 2 < ws->lease_size;
        lk_wstate_unlock(ws);
        if (low) {
            b->low = lk_grow(b->low, b->nlow, &b->low_cap, sizeof(*b->low));
            b->low[b->nlow++] = ws;
        }
    }
    for (; k != NULL; k = knext) {
        uint32_t counts[LK_USAGE_CODES];
        int64_t hour;

        knext = k->next_dirty;
        atomic_store(&k->queued, false);
        hour = take_counts(c, k, counts);
        for (int code = 0; code < LK_USAGE_CODES; code++)
            if (counts[code] > 0)
                lk_counter_rows_add(&b->rows, LK_CTR_USAGE,
                                    &(struct lk_counter_row){.key_rowid = k->rowid,
                                                             .period = hour, .code = code,
                                                             .n = counts[code]});
        if (k->ws != NULL) {
            lk_wstate_lock(k->ws);
            if (k->unsaved > 0)
                lk_counter_rows_add(&b->rows, LK_CTR_SPEND,
                                    &(struct lk_counter_row){.key_rowid = k->rowid,
                                                             .period = k->unsaved_day,
                                                             .n = k->unsaved});
            k->unsaved = 0;
            lk_wstate_unlock(k->ws);
        }
    }
}

void lk_counters_return_batch(struct lk_counters *c, const struct lk_counters_batch *b)
{
    for (size_t i = 0; i < b->nspends; i++) {
        struct lk_wstate *ws = b->spends[i].ws;
        lk_wstate_lock(ws);
        ws->unsaved_spend += b->spends[i].amount;
        lk_wstate_unlock(ws);
        lk_counters_queue_ws(c, ws);
    }
    for (size_t i = 0; i < b->rows.n; i++) {
        const struct lk_counter_row *r = &b->rows.rows[i];
        if (b->rows.kinds[i] == LK_CTR_QUOTA) {
            struct lk_wstate *ws = lk_counters_ws(c, r->workspace_id);
            lk_wstate_lock(ws);
            lk_quota_add(&ws->unsaved_live, r->period, r->n);
            lk_quota_add(&ws->unsaved_test, r->period, r->n_test);
            lk_wstate_unlock(ws);
            lk_counters_queue_ws(c, ws);
        } else {
            /* Usage and key spend keep the hour and day they belong to. */
            lk_counters_spill(c, b->rows.kinds[i], r);
        }
    }
}

void lk_counters_batch_free(struct lk_counters_batch *b)
{
    lk_counter_rows_free(&b->rows);
    free(b->spends);
    free(b->low);
    memset(b, 0, sizeof(*b));
}
