"""GET /metrics: Prometheus text that a real parser reads, whose counters move with
the checks, connections, store calls and credit leases they count, and that never
names a secret, a key or a workspace."""

import json
import os
import resource
import socket
import sqlite3
import threading
import time

import pytest
import requests

from conftest import LatchkeyServer, _finish, _live_servers, poll
from lkhelpers import _complete, describe, expect_status

parser = pytest.importorskip(
    "prometheus_client.parser",
    reason="python3-prometheus-client is missing: run scripts/deps.sh test")

FAMILIES = {
    # family name as the parser reports it (counters lose _total) -> type
    "latchkey_build_info": "gauge",
    "latchkey_checks": "counter",
    "latchkey_check_duration_seconds": "histogram",
    "latchkey_keys_cached": "gauge",
    "latchkey_feed_applied_seq": "gauge",
    "latchkey_feed_head_seq": "gauge",
    "latchkey_feed_lag_seconds": "gauge",
    "latchkey_feed_stale": "gauge",
    "latchkey_feed_reloads": "counter",
    "latchkey_connections_open": "gauge",
    "latchkey_loop_connections_open": "gauge",
    "latchkey_connections_accepted": "counter",
    "latchkey_accept_pauses": "counter",
    "latchkey_store_errors": "counter",
    "latchkey_store_duration_seconds": "histogram",
    "latchkey_recorder_lag_seconds": "gauge",
    "latchkey_recorder_flushes": "counter",
    "latchkey_credit_leases_outstanding": "gauge",
    "latchkey_credit_lease_operations": "counter",
}


def scrape(srv, **kw):
    r = requests.get(srv.url("/metrics"), timeout=5, **kw)
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"].startswith("text/plain"), describe(r)
    return r.text


def samples(text):
    """{(sample name, frozenset(labels)): value} through prometheus_client's parser."""
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(srv, name, **labels):
    return samples(scrape(srv)).get((name, frozenset(labels.items())), 0.0)


def checks(srv, endpoint, code):
    return value(srv, "latchkey_checks_total", endpoint=endpoint, code=code)


def test_every_family_parses_with_its_type(server):
    text = scrape(server)
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    for name, kind in FAMILIES.items():
        assert name in fams, f"/metrics lacks {name}:\n{text[:2000]}"
        assert fams[name].type == kind, f"{name} is a {fams[name].type}, not a {kind}"
    info = fams["latchkey_build_info"].samples[0]
    assert info.value == 1 and info.labels["version"] and info.labels["commit"], info
    # histograms: cumulative buckets ending in +Inf equal to the count
    for name in ("latchkey_check_duration_seconds", "latchkey_store_duration_seconds"):
        got = samples(text)
        counts = {k: v for k, v in got.items() if k[0] == name + "_count"}
        assert counts, name
        for (_, labels), count in counts.items():
            inf = got[(name + "_bucket", labels | {("le", "+Inf")})]
            assert inf == count, f"{name}{dict(labels)}: +Inf bucket {inf} != count {count}"


def test_checks_count_by_endpoint_and_outcome(server, ws):
    k = ws.create_key()
    before = {(e, c): checks(server, e, c) for e in ("verify", "auth_context")
              for c in ("valid", "invalid_key", "missing_key")}
    hist_before = value(server, "latchkey_check_duration_seconds_count", endpoint="verify")
    for _ in range(3):
        expect_status(server.verify({"key": k["secret"]}), 200)
    bad = k["secret"][:-4] + ("AAAA" if not k["secret"].endswith("AAAA") else "BBBB")
    doc = expect_status(server.verify({"key": bad}), 200)
    assert doc["valid"] is False
    expect_status(server.auth_context(k["secret"]), 200)
    r = server.get("/v1/auth-context")
    assert r.status_code == 401, describe(r)

    def moved():
        assert checks(server, "verify", "valid") - before[("verify", "valid")] == 3
        got = (checks(server, "verify", "invalid_key") - before[("verify", "invalid_key")] +
               checks(server, "verify", "malformed_key"))
        assert got >= 1
        assert checks(server, "auth_context", "valid") - before[("auth_context", "valid")] == 1
        assert (checks(server, "auth_context", "missing_key")
                - before[("auth_context", "missing_key")]) == 1
        assert (value(server, "latchkey_check_duration_seconds_count", endpoint="verify")
                - hist_before) >= 4
        return True
    # counted when the answer has left: a scrape right after may be a moment early
    poll(moved, what="check counters moving with the checks")


def test_management_calls_are_not_checks(server, ws):
    before = sum(v for (n, _), v in samples(scrape(server)).items()
                 if n == "latchkey_checks_total")
    ws.create_key()
    expect_status(server.get("/v1/keys", key=ws.root_key), 200)
    time.sleep(0.2)
    after = sum(v for (n, _), v in samples(scrape(server)).items()
                if n == "latchkey_checks_total")
    assert after == before


def test_keys_cached_and_store_calls_move(server, ws):
    keys = value(server, "latchkey_keys_cached")
    store = value(server, "latchkey_store_duration_seconds_count")
    ws.create_key()
    assert value(server, "latchkey_keys_cached") == keys + 1
    assert value(server, "latchkey_store_duration_seconds_count") > store


def test_the_feed_gauges_move_with_the_change_log(server, ws):
    seq = value(server, "latchkey_feed_applied_seq")
    ws.create_key()
    # a management call returns once its node applied the change: no wait
    assert value(server, "latchkey_feed_applied_seq") > seq
    got = samples(scrape(server))
    assert got[("latchkey_feed_head_seq", frozenset())] == \
        got[("latchkey_feed_applied_seq", frozenset())], got
    assert got[("latchkey_feed_stale", frozenset())] == 0
    assert 0 <= got[("latchkey_feed_lag_seconds", frozenset())] < 1
    assert got[("latchkey_feed_reloads_total", frozenset())] == 0


def test_connections_accepted_counts_connections_not_requests(server):
    before = value(server, "latchkey_connections_accepted_total")
    with requests.Session() as s:  # one keep-alive connection
        for _ in range(5):
            assert s.get(server.url("/healthz"), timeout=5).status_code == 200
        opened = value(server, "latchkey_connections_open")
        assert opened >= 1
    after = value(server, "latchkey_connections_accepted_total")
    # the session's one connection and the two scrapes' own
    assert after - before == 3, f"{after - before} connections for 1 session + 2 scrapes"


def test_connections_open_falls_when_clients_leave(server):
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    try:
        poll(lambda: value(server, "latchkey_connections_open") >= 5, what="4 idle connections")
    finally:
        for s in socks:
            s.close()
    poll(lambda: value(server, "latchkey_connections_open") <= 1.0,
         what="connections_open back to the scrape's own")


def loop_counts(srv):
    """Open connections of each event loop, from /metrics (the scrape's own among them)."""
    got = samples(scrape(srv))
    return sorted(v for (name, _), v in got.items() if name == "latchkey_loop_connections_open")


def test_connections_are_spread_evenly_over_the_event_loops(tmp_path):
    # The kernel hashes connections to the loops' sockets; 12 of them on 4 loops
    # rarely land 3 apiece by chance. latchkey hands each new connection to the
    # loop with the fewest, so they always do.
    srv = LatchkeyServer(tmp_path / "srv", config={"threads": 4})
    srv.start()
    _live_servers.append(srv)
    sessions = []
    try:
        for round_ in range(2):
            for _ in range(12):
                s = requests.Session()  # one keep-alive connection, held open
                sessions.append(s)
                assert s.get(srv.url("/healthz"), timeout=5).status_code == 200
            counts = loop_counts(srv)
            assert len(counts) == 4, counts
            # 12 held connections and the scrape's own
            assert counts == [3, 3, 3, 4], f"round {round_ + 1}: connections per loop {counts}"
            # Every connection served requests on the loop it was placed on.
            for s in sessions:
                assert s.get(srv.url("/healthz"), timeout=5).status_code == 200
            for s in sessions:
                s.close()
            sessions.clear()
            # The loops count closes too, or the next round would be placed unevenly.
            poll(lambda: sum(loop_counts(srv)) == 1, what="every held connection closed")
    finally:
        for s in sessions:
            s.close()
        _finish(srv)


def cpu_ticks(pid):
    """User plus system CPU time of process pid so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _healthz_on(sock):
    """GET /healthz on a kept-alive connection, read to the answer's end so the
    next request's answer starts afresh."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while not _complete(answer):
        b = sock.recv(4096)
        if not b:
            break
        answer += b
    return answer


def test_out_of_descriptors_pauses_accepting_instead_of_spinning(tmp_path):
    # At its open-files limit accept4 fails with EMFILE while the connection
    # waits in the backlog, so the listener stays readable: a loop that retried
    # at once burned a whole core (200 ticks in 2 s) until a descriptor freed.
    srv = LatchkeyServer(tmp_path / "srv")
    srv.start()
    _live_servers.append(srv)
    held = []
    try:
        pid = srv.proc.pid
        # A connection served before the limit drops: which of the later ones
        # get a descriptor depends on what else the server opens meanwhile.
        kept = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        held.append(kept)
        assert _healthz_on(kept).startswith(b"HTTP/1.1 200")
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 6, hard))  # the soft limit
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        poll(lambda: "cannot accept connections: out of file descriptors" in srv.stderr_text(),
             what="the out-of-descriptors warning")
        before = cpu_ticks(pid)
        time.sleep(2)
        spent = cpu_ticks(pid) - before
        assert spent < 50, f"{spent} ticks of CPU in 2 s while out of descriptors"
        # One warning, not one per failed accept.
        assert srv.stderr_text().count("cannot accept connections") <= 2, srv.stderr_tail()
        # The connections it could accept are served meanwhile.
        assert _healthz_on(kept).startswith(b"HTTP/1.1 200"), "an accepted connection unserved"
        for s in held:
            s.close()
        held.clear()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        # Accepting resumed: a new client is answered, and the pauses were counted.
        assert value(srv, "latchkey_accept_pauses_total") >= 1
        poll(lambda: value(srv, "latchkey_connections_open") <= 1.0,
             what="the held connections closed")
    finally:
        for s in held:
            s.close()
        _finish(srv)


def test_credit_leases_are_counted(server, ws):
    r = server.post("/v1/credits", key=ws.root_key, json={"amount": 1000})
    expect_status(r, 201)
    ops = value(server, "latchkey_credit_lease_operations_total")
    k = ws.create_key()
    doc = expect_status(server.verify({"key": k["secret"], "cost": 1}), 200)
    assert doc["valid"] is True, doc
    assert value(server, "latchkey_credit_lease_operations_total") > ops
    assert value(server, "latchkey_credit_leases_outstanding") >= 1


def test_recorder_flushes_and_lag_stays_small(server):
    n = value(server, "latchkey_recorder_flushes_total")
    poll(lambda: value(server, "latchkey_recorder_flushes_total") > n, timeout=5,
         what="a recorder flush")
    assert value(server, "latchkey_recorder_lag_seconds") < 5


@pytest.mark.sqlite_only("holds SQLite's write lock from another process (PostgreSQL outages: test_pg_faults.py)")
def test_store_errors_and_lag_show_a_locked_database(fresh_server):
    srv = fresh_server
    ws_key = srv.root_key
    k = expect_status(srv.post("/v1/keys", key=ws_key, json={"name": "x"}), 201)
    errors = value(srv, "latchkey_store_errors_total")
    lock = sqlite3.connect(str(srv.db_path), isolation_level=None, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(3):  # counts the recorder cannot write
            expect_status(srv.verify({"key": k["secret"]}), 200)
        poll(lambda: value(srv, "latchkey_store_errors_total") > errors, timeout=15,
             what="store errors while the database is locked")
        poll(lambda: value(srv, "latchkey_recorder_lag_seconds") >= 2, timeout=15,
             what="recorder lag growing while it cannot write")
    finally:
        lock.execute("COMMIT")
        lock.close()
    poll(lambda: value(srv, "latchkey_recorder_lag_seconds") < 2, timeout=15,
         what="recorder lag back down once the database is free")


def test_metrics_needs_no_credential_and_ignores_a_bad_one(server):
    scrape(server)
    scrape(server, headers={"Authorization": "Bearer lk_live_nonsense"})
    r = requests.post(server.url("/metrics"), timeout=5)
    assert r.status_code == 405, describe(r)


def test_no_secret_key_or_workspace_in_metrics(server, ws):
    k = ws.create_key(name="metrics-secret-name")
    expect_status(server.verify({"key": k["secret"]}), 200)
    expect_status(server.auth_context(k["secret"]), 200)
    requests.get(server.url("/v1/auth-context"), params={"auth_token": ws.root_key}, timeout=5)
    time.sleep(0.2)
    text = scrape(server)
    for needle in (k["secret"], k["secret"][:12], k["id"], ws.id, ws.root_key, ws.rw_key,
                   "metrics-secret-name", k.get("hint", "\0")):
        assert needle not in text, f"{needle[:12]}... appears in /metrics"


def test_parallel_scrapes_and_checks(server, ws):
    """Scrapes summing the shards while both loops count: always parseable, never
    going backwards."""
    k = ws.create_key()
    stop = threading.Event()

    def load():
        with requests.Session() as s:
            while not stop.is_set():
                s.post(server.url("/v1/verify"), json={"key": k["secret"]}, timeout=5)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        last = 0
        for _ in range(20):
            v = checks(server, "verify", "valid")
            assert v >= last
            last = v
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_forward_auth_checks_are_counted_and_logged_with_their_key(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={"failed_key_limit": "none", "log_file": str(log)})
    k = expect_status(srv.post("/v1/keys", key=srv.root_key, json={"name": "fa"}), 201)
    ok = checks(srv, "forward_auth", "valid")
    missing = checks(srv, "forward_auth", "missing_key")
    hdr = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/anything"}
    r = requests.get(srv.url("/v1/forward-auth"), timeout=5,
                     headers={**hdr, "Authorization": f"Bearer {k['secret']}"})
    assert r.status_code == 200, describe(r)
    rid = r.headers["X-Request-Id"]
    r = requests.get(srv.url("/v1/forward-auth"), headers=hdr, timeout=5)
    assert r.status_code == 401, describe(r)

    def moved():
        return (checks(srv, "forward_auth", "valid") == ok + 1 and
                checks(srv, "forward_auth", "missing_key") == missing + 1)
    poll(moved, what="forward_auth counters")

    def line():
        for x in log.read_text().splitlines():
            if x.startswith("{") and json.loads(x)["request_id"] == rid:
                return json.loads(x)
        return None
    d = poll(line, what="the forward-auth access line")
    assert d["route"].startswith("/v1/forward-auth") and d["key_id"] == k["id"], d
    assert d["code"] == "valid", d
