"""Shared helpers for the latchkey black-box tests: secret format, error shape."""

import os
import re
import secrets
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# DESIGN §2: <prefix>_<env>_<body><check>, body = 32 bytes in base62 (43 chars),
# check = base62 CRC32 of everything before it (6 chars).
SECRET_RE = re.compile(
    r"^(?P<prefix>[a-z][a-z0-9_]{0,15})_(?P<env>live|test)_"
    r"(?P<body>[0-9A-Za-z]{43})(?P<check>[0-9A-Za-z]{6})$"
)
HEX_SECRET_RE = re.compile(r"^[0-9a-f]{64}$")
REQUEST_ID_RE = re.compile(r"^req_[0-9A-Za-z_-]+$")

# Requests that should answer at once still get a generous bound: sanitizer builds
# are several times slower, and a hang must turn into a failure, not a stuck run.
HTTP_TIMEOUT = float(os.environ.get("LATCHKEY_HTTP_TIMEOUT", "15"))


def b62_encode(n, width):
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    s = "".join(reversed(digits)) or ""
    return s.rjust(width, "0")


def checksum(text):
    return b62_encode(zlib.crc32(text.encode()) & 0xFFFFFFFF, 6)


def make_secret(prefix="lk", env="live", body=None):
    """A well-formed secret with a correct checksum that no server ever issued."""
    if body is None:
        body = b62_encode(int.from_bytes(secrets.token_bytes(32), "big"), 43)
    head = f"{prefix}_{env}_{body}"
    return head + checksum(head)


def flip_char(s, index):
    """Replace s[index] by another base62 character; the length stays."""
    index %= len(s)  # s[index + 1:] of index -1 would be all of s
    c = s[index]
    repl = "A" if c != "A" else "B"
    return s[:index] + repl + s[index + 1:]


def describe(resp):
    """One line naming the request and the answer, for assertion messages."""
    req = resp.request
    body = req.body
    if isinstance(body, bytes):
        body = body[:300].decode("utf-8", "replace")
    elif body is not None and not isinstance(body, str):
        body = "<stream>"
    if isinstance(body, str) and len(body) > 300:
        body = body[:300] + "..."
    text = resp.text
    if len(text) > 600:
        text = text[:600] + "..."
    return f"{req.method} {req.url} body={body!r} -> {resp.status_code} {text!r}"


def json_of(resp):
    ctype = resp.headers.get("Content-Type", "")
    assert "application/json" in ctype, f"Content-Type {ctype!r}: {describe(resp)}"
    try:
        return resp.json()
    except ValueError:
        raise AssertionError(f"response is not JSON: {describe(resp)}")


def expect_status(resp, status):
    assert resp.status_code == status, f"expected {status}: {describe(resp)}"
    if status == 204:
        return None
    return json_of(resp)


def metric(node, name):
    """The value of the unlabelled sample `name` in node's GET /metrics; fails the
    test when there is none."""
    r = node.get("/metrics")
    assert r.status_code == 200, describe(r)
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics:\n{r.text[:2000]}")


def assert_error(resp, status, code, field=None):
    """Check DESIGN §4's error shape and return the inner error object."""
    assert resp.status_code == status, f"expected {status} {code}: {describe(resp)}"
    body = json_of(resp)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), describe(resp)
    err = body["error"]
    assert err.get("status") == status, describe(resp)
    assert err.get("code") == code, f"expected code {code}: {describe(resp)}"
    for name in ("message", "hint_for_ai"):
        assert isinstance(err.get(name), str) and err[name].strip(), \
            f"error.{name} missing or empty: {describe(resp)}"
    rid = err.get("request_id")
    assert isinstance(rid, str) and REQUEST_ID_RE.match(rid), \
        f"bad request_id {rid!r}: {describe(resp)}"
    assert resp.headers.get("X-Request-Id") == rid, \
        f"X-Request-Id {resp.headers.get('X-Request-Id')!r} != {rid!r}"
    if status == 401:
        www = resp.headers.get("WWW-Authenticate", "")
        assert www.split(" ")[0].lower() == "bearer", \
            f"401 without WWW-Authenticate: Bearer ({www!r}): {describe(resp)}"
    if field is not None:
        # A nested path ("rate_limit.limit") names the field too.
        got = err.get("field")
        assert isinstance(got, str) and (got == field or got.startswith(field + ".")
                                         or got.startswith(field + "[")), \
            f"expected field {field!r}: {describe(resp)}"
    return err


def contains_value(obj, value):
    """True if value appears anywhere in a decoded JSON document."""
    if isinstance(obj, dict):
        return any(contains_value(k, value) or contains_value(v, value) for k, v in obj.items())
    if isinstance(obj, list):
        return any(contains_value(v, value) for v in obj)
    return obj == value


def has_key(obj, name):
    if isinstance(obj, dict):
        return name in obj or any(has_key(v, name) for v in obj.values())
    if isinstance(obj, list):
        return any(has_key(v, name) for v in obj)
    return False


def send_raw(port, data, timeout=5.0, half_close=False, quiet_is_end=True):
    """Send raw bytes to 127.0.0.1:port, return all the server sent until it closed.
    half_close: shut the sending side after the bytes, as a client with no more to say.
    quiet_is_end: a read timeout ends the answer; otherwise it fails the test."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            if not quiet_is_end:
                raise AssertionError(
                    f"server did not close or answer within {timeout}s: {data[:80]!r}")
    return b"".join(chunks)


def send_streaming(port, method, path, headers, body, chunked=False, timeout=None):
    """Send a request the way curl does: stop sending the body as soon as the server
    answers, so an early 413 is read instead of being lost to a reset connection.
    Returns a requests.Response, usable with assert_error and describe."""
    import select
    import socket

    import requests
    from requests.structures import CaseInsensitiveDict

    timeout = timeout or HTTP_TIMEOUT
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for k, v in headers.items():
        head.append(f"{k}: {v}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        pieces = []
        for i in range(0, len(body), 8192):
            part = body[i:i + 8192]
            pieces.append(b"%x\r\n" % len(part) + part + b"\r\n")
        payload = b"".join(pieces) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + payload

    answer = b""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.setblocking(False)
        sent, deadline = 0, time_monotonic() + timeout
        while time_monotonic() < deadline:
            want_write = [sock] if sent < len(data) else []
            r, w, _ = select.select([sock], want_write, [], 0.5)
            if r:
                try:
                    b = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    b = b""
                if not b:
                    break
                answer += b
                if _complete(answer):
                    break
                continue
            if w:
                try:
                    sent += sock.send(data[sent:sent + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    sent = len(data)  # the server stopped reading; wait for its answer
        else:
            raise AssertionError(f"{method} {path}: no complete answer within {timeout}s "
                                 f"(got {answer[:200]!r})")
    finally:
        sock.close()

    if not answer:
        raise AssertionError(f"{method} {path}: connection closed without an answer")
    head_end = answer.find(b"\r\n\r\n")
    assert head_end > 0, f"{method} {path}: unparsable answer {answer[:200]!r}"
    lines = answer[:head_end].decode("latin-1").split("\r\n")
    resp = requests.models.Response()
    resp.status_code = int(lines[0].split(" ")[1])
    resp.headers = CaseInsensitiveDict(
        (l.split(":", 1)[0].strip(), l.split(":", 1)[1].strip()) for l in lines[1:] if ":" in l)
    content = answer[head_end + 4:]
    if resp.headers.get("Transfer-Encoding", "").lower() == "chunked":
        content = _dechunk(content)
    elif "Content-Length" in resp.headers:
        content = content[:int(resp.headers["Content-Length"])]
    resp._content = content
    resp.encoding = "utf-8"
    resp.request = requests.Request(method, f"http://127.0.0.1:{port}{path}").prepare()
    return resp


def time_monotonic():
    import time
    return time.monotonic()


def _complete(answer):
    end = answer.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = answer[:end].decode("latin-1").lower()
    m = re.search(r"\r\ncontent-length:\s*(\d+)", head)
    if m:
        return len(answer) - end - 4 >= int(m.group(1))
    if "transfer-encoding: chunked" in head:
        return answer.endswith(b"0\r\n\r\n")
    return False


def _dechunk(data):
    out = b""
    while data:
        line, _, rest = data.partition(b"\r\n")
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2:]
    return out


def assert_error_shape(resp, statuses=range(400, 500)):
    """For answers whose exact code the contract leaves open: a 4xx (by default)
    in the error shape, whatever its code. Returns the inner error object."""
    assert resp.status_code in statuses, f"unexpected status: {describe(resp)}"
    code = json_of(resp).get("error", {}).get("code")
    return assert_error(resp, resp.status_code, code)


# -- people: users, members, sessions -------------------------------------------------

SESSION_TOKEN_RE = re.compile(r"^lks_[0-9A-Za-z_-]+$")
USER_ID_RE = re.compile(r"^usr_[0-9A-Za-z]+$")
INVITE_TOKEN_RE = re.compile(r"^lki_[0-9A-Za-z]{43}$")
INVITE_ID_RE = re.compile(r"^inv_[0-9A-Za-z]+$")


def new_email(tag="user"):
    """An email address no other test uses."""
    return f"{tag}-{secrets.token_hex(6)}@example.test"


def new_password():
    """A password unique enough to be searched for in responses and files."""
    return "pw-" + secrets.token_hex(12)


def parse_time(text):
    """An RFC 3339 UTC timestamp ("2026-11-23T08:40:51Z", fractions allowed) as Unix
    seconds (float)."""
    import datetime
    assert isinstance(text, str), f"not a timestamp: {text!r}"
    t = text.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(t).timestamp()


def http_from(address):
    """A requests.Session whose connections leave from `address` (another loopback
    address such as 127.0.0.2), to act as a second client address."""
    import requests
    from requests.adapters import HTTPAdapter

    class _SourceAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kw):
            kw["source_address"] = (address, 0)
            return super().init_poolmanager(*args, **kw)

    s = requests.Session()
    s.mount("http://", _SourceAdapter())
    return s


def other_address_works(srv):
    """127.0.0.2 can reach the server (Linux answers all of 127/8 on the loopback
    device, but a sandbox may not): the checks from a second client address need it."""
    try:
        with http_from("127.0.0.2") as h:
            return h.get(srv.url("/healthz"), timeout=HTTP_TIMEOUT).status_code == 200
    except OSError:
        return False


def need_other_address(srv):
    """Skips the test when 127.0.0.2 cannot reach the server."""
    import pytest

    if not other_address_works(srv):
        pytest.skip("127.0.0.2 is not usable as a client address here")


class LoopbackSite:
    """A site on 127.0.0.1 at self.port (a reverse proxy in front of latchkey), as
    the tests call it."""

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, key=None, headers=None, method="GET", session=None):
        import requests

        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        return (session or requests).request(method, self.url(path), headers=h,
                                             timeout=HTTP_TIMEOUT)


# SQL that takes an SQLite database of today's schema back to before migration
# 8, for tests that rewind the schema to replay an older migration: 10
# (identities, a key's own credits and named rate limits), 9 (webhooks) and 8
# (an audit event's detail), newest first.
UNDO_SQLITE_MIGRATIONS_FROM_8 = (
    "DROP TABLE identities; DROP TABLE key_credits; DROP INDEX keys_by_identity;"
    + "".join(f"ALTER TABLE keys DROP COLUMN {c};" for c in (
        "identity_id", "external_id", "credits_remaining", "credits_refill",
        "credits_refill_amount", "credits_refill_day", "credits_gen", "credits_set_at",
        "rate_limits"))
    + "".join(f"DROP TABLE {t};" for t in (
        "webhook_endpoints", "webhook_events", "webhook_deliveries", "webhook_attempts",
        "webhook_alarms", "webhook_settings"))
    + "ALTER TABLE audit_events DROP COLUMN detail;")
