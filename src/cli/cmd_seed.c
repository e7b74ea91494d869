/*
 * cmd_seed.c — `latchkey seed`: fills a database with many live keys at once and
 * writes their secrets to a file, for benchmarks (bench/run.sh). It opens the
 * database directly; run it before `serve`, which loads keys at start.
 */
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/common.h"
#include "cli/cmd.h"
#include "service/keys.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

#define SEED_MAX 10000000

/* Writes each secret as it is made; a retried transaction starts the file over. */
static int write_secret(void *arg, int64_t i, const char *secret)
{
    FILE *out = arg;

    if (i == 0 && (fflush(out) != 0 || ftruncate(fileno(out), 0) != 0))
        return 1;
    if (i == 0)
        rewind(out);
    return fprintf(out, "%s\n", secret) < 0;
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
    char ws_id[LK_ID_MAX] = "";
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
    e = lk_keys_seed(app, count, "[\"*\"]", now, write_secret, out, ws_id);
    if (e == LK_ERR_NOT_FOUND) {
        lk_cli_fail("the database has no workspace; run `latchkey init` first");
        goto out;
    }
    if (e != LK_OK) {
        lk_cli_fail("%s", e == LK_ERR_INTERNAL ? "cannot write the secrets" : lk_err_message(e));
        goto out;
    }
    printf("seeded %lld keys into workspace %s; secrets in %s\n", (long long)count, ws_id,
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
