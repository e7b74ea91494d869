"""The workspace's rolling 30-day quota (docs/http-api.md, "Limits and money" →
"Quota (rolling 30 days)").

`quota` counts the valid checks of all live keys of a workspace by UTC day over
today and the 29 days before; test keys count toward `test_quota` instead (default a
tenth of `quota`, at least 1). Over quota: `quota_exceeded` (429 from
/v1/auth-context, a 200 answer with that code from /v1/verify). Only the operator
root key sets quotas. Tests that cross days move the server's clock.
"""

import pytest

from conftest import DAY, in_parallel, next_noon, poll, utc_date
from lkhelpers import HTTP_TIMEOUT, assert_error, describe, expect_status, make_secret

QUOTA_FIELDS = ("workspace_id", "window_days", "live", "test", "days")


def set_quota(srv, ws_id, **body):
    r = srv.patch(f"/v1/workspaces/{ws_id}", key=srv.root_key, json=body)
    return expect_status(r, 200)


def get_quota(srv, w, key=None):
    return expect_status(srv.get("/v1/quota", key=key or w.root_key), 200)


def code_of(srv, secret):
    r = srv.verify({"key": secret})
    return expect_status(r, 200)["code"]


def assert_exceeded(srv, secret):
    """Both key-check paths refuse with quota_exceeded; returns Retry-After."""
    r = srv.verify({"key": secret})
    doc = expect_status(r, 200)
    assert doc["valid"] is False and doc["code"] == "quota_exceeded", describe(r)
    r = srv.auth_context(secret)
    assert_error(r, 429, "quota_exceeded")
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit(), f"Retry-After {ra!r}: {describe(r)}"
    return int(ra)


def assert_retry_until_midnight(srv, ra):
    expected = DAY - int(srv.now()) % DAY
    assert abs(ra - expected) <= 5, f"Retry-After {ra}, but the next UTC day is {expected}s away"


def expect_quota(srv, w, **parts):
    """GET /v1/quota until each named part (live=..., test=...) reads as given (use
    may be written a moment late); returns the answer."""
    def match():
        q = get_quota(srv, w)
        for name, want in parts.items():
            assert q[name] == want, f"{name}: {q[name]!r}, expected {want!r}"
        return q
    return poll(match, what=f"GET /v1/quota showing {parts}")


def use(limit, used, remaining):
    return {"limit": limit, "used": used, "remaining": remaining}


# -- setting quotas -------------------------------------------------------------------------

def test_workspace_objects_carry_quotas(server):
    plain = server.create_workspace()
    assert plain.data.get("quota", "absent") is None, plain.data
    assert plain.data.get("test_quota", "absent") is None, plain.data
    capped = server.create_workspace(quota=1000, test_quota=30)
    assert capped.data["quota"] == 1000 and capped.data["test_quota"] == 30, capped.data
    listed = {x["id"]: x for x in expect_status(server.get("/v1/workspaces",
                                                           key=server.root_key), 200)["data"]}
    assert listed[capped.id]["quota"] == 1000 and listed[capped.id]["test_quota"] == 30
    assert listed[plain.id]["quota"] is None


def test_operator_patches_quota(server, ws):
    r = server.patch(f"/v1/workspaces/{ws.id}", key=server.root_key, json={"quota": 7})
    doc = expect_status(r, 200)
    assert doc["id"] == ws.id and doc["quota"] == 7, describe(r)
    assert ws.root_key not in r.text and "root_key" not in doc, describe(r)
    doc = set_quota(server, ws.id, test_quota=2)
    assert doc["quota"] == 7 and doc["test_quota"] == 2, doc
    listed = {x["id"]: x for x in expect_status(server.get("/v1/workspaces",
                                                           key=server.root_key), 200)["data"]}
    assert listed[ws.id]["quota"] == 7 and listed[ws.id]["test_quota"] == 2
    q = get_quota(server, ws)
    assert q["live"]["limit"] == 7 and q["test"]["limit"] == 2, q
    doc = set_quota(server, ws.id, quota=None, test_quota=None)
    assert doc["quota"] is None and doc["test_quota"] is None, doc
    q = get_quota(server, ws)
    assert q["live"]["limit"] is None and q["live"]["remaining"] is None, q


def test_only_the_operator_sets_quotas(server, ws, ws2):
    """A workspace's own credentials cannot raise its quota, nor anyone else's."""
    set_quota(server, ws.id, quota=5)
    perm = ws.create_key()
    owner = ws.new_session("owner")
    for cred in (ws.root_key, ws.rw_key, ws.ro_key, perm["secret"], owner.token):
        for target in (ws.id, ws2.id):
            r = server.patch(f"/v1/workspaces/{target}", key=cred, json={"quota": 10 ** 9})
            assert_error(r, 403, "insufficient_permissions")
    assert_error(server.patch(f"/v1/workspaces/{ws.id}", json={"quota": 10 ** 9}), 401,
                 "missing_key")
    assert get_quota(server, ws)["live"]["limit"] == 5
    assert get_quota(server, ws2)["live"]["limit"] is None


def test_patch_unknown_workspace_is_404(server):
    r = server.patch("/v1/workspaces/ws_doesnotexist000", key=server.root_key, json={"quota": 5})
    assert_error(r, 404, "not_found")


@pytest.mark.parametrize("body,field", [
    ({"quota": -1}, "quota"),
    ({"quota": "100"}, "quota"),
    ({"quota": 1.5}, "quota"),
    ({"quota": [100]}, "quota"),
    ({"test_quota": -3}, "test_quota"),
    ({"test_quota": True}, "test_quota"),
    ({"quota": 10, "colour": "blue"}, "colour"),
])
def test_bad_quota_patch_is_400(server, ws, body, field):
    set_quota(server, ws.id, quota=5)
    r = server.patch(f"/v1/workspaces/{ws.id}", key=server.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)
    assert get_quota(server, ws)["live"]["limit"] == 5


def test_bad_quota_on_create_is_400(server):
    r = server.post("/v1/workspaces", key=server.root_key, json={"name": "neg", "quota": -5})
    assert_error(r, 400, "invalid_request", field="quota")
    r = server.post("/v1/workspaces", key=server.root_key,
                    json={"name": "neg", "test_quota": "5"})
    assert_error(r, 400, "invalid_request", field="test_quota")


def test_patch_with_bad_json_is_400(server, ws):
    r = server.patch(f"/v1/workspaces/{ws.id}", key=server.root_key, data=b"{quota: 5",
                     headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")


# -- enforcing ------------------------------------------------------------------------------

def test_quota_is_shared_by_all_live_keys(server):
    w = server.create_workspace(quota=5)
    a, b, c = (w.create_key() for _ in range(3))
    assert code_of(server, a["secret"]) == "valid"
    assert code_of(server, a["secret"]) == "valid"
    expect_status(server.auth_context(b["secret"]), 200)
    expect_status(server.auth_context(b["secret"]), 200)
    assert code_of(server, c["secret"]) == "valid"
    for key in (a, b, c, w.create_key()):
        ra = assert_exceeded(server, key["secret"])
        assert_retry_until_midnight(server, ra)
    expect_quota(server, w, live=use(5, 5, 0))


def test_exceeded_checks_and_management_calls_use_no_quota(server):
    w = server.create_workspace(quota=2)
    k = w.create_key()
    assert [code_of(server, k["secret"]) for _ in range(2)] == ["valid", "valid"]
    for _ in range(5):
        assert code_of(server, k["secret"]) == "quota_exceeded"
    # management is not a key check: still possible, and not counted
    expect_status(server.get("/v1/keys", key=w.root_key), 200)
    w.create_key(name="made-while-over-quota")
    expect_quota(server, w, live=use(2, 2, 0))


def test_refused_checks_use_no_quota(server):
    w = server.create_workspace(quota=2)
    k = w.create_key(permissions=["a:read"])
    gone = w.create_key()
    assert server.delete(f"/v1/keys/{gone['id']}", key=w.root_key).status_code == 204
    for _ in range(4):
        doc = expect_status(server.verify({"key": k["secret"], "permissions": "a:write"}), 200)
        assert doc["code"] == "insufficient_permissions", doc
        assert code_of(server, gone["secret"]) == "revoked_key"
        doc = expect_status(server.verify({"key": k["secret"], "environment": "test"}), 200)
        assert doc["code"] == "environment_mismatch", doc
        assert code_of(server, make_secret()) == "invalid_key"
    assert [code_of(server, k["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]


def test_workspaces_have_separate_quotas(server):
    a = server.create_workspace(quota=2)
    b = server.create_workspace(quota=2)
    ka, kb = a.create_key(), b.create_key()
    assert [code_of(server, ka["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]
    assert [code_of(server, kb["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]


def test_test_keys_count_toward_test_quota_only(server):
    w = server.create_workspace(quota=50)  # test_quota not set: a tenth, 5
    t1, t2 = w.create_key(environment="test"), w.create_key(environment="test")
    live = w.create_key()
    for i in range(5):
        assert code_of(server, (t1, t2)[i % 2]["secret"]) == "valid"
    assert_exceeded(server, t1["secret"])
    assert_exceeded(server, t2["secret"])
    # live keys are untouched by test use
    assert code_of(server, live["secret"]) == "valid"
    expect_quota(server, w, test=use(5, 5, 0), live=use(50, 1, 49))


def test_default_test_quota_is_at_least_one(server):
    w = server.create_workspace(quota=3)
    t = w.create_key(environment="test")
    assert get_quota(server, w)["test"]["limit"] == 1
    assert code_of(server, t["secret"]) == "valid"
    assert_exceeded(server, t["secret"])


def test_explicit_test_quota(server):
    w = server.create_workspace(quota=2, test_quota=4)
    t, live = w.create_key(environment="test"), w.create_key()
    assert [code_of(server, t["secret"]) for _ in range(5)] == ["valid"] * 4 + ["quota_exceeded"]
    assert [code_of(server, live["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]


def test_test_quota_without_live_quota(server):
    w = server.create_workspace(test_quota=2)
    t, live = w.create_key(environment="test"), w.create_key()
    assert [code_of(server, t["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]
    for _ in range(10):
        assert code_of(server, live["secret"]) == "valid"
    expect_quota(server, w, live=use(None, 10, None), test=use(2, 2, 0))


def test_unlimited_workspace_still_counts_use(server, ws):
    k, t = ws.create_key(), ws.create_key(environment="test")
    for _ in range(3):
        assert code_of(server, k["secret"]) == "valid"
    assert code_of(server, t["secret"]) == "valid"
    expect_quota(server, ws, live=use(None, 3, None), test=use(None, 1, None))


def test_patch_changes_the_quota_at_once(server):
    w = server.create_workspace(quota=2)
    k = w.create_key()
    assert [code_of(server, k["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]
    set_quota(server, w.id, quota=4)
    assert [code_of(server, k["secret"]) for _ in range(3)] == \
        ["valid", "valid", "quota_exceeded"]
    set_quota(server, w.id, quota=1)
    assert_exceeded(server, k["secret"])
    expect_quota(server, w, live=use(1, 4, 0))
    set_quota(server, w.id, quota=None)
    assert code_of(server, k["secret"]) == "valid"


def test_quota_is_exact_under_concurrency(server):
    n = 40
    w = server.create_workspace(quota=n)
    keys = [w.create_key() for _ in range(4)]

    def client(i, s):
        out = []
        for _ in range(2):
            r = s.post(server.url("/v1/verify"), json={"key": keys[i % 4]["secret"]},
                       timeout=HTTP_TIMEOUT)
            out.append(expect_status(r, 200)["code"])
        return out

    codes = [c for per in in_parallel(64, client) for c in per]
    assert set(codes) <= {"valid", "quota_exceeded"}, sorted(set(codes))
    assert codes.count("valid") == n, f"{codes.count('valid')} passed a quota of {n}"
    expect_quota(server, w, live=use(n, n, 0))


# -- GET /v1/quota ------------------------------------------------------------------------------

def test_quota_answer_shape(server):
    w = server.create_workspace(quota=100, test_quota=10)
    k, t = w.create_key(), w.create_key(environment="test")
    for _ in range(3):
        assert code_of(server, k["secret"]) == "valid"
    for _ in range(2):
        assert code_of(server, t["secret"]) == "valid"
    expect_quota(server, w, live=use(100, 3, 97))
    r = server.get("/v1/quota", key=w.root_key)
    q = expect_status(r, 200)
    for f in QUOTA_FIELDS:
        assert f in q, f"quota answer lacks {f!r}: {describe(r)}"
    assert q["workspace_id"] == w.id and q["window_days"] == 30, q
    assert q["live"] == {"limit": 100, "used": 3, "remaining": 97}, q
    assert q["test"] == {"limit": 10, "used": 2, "remaining": 8}, q
    days = q["days"]
    assert len(days) == 30, days
    today = server.now()
    assert [d["date"] for d in days] == [utc_date(today - (29 - i) * DAY) for i in range(30)], \
        f"days are not the 30 days of the window, oldest first: {[d['date'] for d in days]}"
    assert days[-1] == {"date": utc_date(today), "live": 3, "test": 2}, days[-1]
    assert all(d["live"] == 0 and d["test"] == 0 for d in days[:-1]), days


def test_who_may_read_the_quota(server, ws, ws2):
    set_quota(server, ws.id, quota=9)
    viewer = ws.new_session("viewer")
    for cred in (ws.root_key, ws.rw_key, ws.ro_key, viewer.token):
        q = expect_status(server.get("/v1/quota", key=cred), 200)
        assert q["workspace_id"] == ws.id and q["live"]["limit"] == 9, q
    perm = ws.create_key()
    assert_error(server.get("/v1/quota", key=perm["secret"]), 403, "insufficient_permissions")
    assert_error(server.get("/v1/quota"), 401, "missing_key")
    # another workspace's credentials see their own
    q = expect_status(server.get("/v1/quota", key=ws2.root_key), 200)
    assert q["workspace_id"] == ws2.id and q["live"]["limit"] is None, q
    r = server.get("/v1/quota", key=viewer.token, headers={"X-Latchkey-Workspace": ws2.id})
    assert_error(r, 404, "not_found")


# -- the rolling window, across days ----------------------------------------------------------

def test_a_days_checks_count_for_30_days(clock_server):
    srv = clock_server
    srv.set_clock(next_noon())
    d0 = srv.now()
    w = srv.create_workspace(quota=3)
    k = w.create_key()
    assert [code_of(srv, k["secret"]) for _ in range(3)] == ["valid"] * 3
    ra = assert_exceeded(srv, k["secret"])
    assert abs(ra - DAY // 2) <= 5, f"Retry-After {ra} at 12:00 UTC"

    srv.advance_clock(29 * DAY)  # the 30th day: still inside the window
    assert_exceeded(srv, k["secret"])
    q = expect_quota(srv, w, live=use(3, 3, 0))
    assert q["days"][0] == {"date": utc_date(d0), "live": 3, "test": 0}, q["days"][0]
    assert q["days"][-1]["date"] == utc_date(d0 + 29 * DAY), q["days"][-1]

    srv.advance_clock(DAY)  # the 31st day: day 0 no longer counts
    assert code_of(srv, k["secret"]) == "valid"
    q = expect_quota(srv, w, live=use(3, 1, 2))
    assert q["days"][0]["date"] == utc_date(d0 + DAY), q["days"][0]
    assert utc_date(d0) not in [d["date"] for d in q["days"]]


def test_the_window_rolls_day_by_day(clock_server):
    srv = clock_server
    srv.set_clock(next_noon())
    w = srv.create_workspace(quota=3)
    k = w.create_key()
    assert [code_of(srv, k["secret"]) for _ in range(2)] == ["valid"] * 2
    srv.advance_clock(DAY)
    assert code_of(srv, k["secret"]) == "valid"
    assert_exceeded(srv, k["secret"])
    srv.advance_clock(29 * DAY)  # day 0's two checks leave, day 1's one stays
    expect_quota(srv, w, live=use(3, 1, 2))
    assert [code_of(srv, k["secret"]) for _ in range(3)] == ["valid", "valid", "quota_exceeded"]


def test_a_new_day_does_not_reset_the_quota(clock_server):
    """Rolling, not monthly: crossing midnight frees nothing."""
    srv = clock_server
    srv.set_clock(next_noon())
    w = srv.create_workspace(quota=2)
    k = w.create_key()
    assert [code_of(srv, k["secret"]) for _ in range(2)] == ["valid"] * 2
    srv.advance_clock(DAY // 2 + 60)  # 00:01 the next day
    assert_exceeded(srv, k["secret"])
    srv.advance_clock(15 * DAY)
    assert_exceeded(srv, k["secret"])


def test_test_quota_rolls_too(clock_server):
    srv = clock_server
    srv.set_clock(next_noon())
    w = srv.create_workspace(quota=10)  # test quota 1
    t = w.create_key(environment="test")
    assert code_of(srv, t["secret"]) == "valid"
    assert_exceeded(srv, t["secret"])
    srv.advance_clock(29 * DAY)
    assert_exceeded(srv, t["secret"])
    srv.advance_clock(DAY)
    assert code_of(srv, t["secret"]) == "valid"


def test_quota_survives_a_clean_restart(clock_server):
    srv = clock_server
    srv.set_clock(next_noon())
    d0 = srv.now()
    w = srv.create_workspace(quota=4, test_quota=1)
    k, t = w.create_key(), w.create_key(environment="test")
    assert [code_of(srv, k["secret"]) for _ in range(2)] == ["valid"] * 2
    srv.advance_clock(5 * DAY)
    assert code_of(srv, k["secret"]) == "valid"
    assert code_of(srv, t["secret"]) == "valid"
    expect_quota(srv, w, live=use(4, 3, 1), test=use(1, 1, 0))
    srv.restart()  # SIGTERM, then start again on the same database and clock
    q = get_quota(srv, w)
    assert q["live"] == use(4, 3, 1), f"quota use lost in a clean restart: {q}"
    assert q["test"] == use(1, 1, 0), f"test quota use lost in a clean restart: {q}"
    by_date = {d["date"]: d for d in q["days"]}
    assert by_date[utc_date(d0)]["live"] == 2, q["days"]
    assert by_date[utc_date(d0 + 5 * DAY)] == {"date": utc_date(d0 + 5 * DAY), "live": 1,
                                               "test": 1}, q["days"]
    assert code_of(srv, k["secret"]) == "valid"
    assert_exceeded(srv, k["secret"])
    assert_exceeded(srv, t["secret"])
    srv.advance_clock(25 * DAY)  # day 0 leaves the window after the restart too
    expect_quota(srv, w, live=use(4, 2, 2))
