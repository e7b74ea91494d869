/*
 * keyload.h — the load of every key into the verification cache, at start and
 * when a node must read everything again (service/feed.c).
 *
 * Reading the rows (the database's work: about 60 % of a load of a million keys
 * from SQLite) and placing them in the cache (the table's: the rest) run on two
 * threads at once: a reader thread scans the store and copies each row into
 * batches, and the calling thread, the cache's one writer, puts them. On two
 * cores a load takes about as long as the larger half.
 */
#ifndef LK_KEYLOAD_H
#define LK_KEYLOAD_H

#include "core/err.h"
#include "service/keycache.h"
#include "store/store.h"

/* Puts every key of s into c (lk_keycache_put, in rowid order, on the calling
 * thread) while a thread of its own reads them; when no thread can be started,
 * reads them on the calling thread. Returns the scan's error, with the keys read
 * before it put. The caller is c's writer and does not use s until this
 * returns. */
enum lk_err lk_keyload(struct lk_store *s, struct lk_keycache *c);

#endif
