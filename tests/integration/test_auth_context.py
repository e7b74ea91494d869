"""GET /v1/auth-context: where the key is read from, and every outcome (DESIGN §3, §4)."""

import time
from datetime import datetime, timezone

import pytest

from lkhelpers import (assert_error, describe, expect_status, flip_char, make_secret)

PLACES = ("bearer", "x-api-key", "x-auth-token", "query")


def send(server, path="/v1/auth-context", **places):
    """GET path with a key in any of the four places (keyword per place)."""
    headers, params = {}, {}
    if "bearer" in places:
        headers["Authorization"] = "Bearer " + places["bearer"]
    if "x_api_key" in places:
        headers["X-API-Key"] = places["x_api_key"]
    if "x_auth_token" in places:
        headers["X-AUTH-TOKEN"] = places["x_auth_token"]
    if "query" in places:
        params["auth_token"] = places["query"]
    return server.get(path, headers=headers, params=params)


def place_kw(place):
    return place.replace("-", "_")


def parse_time(s):
    assert isinstance(s, str) and s.endswith("Z"), f"not an RFC 3339 UTC time: {s!r}"
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("place", PLACES)
def test_key_accepted_in_each_place(server, ws, place):
    k = ws.create_key(name="ctx", permissions=["storage:read"])
    r = send(server, **{place_kw(place): k["secret"]})
    ctx = expect_status(r, 200)
    assert ctx["key_id"] == k["id"], describe(r)
    assert ctx["workspace_id"] == ws.id, describe(r)
    assert ctx["environment"] == "live", describe(r)
    assert ctx["kind"] == "permanent", describe(r)
    assert ctx["permissions"] == ["storage:read"], describe(r)
    assert ctx["expires_at"] is None, describe(r)
    assert ctx["name"] == "ctx", describe(r)
    assert k["secret"] not in r.text


def test_api_alias_answers_the_same(server, ws):
    k = ws.create_key(name="alias")
    a = expect_status(send(server, "/v1/auth-context", bearer=k["secret"]), 200)
    b = expect_status(send(server, "/api/auth-context", x_api_key=k["secret"]), 200)
    assert a == b
    assert_error(send(server, "/api/auth-context"), 401, "missing_key")


def test_same_key_in_every_place_is_fine(server, ws):
    k = ws.create_key()
    r = send(server, bearer=k["secret"], x_api_key=k["secret"],
             x_auth_token=k["secret"], query=k["secret"])
    assert expect_status(r, 200)["key_id"] == k["id"]


@pytest.mark.parametrize("first,second", [
    (a, b) for i, a in enumerate(PLACES) for b in PLACES[i + 1:]
])
def test_two_different_keys_are_malformed(server, ws, first, second):
    k1 = ws.create_key()
    k2 = ws.create_key()
    r = send(server, **{place_kw(first): k1["secret"], place_kw(second): k2["secret"]})
    err = assert_error(r, 401, "malformed_key")
    assert k1["secret"] not in r.text and k2["secret"] not in r.text
    assert err


def test_valid_key_first_and_garbage_later_is_still_refused(server, ws):
    # First present wins for *reading*, but a conflicting second key is never ignored.
    k = ws.create_key()
    assert_error(send(server, bearer=k["secret"], query="garbage"), 401, "malformed_key")
    assert_error(send(server, x_api_key="garbage", x_auth_token=k["secret"]), 401,
                 "malformed_key")


def test_root_and_application_keys_context(server, ws):
    root = expect_status(server.auth_context(ws.root_key), 200)
    assert root["kind"] == "root" and root["workspace_id"] == ws.id
    rw = expect_status(server.auth_context(ws.rw_key), 200)
    assert rw["kind"] == "application" and rw["permissions"] == ["*"]
    ro = expect_status(server.auth_context(ws.ro_key), 200)
    assert ro["kind"] == "application" and ro["permissions"] == ["*:read"]
    assert len({root["key_id"], rw["key_id"], ro["key_id"]}) == 3


def test_default_permissions_are_everything(server, ws):
    k = ws.create_key()
    assert expect_status(server.auth_context(k["secret"]), 200)["permissions"] == ["*"]


def test_missing_key(server):
    r = send(server)
    assert_error(r, 401, "missing_key")


@pytest.mark.parametrize("bad", [
    "garbage",
    "lk_live_",
    "lk_live_tooShort123",
    "lk_prod_" + make_secret()[8:],                           # unknown environment
    make_secret()[:-7] + "-" + make_secret()[-6:],           # non-base62 character
    make_secret() + "0",                                     # one character too long
    make_secret()[:-1],                                      # one character too short
    "0123456789abcdef" * 3 + "0123456789abcde",              # 63 hex characters
    "LK_LIVE_" + make_secret()[8:],                          # prefix must be lowercase
])
def test_malformed_keys(server, bad):
    r = send(server, bearer=bad)
    assert_error(r, 401, "malformed_key")


@pytest.mark.parametrize("index", [-6, -4, -1])
def test_bad_checksum_is_malformed(server, ws, index):
    k = ws.create_key()
    bad = flip_char(k["secret"], index)
    r = send(server, x_api_key=bad)
    assert_error(r, 401, "malformed_key")
    assert bad not in r.text and k["secret"] not in r.text


def test_changed_body_without_new_checksum_is_malformed(server, ws):
    k = ws.create_key()
    assert_error(send(server, bearer=flip_char(k["secret"], -20)), 401, "malformed_key")


@pytest.mark.parametrize("secret", [
    make_secret("lk", "live"),
    make_secret("lk", "test"),
    make_secret("zzq", "live"),      # well-formed, a prefix no workspace uses
    "ab" * 32,                       # legacy format: 64 lowercase hex characters
])
def test_well_formed_but_never_issued_is_invalid(server, secret):
    r = send(server, bearer=secret)
    assert_error(r, 401, "invalid_key")
    assert secret not in r.text


def test_valid_body_with_other_body_checksum_recomputed_is_invalid(server, ws):
    # A real secret, one body character changed and the checksum recomputed.
    k = ws.create_key()
    m = k["secret"]
    body = m[-49:-6]
    body = ("A" if body[0] != "A" else "B") + body[1:]
    forged = make_secret("lk", "live", body)
    assert forged != m
    assert_error(send(server, bearer=forged), 401, "invalid_key")


@pytest.fixture(scope="module")
def expired(server):
    """Keys that run out a second after creation: one expiring, one old secret whose
    regeneration grace period ends. One wait serves both tests."""
    w = server.create_workspace()
    k = w.create_key(name="short", expires_in=1)
    rot = w.create_key(name="rot")
    new = expect_status(server.post(f"/v1/keys/{rot['id']}/regenerate", key=w.root_key,
                                    json={"grace_period_s": 1}), 200)
    return w, k, time.monotonic(), rot, new


def wait_past_expiry(t0):
    time.sleep(max(0.0, 2.1 - (time.monotonic() - t0)))


def test_expired_key(server, expired):
    w, k, t0, _, _ = expired
    assert k["expires_at"] is not None
    exp = parse_time(k["expires_at"])
    now = datetime.now(timezone.utc)
    assert -1 <= (exp - now).total_seconds() <= 2, k["expires_at"]
    wait_past_expiry(t0)
    r = send(server, bearer=k["secret"])
    assert_error(r, 401, "expired_key")
    assert w.get_key(k["id"])["status"] == "expired"
    listed = w.list_keys(status="expired")["data"]
    assert [x["id"] for x in listed] == [k["id"]], listed
    assert k["id"] not in {x["id"] for x in w.list_keys(status="active")["data"]}
    v = expect_status(server.verify({"key": k["secret"]}), 200)
    assert v["valid"] is False and v["code"] == "expired_key", v


def test_old_secret_refused_after_grace_period(server, expired):
    w, _, t0, rot, new = expired
    wait_past_expiry(t0)
    assert_error(send(server, bearer=rot["secret"]), 401, "revoked_key")
    assert expect_status(send(server, bearer=new["secret"]), 200)["key_id"] == rot["id"]
    assert w.get_key(rot["id"])["status"] == "active"


def test_expires_at_reported_in_context(server, ws):
    k = ws.create_key(kind="temporary")
    ctx = expect_status(server.auth_context(k["secret"]), 200)
    assert ctx["kind"] == "temporary"
    delta = (parse_time(ctx["expires_at"]) - datetime.now(timezone.utc)).total_seconds()
    assert 3500 <= delta <= 3605, ctx


def test_revoked_key(server, ws):
    k = ws.create_key()
    expect_status(server.auth_context(k["secret"]), 200)
    r = server.delete(f"/v1/keys/{k['id']}", key=ws.root_key)
    assert r.status_code == 204, describe(r)
    r = send(server, query=k["secret"])
    assert_error(r, 401, "revoked_key")
    assert k["secret"] not in r.text


def test_inactive_key_and_reenable(server, ws):
    k = ws.create_key()
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"enabled": False})
    assert expect_status(r, 200)["enabled"] is False
    r = send(server, x_auth_token=k["secret"])
    assert_error(r, 403, "inactive_key")
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"enabled": True})
    assert expect_status(r, 200)["enabled"] is True
    assert expect_status(send(server, x_auth_token=k["secret"]), 200)["key_id"] == k["id"]


def test_test_environment_key_context(server, ws):
    k = ws.create_key(environment="test")
    assert k["secret"].startswith("lk_test_")
    assert expect_status(server.auth_context(k["secret"]), 200)["environment"] == "test"


@pytest.mark.parametrize("header", ["x-api-key", "X-Api-Key", "x-auth-token", "AUTHORIZATION"])
def test_header_names_are_case_insensitive(server, ws, header):
    k = ws.create_key()
    value = ("Bearer " + k["secret"]) if header.lower() == "authorization" else k["secret"]
    r = server.get("/v1/auth-context", headers={header: value})
    assert expect_status(r, 200)["key_id"] == k["id"], describe(r)


def test_bearer_scheme_is_case_insensitive(server, ws):
    # RFC 7235: the auth-scheme token is case-insensitive.
    k = ws.create_key()
    r = server.get("/v1/auth-context", headers={"Authorization": "bearer " + k["secret"]})
    assert expect_status(r, 200)["key_id"] == k["id"], describe(r)


def test_query_key_percent_encoded(server, ws):
    k = ws.create_key()
    enc = "".join("%%%02X" % ord(c) for c in k["secret"])
    r = server.get("/v1/auth-context?auth_token=" + enc)
    assert expect_status(r, 200)["key_id"] == k["id"], describe(r)
    r = server.get("/v1/auth-context?x=1&auth_token=" + k["secret"] + "&y=2")
    assert expect_status(r, 200)["key_id"] == k["id"], describe(r)


def test_changes_reach_every_connection_at_once(server, ws):
    """The server runs one event loop per core; a revoke, disable or regenerate
    answered on one connection must hold on every other one from then on."""
    import requests
    k = ws.create_key()
    d = ws.create_key()
    g = ws.create_key()

    def many(secret, n=12):
        codes = []
        for _ in range(n):
            with requests.Session() as s:
                r = s.get(server.url("/v1/auth-context"),
                          headers={"X-API-Key": secret}, timeout=10)
                codes.append(r.status_code if r.status_code == 200 else r.json()["error"]["code"])
        return codes

    for secret in (k["secret"], d["secret"], g["secret"]):
        assert set(many(secret)) == {200}
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    expect_status(server.patch(f"/v1/keys/{d['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    new = expect_status(server.post(f"/v1/keys/{g['id']}/regenerate", key=ws.root_key,
                                    json={}), 200)
    assert set(many(k["secret"])) == {"revoked_key"}
    assert set(many(d["secret"])) == {"inactive_key"}
    assert set(many(g["secret"])) == {"revoked_key"}
    assert set(many(new["secret"])) == {200}


def test_keep_alive_connection_mixing_errors(server, ws):
    import requests
    k = ws.create_key()
    with requests.Session() as s:
        for _ in range(3):
            r = s.get(server.url("/v1/auth-context"), timeout=10)
            assert_error(r, 401, "missing_key")
            r = s.post(server.url("/v1/verify"), data=b"{bad", timeout=10,
                       headers={"Content-Type": "application/json"})
            assert_error(r, 400, "bad_json")
            r = s.get(server.url("/v1/auth-context"), timeout=10,
                      headers={"Authorization": "Bearer " + k["secret"]})
            assert expect_status(r, 200)["key_id"] == k["id"]
            r = s.get(server.url("/v1/nope"), timeout=10)
            assert_error(r, 404, "not_found")


def test_duplicate_header_with_two_keys_is_malformed(server, ws):
    import socket
    a, b = ws.create_key(), ws.create_key()
    # the same header twice, raw, so no client library folds it
    req = (f"GET /v1/auth-context HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           f"X-API-Key: {a['secret']}\r\nX-API-Key: {b['secret']}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert status == 401 and b'"malformed_key"' in data, data[:400]


def test_two_query_keys_are_malformed(server, ws):
    a, b = ws.create_key(), ws.create_key()
    r = server.get(f"/v1/auth-context?auth_token={a['secret']}&auth_token={b['secret']}")
    assert_error(r, 401, "malformed_key")


def test_revoke_is_linearizable_under_load(server, ws):
    """Every check that starts after DELETE has returned must see the revocation."""
    import threading

    import requests
    k = ws.create_key()
    stop = threading.Event()
    seen = []  # (started, finished, code)

    def hammer():
        with requests.Session() as s:
            while not stop.is_set():
                t = time.monotonic()
                r = s.post(server.url("/v1/verify"), json={"key": k["secret"]}, timeout=10)
                seen.append((t, time.monotonic(), r.json().get("code")))

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        sent = time.monotonic()
        r = server.delete(f"/v1/keys/{k['id']}", key=ws.root_key)
        returned = time.monotonic()
        assert r.status_code == 204, describe(r)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    after = [code for t, _, code in seen if t > returned]
    before = [code for _, end, code in seen if end < sent]
    assert before and set(before) == {"valid"}, set(before)
    assert after, "no check ran after the revoke"
    wrong = [c for c in after if c != "revoked_key"]
    assert not wrong, f"{len(wrong)} of {len(after)} checks after the revoke said {set(wrong)}"


@pytest.mark.parametrize("prefix,env", [("lk", "test"), ("zz", "live"), ("lkx", "live")])
def test_same_body_under_another_prefix_or_env_is_invalid(server, ws, prefix, env):
    # The digest covers the whole secret: moving a real body under another prefix or
    # environment (with a fresh, correct checksum) must not open the key.
    k = ws.create_key()
    body = k["secret"][-49:-6]
    forged = make_secret(prefix, env, body)
    r = send(server, bearer=forged)
    assert_error(r, 401, "invalid_key")


def test_hex_secret_is_case_sensitive(server):
    h = server.create_workspace(key_format="hex")
    k = h.create_key()
    expect_status(server.auth_context(k["secret"]), 200)
    upper = k["secret"].upper()
    if upper != k["secret"]:
        assert_error(send(server, bearer=upper), 401, "malformed_key")
