"""The command line for people: login, members, keys generate-temp, audit."""

import json
import re
import time


from conftest import clean_env, run_cli
from conftest import cli_as as cli, cli_failed as failed, cli_ok as ok, cli_ok_json as ok_json
from lkhelpers import (SECRET_RE, SESSION_TOKEN_RE, expect_status,
                       new_email, new_password, parse_time)

TOKEN_ANYWHERE = re.compile(r"lks_[0-9A-Za-z_-]+")
SECRET_ANYWHERE = re.compile(r"[a-z][a-z0-9_]{0,15}_(?:live|test)_[0-9A-Za-z]{49}")


# -- login ----------------------------------------------------------------------------

def test_login_prints_the_token(server, ws):
    u = ws.new_user("editor")
    res = ok(cli(server, None, "login", "--email", u.email, "--password-stdin",
                 input=u.password + "\n"))
    m = TOKEN_ANYWHERE.search(res.stdout)
    assert m, f"login printed no token: {res.stdout!r}"
    assert u.password not in res.stdout + res.stderr
    me = expect_status(server.get("/v1/me", key=m.group(0)), 200)
    assert me["user"]["email"] == u.email


def test_login_json(server, ws):
    u = ws.new_user("viewer")
    doc = ok_json(cli(server, None, "login", "--email", u.email, "--password-stdin", "--json",
                      input=u.password))
    assert SESSION_TOKEN_RE.match(doc["token"]), doc
    assert u.password not in json.dumps(doc)
    expect_status(server.get("/v1/me", key=doc["token"]), 200)


def test_login_with_server_flag(server, ws):
    u = ws.new_user("viewer")
    res = run_cli(["login", "--server", server.base_url, "--email", u.email,
                   "--password-stdin", "--json"], env=clean_env(), input=u.password + "\n")
    doc = ok_json(res)
    expect_status(server.get("/v1/me", key=doc["token"]), 200)


def test_login_wrong_password_fails(server, ws):
    u = ws.new_user("viewer")
    wrong = new_password()
    res = cli(server, None, "login", "--email", u.email, "--password-stdin", input=wrong + "\n")
    failed(res)
    assert not TOKEN_ANYWHERE.search(res.stdout), res.stdout
    assert wrong not in res.stdout + res.stderr
    assert "invalid_credentials" in res.stderr or "credential" in res.stderr.lower() or \
        "password" in res.stderr.lower(), res.stderr


def test_login_needs_email(server):
    failed(cli(server, None, "login", "--password-stdin", input="whatever-pw\n"))


def test_password_is_not_an_argument(server, ws):
    """The password comes from stdin; a --password flag is not offered."""
    u = ws.new_user("viewer")
    res = cli(server, None, "login", "--email", u.email, "--password", u.password)
    failed(res)
    assert u.password not in res.stdout


# -- members --------------------------------------------------------------------------------

INVITE_ANYWHERE = re.compile(r"lki_[0-9A-Za-z]{43}")


def test_members_add_invites_and_accept_joins(server, ws):
    email, pw = new_email("cli"), new_password()
    res = ok(cli(server, ws.root_key, "members", "add", "--email", email, "--role", "editor"))
    tokens = INVITE_ANYWHERE.findall(res.stdout)
    assert len(tokens) == 1, f"the invitation token is printed once: {res.stdout!r}"
    token = tokens[0]
    assert email not in {m["email"] for m in ws.list_members()["data"]}, "joined uninvited"
    pending = ok_json(cli(server, ws.root_key, "members", "invitations", "--json"))["data"]
    assert email in {i["email"] for i in pending} and token not in str(pending)

    # token on the command line, password from stdin
    res = ok(cli(server, None, "accept", token, "--password-stdin", input=pw + "\n"))
    assert pw not in res.stdout + res.stderr and email in res.stdout
    listed = {m["email"]: m for m in ws.list_members()["data"]}
    assert listed[email]["role"] == "editor"
    # the password read from stdin (newline stripped) is the password
    s = server.session(email, pw)
    assert s.doc["memberships"] == [{"workspace_id": ws.id, "role": "editor"}]

    doc = ok_json(cli(server, ws.root_key, "members", "list", "--json"))
    mine = [m for m in doc["data"] if m["email"] == email]
    assert len(mine) == 1 and mine[0]["role"] == "editor"
    uid = mine[0]["user_id"]

    res = ok(cli(server, ws.root_key, "members", "list"))
    assert email in res.stdout and uid in res.stdout
    assert not res.stdout.lstrip().startswith("{"), "human output is JSON"

    ok(cli(server, ws.root_key, "members", "role", uid, "--role", "viewer"))
    assert {m["email"]: m["role"] for m in ws.list_members()["data"]}[email] == "viewer"

    ok(cli(server, ws.root_key, "members", "remove", uid))
    assert email not in {m["email"] for m in ws.list_members()["data"]}


def test_accept_reads_token_and_password_from_stdin(server, ws):
    email, pw = new_email("cli-stdin"), new_password()
    inv = ok_json(cli(server, ws.root_key, "members", "add", "--email", email, "--role",
                      "viewer", "--json"))
    doc = ok_json(cli(server, None, "accept", "--password-stdin", "--json",
                      input=inv["token"] + "\n" + pw + "\n"))
    assert doc["email"] == email and doc["workspace_id"] == ws.id
    expect_status(server.login(email, pw), 200)
    # a second time: used up
    failed(cli(server, None, "accept", "--password-stdin",
               input=inv["token"] + "\n" + pw + "\n"))


def test_members_add_takes_no_password(server, ws):
    email = new_email("cli-pw")
    failed(cli(server, ws.root_key, "members", "add", "--email", email, "--role", "viewer",
               "--password-stdin", input=new_password() + "\n"))
    pending = ok_json(cli(server, ws.root_key, "members", "invitations", "--json"))["data"]
    assert email not in {i["email"] for i in pending}


def test_members_uninvite(server, ws):
    email = new_email("cli-uninvite")
    inv = ok_json(cli(server, ws.root_key, "members", "add", "--email", email, "--role",
                      "viewer", "--json"))
    ok(cli(server, ws.root_key, "members", "uninvite", inv["id"]))
    failed(cli(server, None, "accept", inv["token"], "--password-stdin",
               input=new_password() + "\n"))
    assert email not in {m["email"] for m in ws.list_members()["data"]}


def test_members_by_owner_session(server, ws):
    owner = ws.new_session("owner")
    email = new_email("cli-by-owner")
    res = ok(cli(server, owner.token, "members", "add", "--email", email, "--role", "viewer"))
    assert len(INVITE_ANYWHERE.findall(res.stdout)) == 1


def test_members_add_refused_to_editor(server, ws):
    ed = ws.new_session("editor")
    email = new_email("cli-nope")
    res = cli(server, ed.token, "members", "add", "--email", email, "--role", "viewer")
    failed(res)
    assert "insufficient_permissions" in res.stderr or "permission" in res.stderr.lower()
    assert not INVITE_ANYWHERE.search(res.stdout)


def test_accept_short_password_fails(server, ws):
    email = new_email("cli-short")
    inv = ws.invite(email, "viewer")
    failed(cli(server, None, "accept", inv["token"], "--password-stdin", input="short\n"))
    assert email not in {m["email"] for m in ws.list_members()["data"]}


def test_members_remove_last_owner_fails(server, ws):
    owner = ws.new_user("owner")
    failed(cli(server, ws.root_key, "members", "remove", owner.id))
    roles = {m["user_id"]: m["role"] for m in ws.list_members()["data"]}
    assert roles.get(owner.id) == "owner"


def test_members_remove_unknown_fails(server, ws):
    failed(cli(server, ws.root_key, "members", "remove", "usr_doesnotexist000"))


# -- keys generate-temp -------------------------------------------------------------------

def test_generate_temp_by_workspace_json(server, ws):
    s = ws.new_session("editor")
    t0 = time.time()
    doc = ok_json(cli(server, s.token, "keys", "generate-temp", "--workspace", ws.id,
                      "--json"))
    assert SECRET_RE.match(doc["key"]) and doc["workspace_id"] == ws.id, doc
    assert abs(parse_time(doc["expires_at"]) - (t0 + 3600)) < 5, doc
    ctx = expect_status(server.auth_context(doc["key"]), 200)
    assert ctx["kind"] == "temporary" and ctx["key_id"] == doc["id"]


def test_generate_temp_by_storage_folder(server, ws):
    s = ws.new_session("owner")
    t0 = time.time()
    doc = ok_json(cli(server, s.token, "keys", "generate-temp", "--storage-folder",
                      str(ws.number), "--expires-in", "600", "--json"))
    assert doc["workspace_id"] == ws.id
    assert abs(parse_time(doc["expires_at"]) - (t0 + 600)) < 5, doc


def test_generate_temp_human_prints_the_key(server, ws):
    s = ws.new_session("owner")
    res = ok(cli(server, s.token, "keys", "generate-temp", "--workspace", ws.id))
    m = SECRET_ANYWHERE.search(res.stdout)
    assert m, f"no key printed: {res.stdout!r}"
    assert expect_status(server.auth_context(m.group(0)), 200)["kind"] == "temporary"


def test_generate_temp_too_long_fails(server, ws):
    s = ws.new_session("owner")
    before = len(ws.list_keys(limit=100)["data"])
    res = cli(server, s.token, "keys", "generate-temp", "--workspace", ws.id,
              "--expires-in", "86401", "--json")
    failed(res)
    assert "expires_in" in res.stderr or "86400" in res.stderr, res.stderr
    assert len(ws.list_keys(limit=100)["data"]) == before


def test_generate_temp_refused_to_viewer_and_keys(server, ws):
    v = ws.new_session("viewer")
    for token in (v.token, ws.root_key):
        res = cli(server, token, "keys", "generate-temp", "--workspace", ws.id, "--json")
        failed(res)
        assert not SECRET_ANYWHERE.search(res.stdout), res.stdout


def test_generate_temp_other_workspace_fails(server, ws, ws2):
    s = ws.new_session("owner")
    failed(cli(server, s.token, "keys", "generate-temp", "--workspace", ws2.id, "--json"))
    failed(cli(server, s.token, "keys", "generate-temp", "--storage-folder", str(ws2.number),
               "--json"))


def test_generate_temp_without_token_fails(server, ws):
    failed(cli(server, None, "keys", "generate-temp", "--workspace", ws.id))


# -- audit ---------------------------------------------------------------------------------

def test_audit_json_and_limit(server, ws):
    for i in range(3):
        ws.create_key(name=f"cli-audit-{i}")
    doc = ok_json(cli(server, ws.root_key, "audit", "--json"))
    assert isinstance(doc.get("data"), list) and len(doc["data"]) >= 3, doc
    assert doc["data"][0]["action"] == "key.create"
    doc2 = ok_json(cli(server, ws.root_key, "audit", "--limit", "2", "--json"))
    assert len(doc2["data"]) == 2
    assert [e["id"] for e in doc2["data"]] == [e["id"] for e in doc["data"][:2]]


def test_audit_human(server, ws):
    k = ws.create_key(name="cli-audit-h")
    res = ok(cli(server, ws.root_key, "audit"))
    assert "key.create" in res.stdout and k["id"] in res.stdout, res.stdout
    assert not res.stdout.lstrip().startswith("{"), "human output is JSON"
    assert k["secret"] not in res.stdout


def test_audit_with_session_token(server, ws):
    s = ws.new_session("viewer")
    doc = ok_json(cli(server, s.token, "audit", "--json"))
    assert any(e["action"] == "auth.login" for e in doc["data"]), doc


def test_audit_bad_limit_fails(server, ws):
    failed(cli(server, ws.root_key, "audit", "--limit", "0"))
    failed(cli(server, ws.root_key, "audit", "--limit", "abc"))


def test_audit_refused_to_ordinary_key(server, ws):
    k = ws.create_key()
    failed(cli(server, k["secret"], "audit", "--json"))


# -- keys create --sha256 (import) ----------------------------------------------------------

def test_keys_create_sha256_imports(server, ws):
    import hashlib

    from lkhelpers import make_secret

    s = make_secret()
    digest = hashlib.sha256(s.encode()).hexdigest()
    doc = ok_json(cli(server, ws.root_key, "keys", "create", "--name", "migrated", "--sha256",
                      digest, "--json"))
    assert "secret" not in doc and doc["hint"] == "imported", doc
    v = expect_status(server.verify({"key": s}), 200)
    assert v["valid"] is True and v["key_id"] == doc["id"], v
    res = cli(server, ws.root_key, "keys", "create", "--name", "again", "--sha256", digest)
    failed(res)
    failed(cli(server, ws.root_key, "keys", "create", "--name", "bad", "--sha256", "abc"))
