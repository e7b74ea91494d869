"""Several nodes on one database (docs/internals/feed.md): key state reaches every
node through the store's change log, a node that cannot read the log answers 503
rather than trust its cache, and credit leases belong to the node that took them,
reclaimed only once its heartbeat stopped."""

import http.client
import json
import signal
import sqlite3
import threading
import time

import pytest

from conftest import LatchkeyServer, _finish, _live_servers, free_port, run_cli
from lkhelpers import assert_error, expect_status, metric

DEADLINE = 2.0  # the feed's figure (100 ms) belongs to bench/; tests allow plenty
DEAD_AFTER = 10  # LK_NODE_DEAD_AFTER_S


class Node(LatchkeyServer):
    """A `latchkey serve` on another node's database, with its own state directory."""

    def __init__(self, workdir, first=None, state_dir=True, env=None, config=None, clock=False):
        cfg = dict(config or {})
        if state_dir:
            cfg["state_dir"] = str(workdir / "state")
        super().__init__(workdir, init=first is None, config=cfg or None, clock=clock)
        self.extra_env = dict(env or {})
        if first is not None:
            self.db_path, self.db_url = first.db_path, first.db_url
            self.root_key, self.workspace_id = first.root_key, first.workspace_id

    def _clock_env(self):
        return {**super()._clock_env(), **self.extra_env}


@pytest.fixture
def nodes(tmp_path):
    """nodes(n, **kw) -> n started nodes on one SQLite file; the first keeps its
    state beside the database (the default), the others in directories of their own."""
    made = []

    def make(n=2, env=None, config=None):
        first = Node(tmp_path / "n0", state_dir=False, config=config)
        out = [first]
        for i in range(1, n):
            out.append(Node(tmp_path / f"n{i}", first=first, env=(env or {}).get(i),
                            config=config))
        for node in out:
            node.start()
            _live_servers.append(node)
            made.append(node)
        return out

    yield make
    for node in made:
        _finish(node)


def eventually(fn, what, deadline=DEADLINE):
    """Polls fn() until it returns a true value; fails after the deadline."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    pytest.fail(f"{what} not within {deadline}s (last: {last!r})")


def code_on(node, secret):
    return expect_status(node.verify({"key": secret}), 200)["code"]


def credits(node, w):
    return expect_status(node.get("/v1/credits", key=w.root_key), 200)


def lease_rows(node):
    return [(ws, nid, int(amount)) for ws, nid, amount in
            node.sql("SELECT workspace_id, node_id, amount FROM credit_leases")]


def node_ids(node):
    return {r[0] for r in node.sql("SELECT id FROM nodes")}


def node_id_of(node):
    path = node.dir / "state" / "node" if (node.dir / "state").exists() \
        else node.db_path.with_name(node.db_path.name + ".node")
    return path.read_text().strip()


def leases_of(node, node_id):
    """The lease rows held by node_id (read through node's database)."""
    return [r for r in lease_rows(node) if r[1] == node_id]


def spending_on(node, amount, checks=1):
    """A workspace topped up with `amount` and a key that spent 5 in each of `checks`
    checks on node, which therefore holds a lease: (workspace, key, node's id)."""
    w = node.create_workspace()
    expect_status(node.post("/v1/credits", key=w.root_key, json={"amount": amount}), 201)
    k = w.create_key()
    for _ in range(checks):
        assert expect_status(node.verify({"key": k["secret"], "cost": 5}), 200)["valid"] is True
    return w, k, node_id_of(node)


def wait_reclaimed(node, node_id, what):
    """Waits until node_id holds no lease: taken back once its heartbeat stopped."""
    eventually(lambda: not leases_of(node, node_id), what, deadline=DEAD_AFTER + 10)


# -- the feed ---------------------------------------------------------------------------


def test_a_key_made_on_one_node_verifies_on_the_other_and_a_revoke_reaches_both(nodes):
    a, b = nodes(2)
    w = a.create_workspace()
    k = w.create_key()
    eventually(lambda: code_on(b, k["secret"]) == "valid", "the new key verifying on B")
    expect_status(a.delete(f"/v1/keys/{k['id']}", key=w.root_key), 204)
    # refused on the answering node at once: no wait at all
    assert code_on(a, k["secret"]) == "revoked_key"
    eventually(lambda: code_on(b, k["secret"]) == "revoked_key", "the revoke reaching B")
    # and the other way round: a change made on B reaches A
    k2 = w.create_key()
    r = b.patch(f"/v1/keys/{k2['id']}", key=w.root_key, json={"enabled": False})
    expect_status(r, 200)
    assert code_on(b, k2["secret"]) == "inactive_key"
    eventually(lambda: code_on(a, k2["secret"]) == "inactive_key", "the disable reaching A")


def test_every_key_of_a_bulk_seed_reaches_both_running_nodes(nodes):
    """`latchkey seed` writes its keys several hundred a statement (one log entry
    each, one wake-up a transaction): both running nodes learn every one."""
    a, b = nodes(2)
    n = 1234  # more than two of the seed's statements
    out = a.dir / "secrets.txt"
    res = run_cli(["seed", "--db", a.db_url, "--count", str(n), "--out", str(out)], timeout=120)
    assert res.returncode == 0, res.stderr
    secrets = out.read_text().splitlines()
    assert len(set(secrets)) == n
    # Each node applies the log in order, in batches, on its own time: the last
    # key valid on a node means that node applied all of them (waiting for B
    # alone once let A be checked mid-batch).
    for name, node in (("A", a), ("B", b)):
        eventually(lambda node=node: code_on(node, secrets[-1]) == "valid",
                   f"the last seeded key verifying on {name}")
    # keys from each of the seed's statements and either side of their edges
    sample = sorted({*range(0, n, 25), 499, 500, 999, 1000, n - 1})
    for node in (a, b):
        assert [i for i in sample if code_on(node, secrets[i]) != "valid"] == []
    # the log holds one change a seeded key, no more and no fewer
    rows = a.sql("SELECT count(*) FROM changes WHERE kind = 1 AND ref_id IN"
                 " (SELECT id FROM keys WHERE name LIKE 'seed-%')")
    assert int(rows[0][0]) == n


def test_regenerations_on_one_node_end_old_secrets_on_the_other(nodes):
    a, b = nodes(2)
    w = a.create_workspace()
    k = w.create_key()
    first = k["secret"]
    eventually(lambda: code_on(b, first) == "valid", "the key on B")
    r = a.post(f"/v1/keys/{k['id']}/regenerate", key=w.root_key, json={"grace_period_s": 3600})
    second = expect_status(r, 200)["secret"]
    eventually(lambda: code_on(b, second) == "valid", "the new secret on B")
    assert code_on(b, first) == "valid"  # in its grace period
    # a second regeneration ends the first secret's grace: B must drop it too,
    # though the change it reads names only the key
    r = a.post(f"/v1/keys/{k['id']}/regenerate", key=w.root_key, json={"grace_period_s": 3600})
    third = expect_status(r, 200)["secret"]
    eventually(lambda: code_on(b, third) == "valid", "the third secret on B")
    assert code_on(b, second) == "valid"
    assert code_on(a, first) == "invalid_key"
    eventually(lambda: code_on(b, first) == "invalid_key", "the first secret gone from B")


def test_a_workspace_quota_set_on_one_node_holds_on_the_other(nodes):
    a, b = nodes(2)
    w = a.create_workspace()
    k = w.create_key()
    r = a.patch(f"/v1/workspaces/{w.id}", key=a.root_key, json={"quota": 2})
    expect_status(r, 200)

    def over_quota():
        return code_on(b, k["secret"]) == "quota_exceeded"

    # B counts its own checks against the quota it learnt from the log
    eventually(over_quota, "the quota reaching B", deadline=DEADLINE + 1)


def test_three_nodes_follow_one_another(nodes):
    a, b, c = nodes(3)
    w = c.create_workspace()
    eventually(lambda: b.get("/v1/keys", key=w.root_key).status_code == 200,
               "C's new workspace's root key on B")
    k = w.create_key()
    for n in (a, b):
        eventually(lambda n=n: code_on(n, k["secret"]) == "valid", f"C's key on {n.dir.name}")
    expect_status(b.delete(f"/v1/keys/{k['id']}", key=w.root_key), 204)
    assert code_on(b, k["secret"]) == "revoked_key"
    for n in (a, c):
        eventually(lambda n=n: code_on(n, k["secret"]) == "revoked_key",
                   f"B's revoke on {n.dir.name}")


def test_a_node_that_cannot_read_the_log_answers_503_then_recovers(nodes, tmp_path):
    fail = tmp_path / "feed-fails"
    a, b = nodes(2, env={1: {"LATCHKEY_FEED_FAIL_FILE": str(fail)}},
                 config={"feed_stale_after_ms": 300})
    w = a.create_workspace()
    k = w.create_key()
    eventually(lambda: code_on(b, k["secret"]) == "valid", "the key on B")
    fail.write_text("")

    def unavailable():
        return b.verify({"key": k["secret"]}).status_code == 503

    eventually(unavailable, "B answering 503")
    # a revoke made meanwhile must not be answered "valid" by B
    expect_status(a.delete(f"/v1/keys/{k['id']}", key=w.root_key), 204)
    assert_error(b.verify({"key": k["secret"]}), 503, "storage_unavailable")
    assert_error(b.auth_context(w.root_key), 503, "storage_unavailable")
    assert_error(b.get("/v1/forward-auth", key=w.root_key), 503, "storage_unavailable")
    assert_error(b.get("/v1/keys", key=w.root_key), 503, "storage_unavailable")
    err = assert_error(b.get("/readyz"), 503, "storage_unavailable")
    assert "cache (stale)" in err["message"], err
    # A reads its log: it answers as ever
    assert code_on(a, k["secret"]) == "revoked_key"
    fail.unlink()
    eventually(lambda: b.verify({"key": k["secret"]}).status_code == 200, "B recovering")
    assert code_on(b, k["secret"]) == "revoked_key"
    expect_status(b.get("/v1/keys", key=w.root_key), 200)
    expect_status(b.get("/readyz"), 200)


def test_heavy_distinct_key_checks_never_make_a_node_stale(nodes):
    """A node verifying thousands of distinct keys writes a usage row and a
    last-used time for each at every flush. The feed reads the log over a
    connection of its own, so those writes never hold it past the staleness
    bound: no check answers 503, and a revoke made on the other node still
    reaches the busy one."""
    # The default bound, what a node runs with: the fault this guards against
    # (the feed waiting behind the recorder's writes on one connection) made
    # most checks 503; a tighter bound also catches a starved machine's pauses.
    a, b = nodes(2)
    n = 3000
    out = a.dir / "secrets.txt"
    res = run_cli(["seed", "--db", a.db_url, "--count", str(n), "--out", str(out)], timeout=300)
    assert res.returncode == 0, res.stderr
    secrets = out.read_text().splitlines()
    # applying 3000 changes one by one may itself outlast the bound once: wait it out
    for node in (a, b):
        eventually(lambda node=node: node.verify({"key": secrets[-1]}).json().get("code") ==
                   "valid", "the seeded keys applied", deadline=60)
    w = b.create_workspace()
    victim = w.create_key()
    host, port = a.base_url.split("//")[1].split(":")
    codes, stop = {}, threading.Event()
    lock = threading.Lock()

    def hammer(part):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i = 0
        while not stop.is_set():
            body = json.dumps({"key": part[i % len(part)]})
            conn.request("POST", "/v1/verify", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            with lock:
                codes[r.status] = codes.get(r.status, 0) + 1
            i += 1
        conn.close()

    threads = [threading.Thread(target=hammer, args=(secrets[t::4],)) for t in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(4)  # several flushes of a thousand-odd keys each
        assert code_on(a, victim["secret"]) == "valid"
        expect_status(b.delete(f"/v1/keys/{victim['id']}", key=w.root_key), 204)
        eventually(lambda: code_on(a, victim["secret"]) == "revoked_key",
                   "B's revoke reaching the busy node A")
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(codes) == {200}, codes
    assert sum(codes.values()) > n, codes  # every key checked at least once
    assert metric(a, "latchkey_feed_reloads_total") == 0


# -- how far behind the log a node is: /metrics ----------------------------------------

STALE_MS = 300  # feed_stale_after_ms of the node that loses the log


def applied(node):
    return metric(node, "latchkey_feed_applied_seq")


def lag(node):
    return metric(node, "latchkey_feed_lag_seconds")


def current(node):
    """True once node says it has every change: not stale, lag under the bound,
    nothing seen in the log that it has not applied."""
    return (metric(node, "latchkey_feed_stale") == 0 and lag(node) < STALE_MS / 1000 and
            metric(node, "latchkey_feed_head_seq") == applied(node))


def losing_the_log(nodes, tmp_path):
    """Nodes A and B on one database, B reading the log only while the file
    returned does not exist."""
    fail = tmp_path / "feed-fails"
    a, b = nodes(2, env={1: {"LATCHKEY_FEED_FAIL_FILE": str(fail)}},
                 config={"feed_stale_after_ms": STALE_MS})
    return a, b, fail


def test_metrics_show_how_far_behind_a_node_that_cannot_read_the_log_is(nodes, tmp_path):
    a, b, fail = losing_the_log(nodes, tmp_path)
    w = a.create_workspace()
    start = applied(b)
    k = w.create_key()
    # the seq B has applied rises to A's: the key's change reached B's cache
    eventually(lambda: applied(b) == applied(a) > start, "B applying A's changes")
    eventually(lambda: current(b), "B current")
    assert code_on(b, k["secret"]) == "valid"
    fail.write_text("")
    eventually(lambda: metric(b, "latchkey_feed_stale") == 1, "B's metrics saying stale")
    assert lag(b) > STALE_MS / 1000
    err = assert_error(b.get("/readyz"), 503, "storage_unavailable")
    assert "cache (stale)" in err["message"], err
    # A goes on changing keys; B stays where it was, further behind each moment
    stuck = applied(b)
    k2 = w.create_key()
    assert applied(a) > stuck
    before = lag(b)
    time.sleep(0.3)
    assert lag(b) > before
    assert applied(b) == stuck
    assert_error(b.verify({"key": k2["secret"]}), 503, "storage_unavailable")
    # readable again: B catches up, and its metrics say so
    fail.unlink()
    eventually(lambda: current(b), "B current again")
    assert applied(b) == applied(a)
    assert code_on(b, k2["secret"]) == "valid"
    expect_status(b.get("/readyz"), 200)
    assert metric(b, "latchkey_feed_reloads_total") == 0  # nothing was pruned meanwhile


def test_a_hole_in_the_log_reloads_every_key_and_is_counted(nodes, tmp_path):
    a, b, fail = losing_the_log(nodes, tmp_path)
    w = a.create_workspace()
    k = w.create_key()
    eventually(lambda: code_on(b, k["secret"]) == "valid", "the key on B")
    assert metric(b, "latchkey_feed_reloads_total") == 0
    fail.write_text("")
    # while B cannot read, A disables the key, then makes another; the log is
    # pruned before B reads it, as an hour-old log is: only its newest row stays,
    # so no change left in it says that the first key was disabled
    r = a.patch(f"/v1/keys/{k['id']}", key=w.root_key, json={"enabled": False})
    expect_status(r, 200)
    k2 = w.create_key()
    a.sql("DELETE FROM changes WHERE seq < (SELECT max(seq) FROM changes)")
    fail.unlink()
    eventually(lambda: metric(b, "latchkey_feed_reloads_total") == 1, "B counting a reload")
    eventually(lambda: current(b), "B current after the reload")
    assert applied(b) == applied(a)
    assert code_on(b, k["secret"]) == "inactive_key"
    assert code_on(b, k2["secret"]) == "valid"
    assert "reloading every key" in b.stderr_text()
    # A read its log all along: it never reloaded
    assert metric(a, "latchkey_feed_reloads_total") == 0


# -- nodes and leases -------------------------------------------------------------------


def test_two_nodes_on_one_state_directory_refuse(nodes):
    a, b = nodes(2)
    # a third node without --state-dir would share the first one's (on SQLite;
    # elsewhere it names the first one's directory)
    same = [] if a.is_sqlite() else ["--state-dir", str(a.state_dir)]
    res = run_cli(["serve", "--db", a.db_url, "--listen", f"127.0.0.1:{free_port()}"] + same,
                  timeout=20)
    assert res.returncode != 0
    assert "in use by another latchkey node" in res.stderr and "--state-dir" in res.stderr, \
        res.stderr
    res = run_cli(["serve", "--db", a.db_url, "--listen", f"127.0.0.1:{free_port()}",
                   "--state-dir", str(b.dir / "state")], timeout=20)
    assert res.returncode != 0
    assert "in use by another latchkey node" in res.stderr, res.stderr
    # neither refusal touched the running nodes
    w = a.create_workspace()
    k = w.create_key()
    eventually(lambda: code_on(b, k["secret"]) == "valid", "the key on B")


def test_a_database_that_is_not_a_file_needs_a_state_directory(tmp_path):
    res = run_cli(["serve", "--db", "postgres://127.0.0.1:1/latchkey", "--listen",
                   f"127.0.0.1:{free_port()}"], timeout=20)
    assert res.returncode != 0
    assert "--state-dir" in res.stderr, res.stderr


def test_a_killed_nodes_lease_is_reclaimed_only_after_its_heartbeat_stopped(nodes):
    a, b = nodes(2)
    w, k, a_id = spending_on(a, 1000, checks=3)
    held = leases_of(a, a_id)
    assert held and held[0][2] > 0, lease_rows(a)
    a.kill9()
    killed_at = time.monotonic()
    time.sleep(3)
    # B leaves a lease alone while its node may be alive
    assert leases_of(a, a_id) == held
    doc = credits(b, w)
    assert doc["balance"] + doc["spent"] < doc["topped_up"], doc
    wait_reclaimed(a, a_id, "A's lease reclaimed")
    assert time.monotonic() - killed_at >= DEAD_AFTER - 1
    assert a_id not in node_ids(a)
    doc = credits(b, w)
    assert doc["balance"] + doc["spent"] == doc["topped_up"] == 1000, doc
    assert doc["spent"] >= 15, doc  # all that A may have spent is spent
    assert "lease_lost" in [e["kind"] for e in doc["ledger"]]
    # B spends on, exactly
    before = doc["balance"]
    assert expect_status(b.verify({"key": k["secret"], "cost": 7}), 200)["valid"] is True
    assert credits(b, w)["balance"] == before - 7


def test_a_node_with_a_clock_ahead_leaves_a_live_nodes_lease_alone(tmp_path):
    """Heartbeats are compared as values, not against the watcher's clock: a node
    whose clock runs an hour ahead never takes a beating node for dead."""
    a = Node(tmp_path / "a", state_dir=False)
    b = Node(tmp_path / "b", first=a, clock=True)
    b._write_clock(3600)
    for n in (a, b):
        n.start()
        _live_servers.append(n)
    try:
        w, _, a_id = spending_on(a, 100)
        time.sleep(DEAD_AFTER + 3)
        assert leases_of(a, a_id), lease_rows(a)
        assert a_id in node_ids(a)
        assert "lease_lost" not in [e["kind"] for e in credits(b, w)["ledger"]]
        assert a.stop() == 0
        doc = credits(b, w)
        assert (doc["balance"], doc["spent"]) == (95, 5), doc
    finally:
        for n in (a, b):
            _finish(n)


def test_a_restarted_node_settles_its_own_lease_exactly(nodes):
    a, b = nodes(2)
    w, _, _ = spending_on(a, 1000, checks=3)
    a.kill9()
    a.start()  # the same state directory: its counter file says what it spent
    doc = credits(a, w)
    assert (doc["balance"], doc["spent"], doc["topped_up"]) == (985, 15, 1000), doc
    assert "lease_lost" not in [e["kind"] for e in doc["ledger"]]
    time.sleep(DEAD_AFTER / 2)
    doc = credits(b, w)
    assert (doc["balance"], doc["spent"]) == (985, 15), doc


def test_a_node_taken_for_dead_does_not_book_its_reclaimed_lease_again(nodes):
    a, b = nodes(2)
    w, k, a_id = spending_on(a, 1000)
    a.proc.send_signal(signal.SIGSTOP)
    try:
        wait_reclaimed(a, a_id, "A's lease reclaimed while it was stopped")
        # read while A is still stopped: once it runs again it may lease afresh
        reclaimed = credits(b, w)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    assert reclaimed["balance"] + reclaimed["spent"] == 1000, reclaimed
    # A comes back: it beats again, and books nothing twice
    eventually(lambda: a_id in node_ids(a), "A registered again", deadline=5)
    time.sleep(2)
    doc = credits(b, w)
    # nothing booked twice: spent is what the reclaim booked; A may have leased
    # afresh, and that lease is all that is missing from B's view
    assert doc["spent"] == reclaimed["spent"], (reclaimed, doc)
    a_lease = sum(r[2] for r in leases_of(a, a_id))
    assert doc["balance"] + a_lease == reclaimed["balance"], (reclaimed, doc, a_lease)
    assert "twice" in a.stderr_text() or "taken for dead" in a.stderr_text()
    # and spends on from fresh leases, exactly
    assert expect_status(a.verify({"key": k["secret"], "cost": 5}), 200)["valid"] is True
    a.stop()
    doc = credits(b, w)
    assert (doc["balance"], doc["spent"]) == (reclaimed["balance"] - 5,
                                              reclaimed["spent"] + 5), doc


def test_a_clean_stop_gives_the_lease_back_and_leaves_the_node_list(nodes):
    a, b = nodes(2)
    w, _, a_id = spending_on(a, 100)
    assert a_id in node_ids(a)
    assert a.stop() == 0
    assert a_id not in node_ids(a)
    assert not leases_of(a, a_id)
    doc = credits(b, w)
    assert (doc["balance"], doc["spent"]) == (95, 5), doc
    assert "lease_lost" not in [e["kind"] for e in doc["ledger"]]


@pytest.mark.sqlite_only("writes the SQLite file with sqlite3 (PostgreSQL's triggers: the store conformance suite)")
def test_the_change_log_is_written_in_the_changes_transaction(tmp_path):
    """A key written by any client of the database (here sqlite3 itself, as a
    restore or a script would) reaches a running node through the log."""
    srv = Node(tmp_path / "solo", state_dir=False)
    srv.start()
    _live_servers.append(srv)
    try:
        w = srv.create_workspace()
        k = w.create_key()
        con = sqlite3.connect(str(srv.db_path), timeout=5)
        with con:
            con.execute("UPDATE keys SET enabled = 0 WHERE id = ?", (k["id"],))
        seqs = con.execute("SELECT kind, ref_id FROM changes ORDER BY seq DESC LIMIT 1").fetchall()
        # last-used times are not changes
        n = con.execute("SELECT count(*) FROM changes").fetchone()[0]
        with con:
            con.execute("UPDATE keys SET last_used_at = 12345 WHERE id = ?", (k["id"],))
        assert con.execute("SELECT count(*) FROM changes").fetchone()[0] == n
        # memberships: joined, role changed, removed; each one row naming the user
        with con:
            con.execute("INSERT INTO users(id, email, password_hash, created_at) "
                        "VALUES('usr_feedtest', 'feed@example.com', 'x', 1)")
            con.execute("INSERT INTO members(workspace_id, user_id, role, created_at) "
                        "VALUES(?, 'usr_feedtest', 0, 1)", (w.id,))
            con.execute("UPDATE members SET role = 1 WHERE user_id = 'usr_feedtest'")
            con.execute("DELETE FROM members WHERE user_id = 'usr_feedtest'")
        rows = con.execute("SELECT kind, ref_id, workspace_id FROM changes WHERE seq > "
                           "(SELECT max(seq) - 3 FROM changes) ORDER BY seq").fetchall()
        assert rows == [(3, "usr_feedtest", w.id)] * 3, rows
        # a rolled-back change leaves no row: seqs stay dense
        head = con.execute("SELECT max(seq) FROM changes").fetchone()[0]
        con.execute("BEGIN")
        con.execute("UPDATE keys SET name = 'gone' WHERE id = ?", (k["id"],))
        con.execute("ROLLBACK")
        with con:
            con.execute("UPDATE workspaces SET quota = 5 WHERE id = ?", (w.id,))
        assert con.execute("SELECT seq, kind, ref_id FROM changes WHERE seq > ?",
                           (head,)).fetchall() == [(head + 1, 2, w.id)]
        con.close()
        assert seqs == [(1, k["id"])]
        eventually(lambda: code_on(srv, k["secret"]) == "inactive_key",
                   "an outside write reaching the node")
    finally:
        _finish(srv)
