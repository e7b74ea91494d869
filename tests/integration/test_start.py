"""A start that cannot serve changes nothing: `serve` binds its port before it opens
the database, so a taken port never creates the first workspace and prints a root
key that the next start would not print again."""

import socket
import sqlite3

from conftest import LatchkeyServer, run_cli
from lkhelpers import expect_status
from test_cli import ANY_SECRET


def occupied_port():
    """A listening socket on a free port; the caller closes it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def workspace_count(srv):
    if not srv.is_sqlite():
        if srv.sql("SELECT to_regclass('workspaces') IS NULL") == [("t",)]:
            return 0
        return int(srv.sql("SELECT count(*) FROM workspaces")[0][0])
    db_path = srv.db_path
    if not db_path.exists():
        return 0
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        has = con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'workspaces'")
        if has.fetchone()[0] == 0:
            return 0
        return con.execute("SELECT count(*) FROM workspaces").fetchone()[0]
    finally:
        con.close()


def snapshot(srv):
    return srv.db_path.read_bytes() if srv.is_sqlite() else srv.database_bytes()


def serve_on_taken_port(db_url):
    sock, port = occupied_port()
    try:
        return run_cli(["serve", "--listen", f"127.0.0.1:{port}", "--db", db_url], timeout=20)
    finally:
        sock.close()


def test_taken_port_on_empty_database_prints_no_key_and_creates_nothing(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv", init=False)
    res = serve_on_taken_port(srv.db_url)
    assert res.returncode != 0, f"serve on a taken port exited 0: {res.stdout!r}"
    assert "in use" in res.stderr.lower(), res.stderr
    assert not ANY_SECRET.search(res.stdout + res.stderr), \
        f"a start that could not serve printed a key: {res.stdout!r}"
    assert workspace_count(srv) == 0, "a failed start created the first workspace"

    # The next start, on a free port, is the first one: it prints the root key.
    srv.start()
    try:
        srv.stop()
        found = ANY_SECRET.search(srv.stdout_path.read_text(errors="replace"))
        assert found, f"the first real start printed no root key: " \
                      f"{srv.stdout_path.read_text()!r}"
        srv.start()
        ctx = expect_status(srv.auth_context(found.group(0)), 200)
        assert ctx["kind"] == "root"
    finally:
        srv.stop()
        srv.check_sanitizers()


def test_taken_port_on_initialised_database_changes_nothing(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv")  # init: one workspace, root key known
    before = snapshot(srv)
    res = serve_on_taken_port(srv.db_url)
    assert res.returncode != 0
    assert not ANY_SECRET.search(res.stdout + res.stderr), res.stdout
    assert snapshot(srv) == before, "a failed start wrote to the database"
    srv.start()
    try:
        expect_status(srv.auth_context(srv.root_key), 200)
    finally:
        srv.stop()
        srv.check_sanitizers()


def test_unusable_listen_address_on_empty_database_creates_nothing(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv", init=False)
    res = run_cli(["serve", "--listen", "256.0.0.1:8080", "--db", srv.db_url], timeout=20)
    assert res.returncode != 0
    assert "ipv4" in res.stderr.lower(), res.stderr
    assert not ANY_SECRET.search(res.stdout + res.stderr), res.stdout
    assert workspace_count(srv) == 0


def test_a_start_of_many_keys_puts_every_one_in_the_cache(make_server):
    """From 20 000 keys a start reads the table with two threads, each half of the
    rowids on a connection of its own: keys of both halves and at the seam
    verify, and the cache holds every one."""
    import requests

    def cached(srv):
        text = requests.get(srv.url("/metrics"), timeout=5).text
        line = [ln for ln in text.splitlines() if ln.startswith("latchkey_keys_cached ")]
        assert line, text[:500]
        return int(line[0].split()[1])

    srv = make_server()
    before = cached(srv)  # the root key and what init made
    srv.stop()
    out = srv.dir / "secrets.txt"
    res = run_cli(["seed", "--db", srv.db_url, "--count", "25000", "--out", str(out)],
                  timeout=300)
    assert res.returncode == 0, res.stderr
    secrets = out.read_text().splitlines()
    assert len(secrets) == 25000
    srv.start()
    for s in secrets[:3] + secrets[12498:12503] + secrets[-3:]:
        v = expect_status(srv.verify({"key": s}), 200)
        assert v["valid"] is True, v
    assert cached(srv) == before + 25000
