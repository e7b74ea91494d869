"""An outsider's attacks on the management API, the edge and the counters.

Each test names one thing a stranger (or a member of lesser rights) might try,
and asserts what they must see instead: their own workspace only, no more
rights than they hold, a 4xx in the error shape, counters that add up.
"""

import json
import os
import socket
import sqlite3
import threading

import pytest
import requests

from conftest import in_parallel
from lkhelpers import (HTTP_TIMEOUT, assert_error, assert_error_shape, describe,
                       expect_status, new_email, new_password)


def raw_request(port, data, timeout=5.0):
    """Send raw bytes, return everything the server sent until it closed or went quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
    return b"".join(chunks)


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


# -- another workspace's objects ------------------------------------------------------

def test_other_workspaces_invitations_cannot_be_revoked(server, ws, ws2):
    inv = ws2.invite(new_email("b"), "viewer")
    for cred in (ws.root_key, ws.new_session("owner").token):
        r = server.delete(f"/v1/invitations/{inv['id']}", key=cred)
        assert_error(r, 404, "not_found")
    pending = expect_status(server.get("/v1/invitations", key=ws2.root_key), 200)["data"]
    assert inv["id"] in {i["id"] for i in pending}
    # and it still works
    server.accept(inv["token"], new_password())


def test_other_workspaces_members_cannot_be_changed(server, ws, ws2):
    b = ws2.new_user("owner")
    for cred in (ws.root_key, ws.new_session("owner").token):
        r = server.patch(f"/v1/members/{b.id}", key=cred, json={"role": "viewer"})
        assert_error(r, 404, "not_found")
        r = server.delete(f"/v1/members/{b.id}", key=cred)
        assert_error(r, 404, "not_found")
    roles = {m["user_id"]: m["role"] for m in ws2.list_members()["data"]}
    assert roles[b.id] == "owner"


def test_session_of_a_naming_b_reaches_nothing_of_b(server, ws, ws2):
    s = ws.new_session("owner")
    inv = ws2.invite(new_email("b"), "viewer")
    h = s.headers(ws2.id)
    for method, path, body in [
        ("GET", "/v1/invitations", None),
        ("DELETE", f"/v1/invitations/{inv['id']}", None),
        ("POST", "/v1/members", {"email": new_email("x"), "role": "owner"}),
        ("GET", "/v1/members", None),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/credits", {"amount": 5}),
    ]:
        r = server.request(method, path, headers=h,
                           **({"json": body} if body is not None else {}))
        assert_error(r, 404, "not_found")
    assert expect_status(server.get("/v1/credits", key=ws2.root_key), 200)["balance"] == 0


def test_invitation_token_is_not_a_session_or_key(server, ws):
    inv = ws.invite(new_email("t"), "owner")
    for path in ("/v1/keys", "/v1/me", "/v1/members", "/v1/auth-context"):
        r = server.get(path, key=inv["token"])
        assert r.status_code == 401, describe(r)
    r = server.get("/v1/keys", cookies={"lk_session": inv["token"]})
    assert r.status_code == 401, describe(r)
    r = server.verify({"key": inv["token"]})
    assert expect_status(r, 200)["valid"] is False


# -- privilege climbing ---------------------------------------------------------------

def test_restricted_root_key_cannot_mint_or_regenerate_root_or_application_keys(server, ws):
    narrow = ws.create_key(kind="root", permissions=["keys:*"])["secret"]
    app_ids = [k["id"] for k in ws.list_keys()["data"] if k["kind"] in ("application", "root")]
    r = server.post("/v1/keys", key=narrow, json={"name": "x", "kind": "root"})
    assert_error(r, 403, "insufficient_permissions")
    for kid in app_ids:
        r = server.post(f"/v1/keys/{kid}/regenerate", key=narrow, json={})
        assert_error(r, 403, "insufficient_permissions")
        r = server.patch(f"/v1/keys/{kid}", key=narrow, json={"permissions": ["*"]})
        assert_error(r, 403, "insufficient_permissions")


def test_editor_cannot_regenerate_application_key(server, ws):
    s = ws.new_session("editor")
    rw = [k for k in ws.list_keys()["data"] if k["kind"] == "application"]
    assert rw
    for k in rw:
        r = server.post(f"/v1/keys/{k['id']}/regenerate", key=s.token, json={})
        assert_error(r, 403, "insufficient_permissions")
        r = server.patch(f"/v1/keys/{k['id']}", key=s.token, json={"permissions": ["*"]})
        assert_error(r, 403, "insufficient_permissions")
    # the application key still works
    expect_status(server.get("/v1/keys", key=ws.rw_key), 200)


def test_application_key_cannot_invite(server, ws):
    for key in (ws.rw_key, ws.ro_key):
        for role in ("owner", "editor", "viewer"):
            r = server.post("/v1/members", key=key, json={"email": new_email("a"), "role": role})
            assert_error(r, 403, "insufficient_permissions")


def test_removed_owner_cannot_come_back_through_their_own_invitation(server, ws):
    """An owner who is removed (or demoted) must not keep a way back in: the
    owner invitations they made are not accepted any more."""
    keeper = ws.new_session("owner")
    leaver = ws.new_session("owner")
    back_door = ws.invite(new_email("alt"), "owner", key=leaver.token)
    editor_door = ws.invite(new_email("alt2"), "editor", key=leaver.token)
    r = server.delete(f"/v1/members/{leaver.user.id}", key=keeper.token)
    expect_status(r, 204)
    r = server.post("/v1/invitations/accept",
                    json={"token": back_door["token"], "password": new_password()})
    assert_error(r, 400, "invalid_invitation")
    r = server.post("/v1/invitations/accept",
                    json={"token": editor_door["token"], "password": new_password()})
    assert_error(r, 400, "invalid_invitation")
    roles = [m["role"] for m in ws.list_members()["data"]]
    assert roles.count("owner") == 1, roles


def test_demoted_owner_cannot_grant_owner_through_their_invitation(server, ws):
    keeper = ws.new_session("owner")
    demoted = ws.new_session("owner")
    door = ws.invite(new_email("alt"), "owner", key=demoted.token)
    r = server.patch(f"/v1/members/{demoted.user.id}", key=keeper.token, json={"role": "viewer"})
    expect_status(r, 200)
    r = server.post("/v1/invitations/accept",
                    json={"token": door["token"], "password": new_password()})
    assert_error(r, 400, "invalid_invitation")


def test_revoked_root_key_leaves_no_invitation_behind(server, ws):
    leaked = ws.create_key(kind="root")
    door = ws.invite(new_email("alt"), "owner", key=leaked["secret"])
    expect_status(server.delete(f"/v1/keys/{leaked['id']}", key=ws.root_key), 204)
    r = server.post("/v1/invitations/accept",
                    json={"token": door["token"], "password": new_password()})
    assert_error(r, 400, "invalid_invitation")


def test_invitation_of_a_still_entitled_inviter_still_works(server, ws):
    owner = ws.new_session("owner")
    inv = ws.invite(new_email("ok"), "editor", key=owner.token)
    doc = server.accept(inv["token"], new_password())
    assert doc["role"] == "editor"


def test_concurrent_accepts_of_one_invitation_join_once(server, ws):
    inv = ws.invite(new_email("race"), "editor")
    pw = new_password()

    def go(i, s):
        return s.post(server.url("/v1/invitations/accept"),
                      json={"token": inv["token"], "password": pw}, timeout=HTTP_TIMEOUT)

    rs = in_parallel(6, go)
    codes = sorted(r.status_code for r in rs)
    assert codes.count(200) == 1, [describe(r) for r in rs]
    assert all(c in (200, 400, 409) for c in codes), codes


def test_email_case_is_one_user(server, ws, ws2):
    email = new_email("Case")
    pw = new_password()
    ws.add_member(email.lower(), "viewer", password=pw)
    inv = ws2.invite(email.upper(), "viewer")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                    "password": new_password()})
    assert_error(r, 401, "invalid_credentials")
    server.accept(inv["token"], pw)
    me = expect_status(server.get("/v1/me", key=server.session(email, pw).token), 200)
    assert len(me["memberships"]) == 2


# -- bad input --------------------------------------------------------------------------

JSON_ENDPOINTS = [
    ("POST", "/v1/verify", False),
    ("POST", "/v1/auth/login", False),
    ("POST", "/v1/invitations/accept", False),
    ("POST", "/v1/keys", True),
    ("POST", "/v1/members", True),
    ("POST", "/v1/credits", True),
    ("POST", "/v1/keys/generate-temp", True),
]

BAD_BODIES = [
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'{"cost": 9223372036854775808}',
    b'{"cost": -0}',
    b'{"cost": 1e400}',
    b'{"cost": 1.5}',
    b'{"amount": 1e3}',
    b'{"amount": 18446744073709551616}',
    b'{"key": "a", "key": "b"}',
    b'{"key": "a\\u0000b"}',
    b'{"email": "a\\u0000@x.test", "password": "p\\u0000assword1"}',
    b'{"token": "\\ud800", "password": "x"}',
    b'\x00{}',
    b'{"name": "\xff\xfe"}',
    b'"just a string"',
    b'null',
    b'',
]


@pytest.mark.parametrize("method,path,auth", JSON_ENDPOINTS)
def test_hostile_bodies_get_a_4xx(server, ws, method, path, auth):
    for body in BAD_BODIES:
        for ctype in ("application/json", "text/plain", None):
            h = {} if ctype is None else {"Content-Type": ctype}
            if auth:
                h["Authorization"] = f"Bearer {ws.root_key}"
            r = requests.request(method, server.url(path), data=body, headers=h,
                                 timeout=HTTP_TIMEOUT)
            if path == "/v1/verify" and r.status_code == 200:
                continue
            assert_error_shape(r, range(400, 500))


def test_patch_member_with_hostile_bodies(server, ws):
    u = ws.new_user("viewer")
    for body in BAD_BODIES + [b'{"role": "OWNER"}', b'{"role": "owner", "x": 1}',
                              b'{"role": null}', b'{"role": ["owner"]}']:
        r = requests.patch(server.url(f"/v1/members/{u.id}"), data=body,
                           headers={"Authorization": f"Bearer {ws.root_key}"},
                           timeout=HTTP_TIMEOUT)
        assert_error_shape(r, range(400, 500))
    roles = {m["user_id"]: m["role"] for m in ws.list_members()["data"]}
    assert roles[u.id] == "viewer"


@pytest.mark.parametrize("ident", ["%00", "..", "inv_" + "a" * 5000, "%2F", "inv_%C3%A9",
                                   "a/b", "inv_\u00e9"])
def test_odd_ids_on_new_endpoints(server, ws, ident):
    for method, path, body in [("DELETE", f"/v1/invitations/{ident}", None),
                               ("PATCH", f"/v1/members/{ident}", {"role": "viewer"}),
                               ("DELETE", f"/v1/members/{ident}", None)]:
        r = server.request(method, path, key=ws.root_key,
                           **({"json": body} if body is not None else {}))
        assert_error_shape(r, range(400, 500))


# -- forged client addresses ----------------------------------------------------------

def test_forged_forwarding_headers_do_not_reach_the_audit_log(server, ws):
    h = {"X-Forwarded-For": "203.0.113.9, 198.51.100.2", "X-Real-IP": "203.0.113.77"}
    u = ws.new_user("viewer")
    expect_status(server.login(u.email, u.password, headers=h), 200)
    expect_status(server.post("/v1/keys", key=ws.root_key, json={"name": "a"}, headers=h), 201)
    events = expect_status(server.get("/v1/audit", key=ws.root_key), 200)["data"]
    assert events
    for ev in events:
        assert ev["address"] in ("127.0.0.1", ""), ev


# -- the edge ---------------------------------------------------------------------------

@pytest.mark.parametrize("head", [
    b"GET http://evil.example/v1/keys HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/keys HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET /v1/keys HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    b"GET /v1/keys HTTP/1.1\nHost: x\n\n",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/keys?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/keys HTTP/1.1\r\n" + b"X-Forwarded-For: 1.2.3.4\r\n" * 99 + b"\r\n",
    b"GET /v1/keys HTTP/1.1\r\n" + b"X-Forwarded-For: 1.2.3.4\r\n" * 150 + b"\r\n",
    b"GET /v1/keys HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET\t/v1/keys\tHTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_odd_heads_answer_in_the_error_shape_or_route(server, head):
    raw = raw_request(server.port, head)
    st = status_of(raw)
    assert st is not None and 400 <= st < 500, raw[:300]
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    if st != 400 or b"Bad Request" != body.strip():
        assert b'"error"' in body, raw[:500]


# -- forward auth: URIs that mean two things ----------------------------------------------

ATTACK_RULES = """\
GET  /public/**  public
GET  /admin/**   admin:read
"""


@pytest.fixture(scope="module")
def fa_server(tmp_path_factory):
    from conftest import LatchkeyServer, _finish, _live_servers, SHARED_CONFIG
    d = tmp_path_factory.mktemp("fa")
    (d / "routes").write_text(ATTACK_RULES)
    srv = LatchkeyServer(d / "srv", config=dict(SHARED_CONFIG, routes=str(d / "routes")))
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


def fa(srv, uri, method="GET", key=None, style="X-Forwarded-Uri"):
    h = {style: uri, "X-Forwarded-Method" if style == "X-Forwarded-Uri"
         else "X-Original-Method": method}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    return requests.get(srv.url("/v1/forward-auth"), headers=h, timeout=HTTP_TIMEOUT)


@pytest.mark.parametrize("uri", [
    # A request target has no fragment (RFC 9112 origin-form): a backend that takes
    # '#' as a path character and resolves '..' after it serves /admin/users.
    "/public/#/../../admin/users",
    "/public/x#/../../../admin/users",
    # overlong UTF-8 for '.' and '/': old decoders read them as the ASCII bytes
    "/public/%C0%AE%C0%AE/admin/users",
    "/public/%E0%80%AE%E0%80%AE/admin/users",
    "/public/..%C0%AFadmin/users",
    "/public/\xc0\xae\xc0\xae/admin/users",
])
@pytest.mark.parametrize("style", ["X-Forwarded-Uri", "X-Original-URI"])
def test_forwarded_uri_with_two_meanings_is_refused(fa_server, uri, style):
    h = {style: uri.encode("latin-1"), "X-Forwarded-Method" if style == "X-Forwarded-Uri"
         else "X-Original-Method": "GET"}
    r = requests.get(fa_server.url("/v1/forward-auth"), headers=h, timeout=HTTP_TIMEOUT)
    assert_error(r, 403, "insufficient_permissions")


@pytest.mark.parametrize("uri", ["/public/x", "/public/caf%C3%A9", "/public/a//b/./c",
                                 "/public/x?next=/admin",
                                 "/public/x?q=1#/../../admin"])
def test_plain_public_paths_still_pass(fa_server, uri):
    r = fa(fa_server, uri)
    expect_status(r, 200)


@pytest.mark.parametrize("uri", ["/admin/users", "/public/../admin/users", "//admin/users",
                                 "/public/%2e%2e/admin/users", "/admin%00/users",
                                 "/public/..\\admin", "/" + "a/" * 2000, "http://x/public/a",
                                 "/ADMIN/users"])
def test_protected_paths_need_a_key(fa_server, uri):
    r = fa(fa_server, uri)
    assert r.status_code in (401, 403), describe(r)
