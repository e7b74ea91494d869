"""GET /openapi.json: the OpenAPI 3.1 document of latchkey's own HTTP API.

It is docs/openapi.json built into the binary. The route table (src/http/routes.c)
and the document must agree both ways: every route the server answers is
documented, and every documented operation answers (not 404). The JSON examples
of docs/http-api.md and of the document validate against its schemas, and so do
real answers of the server.
"""

import json
import re
import warnings

import pytest

from conftest import REPO
from lkhelpers import describe, expect_status

jsonschema = pytest.importorskip("jsonschema")  # Debian python3-jsonschema (scripts/deps.sh test)

DOC_PATH = REPO / "docs" / "openapi.json"
ROUTES_C = REPO / "src" / "http" / "routes.c"
HTTP_API_MD = REPO / "docs" / "http-api.md"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# methods a `*` route stands for in the document
ANY_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


@pytest.fixture(scope="module")
def doc():
    return json.loads(DOC_PATH.read_text())


def route_table():
    """(METHOD, pattern) of every row of routes.c's table, `{}` as written."""
    text = ROUTES_C.read_text()
    table = text[text.index("routes[] = {"):]
    table = table[:table.index("};")]
    rows = re.findall(r'\{\s*"([A-Z*]+)",\s*"(/[^"]*)"', table)
    assert len(rows) > 20, "could not read the route table of src/http/routes.c"
    # a prefix route (`/v1/forward-auth/**`, or `/x/*`) is one path parameter
    return [(m, re.sub(r"/\*\*?$", "/{}", p)) for m, p in rows]


def norm(path):
    """A path template with its parameter names dropped: /v1/keys/{id} -> /v1/keys/{}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented(doc):
    return {(m.upper(), norm(p)) for p, item in doc["paths"].items() for m in item if m in METHODS}


def schema_validator(doc, name):
    """A validator for components.schemas[name], its $refs resolved in the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema)


def assert_valid(doc, name, instance):
    errors = sorted(schema_validator(doc, name).iter_errors(instance), key=str)
    assert not errors, f"{name} does not accept {instance!r}: {errors[0].message} at {list(errors[0].path)}"


# -- the document's structure ---------------------------------------------------------------

def test_served_document_is_the_repository_file(server, doc):
    r = server.get("/openapi.json")
    served = expect_status(r, 200)
    assert r.headers["Content-Type"].startswith("application/json"), describe(r)
    assert served == doc, "GET /openapi.json differs from docs/openapi.json (rebuild?)"


def test_needs_no_credential_and_ignores_a_bad_one(server):
    expect_status(server.get("/openapi.json", key="lk_live_not_a_key"), 200)
    r = server.post("/openapi.json", json={})
    assert r.status_code == 405, describe(r)


def test_document_is_openapi_3_1(doc):
    check_structure(doc)


def check_structure(doc):
    """The parts of OpenAPI 3.1 a client generator relies on (shared with the
    per-key documents of test_key_docs.py)."""
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"]), doc["openapi"]
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["paths"] and all(p.startswith("/") for p in doc["paths"])
    # every schema is a valid JSON Schema 2020-12 (OpenAPI 3.1's dialect)
    for name in doc["components"].get("schemas", {}):
        schema_validator(doc, name)
    for r in doc["components"].get("responses", {}).values():
        for media in r.get("content", {}).values():
            jsonschema.Draft202012Validator.check_schema(media["schema"])
    op_ids = []
    schemes = doc["components"]["securitySchemes"]
    for path, item in doc["paths"].items():
        params = set(re.findall(r"\{([^}]+)\}", path))
        for m, op in item.items():
            assert m in METHODS, f"{path}: {m} is not an HTTP method"
            op_ids.append(op["operationId"])
            assert op.get("responses"), f"{m} {path} documents no response"
            for code in op["responses"]:
                assert code == "default" or re.fullmatch(r"[1-5]\d\d", code), (path, code)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params, f"{m} {path}: path parameters {declared} vs {params}"
            for req in op.get("security", []):
                assert set(req) <= set(schemes), f"{m} {path}: unknown scheme in {req}"
    assert len(op_ids) == len(set(op_ids)), "operationIds are not unique"


def test_security_schemes_name_every_credential_place(doc):
    places = {(s.get("in"), s.get("name"), s.get("scheme"))
              for s in doc["components"]["securitySchemes"].values()}
    assert (None, None, "bearer") in places
    assert ("header", "X-API-Key", None) in places
    assert ("header", "X-AUTH-TOKEN", None) in places
    assert ("query", "auth_token", None) in places
    assert ("cookie", "lk_session", None) in places


def test_every_error_response_is_the_error_shape(doc):
    err = doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert err == {"$ref": "#/components/schemas/Error"}
    for path, item in doc["paths"].items():
        # Unkey's v2 API answers errors in Unkey's shape (docs/unkey.md).
        shape = "UnkeyError" if path.startswith("/v2/") else "Error"
        for m, op in item.items():
            assert op["responses"].get("default") == {"$ref": f"#/components/responses/{shape}"}, \
                f"{m} {path} does not document the error shape"


# -- routes.c and the document agree ---------------------------------------------------------

def test_every_route_in_the_table_is_documented(doc):
    have = documented(doc)
    missing = []
    for method, pattern in route_table():
        for m in (ANY_METHODS if method == "*" else (method.lower(),)):
            if (m.upper(), pattern) not in have:
                missing.append(f"{m.upper()} {pattern}")
    assert not missing, f"routes the server answers but docs/openapi.json lacks: {missing}"


# Routes the document describes that other parts of the server add; until the
# table has them they are only checked for being documented.
PLANNED = {("GET", "/metrics"), ("GET", "/readyz"), ("*", "/v1/forward-auth/{}")}


def test_planned_routes_are_documented(doc):
    have = documented(doc)
    for method, path in PLANNED:
        for m in (ANY_METHODS if method == "*" else (method.lower(),)):
            assert (m.upper(), path) in have, f"{m.upper()} {path} is not documented"


def test_every_documented_operation_answers(server, doc, ws):
    table_paths = {p for _, p in route_table()}
    pending = []
    for path, item in doc["paths"].items():
        if norm(path) not in table_paths:
            pending.append(path)
            continue
        url = re.sub(r"\{[^}]+\}", "nope0", path)
        for m in item:
            r = server.request(m.upper(), url, key=ws.root_key)
            assert r.status_code != 405, f"{m.upper()} {path} documented, 405: {describe(r)}"
            if r.status_code == 404:
                # an unknown id is 404 too; the route exists when another method is 405
                assert "{" in path and _route_exists(server, m, url), \
                    f"{m.upper()} {path} is documented but answers 404: {describe(r)}"
    unknown = {p for p in pending if ("GET" if "forward" not in p else "*", norm(p)) not in PLANNED}
    assert not unknown, f"documented paths the server lacks: {unknown}"
    if pending:
        warnings.warn(f"documented, not yet in src/http/routes.c: {pending}")


def _route_exists(server, method, url):
    """A 404 for an unknown id differs from an unknown route: the same path with a
    method the route lacks is 405, not 404, when the route exists."""
    other = "PUT" if method.upper() != "PUT" else "TRACE"
    return server.request(other, url).status_code == 405


# -- examples and real answers validate ------------------------------------------------------

def test_schema_examples_validate(doc):
    count = 0
    for name, schema in doc["components"]["schemas"].items():
        for ex in schema.get("examples", []):
            assert_valid(doc, name, ex)
            count += 1
    assert count >= 5, "the document carries too few examples"


def md_json_blocks():
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", HTTP_API_MD.read_text(), re.S)]


def test_http_api_md_examples_validate(doc):
    blocks = md_json_blocks()
    assert len(blocks) >= 2
    seen = set()
    for b in blocks:
        if "error" in b:
            assert_valid(doc, "Error", b)
            seen.add("Error")
        elif str(b.get("id", "")).startswith("key_"):
            # the docs elide timestamps as "..."; the schema leaves format unchecked
            assert_valid(doc, "Key", b)
            seen.add("Key")
        else:
            pytest.fail(f"a JSON example in docs/http-api.md with no schema to check: {b}")
    assert seen == {"Error", "Key"}


def test_a_wrong_example_is_refused(doc):
    """The validation above can fail: a key with a bad environment does not pass."""
    bad = md_json_blocks()[1]
    bad["environment"] = "staging"
    assert list(schema_validator(doc, "Key").iter_errors(bad))
    assert list(schema_validator(doc, "Error").iter_errors({"error": {"code": "nope"}}))


def test_real_answers_validate(server, ws, doc):
    key = ws.create_key(environment="test", permissions=["storage:read"],
                        rate_limit={"limit": 5, "window_s": 60})
    assert_valid(doc, "Key", key)
    assert_valid(doc, "Key", ws.get_key(key["id"]))
    assert_valid(doc, "KeyList", ws.list_keys())
    assert_valid(doc, "VerifyResult", expect_status(server.verify({"key": key["secret"]}), 200))
    assert_valid(doc, "VerifyResult", expect_status(server.verify({"key": "lk_live_x"}), 200))
    assert_valid(doc, "AuthContext", expect_status(server.auth_context(key["secret"]), 200))
    assert_valid(doc, "Status", expect_status(server.get("/healthz"), 200))
    assert_valid(doc, "Quota", expect_status(server.get("/v1/quota", key=ws.root_key), 200))
    assert_valid(doc, "Credits", expect_status(server.get("/v1/credits", key=ws.root_key), 200))
    assert_valid(doc, "WorkspaceList",
                 expect_status(server.get("/v1/workspaces", key=server.root_key), 200))
    assert_valid(doc, "AuditList", expect_status(server.get("/v1/audit", key=ws.root_key), 200))
    assert_valid(doc, "Usage", expect_status(server.get(f"/v1/keys/{key['id']}/usage",
                                                        key=ws.root_key), 200))
    assert_valid(doc, "WorkspaceUsage", expect_status(server.get("/v1/usage", key=ws.root_key),
                                                      200))
    assert_valid(doc, "PermissionList",
                 expect_status(server.get("/v1/permissions", key=ws.root_key), 200))
    assert_valid(doc, "OpenAPIDocument", expect_status(
        server.get(f"/v1/keys/{key['id']}/openapi", key=ws.root_key), 200))
    v2 = expect_status(server.post("/v2/keys.createKey", key=ws.root_key,
                                   json={"apiId": ws.id, "permissions": ["a.b"]}), 200)
    assert_valid(doc, "UnkeyKeySecret", v2)
    assert_valid(doc, "UnkeyVerifyResult", expect_status(
        server.post("/v2/keys.verifyKey", key=ws.root_key, json={"key": v2["data"]["key"],
                                                                 "permissions": "a.b"}), 200))
    assert_valid(doc, "UnkeyKeyResult", expect_status(
        server.post("/v2/keys.getKey", key=ws.root_key, json={"keyId": v2["data"]["keyId"]}), 200))
    assert_valid(doc, "UnkeyKeyList", expect_status(
        server.post("/v2/apis.listKeys", key=ws.root_key, json={"apiId": ws.id}), 200))
    ex = dict(doc["components"]["schemas"]["UnkeyKeyCreate"]["examples"][0], apiId=ws.id)
    assert_valid(doc, "UnkeyKeyCreate", ex)
    made = expect_status(server.post("/v2/keys.createKey", key=ws.root_key, json=ex), 200)
    assert_valid(doc, "UnkeyKeyResult", expect_status(
        server.post("/v2/keys.getKey", key=ws.root_key, json={"keyId": made["data"]["keyId"]}), 200))
    assert_valid(doc, "UnkeyVerifyResult", expect_status(
        server.post("/v2/keys.verifyKey", key=ws.root_key, json={"key": made["data"]["key"]}), 200))
    for r in (server.post("/v2/keys.getKey", key=ws.root_key, json={"keyId": 1}),
              server.post("/v2/keys.getKey", json={})):
        assert_valid(doc, "UnkeyError", r.json())
    for r in (server.get("/v1/keys", key="lk_live_nope"), server.get("/v1/nope"),
              server.post("/v1/keys", key=ws.root_key, json={"name": "x", "bogus": 1})):
        assert_valid(doc, "Error", r.json())


def test_request_examples_are_what_the_server_accepts(server, ws, doc):
    """Each request body's example validates against its schema and is taken by the
    server; a field the schema does not have is refused by both."""
    s = doc["components"]["schemas"]
    ex = {name: s[name]["examples"][0] for name in
          ("KeyCreate", "KeyUpdate", "WorkspaceCreate", "WorkspaceUpdate", "TopUp", "VerifyRequest",
           "MemberAdd")}
    for name, body in ex.items():
        assert_valid(doc, name, body)
    k = expect_status(server.post("/v1/keys", key=ws.root_key, json=ex["KeyCreate"]), 201)
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key, json=ex["KeyUpdate"]), 200)
    w = expect_status(server.post("/v1/workspaces", key=server.root_key,
                                  json=ex["WorkspaceCreate"]), 201)
    expect_status(server.patch(f"/v1/workspaces/{w['id']}", key=server.root_key,
                               json=ex["WorkspaceUpdate"]), 200)
    expect_status(server.post("/v1/credits", key=ws.root_key, json=ex["TopUp"]), 201)
    expect_status(server.post("/v1/verify", json=ex["VerifyRequest"]), 200)
    expect_status(server.post("/v1/members", key=ws.root_key, json=ex["MemberAdd"]), 201)
    for name, path in (("KeyCreate", "/v1/keys"), ("TopUp", "/v1/credits")):
        bad = {**ex[name], "unknown_field": 1}
        assert list(schema_validator(doc, name).iter_errors(bad))
        r = server.post(path, key=ws.root_key, json=bad)
        assert r.status_code == 400 and r.json()["error"]["field"] == "unknown_field", describe(r)
