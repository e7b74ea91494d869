"""Who may do what, and where: every management endpoint × every kind of credential of
workspace A (and restricted ones), against A's own objects and against workspace B's.

The model (docs/http-api.md "Permissions"): each endpoint needs one management
permission; each credential holds a set of them (HOLDS below: its key permissions
within its kind's ceiling, or its role's fixed set). Some endpoints add a rule of
their own (`extra`): temporary keys are made by sessions only, root and application
keys are changed only by unrestricted root keys (and owners, for application keys), a
role is given or taken only by a credential holding all of it, workspaces only by the
operator. Plain keys (permanent, temporary) manage nothing.

A credential that may not gets 403 `insufficient_permissions` and nothing happens; one
that may gets the endpoint's success on A, and 404 `not_found` for an object of B, and
nothing of B ever shows in what A's credentials read. A session that names B as the
workspace to act in gets 404 whatever its role in A: in B it has none.

A new endpoint is one Op row; a new kind of credential is one CREDS entry and its HOLDS.
"""

import hashlib
import uuid

import pytest

from lkhelpers import (assert_error, describe, expect_status, make_secret, new_email,
                       new_password)

KR, KW = "keys:read", "keys:write"
MR, MW = "members:read", "members:write"
CR, CW = "credits:read", "credits:write"
AR = "audit:read"
WR, WW = "webhooks:read", "webhooks:write"
READS = {KR, MR, CR, AR, WR}
ALL = READS | {KW, MW, CW, WW}

# credential -> the management permissions it holds in A
HOLDS = {
    "root": ALL,
    "rw": READS | {KW},                   # application key, `*`
    "ro": READS,                          # application key, `*:read`
    "root:keys:read": {KR},               # root keys restricted by their permissions
    "root:keys:*": {KR, KW},
    "root:*:read": READS,
    "root:no-money": ALL - {CR, CW, WR, WW},
    "owner": ALL,
    "editor": READS | {KW},
    "viewer": READS,
    "permanent": set(),
    "temporary": set(),
}
RESTRICTED_ROOTS = {"root:keys:read": ["keys:read"], "root:keys:*": ["keys:*"],
                    "root:*:read": ["*:read"],
                    "root:no-money": ["keys:*", "members:*", "audit:read"]}
SESSIONS = {"owner", "editor", "viewer"}
CREDS = list(HOLDS)
ROLE_PERMS = {"viewer": READS, "editor": READS | {KW}, "owner": ALL}


class Side:
    """One workspace and a credential of every kind."""

    def __init__(self, server, ws):
        self.ws = ws
        self.id = ws.id
        self.perm = ws.create_key(name="perm")
        self.temp = ws.create_key(name="temp", kind="temporary", expires_in=3600)
        self.sessions = {role: ws.new_session(role, tag=f"m-{role}")
                         for role in ("owner", "editor", "viewer")}
        self.secrets = {"root": ws.root_key, "rw": ws.rw_key, "ro": ws.ro_key,
                        "permanent": self.perm["secret"], "temporary": self.temp["secret"]}
        self.restricted = {}
        for cred, perms in RESTRICTED_ROOTS.items():
            k = ws.create_key(name=cred, kind="root", permissions=perms)
            self.restricted[cred] = k
            self.secrets[cred] = k["secret"]
        for role, s in self.sessions.items():
            self.secrets[role] = s.token
        self.key_ids = [expect_status(server.auth_context(ws.root_key), 200)["key_id"],
                        expect_status(server.auth_context(ws.rw_key), 200)["key_id"],
                        expect_status(server.auth_context(ws.ro_key), 200)["key_id"],
                        self.perm["id"], self.temp["id"]] + \
            [k["id"] for k in self.restricted.values()]
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


# -- rules beyond the one permission --------------------------------------------------

def sessions_only(cred):
    return cred in SESSIONS


def unrestricted_root(cred):
    return cred == "root"


def root_or_owner(cred):
    return cred in ("root", "owner")


def grants(*roles):
    return lambda cred: all(ROLE_PERMS[r] <= HOLDS[cred] for r in roles)


def operator_only(cred):
    return False  # no credential of A is the operator's


# -- the operations --------------------------------------------------------------------
# prepare(server, side) -> prep; call(server, headers, side, prep) -> response;
# done(...) checks the effect on A; intact(...) checks that nothing happened.

def _throwaway_key(server, side):
    return side.ws.create_key(name="throwaway")


def _throwaway_root(server, side):
    return side.ws.create_key(name="throwaway", kind="root")


def _throwaway_user(server, side):
    return side.ws.new_user("viewer", tag="throwaway")


def _invitation(server, side):
    return side.ws.invite(new_email("pending"), "viewer")


def _key_active(server, side, k, name=None):
    got = side.ws.get_key(k["id"])
    assert got["status"] == "active", got
    if name is not None:
        assert got["name"] == name, got
    expect_status(server.auth_context(k["secret"]), 200)


def _is_member(side, user_id):
    return user_id in {m["user_id"] for m in side.ws.list_members()["data"]}


def _role_of(side, user_id):
    return {m["user_id"]: m["role"] for m in side.ws.list_members()["data"]}.get(user_id)


def _pending(server, side):
    r = server.get("/v1/invitations", key=side.ws.root_key)
    return expect_status(r, 200)["data"]


def _invited(server, side, email):
    return email in {i["email"] for i in _pending(server, side)}


def _member_email_in(side, email):
    return email in {m["email"] for m in side.ws.list_members()["data"]}


def _balance(server, side):
    return expect_status(server.get("/v1/credits", key=side.ws.root_key), 200)["balance"]


def _endpoint(server, side):
    r = server.post("/v1/webhooks", key=side.ws.root_key, json={
        "url": f"https://hooks.example.com/{uuid.uuid4().hex[:8]}", "events": ["key.created"]})
    return expect_status(r, 201)


def _shared_endpoint(server, side):
    """One endpoint per side for the reading cells (a workspace holds at most 16)."""
    if getattr(side, "hook", None) is None:
        side.hook = _endpoint(server, side)
    return side.hook


def _drop_endpoint(server, side, hook_id):
    r = server.delete(f"/v1/webhooks/{hook_id}", key=side.ws.root_key)
    assert r.status_code == 204, describe(r)
    return True


def _endpoint_ids(server, side):
    r = server.get("/v1/webhooks", key=side.ws.root_key)
    return {e["id"] for e in expect_status(r, 200)["data"]}


def _threshold(server, side):
    r = server.get("/v1/webhooks/settings", key=side.ws.root_key)
    return expect_status(r, 200).get("credits_low_threshold")


def _quota_of(server, ws_id):
    r = server.get("/v1/workspaces", key=server.root_key)
    return {w["id"]: w.get("quota") for w in expect_status(r, 200)["data"]}.get(ws_id)


class Op:
    def __init__(self, name, need, ok, call, targets=("A", "B"), prepare=None, done=None,
                 intact=None, extra=None, names_workspace=False):
        self.name = name
        self.need = need
        self.ok = ok
        self.call = call
        self.targets = targets
        self.extra = extra or (lambda cred: True)
        self.names_workspace = names_workspace  # the body names the workspace to act in
        self.prepare = prepare or (lambda server, side: None)
        self.done = done or (lambda server, side, prep, r: None)
        self.intact = intact or (lambda server, side, prep: None)

    def route_allows(self, cred):
        return self.need in HOLDS[cred]

    def allowed(self, cred):
        return self.route_allows(cred) and self.extra(cred)


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


def _invite_done(server, side, prep, r):
    assert r.json()["email"] == prep and _invited(server, side, prep)
    assert not _member_email_in(side, prep), "joined without accepting"


def _invite_intact(server, side, prep):
    assert not (_member_email_in(side, prep) or _invited(server, side, prep)), "invited"


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


def _rw_key_of(server, side):
    """The read-write application key, by its id; it is regenerated with a grace
    period so the world's credential keeps working."""
    return {"id": side.key_ids[1], "secret": side.ws.rw_key}


def _rw_regenerated(server, side, r):
    new = r.json()["secret"]
    expect_status(server.auth_context(new), 200)
    side.ws.rw_key = side.secrets["rw"] = new  # the next cell uses the current one


OPS = [
    Op("GET /v1/keys", KR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/keys", headers=h, params={"limit": 100}),
       done=_list_done("keys")),
    Op("POST /v1/keys", KW, 201, targets=("A",),
       prepare=lambda s, side: "made-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/keys", headers=h, json={"name": p}),
       done=_create_key_done, intact=_create_key_intact),
    Op("POST /v1/keys sha256", KW, 201, targets=("A",),
       prepare=lambda s, side: "imp-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/keys", headers=h, json={
           "name": p, "sha256": hashlib.sha256(make_secret().encode()).hexdigest()}),
       intact=_create_key_intact),
    Op("POST /v1/keys kind=root", KW, 201, targets=("A",), extra=unrestricted_root,
       prepare=lambda s, side: "root-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/keys", headers=h, json={"name": p,
                                                                      "kind": "root"}),
       done=_create_key_done, intact=_create_key_intact),
    Op("GET /v1/keys/{id}", KR, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.get(f"/v1/keys/{p['id']}", headers=h),
       done=lambda s, side, p, r: r.json()["id"] == p["id"] or pytest.fail(describe(r))),
    Op("GET /v1/keys/{id}/usage", KR, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.get(f"/v1/keys/{p['id']}/usage", headers=h),
       done=lambda s, side, p, r: r.json()["key_id"] == p["id"] or pytest.fail(describe(r))),
    Op("GET /v1/keys/{id}/openapi", KR, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.get(f"/v1/keys/{p['id']}/openapi", headers=h),
       done=lambda s, side, p, r: r.json()["x-latchkey-key"]["id"] == p["id"]
       or pytest.fail(describe(r))),
    Op("PATCH /v1/keys/{id}", KW, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.patch(f"/v1/keys/{p['id']}", headers=h,
                                          json={"name": "patched", "enabled": False}),
       done=lambda s, side, p, r: side.ws.get_key(p["id"])["name"] == "patched"
       or pytest.fail("not patched"),
       intact=lambda s, side, p: _key_active(s, side, p, name="throwaway")),
    Op("PATCH /v1/keys/{root id}", KW, 200, prepare=_throwaway_root, extra=unrestricted_root,
       call=lambda s, h, side, p: s.patch(f"/v1/keys/{p['id']}", headers=h,
                                          json={"name": "patched"}),
       done=lambda s, side, p, r: side.ws.get_key(p["id"])["name"] == "patched"
       or pytest.fail("not patched"),
       intact=lambda s, side, p: _key_active(s, side, p, name="throwaway")),
    Op("DELETE /v1/keys/{id}", KW, 204, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.delete(f"/v1/keys/{p['id']}", headers=h),
       done=_revoked, intact=lambda s, side, p: _key_active(s, side, p)),
    Op("DELETE /v1/keys/{root id}", KW, 204, prepare=_throwaway_root, extra=unrestricted_root,
       call=lambda s, h, side, p: s.delete(f"/v1/keys/{p['id']}", headers=h),
       done=_revoked, intact=lambda s, side, p: _key_active(s, side, p)),
    Op("POST /v1/keys/{id}/regenerate", KW, 200, prepare=_throwaway_key,
       call=lambda s, h, side, p: s.post(f"/v1/keys/{p['id']}/regenerate", headers=h,
                                         json={}),
       done=_regenerated, intact=lambda s, side, p: _key_active(s, side, p)),
    Op("POST /v1/keys/{application id}/regenerate", KW, 200, prepare=_rw_key_of,
       extra=root_or_owner,
       call=lambda s, h, side, p: s.post(f"/v1/keys/{p['id']}/regenerate", headers=h,
                                         json={"grace_period_s": 86400}),
       done=lambda s, side, p, r: _rw_regenerated(s, side, r),
       intact=lambda s, side, p: _key_active(s, side, p)),
    Op("GET /v1/members", MR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/members", headers=h),
       done=_list_done("members")),
    Op("POST /v1/members (invite viewer)", MW, 201, targets=("A",), extra=grants("viewer"),
       prepare=lambda s, side: new_email("added"),
       call=lambda s, h, side, p: s.post("/v1/members", headers=h, json={
           "email": p, "role": "viewer"}),
       done=_invite_done, intact=_invite_intact),
    Op("POST /v1/members (invite owner)", MW, 201, targets=("A",), extra=grants("owner"),
       prepare=lambda s, side: new_email("owner"),
       call=lambda s, h, side, p: s.post("/v1/members", headers=h, json={
           "email": p, "role": "owner"}),
       done=_invite_done, intact=_invite_intact),
    Op("PATCH /v1/members/{user_id}", MW, 200, prepare=_throwaway_user,
       extra=grants("viewer", "editor"),
       call=lambda s, h, side, p: s.patch(f"/v1/members/{p.id}", headers=h,
                                          json={"role": "editor"}),
       done=lambda s, side, p, r: _role_of(side, p.id) == "editor" or pytest.fail("same"),
       intact=lambda s, side, p: _role_of(side, p.id) == "viewer" or pytest.fail("changed")),
    Op("DELETE /v1/members/{user_id}", MW, 204, prepare=_throwaway_user,
       extra=grants("viewer"),
       call=lambda s, h, side, p: s.delete(f"/v1/members/{p.id}", headers=h),
       done=lambda s, side, p, r: not _is_member(side, p.id) or pytest.fail("still there"),
       intact=lambda s, side, p: _is_member(side, p.id) or pytest.fail("removed")),
    Op("GET /v1/invitations", MR, 200, targets=("A",), prepare=_invitation,
       call=lambda s, h, side, p: s.get("/v1/invitations", headers=h),
       done=lambda s, side, p, r: p["id"] in r.text and p["token"] not in r.text
       or pytest.fail(describe(r))),
    Op("DELETE /v1/invitations/{id}", MW, 204, prepare=_invitation,
       call=lambda s, h, side, p: s.delete(f"/v1/invitations/{p['id']}", headers=h),
       done=lambda s, side, p, r: not _invited(s, side, p["email"]) or pytest.fail("pending"),
       intact=lambda s, side, p: _invited(s, side, p["email"]) or pytest.fail("revoked")),
    Op("GET /v1/audit", AR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/audit", headers=h, params={"limit": 100}),
       done=_list_done("audit")),
    Op("GET /v1/credits", CR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/credits", headers=h),
       done=lambda s, side, p, r: r.json()["workspace_id"] == side.id
       or pytest.fail(describe(r))),
    Op("POST /v1/credits", CW, 201, targets=("A",), prepare=_balance,
       call=lambda s, h, side, p: s.post("/v1/credits", headers=h, json={"amount": 3}),
       done=lambda s, side, p, r: _balance(s, side) == p + 3 or pytest.fail("not added"),
       intact=lambda s, side, p: _balance(s, side) == p or pytest.fail("balance moved")),
    Op("GET /v1/usage", KR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/usage", headers=h),
       done=lambda s, side, p, r: "key_id" not in r.json() and isinstance(r.json()["data"], list)
       or pytest.fail(describe(r))),
    Op("GET /v1/permissions", KR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/permissions", headers=h),
       done=lambda s, side, p, r: isinstance(r.json()["data"], list)
       or pytest.fail(describe(r))),
    Op("GET /v1/quota", KR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/quota", headers=h),
       done=lambda s, side, p, r: r.json()["workspace_id"] == side.id
       or pytest.fail(describe(r))),
    Op("POST /v1/keys/generate-temp workspace_id", KW, 201, extra=sessions_only,
       names_workspace=True,
       call=lambda s, h, side, p: s.post("/v1/keys/generate-temp", headers=h,
                                         json={"workspace_id": side.id}),
       done=_temp_done),
    Op("POST /v1/keys/generate-temp storage_folder_id", KW, 201, extra=sessions_only,
       names_workspace=True,
       call=lambda s, h, side, p: s.post("/v1/keys/generate-temp", headers=h,
                                         json={"storage_folder_id": side.ws.number}),
       done=_temp_done),
    Op("POST /api/keys/generate-temp", KW, 201, extra=sessions_only, names_workspace=True,
       call=lambda s, h, side, p: s.post("/api/keys/generate-temp", headers=h,
                                         json={"workspace_id": side.id}),
       done=_temp_done),
    Op("GET /v1/webhooks", WR, 200, targets=("A",), prepare=_shared_endpoint,
       call=lambda s, h, side, p: s.get("/v1/webhooks", headers=h),
       done=lambda s, side, p, r: p["id"] in r.text and "whsec_" not in r.text
       or pytest.fail(describe(r))),
    Op("POST /v1/webhooks", WW, 201, targets=("A",), prepare=_endpoint_ids,
       call=lambda s, h, side, p: s.post("/v1/webhooks", headers=h, json={
           "url": "https://hooks.example.com/made", "events": ["key.revoked"]}),
       done=lambda s, side, p, r: (r.json()["id"] in _endpoint_ids(s, side) - p
                                   or pytest.fail(describe(r)))
       and _drop_endpoint(s, side, r.json()["id"]),
       intact=lambda s, side, p: _endpoint_ids(s, side) == p or pytest.fail("endpoint made")),
    Op("DELETE /v1/webhooks/{id}", WW, 204, prepare=_endpoint,
       call=lambda s, h, side, p: s.delete(f"/v1/webhooks/{p['id']}", headers=h),
       done=lambda s, side, p, r: p["id"] not in _endpoint_ids(s, side) or pytest.fail("kept"),
       intact=lambda s, side, p: (p["id"] in _endpoint_ids(s, side) or pytest.fail("deleted"))
       and _drop_endpoint(s, side, p["id"])),
    Op("GET /v1/webhooks/{id}/deliveries", WR, 200, prepare=_shared_endpoint,
       call=lambda s, h, side, p: s.get(f"/v1/webhooks/{p['id']}/deliveries", headers=h),
       done=lambda s, side, p, r: isinstance(r.json()["data"], list)
       or pytest.fail(describe(r))),
    Op("GET /v1/webhooks/settings", WR, 200, targets=("A",),
       call=lambda s, h, side, p: s.get("/v1/webhooks/settings", headers=h)),
    Op("PUT /v1/webhooks/settings", WW, 200, targets=("A",), prepare=_threshold,
       call=lambda s, h, side, p: s.request("PUT", "/v1/webhooks/settings", headers=h,
                                            json={"credits_low_threshold": 7}),
       done=lambda s, side, p, r: _threshold(s, side) == 7 or pytest.fail(describe(r)),
       intact=lambda s, side, p: _threshold(s, side) == p or pytest.fail("threshold moved")),
    Op("GET /v1/workspaces", "workspaces:read", 200, targets=("A",), extra=operator_only,
       call=lambda s, h, side, p: s.get("/v1/workspaces", headers=h)),
    Op("POST /v1/workspaces", "workspaces:write", 201, targets=("A",), extra=operator_only,
       prepare=lambda s, side: "ws-by-" + uuid.uuid4().hex[:8],
       call=lambda s, h, side, p: s.post("/v1/workspaces", headers=h, json={"name": p}),
       intact=_workspaces_intact),
    Op("PATCH /v1/workspaces/{id}", "workspaces:write", 200, extra=operator_only,
       prepare=lambda s, side: _quota_of(s, side.id),
       call=lambda s, h, side, p: s.patch(f"/v1/workspaces/{side.id}", headers=h,
                                          json={"quota": 777}),
       intact=lambda s, side, p: _quota_of(s, side.id) == p or pytest.fail("quota set")),
]

CELLS = [pytest.param(op, target, cred, id=f"{op.name}|{target}|{cred}")
         for op in OPS for target in op.targets for cred in CREDS]


def expected_status(op, target, cred):
    if target == "A":
        return op.ok if op.allowed(cred) else 403
    if op.names_workspace and cred in SESSIONS:
        return 404  # the body names B, where the user has no role at all
    if op.names_workspace:
        return 403  # a key never makes temporary keys, wherever
    if "workspaces" in op.need:
        return 403
    # B's object is not found once the credential passes the route's check
    return 404 if op.route_allows(cred) else 403


def test_every_route_is_in_the_matrix():
    """A management route added to the table without a row here fails this test."""
    import re
    from pathlib import Path

    table = Path(__file__).resolve().parents[2] / "src" / "http" / "routes.c"
    routes = re.findall(r'\{"(\w+)", "([^"]+)", NULL, \w+, LK_MPERM_(\w+)\}',
                        table.read_text())
    covered = {(op.name.split()[0], op.name.split()[1]) for op in OPS}
    public = {"NONE"}
    # Unkey's v2 surface answers in Unkey's error shape, not latchkey's: its
    # credentials and sealing are tested route by route in test_unkey_api.py.
    routes = [r for r in routes if not r[1].startswith("/v2/")]
    for method, pattern, need in routes:
        if need in public:
            continue
        shapes = {pattern.replace("{}", x) for x in
                  ("{id}", "{user_id}", "{root id}", "{application id}")}
        assert any((method, p) in covered for p in shapes), f"{method} {pattern} has no Op"


@pytest.mark.parametrize("op,target,cred", CELLS)
def test_cell(server, world, op, target, cred):
    a, b = world
    side = a if target == "A" else b
    expected = expected_status(op, target, cred)
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
    ("GET", "/v1/invitations", None),
    ("GET", "/v1/credits", None),
    ("POST", "/v1/credits", {"amount": 5}),
    ("POST", "/v1/members", {"email": "x-via-b@example.test", "role": "viewer"}),
    ("GET", "/v1/audit", None),
    ("GET", "/v1/usage", None),
    ("GET", "/v1/permissions", None),
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


@pytest.mark.parametrize("cred", [c for c in CREDS if c not in SESSIONS])
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
        for cred in CREDS:
            if cred not in SESSIONS:
                expect_status(server.auth_context(side.secrets[cred]), 200)
        for role in ("owner", "editor", "viewer"):
            expect_status(server.get("/v1/me", key=side.secrets[role]), 200)
        roles = {m["user_id"]: m["role"] for m in side.ws.list_members()["data"]}
        for role, s in side.sessions.items():
            assert roles.get(s.user.id) == role
