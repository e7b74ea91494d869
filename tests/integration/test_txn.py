"""Checks that must hold however many servers share one database: a key's change
reads the key in the transaction that writes it, and the last-owner rule counts
owners in the transaction that demotes or removes one. No process-level lock can
keep these right across processes, so each test drives two `latchkey serve`
processes on one database at once, and is skipped while a database takes only one
server (its serve lock refuses the second)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import LatchkeyServer, _finish, _live_servers
from lkhelpers import expect_status

ROUNDS = 8


@pytest.fixture
def two_nodes(tmp_path):
    """(first, second): two servers on one database. Whatever a test needs the
    second to know at start (keys it authenticates) must exist before it starts:
    this is not a test of how servers learn each other's changes."""
    first = LatchkeyServer(tmp_path / "node0", config={"failed_key_limit": "none",
                                                       "login_rate_limit": "none"})
    _live_servers.append(first)
    first.start()
    second = LatchkeyServer(tmp_path / "node1", init=False, config=first.config)
    second.db_path, second.db_url = first.db_path, first.db_url
    second.root_key, second.workspace_id = first.root_key, first.workspace_id
    _live_servers.append(second)
    started = []

    def start_second():
        try:
            second.start()
        except pytest.fail.Exception:
            if "another latchkey is serving" in second.stderr_text():
                pytest.skip("this database takes one server at a time (serve lock)")
            raise
        started.append(second)
        return second

    yield first, start_second
    for srv in (second, first):
        _finish(srv)


def test_concurrent_patches_on_two_servers_lose_no_change(two_nodes):
    first, start_second = two_nodes
    w = first.create_workspace()
    keys = [w.create_key(name="before") for _ in range(ROUNDS)]
    second = start_second()
    changes = [
        (first, lambda i: {"name": f"renamed-{i}"}),
        (second, lambda i: {"meta": {"round": i}}),
        (first, lambda i: {"permissions": [f"round{i}:read"]}),
        (second, lambda i: {"daily_spend_cap": 1000 + i}),
    ]
    for i, k in enumerate(keys):
        path = f"/v1/keys/{k['id']}"
        with ThreadPoolExecutor(len(changes)) as pool:
            answers = list(pool.map(
                lambda c: c[0].patch(path, key=w.root_key, json=c[1](i)), changes))
        for r in answers:
            expect_status(r, 200)
        for srv in (first, second):
            got = expect_status(srv.get(path, key=w.root_key), 200)
            assert (got["name"], got["meta"], got["permissions"], got["daily_spend_cap"]) == \
                (f"renamed-{i}", {"round": i}, [f"round{i}:read"], 1000 + i), got


@pytest.mark.parametrize("how", ["demote", "remove"])
def test_two_servers_never_leave_no_owner(two_nodes, how):
    first, start_second = two_nodes
    rounds = []
    for _ in range(ROUNDS):
        w = first.create_workspace()
        rounds.append((w, [w.new_user("owner"), w.new_user("owner")]))
    second = start_second()
    for w, owners in rounds:
        def change(i):
            srv, u = (first, second)[i], owners[i]
            if how == "remove":
                return srv.delete(f"/v1/members/{u.id}", key=w.root_key)
            return srv.patch(f"/v1/members/{u.id}", key=w.root_key, json={"role": "viewer"})

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(change, range(2)))
        codes = sorted(r.status_code for r in answers)
        roles = [m["role"] for m in w.list_members()["data"]]
        assert roles.count("owner") == 1, f"owners left: {codes} {roles}"
        assert codes in ([200, 409], [204, 409]), codes
