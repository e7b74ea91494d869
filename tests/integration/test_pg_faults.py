"""PostgreSQL stopped, restarted, and stopped under load: latchkey never answers
500 or hangs, management answers 503 storage_unavailable in the error shape,
/readyz names the store, and once the server is back every call works again
without restarting latchkey; nothing acknowledged (201) is lost.

These run on a PostgreSQL of their own (tests/pg/pg-test.sh), which they stop
and start; only with LATCHKEY_TEST_PG_URL (make integration-pg)."""

import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import REPO, LatchkeyServer, _finish, _live_servers, poll, psql
from lkhelpers import assert_error, describe, expect_status

pytestmark = pytest.mark.pg_only

PG_TEST = REPO / "tests" / "pg" / "pg-test.sh"
# a call answers within this even with the database gone (connect_timeout and
# the statement deadline are a few seconds)
ANSWER_WITHIN = 15


class OwnPostgres:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="lk-pgfault-")
        Path(self.tmp).chmod(0o755)
        self.dir = Path(self.tmp) / "pg"
        self.url = self._run("start").strip()
        self.password = (self.dir / "password").read_text().strip()

    def _run(self, cmd):
        res = subprocess.run(["bash", str(PG_TEST), cmd, str(self.dir)], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, f"pg-test.sh {cmd}: {res.stderr}"
        return res.stdout

    def halt(self):
        self._run("halt")

    def resume(self):
        self._run("resume")

    def new_database(self):
        name = f"lk_{uuid.uuid4().hex[:16]}"
        psql(self.url, f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self):
        self._run("stop")
        subprocess.run(["rm", "-rf", self.tmp])


@pytest.fixture
def own_pg():
    pg = OwnPostgres()
    yield pg
    pg.stop()


@pytest.fixture
def pg_server(own_pg, tmp_path):
    srv = LatchkeyServer(tmp_path / "srv", db_url=own_pg.new_database(),
                         config={"failed_key_limit": "none"})
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    took = time.monotonic() - t0
    assert took < ANSWER_WITHIN, f"answered after {took:.1f}s"
    return r


def create_key(srv, ws, timeout=ANSWER_WITHIN):
    return srv.post("/v1/keys", key=ws.root_key, json={"name": f"k-{uuid.uuid4().hex[:8]}"},
                    timeout=timeout)


def assert_valid(srv, secret):
    r = srv.verify({"key": secret})
    doc = expect_status(r, 200)
    assert doc["valid"] is True, describe(r)


def assert_kept(srv, secrets):
    """Every secret is valid now, and again after a restart: it was stored, not
    only cached."""
    for s in secrets:
        assert_valid(srv, s)
    srv.restart()
    for s in secrets:
        assert_valid(srv, s)


def test_stopped_then_restarted_postgres(own_pg, pg_server):
    srv = pg_server
    ws = srv.create_workspace()
    before = [ws.create_key()["secret"] for _ in range(3)]
    for s in before:
        assert_valid(srv, s)

    own_pg.halt()
    # management answers 503 in the error shape, promptly, every time
    for _ in range(3):
        r = timed(lambda: create_key(srv, ws))
        assert_error(r, 503, "storage_unavailable")
        r = timed(lambda: srv.get("/v1/keys", key=ws.root_key, timeout=ANSWER_WITHIN))
        assert_error(r, 503, "storage_unavailable")
    # readiness says which dependency is down
    r = timed(lambda: srv.get("/readyz", timeout=ANSWER_WITHIN))
    err = assert_error(r, 503, "storage_unavailable")
    assert "store" in err["message"] or "store" in r.text, describe(r)
    # checks never answer 500 nor hang: the cache vouches for what it holds,
    # or the answer is 503
    for s in before:
        r = timed(lambda: srv.verify({"key": s}))
        assert r.status_code in (200, 503), describe(r)
        if r.status_code == 503:
            assert_error(r, 503, "storage_unavailable")
        else:
            assert r.json()["valid"] is True, describe(r)

    own_pg.resume()
    # back without restarting latchkey (the backoff is at most 5 s)
    doc = poll(lambda: (lambda r: r.json() if r.status_code == 201 else None)(create_key(srv, ws)),
               timeout=30, what="a key created after PostgreSQL came back")
    after = doc["secret"]
    # The feed follows the log over a connection of its own, which comes back on
    # its own backoff (at most 5 s): until then /readyz says the cache is stale.
    poll(lambda: srv.get("/readyz").status_code == 200, timeout=15, what="/readyz ready again")
    # and it was all stored: a restarted latchkey loads the same keys
    assert_kept(srv, before + [after])
    # the database password is in no log line
    assert own_pg.password not in srv.stderr_text()
    assert srv.proc.poll() is None


def test_nothing_acknowledged_is_lost_across_a_postgres_restart(own_pg, pg_server):
    srv = pg_server
    ws = srv.create_workspace()
    acked, statuses, problems = [], [], []
    stop = threading.Event()
    lock = threading.Lock()

    def creator():
        with requests.Session() as s:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = s.post(srv.url("/v1/keys"), json={"name": "load"}, timeout=ANSWER_WITHIN,
                               headers={"Authorization": f"Bearer {ws.root_key}"})
                except requests.RequestException as e:
                    problems.append(f"create: {e!r}")
                    continue
                if time.monotonic() - t0 > ANSWER_WITHIN:
                    problems.append("create: slow answer")
                statuses.append(r.status_code)
                if r.status_code == 201:
                    with lock:
                        acked.append(r.json()["secret"])
                elif r.status_code != 503:
                    problems.append(f"create: {describe(r)}")
                else:
                    time.sleep(0.05)

    def verifier():
        i = 0
        with requests.Session() as s:
            while not stop.is_set():
                with lock:
                    secret = acked[i % len(acked)] if acked else None
                i += 1
                if secret is None:
                    time.sleep(0.01)
                    continue
                try:
                    r = s.post(srv.url("/v1/verify"), json={"key": secret},
                               timeout=ANSWER_WITHIN)
                except requests.RequestException as e:
                    problems.append(f"verify: {e!r}")
                    continue
                # an acknowledged key is valid, or the node cannot vouch (503)
                if r.status_code == 200 and r.json().get("valid") is not True:
                    problems.append(f"verify said not valid: {describe(r)}")
                elif r.status_code not in (200, 503):
                    problems.append(f"verify: {describe(r)}")

    threads = [threading.Thread(target=creator, daemon=True),
               threading.Thread(target=verifier, daemon=True)]
    for t in threads:
        t.start()
    try:
        poll(lambda: len(acked) >= 5, timeout=20, what="keys created before the stop")
        own_pg.halt()
        time.sleep(2)
        own_pg.resume()
        n = len(acked)
        poll(lambda: len(acked) >= n + 5, timeout=30, what="keys created after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(ANSWER_WITHIN + 5)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not problems, problems[:5]
    assert 503 in statuses, "the outage was never seen: the test proved nothing"
    assert_kept(srv, acked)


def test_healthz_answers_503_while_postgres_is_down(own_pg, pg_server):
    srv = pg_server
    expect_status(srv.get("/healthz"), 200)
    own_pg.halt()
    r = timed(lambda: srv.get("/healthz", timeout=ANSWER_WITHIN))
    assert_error(r, 503, "storage_unavailable")
    own_pg.resume()
    poll(lambda: srv.get("/healthz").status_code == 200, timeout=30, what="/healthz back")


def test_the_url_password_is_in_no_message(own_pg):
    from conftest import run_cli
    host = own_pg.url.split("@", 1)[1].rsplit("/", 1)[0]
    secret_pw = "Sekr1t-" + uuid.uuid4().hex[:10]
    cases = [
        # a wrong password, in the user part and as a parameter, percent-encoded too
        f"postgres://latchkey:{secret_pw}@{host}/postgres",
        f"postgresql://latchkey@{host}/postgres?password={secret_pw}",
        f"postgres://latchkey:{secret_pw}%40x@{host}/postgres",
        # the right one, on a database that does not exist
        f"postgres://latchkey:{own_pg.password}@{host}/no_such_db",
        # nobody listening
        f"postgres://latchkey:{secret_pw}@127.0.0.1:1/postgres",
    ]
    for url in cases:
        res = run_cli(["init", "--db", url, "--json"], timeout=30)
        assert res.returncode != 0, url
        out = res.stdout + res.stderr
        assert "postgres" in out, out  # it says which database
        for pw in (secret_pw, own_pg.password):
            assert pw not in out, f"the password is in the message: {out!r}"


def test_an_unsupported_url_names_both_postgres_forms():
    from conftest import run_cli
    res = run_cli(["init", "--db", "mysql://u:p@localhost/x"], timeout=30)
    assert res.returncode != 0
    assert "postgres://" in res.stderr and "postgresql://" in res.stderr, res.stderr
    assert "sqlite:" in res.stderr, res.stderr


def test_two_nodes_starting_at_once_migrate_once(own_pg, tmp_path):
    """Several processes opening one empty database at the same moment: each
    migration is applied exactly once, and every one of them opens it."""
    from conftest import BIN, clean_env
    url = own_pg.new_database()
    procs = [subprocess.Popen([BIN, "init", "--db", url, "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=clean_env())
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    codes = [p.returncode for p in procs]
    # one of them made the first workspace and printed its root key; the others
    # found it there (or were refused and may try again): never two
    assert codes.count(0) >= 1, outs
    assert sum(o[0].count("root_key") for o in outs) == 1, outs
    versions = psql(url, "SELECT version FROM latchkey_schema ORDER BY version")
    assert [int(v[0]) for v in versions] == list(range(1, len(versions) + 1)), versions
    assert len(versions) >= 3
    assert psql(url, "SELECT count(*) FROM workspaces") == [["1"]], outs
