"""POST /v2/keys.* and /v2/apis.listKeys: Unkey's v2 API, on the wire.

tests/interop/unkey/sdk.test.mjs drives these routes through Unkey's own SDK; this
file checks what the SDK does not look at closely, and what a hostile client sends:
the envelope exactly, no null anywhere, times in milliseconds, each error's status,
shape and content type, workspaces sealed from each other, and bodies that are
malformed, mistyped, oversized or unknown.
"""

import threading
import time

import pytest

from lkhelpers import REQUEST_ID_RE, describe, make_secret

TYPE = "https://unkey.com/docs/api-reference/errors-v2/unkey/"


def v2(server, op, key, body=None, **kw):
    if body is None and "data" not in kw:
        body = {}
    return server.post(f"/v2/{op}", key=key, json=body, **kw) if "data" not in kw else \
        server.request("POST", f"/v2/{op}", key=key, **kw)


def ok(r):
    """A success: exactly 200, the envelope, no null anywhere; returns data."""
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "application/json", describe(r)
    doc = r.json()
    assert set(doc) in ({"meta", "data"}, {"meta", "data", "pagination"}), doc
    assert doc["meta"] == {"requestId": r.headers["X-Request-Id"]}
    assert REQUEST_ID_RE.match(doc["meta"]["requestId"])
    assert_no_null(doc)
    return doc["data"]


def assert_no_null(v, path="$"):
    assert v is not None, f"null at {path}"
    if isinstance(v, dict):
        for k, x in v.items():
            assert_no_null(x, f"{path}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            assert_no_null(x, f"{path}[{i}]")


def err(r, status, kind=None, location=None):
    """An error in Unkey's shape; returns its `error` object."""
    assert r.status_code == status, describe(r)
    ctype = "application/problem+json" if status == 429 else "application/json"
    assert r.headers["Content-Type"] == ctype, describe(r)
    doc = r.json()
    assert set(doc) == {"meta", "error"}, doc
    assert doc["meta"] == {"requestId": r.headers["X-Request-Id"]}
    e = doc["error"]
    assert e["status"] == status
    assert isinstance(e["title"], str) and e["title"]
    assert isinstance(e["detail"], str) and e["detail"]
    assert isinstance(e["type"], str) and e["type"]
    assert_no_null(doc)
    if status == 400:
        assert set(e) == {"title", "detail", "status", "type", "errors"}, e
        assert len(e["errors"]) >= 1 and all(set(x) <= {"location", "message", "fix"} for x in e["errors"])
        if location is not None:
            assert e["errors"][0]["location"] == location, e
    else:
        assert set(e) == {"title", "detail", "status", "type"}, e
    if kind is not None:
        assert e["type"] == TYPE + kind, e
    return e


def create(server, ws, **body):
    return ok(v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, **body}))


def verify(server, ws, key, **body):
    return ok(v2(server, "keys.verifyKey", ws.root_key, {"key": key, **body}))


# -- the envelope and the absence of null ---------------------------------------------

def test_every_answer_is_the_envelope_without_nulls(server, ws):
    k = create(server, ws)  # no name, no meta, no expiry, no permissions: all left out
    assert set(k) == {"keyId", "key"}
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert set(got) == {"keyId", "start", "enabled", "createdAt"}, got
    now_ms = time.time() * 1000
    assert abs(got["createdAt"] - now_ms) < 120_000, "createdAt is Unix milliseconds"
    assert got["start"].startswith("lk_live_")
    v = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert v == {"valid": True, "code": "VALID", "keyId": k["keyId"], "enabled": True}
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": make_secret()})) == \
        {"valid": False, "code": "NOT_FOUND"}
    lst = v2(server, "apis.listKeys", ws.root_key, {"apiId": ws.id})
    assert ok(lst) and lst.json()["pagination"] == {"hasMore": False}
    assert ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "name": "x"})) == {}
    assert ok(v2(server, "keys.setPermissions", ws.root_key,
                 {"keyId": k["keyId"], "permissions": []})) == []
    assert ok(v2(server, "keys.deleteKey", ws.root_key, {"keyId": k["keyId"]})) == {}


def test_times_are_unix_milliseconds(server, ws):
    at = int((time.time() + 3600) * 1000) + 789
    k = create(server, ws, expires=at, name="t")
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    # whole seconds, rounded down: never valid after the time asked
    assert got["expires"] == at // 1000 * 1000
    v = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert v["expires"] == got["expires"]
    assert ws.get_key(k["keyId"])["expires_at"] is not None  # the same key on /v1


def test_permissions_use_dots_and_wildcards(server, ws):
    k = create(server, ws, permissions=["documents.*", "billing.read"])
    # stored as latchkey's own names: /v1 shows them with ':'
    assert ws.get_key(k["keyId"])["permissions"] == ["documents:*", "billing:read"]
    for q, code in (("documents.write", "VALID"), ("billing.read AND documents.x", "VALID"),
                    ("billing.write OR (documents.a AND billing.read)", "VALID"),
                    ("billing.write", "INSUFFICIENT_PERMISSIONS"), ("documents", "INSUFFICIENT_PERMISSIONS")):
        v = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"], "permissions": q}))
        assert v["code"] == code, (q, v)
        assert v["permissions"] == ["documents.*", "billing.read"]
    for q in ("documents:write", "(documents.read", "a AND", ""):
        err(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"], "permissions": q}), 400,
            "application/invalid_input", "body.permissions")
    for bad in (["a:b"], ["Documents.Read"], ["a..b"], ["a.b*"], ["x" * 129], [""], [1]):
        err(v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, "permissions": bad}), 400,
            location="body.permissions")
    err(v2(server, "keys.createKey", ws.root_key,
           {"apiId": ws.id, "permissions": [f"p.{i}" for i in range(65)]}), 400,
        location="body.permissions")


def test_verify_codes_for_each_state(server, ws):
    k = create(server, ws, name="states")
    kid = k["keyId"]
    ws.server.patch(f"/v1/keys/{kid}", key=ws.root_key, json={"enabled": False})
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))["code"] == "DISABLED"
    ws.server.patch(f"/v1/keys/{kid}", key=ws.root_key, json={"enabled": True})
    # a key revoked through /v1 is a deleted key to the v2 API
    ws.server.delete(f"/v1/keys/{kid}", key=ws.root_key)
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]})) == \
        {"valid": False, "code": "NOT_FOUND"}
    err(v2(server, "keys.getKey", ws.root_key, {"keyId": kid}), 404, "data/key_not_found")
    err(v2(server, "keys.updateKey", ws.root_key, {"keyId": kid, "enabled": False}), 404)
    err(v2(server, "keys.rerollKey", ws.root_key, {"keyId": kid, "expiration": 0}), 404)
    err(v2(server, "keys.addPermissions", ws.root_key, {"keyId": kid, "permissions": ["a"]}), 404)
    # malformed and unknown keys are NOT_FOUND too, never an error
    for key in ("x", "lk_live_" + "A" * 49, make_secret(), "\u00e9" * 10):
        assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": key}))["code"] == "NOT_FOUND"


def test_root_and_application_keys_are_no_keys_of_the_api(server, ws):
    roots = ws.list_keys()["data"]
    for k in roots:
        err(v2(server, "keys.getKey", ws.root_key, {"keyId": k["id"]}), 404)
        err(v2(server, "keys.deleteKey", ws.root_key, {"keyId": k["id"]}), 404)
    for secret in (ws.root_key, ws.rw_key, ws.ro_key):
        assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": secret}))["code"] == "NOT_FOUND"
    assert ok(v2(server, "apis.listKeys", ws.root_key, {"apiId": ws.id})) == []
    # and the v2 API revoked nothing
    assert all(k["status"] == "active" for k in ws.list_keys()["data"])


# -- credentials ------------------------------------------------------------------------

def test_unauthenticated_answers(server, ws):
    r = server.post("/v2/keys.getKey", json={"keyId": "key_x"})
    err(r, 401, "authentication/missing")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    err(v2(server, "keys.getKey", "garbage", {"keyId": "key_x"}), 401, "authentication/malformed")
    err(v2(server, "keys.getKey", make_secret(), {"keyId": "key_x"}), 401,
        "authentication/key_not_found")
    err(v2(server, "keys.verifyKey", make_secret(), {"key": "x"}), 401, "authentication/key_not_found")
    err(server.post("/v2/keys.verifyKey", json={"key": "x"}), 401, "authentication/missing")
    # the credential is judged before the body: a bad body says nothing to a stranger
    err(v2(server, "keys.createKey", make_secret(), data=b"{not json"), 401)
    user = ws.new_session("owner")
    err(server.post("/v2/keys.getKey", json={"keyId": "key_x"}, headers=user.headers()), 401,
        "authentication/malformed")


def test_forbidden_answers(server, ws):
    plain = ws.create_key()["secret"]
    err(v2(server, "keys.createKey", plain, {"apiId": ws.id}), 403,
        "authorization/insufficient_permissions")
    err(v2(server, "keys.verifyKey", plain, {"key": plain}), 403)
    err(v2(server, "keys.createKey", ws.ro_key, {"apiId": ws.id}), 403)
    k = create(server, ws)
    ok(v2(server, "keys.getKey", ws.ro_key, {"keyId": k["keyId"]}))
    ok(v2(server, "keys.verifyKey", ws.ro_key, {"key": k["key"]}))
    reader = ws.create_key(kind="root", permissions=["keys:read"])["secret"]
    err(v2(server, "keys.deleteKey", reader, {"keyId": k["keyId"]}), 403)
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))["code"] == "VALID"


def test_workspaces_are_sealed(server, ws, ws2):
    k = create(server, ws, ratelimits=[{"name": "default", "limit": 1, "duration": 60000,
                                        "autoApply": True}])
    e = err(v2(server, "keys.createKey", ws2.root_key, {"apiId": ws.id}), 404, "data/api_not_found")
    assert ws.id not in e["detail"]
    err(v2(server, "apis.listKeys", ws2.root_key, {"apiId": ws.id}), 404, "data/api_not_found")
    for op, body in (("keys.getKey", {}), ("keys.updateKey", {"name": "stolen"}),
                     ("keys.deleteKey", {}), ("keys.rerollKey", {"expiration": 0}),
                     ("keys.setPermissions", {"permissions": ["*"]})):
        err(v2(server, op, ws2.root_key, {"keyId": k["keyId"], **body}), 404, "data/key_not_found")
    # another workspace's key is NOT_FOUND, and its check is not counted: the one
    # check its rate limit allows is still there for its own workspace
    for _ in range(3):
        assert ok(v2(server, "keys.verifyKey", ws2.root_key, {"key": k["key"]})) == \
            {"valid": False, "code": "NOT_FOUND"}
    assert ws.get_key(k["keyId"])["last_used_at"] is None
    mine = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert mine["code"] == "VALID" and mine["ratelimits"][0]["remaining"] == 0
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert got.get("name") is None and "permissions" not in got


def test_too_many_requests_is_problem_json(fresh_server):
    srv = fresh_server
    wrong = make_secret()
    for _ in range(150):
        r = v2(srv, "keys.verifyKey", wrong, {"key": "x"})
        if r.status_code == 429:
            break
        err(r, 401)
    e = err(r, 429)
    assert e["title"] == "Too Many Requests"
    assert int(r.headers["Retry-After"]) > 0
    # the address is blocked for management calls too, the right root key included
    err(v2(srv, "keys.getKey", srv.root_key, {"keyId": "key_x"}), 429)


# -- malformed and hostile bodies ---------------------------------------------------------

@pytest.mark.parametrize("body, location", [
    (b"", "body"), (b"{", "body"), (b"[]", "body"), (b'"x"', "body"), (b"null", "body"),
    (b'{"keyId": "a", "keyId": "b"}', "body"),
    (b'{"keyId": 1}', "body.keyId"), (b'{"keyId": null}', "body.keyId"),
    (b'{"keyId": ["key_x"]}', "body.keyId"), (b'{}', "body.keyId"), (b'{"keyId": ""}', "body.keyId"),
    (b'{"keyId": "key_x", "decrypt": "yes"}', "body.decrypt"),
    (b'{"keyId": "key_x", "decrypt": true}', "body.decrypt"),
    (b'{"keyId": "key_x", "extra": 1}', "body.extra"),
    (b'{"keyId": "key_x", "keyid": 1}', "body.keyid"),
    (b'{"keyId": "' + b"k" * 300 + b'"}', "body.keyId"),
    (b'{"keyId": "key_\\u0000x"}', "body"),
    (b'{"keyId": "\xff\xfe"}', "body"),
    (b'{"keyId": "key_x", "x": 123456789012345678901234567890}', "body"),
])
def test_bad_bodies_are_400_with_errors(server, ws, body, location):
    r = v2(server, "keys.getKey", ws.root_key, data=body, headers={"Content-Type": "application/json"})
    err(r, 400, "application/invalid_input", location)


def test_unknown_field_names_are_quoted_safely(server, ws):
    name = "\u2603" * 40 + "\x01\"<"
    r = v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, name: 1})
    e = err(r, 400)
    assert len(e["errors"][0]["location"]) < 100
    assert "\x01" not in r.text


@pytest.mark.parametrize("body, location", [
    ({"name": None}, "body.name"), ({"name": 5}, "body.name"), ({"name": "x" * 201}, "body.name"),
    ({"meta": []}, "body.meta"), ({"meta": {"a": "x" * 5000}}, "body.meta"),
    ({"expires": "tomorrow"}, "body.expires"), ({"expires": 1000}, "body.expires"),
    ({"expires": -1}, "body.expires"), ({"enabled": "true"}, "body.enabled"),
    ({"byteLength": 15}, "body.byteLength"), ({"byteLength": 64}, "body.byteLength"),
    ({"recoverable": True}, "body.recoverable"), ({"roles": ["admin"]}, "body.roles"),
    ({"prefix": "sk"}, "body.prefix"), ({"prefix": "lk_staging"}, "body.prefix"),
    ({"prefix": "x" * 17}, "body.prefix"),
    ({"ratelimits": [{"name": "default", "limit": 0, "duration": 1000, "autoApply": True}]},
     "body.ratelimits[0].limit"),
    ({"ratelimits": [{"name": "default", "limit": 5, "duration": 999, "autoApply": True}]},
     "body.ratelimits[0].duration"),
    ({"ratelimits": ["x"]}, "body.ratelimits"),
    ({"permissions": "a.b"}, "body.permissions"),
])
def test_create_refuses_what_it_cannot_keep(server, ws, body, location):
    before = len(ws.list_keys()["data"])
    err(v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, **body}), 400, location=location)
    assert len(ws.list_keys()["data"]) == before, "a refused create made a key"


def test_create_takes_the_sdk_defaults_and_prefixes(server, ws):
    # the SDK always sends byteLength, enabled and recoverable
    k = create(server, ws, byteLength=16, enabled=True, recoverable=False)
    assert k["key"].startswith("lk_live_")
    t = create(server, ws, prefix="lk_test")
    assert t["key"].startswith("lk_test_")
    assert ws.get_key(t["keyId"])["environment"] == "test"
    off = create(server, ws, prefix="lk", enabled=False)
    assert off["key"].startswith("lk_live_")
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": off["key"]}))["code"] == "DISABLED"


def test_oversized_body_is_refused(server, ws):
    r = v2(server, "keys.createKey", ws.root_key, data=b'{"apiId": "' + b"x" * 70000 + b'"}',
           headers={"Content-Type": "application/json"})
    assert r.status_code == 413, describe(r)
    r = v2(server, "keys.verifyKey", ws.root_key, {"key": "x" * 513})
    err(r, 400, location="body.key")


def test_a_secret_in_a_bad_body_is_not_echoed(server, ws):
    k = create(server, ws)
    for body in ({"key": k["key"], "bogus": 1}, {"key": k["key"], "credits": {"cost": -1}},
                 {"key": k["key"], "migrationId": "m"}):
        r = v2(server, "keys.verifyKey", ws.root_key, body)
        err(r, 400)
        assert k["key"] not in r.text and k["key"][8:30] not in r.text
    r = v2(server, "keys.verifyKey", ws.root_key, data=('{"key": "' + k["key"] + '"').encode())
    err(r, 400)
    assert k["key"][8:30] not in r.text


def test_verify_refuses_overrides_it_cannot_honour(server, ws):
    k = create(server, ws)
    for rl, loc in (([{"name": "tokens"}], "body.ratelimits[0].name"),
                    ([{"name": "default", "limit": 100}], "body.ratelimits"),
                    ([{"name": "default", "duration": 1000}], "body.ratelimits"),
                    ([{"name": "default", "cost": 5}], "body.ratelimits"),
                    ([{"name": "default"}, {"name": "default"}], "body.ratelimits"),
                    ([{"cost": 1}], "body.ratelimits[0].name"),
                    ([{"name": "x"}] * 9, "body.ratelimits")):
        err(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"], "ratelimits": rl}), 400,
            location=loc)
    # refused checks were not counted: the key was never used
    assert ws.get_key(k["keyId"])["last_used_at"] is None
    # naming a limit the key has not is refused, "default" too
    err(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"], "ratelimits": [{"name": "default"}]}),
        400, location="body.ratelimits[0].name")
    limited = create(server, ws, ratelimits=[{"name": "default", "limit": 5, "duration": 1000,
                                              "autoApply": True}])
    ok(v2(server, "keys.verifyKey", ws.root_key, {"key": limited["key"], "tags": ["path=/x"],
                                                   "ratelimits": [{"name": "default", "cost": 1}]}))


def test_own_credits_spend_one_a_check_unless_told(server, ws):
    k = create(server, ws, credits={"remaining": 2, "refill": {"interval": "monthly", "amount": 5,
                                                               "refillDay": 31}})
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert got["credits"] == {"remaining": 2, "refill": {"interval": "monthly", "amount": 5,
                                                         "refillDay": 31}}
    first = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert (first["code"], first["credits"]) == ("VALID", 1)
    free = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"], "credits": {"cost": 0}}))
    assert free["code"] == "VALID" and "credits" not in free
    ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    out = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert (out["valid"], out["code"], out["credits"]) == (False, "USAGE_EXCEEDED", 0)
    # a key without credits of its own spends nothing unasked, in a workspace without a balance
    plain = create(server, ws)
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": plain["key"]}))["code"] == "VALID"
    assert ws.server.get("/v1/credits", key=ws.root_key).json()["spent"] == 0
    for bad, loc in (({"remaining": -1}, "body.credits.remaining"),
                     ({"remaining": 1, "refill": {"interval": "weekly", "amount": 1}},
                      "body.credits.refill.interval"),
                     ({"remaining": 1, "refill": {"interval": "daily", "amount": 1, "refillDay": 2}},
                      "body.credits.refill.refillDay"),
                     ({"refill": {"interval": "daily", "amount": 1}}, "body.credits.remaining"),
                     ({"remaining": 1, "extra": 1}, "body.credits.extra"), ({"remaining": 2**60}, "body.credits.remaining")):
        err(v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, "credits": bad}), 400, location=loc)


def test_update_credits_keeps_what_it_is_not_given(server, ws):
    k = create(server, ws, credits={"remaining": 5, "refill": {"interval": "daily", "amount": 5}})
    ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"], "credits": {"cost": 2}}))
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "credits": {"remaining": 9}}))
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))["credits"]
    assert got == {"remaining": 9, "refill": {"interval": "daily", "amount": 5}}
    ok(v2(server, "keys.updateKey", ws.root_key,
          {"keyId": k["keyId"], "credits": {"refill": None}}))
    assert ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))["credits"] == {"remaining": 9}
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "credits": None}))
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert "credits" not in got
    v = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert v["code"] == "VALID" and "credits" not in v


def test_named_rate_limits(server, ws):
    k = create(server, ws, ratelimits=[
        {"name": "requests", "limit": 2, "duration": 60000, "autoApply": True},
        {"name": "tokens", "limit": 10, "duration": 3600000, "autoApply": False}])
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert [(r["name"], r["limit"], r["duration"], r["autoApply"]) for r in got["ratelimits"]] == \
        [("requests", 2, 60000, True), ("tokens", 10, 3600000, False)]
    assert len({r["id"] for r in got["ratelimits"]}) == 2
    v = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert [(r["name"], r["remaining"], r["exceeded"]) for r in v["ratelimits"]] == [("requests", 1, False)]
    assert 0 < v["ratelimits"][0]["reset"] <= 60000 and v["ratelimits"][0]["duration"] == 60000
    v = ok(v2(server, "keys.verifyKey", ws.root_key,
              {"key": k["key"], "ratelimits": [{"name": "tokens", "cost": 6}]}))
    by = {r["name"]: r for r in v["ratelimits"]}
    assert v["code"] == "VALID" and by["tokens"]["remaining"] == 4 and by["requests"]["remaining"] == 0
    assert by["tokens"]["autoApply"] is False and by["tokens"]["duration"] == 3600000
    v = ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    assert v["code"] == "RATE_LIMITED"
    assert [(r["name"], r["exceeded"]) for r in v["ratelimits"]] == [("requests", True)]
    for bad, loc in (([{"name": "a b", "limit": 1, "duration": 1000}], "body.ratelimits"),
                     ([{"name": "x", "limit": 1, "duration": 86400001}], "body.ratelimits[0].duration"),
                     ([{"name": "x", "limit": 1, "duration": 1000}] * 2, "body.ratelimits"),
                     ([{"name": "default", "limit": 1, "duration": 1000, "autoApply": False}], "body.ratelimits"),
                     ([{"name": f"r{i}", "limit": 1, "duration": 1000} for i in range(9)], "body.ratelimits")):
        err(v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, "ratelimits": bad}), 400, location=loc)
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "ratelimits": []}))
    assert "ratelimits" not in ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))


def test_only_post(server, ws):
    r = server.get("/v2/keys.getKey", key=ws.root_key)
    assert r.status_code == 405, describe(r)
    assert server.post("/v2/keys.nope", key=ws.root_key, json={}).status_code == 404


# -- changes --------------------------------------------------------------------------------

def test_update_clears_with_null_and_keeps_what_it_is_not_given(server, ws):
    k = create(server, ws, name="n", meta={"a": 1}, permissions=["p.q"],
               expires=int((time.time() + 3600) * 1000))
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "enabled": False}))
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert (got["name"], got["meta"], got["permissions"], got["enabled"]) == ("n", {"a": 1}, ["p.q"], False)
    assert "expires" in got
    ok(v2(server, "keys.updateKey", ws.root_key,
          {"keyId": k["keyId"], "name": None, "meta": None, "expires": None, "permissions": []}))
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert set(got) == {"keyId", "start", "enabled", "createdAt"}, got
    err(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "expires": 5000}), 400,
        location="body.expires")
    err(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "enabled": None}), 400,
        location="body.enabled")


def test_concurrent_permission_additions_all_survive(server, ws):
    k = create(server, ws, permissions=["base"])
    errors = []

    def add(i):
        r = v2(server, "keys.addPermissions", ws.root_key, {"keyId": k["keyId"], "permissions": [f"p{i}"]})
        if r.status_code != 200:
            errors.append(describe(r))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert sorted(got["permissions"]) == sorted(["base"] + [f"p{i}" for i in range(12)])


def test_permission_changes_are_audited_and_take_effect_at_once(server, ws):
    k = create(server, ws)
    data = ok(v2(server, "keys.addPermissions", ws.root_key,
                 {"keyId": k["keyId"], "permissions": ["a.b", "a.b", "c.*"]}))
    assert [p["name"] for p in data] == ["a.b", "c.*"]
    assert ok(v2(server, "keys.verifyKey", ws.root_key,
                 {"key": k["key"], "permissions": "c.d AND a.b"}))["code"] == "VALID"
    ok(v2(server, "keys.removePermissions", ws.root_key, {"keyId": k["keyId"], "permissions": ["zz"]}))
    audit = server.get("/v1/audit", key=ws.root_key, params={"action": "key.update"}).json()
    assert any(e["target"] == k["keyId"] for e in audit["data"]), audit


def test_reroll_keeps_the_old_secret_for_the_expiration(server, ws):
    k = create(server, ws)
    new = ok(v2(server, "keys.rerollKey", ws.root_key, {"keyId": k["keyId"], "expiration": 2500}))
    assert new["keyId"] == k["keyId"] and new["key"] != k["key"]
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))["code"] == "VALID"
    deadline = time.time() + 15
    while ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))["code"] == "VALID":
        assert time.time() < deadline, "the old secret outlived its expiration"
        time.sleep(0.2)
    assert ok(v2(server, "keys.verifyKey", ws.root_key, {"key": new["key"]}))["code"] == "VALID"
    for bad in (-1, 2592000001, "1s", None):
        err(v2(server, "keys.rerollKey", ws.root_key, {"keyId": k["keyId"], "expiration": bad}), 400,
            location="body.expiration")


def test_list_cursor_is_checked(server, ws):
    for c in ("x", "k", "k-1", "k0", "kabc", 5):
        err(v2(server, "apis.listKeys", ws.root_key, {"apiId": ws.id, "cursor": c}), 400,
            location="body.cursor")
    for lim in (0, 101, "5"):
        err(v2(server, "apis.listKeys", ws.root_key, {"apiId": ws.id, "limit": lim}), 400,
            location="body.limit")


def test_changes_survive_a_restart(fresh_server):
    srv = fresh_server
    ws = srv.create_workspace()
    k = create(srv, ws, name="durable", permissions=["a.b"])
    ok(v2(srv, "keys.addPermissions", ws.root_key, {"keyId": k["keyId"], "permissions": ["c.d"]}))
    srv.kill9()
    srv.start()
    got = ok(v2(srv, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))
    assert got["permissions"] == ["a.b", "c.d"]
    assert ok(v2(srv, "keys.verifyKey", ws.root_key,
                 {"key": k["key"], "permissions": "c.d"}))["code"] == "VALID"


def test_verify_returns_meta_and_identity(server, ws, ws2):
    meta = {"plan": "pro", "seats": 5, "tags": ["a"], "deep": {"x": [1, {"y": False}]},
            "s": "caf\u00e9 \"q\" \\ \u2028"}
    k = create(server, ws, meta=meta, externalId="user_\u00e9\"1")
    idn = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["keyId"]}))["identity"]
    v = verify(server, ws, k["key"])
    assert v["code"] == "VALID" and v["meta"] == meta
    assert v["identity"] == {"id": idn["id"], "externalId": "user_\u00e9\"1"}
    # what a key without them answers has neither (no "meta": {}, no null)
    bare = verify(server, ws, create(server, ws, meta={})["key"])
    assert "meta" not in bare and "identity" not in bare, bare
    only_meta = verify(server, ws, create(server, ws, meta={"a": 1})["key"])
    assert only_meta["meta"] == {"a": 1} and "identity" not in only_meta
    only_idn = verify(server, ws, create(server, ws, externalId="user_2")["key"])
    assert "meta" not in only_idn and only_idn["identity"]["externalId"] == "user_2"
    # a key with credits of its own is decided on a worker: the same answer
    paid = verify(server, ws, create(server, ws, meta={"p": 1}, externalId="user_2",
                                     credits={"remaining": 5})["key"])
    assert paid["credits"] == 4 and paid["meta"] == {"p": 1}, paid
    assert paid["identity"] == only_idn["identity"]
    # a change shows at the next check
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "meta": {"plan": "team"}}))
    assert verify(server, ws, k["key"])["meta"] == {"plan": "team"}
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "externalId": "user_3"}))
    assert verify(server, ws, k["key"])["identity"]["externalId"] == "user_3"
    ok(v2(server, "keys.updateKey", ws.root_key,
          {"keyId": k["keyId"], "meta": None, "externalId": None}))
    v = verify(server, ws, k["key"])
    assert v["code"] == "VALID" and "meta" not in v and "identity" not in v, v
    ws.server.patch(f"/v1/keys/{k['keyId']}", key=ws.root_key, json={"meta": {"v1": True}})
    assert verify(server, ws, k["key"])["meta"] == {"v1": True}
    # a found key that is refused shows them; another workspace's key shows nothing
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["keyId"], "enabled": False}))
    off = verify(server, ws, k["key"])
    assert off["code"] == "DISABLED" and off["meta"] == {"v1": True}
    assert verify(server, ws2, k["key"]) == {"valid": False, "code": "NOT_FOUND"}
    # a revoked key is a deleted one: nothing of it
    ok(v2(server, "keys.deleteKey", ws.root_key, {"keyId": k["keyId"]}))
    assert verify(server, ws, k["key"]) == {"valid": False, "code": "NOT_FOUND"}


def test_verify_shows_the_largest_meta_and_identity_whole(server, ws):
    # meta at its bound (4096 bytes as compact JSON, every quote escaped), the
    # longest external id with quotes, permissions and named limits beside them
    meta = {"q": "\"" * 2040}
    ext = "\"" * 100 + "\u00e9" * 77
    assert len(ext.encode()) == 254
    k = create(server, ws, meta=meta, externalId=ext + "x", permissions=["a.b", "c.d"],
               ratelimits=[{"name": f"n{i}", "limit": 5, "duration": 60000, "autoApply": True}
                           for i in range(5)])
    v = verify(server, ws, k["key"], permissions="a.b")
    assert v["code"] == "VALID" and v["meta"] == meta and v["identity"]["externalId"] == ext + "x"
    assert len(v["ratelimits"]) == 5 and v["permissions"] == ["a.b", "c.d"]


def test_meta_and_identity_survive_a_restart(fresh_server):
    srv = fresh_server
    ws = srv.create_workspace()
    k = create(srv, ws, meta={"plan": "pro"}, externalId="user_r")
    plain = create(srv, ws)
    ok(v2(srv, "keys.rerollKey", ws.root_key, {"keyId": k["keyId"], "expiration": 3600_000}))
    srv.kill9()
    srv.start()  # the cache is filled from a scan of the store, not from the changes
    v = verify(srv, ws, k["key"])  # the old secret, in its grace period
    assert v["meta"] == {"plan": "pro"} and v["identity"]["externalId"] == "user_r", v
    v = verify(srv, ws, plain["key"])
    assert v["code"] == "VALID" and "meta" not in v and "identity" not in v, v


def test_external_ids_are_per_workspace(server, ws, ws2):
    a = create(server, ws, externalId="user_1")
    b = create(server, ws2, externalId="user_1")
    ia = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": a["keyId"]}))["identity"]
    ib = ok(v2(server, "keys.getKey", ws2.root_key, {"keyId": b["keyId"]}))["identity"]
    assert ia["externalId"] == ib["externalId"] == "user_1" and ia["id"] != ib["id"]
    assert [k["keyId"] for k in ok(v2(server, "apis.listKeys", ws2.root_key,
                                      {"apiId": ws2.id, "externalId": "user_1"}))] == [b["keyId"]]
    assert ws.get_key(a["keyId"])["external_id"] == "user_1"  # the same identity on /v1
    for bad in ("", "x" * 256, "a\x01b", 5):
        err(v2(server, "keys.createKey", ws.root_key, {"apiId": ws.id, "externalId": bad}), 400,
            location="body.externalId")
    err(v2(server, "apis.listKeys", ws.root_key, {"apiId": ws.id, "externalId": ""}), 400,
        location="body.externalId")


def test_the_fast_reader_and_the_full_one_agree(server, ws):
    k = create(server, ws, permissions=["a.b"])
    key = k["key"]
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    raw = lambda text: v2(server, "keys.verifyKey", ws.root_key, data=text.encode(),
                          headers={"Content-Type": "application/json"})
    for text in ('{"key":"%s"}' % key, '{ "key" : "%s" }\n' % key, '{"key":"%s"}' % escaped,
                 '{"key":"%s","credits":{"cost":0}}' % key, '{"credits": {"cost": 0}, "key": "%s"}' % key,
                 '{"key":"%s","permissions":"a.b"}' % key, '{"key":"%s","permissions":"a.\\u0062"}' % key):
        assert ok(raw(text))["code"] == "VALID", text
    for text, loc in (('{"key":"%s","key":"x"}' % key, "body"), ('{"key":"%s"}x' % key, "body"),
                      ('{"key":"%s",}' % key, "body"), ('{"key":"%s","credits":{"cost":007}}' % key, "body"),
                      ('{"key":"%s","credits":{"cost":1000000001}}' % key, "body.credits.cost"),
                      ('{"key":"%s","credits":{"cost":1.5}}' % key, "body.credits.cost"),
                      ('{"key":"%s","credits":{"cost":1,"x":1}}' % key, "body.credits.x"),
                      ('{"key":"%s","credits":{}}' % key, "body.credits.cost"),
                      ('{"key":"%s","permissions":"a:b"}' % key, "body.permissions"),
                      ('{"key":"%s","permissions":""}' % key, "body.permissions"),
                      ('{"key":""}', "body.key"), ('{"permissions":"a.b"}', "body.key")):
        e = err(raw(text), 400, location=loc)
        assert key[8:40] not in e["detail"]
    assert ws.get_key(k["keyId"])["last_used_at"] is not None


def test_list_keys_passes_many_deleted_keys(server, ws):
    keep = create(server, ws, name="oldest")["keyId"]
    for _ in range(45):  # more than one call reads (20 rounds of 2 rows at limit 1)
        gone = create(server, ws)["keyId"]
        ok(v2(server, "keys.deleteKey", ws.root_key, {"keyId": gone}))
    got, cursor, pages = [], None, 0
    while True:
        body = {"apiId": ws.id, "limit": 1, **({"cursor": cursor} if cursor else {})}
        r = v2(server, "apis.listKeys", ws.root_key, body)
        got += [k["keyId"] for k in ok(r)]
        pages += 1
        if not r.json()["pagination"]["hasMore"]:
            break
        cursor = r.json()["pagination"]["cursor"]
        assert pages < 40
    assert got == [keep] and pages > 1


def test_checks_are_counted_as_their_own_endpoint(server, ws):
    import re

    def count(code):
        text = server.get("/metrics").text
        m = re.search(r'^latchkey_checks_total\{endpoint="unkey_verify",code="%s"\} (\d+)$' % code,
                      text, re.M)
        assert m, "no unkey_verify series"
        return int(m.group(1))

    k = create(server, ws)
    valid, unknown = count("valid"), count("invalid_key")
    ok(v2(server, "keys.verifyKey", ws.root_key, {"key": k["key"]}))
    ok(v2(server, "keys.verifyKey", ws.root_key, {"key": make_secret()}))
    deadline = time.time() + 10
    while (count("valid"), count("invalid_key")) != (valid + 1, unknown + 1):
        assert time.time() < deadline, "v2 checks are not counted under endpoint unkey_verify"
        time.sleep(0.1)


def test_checks_with_shared_counters(tmp_path):
    """With --redis a check may need Redis (a slice of a window): it is decided off
    the event loop and answers the same."""
    import shutil
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/deps.sh test)")
    from test_redis import Redis, one_server

    redis = Redis(tmp_path / "redis")
    try:
        with one_server(tmp_path, {"redis": redis.url()}) as srv:
            ws = srv.create_workspace()
            k = create(srv, ws, credits={"remaining": 5}, ratelimits=[
                {"name": "default", "limit": 2, "duration": 60000, "autoApply": True},
                {"name": "tokens", "limit": 10, "duration": 60000}])
            codes = []
            for body in ({}, {"ratelimits": [{"name": "tokens", "cost": 4}]}, {}):
                v = ok(v2(srv, "keys.verifyKey", ws.root_key, {"key": k["key"], **body}))
                codes.append((v["code"], v.get("credits")))
            assert codes == [("VALID", 4), ("VALID", 3), ("RATE_LIMITED", 3)], codes
            other = srv.create_workspace().root_key
            assert ok(v2(srv, "keys.verifyKey", other, {"key": k["key"]}))["code"] == "NOT_FOUND"
    finally:
        redis.stop()


def test_the_default_limits_window_round_trips_between_v1_and_v2(server, ws):
    # /v1's rate_limit takes a window of up to 31 days; v2 shows it as the limit
    # named default, and takes back what it shows (an SDK's read-modify-write).
    k = ws.create_key(rate_limit={"limit": 5, "window_s": 86401})
    got = ok(v2(server, "keys.getKey", ws.root_key, {"keyId": k["id"]}))
    assert [(r["name"], r["duration"]) for r in got["ratelimits"]] == [("default", 86401000)]
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["id"], "ratelimits": [
        {x: r[x] for x in ("name", "limit", "duration", "autoApply")} for r in got["ratelimits"]]}))
    assert ws.get_key(k["id"])["rate_limit"] == {"limit": 5, "window_s": 86401}
    # ...and the other way: v2's longest window for default is /v1's longest.
    ok(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["id"], "ratelimits": [
        {"name": "default", "limit": 7, "duration": 2678400000, "autoApply": True}]}))
    assert ws.get_key(k["id"])["rate_limit"] == {"limit": 7, "window_s": 2678400}
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                     json={"rate_limit": ws.get_key(k["id"])["rate_limit"]})
    assert r.status_code == 200, describe(r)
    # One bound each, on both APIs: 31 days for default, one day for the others.
    for name, ms, loc in (("default", 2678401000, "body.ratelimits[0].duration"),
                          ("other", 86400001, "body.ratelimits[0].duration")):
        err(v2(server, "keys.updateKey", ws.root_key, {"keyId": k["id"], "ratelimits": [
            {"name": name, "limit": 1, "duration": ms, "autoApply": True}]}), 400, location=loc)
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                     json={"rate_limits": [{"name": "default", "limit": 3, "window_ms": 2678400000}]})
    assert r.status_code == 200, describe(r)
    assert ws.get_key(k["id"])["rate_limit"] == {"limit": 3, "window_s": 2678400}
    for rl in ({"name": "default", "limit": 3, "window_ms": 2678401000},
               {"name": "other", "limit": 3, "window_ms": 86400001}):
        r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"rate_limits": [rl]})
        assert r.status_code == 400 and "window_ms" in r.text, describe(r)
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                     json={"rate_limit": {"limit": 3, "window_s": 2678401}})
    assert r.status_code == 400, describe(r)


def test_list_cursors_tell_nothing_of_other_workspaces(server, ws, ws2):
    mine = [create(server, ws)["keyId"] for _ in range(3)]
    page = lambda w, **b: v2(server, "apis.listKeys", w.root_key, {"apiId": w.id, "limit": 1, **b})
    before = ok(page(ws)) and page(ws).json()["pagination"]
    for _ in range(5):
        create(server, ws2)
    after = page(ws).json()["pagination"]
    assert before == after and after["cursor"] == mine[-1], after
    nxt = page(ws, cursor=after["cursor"]).json()
    assert [k["keyId"] for k in nxt["data"]] == [mine[-2]] and nxt["pagination"]["cursor"] == mine[-2]
    theirs = page(ws2).json()["pagination"]["cursor"]
    err(page(ws, cursor=theirs), 400, location="body.cursor")


def test_a_second_reroll_ends_the_first_ones_grace(server, ws):
    # One previous secret is kept (docs/unkey.md): the secret before the last
    # stops at once, the one the second reroll replaced gets its expiration.
    k = create(server, ws)
    first = ok(v2(server, "keys.rerollKey", ws.root_key, {"keyId": k["keyId"], "expiration": 3600000}))
    second = ok(v2(server, "keys.rerollKey", ws.root_key, {"keyId": k["keyId"], "expiration": 3600000}))
    code = lambda s: ok(v2(server, "keys.verifyKey", ws.root_key, {"key": s}))["code"]
    assert code(second["key"]) == "VALID" and code(first["key"]) == "VALID"
    assert code(k["key"]) == "NOT_FOUND"
