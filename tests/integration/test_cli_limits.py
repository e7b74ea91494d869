"""The command line for money and use: credits, credits top-up, quota, usage."""

import json

from conftest import clean_env, poll, run_cli
from lkhelpers import expect_status


def cli(server, token, *args):
    env = clean_env(LATCHKEY_URL=server.base_url, LATCHKEY_TOKEN=token)
    return run_cli(list(args), env=env)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}; stderr: {res.stderr!r}"
    return res


def ok_json(res):
    return json.loads(ok(res).stdout)


def failed(res):
    assert res.returncode != 0, f"expected failure, exit 0; stdout: {res.stdout!r}"
    assert res.stderr.strip(), "failure without a message on stderr"


def test_top_up_then_balance_and_ledger(server, ws):
    out = ok(cli(server, ws.root_key, "credits", "top-up", "250", "--note", "invoice 12")).stdout
    assert "balance 250" in out, out
    doc = ok_json(cli(server, ws.root_key, "credits", "--json"))
    assert doc["balance"] == 250 and doc["topped_up"] == 250
    assert doc["ledger"][0]["note"] == "invoice 12" and doc["ledger"][0]["amount"] == 250
    table = ok(cli(server, ws.root_key, "credits")).stdout
    assert "balance 250" in table and "invoice 12" in table and "top_up" in table
    # the server agrees
    assert expect_status(server.get("/v1/credits", key=ws.root_key), 200)["balance"] == 250


def test_top_up_refuses_bad_amounts_and_weak_credentials(server, ws):
    for amount in ["0", "-5", "ten", "1.5"]:
        failed(cli(server, ws.root_key, "credits", "top-up", amount))
    # the read-write application key manages keys, but may not add money
    res = cli(server, ws.rw_key, "credits", "top-up", "5")
    failed(res)
    assert "insufficient_permissions" in res.stderr
    assert expect_status(server.get("/v1/credits", key=ws.root_key), 200)["balance"] == 0


def test_quota_shows_use(server, ws):
    k = ws.create_key()
    for _ in range(3):
        expect_status(server.auth_context(k["secret"]), 200)
    doc = ok_json(cli(server, ws.root_key, "quota", "--json"))
    assert doc["live"]["used"] == 3 and doc["live"]["limit"] is None
    assert "3 used, no limit" in ok(cli(server, ws.root_key, "quota")).stdout


def test_usage_by_outcome(server, ws):
    k = ws.create_key(permissions=["a:read"])
    server.verify({"key": k["secret"]})
    server.verify({"key": k["secret"], "permissions": "a:write"})
    doc = poll(lambda: (lambda d: d if d["totals"].get("valid") == 1 else None)(
        ok_json(cli(server, ws.root_key, "usage", k["id"], "--json"))), what="usage")
    assert doc["totals"] == {"valid": 1, "insufficient_permissions": 1}
    out = ok(cli(server, ws.root_key, "usage", k["id"], "--granularity", "day")).stdout
    assert "valid=1" in out and "insufficient_permissions=1" in out
    failed(cli(server, ws.root_key, "usage", "../../v1/credits"))
    failed(cli(server, ws.root_key, "usage", k["id"], "--granularity", "week"))
