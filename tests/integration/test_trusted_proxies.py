"""Whom latchkey believes about the client's address (docs/http-api.md, "Client
address and trusted_proxies").

`trusted_proxies` (config file, or `serve --trusted-proxies`) lists addresses and
CIDR ranges, none by default. X-Real-IP, X-Forwarded-For and X-Forwarded-Proto are
read only when the TCP peer is in the list; then the client is X-Real-IP, else the
right-most X-Forwarded-For hop that is not trusted. The one answer is used for
every per-address limit (failed keys, logins) and for audit addresses, on every
endpoint. A second client address on this host is 127.0.0.2.
"""

import http.client
import json

import requests

from conftest import LatchkeyServer, _live_servers
from lkhelpers import (HTTP_TIMEOUT, assert_error, describe, expect_status, http_from,
                       make_secret, need_other_address)

FA = "/v1/forward-auth"


def fa(srv, key=None, headers=None, session=None):
    h = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/r"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    return (session or requests).get(srv.url(FA), headers=h, timeout=HTTP_TIMEOUT)


def blocked(r):
    """429 too_many_requests (or /v1/verify's 200 with that code)."""
    if r.request.path_url.startswith("/v1/verify") and r.status_code == 200:
        return r.json()["code"] == "too_many_requests"
    if r.status_code != 429:
        return False
    assert_error(r, 429, "too_many_requests")
    return True


def assert_unknown(r):
    if r.request.path_url.startswith("/v1/verify"):
        assert expect_status(r, 200)["code"] == "invalid_key", describe(r)
    else:
        assert_error(r, 401, "invalid_key")


def assert_ok(r, key):
    if r.request.path_url.startswith("/v1/verify"):
        doc = expect_status(r, 200)
        assert doc["valid"] is True, describe(r)
    else:  # forward auth: an empty 200
        assert r.status_code == 200 and r.content == b"", describe(r)
        assert r.headers.get("X-Latchkey-Key-Id") == key["id"], describe(r)


def verify(srv, secret, headers=None, session=None):
    return (session or requests).post(srv.url("/v1/verify"), json={"key": secret},
                                      headers=headers or {}, timeout=HTTP_TIMEOUT)


# -- no trusted proxies (the default) ---------------------------------------------------------------

def test_rotating_forged_addresses_does_not_dodge_the_throttle(make_server):
    """The default failed_key_limit is 100 a minute. A client that makes up a new
    X-Real-IP and X-Forwarded-For for each of 100 unknown keys has used up its
    own 100: every key check after that is refused, a correct key too. (So it
    never makes a fresh throttle entry either, and cannot push another client's
    entry out of the bounded table.)"""
    srv = make_server()
    w = srv.create_workspace()
    k = w.create_key()
    for i in range(100):
        forged = {"X-Real-IP": f"198.51.{i // 250}.{i % 250 + 1}",
                  "X-Forwarded-For": f"203.0.{i // 250}.{i % 250 + 1}"}
        r = fa(srv, key=make_secret(), headers=forged) if i % 2 else \
            verify(srv, make_secret(), headers=forged)
        assert_unknown(r)
    fresh = {"X-Real-IP": "192.0.2.77", "X-Forwarded-For": "192.0.2.78"}
    for r in (fa(srv, key=k["secret"], headers=fresh),
              verify(srv, k["secret"], headers=fresh),
              srv.get("/v1/keys", key=w.root_key, headers=fresh)):
        assert blocked(r), f"a forged address dodged the throttle: {describe(r)}"


def test_a_forged_address_cannot_lock_out_another_client(make_server):
    srv = make_server(config={"failed_key_limit": "2/60"})
    w = srv.create_workspace()
    k = w.create_key()
    need_other_address(srv)
    victim = {"X-Real-IP": "127.0.0.2", "X-Forwarded-For": "127.0.0.2"}
    for _ in range(2):
        assert_unknown(fa(srv, key=make_secret(), headers=victim))
    assert blocked(fa(srv, key=k["secret"], headers=victim))  # the forger itself
    with http_from("127.0.0.2") as h:
        assert_ok(fa(srv, key=k["secret"], session=h), k)
        assert_ok(verify(srv, k["secret"], session=h), k)


# -- a trusted proxy -----------------------------------------------------------------------------

def test_a_trusted_proxy_names_the_client_on_every_endpoint(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", "trusted_proxies": "127.0.0.1"})
    w = srv.create_workspace()
    k = w.create_key()
    a, b = {"X-Real-IP": "203.0.113.7"}, {"X-Real-IP": "203.0.113.8"}
    assert_unknown(verify(srv, make_secret(), headers=a))
    assert_unknown(srv.get("/v1/auth-context", key=make_secret(), headers=a))
    # client a is held back on every path ...
    for r in (verify(srv, k["secret"], headers=a), fa(srv, key=k["secret"], headers=a),
              srv.get("/v1/auth-context", key=k["secret"], headers=a),
              srv.get("/v1/keys", key=w.root_key, headers=a)):
        assert blocked(r), f"client a not held back: {describe(r)}"
    # ... client b and the proxy itself are not
    assert_ok(verify(srv, k["secret"], headers=b), k)
    assert_ok(verify(srv, k["secret"]), k)
    expect_status(srv.get("/v1/keys", key=w.root_key), 200)


def test_the_right_most_untrusted_hop_is_the_client(make_server):
    srv = make_server(config={"failed_key_limit": "2/60",
                              "trusted_proxies": "127.0.0.1, 10.0.0.0/8"})
    w = srv.create_workspace()
    k = w.create_key()
    # hops left of the client are the client's own say; hops right of it are proxies
    for xff in ("6.6.6.6, 203.0.113.7, 10.1.1.1", "7.7.7.7,203.0.113.7,10.2.2.2, 10.3.3.3"):
        assert_unknown(verify(srv, make_secret(), headers={"X-Forwarded-For": xff}))
    for xff in ("203.0.113.7", "1.1.1.1, 203.0.113.7, 10.9.9.9", "203.0.113.7,"):
        assert blocked(verify(srv, k["secret"], headers={"X-Forwarded-For": xff})), xff
    # a client that put the blocked address further left is someone else
    assert_ok(verify(srv, k["secret"], headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}),
              k)
    # every hop trusted: the left-most is as far as the proxies vouch
    assert_ok(verify(srv, k["secret"], headers={"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}), k)
    # a hop that is not an address stops the walk at the trusted hop before it
    assert_ok(verify(srv, k["secret"],
                     headers={"X-Forwarded-For": "203.0.113.7, junk, 10.4.4.4"}), k)


def test_repeated_forwarded_for_headers_are_one_list(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", "trusted_proxies": "127.0.0.1"})
    w = srv.create_workspace()
    k = w.create_key()

    def send(secret, lines):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=HTTP_TIMEOUT)
        try:
            body = json.dumps({"key": secret})
            c.putrequest("POST", "/v1/verify")
            for name, value in lines:
                c.putheader(name, value)
            c.putheader("Content-Length", str(len(body)))
            c.endheaders(body.encode())
            r = c.getresponse()
            return json.loads(r.read())["code"]
        finally:
            c.close()

    # the last header's last hop is the right-most
    for _ in range(2):
        assert send(make_secret(), [("X-Forwarded-For", "9.9.9.9"),
                                    ("X-Forwarded-For", "203.0.113.7")]) == "invalid_key"
    assert send(k["secret"], [("X-Forwarded-For", "203.0.113.7")]) == "too_many_requests"
    assert send(k["secret"], [("X-Forwarded-For", "203.0.113.7"),
                              ("X-Forwarded-For", "9.9.9.9")]) == "valid"


def test_x_real_ip_naming_a_proxy_falls_back_to_forwarded_for(make_server):
    srv = make_server(config={"failed_key_limit": "2/60",
                              "trusted_proxies": "127.0.0.1 10.0.0.0/8"})
    w = srv.create_workspace()
    k = w.create_key()
    for _ in range(2):
        assert_unknown(verify(srv, make_secret(),
                              headers={"X-Real-IP": "10.0.0.9",
                                       "X-Forwarded-For": "203.0.113.7, 10.0.0.9"}))
    assert blocked(verify(srv, k["secret"], headers={"X-Real-IP": "203.0.113.7"}))
    assert_ok(verify(srv, k["secret"], headers={"X-Real-IP": "10.0.0.9"}), k)


def test_spellings_of_one_address_are_one_client(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", "trusted_proxies": "127.0.0.1"})
    w = srv.create_workspace()
    k = w.create_key()
    assert_unknown(verify(srv, make_secret(), headers={"X-Real-IP": "2001:db8::7"}))
    assert_unknown(verify(srv, make_secret(), headers={"X-Real-IP": "2001:DB8:0:0::0007"}))
    assert blocked(verify(srv, k["secret"], headers={"X-Real-IP": "2001:db8:0:0:0:0:0:7"}))
    # another /64 is another client (one /64 is one client: docs "Per-address limits")
    assert_ok(verify(srv, k["secret"], headers={"X-Real-IP": "2001:db8:0:1::7"}), k)
    assert_unknown(verify(srv, make_secret(), headers={"X-Real-IP": "::ffff:198.51.100.4"}))
    assert_unknown(verify(srv, make_secret(), headers={"X-Real-IP": "198.51.100.4"}))
    assert blocked(verify(srv, k["secret"], headers={"X-Forwarded-For": "198.51.100.4"}))


def test_a_peer_outside_the_list_is_its_own_client(make_server):
    srv = make_server(config={"failed_key_limit": "2/60", "trusted_proxies": "127.0.0.1"})
    w = srv.create_workspace()
    k = w.create_key()
    need_other_address(srv)
    with http_from("127.0.0.2") as h:
        for ip in ("192.0.2.1", "192.0.2.2"):
            assert_unknown(verify(srv, make_secret(), session=h, headers={"X-Real-IP": ip}))
        assert blocked(verify(srv, k["secret"], session=h, headers={"X-Real-IP": "192.0.2.3"}))
    # the addresses it named were never counted
    assert_ok(verify(srv, k["secret"], headers={"X-Real-IP": "192.0.2.1"}), k)


def test_logins_and_audit_use_the_client_address(make_server):
    srv = make_server(config={"trusted_proxies": "127.0.0.1", "login_rate_limit": "2/60"})
    w = srv.create_workspace()
    u = w.new_user("viewer")
    r = srv.login(u.email, u.password, headers={"X-Real-IP": "198.51.100.20"})
    expect_status(r, 200)
    rid = r.headers["X-Request-Id"]
    doc = expect_status(srv.get("/v1/audit", key=w.root_key, params={"limit": 100}), 200)
    found = [e for e in doc["data"] if e["request_id"] == rid]
    assert [e["address"] for e in found] == ["198.51.100.20"], found
    # the login limit counts per client: 198.51.100.20 used one of two
    expect_status(srv.login(u.email, u.password, headers={"X-Real-IP": "198.51.100.20"}), 200)
    assert blocked(srv.login(u.email, u.password, headers={"X-Real-IP": "198.51.100.20"}))
    expect_status(srv.login(u.email, u.password, headers={"X-Real-IP": "198.51.100.21"}), 200)


def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(make_server):
    """The session cookie is Secure when the client reached the proxy over TLS."""
    trusted = make_server(config={"trusted_proxies": "127.0.0.1"})
    plain = make_server()
    for srv, secure in ((trusted, True), (plain, False)):
        w = srv.create_workspace()
        u = w.new_user("viewer")
        r = srv.login(u.email, u.password, headers={"X-Forwarded-Proto": "https"})
        cookie = expect_status(r, 200) and r.headers.get("Set-Cookie", "")
        assert ("; Secure" in cookie) == secure, f"{cookie!r}: {describe(r)}"
        r = srv.login(u.email, u.password)
        assert "; Secure" not in r.headers.get("Set-Cookie", ""), describe(r)


# -- the setting --------------------------------------------------------------------------------

class FlagServer(LatchkeyServer):
    def __init__(self, workdir, flag, **kw):
        self.flag = flag
        super().__init__(workdir, **kw)

    def _config_args(self):
        return super()._config_args() + ["--trusted-proxies", self.flag]


def test_the_flag_replaces_the_file_list(tmp_path):
    srv = FlagServer(tmp_path / "srv", "127.0.0.0/8,::1",
                     config={"failed_key_limit": "2/60", "trusted_proxies": "10.0.0.1"})
    _live_servers.append(srv)
    try:
        srv.start()
        w = srv.create_workspace()
        k = w.create_key()
        for _ in range(2):
            assert_unknown(verify(srv, make_secret(), headers={"X-Real-IP": "203.0.113.7"}))
        assert blocked(verify(srv, k["secret"], headers={"X-Real-IP": "203.0.113.7"}))
        assert_ok(verify(srv, k["secret"]), k)
    finally:
        srv.stop()
        _live_servers.remove(srv)
        srv.check_sanitizers()
