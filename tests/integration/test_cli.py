"""The latchkey command line: init, serve's first run, and the keys verbs over HTTP."""

import json
import re
import subprocess
import time
import warnings

import pytest

from conftest import BIN, LatchkeyServer, clean_env, free_port, run_cli
from lkhelpers import SECRET_RE, assert_error, expect_status, has_key

ANY_SECRET = re.compile(r"[a-z][a-z0-9_]{0,15}_(?:live|test)_[0-9A-Za-z]{49}")


def cli(server, token, *args, **kw):
    env = clean_env(LATCHKEY_URL=server.base_url, LATCHKEY_TOKEN=token)
    return run_cli(list(args), env=env, **kw)


def ok_json(res):
    assert res.returncode == 0, f"exit {res.returncode}; stderr: {res.stderr!r}"
    try:
        return json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"stdout is not one JSON document: {res.stdout!r}")


def failed(res):
    assert res.returncode != 0, f"expected failure, exit 0; stdout: {res.stdout!r}"
    assert res.stderr.strip(), "failure without a message on stderr"


def test_init_json_on_fresh_db(tmp_path):
    db = f"sqlite:{tmp_path / 'fresh.db'}"
    res = run_cli(["init", "--db", db, "--json"])
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, f"init --json must print one line: {res.stdout!r}"
    doc = json.loads(lines[0])
    assert set(doc) >= {"workspace_id", "root_key"}, doc
    assert doc["workspace_id"].startswith("ws_")
    assert SECRET_RE.match(doc["root_key"]) and doc["root_key"].startswith("lk_live_")
    assert doc["root_key"] not in res.stderr


def test_init_refuses_second_time(server):
    before = expect_status(server.get("/v1/workspaces", key=server.root_key), 200)
    for args in (["init", "--db", server.db_url, "--json"], ["init", "--db", server.db_url]):
        res = run_cli(args)
        failed(res)
        assert not ANY_SECRET.search(res.stdout + res.stderr), \
            f"a refused init printed a key: {res.stdout!r} {res.stderr!r}"
    after = expect_status(server.get("/v1/workspaces", key=server.root_key), 200)
    assert before == after
    ctx = expect_status(server.auth_context(server.root_key), 200)
    assert ctx["workspace_id"] == server.workspace_id and ctx["kind"] == "root"


def test_init_refuses_when_server_stopped_too(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv")
    res = run_cli(["init", "--db", srv.db_url, "--json"])
    failed(res)
    srv.start()
    try:
        ctx = expect_status(srv.auth_context(srv.root_key), 200)
        assert ctx["workspace_id"] == srv.workspace_id
        ws = expect_status(srv.get("/v1/workspaces", key=srv.root_key), 200)["data"]
        assert [w["id"] for w in ws] == [srv.workspace_id]
    finally:
        srv.stop()
        srv.check_sanitizers()


def test_serve_on_empty_db_initialises_and_prints_root_key(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv", init=False)
    srv.start()
    try:
        deadline = time.monotonic() + 3
        found = None
        while time.monotonic() < deadline and not found:
            found = ANY_SECRET.search(srv.stdout_path.read_text(errors="replace"))
            time.sleep(0.05)
        if not found:
            # stdout to a file may be block-buffered; the key must at least be there
            # once the server has stopped.
            srv.stop()
            found = ANY_SECRET.search(srv.stdout_path.read_text(errors="replace"))
            assert found, f"serve on an empty database printed no root key: " \
                          f"{srv.stdout_path.read_text()!r}"
            warnings.warn("serve printed the root key only at exit (stdout not flushed)")
            srv.start()
        ctx = expect_status(srv.auth_context(found.group(0)), 200)
        assert ctx["kind"] == "root"
        expect_status(srv.get("/v1/workspaces", key=found.group(0)), 200)
    finally:
        srv.stop()
        srv.check_sanitizers()


def test_keys_create_json(server, ws):
    doc = ok_json(cli(server, ws.root_key, "keys", "create", "--name", "x", "--json"))
    assert doc["name"] == "x" and doc["id"].startswith("key_")
    assert SECRET_RE.match(doc["secret"]), doc
    assert doc["workspace_id"] == ws.id
    ctx = expect_status(server.auth_context(doc["secret"]), 200)
    assert ctx["key_id"] == doc["id"]


def test_keys_flags_instead_of_env(server, ws):
    res = run_cli(["keys", "create", "--name", "flags", "--json",
                   "--server", server.base_url, "--token", ws.root_key])
    doc = ok_json(res)
    assert doc["name"] == "flags"
    expect_status(server.auth_context(doc["secret"]), 200)


def test_keys_list_json(server, ws):
    k = ws.create_key(name="listed")
    doc = ok_json(cli(server, ws.root_key, "keys", "list", "--json"))
    assert isinstance(doc.get("data"), list), doc
    assert k["id"] in {x["id"] for x in doc["data"]}
    assert not has_key(doc, "secret")


def test_keys_list_human_table(server, ws):
    k = ws.create_key(name="tabled")
    res = cli(server, ws.root_key, "keys", "list")
    assert res.returncode == 0, res.stderr
    assert k["id"] in res.stdout, res.stdout
    assert "tabled" in res.stdout
    assert not res.stdout.lstrip().startswith("{"), "human output is JSON"
    assert len(res.stdout.strip().splitlines()) >= 2, res.stdout


def test_keys_get_json(server, ws):
    k = ws.create_key(name="got")
    doc = ok_json(cli(server, ws.root_key, "keys", "get", k["id"], "--json"))
    assert doc["id"] == k["id"] and doc["name"] == "got"
    assert not has_key(doc, "secret") and k["secret"] not in json.dumps(doc)


def test_keys_get_human(server, ws):
    k = ws.create_key(name="human")
    res = cli(server, ws.root_key, "keys", "get", k["id"])
    assert res.returncode == 0, res.stderr
    assert k["id"] in res.stdout and k["secret"] not in res.stdout


def test_keys_revoke(server, ws):
    k = ws.create_key()
    res = cli(server, ws.root_key, "keys", "revoke", k["id"])
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr!r}"
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")
    assert ws.get_key(k["id"])["status"] == "revoked"


def test_keys_regenerate_json(server, ws):
    k = ws.create_key()
    doc = ok_json(cli(server, ws.root_key, "keys", "regenerate", k["id"], "--json"))
    assert doc["id"] == k["id"] and doc["secret"] != k["secret"]
    expect_status(server.auth_context(doc["secret"]), 200)
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")


def test_bad_token_fails_with_message(server, ws):
    res = cli(server, "lk_live_not-a-key", "keys", "list", "--json")
    failed(res)
    res = cli(server, ws.ro_key, "keys", "create", "--name", "nope", "--json")
    failed(res)
    names = {x["name"] for x in ws.list_keys()["data"]}
    assert "nope" not in names


def test_unknown_id_fails_with_message(server, ws):
    for verb in ("get", "revoke", "regenerate"):
        res = cli(server, ws.root_key, "keys", verb, "key_doesnotexist0000")
        failed(res)


def test_missing_token_fails(server):
    res = run_cli(["keys", "list"], env=clean_env(LATCHKEY_URL=server.base_url))
    failed(res)


def test_unreachable_server_fails_fast(ws):
    env = clean_env(LATCHKEY_URL=f"http://127.0.0.1:{free_port()}", LATCHKEY_TOKEN=ws.root_key)
    t0 = time.monotonic()
    res = run_cli(["keys", "list"], env=env, timeout=30)
    failed(res)
    assert time.monotonic() - t0 < 20


def test_unknown_command_fails(server):
    res = run_cli(["frobnicate"])
    failed(res)


def test_keys_create_human_shows_secret_once(server, ws):
    res = cli(server, ws.root_key, "keys", "create", "--name", "human-made")
    assert res.returncode == 0, res.stderr
    m = ANY_SECRET.search(res.stdout)
    assert m, f"keys create printed no secret: {res.stdout!r}"
    ctx = expect_status(server.auth_context(m.group(0)), 200)
    assert ctx["name"] == "human-made"
    assert ctx["key_id"] in res.stdout


def test_serve_refuses_a_busy_port(server, ws):
    """A second server on a port already served must stop with a message. If it
    shares the port instead, connections are split between two processes and a key
    revoked through one is still accepted by the other."""
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{server.port}", "--db", server.db_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), text=True)
    try:
        code = proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        code = None
    if code is None:
        # show what a user would see, then stop the intruder
        k = ws.create_key()
        assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
        answers = [server.auth_context(k["secret"]).status_code for _ in range(16)]
        proc.terminate()
        proc.communicate(timeout=10)
        pytest.fail("a second `latchkey serve` on a busy port kept running; after a "
                    f"204 revoke the key answered {answers}")
    _, err = proc.communicate(timeout=10)
    assert code != 0 and err.strip(), f"exit {code}, stderr {err!r}"
    expect_status(server.get("/healthz"), 200)


def test_serve_refuses_an_unusable_database(tmp_path):
    res = run_cli(["serve", "--listen", f"127.0.0.1:{free_port()}",
                   "--db", f"sqlite:{tmp_path}/no/such/dir/x.db"], timeout=20)
    failed(res)
    res = run_cli(["init", "--db", f"sqlite:{tmp_path}/no/such/dir/x.db"], timeout=20)
    failed(res)
    res = run_cli(["init", "--db", "mysql://nowhere/x"], timeout=20)
    failed(res)


# -- the options README.md documents ----------------------------------------------------

def test_keys_create_with_options(server, ws):
    doc = ok_json(cli(server, ws.root_key, "keys", "create", "--name", "full", "--env", "test",
                      "--permission", "storage:read", "--permission", "workflows:execute",
                      "--expires-in", "600", "--rate-limit", "10/60",
                      "--daily-spend-cap", "50", "--meta", '{"team": "ops"}', "--json"))
    assert doc["environment"] == "test" and doc["secret"].startswith("lk_test_")
    assert doc["permissions"] == ["storage:read", "workflows:execute"]
    assert doc["expires_at"] is not None
    assert doc["rate_limit"] == {"limit": 10, "window_s": 60}
    assert doc["daily_spend_cap"] == 50 and doc["meta"] == {"team": "ops"}
    got = ws.get_key(doc["id"])
    assert got["permissions"] == doc["permissions"] and got["meta"] == {"team": "ops"}


def test_keys_create_temporary_too_long_fails(server, ws):
    before = len(ws.list_keys()["data"])
    failed(cli(server, ws.root_key, "keys", "create", "--name", "t", "--kind", "temporary",
               "--expires-in", "90000", "--json"))
    assert len(ws.list_keys()["data"]) == before


def test_keys_list_filters_and_paging(server, ws):
    t = ws.create_key(environment="test")
    r = ws.create_key()
    assert server.delete(f"/v1/keys/{r['id']}", key=ws.root_key).status_code == 204
    doc = ok_json(cli(server, ws.root_key, "keys", "list", "--env", "test", "--json"))
    assert [k["id"] for k in doc["data"]] == [t["id"]]
    doc = ok_json(cli(server, ws.root_key, "keys", "list", "--status", "revoked", "--json"))
    assert [k["id"] for k in doc["data"]] == [r["id"]]
    first = ok_json(cli(server, ws.root_key, "keys", "list", "--limit", "1", "--json"))
    assert len(first["data"]) == 1 and first.get("next_cursor")
    second = ok_json(cli(server, ws.root_key, "keys", "list", "--limit", "1",
                         "--cursor", first["next_cursor"], "--json"))
    assert len(second["data"]) == 1 and second["data"][0]["id"] != first["data"][0]["id"]


def test_keys_regenerate_with_grace(server, ws):
    k = ws.create_key()
    doc = ok_json(cli(server, ws.root_key, "keys", "regenerate", k["id"], "--grace", "60",
                      "--json"))
    expect_status(server.auth_context(doc["secret"]), 200)
    expect_status(server.auth_context(k["secret"]), 200)


def test_workspaces_verbs(server):
    doc = ok_json(cli(server, server.root_key, "workspaces", "create", "--name", "cli-ws",
                      "--prefix", "clw", "--json"))
    assert doc["root_key"].startswith("clw_live_") and doc["name"] == "cli-ws"
    assert expect_status(server.auth_context(doc["root_key"]), 200)["workspace_id"] == doc["id"]
    listed = ok_json(cli(server, server.root_key, "workspaces", "list", "--json"))
    assert doc["id"] in {w["id"] for w in listed["data"]}
    hexed = ok_json(cli(server, server.root_key, "workspaces", "create", "--name", "h",
                        "--format", "hex", "--json"))
    assert re.match(r"^[0-9a-f]{64}$", hexed["root_key"])
    res = cli(server, server.root_key, "workspaces", "list")
    assert res.returncode == 0 and doc["id"] in res.stdout and "clw" in res.stdout


def test_workspaces_create_needs_the_operator(server, ws):
    failed(cli(server, ws.root_key, "workspaces", "create", "--name", "nope", "--json"))
    names = {w["name"] for w in expect_status(server.get("/v1/workspaces",
                                                         key=server.root_key), 200)["data"]}
    assert "nope" not in names


def test_secret_not_echoed_by_failing_cli(server, ws):
    k = ws.create_key()
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    res = cli(server, k["secret"], "keys", "list")
    failed(res)
    assert k["secret"] not in res.stdout + res.stderr
    assert "revoked" in res.stderr.lower()


def test_seed_writes_secrets_that_verify(make_server):
    """`latchkey seed` (benchmarks): N live keys in the first workspace, their secrets
    in a new owner-only file, one a line, each valid once `serve` starts."""
    import os
    import stat
    srv = make_server(start=False)
    out = srv.dir / "secrets.txt"
    res = run_cli(["seed", "--db", srv.db_url, "--count", "5", "--out", str(out)])
    assert res.returncode == 0, res.stderr
    assert srv.workspace_id in res.stdout, res.stdout
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    secrets = out.read_text().splitlines()
    assert len(secrets) == 5 and len(set(secrets)) == 5
    assert all(SECRET_RE.match(s) for s in secrets), secrets
    srv.start()
    for s in secrets:
        v = expect_status(srv.verify({"key": s}), 200)
        assert v["valid"] is True and v["workspace_id"] == srv.workspace_id, v
    listed = {k["name"] for k in expect_status(
        srv.get("/v1/keys", key=srv.root_key, params={"limit": 100}), 200)["data"]}
    assert {f"seed-{i}" for i in range(5)} <= listed, listed


def test_seed_without_a_workspace_says_so(tmp_path):
    res = run_cli(["seed", "--db", f"sqlite:{tmp_path / 'empty.db'}", "--count", "2",
                   "--out", str(tmp_path / "s.txt")])
    assert res.returncode != 0 and "no workspace" in res.stderr, res.stderr
