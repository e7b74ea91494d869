"""Usage per key (docs/http-api.md, "Limits and money" → "Usage").

Every check of a known key is counted per key, per UTC hour, by outcome code, and
written every second: these tests poll for up to 5 s before they conclude.
GET /v1/keys/{id}/usage?granularity=hour|day&from=&to= answers one entry per hour or
day of the range, oldest first.
"""

import time

import pytest

from conftest import DAY, next_noon, poll
from lkhelpers import assert_error, describe, expect_status, parse_time

HOUR = 3600
USAGE_FIELDS = ("key_id", "granularity", "from", "to", "data", "totals")


def get_usage(srv, w, key_id, key=None, **params):
    r = srv.get(f"/v1/keys/{key_id}/usage", key=key or w.root_key, params=params)
    doc = expect_status(r, 200)
    for f in USAGE_FIELDS:
        assert f in doc, f"usage answer lacks {f!r}: {describe(r)}"
    assert doc["key_id"] == key_id, describe(r)
    for e in doc["data"]:
        assert set(e) >= {"start", "total", "outcomes"}, e
        assert e["total"] == sum(e["outcomes"].values()), f"total is not the sum: {e}"
        assert all(n > 0 for n in e["outcomes"].values()), \
            f"outcomes lists only codes that occurred: {e}"
    return doc


def totals_of(doc):
    """The range's counts by outcome from `totals` (an outcome map, possibly next to
    a `total`, or under `outcomes`)."""
    t = doc["totals"]
    assert isinstance(t, dict), doc
    if isinstance(t.get("outcomes"), dict):
        return t["outcomes"]
    return {k: v for k, v in t.items() if k != "total"}


def merged(doc):
    out = {}
    for e in doc["data"]:
        for code, n in e["outcomes"].items():
            out[code] = out.get(code, 0) + n
    return out


def expect_usage(srv, w, key_id, want, **params):
    """Poll until the range's outcomes add up to `want`; returns the answer."""
    def match():
        doc = get_usage(srv, w, key_id, **params)
        assert merged(doc) == want, f"outcomes {merged(doc)}, expected {want}"
        return doc
    return poll(match, what=f"usage {want}")


def starts(doc):
    return [int(parse_time(e["start"])) for e in doc["data"]]


def code(srv, secret, **body):
    return expect_status(srv.verify({"key": secret, **body}), 200)["code"]


# -- counting ---------------------------------------------------------------------------------

def test_counts_every_outcome_by_hour(server, ws):
    k = ws.create_key(permissions=["a:read"])
    for _ in range(3):
        assert code(server, k["secret"]) == "valid"
    expect_status(server.auth_context(k["secret"]), 200)
    for _ in range(2):
        assert code(server, k["secret"], permissions="a:write") == "insufficient_permissions"
    assert code(server, k["secret"], environment="test") == "environment_mismatch"
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    assert code(server, k["secret"]) == "inactive_key"
    assert_error(server.auth_context(k["secret"]), 403, "inactive_key")
    want = {"valid": 4, "insufficient_permissions": 2, "environment_mismatch": 1,
            "inactive_key": 2}
    doc = expect_usage(server, ws, k["id"], want)

    assert doc["granularity"] == "hour", doc
    s = starts(doc)
    now = server.now()
    assert len(s) in (24, 25), f"{len(s)} entries for the last 24 hours"
    assert all(b - a == HOUR for a, b in zip(s, s[1:])), f"not hourly, oldest first: {s}"
    assert s[-1] == int(now) // HOUR * HOUR, f"the last entry is not this hour: {s[-1]}"
    busy = [i for i, e in enumerate(doc["data"]) if e["total"]]
    assert busy and busy[0] >= len(s) - 2, f"counts outside the last hour or two: {busy}"
    assert totals_of(doc) == want, doc["totals"]


def test_limit_and_money_refusals_are_counted(server, ws):
    k = ws.create_key(rate_limit={"limit": 1, "window_s": 60})
    assert code(server, k["secret"]) == "valid"
    assert code(server, k["secret"]) == "rate_limited"
    assert code(server, k["secret"]) == "rate_limited"
    capped = ws.create_key(daily_spend_cap=1)
    assert code(server, capped["secret"], cost=5) == "spend_cap_exceeded"
    assert code(server, capped["secret"], cost=1) == "insufficient_credits"
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    assert code(server, k["secret"]) == "revoked_key"
    expect_usage(server, ws, k["id"], {"valid": 1, "rate_limited": 2, "revoked_key": 1})
    expect_usage(server, ws, capped["id"], {"spend_cap_exceeded": 1, "insufficient_credits": 1})


def test_keys_are_counted_apart(server, ws):
    a, b = ws.create_key(), ws.create_key()
    for _ in range(2):
        code(server, a["secret"])
    code(server, b["secret"])
    expect_usage(server, ws, a["id"], {"valid": 2})
    expect_usage(server, ws, b["id"], {"valid": 1})


def test_an_unused_key_has_empty_usage(server, ws):
    k = ws.create_key()
    doc = get_usage(server, ws, k["id"])
    assert all(e["total"] == 0 and e["outcomes"] == {} for e in doc["data"]), doc
    assert totals_of(doc) == {}, doc["totals"]


def test_by_day(server, ws):
    k = ws.create_key()
    for _ in range(3):
        code(server, k["secret"])
    doc = expect_usage(server, ws, k["id"], {"valid": 3}, granularity="day")
    assert doc["granularity"] == "day", doc
    s = starts(doc)
    assert len(s) in (30, 31), f"{len(s)} entries for the last 30 days"
    assert all(b - a == DAY for a, b in zip(s, s[1:])), f"not daily, oldest first: {s}"
    assert all(x % DAY == 0 for x in s), "days start at 00:00 UTC"
    assert s[-1] == int(server.now()) // DAY * DAY, s[-1]
    assert doc["data"][-1]["outcomes"] == {"valid": 3}, doc["data"][-1]


def test_explicit_range(server, ws):
    k = ws.create_key()
    code(server, k["secret"])
    expect_usage(server, ws, k["id"], {"valid": 1})
    hour = int(time.time()) // HOUR * HOUR
    from_rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour - 2 * HOUR))
    doc = get_usage(server, ws, k["id"], **{"from": from_rfc, "to": int(time.time())})
    assert starts(doc) == [hour - 2 * HOUR, hour - HOUR, hour], starts(doc)
    assert doc["data"][-1]["outcomes"] == {"valid": 1}, doc
    doc = get_usage(server, ws, k["id"], **{"from": hour - HOUR, "to": int(time.time())})
    assert starts(doc) == [hour - HOUR, hour], starts(doc)
    # a range in the past holds nothing of today
    doc = get_usage(server, ws, k["id"], **{"from": hour - 5 * HOUR, "to": hour - 3 * HOUR})
    assert all(x < hour - 2 * HOUR for x in starts(doc)) and merged(doc) == {}, doc


def test_wide_ranges_within_the_limits(server, ws):
    k = ws.create_key()
    now = int(time.time())
    doc = get_usage(server, ws, k["id"], **{"from": now - 720 * HOUR, "to": now})
    assert 720 <= len(doc["data"]) <= 721, len(doc["data"])
    doc = get_usage(server, ws, k["id"], granularity="day", **{"from": now - 89 * DAY, "to": now})
    assert 89 <= len(doc["data"]) <= 90, len(doc["data"])


@pytest.mark.parametrize("params,field", [
    ({"granularity": "minute"}, "granularity"),
    ({"granularity": ""}, "granularity"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-13-45T00:00:00Z"}, "from"),
    ({"to": "soon"}, "to"),
    ({"to": "12abc"}, "to"),
])
def test_bad_parameters_are_400(server, ws, params, field):
    k = ws.create_key()
    r = server.get(f"/v1/keys/{k['id']}/usage", key=ws.root_key, params=params)
    assert_error(r, 400, "invalid_request", field=field)


@pytest.mark.parametrize("granularity,span", [
    ("hour", 800 * HOUR),
    ("hour", 100 * DAY),
    ("day", 120 * DAY),
    ("day", 1000 * DAY),
])
def test_ranges_over_the_limit_are_400(server, ws, granularity, span):
    k = ws.create_key()
    now = int(time.time())
    r = server.get(f"/v1/keys/{k['id']}/usage", key=ws.root_key,
                   params={"granularity": granularity, "from": now - span, "to": now})
    err = assert_error(r, 400, "invalid_request")
    assert err.get("field") in ("from", "to"), describe(r)


def test_from_after_to_is_400(server, ws):
    k = ws.create_key()
    now = int(time.time())
    r = server.get(f"/v1/keys/{k['id']}/usage", key=ws.root_key,
                   params={"from": now, "to": now - 5 * HOUR})
    err = assert_error(r, 400, "invalid_request")
    assert err.get("field") in ("from", "to"), describe(r)


# -- who may read it ---------------------------------------------------------------------------

def test_who_may_read_usage(server, ws):
    k = ws.create_key()
    for cred in (ws.root_key, ws.rw_key, ws.ro_key, ws.new_session("viewer").token):
        get_usage(server, ws, k["id"], key=cred)
    assert_error(server.get(f"/v1/keys/{k['id']}/usage", key=k["secret"]), 403,
                 "insufficient_permissions")
    assert_error(server.get(f"/v1/keys/{k['id']}/usage"), 401, "missing_key")


def test_another_workspaces_key_is_404(server, ws, ws2):
    k = ws.create_key()
    code(server, k["secret"])
    for cred in (ws2.root_key, ws2.ro_key):
        assert_error(server.get(f"/v1/keys/{k['id']}/usage", key=cred), 404, "not_found")
    assert_error(server.get("/v1/keys/key_doesnotexist00/usage", key=ws.root_key), 404,
                 "not_found")


# -- last use ----------------------------------------------------------------------------------

def test_last_used_at_is_set_by_a_check(server, ws):
    k = ws.create_key()
    assert k["last_used_at"] is None, k
    assert ws.get_key(k["id"])["last_used_at"] is None
    t0 = time.time()
    assert code(server, k["secret"]) == "valid"
    got = poll(lambda: ws.get_key(k["id"])["last_used_at"], what="last_used_at after a check")
    assert abs(parse_time(got) - t0) < 60, got
    listed = {x["id"]: x for x in ws.list_keys(limit=100)["data"]}
    assert listed[k["id"]]["last_used_at"] is not None, listed[k["id"]]


# -- restarts and the clock --------------------------------------------------------------------

def test_usage_survives_restarts(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(3):
        assert code(srv, k["secret"]) == "valid"
    assert code(srv, k["secret"], environment="test") == "environment_mismatch"
    srv.restart()  # at once: a clean stop writes what it has not written yet
    want = {"valid": 3, "environment_mismatch": 1}
    expect_usage(srv, w, k["id"], want)
    assert w.get_key(k["id"])["last_used_at"] is not None
    code(srv, k["secret"])
    expect_usage(srv, w, k["id"], {"valid": 4, "environment_mismatch": 1})
    srv.kill9()  # written within a second, so kept across a crash too
    srv.start()
    expect_usage(srv, w, k["id"], {"valid": 4, "environment_mismatch": 1})


def test_hours_and_days_follow_the_clock(clock_server):
    srv = clock_server
    noon = next_noon()
    # a minute in: the offset is whole seconds, so "noon" itself could land at 11:59:59
    srv.set_clock(noon + 60)
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(2):
        code(srv, k["secret"])
    srv.advance_clock(2 * HOUR)  # 14:00
    code(srv, k["secret"])
    doc = expect_usage(srv, w, k["id"], {"valid": 3})
    by_start = {int(parse_time(e["start"])): e["total"] for e in doc["data"]}
    assert by_start.get(noon) == 2 and by_start.get(noon + HOUR) == 0 and \
        by_start.get(noon + 2 * HOUR) == 1, by_start

    srv.advance_clock(DAY)  # the next day, 14:00
    for _ in range(4):
        code(srv, k["secret"])
    doc = expect_usage(srv, w, k["id"], {"valid": 7}, granularity="day")
    by_day = {int(parse_time(e["start"])): e["total"] for e in doc["data"]}
    day0 = noon - noon % DAY
    assert by_day.get(day0) == 3 and by_day.get(day0 + DAY) == 4, by_day
    # the last 24 hours by hour no longer hold the first day's noon
    doc = get_usage(srv, w, k["id"])
    assert starts(doc)[-1] == noon + DAY + 2 * HOUR, doc["data"][-1]
    assert noon not in starts(doc), starts(doc)
    assert merged(doc).get("valid") in (4, 5), merged(doc)  # 14:00 yesterday is the edge


def test_usage_older_than_90_days_is_dropped(clock_server):
    """Usage is kept 90 days: once the clock passes that, the old hours are gone
    from the store, while newer ones stay."""
    srv = clock_server
    noon = next_noon()
    srv.set_clock(noon + 60)
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(3):
        code(srv, k["secret"])
    old = {"granularity": "day", "from": noon - DAY, "to": noon + DAY}
    expect_usage(srv, w, k["id"], {"valid": 3}, **old)
    srv.advance_clock(91 * DAY)
    code(srv, k["secret"])  # a new check, so the recorder writes (and prunes) again
    expect_usage(srv, w, k["id"], {"valid": 1}, granularity="day")
    poll(lambda: get_usage(srv, w, k["id"], **old)["totals"] == {},
         what="usage of 91 days ago dropped")
