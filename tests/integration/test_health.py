"""GET /healthz and the headers every answer carries."""

from lkhelpers import REQUEST_ID_RE, describe, expect_status, make_secret


def test_healthz_ok(server):
    r = server.get("/healthz")
    assert expect_status(r, 200) == {"status": "ok"}, describe(r)


def test_healthz_needs_no_key_and_ignores_a_bad_one(server):
    r = server.get("/healthz", headers={"Authorization": "Bearer " + make_secret()})
    assert expect_status(r, 200) == {"status": "ok"}, describe(r)


def test_every_response_has_a_request_id(server):
    ids = set()
    for _ in range(3):
        r = server.get("/healthz")
        rid = r.headers.get("X-Request-Id", "")
        assert REQUEST_ID_RE.match(rid), f"X-Request-Id {rid!r}: {describe(r)}"
        ids.add(rid)
    r = server.get("/v1/auth-context")
    assert REQUEST_ID_RE.match(r.headers.get("X-Request-Id", "")), describe(r)
    ids.add(r.headers["X-Request-Id"])
    assert len(ids) == 4, f"request ids repeat: {ids}"


def test_healthz_survives_keep_alive_reuse(server):
    import requests
    with requests.Session() as s:
        for _ in range(20):
            r = s.get(server.url("/healthz"), timeout=10)
            assert r.status_code == 200, describe(r)


def test_request_id_on_every_kind_of_answer(server, ws):
    from lkhelpers import REQUEST_ID_RE
    k = ws.create_key()
    answers = [
        server.post("/v1/keys", key=ws.root_key, json={"name": "rid"}),           # 201
        server.get("/v1/keys", key=ws.root_key),                                  # 200
        server.delete(f"/v1/keys/{k['id']}", key=ws.root_key),                    # 204
        server.get("/v1/nope"),                                                   # 404
        server.request("PUT", "/healthz"),                                        # 405
        server.post("/v1/verify", data=b"{"),                                     # 400
        server.get("/healthz", headers={"X-Filler": "a" * 5000}),                 # 431
    ]
    statuses = [r.status_code for r in answers]
    assert statuses == [201, 200, 204, 404, 405, 400, 431], statuses
    for r in answers:
        assert REQUEST_ID_RE.match(r.headers.get("X-Request-Id", "")), describe(r)
