"""An outsider's attacks on the management API, the edge and the counters.

Each test names one thing a stranger (or a member of lesser rights) might try,
and asserts what they must see instead: their own workspace only, no more
rights than they hold, a 4xx in the error shape, counters that add up.
"""

import json
import os
import threading

import pytest
import requests

from conftest import in_parallel
from lkhelpers import (HTTP_TIMEOUT, assert_error, assert_error_shape, describe,
                       expect_status, new_email, new_password, send_raw)


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
    raw = send_raw(server.port, head)
    st = status_of(raw)
    assert st is not None and 400 <= st < 500, raw[:300]
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    if st != 400 or b"Bad Request" != body.strip():
        assert b'"error"' in body, raw[:500]


# -- forward auth: URIs that mean two things ----------------------------------------------

ATTACK_RULES = """\
GET  /public/**   public
GET  /admin/**    admin:read
GET  /content/**  content:read
POST /content/**  content:write
DELETE /content/** content:delete
*    /**          any
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


def expect_pass(r):
    """Forward auth lets a request through with an empty 200."""
    assert r.status_code == 200 and r.content == b"", describe(r)


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
    expect_pass(fa(fa_server, uri))


@pytest.mark.parametrize("uri", ["/admin/users", "/public/../admin/users", "//admin/users",
                                 "/public/%2e%2e/admin/users", "/admin%00/users",
                                 "/public/..\\admin", "/" + "a/" * 2000, "http://x/public/a",
                                 "/ADMIN/users"])
def test_protected_paths_need_a_key(fa_server, uri):
    r = fa(fa_server, uri)
    assert r.status_code in (401, 403), describe(r)


# -- races --------------------------------------------------------------------------------

def test_concurrent_top_ups_all_count(server, ws):
    def go(i, s):
        return s.post(server.url("/v1/credits"), json={"amount": 7},
                      headers={"Authorization": f"Bearer {ws.root_key}"}, timeout=HTTP_TIMEOUT)

    rs = in_parallel(12, go)
    assert all(r.status_code == 201 for r in rs), [describe(r) for r in rs]
    doc = expect_status(server.get("/v1/credits", key=ws.root_key), 200)
    assert doc["topped_up"] == 84 and doc["balance"] + doc["spent"] == 84, doc


def test_concurrent_spends_never_overspend(server, ws):
    expect_status(server.post("/v1/credits", key=ws.root_key, json={"amount": 100}), 201)
    k = ws.create_key()

    def go(i, s):
        return s.post(server.url("/v1/verify"), json={"key": k["secret"], "cost": 3},
                      timeout=HTTP_TIMEOUT).json()

    rs = in_parallel(40, go)
    ok = sum(1 for d in rs if d["valid"])
    assert ok == 33, [d["code"] for d in rs]
    assert all(d["code"] == "insufficient_credits" for d in rs if not d["valid"])


def test_concurrent_permission_patches_leave_one_answer(server, ws):
    k = ws.create_key(permissions=["a:read"])
    lists = [[f"p{i}:read"] for i in range(8)]

    def go(i, s):
        return s.patch(server.url(f"/v1/keys/{k['id']}"), json={"permissions": lists[i]},
                       headers={"Authorization": f"Bearer {ws.root_key}"}, timeout=HTTP_TIMEOUT)

    rs = in_parallel(8, go)
    assert all(r.status_code == 200 for r in rs)
    final = ws.get_key(k["id"])["permissions"]
    assert final in lists
    # what verification believes is what the store holds
    ctx = expect_status(server.auth_context(k["secret"]), 200)
    assert ctx["permissions"] == final
    for p in lists:
        d = server.verify({"key": k["secret"], "permissions": p[0]}).json()
        assert d["valid"] is (p == final), (p, final, d)


def test_revoke_under_verify_load_is_final_at_once(server, ws):
    k = ws.create_key()
    stop = threading.Event()
    seen_after = []
    revoked = threading.Event()

    def hammer():
        with requests.Session() as s:
            while not stop.is_set():
                d = s.post(server.url("/v1/verify"), json={"key": k["secret"]},
                           timeout=HTTP_TIMEOUT).json()
                if revoked.is_set():
                    seen_after.append(d["code"])

    ts = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for t in ts:
        t.start()
    expect_status(server.delete(f"/v1/keys/{k['id']}", key=ws.root_key), 204)
    revoked.set()
    for _ in range(20):
        assert server.verify({"key": k["secret"]}).json()["code"] == "revoked_key"
    stop.set()
    for t in ts:
        t.join(10)
    # answers begun before the 204 may say valid; none begun after it
    assert seen_after.count("valid") <= 4, seen_after


# -- the counter file ---------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "short", "odd_size", "garbage_header", "huge_sparse",
                                    "directory", "symlink"])
def test_a_damaged_counter_file_never_stops_money_adding_up(fresh_server, damage):
    srv = fresh_server
    w = srv.create_workspace()
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 500}), 201)
    k = w.create_key()
    for _ in range(5):
        assert srv.verify({"key": k["secret"], "cost": 2}).json()["valid"]
    srv.kill9()
    path = srv.counters_path
    data = path.read_bytes()
    # what a symlinked counter file would point at: the database file itself, or
    # (a database that is no file) another file of the server's
    victim = srv.db_path if srv.is_sqlite() else srv.dir / "victim"
    if not srv.is_sqlite():
        victim.write_bytes(os.urandom(8192))
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "short":
        path.write_bytes(data[:100])
    elif damage == "odd_size":
        path.write_bytes(data + b"\0" * 777)
    elif damage == "garbage_header":
        path.write_bytes(os.urandom(4096) + data[4096:])
    elif damage == "huge_sparse":
        with open(path, "r+b") as f:
            f.truncate(64 << 30)
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    elif damage == "symlink":
        path.unlink()
        os.symlink(victim, path)
    if damage in ("directory", "symlink"):
        # not a file the server may use: it refuses to start, and changes nothing
        before = victim.read_bytes()
        from conftest import run_cli  # noqa: F401
        with pytest.raises(BaseException):
            srv.start()
        assert victim.read_bytes()[:100] == before[:100]
        if damage == "directory":
            path.rmdir()
        else:
            path.unlink()
    srv.start()
    doc = expect_status(srv.get("/v1/credits", key=w.root_key), 200)
    assert doc["topped_up"] == 500 and doc["balance"] + doc["spent"] == 500, doc
    assert doc["spent"] >= 10, doc
    assert srv.verify({"key": k["secret"], "cost": 1}).json()["valid"]


# -- secrets at rest --------------------------------------------------------------------

def test_no_token_or_password_at_rest_after_a_full_people_flow(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    pw, pw2, wrong = new_password(), new_password(), new_password()
    email = new_email("flow")
    inv = w.invite(email, "owner")
    srv.accept(inv["token"], pw)
    s = srv.session(email, pw)
    inv2 = w.invite(new_email("second"), "editor", key=s.token)
    srv.post("/v1/invitations/accept", json={"token": inv2["token"], "password": "short"})
    srv.accept(inv2["token"], pw2)
    dead = w.invite(new_email("dead"), "viewer", key=s.token)
    expect_status(srv.delete(f"/v1/invitations/{dead['id']}", key=s.token), 204)
    srv.post("/v1/invitations/accept", json={"token": dead["token"], "password": pw2})
    srv.login(email, wrong)
    srv.post("/v1/auth/login", data=b'{"email": "' + email.encode() + b'", "password": "'
             + wrong.encode() + b'"', headers={"Content-Type": "application/json"})
    srv.post("/v1/invitations/accept", data=b'{"token": "' + inv["token"].encode() + b'", "x',
             headers={"Content-Type": "application/json"})
    audit = expect_status(srv.get("/v1/audit", key=s.token), 200)
    expect_status(srv.post("/v1/auth/logout", key=s.token), 204)
    srv.kill9()
    needles = [pw, pw2, wrong, inv["token"], inv2["token"], dead["token"], s.token]
    blob = json.dumps(audit)
    for n in needles:
        assert n not in blob
    leaks = []
    for root, _dirs, files in os.walk(srv.dir):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            for n in needles:
                if n.encode() in data or n[4:].encode() in data:
                    leaks.append(f"{name} holds {n[:8]}...")
    data = srv.database_bytes()
    for n in needles:
        if n.encode() in data or n[4:].encode() in data:
            leaks.append(f"the database holds {n[:8]}...")
    assert not leaks, leaks
    # the search saw the people tables
    srv.sql("SELECT count(*) FROM invitations")


def test_kill9_during_accepts_leaves_each_invitation_used_or_usable(fresh_server):
    import random
    import time
    srv = fresh_server
    w = srv.create_workspace()
    for trial in range(4):
        invs = [w.invite(new_email(f"k{trial}x{i}"), "viewer") for i in range(6)]
        pws = [new_password() for _ in invs]
        answers = {}

        def go(i):
            try:
                r = requests.post(srv.url("/v1/invitations/accept"),
                                  json={"token": invs[i]["token"], "password": pws[i]},
                                  timeout=HTTP_TIMEOUT)
                answers[i] = r.status_code
            except requests.RequestException:
                answers[i] = None

        ts = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(len(invs))]
        for t in ts:
            t.start()
        time.sleep(random.uniform(0.05, 0.6))
        srv.kill9()
        for t in ts:
            t.join(20)
        srv.start()
        members = {m["email"] for m in w.list_members()["data"]}
        for i, inv in enumerate(invs):
            joined = inv["email"] in members
            if answers.get(i) == 200:
                assert joined, (trial, i)
            r = srv.post("/v1/invitations/accept",
                         json={"token": inv["token"], "password": pws[i]})
            if joined:
                assert_error(r, 400, "invalid_invitation")
                expect_status(srv.login(inv["email"], pws[i]), 200)
            else:
                expect_status(r, 200)


# -- IPv6 clients behind a trusted proxy ------------------------------------------------------

def test_rotating_addresses_within_one_ipv6_64_does_not_dodge_the_throttle(make_server):
    """Whoever has one IPv6 address usually has its whole /64: 2^64 addresses to
    rotate through. Per-address limits count the /64."""
    from lkhelpers import make_secret
    srv = make_server(config={"failed_key_limit": "3/60", "trusted_proxies": "127.0.0.1"})
    w = srv.create_workspace()
    k = w.create_key()

    def verify_from(addr, secret):
        return srv.post("/v1/verify", json={"key": secret}, headers={"X-Real-IP": addr})

    for i in range(3):
        d = expect_status(verify_from(f"2001:db8:1:2::{i + 1:x}", make_secret()), 200)
        assert d["code"] == "invalid_key", d
    # a fresh address of the same /64 is held back, even with a good key
    d = expect_status(verify_from("2001:db8:1:2:ffff:1:2:3", k["secret"]), 200)
    assert d["code"] == "too_many_requests", d
    # another /64, and an IPv4 client, are not
    assert expect_status(verify_from("2001:db8:1:3::1", k["secret"]), 200)["valid"]
    assert expect_status(verify_from("203.0.113.4", k["secret"]), 200)["valid"]


def test_logins_from_one_ipv6_64_share_the_address_limit(make_server):
    srv = make_server(config={"login_rate_limit": "2/60", "trusted_proxies": "127.0.0.1"})
    for i in range(2):
        r = srv.login(new_email("nobody"), new_password(),
                      headers={"X-Real-IP": f"2001:db8:9:9::{i + 1:x}"})
        assert_error(r, 401, "invalid_credentials")
    r = srv.login(new_email("nobody"), new_password(),
                  headers={"X-Real-IP": "2001:db8:9:9:abcd::77"})
    assert_error(r, 429, "too_many_requests")


# -- cross-site requests riding the session cookie ------------------------------------------

SIMPLE_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x",
                None]


@pytest.mark.parametrize("ctype", SIMPLE_TYPES)
def test_cookie_cannot_sign_a_cross_site_form_post(server, ws, ctype):
    """A page on a sibling subdomain is "same site": SameSite=Strict still sends the
    cookie with its form posts and no-cors fetches, which can only carry these
    content types. Such a post must not top up credits, regenerate a key or invite."""
    s = ws.new_session("owner")
    k = ws.create_key()
    h = {} if ctype is None else {"Content-Type": ctype}
    jar = {"lk_session": s.cookie}
    for path, body in [("/v1/credits", b'{"amount": 5}'),
                       (f"/v1/keys/{k['id']}/regenerate", b'{"grace_period_s": 0}'),
                       (f"/v1/keys/{k['id']}/regenerate", b""),
                       ("/v1/members", b'{"email": "x@evil.test", "role": "owner"}'),
                       ("/v1/keys", b'{"name": "csrf"}')]:
        r = requests.post(server.url(path), data=body, headers=h, cookies=jar,
                          timeout=HTTP_TIMEOUT)
        assert_error(r, 400, "invalid_request")
    assert expect_status(server.get("/v1/credits", key=ws.root_key), 200)["balance"] == 0
    expect_status(server.auth_context(k["secret"]), 200)
    assert not expect_status(server.get("/v1/invitations", key=ws.root_key), 200)["data"]


def test_cookie_with_a_json_post_still_works(server, ws):
    s = ws.new_session("owner")
    r = requests.post(server.url("/v1/credits"), json={"amount": 5},
                      cookies={"lk_session": s.cookie}, timeout=HTTP_TIMEOUT)
    expect_status(r, 201)
    r = requests.post(server.url("/v1/credits"), data=b'{"amount": 5}',
                      headers={"Content-Type": "Application/JSON; charset=utf-8"},
                      cookies={"lk_session": s.cookie}, timeout=HTTP_TIMEOUT)
    expect_status(r, 201)
    # a bearer credential is no browser's: any content type
    r = requests.post(server.url("/v1/credits"), data=b'{"amount": 5}',
                      headers={"Content-Type": "text/plain",
                               "Authorization": f"Bearer {s.token}"}, timeout=HTTP_TIMEOUT)
    expect_status(r, 201)
    # logging out by cookie needs no body
    r = requests.post(server.url("/v1/auth/logout"), cookies={"lk_session": s.cookie},
                      timeout=HTTP_TIMEOUT)
    expect_status(r, 204)


# -- password guessing through invitations --------------------------------------------------

def test_accepting_invitations_is_held_to_the_per_address_sign_in_limit(make_server):
    """An inviter holds the tokens of the invitations they make, for any emails
    they like: accepting one for a known user is a password guess for that user.
    Spread over many users it must still meet the limit of 20 failed sign-ins per
    address, as /v1/auth/login does, not 5 per user without end."""
    srv = make_server(config={"failed_key_limit": "none"})
    victims = srv.create_workspace()
    users = [victims.new_user("viewer") for _ in range(5)]
    attacker = srv.create_workspace()
    codes = []
    for u in users:
        for _ in range(5):
            inv = attacker.invite(u.email, "viewer")
            r = srv.post("/v1/invitations/accept",
                         json={"token": inv["token"], "password": new_password()})
            codes.append(r.status_code)
    assert codes[:20] == [401] * 20, codes
    assert set(codes[20:]) == {429}, codes
    # sign-in from that address is held back as well
    r = srv.login(users[0].email, users[0].password)
    assert_error(r, 429, "too_many_requests")


def test_head_is_judged_as_the_get_the_backend_runs(fa_server):
    """Web frameworks (Express, Go's ServeMux, Rails, Django) answer HEAD with the GET
    handler: a key that may not GET must not HEAD, and fall through to a looser
    rule."""
    w = fa_server.create_workspace()
    weak = w.create_key(permissions=["other:read"])["secret"]
    reader = w.create_key(permissions=["content:read"])["secret"]
    assert_error(fa(fa_server, "/content/x", "GET", key=weak), 403, "insufficient_permissions")
    assert_error(fa(fa_server, "/content/x", "HEAD", key=weak), 403, "insufficient_permissions")
    expect_pass(fa(fa_server, "/content/x", "HEAD", key=reader))
    expect_pass(fa(fa_server, "/public/x", "HEAD"))
    # other methods keep their own rules
    expect_pass(fa(fa_server, "/content/x", "OPTIONS", key=weak))
    assert_error(fa(fa_server, "/content/x", "POST", key=reader), 403, "insufficient_permissions")


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "X-HTTP-Method",
                                    "X-Method-Override"])
def test_a_method_override_header_cannot_change_the_judged_method(fa_server, header):
    """Express's method-override, Symfony, Laravel, ASP.NET and others serve a POST
    carrying X-HTTP-Method-Override: DELETE as a DELETE."""
    w = fa_server.create_workspace()
    writer = w.create_key(permissions=["content:write"])["secret"]
    h = {"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/content/x",
         "Authorization": f"Bearer {writer}", header: "DELETE"}
    r = requests.get(fa_server.url("/v1/forward-auth"), headers=h, timeout=HTTP_TIMEOUT)
    assert_error(r, 403, "insufficient_permissions")
    # naming the method the request has is no override
    h[header] = "post"
    expect_pass(requests.get(fa_server.url("/v1/forward-auth"), headers=h, timeout=HTTP_TIMEOUT))


def test_an_invitation_cannot_demote_a_member_its_inviter_could_not(server, ws):
    """PATCH /v1/members needs every permission of the member's old role; an
    invitation for the member's email with a lower role must not get around
    that by asking the member to accept."""
    narrow = ws.create_key(kind="root", permissions=["*:read", "members:write"])["secret"]
    ws.new_user("owner")  # so the last-owner rule is not what stops it
    target = ws.new_user("owner")
    r = server.patch(f"/v1/members/{target.id}", key=narrow, json={"role": "viewer"})
    assert_error(r, 403, "insufficient_permissions")
    inv = ws.invite(target.email, "viewer", key=narrow)
    r = server.post("/v1/invitations/accept",
                    json={"token": inv["token"], "password": target.password})
    assert_error(r, 403, "insufficient_permissions")
    roles = {m["user_id"]: m["role"] for m in ws.list_members()["data"]}
    assert roles[target.id] == "owner"
    # a new person it invites joins as before
    doc = server.accept(ws.invite(new_email("new"), "viewer", key=narrow)["token"],
                        new_password())
    assert doc["role"] == "viewer"
