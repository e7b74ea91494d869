"""Forward auth behind a real nginx (docs/http-api.md, "Forward auth"), configured
with the shipped deploy/nginx/latchkey.conf, used as it is.

Each test starts nginx (Debian package nginx-light) on loopback with a generated
nginx.conf in a scratch directory: it defines the two upstreams the shipped file
names (`latchkey`, and `app`: a second server block of the same nginx that echoes
what reached it, one `name=value` a line) and includes the shipped file in the
protected server. latchkey trusts 127.0.0.1, where nginx connects from.

auth_request passes only a sub-request's 401 and 403 on (any other refusal would be
its 500); the shipped @latchkey_refused rebuilds latchkey's answer from the check's
X-Latchkey-Error-Code, Retry-After and RateLimit-* headers.
"""

import http.client
import os
import shutil
import subprocess
import time

from pathlib import Path

import pytest
import requests

from conftest import _finish, free_port, latchkey_behind_proxy, proxies_started
from lkhelpers import HTTP_TIMEOUT, LoopbackSite, describe, http_from, make_secret

ROUTES = """\
GET     /public/**      public
DELETE  /items/*        items:delete
GET     /content/**     content:read
POST    /content/*/run  workflows:execute AND content:read
*       /admin/**       admin:read
*       /**             any
"""

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO / "deploy" / "nginx" / "latchkey.conf"

ECHO = "\\n".join([
    "backend", "method=$request_method", "uri=$uri", "args=$args",
    "key=$http_x_latchkey_key_id", "ws=$http_x_latchkey_workspace_id",
    "env=$http_x_latchkey_environment", "authorization=$http_authorization",
    "x_api_key=$http_x_api_key", "x_auth_token=$http_x_auth_token",
    "x_latchkey_workspace=$http_x_latchkey_workspace",
    "x_forwarded_uri=$http_x_forwarded_uri", "x_forwarded_method=$http_x_forwarded_method",
    "x_real_ip=$http_x_real_ip", "x_forwarded_for=$http_x_forwarded_for",
]) + "\\n"

NGINX_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 64;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;

    upstream latchkey {{ server 127.0.0.1:{latchkey_port}; keepalive 16; }}
    upstream app {{ server 127.0.0.1:{backend_port}; }}

    # the protected site
    server {{
        listen 127.0.0.1:{port};

        location = /nginx-ready {{
            return 200 "ready\\n";
        }}

        include {shipped};
    }}

    # the backend: says what reached it
    server {{
        listen 127.0.0.1:{backend_port};
        location / {{
            return 200 "{echo}";
        }}
    }}
}}
"""


def find_nginx():
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(["/usr/sbin", "/sbin"])
    exe = shutil.which("nginx") or shutil.which("nginx", path=path)
    if exe is None:
        pytest.fail("nginx not found: the forward-auth interop tests need a real nginx "
                    "with the auth_request module (Debian: apt-get install nginx-light)")
    return exe


class Nginx(LoopbackSite):
    """One nginx in the foreground, with all its files in `workdir`."""

    def __init__(self, workdir, latchkey_port):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.exe = find_nginx()
        self.port = free_port()
        self.backend_port = free_port()
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(
            dir=self.dir, port=self.port, backend_port=self.backend_port,
            latchkey_port=latchkey_port, shipped=SHIPPED_CONF, echo=ECHO,
            # as root, nginx's workers would become `nobody`, who cannot enter the
            # scratch directory
            user="user root;" if os.geteuid() == 0 else ""))
        self.proc = None

    def args(self, *extra):
        return [self.exe, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                "-c", str(self.conf), *extra]

    def start(self):
        t = subprocess.run(self.args("-t"), capture_output=True, text=True, timeout=30)
        if t.returncode != 0:
            pytest.fail(f"nginx refused the generated config:\n{t.stderr}")
        self.log = open(self.dir / "nginx.stderr", "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited with {self.proc.returncode}: {self.error_tail()}")
            try:
                r = requests.get(self.url("/nginx-ready"), timeout=1)
                if r.status_code == 200:
                    return self
                last = r.status_code
            except requests.RequestException as e:
                last = e
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"nginx did not answer within 10 s ({last!r}): {self.error_tail()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def error_tail(self, n=2000):
        out = ""
        for name in ("nginx.stderr", "error.log"):
            p = self.dir / name
            if p.exists():
                out += f"--- {name}\n" + p.read_text(errors="replace")[-n:]
        return out

    def raw(self, method, target, key=None):
        """A request whose target goes out exactly as written (no client-side
        normalisation of dot segments or slashes). Returns (status, headers, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            h = {} if key is None else {"Authorization": f"Bearer {key}"}
            c.request(method, target, headers=h)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
        finally:
            c.close()


def backend_saw(r):
    """The backend's echo line as a dict, asserting the request reached it."""
    assert r.status_code == 200 and r.text.startswith("backend\n"), \
        f"the request did not reach the backend: {describe(r)}"
    return parse_echo(r.text)


def parse_echo(text):
    out = {}
    for line in text.strip().split("\n")[1:]:
        name, _, value = line.partition("=")
        out[name] = value
    return out


@pytest.fixture(scope="module")
def lk(tmp_path_factory):
    srv = latchkey_behind_proxy(tmp_path_factory.mktemp("fa-nginx-lk"), ROUTES)
    srv.auto_restart = True
    yield srv
    _finish(srv)


@pytest.fixture
def start_nginx(tmp_path):
    """start_nginx(latchkey_server) → a running Nginx in front of it; every nginx it
    started is stopped when the test ends."""
    yield from proxies_started(tmp_path, "nginx", lambda d, srv: Nginx(d, srv.port).start())


@pytest.fixture
def ngx(lk, start_nginx):
    return start_nginx(lk)


@pytest.fixture
def w(lk):
    return lk.create_workspace()


# -- through nginx ----------------------------------------------------------------------------

def test_valid_key_reaches_the_backend_with_its_key_id(ngx, w):
    k = w.create_key()
    r = ngx.get("/api/things?page=2", key=k["secret"])
    saw = backend_saw(r)
    assert saw["key"] == k["id"], describe(r)
    assert saw["ws"] == w.id, describe(r)
    assert saw["env"] == "live", describe(r)
    assert saw["uri"] == "/api/things", describe(r)
    t = w.create_key(environment="test")
    saw = backend_saw(ngx.get("/api/things", key=t["secret"]))
    assert (saw["key"], saw["env"]) == (t["id"], "test"), saw


def test_other_key_places_work_through_nginx(ngx, w):
    k = w.create_key()
    for r in (ngx.get("/x", headers={"X-API-Key": k["secret"]}),
              ngx.get("/x", headers={"X-AUTH-TOKEN": k["secret"]}),
              ngx.get(f"/x?a=1&auth_token={k['secret']}")):
        assert backend_saw(r)["key"] == k["id"], describe(r)


def test_no_key_is_401(ngx, w):
    r = ngx.get("/api/things")
    assert r.status_code == 401, describe(r)
    assert not r.text.startswith("backend\n"), describe(r)
    www = r.headers.get("WWW-Authenticate", "")
    assert www.split(" ")[0].lower() == "bearer", \
        f"nginx passes the sub-request's WWW-Authenticate on; got {www!r}: {describe(r)}"


@pytest.mark.parametrize("bad", ["garbage", "UNKNOWN", "REVOKED", "TWO"])
def test_bad_keys_are_401(ngx, w, bad):
    headers = {}
    if bad == "UNKNOWN":
        secret = make_secret()
    elif bad == "REVOKED":
        k = w.create_key()
        secret = k["secret"]
        r = w.server.delete(f"/v1/keys/{k['id']}", key=w.root_key)
        assert r.status_code == 204, describe(r)
    elif bad == "TWO":
        secret = w.create_key()["secret"]
        headers["X-API-Key"] = w.create_key()["secret"]
    else:
        secret = bad
    r = ngx.get("/api/things", key=secret, headers=headers)
    assert r.status_code == 401, describe(r)
    assert not r.text.startswith("backend\n"), describe(r)


def test_key_lacking_the_permission_is_403(ngx, w):
    reader = w.create_key(permissions=["content:read"])
    admin = w.create_key(permissions=["admin:read"])
    r = ngx.get("/admin/users", key=reader["secret"])
    assert r.status_code == 403, describe(r)
    assert not r.text.startswith("backend\n"), describe(r)
    assert backend_saw(ngx.get("/admin/users", key=admin["secret"]))["key"] == admin["id"]
    # the rest of the site takes any key
    assert backend_saw(ngx.get("/content/1", key=reader["secret"]))["key"] == reader["id"]


def test_the_original_method_picks_the_rule(ngx, w):
    reader = w.create_key(permissions=["items:read"])
    deleter = w.create_key(permissions=["items:delete"])
    r = ngx.get("/items/7", key=reader["secret"], method="DELETE")
    assert r.status_code == 403, describe(r)
    saw = backend_saw(ngx.get("/items/7", key=deleter["secret"], method="DELETE"))
    assert (saw["method"], saw["key"]) == ("DELETE", deleter["id"]), saw
    saw = backend_saw(ngx.get("/items/7", key=reader["secret"]))
    assert (saw["method"], saw["key"]) == ("GET", reader["id"]), saw


def test_public_path_needs_no_key(ngx, w):
    saw = backend_saw(ngx.get("/public/logo.png"))
    assert saw["key"] == "" and saw["uri"] == "/public/logo.png", saw
    # a key, even a bad one, changes nothing there
    saw = backend_saw(ngx.get("/public/logo.png", key="garbage"))
    assert saw["key"] == "", saw
    # public is for GET only in these rules
    r = ngx.get("/public/logo.png", method="POST")
    assert r.status_code == 401, describe(r)


def test_failed_keys_count_for_the_client_behind_nginx(tmp_path, start_nginx):
    """nginx passes the client's address in X-Real-IP: one client's bad keys hold back
    that client only, not every client of the proxy. The blocked client gets
    latchkey's 429 too_many_requests, Retry-After and all."""
    srv = latchkey_behind_proxy(tmp_path / "lk", ROUTES, failed_key_limit="2/60")
    try:
        w = srv.create_workspace()
        k = w.create_key()
        ngx = start_nginx(srv)
        other = http_from("127.0.0.2")
        try:
            other.get(ngx.url("/nginx-ready"), timeout=HTTP_TIMEOUT)
        except OSError:
            other.close()
            pytest.skip("127.0.0.2 is not usable as a client address here")
        with other:
            for _ in range(2):
                r = ngx.get("/x", key=make_secret(), session=other)
                assert r.status_code == 401, describe(r)
            r = ngx.get("/x", key=k["secret"], session=other)
            assert r.status_code == 429 and not r.text.startswith("backend\n"), \
                f"a blocked client got through: {describe(r)}"
            assert r.json()["error"]["code"] == "too_many_requests", describe(r)
            assert int(r.headers["Retry-After"]) > 0, describe(r)
        # the client at 127.0.0.1 was never counted
        assert backend_saw(ngx.get("/x", key=k["secret"]))["key"] == k["id"]
        for _ in range(2):
            assert ngx.get("/x", key=make_secret()).status_code == 401
        assert ngx.get("/x", key=k["secret"]).status_code == 429
    finally:
        _finish(srv)


# -- the forwarded path is the path the backend serves ----------------------------------------------

@pytest.mark.parametrize("target", [
    "/public/../admin/users",
    "/public/%2e%2e/admin/users",
    "/public/%2E%2E/admin/users",
])
def test_dot_segments_do_not_make_a_protected_path_public(ngx, w, target):
    """nginx serves /public/../admin/users as /admin/users, so forward auth must not
    judge it by the raw text's /public/ prefix: without a key it is refused."""
    status, _, body = ngx.raw("GET", target)
    assert status in (400, 401, 403), \
        f"GET {target} without a key -> {status}: {body.strip()!r} (the route rule " \
        f"`GET /public/** public` was applied to a request nginx served as /admin/users)"


@pytest.mark.parametrize("target", [
    "//admin/users", "/./admin/users", "/x/../admin/users", "/%61dmin/users",
])
def test_odd_spellings_of_a_path_get_its_rule(ngx, w, target):
    """A key without admin:read reaches /admin/** under no spelling of the path."""
    reader = w.create_key(permissions=["content:read"])
    status, _, body = ngx.raw("GET", target, key=reader["secret"])
    assert status in (400, 403), \
        f"GET {target} with a key lacking admin:read -> {status}: {body.strip()!r} " \
        f"(nginx served it as /admin/users, which needs admin:read)"


# -- a client forging what the shipped config sets ---------------------------------------------

def test_a_forged_forwarded_uri_does_not_make_a_path_public(ngx, w):
    for forged in ({"X-Forwarded-Uri": "/public/x"}, {"X-Original-URI": "/public/x"},
                   {"X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
                    "X-Original-URI": "/public/x", "X-Original-Method": "GET"}):
        r = ngx.get("/admin/users", headers=forged)
        assert r.status_code == 401, f"{forged}: {describe(r)}"
        assert not r.text.startswith("backend\n"), describe(r)
        r = ngx.get("/content/1", headers=forged)
        assert r.status_code == 401, f"{forged}: {describe(r)}"


def test_a_forged_forwarded_method_does_not_skip_the_check(ngx, w):
    reader = w.create_key(permissions=["content:read"])
    runner = w.create_key(permissions=["content:read", "workflows:execute"])
    for forged in ({"X-Forwarded-Method": "GET"}, {"X-Original-Method": "GET"},
                   {"X-Forwarded-Method": "GET", "X-Original-Method": "GET"}):
        r = ngx.get("/content/x/run", key=reader["secret"], method="POST", headers=forged)
        assert r.status_code == 403, f"{forged}: {describe(r)}"
        assert not r.text.startswith("backend\n"), describe(r)
    saw = backend_saw(ngx.get("/content/x/run", key=runner["secret"], method="POST",
                              headers={"X-Forwarded-Method": "GET"}))
    assert (saw["method"], saw["key"]) == ("POST", runner["id"]), saw
    # the reader still reads
    assert backend_saw(ngx.get("/content/x", key=reader["secret"]))["key"] == reader["id"]


@pytest.mark.parametrize("target", ["/public/..;/admin/users", "/admin;x/users",
                                    "/public/x;jsessionid=1"])
def test_path_parameters_are_refused_through_nginx(ngx, w, target):
    admin = w.create_key(permissions=["admin:read"])
    for key in (None, admin["secret"]):
        status, _, body = ngx.raw("GET", target, key=key)
        assert status == 403 and not body.startswith("backend\n"), \
            f"GET {target} -> {status}: {body.strip()!r} (a servlet container serves it " \
            f"with the ;... dropped)"


def test_the_backend_never_sees_the_secret_or_a_forged_identity(ngx, w):
    k = w.create_key()
    forged = {"X-Latchkey-Key-Id": "key_forged", "X-Latchkey-Workspace-Id": "ws_forged",
              "X-Latchkey-Environment": "test", "X-Latchkey-Workspace": "ws_forged"}
    places = [({"Authorization": f"Bearer {k['secret']}"}, "/x?a=1"),
              ({"X-API-Key": k["secret"]}, "/x?a=1"),
              ({"X-AUTH-TOKEN": k["secret"]}, "/x?a=1"),
              ({}, f"/x?a=1&auth_token={k['secret']}"),
              ({}, f"/x?auth_token={k['secret']}&a=1"),
              ({}, f"/x?a=1&auth_token={k['secret']}&auth_token={k['secret']}"),
              ({}, f"/x?a=1;b&auth_token={k['secret']}")]
    for h, target in places:
        r = ngx.get(target, headers={**h, **forged})
        saw = backend_saw(r)
        assert (saw["key"], saw["ws"], saw["env"]) == (k["id"], w.id, "live"), saw
        assert k["secret"] not in r.text, f"the secret reached the backend: {r.text!r}"
        for name in ("authorization", "x_api_key", "x_auth_token", "x_latchkey_workspace"):
            assert saw[name] == "", (name, saw)
        assert any(p.startswith("a=1") for p in saw["args"].split("&")), saw
    # a public path: no identity at all, and none of the client's
    saw = backend_saw(ngx.get("/public/logo.png", headers=forged))
    assert (saw["key"], saw["ws"], saw["env"]) == ("", "", ""), saw
    # the forwarding headers are nginx's, not the client's
    saw = backend_saw(ngx.get("/x", key=k["secret"],
                              headers={"X-Real-IP": "6.6.6.6", "X-Forwarded-For": "6.6.6.6",
                                       "X-Forwarded-Uri": "/public/x"}))
    assert (saw["x_real_ip"], saw["x_forwarded_for"], saw["x_forwarded_uri"]) == \
        ("127.0.0.1", "127.0.0.1", ""), saw


def test_forged_address_headers_do_not_dodge_the_throttle_behind_nginx(tmp_path, start_nginx):
    srv = latchkey_behind_proxy(tmp_path / "lk", ROUTES, failed_key_limit="3/60")
    try:
        w = srv.create_workspace()
        k = w.create_key()
        ngx = start_nginx(srv)
        for i in range(3):
            r = ngx.get("/x", key=make_secret(),
                        headers={"X-Real-IP": f"198.51.100.{i}", "X-Forwarded-For": f"10.0.0.{i}"})
            assert r.status_code == 401, describe(r)
        r = ngx.get("/x", key=k["secret"], headers={"X-Real-IP": "198.51.100.99"})
        assert r.status_code == 429 and not r.text.startswith("backend\n"), \
            f"rotating X-Real-IP dodged the throttle: {describe(r)}"
    finally:
        _finish(srv)
