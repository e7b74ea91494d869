"""Temporary keys minted by a user session: POST /v1/keys/generate-temp and its
Flexweg alias /api/keys/generate-temp (docs/http-api.md, "People")."""

import time

import pytest

from lkhelpers import (SECRET_RE, UNDO_SQLITE_MIGRATIONS_FROM_8, assert_error, assert_error_shape,
                       describe, expect_status, parse_time)

PATHS = ["/v1/keys/generate-temp", "/api/keys/generate-temp"]
ANSWER_FIELDS = ("key", "id", "expires_at", "workspace_id", "permissions")


def gen(server, session, body, path=PATHS[0], **kw):
    return server.post(path, key=session.token, json=body, **kw)


def check_answer(server, ws, r, expires_in, t0, t1, check_ctx=True):
    doc = expect_status(r, 201)
    for f in ANSWER_FIELDS:
        assert f in doc, f"answer lacks {f!r}: {describe(r)}"
    assert SECRET_RE.match(doc["key"]), describe(r)
    assert doc["id"].startswith("key_") and doc["workspace_id"] == ws.id, describe(r)
    exp = parse_time(doc["expires_at"])
    # second precision on both sides
    assert t0 + expires_in - 1.5 <= exp <= t1 + expires_in + 1.5, \
        f"expires_at {doc['expires_at']} vs now+{expires_in}: {describe(r)}"
    if not check_ctx:
        return doc
    ctx = expect_status(server.auth_context(doc["key"]), 200)
    assert ctx["kind"] == "temporary" and ctx["key_id"] == doc["id"], ctx
    assert ctx["workspace_id"] == ws.id
    assert parse_time(ctx["expires_at"]) == exp
    return doc


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ["owner", "editor"])
def test_generate_by_workspace_id(server, ws, role, path):
    s = ws.new_session(role)
    t0 = time.time()
    r = gen(server, s, {"workspace_id": ws.id}, path=path)
    doc = check_answer(server, ws, r, 3600, t0, time.time())
    got = ws.get_key(doc["id"])
    assert got["kind"] == "temporary" and got["status"] == "active"
    assert doc["key"] not in str(got)
    v = expect_status(server.verify({"key": doc["key"]}), 200)
    assert v["valid"] is True and v["key_id"] == doc["id"], v


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ["owner", "editor"])
def test_generate_by_storage_folder_id(server, ws, role, path):
    s = ws.new_session(role)
    t0 = time.time()
    r = gen(server, s, {"storage_folder_id": ws.number}, path=path)
    check_answer(server, ws, r, 3600, t0, time.time())


def test_workspace_numbers_are_distinct_integers(server, ws, ws2):
    assert ws.number != ws2.number
    r = server.get("/v1/workspaces", key=server.root_key)
    nums = [w.get("number") for w in expect_status(r, 200)["data"]]
    assert all(isinstance(n, int) and not isinstance(n, bool) for n in nums), describe(r)
    assert len(nums) == len(set(nums)), nums


def test_storage_folder_of_each_workspace(server, ws, ws2):
    """A user in two workspaces picks one by its number."""
    u = ws.new_user("owner")
    ws2.add_member(u.email, "editor")
    s = server.session(u.email, u.password)
    a = expect_status(gen(server, s, {"storage_folder_id": ws.number}), 201)
    b = expect_status(gen(server, s, {"storage_folder_id": ws2.number}), 201)
    assert a["workspace_id"] == ws.id and b["workspace_id"] == ws2.id
    assert expect_status(server.auth_context(b["key"]), 200)["workspace_id"] == ws2.id
    c = expect_status(gen(server, s, {"workspace_id": ws2.id}), 201)
    assert c["workspace_id"] == ws2.id


@pytest.mark.parametrize("expires_in", [1, 60, 86400])
def test_expires_in_accepted(server, ws, expires_in):
    s = ws.new_session("editor")
    t0 = time.time()
    r = gen(server, s, {"workspace_id": ws.id, "expires_in": expires_in})
    check_answer(server, ws, r, expires_in, t0, time.time(), check_ctx=expires_in > 1)


@pytest.mark.parametrize("expires_in", [86401, 0, -1, 10 ** 9, "60", 1.5, True])
def test_expires_in_out_of_range(server, ws, expires_in):
    s = ws.new_session("owner")
    before = len(ws.list_keys(limit=100)["data"])
    r = gen(server, s, {"workspace_id": ws.id, "expires_in": expires_in})
    assert_error(r, 400, "invalid_request", field="expires_in")
    assert len(ws.list_keys(limit=100)["data"]) == before


def test_permissions_are_kept(server, ws):
    s = ws.new_session("owner")
    r = gen(server, s, {"workspace_id": ws.id, "permissions": ["storage:read", "storage:write"],
                        "name": "agent-7"})
    doc = expect_status(r, 201)
    assert doc["permissions"] == ["storage:read", "storage:write"], describe(r)
    got = ws.get_key(doc["id"])
    assert got["name"] == "agent-7" and got["permissions"] == doc["permissions"]
    v = expect_status(server.verify({"key": doc["key"], "permissions": "storage:write"}), 200)
    assert v["valid"] is True, v
    v = expect_status(server.verify({"key": doc["key"], "permissions": "workflows:execute"}),
                      200)
    assert v["valid"] is False and v["code"] == "insufficient_permissions", v


def test_default_permissions(server, ws):
    s = ws.new_session("editor")
    doc = expect_status(gen(server, s, {"workspace_id": ws.id}), 201)
    assert isinstance(doc["permissions"], list) and doc["permissions"], doc
    assert ws.get_key(doc["id"])["permissions"] == doc["permissions"]


@pytest.mark.parametrize("body,field", [
    ({"permissions": "storage:read"}, "permissions"),
    ({"permissions": [7]}, "permissions"),
    ({"storage_folder_id": "1"}, "storage_folder_id"),
    ({"workspace_id": 5}, "workspace_id"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_input_is_400(server, ws, body, field):
    s = ws.new_session("owner")
    body = dict(body)
    if "storage_folder_id" not in body and "workspace_id" not in body:
        body["workspace_id"] = ws.id
    r = gen(server, s, body)
    assert_error(r, 400, "invalid_request", field=field)


def test_bad_json_is_400(server, ws):
    s = ws.new_session("owner")
    r = server.post(PATHS[0], key=s.token, data=b"[1,2",
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_json")


@pytest.mark.parametrize("path", PATHS)
def test_viewer_is_refused(server, ws, path):
    s = ws.new_session("viewer")
    before = len(ws.list_keys(limit=100)["data"])
    assert_error(gen(server, s, {"workspace_id": ws.id}, path=path), 403,
                 "insufficient_permissions")
    assert_error(gen(server, s, {"storage_folder_id": ws.number}, path=path), 403,
                 "insufficient_permissions")
    assert len(ws.list_keys(limit=100)["data"]) == before


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("which", ["root", "rw", "ro", "permanent", "operator"])
def test_keys_are_refused(server, ws, which, path):
    key = {"root": ws.root_key, "rw": ws.rw_key, "ro": ws.ro_key,
           "operator": server.root_key}.get(which)
    if which == "permanent":
        key = ws.create_key()["secret"]
    before = len(ws.list_keys(limit=100)["data"])
    for body in ({"workspace_id": ws.id}, {"storage_folder_id": ws.number},
                 {"workspace_id": ws.id, "expires_in": 60, "permissions": ["storage:read"]}):
        r = server.post(path, key=key, json=body)
        assert_error(r, 403, "insufficient_permissions")
    assert len(ws.list_keys(limit=100)["data"]) == before


@pytest.mark.parametrize("body", [{}, {"expires_in": 999999}, {"workspace_id": 5}])
def test_keys_are_refused_whatever_the_body(server, ws, body):
    """A key may never mint temporary keys: 403 comes before any body check."""
    r = server.post(PATHS[0], key=ws.root_key, json=body)
    assert_error(r, 403, "insufficient_permissions")


def test_no_credential_is_401(server, ws):
    assert_error(server.post(PATHS[0], json={"workspace_id": ws.id}), 401, "missing_key")
    assert_error(server.post(PATHS[1], json={"workspace_id": ws.id}), 401, "missing_key")


@pytest.mark.parametrize("path", PATHS)
def test_workspace_not_a_member_of_is_404(server, ws, ws2, path):
    s = ws.new_session("owner")
    before = len(ws2.list_keys(limit=100)["data"])
    assert_error(gen(server, s, {"workspace_id": ws2.id}, path=path), 404, "not_found")
    assert_error(gen(server, s, {"storage_folder_id": ws2.number}, path=path), 404,
                 "not_found")
    assert_error(gen(server, s, {"storage_folder_id": 999999999}, path=path), 404, "not_found")
    assert_error(gen(server, s, {"workspace_id": "ws_doesnotexist000"}, path=path), 404,
                 "not_found")
    assert len(ws2.list_keys(limit=100)["data"]) == before


def test_logged_out_session_cannot_mint(server, ws):
    s = ws.new_session("owner")
    assert server.post("/v1/auth/logout", key=s.token).status_code == 204
    assert_error_shape(gen(server, s, {"workspace_id": ws.id}), (401,))


def test_temp_key_listed_as_temporary(server, ws):
    s = ws.new_session("editor")
    doc = expect_status(gen(server, s, {"workspace_id": ws.id}), 201)
    listed = {k["id"]: k for k in ws.list_keys(limit=100)["data"]}
    assert listed[doc["id"]]["kind"] == "temporary"
    assert listed[doc["id"]]["expires_at"] is not None
    assert doc["key"] not in str(listed)


def test_temp_key_can_be_revoked(server, ws):
    s = ws.new_session("editor")
    doc = expect_status(gen(server, s, {"workspace_id": ws.id}), 201)
    assert server.delete(f"/v1/keys/{doc['id']}", key=s.token).status_code == 204
    assert_error(server.auth_context(doc["key"]), 401, "revoked_key")


def test_expiry_to_the_second(server, ws):
    s = ws.new_session("owner")
    r = gen(server, s, {"workspace_id": ws.id, "expires_in": 2})
    doc = expect_status(r, 201)
    exp = parse_time(doc["expires_at"])
    v = expect_status(server.verify({"key": doc["key"]}), 200)
    assert v["valid"] is True and v["code"] == "valid", v
    last_valid_start = None
    deadline = time.time() + 6
    while True:
        started = time.time()
        v = expect_status(server.verify({"key": doc["key"]}), 200)
        ended = time.time()
        if v["code"] != "valid":
            break
        last_valid_start = started
        assert ended < deadline, f"still valid {ended - exp:.2f}s after expires_at"
        time.sleep(0.02)
    assert v["valid"] is False and v["code"] == "expired_key", v
    # not before expires_at (1 s of clock granularity allowed) ...
    assert ended >= exp - 1.0, f"expired {exp - ended:.2f}s before expires_at {doc['expires_at']}"
    # ... and soon after it
    assert started <= exp + 1.5, f"still valid {started - exp:.2f}s after expires_at"
    if last_valid_start is not None:
        assert last_valid_start < exp + 0.25, \
            f"valid at {last_valid_start - exp:.2f}s past expires_at"
    assert_error(server.auth_context(doc["key"]), 401, "expired_key")
    assert ws.get_key(doc["id"])["status"] == "expired"


# -- a temporary key always expires, within 86400 s of its creation ------------------------

def _bad_expiries(now):
    return [
        "1970-01-01T00:00:00Z", 0, "1969-12-31T23:59:59Z", -1, now - 10,
        "2001-01-01T00:00:00Z", now + 86400 + 60, "9999-12-31T23:59:59Z", 253402300799,
    ]


@pytest.mark.parametrize("i", range(len(_bad_expiries(0))))
def test_create_temporary_refuses_expiry_outside_the_day(server, ws, i):
    value = _bad_expiries(int(time.time()))[i]
    r = server.post("/v1/keys", key=ws.root_key,
                    json={"name": "t", "kind": "temporary", "expires_at": value})
    assert_error(r, 400, "invalid_request", field="expires_at")


@pytest.mark.parametrize("value", [86401, 315360000])
def test_create_temporary_refuses_long_expires_in(server, ws, value):
    r = server.post("/v1/keys", key=ws.root_key,
                    json={"name": "t", "kind": "temporary", "expires_in": value})
    assert_error(r, 400, "invalid_request", field="expires_in")


def test_create_temporary_with_expires_at_inside_the_day(server, ws):
    target = int(time.time()) + 86000
    doc = ws.create_key(kind="temporary", expires_at=target)
    assert parse_time(doc["expires_at"]) == target, doc


def test_epoch_is_not_no_expiry_for_any_key(server, ws):
    """"1970-01-01T00:00:00Z" is a time in the past, not "never": 400 on create,
    and on PATCH it does not clear an expiry."""
    r = server.post("/v1/keys", key=ws.root_key,
                    json={"name": "p", "expires_at": "1970-01-01T00:00:00Z"})
    assert_error(r, 400, "invalid_request", field="expires_at")
    k = ws.create_key(expires_in=600)
    for value in ("1970-01-01T00:00:00Z", 0):
        r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"expires_at": value})
        assert_error(r, 400, "invalid_request", field="expires_at")
    assert ws.get_key(k["id"])["expires_at"] == k["expires_at"]


def test_patch_temporary_expiry_stays_inside_the_day(server, ws):
    k = ws.create_key(kind="temporary", expires_in=600)
    created = int(parse_time(k["created_at"]))
    for value in [None] + _bad_expiries(int(time.time())) + [created + 86400 + 1]:
        r = server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json={"expires_at": value})
        assert_error(r, 400, "invalid_request", field="expires_at")
    got = ws.get_key(k["id"])
    assert got["expires_at"] == k["expires_at"] and got["status"] == "active", got
    ok = created + 86400
    doc = expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                                     json={"expires_at": ok}), 200)
    assert parse_time(doc["expires_at"]) == ok, doc


@pytest.mark.parametrize("body,field", [
    ({"expires_in": 0}, "expires_in"),
    ({"expires_in": -5}, "expires_in"),
    ({"expires_in": 86401}, "expires_in"),
    ({"expires_at": "1970-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": 0}, "expires_at"),
])
def test_generate_temp_refuses_expiry_outside_the_day(server, ws, body, field):
    s = ws.new_session("owner")
    r = gen(server, s, {"workspace_id": ws.id, **body})
    assert_error(r, 400, "invalid_request", field=field)


@pytest.mark.sqlite_only("rewrites an SQLite file to the schema before SQLite migration 4")
def test_migration_ends_immortal_temporary_keys(fresh_server):
    """A temporary key an epoch expires_at made immortal before the fix gets an end
    a day after its creation when the database is migrated."""
    import sqlite3

    srv = fresh_server
    ws = srv.create_workspace()
    k = ws.create_key(kind="temporary", expires_in=600)
    srv.stop()
    db = sqlite3.connect(srv.db_path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.executescript("DROP TRIGGER key_digests_insert; DROP TRIGGER key_digests_update;"
                         "DROP TRIGGER key_digests_delete; DROP TABLE key_digests;"
                         "DROP TABLE invitations;"  # migration 5, after the one tested
                         # and migration 6 (the change log, nodes, leases)
                         "DROP TRIGGER changes_key_insert; DROP TRIGGER changes_key_update;"
                         "DROP TRIGGER changes_ws_insert; DROP TRIGGER changes_ws_update;"
                         "DROP TRIGGER changes_member_insert; DROP TRIGGER changes_member_update;"
                         "DROP TRIGGER changes_member_delete; DROP TABLE changes;"
                         "DROP TABLE nodes; DROP TABLE credit_leases;"
                         + UNDO_SQLITE_MIGRATIONS_FROM_8)
        db.execute("UPDATE keys SET expires_at = NULL WHERE id = ?", (k["id"],))
        db.execute("PRAGMA user_version = 3")  # before migration 4, which ends them
        db.commit()
    finally:
        db.close()
    srv.start()
    got = ws.get_key(k["id"])
    assert parse_time(got["expires_at"]) == parse_time(got["created_at"]) + 86400, got
