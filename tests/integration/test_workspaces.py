"""Workspaces: the operator creates them; each is sealed from the others."""

import re

import pytest

from lkhelpers import (HEX_SECRET_RE, SECRET_RE, assert_error, checksum, describe,
                       expect_status)

WS_FIELDS = ("id", "name", "key_prefix", "key_format", "created_at")


def test_create_workspace(server):
    r = server.post("/v1/workspaces", key=server.root_key, json={"name": "acme"})
    doc = expect_status(r, 201)
    for f in WS_FIELDS + ("root_key", "application_keys"):
        assert f in doc, f"create answer lacks {f!r}: {describe(r)}"
    assert re.match(r"^ws_[0-9A-Za-z]+$", doc["id"]), doc["id"]
    assert doc["name"] == "acme" and doc["key_prefix"] == "lk"
    assert doc["key_format"] == "default"
    secrets = [doc["root_key"], doc["application_keys"]["read_write"],
               doc["application_keys"]["read_only"]]
    assert len(set(secrets)) == 3
    for s in secrets:
        m = SECRET_RE.match(s)
        assert m and m["prefix"] == "lk" and m["env"] == "live", s
        assert m["check"] == checksum(s[:-6])
        ctx = expect_status(server.auth_context(s), 200)
        assert ctx["workspace_id"] == doc["id"]
    assert expect_status(server.auth_context(doc["root_key"]), 200)["kind"] == "root"


def test_list_workspaces(server):
    a = server.create_workspace(name="list-a")
    b = server.create_workspace(name="list-b")
    r = server.get("/v1/workspaces", key=server.root_key)
    doc = expect_status(r, 200)
    by_id = {w["id"]: w for w in doc["data"]}
    assert {a.id, b.id, server.workspace_id} <= set(by_id), describe(r)
    assert by_id[a.id]["name"] == "list-a" and by_id[b.id]["name"] == "list-b"
    for w in doc["data"]:
        for f in WS_FIELDS:
            assert f in w, w
        assert "root_key" not in w and "application_keys" not in w, w
    assert a.root_key not in r.text and a.rw_key not in r.text


def test_new_workspace_keys_list(server, ws):
    keys = ws.list_keys()["data"]
    kinds = sorted(k["kind"] for k in keys)
    assert kinds == ["application", "application", "root"], keys
    perms = sorted(tuple(k["permissions"]) for k in keys if k["kind"] == "application")
    assert perms == [("*",), ("*:read",)], keys


def test_custom_prefix(server):
    w = server.create_workspace(key_prefix="fsk")
    assert w.data["key_prefix"] == "fsk"
    for s in (w.root_key, w.rw_key, w.ro_key):
        assert s.startswith("fsk_live_") and SECRET_RE.match(s), s
    k = w.create_key(name="p")
    assert k["secret"].startswith("fsk_live_")
    assert k["secret"][-6:] == checksum(k["secret"][:-6])
    assert k["hint"] == "fsk_live_..." + k["secret"][-10:-6]
    t = w.create_key(environment="test")
    assert t["secret"].startswith("fsk_test_")
    assert expect_status(server.auth_context(k["secret"]), 200)["key_id"] == k["id"]
    assert expect_status(server.auth_context(t["secret"]), 200)["environment"] == "test"


def test_prefix_with_underscore(server):
    w = server.create_workspace(key_prefix="flw_sk")
    k = w.create_key()
    m = SECRET_RE.match(k["secret"])
    assert k["secret"].startswith("flw_sk_live_") and m, k["secret"]
    assert expect_status(server.auth_context(k["secret"]), 200)["key_id"] == k["id"]


def test_hex_format(server):
    w = server.create_workspace(key_format="hex")
    assert w.data["key_format"] == "hex"
    for s in (w.root_key, w.rw_key, w.ro_key):
        assert HEX_SECRET_RE.match(s), s
    k = w.create_key()
    assert HEX_SECRET_RE.match(k["secret"]), k["secret"]
    assert expect_status(server.auth_context(k["secret"]), 200)["key_id"] == k["id"]
    v = expect_status(server.verify({"key": k["secret"]}), 200)
    assert v["valid"] is True and v["key_id"] == k["id"]
    assert k["hint"].endswith(k["secret"][-4:]) and k["secret"] not in k["hint"]
    assert server.delete(f"/v1/keys/{k['id']}", key=w.root_key).status_code == 204
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": 7}, "name"),
    ({"name": "x", "key_prefix": "FSK"}, "key_prefix"),
    ({"name": "x", "key_prefix": "1ab"}, "key_prefix"),
    ({"name": "x", "key_prefix": "a" * 17}, "key_prefix"),
    ({"name": "x", "key_prefix": "fs-k"}, "key_prefix"),
    ({"name": "x", "key_prefix": ""}, "key_prefix"),
    ({"name": "x", "key_format": "base64"}, "key_format"),
    ({"name": "x", "owner": "me"}, "owner"),
])
def test_create_workspace_rejects_bad_input(server, body, field):
    r = server.post("/v1/workspaces", key=server.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)


def test_only_the_operator_manages_workspaces(server, ws):
    for key in (ws.root_key, ws.rw_key, ws.ro_key):
        assert_error(server.post("/v1/workspaces", key=key, json={"name": "x"}), 403,
                     "insufficient_permissions")
        assert_error(server.get("/v1/workspaces", key=key), 403, "insufficient_permissions")
    k = ws.create_key()
    assert_error(server.post("/v1/workspaces", key=k["secret"], json={"name": "x"}), 403,
                 "insufficient_permissions")
    assert_error(server.post("/v1/workspaces", json={"name": "x"}), 401, "missing_key")


def test_operator_workspace_application_key_is_not_operator(server):
    keys = expect_status(server.get("/v1/keys", key=server.root_key), 200)["data"]
    app = [k for k in keys if k["kind"] == "application" and k["permissions"] == ["*"]]
    assert len(app) == 1, keys
    r = server.post(f"/v1/keys/{app[0]['id']}/regenerate", key=server.root_key, json={})
    rw = expect_status(r, 200)["secret"]
    assert_error(server.post("/v1/workspaces", key=rw, json={"name": "x"}), 403,
                 "insufficient_permissions")


def test_workspaces_are_sealed(server, ws, ws2):
    a = ws.create_key(name="a-key")
    path = f"/v1/keys/{a['id']}"
    for key in (ws2.root_key, ws2.rw_key, ws2.ro_key):
        assert_error(server.get(path, key=key), 404, "not_found")
    for key in (ws2.root_key, ws2.rw_key):
        assert_error(server.patch(path, key=key, json={"name": "pwned"}), 404, "not_found")
        assert_error(server.patch(path, key=key, json={"enabled": False}), 404, "not_found")
        assert_error(server.delete(path, key=key), 404, "not_found")
        assert_error(server.post(path + "/regenerate", key=key, json={}), 404, "not_found")
    listed = ws2.list_keys()["data"]
    assert a["id"] not in {k["id"] for k in listed}
    assert all(k["workspace_id"] == ws2.id for k in listed), listed
    # and A's key is untouched
    got = ws.get_key(a["id"])
    assert got["name"] == "a-key" and got["status"] == "active"
    assert expect_status(server.auth_context(a["secret"]), 200)["key_id"] == a["id"]


def test_cannot_read_other_workspace_keys_by_filter_or_cursor(server, ws, ws2):
    for _ in range(3):
        ws.create_key(environment="test")
    assert ws2.list_keys(environment="test")["data"] == []
    first = ws.list_keys(limit=1)
    assert first["next_cursor"]
    r = server.get("/v1/keys", key=ws2.root_key, params={"limit": 100,
                                                         "cursor": first["next_cursor"]})
    if r.status_code == 200:
        assert all(k["workspace_id"] == ws2.id for k in r.json()["data"]), describe(r)
    else:
        assert_error(r, 400, "invalid_request")


def test_application_keys_cannot_be_deleted_or_disabled(server, ws):
    apps = [k for k in ws.list_keys()["data"] if k["kind"] == "application"]
    assert len(apps) == 2
    for app in apps:
        assert_error(server.delete(f"/v1/keys/{app['id']}", key=ws.root_key), 409, "conflict")
        assert_error(server.patch(f"/v1/keys/{app['id']}", key=ws.root_key,
                                  json={"enabled": False}), 409, "conflict")
        assert ws.get_key(app["id"])["status"] == "active"
    expect_status(server.get("/v1/keys", key=ws.rw_key), 200)
    expect_status(server.get("/v1/keys", key=ws.ro_key), 200)


def test_application_key_can_be_regenerated(server, ws):
    rw = expect_status(server.auth_context(ws.rw_key), 200)["key_id"]
    r = server.post(f"/v1/keys/{rw}/regenerate", key=ws.root_key, json={})
    doc = expect_status(r, 200)
    assert doc["id"] == rw and doc["kind"] == "application"
    assert_error(server.get("/v1/keys", key=ws.rw_key), 401, "revoked_key")
    expect_status(server.get("/v1/keys", key=doc["secret"]), 200)


def test_operator_is_confined_to_its_own_workspace_for_keys(server, ws):
    k = ws.create_key(name="theirs")
    path = f"/v1/keys/{k['id']}"
    assert_error(server.get(path, key=server.root_key), 404, "not_found")
    assert_error(server.delete(path, key=server.root_key), 404, "not_found")
    assert_error(server.patch(path, key=server.root_key, json={"name": "x"}), 404, "not_found")
    ids = {x["id"] for x in expect_status(server.get("/v1/keys", key=server.root_key,
                                                     params={"limit": 100}), 200)["data"]}
    assert k["id"] not in ids
    assert expect_status(server.auth_context(k["secret"]), 200)["key_id"] == k["id"]
    assert ws.get_key(k["id"])["name"] == "theirs"


def test_keys_created_land_in_the_callers_workspace(server, ws, ws2):
    a = ws.create_key(key=ws.rw_key)
    b = ws2.create_key()
    assert a["workspace_id"] == ws.id and b["workspace_id"] == ws2.id
    assert expect_status(server.auth_context(a["secret"]), 200)["workspace_id"] == ws.id
    assert expect_status(server.auth_context(b["secret"]), 200)["workspace_id"] == ws2.id
    assert a["id"] not in {k["id"] for k in ws2.list_keys()["data"]}
    assert b["id"] not in {k["id"] for k in ws.list_keys()["data"]}


def test_hex_workspace_keys_and_default_workspace_side_by_side(server):
    h = server.create_workspace(key_format="hex", key_prefix="hx")
    k = h.create_key(environment="test")
    assert HEX_SECRET_RE.match(k["secret"])
    ctx = expect_status(server.auth_context(k["secret"]), 200)
    assert ctx["environment"] == "test" and ctx["workspace_id"] == h.id
    v = expect_status(server.verify({"key": k["secret"], "environment": "live"}), 200)
    assert v["valid"] is False and v["code"] == "environment_mismatch", v


def test_workspaces_survive_in_list_after_many(server):
    made = [server.create_workspace(name=f"bulk-{i}").id for i in range(10)]
    ids = [w["id"] for w in expect_status(server.get("/v1/workspaces", key=server.root_key),
                                          200)["data"]]
    assert set(made) <= set(ids) and len(ids) == len(set(ids))


def test_regenerated_operator_key_stays_the_operator(fresh_server):
    srv = fresh_server
    root_id = expect_status(srv.auth_context(srv.root_key), 200)["key_id"]
    r = srv.post(f"/v1/keys/{root_id}/regenerate", key=srv.root_key, json={})
    new = expect_status(r, 200)["secret"]
    assert_error(srv.get("/v1/workspaces", key=srv.root_key), 401, "revoked_key")
    expect_status(srv.get("/v1/workspaces", key=new), 200)
    w = expect_status(srv.post("/v1/workspaces", key=new, json={"name": "after-rotation"}), 201)
    srv.restart()
    ids = {x["id"] for x in expect_status(srv.get("/v1/workspaces", key=new), 200)["data"]}
    assert w["id"] in ids
