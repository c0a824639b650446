#!/usr/bin/env python3
"""How well a tree's small files compress alone and together.

    python3 benches/compare/small_files.py DIR [MAX_BYTES]

Takes the distinct regular files of at most MAX_BYTES (default 131072: the
largest blob cairn puts in a bundle) under DIR, in the order a depth-first
walk lists them, and prints what the zstd tool (level 3, one thread) makes
of them: each file alone (as format 1 stores them), and concatenated in
frames of 1, 2 and 4 MiB (as bundles store them), plus 1 MiB at level 5.
docs/PERFORMANCE.md, "Bundles of small files", has its output for the
PVC-like dataset. Needs the `zstd` command.
"""

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

MIB = 1 << 20


def zstd_len(data: bytes, level: int = 3) -> int:
    out = subprocess.run(
        ["zstd", f"-{level}", "-T1", "-c"], input=data, capture_output=True, check=True
    ).stdout
    return min(len(out), len(data))


def walk(top: str):
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path) and os.path.isfile(path):
                yield path


def frames(blobs, size):
    buf = bytearray()
    for b in blobs:
        buf += b
        if len(buf) >= size:
            yield bytes(buf)
            buf = bytearray()
    if buf:
        yield bytes(buf)


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    top, limit = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 131072
    seen, blobs = set(), []
    for path in walk(top):
        if os.path.getsize(path) > limit:
            continue
        with open(path, "rb") as f:
            data = f.read()
        digest = hashlib.blake2b(data).digest()
        if digest not in seen:
            seen.add(digest)
            blobs.append(data)
    total = sum(map(len, blobs))
    print(f"{len(blobs)} distinct files of at most {limit} bytes: {total / 1e6:.1f} MB")
    with ThreadPoolExecutor(2) as pool:
        alone = sum(pool.map(zstd_len, blobs))
        print(f"one by one, level 3: {alone / 1e6:.1f} MB")
        for size, level in ((MIB, 3), (2 * MIB, 3), (4 * MIB, 3), (MIB, 5)):
            n = sum(pool.map(lambda b: zstd_len(b, level), frames(blobs, size)))
            print(
                f"{size // MIB} MiB frames, level {level}: {n / 1e6:.1f} MB"
                f" ({100 * (n - alone) / alone:+.1f}%)"
            )


if __name__ == "__main__":
    main()
