"""Costs, daily spend caps and credits (docs/http-api.md, "Limits and money" →
"Costs, spend caps and credits").

A /v1/verify body's `cost` is spent from the workspace's balance when every check
passes; a refused check never spends. Credits are money: never overspent, not under
64 clients at once, not across kill -9; `balance + spent = topped_up` always.
/v1/verify answers these refusals with 200 and the code (`insufficient_credits`,
`spend_cap_exceeded`) and `valid: false`.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import DAY, in_parallel, next_noon, poll
from lkhelpers import (HTTP_TIMEOUT, assert_error, contains_value, describe, expect_status,
                       make_secret, parse_time)

CREDITS_FIELDS = ("workspace_id", "balance", "topped_up", "spent", "ledger", "next_cursor")
ENTRY_FIELDS = ("id", "kind", "amount", "note", "actor", "created_at")


def get_credits(srv, w, key=None, **params):
    r = srv.get("/v1/credits", key=key or w.root_key, params=params)
    doc = expect_status(r, 200)
    for f in CREDITS_FIELDS:
        assert f in doc, f"credits answer lacks {f!r}: {describe(r)}"
    assert doc["balance"] + doc["spent"] == doc["topped_up"], \
        f"balance + spent != topped_up: {describe(r)}"
    return doc


def top_up(srv, w, amount, key=None, note=None, headers=None):
    body = {"amount": amount}
    if note is not None:
        body["note"] = note
    r = srv.post("/v1/credits", key=key or w.root_key, json=body, headers=headers)
    return expect_status(r, 201)


def spend(srv, secret, cost=None, **extra):
    body = {"key": secret, **extra}
    if cost is not None:
        body["cost"] = cost
    r = srv.verify(body)
    return expect_status(r, 200), r


def expect_credits(srv, w, **want):
    """GET /v1/credits until balance / spent / topped_up read as given (spending is
    written back every second); returns the answer."""
    def match():
        doc = get_credits(srv, w)
        for k, v in want.items():
            assert doc[k] == v, f"{k} {doc[k]!r}, expected {v!r}"
        return doc
    return poll(match, what=f"GET /v1/credits showing {want}")


def still_credits(srv, w, **want):
    """As expect_credits, and still so after one more write-back: for spending that
    must not happen."""
    expect_credits(srv, w, **want)
    time.sleep(1.2)
    doc = get_credits(srv, w)
    for k, v in want.items():
        assert doc[k] == v, f"{k} became {doc[k]!r} (expected {v!r}): {doc}"
    return doc


def whole_ledger(srv, w):
    entries, cursor = [], None
    for _ in range(100):
        params = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        doc = get_credits(srv, w, **params)
        entries += doc["ledger"]
        cursor = doc["next_cursor"]
        if not cursor:
            return entries
    pytest.fail("the credits ledger does not end")


def key_id_of(srv, secret):
    return expect_status(srv.auth_context(secret), 200)["key_id"]


# -- balance and top-ups --------------------------------------------------------------------

def test_new_workspace_has_no_credits(server, ws):
    doc = get_credits(server, ws)
    assert doc == {"workspace_id": ws.id, "balance": 0, "topped_up": 0, "spent": 0,
                   "ledger": [], "next_cursor": None}, doc


def test_top_up_by_root_key(server, ws):
    t0 = time.time()
    r = server.post("/v1/credits", key=ws.root_key, json={"amount": 250, "note": "invoice 7"})
    doc = expect_status(r, 201)
    assert doc["balance"] == 250, describe(r)
    e = doc["entry"]
    for f in ENTRY_FIELDS:
        assert f in e, f"ledger entry lacks {f!r}: {describe(r)}"
    assert e["kind"] == "top_up" and e["amount"] == 250 and e["note"] == "invoice 7", e
    assert e["actor"] == key_id_of(server, ws.root_key), e
    assert abs(parse_time(e["created_at"]) - t0) < 60, e
    assert ws.root_key not in r.text

    second = top_up(server, ws, 50)
    assert second["balance"] == 300 and second["entry"]["note"] in (None, ""), second
    doc = get_credits(server, ws)
    assert (doc["balance"], doc["topped_up"], doc["spent"]) == (300, 300, 0), doc
    assert doc["ledger"] == [second["entry"], e], "ledger is not newest first"


def test_top_up_is_audited(server, ws):
    entry = top_up(server, ws, 42, note="audit me")["entry"]
    r = server.get("/v1/audit", key=ws.root_key)
    events = [x for x in expect_status(r, 200)["data"] if x["action"] == "credits.top_up"]
    assert len(events) == 1, describe(r)
    assert events[0]["actor"] == key_id_of(server, ws.root_key), events
    assert ws.root_key not in r.text
    assert entry["id"]


def test_owner_session_may_top_up(server, ws):
    owner = ws.new_session("owner")
    doc = top_up(server, ws, 10, key=owner.token)
    assert doc["balance"] == 10 and doc["entry"]["actor"] == owner.user.id, doc


def test_only_root_keys_and_owners_top_up(server, ws):
    """Money: editors, viewers and application keys may not add credits."""
    perm = ws.create_key()
    creds = {"rw": ws.rw_key, "ro": ws.ro_key, "permanent": perm["secret"],
             "editor": ws.new_session("editor").token, "viewer": ws.new_session("viewer").token}
    for cred in creds.values():
        r = server.post("/v1/credits", key=cred, json={"amount": 1000})
        assert_error(r, 403, "insufficient_permissions")
    assert_error(server.post("/v1/credits", json={"amount": 1000}), 401, "missing_key")
    doc = get_credits(server, ws)
    assert doc["balance"] == 0 and doc["ledger"] == [], doc


def test_who_may_read_credits(server, ws):
    top_up(server, ws, 7)
    creds = [ws.root_key, ws.rw_key, ws.ro_key] + \
        [ws.new_session(role).token for role in ("owner", "editor", "viewer")]
    for cred in creds:
        doc = get_credits(server, ws, key=cred)
        assert doc["workspace_id"] == ws.id and doc["balance"] == 7, doc
    perm = ws.create_key()
    assert_error(server.get("/v1/credits", key=perm["secret"]), 403, "insufficient_permissions")
    assert_error(server.get("/v1/credits"), 401, "missing_key")


@pytest.mark.parametrize("body,field", [
    ({"amount": 0}, "amount"),
    ({"amount": -5}, "amount"),
    ({"amount": 1.5}, "amount"),
    ({"amount": "10"}, "amount"),
    ({"amount": None}, "amount"),
    ({"amount": [10]}, "amount"),
    ({"amount": True}, "amount"),
    ({"amount": 10 ** 15 + 1}, "amount"),
    ({}, "amount"),
    ({"note": "no amount"}, "amount"),
    ({"amount": 5, "note": "x" * 201}, "note"),
    ({"amount": 5, "note": 7}, "note"),
    ({"amount": 5, "colour": "blue"}, "colour"),
])
def test_bad_top_up_is_400(server, ws, body, field):
    r = server.post("/v1/credits", key=ws.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)
    doc = get_credits(server, ws)
    assert doc["balance"] == 0 and doc["ledger"] == [], doc


def test_top_up_too_big_for_64_bits_is_bad_json(server, ws):
    r = server.post("/v1/credits", key=ws.root_key, data=b'{"amount": 100000000000000000000}',
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")
    assert get_credits(server, ws)["balance"] == 0


def test_top_up_bounds_are_inclusive(server, ws):
    assert top_up(server, ws, 1, note="n" * 200)["balance"] == 1
    assert top_up(server, ws, 10 ** 15)["balance"] == 10 ** 15 + 1


def test_ledger_pages(server, ws):
    made = [top_up(server, ws, n)["entry"] for n in (1, 2, 3)]
    first = get_credits(server, ws, limit=2)
    assert [e["amount"] for e in first["ledger"]] == [3, 2], first
    assert first["next_cursor"], first
    second = get_credits(server, ws, limit=2, cursor=first["next_cursor"])
    assert [e["amount"] for e in second["ledger"]] == [1], second
    assert second["next_cursor"] is None, second
    assert first["ledger"] + second["ledger"] == list(reversed(made))
    for bad in (0, 101, "x"):
        r = server.get("/v1/credits", key=ws.root_key, params={"limit": bad})
        assert_error(r, 400, "invalid_request", field="limit")


# -- spending -----------------------------------------------------------------------------------

def test_cost_spends_and_reports_the_balance(server, ws):
    top_up(server, ws, 100)
    k, other = ws.create_key(), ws.create_key()
    doc, r = spend(server, k["secret"], 10)
    assert doc["valid"] is True and doc.get("remaining_credits") == 90, describe(r)
    doc, r = spend(server, k["secret"])
    assert doc["valid"] is True and doc.get("remaining_credits") is None, \
        f"remaining_credits without a cost: {describe(r)}"
    doc, r = spend(server, k["secret"], 91)
    assert doc["valid"] is False and doc["code"] == "insufficient_credits", describe(r)
    assert doc["key_id"] == k["id"], describe(r)
    doc, r = spend(server, k["secret"], 90)
    assert doc["valid"] is True and doc.get("remaining_credits") == 0, describe(r)
    for key in (k, other):
        doc, r = spend(server, key["secret"], 1)
        assert doc["valid"] is False and doc["code"] == "insufficient_credits", describe(r)
    doc, r = spend(server, other["secret"], 0)
    assert doc["valid"] is True, f"a zero cost needs no credits: {describe(r)}"
    expect_credits(server, ws, balance=0, spent=100, topped_up=100)


def test_zero_cost_reports_the_balance_too(server, ws):
    """`remaining_credits` comes with every body that has a `cost`, 0 included."""
    top_up(server, ws, 40)
    k = ws.create_key()
    doc, r = spend(server, k["secret"], 0)
    assert doc["valid"] is True and doc.get("remaining_credits") == 40, describe(r)


def test_refused_checks_never_spend(server, ws):
    top_up(server, ws, 100)
    narrow = ws.create_key(permissions=["a:read"])
    gone, off = ws.create_key(), ws.create_key()
    assert server.delete(f"/v1/keys/{gone['id']}", key=ws.root_key).status_code == 204
    expect_status(server.patch(f"/v1/keys/{off['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    for secret, extra, code in [
        (gone["secret"], {}, "revoked_key"),
        (off["secret"], {}, "inactive_key"),
        (narrow["secret"], {"permissions": "a:write"}, "insufficient_permissions"),
        (narrow["secret"], {"environment": "test"}, "environment_mismatch"),
        (make_secret(), {}, "invalid_key"),
    ]:
        for _ in range(3):
            doc, r = spend(server, secret, 30, **extra)
            assert doc["code"] == code, describe(r)
    doc, r = spend(server, narrow["secret"], 1, permissions="a:read")
    assert doc["valid"] is True and doc.get("remaining_credits") == 99, describe(r)
    still_credits(server, ws, balance=99, spent=1)


def test_rate_limited_check_never_spends(server, ws):
    top_up(server, ws, 100)
    k = ws.create_key(rate_limit={"limit": 1, "window_s": 60})
    doc, r = spend(server, k["secret"], 10)
    assert doc["valid"] is True and doc.get("remaining_credits") == 90, describe(r)
    for _ in range(3):
        doc, r = spend(server, k["secret"], 10)
        assert doc["code"] == "rate_limited", describe(r)
    doc, r = spend(server, ws.create_key()["secret"], 1)
    assert doc.get("remaining_credits") == 89, describe(r)


def test_quota_exceeded_check_never_spends(server):
    w = server.create_workspace(quota=1)
    top_up(server, w, 100)
    k = w.create_key()
    doc, r = spend(server, k["secret"], 10)
    assert doc["valid"] is True and doc.get("remaining_credits") == 90, describe(r)
    for _ in range(3):
        doc, r = spend(server, k["secret"], 10)
        assert doc["code"] == "quota_exceeded", describe(r)
    still_credits(server, w, balance=90, spent=10)


def test_test_keys_spend_nothing(server, ws):
    t = ws.create_key(environment="test")
    capped = ws.create_key(environment="test", daily_spend_cap=0)
    for key in (t, capped):
        doc, r = spend(server, key["secret"], 50)
        assert doc["valid"] is True, f"test keys are never refused for credits: {describe(r)}"
    top_up(server, ws, 10)
    for _ in range(3):
        doc, r = spend(server, t["secret"], 10)
        assert doc["valid"] is True, describe(r)
        if doc.get("remaining_credits") is not None:
            assert doc.get("remaining_credits") == 10, describe(r)
    still_credits(server, ws, balance=10, spent=0)


# -- daily spend caps ---------------------------------------------------------------------------

def test_daily_spend_cap(server, ws):
    top_up(server, ws, 100)
    k = ws.create_key(daily_spend_cap=25)
    steps = [(10, "valid", 10, 90), (10, "valid", 20, 80), (10, "spend_cap_exceeded", 20, None),
             (5, "valid", 25, 75), (1, "spend_cap_exceeded", 25, None), (0, "valid", 25, None)]
    for cost, code, spent, left in steps:
        doc, r = spend(server, k["secret"], cost)
        assert doc["code"] == code and doc["valid"] is (code == "valid"), describe(r)
        if code == "valid" or doc.get("daily_spend") is not None:
            assert doc["daily_spend"] == {"cap": 25, "spent": spent, "remaining": 25 - spent}, \
                describe(r)
        if left is not None:
            assert doc.get("remaining_credits") == left, describe(r)
    # the cap is the key's: another key spends on
    other = ws.create_key()
    doc, r = spend(server, other["secret"], 50)
    assert doc["valid"] is True and doc.get("remaining_credits") == 25, describe(r)
    assert doc.get("daily_spend") is None, f"daily_spend for a key without a cap: {describe(r)}"
    expect_credits(server, ws, balance=25, spent=75)


def test_spend_cap_is_checked_before_credits(server, ws):
    k = ws.create_key(daily_spend_cap=5)  # and the workspace has no credits
    doc, r = spend(server, k["secret"], 10)
    assert doc["code"] == "spend_cap_exceeded", describe(r)
    doc, r = spend(server, k["secret"], 3)
    assert doc["code"] == "insufficient_credits", describe(r)


def test_zero_cap_allows_only_free_checks(server, ws):
    top_up(server, ws, 100)
    k = ws.create_key(daily_spend_cap=0)
    doc, r = spend(server, k["secret"], 1)
    assert doc["code"] == "spend_cap_exceeded", describe(r)
    doc, r = spend(server, k["secret"], 0)
    assert doc["valid"] is True, describe(r)
    assert doc["daily_spend"] == {"cap": 0, "spent": 0, "remaining": 0}, describe(r)


def test_patching_the_cap(server, ws):
    top_up(server, ws, 100)
    k = ws.create_key(daily_spend_cap=10)
    assert spend(server, k["secret"], 10)[0]["valid"] is True
    assert spend(server, k["secret"], 5)[0]["code"] == "spend_cap_exceeded"
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"daily_spend_cap": 20}), 200)
    doc, r = spend(server, k["secret"], 5)
    assert doc["valid"] is True, describe(r)
    assert doc["daily_spend"] == {"cap": 20, "spent": 15, "remaining": 5}, describe(r)
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"daily_spend_cap": None}), 200)
    doc, r = spend(server, k["secret"], 30)
    assert doc["valid"] is True and doc.get("daily_spend") is None, describe(r)


def test_spend_cap_opens_again_on_the_next_utc_day(clock_server):
    srv = clock_server
    srv.set_clock(next_noon())
    w = srv.create_workspace()
    top_up(srv, w, 100)
    k = w.create_key(daily_spend_cap=10)
    assert spend(srv, k["secret"], 10)[0]["valid"] is True
    assert spend(srv, k["secret"], 1)[0]["code"] == "spend_cap_exceeded"
    srv.advance_clock(DAY // 2 - 15)  # 23:59:45 the same day
    assert spend(srv, k["secret"], 1)[0]["code"] == "spend_cap_exceeded"
    srv.advance_clock(30)  # 00:00:15 the next day
    doc, r = spend(srv, k["secret"], 4)
    assert doc["valid"] is True, describe(r)
    assert doc["daily_spend"] == {"cap": 10, "spent": 4, "remaining": 6}, describe(r)
    assert doc.get("remaining_credits") == 86, describe(r)


# -- never overspent ------------------------------------------------------------------------------

def spend_until_empty(srv, secret, clients):
    """Clients spend cost-1 checks until they see insufficient_credits; returns the
    number of valid answers."""
    def client(i, s):
        valid = 0
        for _ in range(100000):
            r = s.post(srv.url("/v1/verify"), json={"key": secret, "cost": 1},
                       timeout=HTTP_TIMEOUT)
            doc = expect_status(r, 200)
            if doc["code"] == "insufficient_credits":
                return valid
            assert doc["code"] == "valid", describe(r)
            valid += 1
        raise AssertionError("no end to spending")
    return sum(in_parallel(clients, client))


def test_64_clients_spend_exactly_the_balance(server, ws):
    top_up(server, ws, 100)
    k = ws.create_key()
    valid = spend_until_empty(server, k["secret"], 64)
    assert valid == 100, f"{valid} checks of cost 1 passed on a balance of 100"
    expect_credits(server, ws, balance=0, spent=100, topped_up=100)


def test_kill9_while_spending_never_overspends(fresh_server):
    srv = fresh_server
    total = 2000
    w = srv.create_workspace()
    top_up(srv, w, total)
    k = w.create_key()
    stop = threading.Event()
    seen = []  # one entry per valid answer a client got
    lock = threading.Lock()

    def client(_):
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.post(srv.url("/v1/verify"), json={"key": k["secret"], "cost": 1},
                               timeout=5)
                    doc = r.json()
                except (requests.RequestException, ValueError):
                    return
                if doc.get("code") == "valid":
                    with lock:
                        seen.append(1)
                elif doc.get("code") == "insufficient_credits":
                    return

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client, i) for i in range(16)]
        t0 = time.monotonic()
        # kill mid-spending: after ~0.3 s, or sooner once 250 checks were paid
        while time.monotonic() - t0 < 0.3 and len(seen) < 250:
            time.sleep(0.01)
        srv.kill9()
        stop.set()
        for f in futures:
            f.result(timeout=30)
    before = len(seen)
    assert 0 < before < total, f"{before} valid answers before the kill: not mid-spending"

    srv.start()
    doc = get_credits(srv, w)  # asserts balance + spent == topped_up
    assert doc["topped_up"] == total, doc
    assert doc["spent"] >= before, \
        f"clients saw {before} paid checks but only {doc['spent']} are recorded as spent"
    # each of the 16 clients had at most one check in flight at the kill
    assert doc["spent"] <= before + 16, \
        f"clients saw {before} paid checks but {doc['spent']} are recorded as spent"
    ledger = whole_ledger(srv, w)
    kinds = {e["kind"] for e in ledger}
    assert kinds <= {"top_up", "spend"}, f"a kill -9 on the same machine lost a lease: {kinds}"
    assert sum(e["amount"] for e in ledger if e["kind"] == "top_up") == total, ledger
    assert sum(abs(e["amount"]) for e in ledger if e["kind"] == "spend") == \
        doc["spent"], f"spend entries do not add up to spent: {doc}"

    # what is left can be spent, and no more
    after = spend_until_empty(srv, k["secret"], 16)
    assert after == doc["balance"], f"the balance said {doc['balance']}, {after} could be spent"
    assert before + after <= total, f"{before} + {after} paid checks on {total} credits"
    expect_credits(srv, w, balance=0, spent=total, topped_up=total)


def test_a_kill_costs_a_workspace_nothing_but_what_it_spent(fresh_server):
    """One paid check, then kill -9 at once (before the recorder wrote it): the
    counter file the server left says what was spent, and the rest of the lease
    goes back to the balance."""
    srv = fresh_server
    w = srv.create_workspace()
    top_up(srv, w, 1000000)
    k = w.create_key()
    doc, r = spend(srv, k["secret"], 7)
    assert doc["valid"] is True, describe(r)
    srv.kill9()
    srv.start()
    doc = get_credits(srv, w)
    assert (doc["balance"], doc["spent"]) == (1000000 - 7, 7), \
        f"one paid check of 7 and a kill cost {doc['spent']}: {doc}"
    assert [e["kind"] for e in doc["ledger"]] == ["spend", "top_up"], doc["ledger"]
    assert spend(srv, k["secret"], 1)[0]["valid"] is True


def test_credits_survive_a_clean_restart_exactly(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    top_up(srv, w, 100)
    k = w.create_key()
    for _ in range(5):
        assert spend(srv, k["secret"], 7)[0]["valid"] is True
    doc, r = spend(srv, k["secret"], 2)
    assert doc.get("remaining_credits") == 63, describe(r)
    srv.restart()  # SIGTERM: the unspent lease goes back
    doc = get_credits(srv, w)
    assert (doc["balance"], doc["spent"], doc["topped_up"]) == (63, 37, 100), doc
    assert not [e for e in doc["ledger"] if e["kind"] == "lease_lost"], doc["ledger"]
    d, r = spend(srv, k["secret"], 63)
    assert d["valid"] is True and d.get("remaining_credits") == 0, describe(r)
    d, r = spend(srv, k["secret"], 1)
    assert d["code"] == "insufficient_credits", describe(r)


def test_spending_is_in_the_ledger_by_hour(server, ws):
    top_up(server, ws, 100)
    k = ws.create_key()
    hours = set()
    for cost in (10, 20, 5):
        hours.add(int(time.time()) // 3600)
        assert spend(server, k["secret"], cost)[0]["valid"] is True
        hours.add(int(time.time()) // 3600)

    def spend_entries():
        entries = [e for e in get_credits(server, ws)["ledger"] if e["kind"] == "spend"]
        assert sum(abs(e["amount"]) for e in entries) == 35, entries
        return entries

    entries = poll(spend_entries, what="spend entries adding up to 35")
    assert len(entries) <= len(hours), f"more than one spend entry per hour: {entries}"
    for e in entries:
        start = parse_time(e["created_at"])
        assert start % 3600 == 0, f"a spend entry's created_at is its hour's start: {e}"
        assert int(start) // 3600 in hours, e
    expect_credits(server, ws, balance=65, spent=35)


# -- workspaces are sealed ----------------------------------------------------------------------

def test_other_workspaces_see_and_top_up_their_own(server, ws, ws2):
    top_up(server, ws, 100)
    doc = get_credits(server, ws2, key=ws2.root_key)
    assert doc["workspace_id"] == ws2.id and doc["balance"] == 0, doc
    top_up(server, ws2, 5, key=ws2.root_key)
    assert get_credits(server, ws)["balance"] == 100
    # naming the other workspace does not reach it
    for method in ("GET", "POST"):
        r = server.request(method, "/v1/credits", key=ws2.root_key,
                           headers={"X-Latchkey-Workspace": ws.id},
                           **({"json": {"amount": 1000}} if method == "POST" else {}))
        assert not contains_value(r.json(), ws.id), describe(r)
    owner2 = ws2.new_session("owner")
    r = server.get("/v1/credits", key=owner2.token, headers={"X-Latchkey-Workspace": ws.id})
    assert_error(r, 404, "not_found")
    r = server.post("/v1/credits", key=owner2.token, json={"amount": 1000},
                    headers={"X-Latchkey-Workspace": ws.id})
    assert_error(r, 404, "not_found")
    # and ws2's keys spend ws2's credits only
    doc, r = spend(server, ws2.create_key()["secret"], 50000)
    assert doc["code"] == "insufficient_credits", describe(r)
    doc = get_credits(server, ws)
    assert doc["balance"] == 100 and doc["topped_up"] == 100, doc


def test_free_checks_count_report_the_balance_and_limits_set_later_apply_at_once(server):
    """A free check of a key without limits takes no lock on the node: it still
    counts toward the quota view and a quota set later, reports the balance as
    it is, and a rate limit, quota or cost given later applies from the next check."""
    w = server.create_workspace()
    top_up(server, w, 100)
    free, paying = w.create_key(), w.create_key()
    for _ in range(3):
        doc, r = spend(server, free["secret"], 0)
        assert doc["valid"] is True and doc.get("remaining_credits") == 100, describe(r)
    doc, r = spend(server, paying["secret"], 10)
    assert doc["valid"] is True and doc.get("remaining_credits") == 90, describe(r)
    doc, r = spend(server, free["secret"], 0)
    assert doc.get("remaining_credits") == 90, f"the balance after the spend: {describe(r)}"
    quota = expect_status(server.get("/v1/quota", key=w.root_key), 200)
    assert quota["live"]["used"] == 5, quota
    # a rate limit given to the key now: limited from the next check on
    expect_status(server.patch(f"/v1/keys/{free['id']}", key=w.root_key,
                               json={"rate_limit": {"limit": 1, "window_s": 60}}), 200)
    doc, r = spend(server, free["secret"], 0)
    assert doc["valid"] is True, describe(r)
    doc, r = spend(server, free["secret"], 0)
    assert doc["code"] == "rate_limited", describe(r)
    # a quota set now counts every check made without it (6 valid so far)
    expect_status(server.patch(f"/v1/workspaces/{w.id}", key=server.root_key,
                               json={"quota": 7}), 200)
    other = w.create_key()
    doc, r = spend(server, other["secret"], 0)
    assert doc["valid"] is True, describe(r)
    doc, r = spend(server, other["secret"], 0)
    assert doc["code"] == "quota_exceeded", describe(r)
    still_credits(server, w, balance=90, spent=10)
