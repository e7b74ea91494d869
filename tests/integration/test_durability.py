"""What survives kill -9 and restarts, and what must never be written down."""

import os
import time

import pytest

from lkhelpers import assert_error, describe, expect_status, parse_time


def poll(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {timeout}s")
        time.sleep(0.05)


def test_acknowledged_changes_survive_kill9(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    keep = w.create_key(name="keep")
    gone = w.create_key(name="gone")
    off = w.create_key(name="off")
    rot = w.create_key(name="rot")
    assert srv.delete(f"/v1/keys/{gone['id']}", key=w.root_key).status_code == 204
    expect_status(srv.patch(f"/v1/keys/{off['id']}", key=w.root_key,
                            json={"enabled": False, "name": "off2"}), 200)
    new_rot = expect_status(srv.post(f"/v1/keys/{rot['id']}/regenerate", key=w.root_key,
                                     json={}), 200)
    late = w.create_key(name="late")
    srv.kill9()
    srv.start()

    assert expect_status(srv.auth_context(keep["secret"]), 200)["key_id"] == keep["id"]
    assert expect_status(srv.auth_context(late["secret"]), 200)["key_id"] == late["id"]
    assert_error(srv.auth_context(gone["secret"]), 401, "revoked_key")
    assert_error(srv.auth_context(off["secret"]), 403, "inactive_key")
    assert w.get_key(off["id"])["name"] == "off2"
    assert_error(srv.auth_context(rot["secret"]), 401, "revoked_key")
    expect_status(srv.auth_context(new_rot["secret"]), 200)
    # the workspace itself, and its operator, survived too
    assert expect_status(srv.auth_context(w.root_key), 200)["workspace_id"] == w.id
    ids = {x["id"] for x in expect_status(srv.get("/v1/workspaces", key=srv.root_key),
                                          200)["data"]}
    assert w.id in ids


def test_kill9_right_after_create_in_operator_workspace(fresh_server):
    srv = fresh_server
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "fast"})
    k = expect_status(r, 201)
    r = srv.delete(f"/v1/keys/{k['id']}", key=srv.root_key)
    assert r.status_code == 204, describe(r)
    k2 = expect_status(srv.post("/v1/keys", key=srv.root_key, json={"name": "fast2"}), 201)
    srv.kill9()
    srv.start()
    assert_error(srv.auth_context(k["secret"]), 401, "revoked_key")
    expect_status(srv.auth_context(k2["secret"]), 200)


@pytest.mark.parametrize("idle_connection", [False, True])
def test_sigterm_exits_cleanly(fresh_server, idle_connection):
    import requests
    with requests.Session() as s:
        if idle_connection:
            # a client keeping its connection open, as every HTTP client library does
            assert s.get(fresh_server.url("/healthz"), timeout=10).status_code == 200
        code = fresh_server.stop()
    assert code == 0, f"latchkey serve exited with {code} on SIGTERM; " \
                      f"stderr: {fresh_server.stderr_tail()}"


def test_no_secret_written_anywhere(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    made = [w.create_key(name=f"s{i}") for i in range(3)]
    test_key = w.create_key(environment="test")
    h = srv.create_workspace(key_format="hex")
    hex_key = h.create_key()
    expect_status(srv.auth_context(hex_key["secret"]), 200)
    secrets = [srv.root_key, w.root_key, w.rw_key, w.ro_key, test_key["secret"],
               h.root_key, h.rw_key, h.ro_key, hex_key["secret"]]
    secrets += [k["secret"] for k in made]
    # use them every way a key can arrive, good and bad
    expect_status(srv.get("/v1/auth-context", params={"auth_token": made[0]["secret"]}), 200)
    expect_status(srv.get("/v1/auth-context", headers={"X-API-Key": made[1]["secret"]}), 200)
    expect_status(srv.get("/v1/auth-context", headers={"X-AUTH-TOKEN": made[2]["secret"]}), 200)
    expect_status(srv.verify({"key": test_key["secret"], "environment": "live"}), 200)
    expect_status(srv.get("/v1/keys", key=w.rw_key), 200)
    expect_status(srv.get("/v1/keys", key=w.ro_key), 200)
    regen = expect_status(srv.post(f"/v1/keys/{made[0]['id']}/regenerate", key=w.root_key,
                                   json={"grace_period_s": 60}), 200)
    secrets.append(regen["secret"])
    expect_status(srv.auth_context(regen["secret"]), 200)
    expect_status(srv.auth_context(made[0]["secret"]), 200)
    assert srv.delete(f"/v1/keys/{made[1]['id']}", key=w.root_key).status_code == 204
    srv.auth_context(made[1]["secret"])
    srv.get("/v1/auth-context", headers={"X-API-Key": made[2]["secret"],
                                         "X-AUTH-TOKEN": made[1]["secret"]})
    srv.post("/v1/keys", key=w.root_key, data=b"{broken " + made[2]["secret"].encode(),
             headers={"Content-Type": "application/json"})
    assert srv.stop() is not None

    needles = []
    for s in secrets:
        needles.append(s.encode())
        if s.count("_") >= 2:
            needles.append(s[-49:-6].encode())  # the random body alone
    leaks = []
    for root, _dirs, files in os.walk(srv.dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            for n in needles:
                if n in data:
                    leaks.append(f"{path} holds {n[:14].decode()}...")
    if not srv.is_sqlite():
        data = srv.database_bytes()
        leaks += [f"the database holds {n[:14].decode()}..." for n in needles if n in data]
    assert not leaks, "secrets written in clear:\n" + "\n".join(leaks)
    if not srv.is_sqlite():
        return  # the counter file is kept beside an SQLite file only
    files = sorted(os.listdir(srv.dir))
    assert "latchkey.db" in files, files
    # the counter file (scanned above too) holds counts only, and only for its owner
    assert "latchkey.db.counters" in files, files
    assert os.stat(os.path.join(srv.dir, "latchkey.db.counters")).st_mode & 0o077 == 0


def test_last_used_at_is_recorded_and_kept(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    k = w.create_key()
    assert w.get_key(k["id"])["last_used_at"] is None
    expect_status(srv.auth_context(k["secret"]), 200)
    used = poll(lambda: w.get_key(k["id"])["last_used_at"], 2.5, "last_used_at")
    srv.restart()
    assert w.get_key(k["id"])["last_used_at"] == used


def test_last_used_at_is_stored_once_a_minute_and_answered_to_the_second(clock_server):
    """The node answers a key's last check to the second from memory; the store
    is written when a check falls in a later minute than the stored one, so with
    keys checked at random the writer does not rewrite the keys table every
    second. After a kill -9 the stored time is at most a minute (and a flush)
    behind the last check."""
    srv = clock_server
    srv.set_clock((int(time.time()) // 60 + 1) * 60 + 5)  # 5 s into a minute
    w = srv.create_workspace()
    k = w.create_key()

    def stored():
        # COALESCE: psql prints a NULL as an empty line, which reads as no row
        rows = srv.sql(f"SELECT COALESCE(last_used_at, 0) FROM keys WHERE id = '{k['id']}'")
        return int(rows[0][0])

    # The recorder writes every second, and under load every 10 T after a write
    # that took T, up to 10 s (docs/internals/limits.md, "The recorder").
    flushed = 12
    expect_status(srv.verify({"key": k["secret"]}), 200)
    first = poll(stored, flushed, "the first check's time stored")
    srv.advance_clock(20)
    expect_status(srv.verify({"key": k["secret"]}), 200)
    answered = parse_time(w.get_key(k["id"])["last_used_at"]) - first
    assert 20 <= answered < 23, answered  # from memory, to the second
    time.sleep(2.5)  # two flushes
    assert stored() == first, "a check in the same minute rewrote the stored time"
    srv.advance_clock(60)
    expect_status(srv.verify({"key": k["secret"]}), 200)
    later = poll(lambda: stored() > first and stored(), flushed, "the next minute's check")
    assert later - first >= 60
    srv.kill9()
    srv.start()
    lost = srv.now() - parse_time(w.get_key(k["id"])["last_used_at"])
    assert 0 <= lost < 61, lost


def test_last_used_at_flushed_on_sigterm(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    k = w.create_key()
    v = expect_status(srv.verify({"key": k["secret"]}), 200)
    assert v["valid"] is True
    srv.restart()
    assert w.get_key(k["id"])["last_used_at"] is not None, \
        "usage recorded before a clean stop was lost"


def test_unused_key_has_no_last_used(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    used, idle = w.create_key(), w.create_key()
    expect_status(srv.auth_context(used["secret"]), 200)
    poll(lambda: w.get_key(used["id"])["last_used_at"], 2.5, "last_used_at")
    assert w.get_key(idle["id"])["last_used_at"] is None


def test_concurrent_writes_survive_kill9(fresh_server):
    from concurrent.futures import ThreadPoolExecutor
    srv = fresh_server
    w = srv.create_workspace()
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: w.create_key(name=f"k{i}"), range(40)))
        doomed = made[::2]
        codes = list(pool.map(
            lambda k: srv.delete(f"/v1/keys/{k['id']}", key=w.root_key).status_code, doomed))
    assert codes == [204] * len(doomed)
    srv.kill9()
    srv.start()
    gone = {k["id"] for k in doomed}
    for k in made:
        r = srv.auth_context(k["secret"])
        if k["id"] in gone:
            assert_error(r, 401, "revoked_key")
        else:
            assert expect_status(r, 200)["key_id"] == k["id"]
    listed = {x["id"] for x in w.list_keys(limit=100)["data"]}
    assert {k["id"] for k in made} <= listed


def test_restart_keeps_listing_and_fields(fresh_server):
    srv = fresh_server
    w = srv.create_workspace(key_prefix="dur")
    k = w.create_key(name="fields", environment="test", permissions=["a:b"],
                     meta={"x": [1, 2]}, rate_limit={"limit": 3, "window_s": 9},
                     daily_spend_cap=11, expires_in=9000)
    before = w.get_key(k["id"])
    page = w.list_keys()
    srv.restart()
    assert w.get_key(k["id"]) == before
    assert w.list_keys() == page
    assert expect_status(srv.auth_context(k["secret"]), 200)["permissions"] == ["a:b"]
    ws = {x["id"]: x for x in expect_status(srv.get("/v1/workspaces", key=srv.root_key),
                                            200)["data"]}
    assert ws[w.id]["key_prefix"] == "dur"


def test_sigint_exits_cleanly(fresh_server):
    import signal

    import requests
    with requests.Session() as s:
        assert s.get(fresh_server.url("/healthz"), timeout=10).status_code == 200
        code = fresh_server.stop(sig=signal.SIGINT)
    assert code == 0, f"latchkey serve exited with {code} on SIGINT; " \
                      f"stderr: {fresh_server.stderr_tail()}"


def test_kill9_under_load_loses_no_acknowledged_key(fresh_server):
    import threading

    import requests
    srv = fresh_server
    w = srv.create_workspace()
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def writer(n):
        with requests.Session() as s:
            i = 0
            while not stop.is_set():
                try:
                    r = s.post(srv.url("/v1/keys"), json={"name": f"w{n}-{i}"}, timeout=5,
                               headers={"Authorization": "Bearer " + w.root_key})
                except requests.RequestException:
                    return
                if r.status_code == 201:
                    with lock:
                        acked.append(r.json())
                i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 20, f"only {len(acked)} keys created before the kill"
    srv.start()
    listed = {x["id"] for x in list_all_keys(srv, w.root_key)}
    lost = [k["id"] for k in acked if k["id"] not in listed]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged keys lost: {lost[:5]}"
    for k in acked[-5:]:
        expect_status(srv.auth_context(k["secret"]), 200)


def list_all_keys(srv, key):
    out, cursor = [], None
    for _ in range(100):
        params = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        doc = expect_status(srv.get("/v1/keys", key=key, params=params), 200)
        out += doc["data"]
        cursor = doc["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("pagination does not end")


def test_grace_period_and_new_workspace_survive_kill9(fresh_server):
    srv = fresh_server
    w = srv.create_workspace(key_prefix="gr")
    k = w.create_key()
    new = expect_status(srv.post(f"/v1/keys/{k['id']}/regenerate", key=w.root_key,
                                 json={"grace_period_s": 3600}), 200)
    srv.kill9()
    srv.start()
    assert expect_status(srv.auth_context(k["secret"]), 200)["key_id"] == k["id"]
    assert expect_status(srv.auth_context(new["secret"]), 200)["key_id"] == k["id"]
    for secret in (w.root_key, w.rw_key, w.ro_key):
        assert expect_status(srv.auth_context(secret), 200)["workspace_id"] == w.id
    more = w.create_key()
    assert more["secret"].startswith("gr_live_")


@pytest.mark.sqlite_only("holds SQLite's write lock from another process (PostgreSQL outages: test_pg_faults.py)")
def test_locked_database_gives_503_and_does_not_stall_verification(fresh_server):
    """Another process holds the database's write lock (a backup, an operator's
    sqlite3 shell). Writes must answer 503 storage_unavailable rather than hang and
    change nothing, and verification, which never needs the database, must keep
    answering at once."""
    import sqlite3
    import threading

    import requests
    srv = fresh_server
    w = srv.create_workspace()
    k = w.create_key()
    victim = w.create_key()
    auth = {"Authorization": "Bearer " + w.root_key}
    results = {}

    def create():
        results["create"] = requests.post(srv.url("/v1/keys"), json={"name": "blocked"},
                                          headers=auth, timeout=20)

    def revoke():
        results["delete"] = requests.delete(srv.url(f"/v1/keys/{victim['id']}"),
                                            headers=auth, timeout=20)

    lock = sqlite3.connect(str(srv.db_path), isolation_level=None, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    writers = [threading.Thread(target=create), threading.Thread(target=revoke)]
    try:
        for t in writers:
            t.start()
        time.sleep(0.2)  # let both writes reach the lock
        latencies = []
        for _ in range(6):
            t0 = time.monotonic()
            v = requests.post(srv.url("/v1/verify"), json={"key": k["secret"]}, timeout=20)
            latencies.append(round(time.monotonic() - t0, 2))
            assert v.status_code == 200 and v.json()["valid"] is True, describe(v)
        for t in writers:
            t.join(25)
    finally:
        lock.execute("COMMIT")
        lock.close()
    assert set(results) == {"create", "delete"}, f"a write hung or raised: {results}"
    assert_error(results["create"], 503, "storage_unavailable")
    assert_error(results["delete"], 503, "storage_unavailable")
    assert max(latencies) < 1.5, \
        f"verification stalled behind a locked database: latencies {latencies} s"
    # a refused write changed nothing, now or after a restart
    assert "blocked" not in {x["name"] for x in w.list_keys()["data"]}
    expect_status(srv.auth_context(victim["secret"]), 200)
    srv.restart()
    expect_status(srv.auth_context(victim["secret"]), 200)
    assert w.get_key(victim["id"])["status"] == "active"
    w.create_key(name="after")
