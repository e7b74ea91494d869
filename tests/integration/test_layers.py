"""scripts/check-layers.sh, which `make test` runs first: it passes on the tree as
it is and fails, naming the file and line, on each kind of include the layer rule
forbids (docs/internals/mgmt.md, "Layers")."""

import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "check-layers.sh"


def check(root):
    return subprocess.run(["sh", str(SCRIPT), str(root)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def tree(tmp_path):
    shutil.copytree(REPO / "src", tmp_path / "src")
    for d in ("tests/unit", "tests/fuzz", "bench"):
        for f in (REPO / d).rglob("*.[ch]"):
            dst = tmp_path / f.relative_to(REPO)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst)
    return tmp_path


def add_include(path, header):
    text = path.read_text()
    first = text.index("#include")
    path.write_text(text[:first] + f'#include "{header}"\n' + text[first:])


def test_the_tree_keeps_its_layers(tree):
    res = check(tree)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("file,header,says", [
    ("src/http/h_keys.c", "store/store.h", "through services only"),
    ("src/http/h_limits.c", "counters/counters.h", "through services only"),
    ("src/cli/cmd_seed.c", "store/store.h", "through services only"),
    ("src/http/mgmt.c", "service/app_int.h", "private to the .c files of src/service/"),
    ("src/service/keys.h", "service/app_int.h", "private to the .c files of src/service/"),
    ("src/service/keys.c", "store/store_int.h", "private to the .c files of src/store/"),
    ("src/service/limits.c", "counters/counters_int.h", "private to the .c files of src/counters/"),
    ("tests/unit/counters/test_charge.c", "counters/counters_int.h",
     "private to the .c files of src/counters/"),
    ("tests/fuzz/fuzz_http.c", "service/app_int.h", "private to the .c files of src/service/"),
    ("bench/bench_verify.c", "service/app_int.h", "private to the .c files of src/service/"),
    ("src/service/limits.h", "counters/counters.h", "keep the counters opaque"),
    ("src/store/store.c", "service/keys.h", "later layer service/"),
    ("src/core/quota.c", "store/store.h", "later layer store/"),
    ("src/service/keys.c", "http/respond.h", "later layer http/"),
])
def test_a_forbidden_include_fails_the_check(tree, file, header, says):
    add_include(tree / file, header)
    res = check(tree)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"{file}:" in res.stderr and header in res.stderr and says in res.stderr, res.stderr


def test_a_transaction_begun_by_hand_fails_the_check(tree):
    path = tree / "src" / "service" / "health.c"
    text = path.read_text()
    path.write_text(text.replace("lk_store_txn(app->store,", "lk_store_begin(app->store); lk_store_txn(app->store,", 1))
    res = check(tree)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "src/service/health.c:" in res.stderr and "use lk_store_txn" in res.stderr, res.stderr
