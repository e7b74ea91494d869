"""SIGHUP reloads the forward-auth route rules (docs/http-api.md, "Forward auth";
docs/tls.md, "Reloading").

The routes file (`serve --routes FILE` or `routes = FILE`) is read again; the new
rules judge the requests that arrive after. A file that does not load keeps the
rules in force, and stderr says why, with the line. Requests under way finish with
the rules they started with: none is dropped or judged by a mix of two files.
"""

import signal
import sqlite3
import threading
import time

import pytest
import requests

from conftest import SHARED_CONFIG, LatchkeyServer, _finish, _live_servers, poll
from lkhelpers import HTTP_TIMEOUT, describe, expect_status

FA = "/v1/forward-auth"

RULES_A = """\
# version A
GET     /old/**      any
POST    /paid/*      any        cost=1
GET     /both/**     any
"""

# The paid rule moves (a request judged by A's rule number and B's table would get
# another rule) and /old goes.
RULES_B = """\
# version B
POST    /paid/*      any        cost=1
GET     /both/**     any
GET     /new/**      any
"""


def fa(srv, method, uri, key, session=None):
    h = {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri,
         "Authorization": f"Bearer {key}"}
    return (session or requests).get(srv.url(FA), headers=h, timeout=HTTP_TIMEOUT)


@pytest.fixture
def routed(tmp_path):
    routes = tmp_path / "routes.txt"
    routes.write_text(RULES_A)
    srv = LatchkeyServer(tmp_path / "srv", config={**SHARED_CONFIG, "routes": str(routes)})
    _live_servers.append(srv)
    srv.start()
    yield srv, routes
    _finish(srv)


def test_sighup_puts_the_new_rules_in_force(routed):
    srv, routes = routed
    key = srv.create_workspace().create_key()["secret"]
    assert fa(srv, "GET", "/old/x", key).status_code == 200
    assert fa(srv, "GET", "/new/x", key).status_code == 403
    with requests.Session() as kept:  # a keep-alive connection across the reload
        assert fa(srv, "GET", "/both/x", key, kept).status_code == 200
        routes.write_text(RULES_B)
        srv.hup("route rules reloaded")
        r = fa(srv, "GET", "/new/x", key, kept)
        assert r.status_code == 200, describe(r)
    r = fa(srv, "GET", "/old/x", key)
    assert r.status_code == 403, describe(r)


def test_a_bad_file_keeps_the_old_rules_and_names_the_line(routed):
    srv, routes = routed
    key = srv.create_workspace().create_key()["secret"]
    routes.write_text("# broken\nGET /new/** any\nGET no-slash any\n")
    srv.hup("route rules not reloaded")
    last = [ln for ln in srv.stderr_text().splitlines() if "not reloaded" in ln][-1]
    assert "routes line 3" in last and str(routes) in last, last
    assert fa(srv, "GET", "/old/x", key).status_code == 200
    assert fa(srv, "GET", "/new/x", key).status_code == 403
    # a file with no rule at all, and one that is gone, are refused the same way
    routes.write_text("# nothing\n")
    srv.hup("route rules not reloaded")
    assert "no rules" in srv.stderr_text().splitlines()[-1], srv.stderr_tail()
    routes.unlink()
    srv.hup("route rules not reloaded")
    assert "cannot read" in srv.stderr_text().splitlines()[-1], srv.stderr_tail()
    assert fa(srv, "GET", "/old/x", key).status_code == 200
    # and a good file afterwards is taken
    routes.write_text(RULES_B)
    srv.hup("route rules reloaded")
    assert fa(srv, "GET", "/new/x", key).status_code == 200


def test_a_server_without_a_routes_file_survives_sighup(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv", config=dict(SHARED_CONFIG))
    _live_servers.append(srv)
    srv.start()
    try:
        key = srv.create_workspace().create_key()["secret"]
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert srv.proc.poll() is None, srv.stderr_tail()
        assert fa(srv, "GET", "/anything", key).status_code == 200
    finally:
        _finish(srv)


@pytest.mark.sqlite_only("holds SQLite's write lock from another process (PostgreSQL outages: test_pg_faults.py)")
def test_a_check_waiting_for_a_credit_lease_finishes_with_its_rules(routed):
    """A paid check that must take a credit lease waits for the database on a
    worker; the rules are swapped meanwhile. It is still judged by the rule it
    matched (A's `cost=1`), not by whatever rule has that place in B (a free one)."""
    srv, routes = routed
    w = srv.create_workspace()
    key = w.create_key()["secret"]
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 1000}), 201)
    lock = sqlite3.connect(str(srv.db_path), isolation_level=None, timeout=5,
                           check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    got = {}
    # Two management writes wait for the lock first and keep both workers busy,
    # so the check is still queued, its rule not yet read again, at the reload.
    busy = [threading.Thread(target=lambda: srv.post("/v1/keys", key=w.root_key,
                                                     json={"name": "busy"}))
            for _ in range(2)]
    t = threading.Thread(target=lambda: got.update(r=fa(srv, "POST", "/paid/x", key)))
    try:
        for b in busy:
            b.start()
        time.sleep(0.3)
        t.start()
        t.join(0.3)
        assert t.is_alive(), f"the check did not wait for a lease: {describe(got.get('r'))}"
        routes.write_text(RULES_B)
        srv.hup("route rules reloaded")
    finally:
        lock.execute("COMMIT")
        lock.close()
        t.join()
        for b in busy:
            b.join()
    assert got["r"].status_code == 200, describe(got["r"])

    def charged():
        doc = expect_status(srv.get("/v1/credits", key=w.root_key), 200)
        assert doc["spent"] == 1, doc
        return doc
    poll(charged, timeout=10, what="the one credit of A's paid rule spent")
    # and the next paid check, under B, costs B's price (also 1), on B's rule
    assert fa(srv, "POST", "/paid/x", key).status_code == 200
    assert fa(srv, "GET", "/old/x", key).status_code == 403


def test_reloads_under_load_drop_nothing(routed):
    """Requests keep flowing through twenty reloads: every one allowed by both files
    passes, and every paid one is charged exactly once (a request judged by one
    file's rule number in the other's table would get another rule, at no cost)."""
    srv, routes = routed
    w = srv.create_workspace()
    key = w.create_key()["secret"]
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 100000}), 201)
    stop = threading.Event()
    results, errors = [], []

    def client(i):
        with requests.Session() as s:
            n = 0
            while not stop.is_set():
                path = "/paid/x" if n % 2 == 0 else "/both/y"
                try:
                    r = fa(srv, "POST" if path.startswith("/paid") else "GET", path, key, s)
                    results.append((path, r.status_code))
                except requests.RequestException as e:
                    errors.append(repr(e))
                n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            routes.write_text(RULES_B if i % 2 == 0 else RULES_A)
            srv.hup("route rules reloaded")
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    bad = [r for r in results if r[1] != 200]
    assert not bad, bad[:10]
    paid = sum(1 for p, _ in results if p == "/paid/x")
    assert paid > 0

    def charged():
        doc = expect_status(srv.get("/v1/credits", key=w.root_key), 200)
        assert doc["spent"] == paid, doc
        return doc
    poll(charged, timeout=10, what=f"{paid} credits spent")
