"""GET /v1/keys/{id}/openapi: an OpenAPI 3.1 document of the protected API, cut
down to the operations one key may call through forward auth (the route rules,
judged against the key's permissions and environment), with each operation's
cost and the places the key may be sent."""

import pytest

from conftest import LatchkeyServer, SHARED_CONFIG, _finish, _live_servers
from lkhelpers import assert_error, expect_status
from test_openapi import check_structure

RULES = """\
# the protected API
GET    /health             public
GET    /storage/**         storage:read cost=2
PUT    /storage/*/files/*  storage:write
POST   /workflows/*/run    workflows:execute AND billing:pay cost=5
*      /me                 any
DELETE /admin/**           admin:* env=live
GET    /sandbox/**         any env=test
GET    /storage/**         any
"""


@pytest.fixture(scope="module")
def rsrv(tmp_path_factory):
    d = tmp_path_factory.mktemp("keydocs")
    (d / "routes.txt").write_text(RULES)
    srv = LatchkeyServer(d / "srv", config={**SHARED_CONFIG, "routes": str(d / "routes.txt")})
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


@pytest.fixture
def rws(rsrv):
    return rsrv.create_workspace()


def key_doc(srv, w, key_id, key=None):
    doc = expect_status(srv.get(f"/v1/keys/{key_id}/openapi", key=key or w.root_key), 200)
    check_structure(doc)
    return doc


def ops(doc):
    return {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}


def test_key_with_some_permissions(rsrv, rws):
    k = rws.create_key(permissions=["storage:read", "admin:*"])
    doc = key_doc(rsrv, rws, k["id"])
    assert doc["openapi"].startswith("3.1")
    got = ops(doc)
    assert set(got) == {("GET", "/health"), ("GET", "/storage/{rest}"), ("GET", "/me"),
                        ("PUT", "/me"), ("POST", "/me"), ("DELETE", "/me"), ("PATCH", "/me"),
                        ("HEAD", "/me"), ("OPTIONS", "/me"), ("DELETE", "/admin/{rest}")}, set(got)
    st = got[("GET", "/storage/{rest}")]
    assert st["x-latchkey-cost"] == 2 and "2 credits" in st["description"]
    assert st["x-latchkey-permission"] == "storage:read"
    assert [p["name"] for p in st["parameters"]] == ["rest"]
    assert got[("GET", "/health")]["security"] == []       # public: no key
    assert "security" not in got[("GET", "/me")]           # the document's: the key places
    assert doc["x-latchkey-key"]["id"] == k["id"]
    assert doc["x-latchkey-key"]["environment"] == "live"
    places = {(s.get("in"), s.get("name"), s.get("scheme"))
              for s in doc["components"]["securitySchemes"].values()}
    assert places == {(None, None, "bearer"), ("header", "X-API-Key", None),
                      ("header", "X-AUTH-TOKEN", None), ("query", "auth_token", None)}
    assert len(doc["security"]) == 4
    # admin:users does not hold what `admin:*` asks for; storage:read is not storage:write
    narrow = ops(key_doc(rsrv, rws, rws.create_key(permissions=["admin:users"])["id"]))
    assert ("DELETE", "/admin/{rest}") not in narrow
    assert ("PUT", "/storage/{seg1}/files/{seg2}") not in got


def test_query_with_and_needs_both(rsrv, rws):
    one = rws.create_key(permissions=["workflows:execute"])
    both = rws.create_key(permissions=["workflows:*", "billing:pay", "storage:*"])
    assert ("POST", "/workflows/{seg1}/run") not in ops(key_doc(rsrv, rws, one["id"]))
    got = ops(key_doc(rsrv, rws, both["id"]))
    run = got[("POST", "/workflows/{seg1}/run")]
    assert run["x-latchkey-cost"] == 5
    assert ("PUT", "/storage/{seg1}/files/{seg2}") in got
    # the later `GET /storage/** any` is never reached: the earlier rule wins
    assert got[("GET", "/storage/{rest}")]["x-latchkey-permission"] == "storage:read"


def test_empty_permission_key_gets_public_and_any_only(rsrv, rws):
    k = rws.create_key(permissions=[])
    got = ops(key_doc(rsrv, rws, k["id"]))
    assert {p for _, p in got} == {"/health", "/me"}, set(got)
    # `GET /storage/** any` is shadowed by the earlier storage:read rule: not offered
    assert ("GET", "/storage/{rest}") not in got


def test_test_key_skips_live_rules_and_spends_nothing(rsrv, rws):
    k = rws.create_key(environment="test", permissions=["*"])
    doc = key_doc(rsrv, rws, k["id"])
    got = ops(doc)
    assert ("DELETE", "/admin/{rest}") not in got        # env=live
    assert ("GET", "/sandbox/{rest}") in got             # env=test
    assert got[("GET", "/storage/{rest}")]["x-latchkey-cost"] == 0
    assert "test keys spend nothing" in got[("GET", "/storage/{rest}")]["description"]
    assert doc["x-latchkey-key"]["environment"] == "test"
    live = ops(key_doc(rsrv, rws, rws.create_key(permissions=["*"])["id"]))
    assert ("GET", "/sandbox/{rest}") not in live and ("DELETE", "/admin/{rest}") in live


def test_other_workspace_key_is_404(rsrv, rws):
    other = rsrv.create_workspace()
    k = other.create_key()
    assert_error(rsrv.get(f"/v1/keys/{k['id']}/openapi", key=rws.root_key), 404, "not_found")
    assert_error(rsrv.get("/v1/keys/key_nope/openapi", key=rws.root_key), 404, "not_found")
    assert_error(rsrv.get("/v1/keys/" + "k" * 300 + "/openapi", key=rws.root_key), 404, "not_found")


def test_needs_keys_read(rsrv, rws):
    k = rws.create_key()
    assert_error(rsrv.get(f"/v1/keys/{k['id']}/openapi"), 401, "missing_key")
    assert_error(rsrv.get(f"/v1/keys/{k['id']}/openapi", key=k["secret"]), 403,
                 "insufficient_permissions")
    key_doc(rsrv, rws, k["id"], key=rws.ro_key)  # the read-only application key may


def test_without_routes_one_catch_all(server, ws):
    k = ws.create_key(permissions=["x:y"])
    doc = key_doc(server, ws, k["id"])
    assert list(doc["paths"]) == ["/{rest}"]
    item = doc["paths"]["/{rest}"]
    assert set(item) == {"get", "put", "post", "delete", "options", "head", "patch"}
    assert item["get"]["description"].startswith("Any valid key.")
    assert item["get"]["x-latchkey-cost"] == 0


def test_hostile_patterns_still_give_a_document(tmp_path):
    """A pattern of bytes that are not UTF-8 is left out; a pattern of 500 `*`
    segments becomes 500 parameters; neither breaks the document."""
    many = "/" + "/".join(["*"] * 500)
    (tmp_path / "routes").write_bytes(b"GET /\xff/* any\nGET " + many.encode() + b" any\n"
                                      b"GET /ok public\n")
    srv = LatchkeyServer(tmp_path / "srv", config={**SHARED_CONFIG,
                                                   "routes": str(tmp_path / "routes")})
    srv.start()
    _live_servers.append(srv)
    try:
        w = srv.create_workspace()
        doc = key_doc(srv, w, w.create_key()["id"])
        paths = list(doc["paths"])
        assert "/ok" in paths and len(paths) == 2, paths[:3]
        long = next(p for p in paths if p != "/ok")
        assert long.endswith("/{seg500}")
        assert len(doc["paths"][long]["get"]["parameters"]) == 500
    finally:
        _finish(srv)
