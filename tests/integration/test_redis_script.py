"""The reservation script (src/counters/reserve.lua) on a real redis-server, without
latchkey: what each call grants, what it counts, and what it gives back. The
exactness of shared limits rests on these rules (docs/internals/redis.md)."""

import time
from pathlib import Path

import pytest

from test_redis import Redis, pytestmark  # noqa: F401  (the skip without redis-server)

LUA = (Path(__file__).resolve().parents[2] / "src" / "counters" / "reserve.lua").read_text()
DAY = 20000  # a UTC day number (Unix time / 86400)


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    srv = Redis(tmp_path_factory.mktemp("redis"))
    yield srv
    srv.stop()


def names(rowid=1, ws="ws_a", env="l", day=DAY, q_ret_day=0, sp_ret_day=0):
    return ([f"latchkey:rl:{rowid}"] +
            [f"latchkey:q:{ws}:{env}:{d}" for d in range(day - 29, day + 1)] +
            [f"latchkey:sp:{rowid}:{day}", f"latchkey:q:{ws}:{env}:{q_ret_day}",
             f"latchkey:sp:{rowid}:{sp_ret_day}"])


def reserve(r, keys, rl=(0, 0, 0), q=(0, 0, 0), sp=(0, 0, 0), ret=(0, 0), q_least=None,
            sp_least=0):
    q_least = q_least or [0] * 30
    args = [str(x) for x in (*rl, *q, *sp, *ret, *q_least, sp_least)]
    out = r.cli("EVAL", LUA, str(len(keys)), *keys, *args)
    vals = [int(x) for x in out.split()]
    assert len(vals) == 7, out
    return dict(zip(("rl", "rl_left", "ttl", "q", "q_left", "sp", "sp_left"), vals))


@pytest.fixture(autouse=True)
def clean(r):
    r.cli("FLUSHALL")


def test_rate_grants_never_exceed_the_limit(r):
    keys = names()
    got = [reserve(r, keys, rl=(want, 10, 60000)) for want in (4, 4, 4, 4)]
    assert [g["rl"] for g in got] == [4, 4, 2, 0]
    assert [g["rl_left"] for g in got] == [6, 2, 0, 0]
    assert all(0 < g["ttl"] <= 60000 for g in got), got
    assert r.cli("HGET", keys[0], "n") == "10"
    # The window expires with itself: nothing is left behind.
    assert 0 < int(r.cli("PTTL", keys[0])) <= 60000


def test_rate_window_opens_again_after_it_ends(r):
    keys = names(rowid=2)
    assert reserve(r, keys, rl=(5, 5, 300))["rl"] == 5
    assert reserve(r, keys, rl=(1, 5, 300))["rl"] == 0
    time.sleep(0.4)
    g = reserve(r, keys, rl=(3, 5, 300))
    assert g["rl"] == 3 and g["rl_left"] == 2, g


def test_quota_sums_the_thirty_days_and_counts_grants_today(r):
    keys = names()
    r.cli("SET", f"latchkey:q:ws_a:l:{DAY - 29}", "30")  # oldest day still in the window
    r.cli("SET", f"latchkey:q:ws_a:l:{DAY - 30}", "1000")  # left the window
    g = reserve(r, keys, q=(50, 1, 100))
    assert g["q"] == 50 and g["q_left"] == 20, g
    g = reserve(r, keys, q=(50, 1, 100))
    assert g["q"] == 20 and g["q_left"] == 0, g
    assert reserve(r, keys, q=(1, 1, 100))["q"] == 0
    assert r.cli("GET", f"latchkey:q:ws_a:l:{DAY}") == "70"
    # Test keys count apart.
    assert reserve(r, names(env="t"), q=(5, 1, 10))["q"] == 5


def test_spend_grants_nothing_below_the_minimum(r):
    keys = names(rowid=3)
    assert reserve(r, keys, sp=(8, 8, 20))["sp"] == 8
    assert reserve(r, keys, sp=(8, 8, 20))["sp"] == 8
    g = reserve(r, keys, sp=(8, 8, 20))  # 4 left: a cost of 8 takes nothing
    assert g["sp"] == 0 and g["sp_left"] == 4, g
    g = reserve(r, keys, sp=(4, 3, 20))
    assert g["sp"] == 4 and g["sp_left"] == 0, g
    assert r.cli("GET", keys[31]) == "20"


def test_give_back_frees_units_and_never_goes_below_zero(r):
    keys = names(rowid=4, q_ret_day=DAY, sp_ret_day=DAY)
    assert reserve(r, keys, q=(10, 1, 10), sp=(10, 1, 10)) ["q"] == 10
    # Give 3 back of each, and take again in the same call: the 3 are grantable.
    g = reserve(r, keys, q=(5, 1, 10), sp=(5, 1, 10), ret=(3, 3))
    assert g["q"] == 3 and g["sp"] == 3, g
    # More back than there is: down to zero, not below.
    reserve(r, keys, ret=(100, 100))
    assert r.cli("GET", keys[30]) == "0" and r.cli("GET", keys[31]) == "0"


def test_parts_not_asked_for_are_not_touched(r):
    keys = names(rowid=5)
    g = reserve(r, keys)
    assert g == {"rl": 0, "rl_left": 0, "ttl": 0, "q": 0, "q_left": 0, "sp": 0, "sp_left": 0}
    assert r.cli("EXISTS", keys[0], keys[30], keys[31]) == "0"


def test_concurrent_callers_never_share_a_unit(r):
    """Many clients reserving at once get exactly the limit between them."""
    import threading

    keys = names(rowid=6)
    got = []
    lock = threading.Lock()

    def take():
        for _ in range(20):
            g = reserve(r, keys, rl=(3, 100, 600000))["rl"]
            with lock:
                got.append(g)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(got) == 100, got


def test_what_a_node_knows_was_used_raises_the_days_first(r):
    """A node's counts from the database (before Redis, or after Redis lost its data)
    are the least a day holds; Redis keeps the larger of the two."""
    keys = names(rowid=7, ws="ws_b")
    least = [0] * 30
    least[0], least[29] = 30, 5  # the oldest day in the window, and today
    g = reserve(r, keys, q=(100, 1, 100), q_least=least)
    assert g["q"] == 65 and g["q_left"] == 0, g
    assert r.cli("GET", keys[1]) == "30" and r.cli("GET", keys[30]) == "70"
    # Less than Redis holds changes nothing.
    reserve(r, keys, q=(1, 1, 100), q_least=[1] * 30)
    assert r.cli("GET", keys[30]) == "70"
    g = reserve(r, keys, sp=(10, 1, 50), sp_least=45)
    assert g["sp"] == 5 and g["sp_left"] == 0, g
