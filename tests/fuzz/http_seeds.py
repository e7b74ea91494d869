#!/usr/bin/env python3
"""Turn requests recorded by the integration tests into seeds for fuzz_http.

    make  # then, from the repository root:
    python3 -m pytest -q tests/integration --record-requests /tmp/lk-requests
    python3 tests/fuzz/http_seeds.py /tmp/lk-requests tests/fuzz/corpus/http

Each recorded request is normalised: its secrets and ids become the placeholders
fuzz_http.c substitutes (the keys and ids of its own database), the Host header
and the headers every python-requests call adds are dropped, and Content-Length
is recomputed for the body as it will be after substitution. Requests of the same
shape (method, path with ids masked, header names, body keys) are kept once, up
to --max seeds in all, so the corpus stays a few hundred files. Seeds that would
crash the target are for the fuzzer to find, not for the corpus: replay the
result with build-fuzz/fuzz_http before committing it (`make fuzz` does).
"""

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

# The length of what each placeholder stands for (fuzz_http.c checks the same).
PLACEHOLDER_LEN = {
    "@ROOT@": 57, "@RW@": 57, "@RO@": 57, "@KEY@": 57, "@TKEY@": 57, "@ROOT2@": 57,
    "@SESSION@": 47, "@KEYID@": 20, "@USERID@": 20, "@WSID@": 19, "@WS2@": 19,
}
SECRET = re.compile(rb"\b[a-z][a-z0-9_]{0,15}_(live|test)_[0-9A-Za-z]{49}\b")
SESSION = re.compile(rb"\blks_[0-9A-Za-z]{43}\b")
IDS = [(re.compile(rb"\bkey_[0-9A-Za-z]{16}\b"), b"@KEYID@"),
       (re.compile(rb"\bws_[0-9A-Za-z]{16}\b"), b"@WSID@"),
       (re.compile(rb"\busr_[0-9A-Za-z]{16}\b"), b"@USERID@")]
DROP = {b"host", b"user-agent", b"accept-encoding", b"accept"}
KEY_PATHS = (b"/v1/verify", b"/v1/forward-auth", b"/v1/auth-context", b"/api/auth-context")


def expanded_len(data):
    n = len(data)
    for name, length in PLACEHOLDER_LEN.items():
        n += data.count(name.encode()) * (length - len(name))
    return n


def normalise(raw):
    """The seed for one recorded request, or None when it cannot be one."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    path = parts[1]
    live = b"@KEY@" if path.startswith(KEY_PATHS) else b"@ROOT@"

    def secrets(data):
        data = SECRET.sub(lambda m: b"@TKEY@" if m.group(1) == b"test" else live, data)
        data = SESSION.sub(b"@SESSION@", data)
        for rx, ph in IDS:
            data = rx.sub(ph, data)
        return data

    headers, chunked, length = [], False, None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname in DROP:
            continue
        if lname == b"transfer-encoding":
            chunked = True
        if lname == b"content-length":
            length = value.strip()
            continue
        headers.append(secrets(line))
    body = secrets(body)
    if chunked:
        if b"@" in body:
            return None  # chunk sizes would no longer match
    elif length is not None:
        headers.append(b"Content-Length: %d" % expanded_len(body))
    start = secrets(lines[0])
    return b"\r\n".join([start, b"Host: 127.0.0.1:8080", *headers]) + b"\r\n\r\n" + body


def shape(seed):
    """What makes two seeds the same for the fuzzer's purposes."""
    head, _, body = seed.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, path = lines[0].split(b" ")[:2]
    path = re.sub(rb"=[^&]*", b"=", path)
    names = sorted(l.partition(b":")[0].lower() for l in lines[1:])
    try:
        doc = json.loads(body) if body else None
        body_shape = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
    except ValueError:
        body_shape = "raw:%d" % min(len(body), 64)
    return (method, path, tuple(names), repr(body_shape))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recorded", type=Path)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--max", type=int, default=400)
    args = ap.parse_args()

    seen, seeds = set(), []
    for f in sorted(args.recorded.iterdir()):
        seed = normalise(f.read_bytes())
        if seed is None or len(seed) > 16384:
            continue
        s = shape(seed)
        if s not in seen:
            seen.add(s)
            seeds.append(seed)
    # Spread the cap over paths, so one busy endpoint does not crowd out the rest.
    seeds.sort(key=lambda s: (s.split(b" ")[1].split(b"?")[0], len(s)))
    if len(seeds) > args.max:
        step = len(seeds) / args.max
        seeds = [seeds[int(i * step)] for i in range(args.max)]
    args.corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (args.corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    print(f"{len(seeds)} seeds from {sum(1 for _ in args.recorded.iterdir())} recorded requests "
          f"({len(seen)} shapes) into {args.corpus}", file=sys.stderr)


if __name__ == "__main__":
    main()
