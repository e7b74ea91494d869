/*
 * h_leaks.c — leak reports (docs/leaks.md): POST /v1/leaks/github, GitHub's
 * secret scanning partner endpoint, and POST /v1/leaks/report, the same for
 * any scanner holding the report secret. The signature is checked over the
 * body exactly as it came, before the body is even parsed; then every
 * reported key of this server is revoked (service/leaks.h), and the answer is
 * GitHub's feedback array. On management workers (mgmt.h).
 */
#include "base/common.h"
#include "core/leakreport.h"
#include "http/handlers.h"
#include "service/leaks.h"
#include "base/banned.h" /* last: bans unsafe calls below this line */

static void answer(struct lk_mreq *m, enum lk_leak_scanner scanner)
{
    struct lk_leak_report r;
    struct lk_leak_outcome *out = NULL;
    struct lk_errinfo ei;
    json_t *arr = NULL;
    enum lk_err e;

    lk_errinfo_clear(&ei);
    if (m->sig_too_long) {
        lk_errinfo_set(&ei, LK_ERR_INVALID_SIGNATURE, "", "a signature header is too long");
        lk_mreq_error(m, LK_ERR_INVALID_SIGNATURE, &ei);
        return;
    }
    e = scanner == LK_LEAK_GITHUB
            ? lk_leaks_check_github(m->app, m->sig_key_id, m->sig, m->body ? m->body : "",
                                    m->body_len, m->address, m->now, &m->retry_after, &ei)
            : lk_leaks_check_report(m->app, m->sig_ts, m->sig, m->body ? m->body : "", m->body_len,
                                    m->address, m->now, &m->retry_after, &ei);
    if (e != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    if ((e = lk_leak_report_parse(m->body ? m->body : "", m->body_len, &r, &ei)) != LK_OK) {
        lk_mreq_error(m, e, &ei);
        return;
    }
    out = lk_calloc(r.n, sizeof(*out));
    if ((e = lk_leaks_handle(m->app, scanner, &r, m->address, m->request_id, m->now, out)) !=
        LK_OK) {
        lk_errinfo_set(&ei, e, "", "a reported key could not be revoked; send the report again");
        lk_mreq_error(m, e, &ei);
        goto out;
    }
    /* GitHub's feedback: the token only as its SHA-256, never itself. */
    arr = json_array();
    for (size_t i = 0; i < r.n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "token_hash", out[i].token_hash,
                                             "token_type", r.items[i].type, "label",
                                             out[i].ours ? "true_positive" : "false_positive"));
    lk_mreq_json(m, 200, arr);
out:
    free(out);
    lk_leak_report_release(&r);
}

void lk_h_leaks_github(struct lk_mreq *m)
{
    answer(m, LK_LEAK_GITHUB);
}

void lk_h_leaks_report(struct lk_mreq *m)
{
    answer(m, LK_LEAK_REPORT);
}
