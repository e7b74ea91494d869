"""People: users, members and sessions (docs/http-api.md, "People").

Every login failure here counts toward the per-address throttle (20 in 15 minutes),
and this module shares one server: keep the failed logins in this file few.
"""

import time

import pytest
import requests

from lkhelpers import (HTTP_TIMEOUT, INVITE_ID_RE, INVITE_TOKEN_RE, SESSION_TOKEN_RE,
                       USER_ID_RE, assert_error,
                       assert_error_shape, describe, expect_status, new_email,
                       new_password, parse_time)

MEMBER_FIELDS = ("user_id", "email", "role", "created_at")


def cookie_get(server, path, cookie, **kw):
    """A request authenticated by the lk_session cookie only."""
    return requests.get(server.url(path), cookies={"lk_session": cookie},
                        timeout=HTTP_TIMEOUT, **kw)


def set_cookie_header(resp):
    """The raw Set-Cookie header that sets lk_session."""
    raw = resp.raw.headers.getlist("Set-Cookie") if hasattr(resp.raw, "headers") else []
    if not raw and "Set-Cookie" in resp.headers:
        raw = [resp.headers["Set-Cookie"]]
    for h in raw:
        if h.strip().startswith("lk_session="):
            return h
    raise AssertionError(f"no Set-Cookie for lk_session: {raw!r}; {describe(resp)}")


# -- login ---------------------------------------------------------------------------

def test_login_answer(server, ws):
    u = ws.new_user("editor")
    t0 = time.time()
    r = server.login(u.email, u.password)
    doc = expect_status(r, 200)
    assert SESSION_TOKEN_RE.match(doc.get("token") or ""), describe(r)
    assert doc["user"]["email"] == u.email and doc["user"]["id"] == u.id, describe(r)
    assert USER_ID_RE.match(doc["user"]["id"]), describe(r)
    assert doc["memberships"] == [{"workspace_id": ws.id, "role": "editor"}], describe(r)
    # sessions last 12 hours
    exp = parse_time(doc["expires_at"])
    assert abs(exp - (t0 + 12 * 3600)) < 60, f"expires_at {doc['expires_at']}: {describe(r)}"
    assert u.password not in r.text


def test_login_sets_an_httponly_strict_cookie(server, ws):
    u = ws.new_user("viewer")
    r = server.login(u.email, u.password)
    expect_status(r, 200)
    header = set_cookie_header(r)
    attrs = [a.strip().lower() for a in header.split(";")]
    value = header.split(";", 1)[0].split("=", 1)[1]
    assert value, header
    assert "httponly" in attrs, header
    assert "samesite=strict" in attrs, header
    assert "path=/" in attrs, header
    assert "secure" not in attrs, f"Secure on plain http: {header}"
    assert u.password not in header


@pytest.mark.parametrize("which", ["password", "email", "both"])
def test_login_wrong_credentials(server, ws, which):
    u = ws.new_user("owner")
    email = u.email if which == "password" else new_email("nobody")
    password = u.password if which == "email" else new_password()
    r = server.login(email, password)
    assert_error(r, 401, "invalid_credentials")
    assert "lk_session" not in r.headers.get("Set-Cookie", ""), describe(r)
    assert u.password not in r.text and password not in r.text
    # the right password still works afterwards
    expect_status(server.login(u.email, u.password), 200)


def test_login_does_not_tell_which_part_was_wrong(server, ws):
    u = ws.new_user("viewer")
    a = assert_error(server.login(u.email, new_password()), 401, "invalid_credentials")
    b = assert_error(server.login(new_email("ghost"), new_password()), 401,
                     "invalid_credentials")
    assert a["message"] == b["message"], (a, b)


@pytest.mark.parametrize("body", [
    {},
    {"email": "a@example.test"},
    {"password": "whatever-long"},
    {"email": 7, "password": "whatever-long"},
    {"email": "a@example.test", "password": ["x"]},
])
def test_login_bad_body_is_400(server, body):
    r = server.post("/v1/auth/login", json=body)
    assert_error_shape(r, (400,))


def test_login_bad_json_is_400(server):
    r = server.post("/v1/auth/login", data=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")


# -- the session as a credential ---------------------------------------------------------

def test_token_as_bearer(server, ws):
    s = ws.new_session("editor")
    k = ws.create_key(name="seen-by-session")
    r = server.get("/v1/keys", key=s.token)
    ids = {x["id"] for x in expect_status(r, 200)["data"]}
    assert k["id"] in ids, describe(r)
    me = expect_status(server.get("/v1/me", key=s.token), 200)
    assert me["user"]["id"] == s.user.id


def test_token_as_cookie(server, ws):
    s = ws.new_session("viewer")
    assert s.cookie, f"login set no lk_session cookie: {s.resp.headers!r}"
    k = ws.create_key(name="seen-by-cookie")
    r = cookie_get(server, "/v1/keys", s.cookie)
    ids = {x["id"] for x in expect_status(r, 200)["data"]}
    assert k["id"] in ids, describe(r)
    me = expect_status(cookie_get(server, "/v1/me", s.cookie), 200)
    assert me["user"]["email"] == s.user.email


def test_me(server, ws, ws2):
    u = ws.new_user("owner")
    ws2.add_member(u.email, "viewer")
    t0 = time.time()
    s = server.session(u.email, u.password)
    r = server.get("/v1/me", key=s.token)
    doc = expect_status(r, 200)
    assert doc["user"]["id"] == u.id and doc["user"]["email"] == u.email, describe(r)
    got = sorted((m["workspace_id"], m["role"]) for m in doc["memberships"])
    assert got == sorted([(ws.id, "owner"), (ws2.id, "viewer")]), describe(r)
    assert abs(parse_time(doc["expires_at"]) - (t0 + 12 * 3600)) < 60, describe(r)
    assert s.token not in r.text and u.password not in r.text


def test_me_needs_a_session(server, ws):
    assert_error(server.get("/v1/me"), 401, "missing_key")
    r = server.get("/v1/me", key=ws.root_key)
    assert_error_shape(r, (401, 403))


@pytest.mark.parametrize("cred", ["garbage", "lk_live_abc", "lks_"])
def test_me_with_a_bad_credential_is_401(server, cred):
    """A credential that is neither a session nor a valid key is a 401, not a 403."""
    assert_error_shape(server.get("/v1/me", key=cred), (401,))
    assert_error_shape(server.post("/v1/auth/logout", key=cred), (401,))


@pytest.mark.parametrize("token", ["lks_nosuchsession", "lks_" + "A" * 43, "lks_"])
def test_unknown_session_token_is_401(server, token):
    r = server.get("/v1/me", key=token)
    assert_error_shape(r, (401,))
    r = server.get("/v1/keys", key=token)
    assert_error_shape(r, (401,))
    r = requests.get(server.url("/v1/keys"), cookies={"lk_session": token},
                     timeout=HTTP_TIMEOUT)
    assert_error_shape(r, (401,))


@pytest.mark.parametrize("via", ["bearer", "cookie"])
def test_logout_ends_token_and_cookie_at_once(server, ws, via):
    s = ws.new_session("editor")
    assert s.cookie, f"login set no lk_session cookie: {s.resp.headers!r}"
    expect_status(server.get("/v1/me", key=s.token), 200)
    expect_status(cookie_get(server, "/v1/me", s.cookie), 200)
    if via == "bearer":
        r = server.post("/v1/auth/logout", key=s.token)
    else:
        r = requests.post(server.url("/v1/auth/logout"), cookies={"lk_session": s.cookie},
                          timeout=HTTP_TIMEOUT)
    assert r.status_code == 204, describe(r)
    for resp in (server.get("/v1/me", key=s.token), cookie_get(server, "/v1/me", s.cookie),
                 server.get("/v1/keys", key=s.token),
                 cookie_get(server, "/v1/keys", s.cookie)):
        assert_error_shape(resp, (401,))
    # a second session of the same user is untouched
    again = server.session(s.user.email, s.user.password)
    expect_status(server.get("/v1/me", key=again.token), 200)


def test_logout_of_one_session_leaves_the_other(server, ws):
    u = ws.new_user("viewer")
    a = server.session(u.email, u.password)
    b = server.session(u.email, u.password)
    assert a.token != b.token
    assert server.post("/v1/auth/logout", key=a.token).status_code == 204
    assert_error_shape(server.get("/v1/me", key=a.token), (401,))
    expect_status(server.get("/v1/me", key=b.token), 200)


def test_logout_needs_a_session(server, ws):
    assert_error(server.post("/v1/auth/logout"), 401, "missing_key")
    r = server.post("/v1/auth/logout", key="lks_nosuchsession")
    assert_error_shape(r, (401,))


# -- members ----------------------------------------------------------------------------

INVITATION_FIELDS = ("id", "workspace_id", "email", "role", "invited_by", "created_at",
                     "expires_at")
SEVEN_DAYS = 7 * 86400


def test_invite_accept_change_remove_by_root_key(server, ws):
    email, pw = new_email("m"), new_password()
    t0 = time.time()
    r = server.post("/v1/members", key=ws.root_key, json={"email": email, "role": "viewer"})
    inv = expect_status(r, 201)
    for f in INVITATION_FIELDS + ("token",):
        assert f in inv, f"invitation lacks {f!r}: {describe(r)}"
    assert INVITE_ID_RE.match(inv["id"]) and INVITE_TOKEN_RE.match(inv["token"]), describe(r)
    assert inv["email"] == email and inv["role"] == "viewer" and inv["workspace_id"] == ws.id
    assert abs(parse_time(inv["expires_at"]) - (t0 + SEVEN_DAYS)) < 60, describe(r)
    # nobody has joined, nobody can sign in yet
    assert email not in {m["email"] for m in ws.list_members()["data"]}
    assert_error(server.login(email, pw), 401, "invalid_credentials")
    pending = expect_status(server.get("/v1/invitations", key=ws.root_key), 200)["data"]
    mine = [i for i in pending if i["id"] == inv["id"]]
    assert len(mine) == 1 and "token" not in mine[0] and inv["token"] not in str(pending)

    r = server.post("/v1/invitations/accept", json={"token": inv["token"], "password": pw})
    doc = expect_status(r, 200)
    for f in MEMBER_FIELDS:
        assert f in doc, f"accept answer lacks {f!r}: {describe(r)}"
    assert USER_ID_RE.match(doc["user_id"]) and doc["email"] == email
    assert doc["role"] == "viewer" and doc["workspace_id"] == ws.id
    assert pw not in r.text and inv["token"] not in r.text
    listed = {m["user_id"]: m for m in ws.list_members()["data"]}
    assert listed[doc["user_id"]]["role"] == "viewer"
    for m in listed.values():
        for f in MEMBER_FIELDS:
            assert f in m, m
    pending = expect_status(server.get("/v1/invitations", key=ws.root_key), 200)["data"]
    assert inv["id"] not in {i["id"] for i in pending}

    # change the role
    r = server.patch(f"/v1/members/{doc['user_id']}", key=ws.root_key, json={"role": "editor"})
    doc2 = expect_status(r, 200)
    assert doc2["user_id"] == doc["user_id"] and doc2["role"] == "editor", describe(r)
    s = server.session(email, pw)
    assert s.doc["memberships"] == [{"workspace_id": ws.id, "role": "editor"}]

    # remove
    r = server.delete(f"/v1/members/{doc['user_id']}", key=ws.root_key)
    assert r.status_code == 204, describe(r)
    assert doc["user_id"] not in {m["user_id"] for m in ws.list_members()["data"]}


def test_invite_answers_alike_for_known_and_unknown_emails(server, ws, ws2):
    """Inviting tells nothing about whether the email has a user, and joins nobody."""
    known = ws2.new_user("editor", tag="known")
    unknown = new_email("unknown")
    a = server.post("/v1/members", key=ws.root_key, json={"email": known.email, "role": "owner"})
    b = server.post("/v1/members", key=ws.root_key, json={"email": unknown, "role": "owner"})
    da, db = expect_status(a, 201), expect_status(b, 201)
    assert sorted(da) == sorted(db), (describe(a), describe(b))
    for k in da:
        assert type(da[k]) is type(db[k]), k
    assert (da["role"], da["workspace_id"]) == (db["role"], db["workspace_id"])
    assert da["invited_by"] == db["invited_by"]
    assert sorted(a.headers) == sorted(b.headers)
    assert known.id not in a.text
    # the known user is not in ws, and their sign-in shows no new membership
    emails = {m["email"] for m in ws.list_members()["data"]}
    assert known.email not in emails and unknown not in emails
    s = server.session(known.email, known.password)
    assert s.doc["memberships"] == [{"workspace_id": ws2.id, "role": "editor"}]


def test_known_user_accepts_with_their_own_password(server, ws, ws2):
    u = ws2.new_user("viewer", tag="proves")
    inv = ws.invite(u.email, "editor")
    chosen = "chosen-by-the-inviter"
    r = server.post("/v1/invitations/accept", json={"token": inv["token"], "password": chosen})
    assert_error(r, 401, "invalid_credentials")
    assert u.email not in {m["email"] for m in ws.list_members()["data"]}
    assert_error(server.login(u.email, chosen), 401, "invalid_credentials")
    # the invitation is still good for the real person
    doc = server.accept(inv["token"], u.password)
    assert doc["user_id"] == u.id and doc["role"] == "editor"
    s = server.session(u.email, u.password)
    got = sorted((m["workspace_id"], m["role"]) for m in s.doc["memberships"])
    assert got == sorted([(ws.id, "editor"), (ws2.id, "viewer")])


def test_an_invitation_works_once(server, ws):
    inv = ws.invite(new_email("once"), "viewer")
    pw = new_password()
    server.accept(inv["token"], pw)
    used = server.post("/v1/invitations/accept", json={"token": inv["token"], "password": pw})
    err = assert_error(used, 400, "invalid_invitation")
    unknown = server.post("/v1/invitations/accept",
                          json={"token": "lki_" + "A" * 43, "password": pw})
    err2 = assert_error(unknown, 400, "invalid_invitation")
    assert err["message"] == err2["message"], "used and unknown tokens must answer alike"
    garbage = server.post("/v1/invitations/accept", json={"token": "x", "password": pw})
    assert_error(garbage, 400, "invalid_invitation")


def test_concurrent_accepts_join_once(server, ws):
    from concurrent.futures import ThreadPoolExecutor

    inv = ws.invite(new_email("race"), "viewer")
    pws = [new_password() for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda pw: server.post(
            "/v1/invitations/accept", json={"token": inv["token"], "password": pw}), pws))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 400, 400, 400], codes
    winner = pws[[r.status_code for r in answers].index(200)]
    expect_status(server.login(inv["email"], winner), 200)
    assert [m["email"] for m in ws.list_members()["data"]].count(inv["email"]) == 1


def test_invitations_expire_after_seven_days(clock_server):
    srv = clock_server
    w = srv.create_workspace()
    early, late = w.invite(new_email("early"), "viewer"), w.invite(new_email("late"), "viewer")
    srv.advance_clock(SEVEN_DAYS - 120)
    srv.accept(early["token"], new_password())
    srv.advance_clock(240)
    r = srv.post("/v1/invitations/accept", json={"token": late["token"],
                                                 "password": new_password()})
    assert_error(r, 400, "invalid_invitation")
    assert late["email"] not in {m["email"] for m in w.list_members()["data"]}
    pending = expect_status(srv.get("/v1/invitations", key=w.root_key), 200)["data"]
    assert late["id"] not in {i["id"] for i in pending}


def test_revoked_invitation_cannot_be_accepted(server, ws, ws2):
    inv = ws.invite(new_email("revoked"), "viewer")
    # not from another workspace
    assert_error(server.delete(f"/v1/invitations/{inv['id']}", key=ws2.root_key), 404,
                 "not_found")
    assert server.delete(f"/v1/invitations/{inv['id']}", key=ws.root_key).status_code == 204
    assert_error(server.delete(f"/v1/invitations/{inv['id']}", key=ws.root_key), 404,
                 "not_found")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                    "password": new_password()})
    assert_error(r, 400, "invalid_invitation")
    assert inv["email"] not in {m["email"] for m in ws.list_members()["data"]}


def test_invitations_of_another_workspace_are_invisible(server, ws, ws2):
    inv = ws.invite(new_email("hidden"), "viewer")
    r = server.get("/v1/invitations", key=ws2.root_key)
    assert inv["id"] not in r.text and inv["email"] not in expect_status(r, 200).__repr__()


def test_first_person_of_a_workspace(server):
    """A new workspace's root key invites its first owner, who then runs it."""
    w = server.create_workspace()
    email, pw = new_email("first"), new_password()
    doc = server.accept(w.invite(email, "owner")["token"], pw)
    s = server.session(email, pw)
    assert s.doc["memberships"] == [{"workspace_id": w.id, "role": "owner"}]
    inv = w.invite(new_email("second"), "editor", key=s.token)
    assert inv["invited_by"] == doc["user_id"]
    expect_status(server.post("/v1/keys", key=s.token, json={"name": "by-first"}), 201)


def test_a_password_in_an_invitation_is_refused(server, ws):
    email = new_email("withpw")
    r = server.post("/v1/members", key=ws.root_key,
                    json={"email": email, "role": "viewer", "password": "chosen-by-inviter"})
    assert_error(r, 400, "invalid_request", field="password")
    assert_error(server.login(email, "chosen-by-inviter"), 401, "invalid_credentials")


def test_accepting_an_invitation_is_audited_without_the_token(server, ws):
    inv = ws.invite(new_email("audited"), "viewer")
    doc = server.accept(inv["token"], new_password())
    r = server.get("/v1/audit", key=ws.root_key, params={"limit": 100})
    events = expect_status(r, 200)["data"]
    created = [e for e in events if e["action"] == "invitation.create"
               and e["target"] == inv["id"]]
    accepted = [e for e in events if e["action"] == "invitation.accept"
                and e["target"] == inv["id"]]
    assert len(created) == 1 and len(accepted) == 1, events[:5]
    assert accepted[0]["actor"] == doc["user_id"]
    assert inv["token"] not in r.text and inv["token"][4:] not in r.text


def test_invitation_token_not_stored_in_clear(server, ws):
    inv = ws.invite(new_email("stored"), "viewer")
    body = inv["token"][4:].encode()
    found = [f.name for f in sorted(server.dir.iterdir())
             if f.is_file() and body in f.read_bytes()]
    assert not found, f"the invitation token is in plain text in {found}"


def test_accepting_into_a_lower_role_keeps_the_last_owner(server):
    w = server.create_workspace()
    owner = w.new_user("owner")
    inv = w.invite(owner.email, "viewer")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                    "password": owner.password})
    assert_error(r, 409, "conflict")
    roles = {m["user_id"]: m["role"] for m in w.list_members()["data"]}
    assert roles[owner.id] == "owner"


@pytest.mark.parametrize("body,field", [
    ({"password": "long-enough-pw"}, "token"),
    ({"token": 5, "password": "long-enough-pw"}, "token"),
    ({"token": "lki_x"}, "password"),
    ({"token": "lki_x", "password": 12345678}, "password"),
    ({"token": "lki_x", "password": "long-enough-pw", "email": "x@example.test"}, "email"),
])
def test_accept_rejects_bad_input(server, body, field):
    r = server.post("/v1/invitations/accept", json=body)
    assert_error(r, 400, "invalid_request", field=field)


def test_patch_member_rejects_bad_input(server, ws):
    u = ws.new_user("viewer")
    for body, field in (({"role": "admin"}, "role"), ({}, "role"),
                        ({"role": "editor", "email": "x@example.test"}, "email")):
        r = server.patch(f"/v1/members/{u.id}", key=ws.root_key, json=body)
        assert_error(r, 400, "invalid_request", field=field)
    r = server.patch("/v1/members/usr_nobody", key=ws.root_key, json={"role": "editor"})
    assert_error(r, 404, "not_found")


def test_removed_member_loses_access_at_once(server, ws):
    s = ws.new_session("editor")
    expect_status(server.get("/v1/keys", key=s.token), 200)
    assert server.delete(f"/v1/members/{s.user.id}", key=ws.root_key).status_code == 204
    r = server.get("/v1/keys", key=s.token)
    assert_error_shape(r, (401, 403, 404))
    r = server.post("/v1/keys", key=s.token, json={"name": "after-removal"})
    assert_error_shape(r, (401, 403, 404))
    assert "after-removal" not in {k["name"] for k in ws.list_keys()["data"]}


def test_owner_session_manages_members(server, ws):
    owner = ws.new_session("owner")
    email = new_email("by-owner")
    doc = ws.add_member(email, "viewer", key=owner.token)
    assert doc["invitation"]["invited_by"] == owner.user.id
    r = server.patch(f"/v1/members/{doc['user_id']}", key=owner.token, json={"role": "owner"})
    assert expect_status(r, 200)["role"] == "owner"
    r = server.delete(f"/v1/members/{doc['user_id']}", key=owner.token)
    assert r.status_code == 204, describe(r)
    assert doc["user_id"] not in {m["user_id"] for m in ws.list_members()["data"]}


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editor_and_viewer_cannot_change_members(server, ws, role):
    s = ws.new_session(role)
    other = ws.new_user("viewer")
    before = ws.list_members()["data"]
    r = server.post("/v1/members", key=s.token,
                    json={"email": new_email("nope"), "role": "viewer"})
    assert_error(r, 403, "insufficient_permissions")
    r = server.post("/v1/members", key=s.token, json={"email": other.email, "role": "owner"})
    assert_error(r, 403, "insufficient_permissions")
    r = server.patch(f"/v1/members/{s.user.id}", key=s.token, json={"role": "owner"})
    assert_error(r, 403, "insufficient_permissions")
    r = server.get("/v1/invitations", key=s.token)
    expect_status(r, 200)
    r = server.delete(f"/v1/members/{other.id}", key=s.token)
    assert_error(r, 403, "insufficient_permissions")
    assert ws.list_members()["data"] == before
    # but they may read
    r = server.get("/v1/members", key=s.token)
    assert other.id in {m["user_id"] for m in expect_status(r, 200)["data"]}


def test_last_owner_cannot_be_removed(server, ws):
    owner = ws.new_session("owner")
    r = server.delete(f"/v1/members/{owner.user.id}", key=ws.root_key)
    assert_error(r, 409, "conflict")
    r = server.delete(f"/v1/members/{owner.user.id}", key=owner.token)
    assert_error(r, 409, "conflict")
    roles = {m["user_id"]: m["role"] for m in ws.list_members()["data"]}
    assert roles.get(owner.user.id) == "owner"
    # with a second owner, the first may go
    second = ws.new_user("owner")
    r = server.delete(f"/v1/members/{owner.user.id}", key=ws.root_key)
    assert r.status_code == 204, describe(r)
    r = server.delete(f"/v1/members/{second.id}", key=ws.root_key)
    assert_error(r, 409, "conflict")


def test_remove_unknown_member_is_404(server, ws):
    r = server.delete("/v1/members/usr_doesnotexist000", key=ws.root_key)
    assert_error(r, 404, "not_found")


@pytest.mark.parametrize("length,ok", [(7, False), (8, True), (200, True), (201, False),
                                       (0, False)])
def test_password_length(server, ws, length, ok):
    email = new_email("len")
    pw = ("p" * length)
    inv = ws.invite(email, "viewer")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"], "password": pw})
    if ok:
        expect_status(r, 200)
        expect_status(server.login(email, pw), 200)
    else:
        assert_error(r, 400, "invalid_request", field="password")
        assert email not in {m["email"] for m in ws.list_members()["data"]}


@pytest.mark.parametrize("pw,ok", [("\u00e9" * 7, True), ("\u00e9" * 100, True),
                                   ("\u00e9" * 101, False), ("\u00e9" * 3 + "x", False)])
def test_password_length_is_in_bytes(server, ws, pw, ok):
    """8–200 bytes of UTF-8: seven two-byte characters are enough, 101 are too many."""
    email = new_email("utf8")
    inv = ws.invite(email, "viewer")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"], "password": pw})
    if ok:
        expect_status(r, 200)
        expect_status(server.login(email, pw), 200)
    else:
        assert_error(r, 400, "invalid_request", field="password")


def test_last_owner_cannot_be_demoted(server, ws):
    """Demoting the only owner leaves the workspace without one, like removing it."""
    owner = ws.new_user("owner")
    r = server.patch(f"/v1/members/{owner.id}", key=ws.root_key, json={"role": "editor"})
    assert_error(r, 409, "conflict")
    roles = {m["user_id"]: m["role"] for m in ws.list_members()["data"]}
    assert roles[owner.id] == "owner"


def test_huge_password_at_login_is_refused_cleanly(server, ws):
    u = ws.new_user("viewer")
    r = server.login(u.email, "x" * 60000)
    assert_error_shape(r, (400, 401, 413))
    expect_status(server.login(u.email, u.password), 200)


@pytest.mark.parametrize("body,field", [
    ({"role": "viewer"}, "email"),
    ({"email": 5, "role": "viewer"}, "email"),
    ({"email": "not-an-email", "role": "viewer"}, "email"),
    ({"email": "x@example.test"}, "role"),
    ({"email": "x@example.test", "role": "admin"}, "role"),
    ({"email": "x@example.test", "role": "viewer", "password": "long-enough-pw"}, "password"),
    ({"email": "x@example.test", "role": "viewer", "is_admin": True}, "is_admin"),
])
def test_invite_rejects_bad_input(server, ws, body, field):
    r = server.post("/v1/members", key=ws.root_key, json=body)
    assert_error(r, 400, "invalid_request", field=field)


def test_inviting_an_existing_user_elsewhere_changes_nothing_of_theirs(server, ws, ws2):
    u = ws.new_user("owner")
    inv = ws2.invite(u.email, "viewer")
    assert "user_id" not in inv and u.id not in str(inv)
    assert_error(server.login(u.email, "attacker-pw-1"), 401, "invalid_credentials")
    expect_status(server.login(u.email, u.password), 200)
    assert u.email not in {m["email"] for m in ws2.list_members()["data"]}


def test_existing_user_joins_by_accepting(server, ws, ws2):
    u = ws.new_user("editor")
    doc = ws2.add_member(u.email, "viewer")
    assert doc["user_id"] == u.id and doc["role"] == "viewer"
    s = server.session(u.email, u.password)
    got = sorted((m["workspace_id"], m["role"]) for m in s.doc["memberships"])
    assert got == sorted([(ws.id, "editor"), (ws2.id, "viewer")])


def test_members_of_another_workspace_are_invisible(server, ws, ws2):
    a = ws.new_user("viewer")
    b = ws2.new_user("viewer")
    ids = {m["user_id"] for m in ws.list_members()["data"]}
    assert a.id in ids and b.id not in ids
    r = server.get("/v1/members", key=ws.root_key)
    assert b.email not in r.text
    assert_error(server.delete(f"/v1/members/{b.id}", key=ws.root_key), 404, "not_found")
    assert b.id in {m["user_id"] for m in ws2.list_members()["data"]}


# -- several workspaces ----------------------------------------------------------------

@pytest.fixture
def two_ws_user(server, ws, ws2):
    u = ws.new_user("owner")
    ws2.add_member(u.email, "editor")
    s = server.session(u.email, u.password)
    ka = ws.create_key(name="in-a")
    kb = ws2.create_key(name="in-b")
    return s, ka, kb


def test_two_workspaces_must_name_one(server, ws, ws2, two_ws_user):
    s, ka, kb = two_ws_user
    r = server.get("/v1/keys", key=s.token)
    assert_error_shape(r, range(400, 500))
    assert ka["id"] not in r.text and kb["id"] not in r.text
    r = server.post("/v1/keys", key=s.token, json={"name": "unnamed-ws"})
    assert_error_shape(r, range(400, 500))


def test_two_workspaces_by_header(server, ws, ws2, two_ws_user):
    s, ka, kb = two_ws_user
    r = server.get("/v1/keys", headers=s.headers(ws.id))
    ids = {k["id"] for k in expect_status(r, 200)["data"]}
    assert ka["id"] in ids and kb["id"] not in ids
    r = server.get("/v1/keys", headers=s.headers(ws2.id))
    ids = {k["id"] for k in expect_status(r, 200)["data"]}
    assert kb["id"] in ids and ka["id"] not in ids
    r = server.post("/v1/keys", headers=s.headers(ws2.id), json={"name": "made-in-b"})
    assert expect_status(r, 201)["workspace_id"] == ws2.id


def test_two_workspaces_by_query(server, ws, ws2, two_ws_user):
    s, ka, kb = two_ws_user
    r = server.get("/v1/keys", key=s.token, params={"workspace_id": ws2.id})
    ids = {k["id"] for k in expect_status(r, 200)["data"]}
    assert kb["id"] in ids and ka["id"] not in ids
    r = server.get(f"/v1/keys/{ka['id']}", key=s.token, params={"workspace_id": ws.id})
    assert expect_status(r, 200)["id"] == ka["id"]
    # A's key named through B is not there
    r = server.get(f"/v1/keys/{ka['id']}", key=s.token, params={"workspace_id": ws2.id})
    assert_error(r, 404, "not_found")


def test_naming_a_workspace_one_is_not_in_is_404(server, ws, ws2):
    s = ws.new_session("owner")
    kb = ws2.create_key(name="theirs")
    for kw in ({"headers": s.headers(ws2.id)},
               {"key": s.token, "params": {"workspace_id": ws2.id}}):
        r = server.get("/v1/keys", **kw)
        assert_error(r, 404, "not_found")
        assert kb["id"] not in r.text
        r = server.get("/v1/members", **kw)
        assert_error(r, 404, "not_found")
        r = server.post("/v1/keys", json={"name": "sneak"}, **kw)
        assert_error(r, 404, "not_found")
    r = server.get("/v1/keys", headers=s.headers("ws_doesnotexist00000"))
    assert_error(r, 404, "not_found")
    assert "sneak" not in {k["name"] for k in ws2.list_keys()["data"]}
    assert "sneak" not in {k["name"] for k in ws.list_keys()["data"]}


@pytest.mark.parametrize("how", ["header", "query"])
@pytest.mark.parametrize("name", ["ws_" + "x" * 200, "ws_" + "y" * 40, "nonsense", "ws_"],
                         ids=["ws_x200", "ws_y40", "nonsense", "ws_"])
def test_naming_an_odd_workspace_is_404(server, ws, name, how):
    """Whatever is named, however long, it is not a workspace of the user's: 404, and
    never the implied single workspace."""
    s = ws.new_session("owner")
    ws.create_key(name="not-for-odd-names")
    if how == "header":
        r = server.get("/v1/keys", headers=s.headers(name))
    else:
        r = server.get("/v1/keys", key=s.token, params={"workspace_id": name})
    assert_error(r, 404, "not_found")
    assert "not-for-odd-names" not in r.text


@pytest.mark.parametrize("role", ["owner", "editor"])
def test_sessions_cannot_obtain_a_root_key(server, ws, role):
    """A root key may manage members: a session (even an owner's) may not mint one,
    nor take over the workspace's own by regenerating, disabling or deleting it."""
    s = ws.new_session(role)
    r = server.post("/v1/keys", key=s.token, json={"name": "r", "kind": "root"})
    assert_error(r, 403, "insufficient_permissions")
    root_id = expect_status(server.auth_context(ws.root_key), 200)["key_id"]
    r = server.post(f"/v1/keys/{root_id}/regenerate", key=s.token, json={"grace_period_s": 60})
    assert_error(r, 403, "insufficient_permissions")
    r = server.patch(f"/v1/keys/{root_id}", key=s.token, json={"enabled": False})
    assert_error(r, 403, "insufficient_permissions")
    assert_error(server.delete(f"/v1/keys/{root_id}", key=s.token), 403,
                 "insufficient_permissions")
    assert expect_status(server.auth_context(ws.root_key), 200)["key_id"] == root_id


def test_single_membership_may_name_its_workspace(server, ws):
    s = ws.new_session("viewer")
    expect_status(server.get("/v1/keys", headers=s.headers(ws.id)), 200)
    expect_status(server.get("/v1/keys", key=s.token, params={"workspace_id": ws.id}), 200)


# -- the password is never shown or stored --------------------------------------------

def test_password_never_in_answers_audit_or_files(server, ws):
    pw = new_password()
    email = new_email("secretive")
    texts = []
    inv = ws.invite(email, "owner")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"], "password": pw})
    expect_status(r, 200)
    texts.append(r.text)
    r = server.login(email, pw)
    s_doc = expect_status(r, 200)
    texts.append(r.text)
    texts.append(str(r.headers))
    token = s_doc["token"]
    for path in ("/v1/me", "/v1/members", "/v1/audit"):
        r = server.get(path, key=token)
        expect_status(r, 200)
        texts.append(r.text)
    r = server.get("/v1/audit", key=ws.root_key, params={"limit": 100})
    expect_status(r, 200)
    texts.append(r.text)
    # a failed login with a near miss must not record what was typed either
    near = pw + "x"
    r = server.login(email, near)
    assert_error(r, 401, "invalid_credentials")
    texts.append(r.text)
    r = server.get("/v1/audit", key=ws.root_key, params={"limit": 100})
    expect_status(r, 200)
    texts.append(r.text)
    for t in texts:
        assert pw not in t and near not in t, t[:500]
        assert "$argon2" not in t, "a password hash in an answer"
    assert token not in texts[-1], "session token in the audit log"

    found = []
    stored = {"the database": server.database_bytes()}
    for f in sorted(server.dir.iterdir()):
        if f.name.startswith("serve."):
            stored[f.name] = f.read_bytes()
    for name, data in stored.items():
        if pw.encode() in data or near.encode() in data:
            found.append(name)
    assert not found, f"the password is in plain text in {found}"


def test_session_token_not_stored_in_clear(server, ws):
    s = ws.new_session("viewer")
    expect_status(server.get("/v1/me", key=s.token), 200)
    body = s.token[4:].encode()
    found = [f.name for f in sorted(server.dir.iterdir())
             if f.is_file() and body in f.read_bytes()]
    assert not found, f"the session token is in plain text in {found}"


# -- sessions and members outlive a restart ---------------------------------------------

def test_sessions_and_logouts_survive_kill9(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    kept = w.new_session("editor")
    gone = w.new_session("viewer")
    assert srv.post("/v1/auth/logout", key=gone.token).status_code == 204
    removed = w.new_session("viewer")
    assert srv.delete(f"/v1/members/{removed.user.id}", key=w.root_key).status_code == 204
    srv.kill9()
    srv.start()
    expect_status(srv.get("/v1/me", key=kept.token), 200)
    expect_status(srv.get("/v1/keys", key=kept.token), 200)
    assert_error_shape(srv.get("/v1/me", key=gone.token), (401,))
    assert_error_shape(srv.get("/v1/keys", key=removed.token), (401, 403, 404))
    expect_status(srv.login(kept.user.email, kept.user.password), 200)
    roles = {m["user_id"]: m["role"] for m in w.list_members()["data"]}
    assert roles.get(kept.user.id) == "editor" and removed.user.id not in roles


def test_role_change_takes_effect_at_once(server, ws):
    s = ws.new_session("editor")
    expect_status(server.post("/v1/keys", key=s.token, json={"name": "while-editor"}), 201)
    r = server.patch(f"/v1/members/{s.user.id}", key=ws.root_key, json={"role": "viewer"})
    expect_status(r, 200)
    r = server.post("/v1/keys", key=s.token, json={"name": "after-demotion"})
    assert_error(r, 403, "insufficient_permissions")
    expect_status(server.get("/v1/keys", key=s.token), 200)
    me = expect_status(server.get("/v1/me", key=s.token), 200)
    assert me["memberships"] == [{"workspace_id": ws.id, "role": "viewer"}], me


@pytest.mark.parametrize("how", ["remove", "demote", "mixed"])
def test_concurrent_changes_never_leave_no_owner(server, how):
    """Two owners removed (or demoted) at the same moment: one change may win, the
    other must get 409; the workspace keeps an owner."""
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(4):
        w = server.create_workspace()
        owners = [w.new_user("owner"), w.new_user("owner")]

        def change(i):
            u = owners[i]
            if how == "remove" or (how == "mixed" and i == 0):
                return server.delete(f"/v1/members/{u.id}", key=w.root_key)
            return server.patch(f"/v1/members/{u.id}", key=w.root_key,
                                json={"role": "viewer"})

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(change, range(2)))
        codes = sorted(r.status_code for r in answers)
        roles = [m["role"] for m in w.list_members()["data"]]
        assert roles.count("owner") >= 1, f"no owner left: {codes} {roles}"
        assert codes in ([200, 409], [204, 409]), codes


def test_session_token_is_not_an_api_key(server, ws):
    """A session drives management; it never passes as an API key at verification."""
    s = ws.new_session("owner")
    v = expect_status(server.verify({"key": s.token}), 200)
    assert v["valid"] is False and v["code"] in ("malformed_key", "invalid_key"), v
    assert_error_shape(server.auth_context(s.token), (401,))
    r = server.get("/api/auth-context", key=s.token)
    assert_error_shape(r, (401,))


# -- invitations, attacked ----------------------------------------------------------------

def test_invitation_token_is_no_credential(server, ws):
    inv = ws.invite(new_email("notakey"), "owner")
    for path in ("/v1/keys", "/v1/members", "/v1/me"):
        assert_error_shape(server.get(path, key=inv["token"]), (401,))
    v = expect_status(server.verify({"key": inv["token"]}), 200)
    assert v["valid"] is False, v
    # still good for its purpose
    server.accept(inv["token"], new_password())


def test_invitations_survive_kill9_and_stay_single_use(fresh_server):
    srv = fresh_server
    w = srv.create_workspace()
    kept, used = w.invite(new_email("kept"), "editor"), w.invite(new_email("used"), "viewer")
    srv.accept(used["token"], new_password())
    srv.kill9()
    srv.start()
    pw = new_password()
    doc = srv.accept(kept["token"], pw)
    assert doc["role"] == "editor" and doc["workspace_id"] == w.id
    expect_status(srv.login(kept["email"], pw), 200)
    r = srv.post("/v1/invitations/accept", json={"token": used["token"],
                                                 "password": new_password()})
    assert_error(r, 400, "invalid_invitation")


def test_guessing_tokens_is_throttled_per_address(make_server):
    srv = make_server(config={"failed_key_limit": "3/60"})
    w = srv.create_workspace()
    inv = w.invite(new_email("guessed"), "viewer")
    for _ in range(3):
        r = srv.post("/v1/invitations/accept", json={"token": "lki_" + new_password(),
                                                     "password": new_password()})
        assert_error(r, 400, "invalid_invitation")
    r = srv.post("/v1/invitations/accept", json={"token": inv["token"],
                                                 "password": new_password()})
    assert_error(r, 429, "too_many_requests")
    assert r.headers.get("Retry-After"), describe(r)
    # (the address is blocked for management calls too, so the check stops here)


def test_wrong_passwords_at_accept_count_as_failed_sign_ins(server, ws, ws2):
    """Accepting cannot be used to guess a known user's password past the sign-in limit."""
    u = ws2.new_user("viewer", tag="guarded")
    inv = ws.invite(u.email, "owner")
    codes = []
    for _ in range(6):
        r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                        "password": new_password()})
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and codes[5] == 429, codes
    r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                    "password": u.password})
    assert_error(r, 429, "too_many_requests")
    assert u.email not in {m["email"] for m in ws.list_members()["data"]}
