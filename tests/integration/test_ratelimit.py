"""Per-key rate limits (docs/http-api.md, "Limits and money" → "Rate limits").

A key's `rate_limit` {"limit": N, "window_s": W} lets N valid checks through in a
window that opens with the first; check N+1 is `rate_limited` (429 from
/v1/auth-context, a 200 answer with that code from /v1/verify). Keys with a limit
carry RateLimit-Limit / -Remaining / -Reset on every check. The shared server has
no default limit; the defaults from `rate_limit` / `test_rate_limit` are tested on
servers of their own.
"""

import subprocess
import time

import pytest

from conftest import BIN, clean_env, free_port, in_parallel, poll
from lkhelpers import HTTP_TIMEOUT, assert_error, describe, expect_status

RL_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def check(srv, secret, **body):
    """POST /v1/verify; returns (answer, response)."""
    r = srv.verify({"key": secret, **body})
    return expect_status(r, 200), r


def header_int(r, name):
    v = r.headers.get(name)
    assert v is not None, f"no {name} header: {describe(r)}"
    assert v.strip().isdigit(), f"{name} {v!r} is not a whole number: {describe(r)}"
    return int(v)


def assert_rl(r, limit, remaining, window_s):
    """The RateLimit-* headers of one check, and the body's `ratelimit` on /v1/verify."""
    assert header_int(r, "RateLimit-Limit") == limit, describe(r)
    assert header_int(r, "RateLimit-Remaining") == remaining, describe(r)
    reset = header_int(r, "RateLimit-Reset")
    assert 0 <= reset <= window_s, f"RateLimit-Reset {reset} outside 0..{window_s}: " \
                                   f"{describe(r)}"
    if r.request.path_url.startswith("/v1/verify"):
        rl = r.json().get("ratelimit")
        assert rl == {"limit": limit, "remaining": remaining, "reset": reset}, \
            f"body ratelimit {rl!r} does not match the headers: {describe(r)}"
    return reset


def assert_no_rl(r):
    for h in RL_HEADERS:
        assert h not in r.headers, f"{h} on a key without a limit: {describe(r)}"
    if r.request.path_url.startswith("/v1/verify"):
        assert r.json().get("ratelimit") is None, describe(r)


def retry_after(r, window_s):
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit(), f"Retry-After {ra!r}: {describe(r)}"
    assert 1 <= int(ra) <= window_s, f"Retry-After {ra} outside 1..{window_s}: {describe(r)}"
    return int(ra)


def patch_key(srv, w, key_id, **body):
    return expect_status(srv.patch(f"/v1/keys/{key_id}", key=w.root_key, json=body), 200)


# -- the key's own limit -------------------------------------------------------------------

def test_n_checks_pass_and_the_next_is_rate_limited_on_verify(server, ws):
    k = ws.create_key(rate_limit={"limit": 3, "window_s": 60})
    for i in range(3):
        doc, r = check(server, k["secret"])
        assert doc["valid"] is True and doc["code"] == "valid", describe(r)
        assert_rl(r, 3, 2 - i, 60)
    for _ in range(2):
        doc, r = check(server, k["secret"])
        assert doc["valid"] is False and doc["code"] == "rate_limited", describe(r)
        assert doc["key_id"] == k["id"], describe(r)
        assert_rl(r, 3, 0, 60)


def test_rate_limited_auth_context_is_429_with_retry_after(server, ws):
    k = ws.create_key(rate_limit={"limit": 2, "window_s": 60})
    for i in range(2):
        r = server.auth_context(k["secret"])
        assert expect_status(r, 200)["key_id"] == k["id"]
        assert_rl(r, 2, 1 - i, 60)
    r = server.auth_context(k["secret"])
    assert_error(r, 429, "rate_limited")
    ra = retry_after(r, 60)
    reset = assert_rl(r, 2, 0, 60)
    assert abs(ra - reset) <= 1, f"Retry-After {ra} vs RateLimit-Reset {reset}: {describe(r)}"
    assert k["secret"] not in r.text


def test_verify_and_auth_context_share_one_window(server, ws):
    k = ws.create_key(rate_limit={"limit": 2, "window_s": 60})
    doc, r = check(server, k["secret"])
    assert doc["valid"] is True, describe(r)
    assert_rl(server.auth_context(k["secret"]), 2, 0, 60)
    doc, r = check(server, k["secret"])
    assert doc["code"] == "rate_limited", describe(r)
    assert_error(server.auth_context(k["secret"]), 429, "rate_limited")


def test_limits_are_per_key(server, ws):
    a = ws.create_key(rate_limit={"limit": 1, "window_s": 60})
    b = ws.create_key(rate_limit={"limit": 1, "window_s": 60})
    assert check(server, a["secret"])[0]["valid"] is True
    assert check(server, a["secret"])[0]["code"] == "rate_limited"
    doc, r = check(server, b["secret"])
    assert doc["valid"] is True, describe(r)
    assert_rl(r, 1, 0, 60)


def test_window_reopens_after_window_s(server, ws):
    k = ws.create_key(rate_limit={"limit": 2, "window_s": 2})
    t0 = time.monotonic()
    for _ in range(2):
        assert check(server, k["secret"])[0]["valid"] is True
    r = server.auth_context(k["secret"])
    assert_error(r, 429, "rate_limited")
    retry_after(r, 2)

    def reopened():
        doc, r = check(server, k["secret"])
        return (doc, r) if doc["valid"] else None

    doc, r = poll(reopened, timeout=5, what="the 2 s window to reopen", interval=0.1)
    assert time.monotonic() - t0 >= 0.9, "the window reopened long before window_s"
    # a fresh window: this check was its first
    assert_rl(r, 2, 1, 2)
    assert check(server, k["secret"])[0]["valid"] is True
    assert check(server, k["secret"])[0]["code"] == "rate_limited"


def test_refused_checks_do_not_use_the_limit(server, ws):
    """Only valid checks count: permission, environment and credit refusals of a
    limited key leave its window untouched."""
    k = ws.create_key(permissions=["storage:read"], rate_limit={"limit": 2, "window_s": 60})
    for _ in range(3):
        doc, r = check(server, k["secret"], permissions="storage:write")
        assert doc["code"] == "insufficient_permissions", describe(r)
        doc, r = check(server, k["secret"], environment="test")
        assert doc["code"] == "environment_mismatch", describe(r)
        doc, r = check(server, k["secret"], cost=5)  # a new workspace has no credits
        assert doc["code"] == "insufficient_credits", describe(r)
    for i in range(2):
        doc, r = check(server, k["secret"], permissions="storage:read")
        assert doc["valid"] is True, describe(r)
        assert_rl(r, 2, 1 - i, 60)
    assert check(server, k["secret"])[0]["code"] == "rate_limited"


def test_disabled_and_revoked_limited_keys_answer_their_state(server, ws):
    k = ws.create_key(rate_limit={"limit": 1, "window_s": 60})
    patch_key(server, ws, k["id"], enabled=False)
    for _ in range(3):
        assert check(server, k["secret"])[0]["code"] == "inactive_key"
    patch_key(server, ws, k["id"], enabled=True)
    assert check(server, k["secret"])[0]["valid"] is True
    assert check(server, k["secret"])[0]["code"] == "rate_limited"
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    # the state check comes first: a revoked key is revoked, not rate limited
    assert check(server, k["secret"])[0]["code"] == "revoked_key"
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")


def test_keys_without_a_limit_have_no_ratelimit_headers(server, ws):
    k = ws.create_key()
    t = ws.create_key(environment="test")
    for _ in range(25):
        doc, r = check(server, k["secret"])
        assert doc["valid"] is True, describe(r)
        assert_no_rl(r)
    r = server.auth_context(k["secret"])
    expect_status(r, 200)
    assert_no_rl(r)
    doc, r = check(server, t["secret"])
    assert doc["valid"] is True, describe(r)
    assert_no_rl(r)


# -- changing the limit -----------------------------------------------------------------

def test_patch_sets_changes_and_removes_the_limit(server, ws):
    k = ws.create_key()
    doc, r = check(server, k["secret"])
    assert doc["valid"] is True
    assert_no_rl(r)

    got = patch_key(server, ws, k["id"], rate_limit={"limit": 2, "window_s": 60})
    assert got["rate_limit"] == {"limit": 2, "window_s": 60}, got
    doc, r = check(server, k["secret"])
    assert doc["valid"] is True, describe(r)
    assert header_int(r, "RateLimit-Limit") == 2, describe(r)
    check(server, k["secret"])
    doc, r = check(server, k["secret"])
    assert doc["code"] == "rate_limited", describe(r)

    # raising the limit lets the key through again at once
    patch_key(server, ws, k["id"], rate_limit={"limit": 5, "window_s": 60})
    doc, r = check(server, k["secret"])
    assert doc["valid"] is True, describe(r)
    assert header_int(r, "RateLimit-Limit") == 5, describe(r)

    # null: no limit at all any more
    got = patch_key(server, ws, k["id"], rate_limit=None)
    assert got["rate_limit"] is None, got
    for _ in range(8):
        doc, r = check(server, k["secret"])
        assert doc["valid"] is True, describe(r)
        assert_no_rl(r)


def test_lowering_the_limit_applies_at_once(server, ws):
    k = ws.create_key(rate_limit={"limit": 10, "window_s": 60})
    for _ in range(3):
        assert check(server, k["secret"])[0]["valid"] is True
    patch_key(server, ws, k["id"], rate_limit={"limit": 1, "window_s": 60})
    answers = [check(server, k["secret"]) for _ in range(3)]
    assert header_int(answers[0][1], "RateLimit-Limit") == 1, describe(answers[0][1])
    assert answers[-1][0]["code"] == "rate_limited", describe(answers[-1][1])
    assert sum(1 for doc, _ in answers if doc["valid"]) <= 1, \
        [doc["code"] for doc, _ in answers]


@pytest.mark.parametrize("rl,field", [
    ({"limit": 0, "window_s": 60}, "rate_limit.limit"),
    ({"limit": 5, "window_s": 0}, "rate_limit.window_s"),
    ({"limit": 5}, "rate_limit"),
    ({"limit": "5", "window_s": 60}, "rate_limit.limit"),
    (5, "rate_limit"),
])
def test_bad_rate_limit_is_refused(server, ws, rl, field):
    k = ws.create_key(rate_limit={"limit": 3, "window_s": 60})
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"rate_limit": rl})
    assert_error(r, 400, "invalid_request", field=field.split(".")[0])
    assert ws.get_key(k["id"])["rate_limit"] == {"limit": 3, "window_s": 60}
    doc, r = check(server, k["secret"])
    assert_rl(r, 3, 2, 60)


# -- exact under concurrency --------------------------------------------------------------

def test_exactly_n_pass_under_64_concurrent_connections(server, ws):
    n = 50
    k = ws.create_key(rate_limit={"limit": n, "window_s": 60})

    def client(i, s):
        out = []
        for _ in range(3):
            r = s.post(server.url("/v1/verify"), json={"key": k["secret"]}, timeout=HTTP_TIMEOUT)
            doc = expect_status(r, 200)
            out.append((doc["code"], r.headers.get("RateLimit-Remaining")))
        return out

    answers = [a for per in in_parallel(64, client) for a in per]
    codes = [c for c, _ in answers]
    assert set(codes) <= {"valid", "rate_limited"}, sorted(set(codes))
    assert codes.count("valid") == n, f"{codes.count('valid')} of {len(codes)} passed, not {n}"
    # every valid check took its own place in the window
    left = sorted(int(rem) for c, rem in answers if c == "valid")
    assert left == list(range(n)), f"RateLimit-Remaining of the valid checks: {left}"
    assert all(rem == "0" for c, rem in answers if c == "rate_limited")


def test_exactly_n_pass_on_auth_context_under_concurrency(server, ws):
    n = 30
    k = ws.create_key(rate_limit={"limit": n, "window_s": 60})

    def client(i, s):
        out = []
        for _ in range(2):
            r = s.get(server.url("/v1/auth-context"),
                      headers={"Authorization": f"Bearer {k['secret']}"}, timeout=HTTP_TIMEOUT)
            out.append(r.status_code)
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "rate_limited", describe(r)
        return out

    statuses = [s for per in in_parallel(64, client) for s in per]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert statuses.count(200) == n, f"{statuses.count(200)} passed, not {n}"


# -- quota and credits are untouched by rate-limited checks ---------------------------------

def test_rate_limited_checks_use_no_quota_and_spend_nothing(server):
    w = server.create_workspace(quota=100)
    expect_status(server.post("/v1/credits", key=w.root_key, json={"amount": 100}), 201)
    k = w.create_key(rate_limit={"limit": 2, "window_s": 60})
    for expect_left in (90, 80):
        doc, r = check(server, k["secret"], cost=10)
        assert doc["valid"] is True and doc.get("remaining_credits") == expect_left, \
            describe(r)
    for _ in range(4):
        doc, r = check(server, k["secret"], cost=10)
        assert doc["code"] == "rate_limited", describe(r)
        if doc.get("remaining_credits") is not None:
            assert doc["remaining_credits"] == 80, describe(r)

    def settled():
        q = expect_status(server.get("/v1/quota", key=w.root_key), 200)
        c = expect_status(server.get("/v1/credits", key=w.root_key), 200)
        return (q, c) if q["live"]["used"] >= 2 and c["spent"] >= 20 else None

    poll(settled, what="quota use and spending of the two valid checks")
    time.sleep(1.2)  # one more write-back: the refused checks must not show up late
    q = expect_status(server.get("/v1/quota", key=w.root_key), 200)
    c = expect_status(server.get("/v1/credits", key=w.root_key), 200)
    assert q["live"]["used"] == 2, q
    assert c["balance"] == 80 and c["spent"] == 20, c


# -- defaults from the config file --------------------------------------------------------------

def test_configured_defaults_and_a_keys_own_limit(make_server):
    srv = make_server(config={"rate_limit": "3/60", "test_rate_limit": "2/60"})
    w = srv.create_workspace()
    live = w.create_key()
    test = w.create_key(environment="test")
    own_live = w.create_key(rate_limit={"limit": 5, "window_s": 60})
    own_test = w.create_key(environment="test", rate_limit={"limit": 4, "window_s": 60})
    for key, n in ((live, 3), (test, 2), (own_live, 5), (own_test, 4)):
        for i in range(n):
            doc, r = check(srv, key["secret"])
            assert doc["valid"] is True, f"check {i + 1} of {n}: {describe(r)}"
            assert_rl(r, n, n - 1 - i, 60)
        doc, r = check(srv, key["secret"])
        assert doc["code"] == "rate_limited", f"check {n + 1} of limit {n}: {describe(r)}"
        r = srv.auth_context(key["secret"])
        assert_error(r, 429, "rate_limited")
        retry_after(r, 60)
    # the default is not written into the key: its own rate_limit stays null
    assert w.get_key(live["id"])["rate_limit"] is None


def test_patch_to_null_falls_back_to_the_default(make_server):
    srv = make_server(config={"rate_limit": "2/60"})
    w = srv.create_workspace()
    k = w.create_key(rate_limit={"limit": 100, "window_s": 60})
    doc, r = check(srv, k["secret"])
    assert header_int(r, "RateLimit-Limit") == 100
    patch_key(srv, w, k["id"], rate_limit=None)
    answers = [check(srv, k["secret"]) for _ in range(3)]
    assert header_int(answers[0][1], "RateLimit-Limit") == 2, describe(answers[0][1])
    assert answers[-1][0]["code"] == "rate_limited", describe(answers[-1][1])


def test_live_default_does_not_apply_to_test_keys(make_server):
    srv = make_server(config={"rate_limit": "2/60", "test_rate_limit": "none"})
    w = srv.create_workspace()
    t = w.create_key(environment="test")
    for _ in range(6):
        doc, r = check(srv, t["secret"])
        assert doc["valid"] is True, describe(r)
        assert_no_rl(r)
    live = w.create_key()
    assert [check(srv, live["secret"])[0]["code"] for _ in range(3)] == \
        ["valid", "valid", "rate_limited"]


def test_test_default_does_not_apply_to_live_keys(make_server):
    srv = make_server(config={"test_rate_limit": "1/60"})
    w = srv.create_workspace()
    live = w.create_key()
    for _ in range(5):
        doc, r = check(srv, live["secret"])
        assert doc["valid"] is True, describe(r)
        assert_no_rl(r)
    t = w.create_key(environment="test")
    assert [check(srv, t["secret"])[0]["code"] for _ in range(2)] == ["valid", "rate_limited"]


def test_all_limits_none_is_accepted(make_server):
    srv = make_server(config={"rate_limit": "none", "test_rate_limit": "none",
                              "failed_key_limit": "none", "login_rate_limit": "none"})
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(10):
        doc, r = check(srv, k["secret"])
        assert doc["valid"] is True, describe(r)
        assert_no_rl(r)


@pytest.mark.parametrize("line", [
    "rate_limit = 0/60",
    "rate_limit = 5",
    "rate_limit = five/60",
    "rate_limit = 5/0",
    "test_rate_limit = 5/-1",
    "failed_key_limit = -1/60",
    "login_rate_limit = 10/",
    "rate_limit = nothing",
])
def test_bad_limit_setting_is_refused_with_its_line(tmp_path, line):
    conf = tmp_path / "lk.conf"
    conf.write_text(f"# limits\n{line}\n")
    r = subprocess.run([BIN, "serve", "--config", str(conf), "--listen",
                        f"127.0.0.1:{free_port()}", "--db", f"sqlite:{tmp_path}/x.db"],
                       env=clean_env(), cwd=tmp_path, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0, f"`{line}` was accepted: {r.stderr[-500:]}"
    assert "line 2" in r.stderr, r.stderr[-500:]
    assert "unknown setting" not in r.stderr, f"`{line.split()[0]}` is not a setting yet"
    assert not (tmp_path / "x.db").exists()


# -- restarts --------------------------------------------------------------------------------

def test_restarts_and_kills_keep_the_window_and_the_limit(fresh_server):
    """The window is kept in the counter file beside the database: neither a clean
    restart nor kill -9 opens a fresh one (only a reboot of the machine does)."""
    srv = fresh_server
    w = srv.create_workspace()
    k = w.create_key(rate_limit={"limit": 3, "window_s": 600})
    assert [check(srv, k["secret"])[0]["code"] for _ in range(2)] == ["valid", "valid"]
    srv.restart()
    assert w.get_key(k["id"])["rate_limit"] == {"limit": 3, "window_s": 600}
    doc, r = check(srv, k["secret"])
    assert doc["valid"] is True, describe(r)
    assert doc["ratelimit"]["remaining"] == 0, f"a restart opened a fresh window: {describe(r)}"
    srv.kill9()
    srv.start()
    doc, r = check(srv, k["secret"])
    assert doc["code"] == "rate_limited", f"kill -9 opened a fresh window: {describe(r)}"
    assert 0 < int(r.headers["Retry-After"]) <= 600, describe(r)
    assert_error(srv.auth_context(k["secret"]), 429, "rate_limited")
