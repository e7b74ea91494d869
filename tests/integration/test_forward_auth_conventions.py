"""Forward auth as the proxies without a Debian package call it (docs/proxies.md):
Traefik's ForwardAuth (X-Forwarded-Method / -Proto / -Host / -Uri / -For, set by
Traefik) and Envoy's ext_authz HTTP service (`path_prefix: /v1/forward-auth`: the
original path and query appended, the original method, the original headers). No
Traefik or Envoy runs here: these send exactly what each sends. Also the per_ip=N/S
route limit, asked directly.
"""

import pytest
import requests

from conftest import SHARED_CONFIG, LatchkeyServer, _finish, _live_servers, latchkey_behind_proxy
from lkhelpers import HTTP_TIMEOUT, assert_error, describe

FA = "/v1/forward-auth"

ROUTES = """\
POST    /publish        public              per_ip=2/60
GET     /public/**      public
*       /admin/**       admin:read
GET     /limited/*      any                 per_ip=1/60
*       /**             any
"""


@pytest.fixture(scope="module")
def lk(tmp_path_factory):
    srv = latchkey_behind_proxy(tmp_path_factory.mktemp("fa-conv"), ROUTES)
    srv.auto_restart = True
    yield srv
    _finish(srv)


@pytest.fixture
def w(lk):
    return lk.create_workspace()


def passed(r, key=None):
    assert r.status_code == 200 and r.content == b"", describe(r)
    assert "X-Latchkey-Error-Code" not in r.headers, describe(r)
    if key is not None:
        assert r.headers.get("X-Latchkey-Key-Id") == key["id"], describe(r)
    return r


def refused(r, status, code):
    assert_error(r, status, code)
    assert r.headers.get("X-Latchkey-Error-Code") == code, describe(r)
    assert "X-Latchkey-Key-Id" not in r.headers, describe(r)
    return r


# -- Traefik ----------------------------------------------------------------------------------

def traefik(lk, method, uri, client="198.51.100.20", headers=None):
    """What Traefik's ForwardAuth sends: a GET to the address, the client's headers,
    and X-Forwarded-* describing the original request."""
    h = {"X-Forwarded-Method": method, "X-Forwarded-Proto": "https",
         "X-Forwarded-Host": "api.example.com", "X-Forwarded-Uri": uri,
         "X-Forwarded-For": client, **(headers or {})}
    return requests.get(lk.url(FA), headers=h, timeout=HTTP_TIMEOUT)


def test_traefik_headers_choose_the_rule_and_read_the_key(lk, w):
    reader = w.create_key(permissions=["content:read"])
    admin = w.create_key(permissions=["admin:read"])
    bearer = {"Authorization": f"Bearer {reader['secret']}"}
    passed(traefik(lk, "GET", "/content/1?x=1", headers=bearer), reader)
    refused(traefik(lk, "DELETE", "/admin/users"), 401, "missing_key")
    refused(traefik(lk, "DELETE", "/admin/users", headers=bearer), 403,
            "insufficient_permissions")
    passed(traefik(lk, "DELETE", "/admin/users",
                   headers={"X-API-Key": admin["secret"]}), admin)
    passed(traefik(lk, "GET", f"/content/1?auth_token={reader['secret']}"), reader)
    passed(traefik(lk, "GET", "/public/logo.png"))


def test_traefik_x_forwarded_for_is_the_client_for_per_ip(lk, w):
    for _ in range(2):
        passed(traefik(lk, "POST", "/publish", client="198.51.100.30"))
    r = refused(traefik(lk, "POST", "/publish", client="198.51.100.30"), 429,
                "too_many_requests")
    assert 1 <= int(r.headers["Retry-After"]) <= 60, describe(r)
    # another client of the same Traefik is another address
    passed(traefik(lk, "POST", "/publish", client="198.51.100.31"))


# -- Envoy --------------------------------------------------------------------------------------

def envoy(lk, method, original, headers=None):
    """What Envoy's ext_authz HTTP service sends with path_prefix /v1/forward-auth:
    the original method, the prefix then the original path and query."""
    return requests.request(method, lk.url(FA + original), headers=headers or {},
                            timeout=HTTP_TIMEOUT)


def test_envoy_path_prefix_form(lk, w):
    reader = w.create_key(permissions=["content:read"])
    admin = w.create_key(permissions=["admin:read"])
    bearer = {"Authorization": f"Bearer {reader['secret']}"}
    passed(envoy(lk, "GET", "/content/1?x=1", bearer), reader)
    passed(envoy(lk, "GET", "/", bearer), reader)
    refused(envoy(lk, "GET", "/admin/users"), 401, "missing_key")
    refused(envoy(lk, "DELETE", "/admin/users", bearer), 403, "insufficient_permissions")
    passed(envoy(lk, "DELETE", "/admin/users", {"X-API-Key": admin["secret"]}), admin)
    passed(envoy(lk, "POST", "/admin/x", {"X-AUTH-TOKEN": admin["secret"]}), admin)
    # the key in the original query
    passed(envoy(lk, "GET", f"/content/1?a=1&auth_token={reader['secret']}"), reader)
    # public, by the original path
    passed(envoy(lk, "GET", "/public/logo.png"))
    refused(envoy(lk, "POST", "/public/logo.png"), 401, "missing_key")


def test_envoy_path_is_normalised_like_any_other(lk, w):
    reader = w.create_key(permissions=["content:read"])
    bearer = {"Authorization": f"Bearer {reader['secret']}"}
    for target in ("/public/../admin/users", "/public/%2e%2e/admin/users",
                   "/public/%2fadmin", "/admin;x/users"):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", lk.port, timeout=HTTP_TIMEOUT)
        try:
            c.request("GET", FA + target)
            r = c.getresponse()
            body = r.read()
            assert r.status in (401, 403), f"{target}: {r.status} {body!r}"
        finally:
            c.close()
    refused(envoy(lk, "GET", "//admin/users", bearer), 403, "insufficient_permissions")


def test_envoy_suffix_and_headers_must_agree(lk, w):
    """The path suffix is the request judged; an X-Forwarded-Uri / X-Original-URI
    or method header beside it must say the same, or the check is refused."""
    admin = w.create_key(permissions=["admin:read"])
    h = {"X-API-Key": admin["secret"]}
    passed(envoy(lk, "GET", "/admin/x", {**h, "X-Forwarded-Uri": "/admin/x"}), admin)
    passed(envoy(lk, "GET", "/admin/x", {**h, "X-Original-Method": "GET"}), admin)
    for extra in ({"X-Forwarded-Uri": "/public/x"}, {"X-Original-URI": "/public/x"},
                  {"X-Forwarded-Method": "POST"}, {"X-Original-Method": "HEAD"}):
        r = envoy(lk, "GET", "/public/x", extra)
        if "X-Forwarded-Uri" in extra or "X-Original-URI" in extra:
            r = envoy(lk, "GET", "/admin/x", extra)
        refused(r, 403, "insufficient_permissions")


# -- per_ip -------------------------------------------------------------------------------------

def fa(lk, method, uri, key=None, headers=None):
    h = {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, **(headers or {})}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    return requests.get(lk.url(FA), headers=h, timeout=HTTP_TIMEOUT)


def test_per_ip_counts_each_rule_and_address_apart(lk, w):
    k = w.create_key()
    ip = {"X-Real-IP": "198.51.100.40"}
    passed(fa(lk, "GET", "/limited/a", k["secret"], ip), k)
    # the same rule, another path it matches: the same count
    refused(fa(lk, "GET", "/limited/b", k["secret"], ip), 429, "too_many_requests")
    # no key, a bad key: still refused for the address first, and it costs no key lookup
    refused(fa(lk, "GET", "/limited/a", None, ip), 429, "too_many_requests")
    # another rule is another count; another address too
    passed(fa(lk, "GET", "/other", k["secret"], ip), k)
    passed(fa(lk, "GET", "/limited/a", k["secret"], {"X-Real-IP": "198.51.100.41"}), k)
    passed(fa(lk, "POST", "/publish", None, ip))


def test_per_ip_on_a_public_route_needs_no_key(lk):
    ip = {"X-Real-IP": "2001:db8::50"}
    for _ in range(2):
        passed(fa(lk, "POST", "/publish", None, ip))
    r = refused(fa(lk, "POST", "/publish", None, ip), 429, "too_many_requests")
    assert 1 <= int(r.headers["Retry-After"]) <= 60, describe(r)
    # another spelling of the same address is the same client
    refused(fa(lk, "POST", "/publish", None, {"X-Real-IP": "2001:DB8:0::50"}), 429,
            "too_many_requests")


def test_per_ip_from_an_untrusted_peer_counts_the_peer(tmp_path):
    """Without trusted_proxies the address headers are the client's own word: every
    made-up X-Real-IP is still the one peer."""
    (tmp_path / "routes.txt").write_text(ROUTES)
    srv = LatchkeyServer(tmp_path / "srv", config={**SHARED_CONFIG,
                                                   "routes": str(tmp_path / "routes.txt")})
    _live_servers.append(srv)
    srv.start()
    try:
        for i in range(2):
            passed(fa(srv, "POST", "/publish", None, {"X-Real-IP": f"198.51.100.{60 + i}"}))
        refused(fa(srv, "POST", "/publish", None, {"X-Real-IP": "198.51.100.99"}), 429,
                "too_many_requests")
    finally:
        _finish(srv)


def test_bad_per_ip_refuses_to_start(tmp_path):
    from test_forward_auth import run_serve
    (tmp_path / "r.txt").write_text("POST /publish public per_ip=0/60\n")
    p = run_serve(tmp_path, "--routes", str(tmp_path / "r.txt"))
    assert p.returncode != 0 and "per_ip" in p.stderr, p.stderr
