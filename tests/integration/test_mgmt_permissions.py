"""Management permissions (docs/http-api.md "Permissions"): every management endpoint
needs one named permission, and a credential's own permissions bound what it may do.

For each endpoint a root key holding every management permission but the one the
endpoint needs gets 403 `insufficient_permissions` and changes nothing; the same key,
given that permission, succeeds. Roles and application keys hold fixed sets.
"""

import uuid

import pytest

from lkhelpers import assert_error, describe, expect_status, new_email

WS_PERMS = ["keys:read", "keys:write", "members:read", "members:write", "credits:read",
            "credits:write", "audit:read", "webhooks:read", "webhooks:write"]
OPERATOR_PERMS = WS_PERMS + ["workspaces:read", "workspaces:write"]


def _root_key(ws, perms, key=None):
    return ws.create_key(key=key, name="r-" + uuid.uuid4().hex[:6], kind="root",
                         permissions=perms)


def _set_perms(server, ws, key_id, perms, key=None):
    r = server.patch(f"/v1/keys/{key_id}", key=key or ws.root_key,
                     json={"permissions": perms})
    expect_status(r, 200)


def _key_names(ws):
    return {k["name"] for k in ws.list_keys(limit=100)["data"]}


def _member_emails(ws):
    return {m["email"] for m in ws.list_members()["data"]}


def _balance(server, ws):
    return expect_status(server.get("/v1/credits", key=ws.root_key), 200)["balance"]


class Row:
    """One endpoint: the permission it needs, how to call it, what success looks
    like. prepare(server, ws) -> prep; call(server, key, ws, prep) -> response;
    changed(server, ws, prep) -> True once the call took effect (None: a read)."""

    def __init__(self, name, need, ok, call, prepare=None, changed=None, operator=False):
        self.name, self.need, self.ok, self.call = name, need, ok, call
        self.prepare = prepare or (lambda server, ws: None)
        self.changed = changed
        self.operator = operator


def _plain_key(server, ws):
    return ws.create_key(name="target-" + uuid.uuid4().hex[:6])


def _viewer(server, ws):
    return ws.new_user("viewer", tag="perm-target")


def _other_user_email(server, ws):
    # A person who already exists elsewhere: inviting needs no password.
    other = server.create_workspace()
    return other.new_user("viewer", tag="elsewhere").email


ROWS = [
    Row("GET /v1/keys", "keys:read", 200,
        lambda s, k, ws, p: s.get("/v1/keys", key=k)),
    Row("POST /v1/keys", "keys:write", 201,
        lambda s, k, ws, p: s.post("/v1/keys", key=k, json={"name": p}),
        prepare=lambda s, ws: "made-" + uuid.uuid4().hex[:6],
        changed=lambda s, ws, p: p in _key_names(ws)),
    Row("GET /v1/keys/{id}", "keys:read", 200,
        lambda s, k, ws, p: s.get(f"/v1/keys/{p['id']}", key=k), prepare=_plain_key),
    Row("PATCH /v1/keys/{id}", "keys:write", 200,
        lambda s, k, ws, p: s.patch(f"/v1/keys/{p['id']}", key=k, json={"name": "patched"}),
        prepare=_plain_key,
        changed=lambda s, ws, p: ws.get_key(p["id"])["name"] == "patched"),
    Row("DELETE /v1/keys/{id}", "keys:write", 204,
        lambda s, k, ws, p: s.delete(f"/v1/keys/{p['id']}", key=k), prepare=_plain_key,
        changed=lambda s, ws, p: ws.get_key(p["id"])["status"] == "revoked"),
    Row("POST /v1/keys/{id}/regenerate", "keys:write", 200,
        lambda s, k, ws, p: s.post(f"/v1/keys/{p['id']}/regenerate", key=k, json={}),
        prepare=_plain_key,
        changed=lambda s, ws, p: s.auth_context(p["secret"]).status_code == 401),
    Row("GET /v1/keys/{id}/usage", "keys:read", 200,
        lambda s, k, ws, p: s.get(f"/v1/keys/{p['id']}/usage", key=k), prepare=_plain_key),
    Row("GET /v1/quota", "keys:read", 200, lambda s, k, ws, p: s.get("/v1/quota", key=k)),
    Row("GET /v1/credits", "credits:read", 200, lambda s, k, ws, p: s.get("/v1/credits", key=k)),
    Row("POST /v1/credits", "credits:write", 201,
        lambda s, k, ws, p: s.post("/v1/credits", key=k, json={"amount": 7}),
        prepare=lambda s, ws: _balance(s, ws),
        changed=lambda s, ws, p: _balance(s, ws) == p + 7),
    Row("GET /v1/members", "members:read", 200, lambda s, k, ws, p: s.get("/v1/members", key=k)),
    Row("POST /v1/members", "members:write", 201,
        lambda s, k, ws, p: s.post("/v1/members", key=k, json={"email": p, "role": "viewer"}),
        prepare=_other_user_email),
    Row("DELETE /v1/members/{user_id}", "members:write", 204,
        lambda s, k, ws, p: s.delete(f"/v1/members/{p.id}", key=k), prepare=_viewer,
        changed=lambda s, ws, p: p.email not in _member_emails(ws)),
    Row("GET /v1/audit", "audit:read", 200, lambda s, k, ws, p: s.get("/v1/audit", key=k)),
    Row("GET /v1/webhooks", "webhooks:read", 200,
        lambda s, k, ws, p: s.get("/v1/webhooks", key=k)),
    # (POST /v1/webhooks needs a master key, which the shared PostgreSQL server lacks;
    # test_webhooks.py::test_permissions covers it)
    Row("PUT /v1/webhooks/settings", "webhooks:write", 200,
        lambda s, k, ws, p: s.request("PUT", "/v1/webhooks/settings", key=k,
                                      json={"credits_low_threshold": p}),
        prepare=lambda s, ws: 1000 + int(uuid.uuid4().hex[:4], 16),
        changed=lambda s, ws, p: expect_status(s.get("/v1/webhooks/settings", key=ws.root_key),
                                               200)["credits_low_threshold"] == p),
    Row("GET /v1/webhooks/settings", "webhooks:read", 200,
        lambda s, k, ws, p: s.get("/v1/webhooks/settings", key=k)),
    Row("GET /v1/workspaces", "workspaces:read", 200,
        lambda s, k, ws, p: s.get("/v1/workspaces", key=k), operator=True),
    Row("POST /v1/workspaces", "workspaces:write", 201,
        lambda s, k, ws, p: s.post("/v1/workspaces", key=k, json={"name": p}),
        prepare=lambda s, ws: "ws-" + uuid.uuid4().hex[:8], operator=True,
        changed=lambda s, ws, p: p in {w["name"] for w in expect_status(
            s.get("/v1/workspaces", key=s.root_key), 200)["data"]}),
    Row("PATCH /v1/workspaces/{id}", "workspaces:write", 200,
        lambda s, k, ws, p: s.patch(f"/v1/workspaces/{p.id}", key=k, json={"quota": 1234}),
        prepare=lambda s, ws: s.create_workspace(), operator=True,
        changed=lambda s, ws, p: any(w["id"] == p.id and w.get("quota") == 1234
                                     for w in expect_status(
                                         s.get("/v1/workspaces", key=s.root_key), 200)["data"])),
]


class OperatorWs:
    """The operator workspace, as a Workspace-like object its root key manages."""

    def __init__(self, server):
        self.server = server
        self.root_key = server.root_key

    def create_key(self, key=None, **body):
        r = self.server.post("/v1/keys", key=key or self.root_key, json=body)
        return expect_status(r, 201)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_lacking_exactly_the_needed_permission(server, ws, row):
    home = OperatorWs(server) if row.operator else ws
    every = OPERATOR_PERMS if row.operator else WS_PERMS
    assert row.need in every
    k = _root_key(home, [p for p in every if p != row.need])

    prep = row.prepare(server, ws)
    r = row.call(server, k["secret"], ws, prep)
    err = assert_error(r, 403, "insufficient_permissions")
    assert row.need in err["message"], describe(r)
    if row.changed is not None:
        assert not row.changed(server, ws, prep), f"took effect anyway: {describe(r)}"

    # The same key, given the one permission, may.
    r = server.patch(f"/v1/keys/{k['id']}", key=home.root_key, json={"permissions": every})
    expect_status(r, 200)
    r = row.call(server, k["secret"], ws, prep)
    assert r.status_code == row.ok, f"expected {row.ok}: {describe(r)}"
    if row.changed is not None:
        assert row.changed(server, ws, prep), f"no effect: {describe(r)}"


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_only_the_needed_permission_is_enough(server, ws, row):
    """A key holding only what the endpoint needs (and, to grant a role, what the role
    holds) may call it."""
    home = OperatorWs(server) if row.operator else ws
    perms = [row.need]
    if "/v1/members" in row.name and row.name != "GET /v1/members":
        perms += ["keys:read", "members:read", "credits:read", "audit:read", "webhooks:read"]
    k = _root_key(home, perms)
    prep = row.prepare(server, ws)
    r = row.call(server, k["secret"], ws, prep)
    assert r.status_code == row.ok, f"expected {row.ok}: {describe(r)}"


def test_workspaces_need_the_operator_workspace(server, ws):
    """workspaces:* is held only by root keys of the operator workspace: another
    workspace's root key with `*` gets 403."""
    assert_error(server.get("/v1/workspaces", key=ws.root_key), 403, "insufficient_permissions")
    r = server.post("/v1/workspaces", key=ws.root_key, json={"name": "nope"})
    assert_error(r, 403, "insufficient_permissions")


# -- the reproduced hole ------------------------------------------------------------------

def test_keys_read_root_key_cannot_touch_people_or_money(server, ws):
    """A root key restricted to keys:read adds no member, removes none, tops up nothing."""
    k = _root_key(ws, ["keys:read"])["secret"]
    victim = ws.new_user("viewer", tag="stays")
    email = new_email("intruder")
    before = _balance(server, ws)

    for body in ({"email": email, "role": "owner"},
                 {"email": email, "role": "owner", "password": "chosen-by-the-key"},
                 {"email": victim.email, "role": "owner"}):
        r = server.post("/v1/members", key=k, json=body)
        assert_error(r, 403, "insufficient_permissions")
    assert_error(server.delete(f"/v1/members/{victim.id}", key=k), 403,
                 "insufficient_permissions")
    assert_error(server.post("/v1/credits", key=k, json={"amount": 1000}), 403,
                 "insufficient_permissions")

    roles = {m["email"]: m["role"] for m in ws.list_members()["data"]}
    assert email not in roles and roles[victim.email] == "viewer"
    assert _balance(server, ws) == before
    assert_error(server.login(email, "chosen-by-the-key"), 401, "invalid_credentials")
    # It still reads keys.
    expect_status(server.get("/v1/keys", key=k), 200)


def test_no_credential_grants_more_than_it_holds(server, ws):
    """Keys narrowed below `*` cannot climb back: no new root key, no change to a
    root or application key (whose secret would carry more), no role above their own."""
    k = _root_key(ws, ["keys:read", "keys:write"])
    me = k["secret"]
    r = server.post("/v1/keys", key=me, json={"name": "climb", "kind": "root"})
    assert_error(r, 403, "insufficient_permissions")
    r = server.patch(f"/v1/keys/{k['id']}", key=me, json={"permissions": ["*"]})
    assert_error(r, 403, "insufficient_permissions")
    root_id = expect_status(server.auth_context(ws.root_key), 200)["key_id"]
    r = server.post(f"/v1/keys/{root_id}/regenerate", key=me, json={})
    assert_error(r, 403, "insufficient_permissions")
    rw_id = expect_status(server.auth_context(ws.rw_key), 200)["key_id"]
    r = server.post(f"/v1/keys/{rw_id}/regenerate", key=me, json={})
    assert_error(r, 403, "insufficient_permissions")
    expect_status(server.auth_context(ws.root_key), 200)
    expect_status(server.auth_context(ws.rw_key), 200)
    # Plain keys it manages as before.
    expect_status(server.post("/v1/keys", key=me, json={"name": "plain"}), 201)

    # members:write alone may not make an owner, nor touch one.
    m = _root_key(ws, ["members:write", "members:read"])["secret"]
    other = server.create_workspace().new_user("viewer", tag="elsewhere")
    r = server.post("/v1/members", key=m, json={"email": other.email, "role": "owner"})
    assert_error(r, 403, "insufficient_permissions", field="role")
    owner = ws.new_user("owner", tag="kept")
    assert_error(server.delete(f"/v1/members/{owner.id}", key=m), 403,
                 "insufficient_permissions")
    assert owner.email in _member_emails(ws)


# -- fixed sets -------------------------------------------------------------------------

ROLE_TABLE = [
    # (credential, method, path, body, allowed)
    ("ro", "GET", "/v1/credits", None, True),
    ("ro", "GET", "/v1/members", None, True),
    ("ro", "GET", "/v1/audit", None, True),
    ("ro", "POST", "/v1/keys", {"name": "x"}, False),
    ("rw", "POST", "/v1/keys", {"name": "x"}, True),
    ("rw", "POST", "/v1/credits", {"amount": 1}, False),
    ("rw", "DELETE", "/v1/members/usr_nobody", None, False),
    ("editor", "POST", "/v1/keys", {"name": "x"}, True),
    ("editor", "GET", "/v1/credits", None, True),
    ("editor", "POST", "/v1/credits", {"amount": 1}, False),
    ("editor", "DELETE", "/v1/members/usr_nobody", None, False),
    ("viewer", "POST", "/v1/keys", {"name": "x"}, False),
    ("viewer", "POST", "/v1/keys/generate-temp", {}, False),
    ("viewer", "GET", "/v1/audit", None, True),
    ("owner", "POST", "/v1/credits", {"amount": 1}, True),
    ("owner", "GET", "/v1/workspaces", None, False),
]


@pytest.mark.parametrize("cred,method,path,body,allowed", ROLE_TABLE,
                         ids=[f"{c} {m} {p}" for c, m, p, _, _ in ROLE_TABLE])
def test_fixed_sets(server, ws, cred, method, path, body, allowed):
    if cred in ("ro", "rw"):
        secret = ws.ro_key if cred == "ro" else ws.rw_key
    else:
        secret = ws.new_session(cred).token
    if path.endswith("generate-temp") and body == {}:
        body = {"workspace_id": ws.id}
    kw = {} if body is None else {"json": body}
    r = server.request(method, path, key=secret, **kw)
    if allowed:
        assert r.status_code < 300, describe(r)
    else:
        assert_error(r, 403, "insufficient_permissions")
