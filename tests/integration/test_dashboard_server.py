"""The dashboard's side of the server: its page and assets served from the binary
with a strict Content-Security-Policy, the fallback of non-API paths to the page,
the Origin check on cookie-signed writes, and the API calls the page reads
(workspace usage, the permissions in use, audit filters, the `routes` flag).

The page's files come from web/dist/ at build time; these tests check what the
server does with whatever is built in, not the page itself (tests/browser/ does)."""
import time

import pytest
import requests

from lkhelpers import HTTP_TIMEOUT, expect_status

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


@pytest.mark.parametrize("path", ["/v1/nope", "/v1", "/api/nope", "/v1/keys/x/nope",
                                  "/healthzz", "/metrics/x", "/openapi.json/x"])
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


def test_cross_origin_reads_are_not_refused(server, ws, owner):
    # A read changes nothing, and CORS keeps its answer from another origin's page.
    r = cookie_call(server, "GET", "/v1/keys", owner.cookie, ws.id, origin="http://evil.example")
    assert r.status_code == 200, r.text
