"""Importing keys by digest: POST /v1/keys with "sha256" (docs/http-api.md,
"Importing keys")."""

import hashlib
import secrets

import pytest

from lkhelpers import (UNDO_SQLITE_MIGRATIONS_FROM_8, assert_error, describe, expect_status,
                       flip_char, has_key, make_secret)


def sha(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def hex_secret():
    return secrets.token_hex(32)


def import_key(server, ws, secret=None, digest=None, key=None, **body):
    body.setdefault("name", "imported-" + secrets.token_hex(4))
    body["sha256"] = digest if digest is not None else sha(secret)
    return server.post("/v1/keys", key=key or ws.root_key, json=body)


def check_imported(server, ws, r, secret, name=None):
    doc = expect_status(r, 201)
    assert not has_key(doc, "secret"), f"an import answer holds a secret: {describe(r)}"
    assert secret not in r.text
    assert doc["hint"] == "imported", describe(r)
    assert doc["id"].startswith("key_") and doc["workspace_id"] == ws.id
    if name is not None:
        assert doc["name"] == name
    v = expect_status(server.verify({"key": secret}), 200)
    assert v["valid"] is True and v["code"] == "valid" and v["key_id"] == doc["id"], v
    ctx = expect_status(server.auth_context(secret), 200)
    assert ctx["key_id"] == doc["id"] and ctx["workspace_id"] == ws.id
    got = ws.get_key(doc["id"])
    assert got["hint"] == "imported" and not has_key(got, "secret")
    return doc


@pytest.mark.parametrize("prefix,env", [("lk", "live"), ("lk", "test"), ("fsk", "live")])
def test_import_latchkey_format(server, ws, prefix, env):
    s = make_secret(prefix=prefix, env=env)
    assert_error(server.auth_context(s), 401, "invalid_key")
    r = import_key(server, ws, s, environment=env)
    doc = check_imported(server, ws, r, s)
    assert doc["environment"] == env


def test_import_hex_secret(server, ws):
    s = hex_secret()
    r = import_key(server, ws, s)
    check_imported(server, ws, r, s)


def test_import_into_hex_workspace(server):
    w = server.create_workspace(key_format="hex")
    s = hex_secret()
    check_imported(server, w, import_key(server, w, s), s)


def test_import_with_name_and_settings(server, ws):
    s = make_secret()
    r = import_key(server, ws, s, name="from-flexprice", permissions=["storage:read"],
                   meta={"origin": "flexprice"})
    doc = check_imported(server, ws, r, s, name="from-flexprice")
    assert doc["permissions"] == ["storage:read"] and doc["meta"] == {"origin": "flexprice"}
    v = expect_status(server.verify({"key": s, "permissions": "storage:write"}), 200)
    assert v["valid"] is False and v["code"] == "insufficient_permissions", v


def test_import_uppercase_digest_matches(server, ws):
    """The digest is hex: either case names the same bytes, or uppercase is refused."""
    s = make_secret()
    r = import_key(server, ws, digest=sha(s).upper())
    if r.status_code == 201:
        check_imported(server, ws, r, s)
    else:
        assert_error(r, 400, "invalid_request", field="sha256")


def test_imported_key_can_be_revoked(server, ws):
    s = make_secret()
    doc = expect_status(import_key(server, ws, s), 201)
    assert server.delete(f"/v1/keys/{doc['id']}", key=ws.root_key).status_code == 204
    assert_error(server.auth_context(s), 401, "revoked_key")


def test_imported_key_by_rw_application_key(server, ws):
    s = make_secret()
    check_imported(server, ws, import_key(server, ws, s, key=ws.rw_key), s)


def test_import_refused_to_read_only_key(server, ws):
    s = make_secret()
    assert_error(import_key(server, ws, s, key=ws.ro_key), 403, "insufficient_permissions")
    assert_error(server.auth_context(s), 401, "invalid_key")


@pytest.mark.parametrize("digest", [
    "a" * 63,
    "a" * 65,
    "g" * 64,
    "z" + "0" * 63,
    "",
    " " + "a" * 63,
    "0x" + "a" * 62,
    7,
    ["a" * 64],
])
def test_bad_sha256_is_400(server, ws, digest):
    r = server.post("/v1/keys", key=ws.root_key, json={"name": "bad", "sha256": digest})
    assert_error(r, 400, "invalid_request", field="sha256")


def test_same_digest_twice_is_409(server, ws):
    s = make_secret()
    first = expect_status(import_key(server, ws, s), 201)
    r = import_key(server, ws, s)
    assert_error(r, 409, "conflict")
    v = expect_status(server.verify({"key": s}), 200)
    assert v["valid"] is True and v["key_id"] == first["id"], v


def test_same_digest_in_another_workspace_is_409(server, ws, ws2):
    """One secret must not name two keys: digests are unique across workspaces."""
    s = make_secret()
    first = expect_status(import_key(server, ws, s), 201)
    assert_error(import_key(server, ws2, s), 409, "conflict")
    v = expect_status(server.verify({"key": s}), 200)
    assert v["key_id"] == first["id"] and v["workspace_id"] == ws.id, v


def test_digest_of_an_issued_key_is_409(server, ws):
    k = ws.create_key()
    assert_error(import_key(server, ws, k["secret"]), 409, "conflict")
    v = expect_status(server.verify({"key": k["secret"]}), 200)
    assert v["key_id"] == k["id"], v


def test_sha256_with_secret_generating_fields_is_fine_but_never_returns_a_secret(server, ws):
    s = make_secret(env="test")
    r = import_key(server, ws, s, environment="test", expires_in=600)
    doc = check_imported(server, ws, r, s)
    assert doc["expires_at"] is not None


def test_import_is_in_the_list_without_secret(server, ws):
    s = make_secret()
    doc = expect_status(import_key(server, ws, s), 201)
    r = server.get("/v1/keys", key=ws.root_key, params={"limit": 100})
    listed = {k["id"]: k for k in expect_status(r, 200)["data"]}
    assert listed[doc["id"]]["hint"] == "imported"
    assert s not in r.text and sha(s) not in r.text


# -- with a pepper ---------------------------------------------------------------------------

def _serve_peppered(srv, pepper):
    """`latchkey serve` on srv's database with --pepper-file `pepper`, on a new
    port; returns the process once /healthz answers."""
    import subprocess
    import time

    import requests

    from conftest import BIN, clean_env, free_port

    srv.port = free_port()
    srv.base_url = f"http://127.0.0.1:{srv.port}"
    err = open(srv.stderr_path, "ab")
    state = [] if srv.is_sqlite() else ["--state-dir", str(srv.state_dir)]
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{srv.port}", "--db",
                             srv.db_url, "--pepper-file", str(pepper)] + state,
                            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                            env=clean_env())
    err.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited: {srv.stderr_tail()}"
        try:
            if requests.get(srv.base_url + "/healthz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"peppered server did not start: {srv.stderr_tail()}")


def _serve_with_pepper(tmp_path):
    """init + serve on a scratch database with --pepper-file; returns (server, proc)."""
    import json
    import os

    from conftest import LatchkeyServer, run_cli

    pepper = tmp_path / "pepper"
    pepper.write_bytes(os.urandom(32))
    srv = LatchkeyServer(tmp_path / "srv", init=False)
    res = run_cli(["init", "--db", srv.db_url, "--json", "--pepper-file", str(pepper)])
    assert res.returncode == 0, res.stderr
    doc = json.loads([l for l in res.stdout.splitlines() if l.startswith("{")][0])
    srv.root_key, srv.workspace_id = doc["root_key"], doc["workspace_id"]
    return srv, _serve_peppered(srv, pepper)


def test_import_under_a_pepper(tmp_path):
    srv, proc = _serve_with_pepper(tmp_path)
    try:
        w = srv.create_workspace()
        s = make_secret()
        raw = hashlib.sha256(s.encode()).digest()
        r = import_key(srv, w, s)
        doc = check_imported(srv, w, r, s)
        h = hex_secret()
        check_imported(srv, w, import_key(srv, w, h), h)
        assert_error(import_key(srv, w, s), 409, "conflict")
        assert srv.delete(f"/v1/keys/{doc['id']}", key=w.root_key).status_code == 204
        assert_error(srv.auth_context(s), 401, "revoked_key")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # stored peppered: the plain SHA-256 is nowhere in the database files
    data = srv.database_bytes()
    assert raw not in data and raw.hex().encode() not in data, \
        "the unpeppered digest is stored in the database"


def test_concurrent_imports_of_one_digest(server, ws, ws2):
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(3):
        s = make_secret()
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda w: import_key(server, w, s), [ws, ws2, ws, ws2]))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201, 409, 409, 409], [describe(r) for r in answers]
        winner = [r.json() for r in answers if r.status_code == 201][0]
        v = expect_status(server.verify({"key": s}), 200)
        assert v["valid"] is True and v["key_id"] == winner["id"], v


# -- a previous digest (grace period) is as unique as a current one ---------------------

def regenerate(server, ws, key_id, grace=600):
    r = server.post(f"/v1/keys/{key_id}/regenerate", key=ws.root_key,
                    json={"grace_period_s": grace})
    return expect_status(r, 200)


def assert_verifies_as(server, secret, key_id, ws_id):
    v = expect_status(server.verify({"key": secret}), 200)
    assert v["valid"] is True and v["key_id"] == key_id and v["workspace_id"] == ws_id, v
    ctx = expect_status(server.auth_context(secret), 200)
    assert ctx["key_id"] == key_id and ctx["workspace_id"] == ws_id, ctx


def test_previous_secret_of_another_workspace_cannot_be_imported(fresh_server):
    srv = fresh_server
    a, b = srv.create_workspace(), srv.create_workspace()
    k = a.create_key()
    new = regenerate(srv, a, k["id"])["secret"]
    old = k["secret"]
    for w in (b, a):  # another workspace, and its own
        r = import_key(srv, w, old)
        err = assert_error(r, 409, "conflict", field="sha256")
        assert old not in r.text, describe(r)
    assert all(x["hint"] != "imported" for x in b.list_keys()["data"])
    for _ in range(2):  # the old secret is still a's (in its grace), before and after a restart
        assert_verifies_as(srv, old, k["id"], a.id)
        assert_verifies_as(srv, new, k["id"], a.id)
        srv.restart()
    # a second regeneration frees the first secret; the grace one is still taken
    newer = regenerate(srv, a, k["id"])["secret"]
    assert_error(import_key(srv, b, new), 409, "conflict")
    assert_verifies_as(srv, new, k["id"], a.id)
    assert_verifies_as(srv, newer, k["id"], a.id)


def test_current_digest_of_an_imported_key_blocks_nothing_else(server, ws, ws2):
    """Regenerating an imported key keeps its digest (as the previous one) unique."""
    s = make_secret()
    doc = expect_status(import_key(server, ws, s), 201)
    regenerate(server, ws, doc["id"])
    assert_error(import_key(server, ws2, s), 409, "conflict")
    assert_verifies_as(server, s, doc["id"], ws.id)


@pytest.mark.sqlite_only("rewrites an SQLite file to the schema before SQLite migration 4")
def test_migration_settles_digests_held_twice(fresh_server):
    """A database written before digests were unique may hold one digest as one
    key's previous secret and another's current one. The migration that adds the
    unique index keeps it with the current holder and ends the other's grace, and
    the server starts with cache and database agreeing."""
    import sqlite3

    srv = fresh_server
    a, b = srv.create_workspace(), srv.create_workspace()
    victim = a.create_key()
    regenerate(srv, a, victim["id"])
    other = b.create_key()
    srv.stop()
    db = sqlite3.connect(srv.db_path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        mig = 4  # the unique-digest migration; what came after it is dropped too
        db.executescript("DROP TRIGGER key_digests_insert; DROP TRIGGER key_digests_update;"
                         "DROP TRIGGER key_digests_delete; DROP TABLE key_digests;"
                         "DROP TABLE invitations;"  # migration 5, after the one tested
                         # and migration 6 (the change log, nodes, leases)
                         "DROP TRIGGER changes_key_insert; DROP TRIGGER changes_key_update;"
                         "DROP TRIGGER changes_ws_insert; DROP TRIGGER changes_ws_update;"
                         "DROP TRIGGER changes_member_insert; DROP TRIGGER changes_member_update;"
                         "DROP TRIGGER changes_member_delete; DROP TABLE changes;"
                         "DROP TABLE nodes; DROP TABLE credit_leases;"
                         + UNDO_SQLITE_MIGRATIONS_FROM_8)
        # what an import before the fix could leave: b's key holds a's previous digest
        prev = db.execute("SELECT prev_digest FROM keys WHERE id = ?", (victim["id"],)).fetchone()[0]
        db.execute("UPDATE keys SET digest = ? WHERE id = ?", (prev, other["id"]))
        db.execute(f"PRAGMA user_version = {mig - 1}")
        db.commit()
    finally:
        db.close()
    srv.start()
    assert_verifies_as(srv, victim["secret"], other["id"], b.id)
    db = sqlite3.connect(srv.db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == version
        row = db.execute("SELECT prev_digest FROM keys WHERE id = ?", (victim["id"],)).fetchone()
        assert row[0] is None, "the doubly held previous digest was kept"
        n = db.execute("SELECT count(*) FROM key_digests WHERE digest = ?", (prev,)).fetchone()[0]
        assert n == 1
    finally:
        db.close()
    srv.restart()
    assert_verifies_as(srv, victim["secret"], other["id"], b.id)


def test_import_under_a_pepper_of_a_key_made_before_it(tmp_path):
    """A key made before a pepper was configured keeps its plain digest; importing
    that digest once the pepper is on would give the secret a second key."""
    import os

    from conftest import LatchkeyServer

    srv = LatchkeyServer(tmp_path / "srv")
    srv.start()
    try:
        a, b = srv.create_workspace(), srv.create_workspace()
        k = a.create_key()
        old = k["secret"]
        new = expect_status(srv.post(f"/v1/keys/{k['id']}/regenerate", key=a.root_key,
                                     json={"grace_period_s": 600}), 200)["secret"]
    finally:
        srv.stop()
    pepper = tmp_path / "pepper"
    pepper.write_bytes(os.urandom(32))
    srv.config = None
    proc = None
    try:
        proc = _serve_peppered(srv, pepper)
        for secret in (new, old):  # current and previous, both stored unpeppered
            r = import_key(srv, b, secret)
            assert_error(r, 409, "conflict", field="sha256")
            v = expect_status(srv.verify({"key": secret}), 200)
            assert v["valid"] is True and v["key_id"] == k["id"] and v["workspace_id"] == a.id, v
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        srv.check_sanitizers()


def test_imported_secret_with_a_wrong_checksum_stays_malformed(fresh_server):
    """A check that finds a secret latchkey made skips its checksum (right by
    construction); an imported one was made elsewhere, and a latchkey-shaped
    secret whose checksum is wrong is still refused as malformed after import,
    after a restart (the cache is then filled by a scan, not by the change),
    and as the previous secret of a key regenerated from it."""
    srv = fresh_server
    ws = srv.create_workspace()
    s = flip_char(make_secret(), -1)
    good = make_secret()  # imported with a right checksum: verifies
    kid = expect_status(import_key(srv, ws, s), 201)["id"]
    gid = expect_status(import_key(srv, ws, good), 201)["id"]

    def refused(secret):
        v = expect_status(srv.verify({"key": secret}), 200)
        assert v["valid"] is False and v["code"] == "malformed_key", v
        assert v["key_id"] is None, v
        assert_error(srv.auth_context(secret), 401, "malformed_key")

    for _ in range(2):
        refused(s)
        v = expect_status(srv.verify({"key": good}), 200)
        assert v["valid"] is True and v["key_id"] == gid, v
        srv.restart()
    # Regenerated, the new secret is latchkey's own; the imported one, kept as
    # the previous secret for the grace period, is still malformed.
    new = expect_status(srv.post(f"/v1/keys/{kid}/regenerate", key=ws.root_key,
                                 json={"grace_period_s": 600}), 200)
    for _ in range(2):
        assert expect_status(srv.verify({"key": new["secret"]}), 200)["key_id"] == kid
        refused(s)
        srv.restart()
