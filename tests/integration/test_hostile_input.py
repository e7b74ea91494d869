"""Hostile JSON bodies against every endpoint that reads one: field names with
multi-byte characters across the 64-byte quoting bound, invalid UTF-8, control
characters, huge names, cut-off input. Each must get a 400 in the error shape
whose body is valid UTF-8, and the server must stay up (docs/http-api.md,
"Errors")."""

import json

import pytest

from lkhelpers import assert_error, describe

A63 = "a" * 63


def name_bodies():
    """Bodies whose only field is unknown; (label, raw bytes)."""
    out = [("issue", ('{"' + A63 + "ééééé" + '":1}').encode())]
    for pad in range(58, 66):
        for ch in ("é", "€", "😀", "\u0085"):
            out.append((f"{pad}+{ch!r}", ('{"' + "a" * pad + ch * 6 + '":1}').encode()))
    out += [
        ("controls", b'{"\\u0001\\u001f\\u007f\\n' + b"a" * 70 + b'":1}'),
        ("backslash", ('{"' + "\\\\" * 80 + '":1}').encode()),
        ("huge", ('{"' + "é" * 30000 + '":1}').encode()),
        ("huge-emoji", ('{"' + "😀" * 15000 + '":1}').encode()),
    ]
    return out


def broken_bodies():
    """Bodies that are not JSON at all; (label, raw bytes)."""
    return [
        ("invalid-utf8-name", b'{"' + b"a" * 63 + b'\xc3\xa9\xc3' + b'":1}'),
        ("invalid-utf8-ff", b'{"' + b"a" * 63 + b"\xff\xfe" + b'":1}'),
        ("invalid-utf8-value", b'{"name":"' + b"\xe2\x82" + b'"}'),
        ("overlong", b'{"\xc0\xaf":1}'),
        ("surrogate", b'{"\xed\xa0\x80":1}'),
        ("lone-surrogate-escape", b'{"\\ud800":1}'),
        ("raw-control", b'{"a\x01b":1}'),
        ("nul-in-name", b'{"a\\u0000b":1}'),
        ("cut-token", b'{"key": tru\xff\xfe'),
        ("cut-string", ('{"password":"' + "é" * 200).encode()),
        ("deep", b"[" * 5000),
    ]


@pytest.fixture(scope="module")
def endpoints(server):
    """(method, path, credential) of every endpoint that decodes a JSON body."""
    ws = server.create_workspace()
    key = ws.create_key()
    s = ws.new_session("owner")
    viewer = ws.new_session("viewer")
    return [
        ("POST", "/v1/verify", None),
        ("POST", "/v1/auth/login", None),
        ("POST", "/v1/keys", ws.root_key),
        ("PATCH", f"/v1/keys/{key['id']}", ws.root_key),
        ("POST", f"/v1/keys/{key['id']}/regenerate", ws.root_key),
        ("POST", "/v1/keys/generate-temp", s.token),
        ("POST", "/api/keys/generate-temp", s.token),
        ("POST", "/v1/workspaces", server.root_key),
        ("PATCH", f"/v1/workspaces/{ws.id}", server.root_key),
        ("POST", "/v1/credits", server.root_key),
        ("POST", "/v1/members", ws.root_key),
        ("PATCH", f"/v1/members/{viewer.user_id}", ws.root_key),
        ("POST", "/v1/invitations/accept", None),
    ]


def send(server, method, path, key, body):
    headers = {"Content-Type": "application/json"}
    return server.request(method, path, key=key, data=body, headers=headers)


def check_answer(server, r, code):
    """A 400 with `code`, a body that is strict UTF-8 JSON, and a live server."""
    try:
        text = r.content.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"answer is not valid UTF-8 ({exc}): {describe(r)}")
    json.loads(text)
    err = assert_error(r, 400, code)
    for name in ("message", "field"):
        v = err.get(name)
        if v is not None:
            assert len(v.encode()) < 256, f"error.{name} is unbounded: {describe(r)}"
            assert not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in v), \
                f"control character in error.{name}: {describe(r)}"
    assert server.get("/healthz").status_code == 200, "the server died"
    return err


@pytest.mark.parametrize("label,body", name_bodies(), ids=[b[0] for b in name_bodies()])
def test_unknown_field_names(server, endpoints, label, body):
    for method, path, key in endpoints:
        r = send(server, method, path, key, body)
        err = check_answer(server, r, "invalid_request")
        assert "unknown field" in err["message"], describe(r)


@pytest.mark.parametrize("label,body", broken_bodies(), ids=[b[0] for b in broken_bodies()])
def test_broken_json(server, endpoints, label, body):
    for method, path, key in endpoints:
        r = send(server, method, path, key, body)
        check_answer(server, r, "bad_json")


def test_issue_body_on_verify_and_login(server):
    """The reported crash, unauthenticated: the name is quoted whole characters
    only, cut with '...' at the bound."""
    body = ('{"' + A63 + "ééééé" + '":1}').encode()
    for path in ("/v1/verify", "/v1/auth/login"):
        r = send(server, "POST", path, None, body)
        err = check_answer(server, r, "invalid_request")
        assert err["message"].startswith("unknown field 'aaa"), describe(r)
        assert err["message"].endswith("...'"), describe(r)
        assert err["field"].startswith("aaa") and err["field"].endswith("..."), describe(r)


def test_short_names_are_quoted_whole(server):
    """Below the bound the name comes back as it was sent, control characters
    escaped."""
    r = send(server, "POST", "/v1/verify", None, '{"héllo😀":1}'.encode())
    err = check_answer(server, r, "invalid_request")
    assert err["message"] == "unknown field 'héllo😀'" and err["field"] == "héllo😀", describe(r)
    r = send(server, "POST", "/v1/verify", None, b'{"a\\nb\\\\c":1}')
    err = check_answer(server, r, "invalid_request")
    assert err["field"] == "a\\x0ab\\\\c", describe(r)


def test_nested_unknown_field(server, endpoints):
    """rate_limit's own unknown fields go through the same quoting."""
    ws = server.create_workspace()
    body = ('{"name":"x","rate_limit":{"' + A63 + "😀😀😀" + '":1}}').encode()
    r = send(server, "POST", "/v1/keys", ws.root_key, body)
    err = check_answer(server, r, "invalid_request")
    assert err["field"] == "rate_limit", describe(r)


def test_cut_input_is_not_echoed(server):
    """jansson's "near '...'" would echo a cut-off secret or password back."""
    secret = "lk_live_" + "S" * 43 + "abcdef"
    for path, body in (("/v1/verify", '{"key":"' + secret),
                       ("/v1/auth/login", '{"email":"a@b.c","password":"hunter2hunter2')):
        r = send(server, "POST", path, None, body.encode())
        check_answer(server, r, "bad_json")
        assert "S" * 20 not in r.text and "hunter2" not in r.text, describe(r)
