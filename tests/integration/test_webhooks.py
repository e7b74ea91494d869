"""Signed webhooks (docs/webhooks.md): endpoints, events, signatures, retries,
durability across kill -9, isolation between workspaces, SSRF refusal and hostile
input. A receiver (http.server in a thread) on loopback plays the customer's
system; it checks every signature with the documented algorithm."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import ssl
import subprocess
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import PG_URL, LatchkeyServer, _finish, _live_servers, free_port, new_pg_database, poll, run_cli
from lkhelpers import expect_status

# loopback receivers need webhook_allow_private; fast retries keep the tests short
HOOK_CONFIG = {"failed_key_limit": "none", "login_rate_limit": "none",
               "webhook_allow_private": "on", "webhook_retry_base_ms": "300",
               "webhook_timeout_ms": "5000", "webhook_max_attempts": "4"}

TYPES = ["key.created", "key.revoked", "key.leaked", "spend_cap.reached", "credits.low",
         "quota.warning", "quota.exhausted"]


def verify_signature(secret, headers, body):
    """The receiver's check, exactly as docs/webhooks.md describes it."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    signed = f"{msg_id}.{ts}.".encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ")
             if s.startswith("v1,")]
    return any(hmac.compare_digest(want, g) for g in given)


class Receiver:
    """Records each delivery; answers from `plan` (a list of statuses, then 200);
    holds a request while `hold` is set (until `release`)."""

    def __init__(self, tls=None):
        self.got = []
        self.plan = []
        self.hold = threading.Event()
        self.release = threading.Event()
        self.held = threading.Event()
        self.lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                if rec.hold.is_set():
                    rec.held.set()
                    rec.release.wait(30)
                    try:
                        self.send_response(200)
                        self.end_headers()
                    except OSError:
                        pass
                    return
                with rec.lock:
                    status = rec.plan.pop(0) if rec.plan else 200
                    rec.got.append({"headers": hdrs, "body": body, "at": time.monotonic(),
                                    "path": self.path, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        if tls is not None:  # (cert, key): HTTPS
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def events(self, type_=None):
        with self.lock:
            out = [json.loads(g["body"]) for g in self.got if g["status"] == 200]
        return [e for e in out if type_ is None or e["type"] == type_]

    def wait_for(self, type_, n=1, timeout=15):
        return poll(lambda: len(self.events(type_)) >= n and self.events(type_), timeout,
                    f"{n} {type_} delivery(ies)")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def hook_config(tmp_path, **extra):
    """HOOK_CONFIG, with a master key file on PostgreSQL (which needs one)."""
    cfg = dict(HOOK_CONFIG, **extra)
    if PG_URL:
        path = tmp_path / "webhook-key"
        if not path.exists():
            path.write_bytes(os.urandom(32))
        cfg["webhook_key_file"] = str(path)
    return cfg


@pytest.fixture
def hook_server(tmp_path):
    srv = LatchkeyServer(tmp_path / "srv", config=hook_config(tmp_path))
    srv.start()
    _live_servers.append(srv)
    yield srv
    _finish(srv)


def add_endpoint(srv, w, url, events, key=None, **extra):
    r = srv.post("/v1/webhooks", key=key or w.root_key, json={"url": url, "events": events,
                                                             **extra})
    return expect_status(r, 201)


def test_key_events_arrive_signed_and_carry_no_secret(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    ep = add_endpoint(srv, w, receiver.url, ["key.created", "key.revoked"],
                      description="billing")
    assert ep["id"].startswith("wh_") and ep["secret"].startswith("whsec_")
    assert ep["events"] == ["key.created", "key.revoked"] and ep["url"] == receiver.url
    # the secret is shown once: never in the listing
    listed = expect_status(srv.get("/v1/webhooks", key=w.root_key), 200)["data"]
    assert [e["id"] for e in listed] == [ep["id"]] and "secret" not in listed[0]

    k = w.create_key(name="ci")
    r = srv.delete(f"/v1/keys/{k['id']}", key=w.root_key)
    assert r.status_code == 204
    created = receiver.wait_for("key.created")[0]
    revoked = receiver.wait_for("key.revoked")[0]
    for ev in (created, revoked):
        assert ev["data"]["key_id"] == k["id"] and ev["data"]["workspace_id"] == w.id
        assert ev["data"]["hint"] == k["hint"]
    with receiver.lock:
        got = list(receiver.got)
    for g in got:
        assert verify_signature(ep["secret"], g["headers"], g["body"]), g
        doc = json.loads(g["body"])
        assert g["headers"]["webhook-id"] == doc["id"]
        assert abs(int(g["headers"]["webhook-timestamp"]) - time.time()) < 300
        assert k["secret"].encode() not in g["body"]
        assert g["headers"]["content-type"] == "application/json"
    # a body changed by one byte no longer verifies
    g = got[0]
    assert not verify_signature(ep["secret"], g["headers"], g["body"] + b" ")
    # distinct events, distinct ids
    assert len({g["headers"]["webhook-id"] for g in got}) == len(got) == 2
    # the delivery log: a delivery's outcome is written after the receiver has
    # answered, so the log may be a moment behind what arrived
    want = {("key.created", 200, 1), ("key.revoked", 200, 1)}
    poll(lambda: {(d["type"], d["status"], d["attempt"]) for d in expect_status(
        srv.get(f"/v1/webhooks/{ep['id']}/deliveries", key=w.root_key), 200)["data"]} == want,
        5, "both deliveries in the log")


def test_an_endpoint_gets_only_what_it_subscribed(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    add_endpoint(srv, w, receiver.url, ["key.revoked"])
    k = w.create_key()
    assert srv.delete(f"/v1/keys/{k['id']}", key=w.root_key).status_code == 204
    receiver.wait_for("key.revoked")
    time.sleep(1)
    assert receiver.events("key.created") == []
    # a second revoke is no second event
    srv.delete(f"/v1/keys/{k['id']}", key=w.root_key)
    time.sleep(1.5)
    assert len(receiver.events("key.revoked")) == 1


def test_failures_are_retried_with_growing_gaps_under_one_id(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    ep = add_endpoint(srv, w, receiver.url, ["key.created"])
    receiver.plan = [500, 500]
    w.create_key()
    receiver.wait_for("key.created", timeout=20)
    with receiver.lock:
        got = list(receiver.got)
    assert [g["status"] for g in got] == [500, 500, 200]
    assert len({g["headers"]["webhook-id"] for g in got}) == 1
    for g in got:
        assert verify_signature(ep["secret"], g["headers"], g["body"])
    gap1, gap2 = got[1]["at"] - got[0]["at"], got[2]["at"] - got[1]["at"]
    assert gap1 >= 0.2 and gap2 > gap1, (gap1, gap2)
    log = poll(lambda: (lambda d: len(d) == 3 and d)(expect_status(
        srv.get(f"/v1/webhooks/{ep['id']}/deliveries", key=w.root_key), 200)["data"]),
        5, "three attempts in the log")
    assert [(d["attempt"], d["status"]) for d in reversed(log)] == [(1, 500), (2, 500), (3, 200)]
    assert log[-1]["error"] == "HTTP 500" and log[0]["error"] is None


def test_attempts_stop_at_the_configured_bound(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    ep = add_endpoint(srv, w, receiver.url, ["key.created"])
    receiver.plan = [503] * 10
    w.create_key()
    poll(lambda: len(receiver.got) >= 4, 30, "four attempts")
    time.sleep(6)  # the next one would have come after ~4.8 s
    assert len(receiver.got) == 4  # webhook_max_attempts
    log = expect_status(srv.get(f"/v1/webhooks/{ep['id']}/deliveries", key=w.root_key),
                        200)["data"]
    assert [d["status"] for d in log] == [503] * 4


def test_kill9_mid_delivery_sends_the_same_id_again(tmp_path, receiver):
    srv = LatchkeyServer(tmp_path / "srv", config=hook_config(tmp_path))
    srv.start()
    _live_servers.append(srv)
    try:
        w = srv.create_workspace()
        ep = add_endpoint(srv, w, receiver.url, ["key.created"])
        receiver.hold.set()
        k = w.create_key()
        assert receiver.held.wait(15), "the delivery never came"
        # a receiver that hangs holds up neither checks nor management calls
        t0 = time.monotonic()
        for _ in range(20):
            assert srv.verify({"key": k["secret"]}).json()["valid"]
        w.create_key()
        assert time.monotonic() - t0 < 4, "checks waited for a webhook delivery"
        srv.kill9()
        receiver.hold.clear()
        receiver.release.set()
        srv.start()
        ev = receiver.wait_for("key.created", timeout=20)[0]
        with receiver.lock:
            got = list(receiver.got)
        assert verify_signature(ep["secret"], got[0]["headers"], got[0]["body"])
        # the receiver dedupes by webhook-id: the event exists exactly once
        ids = [json.loads(g["body"])["id"] for g in got]
        assert ev["id"] in ids and got[0]["headers"]["webhook-id"] == ev["id"]
        time.sleep(1.5)
        # the first key's event (sent again after the restart) and the second's:
        # each id once, however often it was sent
        assert len({e["id"] for e in receiver.events("key.created")}) == 2
    finally:
        _finish(srv)


def test_an_acknowledged_event_survives_a_kill_before_delivery(tmp_path, receiver):
    """The event is written with the key: a kill -9 right after the 201 loses nothing."""
    srv = LatchkeyServer(tmp_path / "srv", config=hook_config(tmp_path))
    srv.start()
    _live_servers.append(srv)
    try:
        w = srv.create_workspace()
        add_endpoint(srv, w, receiver.url, ["key.created"])
        receiver.plan = [500] * 1
        k = w.create_key()
        srv.kill9()
        srv.start()
        ev = receiver.wait_for("key.created", timeout=20)[0]
        assert ev["data"]["key_id"] == k["id"]
    finally:
        _finish(srv)


def test_another_workspace_cannot_see_or_delete_an_endpoint(hook_server, receiver):
    srv = hook_server
    a, b = srv.create_workspace(), srv.create_workspace()
    ep = add_endpoint(srv, a, receiver.url, ["*"])
    assert expect_status(srv.get("/v1/webhooks", key=b.root_key), 200)["data"] == []
    r = srv.delete(f"/v1/webhooks/{ep['id']}", key=b.root_key)
    assert expect_status(r, 404)["error"]["code"] == "not_found"
    r = srv.get(f"/v1/webhooks/{ep['id']}/deliveries", key=b.root_key)
    assert expect_status(r, 404)["error"]["code"] == "not_found"
    # b's keys send a's endpoint nothing
    b.create_key()
    time.sleep(1.5)
    assert receiver.got == []
    # a deletes it: 204, then it is gone and gets nothing more
    assert srv.delete(f"/v1/webhooks/{ep['id']}", key=a.root_key).status_code == 204
    assert expect_status(srv.get("/v1/webhooks", key=a.root_key), 200)["data"] == []
    a.create_key()
    time.sleep(1.5)
    assert receiver.got == []


def test_permissions(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    ep = add_endpoint(srv, w, receiver.url, ["key.created"])
    # the read-only application key reads, the read-write one only manages keys
    assert expect_status(srv.get("/v1/webhooks", key=w.ro_key), 200)["data"][0]["id"] == ep["id"]
    for key in (w.ro_key, w.rw_key):
        r = srv.post("/v1/webhooks", key=key, json={"url": receiver.url, "events": ["*"]})
        assert expect_status(r, 403)["error"]["code"] == "insufficient_permissions"
        r = srv.delete(f"/v1/webhooks/{ep['id']}", key=key)
        assert r.status_code == 403
    # a plain key manages nothing
    k = w.create_key()
    assert srv.get("/v1/webhooks", key=k["secret"]).status_code == 403


def test_hostile_input_gets_a_clear_4xx(hook_server):
    srv = hook_server
    w = srv.create_workspace()
    bad = [
        ({"events": ["*"]}, "url"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "http://", "events": ["*"]}, "url"),
        ({"url": "http://user:pw@example.com/", "events": ["*"]}, "url"),
        ({"url": "http://example.com/" + "a" * 3000, "events": ["*"]}, "url"),
        ({"url": "http://exa mple.com/", "events": ["*"]}, "url"),
        ({"url": "http://example.com:99999/", "events": ["*"]}, "url"),
        ({"url": "http://example.com/#frag", "events": ["*"]}, "url"),
        ({"url": "http://ex\u00e4mple.com/", "events": ["*"]}, "url"),
        ({"url": "https://example.com/"}, "events"),
        ({"url": "https://example.com/", "events": []}, "events"),
        ({"url": "https://example.com/", "events": "key.created"}, "events"),
        ({"url": "https://example.com/", "events": ["key.exploded"]}, "events"),
        ({"url": "https://example.com/", "events": [1]}, "events"),
        ({"url": "https://example.com/", "events": ["*"] * 17}, "events"),
        ({"url": "https://example.com/", "events": ["*"], "secret": "mine"}, "secret"),
        ({"url": "https://example.com/", "events": ["*"], "description": "x" * 300},
         "description"),
    ]
    for body, field in bad:
        r = srv.post("/v1/webhooks", key=w.root_key, json=body)
        doc = expect_status(r, 400)
        assert doc["error"]["code"] == "invalid_request", (body, doc)
        assert field in doc["error"]["message"] or doc["error"].get("field") == field, (body, doc)
    r = srv.post("/v1/webhooks", key=w.root_key, data=b"{not json")
    assert expect_status(r, 400)["error"]["code"] == "bad_json"
    r = srv.request("PUT", "/v1/webhooks/settings", key=w.root_key,
                    json={"credits_low_threshold": -5})
    assert expect_status(r, 400)["error"]["code"] == "invalid_request"
    assert srv.delete("/v1/webhooks/" + "x" * 500, key=w.root_key).status_code == 404
    assert srv.get("/v1/webhooks/wh_nope/deliveries", key=w.root_key).status_code == 404
    # at most 16 endpoints a workspace
    for i in range(16):
        add_endpoint(srv, w, f"https://example.com/{i}", ["*"])
    r = srv.post("/v1/webhooks", key=w.root_key,
                 json={"url": "https://example.com/17", "events": ["*"]})
    assert expect_status(r, 409)["error"]["code"] == "conflict"


def test_private_destinations_are_refused_by_default(make_server, tmp_path, receiver):
    cfg = hook_config(tmp_path)
    del cfg["webhook_allow_private"]  # the default: no private targets
    srv = make_server(config=cfg)
    w = srv.create_workspace()
    for url in (receiver.url, "http://localhost:9/x", "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/", "http://[::1]:8080/", "http://[fe80::1]/",
                "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://192.168.1.1/",
                "http://0x7f000001/", "http://2130706433/", "http://127.1/",
                # site-local, IPv4-translated and 6to4 wrapping loopback or 10/8,
                # discard-only, Teredo, local-use NAT64, documentation
                "http://[fec0::1]/", "http://[::ffff:0:127.0.0.1]/", "http://[2002:7f00:1::]/",
                "http://[2002:a00:1::]/", "http://[100::1]/", "http://[2001::1]/",
                "http://[64:ff9b:1::a00:1]/", "http://[2001:db8::1]/", "http://[3fff::1]/"):
        r = srv.post("/v1/webhooks", key=w.root_key, json={"url": url, "events": ["*"]})
        doc = expect_status(r, 400)
        assert "address" in doc["error"]["message"] or "localhost" in doc["error"]["message"]
    # a name is judged by what it resolves to, at delivery time
    host = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)}
    except OSError:
        addrs = set()
    if not addrs or not all(a.startswith(("127.", "::1", "10.", "192.168.", "172.")) for a in addrs):
        pytest.skip(f"{host} does not resolve to a private address here")
    ep = add_endpoint(srv, w, f"http://{host}:{receiver.port}/hook", ["key.created"])
    w.create_key()
    log = poll(lambda: expect_status(srv.get(f"/v1/webhooks/{ep['id']}/deliveries",
                                             key=w.root_key), 200)["data"], 10, "an attempt")
    assert log[0]["status"] is None and "private" in log[0]["error"]
    assert receiver.got == []


def test_a_black_holed_workspace_does_not_hold_up_another(make_server, tmp_path, receiver):
    """Workspace A's 16 endpoints accept connections and never answer; its 80
    deliveries would fill every claim for ten timeouts (15 s) if claims went by
    due time alone. B's event is claimed in the next round and arrives at once."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)  # the kernel accepts; nobody reads or answers
    try:
        srv = make_server(config=hook_config(tmp_path, webhook_timeout_ms="1500",
                                             webhook_max_attempts="2"))
        a, b = srv.create_workspace(), srv.create_workspace()
        for i in range(16):
            add_endpoint(srv, a, f"http://127.0.0.1:{hole.getsockname()[1]}/{i}", ["key.created"])
        add_endpoint(srv, b, receiver.url, ["key.revoked"])
        for _ in range(5):
            a.create_key()
        k = b.create_key()
        time.sleep(0.5)  # A's deliveries are due first and being sent
        t0 = time.monotonic()
        assert srv.delete(f"/v1/keys/{k['id']}", key=b.root_key).status_code == 204
        receiver.wait_for("key.revoked", timeout=30)
        took = time.monotonic() - t0
        assert took < 5, f"B's event waited {took:.1f} s behind A's black-holed endpoints"
    finally:
        hole.close()


def test_a_name_that_does_not_resolve_fails_and_is_tried_again(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    ep = add_endpoint(srv, w, "http://no-such-host.invalid/hook", ["key.created"])
    ok = add_endpoint(srv, w, receiver.url, ["key.created"])
    w.create_key()
    receiver.wait_for("key.created")
    log = poll(lambda: (lambda d: len(d) >= 2 and d)(expect_status(
        srv.get(f"/v1/webhooks/{ep['id']}/deliveries", key=w.root_key), 200)["data"]),
        15, "two attempts")
    assert [d["attempt"] for d in reversed(log)][:2] == [1, 2]
    for d in log:
        assert d["status"] is None and d["error"].startswith("cannot resolve the host"), d
    assert ok["id"] != ep["id"]


def set_quota(srv, ws_id, **body):
    return expect_status(srv.patch(f"/v1/workspaces/{ws_id}", key=srv.root_key, json=body), 200)


def test_quota_events_once_per_crossing_even_across_a_restart(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    set_quota(srv, w.id, quota=5)
    add_endpoint(srv, w, receiver.url, ["quota.warning", "quota.exhausted"])
    k = w.create_key()
    for _ in range(3):
        assert srv.verify({"key": k["secret"]}).json()["valid"]
    time.sleep(2)
    assert receiver.events() == []  # 60 %: nothing yet
    assert srv.verify({"key": k["secret"]}).json()["valid"]  # 80 %
    warn = receiver.wait_for("quota.warning")[0]
    assert warn["data"] == {"workspace_id": w.id, "environment": "live", "used": 4, "quota": 5,
                            "percent": 80}
    assert srv.verify({"key": k["secret"]}).json()["valid"]  # 100 %
    ex = receiver.wait_for("quota.exhausted")[0]
    assert ex["data"]["used"] == 5 and ex["data"]["percent"] == 100
    for _ in range(3):
        assert srv.verify({"key": k["secret"]}).json()["code"] == "quota_exceeded"
    srv.restart()
    assert srv.verify({"key": k["secret"]}).json()["code"] == "quota_exceeded"
    time.sleep(2.5)
    assert len(receiver.events("quota.warning")) == 1
    assert len(receiver.events("quota.exhausted")) == 1
    assert len({e["id"] for e in receiver.events()}) == 2


def test_spend_cap_reached_once_a_day(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    add_endpoint(srv, w, receiver.url, ["spend_cap.reached"])
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 1000}), 201)
    k = w.create_key(daily_spend_cap=10)
    for _ in range(2):
        assert srv.verify({"key": k["secret"], "cost": 5}).json()["valid"]
    for _ in range(3):
        assert srv.verify({"key": k["secret"], "cost": 5}).json()["code"] == "spend_cap_exceeded"
    ev = receiver.wait_for("spend_cap.reached")[0]
    assert ev["data"]["key_id"] == k["id"] and ev["data"]["daily_spend_cap"] == 10
    assert "secret" not in json.dumps(ev) and k["secret"] not in json.dumps(ev)
    time.sleep(1.5)
    assert srv.verify({"key": k["secret"], "cost": 5}).json()["code"] == "spend_cap_exceeded"
    srv.restart()
    assert srv.verify({"key": k["secret"], "cost": 5}).json()["code"] == "spend_cap_exceeded"
    time.sleep(2.5)
    assert len(receiver.events("spend_cap.reached")) == 1


def test_credits_low_below_the_workspace_threshold(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    add_endpoint(srv, w, receiver.url, ["credits.low"])
    r = srv.request("PUT", "/v1/webhooks/settings", key=w.root_key,
                    json={"credits_low_threshold": 50})
    assert expect_status(r, 200)["credits_low_threshold"] == 50
    got = expect_status(srv.get("/v1/webhooks/settings", key=w.root_key), 200)
    assert got == {"workspace_id": w.id, "credits_low_threshold": 50}
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 100}), 201)
    k = w.create_key()
    assert srv.verify({"key": k["secret"], "cost": 30}).json()["valid"]  # 70 left
    time.sleep(2)
    assert receiver.events() == []
    assert srv.verify({"key": k["secret"], "cost": 30}).json()["valid"]  # 40 left
    ev = receiver.wait_for("credits.low")[0]
    assert ev["data"]["threshold"] == 50 and ev["data"]["remaining"] == 40
    assert srv.verify({"key": k["secret"], "cost": 10}).json()["valid"]  # 30 left
    time.sleep(2)
    assert len(receiver.events("credits.low")) == 1
    # a top-up arms it again
    expect_status(srv.post("/v1/credits", key=w.root_key, json={"amount": 100}), 201)
    assert srv.verify({"key": k["secret"], "cost": 100}).json()["valid"]  # 30 left
    receiver.wait_for("credits.low", n=2)
    ids = [e["id"] for e in receiver.events("credits.low")]
    assert len(set(ids)) == 2


@pytest.mark.skipif(bool(PG_URL), reason="reads the SQLite file and its key file")
def test_no_plaintext_secret_in_the_database(hook_server, receiver):
    srv = hook_server
    w = srv.create_workspace()
    ep = add_endpoint(srv, w, receiver.url, ["*"])
    raw = base64.b64decode(ep["secret"][len("whsec_"):])
    keyfile = srv.db_path.with_name(srv.db_path.name + ".webhook-key")
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    srv.stop()
    for path in srv.dir.iterdir():
        if path.name.startswith("latchkey.db") and path != keyfile:
            data = path.read_bytes()
            assert ep["secret"].encode() not in data and raw not in data, path
            assert base64.b64encode(raw) not in data, path
    srv.start()
    # the same secret still signs after a restart (derived, not stored)
    w.create_key()
    g = poll(lambda: receiver.got, 15, "a delivery")[0]
    assert verify_signature(ep["secret"], g["headers"], g["body"])


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL needs webhook_key_file")
def test_postgres_without_a_key_file_refuses_endpoints(fresh_server):
    w = fresh_server.create_workspace()
    r = fresh_server.post("/v1/webhooks", key=w.root_key,
                          json={"url": "https://example.com/hook", "events": ["*"]})
    doc = expect_status(r, 409)
    assert "webhook_key_file" in doc["error"]["message"]
    # keys are still made, and no event is kept for nobody
    w.create_key()


def test_a_bad_key_file_stops_the_start(tmp_path):
    short = tmp_path / "short-key"
    short.write_bytes(b"x" * 10)
    conf = tmp_path / "latchkey.conf"
    conf.write_text(f"webhook_key_file = {short}\n")
    db = new_pg_database() if PG_URL else f"sqlite:{tmp_path / 'db'}"
    args = ["serve", "--listen", f"127.0.0.1:{free_port()}", "--db", db, "--config", str(conf)]
    if PG_URL:
        args += ["--state-dir", str(tmp_path / "state")]
    r = run_cli(args, timeout=60)
    assert r.returncode != 0
    assert "webhook-key" in r.stderr or "short-key" in r.stderr, r.stderr
    assert "32 bytes" in r.stderr, r.stderr


def test_two_nodes_on_one_database_never_send_one_attempt_twice(tmp_path, receiver):
    cfg = hook_config(tmp_path)
    first = LatchkeyServer(tmp_path / "n0", config=cfg)
    second = LatchkeyServer(tmp_path / "n1", init=False,
                            config=dict(cfg, state_dir=str(tmp_path / "n1" / "state")))
    second.db_path, second.db_url = first.db_path, first.db_url
    second.root_key, second.workspace_id = first.root_key, first.workspace_id
    for n in (first, second):
        n.start()
        _live_servers.append(n)
    try:
        w = first.create_workspace()
        add_endpoint(first, w, receiver.url, ["key.created"])
        # the second node learns the new workspace's keys through the change log
        poll(lambda: second.get("/v1/webhooks", key=w.root_key).status_code == 200, 10,
             "the second node knows the workspace")
        made = []
        for i in range(12):
            node = (first, second)[i % 2]
            r = node.post("/v1/keys", key=w.root_key, json={"name": f"k{i}"})
            made.append(expect_status(r, 201)["id"])
        poll(lambda: len(receiver.got) >= 12, 20, "twelve deliveries")
        time.sleep(2)
        with receiver.lock:
            ids = [g["headers"]["webhook-id"] for g in receiver.got]
        assert len(ids) == 12 and len(set(ids)) == 12, ids
        assert sorted(e["data"]["key_id"] for e in receiver.events()) == sorted(made)
    finally:
        _finish(second)
        _finish(first)


def test_a_clean_stop_hands_the_delivery_in_flight_to_another_node(tmp_path, receiver):
    """SIGTERM mid-delivery gives the lease back: another node sends the same
    webhook-id at once, not after the lease or a retry (10 minutes here)."""
    cfg = hook_config(tmp_path, webhook_retry_base_ms="600000")
    first = LatchkeyServer(tmp_path / "n0", config=cfg)
    second = LatchkeyServer(tmp_path / "n1", init=False,
                            config=dict(cfg, state_dir=str(tmp_path / "n1" / "state")))
    second.db_path, second.db_url = first.db_path, first.db_url
    second.root_key, second.workspace_id = first.root_key, first.workspace_id
    first.start()
    _live_servers.append(first)
    try:
        w = first.create_workspace()
        add_endpoint(first, w, receiver.url, ["key.created"])
        receiver.hold.set()
        w.create_key()
        assert receiver.held.wait(15), "the delivery never came"
        t0 = time.monotonic()
        assert first.stop() == 0
        assert time.monotonic() - t0 < 3, "the stop waited for the receiver"
        receiver.hold.clear()
        receiver.release.set()
        second.start()
        _live_servers.append(second)
        ev = receiver.wait_for("key.created", timeout=10)[0]
        with receiver.lock:
            assert [g["headers"]["webhook-id"] for g in receiver.got] == [ev["id"]]
    finally:
        _finish(second)
        _finish(first)


def make_cert(d, name):
    """A self-signed certificate for 127.0.0.1: (cert path, key path)."""
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


class CaServer(LatchkeyServer):
    """A server whose TLS clients trust `ca` (OpenSSL's SSL_CERT_FILE) instead of the
    system's roots."""

    def __init__(self, workdir, ca, **kw):
        self.ca = ca
        super().__init__(workdir, **kw)

    def _clock_env(self):
        return {**super()._clock_env(), "SSL_CERT_FILE": str(self.ca)}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_https_endpoints_verify_the_certificate(tmp_path):
    good = make_cert(tmp_path, "receiver")
    stranger = make_cert(tmp_path, "stranger")
    trusted, untrusted = Receiver(tls=good), Receiver(tls=stranger)
    srv = CaServer(tmp_path / "srv", good[0], config=hook_config(tmp_path))
    srv.start()
    _live_servers.append(srv)
    try:
        w = srv.create_workspace()
        ok = add_endpoint(srv, w, trusted.url, ["key.created"])
        bad = add_endpoint(srv, w, untrusted.url, ["key.created"])
        w.create_key()
        g = poll(lambda: trusted.got, 15, "an HTTPS delivery")[0]
        assert verify_signature(ok["secret"], g["headers"], g["body"])
        # a certificate the server does not trust: no request is sent, the log says why
        log = poll(lambda: expect_status(srv.get(f"/v1/webhooks/{bad['id']}/deliveries",
                                                 key=w.root_key), 200)["data"], 15, "an attempt")
        assert log[0]["status"] is None and log[0]["error"], log
        assert untrusted.got == []
    finally:
        _finish(srv)
        trusted.stop()
        untrusted.stop()
