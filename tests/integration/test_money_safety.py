"""Credits stay exact around other processes on the same database and around a
stop that finds the database locked (review findings on the lease design)."""

import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, clean_env, free_port, run_cli
from lkhelpers import assert_error, expect_status


def credits(srv, w):
    return expect_status(srv.get("/v1/credits", key=w.root_key), 200)


def ledger_kinds(srv, w):
    return [e["kind"] for e in credits(srv, w)["ledger"]]


def spend(srv, secret, cost):
    return expect_status(srv.verify({"key": secret, "cost": cost}), 200)


def test_init_and_a_second_serve_leave_a_live_servers_lease_alone(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 1000}), 201)
    k = w.create_key()
    assert spend(srv, k["secret"], 5)["valid"] is True  # the server now holds a lease
    # `init` on the served database refuses and changes nothing, leases included
    res = run_cli(["init", "--db", srv.db_url])
    assert res.returncode != 0
    # a second server on the same state directory (beside the database, when it
    # names none) refuses to start, whatever its port
    same_dir = [] if srv.is_sqlite() else ["--state-dir", str(srv.state_dir)]
    res = run_cli(["serve", "--db", srv.db_url, "--listen", f"127.0.0.1:{free_port()}"] + same_dir,
                  timeout=20)
    assert res.returncode != 0 and "in use by another latchkey node" in res.stderr, res.stderr
    # one with its own state directory is another node: it starts, serves and
    # stops without touching the first one's lease
    port = free_port()
    other = subprocess.Popen(
        [BIN, "serve", "--db", srv.db_url, "--listen", f"127.0.0.1:{port}",
         "--state-dir", str(srv.dir / "node2")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=clean_env())
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert other.poll() is None and time.monotonic() < deadline, "second node did not start"
            time.sleep(0.05)
    finally:
        other.terminate()
        _, err = other.communicate(timeout=20)
    assert other.returncode == 0, err
    time.sleep(1.5)  # let the recorder write the spending
    doc = credits(srv, w)
    assert (doc["balance"], doc["spent"], doc["topped_up"]) == (995, 5, 1000), doc
    assert "lease_lost" not in ledger_kinds(srv, w)
    # the running server still spends and records
    assert spend(srv, k["secret"], 5)["remaining_credits"] == 990
    srv.restart()
    doc = credits(srv, w)
    assert (doc["balance"], doc["spent"]) == (990, 10), doc
    assert "lease_lost" not in ledger_kinds(srv, w)
    # nor do they touch the server's counter file: after init, seed and a
    # refused serve, a kill -9 still costs exactly what was spent
    assert spend(srv, k["secret"], 3)["valid"] is True
    assert run_cli(["init", "--db", srv.db_url]).returncode != 0
    res = run_cli(["seed", "--db", srv.db_url, "--count", "3", "--out",
                   str(srv.dir / "seeded.txt")])
    assert res.returncode == 0, res.stderr
    same_dir = [] if srv.is_sqlite() else ["--state-dir", str(srv.state_dir)]
    res = run_cli(["serve", "--db", srv.db_url, "--listen", f"127.0.0.1:{free_port()}"] + same_dir,
                  timeout=20)
    assert res.returncode != 0
    srv.kill9()
    srv.start()
    doc = credits(srv, w)
    assert (doc["balance"], doc["spent"]) == (987, 13), doc
    assert "lease_lost" not in ledger_kinds(srv, w)


def test_a_stop_that_finds_the_database_locked_still_writes_spending(fresh_server):
    """Another process holds the write lock for a second while the server stops:
    the last write waits for it, so the key's spend of the day and the ledger
    survive, and the daily cap still holds after the restart."""
    srv = fresh_server
    w = srv.create_workspace()
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 500}), 201)
    k = w.create_key(daily_spend_cap=50)
    for _ in range(5):
        assert spend(srv, k["secret"], 10)["valid"] is True
    assert spend(srv, k["secret"], 10)["code"] == "spend_cap_exceeded"
    lock = sqlite3.connect(str(srv.db_path), isolation_level=None, timeout=5,
                           check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.0, lambda: lock.execute("COMMIT"))
    release.start()
    try:
        srv.stop()
    finally:
        release.join()
        lock.close()
    srv.start()
    assert spend(srv, k["secret"], 10)["code"] == "spend_cap_exceeded"
    doc = credits(srv, w)
    assert (doc["balance"], doc["spent"]) == (450, 50), doc
    assert "lease_lost" not in ledger_kinds(srv, w)


def test_the_total_topped_up_stays_exact_in_json(server, ws):
    for _ in range(9):
        expect_status(server.post("/v1/credits", key=ws.root_key, json={"amount": 10**15}), 201)
    r = server.post("/v1/credits", key=ws.root_key, json={"amount": 10**15})
    assert_error(r, 409, "conflict")
    doc = credits(server, ws)
    assert doc["balance"] == doc["topped_up"] == 9 * 10**15
