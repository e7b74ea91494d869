"""HTTPS served by latchkey itself (docs/tls.md): `serve --tls-cert FILE --tls-key FILE`
or `tls_cert` / `tls_key` in the config file.

HTTP/1.1 and HTTP/2 are offered by ALPN; both reach the same handlers and the same
error shape. The session cookie is Secure over TLS. SIGHUP reloads the certificate
and key: connections opened after it see the new certificate, open ones go on; a
reload whose files do not load keeps the old certificate and says why on stderr.
A bad or missing certificate or key refuses the start with a message naming it.

Certificates are made here with the openssl command line; HTTP/2 is checked with
curl (built with nghttp2).
"""

import http.client
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import requests

from conftest import (BIN, SHARED_CONFIG, LatchkeyServer, _finish, _live_servers, clean_env,
                      free_port)
from lkhelpers import HTTP_TIMEOUT, assert_error_shape, describe, expect_status

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def make_cert(d, name, days=2):
    """A self-signed EC certificate for 127.0.0.1 with CN=name: (cert path, key path)."""
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


class TlsServer(LatchkeyServer):
    """A LatchkeyServer serving HTTPS with the certificate at self.cert (trusted by
    requests through self.ca, which may name several certificates)."""

    def __init__(self, workdir, cert, key, ca=None, **kw):
        self.cert, self.key = cert, key
        self.ca = ca or cert
        super().__init__(workdir, **kw)

    def _config_args(self):
        return super()._config_args() + ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        self.base_url = f"https://127.0.0.1:{self.port}"
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with {self.proc.returncode}; stderr: {self.stderr_tail()}"
            try:
                if requests.get(self.base_url + "/healthz", timeout=1,
                                verify=str(self.ca)).status_code == 200:
                    return True, ""
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        return False, f"not ready: {last}; stderr: {self.stderr_tail()}"

    def request(self, method, path, key=None, **kw):
        kw.setdefault("verify", str(self.ca))
        return super().request(method, path, key=key, **kw)


def peer_subject(port, cafile):
    """The CN and serial of the certificate a new TLS connection is shown."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            c = s.getpeercert()
    cn = [v for rdn in c["subject"] for k, v in rdn if k == "commonName"][0]
    return cn, c["serialNumber"]


def curl(srv, *args):
    r = subprocess.run(["curl", "-sS", "--cacert", str(srv.ca), "-o", "-", "-w",
                        "\n%{http_version} %{http_code}", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    version, code = tail.split()
    return version, int(code), body


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {name: make_cert(d, name) for name in ("latchkey-a", "latchkey-b", "other")}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, certs):
    cert, key = certs["latchkey-a"]
    srv = TlsServer(tmp_path_factory.mktemp("tls"), cert, key, config=dict(SHARED_CONFIG))
    _live_servers.append(srv)
    srv.start()
    yield srv
    _finish(srv)


def new_key(srv):
    return srv.create_workspace().create_key(permissions=["a:read"])["secret"]


# -- serving ---------------------------------------------------------------------------

def test_it_says_https_and_refuses_plain_http(tls_server):
    out = tls_server.stdout_path.read_text()
    assert f"listening on https://127.0.0.1:{tls_server.port}" in out, out
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=3)


def test_verify_over_https(tls_server):
    secret = new_key(tls_server)
    r = tls_server.verify({"key": secret})
    assert expect_status(r, 200)["valid"] is True, describe(r)
    r = tls_server.verify({"key": secret[:-1] + ("A" if secret[-1] != "A" else "B")})
    assert expect_status(r, 200)["valid"] is False, describe(r)


def test_http2_by_alpn(tls_server):
    secret = new_key(tls_server)
    url = tls_server.url("/v1/verify")
    version, code, body = curl(tls_server, "--http2", "-H", "Content-Type: application/json",
                               "--data", f'{{"key":"{secret}"}}', url)
    assert (version, code) == ("2", 200), body
    assert '"valid":true' in body, body
    version, code, _ = curl(tls_server, "--http1.1", tls_server.url("/healthz"))
    assert (version, code) == ("1.1", 200)


def test_http2_errors_have_the_error_shape(tls_server):
    version, code, body = curl(tls_server, "--http2", tls_server.url("/v1/no-such-thing"))
    assert (version, code) == ("2", 404), body
    assert '"code":"not_found"' in body and '"request_id":"req_' in body, body
    # a management call without a key: refused by the handler, as over HTTP/1.1
    version, code, body = curl(tls_server, "--http2", tls_server.url("/v1/keys"))
    assert (version, code) == ("2", 401), body
    assert '"code":"' in body, body


def test_http2_oversized_body_is_refused(tls_server, tmp_path):
    """h2o's HTTP/2 refuses a body over the limit with RST_STREAM (REFUSED_STREAM),
    not a 413 (docs/tls.md): the request never reaches a handler."""
    big = tmp_path / "big.json"
    big.write_text('{"key":"' + "a" * (2 * 1024 * 1024) + '"}')
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(tls_server.ca), "-o",
                        "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json",
                        "--data-binary", f"@{big}", tls_server.url("/v1/verify")],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() in ("000", "413"), r.stdout + r.stderr
    expect_status(tls_server.get("/healthz"), 200)


def raw_tls(srv, data):
    """Sends data on a new HTTP/1.1 TLS connection and returns what comes back."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    out = b""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(data)
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except (ssl.SSLError, OSError):
                pass
    return out


def test_the_first_head_is_checked_over_tls_too(tls_server):
    """The first-head gate runs after the handshake: an oversized head gets the
    431 in latchkey's error shape, an ambiguous body framing the 400."""
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    answer = raw_tls(tls_server, big)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"headers_too_large"' in answer, answer[:400]
    two = (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           b"Content-Length: 3\r\n\r\n{}x")
    answer = raw_tls(tls_server, two)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b'"code":"invalid_request"' in answer, answer[:400]


def test_old_protocols_are_refused(tls_server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(tls_server.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.2"
            assert s.compression() is None
    r = subprocess.run(["curl", "-sS", "--cacert", str(tls_server.ca), "--tlsv1.0",
                        "--tls-max", "1.1", tls_server.url("/healthz")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "a TLS 1.0/1.1 handshake was accepted"


# -- cookies ---------------------------------------------------------------------------

def test_the_session_cookie_is_secure_over_tls(tls_server):
    w = tls_server.create_workspace()
    u = w.new_user("viewer")
    r = tls_server.login(u.email, u.password)
    cookie = expect_status(r, 200) and r.headers.get("Set-Cookie", "")
    assert "lk_session=" in cookie and "; Secure" in cookie, f"{cookie!r}: {describe(r)}"


def test_http2_login_cookie_is_secure(tls_server):
    w = tls_server.create_workspace()
    u = w.new_user("viewer")
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(tls_server.ca), "-D", "-",
                        "-o", "/dev/null", "-H", "Content-Type: application/json", "--data",
                        f'{{"email":"{u.email}","password":"{u.password}"}}',
                        tls_server.url("/v1/auth/login")],
                       capture_output=True, text=True, timeout=30)
    head = r.stdout.lower()
    assert head.startswith("http/2 200"), r.stdout
    cookie = [ln for ln in head.splitlines() if ln.startswith("set-cookie: lk_session=")]
    assert cookie and "; secure" in cookie[0], r.stdout


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="needs nghttp (nghttp2-client)")
def test_cleartext_http2_claiming_https_is_not_secure(tmp_path):
    """Over cleartext HTTP/2 the client writes `:scheme` itself: a plain port's
    cookie is not Secure, whatever the client says."""
    srv = LatchkeyServer(tmp_path / "plain", config=dict(SHARED_CONFIG))
    _live_servers.append(srv)
    srv.start()
    try:
        w = srv.create_workspace()
        u = w.new_user("viewer")
        body = tmp_path / "login.json"
        body.write_text(f'{{"email":"{u.email}","password":"{u.password}"}}')
        r = subprocess.run(["nghttp", "-nv", "-H", ":scheme: https", "-H",
                            "content-type: application/json", "-d", str(body),
                            srv.url("/v1/auth/login")],
                           capture_output=True, text=True, timeout=30)
        out = r.stdout.lower()
        assert ":scheme: https" in out and ":status: 200" in out, r.stdout[-2000:]
        cookie = [ln for ln in out.splitlines() if "set-cookie: lk_session=" in ln]
        assert cookie and "secure" not in cookie[0], cookie
    finally:
        _finish(srv)


# -- starting with bad files -------------------------------------------------------------

def serve(tmp_path, *args):
    db = tmp_path / "x.db"
    try:
        return subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{free_port()}",
                               "--db", f"sqlite:{db}", *args],
                              capture_output=True, text=True, timeout=20, env=clean_env())
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve {args} started instead of refusing")


def test_bad_certificate_or_key_refuses_to_start(tmp_path, certs):
    cert, key = certs["latchkey-a"]
    _, other_key = certs["other"]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    missing = tmp_path / "missing.pem"
    cases = [
        (["--tls-cert", str(missing), "--tls-key", str(key)], str(missing)),
        (["--tls-cert", str(garbage), "--tls-key", str(key)], str(garbage)),
        (["--tls-cert", str(cert), "--tls-key", str(missing)], str(missing)),
        (["--tls-cert", str(cert), "--tls-key", str(cert)], str(cert)),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], "does not match"),
        (["--tls-cert", str(cert)], "--tls-key"),
        (["--tls-key", str(key)], "--tls-cert"),
    ]
    for args, said in cases:
        r = serve(tmp_path, *args)
        assert r.returncode != 0, f"{args} started: {r.stderr}"
        assert said in r.stderr, f"{args}: {r.stderr!r}"
        assert "root key" not in r.stdout, f"{args} made a workspace before refusing"
        assert not (tmp_path / "x.db").exists(), f"{args} opened the database first"


def test_encrypted_key_is_refused_without_prompting(tmp_path, certs):
    cert, key = certs["latchkey-a"]
    enc = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-out", str(enc), "-aes256",
                    "-passout", "pass:secret"], check=True, capture_output=True)
    r = serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(enc))
    assert r.returncode != 0 and str(enc) in r.stderr, r.stderr


def test_the_config_file_keys(tmp_path, certs):
    cert, key = certs["latchkey-b"]
    srv = TlsServer(tmp_path / "conf", cert, key,
                    config={**SHARED_CONFIG, "tls_cert": str(cert), "tls_key": str(key)})
    srv._config_args = lambda: LatchkeyServer._config_args(srv)  # the file only, no flags
    _live_servers.append(srv)
    srv.start()
    try:
        assert peer_subject(srv.port, cert)[0] == "latchkey-b"
        expect_status(srv.get("/healthz"), 200)
    finally:
        _finish(srv)


def test_the_flags_win_over_the_file(tmp_path, certs):
    cert_a, key_a = certs["latchkey-a"]
    cert_b, key_b = certs["latchkey-b"]
    srv = TlsServer(tmp_path / "both", cert_a, key_a,
                    config={**SHARED_CONFIG, "tls_cert": str(cert_b), "tls_key": str(key_b)})
    _live_servers.append(srv)
    srv.start()
    try:
        assert peer_subject(srv.port, cert_a)[0] == "latchkey-a"
    finally:
        _finish(srv)


# -- reload ----------------------------------------------------------------------------------

def test_sighup_swaps_the_certificate_and_keeps_connections(tmp_path, certs):
    d = tmp_path / "files"
    d.mkdir()
    cert, key = d / "cert.pem", d / "key.pem"
    shutil.copy(certs["latchkey-a"][0], cert)
    shutil.copy(certs["latchkey-a"][1], key)
    both = d / "both.pem"
    both.write_text(certs["latchkey-a"][0].read_text() + certs["latchkey-b"][0].read_text())
    srv = TlsServer(tmp_path / "srv", cert, key, ca=both, config=dict(SHARED_CONFIG))
    _live_servers.append(srv)
    srv.start()
    try:
        cn_a, serial_a = peer_subject(srv.port, both)
        assert cn_a == "latchkey-a"
        ctx = ssl.create_default_context(cafile=str(both))
        kept = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                           timeout=HTTP_TIMEOUT)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() and True

        shutil.copy(certs["latchkey-b"][0], cert)
        shutil.copy(certs["latchkey-b"][1], key)
        srv.hup("TLS certificate and key reloaded")
        cn_b, serial_b = peer_subject(srv.port, both)
        assert cn_b == "latchkey-b" and serial_b != serial_a, (cn_b, serial_b, serial_a)
        # the connection opened before the reload goes on, with the old certificate
        kept.request("GET", "/healthz")
        resp = kept.getresponse()
        assert resp.status == 200 and b'"ok"' in resp.read()
        kept.close()

        # a bad reload: a key that does not match, then a certificate that is no PEM
        shutil.copy(certs["other"][1], key)
        srv.hup("TLS certificate and key not reloaded")
        assert "does not match" in srv.stderr_text().splitlines()[-1], srv.stderr_tail()
        cert.write_text("garbage\n")
        srv.hup("TLS certificate and key not reloaded")
        assert str(cert) in srv.stderr_text().splitlines()[-1], srv.stderr_tail()
        assert peer_subject(srv.port, both)[0] == "latchkey-b"
        expect_status(srv.get("/healthz"), 200)
    finally:
        _finish(srv)
