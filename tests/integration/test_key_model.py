"""The key model beyond one limit: external_id and identities, a key's own
credits with refill, and several named rate limits (docs/http-api.md)."""

import pytest

from lkhelpers import assert_error, describe, expect_status


def refused_for(r, field):
    """A 400 about `field` itself: not the refusal of a field the server does not know."""
    err = assert_error(r, 400, "invalid_request")
    assert f"unknown field '{field}'" not in err["message"], err
    assert str(err.get("field", "")).startswith(field), err
    return err


def create(ws, **body):
    return ws.create_key(**body)


def patch(ws, key_id, body):
    return ws.server.patch(f"/v1/keys/{key_id}", key=ws.root_key, json=body)


# -- external_id and identities --------------------------------------------------------


def test_external_id_links_an_identity_made_on_first_use(ws):
    a = create(ws, external_id="user_123")
    assert a["external_id"] == "user_123"
    assert a["identity_id"].startswith("idn_"), a
    b = create(ws, external_id="user_123")
    assert b["identity_id"] == a["identity_id"], "one identity per external_id"
    c = create(ws, external_id="user_456")
    assert c["identity_id"] != a["identity_id"]
    plain = create(ws)
    assert plain["external_id"] is None and plain["identity_id"] is None
    got = ws.get_key(a["id"])
    assert (got["external_id"], got["identity_id"]) == ("user_123", a["identity_id"])


def test_list_filters_by_external_id(ws):
    a = create(ws, external_id="org:acme")
    b = create(ws, external_id="org:acme")
    create(ws, external_id="org:other")
    create(ws)
    ids = [k["id"] for k in ws.list_keys(external_id="org:acme")["data"]]
    assert ids == [b["id"], a["id"]], ids
    assert ws.list_keys(external_id="org:nobody")["data"] == []


def test_external_id_is_per_workspace(ws, ws2):
    a = create(ws, external_id="shared-name")
    b = create(ws2, external_id="shared-name")
    assert a["identity_id"] != b["identity_id"]
    assert [k["id"] for k in ws2.list_keys(external_id="shared-name")["data"]] == [b["id"]]


def test_patch_sets_changes_and_clears_external_id(ws):
    k = create(ws)
    doc = expect_status(patch(ws, k["id"], {"external_id": "cust-9"}), 200)
    assert doc["external_id"] == "cust-9" and doc["identity_id"].startswith("idn_")
    first = doc["identity_id"]
    doc = expect_status(patch(ws, k["id"], {"external_id": "cust-10"}), 200)
    assert doc["external_id"] == "cust-10" and doc["identity_id"] != first
    doc = expect_status(patch(ws, k["id"], {"external_id": None}), 200)
    assert doc["external_id"] is None and doc["identity_id"] is None
    assert ws.list_keys(external_id="cust-10")["data"] == []
    # the identity stays: naming it again links the same one
    doc = expect_status(patch(ws, k["id"], {"external_id": "cust-9"}), 200)
    assert doc["identity_id"] == first


@pytest.mark.parametrize("bad", ["x" * 256, "tab\there", "del\u007f", "nl\n", 12, ["a"], {"a": 1}])
def test_bad_external_id_is_refused(ws, bad):
    r = ws.server.post("/v1/keys", key=ws.root_key, json={"name": "n", "external_id": bad})
    refused_for(r, "external_id")


def test_external_id_takes_utf8_and_its_longest(ws):
    long_id = "é" * 127 + "x"  # 255 bytes
    k = create(ws, external_id=long_id)
    assert ws.get_key(k["id"])["external_id"] == long_id
    k = create(ws, external_id="ユーザー 1")
    assert [x["id"] for x in ws.list_keys(external_id="ユーザー 1")["data"]] == [k["id"]]


def test_bad_external_id_filter_is_refused(ws):
    r = ws.server.get("/v1/keys", key=ws.root_key, params={"external_id": "x" * 300})
    assert_error(r, 400, "invalid_request")


def test_identity_survives_a_restart(fresh_server):
    srv = fresh_server
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "n", "external_id": "keep-me"})
    k = expect_status(r, 201)
    srv.restart()
    got = expect_status(srv.get(f"/v1/keys/{k['id']}", key=srv.root_key), 200)
    assert (got["external_id"], got["identity_id"]) == ("keep-me", k["identity_id"]), describe(r)
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "n2", "external_id": "keep-me"})
    assert expect_status(r, 201)["identity_id"] == k["identity_id"]


# -- a key's own credits ----------------------------------------------------------------


def check(srv, secret, cost=1):
    r = srv.verify({"key": secret, "cost": cost})
    return expect_status(r, 200)


def top_up(srv, ws, amount):
    expect_status(srv.post("/v1/credits", key=ws.root_key, json={"amount": amount}), 201)


def test_own_credits_are_spent_and_refuse_when_too_few(server, ws):
    k = create(ws, credits={"remaining": 3})
    assert k["credits"] == {"remaining": 3, "refill": None}, k
    seen = [check(server, k["secret"]) for _ in range(3)]
    assert [d["valid"] for d in seen] == [True] * 3, seen
    assert [d["credits"]["remaining"] for d in seen] == [2, 1, 0], seen
    d = check(server, k["secret"])
    assert (d["valid"], d["code"]) == (False, "insufficient_credits"), d
    assert d["credits"] == {"remaining": 0, "exceeded": True}, d
    assert ws.get_key(k["id"])["credits"]["remaining"] == 0
    # a cost the credits cannot cover takes none of them
    k2 = create(ws, credits={"remaining": 5})
    d = check(server, k2["secret"], cost=6)
    assert d["code"] == "insufficient_credits" and d["credits"]["remaining"] == 5, d
    d = check(server, k2["secret"], cost=5)
    assert d["valid"] and d["credits"]["remaining"] == 0, d


def test_checks_without_a_cost_spend_no_own_credits(server, ws):
    k = create(ws, credits={"remaining": 0})
    d = check(server, k["secret"], cost=0)
    assert d["valid"] is True and "credits" not in d, d
    d = expect_status(server.verify({"key": k["secret"]}), 200)
    assert d["valid"] is True, d


def test_keys_without_own_credits_are_unchanged(server, ws):
    plain = create(ws)
    assert plain["credits"] is None
    d = check(server, plain["secret"])
    # a cost still needs the workspace's balance, which this one never had
    assert d["code"] == "insufficient_credits" and "credits" not in d, d


def test_own_credits_and_the_workspace_balance_both_pay(server, ws):
    top_up(server, ws, 2)
    k = create(ws, credits={"remaining": 10})
    d = check(server, k["secret"], cost=2)
    assert d["valid"] and d["credits"]["remaining"] == 8 and d["remaining_credits"] == 0, d
    # the workspace is empty now: its refusal leaves the key's credits as they were
    d = check(server, k["secret"], cost=1)
    assert d["code"] == "insufficient_credits", d
    assert d["credits"] == {"remaining": 8, "exceeded": False}, d
    assert ws.get_key(k["id"])["credits"]["remaining"] == 8


def test_patch_replaces_and_removes_own_credits(server, ws):
    k = create(ws, credits={"remaining": 2})
    check(server, k["secret"])
    doc = expect_status(patch(ws, k["id"], {"credits": {"remaining": 10}}), 200)
    assert doc["credits"]["remaining"] == 10, doc
    assert check(server, k["secret"])["credits"]["remaining"] == 9
    doc = expect_status(patch(ws, k["id"], {"name": "renamed"}), 200)
    assert doc["credits"]["remaining"] == 9, "a change of something else keeps them"
    doc = expect_status(patch(ws, k["id"], {"credits": None}), 200)
    assert doc["credits"] is None
    d = check(server, k["secret"])
    assert "credits" not in d and d["code"] == "insufficient_credits", d  # the workspace's


@pytest.mark.parametrize("body", [
    {"remaining": -1}, {"remaining": "5"}, {}, {"remaining": 1, "extra": 1},
    {"remaining": 1, "refill": {"interval": "weekly", "amount": 1}},
    {"remaining": 1, "refill": {"interval": "daily"}},
    {"remaining": 1, "refill": {"interval": "daily", "amount": 0}},
    {"remaining": 1, "refill": {"interval": "daily", "amount": 1, "refill_day": 3}},
    {"remaining": 1, "refill": {"interval": "monthly", "amount": 1, "refill_day": 32}},
    [1], 5,
])
def test_bad_credits_are_refused(ws, body):
    r = ws.server.post("/v1/keys", key=ws.root_key, json={"name": "n", "credits": body})
    refused_for(r, "credits")


def test_daily_refill_happens_once_after_the_boundary(clock_server):
    srv = clock_server
    day = 86400
    srv.set_clock((int(srv.now()) // day + 1) * day + 3600)  # 01:00 UTC of a day
    r = srv.post("/v1/keys", key=srv.root_key, json={
        "name": "n", "credits": {"remaining": 2, "refill": {"interval": "daily", "amount": 5}}})
    k = expect_status(r, 201)
    assert k["credits"]["refill"] == {"interval": "daily", "amount": 5}, k
    assert check(srv, k["secret"], cost=2)["credits"]["remaining"] == 0
    srv.advance_clock(day - 3600 - 60)  # 23:59 the same day: no refill yet
    assert check(srv, k["secret"])["code"] == "insufficient_credits"
    srv.advance_clock(120)  # 00:01 the next day
    got = expect_status(srv.get(f"/v1/keys/{k['id']}", key=srv.root_key), 200)
    assert got["credits"]["remaining"] == 5, "a due refill shows before any check"
    assert check(srv, k["secret"])["credits"]["remaining"] == 4
    assert check(srv, k["secret"])["credits"]["remaining"] == 3, "refilled once, not per check"
    srv.restart()
    assert check(srv, k["secret"])["credits"]["remaining"] == 2, "not again after a restart"
    srv.advance_clock(3 * day)  # days without checks refill once, to the amount
    assert check(srv, k["secret"])["credits"]["remaining"] == 4


def test_monthly_refill_on_a_day_the_month_lacks(clock_server):
    srv = clock_server
    srv.set_clock(1706572800 + 3600)  # 2024-01-30T01:00Z
    r = srv.post("/v1/keys", key=srv.root_key, json={
        "name": "n",
        "credits": {"remaining": 1, "refill": {"interval": "monthly", "amount": 3, "refill_day": 31}}})
    k = expect_status(r, 201)
    assert k["credits"]["refill"] == {"interval": "monthly", "amount": 3, "refill_day": 31}
    assert check(srv, k["secret"])["credits"]["remaining"] == 0
    srv.set_clock(1706659200 + 60)  # 2024-01-31T00:01Z: January's refill
    assert check(srv, k["secret"])["credits"]["remaining"] == 2
    srv.set_clock(1709164800 - 60)  # 2024-02-28T23:59Z: not yet
    assert check(srv, k["secret"])["credits"]["remaining"] == 1
    srv.set_clock(1709164800 + 60)  # 2024-02-29T00:01Z: February's last day stands in
    assert check(srv, k["secret"])["credits"]["remaining"] == 2


def test_own_credits_are_exact_across_kill_9(fresh_server):
    srv = fresh_server
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "n", "credits": {"remaining": 40}})
    k = expect_status(r, 201)
    spent = 0
    for _ in range(3):
        for _ in range(5):
            d = check(srv, k["secret"], cost=2)
            assert d["valid"], d
            spent += 2
            assert d["credits"]["remaining"] == 40 - spent
        srv.kill9()
        srv.start()
    got = expect_status(srv.get(f"/v1/keys/{k['id']}", key=srv.root_key), 200)
    assert got["credits"]["remaining"] == 40 - spent == 10
    valid = sum(check(srv, k["secret"], cost=2)["valid"] for _ in range(8))
    assert valid == 5, "exactly what was left, no more"


def test_concurrent_checks_never_overspend(server, ws):
    from concurrent.futures import ThreadPoolExecutor

    k = create(ws, credits={"remaining": 25})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: check(server, k["secret"]), range(60)))
    assert sum(d["valid"] for d in results) == 25
    assert ws.get_key(k["id"])["credits"]["remaining"] == 0


# -- named rate limits -----------------------------------------------------------------


def verify(srv, secret, **body):
    return expect_status(srv.verify({"key": secret, **body}), 200)


def limits_of(doc):
    return {x["name"]: (x["limit"], x["remaining"]) for x in doc.get("ratelimits", [])}


def test_named_limits_on_create_get_and_patch(ws):
    k = create(ws, rate_limits=[
        {"name": "default", "limit": 100, "window_ms": 60000},
        {"name": "tokens", "limit": 5, "window_ms": 1000, "auto_apply": True},
        {"name": "search", "limit": 2, "window_ms": 60000}])
    assert k["rate_limit"] == {"limit": 100, "window_s": 60}, "default is the rate_limit"
    assert k["rate_limits"] == [
        {"name": "default", "limit": 100, "window_ms": 60000, "auto_apply": True},
        {"name": "tokens", "limit": 5, "window_ms": 1000, "auto_apply": True},
        {"name": "search", "limit": 2, "window_ms": 60000, "auto_apply": False}], k
    assert ws.get_key(k["id"])["rate_limits"] == k["rate_limits"]
    # rate_limit alone changes the default one and keeps the others
    doc = expect_status(patch(ws, k["id"], {"rate_limit": {"limit": 7, "window_s": 10}}), 200)
    assert [x["name"] for x in doc["rate_limits"]] == ["default", "tokens", "search"]
    assert doc["rate_limits"][0]["limit"] == 7
    # rate_limits replaces the whole set, default included
    doc = expect_status(patch(ws, k["id"], {"rate_limits": [
        {"name": "tokens", "limit": 9, "window_ms": 2000}]}), 200)
    assert doc["rate_limit"] is None
    assert doc["rate_limits"] == [{"name": "tokens", "limit": 9, "window_ms": 2000,
                                   "auto_apply": False}], doc
    doc = expect_status(patch(ws, k["id"], {"rate_limits": []}), 200)
    assert doc["rate_limits"] == [] and doc["rate_limit"] is None
    assert create(ws)["rate_limits"] == []


@pytest.mark.parametrize("limits", [
    [{"name": "a", "limit": 1, "window_ms": 999}],
    [{"name": "a", "limit": 0, "window_ms": 1000}],
    [{"name": "a b", "limit": 1, "window_ms": 1000}],
    [{"name": "x" * 65, "limit": 1, "window_ms": 1000}],
    [{"name": "a", "limit": 1, "window_ms": 1000}, {"name": "a", "limit": 2, "window_ms": 1000}],
    [{"name": f"n{i}", "limit": 1, "window_ms": 1000} for i in range(9)],
    [{"name": "default", "limit": 1, "window_ms": 1500}],
    [{"name": "default", "limit": 1, "window_ms": 1000, "auto_apply": False}],
    [{"limit": 1, "window_ms": 1000}],
    [{"name": "a", "limit": 1, "window_ms": 1000, "other": 1}],
    {"name": "a"},
])
def test_bad_named_limits_are_refused(ws, limits):
    r = ws.server.post("/v1/keys", key=ws.root_key, json={"name": "n", "rate_limits": limits})
    refused_for(r, "rate_limits")


def test_rate_limit_and_rate_limits_together_are_refused(ws):
    r = ws.server.post("/v1/keys", key=ws.root_key, json={
        "name": "n", "rate_limit": {"limit": 1, "window_s": 1},
        "rate_limits": [{"name": "a", "limit": 1, "window_ms": 1000}]})
    refused_for(r, "rate_limits")


def test_auto_apply_limits_apply_to_every_check(server, ws):
    k = create(ws, rate_limits=[{"name": "burst", "limit": 2, "window_ms": 60000,
                                 "auto_apply": True}])
    a, b, c = (verify(server, k["secret"]) for _ in range(3))
    assert a["valid"] and b["valid"] and not c["valid"], (a, b, c)
    assert c["code"] == "rate_limited" and c["rate_limited"] == "burst", c
    assert limits_of(a) == {"burst": (2, 1)} and limits_of(c) == {"burst": (2, 0)}
    assert a["rate_limited"] is None
    now_ms = server.now() * 1000
    assert now_ms < a["ratelimits"][0]["reset_at"] <= now_ms + 61000


def test_named_limits_apply_when_asked_with_their_cost(server, ws):
    k = create(ws, rate_limits=[{"name": "tokens", "limit": 10, "window_ms": 60000},
                                {"name": "calls", "limit": 3, "window_ms": 60000,
                                 "auto_apply": True}])
    d = verify(server, k["secret"])
    assert limits_of(d) == {"calls": (3, 2)}, "tokens applies only when named"
    d = verify(server, k["secret"], ratelimits=[{"name": "tokens", "cost": 7}])
    assert d["valid"] and limits_of(d) == {"tokens": (10, 3), "calls": (3, 1)}, d
    d = verify(server, k["secret"], ratelimits=[{"name": "tokens", "cost": 4}])
    assert (d["valid"], d["rate_limited"]) == (False, "tokens"), d
    # refused: nothing counted, not even the limit that had room
    assert limits_of(d) == {"tokens": (10, 3), "calls": (3, 1)}, d
    d = verify(server, k["secret"], ratelimits=[{"name": "tokens", "cost": 3},
                                                {"name": "calls", "cost": 0}])
    assert d["valid"] and limits_of(d) == {"tokens": (10, 0), "calls": (3, 1)}, d


def test_default_limit_is_listed_beside_the_named_ones(server, ws):
    k = create(ws, rate_limits=[{"name": "default", "limit": 1, "window_ms": 60000},
                                {"name": "other", "limit": 5, "window_ms": 60000,
                                 "auto_apply": True}])
    d = verify(server, k["secret"])
    assert limits_of(d) == {"default": (1, 0), "other": (5, 4)}, d
    assert d["ratelimit"]["limit"] == 1, "the single-limit field is as before"
    d = verify(server, k["secret"])
    assert (d["code"], d["rate_limited"]) == ("rate_limited", "default"), d


def test_unknown_limit_name_is_a_400(server, ws):
    k = create(ws, rate_limits=[{"name": "a", "limit": 5, "window_ms": 1000}])
    r = server.verify({"key": k["secret"], "ratelimits": [{"name": "b"}]})
    err = assert_error(r, 400, "invalid_request")
    assert "b" in err["message"], err
    plain = create(ws)
    assert_error(server.verify({"key": plain["secret"], "ratelimits": [{"name": "a"}]}),
                 400, "invalid_request")
    # the key's rate_limit answers to "default"
    lim = create(ws, rate_limit={"limit": 5, "window_s": 10})
    d = verify(server, lim["secret"], ratelimits=[{"name": "default"}])
    assert d["valid"], d


@pytest.mark.parametrize("body", [
    {"ratelimits": {"name": "a"}}, {"ratelimits": [{"name": "a", "cost": -1}]},
    {"ratelimits": [{"name": "a"}, {"name": "a"}]}, {"ratelimits": [{}]},
    {"ratelimits": [{"name": "a", "x": 1}]}, {"ratelimits": [{"name": "default", "cost": 2}]},
    {"ratelimits": [{"name": f"n{i}"} for i in range(9)]},
])
def test_bad_verify_ratelimits_are_refused(server, ws, body):
    k = create(ws)
    r = server.verify({"key": k["secret"], **body})
    refused_for(r, "ratelimits")


def test_named_window_ends_and_opens_again(server, ws):
    import time
    k = create(ws, rate_limits=[{"name": "s", "limit": 1, "window_ms": 1000, "auto_apply": True}])
    assert verify(server, k["secret"])["valid"]
    deadline = time.time() + 10
    while time.time() < deadline:
        d = verify(server, k["secret"])
        if d["valid"]:
            break
        assert d["rate_limited"] == "s"
        time.sleep(0.2)
    else:
        pytest.fail("the one-second window never opened again")


def test_the_largest_answer_fits(server, ws):
    """Eight limits with the longest names, own credits, the longest name and 64
    permissions: the answer is whole JSON, refused by the last limit."""
    names = [("n%d" % i) + "x" * (63 - len(str(i))) for i in range(7)]
    assert all(len(n) == 64 for n in names)
    limits = [{"name": "default", "limit": 10**9, "window_ms": 86400000}]
    limits += [{"name": n, "limit": 10**9, "window_ms": 86400000, "auto_apply": True}
               for n in names[:-1]]
    limits += [{"name": names[-1], "limit": 1, "window_ms": 86400000, "auto_apply": True}]
    perms = ["p%02d:%s" % (i, "a" * 40) for i in range(64)]
    top_up(server, ws, 10)
    k = create(ws, name="é" * 100, permissions=perms, rate_limits=limits,
               credits={"remaining": 10**15})
    assert verify(server, k["secret"], cost=1)["valid"]
    d = verify(server, k["secret"], cost=1)
    assert (d["code"], d["rate_limited"]) == ("rate_limited", names[-1]), d
    assert len(d["ratelimits"]) == 8 and d["credits"]["remaining"] == 10**15 - 1, d


def test_a_copy_keeps_identities_and_what_own_credits_have_left(tmp_path, fresh_server):
    from conftest import _finish, _live_servers
    from test_migrate import migrate_ok, serve_on

    srv = fresh_server
    r = srv.post("/v1/keys", key=srv.root_key, json={
        "name": "n", "external_id": "cust-7", "credits": {"remaining": 10},
        "rate_limits": [{"name": "t", "limit": 9, "window_ms": 60000}]})
    k = expect_status(r, 201)
    for _ in range(3):
        assert check(srv, k["secret"])["valid"]
    assert srv.stop() == 0
    to_url = f"sqlite:{tmp_path / 'copy.db'}"
    migrate_ok(srv.db_url, to_url)
    copy = serve_on(tmp_path, "copy", to_url)
    copy.root_key = srv.root_key
    copy.start()
    _live_servers.append(copy)
    try:
        got = expect_status(copy.get(f"/v1/keys/{k['id']}", key=srv.root_key), 200)
        assert got["credits"]["remaining"] == 7, got
        assert (got["external_id"], got["identity_id"]) == ("cust-7", k["identity_id"])
        assert [x["name"] for x in got["rate_limits"]] == ["t"]
        assert [x["id"] for x in expect_status(copy.get(
            "/v1/keys", key=srv.root_key, params={"external_id": "cust-7"}), 200)["data"]] == [k["id"]]
        assert check(copy, k["secret"])["credits"]["remaining"] == 6
    finally:
        _finish(copy)
    srv.start()


def spend_named(srv, secret, n):
    for i in range(n):
        d = verify(srv, secret, ratelimits=[{"name": "hourly", "cost": 1}])
        assert d["valid"] and limits_of(d)["hourly"] == (n, n - 1 - i), d


def still_refused(srv, secret, n):
    d = verify(srv, secret, ratelimits=[{"name": "hourly", "cost": 1}])
    assert (d["valid"], d["rate_limited"]) == (False, "hourly"), d
    assert limits_of(d)["hourly"] == (n, 0), d
    d = verify(srv, secret)
    assert d["valid"] and limits_of(d) == {"burst": (1000, 996)}, "the other limit kept its count"


@pytest.mark.parametrize("stop", ["kill9", "clean"])
def test_named_window_survives_a_restart(fresh_server, stop):
    srv = fresh_server
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "n", "rate_limits": [
        {"name": "hourly", "limit": 3, "window_ms": 3600000},
        {"name": "burst", "limit": 1000, "window_ms": 3600000, "auto_apply": True}]})
    k = expect_status(r, 201)
    plain = expect_status(srv.post("/v1/keys", key=srv.root_key, json={"name": "p"}), 201)
    spend_named(srv, k["secret"], 3)
    assert verify(srv, plain["secret"])["valid"]
    if stop == "kill9":
        srv.kill9()
        srv.start()
    else:
        srv.restart()
    assert srv.stderr_text().count("starts afresh") == 1, "the counter file was read back"
    still_refused(srv, k["secret"], 3)
    assert verify(srv, plain["secret"])["valid"], "a key without named limits is as before"
