"""What survives kill -9 and restarts, and what must never be written down."""

import os
import time

import pytest

from lkhelpers import assert_error, describe, expect_status


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
    secrets = [srv.root_key, w.root_key, w.rw_key, w.ro_key, test_key["secret"]]
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
    assert not leaks, "secrets written in clear:\n" + "\n".join(leaks)
    files = sorted(os.listdir(srv.dir))
    assert "latchkey.db" in files, files


def test_last_used_at_is_recorded_and_kept(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    k = w.create_key()
    assert w.get_key(k["id"])["last_used_at"] is None
    expect_status(srv.auth_context(k["secret"]), 200)
    used = poll(lambda: w.get_key(k["id"])["last_used_at"], 2.5, "last_used_at")
    srv.restart()
    assert w.get_key(k["id"])["last_used_at"] == used


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
