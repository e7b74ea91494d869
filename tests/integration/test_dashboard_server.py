"""The dashboard's side of the server: its page and assets served from the binary
with a strict Content-Security-Policy, the fallback of non-API paths to the page,
the Origin check on cookie-signed writes, and the API calls the page reads
(workspace usage, the permissions in use, audit filters, the `routes` flag).

The page's files come from web/dist/ at build time; these tests check what the
server does with whatever is built in, not the page itself (tests/browser/ does)."""

import time

import pytest
import requests

from conftest import SHARED_CONFIG, poll
from lkhelpers import HTTP_TIMEOUT, assert_error, describe, expect_status, parse_time

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def check_dashboard_headers(r):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path,ctype", [
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/app.css", "text/css; charset=utf-8"),
])
def test_pages_are_served_with_strict_headers(server, path, ctype):
    r = server.get(path)
    check_dashboard_headers(r)
    assert r.headers["Content-Type"] == ctype
    assert len(r.content) > 0


def test_page_is_the_built_index(server):
    index = server.get("/").content
    assert server.get("/index.html").content == index
    assert index != server.get("/app.js").content


@pytest.mark.parametrize("path", ["/keys", "/members/x", "/invite/abc?x=1", "/a/b/c.html"])
def test_other_paths_fall_back_to_the_page(server, path):
    r = server.get(path)
    check_dashboard_headers(r)
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.content == server.get("/").content


@pytest.mark.parametrize("path", ["/v1/nope", "/v1", "/v2/keys", "/v9", "/api/nope",
                                  "/v1/keys/x/nope",
                                  "/healthzz", "/metrics/x", "/openapi.json/x",
                                  # probes, not the page's links
                                  "/.git/config", "/.env", "/a/.hidden", "/%2e%2e/etc/passwd",
                                  "/x%00y", "/a\\b"])
def test_api_paths_stay_json_404(server, path):
    r = server.get(path)
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["error"]["code"] == "not_found"
    assert "Content-Security-Policy" not in r.headers


def test_only_get_falls_back(server):
    r = server.post("/keys", json={})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = server.post("/", json={})
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


# -- CSRF: the Origin of cookie-signed writes -----------------------------------------

def cookie_call(server, method, path, cookie, workspace_id, origin=None, **kw):
    headers = {"X-Latchkey-Workspace": workspace_id}
    if origin is not None:
        headers["Origin"] = origin
    headers.update(kw.pop("headers", {}))
    return requests.request(method, server.url(path), headers=headers,
                            cookies={"lk_session": cookie}, timeout=HTTP_TIMEOUT, **kw)


@pytest.fixture
def owner(ws):
    s = ws.new_session("owner")
    assert s.cookie
    return s


def test_cross_origin_cookie_writes_are_refused(server, ws, owner):
    key = ws.create_key()
    evil = "http://evil.example"
    for method, path, body in [("POST", "/v1/keys", {"name": "csrf"}),
                               ("PATCH", f"/v1/keys/{key['id']}", {"name": "csrf"}),
                               ("DELETE", f"/v1/keys/{key['id']}", None)]:
        kw = {"json": body} if body is not None else {}
        r = cookie_call(server, method, path, owner.cookie, ws.id, origin=evil, **kw)
        assert r.status_code == 403, (method, r.text)
        err = r.json()["error"]
        assert err["code"] == "insufficient_permissions"
        assert "origin" in err["message"].lower()
    # Nothing changed: the key is there, with its name, and no key "csrf" exists.
    got = ws.get_key(key["id"])
    assert got["name"] == key["name"] and got.get("status", "active") == "active"
    assert all(k["name"] != "csrf" for k in ws.list_keys()["data"])


@pytest.mark.parametrize("origin", [
    "null", "http://127.0.0.2:{port}", "https://127.0.0.1:{port}", "http://127.0.0.1",
    "http://127.0.0.1:{port}/", "http://127.0.0.1:{port}.evil.example",
    "http://user@127.0.0.1:{port}", "",
])
def test_near_miss_origins_are_refused(server, ws, owner, origin):
    origin = origin.format(port=server.port)
    r = cookie_call(server, "POST", "/v1/keys", owner.cookie, ws.id, origin=origin,
                    json={"name": "near-miss"})
    assert r.status_code == 403, (origin, r.text)
    assert r.json()["error"]["code"] == "insufficient_permissions"


def test_same_origin_and_no_origin_cookie_writes_pass(server, ws, owner):
    same = f"http://127.0.0.1:{server.port}"
    r = cookie_call(server, "POST", "/v1/keys", owner.cookie, ws.id, origin=same,
                    json={"name": "same-origin"})
    assert r.status_code == 201, r.text
    kid = r.json()["id"]
    # Host's case and an explicit default port do not matter.
    r = cookie_call(server, "PATCH", f"/v1/keys/{kid}", owner.cookie, ws.id,
                    origin=same.upper().replace("HTTP://", "http://"), json={"name": "renamed"})
    assert r.status_code == 200, r.text
    # a Host in capitals, or with the default port, is still this origin
    r = cookie_call(server, "POST", "/v1/keys", owner.cookie, ws.id,
                    origin=f"http://latchkey.example:{server.port}", json={"name": "caps"},
                    headers={"Host": f"LatchKey.Example:{server.port}"})
    assert r.status_code == 201, r.text
    r = cookie_call(server, "POST", "/v1/keys", owner.cookie, ws.id,
                    origin="http://latchkey.example", json={"name": "port80"},
                    headers={"Host": "latchkey.example:80"})
    assert r.status_code == 201, r.text
    r = cookie_call(server, "POST", "/v1/keys", owner.cookie, ws.id,
                    origin="http://latchkey.example", json={"name": "other-host"},
                    headers={"Host": f"latchkey.example:{server.port}"})
    assert r.status_code == 403, r.text
    r = cookie_call(server, "POST", "/v1/keys", owner.cookie, ws.id, json={"name": "no-origin"})
    assert r.status_code == 201, r.text
    r = cookie_call(server, "DELETE", f"/v1/keys/{kid}", owner.cookie, ws.id, origin=same)
    assert r.status_code in (200, 204), r.text


def test_two_origin_headers_are_refused(server, ws, owner):
    import http.client
    body = b'{"name":"two-origins"}'
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)
    c.putrequest("POST", "/v1/keys")
    c.putheader("Origin", f"http://127.0.0.1:{server.port}")
    c.putheader("Origin", "http://evil.example")
    c.putheader("Cookie", f"lk_session={owner.cookie}")
    c.putheader("X-Latchkey-Workspace", ws.id)
    c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    assert r.status == 403
    c.close()


def test_bearer_credentials_ignore_origin(server, ws, owner):
    evil = {"Origin": "http://evil.example"}
    r = server.post("/v1/keys", key=ws.root_key, json={"name": "bearer"}, headers=evil)
    assert r.status_code == 201, r.text
    h = dict(owner.headers(ws.id), **evil)
    r = requests.post(server.url("/v1/keys"), json={"name": "session-bearer"}, headers=h,
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, r.text


def test_origin_scheme_follows_a_trusted_proxy(make_server):
    """Behind a trusted proxy that says X-Forwarded-Proto: https, latchkey's own
    origin is https://Host; the same header from an untrusted peer changes nothing."""
    srv = make_server(config={**SHARED_CONFIG, "trusted_proxies": "127.0.0.1"})
    w = srv.create_workspace()
    s = w.new_session("owner")
    https = {"X-Forwarded-Proto": "https"}
    ok = cookie_call(srv, "POST", "/v1/keys", s.cookie, w.id,
                     origin=f"https://127.0.0.1:{srv.port}", json={"name": "tls"}, headers=https)
    assert ok.status_code == 201, ok.text
    r = cookie_call(srv, "POST", "/v1/keys", s.cookie, w.id,
                    origin=f"http://127.0.0.1:{srv.port}", json={"name": "plain"}, headers=https)
    assert_error(r, 403, "insufficient_permissions")

    plain = make_server(config=dict(SHARED_CONFIG))  # trusts no proxy
    w2 = plain.create_workspace()
    s2 = w2.new_session("owner")
    r = cookie_call(plain, "POST", "/v1/keys", s2.cookie, w2.id,
                    origin=f"https://127.0.0.1:{plain.port}", json={"name": "forged"},
                    headers=https)
    assert_error(r, 403, "insufficient_permissions")


def test_cross_origin_reads_are_not_refused(server, ws, owner):
    # A read changes nothing, and CORS keeps its answer from another origin's page.
    r = cookie_call(server, "GET", "/v1/keys", owner.cookie, ws.id, origin="http://evil.example")
    assert r.status_code == 200, r.text


# -- GET /v1/usage: the whole workspace's checks --------------------------------------------

def code(server, secret, **body):
    return expect_status(server.verify({"key": secret, **body}), 200)["code"]


def usage(server, path, key, **params):
    return expect_status(server.get(path, key=key, params=params), 200)


def summed(docs):
    """Per bucket start, the outcome counts of several usage answers added up."""
    out = {}
    for doc in docs:
        for e in doc["data"]:
            b = out.setdefault(e["start"], {})
            for c, n in e["outcomes"].items():
                b[c] = b.get(c, 0) + n
    return {s: b for s, b in out.items() if b}


def test_workspace_usage_is_the_sum_of_its_keys(server, ws, ws2):
    a = ws.create_key(rate_limit={"limit": 2, "window_s": 60})
    b = ws.create_key()
    gone = ws.create_key()
    for _ in range(3):
        code(server, a["secret"])  # valid, valid, rate_limited
    code(server, b["secret"])
    code(server, gone["secret"])
    assert server.delete(f"/v1/keys/{gone['id']}", key=ws.root_key).status_code == 204
    assert code(server, gone["secret"]) == "revoked_key"
    # another workspace's checks count only there
    other = ws2.create_key()
    for _ in range(4):
        code(server, other["secret"])

    want = {"valid": 4, "rate_limited": 1, "revoked_key": 1}

    def settled():
        doc = usage(server, "/v1/usage", ws.root_key)
        assert doc["totals"] == want, doc["totals"]
        return doc
    doc = poll(settled, what=f"workspace usage {want}")
    assert "key_id" not in doc and doc["granularity"] == "hour"
    assert set(doc) == {"granularity", "from", "to", "data", "totals"}
    keys = [usage(server, f"/v1/keys/{k['id']}/usage", ws.root_key) for k in (a, b, gone)]
    assert summed([doc]) == summed(keys)
    assert [e["start"] for e in doc["data"]] == [e["start"] for e in keys[0]["data"]]
    for e in doc["data"]:
        assert e["total"] == sum(e["outcomes"].values())
    # by day, the same checks; and the other workspace sees only its own four
    day = usage(server, "/v1/usage", ws.root_key, granularity="day")
    assert day["totals"] == want and len(day["data"]) == 30
    poll(lambda: usage(server, "/v1/usage", ws2.root_key)["totals"] == {"valid": 4}
         or pytest.fail("ws2 usage"), what="ws2 usage")


def test_workspace_usage_refuses_bad_ranges(server, ws):
    for params, field in [({"granularity": "week"}, "granularity"), ({"from": "yesterday"}, "from"),
                          ({"from": "2026-01-10T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
                          ({"granularity": "hour", "from": "1000000000",
                            "to": "1100000000"}, "from")]:
        r = server.get("/v1/usage", key=ws.root_key, params=params)
        assert_error(r, 400, "invalid_request")
        assert r.json()["error"].get("field") == field, describe(r)


def test_workspace_usage_needs_keys_read(server, ws):
    k = ws.create_key()
    assert_error(server.get("/v1/usage", key=k["secret"]), 403, "insufficient_permissions")
    assert_error(server.get("/v1/usage"), 401, "missing_key")


# -- GET /v1/permissions ----------------------------------------------------------------------

def test_permissions_in_use(server, ws, ws2):
    ws.create_key(permissions=["content:write", "content:read"])
    ws.create_key(permissions=["content:read", "billing:read"])
    ws.create_key()  # none
    gone = ws.create_key(permissions=["only:revoked"])
    assert server.delete(f"/v1/keys/{gone['id']}", key=ws.root_key).status_code == 204
    ws2.create_key(permissions=["other:workspace"])
    doc = expect_status(server.get("/v1/permissions", key=ws.root_key), 200)
    assert set(doc) == {"data"}
    assert doc["data"] == sorted(set(doc["data"]))
    assert {"billing:read", "content:read", "content:write"} <= set(doc["data"])
    assert "only:revoked" not in doc["data"]
    assert "other:workspace" not in doc["data"]
    assert "other:workspace" in expect_status(server.get("/v1/permissions", key=ws2.root_key),
                                              200)["data"]
    # a viewer reads them too (keys:read); a plain key does not
    viewer = ws.new_session("viewer")
    r = requests.get(server.url("/v1/permissions"), headers=viewer.headers(ws.id),
                     timeout=HTTP_TIMEOUT)
    assert expect_status(r, 200)["data"] == doc["data"]
    plain = ws.create_key()
    assert_error(server.get("/v1/permissions", key=plain["secret"]), 403,
                 "insufficient_permissions")


# -- GET /v1/audit filters --------------------------------------------------------------------

def audit(server, key, **params):
    events, cursor = [], None
    while True:
        p = dict(params, limit=2)
        if cursor:
            p["cursor"] = cursor
        doc = expect_status(server.get("/v1/audit", key=key, params=p), 200)
        events.extend(doc["data"])
        cursor = doc["next_cursor"]
        if not cursor:
            return events


def test_audit_filters_alone_and_combined(clock_server):
    srv = clock_server
    w = srv.create_workspace()
    other = srv.create_workspace()
    k1 = w.create_key(name="one")
    owner = w.new_session("owner")
    t_mid = int(srv.now()) + 50
    srv.advance_clock(100)
    r = requests.patch(srv.url(f"/v1/keys/{k1['id']}"), json={"name": "uno"},
                       headers=owner.headers(w.id), timeout=HTTP_TIMEOUT)
    expect_status(r, 200)
    k2 = expect_status(requests.post(srv.url("/v1/keys"), json={"name": "two"},
                                     headers=owner.headers(w.id), timeout=HTTP_TIMEOUT), 201)
    assert srv.delete(f"/v1/keys/{k2['id']}", key=w.root_key).status_code == 204
    other.create_key(name="elsewhere")

    everything = audit(srv, w.root_key)
    assert {e["action"] for e in everything} >= {"key.create", "key.update", "key.revoke",
                                                 "invitation.create", "invitation.accept"}
    root_actor = next(e["actor"] for e in everything
                      if e["target"] == k1["id"] and e["action"] == "key.create")
    user = owner.user_id
    assert root_actor != user

    def ids(events):
        return [e["id"] for e in events]

    def kept(pred):
        return ids([e for e in everything if pred(e)])

    def at(e):
        return parse_time(e["created_at"])

    # each filter alone is the unfiltered log filtered here
    assert ids(audit(srv, w.root_key, action="key.create")) == \
        kept(lambda e: e["action"] == "key.create")
    assert {k1["id"], k2["id"]} <= {e["target"] for e in audit(srv, w.root_key,
                                                                action="key.create")}
    got = ids(audit(srv, w.root_key, action="key."))
    assert got and got == kept(lambda e: e["action"].startswith("key."))
    assert len(got) < len(everything)  # invitation.* left out
    assert audit(srv, w.root_key, action="key") == []  # no dot: exact only
    got = ids(audit(srv, w.root_key, actor=user))
    assert got and got == kept(lambda e: e["actor"] == user)
    got = ids(audit(srv, w.root_key, actor=root_actor))
    assert got and got == kept(lambda e: e["actor"] == root_actor)
    late = ids(audit(srv, w.root_key, **{"from": str(t_mid)}))
    assert late and late == kept(lambda e: at(e) >= t_mid)
    early = ids(audit(srv, w.root_key, to=str(t_mid)))
    assert early and early == kept(lambda e: at(e) < t_mid)
    assert sorted(early + late, reverse=True) == ids(everything)
    # RFC 3339 works as well as Unix seconds
    rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_mid))
    assert ids(audit(srv, w.root_key, to=rfc)) == early
    assert ids(audit(srv, w.root_key, **{"from": rfc})) == late
    # combined: all must hold
    got = audit(srv, w.root_key, actor=user, action="key.", **{"from": str(t_mid)})
    assert [(e["action"], e["target"]) for e in got] == [("key.create", k2["id"]),
                                                         ("key.update", k1["id"])]
    assert audit(srv, w.root_key, actor=user, action="key.revoke") == []
    assert ids(audit(srv, w.root_key, action="key.create", to=str(t_mid))) == \
        kept(lambda e: e["action"] == "key.create" and at(e) < t_mid)
    assert ids(audit(srv, w.root_key, actor=root_actor, action="key.revoke",
                     **{"from": str(t_mid)}, to=str(t_mid + 1000))) == \
        kept(lambda e: e["action"] == "key.revoke" and e["target"] == k2["id"])
    # another workspace's events never show, whatever the filter
    theirs = ids(audit(srv, other.root_key))
    assert theirs and not set(theirs) & set(ids(everything))
    for params in ({"action": "key."}, {"actor": root_actor}, {"to": str(t_mid + 10**6)}):
        assert not set(ids(audit(srv, w.root_key, **params))) & set(theirs)


@pytest.mark.parametrize("params,field", [
    ({"from": "soon"}, "from"), ({"to": "-5"}, "to"), ({"from": "200", "to": "100"}, "to"),
    ({"action": "x" * 48}, "action"), ({"actor": "k" * 200}, "actor"),
])
def test_audit_filters_refuse_bad_values(server, ws, params, field):
    r = server.get("/v1/audit", key=ws.root_key, params=params)
    assert_error(r, 400, "invalid_request")
    assert r.json()["error"].get("field") == field, describe(r)


# -- GET /v1/me: the routes flag --------------------------------------------------------------

def test_me_says_whether_routes_are_loaded(server, ws, make_server, tmp_path):
    s = ws.new_session("viewer")
    me = expect_status(requests.get(server.url("/v1/me"), headers=s.headers(),
                                    timeout=HTTP_TIMEOUT), 200)
    assert me["routes"] is False
    assert {"user", "memberships", "expires_at"} <= set(me)

    rules = tmp_path / "routes.txt"
    rules.write_text("GET /content/* content:read\n")
    srv = make_server(config={**SHARED_CONFIG, "routes": str(rules)})
    w = srv.create_workspace()
    s2 = w.new_session("owner")
    me = expect_status(requests.get(srv.url("/v1/me"), headers=s2.headers(),
                                    timeout=HTTP_TIMEOUT), 200)
    assert me["routes"] is True
    assert [m["workspace_id"] for m in me["memberships"]] == [w.id]
    # by the cookie too, as the page asks
    r = requests.get(srv.url("/v1/me"), cookies={"lk_session": s2.cookie}, timeout=HTTP_TIMEOUT)
    assert expect_status(r, 200)["routes"] is True
