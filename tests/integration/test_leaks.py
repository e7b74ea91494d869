"""Leaked keys revoke themselves (docs/leaks.md): POST /v1/leaks/github, GitHub's
secret scanning partner endpoint, POST /v1/leaks/report for other scanners, and
`latchkey keys check-format`.

GitHub's own documented sample request (body, key identifier, signature, and the
public key GitHub serves under that identifier) must verify exactly as sent and
be refused once one byte of the body changes. Reports signed with a key pair the
test makes (openssl) revoke the keys they name in any workspace; the token never
reaches the database, the audit log or the server's log.
"""

import base64
import hashlib
import hmac
import json
import subprocess
import time

import pytest
import requests

from conftest import SHARED_CONFIG, LatchkeyServer, _finish, _live_servers, free_port, run_cli
from lkhelpers import HTTP_TIMEOUT, assert_error, describe, expect_status, flip_char, make_secret

GITHUB = "/v1/leaks/github"
REPORT = "/v1/leaks/report"

# GitHub's "Sample HTTP POST sent to verify endpoint" (docs.github.com, "Secret
# scanning partner program", "Implement signature verification"), byte for byte,
# and the public key https://api.github.com/meta/public_keys/secret_scanning
# serves under that identifier.
SAMPLE_BODY = (b'[{"source":"commit","token":"some_token","type":"some_type",'
               b'"url":"https://example.com/base-repo-url/"}]')
SAMPLE_KEY_ID = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c"
SAMPLE_SIGNATURE = ("MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/"
                    "AO1RtBY66YcAdjxji410VQV4xg==")
SAMPLE_PUBLIC_KEY = ("-----BEGIN PUBLIC KEY-----\n"
                     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\n"
                     "AjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n"
                     "-----END PUBLIC KEY-----\n")

OUR_KEY_ID = "latchkey-test-key-1"
REPORT_SECRET = "a-shared-secret-of-at-least-32-bytes-0123456789"


def sha256_hex(s):
    return hashlib.sha256(s.encode() if isinstance(s, str) else s).hexdigest()


class Signer:
    """A P-256 key pair made with openssl, signing as GitHub does."""

    def __init__(self, d, name="k", curve="prime256v1"):
        self.priv = d / f"{name}.pem"
        self.pub = d / f"{name}.pub.pem"
        subprocess.run(["openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out",
                        str(self.priv)], check=True, capture_output=True)
        subprocess.run(["openssl", "ec", "-in", str(self.priv), "-pubout", "-out", str(self.pub)],
                       check=True, capture_output=True)
        self.pem = self.pub.read_text()

    def sign(self, body):
        r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.priv)], input=body,
                           check=True, capture_output=True)
        return base64.b64encode(r.stdout).decode()


def keys_doc(*keys):
    """GitHub's public_keys document: keys are (identifier, PEM, is_current)."""
    return json.dumps({"public_keys": [{"key_identifier": i, "key": k, "is_current": c}
                                       for i, k, c in keys]})


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    d = tmp_path_factory.mktemp("leaks")
    signer = Signer(d)
    keys = d / "github-keys.json"
    keys.write_text(keys_doc((SAMPLE_KEY_ID, SAMPLE_PUBLIC_KEY, True),
                             (OUR_KEY_ID, signer.pem, False)))
    secret = d / "report.secret"
    secret.write_text(REPORT_SECRET + "\n")
    srv = LatchkeyServer(d / "srv", config={**SHARED_CONFIG,
                                            "leaks_github_keys_file": str(keys),
                                            "leaks_report_secret_file": str(secret)})
    _live_servers.append(srv)
    srv.start()
    srv.signer, srv.keys_file, srv.tmp = signer, keys, d
    yield srv
    _finish(srv)


def post_github(srv, body, key_id=OUR_KEY_ID, signature=None, headers=None):
    if isinstance(body, (list, dict)):
        body = json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    if key_id is not None:
        h["Github-Public-Key-Identifier"] = key_id
    if signature is None:
        signature = srv.signer.sign(body)
    if signature is not False:
        h["Github-Public-Key-Signature"] = signature
    h.update(headers or {})
    return requests.post(srv.url(GITHUB), data=body, headers=h, timeout=HTTP_TIMEOUT)


def post_report(srv, body, secret=REPORT_SECRET, ts=None):
    if isinstance(body, (list, dict)):
        body = json.dumps(body).encode()
    ts = str(int(time.time())) if ts is None else ts
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    h = {"Content-Type": "application/json", "X-Latchkey-Timestamp": ts,
         "X-Latchkey-Signature": f"sha256={mac}"}
    return requests.post(srv.url(REPORT), data=body, headers=h, timeout=HTTP_TIMEOUT)


def match(token, url="https://github.com/octocat/Hello-World/blob/1234/config.env",
          source="content", type_="latchkey_api_key"):
    return {"token": token, "type": type_, "url": url, "source": source}


def code_of(srv, secret):
    r = srv.verify({"key": secret})
    return expect_status(r, 200)["code"]


def audit(srv, ws, action="key.leaked"):
    r = srv.get("/v1/audit", key=ws.root_key, params={"action": action})
    return expect_status(r, 200)["data"]


# --- GitHub's documented sample --------------------------------------------------------------


def test_githubs_sample_request_verifies_as_sent(leaky):
    r = post_github(leaky, SAMPLE_BODY, key_id=SAMPLE_KEY_ID, signature=SAMPLE_SIGNATURE)
    assert expect_status(r, 200) == [{"token_hash": sha256_hex("some_token"),
                                      "token_type": "some_type", "label": "false_positive"}]


@pytest.mark.parametrize("index", [0, 30, len(SAMPLE_BODY) - 1])
def test_githubs_sample_body_changed_by_one_byte_is_refused(leaky, index):
    body = bytearray(SAMPLE_BODY)
    body[index] ^= 0x01
    r = post_github(leaky, bytes(body), key_id=SAMPLE_KEY_ID, signature=SAMPLE_SIGNATURE)
    err = assert_error(r, 401, "invalid_signature")
    assert "does not match" in err["message"]


def test_githubs_sample_with_whitespace_reformatted_is_refused(leaky):
    # The same JSON, pretty-printed: not the bytes GitHub signed.
    body = json.dumps(json.loads(SAMPLE_BODY), indent=1).encode()
    r = post_github(leaky, body, key_id=SAMPLE_KEY_ID, signature=SAMPLE_SIGNATURE)
    assert_error(r, 401, "invalid_signature")


@pytest.mark.parametrize("key_id,signature,says", [
    (None, False, "no key identifier"),
    (SAMPLE_KEY_ID, False, "no signature"),
    ("f" * 64, SAMPLE_SIGNATURE, "no public key of this identifier"),
    (SAMPLE_KEY_ID, "not*base64!", "not base64"),
    (SAMPLE_KEY_ID, "QUJD", "does not match"),  # base64, not DER
    (SAMPLE_KEY_ID, "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7A==", "does not match"),
    (SAMPLE_KEY_ID, "A" * 300, "too long"),
])
def test_unsigned_unknown_or_bad_signatures_are_refused(leaky, key_id, signature, says):
    r = post_github(leaky, SAMPLE_BODY, key_id=key_id, signature=signature)
    err = assert_error(r, 401, "invalid_signature")
    assert says in err["message"], describe(r)


def test_a_report_signed_by_a_key_of_the_file_for_another_body_is_refused(leaky, ws_in):
    ws = ws_in(leaky)
    key = ws.create_key()["secret"]
    # A genuine signature, of GitHub's sample body, sent with a body naming our key.
    r = post_github(leaky, [match(key)], key_id=SAMPLE_KEY_ID, signature=SAMPLE_SIGNATURE)
    assert_error(r, 401, "invalid_signature")
    assert code_of(leaky, key) == "valid"


# --- revoking --------------------------------------------------------------------------------


@pytest.fixture
def ws_in():
    return lambda srv: srv.create_workspace()


def test_a_leaked_key_is_refused_on_the_next_check(leaky, ws_in):
    ws = ws_in(leaky)
    k = ws.create_key(name="ci")
    secret = k["secret"]
    assert code_of(leaky, secret) == "valid"
    url = "https://github.com/octocat/Hello-World/blob/12345600b9/foo/bar.txt"
    r = post_github(leaky, [match(secret, url=url, source="commit")])
    assert expect_status(r, 200) == [{"token_hash": sha256_hex(secret),
                                      "token_type": "latchkey_api_key",
                                      "label": "true_positive"}]
    # The revoke reached the cache before the answer: no wait, no retry.
    assert code_of(leaky, secret) == "revoked_key"
    assert ws.get_key(k["id"])["status"] == "revoked"
    events = audit(leaky, ws)
    assert len(events) == 1, events
    ev = events[0]
    assert ev["target"] == k["id"] and ev["actor"] == "scanner:github"
    assert ev["detail"]["url"] == url and ev["detail"]["source"] == "commit"
    assert ev["detail"]["scanner"] == "github" and ev["detail"]["type"] == "latchkey_api_key"
    assert ev["detail"]["hint"] == k["hint"]
    revokes = audit(leaky, ws, "key.revoke")
    assert [e["actor"] for e in revokes] == ["scanner:github"]
    assert secret not in json.dumps(events + revokes)


def test_keys_of_two_workspaces_in_one_report_both_revoke(leaky, ws_in):
    a, b = ws_in(leaky), ws_in(leaky)
    ka, kb = a.create_key()["secret"], b.create_key(environment="test")["secret"]
    stranger = make_secret()          # well-formed, checksum right, issued by no one
    junk = "ghp_notalatchkeysecret"   # not our format at all
    body = [match(ka), match(stranger), match(kb, url=""), match(junk, type_="other")]
    r = post_github(leaky, body)
    labels = [(x["token_hash"], x["token_type"], x["label"]) for x in expect_status(r, 200)]
    assert labels == [(sha256_hex(ka), "latchkey_api_key", "true_positive"),
                      (sha256_hex(stranger), "latchkey_api_key", "false_positive"),
                      (sha256_hex(kb), "latchkey_api_key", "true_positive"),
                      (sha256_hex(junk), "other", "false_positive")]
    assert code_of(leaky, ka) == "revoked_key" and code_of(leaky, kb) == "revoked_key"
    # Each workspace's own log names its own key, and only it.
    assert len(audit(leaky, a)) == 1 and len(audit(leaky, b)) == 1
    assert audit(leaky, b)[0]["detail"]["url"] == ""


def test_replaying_a_report_changes_nothing_more(leaky, ws_in):
    ws = ws_in(leaky)
    k = ws.create_key()
    body = json.dumps([match(k["secret"]), match(k["secret"])]).encode()
    sig = leaky.signer.sign(body)
    first = expect_status(post_github(leaky, body, signature=sig), 200)
    again = expect_status(post_github(leaky, body, signature=sig), 200)
    assert first == again and [x["label"] for x in first] == ["true_positive"] * 2
    assert len(audit(leaky, ws)) == 1
    assert len(audit(leaky, ws, "key.revoke")) == 1
    assert code_of(leaky, k["secret"]) == "revoked_key"


def test_a_leaked_root_key_is_revoked_and_an_application_key_regenerated(leaky, ws_in):
    ws = ws_in(leaky)
    r = post_github(leaky, [match(ws.rw_key), match(ws.ro_key)])
    assert [x["label"] for x in expect_status(r, 200)] == ["true_positive"] * 2
    # An application key cannot be revoked: it got a new secret nobody has seen,
    # so the leaked one is refused at once; an owner regenerates it to use it again.
    assert code_of(leaky, ws.rw_key) == "revoked_key"
    assert code_of(leaky, ws.ro_key) == "revoked_key"
    assert expect_status(leaky.get("/v1/keys", key=ws.root_key), 200)
    assert len(audit(leaky, ws)) == 2
    # The root key too: found in public, it is as good as anyone's.
    root = ws.root_key
    expect_status(post_github(leaky, [match(root)]), 200)
    assert code_of(leaky, root) == "revoked_key"
    assert_error(leaky.get("/v1/keys", key=root), 401, "revoked_key")


def test_a_url_holding_the_token_is_not_stored(leaky, ws_in):
    ws = ws_in(leaky)
    k = ws.create_key()
    url = f"https://example.com/leak?key={k['secret']}"
    expect_status(post_github(leaky, [match(k["secret"], url=url, source=k["secret"])]), 200)
    ev = audit(leaky, ws)[0]
    assert k["secret"] not in json.dumps(ev)
    assert "withheld" in ev["detail"]["url"] and "withheld" in ev["detail"]["source"]


def test_a_url_too_long_for_the_event_is_cut_at_a_whole_character(leaky, ws_in):
    ws = ws_in(leaky)
    k1, k2 = ws.create_key(), ws.create_key()
    # 2048 bytes that JSON writes six times as long, then a UTF-8 URL kept whole.
    ctrl = "\u0001" * 2048
    utf8 = "https://example.com/" + "é" * 1000  # 2020 bytes
    expect_status(post_github(leaky, [match(k1["secret"], url=ctrl),
                                      match(k2["secret"], url=utf8)]), 200)
    by_key = {e["target"]: e["detail"]["url"] for e in audit(leaky, ws)}
    cut = by_key[k1["id"]]
    assert cut.endswith("...") and 0 < len(cut) - 3 < 2048 and set(cut[:-3]) == {"\u0001"}
    assert by_key[k2["id"]] == utf8


def test_the_token_is_in_no_log_audit_or_database(leaky, ws_in):
    ws = ws_in(leaky)
    k = ws.create_key()
    secret = k["secret"]
    expect_status(post_github(leaky, [match(secret)]), 200)
    expect_status(post_report(leaky, [match(secret)]), 200)
    assert code_of(leaky, secret) == "revoked_key"
    raw = leaky.database_bytes()  # the SQLite files, or a dump of PostgreSQL
    assert k["id"].encode() in raw and b"key.leaked" in raw
    assert secret.encode() not in raw
    assert secret not in json.dumps(audit(leaky, ws, "key."))
    assert secret not in leaky.stderr_text()
    assert k["id"] in leaky.stderr_text()  # the log names the key, by its id


# --- the generic signed report ---------------------------------------------------------------


def test_a_signed_generic_report_revokes(leaky, ws_in):
    ws = ws_in(leaky)
    k = ws.create_key()
    r = post_report(leaky, [{"token": k["secret"], "url": "https://pastebin.example/x"}])
    assert expect_status(r, 200) == [{"token_hash": sha256_hex(k["secret"]), "token_type": "",
                                      "label": "true_positive"}]
    assert code_of(leaky, k["secret"]) == "revoked_key"
    ev = audit(leaky, ws)[0]
    assert ev["actor"] == "scanner:report" and ev["detail"]["scanner"] == "report"
    assert ev["detail"]["url"] == "https://pastebin.example/x"


@pytest.mark.parametrize("how,says", [
    ("secret", "does not match"),
    ("old", "from this server's clock"),
    ("future", "from this server's clock"),
    ("ts", "not Unix seconds"),
])
def test_a_generic_report_signed_wrong_or_late_is_refused(leaky, ws_in, how, says):
    ws = ws_in(leaky)
    key = ws.create_key()["secret"]
    body = [match(key)]
    now = int(time.time())
    kw = {"secret": {"secret": "x" * 40}, "old": {"ts": str(now - 3600)},
          "future": {"ts": str(now + 3600)}, "ts": {"ts": "12a"}}[how]
    err = assert_error(post_report(leaky, body, **kw), 401, "invalid_signature")
    assert says in err["message"]
    assert code_of(leaky, key) == "valid"


def test_a_generic_report_with_its_body_changed_is_refused(leaky, ws_in):
    ws = ws_in(leaky)
    key = ws.create_key()["secret"]
    body = json.dumps([match(key)]).encode()
    ts = str(int(time.time()))
    mac = hmac.new(REPORT_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    r = requests.post(leaky.url(REPORT), data=body + b" ", timeout=HTTP_TIMEOUT,
                      headers={"X-Latchkey-Timestamp": ts, "X-Latchkey-Signature": "sha256=" + mac})
    assert_error(r, 401, "invalid_signature")
    r = requests.post(leaky.url(REPORT), data=body, timeout=HTTP_TIMEOUT,
                      headers={"X-Latchkey-Timestamp": ts})
    assert_error(r, 401, "invalid_signature")
    assert code_of(leaky, key) == "valid"


def test_without_configuration_reports_are_not_taken(server, ws):
    key = ws.create_key()["secret"]
    body = json.dumps([match(key)]).encode()
    r = requests.post(server.url(GITHUB), data=body, timeout=HTTP_TIMEOUT,
                      headers={"Github-Public-Key-Identifier": SAMPLE_KEY_ID,
                               "Github-Public-Key-Signature": SAMPLE_SIGNATURE})
    assert "leaks_github_keys_file" in assert_error(r, 401, "invalid_signature")["message"]
    r = requests.post(server.url(REPORT), data=body, timeout=HTTP_TIMEOUT)
    assert "leaks_report_secret_file" in assert_error(r, 401, "invalid_signature")["message"]
    assert code_of(server, key) == "valid"


# --- hostile input ---------------------------------------------------------------------------


def test_forged_reports_from_one_address_are_slowed(tmp_path):
    # failed_key_limit bounds forgeries per address too (its own count): past it
    # the address gets 429 with Retry-After, even with a right signature, until
    # the window ends; the checks' own count of unknown keys is not touched.
    signer = Signer(tmp_path)
    keys = tmp_path / "keys.json"
    keys.write_text(keys_doc((OUR_KEY_ID, signer.pem, True)))
    srv = LatchkeyServer(tmp_path / "srv", config={"failed_key_limit": "3/60",
                                                    "leaks_github_keys_file": str(keys)})
    _live_servers.append(srv)
    srv.start()
    srv.signer = signer
    try:
        key = srv.create_workspace().create_key()["secret"]
        for _ in range(3):
            assert_error(post_github(srv, [match(key)], signature=SAMPLE_SIGNATURE), 401,
                         "invalid_signature")
        r = post_github(srv, [match(key)])  # a good signature, from the blocked address
        assert_error(r, 429, "too_many_requests")
        assert 0 < int(r.headers["Retry-After"]) <= 60
        assert code_of(srv, key) == "valid"  # not blocked for checks
    finally:
        _finish(srv)


def test_hostile_reports_get_4xx_and_revoke_nothing(leaky, ws_in):
    ws = ws_in(leaky)
    key = ws.create_key()["secret"]
    huge = json.dumps([match(key)] * 2000).encode()  # > 64 KiB
    assert len(huge) > 64 * 1024
    assert_error(post_github(leaky, huge), 413, "payload_too_large")
    ten_k = json.dumps([{"token": "x"}] * 10000).encode()
    assert_error(post_github(leaky, ten_k), 413, "payload_too_large")
    many = json.dumps([{"token": "x"}] * 1001).encode()
    assert "more than 1000" in assert_error(post_github(leaky, many), 400,
                                            "invalid_request")["message"]
    assert_error(post_github(leaky, b"not json at all " + key.encode()), 400, "bad_json")
    for body, field in [(b"{}", "body"), (b"[]", "body"), (b"[1]", "body"),
                        (b'[{"type":"x"}]', "token"), (b'[{"token":""}]', "token"),
                        (b'[{"token":7}]', "token"), (b'[{"token":"x","url":7}]', "url"),
                        (json.dumps([{"token": "x", "url": "h" * 2049}]).encode(), "url"),
                        (json.dumps([{"token": "x" * 1025}]).encode(), "token"),
                        (b'[{"token":"\\u0000"}]', None)]:
        r = post_github(leaky, body)
        assert r.status_code == 400, describe(r)
        err = assert_error(r, 400, r.json()["error"]["code"])
        if field:
            assert err.get("field") == field, describe(r)
    # Invalid UTF-8 in a signed body: refused as JSON, the message quoting nothing.
    r = post_github(leaky, b'[{"token":"\xff\xfe' + key.encode() + b'"}]')
    err = assert_error(r, 400, "bad_json")
    assert key not in r.text
    assert code_of(leaky, key) == "valid"
    assert leaky.proc.poll() is None


# --- the keys file: reload, refusal ----------------------------------------------------------


def test_reload_takes_a_new_keys_file_and_a_bad_one_keeps_the_old(leaky, ws_in):
    ws = ws_in(leaky)
    new = Signer(leaky.tmp, "rotated")
    k1, k2 = ws.create_key()["secret"], ws.create_key()["secret"]
    original = leaky.keys_file.read_text()
    try:
        assert_error(post_github(leaky, [match(k1)], key_id="rotated",
                                 signature=new.sign(json.dumps([match(k1)]).encode())),
                     401, "invalid_signature")
        leaky.keys_file.write_text(keys_doc((SAMPLE_KEY_ID, SAMPLE_PUBLIC_KEY, False),
                                            ("rotated", new.pem, True)))
        leaky.hup("GitHub public keys reloaded")
        body = json.dumps([match(k1)]).encode()
        expect_status(post_github(leaky, body, key_id="rotated", signature=new.sign(body)), 200)
        assert code_of(leaky, k1) == "revoked_key"
        # Our first key left the file: its signatures no longer count.
        assert_error(post_github(leaky, [match(k2)]), 401, "invalid_signature")

        # A file with a key of the wrong curve, then one that is not JSON: each is
        # logged and the keys in force stay.
        p384 = Signer(leaky.tmp, "p384", curve="secp384r1")
        for text, why in [(keys_doc(("rotated", p384.pem, True)), "not on the P-256 curve"),
                          ("{not json", "not JSON"),
                          (keys_doc(("rotated", "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                     "-----END PUBLIC KEY-----\n", True)), "not a PEM")]:
            leaky.keys_file.write_text(text)
            leaky.hup("GitHub public keys not reloaded")
            assert why in leaky.stderr_tail(), leaky.stderr_tail()
        body = json.dumps([match(k2)]).encode()
        expect_status(post_github(leaky, body, key_id="rotated", signature=new.sign(body)), 200)
        assert code_of(leaky, k2) == "revoked_key"
    finally:
        leaky.keys_file.write_text(original)
        leaky.hup("GitHub public keys reloaded")


@pytest.mark.parametrize("text,why", [
    (None, "cannot open"),
    ("[]", "want an object"),
    ('{"public_keys": []}', "want 1 to 32 keys"),
    ("p384", "not on the P-256 curve"),
    ("rsa", "not an EC key"),
    ('{"public_keys": [{"key_identifier": "a b", "key": "x"}]}', "printable ASCII"),
])
def test_a_bad_keys_file_stops_the_start(tmp_path, text, why):
    keys = tmp_path / "keys.json"
    if text == "p384":
        text = keys_doc(("k", Signer(tmp_path, "p", curve="secp384r1").pem, True))
    elif text == "rsa":
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:1024", "-out", str(tmp_path / "rsa.pem")],
                       check=True, capture_output=True)
        pem = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "rsa.pem"), "-pubout"],
                             check=True, capture_output=True, text=True).stdout
        text = keys_doc(("k", pem, True))
    if text is not None:
        keys.write_text(text)
    assert why in refused_start(tmp_path, f"leaks_github_keys_file = {keys}\n")


def refused_start(tmp_path, config):
    """Starts `serve` with config, which must refuse; returns its stderr."""
    srv = LatchkeyServer(tmp_path / "srv", init=False)
    conf = tmp_path / "bad.conf"
    conf.write_text(config)
    res = run_cli(["serve", "--db", srv.db_url, "--listen", f"127.0.0.1:{free_port()}",
                   "--config", str(conf), "--state-dir", str(tmp_path / "state")], timeout=30)
    assert res.returncode != 0, res.stdout
    return res.stderr


def test_a_short_report_secret_stops_the_start(tmp_path):
    secret = tmp_path / "s"
    secret.write_text("tinypw1\n")
    err = refused_start(tmp_path, f"leaks_report_secret_file = {secret}\n")
    assert "32 to 1024 bytes" in err and "tinypw1" not in err, err


# --- keys check-format -----------------------------------------------------------------------


def test_check_format_says_whether_a_secret_is_well_formed(server, ws):
    k = ws.create_key(environment="test")
    secret = k["secret"]
    res = run_cli(["keys", "check-format", secret])
    assert res.returncode == 0, res.stderr
    assert "well-formed" in res.stdout and "test" in res.stdout and secret not in res.stdout
    res = run_cli(["keys", "check-format", "-"], input=secret + "\n")
    assert res.returncode == 0 and "valid checksum" in res.stdout, res.stderr
    for bad, why in [(flip_char(secret, 20), "checksum does not match"),
                     (secret[:-1], "wrong length"),
                     ("Lk" + secret[2:], "prefix"),
                     (secret.replace("_test_", "_prod_"), "_live_ or _test_"),
                     (secret[:-6] + "!!!!!!", "base62"),
                     ("", "empty")]:
        res = run_cli(["keys", "check-format", "-"], input=bad)
        assert res.returncode == 1, (bad, res.stdout, res.stderr)
        assert "not a latchkey secret" in res.stderr and why in res.stderr, res.stderr
        assert bad == "" or bad not in res.stderr
    hexkey = "0" * 64
    res = run_cli(["keys", "check-format", hexkey])
    assert res.returncode == 0 and "legacy" in res.stdout
    assert run_cli(["keys", "check-format"]).returncode == 2
    assert run_cli(["keys", "check-format", "-"], input="x" * 5000).returncode == 1


# --- webhooks (docs/webhooks.md) --------------------------------------------------------------


@pytest.fixture
def hooked(tmp_path):
    """A server taking GitHub reports signed by our key, with webhooks on, and a
    receiver for them."""
    from test_webhooks import Receiver, hook_config
    signer = Signer(tmp_path)
    keys = tmp_path / "github-keys.json"
    keys.write_text(keys_doc((OUR_KEY_ID, signer.pem, True)))
    srv = LatchkeyServer(tmp_path / "srv", config={**hook_config(tmp_path),
                                                   "leaks_github_keys_file": str(keys)})
    _live_servers.append(srv)
    srv.start()
    srv.signer = signer
    receiver = Receiver()
    yield srv, receiver
    receiver.stop()
    _finish(srv)


def test_a_leak_sends_key_revoked_then_key_leaked_naming_the_url(hooked):
    from test_webhooks import verify_signature
    srv, receiver = hooked
    ws = srv.create_workspace()
    ep = expect_status(srv.post("/v1/webhooks", key=ws.root_key, json={
        "url": receiver.url, "events": ["key.revoked", "key.leaked"]}), 201)
    k = ws.create_key(name="ci")
    url = "https://github.com/octocat/Hello-World/blob/abc/.env"
    expect_status(post_github(srv, [match(k["secret"], url=url)]), 200)
    leaked = receiver.wait_for("key.leaked")[0]
    revoked = receiver.wait_for("key.revoked")[0]
    assert leaked["data"]["key_id"] == revoked["data"]["key_id"] == k["id"]
    assert leaked["data"]["source"] == url and leaked["data"]["hint"] == k["hint"]
    with receiver.lock:
        got = list(receiver.got)
    for g in got:
        assert verify_signature(ep["secret"], g["headers"], g["body"])
        assert k["secret"].encode() not in g["body"]
    # a replayed report ends nothing more and sends nothing more
    expect_status(post_github(srv, [match(k["secret"], url=url)]), 200)
    time.sleep(1.5)
    assert len(receiver.events("key.leaked")) == 1 and len(receiver.events("key.revoked")) == 1


def test_another_keys_secret_is_withheld_everywhere_and_a_long_url_still_sends(hooked):
    from urllib.parse import quote
    srv, receiver = hooked
    ws = srv.create_workspace()
    expect_status(srv.post("/v1/webhooks", key=ws.root_key, json={
        "url": receiver.url, "events": ["key.leaked"]}), 201)
    other = ws.create_key()["secret"]  # a live key nobody reported
    hexsecret = "ab" * 32                # the legacy form's shape
    # The other key's secret as it is, percent-encoded (one character, or
    # all of them twice over), cut short, or the legacy shape: each field
    # holding one is withheld.
    pct1 = other[:10] + "%" + other[10].encode().hex() + other[11:]
    twice = quote(quote(other, safe=""), safe="").replace("_", "%255F")
    shapes = [other, pct1, twice, other[:-5], "ws_LIVE_" + other.split("_live_")[1][:20],
              other.split("_live_")[1], hexsecret]
    victims = [ws.create_key() for _ in shapes]
    body = [{"token": v["secret"], "url": "https://x/" + s, "type": s,
             "source": s if len(s) <= 64 else other}
            for v, s in zip(victims, shapes)]
    r = post_github(srv, body)
    answer = expect_status(r, 200)
    assert [a["label"] for a in answer] == ["true_positive"] * len(shapes)
    assert [a["token_type"] for a in answer] == ["(withheld: holds a secret)"] * len(shapes)
    events = audit(srv, ws)
    assert len(events) == len(shapes)
    for ev in events:
        assert ev["detail"]["url"] == ev["detail"]["type"] == ev["detail"]["source"] \
            == "(withheld: holds a secret)"
    sent = receiver.wait_for("key.leaked", n=len(shapes))
    assert {e["data"]["source"] for e in sent} == {"(withheld: holds a secret)"}
    for blob in (r.text, json.dumps(events), json.dumps(sent)):
        for s in shapes:
            assert s not in blob and other[5:25] not in blob
    assert code_of(srv, other) == "valid"
    # What is not a secret stays: a Git object name in a GitHub URL.
    plain = ws.create_key()
    url = "https://github.com/o/r/blob/" + "0123456789abcdef" * 2 + "01234567/.env"
    assert expect_status(post_github(srv, [match(plain["secret"], url=url)]), 200)[0][
        "token_type"] == "latchkey_api_key"
    # A URL JSON makes six times as long is cut for the webhook event, which
    # is sent (it was dropped, too large), and the cut is at a whole character.
    long1, long2 = ws.create_key(), ws.create_key()
    expect_status(post_github(srv, [match(long1["secret"], url="\u0001" * 2048),
                                    match(long2["secret"], url="é" * 1024)]), 200)
    sent = {e["data"]["key_id"]: e["data"]["source"]
            for e in receiver.wait_for("key.leaked", n=len(shapes) + 3)}
    assert sent[plain["id"]] == url
    c1, c2 = sent[long1["id"]], sent[long2["id"]]
    assert c1.endswith("...") and set(c1[:-3]) == {"\u0001"} and len(c1) > 100
    assert c2.endswith("...") and set(c2[:-3]) == {"é"} and len(c2) > 100
    assert "could not be built" not in srv.stderr_text()
