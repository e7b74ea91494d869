"""The command line on its own: every verb's --help names exactly the flags it
takes, the verbs that cover the rest of the API (keys update/disable/enable/docs,
logout, workspaces update, routes check), and errors that say what to set."""

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, REPO, clean_env, run_cli, sanitizer_report
from conftest import cli_as as cli, cli_failed as failed, cli_ok as ok, cli_ok_json as ok_json
from lkhelpers import expect_status, new_email, new_password

UNREACHABLE = "http://127.0.0.1:1"
REFUSED = ("unrecognized option", "does not apply")


# -- --help ----------------------------------------------------------------------------------

def verbs():
    """The verbs of src/cli/main.c's table, by the names their lk_cmd gives them."""
    main = (REPO / "src" / "cli" / "main.c").read_text()
    table = main[main.index("commands[] = {"):]
    table = table[:table.index("};")]
    syms = re.findall(r"&(lk_cmd_\w+)", table)
    src = "".join(p.read_text() for p in sorted((REPO / "src" / "cli").glob("*.c")))
    names = []
    for s in syms:
        m = re.search(r"const struct lk_cmd " + s + r"\s*=\s*\{\s*\"([a-z-]+)\"", src)
        assert m, f"no definition of {s} in src/cli"
        names.append(m.group(1))
    assert len(names) >= 14, names
    return names


def all_long_options():
    """Every long option any getopt table of src/cli declares: name -> takes an argument."""
    src = "".join(p.read_text() for p in sorted((REPO / "src" / "cli").glob("*.c")))
    src += (REPO / "src" / "cli" / "cmd.h").read_text()
    found = dict(re.findall(r'\{\s*"([a-z][a-z0-9-]*)",\s*(no|required|optional)_argument', src))
    assert {"server", "token", "json", "name", "db"} <= set(found), found
    found.pop("help", None)
    return found


def help_of(verb):
    res = run_cli([verb, "--help"])
    assert res.returncode == 0, f"latchkey {verb} --help exit {res.returncode}: {res.stderr!r}"
    assert res.stdout.startswith(f"usage: latchkey {verb}"), res.stdout
    return res.stdout


def subcommands(help_text, verb):
    """The subcommands --help lists (`  create   ...` lines), and None when the verb
    also runs without one (none listed, or the usage shows it in brackets)."""
    body = "\n".join(help_text.splitlines()[2:])  # past the usage and summary lines
    subs = sorted(set(re.findall(r"(?m)^  ([a-z][a-z-]*)\b", body)))
    usage = help_text.splitlines()[0].split()
    if not subs or (len(usage) > 3 and usage[3].startswith("[")):
        subs.append(None)
    return subs


def accepts(verb, sub, opt, has_arg, cwd):
    """True when `latchkey VERB [SUB] --OPT[=x]` gets past option parsing."""
    args = [BIN, verb] + ([sub] if sub else [])
    if verb == "serve":
        args.append("--listen=256.0.0.1:1")  # never really serve
    args.append(f"--{opt}=x" if has_arg != "no" else f"--{opt}")
    res = subprocess.run(args, capture_output=True, text=True, timeout=20, cwd=cwd,
                         env=clean_env(LATCHKEY_URL=UNREACHABLE), stdin=subprocess.DEVNULL)
    assert not sanitizer_report(res.stderr), res.stderr
    return not any(r in res.stderr for r in REFUSED)


def test_every_verb_help_names_exactly_the_flags_it_takes(tmp_path):
    options = all_long_options()
    problems = []
    jobs = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for verb in verbs():
            text = help_of(verb)
            listed = set(re.findall(r"(?m)^\s+--([a-z][a-z0-9-]*)", text)) - {"help"}
            for flag in listed:
                line = next(l for l in text.splitlines() if re.match(rf"\s+--{flag}\b", l))
                assert len(line.split(None, 2)) >= 2, f"{verb} --{flag}: no description"
            for sub in subcommands(text, verb):
                for opt, has_arg in options.items():
                    d = tmp_path / f"{verb}-{sub}-{opt}"
                    d.mkdir()
                    jobs.append((verb, sub, opt, listed,
                                 pool.submit(accepts, verb, sub, opt, has_arg, d)))
        taken = {}
        for verb, sub, opt, listed, fut in jobs:
            taken.setdefault(verb, (listed, set()))
            if fut.result():
                taken[verb][1].add(opt)
    for verb, (listed, took) in taken.items():
        # getopt takes a unique prefix of a long option as that option (--to: --token)
        took = {t for t in took if t in listed or not any(l.startswith(t) for l in listed)}
        if took - listed:
            problems.append(f"{verb} takes {sorted(took - listed)} but --help does not list them")
        if listed - took:
            problems.append(f"{verb} --help lists {sorted(listed - took)} but refuses them")
    assert not problems, "\n".join(problems)


def test_help_anywhere_is_help_not_a_call():
    res = run_cli(["keys", "revoke", "key_x", "--help"],
                  env=clean_env(LATCHKEY_URL=UNREACHABLE))
    assert res.returncode == 0 and "--grace" in res.stdout, res
    top = run_cli(["--help"])
    for verb in verbs():
        assert f"latchkey {verb}" in top.stdout, f"{verb} missing from latchkey --help"


# -- errors that say what to set -------------------------------------------------------------

def test_unreachable_server_names_server_flag_and_variable():
    res = failed(run_cli(["keys", "list"], env=clean_env(LATCHKEY_URL=UNREACHABLE)))
    assert "--server" in res.stderr and "LATCHKEY_URL" in res.stderr, res.stderr


def test_missing_and_refused_token_name_token_flag_and_variable(server):
    res = failed(cli(server, None, "keys", "list"))
    assert "missing_key" in res.stderr
    assert "--token" in res.stderr and "LATCHKEY_TOKEN" in res.stderr, res.stderr
    res = failed(cli(server, "lk_live_nope", "keys", "list"))
    assert "--token" in res.stderr and "LATCHKEY_TOKEN" in res.stderr, res.stderr


def test_retry_after_is_shown(server, ws):
    u = ws.new_user("viewer")
    res = None
    for _ in range(8):
        res = cli(server, None, "login", "--email", u.email, "--password-stdin",
                  input="wrong password\n")
        if "too_many_requests" in res.stderr:
            break
    failed(res)
    assert "too_many_requests" in res.stderr, res.stderr
    m = re.search(r"retry after (\d+) seconds", res.stderr)
    assert m and int(m.group(1)) > 0, res.stderr


def test_flag_that_does_not_apply_is_refused(server, ws):
    res = failed(cli(server, ws.root_key, "audit", "--email", "a@b.c"))
    assert "--email" in res.stderr and "audit" in res.stderr
    res = failed(cli(server, ws.root_key, "keys", "update", "key_x", "--env", "test"))
    assert "--env" in res.stderr


# -- keys update / disable / enable / docs ---------------------------------------------------

def test_keys_update_changes_what_the_flags_say(server, ws):
    k = ws.create_key(permissions=["a:b"])
    doc = ok_json(cli(server, ws.root_key, "keys", "update", k["id"], "--name", "renamed",
                      "--permission", "storage:read", "--permission", "storage:write",
                      "--rate-limit", "5/60", "--daily-spend-cap", "7",
                      "--expires-at", "2099-01-01T00:00:00Z", "--meta", '{"team": "x"}',
                      "--json"))
    got = ws.get_key(k["id"])
    for d in (doc, got):
        assert d["name"] == "renamed"
        assert d["permissions"] == ["storage:read", "storage:write"]
        assert d["rate_limit"] == {"limit": 5, "window_s": 60}
        assert d["daily_spend_cap"] == 7
        assert d["expires_at"] == "2099-01-01T00:00:00Z"
        assert d["meta"] == {"team": "x"}
    ok(cli(server, ws.root_key, "keys", "update", k["id"], "--no-permissions"))
    assert ws.get_key(k["id"])["permissions"] == []
    ok(cli(server, ws.root_key, "keys", "update", k["id"], "--rate-limit", "none",
           "--daily-spend-cap", "none", "--expires-at", "never"))
    got = ws.get_key(k["id"])
    assert got["rate_limit"] is None and got["daily_spend_cap"] is None and got["expires_at"] is None
    failed(cli(server, ws.root_key, "keys", "update", k["id"]))  # nothing to change
    failed(cli(server, ws.root_key, "keys", "update", k["id"], "--no-permissions",
               "--permission", "a:b"))


def test_keys_disable_and_enable(server, ws):
    k = ws.create_key()
    ok(cli(server, ws.root_key, "keys", "disable", k["id"]))
    assert ws.get_key(k["id"])["status"] == "disabled"
    assert expect_status(server.verify({"key": k["secret"]}), 200)["code"] == "inactive_key"
    ok(cli(server, ws.root_key, "keys", "enable", k["id"]))
    assert ws.get_key(k["id"])["status"] == "active"
    assert expect_status(server.verify({"key": k["secret"]}), 200)["code"] == "valid"
    other = server.create_workspace().create_key()
    res = failed(cli(server, ws.root_key, "keys", "disable", other["id"]))
    assert "not_found" in res.stderr
    failed(cli(server, ws.root_key, "keys", "disable", "../x"))


def test_keys_docs_prints_the_key_document(server, ws):
    k = ws.create_key(permissions=["x:y"])
    doc = ok_json(cli(server, ws.root_key, "keys", "docs", k["id"]))
    assert doc["openapi"].startswith("3.1") and doc["x-latchkey-key"]["id"] == k["id"]
    assert doc == expect_status(server.get(f"/v1/keys/{k['id']}/openapi", key=ws.root_key), 200)


# -- logout, workspaces update ---------------------------------------------------------------

def test_logout_ends_the_session(server, ws):
    s = ws.new_session("viewer")
    expect_status(server.get("/v1/me", key=s.token), 200)
    ok(cli(server, s.token, "logout"))
    assert server.get("/v1/me", key=s.token).status_code == 401
    res = failed(cli(server, None, "logout"))
    assert "--token" in res.stderr and "LATCHKEY_TOKEN" in res.stderr


def test_workspaces_update_sets_quotas(server, ws):
    def mine():
        data = expect_status(server.get("/v1/workspaces", key=server.root_key), 200)["data"]
        return next(w for w in data if w["id"] == ws.id)
    ok(cli(server, server.root_key, "workspaces", "update", ws.id, "--quota", "1000",
           "--test-quota", "30"))
    assert (mine()["quota"], mine()["test_quota"]) == (1000, 30)
    out = ok_json(cli(server, server.root_key, "workspaces", "update", ws.id, "--quota", "none",
                      "--json"))
    assert out["quota"] is None and mine()["quota"] is None
    failed(cli(server, server.root_key, "workspaces", "update", ws.id))
    failed(cli(server, server.root_key, "workspaces", "update", ws.id, "--quota", "-3"))
    failed(cli(server, server.root_key, "workspaces", "update", ws.id, "--name", "x"))
    res = failed(cli(server, ws.root_key, "workspaces", "update", ws.id, "--quota", "5"))
    assert "insufficient_permissions" in res.stderr or "not_found" in res.stderr


# -- routes check ----------------------------------------------------------------------------

def test_routes_check_prints_each_rule(tmp_path):
    f = tmp_path / "routes"
    f.write_text("# api\npath_params strip\nGET /health public\n"
                 "POST /v1/*/run workflows:execute AND (billing:pay OR billing:*) cost=5 env=live\n"
                 "* /** any\n")
    res = ok(run_cli(["routes", "check", str(f)]))
    lines = res.stdout.splitlines()
    assert "3 rules" in lines[0] and "strip" in lines[0]
    assert re.search(r"line 3 .*GET .*/health .*public", res.stdout)
    assert re.search(r"line 4 .*POST .*/v1/\*/run .*workflows:execute AND \(billing:pay OR "
                     r"billing:\*\).*costs 5 credits.*live keys only", res.stdout)
    assert re.search(r"line 5 .*ANY .*/\*\* .*any valid key", res.stdout)


def test_routes_check_names_the_bad_line(tmp_path):
    f = tmp_path / "routes"
    f.write_text("GET /a public\n\nGET /b storage:read AND\n")
    res = failed(run_cli(["routes", "check", str(f)]))
    assert f"{f}:3:" in res.stderr, res.stderr
    f.write_text("GET /a public cost=-1\n")
    assert f"{f}:1:" in failed(run_cli(["routes", "check", str(f)])).stderr
    f.write_text("# nothing\n")
    failed(run_cli(["routes", "check", str(f)]))
    failed(run_cli(["routes", "check", str(tmp_path / "missing")]))
    failed(run_cli(["routes", "check"]))
