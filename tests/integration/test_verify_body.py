"""POST /v1/verify: a body read by the fast scanner and the same body spelled so the
full JSON decoder reads it get the same answer, and every bad body keeps its exact
error (status, code, message, hint_for_ai, field)."""

import json

import requests

from lkhelpers import HTTP_TIMEOUT, describe


def post(server, data):
    return requests.post(server.url("/v1/verify"), data=data,
                         headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)


def answer(r):
    """The answer without what differs per request."""
    doc = r.json()
    if "error" in doc:
        doc["error"].pop("request_id", None)
    return r.status_code, doc


def escaped(s):
    """s with every character as a \\u escape: only the full decoder reads that."""
    return "".join(f"\\u{ord(c):04x}" for c in s)


def test_plain_and_escaped_bodies_answer_alike(server, ws):
    k = ws.create_key(name="hot", permissions=["storage:read"])
    s = k["secret"]
    pairs = [
        ('{"key":"%s"}' % s, '{"key":"%s"}' % escaped(s)),
        ('{"key":"%s","environment":"live"}' % s, '{"key":"%s","environment":"\\u006cive"}' % s),
        ('{"key":"%s","environment":"test"}' % s, '{"key":"%s","environment":"t\\u0065st"}' % s),
        ('{"key":"%s","permissions":"storage:read"}' % s,
         '{"key":"%s","permissions":"storage\\u003aread"}' % s),
        ('{"key":"%s","permissions":"storage:write"}' % s,
         '{"key":"%s","permissions":"storage\\u003awrite"}' % s),
        ('{"key":"%s","cost":0}' % s, '{"k\\u0065y":"%s","cost":0}' % s),
        ('{"key":"nope"}', '{"key":"n\\u006fpe"}'),
    ]
    for plain, other in pairs:
        a, b = post(server, plain), post(server, other)
        assert answer(a) == answer(b), f"{plain!r}: {describe(a)}\n{other!r}: {describe(b)}"


# Bodies the scanner must leave to the full decoder, with the answer it gives.
BAD = [
    ('{"key":"k","cost":1e3}', "invalid_request", "cost",
     "field 'cost' must be an integer from 0 to 1000000000"),
    ('{"key":"k","cost":1.5}', "invalid_request", "cost",
     "field 'cost' must be an integer from 0 to 1000000000"),
    ('{"key":"k","cost":1000000001}', "invalid_request", "cost",
     "field 'cost' must be an integer from 0 to 1000000000"),
    ('{"key":"k","cost":-1}', "invalid_request", "cost",
     "field 'cost' must be an integer from 0 to 1000000000"),
    ('{"key":"k","environment":"prod"}', "invalid_request", "environment",
     "field 'environment' must be \"live\" or \"test\""),
    ('{"key":"k","permissions":""}', "invalid_request", "permissions",
     "field 'permissions' must be a permission query string of at most 1024 bytes"),
    ('{"key":"k","extra":1}', "invalid_request", "extra", "unknown field 'extra'"),
    ('{"key":1}', "invalid_request", "key", "field 'key' must be a string"),
]


def test_bad_bodies_keep_their_errors(server):
    for body, code, field, message in BAD:
        r = post(server, body)
        assert r.status_code == 400, f"{body!r}: {describe(r)}"
        err = r.json()["error"]
        assert err["code"] == code and err.get("field") == field, f"{body!r}: {describe(r)}"
        assert err["message"] == message, f"{body!r}: {describe(r)}"
        assert err["hint_for_ai"], f"{body!r}: {describe(r)}"


def test_bad_json_keeps_its_error(server):
    for body in ('{"key":"k",}', '{"key":"k"', '{"key":"k","key":"k"}', '{"key":"k"}x', '[]',
                 '{"key":"k\x01"}'):
        r = post(server, body)
        assert r.status_code == 400, f"{body!r}: {describe(r)}"
        err = r.json()["error"]
        assert err["code"] == "bad_json", f"{body!r}: {describe(r)}"
        assert err["message"], f"{body!r}: {describe(r)}"
