#!/usr/bin/env python3
"""Revocation propagation delay between two latchkey nodes on one database
(bench/cluster.sh; bench/README.md "Reading cluster.sh").

Creates COUNT keys through node A, waits until node B verifies the last of them
(the change log is applied in order, so B then knows them all), then for each
key: revokes it through A (DELETE /v1/keys/{id}) and asks B (POST /v1/verify,
one keep-alive connection, no pause) until B answers `revoked_key`. Prints one
line of figures:

    propagation n=1000 sent_p50_ms=.. sent_p99_ms=.. sent_max_ms=.. ack_p50_ms=.. ack_p99_ms=..

`sent_*` counts from the moment the revoke was sent to A (an upper bound: it
includes A's own commit); `ack_*` from the moment A answered 204 (B may have
applied it by then: 0 is possible). Exit status 1, with a message, when a node
fails or B still accepts a key `--timeout` seconds after its revoke.
"""

import argparse
import sys
import time

import requests

HTTP_TIMEOUT = 10


def die(msg):
    print(f"propagation: error: {msg}", file=sys.stderr)
    sys.exit(1)


def percentile(sorted_ms, p):
    """Nearest rank: the smallest value with at least p% of values at or below it."""
    if not sorted_ms:
        return float("nan")
    k = max(0, min(len(sorted_ms) - 1, -(-len(sorted_ms) * p // 100) - 1))
    return sorted_ms[int(k)]


def verify_code(sess, base, secret):
    r = sess.post(base + "/v1/verify", json={"key": secret}, timeout=HTTP_TIMEOUT)
    if r.status_code != 200:
        die(f"node B answered POST /v1/verify with HTTP {r.status_code}: {r.text[:300]}")
    return r.json().get("code")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="node A's base URL (revokes go here)")
    ap.add_argument("--b", required=True, help="node B's base URL (verifies go here)")
    ap.add_argument("--root-key-file", required=True,
                    help="a file holding a root key of a workspace on both nodes' database")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds B may take to refuse one revoked key")
    args = ap.parse_args()
    if args.count < 1:
        die("--count must be at least 1")
    with open(args.root_key_file) as f:
        root = f.read().strip()
    auth = {"Authorization": f"Bearer {root}"}
    a, b = requests.Session(), requests.Session()

    keys = []
    for i in range(args.count):
        r = a.post(args.a + "/v1/keys", headers=auth, json={"name": f"propagation-{i}"},
                   timeout=HTTP_TIMEOUT)
        if r.status_code != 201:
            die(f"node A answered POST /v1/keys with HTTP {r.status_code}: {r.text[:300]}")
        doc = r.json()
        keys.append((doc["id"], doc["secret"]))
    deadline = time.monotonic() + 30
    while verify_code(b, args.b, keys[-1][1]) != "valid":
        if time.monotonic() > deadline:
            die("node B does not know the keys node A created, 30 s later")
        time.sleep(0.01)

    sent_ms, ack_ms = [], []
    for key_id, secret in keys:
        t_sent = time.perf_counter()
        r = a.delete(f"{args.a}/v1/keys/{key_id}", headers=auth, timeout=HTTP_TIMEOUT)
        t_ack = time.perf_counter()
        if r.status_code != 204:
            die(f"node A answered DELETE /v1/keys/{key_id} with HTTP {r.status_code}: "
                f"{r.text[:300]}")
        while True:
            code = verify_code(b, args.b, secret)
            now = time.perf_counter()
            if code == "revoked_key":
                break
            if code != "valid":
                die(f"node B answered {code!r} for a key being revoked")
            if now - t_ack > args.timeout:
                die(f"node B still accepts key {key_id} {args.timeout:g} s after its revoke")
        sent_ms.append((now - t_sent) * 1000)
        ack_ms.append((now - t_ack) * 1000)
    sent_ms.sort()
    ack_ms.sort()
    print(f"propagation n={len(sent_ms)} sent_p50_ms={percentile(sent_ms, 50):.2f} "
          f"sent_p99_ms={percentile(sent_ms, 99):.2f} sent_max_ms={sent_ms[-1]:.2f} "
          f"ack_p50_ms={percentile(ack_ms, 50):.2f} ack_p99_ms={percentile(ack_ms, 99):.2f}")


if __name__ == "__main__":
    try:
        main()
    except requests.RequestException as e:
        die(f"a node did not answer: {e}")
