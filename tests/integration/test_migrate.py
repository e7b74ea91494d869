"""`latchkey migrate --from URL --to URL` (docs/operations.md, "Moving to another
database"): everything a source database holds is copied into a new, empty one
in one transaction, and a server started on the copy answers as the old one did:
old secrets verify (valid, revoked, a previous secret within its grace period),
old passwords log in, and balances, the ledger, quota, spend, usage and audit
read the same.

Sources are SQLite files (the move the command is for), whichever store the
rest of the suite runs on. Targets come from TARGETS: an SQLite file always;
PostgreSQL when LATCHKEY_TEST_PG_URL names a server whose user may create
databases (each test gets a database of its own).
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import BIN, LatchkeyServer, clean_env, poll, run_cli
from lkhelpers import assert_error, expect_status, new_email, new_password

PG_ADMIN_URL = os.environ.get("LATCHKEY_TEST_PG_URL")


def sqlite_target(tmp_path):
    return f"sqlite:{tmp_path / 'target.db'}"


def postgres_target(tmp_path):
    """A new database on LATCHKEY_TEST_PG_URL's server, for this test alone."""
    name = "lk_" + uuid.uuid4().hex[:16]  # lk_: the suite's own, dropped with the rest
    res = subprocess.run(["psql", "-X", PG_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc",
                          f"CREATE DATABASE {name}"], capture_output=True, text=True)
    assert res.returncode == 0, f"cannot create a PostgreSQL database: {res.stderr}"
    u = urlsplit(PG_ADMIN_URL)
    return urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def sqlite_server(workdir, **kw):
    """A LatchkeyServer on an SQLite file of its own, initialised, even when the
    suite runs its servers on PostgreSQL."""
    srv = LatchkeyServer(workdir, init=False, **kw)
    srv.db_url = f"sqlite:{srv.db_path}"
    srv.init()
    return srv


TARGETS = [
    pytest.param(sqlite_target, id="sqlite"),
    pytest.param(postgres_target, id="postgres", marks=pytest.mark.skipif(
        not PG_ADMIN_URL, reason="LATCHKEY_TEST_PG_URL is not set")),
]


def migrate(from_url, to_url, *extra, timeout=120):
    return run_cli(["migrate", "--from", from_url, "--to", to_url, *extra], timeout=timeout)


def migrate_ok(from_url, to_url):
    res = migrate(from_url, to_url, "--json")
    assert res.returncode == 0, f"migrate exit {res.returncode}: {res.stderr}"
    return json.loads(res.stdout)


def serve_on(tmp_path, name, db_url, config=None):
    """A latchkey serving db_url (not initialised: it is a copy)."""
    config = dict(config or {})
    if not db_url.startswith("sqlite:"):
        config["state_dir"] = str(tmp_path / name / "state")  # a node's own, beside no file
    srv = LatchkeyServer(tmp_path / name, init=False, config=config or None)
    srv.db_url = db_url
    return srv


def target_counts(url):
    """Rows of the tables a copy writes first and last, on either kind of target."""
    if url.startswith("sqlite:"):
        c = sqlite_counts(url[len("sqlite:"):])
        return {t: c[t] for t in ("workspaces", "users", "keys", "audit_events")}
    out = {}
    for t in ("workspaces", "users", "keys", "audit_events"):
        res = subprocess.run(["psql", "-X", url, "-tAc", f"SELECT count(*) FROM {t}"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        out[t] = int(res.stdout.strip())
    return out


def sqlite_counts(path, schema_may_lack=False):
    """Rows per table of an SQLite latchkey database; with schema_may_lack, a
    table not made yet counts as empty."""
    def count(db, t):
        try:
            return db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        except sqlite3.OperationalError:
            if not schema_may_lack:
                raise
            return 0
    db = sqlite3.connect(path)
    try:
        return {t: count(db, t)
                for t in ("workspaces", "keys", "users", "members", "sessions", "invitations",
                          "credit_accounts", "credit_ledger", "quota_days", "key_spend",
                          "usage_hours", "audit_events")}
    finally:
        db.close()


def write_sqlite(path, *statements):
    """Runs each statement (SQL, or SQL and its parameters) on the SQLite file at
    path, in one transaction, as a hand edit or a script would (foreign keys off,
    as sqlite3 opens by default)."""
    db = sqlite3.connect(path)
    try:
        for st in statements:
            sql, params = (st, ()) if isinstance(st, str) else st
            db.execute(sql, params)
        db.commit()
    finally:
        db.close()


def v(srv, secret, **body):
    return expect_status(srv.verify({"key": secret, **body}), 200)


def all_pages(srv, path, key, **params):
    out, cursor = [], None
    while True:
        q = dict(params, limit=100)
        if cursor:
            q["cursor"] = cursor
        doc = expect_status(srv.get(path, key=key, params=q), 200)
        out += doc["data"] if "data" in doc else doc["ledger"]
        cursor = doc.get("next_cursor")
        if not cursor:
            return out


def credits_of(srv, key):
    doc = expect_status(srv.get("/v1/credits", key=key), 200)
    ledger = all_pages(srv, "/v1/credits", key)
    return {k: doc[k] for k in ("balance", "spent", "topped_up")}, ledger


class Source:
    """A source server filled with something of every kind the store keeps."""

    def __init__(self, tmp_path):
        pepper = tmp_path / "pepper"
        pepper.write_bytes(os.urandom(32))
        self.config = {"pepper_file": str(pepper)}
        self.srv = sqlite_server(tmp_path / "source", config=self.config)
        srv = self.srv.start()
        w = self.ws = srv.create_workspace(quota=1000, test_quota=50)
        self.other = srv.create_workspace(key_prefix="zz", key_format="hex")
        k = self.keys = {}
        k["plain"] = w.create_key(permissions=["content:read"], meta={"team": "a"})
        k["limited"] = w.create_key(rate_limit={"limit": 50, "window_s": 3600},
                                    daily_spend_cap=100)
        k["temporary"] = w.create_key(kind="temporary", expires_in=3600)
        k["test"] = w.create_key(environment="test")
        k["revoked"] = w.create_key()
        k["disabled"] = w.create_key()
        k["regenerated"] = w.create_key()
        k["other"] = self.other.create_key()
        expect_status(srv.patch(f"/v1/keys/{k['disabled']['id']}", key=w.root_key,
                                json={"enabled": False}), 200)
        assert srv.delete(f"/v1/keys/{k['revoked']['id']}", key=w.root_key).status_code == 204
        self.new_secret = expect_status(
            srv.post(f"/v1/keys/{k['regenerated']['id']}/regenerate", key=w.root_key,
                     json={"grace_period_s": 3600}), 200)["secret"]
        # money: a top-up, and three checks that spend 7 each
        expect_status(srv.post("/v1/credits", key=w.root_key,
                               json={"amount": 500, "note": "invoice 1"}), 201)
        for _ in range(3):
            assert v(srv, k["limited"]["secret"], cost=7)["valid"] is True
        # use of every kind: valid live and test checks, and refusals
        for _ in range(4):
            assert v(srv, k["plain"]["secret"])["valid"] is True
        assert v(srv, k["test"]["secret"])["valid"] is True
        assert v(srv, k["revoked"]["secret"])["code"] == "revoked_key"
        assert v(srv, k["other"]["secret"])["valid"] is True
        # people: a member with a password and a live session, and an invitation
        self.email, self.password = new_email("member"), new_password()
        w.add_member(self.email, "editor", password=self.password)
        self.session = expect_status(srv.login(self.email, self.password), 200)["token"]
        self.invite_email = new_email("invited")
        self.invitation = w.invite(self.invite_email, "viewer")["token"]
        # the counts reach the store (written back every second)
        poll(lambda: credits_of(srv, w.root_key)[0] == {"balance": 479, "spent": 21,
                                                         "topped_up": 500},
             what="spending written back")
        poll(lambda: self.usage(srv, "plain") == {"valid": 4}, what="usage written back")
        self.before = self.snapshot(srv)
        assert srv.stop() == 0
        srv.check_sanitizers()

    def usage(self, srv, name):
        """A key's checks by outcome, over the answer's range."""
        doc = expect_status(srv.get(f"/v1/keys/{self.keys[name]['id']}/usage",
                                    key=self.ws.root_key), 200)
        out = {}
        for e in doc["data"]:
            for code, n in e["outcomes"].items():
                out[code] = out.get(code, 0) + n
        return out

    def snapshot(self, srv):
        """What a user sees through the API, to compare before and after."""
        w, op = self.ws, self.srv.root_key  # the operator's, from the source's init
        keys = {n: expect_status(srv.get(f"/v1/keys/{d['id']}", key=w.root_key), 200)
                for n, d in self.keys.items()
                if n != "other"}
        # The store keeps a key's last use to within a minute (the answering node
        # knows it to the second, docs/http-api.md "last_used_at precision"): a copy may show an earlier
        # second of that minute, so only whether it was used is compared.
        for k in keys.values():
            k["last_used_at"] = k.get("last_used_at") is not None
        return {
            "workspaces": expect_status(srv.get("/v1/workspaces", key=op), 200)["data"],
            "keys": keys,
            "credits": credits_of(srv, w.root_key),
            "quota": expect_status(srv.get("/v1/quota", key=w.root_key), 200),
            "usage": {n: expect_status(srv.get(f"/v1/keys/{d['id']}/usage",
                                               key=w.root_key), 200)
                      for n, d in self.keys.items() if n != "other"},
            "ws_usage": expect_status(srv.get("/v1/usage", key=w.root_key), 200),
            "audit": all_pages(srv, "/v1/audit", w.root_key),
            "operator_audit": all_pages(srv, "/v1/audit", op),
            "members": expect_status(srv.get("/v1/members", key=w.root_key), 200)["data"],
            "invitations": expect_status(srv.get("/v1/invitations", key=w.root_key),
                                         200)["data"],
        }


@pytest.fixture
def source(tmp_path):
    return Source(tmp_path)


@pytest.mark.parametrize("target", TARGETS)
def test_a_copy_answers_as_the_source_did(tmp_path, source, target):
    to_url = target(tmp_path)
    counts = migrate_ok(source.srv.db_url, to_url)
    assert counts["workspaces"] == 3 and counts["users"] == 1 and counts["members"] == 1, counts
    assert counts["sessions"] == 1 and counts["invitations"] == 1, counts
    assert counts["keys"] == 3 + 3 + 3 + 8, counts  # init's and two workspaces' own, and 8
    assert counts["credit_accounts"] >= 1 and counts["ledger"] >= 2, counts
    assert counts["quota_days"] >= 1 and counts["spend_days"] == 1, counts
    assert counts["usage_rows"] >= 4 and counts["audit_events"] > 10, counts
    assert counts["skipped"] == 0, counts

    srv = serve_on(tmp_path, "target", to_url, config=source.config).start()
    try:
        k, w = source.keys, source.ws
        # what the API shows, before any check on the copy changes last-used times
        after = source.snapshot(srv)
        before = source.before
        for part in ("workspaces", "keys", "credits", "quota", "usage", "ws_usage", "audit",
                     "operator_audit", "members", "invitations"):
            assert after[part] == before[part], f"{part} differ:\n{before[part]}\n{after[part]}"
        # every kind of key answers as before
        assert v(srv, k["plain"]["secret"])["valid"] is True
        assert v(srv, k["temporary"]["secret"])["valid"] is True
        assert v(srv, k["test"]["secret"])["environment"] == "test"
        assert v(srv, k["revoked"]["secret"])["code"] == "revoked_key"
        assert v(srv, k["disabled"]["secret"])["code"] == "inactive_key"
        assert v(srv, k["other"]["secret"])["valid"] is True
        # the regenerated key: the new secret, and the old one within its grace
        assert v(srv, source.new_secret)["key_id"] == k["regenerated"]["id"]
        old = v(srv, k["regenerated"]["secret"])
        assert old["valid"] is True and old["key_id"] == k["regenerated"]["id"], old
        # people: the old password logs in, the old session still works, the
        # invitation can still be accepted
        expect_status(srv.login(source.email, source.password), 200)
        me = srv.get("/v1/members", headers={"Authorization": f"Bearer {source.session}",
                                             "X-Latchkey-Workspace": w.id})
        assert expect_status(me, 200)["data"], me.text
        accepted = srv.accept(source.invitation, new_password())
        assert accepted["email"].lower() == source.invite_email.lower()
        # money: the balance and the day's spend of the capped key carry on
        doc = v(srv, k["limited"]["secret"], cost=1)
        assert doc["remaining_credits"] == 478, doc
        assert doc["daily_spend"]["spent"] == 22, doc
    finally:
        srv.stop()
    srv.check_sanitizers()


def rows_of(url, query):
    """The rows of query on either kind of database, as tuples of strings."""
    if url.startswith("sqlite:"):
        db = sqlite3.connect(url[len("sqlite:"):])
        try:
            return [tuple(str(x) for x in r) for r in db.execute(query)]
        finally:
            db.close()
    res = subprocess.run(["psql", "-X", url, "-tAF", "|", "-c", query],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return [tuple(line.split("|")) for line in res.stdout.splitlines() if line]


@pytest.mark.parametrize("target", TARGETS)
def test_a_copy_of_many_keys_keeps_each_one_with_its_last_use_and_usage(tmp_path, target):
    """Keys reach the target several hundred a statement: every one verifies there,
    keeps its last-used time, and its usage follows it to its new row id."""
    src = sqlite_server(tmp_path / "a")
    n = 1234  # more than two of the copy's statements
    out = tmp_path / "secrets"
    res = run_cli(["seed", "--db", src.db_url, "--count", str(n), "--out", str(out)],
                  timeout=120)
    assert res.returncode == 0, res.stderr
    db = sqlite3.connect(src.db_path)
    with db:
        db.execute("UPDATE keys SET last_used_at = 1700000000 + rowid WHERE name LIKE 'seed-%'")
        db.execute("INSERT INTO usage_hours(key_rowid, hour, code, count)"
                   " SELECT rowid, 1700002800, 0, rowid FROM keys WHERE name LIKE 'seed-%'")
    db.close()
    to_url = target(tmp_path)
    counts = migrate_ok(src.db_url, to_url)
    assert counts["keys"] == n + 3 and counts["skipped"] == 0, counts

    q = ("SELECT k.id, k.last_used_at, u.count FROM keys k JOIN usage_hours u"
         " ON u.key_rowid = k.rowid WHERE k.name LIKE 'seed-%' ORDER BY k.id")
    assert rows_of(to_url, q) == rows_of(src.db_url, q)
    assert len(rows_of(to_url, q)) == n
    # one change a key on the target's log, so nodes that start on it follow it
    assert rows_of(to_url, "SELECT count(*) FROM changes WHERE kind = 1") == [(str(n + 3),)]
    srv = serve_on(tmp_path, "target", to_url).start()
    try:
        secrets = out.read_text().splitlines()
        # keys from each of the copy's statements and either side of their edges
        sample = sorted({*range(0, n, 25), 499, 500, 999, 1000, n - 1})
        assert [i for i in sample if not v(srv, secrets[i])["valid"]] == []
    finally:
        srv.stop()
    srv.check_sanitizers()


def test_the_source_is_only_read(tmp_path, source):
    path = source.srv.db_path
    before = sqlite_counts(path)
    migrate_ok(source.srv.db_url, sqlite_target(tmp_path))
    assert sqlite_counts(path) == before


@pytest.mark.parametrize("target", TARGETS)
def test_refuses_a_target_that_is_not_empty(tmp_path, target):
    src = sqlite_server(tmp_path / "a")
    to_url = target(tmp_path)
    migrate_ok(src.db_url, to_url)
    res = migrate(src.db_url, to_url)
    assert res.returncode == 3, f"exit {res.returncode}: {res.stderr}"
    assert "not empty" in res.stderr, res.stderr
    # a workspace made on a target (by `init`) is enough
    other = sqlite_server(tmp_path / "b")
    res = migrate(src.db_url, other.db_url)
    assert res.returncode == 3 and "not empty" in res.stderr, res.stderr
    assert sqlite_counts(other.db_path)["keys"] == 3  # as init left it


def test_refuses_a_target_with_only_a_user(tmp_path):
    src = sqlite_server(tmp_path / "a")
    to = tmp_path / "t.db"
    (tmp_path / "empty.db").write_bytes(b"")  # an empty database: copying it makes the schema
    assert migrate_ok(f"sqlite:{tmp_path / 'empty.db'}", f"sqlite:{to}")["workspaces"] == 0
    write_sqlite(to, "INSERT INTO users VALUES('usr_x', 'x@example.com', 'h', 1)")
    res = migrate(src.db_url, f"sqlite:{to}")
    assert res.returncode == 3 and "users" in res.stderr, res.stderr


@pytest.mark.parametrize("args,side", [
    (["--from", "mysql://admin:hunter2@db.example/lk", "--to", "sqlite:{tmp}/t.db"], "--from"),
    (["--from", "sqlite:{src}", "--to", "mysql://admin:hunter2@db.example/lk"], "--to"),
    (["--from", "sqlite:", "--to", "sqlite:{tmp}/t.db"], "--from"),
    (["--from", "sqlite:{src}", "--to", "sqlite:"], "--to"),
    (["--from", "sqlite:{src}", "--to", "sqlite:{src}"], "--to"),
    (["--from", "{src}", "--to", "sqlite:{tmp}/t.db"], "--from"),
])
def test_refuses_bad_urls_clearly(tmp_path, args, side):
    src = sqlite_server(tmp_path / "a")
    args = [a.format(tmp=tmp_path, src=src.db_path) for a in args]
    res = run_cli(["migrate", *args])
    assert res.returncode == 2, f"exit {res.returncode}: {res.stderr}"
    assert f"latchkey: {side}" in res.stderr, res.stderr  # names the flag at fault
    assert "hunter2" not in res.stderr + res.stdout  # a URL's password is never echoed
    assert not (tmp_path / "t.db").exists()


def test_refuses_a_missing_source_without_creating_it(tmp_path):
    res = migrate(f"sqlite:{tmp_path / 'typo.db'}", sqlite_target(tmp_path))
    assert res.returncode == 2 and "no database file" in res.stderr, res.stderr
    assert not (tmp_path / "typo.db").exists()
    assert not (tmp_path / "target.db").exists()


@pytest.mark.parametrize("args", [[], ["--from", "sqlite:x.db"], ["--to", "sqlite:x.db"],
                                  ["--from", "sqlite:a", "--to", "sqlite:b", "extra"]])
def test_usage_errors(args):
    res = run_cli(["migrate", *args])
    assert res.returncode == 2 and "unknown command" not in res.stderr, res
    assert "--from" in res.stderr or "unexpected" in res.stderr, res


def test_refuses_a_source_being_served(tmp_path):
    src = sqlite_server(tmp_path / "a").start()
    try:
        res = migrate(src.db_url, sqlite_target(tmp_path))
        assert res.returncode == 4, f"exit {res.returncode}: {res.stderr}"
        assert "running" in res.stderr, res.stderr
    finally:
        src.stop()
    assert not (tmp_path / "target.db").exists() or \
        sqlite_counts(tmp_path / "target.db")["workspaces"] == 0


def test_credits_leased_by_a_killed_server_are_settled_first(tmp_path):
    """A killed server's leases are neither balance nor spent: migrate refuses,
    and after one start and stop on the source the copy's money is exact."""
    src = sqlite_server(tmp_path / "a").start()
    w = src.create_workspace()
    expect_status(src.post("/v1/credits", key=w.root_key, json={"amount": 100}), 201)
    secret = w.create_key()["secret"]
    for _ in range(5):
        assert v(src, secret, cost=3)["valid"] is True
    src.kill9()
    res = migrate(src.db_url, sqlite_target(tmp_path))
    assert res.returncode == 4, f"exit {res.returncode}: {res.stderr}"
    assert "start latchkey" in res.stderr, res.stderr  # and how to settle it
    src.start()
    assert src.stop() == 0
    migrate_ok(src.db_url, sqlite_target(tmp_path))
    srv = serve_on(tmp_path, "t", sqlite_target(tmp_path)).start()
    try:
        doc = expect_status(srv.get("/v1/credits", key=w.root_key), 200)
        # nothing acknowledged is lost: 15 spent (or set aside as lost), never more
        assert doc["topped_up"] == 100 and doc["balance"] + doc["spent"] == 100, doc
        assert doc["spent"] >= 15, doc
    finally:
        srv.stop()


def _ghost_key(db_path):
    """Appends a key whose workspace does not exist (only a hand-edited file has
    one): the target's foreign key refuses it, after everything else was written."""
    write_sqlite(db_path, (
        "INSERT INTO keys(id, workspace_id, name, environment, kind, permissions, meta, hint, "
        "enabled, created_at, digest, pepper_id) VALUES('key_ghost000000000000', "
        "'ws_nowhere', 'ghost', 0, 0, '[]', '{}', 'x', 1, 1, ?, 0)", (os.urandom(32),)))


@pytest.mark.parametrize("target", TARGETS)
def test_a_failed_copy_leaves_the_target_empty(tmp_path, source, target):
    _ghost_key(source.srv.db_path)
    to_url = target(tmp_path)
    res = migrate(source.srv.db_url, to_url)
    assert res.returncode == 1, f"exit {res.returncode}: {res.stderr}"
    assert "key_ghost000000000000" in res.stderr, res.stderr
    assert set(target_counts(to_url).values()) == {0}
    # still empty: a good source goes in now
    good = sqlite_server(tmp_path / "good")
    counts = migrate_ok(good.db_url, to_url)
    assert counts["workspaces"] == 1


def test_a_killed_copy_leaves_all_or_nothing(tmp_path):
    """kill -9 in the middle of a large copy: the target is empty or complete,
    never half, and an empty one takes the copy again."""
    src = sqlite_server(tmp_path / "a")
    n = 20000
    res = run_cli(["seed", "--db", src.db_url, "--count", str(n),
                   "--out", str(tmp_path / "secrets")], timeout=300)
    assert res.returncode == 0, res.stderr
    target = tmp_path / "target.db"
    proc = subprocess.Popen([BIN, "migrate", "--from", src.db_url, "--to", f"sqlite:{target}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=clean_env())
    # once the copy's pages spill into the target's log it is well under way
    wal = tmp_path / "target.db-wal"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and \
            not (wal.exists() and wal.stat().st_size > (1 << 20)):  # past the schema
        time.sleep(0.002)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    got = sqlite_counts(target, schema_may_lack=True)
    if killed and got["keys"] != n + 3:
        assert set(got.values()) == {0}, f"a killed copy left part of itself: {got}"
        migrate_ok(src.db_url, f"sqlite:{target}")
    assert sqlite_counts(target)["keys"] == n + 3


def test_workspace_numbers_are_kept_with_gaps(tmp_path):
    """A workspace's number is known outside (a storage folder): a source whose
    numbers have a gap keeps them, and a new workspace comes after the highest."""
    src = sqlite_server(tmp_path / "a").start()
    w = src.create_workspace()
    src.stop()
    write_sqlite(src.db_path, ("UPDATE workspaces SET rowid = 41 WHERE id = ?", (w.id,)))
    migrate_ok(src.db_url, sqlite_target(tmp_path))
    srv = serve_on(tmp_path, "t", sqlite_target(tmp_path))
    srv.root_key = src.root_key
    srv.start()
    try:
        numbers = {x["id"]: x["number"] for x in
                   expect_status(srv.get("/v1/workspaces", key=src.root_key), 200)["data"]}
        assert numbers == {src.workspace_id: 1, w.id: 41}, numbers
        assert srv.create_workspace().number == 42
    finally:
        srv.stop()


def test_counts_of_a_key_the_source_lacks_are_skipped(tmp_path):
    src = sqlite_server(tmp_path / "a")
    write_sqlite(src.db_path, "INSERT INTO usage_hours VALUES(999999, 3600, 0, 5)",
                 "INSERT INTO key_spend VALUES(999999, 1, 5)")
    counts = migrate_ok(src.db_url, sqlite_target(tmp_path))
    assert counts["skipped"] == 2 and counts["usage_rows"] == 0, counts
    res = migrate(src.db_url, f"sqlite:{tmp_path / 'other.db'}")
    assert res.returncode == 0 and "skipped 2" in res.stdout, res.stdout
