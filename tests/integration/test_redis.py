"""Counters shared through Redis (docs/operations.md, "Redis").

With `redis = redis://…` every node takes slices of a key's rate window, of its
workspace's 30-day quota and of its day spend from one Redis, so the limits hold
across nodes. Two nodes here serve one database (on SQLite or PostgreSQL, as the
suite runs), both pointing at one Redis that tests/redis/redis-test.sh starts under
a scratch directory.

Faults: a check that needs Redis while it is away answers 503 storage_unavailable
(never "valid"); a key without limits still answers; `redis_fail_open_rate_limits`
lets rate-limited keys through on each node's own window; a restarted Redis is
found again without restarting latchkey.
"""

import contextlib
import hashlib
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import BIN, REPO, LatchkeyServer, _finish, _live_servers, free_port, poll
from lkhelpers import HTTP_TIMEOUT, assert_error, describe, expect_status, metric

SCRIPT = Path(__file__).resolve().parents[1] / "redis" / "redis-test.sh"
LONG_WINDOW = 3600  # no window rolls over during a test

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (scripts/deps.sh test)")


class Redis:
    """One redis-server of the test's own (tests/redis/redis-test.sh)."""

    def __init__(self, workdir, password=None):
        self.dir = Path(workdir)
        self.port = free_port()
        self.password = password
        self.start()

    def url(self, password=None):
        pw = password if password is not None else self.password
        auth = f":{pw}@" if pw else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self):
        args = [str(SCRIPT), "start", str(self.dir), str(self.port)]
        if self.password:
            args.append(self.password)
        subprocess.run(args, check=True, timeout=30)

    def stop(self):
        subprocess.run([str(SCRIPT), "stop", str(self.dir)], check=True, timeout=30)

    def kill(self):
        subprocess.run([str(SCRIPT), "kill", str(self.dir)], check=True, timeout=30)

    def cli(self, *args):
        cmd = ["redis-cli", "-p", str(self.port)]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        return subprocess.run(cmd + list(args), capture_output=True, text=True,
                              timeout=10).stdout.strip()


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path / "redis")
    yield r
    r.stop()


class Cluster:
    """Two nodes on one database, sharing one Redis: the first is the server the
    setup ran on (before Redis), restarted with Redis; the second has a state
    directory of its own."""

    def __init__(self, tmp_path, redis, setup, configs=None):
        base = LatchkeyServer(tmp_path / "node0", config={"failed_key_limit": "none"})
        base.start()
        _live_servers.append(base)
        self.data = setup(base)  # keys, quotas and credits, before Redis
        assert base.stop() == 0
        self.nodes = []
        configs = configs or [{}, {}]
        for i, extra in enumerate(configs):
            cfg = {"failed_key_limit": "none", "redis": redis.url(), **extra}
            if i == 0:
                node = base
                node.config = cfg
            else:
                node = LatchkeyServer(tmp_path / f"node{i}", init=False, config=cfg)
                node.db_path, node.db_url = base.db_path, base.db_url
                node.root_key, node.workspace_id = base.root_key, base.workspace_id
                _live_servers.append(node)
            node.start()
            self.nodes.append(node)
        # Each node connects to Redis in the background and answers checks that
        # need it 503 until then (/readyz says so): the tests start from ready.
        for node in self.nodes:
            poll(lambda: node.get("/readyz").json().get("checks", {}).get("redis") == "ok",
                 timeout=15, what="the node connected to Redis")

    def close(self):
        for n in reversed(self.nodes):  # the one that made the database last
            _finish(n)


@pytest.fixture
def cluster(tmp_path, redis):
    made = []

    def make(setup, configs=None):
        c = Cluster(tmp_path, redis, setup, configs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@contextlib.contextmanager
def one_server(tmp_path, config):
    """A started server of its own, on the suite's kind of database, stopped and
    checked on the way out."""
    srv = LatchkeyServer(tmp_path / "srv", config=config)
    srv.start()
    _live_servers.append(srv)
    try:
        yield srv
    finally:
        _finish(srv)


def verify(node, secret, **body):
    return node.verify({"key": secret, **body})


def code(node, secret, **body):
    r = verify(node, secret, **body)
    if r.status_code == 200:
        return r.json()["code"]
    body = r.json()
    return f"http {r.status_code} {body.get('code') or body.get('error', {}).get('code')}"


def alternate(nodes, secret, n, **body):
    """n checks sent to the nodes in turn; the codes in order."""
    return [code(nodes[i % len(nodes)], secret, **body) for i in range(n)]


def one_key(**key):
    def setup(srv):
        ws = srv.create_workspace()
        return {"ws": ws.id, "secret": ws.create_key(**key)["secret"]}
    return setup


# -- limits hold across nodes -----------------------------------------------------------

def test_two_nodes_share_a_rate_limit_exactly(cluster):
    c = cluster(one_key(rate_limit={"limit": 100, "window_s": LONG_WINDOW}))
    codes = alternate(c.nodes, c.data["secret"], 300)
    assert codes.count("valid") == 100, codes
    assert set(codes) == {"valid", "rate_limited"}, codes
    # Both nodes answered some of the 100: the limit is one, not one per node.
    assert "valid" in codes[0::2] and "valid" in codes[1::2], codes
    # The refusals say when the window opens again, from either node.
    for node in c.nodes:
        r = verify(node, c.data["secret"])
        assert r.json()["code"] == "rate_limited", describe(r)
        assert 1 <= int(r.headers["Retry-After"]) <= LONG_WINDOW, describe(r)
        assert r.json()["ratelimit"]["remaining"] == 0, describe(r)


def test_checks_do_not_wait_on_redis_one_by_one(cluster):
    """Slices grow with demand: 2000 checks of one key take a handful of round trips
    to Redis, not 2000 (and quota and spend ride on the same calls)."""
    def setup(srv):
        ws = srv.create_workspace(quota=10_000_000)
        expect_status(srv.post("/v1/credits", key=ws.root_key, json={"amount": 100000}), 201)
        return {"secret": ws.create_key(rate_limit={"limit": 100000, "window_s": LONG_WINDOW},
                                        daily_spend_cap=1_000_000)["secret"]}

    c = cluster(setup)
    node = c.nodes[0]
    before = metric(node, "latchkey_redis_reservations_total")
    with requests.Session() as s:
        for _ in range(2000):
            r = s.post(node.url("/v1/verify"), json={"key": c.data["secret"], "cost": 1},
                       timeout=HTTP_TIMEOUT)
            assert r.json()["code"] == "valid", describe(r)
    calls = metric(node, "latchkey_redis_reservations_total") - before
    assert 0 < calls <= 100, calls
    assert metric(node, "latchkey_redis_errors_total") == 0


def test_auth_context_shares_the_rate_limit_too(cluster):
    c = cluster(one_key(rate_limit={"limit": 10, "window_s": LONG_WINDOW}))
    statuses = [c.nodes[i % 2].auth_context(c.data["secret"]).status_code for i in range(30)]
    assert statuses.count(200) == 10, statuses
    assert set(statuses) == {200, 429}, statuses


def test_forward_auth_shares_the_rate_limit_too(cluster, redis):
    def setup(srv):
        ws = srv.create_workspace()
        return {"secret": ws.create_key(rate_limit={"limit": 10, "window_s": LONG_WINDOW})["secret"],
                "unused": ws.create_key(rate_limit={"limit": 10, "window_s": LONG_WINDOW})["secret"]}

    c = cluster(setup)

    def fa(node, secret):
        return requests.get(node.url("/v1/forward-auth"), timeout=HTTP_TIMEOUT,
                            headers={"Authorization": f"Bearer {secret}",
                                     "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/x"})
    statuses = [fa(c.nodes[i % 2], c.data["secret"]).status_code for i in range(30)]
    assert statuses.count(200) == 10, statuses
    assert set(statuses) == {200, 429}, statuses
    # Without Redis, a key with no slice yet: 503, never a pass.
    redis.stop()
    r = fa(c.nodes[0], c.data["unused"])
    assert r.status_code == 503 and r.headers.get("X-Latchkey-Error-Code") == \
        "storage_unavailable", describe(r)
    redis.start()


def test_two_nodes_share_a_quota(cluster):
    def setup(srv):
        ws = srv.create_workspace(quota=40)
        return {"secret": ws.create_key()["secret"]}

    c = cluster(setup)
    codes = alternate(c.nodes, c.data["secret"], 120)
    assert codes.count("valid") == 40, codes
    assert set(codes) == {"valid", "quota_exceeded"}, codes


def test_two_nodes_share_a_day_spend_cap(cluster):
    def setup(srv):
        ws = srv.create_workspace()
        expect_status(srv.post("/v1/credits", key=ws.root_key, json={"amount": 10000}), 201)
        return {"secret": ws.create_key(daily_spend_cap=60)["secret"]}

    c = cluster(setup)
    codes = alternate(c.nodes, c.data["secret"], 200, cost=1)
    assert codes.count("valid") == 60, codes
    assert set(codes) == {"valid", "spend_cap_exceeded"}, codes
    # A bigger cost than is left is refused on both nodes as well.
    codes = alternate(c.nodes, c.data["secret"], 4, cost=7)
    assert codes == ["spend_cap_exceeded"] * 4, codes


def test_counts_from_before_redis_still_count(cluster):
    """Moving nodes onto Redis keeps what the database counted: a workspace that used
    30 of its quota of 40 on one node without Redis has 10 left across two with it,
    and a key that spent 45 of its cap of 50 today has 5 left."""
    def setup(srv):
        ws = srv.create_workspace(quota=40)
        secret = ws.create_key()["secret"]
        paying = srv.create_workspace()
        expect_status(srv.post("/v1/credits", key=paying.root_key, json={"amount": 1000}), 201)
        capped = paying.create_key(daily_spend_cap=50)["secret"]
        for _ in range(30):
            assert code(srv, secret) == "valid"
        for _ in range(5):
            assert code(srv, capped, cost=9) == "valid"
        return {"secret": secret, "capped": capped}

    c = cluster(setup)
    codes = alternate(c.nodes, c.data["secret"], 30)
    assert codes.count("valid") == 10, codes
    assert alternate(c.nodes, c.data["capped"], 2, cost=9) == ["spend_cap_exceeded"] * 2
    assert alternate(c.nodes, c.data["capped"], 3, cost=5) == \
        ["valid", "spend_cap_exceeded", "spend_cap_exceeded"]


# -- faults -----------------------------------------------------------------------------

def until_unavailable(node, secret, most=200):
    """Checks until the node answers 503 (a slice it holds may still pass a few)."""
    for i in range(most):
        r = verify(node, secret)
        if r.status_code == 503:
            assert_error(r, 503, "storage_unavailable")
            return i
        assert r.status_code == 200 and r.json()["code"] in ("valid", "rate_limited"), describe(r)
    pytest.fail(f"still no 503 after {most} checks with Redis stopped")


def test_redis_stopped_refuses_limited_keys_and_serves_the_rest(cluster, redis):
    def setup(srv):
        ws = srv.create_workspace()
        quota_ws = srv.create_workspace(quota=1000)
        return {"limited": ws.create_key(rate_limit={"limit": 1000, "window_s": LONG_WINDOW})["secret"],
                "plain": ws.create_key()["secret"],
                "quota": quota_ws.create_key()["secret"]}

    c = cluster(setup)
    node = c.nodes[0]
    assert code(node, c.data["limited"]) == "valid"
    ready = expect_status(node.get("/readyz"), 200)
    assert ready["checks"]["redis"] == "ok", ready
    redis.stop()
    until_unavailable(node, c.data["limited"])
    until_unavailable(node, c.data["quota"])
    for _ in range(5):  # and it stays so: never "valid" without Redis
        assert_error(verify(node, c.data["limited"]), 503, "storage_unavailable")
        assert_error(node.auth_context(c.data["limited"]), 503, "storage_unavailable")
        assert_error(verify(node, c.data["quota"]), 503, "storage_unavailable")
    # A key that needs nothing shared still answers.
    assert code(node, c.data["plain"]) == "valid"
    assert node.auth_context(c.data["plain"]).status_code == 200
    r = node.get("/readyz")
    assert_error(r, 503, "storage_unavailable")
    assert "redis (unreachable)" in r.json()["error"]["message"], describe(r)
    # Restarted: found again, without restarting latchkey.
    redis.start()
    poll(lambda: code(node, c.data["limited"]) == "valid", timeout=15,
         what="a limited key valid again after Redis restarted")
    assert code(node, c.data["quota"]) == "valid"
    poll(lambda: node.get("/readyz").status_code == 200, timeout=15, what="/readyz ready again")


def test_a_hung_redis_answers_503_within_the_timeout(cluster, redis):
    """A Redis that takes connections but never answers (SIGSTOP): the check that
    needs it waits one timeout at most, then 503; after SIGCONT all is well."""
    import os
    import signal as sig

    def setup(srv):
        ws = srv.create_workspace()
        return {"limited": ws.create_key(rate_limit={"limit": 1000, "window_s": LONG_WINDOW})["secret"],
                "other": ws.create_key(rate_limit={"limit": 1000, "window_s": LONG_WINDOW})["secret"],
                "plain": ws.create_key()["secret"]}

    c = cluster(setup)
    node = c.nodes[0]
    assert code(node, c.data["limited"]) == "valid"
    pid = int((redis.dir / "redis.pid").read_text())
    os.kill(pid, sig.SIGSTOP)
    try:
        # "other" has no slice yet: its first check must ask Redis, and is refused.
        started = time.monotonic()
        assert_error(verify(node, c.data["other"]), 503, "storage_unavailable")
        assert time.monotonic() - started < 5  # one 250 ms timeout, not a hang
        assert code(node, c.data["plain"]) == "valid"
        poll(lambda: node.get("/readyz").status_code == 503, timeout=10,
             what="/readyz not ready with Redis hung")
    finally:
        os.kill(pid, sig.SIGCONT)
    poll(lambda: code(node, c.data["other"]) == "valid", timeout=15,
         what="checks valid again after SIGCONT")


def test_fail_open_uses_each_nodes_own_window_for_rate_limits_only(cluster, redis):
    def setup(srv):
        ws = srv.create_workspace()
        quota_ws = srv.create_workspace(quota=1000)
        return {"limited": ws.create_key(rate_limit={"limit": 5, "window_s": LONG_WINDOW})["secret"],
                "other": ws.create_key(rate_limit={"limit": 3, "window_s": LONG_WINDOW})["secret"],
                "quota": quota_ws.create_key()["secret"]}

    c = cluster(setup, configs=[{"redis_fail_open_rate_limits": "on"}, {}])
    open_node, closed_node = c.nodes
    # The shared window is used up on the closed node ...
    assert alternate([closed_node], c.data["limited"], 8) == ["valid"] * 5 + ["rate_limited"] * 3
    redis.stop()
    # ... so without Redis the open node's own window (empty: it checked nothing)
    # lets 5 through, then limits by itself; the closed node, which learnt that the
    # shared window is full, refuses by itself until it ends.
    codes = alternate([open_node], c.data["limited"], 8)
    assert codes == ["valid"] * 5 + ["rate_limited"] * 3, codes
    assert code(closed_node, c.data["limited"]) == "rate_limited"
    # GET /v1/auth-context, which refills by itself, falls back the same way.
    statuses = [open_node.auth_context(c.data["other"]).status_code for _ in range(5)]
    assert statuses == [200] * 3 + [429] * 2, statuses
    assert_error(closed_node.auth_context(c.data["other"]), 503, "storage_unavailable")
    # Quota never fails open.
    until_unavailable(open_node, c.data["quota"])
    assert_error(verify(open_node, c.data["quota"]), 503, "storage_unavailable")
    redis.start()
    # Back on the shared window: still used up.
    poll(lambda: code(open_node, c.data["limited"]) == "rate_limited" and
         code(closed_node, c.data["limited"]) == "rate_limited", timeout=15,
         what="both nodes on the shared window again")


def test_a_redis_restart_under_load_passes_nothing_above_the_limit(cluster, redis):
    limit = 150
    c = cluster(one_key(rate_limit={"limit": limit, "window_s": LONG_WINDOW}))
    secret = c.data["secret"]
    codes = [[], []]
    stop = threading.Event()

    def load(i):
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.post(c.nodes[i].url("/v1/verify"), json={"key": secret},
                               timeout=HTTP_TIMEOUT)
                except requests.RequestException as e:
                    codes[i].append(repr(e))
                    continue
                codes[i].append(r.json()["code"] if r.status_code == 200
                                else f"http {r.status_code}")
                time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        poll(lambda: sum(x.count("valid") for x in codes) >= limit // 3, timeout=30,
             what="a third of the limit used")
        redis.kill()  # kill -9: only what its append-only file holds survives
        time.sleep(0.5)
        redis.start()
        poll(lambda: all(x[-1:] == ["rate_limited"] for x in codes), timeout=60,
             what="both nodes rate limited")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    everything = codes[0] + codes[1]
    # Never above the limit. Below it by at most a slice a node: a reservation
    # whose answer was lost with the dying Redis may have been granted and is
    # then never spent (docs/operations.md, "Exact").
    passed = everything.count("valid")
    assert limit - 2 * (limit // 8) <= passed <= limit, \
        {code: everything.count(code) for code in set(everything)}
    assert set(everything) <= {"valid", "rate_limited", "http 503"}, set(everything)


def test_a_flushed_script_cache_is_sent_again(cluster, redis):
    c = cluster(one_key(rate_limit={"limit": 1000, "window_s": LONG_WINDOW}))
    node = c.nodes[0]
    assert code(node, c.data["secret"]) == "valid"
    assert redis.cli("SCRIPT", "FLUSH") == "OK"
    sha = hashlib.sha1((REPO / "src/counters/reserve.lua").read_bytes()).hexdigest()
    assert redis.cli("SCRIPT", "EXISTS", sha) == "0"
    # Slices grow by doubling: within 40 checks at least one more refill runs,
    # and it sends the script whole. (On a loaded machine a refill may pass its
    # 250 ms bound and that check answers 503: never anything else.)
    codes = alternate([node], c.data["secret"], 40)
    assert set(codes) <= {"valid", "http 503 storage_unavailable"}, codes
    assert codes.count("valid") >= 30, codes
    assert redis.cli("SCRIPT", "EXISTS", sha) == "1", "the script was not sent again"
    assert "redis refused" not in node.stderr_text()


def test_a_clean_stop_gives_unspent_quota_back(cluster, redis):
    def setup(srv):
        ws = srv.create_workspace(quota=100000)
        return {"ws": ws.id, "secret": ws.create_key()["secret"]}

    c = cluster(setup)
    node = c.nodes[0]
    codes = alternate([node], c.data["secret"], 30)
    assert codes == ["valid"] * 30
    day = int(time.time()) // 86400
    name = f"latchkey:q:{c.data['ws']}:l:{day}"
    # The node reserved ahead of its checks ...
    assert int(redis.cli("GET", name)) > 30, redis.cli("GET", name)
    _finish(node)
    c.nodes.remove(node)
    # ... and gave back what it did not use when it stopped.
    assert int(redis.cli("GET", name)) == 30


def test_a_killed_node_never_spends_its_old_slice_again(cluster):
    """kill -9 a node holding an unspent slice, start it again: the slice stays
    counted in Redis and is not spent twice, so the limit still holds."""
    limit = 100
    c = cluster(one_key(rate_limit={"limit": limit, "window_s": LONG_WINDOW}))
    a, b = c.nodes
    first = alternate([a], c.data["secret"], 20)
    assert first == ["valid"] * 20
    a.kill9()
    a.start()
    poll(lambda: a.get("/readyz").json().get("checks", {}).get("redis") == "ok",
         timeout=15, what="the restarted node connected to Redis")
    rest = alternate([a, b], c.data["secret"], 300)
    passed = 20 + rest.count("valid")
    assert passed <= limit, passed
    # What is lost is at most the slice the dead process held (an eighth of the limit).
    assert passed >= limit - limit // 8, passed


# -- the URL and its password -----------------------------------------------------------

def test_a_wrong_password_is_reported_and_never_logged(tmp_path, redis):
    with one_server(tmp_path, {"redis": redis.url(password="Sekr1t-pa55word")}) as srv:
        key = srv.create_workspace().create_key(
            rate_limit={"limit": 5, "window_s": 60})["secret"]

        def refused():
            r = srv.get("/readyz")
            return r.status_code == 503 and "redis (authentication refused)" in r.text and r.text
        text = poll(refused, timeout=10, what="/readyz naming the refused authentication")
        assert "Sekr1t" not in text
        assert_error(verify(srv, key), 503, "storage_unavailable")
        assert "Sekr1t" not in srv.stderr_text()
        assert "redis://***@127.0.0.1" in srv.stderr_text()


def test_a_password_protected_redis_with_an_escaped_password(tmp_path):
    password = "Sekr1t#p@ss/word"
    r = Redis(tmp_path / "redis", password=password)
    try:
        escaped = password.replace("#", "%23").replace("@", "%40").replace("/", "%2F")
        with one_server(tmp_path, {"redis": r.url(password=escaped)}) as srv:
            # The node connects in the background; until then /readyz (what a
            # balancer asks) says not ready and checks answer 503.
            poll(lambda: srv.get("/readyz").status_code == 200, timeout=15,
                 what="/readyz ready once Redis accepted the password")
            key = srv.create_workspace().create_key(
                rate_limit={"limit": 3, "window_s": LONG_WINDOW})["secret"]
            assert alternate([srv], key, 5) == ["valid"] * 3 + ["rate_limited"] * 2
            assert expect_status(srv.get("/readyz"), 200)["checks"]["redis"] == "ok"
            assert "Sekr1t" not in srv.stderr_text()
    finally:
        r.stop()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379", "redis://", "redis://:Sekr1t@", "redis://h:0",
    "redis://h:99999", "redis://h:1/x", "redis://Sekr1t@h:1", "redis://h o:1",
    "redis://:%zzSekr1t@h:1",
])
def test_bad_redis_urls_are_refused_without_quoting_them(tmp_path, url):
    srv = LatchkeyServer(tmp_path / "srv", config={"redis": url})
    args = [BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--db", srv.db_url]
    if not srv.is_sqlite():
        args += ["--state-dir", str(srv.state_dir)]
    res = subprocess.run(args + srv._config_args(), capture_output=True, text=True, timeout=30)
    assert res.returncode != 0, res
    assert "redis URL" in res.stderr, res.stderr
    assert "Sekr1t" not in res.stderr + res.stdout, res.stderr
    # The flag is refused the same way.
    res = subprocess.run(args + ["--redis", url], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0 and "redis URL" in res.stderr, res.stderr
    assert "Sekr1t" not in res.stderr + res.stdout, res.stderr


# -- a key's own credits and named limits with Redis ---------------------------------------


def test_two_nodes_spend_a_keys_own_credits_exactly(cluster):
    """A key's own credits live in the store, which both nodes share: checks sent
    to the nodes in turn pass exactly as many times as there were credits."""
    c = cluster(one_key(credits={"remaining": 9}))
    got = alternate(c.nodes, c.data["secret"], 14, cost=1)
    assert got.count("valid") == 9 and got[9:] == ["insufficient_credits"] * 5, got
    d = verify(c.nodes[1], c.data["secret"], cost=1).json()
    assert d["credits"] == {"remaining": 0, "exceeded": True}, d


def test_two_nodes_share_named_limits_exactly(cluster):
    c = cluster(one_key(rate_limits=[
        {"name": "burst", "limit": 5, "window_ms": 60000, "auto_apply": True},
        {"name": "tokens", "limit": 100, "window_ms": 60000}]))
    got = alternate(c.nodes, c.data["secret"], 9)
    assert got == ["valid"] * 5 + ["rate_limited"] * 4, got
    d = verify(c.nodes[1], c.data["secret"]).json()
    assert d["rate_limited"] == "burst", d
    assert {x["name"]: x["remaining"] for x in d["ratelimits"]} == {"burst": 0}, d


def test_named_costs_across_nodes_and_a_refusal_counts_nothing(cluster):
    c = cluster(one_key(rate_limits=[
        {"name": "tokens", "limit": 10, "window_ms": 60000},
        {"name": "calls", "limit": 100, "window_ms": 60000, "auto_apply": True}]))
    a, b = c.nodes
    s = c.data["secret"]
    assert verify(a, s, ratelimits=[{"name": "tokens", "cost": 6}]).json()["valid"]
    d = verify(b, s, ratelimits=[{"name": "tokens", "cost": 5}]).json()
    assert (d["code"], d["rate_limited"]) == ("rate_limited", "tokens"), d
    left = {x["name"]: x["remaining"] for x in d["ratelimits"]}
    assert left == {"tokens": 4, "calls": 99}, d  # the refused check counted in neither
    d = verify(b, s, ratelimits=[{"name": "tokens", "cost": 4}]).json()
    assert d["valid"], d
    assert {x["name"]: x["remaining"] for x in d["ratelimits"]} == {"tokens": 0, "calls": 98}
    assert verify(a, s).json()["valid"], "calls alone still has room"


def test_a_refusal_after_the_named_limits_gives_them_back(cluster):
    """A check the quota refuses after Redis counted its named limits takes them back."""
    def setup(srv):
        ws = srv.create_workspace(quota=2)
        k = ws.create_key(rate_limits=[{"name": "n", "limit": 3, "window_ms": 60000,
                                        "auto_apply": True}])
        return {"ws": ws.id, "secret": k["secret"]}
    c = cluster(setup)
    got = alternate(c.nodes, c.data["secret"], 4)
    # not rate_limited: the refused checks' counts were given back
    assert got == ["valid", "valid", "quota_exceeded", "quota_exceeded"], got


def test_auth_context_shares_named_limits(cluster):
    c = cluster(one_key(rate_limits=[{"name": "b", "limit": 2, "window_ms": 60000,
                                      "auto_apply": True}]))
    codes = [c.nodes[i % 2].auth_context(c.data["secret"]).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429], codes


def test_named_limits_without_redis_answer_503(cluster, redis):
    c = cluster(one_key(rate_limits=[{"name": "b", "limit": 5, "window_ms": 60000,
                                      "auto_apply": True}]))
    assert verify(c.nodes[0], c.data["secret"]).json()["valid"]
    redis.stop()
    r = verify(c.nodes[0], c.data["secret"])
    assert r.status_code == 503, r.text
