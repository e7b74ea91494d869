"""The audit log: GET /v1/audit (docs/http-api.md, "People")."""

import hashlib
import time

import pytest

from lkhelpers import (REQUEST_ID_RE, assert_error, describe, expect_status, http_from,
                       make_secret, new_email, new_password, parse_time)

EVENT_FIELDS = ("id", "actor", "action", "target", "address", "request_id", "created_at")


def audit_page(server, key, headers=None, **params):
    r = server.get("/v1/audit", key=key, params=params, headers=headers)
    doc = expect_status(r, 200)
    assert isinstance(doc.get("data"), list) and "next_cursor" in doc, describe(r)
    return doc, r


def all_events(server, key, max_pages=50):
    events, cursor = [], None
    for _ in range(max_pages):
        params = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        doc, _ = audit_page(server, key, **params)
        events.extend(doc["data"])
        cursor = doc["next_cursor"]
        if not cursor:
            return events
    raise AssertionError("audit paging did not end")


def by_request(events, rid):
    found = [e for e in events if e.get("request_id") == rid]
    return found


def rid_of(r):
    rid = r.headers.get("X-Request-Id")
    assert rid and REQUEST_ID_RE.match(rid), f"no X-Request-Id: {describe(r)}"
    return rid


def key_id_of(server, secret):
    return expect_status(server.auth_context(secret), 200)["key_id"]


def check_event(e, action, actor, target=None, address="127.0.0.1", t0=None):
    for f in EVENT_FIELDS:
        assert f in e, f"event lacks {f!r}: {e}"
    assert e["action"] == action, e
    assert e["actor"] == actor, f"actor {e['actor']!r}, expected {actor!r}: {e}"
    if target is not None:
        assert e["target"] == target, f"target {e['target']!r}, expected {target!r}: {e}"
    assert e["address"] == address, e
    assert REQUEST_ID_RE.match(e["request_id"]), e
    if t0 is not None:
        assert t0 - 2 <= parse_time(e["created_at"]) <= time.time() + 2, e


# -- one action, one event -----------------------------------------------------------

def _key_create(server, ws):
    r = server.post("/v1/keys", key=ws.root_key, json={"name": "audited"})
    return r, expect_status(r, 201)["id"], key_id_of(server, ws.root_key), ws.root_key


def _key_update(server, ws):
    k = ws.create_key()
    r = server.patch(f"/v1/keys/{k['id']}", key=ws.rw_key, json={"name": "renamed"})
    expect_status(r, 200)
    return r, k["id"], key_id_of(server, ws.rw_key), ws.root_key


def _key_revoke(server, ws):
    k = ws.create_key()
    r = server.delete(f"/v1/keys/{k['id']}", key=ws.root_key)
    assert r.status_code == 204, describe(r)
    return r, k["id"], key_id_of(server, ws.root_key), ws.root_key


def _key_regenerate(server, ws):
    k = ws.create_key()
    r = server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key, json={})
    expect_status(r, 200)
    return r, k["id"], key_id_of(server, ws.root_key), ws.root_key


def _key_import(server, ws):
    digest = hashlib.sha256(make_secret().encode()).hexdigest()
    r = server.post("/v1/keys", key=ws.root_key, json={"name": "imp", "sha256": digest})
    return r, expect_status(r, 201)["id"], key_id_of(server, ws.root_key), ws.root_key


def _key_generate_temp(server, ws):
    s = ws.new_session("editor")
    r = server.post("/v1/keys/generate-temp", key=s.token, json={"workspace_id": ws.id})
    return r, expect_status(r, 201)["id"], s.user.id, ws.root_key


def _key_create_by_session(server, ws):
    s = ws.new_session("owner")
    r = server.post("/v1/keys", key=s.token, json={"name": "by-user"})
    return r, expect_status(r, 201)["id"], s.user.id, ws.root_key


def _invitation_create(server, ws):
    r = server.post("/v1/members", key=ws.root_key,
                    json={"email": new_email("aud"), "role": "viewer"})
    return r, expect_status(r, 201)["id"], key_id_of(server, ws.root_key), ws.root_key


def _invitation_accept(server, ws):
    inv = ws.invite(new_email("aud-acc"), "viewer")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                    "password": new_password()})
    return r, inv["id"], expect_status(r, 200)["user_id"], ws.root_key


def _invitation_revoke(server, ws):
    inv = ws.invite(new_email("aud-rev"), "viewer")
    r = server.delete(f"/v1/invitations/{inv['id']}", key=ws.root_key)
    assert r.status_code == 204, describe(r)
    return r, inv["id"], key_id_of(server, ws.root_key), ws.root_key


def _member_update(server, ws):
    owner = ws.new_session("owner")
    u = ws.new_user("viewer")
    r = server.patch(f"/v1/members/{u.id}", key=owner.token, json={"role": "editor"})
    expect_status(r, 200)
    return r, u.id, owner.user.id, ws.root_key


def _member_remove(server, ws):
    u = ws.new_user("viewer")
    r = server.delete(f"/v1/members/{u.id}", key=ws.root_key)
    assert r.status_code == 204, describe(r)
    return r, u.id, key_id_of(server, ws.root_key), ws.root_key


def _auth_login(server, ws):
    u = ws.new_user("viewer")
    r = server.login(u.email, u.password)
    expect_status(r, 200)
    return r, None, u.id, ws.root_key


def _auth_login_failed(server, ws):
    u = ws.new_user("viewer")
    r = server.login(u.email, new_password())
    assert_error(r, 401, "invalid_credentials")
    return r, None, None, ws.root_key


def _auth_logout(server, ws):
    s = ws.new_session("viewer")
    r = server.post("/v1/auth/logout", key=s.token)
    assert r.status_code == 204, describe(r)
    return r, None, s.user.id, ws.root_key


ACTIONS = {
    "key.create": _key_create,
    "key.update": _key_update,
    "key.revoke": _key_revoke,
    "key.regenerate": _key_regenerate,
    "key.import": _key_import,
    "key.generate_temp": _key_generate_temp,
    "invitation.create": _invitation_create,
    "invitation.accept": _invitation_accept,
    "invitation.revoke": _invitation_revoke,
    "member.update": _member_update,
    "member.remove": _member_remove,
    "auth.login": _auth_login,
    "auth.login_failed": _auth_login_failed,
    "auth.logout": _auth_logout,
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_produces_one_event(server, ws, action):
    t0 = time.time()
    r, target, actor, reader = ACTIONS[action](server, ws)
    rid = rid_of(r)
    found = by_request(all_events(server, reader), rid)
    assert len(found) == 1, f"{action}: events with request_id {rid}: {found}"
    e = found[0]
    if actor is None:  # a failed login: no one is signed in; the actor is not a key
        for f in EVENT_FIELDS:
            assert f in e, e
        assert e["action"] == action and e["address"] == "127.0.0.1", e
        assert not str(e["actor"] or "").startswith("key_"), e
    else:
        check_event(e, action, actor, target=target, t0=t0)


def test_key_create_by_session_names_the_user(server, ws):
    t0 = time.time()
    r, target, actor, reader = _key_create_by_session(server, ws)
    found = by_request(all_events(server, reader), rid_of(r))
    assert len(found) == 1, found
    check_event(found[0], "key.create", actor, target=target, t0=t0)
    assert actor.startswith("usr_")


def test_workspace_create_event(server):
    r = server.post("/v1/workspaces", key=server.root_key, json={"name": "audited-ws"})
    doc = expect_status(r, 201)
    rid = rid_of(r)
    seen = by_request(all_events(server, doc["root_key"]), rid) + \
        by_request(all_events(server, server.root_key), rid)
    assert len(seen) == 1, f"workspace.create events: {seen}"
    check_event(seen[0], "workspace.create", key_id_of(server, server.root_key),
                target=doc["id"])


def test_failed_request_makes_no_event(server, ws):
    r = server.post("/v1/keys", key=ws.ro_key, json={"name": "refused"})
    assert_error(r, 403, "insufficient_permissions")
    r2 = server.post("/v1/keys", key=ws.root_key, json={"name": 7})
    assert_error(r2, 400, "invalid_request")
    events = all_events(server, ws.root_key)
    assert not by_request(events, rid_of(r)) and not by_request(events, rid_of(r2)), events


def test_reading_makes_no_event(server, ws):
    before = len(all_events(server, ws.root_key))
    ws.list_keys()
    audit_page(server, ws.root_key)
    assert len(all_events(server, ws.root_key)) == before


def test_login_from_another_address(server, ws):
    u = ws.new_user("viewer")
    try:
        with http_from("127.0.0.2") as h:
            r = h.post(server.url("/v1/auth/login"),
                       json={"email": u.email, "password": u.password}, timeout=15)
    except OSError as e:
        pytest.skip(f"127.0.0.2 unusable: {e}")
    expect_status(r, 200)
    found = by_request(all_events(server, ws.root_key), rid_of(r))
    assert len(found) == 1, found
    check_event(found[0], "auth.login", u.id, address="127.0.0.2")


# -- order and paging ------------------------------------------------------------------

def test_newest_first(server, ws):
    rids = []
    for i in range(4):
        r = server.post("/v1/keys", key=ws.root_key, json={"name": f"order-{i}"})
        expect_status(r, 201)
        rids.append(rid_of(r))
    events = all_events(server, ws.root_key)
    pos = [next(i for i, e in enumerate(events) if e["request_id"] == rid) for rid in rids]
    assert pos == sorted(pos, reverse=True), f"not newest first: {pos}"
    assert pos[-1] == 0, "the latest action is not the first event"
    times = [parse_time(e["created_at"]) for e in events]
    assert times == sorted(times, reverse=True), times


def test_paging(server, ws):
    for i in range(7):
        ws.create_key(name=f"page-{i}")
    full = all_events(server, ws.root_key)
    assert len(full) >= 7
    got, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        doc, r = audit_page(server, ws.root_key, **params)
        assert len(doc["data"]) <= 3, describe(r)
        got.extend(doc["data"])
        pages += 1
        cursor = doc["next_cursor"]
        if not cursor:
            break
        assert len(doc["data"]) == 3, describe(r)
        assert pages < 50
    assert [e["id"] for e in got] == [e["id"] for e in full]
    assert len({e["id"] for e in got}) == len(got)


def test_paging_is_stable_under_new_events(server, ws):
    for i in range(4):
        ws.create_key(name=f"stable-{i}")
    first, _ = audit_page(server, ws.root_key, limit=2)
    ws.create_key(name="newer")
    second, _ = audit_page(server, ws.root_key, limit=2, cursor=first["next_cursor"])
    ids1 = {e["id"] for e in first["data"]}
    assert not ids1 & {e["id"] for e in second["data"]}
    assert "newer" not in str(second["data"])


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "x"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
])
def test_bad_paging_params(server, ws, params, field):
    r = server.get("/v1/audit", key=ws.root_key, params=params)
    assert_error(r, 400, "invalid_request", field=field)


def test_limit_bounds(server, ws):
    for i in range(2):
        ws.create_key()
    doc, _ = audit_page(server, ws.root_key, limit=1)
    assert len(doc["data"]) == 1 and doc["next_cursor"]
    doc, _ = audit_page(server, ws.root_key, limit=100)
    assert 1 <= len(doc["data"]) <= 100


# -- isolation and secrets -------------------------------------------------------------

def test_other_workspace_events_are_invisible(server, ws, ws2):
    kb = ws2.create_key(name="b-secret-thing")
    ub = ws2.new_user("editor")
    sb = server.session(ub.email, ub.password)
    rb = server.post("/v1/keys", key=sb.token, json={"name": "b-by-user"})
    expect_status(rb, 201)
    ws.create_key(name="a-thing")
    for reader in (ws.root_key, ws.ro_key, ws.new_session("viewer").token):
        events = all_events(server, reader)
        text = str(events)
        assert kb["id"] not in text and ub.id not in text and ws2.id not in text, text[:800]
        assert not by_request(events, rid_of(rb))
    # the cursor of one workspace does not open the other's log
    for i in range(3):
        ws.create_key()
    first, _ = audit_page(server, ws.root_key, limit=1)
    r = server.get("/v1/audit", key=ws2.root_key, params={"cursor": first["next_cursor"]})
    if r.status_code == 200:
        assert "a-thing" not in r.text and ws.id not in r.text
        for e in r.json()["data"]:
            assert not e["target"] or ws.id not in e["target"]
    else:
        assert_error(r, 400, "invalid_request", field="cursor")


def test_no_secret_in_any_event(server, ws):
    leaked = []
    k = ws.create_key()
    leaked.append(k["secret"])
    regen = expect_status(server.post(f"/v1/keys/{k['id']}/regenerate", key=ws.root_key,
                                      json={"grace_period_s": 60}), 200)
    leaked.append(regen["secret"])
    imported = make_secret()
    expect_status(server.post("/v1/keys", key=ws.root_key,
                              json={"name": "i", "sha256": hashlib.sha256(
                                  imported.encode()).hexdigest()}), 201)
    leaked.append(imported)
    pw = new_password()
    email = new_email("aud-secret")
    ws.add_member(email, "owner", pw)
    leaked.append(pw)
    s = server.session(email, pw)
    leaked.append(s.token)
    if s.cookie:
        leaked.append(s.cookie)
    temp = expect_status(server.post("/v1/keys/generate-temp", key=s.token,
                                     json={"workspace_id": ws.id}), 201)
    leaked.append(temp["key"])
    typo = pw + "!"
    assert_error(server.login(email, typo), 401, "invalid_credentials")
    leaked.append(typo)
    assert server.post("/v1/auth/logout", key=s.token).status_code == 204
    leaked.extend([ws.root_key, ws.rw_key, ws.ro_key])
    r = server.get("/v1/audit", key=ws.root_key, params={"limit": 100})
    expect_status(r, 200)
    for secret in leaked:
        assert secret not in r.text, "a secret is in the audit log"
        body = secret.split("_")[-1]
        if len(body) >= 16:
            assert body not in r.text, "a secret's body is in the audit log"
    actions = {e["action"] for e in r.json()["data"]}
    assert {"key.create", "key.regenerate", "key.import", "invitation.create",
            "invitation.accept", "auth.login",
            "key.generate_temp", "auth.login_failed", "auth.logout"} <= actions, actions


@pytest.mark.parametrize("who", ["root", "rw", "ro", "owner", "editor", "viewer"])
def test_who_may_read(server, ws, who):
    cred = {"root": ws.root_key, "rw": ws.rw_key, "ro": ws.ro_key}.get(who)
    if cred is None:
        cred = ws.new_session(who).token
    ws.create_key(name="something")
    doc, _ = audit_page(server, cred)
    assert doc["data"], "no events"


def test_ordinary_key_may_not_read(server, ws):
    k = ws.create_key()
    assert_error(server.get("/v1/audit", key=k["secret"]), 403, "insufficient_permissions")
    assert_error(server.get("/v1/audit"), 401, "missing_key")


def test_events_survive_kill9(fresh_server):
    """A 2xx means durable, and its audit event with it."""
    srv = fresh_server
    w = srv.create_workspace()
    r = srv.post("/v1/keys", key=w.root_key, json={"name": "durable"})
    expect_status(r, 201)
    u = w.new_user("viewer")
    rl = srv.login(u.email, u.password)
    expect_status(rl, 200)
    srv.kill9()
    srv.start()
    events = all_events(srv, w.root_key)
    for resp, action in ((r, "key.create"), (rl, "auth.login")):
        found = by_request(events, rid_of(resp))
        assert len(found) == 1 and found[0]["action"] == action, events


def _events_of(server, ws, user_id):
    return [e for e in all_events(server, ws.root_key) if e["actor"] == user_id]


def test_sign_ins_reach_only_workspaces_joined(server, ws, ws2):
    """An invitation not (yet) accepted puts nothing of the person into the inviting
    workspace's audit log: not their sign-ins, not a wrong password at accept."""
    u = ws.new_user("viewer", tag="joins-late")
    inv = ws2.invite(u.email, "editor")
    expect_status(server.login(u.email, u.password), 200)
    assert_error(server.login(u.email, new_password()), 401, "invalid_credentials")
    r = server.post("/v1/invitations/accept", json={"token": inv["token"],
                                                    "password": new_password()})
    assert_error(r, 401, "invalid_credentials")
    assert _events_of(server, ws2, u.id) == []
    mine = {e["action"] for e in _events_of(server, ws, u.id)}
    assert {"auth.login", "auth.login_failed"} <= mine, mine

    server.accept(inv["token"], u.password)
    expect_status(server.login(u.email, u.password), 200)
    theirs = [e["action"] for e in _events_of(server, ws2, u.id)]
    assert "invitation.accept" in theirs and "auth.login" in theirs, theirs
