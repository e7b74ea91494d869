"""`latchkey serve --config FILE`: settings from the file, flags over the file,
and a bad file refused with the line it is on."""

import subprocess
import time

import requests

from conftest import BIN, clean_env, free_port


def _wait_health(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited early"
        try:
            r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if r.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not start")


def _serve(args, tmp_path):
    return subprocess.Popen([BIN, "serve", *args], env=clean_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc):
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out, err


def test_config_file_sets_listen_and_db(tmp_path):
    port = free_port()
    conf = tmp_path / "lk.conf"
    conf.write_text(f"# test\nlisten = 127.0.0.1:{port}\ndb = sqlite:{tmp_path}/from-file.db\n"
                    "threads = 1   # one loop\n")
    proc = _serve(["--config", str(conf)], tmp_path)
    try:
        _wait_health(port, proc)
    finally:
        out, _ = _stop(proc)
    assert (tmp_path / "from-file.db").exists()
    assert "root key" in out
    assert not (tmp_path / "latchkey.db").exists()


def test_flags_win_over_config_file(tmp_path):
    port_file, port_flag = free_port(), free_port()
    conf = tmp_path / "lk.conf"
    conf.write_text(f"listen = 127.0.0.1:{port_file}\ndb = sqlite:{tmp_path}/a.db\n")
    proc = _serve(["--config", str(conf), "--listen", f"127.0.0.1:{port_flag}"], tmp_path)
    try:
        _wait_health(port_flag, proc)
        try:
            requests.get(f"http://127.0.0.1:{port_file}/healthz", timeout=1)
            raise AssertionError("the file's port answered although --listen was given")
        except requests.ConnectionError:
            pass
    finally:
        _stop(proc)


def test_bad_config_file_is_refused_with_its_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# fine\nlisten = 127.0.0.1:1\nport = 8080\n")
    r = subprocess.run([BIN, "serve", "--config", str(conf)], env=clean_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "line 3" in r.stderr and "unknown setting" in r.stderr
    assert not (tmp_path / "latchkey.db").exists()


def test_missing_config_file_is_refused(tmp_path):
    r = subprocess.run([BIN, "serve", "--config", str(tmp_path / "nope.conf")],
                       env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "cannot read config file" in r.stderr


def test_bad_trusted_proxies_are_refused(tmp_path):
    for n, text in enumerate(["trusted_proxies = 10.0.0.0/33\n",
                              "trusted_proxies = 127.0.0.1\ntrusted_proxies = proxy.local\n"]):
        conf = tmp_path / f"bad{n}.conf"
        conf.write_text(text)
        r = subprocess.run([BIN, "serve", "--config", str(conf)], env=clean_env(),
                           cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert f"line {n + 1}" in r.stderr and "not an address" in r.stderr, r.stderr
    r = subprocess.run([BIN, "serve", "--trusted-proxies", "127.0.0.1,nope"], env=clean_env(),
                       cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "--trusted-proxies" in r.stderr and '"nope"' in r.stderr, r.stderr
    assert not (tmp_path / "latchkey.db").exists()
