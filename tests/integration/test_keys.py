"""Key management: /v1/keys create, list, get, patch, delete, regenerate."""

import re
import time
from datetime import datetime, timezone

import pytest

from lkhelpers import (SECRET_RE, assert_error, assert_error_shape, checksum, contains_value,
                       describe, expect_status, has_key)

KEY_FIELDS = ("id", "name", "workspace_id", "environment", "kind", "permissions", "hint",
              "enabled", "status", "expires_at", "revoked_at", "created_at", "last_used_at",
              "rate_limit", "daily_spend_cap", "meta")
KEY_ID_RE = re.compile(r"^key_[0-9A-Za-z]+$")


def parse_time(s):
    assert isinstance(s, str) and s.endswith("Z"), f"not an RFC 3339 UTC time: {s!r}"
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def seconds_from_now(s):
    return (parse_time(s) - datetime.now(timezone.utc)).total_seconds()


def list_all(server, key, **params):
    """Follow next_cursor to the end; returns the keys in the order served."""
    out, cursor, pages = [], None, []
    while True:
        p = dict(params)
        if cursor is not None:
            p["cursor"] = cursor
        r = server.get("/v1/keys", key=key, params=p)
        doc = expect_status(r, 200)
        assert isinstance(doc.get("data"), list) and "next_cursor" in doc, describe(r)
        out.extend(doc["data"])
        cursor = doc["next_cursor"]
        pages.append(len(doc["data"]))
        assert len(pages) < 50, "pagination does not end"
        if cursor is None:
            return out, pages


# -- create ----------------------------------------------------------------------

def test_create_returns_key_with_secret_once(server, ws):
    k = ws.create_key(name="ci", permissions=["storage:read", "storage:write"],
                      meta={"team": "infra", "n": 3})
    for f in KEY_FIELDS + ("secret",):
        assert f in k, f"create answer lacks {f!r}: {k}"
    assert KEY_ID_RE.match(k["id"]), k["id"]
    assert k["name"] == "ci" and k["workspace_id"] == ws.id
    assert k["environment"] == "live" and k["kind"] == "permanent"
    assert k["permissions"] == ["storage:read", "storage:write"]
    assert k["enabled"] is True and k["status"] == "active"
    assert k["expires_at"] is None and k["revoked_at"] is None and k["last_used_at"] is None
    assert k["rate_limit"] is None and k["daily_spend_cap"] is None
    assert k["meta"] == {"team": "infra", "n": 3}
    assert abs(seconds_from_now(k["created_at"])) < 60
    got = ws.get_key(k["id"])
    assert not has_key(got, "secret") and not contains_value(got, k["secret"]), got
    assert {f: got[f] for f in KEY_FIELDS} == {f: k[f] for f in KEY_FIELDS}


def test_secret_format_and_hint(server, ws):
    k = ws.create_key()
    s = k["secret"]
    m = SECRET_RE.match(s)
    assert m, f"secret not in the <prefix>_<env>_<body><check> format: {s!r}"
    assert m["prefix"] == "lk" and m["env"] == "live"
    assert m["check"] == checksum(s[:-6]), "check is not the base62 CRC32 of the rest"
    assert k["hint"] == "lk_live_..." + s[-10:-6], k["hint"]
    t = ws.create_key(environment="test")
    assert SECRET_RE.match(t["secret"])["env"] == "test"
    assert t["hint"] == "lk_test_..." + t["secret"][-10:-6]
    assert t["environment"] == "test"


def test_secrets_differ(server, ws):
    a, b = ws.create_key(), ws.create_key()
    assert a["id"] != b["id"] and a["secret"][8:-6] != b["secret"][8:-6]


def test_rate_limit_cap_and_expiry_fields_round_trip(server, ws):
    k = ws.create_key(rate_limit={"limit": 10, "window_s": 60}, daily_spend_cap=500,
                      expires_in=7200)
    assert k["rate_limit"] == {"limit": 10, "window_s": 60}
    assert k["daily_spend_cap"] == 500
    assert 7100 <= seconds_from_now(k["expires_at"]) <= 7205
    got = ws.get_key(k["id"])
    assert got["rate_limit"] == {"limit": 10, "window_s": 60} and got["daily_spend_cap"] == 500


@pytest.mark.parametrize("as_unix", [False, True])
def test_expires_at_string_or_unix(server, ws, as_unix):
    target = int(time.time()) + 3000
    value = target if as_unix else datetime.fromtimestamp(target, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    k = ws.create_key(expires_at=value)
    assert parse_time(k["expires_at"]).timestamp() == target


def test_temporary_defaults_to_one_hour(server, ws):
    k = ws.create_key(kind="temporary")
    assert k["kind"] == "temporary"
    assert 3500 <= seconds_from_now(k["expires_at"]) <= 3605


def test_temporary_at_most_one_day(server, ws):
    k = ws.create_key(kind="temporary", expires_in=86400)
    assert 86300 <= seconds_from_now(k["expires_at"]) <= 86405
    r = server.post("/v1/keys", key=ws.root_key,
                    json={"name": "t", "kind": "temporary", "expires_in": 90000})
    assert_error(r, 400, "invalid_request", field="expires_in")


def test_root_kind_by_root_caller(server, ws):
    k = ws.create_key(kind="root")
    assert k["kind"] == "root"
    r = server.get("/v1/keys", key=k["secret"])
    expect_status(r, 200)
    r = server.post("/v1/keys", key=ws.rw_key, json={"name": "r", "kind": "root"})
    assert_error(r, 403, "insufficient_permissions")


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": 5}, "name"),
    ({"name": "a", "environment": "prod"}, "environment"),
    ({"name": "a", "kind": "application"}, "kind"),
    ({"name": "a", "kind": "superuser"}, "kind"),
    ({"name": "a", "permissions": "storage:read"}, "permissions"),
    ({"name": "a", "permissions": [1, 2]}, "permissions"),
    ({"name": "a", "expires_in": 0}, "expires_in"),
    ({"name": "a", "expires_in": "60"}, "expires_in"),
    ({"name": "a", "expires_in": 315360001}, "expires_in"),
    ({"name": "a", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "a", "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "a", "rate_limit": {"limit": 0, "window_s": 60}}, "rate_limit"),
    ({"name": "a", "rate_limit": 5}, "rate_limit"),
    ({"name": "a", "daily_spend_cap": -1}, "daily_spend_cap"),
    ({"name": "a", "meta": "x"}, "meta"),
    ({"name": "a", "meta": {"blob": "x" * 5000}}, "meta"),
    ({"name": "a", "colour": "blue"}, "colour"),
    ({"name": "a", "workspace_id": "ws_somewhere_else"}, "workspace_id"),
    ({"name": "a", "enabled": "no"}, "enabled"),
])
def test_create_rejects_bad_input(server, ws, body, field):
    r = server.post("/v1/keys", key=ws.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)


def test_create_rejects_expires_in_with_expires_at(server, ws):
    r = server.post("/v1/keys", key=ws.root_key,
                    json={"name": "a", "expires_in": 60, "expires_at": int(time.time()) + 60})
    err = assert_error(r, 400, "invalid_request")
    assert err.get("field") in ("expires_in", "expires_at"), describe(r)


def test_create_bad_json(server, ws):
    r = server.post("/v1/keys", key=ws.root_key, data=b"{nope",
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")


def test_create_without_credential(server):
    assert_error(server.post("/v1/keys", json={"name": "a"}), 401, "missing_key")


# -- list --------------------------------------------------------------------------

def test_list_newest_first_with_pagination(server, ws):
    mine = [ws.create_key(name=f"p{i}")["id"] for i in range(5)]
    keys, pages = list_all(server, ws.root_key, limit=2)
    ids = [k["id"] for k in keys]
    assert len(ids) == len(set(ids)), f"a key is listed twice: {ids}"
    assert ids[:5] == list(reversed(mine)), f"not newest first: {ids} (created {mine})"
    assert all(n == 2 for n in pages[:-1]) and pages[-1] <= 2, f"page sizes {pages}"
    for k in keys:
        assert not has_key(k, "secret"), k
        assert k["workspace_id"] == ws.id
    first = ws.list_keys(limit=2)
    assert len(first["data"]) == 2 and first["next_cursor"], first


def test_list_default_returns_everything_small(server, ws):
    mine = {ws.create_key()["id"] for _ in range(3)}
    doc = ws.list_keys()
    assert mine <= {k["id"] for k in doc["data"]}
    assert doc["next_cursor"] is None


def test_list_filters(server, ws):
    live = ws.create_key(name="live")
    test = ws.create_key(name="test", environment="test")
    gone = ws.create_key(name="gone")
    off = ws.create_key(name="off")
    assert server.delete(f"/v1/keys/{gone['id']}", key=ws.root_key).status_code == 204
    expect_status(server.patch(f"/v1/keys/{off['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)

    envs = ws.list_keys(environment="test")["data"]
    assert [k["id"] for k in envs] == [test["id"]], envs
    live_ids = {k["id"] for k in ws.list_keys(environment="live")["data"]}
    assert live["id"] in live_ids and test["id"] not in live_ids

    revoked = ws.list_keys(status="revoked")["data"]
    assert [k["id"] for k in revoked] == [gone["id"]], revoked
    assert revoked[0]["status"] == "revoked"
    disabled = ws.list_keys(status="disabled")["data"]
    assert [k["id"] for k in disabled] == [off["id"]], disabled
    active = {k["id"] for k in ws.list_keys(status="active")["data"]}
    assert {live["id"], test["id"]} <= active
    assert gone["id"] not in active and off["id"] not in active


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"environment": "prod"}, "environment"),
    ({"status": "sleeping"}, "status"),
])
def test_list_rejects_bad_query(server, ws, params, field):
    r = server.get("/v1/keys", key=ws.root_key, params=params)
    assert_error(r, 400, "invalid_request", field=field)


def test_list_rejects_garbage_cursor(server, ws):
    r = server.get("/v1/keys", key=ws.root_key, params={"cursor": "%%%not-a-cursor"})
    assert_error(r, 400, "invalid_request", field="cursor")


# -- get / patch -------------------------------------------------------------------

def test_get_unknown_key_is_404(server, ws):
    for method, path, body in [
        ("GET", "/v1/keys/key_doesnotexist0000", None),
        ("PATCH", "/v1/keys/key_doesnotexist0000", {"name": "x"}),
        ("DELETE", "/v1/keys/key_doesnotexist0000", None),
        ("POST", "/v1/keys/key_doesnotexist0000/regenerate", {}),
    ]:
        kw = {} if body is None else {"json": body}
        r = server.request(method, path, key=ws.root_key, **kw)
        assert_error(r, 404, "not_found")


def test_patch_fields(server, ws):
    k = ws.create_key(name="before")
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={
        "name": "after", "permissions": ["content:read"], "meta": {"owner": "ops"},
        "rate_limit": {"limit": 5, "window_s": 10}, "daily_spend_cap": 7,
    })
    doc = expect_status(r, 200)
    assert doc["id"] == k["id"] and doc["name"] == "after", describe(r)
    assert doc["permissions"] == ["content:read"] and doc["meta"] == {"owner": "ops"}
    assert doc["rate_limit"] == {"limit": 5, "window_s": 10} and doc["daily_spend_cap"] == 7
    assert not has_key(doc, "secret")
    got = ws.get_key(k["id"])
    assert got["name"] == "after" and got["permissions"] == ["content:read"]
    assert got["meta"] == {"owner": "ops"}
    ctx = expect_status(server.auth_context(k["secret"]), 200)
    assert ctx["permissions"] == ["content:read"], ctx


def test_patch_enabled_reflected_in_status(server, ws):
    k = ws.create_key()
    doc = expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                                     json={"enabled": False}), 200)
    assert doc["enabled"] is False and doc["status"] == "disabled"
    assert ws.get_key(k["id"])["status"] == "disabled"
    assert_error(server.auth_context(k["secret"]), 403, "inactive_key")
    doc = expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                                     json={"enabled": True}), 200)
    assert doc["status"] == "active"
    expect_status(server.auth_context(k["secret"]), 200)


def test_patch_expires_at_and_clear_it(server, ws):
    k = ws.create_key()
    target = int(time.time()) + 5000
    doc = expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                                     json={"expires_at": target}), 200)
    assert parse_time(doc["expires_at"]).timestamp() == target
    doc = expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                                     json={"expires_at": None}), 200)
    assert doc["expires_at"] is None


@pytest.mark.parametrize("body,field", [
    ({"colour": "blue"}, "colour"),
    ({"name": 5}, "name"),
    ({"name": ""}, "name"),
    ({"enabled": "yes"}, "enabled"),
    ({"enabled": 1}, "enabled"),
    ({"permissions": "storage:read"}, "permissions"),
    ({"meta": [1]}, "meta"),
    ({"meta": {"blob": "x" * 5000}}, "meta"),
    ({"rate_limit": {"limit": "a", "window_s": 1}}, "rate_limit"),
    ({"daily_spend_cap": "lots"}, "daily_spend_cap"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"secret": "lk_live_x"}, "secret"),
    ({"id": "key_other"}, "id"),
    ({"kind": "root"}, "kind"),
    ({"environment": "test"}, "environment"),
    ({"workspace_id": "ws_other"}, "workspace_id"),
])
def test_patch_rejects_bad_input(server, ws, body, field):
    k = ws.create_key(name="keep")
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)
    assert ws.get_key(k["id"])["name"] == "keep"


def test_patch_bad_json(server, ws):
    k = ws.create_key()
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, data=b"[1,",
                     headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")


# -- delete ------------------------------------------------------------------------

def test_delete_revokes_at_once(server, ws):
    k = ws.create_key()
    expect_status(server.auth_context(k["secret"]), 200)
    r = server.delete(f"/v1/keys/{k['id']}", key=ws.root_key)
    assert r.status_code == 204 and r.content == b"", describe(r)
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")
    got = ws.get_key(k["id"])
    assert got["status"] == "revoked" and got["revoked_at"] is not None, got
    assert abs(seconds_from_now(got["revoked_at"])) < 60
    r = server.delete(f"/v1/keys/{k['id']}", key=ws.root_key)
    assert r.status_code == 204, f"repeated delete: {describe(r)}"
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")


def test_revoked_key_cannot_be_reenabled(server, ws):
    k = ws.create_key()
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"enabled": True})
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")
    assert ws.get_key(k["id"])["status"] == "revoked"


# -- regenerate ----------------------------------------------------------------------

def test_regenerate_without_grace(server, ws):
    k = ws.create_key(name="rot", permissions=["storage:read"], meta={"a": 1})
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key, json={})
    doc = expect_status(r, 200)
    assert doc["id"] == k["id"] and doc["secret"] != k["secret"], describe(r)
    assert SECRET_RE.match(doc["secret"])
    assert doc["hint"] == "lk_live_..." + doc["secret"][-10:-6]
    assert doc["name"] == "rot" and doc["permissions"] == ["storage:read"]
    assert doc["meta"] == {"a": 1}
    ctx = expect_status(server.auth_context(doc["secret"]), 200)
    assert ctx["key_id"] == k["id"]
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")
    got = ws.get_key(k["id"])
    assert got["status"] == "active" and got["hint"] == doc["hint"]


def test_regenerate_with_no_body(server, ws):
    k = ws.create_key()
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key)
    doc = expect_status(r, 200)
    expect_status(server.auth_context(doc["secret"]), 200)
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")


def test_regenerate_with_grace_keeps_both(server, ws):
    k = ws.create_key()
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                    json={"grace_period_s": 30})
    doc = expect_status(r, 200)
    assert expect_status(server.auth_context(doc["secret"]), 200)["key_id"] == k["id"]
    assert expect_status(server.auth_context(k["secret"]), 200)["key_id"] == k["id"]
    v = expect_status(server.verify({"key": k["secret"]}), 200)
    assert v["valid"] is True and v["key_id"] == k["id"]


def test_regenerate_twice_only_last_valid(server, ws):
    k = ws.create_key()
    a = expect_status(server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                                  json={}), 200)
    b = expect_status(server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                                  json={}), 200)
    # Only the most recent previous secret is remembered (README, "Decisions"):
    # the one before it is simply unknown now.
    assert_error(server.auth_context(k["secret"]), 401, "invalid_key")
    assert_error(server.auth_context(a["secret"]), 401, "revoked_key")
    expect_status(server.auth_context(b["secret"]), 200)


@pytest.mark.parametrize("body,field", [
    ({"grace_period_s": -1}, "grace_period_s"),
    ({"grace_period_s": 2592001}, "grace_period_s"),
    ({"grace_period_s": "30"}, "grace_period_s"),
    ({"grace": 30}, "grace"),
])
def test_regenerate_rejects_bad_input(server, ws, body, field):
    k = ws.create_key()
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)
    expect_status(server.auth_context(k["secret"]), 200)


def test_regenerate_revoked_key_is_refused(server, ws):
    k = ws.create_key()
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key, json={})
    err = assert_error_shape(r, (404, 409))
    assert err["code"] == {404: "not_found", 409: "conflict"}[r.status_code], describe(r)


# -- who may manage ------------------------------------------------------------------

def test_read_only_application_key(server, ws):
    k = ws.create_key()
    doc = ws.list_keys(key=ws.ro_key)
    assert k["id"] in {x["id"] for x in doc["data"]}
    assert ws.get_key(k["id"], key=ws.ro_key)["id"] == k["id"]
    r = server.post("/v1/keys", key=ws.ro_key, json={"name": "nope"})
    assert_error(r, 403, "insufficient_permissions")
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.ro_key, json={"name": "nope"})
    assert_error(r, 403, "insufficient_permissions")
    r = server.delete(f"/v1/keys/{k['id']}", key=ws.ro_key)
    assert_error(r, 403, "insufficient_permissions")
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.ro_key, json={})
    assert_error(r, 403, "insufficient_permissions")
    expect_status(server.auth_context(k["secret"]), 200)
    assert ws.get_key(k["id"])["name"] == k["name"]


def test_read_write_application_key_manages(server, ws):
    k = ws.create_key(key=ws.rw_key, name="by-app")
    assert k["workspace_id"] == ws.id
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.rw_key, json={"name": "x"}), 200)
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.rw_key).status_code == 204


@pytest.mark.parametrize("perms", [["*"], ["storage:read"], ["keys:read"]])
def test_ordinary_key_cannot_manage_keys(server, ws, perms):
    k = ws.create_key(permissions=perms)
    assert_error(server.post("/v1/keys", key=k["secret"], json={"name": "x"}), 403,
                 "insufficient_permissions")
    assert_error(server.get("/v1/keys", key=k["secret"]), 403, "insufficient_permissions")
    assert_error(server.get(f"/v1/keys/{k['id']}", key=k["secret"]), 403,
                 "insufficient_permissions")
    assert_error(server.delete(f"/v1/keys/{k['id']}", key=k["secret"]), 403,
                 "insufficient_permissions")
    expect_status(server.auth_context(k["secret"]), 200)


def test_management_with_bad_credentials(server, ws):
    k = ws.create_key()
    assert_error(server.get("/v1/keys"), 401, "missing_key")
    assert_error(server.get("/v1/keys", key="garbage"), 401, "malformed_key")
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    assert_error(server.get("/v1/keys", key=k["secret"]), 401, "revoked_key")


# -- values round-trip exactly -------------------------------------------------------

def test_name_length_counts_bytes(server, ws):
    ok = ws.create_key(name="é" * 100)             # 200 bytes
    assert ok["name"] == "é" * 100
    r = server.post("/v1/keys", key=ws.root_key, json={"name": "é" * 100 + "x"})
    assert_error(r, 400, "invalid_request", field="name")
    assert ws.create_key(name="n" * 200)["name"] == "n" * 200


@pytest.mark.parametrize("name", [
    'quote " backslash \\ slash /',
    "tab\tnewline\ncr\r",
    "emoji \U0001F511 and \u2028 line separator",
    "<script>alert(1)</script>",
    "\u00e9t\u00e9 \u4e2d\u6587",
])
def test_name_round_trips(server, ws, name):
    k = ws.create_key(name=name)
    assert k["name"] == name
    assert ws.get_key(k["id"])["name"] == name
    listed = {x["id"]: x["name"] for x in ws.list_keys()["data"]}
    assert listed[k["id"]] == name
    assert expect_status(server.auth_context(k["secret"]), 200)["name"] == name


def test_meta_round_trips(server, ws):
    meta = {"s": "x\"y", "n": 12345678901, "f": 1.5, "b": True, "z": None,
            "list": [1, "two", {"three": 3}], "nested": {"a": {"b": {"c": []}}},
            "unicode": "\u00fc\U0001F600"}
    k = ws.create_key(meta=meta)
    assert k["meta"] == meta
    assert ws.get_key(k["id"])["meta"] == meta


def test_meta_near_limit(server, ws):
    meta = {"blob": "x" * 3800}
    assert ws.create_key(meta=meta)["meta"] == meta


@pytest.mark.parametrize("body", [
    {"kind": "temporary", "expires_in": 86401},
    {"kind": "temporary", "expires_at": int(time.time()) + 2 * 86400},
])
def test_temporary_longer_than_a_day_is_refused(server, ws, body):
    body["name"] = "t"
    r = server.post("/v1/keys", key=ws.root_key, json=body)
    err = assert_error(r, 400, "invalid_request")
    assert err.get("field") in ("expires_in", "expires_at"), describe(r)


def test_list_paging_with_filter(server, ws):
    mine = [ws.create_key(environment="test", name=f"t{i}")["id"] for i in range(5)]
    keys, pages = list_all(server, ws.root_key, environment="test", limit=2)
    assert [k["id"] for k in keys] == list(reversed(mine)), keys
    assert all(n == 2 for n in pages[:-1]) and pages[-1] <= 2, pages


def test_list_paging_survives_deletes(server, ws):
    mine = [ws.create_key(name=f"d{i}")["id"] for i in range(6)]
    first = ws.list_keys(limit=2)
    assert [k["id"] for k in first["data"]] == [mine[5], mine[4]]
    # revoke one already seen and one not yet seen; the walk goes on without repeats
    for kid in (mine[5], mine[2]):
        assert server.delete(f"/v1/keys/{kid}", key=ws.root_key).status_code == 204
    rest, _ = list_all(server, ws.root_key, limit=2, cursor=first["next_cursor"])
    ids = [k["id"] for k in rest]
    assert ids[:4] == [mine[3], mine[2], mine[1], mine[0]], ids
    assert mine[5] not in ids and mine[4] not in ids


def test_concurrent_creates_all_listed(server, ws):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: ws.create_key(name=f"c{i}"), range(24)))
    ids = {k["id"] for k in made}
    assert len(ids) == 24 and len({k["secret"] for k in made}) == 24
    keys, _ = list_all(server, ws.root_key, limit=7)
    listed = [k["id"] for k in keys]
    assert ids <= set(listed) and len(listed) == len(set(listed))
    for k in made[:6]:
        expect_status(server.auth_context(k["secret"]), 200)


def test_revoke_kills_the_old_secret_in_its_grace_period_too(server, ws):
    k = ws.create_key()
    new = expect_status(server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                                    json={"grace_period_s": 3600}), 200)
    expect_status(server.auth_context(k["secret"]), 200)
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    assert_error(server.auth_context(new["secret"]), 401, "revoked_key")
    assert_error(server.auth_context(k["secret"]), 401, "revoked_key")
    v = expect_status(server.verify({"key": k["secret"]}), 200)
    assert v["valid"] is False and v["code"] == "revoked_key", v


def test_disable_covers_the_old_secret_in_its_grace_period(server, ws):
    k = ws.create_key()
    new = expect_status(server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                                    json={"grace_period_s": 3600}), 200)
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    assert_error(server.auth_context(new["secret"]), 403, "inactive_key")
    assert_error(server.auth_context(k["secret"]), 403, "inactive_key")


def test_regenerate_keeps_disabled_and_expiry(server, ws):
    k = ws.create_key(expires_in=5000, permissions=["x:y"])
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    new = expect_status(server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                                    json={}), 200)
    assert new["enabled"] is False and new["expires_at"] == k["expires_at"]
    assert new["permissions"] == ["x:y"]
    assert_error(server.auth_context(new["secret"]), 403, "inactive_key")


def test_patch_permissions_apply_at_once(server, ws):
    k = ws.create_key(permissions=["storage:read"])
    v = expect_status(server.verify({"key": k["secret"], "permissions": "storage:write"}), 200)
    assert v["code"] == "insufficient_permissions", v
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"permissions": ["storage:*"]}), 200)
    v = expect_status(server.verify({"key": k["secret"], "permissions": "storage:write"}), 200)
    assert v["valid"] is True, v


def test_patch_expiry_into_the_past_is_refused_and_future_applies(server, ws):
    k = ws.create_key()
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                     json={"expires_at": int(time.time()) - 10})
    assert_error(r, 400, "invalid_request", field="expires_at")
    expect_status(server.auth_context(k["secret"]), 200)


def test_empty_patch_changes_nothing(server, ws):
    k = ws.create_key(name="same", meta={"a": 1})
    before = ws.get_key(k["id"])
    doc = expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={}), 200)
    assert doc == before
    assert ws.get_key(k["id"]) == before


@pytest.mark.parametrize("kid", [
    "key_" + "a" * 5000,
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "key_%22%3B--",
    "' OR '1'='1",
])
def test_odd_key_ids_are_404(server, ws, kid):
    r = server.get(f"/v1/keys/{kid}", key=ws.root_key)
    err = assert_error_shape(r, (400, 404, 414, 431))
    if r.status_code == 404:
        assert err["code"] == "not_found", describe(r)


# -- JSON and time edge cases --------------------------------------------------------

def post_raw(server, ws, data):
    return server.post("/v1/keys", key=ws.root_key, data=data,
                       headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("data", [
    b'{"name": "a"} trailing',
    b'{"name": "a"}{"name": "b"}',
    b'{"name": "a",}',
    b"{'name': 'a'}",
    b'{"name": "a" "meta": {}}',
    b'{"name": "\\x"}',
])
def test_create_invalid_json_variants(server, ws, data):
    before = len(ws.list_keys()["data"])
    assert_error(post_raw(server, ws, data), 400, "bad_json")
    assert len(ws.list_keys()["data"]) == before


def test_escaped_field_names_are_the_same_field(server, ws):
    r = post_raw(server, ws, b'{"n\\u0061me": "esc", "environment": "t\\u0065st"}')
    doc = expect_status(r, 201)
    assert doc["name"] == "esc" and doc["environment"] == "test", describe(r)


@pytest.mark.parametrize("body,field", [
    ({"name": None}, "name"),
    ({"name": "a", "expires_in": True}, "expires_in"),
    ({"name": "a", "expires_in": 60.5}, "expires_in"),
    ({"name": "a", "permissions": None}, "permissions"),
    ({"name": "a", "permissions": [""]}, "permissions"),
])
def test_create_rejects_more_bad_values(server, ws, body, field):
    assert_error(server.post("/v1/keys", key=ws.root_key, json=body), 400, "invalid_request",
                 field=field)


@pytest.mark.parametrize("value,expect", [
    ("2100-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
    (4102444800, "2100-01-01T00:00:00Z"),
    ("2040-06-30T12:00:00+02:00", "2040-06-30T10:00:00Z"),
])
def test_expires_at_beyond_2038_and_with_offset(server, ws, value, expect):
    k = ws.create_key(expires_at=value)
    assert k["expires_at"] == expect
    assert ws.get_key(k["id"])["expires_at"] == expect
    assert expect_status(server.auth_context(k["secret"]), 200)["expires_at"] == expect


@pytest.mark.parametrize("params,field", [
    ({"limit": "2abc"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "99999999999999999999999"}, "limit"),
])
def test_list_rejects_bad_numbers(server, ws, params, field):
    assert_error(server.get("/v1/keys", key=ws.root_key, params=params), 400,
                 "invalid_request", field=field)


# -- races ---------------------------------------------------------------------------

def test_parallel_regenerates_leave_exactly_one_secret(server, ws):
    from concurrent.futures import ThreadPoolExecutor
    k = ws.create_key()
    path = f"/v1/keys/{k['id']}/regenerate"
    with ThreadPoolExecutor(6) as pool:
        docs = list(pool.map(lambda _: expect_status(
            server.post(path, key=ws.root_key, json={}), 200), range(6)))
    secrets = [d["secret"] for d in docs] + [k["secret"]]
    ok = [s for s in secrets if server.auth_context(s).status_code == 200]
    assert len(ok) == 1, f"{len(ok)} secrets still work after 6 regenerations"
    assert ws.get_key(k["id"])["hint"] == "lk_live_..." + ok[0][-10:-6]


def test_delete_racing_regenerate_never_unrevokes(server, ws):
    from concurrent.futures import ThreadPoolExecutor
    for _ in range(8):
        k = ws.create_key()
        with ThreadPoolExecutor(2) as pool:
            d = pool.submit(server.delete, f"/v1/keys/{k['id']}", key=ws.root_key)
            g = pool.submit(server.post, f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                            json={"grace_period_s": 600})
            d, g = d.result(), g.result()
        assert d.status_code == 204, describe(d)
        secrets = [k["secret"]] + ([g.json()["secret"]] if g.status_code == 200 else [])
        for s in secrets:
            assert_error(server.auth_context(s), 401, "revoked_key")
        assert ws.get_key(k["id"])["status"] == "revoked"


def test_concurrent_patches_of_one_key_lose_no_change(server, ws):
    """PATCHes of different fields of one key at the same moment: each reads the key
    in the transaction that writes it, so every change sticks, in the store (GET)
    and in what verification answers."""
    from concurrent.futures import ThreadPoolExecutor
    changes = [
        lambda i: {"name": f"renamed-{i}"},
        lambda i: {"meta": {"round": i}},
        lambda i: {"permissions": [f"round{i}:read"]},
        lambda i: {"daily_spend_cap": 1000 + i},
        lambda i: {"rate_limit": {"limit": 10 + i, "window_s": 60}},
    ]
    for i in range(10):
        k = ws.create_key(name="before")
        path = f"/v1/keys/{k['id']}"
        with ThreadPoolExecutor(len(changes)) as pool:
            answers = list(pool.map(
                lambda c: server.patch(path, key=ws.root_key, json=c(i)), changes))
        for r in answers:
            expect_status(r, 200)
        got = ws.get_key(k["id"])
        assert got["name"] == f"renamed-{i}", got
        assert got["meta"] == {"round": i}, got
        assert got["permissions"] == [f"round{i}:read"], got
        assert got["daily_spend_cap"] == 1000 + i, got
        assert got["rate_limit"] == {"limit": 10 + i, "window_s": 60}, got
        v = expect_status(server.verify({"key": k["secret"]}), 200)
        assert v["name"] == f"renamed-{i}" and v["permissions"] == [f"round{i}:read"], v


def test_default_and_maximum_page_sizes(server, ws):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: ws.create_key(name=f"bulk{i}"), range(110)))
    total = 113  # and the workspace's root and two application keys
    doc = ws.list_keys()
    assert len(doc["data"]) == 50 and doc["next_cursor"], len(doc["data"])
    doc = ws.list_keys(limit=100)
    assert len(doc["data"]) == 100 and doc["next_cursor"]
    rest = ws.list_keys(limit=100, cursor=doc["next_cursor"])
    assert len(rest["data"]) == total - 100 and rest["next_cursor"] is None
    ids = [k["id"] for k in doc["data"] + rest["data"]]
    assert len(set(ids)) == total


# -- an empty permission list grants nothing (only an omitted one means "*") ------------

EMPTY_PERMS_ROUTES = "GET /items/** items:read\nGET /open/** any\n"


def forward(srv, key, uri):
    import requests
    from lkhelpers import HTTP_TIMEOUT
    return requests.get(srv.url("/v1/forward-auth"), timeout=HTTP_TIMEOUT,
                        headers={"Authorization": f"Bearer {key}", "X-Forwarded-Method": "GET",
                                 "X-Forwarded-Uri": uri})


def assert_authenticates_without_permissions(srv, secret):
    ctx = expect_status(srv.auth_context(secret), 200)
    assert ctx["permissions"] == [], ctx
    v = expect_status(srv.verify({"key": secret}), 200)
    assert v["valid"] is True and v["permissions"] == [], v
    for query in ("storage:read", "items:read", "a OR b"):
        v = expect_status(srv.verify({"key": secret, "permissions": query}), 200)
        assert v["valid"] is False and v["code"] == "insufficient_permissions", (query, v)
    r = forward(srv, secret, "/open/x")
    assert r.status_code == 200 and r.content == b"", describe(r)  # forward auth: empty 200
    assert_error(forward(srv, secret, "/items/x"), 403, "insufficient_permissions")


def test_empty_permissions_grant_nothing(make_server, tmp_path):
    routes = tmp_path / "routes"
    routes.write_text(EMPTY_PERMS_ROUTES)
    srv = make_server(config={"routes": str(routes)})
    ws = srv.create_workspace()
    created = ws.create_key(permissions=[])
    assert created["permissions"] == [], created
    patched = ws.create_key(permissions=["storage:read", "items:read"])
    r = forward(srv, patched["secret"], "/items/x")
    assert r.status_code == 200 and r.content == b"", describe(r)
    r = srv.patch(f"/v1/keys/{patched['id']}", key=ws.root_key, json={"permissions": []})
    assert expect_status(r, 200)["permissions"] == [], describe(r)
    default = ws.create_key()
    assert default["permissions"] == ["*"], default
    for _ in range(2):  # and again after a restart: [] is stored as [], not as "*"
        for k in (created, patched):
            assert ws.get_key(k["id"])["permissions"] == []
            assert_authenticates_without_permissions(srv, k["secret"])
        v = expect_status(srv.verify({"key": default["secret"], "permissions": "items:read"}),
                          200)
        assert v["valid"] is True, v
        assert forward(srv, default["secret"], "/items/x").status_code == 200
        srv.restart()


# -- a grace period is never shorter than asked ------------------------------------------

def _wait_for_fraction(frac):
    """Sleep until the wall clock is `frac` into a second: a grace counted from the
    request's whole second would then lose most of a second."""
    now = time.time()
    time.sleep((frac - now % 1) % 1)


@pytest.mark.parametrize("grace", [1, 2])
def test_grace_period_is_never_shorter_than_asked(server, ws, grace):
    """The old secret verifies until `grace` seconds after the call, measured the
    strict way: only a verification that *ended* before the call *began* + grace
    must pass, so a slow machine cannot make this fail, only retry."""
    checked = 0
    for _ in range(6):
        k = ws.create_key()
        _wait_for_fraction(0.85)
        t_call = time.time()
        r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                        json={"grace_period_s": grace})
        t_answer = time.time()
        new = expect_status(r, 200)["secret"]
        time.sleep(max(0.0, t_call + grace - 0.1 - time.time()))
        v = expect_status(server.verify({"key": k["secret"]}), 200)
        t_end = time.time()
        if t_end >= t_call + grace:
            continue  # too slow to say anything; try again
        assert v["valid"] is True and v["key_id"] == k["id"], \
            f"old secret refused {t_end - t_call:.2f}s after a {grace}s grace began: {v}"
        checked += 1
        # and it does end: at most a second late
        time.sleep(max(0.0, t_answer + grace + 1.05 - time.time()))
        v = expect_status(server.verify({"key": k["secret"]}), 200)
        assert v["valid"] is False and v["code"] == "revoked_key", v
        assert expect_status(server.verify({"key": new}), 200)["valid"] is True
        if checked == 2:
            break
    assert checked > 0, "no verification came back in time on this machine"


def test_list_cursors_tell_nothing_of_other_workspaces(server, ws, ws2):
    # A cursor is the id of the last key of the page: random, and only good in
    # its own workspace. A row number would grow with every workspace's keys.
    mine = [ws.create_key()["id"] for _ in range(3)]
    before = expect_status(server.get("/v1/keys", key=ws.root_key, params={"limit": 1}), 200)
    for _ in range(5):
        ws2.create_key()
    after = expect_status(server.get("/v1/keys", key=ws.root_key, params={"limit": 1}), 200)
    assert before["next_cursor"] == after["next_cursor"] == mine[-1]
    keys, pages = list_all(server, ws.root_key, limit=1)
    assert [k["id"] for k in keys][:3] == mine[::-1] and pages[0] == 1
    theirs = expect_status(server.get("/v1/keys", key=ws2.root_key, params={"limit": 1}), 200)
    r = server.get("/v1/keys", key=ws.root_key, params={"cursor": theirs["next_cursor"]})
    assert_error(r, 400, "invalid_request", field="cursor")
