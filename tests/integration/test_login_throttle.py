"""Login throttling: 5 failures for one email, or 20 from one address, within 15
minutes → 429 `too_many_requests` with Retry-After (docs/http-api.md, "People").

Each test has a server of its own, so the throttle state starts empty. A second
client address is 127.0.0.2: Linux answers all of 127/8 on the loopback device.
"""

import pytest

from lkhelpers import (HTTP_TIMEOUT, assert_error, describe, expect_status, http_from,
                       need_other_address, new_email, new_password, other_address_works)

WINDOW = 15 * 60


def login_from(srv, address, email, password, **kw):
    with http_from(address) as h:
        return h.post(srv.url("/v1/auth/login"), json={"email": email, "password": password},
                      timeout=HTTP_TIMEOUT, **kw)


def assert_throttled(r):
    err = assert_error(r, 429, "too_many_requests")
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit(), f"Retry-After {ra!r}: {describe(r)}"
    assert 1 <= int(ra) <= WINDOW, f"Retry-After {ra!r} outside 1..{WINDOW}: {describe(r)}"
    assert "lk_session" not in r.headers.get("Set-Cookie", ""), describe(r)
    assert "token" not in r.json(), describe(r)
    return err


@pytest.fixture
def srv_ws(fresh_server):
    return fresh_server, fresh_server.create_workspace()


def test_fifth_failure_locks_the_email(srv_ws):
    srv, ws = srv_ws
    u = ws.new_user("owner")
    for i in range(5):
        r = srv.login(u.email, new_password())
        assert_error(r, 401, "invalid_credentials")
    # the 6th is refused even with the right password, and so is a 7th wrong one
    r = srv.login(u.email, u.password)
    assert_throttled(r)
    assert_throttled(srv.login(u.email, new_password()))
    # other emails are not affected
    other = ws.new_user("editor")
    expect_status(srv.login(other.email, other.password), 200)


def test_four_failures_do_not_lock(srv_ws):
    srv, ws = srv_ws
    u = ws.new_user("viewer")
    for _ in range(4):
        assert_error(srv.login(u.email, new_password()), 401, "invalid_credentials")
    expect_status(srv.login(u.email, u.password), 200)


def test_unknown_email_is_throttled_too(srv_ws):
    """An attacker probing an address that has no account sees the same 429."""
    srv, _ = srv_ws
    email = new_email("ghost")
    for _ in range(5):
        assert_error(srv.login(email, new_password()), 401, "invalid_credentials")
    assert_throttled(srv.login(email, new_password()))


def test_email_lock_holds_from_another_address(srv_ws):
    srv, ws = srv_ws
    need_other_address(srv)
    u = ws.new_user("owner")
    for _ in range(5):
        assert_error(srv.login(u.email, new_password()), 401, "invalid_credentials")
    assert_throttled(login_from(srv, "127.0.0.2", u.email, u.password))


def test_email_lock_ignores_case_of_email(srv_ws):
    """The lock is per account: changing the case of the address does not reset it."""
    srv, ws = srv_ws
    u = ws.new_user("owner")
    for _ in range(5):
        assert_error(srv.login(u.email, new_password()), 401, "invalid_credentials")
    r = srv.login(u.email.upper(), u.password)
    assert r.status_code in (401, 429), describe(r)
    if r.status_code == 429:
        assert_throttled(r)
    assert_throttled(srv.login(u.email, u.password))


def test_twenty_failures_lock_the_address(srv_ws):
    srv, ws = srv_ws
    good = ws.new_user("editor")
    later = ws.new_user("viewer")
    # 19 failures spread over several emails, none of them reaching 5
    emails = [new_email("spray") for _ in range(5)]
    n = 0
    for e in emails:
        for _ in range(4):
            if n == 19:
                break
            assert_error(srv.login(e, new_password()), 401, "invalid_credentials")
            n += 1
    assert n == 19
    # still open for everyone, and a success does not wipe the count
    expect_status(srv.login(good.email, good.password), 200)
    assert_error(srv.login(new_email("spray"), new_password()), 401, "invalid_credentials")
    # 20 failures: now every email from this address is refused
    assert_throttled(srv.login(later.email, later.password))
    assert_throttled(srv.login(good.email, good.password))
    if other_address_works(srv):
        # another address is not affected
        r = login_from(srv, "127.0.0.2", later.email, later.password)
        expect_status(r, 200)


def test_forwarded_for_does_not_escape_the_address_limit(srv_ws):
    """Without a configured proxy, X-Forwarded-For is the client's word: it must not
    give each failure a fresh address."""
    srv, ws = srv_ws
    good = ws.new_user("editor")
    for i in range(20):
        r = srv.login(new_email("xff"), new_password(),
                      headers={"X-Forwarded-For": f"10.1.{i}.{i + 1}",
                               "X-Real-IP": f"10.2.{i}.{i + 1}"})
        assert_error(r, 401, "invalid_credentials")
    assert_throttled(srv.login(good.email, good.password,
                               headers={"X-Forwarded-For": "10.9.9.9"}))


def test_throttle_answer_is_the_same_for_known_and_unknown_emails(srv_ws):
    srv, ws = srv_ws
    u = ws.new_user("owner")
    ghost = new_email("ghost")
    for _ in range(5):
        srv.login(u.email, new_password())
        srv.login(ghost, new_password())
    a = assert_throttled(srv.login(u.email, u.password))
    b = assert_throttled(srv.login(ghost, new_password()))
    assert a["message"] == b["message"]


def test_failed_and_throttled_logins_do_not_break_sessions(srv_ws):
    srv, ws = srv_ws
    s = ws.new_session("owner")
    for _ in range(6):
        srv.login(s.user.email, new_password())
    # the session made before the lock keeps working
    expect_status(srv.get("/v1/me", key=s.token), 200)
    expect_status(srv.get("/v1/keys", key=s.token), 200)


def test_parallel_failures_do_not_exceed_five_guesses(srv_ws):
    """The limit holds under concurrency: of many wrong passwords sent at once for one
    email, at most 5 are checked (401); the rest are refused (429)."""
    from concurrent.futures import ThreadPoolExecutor

    srv, ws = srv_ws
    u = ws.new_user("owner")
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: srv.login(u.email, new_password()), range(12)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) <= 5, f"{codes.count(401)} guesses were checked: {codes}"
    assert_throttled(srv.login(u.email, u.password))


def test_parallel_failures_do_not_exceed_twenty_per_address(srv_ws):
    from concurrent.futures import ThreadPoolExecutor

    srv, ws = srv_ws
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda _: srv.login(new_email("par"), new_password()),
                                range(30)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) <= 20, f"{codes.count(401)} guesses were checked: {codes}"
