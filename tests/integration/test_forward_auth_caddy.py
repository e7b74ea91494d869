"""Forward auth behind a real Caddy (Debian package caddy), configured with the
shipped deploy/caddy/Caddyfile, used as it is: the test only sets the addresses it
reads from the environment (LATCHKEY_SITE, LATCHKEY_UPSTREAM, LATCHKEY_APP) and
turns Caddy's admin endpoint off. The API behind it is an echo server in this
process that answers with what reached it, as JSON. latchkey trusts 127.0.0.1,
where Caddy connects from.

Caddy's forward_auth passes latchkey's refusals to the client as they are: status,
JSON error body and Retry-After.
"""

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from conftest import _finish, clean_env, free_port, latchkey_behind_proxy, proxies_started
from lkhelpers import HTTP_TIMEOUT, LoopbackSite, assert_error, describe, make_secret

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "caddy" / "Caddyfile"

ROUTES = """\
GET     /public/**      public
GET     /content/**     content:read
POST    /content/*/run  workflows:execute AND content:read
*       /admin/**       admin:read
*       /**             any
"""


class Echo(BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({"backend": True, "method": self.command, "target": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


class Caddy(LoopbackSite):
    def __init__(self, workdir, latchkey_port, backend_port):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        exe = shutil.which("caddy") or shutil.which("caddy", path="/usr/bin:/usr/sbin")
        if exe is None:
            pytest.fail("caddy not found: these tests need a real Caddy (Debian: apt-get "
                        "install caddy, or scripts/deps.sh test)")
        env = clean_env(LATCHKEY_SITE=f"http://127.0.0.1:{self.port}",
                        LATCHKEY_UPSTREAM=f"127.0.0.1:{latchkey_port}",
                        LATCHKEY_APP=f"127.0.0.1:{backend_port}",
                        LATCHKEY_CADDY_ADMIN="off",
                        HOME=str(self.dir), XDG_DATA_HOME=str(self.dir / "data"),
                        XDG_CONFIG_HOME=str(self.dir / "config"))
        self.log = open(self.dir / "caddy.log", "ab")
        self.proc = subprocess.Popen([exe, "run", "--config", str(SHIPPED), "--adapter",
                                      "caddyfile"], env=env, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"caddy exited: {self.tail()}")
            try:
                requests.get(self.url("/public/ready"), timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"caddy did not answer within 20 s: {self.tail()}")

    def tail(self):
        return (self.dir / "caddy.log").read_text(errors="replace")[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def raw(self, method, target, key=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            c.request(method, target, headers={} if key is None else
                      {"Authorization": f"Bearer {key}"})
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()


@pytest.fixture(scope="module")
def backend():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def lk(tmp_path_factory):
    srv = latchkey_behind_proxy(tmp_path_factory.mktemp("fa-caddy-lk"), ROUTES)
    srv.auto_restart = True
    yield srv
    _finish(srv)


@pytest.fixture
def start_caddy(tmp_path, backend):
    yield from proxies_started(tmp_path, "caddy", lambda d, srv: Caddy(d, srv.port, backend))


@pytest.fixture
def caddy(lk, start_caddy):
    return start_caddy(lk)


@pytest.fixture
def w(lk):
    return lk.create_workspace()


def backend_saw(r):
    assert r.status_code == 200, f"the request did not reach the backend: {describe(r)}"
    doc = r.json()
    assert doc.get("backend") is True, describe(r)
    return doc


def refused(r, status, code):
    """latchkey's own refusal, passed on by Caddy, and nothing from the backend."""
    assert "backend" not in r.text, describe(r)
    assert_error(r, status, code)


def test_a_valid_key_reaches_the_backend_with_its_identity(caddy, w):
    k = w.create_key()
    saw = backend_saw(caddy.get("/api/things?page=2", key=k["secret"]))
    h = saw["headers"]
    assert (h.get("x-latchkey-key-id"), h.get("x-latchkey-workspace-id"),
            h.get("x-latchkey-environment")) == (k["id"], w.id, "live"), saw
    assert saw["target"] == "/api/things?page=2", saw


def test_the_backend_never_sees_the_secret_or_a_forged_identity(caddy, w):
    k = w.create_key()
    forged = {"X-Latchkey-Key-Id": "key_forged", "X-Latchkey-Workspace-Id": "ws_forged",
              "X-Latchkey-Environment": "test", "X-Latchkey-Other": "x"}
    places = [({"Authorization": f"Bearer {k['secret']}"}, "/x?a=1"),
              ({"X-API-Key": k["secret"]}, "/x?a=1"),
              ({"X-AUTH-TOKEN": k["secret"]}, "/x?a=1")]
    for h, target in places:
        r = caddy.get(target, headers={**h, **forged})
        saw = backend_saw(r)
        assert k["secret"] not in r.text, f"the secret reached the backend: {r.text}"
        got = saw["headers"]
        assert got.get("x-latchkey-key-id") == k["id"], saw
        assert got.get("x-latchkey-workspace-id") == w.id, saw
        assert got.get("x-latchkey-environment") == "live", saw
        assert "x-latchkey-other" not in got, saw
        for name in ("authorization", "x-api-key", "x-auth-token"):
            assert name not in got, (name, saw)
        assert "a=1" in saw["target"].partition("?")[2].split("&"), saw
    # a public path: no identity
    saw = backend_saw(caddy.get("/public/logo.png", headers=forged))
    assert not [n for n in saw["headers"] if n.startswith("x-latchkey-")], saw


def test_a_key_in_the_query_is_refused_before_it_reaches_the_backend(caddy, w):
    """Caddy 2.6 cannot drop one query parameter, so the shipped Caddyfile refuses
    auth_token in the query (400 in the error shape) rather than pass it on."""
    k = w.create_key()
    for target in (f"/x?a=1&auth_token={k['secret']}", f"/x?auth_token={k['secret']}&a=1",
                   f"/public/x?auth_token={k['secret']}", "/x?auth_token=",
                   f"/x?a=1;b&auth_token={k['secret']}", f"/x?AUTH_TOKEN={k['secret']}",
                   f"/x?auth%5Ftoken={k['secret']}"):
        r = caddy.get(target)
        assert r.status_code == 400 and "backend" not in r.text, f"{target}: {describe(r)}"
        assert_error(r, 400, "invalid_request")
        assert k["secret"] not in r.text


def test_a_forged_forwarded_uri_does_not_make_a_path_public(caddy, w):
    for forged in ({"X-Forwarded-Uri": "/public/x"}, {"X-Original-URI": "/public/x"},
                   {"X-Forwarded-Uri": "/public/x", "X-Original-URI": "/public/x",
                    "X-Forwarded-Method": "GET", "X-Original-Method": "GET"}):
        refused(caddy.get("/admin/users", headers=forged), 401, "missing_key")


def test_a_forged_forwarded_method_does_not_skip_the_check(caddy, w):
    reader = w.create_key(permissions=["content:read"])
    for forged in ({"X-Forwarded-Method": "GET"}, {"X-Original-Method": "GET"}):
        refused(caddy.get("/content/x/run", key=reader["secret"], method="POST", headers=forged),
                403, "insufficient_permissions")
    assert backend_saw(caddy.get("/content/x", key=reader["secret"]))["method"] == "GET"


@pytest.mark.parametrize("target", ["/public/..;/admin/users", "/admin;x/users"])
def test_path_parameters_are_refused_through_caddy(caddy, w, target):
    admin = w.create_key(permissions=["admin:read"])
    for key in (None, admin["secret"]):
        status, body = caddy.raw("GET", target, key=key)
        assert status == 403 and "backend" not in body, f"GET {target} -> {status}: {body!r}"


def test_rotating_x_real_ip_does_not_dodge_the_throttle(tmp_path, start_caddy):
    """Caddy passes a client's own X-Real-IP on unless told otherwise; the shipped
    Caddyfile sets it from the connection, so 110 unknown keys under 110 made-up
    addresses are all counted for the one client."""
    srv = latchkey_behind_proxy(tmp_path / "lk", ROUTES, failed_key_limit="100/60")
    try:
        w = srv.create_workspace()
        k = w.create_key()
        c = start_caddy(srv)
        throttled = 0
        for i in range(110):
            r = c.get("/x", key=make_secret(),
                      headers={"X-Real-IP": f"198.51.100.{i}", "X-Forwarded-For": f"10.0.0.{i}"})
            assert r.status_code in (401, 429), describe(r)
            throttled += r.status_code == 429
        assert throttled == 10, f"{throttled} of 110 unknown keys were throttled"
        r = c.get("/x", key=k["secret"], headers={"X-Real-IP": "203.0.113.250"})
        refused(r, 429, "too_many_requests")
        assert r.headers.get("Retry-After", "").isdigit(), describe(r)
    finally:
        _finish(srv)
