"""Oversize and unexpected requests get a 4xx in the error shape, never a crash."""

import socket

import pytest

from lkhelpers import (assert_error, assert_error_shape, describe, expect_status,
                       send_raw, send_streaming)


def test_header_value_over_4k_is_431(server):
    r = server.get("/healthz", headers={"X-Filler": "a" * 5000})
    assert_error(r, 431, "headers_too_large")
    expect_status(server.get("/healthz"), 200)


def test_header_value_under_4k_is_fine(server):
    r = server.get("/healthz", headers={"X-Filler": "a" * 4000})
    assert expect_status(r, 200) == {"status": "ok"}


def test_all_headers_over_6k_is_431(server):
    r = server.get("/healthz", headers={"X-Filler-1": "a" * 3500, "X-Filler-2": "b" * 3500})
    assert_error(r, 431, "headers_too_large")


def test_all_headers_under_6k_is_fine(server):
    r = server.get("/healthz", headers={"X-Filler-1": "a" * 2500, "X-Filler-2": "b" * 2500})
    expect_status(r, 200)


def test_oversize_authorization_header_is_431(server, ws):
    r = server.get("/v1/auth-context", headers={"Authorization": "Bearer " + "k" * 5000})
    assert_error(r, 431, "headers_too_large")


@pytest.mark.parametrize("path,auth", [("/v1/keys", True), ("/v1/verify", False)])
def test_one_mebibyte_body_is_413(server, ws, path, auth):
    body = b'{"name": "' + b"x" * (1 << 20) + b'"}'
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Bearer " + ws.root_key
    r = send_streaming(server.port, "POST", path, headers, body)
    assert_error(r, 413, "payload_too_large")
    expect_status(server.get("/healthz"), 200)
    if auth:
        names = {k["name"] for k in ws.list_keys()["data"]}
        assert not any(len(n) > 1000 for n in names)


@pytest.mark.parametrize("method,path", [
    ("POST", "/nope"),  # a GET outside the API is the dashboard's page
    ("GET", "/v1/nope"),
    ("POST", "/v1/keys/key_abc/nope"),
    ("GET", "/v2/keys"),
    ("GET", "/healthz/extra"),
])
def test_unknown_route_is_404(server, method, path):
    r = server.request(method, path)
    assert_error(r, 404, "not_found")


def test_unknown_route_with_valid_key_is_404(server, ws):
    assert_error(server.get("/v1/nothing-here", key=ws.root_key), 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/healthz"),
    ("POST", "/healthz"),
    ("PUT", "/v1/keys"),
    ("DELETE", "/v1/keys"),
    ("GET", "/v1/verify"),
    ("PUT", "/v1/keys/key_abc"),
    ("GET", "/v1/keys/key_abc/regenerate"),
    ("POST", "/v1/auth-context"),
    ("DELETE", "/v1/workspaces"),
])
def test_wrong_method_is_405(server, ws, method, path):
    r = server.request(method, path, key=ws.root_key)
    assert_error(r, 405, "method_not_allowed")


@pytest.mark.parametrize("payload", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"ke",
    b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /v1/keys?limit=" + b"9" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\xff\x00\xff" * 100,
], ids=["garbage", "negative-length", "short-body", "bad-chunk", "long-query", "binary"])
def test_broken_http_does_not_hurt_the_server(server, payload):
    answer = send_raw(server.port, payload, timeout=10, half_close=True,
                      quiet_is_end=False)
    if answer:
        assert answer.startswith(b"HTTP/1."), f"not an HTTP answer: {answer[:200]!r}"
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:300]
    expect_status(server.get("/healthz"), 200)


def test_json_with_nul_and_bad_utf8_never_breaks(server, ws):
    for data in (b'{"name": "a\x00b"}', b'{"name": "\xff\xfe"}', b'{"name": "a\\u0000b"}'):
        r = server.post("/v1/keys", key=ws.root_key, data=data,
                        headers={"Content-Type": "application/json"})
        assert r.status_code in (201, 400), describe(r)
        if r.status_code == 400:
            assert_error_shape(r)
    expect_status(server.get("/healthz"), 200)


def test_many_headers_over_6k_is_431(server):
    headers = {f"X-H{i}": "v" * 90 for i in range(80)}  # about 7.5 KiB in all
    r = server.get("/healthz", headers=headers)
    assert_error(r, 431, "headers_too_large")


def test_very_many_headers_over_6k_is_431(server):
    headers = {f"X-H{i}": "v" * 60 for i in range(90)}  # about 6.5 KiB in 90 headers
    r = server.get("/healthz", headers=headers)
    assert_error(r, 431, "headers_too_large")


def test_more_headers_than_h2o_parses_is_refused_and_closed(server):
    # h2o's parser takes at most 100 headers and 8 KiB of request head; past that
    # it answers a plain-text 400 and closes before latchkey sees the request
    # (README, "Limits"). Refused, never served, and the server goes on.
    headers = {f"X-{i}": "v" for i in range(150)}
    r = server.get("/healthz", headers=headers)
    assert r.status_code == 400, describe(r)
    assert r.headers.get("Connection", "").lower() == "close", describe(r)
    expect_status(server.get("/healthz"), 200)


def test_long_path_is_4xx(server, ws):
    r = server.get("/v1/keys/" + "k" * 8000, key=ws.root_key)
    assert_error_shape(r)
    expect_status(server.get("/healthz"), 200)


def test_idle_and_half_sent_connections_do_not_block_others(server, ws):
    import time
    k = ws.create_key()
    socks = []
    try:
        for i in range(60):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 2:
                s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            else:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        t0 = time.monotonic()
        for _ in range(5):
            r = server.verify({"key": k["secret"]})
            assert expect_status(r, 200)["valid"] is True
        assert time.monotonic() - t0 < 5, "requests stalled behind idle connections"
    finally:
        for s in socks:
            s.close()
    expect_status(server.get("/healthz"), 200)


def test_parallel_verifies_are_all_right(server, ws):
    from concurrent.futures import ThreadPoolExecutor
    good = [ws.create_key() for _ in range(4)]
    gone = ws.create_key()
    assert server.delete(f"/v1/keys/{gone['id']}", key=ws.root_key).status_code == 204
    cases = [(k["secret"], "valid", k["id"]) for k in good] + [(gone["secret"], "revoked_key",
                                                                 gone["id"])]
    cases = cases * 30

    def one(case):
        secret, code, kid = case
        v = server.verify({"key": secret}).json()
        return v.get("code") == code and v.get("key_id") == kid

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, cases))
    assert all(results), f"{results.count(False)} of {len(results)} answers were wrong"


def exchange(server, head, body=b"", wait_continue=False, timeout=10):
    """Raw request; with wait_continue, send the body only after 100 Continue."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(head)
        data = b""
        if wait_continue:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 100"):
                return data  # a final answer without Continue
            data = data[data.index(b"\r\n\r\n") + 4:]
        s.sendall(body)
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data


def test_expect_100_continue(server, ws):
    body = b'{"name": "continued"}'
    head = (f"POST /v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {ws.root_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
    data = exchange(server, head, body, wait_continue=True)
    assert data.startswith(b"HTTP/1.1 201"), data[:300]
    assert "continued" in {k["name"] for k in ws.list_keys()["data"]}


def test_expect_100_continue_oversize_is_refused_early(server, ws):
    head = (f"POST /v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {ws.root_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {1 << 20}\r\nExpect: 100-continue\r\n\r\n").encode()
    data = exchange(server, head, b"", wait_continue=True)
    assert data.startswith(b"HTTP/1.1 413"), data[:300]
    assert b'"payload_too_large"' in data, data[:400]


def test_http10_request(server):
    data = exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1."), data[:200]
    assert b" 200 " in data.split(b"\r\n", 1)[0] and b'"ok"' in data, data[:300]
