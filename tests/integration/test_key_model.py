"""The key model beyond one limit: external_id and identities, a key's own
credits with refill, and several named rate limits (docs/http-api.md)."""

import pytest

from lkhelpers import assert_error, describe, expect_status


def create(ws, **body):
    return ws.create_key(**body)


def patch(ws, key_id, body):
    return ws.server.patch(f"/v1/keys/{key_id}", key=ws.root_key, json=body)


# -- external_id and identities --------------------------------------------------------


def test_external_id_links_an_identity_made_on_first_use(ws):
    a = create(ws, external_id="user_123")
    assert a["external_id"] == "user_123"
    assert a["identity_id"].startswith("idn_"), a
    b = create(ws, external_id="user_123")
    assert b["identity_id"] == a["identity_id"], "one identity per external_id"
    c = create(ws, external_id="user_456")
    assert c["identity_id"] != a["identity_id"]
    plain = create(ws)
    assert plain["external_id"] is None and plain["identity_id"] is None
    got = ws.get_key(a["id"])
    assert (got["external_id"], got["identity_id"]) == ("user_123", a["identity_id"])


def test_list_filters_by_external_id(ws):
    a = create(ws, external_id="org:acme")
    b = create(ws, external_id="org:acme")
    create(ws, external_id="org:other")
    create(ws)
    ids = [k["id"] for k in ws.list_keys(external_id="org:acme")["data"]]
    assert ids == [b["id"], a["id"]], ids
    assert ws.list_keys(external_id="org:nobody")["data"] == []


def test_external_id_is_per_workspace(ws, ws2):
    a = create(ws, external_id="shared-name")
    b = create(ws2, external_id="shared-name")
    assert a["identity_id"] != b["identity_id"]
    assert [k["id"] for k in ws2.list_keys(external_id="shared-name")["data"]] == [b["id"]]


def test_patch_sets_changes_and_clears_external_id(ws):
    k = create(ws)
    doc = expect_status(patch(ws, k["id"], {"external_id": "cust-9"}), 200)
    assert doc["external_id"] == "cust-9" and doc["identity_id"].startswith("idn_")
    first = doc["identity_id"]
    doc = expect_status(patch(ws, k["id"], {"external_id": "cust-10"}), 200)
    assert doc["external_id"] == "cust-10" and doc["identity_id"] != first
    doc = expect_status(patch(ws, k["id"], {"external_id": None}), 200)
    assert doc["external_id"] is None and doc["identity_id"] is None
    assert ws.list_keys(external_id="cust-10")["data"] == []
    # the identity stays: naming it again links the same one
    doc = expect_status(patch(ws, k["id"], {"external_id": "cust-9"}), 200)
    assert doc["identity_id"] == first


@pytest.mark.parametrize("bad", ["x" * 256, "tab\there", "del\u007f", "nl\n", 12, ["a"], {"a": 1}])
def test_bad_external_id_is_refused(ws, bad):
    r = ws.server.post("/v1/keys", key=ws.root_key, json={"name": "n", "external_id": bad})
    assert_error(r, 400, "invalid_request")


def test_external_id_takes_utf8_and_its_longest(ws):
    long_id = "é" * 127 + "x"  # 255 bytes
    k = create(ws, external_id=long_id)
    assert ws.get_key(k["id"])["external_id"] == long_id
    k = create(ws, external_id="ユーザー 1")
    assert [x["id"] for x in ws.list_keys(external_id="ユーザー 1")["data"]] == [k["id"]]


def test_bad_external_id_filter_is_refused(ws):
    r = ws.server.get("/v1/keys", key=ws.root_key, params={"external_id": "x" * 300})
    assert_error(r, 400, "invalid_request")


def test_identity_survives_a_restart(fresh_server):
    srv = fresh_server
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "n", "external_id": "keep-me"})
    k = expect_status(r, 201)
    srv.restart()
    got = expect_status(srv.get(f"/v1/keys/{k['id']}", key=srv.root_key), 200)
    assert (got["external_id"], got["identity_id"]) == ("keep-me", k["identity_id"]), describe(r)
    r = srv.post("/v1/keys", key=srv.root_key, json={"name": "n2", "external_id": "keep-me"})
    assert expect_status(r, 201)["identity_id"] == k["identity_id"]
