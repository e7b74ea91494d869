"""Per-address limits (docs/http-api.md, "Limits and money" → "Per-address limits").

An address whose key checks found no such key (`invalid_key`) N times in the window
of `failed_key_limit = N/W` gets `too_many_requests` (429, Retry-After) on every key
check and management call after that until the window closes, even for correct
keys (as a login lock refuses the attempt after the fifth failure). `login_rate_limit` bounds login attempts per address. Every test has a server
of its own with small limits; a second client address is 127.0.0.2.
"""

import time

from conftest import in_parallel, poll
from lkhelpers import (HTTP_TIMEOUT, assert_error, describe, expect_status, flip_char,
                       http_from, make_secret, need_other_address, new_password,
                       other_address_works)


def retry_after(r, window_s):
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit(), f"Retry-After {ra!r}: {describe(r)}"
    assert 1 <= int(ra) <= window_s, f"Retry-After {ra} outside 1..{window_s}: {describe(r)}"
    return int(ra)


def assert_blocked(r, window_s):
    """A key check or management call refused for the address: 429 too_many_requests
    with Retry-After. /v1/verify may instead answer 200 with that code (it answers
    every well-formed body with 200), but still says nothing about the key."""
    if r.request.path_url.startswith("/v1/verify") and r.status_code == 200:
        doc = r.json()
        assert doc["valid"] is False and doc["code"] == "too_many_requests", describe(r)
        for f in ("key_id", "workspace_id", "environment", "kind", "permissions"):
            assert doc.get(f) is None, f"a blocked check tells {f}: {describe(r)}"
    else:
        assert_error(r, 429, "too_many_requests")
    return retry_after(r, window_s)


def unknown(srv):
    """One check of a well-formed key that does not exist: must be invalid_key."""
    r = srv.verify({"key": make_secret()})
    doc = expect_status(r, 200)
    assert doc["code"] == "invalid_key", describe(r)
    return r


def valid(srv, secret):
    r = srv.verify({"key": secret})
    doc = expect_status(r, 200)
    assert doc["valid"] is True, describe(r)
    return r


# -- failed key checks --------------------------------------------------------------------

def test_n_unknown_keys_then_every_check_is_refused(make_server):
    srv = make_server(config={"failed_key_limit": "5/60"})
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(4):
        unknown(srv)
    valid(srv, k["secret"])
    unknown(srv)  # the fifth failure is still answered
    # the address has used its five: even a correct key is refused, on every path
    assert_blocked(srv.verify({"key": make_secret()}), 60)
    blocked_good = srv.verify({"key": k["secret"]})
    assert_blocked(blocked_good, 60)
    assert k["id"] not in blocked_good.text
    assert_blocked(srv.auth_context(k["secret"]), 60)
    assert_blocked(srv.get("/v1/auth-context", headers={"X-API-Key": k["secret"]}), 60)
    assert_blocked(srv.get("/v1/keys", key=w.root_key), 60)
    assert_blocked(srv.post("/v1/keys", key=w.root_key, json={"name": "blocked"}), 60)
    assert_blocked(srv.get(f"/v1/keys/{k['id']}", key=w.root_key), 60)
    if other_address_works(srv):
        # the refused create made nothing
        with http_from("127.0.0.2") as h:
            r = h.get(srv.url("/v1/keys"), headers={"Authorization": f"Bearer {w.root_key}"},
                      params={"limit": 100}, timeout=HTTP_TIMEOUT)
            names = {x["name"] for x in expect_status(r, 200)["data"]}
            assert "blocked" not in names, describe(r)


def test_session_management_calls_are_refused_too(make_server):
    """"Every key check and management call": a session signed in before the
    address was blocked manages nothing until the window closes."""
    srv = make_server(config={"failed_key_limit": "2/60"})
    w = srv.create_workspace()
    owner = w.new_session("owner")
    expect_status(srv.get("/v1/keys", key=owner.token), 200)
    for _ in range(2):
        unknown(srv)
    assert_blocked(srv.get("/v1/keys", key=owner.token), 60)
    assert_blocked(srv.post("/v1/keys", key=owner.token, json={"name": "blocked"}), 60)
    assert_blocked(srv.get("/v1/members", key=owner.token), 60)


def test_blocked_answer_is_the_same_for_good_and_unknown_keys(make_server):
    """Guessing learns nothing: a correct key and an unknown one get the same answer."""
    srv = make_server(config={"failed_key_limit": "3/60"})
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(3):
        unknown(srv)
    a = srv.auth_context(k["secret"])
    b = srv.auth_context(make_secret())
    assert a.status_code == b.status_code == 429, (describe(a), describe(b))
    assert a.json()["error"]["code"] == b.json()["error"]["code"] == "too_many_requests"
    assert a.json()["error"]["message"] == b.json()["error"]["message"]
    va, vb = srv.verify({"key": k["secret"]}), srv.verify({"key": make_secret()})
    assert va.status_code == vb.status_code, (describe(va), describe(vb))
    ja, jb = va.json(), vb.json()
    for doc in (ja, jb):
        doc.get("error", {}).pop("request_id", None)
    assert ja == jb, (describe(va), describe(vb))


def test_failures_on_auth_context_count_too(make_server):
    srv = make_server(config={"failed_key_limit": "4/60"})
    w = srv.create_workspace()
    k = w.create_key()
    unknown(srv)
    unknown(srv)
    assert_error(srv.auth_context(make_secret()), 401, "invalid_key")
    valid(srv, k["secret"])
    assert_error(srv.auth_context(make_secret()), 401, "invalid_key")
    assert_blocked(srv.auth_context(k["secret"]), 60)


def test_malformed_and_missing_keys_do_not_count(make_server):
    srv = make_server(config={"failed_key_limit": "3/60"})
    w = srv.create_workspace()
    k = w.create_key()
    for i in range(10):
        doc = expect_status(srv.verify({"key": f"garbage-{i}"}), 200)
        assert doc["code"] == "malformed_key", doc
        doc = expect_status(srv.verify({"key": flip_char(make_secret(), -1)}), 200)
        assert doc["code"] == "malformed_key", doc
        assert_error(srv.auth_context("lk_live_short"), 401, "malformed_key")
        assert_error(srv.get("/v1/auth-context"), 401, "missing_key")
    valid(srv, k["secret"])
    # the budget of unknown keys is still whole
    for _ in range(3):
        unknown(srv)
    assert_blocked(srv.verify({"key": k["secret"]}), 60)


def test_refusals_of_known_keys_do_not_count(make_server):
    """Only `invalid_key` counts: revoked, disabled or wrong-permission checks are of
    keys that exist."""
    srv = make_server(config={"failed_key_limit": "3/60"})
    w = srv.create_workspace()
    k = w.create_key(permissions=["a:read"])
    gone = w.create_key()
    off = w.create_key()
    assert srv.delete(f"/v1/keys/{gone['id']}", key=w.root_key).status_code == 204
    expect_status(srv.patch(f"/v1/keys/{off['id']}", key=w.root_key,
                            json={"enabled": False}), 200)
    for _ in range(6):
        assert_error(srv.auth_context(gone["secret"]), 401, "revoked_key")
        assert_error(srv.auth_context(off["secret"]), 403, "inactive_key")
        doc = expect_status(srv.verify({"key": k["secret"], "permissions": "a:write"}), 200)
        assert doc["code"] == "insufficient_permissions", doc
    valid(srv, k["secret"])
    expect_status(srv.get("/v1/keys", key=w.root_key), 200)


def test_other_addresses_are_not_affected(make_server):
    srv = make_server(config={"failed_key_limit": "3/60"})
    need_other_address(srv)
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(3):
        unknown(srv)
    assert_blocked(srv.auth_context(k["secret"]), 60)
    with http_from("127.0.0.2") as h:
        r = h.get(srv.url("/v1/auth-context"), headers={"Authorization": f"Bearer {k['secret']}"},
                  timeout=HTTP_TIMEOUT)
        assert expect_status(r, 200)["key_id"] == k["id"]
        r = h.post(srv.url("/v1/verify"), json={"key": make_secret()}, timeout=HTTP_TIMEOUT)
        assert expect_status(r, 200)["code"] == "invalid_key", describe(r)


def test_forwarded_for_does_not_give_fresh_addresses(make_server):
    srv = make_server(config={"failed_key_limit": "3/60"})
    w = srv.create_workspace()
    k = w.create_key()
    for i in range(3):
        r = srv.post("/v1/verify", json={"key": make_secret()},
                     headers={"X-Forwarded-For": f"10.0.0.{i + 1}", "X-Real-IP": f"10.1.0.{i}"})
        assert expect_status(r, 200)["code"] == "invalid_key", describe(r)
    assert_blocked(srv.get("/v1/auth-context", key=k["secret"],
                           headers={"X-Forwarded-For": "10.9.9.9"}), 60)


def test_health_stays_up_for_a_blocked_address(make_server):
    srv = make_server(config={"failed_key_limit": "2/60"})
    for _ in range(2):
        unknown(srv)
    assert_blocked(srv.verify({"key": make_secret()}), 60)
    assert expect_status(srv.get("/healthz"), 200) == {"status": "ok"}


def test_window_expiry_frees_the_address(make_server):
    srv = make_server(config={"failed_key_limit": "3/2"})
    w = srv.create_workspace()
    k = w.create_key()
    t0 = time.monotonic()
    for _ in range(3):
        unknown(srv)
    assert_blocked(srv.auth_context(k["secret"]), 2)

    def free():
        r = srv.auth_context(k["secret"])
        if r.status_code == 429:
            assert_blocked(r, 2)
            return None
        return expect_status(r, 200)

    poll(free, timeout=5, what="the address to be let in again after a 2 s window")
    assert time.monotonic() - t0 >= 0.9, "let in again long before the window closed"
    # a new window: three more failures are allowed, then refused again
    for _ in range(3):
        unknown(srv)
    assert_blocked(srv.verify({"key": k["secret"]}), 2)


def test_parallel_guesses_do_not_exceed_the_limit(make_server):
    srv = make_server(config={"failed_key_limit": "10/60"})

    def guess(i, s):
        out = []
        for _ in range(2):
            r = s.get(srv.url("/v1/auth-context"),
                      headers={"Authorization": f"Bearer {make_secret()}"}, timeout=HTTP_TIMEOUT)
            out.append(r.json()["error"]["code"])
        return out

    codes = [c for per in in_parallel(32, guess) for c in per]
    assert set(codes) <= {"invalid_key", "too_many_requests"}, sorted(set(codes))
    assert codes.count("invalid_key") <= 10, f"{codes.count('invalid_key')} guesses answered"
    assert codes.count("invalid_key") >= 10, "the address was refused before its limit"


def test_default_is_100_per_minute(make_server):
    srv = make_server()
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(99):
        unknown(srv)
    valid(srv, k["secret"])
    unknown(srv)
    assert_blocked(srv.verify({"key": make_secret()}), 60)
    assert_blocked(srv.auth_context(k["secret"]), 60)


def test_none_turns_the_failed_key_limit_off(make_server):
    srv = make_server(config={"failed_key_limit": "none"})
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(150):
        unknown(srv)
    valid(srv, k["secret"])
    expect_status(srv.get("/v1/keys", key=w.root_key), 200)


# -- logins ------------------------------------------------------------------------------

def test_login_rate_limit_counts_every_attempt(make_server):
    """Successful logins count too: the limit is on attempts, not failures."""
    srv = make_server(config={"login_rate_limit": "3/60"})
    w = srv.create_workspace()
    u = w.new_user("owner")
    for _ in range(3):
        expect_status(srv.login(u.email, u.password), 200)
    r = srv.login(u.email, u.password)
    assert_error(r, 429, "too_many_requests")
    retry_after(r, 60)
    assert "lk_session" not in r.headers.get("Set-Cookie", ""), describe(r)
    assert "token" not in r.json(), describe(r)
    # another user from the same address is refused as well
    other = w.new_user("viewer")
    assert_error(srv.login(other.email, other.password), 429, "too_many_requests")


def test_login_rate_limit_is_per_address(make_server):
    srv = make_server(config={"login_rate_limit": "2/60"})
    need_other_address(srv)
    w = srv.create_workspace()
    u = w.new_user("editor")
    for _ in range(2):
        expect_status(srv.login(u.email, u.password), 200)
    assert_error(srv.login(u.email, u.password), 429, "too_many_requests")
    with http_from("127.0.0.2") as h:
        r = h.post(srv.url("/v1/auth/login"), json={"email": u.email, "password": u.password},
                   timeout=HTTP_TIMEOUT)
        expect_status(r, 200)


def test_login_window_expiry(make_server):
    srv = make_server(config={"login_rate_limit": "2/2"})
    w = srv.create_workspace()
    u = w.new_user("owner")
    for _ in range(2):
        expect_status(srv.login(u.email, u.password), 200)
    r = srv.login(u.email, u.password)
    assert_error(r, 429, "too_many_requests")
    retry_after(r, 2)

    def again():
        r = srv.login(u.email, u.password)
        if r.status_code == 429:
            return None
        return expect_status(r, 200)

    poll(again, timeout=5, what="logins to be let in again after a 2 s window", interval=0.2)


def test_login_limit_leaves_key_checks_alone(make_server):
    srv = make_server(config={"login_rate_limit": "1/60"})
    w = srv.create_workspace()
    u = w.new_user("owner")
    s = srv.session(u.email, u.password)
    assert_error(srv.login(u.email, u.password), 429, "too_many_requests")
    k = w.create_key()
    valid(srv, k["secret"])
    expect_status(srv.get("/v1/keys", key=s.token), 200)
    expect_status(srv.get("/v1/me", key=s.token), 200)


def test_failed_login_throttle_still_applies_with_login_limit_off(make_server):
    """`login_rate_limit = none` lifts only the per-address cap: five failures for one
    email still lock it."""
    srv = make_server(config={"login_rate_limit": "none"})
    w = srv.create_workspace()
    u = w.new_user("owner")
    for _ in range(5):
        assert_error(srv.login(u.email, new_password()), 401, "invalid_credentials")
    assert_error(srv.login(u.email, u.password), 429, "too_many_requests")
    other = w.new_user("viewer")
    expect_status(srv.login(other.email, other.password), 200)


def test_login_default_is_60_per_minute(make_server):
    srv = make_server()
    w = srv.create_workspace()
    users = [w.new_user("viewer") for _ in range(4)]

    def attempts(i, s):
        u = users[i]
        out = []
        for _ in range(15):
            r = s.post(srv.url("/v1/auth/login"), json={"email": u.email, "password": u.password},
                       timeout=HTTP_TIMEOUT)
            out.append(r.status_code)
        return out

    codes = [c for per in in_parallel(4, attempts) for c in per]
    assert codes == [200] * 60, f"60 logins within the default limit: {codes}"
    r = srv.login(users[0].email, users[0].password)
    assert_error(r, 429, "too_many_requests")
    retry_after(r, 60)


def test_login_limit_none_lets_many_logins_through(make_server):
    srv = make_server(config={"login_rate_limit": "none"})
    w = srv.create_workspace()
    users = [w.new_user("viewer") for _ in range(4)]

    def attempts(i, s):
        u = users[i]
        return [s.post(srv.url("/v1/auth/login"), json={"email": u.email, "password": u.password},
                       timeout=HTTP_TIMEOUT).status_code for _ in range(16)]

    codes = [c for per in in_parallel(4, attempts) for c in per]
    assert codes == [200] * 64, codes
