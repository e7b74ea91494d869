"""The HTTP/1.1 edge, with raw sockets (docs/http-api.md, "HTTP requests latchkey
refuses").

Request smuggling: a request whose body framing is ambiguous (two Content-Length
headers, two Transfer-Encoding headers, or both kinds) is answered 400
`invalid_request` in the error shape with `Connection: close`, and the connection
is closed: nothing after its head is ever read as another request. Request heads
(request line and headers) are capped at 8 KiB: 431 `headers_too_large`.
"""

import json
import socket
import time

import pytest

from lkhelpers import HTTP_TIMEOUT, REQUEST_ID_RE, expect_status


def exchange(port, payload, timeout=HTTP_TIMEOUT):
    """Sends payload on one connection and reads until the server closes it.
    Returns the raw bytes and whether the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        chunks, closed = [], False
        deadline = time.monotonic() + timeout
        s.settimeout(1.0)
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break  # still open: keep-alive
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            chunks.append(b)
        return b"".join(chunks), closed


def responses(raw):
    """Splits a byte stream of HTTP/1.1 responses (with Content-Length) into
    (status, headers, body) triples."""
    out = []
    while raw:
        end = raw.find(b"\r\n\r\n")
        assert end > 0, f"not an HTTP response: {raw[:200]!r}"
        lines = raw[:end].decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1."), lines[0]
        status = int(lines[0].split(" ")[1])
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                   for l in lines[1:] if ":" in l}
        n = int(headers.get("content-length", "0"))
        body = raw[end + 4:end + 4 + n]
        out.append((status, headers, body))
        raw = raw[end + 4 + n:]
    return out


def assert_error_shape(status, headers, body, want_status, want_code):
    assert status == want_status, (status, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc = json.loads(body)
    err = doc["error"]
    assert err["status"] == want_status and err["code"] == want_code, doc
    assert isinstance(err["message"], str) and err["message"], doc
    assert REQUEST_ID_RE.match(err["request_id"]), doc
    return err


def smuggled_create(root_key, name):
    """A request that, if it were ever served, would leave a trace: a new key."""
    body = json.dumps({"name": name}).encode()
    return (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + root_key.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)


def key_names(server, ws):
    doc = expect_status(server.get("/v1/keys", key=ws.root_key, params={"limit": 100}), 200)
    return {k["name"] for k in doc["data"]}


FRAMINGS = {
    "two-lengths": lambda n, m: f"Content-Length: {n}\r\nContent-Length: {m}\r\n",
    "two-equal-lengths": lambda n, m: f"Content-Length: {n}\r\nContent-Length: {n}\r\n",
    "chunked-and-length": lambda n, m: f"Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n",
    "length-and-chunked": lambda n, m: f"Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n",
    "two-codings": lambda n, m: "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    "case-and-space": lambda n, m: f"content-length: {n}\r\nCONTENT-LENGTH:  {m}\r\n",
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_ambiguous_framing_is_refused_and_the_rest_never_served(server, ws, framing):
    name = f"smuggled-{framing}"
    inner = smuggled_create(ws.root_key, name)
    body = b'{"key":"x"}'
    chunked = "chunked" in FRAMINGS[framing](0, 0)
    if chunked:
        # chunked: the body ends at the zero chunk; a length-reader would take more
        data = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        head = FRAMINGS[framing](len(data) + len(inner), 0)
    else:
        data = body
        head = FRAMINGS[framing](len(body), len(body) + len(inner))
    payload = (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
               head.encode() + b"\r\n" + data + inner)
    raw, closed = exchange(server.port, payload)
    got = responses(raw)
    assert len(got) == 1, f"{len(got)} answers: the rest was read as another request: {raw!r}"
    status, headers, rbody = got[0]
    err = assert_error_shape(status, headers, rbody, 400, "invalid_request")
    assert "framing" in err["message"], err
    assert headers.get("connection", "").lower() == "close", headers
    assert closed, "the connection was left open after an ambiguous request"
    assert name not in key_names(server, ws), "the smuggled request was served"


def test_one_framing_header_keeps_the_connection(server, ws):
    """Pipelined requests with plain framing are all answered, in order."""
    body = b'{"key":"x"}'
    one = (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
           b"\r\n\r\n" + body)
    chunk = (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
             b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw, _ = exchange(server.port, one + chunk + last)
    got = responses(raw)
    assert [s for s, _, _ in got] == [200, 200, 200], raw


# -- the size of a request head --------------------------------------------------------------

def test_a_head_over_8k_is_431_in_the_error_shape(server):
    for head in (b"GET /healthz?q=" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                 b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(80)) + b"\r\n",
                 b"GET /" + b"p" * 8300 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        raw, closed = exchange(server.port, head)
        got = responses(raw)
        assert len(got) == 1, raw[:300]
        status, headers, body = got[0]
        assert_error_shape(status, headers, body, 431, "headers_too_large")
        assert closed and headers.get("connection", "").lower() == "close", headers
    expect_status(server.get("/healthz"), 200)


def test_a_head_just_under_8k_is_served(server):
    head = b"GET /healthz?q=" + b"a" * 7900 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert len(head) <= 8192
    raw, _ = exchange(server.port, head)
    assert [s for s, _, _ in responses(raw)] == [200], raw[:300]


# -- malformed request heads ---------------------------------------------------------------------
# h2o 2.2.5's parser (picohttpparser) refuses these heads; h2o itself would answer a
# fixed plain-text "400 Bad Request". latchkey reads a connection's first head
# before h2o does and answers in the error shape.

MALFORMED = {
    "garbage": b"GARBAGE\r\n\r\n",
    "bad-version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "control-in-target": b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-without-colon": b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
    "empty-header-name": b"GET /healthz HTTP/1.1\r\n: v\r\n\r\n",
    "space-before-colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "nul-in-value": b"GET /healthz HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    "del-in-value": b"GET /healthz HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
    "bare-cr": b"GET /healthz HTTP/1.1\rHost: x\r\n\r\n",
    "101-headers": b"GET /healthz HTTP/1.1\r\n" +
                   b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n",
    "binary": b"\x00\xff\x00\xff" * 100,
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_head_gets_the_error_shape(server, name):
    raw, closed = exchange(server.port, MALFORMED[name])
    got = responses(raw)
    assert len(got) == 1, raw[:300]
    status, headers, body = got[0]
    assert_error_shape(status, headers, body, 400, "invalid_request")
    assert headers.get("connection", "").lower() == "close" and closed, headers
    expect_status(server.get("/healthz"), 200)


def test_an_unfinished_head_over_8k_is_refused_without_waiting_for_more(server):
    """The first head is never buffered past 8 KiB: 431 while the client is still
    sending (h2o alone would wait for up to 408 KiB)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000)
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
    got = responses(raw)
    assert len(got) == 1, raw[:300]
    assert_error_shape(*got[0], 431, "headers_too_large")


@pytest.mark.parametrize("head,what", [
    (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "unknown coding"),
    (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "broken length"),
    (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "broken chunk"),
    (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: telepathy\r\n\r\n{}",
     "unknown expectation"),
])
def test_h2o_refusals_of_a_body_are_in_the_error_shape(server, head, what):
    raw, closed = exchange(server.port, head)
    got = responses(raw)
    assert len(got) == 1, (what, raw[:300])
    assert_error_shape(*got[0], 400, "invalid_request")
    assert closed, what


def test_http2_with_prior_knowledge_still_reaches_h2o(server):
    raw, _ = exchange(server.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", timeout=3)
    # h2o answers with its SETTINGS frame (type 4), not an HTTP/1.1 refusal
    assert len(raw) >= 9 and raw[3] == 4, raw[:40]


# -- what remains h2o's (docs/http-api.md) ----------------------------------------------------
# On a kept-alive connection, later request heads are read by h2o alone.

GOOD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_later_malformed_head_gets_h2o_plain_400(server):
    raw, closed = exchange(server.port, GOOD + b"GARBAGE\r\n\r\n")
    first_end = raw.find(b"{\"status\":\"ok\"}")
    assert first_end > 0, raw[:300]
    rest = raw[first_end + len(b"{\"status\":\"ok\"}"):]
    assert rest.startswith(b"HTTP/1.1 400 Bad Request\r\n"), rest[:200]
    assert rest.endswith(b"\r\n\r\nBad Request"), rest[-100:]
    assert b"text/plain" in rest and b"Connection: close" in rest, rest
    assert closed
    expect_status(server.get("/healthz"), 200)


def test_a_later_complete_head_over_8k_is_431_in_the_error_shape(server):
    big = b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    raw, closed = exchange(server.port, GOOD + big)
    got = responses(raw)
    assert [s for s, _, _ in got] == [200, 431], raw[:400]
    assert_error_shape(*got[1], 431, "headers_too_large")
    assert closed


def test_a_later_head_over_408k_gets_h2o_plain_400(server):
    """h2o buffers a later head up to H2O_MAX_REQLEN (8192 + 4096 * 100 bytes)."""
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (420 * 1024) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(GOOD)
        try:
            s.sendall(big)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                raw += b
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1 400 Bad Request\r\n" in raw and raw.endswith(b"Bad Request"), raw[-200:]
    expect_status(server.get("/healthz"), 200)
