/*
 * cmd_seed.c — `latchkey seed`: fills a database with many live keys at once and
 * writes their secrets to a file, for benchmarks (bench/run.sh). It opens the
 * database directly; run it before `serve`, which loads keys at start.
 */
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/common.h"
#include "base/rand.h"
#include "cli/cmd.h"
#include "service/keys.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define SEED_MAX 10000000

static int first_ws(void *arg, const struct lk_ws_row *w)
{
    *(struct lk_ws_row *)arg = *w;
    return 1;
}

static int run_seed(const struct lk_cmd *self, int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"pepper-file", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct lk_app_config cfg = {"sqlite:latchkey.db", NULL};
    struct lk_app *app = NULL;
    struct lk_ws_row w = {0};
    struct lk_errinfo ei;
    const char *out_path = NULL;
    int64_t count = 0, now = lk_clock_now_s();
    FILE *out = NULL;
    int c, fd, rc = 1;
    enum lk_err e;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': cfg.db_url = optarg; break;
        case 'p': cfg.pepper_file = optarg; break;
        case 'o': out_path = optarg; break;
        case 'c':
            if (lk_parse_i64(optarg, strlen(optarg), 1, SEED_MAX, &count) != 0)
                return lk_cli_fail("--count must be 1 to %d", SEED_MAX);
            break;
        case 'h': return lk_cli_help(self);
        default: return lk_cli_usage(self);
        }
    }
    if (count == 0 || out_path == NULL)
        return lk_cli_usage(self);
    /* The file holds secrets: owner-only from the start. */
    if ((fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        (out = fdopen(fd, "w")) == NULL)
        return lk_cli_fail("cannot write %s", out_path);
    lk_errinfo_clear(&ei);
    if (lk_app_open(&cfg, &app, &ei) != LK_OK) {
        lk_cli_fail("%s", ei.detail);
        goto out;
    }
    if (lk_store_ws_list(app->store, first_ws, &w) != LK_OK || w.id[0] == '\0') {
        lk_cli_fail("the database has no workspace; run `latchkey init` first");
        goto out;
    }
    if ((e = lk_store_begin(app->store)) != LK_OK) {
        lk_cli_fail("%s", lk_err_message(e));
        goto out;
    }
    for (int64_t i = 0; i < count; i++) {
        struct lk_key_row k = {.env = LK_ENV_LIVE, .kind = LK_KIND_PERMANENT, .enabled = true,
                               .daily_spend_cap = -1, .created_at = now};
        char secret[LK_SECRET_MAX];
        lk_rand_id("key_", k.id, sizeof(k.id));
        memcpy(k.workspace_id, w.id, LK_ID_MAX);
        snprintf(k.name, sizeof(k.name), "seed-%lld", (long long)i);
        k.permissions = (char *)"[\"*\"]";
        k.meta = (char *)"{}";
        lk__keys_new_secret(app, &w, &k, secret);
        if ((e = lk_store_key_insert(app->store, &k)) != LK_OK) {
            lk_store_rollback(app->store);
            lk_cli_fail("%s", lk_err_message(e));
            goto out;
        }
        fprintf(out, "%s\n", secret);
        OPENSSL_cleanse(secret, sizeof(secret));
    }
    if ((e = lk_store_commit(app->store)) != LK_OK) {
        lk_cli_fail("%s", lk_err_message(e));
        goto out;
    }
    printf("seeded %lld keys into workspace %s; secrets in %s\n", (long long)count, w.id,
           out_path);
    rc = 0;
out:
    if (out && fclose(out) != 0 && rc == 0)
        rc = lk_cli_fail("cannot write %s", out_path);
    lk_app_close(app);
    return rc;
}

const struct lk_cmd lk_cmd_seed = {
    "seed", "seed --count N --out FILE [--db URL]",
    "add N live keys for benchmarks, writing their secrets to FILE", run_seed,
    "  --count N              how many keys\n"
    "  --out FILE             where their secrets go, one a line\n"
    "  --db URL               the database (default sqlite:latchkey.db)\n"
    "  --pepper-file FILE     the pepper the server uses, if any\n"};
