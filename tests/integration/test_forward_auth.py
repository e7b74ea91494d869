"""Forward auth: `ANY /v1/forward-auth` (DESIGN §5, the forward-auth row and "Route
rules"; docs/http-api.md, "Forward auth").

A reverse proxy asks latchkey about a request it holds: the forwarded method is
X-Forwarded-Method, else X-Original-Method, else the sub-request's own; the forwarded
URI is X-Forwarded-Uri, else X-Original-URI, else "/". The key comes from the
sub-request's headers (DESIGN §3) and from `auth_token` in the forwarded URI's query.
The route rules (`routes = FILE` in the config, or `serve --routes FILE`) say what
the request needs: first match wins, no match is 403 insufficient_permissions,
`public` needs no key, `any` any valid key, else a permission query; `cost=N`
spends credits as /v1/verify's cost does and `env=` refuses the other environment.
200 has an empty body (so a proxy keeps its connection) and carries X-Latchkey-Key-Id /
-Workspace-Id / -Environment; a refusal is DESIGN §4's error with its status, its code
also in X-Latchkey-Error-Code.

The module's shared server (`server`) has no routes file: one rule, any method, any
path, any valid key. Two more shared servers carry route files: the DESIGN §5
example verbatim (`design_server`) and a file of this module's own (`rules_server`).
"""

import subprocess
import time

import pytest
import requests

from conftest import (BIN, SHARED_CONFIG, LatchkeyServer, _finish, _live_servers, clean_env,
                      free_port, in_parallel, poll)
from lkhelpers import (HTTP_TIMEOUT, assert_error, describe, expect_status, flip_char,
                       http_from, make_secret, need_other_address)

FA = "/v1/forward-auth"
IDENTITY = ("X-Latchkey-Key-Id", "X-Latchkey-Workspace-Id", "X-Latchkey-Environment")
RL_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

# DESIGN §5, "Route rules", verbatim.
DESIGN_RULES = """\
# METHOD  PATH-PATTERN     NEEDS                               [cost=N] [env=live|test]
GET       /content/**      content:read
POST      /content/*/run   workflows:execute AND storage:read  cost=5   env=live
*         /public/**       public
*         /**              any
"""

# This module's own rules: no catch-all, so some requests match nothing.
OWN_RULES = """\
# forward-auth test rules

GET     /exact                  any
GET     /docs/*/page            public
DELETE  /items/*                items:delete
*       /items/**               items:read OR items:write
GET     /sandbox/**             any                 env=test
GET     /live-only/**           any                 env=live
POST    /paid/*                 any                 cost=3
\tPUT\t/\tpublic\t# a tab-separated rule with a trailing comment
GET     /first/**               public
GET     /first/**               nothing:ever
GET     /reports/*/export       reports:export AND (reports:read OR admin:*)
"""


# -- helpers ---------------------------------------------------------------------------

def fa(srv, uri=None, method=None, key=None, headers=None, style="forwarded",
       sub_method="GET", session=None):
    """One forward-auth sub-request. `style` picks the header convention for the
    forwarded method and URI: "forwarded" (X-Forwarded-Method / X-Forwarded-Uri,
    Traefik, Caddy) or "original" (X-Original-Method / X-Original-URI, nginx).
    `sub_method` is the sub-request's own method."""
    h = {}
    names = {"forwarded": ("X-Forwarded-Method", "X-Forwarded-Uri"),
             "original": ("X-Original-Method", "X-Original-URI")}[style]
    if method is not None:
        h[names[0]] = method
    if uri is not None:
        h[names[1]] = uri
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    http = session or requests
    return http.request(sub_method, srv.url(FA), headers=h, timeout=HTTP_TIMEOUT)


def assert_empty_200(r):
    """200 with no body at all: a proxy then keeps its connection to latchkey."""
    assert r.status_code == 200, describe(r)
    assert r.content == b"" and r.headers.get("Content-Length") == "0", describe(r)
    assert "X-Latchkey-Error-Code" not in r.headers, describe(r)
    return {}


def assert_pass(r, key=None, ws=None, env="live"):
    """200, empty, with the key's identity headers."""
    doc = assert_empty_200(r)
    if key is not None:
        assert r.headers.get("X-Latchkey-Key-Id") == key["id"], describe(r)
    if ws is not None:
        assert r.headers.get("X-Latchkey-Workspace-Id") == ws.id, describe(r)
    assert r.headers.get("X-Latchkey-Environment") == env, describe(r)
    return doc


def assert_public(r):
    assert_empty_200(r)
    for h in IDENTITY:
        assert h not in r.headers, f"{h} on a public answer: {describe(r)}"


def assert_refused(r, status, code):
    """DESIGN §4's error, and no identity for the proxy to pass on."""
    err = assert_error(r, status, code)
    assert r.headers.get("X-Latchkey-Error-Code") == code, describe(r)
    for h in IDENTITY:
        assert h not in r.headers, f"{h} on a refusal: {describe(r)}"
    return err


def header_int(r, name):
    v = r.headers.get(name)
    assert v is not None, f"no {name} header: {describe(r)}"
    assert v.strip().isdigit(), f"{name} {v!r} is not a whole number: {describe(r)}"
    return int(v)


def retry_after(r, window_s):
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit(), f"Retry-After {ra!r}: {describe(r)}"
    assert 1 <= int(ra) <= window_s, f"Retry-After {ra} outside 1..{window_s}: {describe(r)}"
    return int(ra)


def top_up(srv, w, amount):
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": amount}), 201)


def credits(srv, w):
    doc = expect_status(srv.get("/v1/credits", key=w.root_key), 200)
    assert doc["balance"] + doc["spent"] == doc["topped_up"], doc
    return doc


def expect_credits(srv, w, **want):
    def match():
        doc = credits(srv, w)
        for k, v in want.items():
            assert doc[k] == v, f"{k} {doc[k]!r}, expected {v!r}"
        return doc
    return poll(match, what=f"GET /v1/credits showing {want}")


def serve_args(tmp_path, *extra):
    return [BIN, "serve", "--listen", f"127.0.0.1:{free_port()}",
            "--db", f"sqlite:{tmp_path}/x.db", *extra]


def run_serve(tmp_path, *extra):
    """`latchkey serve` expected to refuse to start: returns the CompletedProcess."""
    try:
        return subprocess.run(serve_args(tmp_path, *extra), env=clean_env(), cwd=tmp_path,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`latchkey serve {' '.join(extra)}` started instead of refusing")


def routed_server(tmp_path_factory, name, text, **config):
    d = tmp_path_factory.mktemp(name)
    routes = d / "routes.txt"
    routes.write_text(text)
    srv = LatchkeyServer(d / "srv", config={**SHARED_CONFIG, "routes": str(routes), **config})
    srv.auto_restart = True
    srv.start()
    _live_servers.append(srv)
    return srv


@pytest.fixture(scope="module")
def design_server(tmp_path_factory):
    """A server whose routes file is DESIGN §5's example, verbatim."""
    srv = routed_server(tmp_path_factory, "fa-design", DESIGN_RULES)
    yield srv
    _finish(srv)


@pytest.fixture(scope="module")
def rules_server(tmp_path_factory):
    srv = routed_server(tmp_path_factory, "fa-rules", OWN_RULES)
    yield srv
    _finish(srv)


@pytest.fixture
def dws(design_server):
    return design_server.create_workspace()


@pytest.fixture
def rws(rules_server):
    return rules_server.create_workspace()


# -- no routes file: any method, any path, any valid key --------------------------------------

@pytest.mark.parametrize("sub_method", ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
def test_any_method_of_the_sub_request_is_answered(server, ws, sub_method):
    k = ws.create_key()
    r = fa(server, "/anything", key=k["secret"], sub_method=sub_method)
    assert r.status_code == 200, describe(r)
    assert r.headers.get("X-Latchkey-Key-Id") == k["id"], describe(r)
    assert r.content == b"", describe(r)


@pytest.mark.parametrize("method,uri", [
    ("GET", "/"),
    ("POST", "/v2/things/42/run?x=1"),
    ("DELETE", "/a/b/c/d/e/f"),
    ("OPTIONS", "/public/x"),
    ("PROPFIND", "/dav/"),
])
def test_without_routes_any_valid_key_passes_anywhere(server, ws, method, uri):
    k = ws.create_key(permissions=["nothing:useful"])
    assert_pass(fa(server, uri, method, key=k["secret"]), k, ws)
    assert_pass(fa(server, uri, method, key=k["secret"], style="original"), k, ws)


def test_without_routes_no_path_is_public(server):
    for uri in ("/", "/public/x", "/healthz"):
        assert_refused(fa(server, uri, "GET"), 401, "missing_key")


def test_without_forwarded_headers_the_request_is_its_own(server, ws):
    """No method or URI headers at all: the sub-request's own method and "/"."""
    k = ws.create_key()
    assert_pass(fa(server, key=k["secret"]), k, ws)
    assert_pass(fa(server, key=k["secret"], sub_method="POST"), k, ws)
    assert_refused(fa(server), 401, "missing_key")


def test_identity_headers_name_the_key(server, ws, ws2):
    live = ws.create_key()
    test = ws.create_key(environment="test")
    other = ws2.create_key()
    assert_pass(fa(server, "/x", "GET", key=live["secret"]), live, ws, "live")
    assert_pass(fa(server, "/x", "GET", key=test["secret"]), test, ws, "test")
    assert_pass(fa(server, "/x", "GET", key=other["secret"]), other, ws2, "live")
    r = fa(server, "/x", "GET", key=live["secret"])
    # one of each, never a list of several
    for h in IDENTITY:
        assert "," not in r.headers[h], describe(r)
    assert live["secret"] not in r.text and all(live["secret"] not in v
                                                for v in r.headers.values())


def test_application_and_root_keys_pass_too(server, ws):
    for secret in (ws.rw_key, ws.ro_key, ws.root_key):
        r = fa(server, "/x", "GET", key=secret)
        assert_empty_200(r)
        assert r.headers.get("X-Latchkey-Workspace-Id") == ws.id, describe(r)
        assert r.headers.get("X-Latchkey-Key-Id", "").startswith("key_"), describe(r)


# -- where the key is read from -----------------------------------------------------------------

@pytest.mark.parametrize("place", ["bearer", "x-api-key", "x-auth-token", "auth_token"])
def test_key_is_read_from_each_place(server, ws, place):
    k = ws.create_key()
    s = k["secret"]
    uri = "/resource?a=1"
    headers = {}
    if place == "bearer":
        headers["Authorization"] = f"Bearer {s}"
    elif place == "x-api-key":
        headers["X-API-Key"] = s
    elif place == "x-auth-token":
        headers["X-AUTH-TOKEN"] = s
    else:
        uri = f"/resource?a=1&auth_token={s}&b=2"
    for style in ("forwarded", "original"):
        assert_pass(fa(server, uri, "GET", headers=headers, style=style), k, ws)


def test_auth_token_alone_in_the_forwarded_query(server, ws):
    k = ws.create_key()
    assert_pass(fa(server, f"/r?auth_token={k['secret']}", "GET"), k, ws)
    assert_pass(fa(server, f"/r?auth_token={k['secret']}#frag", "GET"), k, ws)


def test_auth_token_after_a_fragment_is_not_a_key(server, ws):
    k = ws.create_key()
    # a '#' in the path is refused before any key is looked at
    assert_refused(fa(server, f"/r#auth_token={k['secret']}", "GET"), 403,
                   "insufficient_permissions")
    assert_refused(fa(server, f"/r?x=1#&auth_token={k['secret']}", "GET"), 401, "missing_key")


def test_the_same_key_in_several_places_is_fine(server, ws):
    k = ws.create_key()
    s = k["secret"]
    r = fa(server, f"/r?auth_token={s}", "GET", key=s,
           headers={"X-API-Key": s, "X-AUTH-TOKEN": s})
    assert_pass(r, k, ws)


@pytest.mark.parametrize("places", [
    ("bearer", "x-api-key"),
    ("bearer", "auth_token"),
    ("x-api-key", "x-auth-token"),
    ("x-auth-token", "auth_token"),
])
def test_two_different_keys_are_malformed(server, ws, places):
    a = ws.create_key()
    b = ws.create_key()
    headers, uri = {}, "/r"
    for place, secret in zip(places, (a["secret"], b["secret"])):
        if place == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif place == "x-api-key":
            headers["X-API-Key"] = secret
        elif place == "x-auth-token":
            headers["X-AUTH-TOKEN"] = secret
        else:
            uri = f"/r?auth_token={secret}"
    r = fa(server, uri, "GET", headers=headers)
    assert_refused(r, 401, "malformed_key")
    assert a["secret"] not in r.text and b["secret"] not in r.text


def test_two_auth_tokens_in_the_forwarded_query_are_malformed(server, ws):
    a = ws.create_key()
    b = ws.create_key()
    assert_refused(fa(server, f"/r?auth_token={a['secret']}&auth_token={b['secret']}", "GET"),
                   401, "malformed_key")


@pytest.mark.parametrize("bad", ["not-a-key", "lk_live_short", "FLIP"])
def test_malformed_keys(server, ws, bad):
    if bad == "FLIP":
        bad = flip_char(ws.create_key()["secret"], -1)
    assert_refused(fa(server, "/r", "GET", key=bad), 401, "malformed_key")


def test_key_outcomes_keep_their_status(server, ws):
    assert_refused(fa(server, "/r", "GET"), 401, "missing_key")
    assert_refused(fa(server, "/r", "GET", key=make_secret()), 401, "invalid_key")

    revoked = ws.create_key()
    assert server.delete(f"/v1/keys/{revoked['id']}", key=ws.root_key).status_code == 204
    assert_refused(fa(server, "/r", "GET", key=revoked["secret"]), 401, "revoked_key")

    disabled = ws.create_key()
    expect_status(server.patch(f"/v1/keys/{disabled['id']}", key=ws.root_key,
                               json={"enabled": False}), 200)
    assert_refused(fa(server, "/r", "GET", key=disabled["secret"]), 403, "inactive_key")

    short = ws.create_key(expires_in=1)
    assert_pass(fa(server, "/r", "GET", key=short["secret"]), short, ws)
    poll(lambda: fa(server, "/r", "GET", key=short["secret"]).status_code == 401,
         timeout=5, what="the 1 s key to expire")
    assert_refused(fa(server, "/r", "GET", key=short["secret"]), 401, "expired_key")


# -- the two header conventions --------------------------------------------------------------

@pytest.mark.parametrize("style", ["forwarded", "original"])
def test_method_and_uri_headers_choose_the_rule(rules_server, rws, style):
    srv = rules_server
    deleter = rws.create_key(permissions=["items:delete"])
    reader = rws.create_key(permissions=["items:read"])
    # DELETE /items/x needs items:delete; GET /items/x falls to items:read OR items:write
    assert_pass(fa(srv, "/items/7", "DELETE", key=deleter["secret"], style=style), deleter, rws)
    assert_refused(fa(srv, "/items/7", "DELETE", key=reader["secret"], style=style),
                   403, "insufficient_permissions")
    assert_pass(fa(srv, "/items/7", "GET", key=reader["secret"], style=style), reader, rws)
    assert_refused(fa(srv, "/items/7", "GET", key=deleter["secret"], style=style),
                   403, "insufficient_permissions")


def test_headers_of_the_two_conventions_that_disagree_are_refused(rules_server, rws):
    """nginx passes the client's own X-Forwarded-* on beside the X-Original-* it
    sets: when the two say different things the request is ambiguous, and is
    refused with 403 (what nginx's auth_request passes on to the client)."""
    srv = rules_server
    deleter = rws.create_key(permissions=["items:delete"])
    cases = [
        {"X-Forwarded-Method": "DELETE", "X-Original-Method": "GET",
         "X-Forwarded-Uri": "/items/7", "X-Original-URI": "/items/7"},
        {"X-Forwarded-Method": "GET", "X-Original-Method": "DELETE",
         "X-Forwarded-Uri": "/docs/a/page", "X-Original-URI": "/items/7"},
        # a forged public URI beside the real one
        {"X-Forwarded-Uri": "/docs/a/page", "X-Original-URI": "/items/7"},
        {"X-Forwarded-Method": "delete", "X-Original-Method": "DELETE",
         "X-Original-URI": "/items/7"},
        {"X-Forwarded-Uri": "/items/7?x=1", "X-Original-URI": "/items/7"},
    ]
    for h in cases:
        for key in (None, deleter["secret"]):
            r = fa(srv, key=key, headers=h)
            assert_refused(r, 403, "insufficient_permissions")
            assert "ambiguous" in r.json()["error"]["message"], describe(r)
    # the two conventions agreeing is one request
    same = {"X-Forwarded-Method": "DELETE", "X-Original-Method": "DELETE",
            "X-Forwarded-Uri": "/items/7", "X-Original-URI": "/items/7"}
    assert_pass(fa(srv, key=deleter["secret"], headers=same), deleter, rws)


def test_a_forwarded_header_given_twice_with_two_values_is_refused(rules_server, rws):
    import http.client
    deleter = rws.create_key(permissions=["items:delete"])

    def send(lines):
        c = http.client.HTTPConnection("127.0.0.1", rules_server.port, timeout=HTTP_TIMEOUT)
        try:
            c.putrequest("GET", FA)
            c.putheader("Authorization", f"Bearer {deleter['secret']}")
            for name, value in lines:
                c.putheader(name, value)
            c.endheaders()
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    status, body = send([("X-Original-URI", "/docs/a/page"), ("X-Original-URI", "/items/7"),
                         ("X-Original-Method", "DELETE")])
    assert status == 403 and b"ambiguous" in body, (status, body)
    status, body = send([("X-Forwarded-Method", "GET"), ("X-Forwarded-Method", "DELETE"),
                         ("X-Forwarded-Uri", "/items/7")])
    assert status == 403 and b"ambiguous" in body, (status, body)
    status, body = send([("X-Original-URI", "/items/7"), ("X-Original-URI", "/items/7"),
                         ("X-Original-Method", "DELETE")])
    assert status == 200, (status, body)


# `;` path parameters: Tomcat, Jetty and Spring serve /admin;x/users as /admin/users
# and /public/..;/admin as /admin. The routes file's `path_params` says what `;` means.

PARAM_RULES = """GET     /public/**      public
*       /admin/**       admin:read
*       /**             any
"""


@pytest.mark.parametrize("uri", ["/public/..;/admin/users", "/admin;x/users",
                                 "/admin;jsessionid=1/users", "/public/x;y",
                                 "/admin%3bx/users", "/public/..%3B/admin/users"])
def test_path_parameters_are_refused_by_default(make_server, tmp_path, uri):
    routes = tmp_path / "routes"
    routes.write_text(PARAM_RULES)
    srv = make_server(config={"failed_key_limit": "none", "routes": str(routes)})
    w = srv.create_workspace()
    anykey = w.create_key(permissions=["content:read"])
    admin = w.create_key(permissions=["admin:read"])
    for key in (None, anykey["secret"], admin["secret"]):
        r = fa(srv, uri, "GET", key=key)
        assert_refused(r, 403, "insufficient_permissions")
        assert "more than one meaning" in r.json()["error"]["message"], describe(r)
    # no routes file at all: the same
    plain = make_server(config={"failed_key_limit": "none"})
    pk = plain.create_workspace().create_key()
    assert_refused(fa(plain, uri, "GET", key=pk["secret"]), 403, "insufficient_permissions")


def test_path_params_strip_judges_the_path_a_servlet_container_serves(make_server, tmp_path):
    routes = tmp_path / "routes"
    routes.write_text("path_params strip   # the backend is Tomcat\n" + PARAM_RULES)
    srv = make_server(config={"failed_key_limit": "none", "routes": str(routes)})
    w = srv.create_workspace()
    reader = w.create_key(permissions=["content:read"])
    admin = w.create_key(permissions=["admin:read"])
    for uri in ("/public/..;/admin/users", "/admin;x/users", "/admin/users;jsessionid=1"):
        assert_refused(fa(srv, uri, "GET"), 401, "missing_key")
        assert_refused(fa(srv, uri, "GET", key=reader["secret"]), 403,
                       "insufficient_permissions")
        assert_pass(fa(srv, uri, "GET", key=admin["secret"]), admin, w)
    assert_public(fa(srv, "/public/logo.png;v=2", "GET"))
    # an encoded ';' is still ambiguous
    assert_refused(fa(srv, "/admin%3bx/users", "GET", key=admin["secret"]), 403,
                   "insufficient_permissions")


def test_path_params_literal_takes_semicolons_as_written(make_server, tmp_path):
    routes = tmp_path / "routes"
    routes.write_text("path_params literal\n" + PARAM_RULES)
    srv = make_server(config={"failed_key_limit": "none", "routes": str(routes)})
    w = srv.create_workspace()
    reader = w.create_key(permissions=["content:read"])
    # /admin;x is a segment of its own, not /admin: the catch-all rule
    assert_pass(fa(srv, "/admin;x/users", "GET", key=reader["secret"]), reader, w)
    assert_refused(fa(srv, "/admin/users;x", "GET", key=reader["secret"]), 403,
                   "insufficient_permissions")
    # `..;` is not `..` then: a segment named `..;` under /public/
    assert_public(fa(srv, "/public/..;/admin/users", "GET"))


def test_method_header_alone_and_uri_header_alone(rules_server, rws):
    srv = rules_server
    deleter = rws.create_key(permissions=["items:delete"])
    # URI only: the method is the sub-request's own
    assert_pass(fa(srv, "/items/7", key=deleter["secret"], sub_method="DELETE"), deleter, rws)
    assert_refused(fa(srv, "/items/7", key=deleter["secret"], sub_method="GET"),
                   403, "insufficient_permissions")
    assert_public(fa(srv, "/docs/x/page", style="original", sub_method="GET"))
    # method only: the URI is "/", which only `PUT /` matches
    assert_public(fa(srv, method="PUT"))
    assert_public(fa(srv, method="PUT", style="original", sub_method="GET"))
    assert_refused(fa(srv, method="GET", key=deleter["secret"]), 403,
                   "insufficient_permissions")
    assert_public(fa(srv, sub_method="PUT"))


# -- route rules ---------------------------------------------------------------------------------

def test_public_needs_no_key_and_ignores_one(rules_server, rws):
    srv = rules_server
    k = rws.create_key()
    for r in (fa(srv, "/docs/intro/page", "GET"),
              fa(srv, "/docs/intro/page?auth_token=garbage", "GET"),
              fa(srv, "/docs/intro/page", "GET", key="not-a-key"),
              fa(srv, "/docs/intro/page", "GET", key=make_secret()),
              fa(srv, "/docs/intro/page", "GET", key=k["secret"])):
        assert_public(r)


def test_any_takes_any_valid_key(rules_server, rws):
    srv = rules_server
    k = rws.create_key(permissions=["unrelated:thing"])
    assert_pass(fa(srv, "/exact", "GET", key=k["secret"]), k, rws)
    assert_refused(fa(srv, "/exact", "GET"), 401, "missing_key")
    assert_refused(fa(srv, "/exact", "GET", key=make_secret()), 401, "invalid_key")


def test_a_permission_query_must_be_satisfied(rules_server, rws):
    """`reports:export AND (reports:read OR admin:*)`: forward auth agrees with
    /v1/verify asked the same query."""
    srv = rules_server
    uri = "/reports/2024/export"
    query = "reports:export AND (reports:read OR admin:*)"
    cases = [
        (["reports:export", "reports:read"], True),
        (["reports:export", "admin:*"], True),
        (["reports:*"], True),
        (["*"], True),
        (None, True),  # no permissions listed: `*`
        (["reports:export"], False),
        (["reports:read", "admin:*"], False),
        (["report:export", "reports:read"], False),
    ]
    for perms, ok in cases:
        body = {} if perms is None else {"permissions": perms}
        k = rws.create_key(**body)
        r = fa(srv, uri, "GET", key=k["secret"])
        if ok:
            assert_pass(r, k, rws)
        else:
            assert_refused(r, 403, "insufficient_permissions")
        doc = expect_status(srv.verify({"key": k["secret"], "permissions": query}), 200)
        assert doc["valid"] is ok, f"{perms}: /v1/verify says {doc['code']}"


def test_a_refusal_for_permissions_comes_after_the_key_state(rules_server, rws):
    srv = rules_server
    k = rws.create_key(permissions=["other:thing"])
    assert srv.delete(f"/v1/keys/{k['id']}", key=rws.root_key).status_code == 204
    assert_refused(fa(srv, "/items/1", "GET", key=k["secret"]), 401, "revoked_key")
    assert_refused(fa(srv, "/items/1", "GET", key=make_secret()), 401, "invalid_key")
    assert_refused(fa(srv, "/items/1", "GET"), 401, "missing_key")


def test_first_matching_rule_wins(rules_server, rws):
    srv = rules_server
    # `GET /first/** public` comes before `GET /first/** nothing:ever`
    assert_public(fa(srv, "/first/a/b", "GET"))
    # DELETE /items/* comes before `* /items/**`: a reader cannot delete
    reader = rws.create_key(permissions=["items:read"])
    assert_refused(fa(srv, "/items/1", "DELETE", key=reader["secret"]), 403,
                   "insufficient_permissions")
    # ... but DELETE deeper than one segment is only matched by `* /items/**`
    assert_pass(fa(srv, "/items/1/2", "DELETE", key=reader["secret"]), reader, rws)


@pytest.mark.parametrize("method,uri", [
    ("POST", "/exact"),          # method differs
    ("GET", "/exact/"),          # path differs
    ("GET", "/exactly"),
    ("GET", "/nowhere"),
    ("GET", "/docs/page"),       # `*` is exactly one segment
    ("GET", "/docs/a/b/page"),
    ("GET", "/docs//page"),      # ... and not an empty one
    ("GET", "/itemsX/1"),
    ("POST", "/paid/a/b"),
    ("GET", "/paid/a"),
    ("get", "/exact"),           # methods are matched as written
    ("GET", "exact"),
    ("GET", "https://example.com/exact"),
])
def test_no_matching_rule_is_insufficient_permissions(rules_server, rws, method, uri):
    srv = rules_server
    k = rws.create_key()  # `*`: no key could be allowed more
    assert_refused(fa(srv, uri, method, key=k["secret"]), 403, "insufficient_permissions")
    # no key at all: still the rule decides first
    assert_refused(fa(srv, uri, method), 403, "insufficient_permissions")


@pytest.mark.parametrize("uri", [
    "/exact", "/exact?x=1", "/exact?", "/exact?x=/y#z",
])
def test_the_path_ends_at_query_or_fragment(rules_server, rws, uri):
    k = rws.create_key()
    assert_pass(fa(rules_server, uri, "GET", key=k["secret"]), k, rws)


@pytest.mark.parametrize("uri", [
    "/items", "/items/", "/items/1", "/items/1/2/3", "/items/a/b?c=d",
])
def test_double_star_is_any_rest(rules_server, rws, uri):
    k = rws.create_key(permissions=["items:write"])
    assert_pass(fa(rules_server, uri, "PATCH", key=k["secret"]), k, rws)


def test_env_rule_refuses_the_other_environment(rules_server, rws):
    srv = rules_server
    live = rws.create_key()
    test = rws.create_key(environment="test")
    assert_pass(fa(srv, "/sandbox/x", "GET", key=test["secret"]), test, rws, "test")
    assert_refused(fa(srv, "/sandbox/x", "GET", key=live["secret"]), 401,
                   "environment_mismatch")
    assert_pass(fa(srv, "/live-only/x", "GET", key=live["secret"]), live, rws, "live")
    assert_refused(fa(srv, "/live-only/x", "GET", key=test["secret"]), 401,
                   "environment_mismatch")
    # a rule without env= takes both
    assert_pass(fa(srv, "/exact", "GET", key=test["secret"]), test, rws, "test")
    assert_pass(fa(srv, "/exact", "GET", key=live["secret"]), live, rws, "live")


# -- cost= -----------------------------------------------------------------------------------------

def test_cost_spends_credits_and_402_when_they_run_out(rules_server, rws):
    srv = rules_server
    k = rws.create_key()
    assert_refused(fa(srv, "/paid/x", "POST", key=k["secret"]), 402, "insufficient_credits")
    top_up(srv, rws, 10)
    for _ in range(3):
        assert_pass(fa(srv, "/paid/x", "POST", key=k["secret"]), k, rws)
    r = fa(srv, "/paid/x", "POST", key=k["secret"])  # 1 left, 3 needed
    assert_refused(r, 402, "insufficient_credits")
    # free routes still pass
    assert_pass(fa(srv, "/exact", "GET", key=k["secret"]), k, rws)
    expect_credits(srv, rws, balance=1, spent=9, topped_up=10)
    top_up(srv, rws, 2)
    assert_pass(fa(srv, "/paid/x", "POST", key=k["secret"]), k, rws)
    expect_credits(srv, rws, balance=0, spent=12, topped_up=12)


def test_cost_spends_a_keys_own_credits_and_says_so(rules_server, rws):
    """A key's own credits pay a route's cost (this workspace never had credits,
    so they alone decide); when short, the 402 names the key's credits."""
    srv = rules_server
    k = rws.create_key(credits={"remaining": 7})
    for _ in range(2):
        assert_pass(fa(srv, "/paid/x", "POST", key=k["secret"]), k, rws)
    r = fa(srv, "/paid/x", "POST", key=k["secret"])  # 1 left, 3 needed
    err = assert_refused(r, 402, "insufficient_credits")
    assert "key's own credits" in err["message"] and "1 left" in err["message"], err
    assert rws.get_key(k["id"])["credits"]["remaining"] == 1


def test_insufficient_credits_is_for_every_key_of_the_workspace(rules_server, rws):
    srv = rules_server
    a = rws.create_key()
    b = rws.create_key()
    top_up(srv, rws, 3)
    assert_pass(fa(srv, "/paid/x", "POST", key=a["secret"]), a, rws)
    assert_refused(fa(srv, "/paid/x", "POST", key=b["secret"]), 402, "insufficient_credits")
    assert_refused(fa(srv, "/paid/x", "POST", key=a["secret"]), 402, "insufficient_credits")


def test_cost_follows_the_daily_spend_cap(rules_server, rws):
    srv = rules_server
    top_up(srv, rws, 100)
    k = rws.create_key(daily_spend_cap=7)
    for _ in range(2):
        assert_pass(fa(srv, "/paid/x", "POST", key=k["secret"]), k, rws)
    assert_refused(fa(srv, "/paid/x", "POST", key=k["secret"]), 402, "spend_cap_exceeded")
    # another key of the workspace has its own cap
    other = rws.create_key()
    assert_pass(fa(srv, "/paid/x", "POST", key=other["secret"]), other, rws)
    expect_credits(srv, rws, balance=91, spent=9)


def test_refused_requests_never_spend(rules_server, rws):
    srv = rules_server
    top_up(srv, rws, 20)
    k = rws.create_key(permissions=["items:read"])
    disabled = rws.create_key()
    expect_status(srv.patch(f"/v1/keys/{disabled['id']}", key=rws.root_key,
                            json={"enabled": False}), 200)
    revoked = rws.create_key()
    assert srv.delete(f"/v1/keys/{revoked['id']}", key=rws.root_key).status_code == 204
    capped = rws.create_key(daily_spend_cap=2)
    limited = rws.create_key(rate_limit={"limit": 1, "window_s": 60})
    assert_pass(fa(srv, "/paid/x", "POST", key=limited["secret"]), limited, rws)
    for _ in range(3):
        assert_refused(fa(srv, "/paid/x", "POST", key=disabled["secret"]), 403, "inactive_key")
        assert_refused(fa(srv, "/paid/x", "POST", key=revoked["secret"]), 401, "revoked_key")
        assert_refused(fa(srv, "/paid/x", "POST", key=capped["secret"]), 402,
                       "spend_cap_exceeded")
        assert_refused(fa(srv, "/paid/x", "POST", key=limited["secret"]), 429, "rate_limited")
        assert_refused(fa(srv, "/paid/x", "POST", key=make_secret()), 401, "invalid_key")
    assert_pass(fa(srv, "/items/1", "GET", key=k["secret"]), k, rws)
    expect_credits(srv, rws, balance=17, spent=3)
    time.sleep(1.2)  # one more write-back: nothing refused may show up late
    c = credits(srv, rws)
    assert (c["balance"], c["spent"]) == (17, 3), c


def test_test_keys_spend_nothing_and_are_never_refused_for_credits(rules_server, rws):
    srv = rules_server
    t = rws.create_key(environment="test", daily_spend_cap=0)
    for _ in range(4):
        assert_pass(fa(srv, "/paid/x", "POST", key=t["secret"]), t, rws, "test")
    c = credits(srv, rws)
    assert (c["balance"], c["spent"]) == (0, 0), c


def test_parallel_paid_requests_never_overspend(rules_server, rws):
    srv = rules_server
    top_up(srv, rws, 30)  # ten requests of cost 3
    k = rws.create_key()

    def client(i, s):
        out = []
        for _ in range(3):
            r = fa(srv, "/paid/x", "POST", key=k["secret"], session=s)
            out.append(r.status_code)
            if r.status_code == 402:
                assert r.json()["error"]["code"] == "insufficient_credits", describe(r)
            elif r.status_code == 200:
                assert r.headers.get("X-Latchkey-Key-Id") == k["id"], describe(r)
        return out

    statuses = [s for per in in_parallel(32, client) for s in per]
    assert set(statuses) <= {200, 402}, sorted(set(statuses))
    assert statuses.count(200) == 10, f"{statuses.count(200)} paid requests of cost 3 " \
                                      f"passed on a balance of 30"
    expect_credits(srv, rws, balance=0, spent=30, topped_up=30)


# -- rate limits --------------------------------------------------------------------------------

def test_rate_limit_headers_and_429(server, ws):
    k = ws.create_key(rate_limit={"limit": 2, "window_s": 60})
    for i in range(2):
        r = fa(server, "/r", "GET", key=k["secret"])
        assert_pass(r, k, ws)
        assert header_int(r, "RateLimit-Limit") == 2, describe(r)
        assert header_int(r, "RateLimit-Remaining") == 1 - i, describe(r)
        assert 0 <= header_int(r, "RateLimit-Reset") <= 60, describe(r)
    r = fa(server, "/r", "GET", key=k["secret"])
    assert_refused(r, 429, "rate_limited")
    ra = retry_after(r, 60)
    assert header_int(r, "RateLimit-Limit") == 2, describe(r)
    assert header_int(r, "RateLimit-Remaining") == 0, describe(r)
    assert abs(header_int(r, "RateLimit-Reset") - ra) <= 1, describe(r)
    # the same window as every other check of the key
    assert_error(server.auth_context(k["secret"]), 429, "rate_limited")
    doc = expect_status(server.verify({"key": k["secret"]}), 200)
    assert doc["code"] == "rate_limited", doc


def test_forward_auth_and_verify_share_the_window(server, ws):
    k = ws.create_key(rate_limit={"limit": 3, "window_s": 60})
    assert expect_status(server.verify({"key": k["secret"]}), 200)["valid"] is True
    r = fa(server, "/r", "GET", key=k["secret"])
    assert_pass(r, k, ws)
    assert header_int(r, "RateLimit-Remaining") == 1, describe(r)
    assert expect_status(server.verify({"key": k["secret"]}), 200)["valid"] is True
    assert_refused(fa(server, "/r", "GET", key=k["secret"]), 429, "rate_limited")


def test_keys_without_a_limit_have_no_ratelimit_headers(server, ws):
    k = ws.create_key()
    for _ in range(5):
        r = fa(server, "/r", "GET", key=k["secret"])
        assert_pass(r, k, ws)
        for h in RL_HEADERS:
            assert h not in r.headers, f"{h} on a key without a limit: {describe(r)}"


def test_refused_requests_do_not_use_the_rate_limit(rules_server, rws):
    srv = rules_server
    k = rws.create_key(permissions=["items:read"], rate_limit={"limit": 2, "window_s": 60})
    for _ in range(3):
        assert_refused(fa(srv, "/items/1", "DELETE", key=k["secret"]), 403,
                       "insufficient_permissions")
        assert_refused(fa(srv, "/sandbox/x", "GET", key=k["secret"]), 401,
                       "environment_mismatch")
        assert_refused(fa(srv, "/paid/x", "POST", key=k["secret"]), 402,
                       "insufficient_credits")
        assert_public(fa(srv, "/docs/a/page", "GET", key=k["secret"]))
    for i in range(2):
        r = fa(srv, "/items/1", "GET", key=k["secret"])
        assert_pass(r, k, rws)
        assert header_int(r, "RateLimit-Remaining") == 1 - i, describe(r)
    assert_refused(fa(srv, "/items/1", "GET", key=k["secret"]), 429, "rate_limited")


def test_configured_default_rate_limit_applies(make_server):
    srv = make_server(config={"rate_limit": "2/60", "failed_key_limit": "none"})
    w = srv.create_workspace()
    k = w.create_key()
    for i in range(2):
        r = fa(srv, "/r", "GET", key=k["secret"])
        assert_pass(r, k, w)
        assert header_int(r, "RateLimit-Limit") == 2, describe(r)
    r = fa(srv, "/r", "GET", key=k["secret"])
    assert_refused(r, 429, "rate_limited")
    retry_after(r, 60)


# -- the per-address limit for failed keys -----------------------------------------------------------
# A proxy on this host, named in trusted_proxies, speaks for its clients; see
# test_trusted_proxies.py for the peers that are not trusted.

TRUST_LOCAL = {"trusted_proxies": "127.0.0.1"}


def test_without_trusted_proxies_address_headers_are_ignored(make_server):
    """None are trusted by default: a local process cannot pick the address its
    failures count against, so it cannot lock another client out."""
    srv = make_server(config={"failed_key_limit": "2/60"})
    w = srv.create_workspace()
    k = w.create_key()
    for i in range(2):
        assert_refused(fa(srv, "/r", "GET", key=make_secret(),
                          headers={"X-Real-IP": f"203.0.113.{i}",
                                   "X-Forwarded-For": f"198.51.100.{i}"}), 401, "invalid_key")
    # both failures were the peer's own, whatever it claimed
    assert_refused(fa(srv, "/r", "GET", key=k["secret"], headers={"X-Real-IP": "192.0.2.50"}),
                   429, "too_many_requests")


def test_failed_keys_count_against_x_real_ip(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", **TRUST_LOCAL})
    w = srv.create_workspace()
    k = w.create_key()
    a = {"X-Real-IP": "203.0.113.7"}
    b = {"X-Real-IP": "203.0.113.8"}
    for _ in range(2):
        assert_refused(fa(srv, "/r", "GET", key=make_secret(), headers=a), 401, "invalid_key")
    # the third check from that client is refused, even with a correct key
    r = fa(srv, "/r", "GET", key=k["secret"], headers=a)
    assert_refused(r, 429, "too_many_requests")
    retry_after(r, 60)
    assert k["id"] not in r.text
    assert_refused(fa(srv, "/r", "GET", key=make_secret(), headers=a), 429,
                   "too_many_requests")
    # another client behind the same proxy is not held back
    assert_pass(fa(srv, "/r", "GET", key=k["secret"], headers=b), k, w)
    assert_refused(fa(srv, "/r", "GET", key=make_secret(), headers=b), 401, "invalid_key")
    assert_pass(fa(srv, "/r", "GET", key=k["secret"], headers=b), k, w)
    # nor is the proxy itself: its own checks and calls still pass
    assert_pass(fa(srv, "/r", "GET", key=k["secret"]), k, w)
    assert expect_status(srv.verify({"key": k["secret"]}), 200)["valid"] is True
    expect_status(srv.get("/v1/keys", key=w.root_key), 200)
    # and an IPv6 client is an address of its own
    assert_pass(fa(srv, "/r", "GET", key=k["secret"], headers={"X-Real-IP": "2001:db8::7"}),
                k, w)


def test_failed_keys_count_against_the_last_x_forwarded_for_hop(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", **TRUST_LOCAL})
    w = srv.create_workspace()
    k = w.create_key()
    for xff in ("198.51.100.1, 203.0.113.7", "10.0.0.1,203.0.113.7"):
        assert_refused(fa(srv, "/r", "GET", key=make_secret(),
                          headers={"X-Forwarded-For": xff}), 401, "invalid_key")
    # the last hop is the address: any first hops the client made up do not matter
    for xff in ("203.0.113.7", "192.0.2.99, 203.0.113.7", "1.2.3.4 ,\t203.0.113.7"):
        assert_refused(fa(srv, "/r", "GET", key=k["secret"], headers={"X-Forwarded-For": xff}),
                       429, "too_many_requests")
    assert_refused(fa(srv, "/r", "GET", key=k["secret"],
                      headers={"X-Real-IP": "203.0.113.7"}), 429, "too_many_requests")
    # a client that put the blocked address first is someone else
    assert_pass(fa(srv, "/r", "GET", key=k["secret"],
                   headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}), k, w)
    # X-Real-IP comes before X-Forwarded-For
    assert_pass(fa(srv, "/r", "GET", key=k["secret"],
                   headers={"X-Real-IP": "198.51.100.3",
                            "X-Forwarded-For": "203.0.113.7"}), k, w)
    # the proxy's own address was never counted
    assert_pass(fa(srv, "/r", "GET", key=k["secret"]), k, w)


def test_an_address_header_that_is_not_an_address_counts_for_the_peer(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", **TRUST_LOCAL})
    w = srv.create_workspace()
    k = w.create_key()
    junk = ["not-an-ip", "203.0.113.7, nonsense", "203.0.113.999"]
    for xff in junk[:2]:
        assert_refused(fa(srv, "/r", "GET", key=make_secret(),
                          headers={"X-Forwarded-For": xff}), 401, "invalid_key")
    # both were counted against the peer, 127.0.0.1: now it is the one held back
    assert_refused(fa(srv, "/r", "GET", key=k["secret"],
                      headers={"X-Forwarded-For": junk[2]}), 429, "too_many_requests")
    assert_error(srv.auth_context(k["secret"]), 429, "too_many_requests")
    # while the address the junk seemed to name never was
    assert_pass(fa(srv, "/r", "GET", key=k["secret"], headers={"X-Real-IP": "203.0.113.7"}),
                k, w)


def test_address_headers_from_an_untrusted_peer_are_ignored(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", **TRUST_LOCAL})
    w = srv.create_workspace()
    k = w.create_key()
    need_other_address(srv)
    h = http_from("127.0.0.2")
    with h:
        # a peer not in trusted_proxies cannot choose the address it is counted as
        for ip in ("192.0.2.1", "192.0.2.2"):
            assert_refused(fa(srv, "/r", "GET", key=make_secret(), session=h,
                              headers={"X-Real-IP": ip}), 401, "invalid_key")
        r = fa(srv, "/r", "GET", key=k["secret"], session=h, headers={"X-Real-IP": "192.0.2.3"})
        assert_refused(r, 429, "too_many_requests")
    # those failures belonged to 127.0.0.2, not to the addresses it named
    assert_pass(fa(srv, "/r", "GET", key=k["secret"], headers={"X-Real-IP": "192.0.2.1"}), k, w)
    assert_pass(fa(srv, "/r", "GET", key=k["secret"]), k, w)


def test_public_routes_and_missing_keys_do_not_count(make_server, tmp_path):
    routes = tmp_path / "routes"
    routes.write_text("* /public/** public\n* /** any\n")
    srv = make_server(config={"failed_key_limit": "2/60", "routes": str(routes), **TRUST_LOCAL})
    w = srv.create_workspace()
    k = w.create_key()
    a = {"X-Real-IP": "203.0.113.7"}
    for _ in range(5):
        assert_public(fa(srv, "/public/x", "GET", key=make_secret(), headers=a))
        assert_refused(fa(srv, "/r", "GET", headers=a), 401, "missing_key")
        assert_refused(fa(srv, "/r", "GET", key="garbage", headers=a), 401, "malformed_key")
    assert_pass(fa(srv, "/r", "GET", key=k["secret"], headers=a), k, w)


# -- the routes file and the server's start ---------------------------------------------------------

class RoutesFlagServer(LatchkeyServer):
    """A server started with `serve --routes FILE` (and any --config as usual)."""

    def __init__(self, workdir, routes, **kw):
        self.routes_path = routes
        super().__init__(workdir, **kw)

    def _config_args(self):
        return super()._config_args() + ["--routes", str(self.routes_path)]


def test_routes_flag_works_and_wins_over_the_config(tmp_path):
    flag = tmp_path / "flag.routes"
    flag.write_text("GET /open public\n")
    conf = tmp_path / "conf.routes"
    conf.write_text("* /** any\n")
    srv = RoutesFlagServer(tmp_path / "srv", flag,
                           config={"failed_key_limit": "none", "routes": str(conf)})
    _live_servers.append(srv)
    try:
        srv.start()
        w = srv.create_workspace()
        k = w.create_key()
        assert_public(fa(srv, "/open", "GET"))
        assert_refused(fa(srv, "/other", "GET", key=k["secret"]), 403,
                       "insufficient_permissions")
    finally:
        _finish(srv)


def test_design_example_rules_file_verbatim(design_server, dws):
    srv = design_server
    reader = dws.create_key(permissions=["content:read"])
    runner = dws.create_key(permissions=["workflows:execute", "storage:read"])
    half = dws.create_key(permissions=["workflows:execute"])
    test_runner = dws.create_key(environment="test",
                                 permissions=["workflows:execute", "storage:read"])
    nobody = dws.create_key(permissions=["unrelated:x"])

    # GET /content/** content:read
    assert_pass(fa(srv, "/content/articles/12?lang=en", "GET", key=reader["secret"]),
                reader, dws)
    assert_pass(fa(srv, "/content", "GET", key=reader["secret"]), reader, dws)
    assert_refused(fa(srv, "/content/articles/12", "GET", key=runner["secret"]), 403,
                   "insufficient_permissions")
    assert_refused(fa(srv, "/content/articles/12", "GET"), 401, "missing_key")
    test_reader = dws.create_key(environment="test", permissions=["content:*"])
    assert_pass(fa(srv, "/content/x", "GET", key=test_reader["secret"]), test_reader, dws,
                "test")  # no env= on this rule

    # POST /content/*/run  workflows:execute AND storage:read  cost=5  env=live
    assert_refused(fa(srv, "/content/wf1/run", "POST", key=runner["secret"]), 402,
                   "insufficient_credits")
    top_up(srv, dws, 12)
    assert_pass(fa(srv, "/content/wf1/run", "POST", key=runner["secret"]), runner, dws)
    assert_pass(fa(srv, "/content/wf2/run?x=1", "POST", key=runner["secret"],
                   style="original"), runner, dws)
    assert_refused(fa(srv, "/content/wf1/run", "POST", key=runner["secret"]), 402,
                   "insufficient_credits")  # 2 left, 5 needed
    assert_refused(fa(srv, "/content/wf1/run", "POST", key=half["secret"]), 403,
                   "insufficient_permissions")
    assert_refused(fa(srv, "/content/wf1/run", "POST", key=test_runner["secret"]), 401,
                   "environment_mismatch")
    assert_refused(fa(srv, "/content/wf1/run", "POST", key=reader["secret"]), 403,
                   "insufficient_permissions")
    expect_credits(srv, dws, balance=2, spent=10, topped_up=12)
    # GET of the same path is the first rule's; POST elsewhere under /content is `any`
    assert_pass(fa(srv, "/content/wf1/run", "GET", key=reader["secret"]), reader, dws)
    assert_pass(fa(srv, "/content/wf1", "POST", key=nobody["secret"]), nobody, dws)
    assert_pass(fa(srv, "/content/wf1/run/more", "POST", key=nobody["secret"]), nobody, dws)

    # *  /public/**  public
    for method in ("GET", "POST", "DELETE"):
        assert_public(fa(srv, "/public/logo.png", method))
    assert_public(fa(srv, "/public", "GET"))
    assert_public(fa(srv, "/public/a/b/c?auth_token=junk", "GET"))

    # *  /**  any
    for uri in ("/", "/api/v1/things", "/publicity", "/contents/x"):
        assert_pass(fa(srv, uri, "PUT", key=nobody["secret"]), nobody, dws)
        assert_refused(fa(srv, uri, "PUT"), 401, "missing_key")
    expect_credits(srv, dws, balance=2, spent=10, topped_up=12)


# The forwarded URI is the client's raw request target (nginx's $request_uri, Traefik's
# X-Forwarded-Uri); the proxy and the backend serve it after removing dot segments,
# merging slashes and decoding %XX. A rule must judge the path that will be served.

@pytest.mark.parametrize("uri", [
    "/public/../content/x",
    "/public/%2e%2e/content/x",
    "/public/%2E%2E/content/x",
    "/public/./../content/x",
])
def test_dot_segments_do_not_reach_a_public_rule(design_server, uri):
    """/public/../content/x is /content/x, which needs content:read: without a key
    it is refused, not public."""
    r = fa(design_server, uri, "GET")
    assert r.status_code in (400, 401, 403), \
        f"{uri} was judged by its raw /public/ prefix: {describe(r)}"


@pytest.mark.parametrize("uri", [
    "//content/x",
    "/./content/x",
    "/x/../content/x",
    "/%63ontent/x",
])
def test_other_spellings_of_a_path_get_its_rule(design_server, dws, uri):
    """Every spelling of /content/x needs content:read, not just `any` key."""
    k = dws.create_key(permissions=["unrelated:x"])
    r = fa(design_server, uri, "GET", key=k["secret"])
    assert r.status_code in (400, 403), \
        f"{uri} escaped the rule for /content/**: {describe(r)}"


BAD_LINES = [
    ("GET /x", "too few words"),
    ("get /x any", "lower-case method"),
    ("GET x any", "pattern without /"),
    ("GET /a*/b any", "* inside a segment"),
    ("GET /**/x any", "** not last"),
    ("GET /x any cost=abc", "cost not a number"),
    ("GET /x any cost=-1", "negative cost"),
    ("GET /x any cost=1 cost=2", "cost twice"),
    ("GET /x any env=prod", "unknown env"),
    ("GET /x any env=live env=test", "env twice"),
    ("GET /x public cost=1", "public with a cost"),
    ("GET /x public env=live", "public with an env"),
    ("GET /x storage:read AND", "broken query"),
    ("GET /x (storage:read", "unbalanced query"),
    ("path_params maybe", "unknown path_params mode"),
    ("path_params", "path_params without a mode"),
    ("paths strip", "unknown directive"),
]


@pytest.mark.parametrize("line,what", BAD_LINES, ids=[w for _, w in BAD_LINES])
@pytest.mark.parametrize("how", ["flag", "config"])
def test_bad_routes_file_refuses_to_start(tmp_path, line, what, how):
    routes = tmp_path / "bad.routes"
    routes.write_text(f"# rules\nGET /ok any\n{line}\n* /** any\n")
    if how == "flag":
        r = run_serve(tmp_path, "--routes", str(routes))
    else:
        conf = tmp_path / "lk.conf"
        conf.write_text(f"failed_key_limit = none\nroutes = {routes}\n")
        r = run_serve(tmp_path, "--config", str(conf))
    assert r.returncode != 0, f"a routes file with `{line}` ({what}) was accepted: " \
                              f"{r.stderr[-500:]}"
    assert "routes line 3" in r.stderr, r.stderr[-500:]
    assert str(routes) in r.stderr, f"the message does not name the file: {r.stderr[-500:]}"


def test_missing_routes_file_refuses_to_start(tmp_path):
    missing = tmp_path / "no-such.routes"
    r = run_serve(tmp_path, "--routes", str(missing))
    assert r.returncode != 0, r.stderr[-500:]
    assert str(missing) in r.stderr, r.stderr[-500:]


def test_a_routes_file_without_rules_lets_nothing_through(tmp_path):
    """A routes file whose rules are all commented out matches no request, so every
    request must be refused (DESIGN §5: a request that matches no rule is refused as
    insufficient_permissions); "any valid key" is the rule of a server without a
    routes file. Refusing to start on such a file would be as safe."""
    routes = tmp_path / "empty.routes"
    routes.write_text("# everything is switched off for now\n# *  /**  any\n\n")
    srv = RoutesFlagServer(tmp_path / "srv", routes, config={"failed_key_limit": "none"})
    args = [BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--db", srv.db_url,
            "--routes", str(routes)]
    proc = subprocess.Popen(args, env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None and proc.returncode != 0:
            return  # refused to start: nothing can pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stderr.close()
    _live_servers.append(srv)
    try:
        srv.start()
        w = srv.create_workspace()
        k = w.create_key()
        for method, uri in (("GET", "/"), ("GET", "/anything"), ("POST", "/a/b")):
            assert_refused(fa(srv, uri, method, key=k["secret"]), 403,
                           "insufficient_permissions")
    finally:
        _finish(srv)
