"""The access log: one JSON line per request (time, request id, method, route
template, status, outcome code, key id, latency), to stderr or `log_file`, with
`log_level` and `access_log = off`; and never a secret, wherever the client put it."""

import json
import socket
import subprocess
import time

import requests

from conftest import BIN, SHARED_CONFIG, clean_env, free_port, poll
from lkhelpers import describe, expect_status

FIELDS = {"time", "request_id", "method", "route", "status", "code", "key_id", "latency_us"}


def access_lines(text):
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)  # every line that looks like JSON must be JSON
            if doc.get("type") == "access":
                out.append(doc)
    return out


def logged(path, want, timeout=5.0):
    """The access lines of the file at path once `want(lines)` holds for them."""
    def read():
        lines = access_lines(path.read_text()) if path.exists() else []
        return lines if want(lines) else None
    return poll(read, timeout=timeout, what=f"access lines in {path}")


def line_for(path, request_id):
    return logged(path, lambda ls: any(d["request_id"] == request_id for d in ls))


def by_id(lines, rid):
    return next(d for d in lines if d["request_id"] == rid)


def test_one_json_line_per_request_in_the_log_file(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log)})
    key = expect_status(srv.post("/v1/keys", key=srv.root_key, json={"name": "a"}), 201)
    r = srv.verify({"key": key["secret"]})
    expect_status(r, 200)
    rid = r.headers["X-Request-Id"]
    lines = line_for(log, rid)
    d = by_id(lines, rid)
    assert FIELDS <= set(d), d
    assert d["method"] == "POST" and d["route"] == "/v1/verify" and d["status"] == 200, d
    assert d["code"] == "valid" and d["key_id"] == key["id"], d
    assert isinstance(d["latency_us"], int) and d["latency_us"] >= 0, d
    assert d["time"].endswith("Z") and "T" in d["time"], d
    # the serve process's stderr has its diagnostics, not the access lines
    assert not access_lines(srv.stderr_text())
    assert "serving on" in log.read_text()


def test_refusals_carry_their_code_and_routes_their_template(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log)})
    key = expect_status(srv.post("/v1/keys", key=srv.root_key, json={"name": "b"}), 201)
    rids = {}
    r = srv.get("/v1/auth-context")
    rids["missing"] = r.headers["X-Request-Id"]
    r = srv.verify({"key": key["secret"][:-3] + "zzz"})
    rids["bad"] = r.headers["X-Request-Id"]
    r = srv.get(f"/v1/keys/{key['id']}", key=srv.root_key)
    rids["get"] = r.headers["X-Request-Id"]
    r = srv.get("/v1/no/such/path")
    rids["404"] = r.headers["X-Request-Id"]
    lines = logged(log, lambda ls: set(rids.values()) <= {d["request_id"] for d in ls})
    d = by_id(lines, rids["missing"])
    assert (d["route"], d["status"], d["code"], d["key_id"]) == \
        ("/v1/auth-context", 401, "missing_key", None), d
    d = by_id(lines, rids["bad"])
    assert d["status"] == 200 and d["code"] in ("invalid_key", "malformed_key"), d
    d = by_id(lines, rids["get"])
    assert d["route"] == "/v1/keys/{id}" and d["status"] == 200, d
    assert key["id"] not in json.dumps(d["route"]), d
    d = by_id(lines, rids["404"])
    assert d["route"] is None and d["status"] == 404 and d["code"] == "not_found", d


def test_access_lines_go_to_stderr_by_default(server):
    r = server.get("/healthz")
    rid = r.headers["X-Request-Id"]
    poll(lambda: any(d["request_id"] == rid for d in access_lines(server.stderr_text())),
         what="the /healthz line on stderr")


def test_no_secret_ever_reaches_the_log(make_server, tmp_path):
    """Every place a secret can travel: Authorization, X-API-Key, ?auth_token=, the
    verify body, a login password, a cookie; and each refused shape of them."""
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log), "log_level": "debug"})
    ws = srv.create_workspace()
    key = ws.create_key()
    secrets = [srv.root_key, ws.root_key, ws.rw_key, ws.ro_key, key["secret"]]
    s = key["secret"]
    srv.get("/v1/auth-context", headers={"Authorization": f"Bearer {s}"})
    srv.get("/v1/auth-context", headers={"X-API-Key": s})
    srv.get("/v1/auth-context", params={"auth_token": s})
    srv.get("/v1/auth-context", params={"auth_token": s + "x"})   # malformed
    srv.get("/v1/auth-context", params={"auth_token": s, "auth_token ": s})
    srv.verify({"key": s})
    srv.verify({"key": s[:-2]})
    srv.get(f"/v1/keys?auth_token={ws.root_key}")
    srv.get(f"/v1/keys/{s}", key=ws.root_key)                 # a secret where an id goes
    srv.get(f"/{s}/v1/verify")
    srv.get("/v1/keys", headers={"Cookie": f"lk_session={s}"})
    requests.request("BREW", srv.url(f"/v1/verify?auth_token={s}"), timeout=5)
    user = ws.new_user("editor")
    r = srv.login(user.email, user.password)
    secrets.append(user.password)
    expect_status(r, 200)
    cookie = r.headers.get("Set-Cookie", "")
    secrets += [cookie.split(";")[0].partition("=")[2]] if "=" in cookie else []
    srv.get("/v1/me", headers={"Cookie": cookie.split(";")[0]})
    assert len(secrets) == 7, "the login set no session cookie to look for"
    srv.get("/healthz")
    rid = srv.get("/healthz").headers["X-Request-Id"]
    line_for(log, rid)
    text = log.read_text() + srv.stderr_text()
    for secret in secrets:
        for piece in (secret, secret[-16:]):
            assert piece not in text, f"a secret ({piece[:8]}...) is in the log"


def test_a_hostile_method_still_gives_a_json_line(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log)})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
        c.sendall(b'GE"T\\{}\x01 /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        c.recv(4096)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
        c.sendall(b"X" * 200 + b" /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.recv(4096)
    rid = srv.get("/healthz").headers["X-Request-Id"]
    line_for(log, rid)
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            assert len(d["method"]) <= 16 and '"' not in d["method"], d


def test_access_log_off_keeps_diagnostics(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log), "access_log": "off"})
    for _ in range(3):
        srv.get("/healthz")
    srv.stop()
    text = log.read_text()
    assert "serving on" in text, text[-500:]
    assert not access_lines(text), text[-500:]


def test_no_access_log_flag(tmp_path):
    port = free_port()
    db = f"sqlite:{tmp_path}/db"
    p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", db,
                          "--no-access-log"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=clean_env(), text=True)
    try:
        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.RequestException:
                return False
        poll(up, timeout=10, what="serve --no-access-log answering")
        for _ in range(3):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        time.sleep(0.3)
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1]
    assert "serving on" in err and not access_lines(err), err[-500:]


def test_log_level_warn_drops_info_and_access(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log), "log_level": "warn"})
    srv.get("/healthz")
    srv.stop()
    text = log.read_text() if log.exists() else ""
    assert "serving on" not in text and not access_lines(text), text[-500:]


def test_bad_log_settings_are_refused(tmp_path):
    conf = tmp_path / "bad.conf"
    for text, what in (("log_level = loud\n", "log_level"), ("access_log = maybe\n", "access_log")):
        conf.write_text(text)
        r = subprocess.run([BIN, "serve", "--config", str(conf), "--listen",
                            f"127.0.0.1:{free_port()}", "--db", f"sqlite:{tmp_path}/d"],
                           capture_output=True, text=True, timeout=10, env=clean_env())
        assert r.returncode != 0 and what in r.stderr, r.stderr
    r = subprocess.run([BIN, "serve", "--log-level", "chatty", "--db", f"sqlite:{tmp_path}/d"],
                       capture_output=True, text=True, timeout=10, env=clean_env())
    assert r.returncode != 0 and "--log-level" in r.stderr, r.stderr
    r = subprocess.run([BIN, "serve", "--log-file", str(tmp_path / "no" / "such" / "dir.log"),
                        "--listen", f"127.0.0.1:{free_port()}", "--db", f"sqlite:{tmp_path}/d"],
                       capture_output=True, text=True, timeout=10, env=clean_env())
    assert r.returncode != 0 and "--log-file" in r.stderr, r.stderr


def test_log_level_flag_wins_over_the_file(make_server, tmp_path):
    """Diagnostics at debug are allowed; a wrong level in a flag is refused above."""
    log = tmp_path / "x.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log), "log_level": "off"})
    srv.get("/healthz")
    srv.stop()
    assert not (log.exists() and log.read_text().strip()), log.read_text()[-300:]


def test_logging_survives_a_request_storm(make_server, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config={**SHARED_CONFIG, "log_file": str(log)})
    with requests.Session() as s:
        for _ in range(300):
            s.get(srv.url("/healthz"), timeout=5)
    srv.stop()
    lines = [d for d in access_lines(log.read_text()) if d["route"] == "/healthz"]
    assert len(lines) >= 300, len(lines)
