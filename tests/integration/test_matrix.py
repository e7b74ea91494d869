"""Who may do what, and where: every management endpoint × every credential kind of
workspace A, against A's own objects and against workspace B's.

The rules (DESIGN §5, docs/http-api.md "Endpoints" and "People"):
- read (list/get keys, list members, audit): root, read-write and read-only
  application keys, and sessions of owners, editors and viewers;
- key writes (create, change, revoke, regenerate): root, read-write application key,
  owner and editor sessions;
- member writes (add or change, remove): the root key and owner sessions;
- generate-temp: owner and editor sessions only, never a key;
- /v1/workspaces: the operator root key only, so every credential of A gets 403;
- an ordinary (permanent) key manages nothing: 403 everywhere.
A credential lacking the right for an action gets 403 `insufficient_permissions`
whatever the target; one that has it gets 404 `not_found` for an object of B, and
nothing of B ever shows in what A's credentials read. A session that names B as the
workspace to act in (generate-temp's body, X-Latchkey-Workspace, ?workspace_id=) gets
404 whatever its role in A: in B it has none.
"""

import hashlib
import uuid

import pytest

from lkhelpers import (assert_error, describe, expect_status, make_secret, new_email,
                       new_password)

CREDS = ["root", "rw", "ro", "permanent", "owner", "editor", "viewer"]
READ = {"root", "rw", "ro", "owner", "editor", "viewer"}
KEY_WRITE = {"root", "rw", "owner", "editor"}
MEMBER_WRITE = {"root", "owner"}
TEMP = {"owner", "editor"}
NOBODY = set()
SESSIONS = {"owner", "editor", "viewer"}


class Side:
    """One workspace and a credential of every kind."""

    def __init__(self, server, ws):
        self.ws = ws
        self.id = ws.id
        self.perm = ws.create_key(name="perm")
        self.sessions = {role: ws.new_session(role, tag=f"m-{role}")
                         for role in ("owner", "editor", "viewer")}
        self.secrets = {"root": ws.root_key, "rw": ws.rw_key, "ro": ws.ro_key,
                        "permanent": self.perm["secret"]}
        for role, s in self.sessions.items():
            self.secrets[role] = s.token
        self.key_ids = [expect_status(server.auth_context(ws.root_key), 200)["key_id"],
                        expect_status(server.auth_context(ws.rw_key), 200)["key_id"],
                        expect_status(server.auth_context(ws.ro_key), 200)["key_id"],
                        self.perm["id"]]
        self.user_ids = [s.user.id for s in self.sessions.values()]
        self.emails = [s.user.email for s in self.sessions.values()]

    def headers(self, cred):
        return {"Authorization": f"Bearer {self.secrets[cred]}"}

    def markers(self):
        """Strings that must never appear in what the other workspace reads."""
        return [self.id] + self.key_ids + self.user_ids + self.emails


@pytest.fixture(scope="module")
def world(server):
    a = Side(server, server.create_workspace(name="matrix-a"))
    b = Side(server, server.create_workspace(name="matrix-b"))
    return a, b


# -- the operations --------------------------------------------------------------------
# Each: who may (set), the success status on A, prepare(server, side) -> prep,
# call(server, headers, side, prep) -> response, done(...) checks the effect,
# intact(...) checks that nothing happened.

def _throwaway_key(server, side):
    return side.ws.create_key(name="throwaway")


def _throwaway_user(server, side):
    return side.ws.new_user("viewer", tag="throwaway")


def _key_active(server, side, k, name=None):
    got = side.ws.get_key(k["id"])
    assert got["status"] == "active", got
    if name is not None:
        assert got["name"] == name, got
    expect_status(server.auth_context(k["secret"]), 200)


def _is_member(side, user_id):
    return user_id in {m["user_id"] for m in side.ws.list_members()["data"]}


class Op:
    def __init__(self, name, allowed, ok, call, targets=("A", "B"), prepare=None,
                 done=None, intact=None):
        self.name = name
        self.allowed = allowed
        self.ok = ok
        self.call = call
        self.targets = targets
        self.prepare = prepare or (lambda server, side: None)
        self.done = done or (lambda server, side, prep, r: None)
        self.intact = intact or (lambda server, side, prep: None)


def _list_done(what):
    def done(server, side, prep, r):
        data = r.json()["data"]
        assert isinstance(data, list) and data, f"empty {what} list: {describe(r)}"
        if what == "keys":
            assert all(k["workspace_id"] == side.id for k in data), describe(r)
            assert side.perm["id"] in {k["id"] for k in data}
        if what == "members":
            assert set(side.user_ids) <= {m["user_id"] for m in data}, describe(r)
    return done


def _create_key_done(server, side, prep, r):
    doc = r.json()
    assert doc["workspace_id"] == side.id, describe(r)
    assert expect_status(server.auth_context(doc["secret"]), 200)["workspace_id"] == side.id


def _create_key_intact(server, side, prep):
    names = {k["name"] for k in side.ws.list_keys(limit=100)["data"]}
    assert prep not in names


def _add_member_done(server, side, prep, r):
    # an invitation: pending, and nobody has joined
    assert r.json()["email"] == prep and _invited(server, side, prep)
    assert not _member_email_in(side, prep)


def _invited(server, side, email):
    r = server.get("/v1/invitations", key=side.ws.root_key)
    return email in {i["email"] for i in expect_status(r, 200)["data"]}


def _member_email_in(side, email):
    return email in {m["email"] for m in side.ws.list_members()["data"]}


def _temp_done(server, side, prep, r):
    doc = r.json()
    assert doc["workspace_id"] == side.id, describe(r)
    ctx = expect_status(server.auth_context(doc["key"]), 200)
    assert ctx["workspace_id"] == side.id and ctx["kind"] == "temporary"


def _revoked(server, side, prep, r):
    got = side.ws.get_key(prep["id"])
    assert got["status"] == "revoked", got
    assert_error(server.auth_context(prep["secret"]), 401, "revoked_key")


def _regenerated(server, side, prep, r):
    doc = r.json()
    assert doc["id"] == prep["id"] and doc["secret"] != prep["secret"]
    expect_status(server.auth_context(doc["secret"]), 200)
    assert_error(server.auth_context(prep["secret"]), 401, "revoked_key")


def _workspaces_intact(server, side, prep):
    r = server.get("/v1/workspaces", key=server.root_key)
    assert prep not in {w["name"] for w in expect_status(r, 200)["data"]}


OPS = [
    Op("GET /v1/keys", READ, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/keys", headers=h, params={"limit": 100}),
       done=_list_done("keys")),
    Op("POST /v1/keys", KEY_WRITE, 201, targets=("A",),
       prepare=lambda s, side: "made-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/keys", headers=h, json={"name": p}),
       done=_create_key_done, intact=_create_key_intact),
    Op("POST /v1/keys sha256", KEY_WRITE, 201, targets=("A",),
       prepare=lambda s, side: "imp-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/keys", headers=h, json={
           "name": p, "sha256": hashlib.sha256(make_secret().encode()).hexdigest()}),
       intact=_create_key_intact),
    Op("GET /v1/keys/{id}", READ, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.get(f"/v1/keys/{p['id']}", headers=h),
       done=lambda s, side, p, r: r.json()["id"] == p["id"] or pytest.fail(describe(r))),
    Op("PATCH /v1/keys/{id}", KEY_WRITE, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.patch(f"/v1/keys/{p['id']}", headers=h,
                                          json={"name": "patched", "enabled": False}),
       done=lambda s, side, p, r: side.ws.get_key(p["id"])["name"] == "patched"
       or pytest.fail("not patched"),
       intact=lambda s, side, p: _key_active(s, side, p, name="throwaway")),
    Op("DELETE /v1/keys/{id}", KEY_WRITE, 204, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.delete(f"/v1/keys/{p['id']}", headers=h),
       done=_revoked, intact=lambda s, side, p: _key_active(s, side, p)),
    Op("POST /v1/keys/{id}/regenerate", KEY_WRITE, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.post(f"/v1/keys/{p['id']}/regenerate", headers=h,
                                         json={}),
       done=_regenerated, intact=lambda s, side, p: _key_active(s, side, p)),
    Op("GET /v1/members", READ, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/members", headers=h),
       done=_list_done("members")),
    Op("POST /v1/members", MEMBER_WRITE, 201, targets=("A",),
       prepare=lambda s, side: new_email("added"),
       call=lambda s, h, side, p: s.post("/v1/members", headers=h, json={
           "email": p, "role": "viewer"}),
       done=_add_member_done,
       intact=lambda s, side, p: not (_member_email_in(side, p) or _invited(s, side, p))
       or pytest.fail("added")),
    Op("DELETE /v1/members/{user_id}", MEMBER_WRITE, 204, prepare=_throwaway_user,
       call=lambda s, h, side, p: s.delete(f"/v1/members/{p.id}", headers=h),
       done=lambda s, side, p, r: not _is_member(side, p.id) or pytest.fail("still there"),
       intact=lambda s, side, p: _is_member(side, p.id) or pytest.fail("removed")),
    Op("GET /v1/audit", READ, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/audit", headers=h, params={"limit": 100}),
       done=_list_done("audit")),
    Op("POST /v1/keys/generate-temp workspace_id", TEMP, 201,
       call=lambda s, h, side, p: s.post("/v1/keys/generate-temp", headers=h,
                                         json={"workspace_id": side.id}),
       done=_temp_done),
    Op("POST /v1/keys/generate-temp storage_folder_id", TEMP, 201,
       call=lambda s, h, side, p: s.post("/v1/keys/generate-temp", headers=h,
                                         json={"storage_folder_id": side.ws.number}),
       done=_temp_done),
    Op("POST /api/keys/generate-temp", TEMP, 201,
       call=lambda s, h, side, p: s.post("/api/keys/generate-temp", headers=h,
                                         json={"workspace_id": side.id}),
       done=_temp_done),
    Op("GET /v1/workspaces", NOBODY, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/workspaces", headers=h)),
    Op("POST /v1/workspaces", NOBODY, 201, targets=("A",),
       prepare=lambda s, side: "ws-by-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/workspaces", headers=h, json={"name": p}),
       intact=_workspaces_intact),
]

CELLS = [pytest.param(op, target, cred, id=f"{op.name}|{target}|{cred}")
         for op in OPS for target in op.targets for cred in CREDS]


@pytest.mark.parametrize("op,target,cred", CELLS)
def test_cell(server, world, op, target, cred):
    a, b = world
    side = a if target == "A" else b
    allowed = cred in op.allowed
    if target == "A":
        expected = op.ok if allowed else 403
    elif op.allowed is TEMP and cred in SESSIONS:
        # the body names B, where the user has no role at all: not a member → 404
        expected = 404
    else:
        expected = 404 if allowed else 403
    prep = op.prepare(server, side)
    r = op.call(server, a.headers(cred), side, prep)
    if expected == 403:
        assert_error(r, 403, "insufficient_permissions")
    elif expected == 404:
        assert_error(r, 404, "not_found")
    elif expected == 204:
        assert r.status_code == 204, f"expected 204: {describe(r)}"
    else:
        expect_status(r, expected)
    if target == "A" and expected < 300:
        op.done(server, side, prep, r)
    else:
        op.intact(server, side, prep)
    # nothing of B in any answer to A's credentials
    for m in b.markers():
        assert m not in r.text, f"B's {m!r} shows to A's {cred}: {describe(r)}"


# -- sessions that name B -----------------------------------------------------------------

NAMED = [
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {"name": "via-b"}),
    ("GET", "/v1/members", None),
    ("POST", "/v1/members", {"email": "x-via-b@example.test", "role": "viewer"}),
    ("GET", "/v1/audit", None),
]


@pytest.mark.parametrize("how", ["header", "query"])
@pytest.mark.parametrize("method,path,body", NAMED, ids=[f"{m} {p}" for m, p, _ in NAMED])
@pytest.mark.parametrize("role", ["owner", "editor", "viewer"])
def test_session_naming_b_is_404(server, world, role, method, path, body, how):
    a, b = world
    h = a.headers(role)
    params = None
    if how == "header":
        h["X-Latchkey-Workspace"] = b.id
    else:
        params = {"workspace_id": b.id}
    kw = {"headers": h, "params": params}
    if body is not None:
        kw["json"] = body
    r = server.request(method, path, **kw)
    assert_error(r, 404, "not_found")
    for m in b.markers()[1:]:
        assert m not in r.text, describe(r)
    assert "via-b" not in str(b.ws.list_keys(limit=100))
    assert not _member_email_in(b, "x-via-b@example.test")


@pytest.mark.parametrize("cred", ["root", "rw", "ro", "permanent"])
def test_keys_naming_b_never_reach_b(server, world, cred):
    """A key belongs to one workspace: naming another gets nothing of it."""
    a, b = world
    h = a.headers(cred)
    h["X-Latchkey-Workspace"] = b.id
    for method, path, body in NAMED:
        kw = {"headers": h, "params": {"workspace_id": b.id}}
        if body is not None:
            kw["json"] = body
        r = server.request(method, path, **kw)
        assert r.status_code in (200, 201, 400, 403, 404), describe(r)
        for m in b.markers()[1:]:
            assert m not in r.text, describe(r)
        if r.status_code == 201:
            assert r.json().get("workspace_id", a.id) == a.id, describe(r)
    assert "via-b" not in str(b.ws.list_keys(limit=100))
    assert not _member_email_in(b, "x-via-b@example.test")


# -- the operator ---------------------------------------------------------------------------

def test_operator_manages_workspaces(server, world):
    a, b = world
    r = server.get("/v1/workspaces", key=server.root_key)
    ids = {w["id"] for w in expect_status(r, 200)["data"]}
    assert {a.id, b.id} <= ids
    r = server.post("/v1/workspaces", key=server.root_key, json={"name": "by-operator"})
    expect_status(r, 201)


def test_operator_cannot_reach_into_a(server, world):
    a, _ = world
    r = server.get(f"/v1/keys/{a.perm['id']}", key=server.root_key)
    assert_error(r, 404, "not_found")
    r = server.delete(f"/v1/members/{a.user_ids[0]}", key=server.root_key)
    assert_error(r, 404, "not_found")
    r = server.get("/v1/members", key=server.root_key)
    for m in a.markers():
        assert m not in r.text, describe(r)
    assert _is_member(a, a.user_ids[0])


def test_matrix_left_a_and_b_whole(server, world):
    """After every cell: the credentials of both workspaces still work."""
    for side in world:
        for cred in ("root", "rw", "ro", "permanent"):
            expect_status(server.auth_context(side.secrets[cred]), 200)
        for role in ("owner", "editor", "viewer"):
            expect_status(server.get("/v1/me", key=side.secrets[role]), 200)
        roles = {m["user_id"]: m["role"] for m in side.ws.list_members()["data"]}
        for role, s in side.sessions.items():
            assert roles.get(s.user.id) == role
