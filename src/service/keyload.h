/*
 * keyload.h — the load of every key into the verification cache, at start and
 * when a node must read everything again (service/feed.c).
 *
 * Reading the rows (the database's work: about two thirds of a load of a
 * million keys from SQLite) and placing them in the cache (the table's: the
 * rest) run at once: reader threads scan the store, each its half of the rowids
 * on a connection of its own, and copy each row into batches; the calling
 * thread, the cache's one writer, puts them.
 */
#ifndef LK_KEYLOAD_H
#define LK_KEYLOAD_H

#include "core/err.h"
#include "service/keycache.h"
#include "store/store.h"

/* Puts every key of s into c (lk_keycache_put, on the calling thread) while
 * threads of its own read them: one on s, and with s2 (another connection to
 * the same database; NULL or s: none) and 20 000 keys or more, a second on s2,
 * each reading half of the rowids. The order of the puts is not the rowid
 * order. A range whose thread cannot be started is read on the calling thread.
 * Returns the first scan error, with the keys read before it put. The caller
 * is c's writer and does not use s or s2 until this returns (another thread
 * using them waits for the scan). */
enum lk_err lk_keyload(struct lk_store *s, struct lk_store *s2, struct lk_keycache *c);

#endif
