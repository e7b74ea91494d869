"""POST /v1/verify: always 200 with a code for a well-formed body; 4xx for a bad body."""

import json

import pytest
import requests

from lkhelpers import (HTTP_TIMEOUT, assert_error, assert_error_shape, describe,
                       expect_status, flip_char, make_secret, send_streaming)

RESULT_FIELDS = ("valid", "code", "key_id", "workspace_id", "environment", "kind",
                 "permissions", "expires_at")


def verify(server, body):
    r = server.verify(body)
    doc = expect_status(r, 200)
    for f in RESULT_FIELDS:
        assert f in doc, f"verify answer lacks {f!r}: {describe(r)}"
    return doc, r


def raw_post(server, data, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return requests.post(server.url("/v1/verify"), data=data, headers=h, timeout=HTTP_TIMEOUT)


def test_valid_key(server, ws):
    k = ws.create_key(name="v", permissions=["storage:read"])
    doc, r = verify(server, {"key": k["secret"]})
    assert doc["valid"] is True and doc["code"] == "valid", describe(r)
    assert doc["key_id"] == k["id"] and doc["workspace_id"] == ws.id, describe(r)
    assert doc["environment"] == "live" and doc["kind"] == "permanent", describe(r)
    assert doc["permissions"] == ["storage:read"], describe(r)
    assert doc["expires_at"] is None, describe(r)
    assert k["secret"] not in r.text


def test_verify_needs_no_credential_header(server, ws):
    # The key under test is in the body; a garbage header must not change the answer.
    k = ws.create_key()
    r = server.post("/v1/verify", json={"key": k["secret"]},
                    headers={"Authorization": "Bearer nonsense"})
    assert expect_status(r, 200)["code"] == "valid", describe(r)


@pytest.mark.parametrize("secret,code", [
    ("garbage", "malformed_key"),
    (make_secret(), "invalid_key"),
    (flip_char(make_secret(), -1), "malformed_key"),
])
def test_refused_keys_answer_200_with_code(server, secret, code):
    doc, r = verify(server, {"key": secret})
    assert doc["valid"] is False and doc["code"] == code, describe(r)
    for f in ("key_id", "workspace_id", "environment", "kind", "permissions", "expires_at"):
        assert doc[f] is None, f"{f} should be null for an unknown key: {describe(r)}"
    assert secret not in r.text


def test_missing_key_field(server):
    doc, r = verify(server, {})
    assert doc["valid"] is False and doc["code"] == "missing_key", describe(r)


def test_revoked_key(server, ws):
    k = ws.create_key()
    assert server.delete(f"/v1/keys/{k['id']}", key=ws.root_key).status_code == 204
    doc, r = verify(server, {"key": k["secret"]})
    assert doc["valid"] is False and doc["code"] == "revoked_key", describe(r)
    assert doc["key_id"] == k["id"], describe(r)


def test_disabled_key(server, ws):
    k = ws.create_key()
    expect_status(server.patch(f"/v1/keys/{k['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    doc, r = verify(server, {"key": k["secret"]})
    assert doc["valid"] is False and doc["code"] == "inactive_key", describe(r)


# expired_key through /v1/verify is checked in test_auth_context.py, next to the
# one wait for a key to run out.


def test_environment_mismatch(server, ws):
    test_key = ws.create_key(environment="test")
    live_key = ws.create_key()
    assert test_key["secret"].startswith("lk_test_")
    doc, r = verify(server, {"key": test_key["secret"], "environment": "live"})
    assert doc["valid"] is False and doc["code"] == "environment_mismatch", describe(r)
    doc, r = verify(server, {"key": live_key["secret"], "environment": "test"})
    assert doc["valid"] is False and doc["code"] == "environment_mismatch", describe(r)
    doc, r = verify(server, {"key": test_key["secret"], "environment": "test"})
    assert doc["valid"] is True and doc["environment"] == "test", describe(r)
    doc, r = verify(server, {"key": test_key["secret"]})
    assert doc["valid"] is True, describe(r)


@pytest.mark.parametrize("perms,query,ok", [
    (["storage:read", "workflows:execute"], "storage:read", True),
    (["storage:read", "workflows:execute"], "storage:write", False),
    (["storage:read", "workflows:execute"],
     "storage:read AND (workflows:read OR workflows:execute)", True),
    (["storage:read", "workflows:execute"], "storage:read AND workflows:read", False),
    (["storage:*"], "storage:write", True),
    (["storage:*"], "workflows:read", False),
    (["*"], "content.products:update", True),
    (["*:read"], "storage:read", True),
    (["*:read"], "storage:write", False),
    (["content.products:*"], "content.products:update", True),
    (["content.products:update"], "content.pages:update", False),
    (["storage:read"], "storage:read OR workflows:execute", True),
    (["storage:read"], "(storage:write OR workflows:execute) AND storage:read", False),
])
def test_permission_queries(server, ws, perms, query, ok):
    k = ws.create_key(permissions=perms)
    doc, r = verify(server, {"key": k["secret"], "permissions": query})
    if ok:
        assert doc["valid"] is True and doc["code"] == "valid", describe(r)
    else:
        assert doc["valid"] is False and doc["code"] == "insufficient_permissions", describe(r)


@pytest.mark.parametrize("data", [
    b"{",
    b"not json",
    b'{"key": "abc"',
    b"[]",
    b'"lk_live_x"',
    b"",
])
def test_bad_json(server, data):
    assert_error(raw_post(server, data), 400, "bad_json")


def test_unknown_field(server, ws):
    k = ws.create_key()
    r = server.verify({"key": k["secret"], "colour": "blue"})
    assert_error(r, 400, "invalid_request", field="colour")


@pytest.mark.parametrize("body,field", [
    ({"key": 5}, "key"),
    ({"key": ["a"]}, "key"),
    ({"key": make_secret(), "environment": "staging"}, "environment"),
    ({"key": make_secret(), "environment": 1}, "environment"),
    ({"key": make_secret(), "permissions": ["storage:read"]}, "permissions"),
    ({"key": make_secret(), "cost": "5"}, "cost"),
    ({"key": make_secret(), "cost": 1.5}, "cost"),
    ({"key": make_secret(), "cost": -1}, "cost"),
])
def test_wrong_types_name_the_field(server, body, field):
    r = server.verify(body)
    assert_error(r, 400, "invalid_request", field=field)


def test_huge_number_is_rejected(server):
    r = raw_post(server, b'{"key": "x", "cost": 123456789012345678901234567890}')
    # valid JSON, so invalid_request is the better answer; a parser limit is tolerated
    err = assert_error_shape(r, [400])
    assert err["code"] in ("invalid_request", "bad_json"), describe(r)


def test_deep_nesting_is_rejected_not_crashed(server):
    depth = 20000
    r = raw_post(server, b'{"key": ' + b"[" * depth + b"]" * depth + b"}")
    err = assert_error_shape(r, [400])
    assert err["code"] in ("bad_json", "invalid_request"), describe(r)
    expect_status(server.get("/healthz"), 200)


def test_body_at_limit_is_accepted(server, ws):
    k = ws.create_key()
    doc = json.dumps({"key": k["secret"]}).encode()
    data = doc + b" " * (65536 - len(doc))
    assert len(data) == 65536
    r = raw_post(server, data)
    assert expect_status(r, 200)["code"] == "valid", describe(r)


def test_body_over_64k_is_413(server, ws):
    k = ws.create_key()
    doc = json.dumps({"key": k["secret"]}).encode()
    data = doc + b" " * (65537 - len(doc))
    r = send_streaming(server.port, "POST", "/v1/verify",
                       {"Content-Type": "application/json"}, data)
    assert_error(r, 413, "payload_too_large")
    assert k["secret"] not in r.text


def test_chunked_body_over_64k_is_413(server):
    data = b'{"key": "' + b"a" * (20 * 8192) + b'"}'
    r = send_streaming(server.port, "POST", "/v1/verify",
                       {"Content-Type": "application/json"}, data, chunked=True)
    assert_error(r, 413, "payload_too_large")


def test_chunked_body_small_is_fine(server, ws):
    k = ws.create_key()
    data = json.dumps({"key": k["secret"]}).encode()
    r = send_streaming(server.port, "POST", "/v1/verify",
                       {"Content-Type": "application/json"}, data, chunked=True)
    assert expect_status(r, 200)["code"] == "valid", describe(r)


@pytest.mark.parametrize("query", ["storage:read AND (", "AND", "storage:read OR OR x:y"])
def test_bad_permission_query_is_400(server, ws, query):
    k = ws.create_key()
    r = server.verify({"key": k["secret"], "permissions": query})
    # docs/http-api.md lists invalid_request for a bad value; a dedicated code is tolerated.
    err = assert_error_shape(r, [400])
    assert err["code"] in ("invalid_request", "invalid_permission_query"), describe(r)
    assert_error(r, 400, err["code"], field="permissions")


@pytest.mark.parametrize("template", [
    b'{"key": %s}',            # the shell-script mistake: the secret unquoted
    b'{"key": "%s',            # unterminated string
    b'{"key": "%s", }',        # trailing comma
    b'{"key": "%s\\q"}',       # bad escape right after the secret
    b'{"key": "%s", "colour": 1}',
    b'{"key": ["%s"]}',
])
def test_errors_never_echo_the_secret(server, ws, template):
    k = ws.create_key()
    body = template % k["secret"].encode()
    r = raw_post(server, body)
    assert_error_shape(r, [400])
    assert k["secret"] not in r.text and k["secret"][-49:-6] not in r.text, describe(r)
    assert k["secret"][8:20] not in r.text, f"part of the secret echoed: {describe(r)}"
