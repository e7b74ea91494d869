"""Crash trials: `kill -9` under concurrent spending, then every counter is exact
(docs/http-api.md, "Limits and money" → "What a crash keeps").

A killed server leaves its counters in `<database>.counters`; the next start books
exactly what was spent, returns the rest of the lease, and keeps rate windows, day
spends, quota days and usage. Only a machine crash (another boot id) falls back to
booking the lease as `lease_lost`, simulated here with LATCHKEY_BOOT_ID_FILE.

A request in flight at the kill has an unknown outcome for its client: it may or
may not have been counted. Each client has at most one in flight, so the counts
are checked to lie between the acknowledged ones and those plus the unknown ones;
the trials with no request in flight check them to the credit.
"""

import os
import random
import sqlite3
import threading
import time

import pytest
import requests

from conftest import DAY, next_noon, utc_date
from lkhelpers import describe, expect_status

TRIALS = 8
SPENDERS = 6
HOUR = 3600


def use_boot_id(srv, text):
    """Make the server read its boot id from a file of the test's (test hook)."""
    path = srv.dir / "boot_id"
    path.write_text(text + "\n")
    clock_env = srv._clock_env
    srv._clock_env = lambda: {**clock_env(), "LATCHKEY_BOOT_ID_FILE": str(path)}


def credits(srv, w):
    doc = expect_status(srv.get("/v1/credits", key=w.root_key, params={"limit": 100}), 200)
    assert doc["balance"] + doc["spent"] == doc["topped_up"], f"balance + spent != topped_up: {doc}"
    return doc


def ledger(srv, w):
    out, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        doc = expect_status(srv.get("/v1/credits", key=w.root_key, params=params), 200)
        out += doc["ledger"]
        cursor = doc.get("next_cursor")
        if not cursor:
            return out


def usage_totals(srv, w, key_id):
    doc = expect_status(srv.get(f"/v1/keys/{key_id}/usage", key=w.root_key,
                                params={"granularity": "day"}), 200)
    t = doc["totals"]
    if isinstance(t.get("outcomes"), dict):
        t = t["outcomes"]
    return {k: v for k, v in t.items() if k != "total"}


def quota_used(srv, w):
    return expect_status(srv.get("/v1/quota", key=w.root_key), 200)["live"]["used"]


def set_quota(srv, w, quota):
    expect_status(srv.patch(f"/v1/workspaces/{w.id}", key=srv.root_key, json={"quota": quota}),
                  200)


class Tally:
    """What the clients were told, per key: valid checks and their cost, other codes,
    and the requests whose answer never came (unknown outcome)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.valid = {}
        self.cost = {}
        self.unknown = {}
        self.unknown_cost = {}
        self.codes = {}

    def note(self, key_id, cost, code):
        with self.lock:
            if code is None:
                self.unknown[key_id] = self.unknown.get(key_id, 0) + 1
                self.unknown_cost[key_id] = self.unknown_cost.get(key_id, 0) + cost
                return
            self.codes.setdefault(key_id, {})
            self.codes[key_id][code] = self.codes[key_id].get(code, 0) + 1
            if code == "valid":
                self.valid[key_id] = self.valid.get(key_id, 0) + 1
                self.cost[key_id] = self.cost.get(key_id, 0) + cost

    def sum(self, table, ids):
        return sum(table.get(i, 0) for i in ids)


def spender(srv, keys, tally, stop, seed):
    rnd = random.Random(seed)
    with requests.Session() as s:
        while not stop.is_set():
            k = rnd.choice(keys)
            cost = k["cost"] if k["cost"] is not None else rnd.randint(1, 9)
            try:
                r = s.post(srv.url("/v1/verify"), json={"key": k["secret"], "cost": cost},
                           timeout=10)
                code = r.json()["code"]
            except (requests.RequestException, ValueError, KeyError):
                tally.note(k["id"], cost, None)
                return  # the server is gone: this client's round is over
            tally.note(k["id"], cost, code)


def churner(srv, w, made, revoked, tried, stop):
    """Creates and revokes keys; records what was acknowledged (and which revokes
    were sent, whose answer may have been lost with the server)."""
    with requests.Session() as s:
        while not stop.is_set():
            try:
                r = s.post(srv.url("/v1/keys"), json={"name": "churn"},
                           headers={"Authorization": f"Bearer {w.root_key}"}, timeout=10)
                if r.status_code != 201:
                    return
                made.append(r.json()["id"])
                if len(made) % 3 == 0:
                    victim = made[-2]
                    tried.add(victim)
                    r = s.delete(srv.url(f"/v1/keys/{victim}"),
                                 headers={"Authorization": f"Bearer {w.root_key}"}, timeout=10)
                    if r.status_code != 204:
                        return
                    revoked.add(victim)
            except requests.RequestException:
                return
            time.sleep(0.02)


def test_kill9_under_concurrent_spending_keeps_every_counter(make_server):
    srv = make_server(clock=True, start=False)
    srv.set_clock(next_noon())  # far from a UTC midnight, where day caps restart
    use_boot_id(srv, "boot-same")
    srv.start()
    total = 10**7
    w = srv.create_workspace()
    set_quota(srv, w, 10**6)
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": total}), 201)
    rated = w.create_key(name="rated", rate_limit={"limit": 300, "window_s": HOUR})
    capped = w.create_key(name="capped", daily_spend_cap=2000)
    plain = w.create_key(name="plain")
    # a second workspace with a small quota, checked for free
    w2 = srv.create_workspace()
    quota2 = 400
    set_quota(srv, w2, quota2)
    free = w2.create_key(name="free")
    keys = [dict(rated, cost=1), dict(capped, cost=5), dict(plain, cost=None),
            dict(free, cost=0)]
    ids1 = [rated["id"], capped["id"], plain["id"]]
    tally = Tally()
    made, revoked, tried = [], set(), set()
    rnd = random.Random(9)

    for trial in range(TRIALS):
        stop = threading.Event()
        threads = [threading.Thread(target=spender, args=(srv, keys, tally, stop, trial * 100 + i),
                                    daemon=True) for i in range(SPENDERS)]
        threads.append(threading.Thread(target=churner, args=(srv, w, made, revoked, tried, stop),
                                        daemon=True))
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.3, 1.3))  # a random moment mid-spending
        srv.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        srv.start()

        # money: balance + spent = topped_up (credits() asserts it), spent = acknowledged
        doc = credits(srv, w)
        acked = tally.sum(tally.cost, ids1)
        unknown = tally.sum(tally.unknown_cost, ids1)
        assert doc["topped_up"] == total, doc
        assert acked <= doc["spent"] <= acked + unknown, \
            f"trial {trial}: clients were charged {acked} (+{unknown} unanswered), " \
            f"the ledger says {doc['spent']}"
        kinds = {e["kind"] for e in ledger(srv, w)}
        assert "lease_lost" not in kinds, f"trial {trial}: a kill on the same boot lost a lease"
        # a rate window and a day cap are not reset by a crash
        n_rated = tally.valid.get(rated["id"], 0)
        assert n_rated <= 300, f"trial {trial}: {n_rated} valid checks on a 300/hour key"
        spent_capped = tally.cost.get(capped["id"], 0)
        assert spent_capped <= 2000, f"trial {trial}: a 2000 day cap let {spent_capped} through"
        # quota days and usage equal the acknowledged valid checks
        n1 = tally.sum(tally.valid, ids1)
        u1 = tally.sum(tally.unknown, ids1)
        used = quota_used(srv, w)
        assert n1 <= used <= n1 + u1, f"trial {trial}: quota used {used}, {n1} valid (+{u1})"
        n2 = tally.valid.get(free["id"], 0)
        assert n2 <= quota2, f"trial {trial}: {n2} valid checks on a quota of {quota2}"
        assert n2 <= quota_used(srv, w2) <= n2 + tally.unknown.get(free["id"], 0)
        for k in keys:
            got = usage_totals(srv, w if k is not keys[3] else w2, k["id"])
            for code, n in tally.codes.get(k["id"], {}).items():
                unk = tally.unknown.get(k["id"], 0)
                assert n <= got.get(code, 0) <= n + unk, \
                    f"trial {trial}: key {k['name']}: {code} counted {got.get(code, 0)}, " \
                    f"clients saw {n} (+{unk} unanswered)"
        # no acknowledged key change is lost
        for key_id in made:
            kdoc = expect_status(srv.get(f"/v1/keys/{key_id}", key=w.root_key), 200)
            if key_id in revoked:
                assert kdoc["revoked_at"] is not None, f"a revoke was lost: {describe_key(kdoc)}"
            elif key_id not in tried:
                assert kdoc["revoked_at"] is None, describe_key(kdoc)

    # the limits were reached, so the checks above said something
    assert tally.codes[rated["id"]].get("rate_limited", 0) > 0, tally.codes[rated["id"]]
    assert tally.codes[capped["id"]].get("spend_cap_exceeded", 0) > 0, tally.codes[capped["id"]]
    assert tally.codes[free["id"]].get("quota_exceeded", 0) > 0, tally.codes[free["id"]]


def describe_key(doc):
    return {k: doc.get(k) for k in ("id", "status", "revoked_at")}


def spend(srv, k, cost):
    return expect_status(srv.verify({"key": k["secret"], "cost": cost}), 200)


def hold_database(srv):
    """Another process holds the write lock: the server's recorder cannot write, so
    what follows lives only in the server's memory (and its counter file)."""
    lock = sqlite3.connect(str(srv.db_path), isolation_level=None, timeout=5)
    lock.execute("BEGIN EXCLUSIVE")
    return lock


def quiet_spending(srv):
    """A paid key with a rate limit and a day cap; one check written to the store,
    then four more that only memory knows of. Returns (workspace, key)."""
    w = srv.create_workspace()
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 1000}), 201)
    k = w.create_key(rate_limit={"limit": 10, "window_s": HOUR}, daily_spend_cap=100)
    assert spend(srv, k, 1)["valid"] is True  # leases 16
    time.sleep(1.5)  # written
    lock = hold_database(srv)
    try:
        for _ in range(4):
            doc = spend(srv, k, 3)
            assert doc["valid"] is True, doc
        assert doc["ratelimit"]["remaining"] == 5, doc
        srv.kill9()
    finally:
        lock.execute("COMMIT")
        lock.close()
    return w, k


def test_kill9_with_nothing_in_flight_is_exact_to_the_credit(make_server):
    srv = make_server(start=False)
    use_boot_id(srv, "boot-same")
    srv.start()
    w, k = quiet_spending(srv)
    srv.start()
    doc = credits(srv, w)
    assert (doc["balance"], doc["spent"]) == (1000 - 13, 13), doc
    assert "lease_lost" not in {e["kind"] for e in ledger(srv, w)}
    assert sum(e["amount"] for e in ledger(srv, w) if e["kind"] == "spend") == 13
    assert usage_totals(srv, w, k["id"]) == {"valid": 5}
    assert quota_used(srv, w) == 5
    # the window and the day's spend went on where they were
    doc = spend(srv, k, 0)
    assert doc["ratelimit"]["remaining"] == 4, doc
    assert doc["daily_spend"]["spent"] == 13, doc
    # and a clean restart after that keeps them too
    srv.restart()
    doc = spend(srv, k, 0)
    assert doc["ratelimit"]["remaining"] == 3, doc
    assert doc["daily_spend"]["spent"] == 13, doc
    assert credits(srv, w)["spent"] == 13


def test_a_machine_crash_books_the_lease_as_lost(make_server):
    """Another boot id: the counter file is not believed. The outstanding lease is
    counted as spent (lease_lost), never less than the clients were charged."""
    srv = make_server(start=False)
    use_boot_id(srv, "boot-one")
    srv.start()
    w, k = quiet_spending(srv)
    use_boot_id(srv, "boot-two")
    srv.start()
    doc = credits(srv, w)
    assert doc["topped_up"] == 1000 and doc["spent"] >= 13, doc
    lost = [e for e in ledger(srv, w) if e["kind"] == "lease_lost"]
    assert lost and doc["spent"] == 16, (doc, lost)  # the whole lease of 16
    assert "unclean stop" in srv.stderr_text() or "recorded as spent" in srv.stderr_text()
    # what is left can be spent, and no more
    assert spend(srv, k, 0)["valid"] is True
    r = srv.verify({"key": k["secret"], "cost": doc["balance"] + 1})
    assert r.json()["code"] in ("insufficient_credits", "spend_cap_exceeded"), describe(r)


def test_a_damaged_counter_file_is_not_believed(make_server):
    """The counter file is outside input: garbage in it is treated as a lost file,
    never a crash, and money still adds up."""
    srv = make_server(start=False)
    use_boot_id(srv, "boot-same")
    srv.start()
    w, k = quiet_spending(srv)
    path = srv.counters_path
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(min(size - 4096, 1 << 16)))
    srv.start()
    doc = credits(srv, w)
    assert doc["topped_up"] == 1000 and doc["spent"] == 16, doc
    assert any(e["kind"] == "lease_lost" for e in ledger(srv, w))
    assert spend(srv, k, 1)["valid"] is True
    # and the file written from then on is read back exactly again
    srv.kill9()
    srv.start()
    assert credits(srv, w)["spent"] == 17


def test_a_kill_just_after_midnight_keeps_the_day_before(make_server):
    """Counts of a day that just ended, not yet written when the server is killed,
    are kept: usage of the old day and its quota day are exact."""
    srv = make_server(clock=True, start=False)
    noon = next_noon()
    srv.set_clock(noon + 60)
    use_boot_id(srv, "boot-same")
    srv.start()
    w = srv.create_workspace()
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 1000}), 201)
    k = w.create_key(daily_spend_cap=100)
    for _ in range(3):
        assert spend(srv, k, 4)["valid"] is True  # within the first lease of 16
    time.sleep(1.5)  # written
    lock = hold_database(srv)
    try:
        for _ in range(2):
            assert spend(srv, k, 1)["valid"] is True
        srv.advance_clock(DAY)  # the next UTC day: the first check moves the old day aside
        doc = spend(srv, k, 1)
        assert doc["valid"] is True and doc["daily_spend"]["spent"] == 1, doc
        srv.kill9()
    finally:
        lock.execute("COMMIT")
        lock.close()
    srv.start()
    r = srv.get(f"/v1/keys/{k['id']}/usage", key=w.root_key, params={"granularity": "day"})
    by_day = {e["start"]: e["outcomes"].get("valid", 0)
              for e in expect_status(r, 200)["data"]}
    starts = sorted(s for s, n in by_day.items() if n)
    assert [by_day[s] for s in starts] == [5, 1], by_day
    days = {d["date"]: d["live"] for d in expect_status(srv.get("/v1/quota", key=w.root_key),
                                                        200)["days"]}
    assert days[utc_date(noon)] == 5 and days[utc_date(noon + DAY)] == 1, days
    assert credits(srv, w)["spent"] == 15
    assert spend(srv, k, 0)["daily_spend"]["spent"] == 1


def named_checker(srv, secret, tally, stop):
    """Checks that apply the key's named limit until stop or the server is gone;
    tally: [passed, unknown] (at most one unknown: the one in flight)."""
    body = {"key": secret, "ratelimits": [{"name": "hourly"}]}
    with requests.Session() as s:
        while not stop.is_set():
            try:
                d = s.post(srv.url("/v1/verify"), json=body, timeout=10).json()
                ok = d["valid"]
            except (requests.RequestException, ValueError, KeyError):
                tally[1] += 1
                return
            tally[0] += ok


def test_kill9_under_concurrent_checks_keeps_named_windows(make_server):
    srv = make_server(start=False)
    use_boot_id(srv, "boot-same")
    srv.start()
    rnd = random.Random(14)
    limit = 10**9  # never full: what is left tells what was counted
    w = srv.create_workspace()
    for trial in range(3):
        k = w.create_key(name=f"named{trial}", rate_limits=[
            {"name": "hourly", "limit": limit, "window_ms": HOUR * 1000}])
        stop = threading.Event()
        tallies = [[0, 0] for _ in range(SPENDERS)]
        threads = [threading.Thread(target=named_checker, args=(srv, k["secret"], t, stop))
                   for t in tallies]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.1, 0.6))
        srv.kill9()
        stop.set()
        for t in threads:
            t.join()
        srv.start()
        acked = sum(t[0] for t in tallies)
        unknown = sum(t[1] for t in tallies)
        assert 0 < acked < limit, "the kill came while the window had room"
        d = expect_status(srv.verify({"key": k["secret"], "ratelimits": [{"name": "hourly"}]}),
                          200)
        assert d["valid"], d
        (left,) = [x["remaining"] for x in d["ratelimits"] if x["name"] == "hourly"]
        # every check acknowledged before the kill is still counted; the one in
        # flight of each client may or may not have been
        counted = limit - 1 - left
        assert acked <= counted <= acked + unknown, (trial, acked, unknown, counted)
