"""Running latchkey as a service: --version, /healthz and /readyz, the first root key
through --root-key-file (never in a log), `make install` and the systemd unit."""

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess

import pytest
import requests

from conftest import (BIN, REPO, LatchkeyServer, _finish, _live_servers, clean_env, free_port,
                      poll, run_cli)
from lkhelpers import describe, expect_status

VERSION = (REPO / "VERSION").read_text().strip()


def test_version_names_the_release_and_the_commit():
    for args in (["--version"], ["version"], ["serve", "--version"]):
        r = run_cli(args)
        assert r.returncode == 0, r.stderr
        m = re.fullmatch(r"latchkey (\S+) \(commit (\S+)\)\n", r.stdout)
        assert m, r.stdout
        assert m.group(1) == VERSION
        if (REPO / ".git").exists() and shutil.which("git"):
            head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            # built from this checkout, perhaps a commit or two ago
            assert re.fullmatch(r"[0-9a-f]{12}", m.group(2)), m.group(2)
            assert head, "git rev-parse failed"
    r = run_cli(["--help"])
    assert "--version" in r.stdout


def test_build_info_matches_the_version(server):
    text = requests.get(server.url("/metrics"), timeout=5).text
    m = re.search(r'^latchkey_build_info\{version="([^"]*)",commit="([^"]*)"\} 1$', text, re.M)
    assert m and m.group(1) == VERSION, text[:300]
    assert run_cli(["--version"]).stdout.strip() == f"latchkey {m.group(1)} (commit {m.group(2)})"


def test_readyz_says_ready_with_each_check(server):
    doc = expect_status(server.get("/readyz"), 200)
    assert doc == {"status": "ready", "checks": {"store": "ok", "cache": "ok",
                                                 "counters": "ok", "recorder": "ok"}}
    expect_status(server.get("/healthz"), 200)


@pytest.mark.sqlite_only("holds SQLite's write lock from another process (PostgreSQL outages: test_pg_faults.py)")
def test_readyz_names_what_is_not_ready(fresh_server):
    """A database another process keeps locked: the recorder cannot write, and after
    its grace /readyz is 503 in the error shape naming it; /healthz stays live."""
    srv = fresh_server
    k = expect_status(srv.post("/v1/keys", key=srv.root_key, json={"name": "r"}), 201)
    lock = sqlite3.connect(str(srv.db_path), isolation_level=None, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        expect_status(srv.verify({"key": k["secret"]}), 200)
        r = requests.get(srv.url("/readyz"), timeout=30)
        assert r.status_code == 503, describe(r)
        err = r.json()["error"]
        assert err["code"] == "storage_unavailable" and "store" in err["message"], err
        assert err["request_id"] == r.headers["X-Request-Id"]
    finally:
        lock.execute("COMMIT")
        lock.close()
    poll(lambda: requests.get(srv.url("/readyz"), timeout=10).status_code == 200,
         timeout=15, what="/readyz back to 200")


def test_readyz_needs_no_credential_and_takes_only_get(server):
    expect_status(server.get("/readyz", headers={"Authorization": "Bearer nonsense"}), 200)
    assert requests.post(server.url("/readyz"), timeout=5).status_code == 405



class KeyFileServer(LatchkeyServer):
    """A server started on an empty database with --root-key-file."""

    def __init__(self, workdir, key_file):
        self.key_file = key_file
        super().__init__(workdir, init=False)

    def _config_args(self):
        return ["--root-key-file", str(self.key_file)]


def test_root_key_file_gets_the_first_key_and_no_log_does(tmp_path):
    key_file = tmp_path / "root-key.json"
    srv = KeyFileServer(tmp_path / "srv", key_file)
    _live_servers.append(srv)
    try:
        srv.start()
        st = os.stat(key_file)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        doc = json.loads(key_file.read_text())
        assert set(doc) == {"workspace_id", "root_key"}, doc
        me = expect_status(srv.get("/v1/keys", key=doc["root_key"]), 200)
        assert "data" in me
        srv.stop()
        out = srv.stdout_path.read_text() + srv.stderr_text()
        assert doc["root_key"] not in out and doc["root_key"][-16:] not in out
        assert str(key_file) in out  # says where the key went
        # a restart (the file is there, the database has its workspace) goes on
        srv.start()
        assert json.loads(key_file.read_text()) == doc
        expect_status(srv.get("/v1/keys", key=doc["root_key"]), 200)
    finally:
        _finish(srv)


def test_root_key_file_refuses_an_existing_file(tmp_path):
    key_file = tmp_path / "planted.json"
    key_file.write_text("someone else's file\n")
    os.chmod(key_file, 0o644)
    db = tmp_path / "db"
    r = run_cli(["serve", "--listen", f"127.0.0.1:{free_port()}", "--db", f"sqlite:{db}",
                 "--root-key-file", str(key_file)], timeout=30)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "refusing" in r.stderr and str(key_file) in r.stderr, r.stderr
    assert key_file.read_text() == "someone else's file\n"
    # nothing was created: init on the same database still makes the first workspace
    r = run_cli(["init", "--db", f"sqlite:{db}", "--json"])
    assert r.returncode == 0 and "root_key" in r.stdout, r.stderr


def test_root_key_file_refuses_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    link = tmp_path / "link.json"
    link.symlink_to(target)
    r = run_cli(["serve", "--listen", f"127.0.0.1:{free_port()}", "--db", f"sqlite:{tmp_path}/db",
                 "--root-key-file", str(link)], timeout=30)
    assert r.returncode != 0 and not target.exists(), r.stderr
    assert "root-key-file" in r.stderr, r.stderr


def test_init_json_to_a_file_is_the_other_way(tmp_path):
    out = tmp_path / "root.json"
    with open(out, "w") as f:
        r = subprocess.run([BIN, "init", "--db", f"sqlite:{tmp_path}/db", "--json"], stdout=f,
                           stderr=subprocess.PIPE, text=True, env=clean_env(), timeout=30)
    assert r.returncode == 0 and "lk_" not in r.stderr, r.stderr
    assert set(json.loads(out.read_text())) == {"workspace_id", "root_key"}


def test_config_example_parses(tmp_path):
    """The example config `make install` puts in /etc starts a server."""
    conf = (REPO / "deploy" / "systemd" / "latchkey.conf").read_text()
    srv = LatchkeyServer(tmp_path / "srv", config=conf)
    _live_servers.append(srv)
    try:
        srv.start()  # --listen on the command line wins over the file's
        expect_status(srv.get("/readyz"), 200)
    finally:
        _finish(srv)


def test_make_install_puts_binary_unit_and_docs_under_destdir(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dest = tmp_path / "pkg"
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr",
                        f"INSTALL_FROM={os.path.abspath(BIN)}"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    binary = dest / "usr/bin/latchkey"
    assert os.access(binary, os.X_OK)
    v = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                       env=clean_env())
    assert v.stdout.startswith(f"latchkey {VERSION} "), v.stdout
    unit = (dest / "usr/lib/systemd/system/latchkey.service").read_text()
    assert "ExecStart=/usr/bin/latchkey serve" in unit, unit
    assert "/usr/local" not in unit
    assert (dest / "usr/share/doc/latchkey/operations.md").exists()
    assert (dest / "usr/share/doc/latchkey/http-api.md").exists()
    assert (dest / "etc/latchkey/latchkey.conf").exists()
    # a second install keeps an edited config
    (dest / "etc/latchkey/latchkey.conf").write_text("listen = 127.0.0.1:9999\n")
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr",
                        f"INSTALL_FROM={os.path.abspath(BIN)}"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (dest / "etc/latchkey/latchkey.conf").read_text() == "listen = 127.0.0.1:9999\n"


UNIT = REPO / "deploy" / "systemd" / "latchkey.service"


def test_systemd_unit_is_hardened():
    unit = UNIT.read_text()
    for line in ("DynamicUser=yes", "StateDirectory=latchkey", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), f"unit lacks {line}"
    assert "--root-key-file /var/lib/latchkey/" in unit


def test_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "latchkey.service"
    # verify wants the ExecStart binary to exist
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/latchkey", os.path.abspath(BIN)))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    # it reports unknown or bad settings as warnings with exit code 0
    assert r.returncode == 0 and str(unit) not in r.stderr, r.stderr
    bad = tmp_path / "bad.service"
    bad.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilegez=yes"))
    r = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "NoNewPrivilegez" in r.stderr, "systemd-analyze verify did not catch a bad key"
