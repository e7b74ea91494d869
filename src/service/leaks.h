/*
 * leaks.h — leaked keys revoke themselves (docs/leaks.md). A scanner that
 * found latchkey secrets in public (GitHub's secret scanning, or any other
 * that signs its report with a shared secret) reports them; every reported
 * secret that is a key of any workspace of this server is revoked at once,
 * through the key service (so the revoke reaches the cache before the answer,
 * as every revoke does), and an audit event `key.leaked` in the key's
 * workspace names where it was found. The answer says, per token, whether it
 * was one of ours, in GitHub's feedback format.
 *
 * What may sign a report is configuration, each read from a file named in the
 * config and read again on reload (SIGHUP): GitHub's public keys
 * (`leaks_github_keys_file`, GitHub's `public_keys` JSON) and the generic
 * report's HMAC secret (`leaks_report_secret_file`). A file that does not load
 * on reload leaves what was loaded before in force.
 *
 * Thread safety: every function is safe from any thread; checks run while a
 * reload swaps the keys in (a read-write lock, held for one verification).
 */
#ifndef LK_LEAKS_H
#define LK_LEAKS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/digest.h"
#include "core/err.h"
#include "core/leakreport.h"
#include "service/app.h"

/* How far the generic report's X-Latchkey-Timestamp may be from our clock. */
#define LK_LEAKS_REPORT_SKEW_S 300

struct lk_leaks;

/* Reads the files (either may be NULL or "": that scanner is not accepted).
 * `failed` (the config's failed_key_limit; limit 0: none) bounds the reports
 * refused for their signature per client address and window: past it that
 * address is refused (too_many_requests) without a check until the window
 * ends. Returns LK_OK and *out (caller frees with lk_leaks_free()), or
 * LK_ERR_INVALID_REQUEST with ei naming the file and what is wrong. */
enum lk_err lk_leaks_open(const char *github_keys_file, const char *report_secret_file,
                          struct lk_rate failed, struct lk_leaks **out /* OUT */,
                          struct lk_errinfo *ei);
void lk_leaks_free(struct lk_leaks *l); /* accepts NULL */

/* Reads the app's files again (SIGHUP); each that loads replaces what was in
 * force, each that does not is logged with why and changes nothing. */
void lk_leaks_reload(struct lk_app *app);

/* Checks a GitHub report from address (the client; NULL: none) at now: the
 * signature sig_b64 by key key_id over the raw body. LK_OK;
 * LK_ERR_INVALID_SIGNATURE (ei says which part, or that no GitHub keys are
 * configured: then no signature can be checked), which counts toward the
 * address's limit (lk_leaks_open); LK_ERR_TOO_MANY_REQUESTS with
 * *retry_after once it is reached, without checking. */
enum lk_err lk_leaks_check_github(struct lk_app *app, const char *key_id, const char *sig_b64,
                                  const char *body, size_t body_len, const char *address,
                                  int64_t now, int64_t *retry_after /* OUT */,
                                  struct lk_errinfo *ei);

/* Checks a generic report: X-Latchkey-Timestamp ts and X-Latchkey-Signature
 * sig (lk_sig_hmac_check) over the raw body at now. Errors as above. */
enum lk_err lk_leaks_check_report(struct lk_app *app, const char *ts, const char *sig,
                                  const char *body, size_t body_len, const char *address,
                                  int64_t now, int64_t *retry_after /* OUT */,
                                  struct lk_errinfo *ei);

enum lk_leak_scanner { LK_LEAK_GITHUB = 0, LK_LEAK_REPORT = 1 };

/* What became of one reported token. */
struct lk_leak_outcome {
    char token_hash[2 * LK_DIGEST_LEN + 1]; /* hex SHA-256 of the token */
    bool ours;    /* a key of this server, in any state: GitHub's true_positive */
    bool revoked; /* this report revoked it (it was not revoked before) */
};

/* Handles a report whose signature was checked: for each item, finds the key
 * (any workspace, in this node's cache) and, unless already revoked, revokes it (an application
 * key, which cannot be revoked, is regenerated and its new secret thrown
 * away: the leaked secret stops working and an owner regenerates it again to
 * get one) and records `key.leaked`. out has r->n entries. A token that is
 * reported twice, or again later, changes nothing more. Returns LK_OK, or
 * LK_ERR_STORAGE_UNAVAILABLE when a revoke could not be stored or the cache
 * is stale (feed_stale_after_ms), so a token could not be looked up: the
 * others are still done; the scanner should send the report again. */
enum lk_err lk_leaks_handle(struct lk_app *app, enum lk_leak_scanner scanner,
                            const struct lk_leak_report *r, const char *address,
                            const char *request_id, int64_t now,
                            struct lk_leak_outcome *out /* OUT: r->n */);

#endif
