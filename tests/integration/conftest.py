"""Fixtures for the latchkey black-box HTTP tests.

Every module gets one server on a scratch SQLite database (`server`), and every
test that needs keys gets a fresh workspace in it (`ws`), so tests never see each
other's keys while the suite starts only a handful of processes. Tests that kill
or restart the server ask for `fresh_server`, which is theirs alone.

LATCHKEY_BIN picks the binary (default build/latchkey); a sanitizer build works
too, and any sanitizer report in the server's stderr fails the test.
`--record-requests DIR` (or LATCHKEY_RECORD_REQUESTS=DIR) keeps every request's
raw bytes, the seeds of tests/fuzz/fuzz_http.c.

LATCHKEY_TEST_PG_URL=postgres://USER:PASSWORD@HOST:PORT/DB (a role that may create
databases; tests/pg/pg-test.sh starts one) runs every server on PostgreSQL
instead: each gets a fresh database of its own. Tests that read the SQLite file
itself are marked `sqlite_only` and skipped there; `pg_only` ones run only there.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from lkhelpers import HTTP_TIMEOUT, describe, expect_status  # noqa: E402
from lkhelpers import new_email, new_password  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("LATCHKEY_BIN", str(REPO / "build" / "latchkey"))
# after writing the clock file: the server re-reads it at most every 100 ms
CLOCK_SETTLE = 0.3
START_TIMEOUT = float(os.environ.get("LATCHKEY_START_TIMEOUT", "10"))
STOP_TIMEOUT = float(os.environ.get("LATCHKEY_STOP_TIMEOUT", "10"))

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

_MISSING = object()

PG_URL = os.environ.get("LATCHKEY_TEST_PG_URL", "")


def pg_url_for(dbname):
    """PG_URL with its database replaced by dbname."""
    from urllib.parse import urlsplit, urlunsplit
    u = urlsplit(PG_URL)
    return urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def psql(url, sql, timeout=30):
    """Runs sql with psql against url; returns the rows (lists of column texts)."""
    res = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                          "-d", url, "-c", sql], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"psql failed: {res.stderr.strip()}")
    return [line.split("\x1f") for line in res.stdout.splitlines() if line != ""]


def new_pg_database():
    """A fresh, empty database on PG_URL's server; returns its URL."""
    name = f"lk_{uuid.uuid4().hex[:16]}"
    psql(PG_URL, f"CREATE DATABASE {name}")
    return pg_url_for(name)


def drop_pg_database(url):
    from urllib.parse import urlsplit
    name = urlsplit(url).path.lstrip("/")
    if name.startswith("lk_") and PG_URL and pg_url_for(name) == url:
        try:
            psql(PG_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except (AssertionError, subprocess.TimeoutExpired):
            pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LSAN_SUPP = REPO / "tests" / "lsan.supp"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    if "LSAN_OPTIONS" not in env and LSAN_SUPP.exists():
        # what `make integration` passes, so a sanitizer build run by hand agrees
        env["LSAN_OPTIONS"] = f"suppressions={LSAN_SUPP}:print_suppressions=0"
    env.update(extra)
    return env


def run_cli(args, env=None, timeout=30, input=None):
    """Run the latchkey binary with args; returns CompletedProcess (text).
    A sanitizer report on stderr fails the calling test."""
    res = subprocess.run(
        [BIN, *args], capture_output=True, text=True, timeout=timeout,
        env=env if env is not None else clean_env(), input=input,
    )
    report = sanitizer_report(res.stderr)
    if report:
        pytest.fail(f"sanitizer report from `latchkey {' '.join(args[:3])}`:\n{report}")
    return res


def cli_as(server, token, *args, **kw):
    """Run the CLI against server, as token (None: no LATCHKEY_TOKEN)."""
    extra = {"LATCHKEY_URL": server.base_url}
    if token is not None:
        extra["LATCHKEY_TOKEN"] = token
    return run_cli(list(args), env=clean_env(**extra), **kw)


def cli_ok(res):
    assert res.returncode == 0, f"exit {res.returncode}; stderr: {res.stderr!r}"
    return res


def cli_ok_json(res):
    cli_ok(res)
    try:
        return json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"stdout is not one JSON document: {res.stdout!r}")


def cli_failed(res):
    assert res.returncode != 0, f"expected failure, exit 0; stdout: {res.stdout!r}"
    assert res.stderr.strip(), "failure without a message on stderr"
    return res


def sanitizer_report(text):
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            return text[max(0, i - 200): i + 3000]
    return None


class LatchkeyServer:
    """One `latchkey serve` process on its own scratch database."""

    def __init__(self, workdir, init=True, config=None, clock=False, db_url=None):
        """config: settings for `serve --config` (a dict of name -> value, or the
        file's text); clock: give the server an injectable clock (advance_clock);
        db_url: a database of the test's own instead of a fresh one."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "latchkey.db"
        self.db_url = db_url or (new_pg_database() if PG_URL else f"sqlite:{self.db_path}")
        # the node's id and counter file: beside an SQLite file, else a directory
        self.state_dir = self.dir / "state"
        self.stdout_path = self.dir / "serve.stdout"
        self.stderr_path = self.dir / "serve.stderr"
        self.proc = None
        self.port = None
        self.base_url = None
        self.expect_running = False
        self.root_key = None
        self.workspace_id = None
        self.init_stdout = None  # kept in memory only: it holds the root key
        self._san_offset = 0
        self.auto_restart = False
        # `serve --config FILE`: written at every start, so a test may change
        # self.config between restarts.
        self.config = config
        self.config_path = self.dir / "latchkey.conf"
        # LATCHKEY_CLOCK_OFFSET_FILE: seconds added to the server's wall clock.
        self.clock_path = self.dir / "clock_offset" if clock else None
        self.clock_offset = 0
        if clock:
            self._write_clock(0)
        if init:
            self.init()

    @property
    def counters_path(self):
        """The node's counter file (beside an SQLite file, else in the state dir)."""
        if self.db_url.startswith("sqlite:"):
            return self.db_path.with_name(self.db_path.name + ".counters")
        return self.state_dir / "counters"

    # -- lifecycle --------------------------------------------------------

    def init(self):
        if not os.path.exists(BIN):
            pytest.fail(f"latchkey binary not found at {BIN} (run make)")
        res = run_cli(["init", "--db", self.db_url, "--json"])
        assert res.returncode == 0, f"init failed ({res.returncode}): {res.stderr}"
        self.init_stdout = res.stdout
        doc = None
        for line in res.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                    break
                except ValueError:
                    pass
        assert doc and "root_key" in doc and "workspace_id" in doc, \
            f"init --json printed no JSON line with root_key/workspace_id: {res.stdout!r}"
        self.root_key = doc["root_key"]
        self.workspace_id = doc["workspace_id"]

    def start(self):
        last_err = None
        for _ in range(3):
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
            out = open(self.stdout_path, "ab")
            err = open(self.stderr_path, "ab")
            args = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--db", self.db_url]
            if self.db_url != f"sqlite:{self.dir / 'latchkey.db'}":
                # a database that is not a file keeps no node state beside it, and
                # a second node on another server's file needs a directory of its own
                args += ["--state-dir", str(self.state_dir)]
            args += self._config_args()
            try:
                self.proc = subprocess.Popen(
                    args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                    env=clean_env(**self._clock_env()),
                )
            finally:
                out.close()
                err.close()
            self.expect_running = True
            ok, last_err = self._wait_ready()
            if ok:
                return self
            if self.proc.poll() is None:
                break
            if "in use" not in last_err.lower():
                break
        self.expect_running = False
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pytest.fail(f"latchkey serve did not become ready: {last_err}")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return False, f"exited with {code}; stderr: {self.stderr_tail()}"
            try:
                r = requests.get(self.base_url + "/healthz", timeout=1)
                if r.status_code == 200:
                    return True, ""
                last = f"/healthz answered {r.status_code} {r.text[:200]!r}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        return False, f"not ready within {START_TIMEOUT}s: {last}; stderr: {self.stderr_tail()}"

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the server and wait for it; returns its exit code."""
        self.expect_running = False
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"latchkey serve did not exit within {timeout}s of signal {sig}")

    def kill9(self):
        self.expect_running = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.check_sanitizers()
        return self.start()

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=3000):
        return self.stderr_text()[-n:]

    def hup(self, expect):
        """SIGHUP, then wait until stderr shows `expect` once more than before."""
        before = self.stderr_text().count(expect)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.stderr_text().count(expect) <= before:
            assert time.monotonic() < deadline, f"no {expect!r} after SIGHUP: {self.stderr_tail()}"
            assert self.proc.poll() is None, f"died on SIGHUP: {self.stderr_tail()}"
            time.sleep(0.05)

    def check_sanitizers(self):
        """Fail on a sanitizer report not yet reported by an earlier check."""
        text = self.stderr_text()
        report = sanitizer_report(text[self._san_offset:])
        self._san_offset = len(text)
        if report:
            pytest.fail(f"sanitizer report in latchkey serve stderr:\n{report}")

    def check_alive(self):
        """Fail if the server died under the test; a shared server is started again
        first, so the tests after this one still say something."""
        if self.expect_running and self.proc is not None and self.proc.poll() is not None:
            self.expect_running = False
            code, text = self.proc.returncode, self.stderr_text()
            tail = sanitizer_report(text[self._san_offset:]) or text[-3000:]
            self._san_offset = len(text)
            if self.auto_restart:
                self.start()
            pytest.fail(f"latchkey serve died (exit {code}); stderr: {tail}")

    # -- config file and clock ----------------------------------------------

    def _config_args(self):
        if not self.config:
            return []
        if isinstance(self.config, str):
            text = self.config
        else:
            text = "".join(f"{k} = {v}\n" for k, v in self.config.items())
        self.config_path.write_text(text)
        return ["--config", str(self.config_path)]

    def _clock_env(self):
        if self.clock_path is None:
            return {}
        return {"LATCHKEY_CLOCK_OFFSET_FILE": str(self.clock_path)}

    def _write_clock(self, offset):
        tmp = self.clock_path.with_suffix(".tmp")
        tmp.write_text(f"{int(offset)}\n")
        os.replace(tmp, self.clock_path)  # never a half-written file
        self.clock_offset = int(offset)

    def sql(self, query):
        """Runs query on this server's database, whichever backend it is; returns
        the rows as tuples of texts (SQLite's values converted with str())."""
        if self.db_url.startswith("sqlite:"):
            import sqlite3
            con = sqlite3.connect(str(self.db_path), timeout=5)
            try:
                rows = con.execute(query).fetchall()
                con.commit()
            finally:
                con.close()
            return [tuple("" if v is None else str(v) for v in row) for row in rows]
        return [tuple(row) for row in psql(self.db_url, query)]

    def is_sqlite(self):
        return self.db_url.startswith("sqlite:")

    def database_bytes(self):
        """Everything the database holds at rest, to search for what must not be
        there: the SQLite files (and the counter file beside them), or a dump of
        the PostgreSQL database."""
        if self.is_sqlite():
            return b"".join(f.read_bytes() for f in sorted(self.dir.iterdir())
                            if f.name.startswith(self.db_path.name) and f.is_file())
        import glob
        dump = (sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump")) or ["pg_dump"])[-1]
        res = subprocess.run([dump, "--no-owner", "-d", self.db_url], capture_output=True,
                             timeout=60)
        assert res.returncode == 0, f"pg_dump failed: {res.stderr!r}"
        # newer pg_dumps fence the dump with a random key of their own
        return b"\n".join(line for line in res.stdout.split(b"\n")
                          if not line.startswith((b"\\restrict", b"\\unrestrict")))

    def drop_database(self):
        if self.db_url.startswith("postgres"):
            drop_pg_database(self.db_url)

    def set_clock_offset(self, offset, settle=CLOCK_SETTLE):
        """Make the server's wall clock run `offset` seconds ahead of the real one."""
        assert self.clock_path is not None, "this server was started without clock=True"
        self._write_clock(offset)
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(settle)  # the server re-reads the file at most every 100 ms

    def advance_clock(self, seconds, settle=CLOCK_SETTLE):
        """Move the server's wall clock `seconds` forward (negative: back)."""
        self.set_clock_offset(self.clock_offset + int(seconds), settle)

    def set_clock(self, unix_seconds, settle=CLOCK_SETTLE):
        """Make the server's wall clock read about `unix_seconds` now."""
        self.set_clock_offset(round(unix_seconds - time.time()), settle)

    def now(self):
        """The server's wall clock as the test sees it (Unix seconds, float)."""
        return time.time() + self.clock_offset

    # -- HTTP ---------------------------------------------------------------

    def url(self, path):
        return self.base_url + path

    def request(self, method, path, key=None, json=_MISSING, **kw):
        headers = dict(kw.pop("headers", None) or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if json is not _MISSING:
            kw["json"] = json
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.request(method, self.url(path), headers=headers, **kw)

    def get(self, path, key=None, **kw):
        return self.request("GET", path, key=key, **kw)

    def post(self, path, key=None, json=_MISSING, **kw):
        return self.request("POST", path, key=key, json=json, **kw)

    def patch(self, path, key=None, json=_MISSING, **kw):
        return self.request("PATCH", path, key=key, json=json, **kw)

    def delete(self, path, key=None, **kw):
        return self.request("DELETE", path, key=key, **kw)

    # -- shortcuts used across test files ---------------------------------

    def create_workspace(self, **body):
        body.setdefault("name", f"ws-{uuid.uuid4().hex[:10]}")
        r = self.post("/v1/workspaces", key=self.root_key, json=body)
        return Workspace(self, expect_status(r, 201))

    def auth_context(self, key):
        return self.get("/v1/auth-context", key=key)

    def verify(self, body):
        return self.post("/v1/verify", json=body)

    # -- people: users and sessions ----------------------------------------

    def login(self, email, password, **kw):
        """POST /v1/auth/login; returns the raw response."""
        return self.post("/v1/auth/login", json={"email": email, "password": password}, **kw)

    def accept(self, token, password):
        """POST /v1/invitations/accept, which must answer 200; returns the answer."""
        r = self.post("/v1/invitations/accept", json={"token": token, "password": password})
        return expect_status(r, 200)

    @property
    def passwords(self):
        """email (lower case) -> the password its user was made with in this run."""
        if not hasattr(self, "_passwords"):
            self._passwords = {}
        return self._passwords

    def session(self, email, password):
        """Log in (which must answer 200) and return a Session."""
        r = self.login(email, password)
        return Session(self, expect_status(r, 200), r, password)


class Workspace:
    """A workspace created through POST /v1/workspaces, with its three secrets."""

    def __init__(self, server, data):
        self.server = server
        self.data = data
        self.id = data["id"]
        self.root_key = data["root_key"]
        self.rw_key = data["application_keys"]["read_write"]
        self.ro_key = data["application_keys"]["read_only"]

    def create_key(self, key=None, **body):
        body.setdefault("name", f"k-{uuid.uuid4().hex[:8]}")
        r = self.server.post("/v1/keys", key=key or self.root_key, json=body)
        doc = expect_status(r, 201)
        assert isinstance(doc.get("secret"), str), describe(r)
        return doc

    def get_key(self, key_id, key=None):
        r = self.server.get(f"/v1/keys/{key_id}", key=key or self.root_key)
        return expect_status(r, 200)

    def list_keys(self, key=None, **params):
        r = self.server.get("/v1/keys", key=key or self.root_key, params=params)
        return expect_status(r, 200)

    def invite(self, email, role, key=None, headers=None):
        """POST /v1/members (by the root key unless `key` is given): an invitation,
        which must answer 201; returns it (with its one-time `token`)."""
        r = self.server.post("/v1/members", key=key or self.root_key,
                             json={"email": email, "role": role}, headers=headers)
        return expect_status(r, 201)

    def add_member(self, email, role, password=None, key=None, headers=None):
        """Invite + accept: makes email a member with role and returns the accept
        answer (user_id, email, role, workspace_id, created_at), plus the
        invitation under "invitation". A new email becomes a user with `password`
        (a fresh one if None); a known one accepts with the password it was
        created with here (or `password`)."""
        inv = self.invite(email, role, key=key, headers=headers)
        pw = password or self.server.passwords.get(email.lower()) or new_password()
        doc = self.server.accept(inv["token"], pw)
        self.server.passwords.setdefault(email.lower(), pw)
        doc["invitation"] = inv
        return doc

    def new_user(self, role, password=None, tag=None):
        """A new user who is a member of this workspace with `role`; returns a User."""
        email = new_email(tag or role)
        password = password or new_password()
        doc = self.add_member(email, role, password)
        return User(email, password, doc["user_id"], role)

    def new_session(self, role, tag=None):
        """A new member with `role`, logged in: returns a Session (.user is the User)."""
        u = self.new_user(role, tag=tag)
        s = self.server.session(u.email, u.password)
        s.user = u
        return s

    def list_members(self, key=None):
        r = self.server.get("/v1/members", key=key or self.root_key)
        return expect_status(r, 200)

    @property
    def number(self):
        """The workspace's integer `number` (Flexweg's storage_folder_id), from the
        create answer or else from GET /v1/workspaces."""
        n = self.data.get("number")
        if n is None:
            r = self.server.get("/v1/workspaces", key=self.server.root_key)
            for w in expect_status(r, 200)["data"]:
                if w.get("id") == self.id:
                    n = w.get("number")
        assert isinstance(n, int) and not isinstance(n, bool), \
            f"workspace {self.id} has no integer `number`: {self.data!r}"
        return n


class User:
    def __init__(self, email, password, user_id, role=None):
        self.email = email
        self.password = password
        self.id = user_id
        self.role = role


class Session:
    """A logged-in user: the login answer, its token and its lk_session cookie."""

    def __init__(self, server, doc, resp, password=None):
        self.server = server
        self.doc = doc
        self.resp = resp
        self.token = doc.get("token")
        self.user_id = (doc.get("user") or {}).get("id")
        self.email = (doc.get("user") or {}).get("email")
        self.password = password
        self.cookie = resp.cookies.get("lk_session")
        self.user = None

    def headers(self, workspace_id=None):
        h = {"Authorization": f"Bearer {self.token}"}
        if workspace_id is not None:
            h["X-Latchkey-Workspace"] = workspace_id
        return h


# -- recording requests (seeds for the whole-request fuzz target) ---------------------

def pytest_addoption(parser):
    parser.addoption(
        "--record-requests", metavar="DIR",
        default=os.environ.get("LATCHKEY_RECORD_REQUESTS"),
        help="write the raw bytes of every HTTP request the tests send through "
             "http.client (requests) into DIR, one file per distinct request; "
             "tests/fuzz/http_seeds.py turns them into fuzz seeds")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): the test reads or relies on the "
                            "SQLite file itself; skipped on PostgreSQL")
    config.addinivalue_line("markers", "pg_only: runs only with LATCHKEY_TEST_PG_URL")
    out = config.getoption("--record-requests", default=None)
    if out:
        _record_requests(Path(out))


def _record_requests(out):
    """Wrap http.client so each request's bytes, as sent, land in out/<sha1>."""
    import hashlib
    import http.client

    out.mkdir(parents=True, exist_ok=True)
    send, getresponse = http.client.HTTPConnection.send, http.client.HTTPConnection.getresponse

    def recording_send(self, data):
        if isinstance(data, str):
            data = data.encode("iso-8859-1")
        if isinstance(data, (bytes, bytearray)):
            self._lk_sent = getattr(self, "_lk_sent", b"") + bytes(data)
        return send(self, data)

    def recording_getresponse(self):
        raw = getattr(self, "_lk_sent", b"")
        self._lk_sent = b""
        if raw:
            (out / hashlib.sha1(raw).hexdigest()).write_bytes(raw)
        return getresponse(self)

    http.client.HTTPConnection.send = recording_send
    http.client.HTTPConnection.getresponse = recording_getresponse


def pytest_collection_modifyitems(config, items):
    for item in items:
        m = item.get_closest_marker("sqlite_only")
        if PG_URL and m is not None:
            reason = (m.args[0] if m.args else m.kwargs.get("reason", "")) or "SQLite only"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        if not PG_URL and item.get_closest_marker("pg_only") is not None:
            item.add_marker(pytest.mark.skip(reason="needs LATCHKEY_TEST_PG_URL"))


_live_servers = []


def _finish(srv):
    try:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()
    finally:
        if srv in _live_servers:
            _live_servers.remove(srv)
        srv.drop_database()
    srv.check_sanitizers()


# The shared server lets any number of unknown keys and logins come from 127.0.0.1:
# the suite sends many. The per-address limits are tested on servers of their own.
SHARED_CONFIG = {"failed_key_limit": "none", "login_rate_limit": "none"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test module; use `ws` for a clean workspace inside it."""
    d = tmp_path_factory.mktemp("latchkey")
    config = dict(SHARED_CONFIG)
    if PG_URL:
        # webhooks on PostgreSQL need the master key every node shares (on SQLite
        # it is made beside the database)
        (d / "webhook-key").write_bytes(os.urandom(32))
        config["webhook_key_file"] = str(d / "webhook-key")
    srv = LatchkeyServer(d, config=config)
    srv.auto_restart = True
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


@pytest.fixture
def fresh_server(tmp_path):
    """A server of the test's own, free to be killed and restarted."""
    srv = LatchkeyServer(tmp_path / "srv")
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


@pytest.fixture
def clock_server(tmp_path):
    """Like fresh_server, with an injectable clock: srv.advance_clock(seconds)."""
    srv = LatchkeyServer(tmp_path / "srv", clock=True)
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


@pytest.fixture
def make_server(tmp_path):
    """A factory of servers of the test's own: make_server(config={...}, clock=True).
    Every server it made is stopped (and checked) when the test ends."""
    made = []

    def make(config=None, clock=False, start=True):
        srv = LatchkeyServer(tmp_path / f"srv{len(made)}", config=config, clock=clock)
        made.append(srv)
        _live_servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        _finish(srv)


def latchkey_behind_proxy(workdir, routes, **config):
    """A started server with the forward-auth route rules `routes` (text), trusting
    127.0.0.1, where a reverse proxy on this host connects from; `config` adds to
    or overrides the settings. Stop it with _finish."""
    path = workdir / "routes.txt"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(routes)
    srv = LatchkeyServer(workdir / "srv", config={**SHARED_CONFIG, "routes": str(path),
                                                  "trusted_proxies": "127.0.0.1", **config})
    _live_servers.append(srv)
    srv.start()
    return srv


def proxies_started(tmp_path, name, make):
    """The body of a fixture start_<proxy>, as `yield from proxies_started(...)`: it
    yields start(srv), which runs make(workdir, srv) (a started proxy in front of the
    latchkey server srv, with its files in a fresh workdir); every proxy started is
    stopped when the test ends."""
    started = []

    def start(srv):
        p = make(tmp_path / f"{name}{len(started)}", srv)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def ws(server):
    return server.create_workspace()


@pytest.fixture
def ws2(server):
    return server.create_workspace()


@pytest.fixture(autouse=True)
def _servers_stay_up():
    """A test fails if any server it used crashed or reported a sanitizer error."""
    yield
    for srv in list(_live_servers):
        srv.check_alive()
        if srv.expect_running:
            srv.check_sanitizers()


# -- helpers for the limits and money tests -----------------------------------------

DAY = 86400


def poll(fn, timeout=5.0, what="condition", interval=0.1):
    """Call fn until it returns something true and return that; fail after `timeout`
    seconds, naming `what` and the last value seen. For things written every second."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout}s (last: {last!r})")
        time.sleep(interval)


def in_parallel(n, fn, timeout=120):
    """Run fn(i, session) in n threads, each with a requests.Session of its own (its
    own connection), all released at once; returns the n results in order."""
    import threading

    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def run(i):
        with requests.Session() as s:
            try:
                barrier.wait(timeout=30)
                results[i] = fn(i, s)
            except BaseException as e:  # re-raised in the test's thread
                errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        pytest.fail(f"{n} parallel clients did not finish within {timeout}s")
    if errors:
        raise errors[0]
    return results


def day_start(t):
    """Start of the UTC day holding Unix time t."""
    return int(t) // DAY * DAY


def utc_date(t):
    """The UTC date ("YYYY-MM-DD") of Unix time t."""
    import datetime
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%d")


def next_noon(t=None):
    """12:00 UTC of the day after the one holding t (default now): a time far from any
    midnight, to set a test clock to before crossing days on purpose."""
    t = time.time() if t is None else t
    return day_start(t) + DAY + DAY // 2
