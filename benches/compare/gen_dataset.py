#!/usr/bin/env python3
"""Deterministic dataset for benches/compare/run.sh.

    gen_dataset.py generate DIR   write the dataset into DIR (must not exist)
    gen_dataset.py mutate DIR     apply the changes the incremental backup sees

Environment: SCALE (default 1.0) multiplies every count and size, so
SCALE=0.05 makes a smoke-test dataset in seconds; SEED (default 1).

At SCALE=1 the dataset is:
  tree/      ~40,000 text-like files, log-normal sizes (median 4 KiB), nested
             three levels deep, 5% exact duplicates of other files
  blobs/     400 MiB of incompressible data in four files
  disk.img   1 GiB sparse image holding ~96 MiB in 1-4 MiB extents
  db.dat     256 MiB of 8 KiB database-like pages

`mutate` rewrites 1% of the database pages in place, edits 300 small files,
touches 100 more without changing them, adds 50 and deletes 20.
"""

import math
import os
import random
import struct
import sys
import time

MIB = 1 << 20
PAGE = 8192


def scaled(n, scale, least=1):
    return max(least, round(n * scale))


class Text:
    """Text-like bytes: lines of words drawn from a Zipf-weighted vocabulary,
    which compress roughly 3:1 with zstd or lz4 like source code and logs."""

    def __init__(self, rng, size=16 * MIB):
        syllables = [a + b for a in "bcdfghklmnprstvwz" for b in "aeiou"]
        vocab = set()
        while len(vocab) < 8000:
            vocab.add("".join(rng.choices(syllables, k=rng.randint(1, 4))))
        vocab = sorted(vocab)
        rng.shuffle(vocab)
        weights = [1 / (i + 1) for i in range(len(vocab))]
        seps = [" "] * 12 + [", ", ". ", " = ", "(", ") ", "; ", ": "]
        out, n = [], 0
        while n < size:
            words = rng.choices(vocab, weights, k=4096)
            glue = rng.choices(seps, k=4096)
            line = []
            for w, g in zip(words, glue):
                line.append(w)
                line.append(g)
                if rng.random() < 0.08:
                    line.append(str(rng.randrange(100000)))
                    line.append("\n" + " " * (4 * rng.randrange(4)))
            chunk = "".join(line).encode()
            out.append(chunk)
            n += len(chunk)
        self.corpus = b"".join(out)[:size]

    def take(self, rng, n):
        """n bytes of text from a random place in the corpus."""
        out = []
        while n > 0:
            k = min(n, len(self.corpus) // 2)
            at = rng.randrange(len(self.corpus) - k + 1)
            out.append(self.corpus[at : at + k])
            n -= k
        return b"".join(out)


def noise(rng, n):
    """n incompressible bytes, generated in 1 MiB pieces (randbytes limit)."""
    return b"".join(rng.randbytes(min(MIB, n - i)) for i in range(0, n, MIB))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def small_size(rng):
    # Log-normal around 4 KiB: most files 1-16 KiB, a tail to a few hundred.
    return int(min(MIB, max(32, rng.lognormvariate(math.log(4096), 0.9))))


def gen_tree(root, rng, text, scale):
    count = scaled(40000, scale, 50)
    # 20 top-level directories of 20 subdirectories, files in both levels
    # and in a third level below some of them.
    dirs = []
    for a in range(20):
        for b in range(20):
            dirs.append(f"tree/pkg{a:02}/mod{b:02}")
            if b % 3 == 0:
                dirs.append(f"tree/pkg{a:02}/mod{b:02}/sub")
        dirs.append(f"tree/pkg{a:02}")
    written = []
    for i in range(count):
        path = os.path.join(root, rng.choice(dirs), f"f{i:05}.{rng.choice(['txt', 'log', 'rs', 'c', 'md'])}")
        if written and rng.random() < 0.05:
            with open(rng.choice(written), "rb") as f:
                data = f.read()
        else:
            header = f"// {os.path.relpath(path, root)} seed {i}\n".encode()
            data = header + text.take(rng, small_size(rng))
        write(path, data)
        written.append(path)


def gen_blobs(root, rng, scale):
    for i, mib in enumerate([160, 120, 80, 40]):
        write(os.path.join(root, f"blobs/blob{i}.bin"), noise(rng, scaled(mib * MIB, scale)))


def gen_image(root, rng, text, scale):
    size = scaled(1024 * MIB, scale, 16 * MIB)
    want = scaled(96 * MIB, scale)
    align = 64 << 10
    extents = []
    have = 0
    while have < want:
        length = min(rng.randint(MIB // align, 4 * MIB // align) * align, size // 4)
        at = rng.randrange(0, (size - length) // align + 1) * align
        if any(at < e + n and e < at + length for e, n in extents):
            continue
        extents.append((at, length))
        have += length
    with open(os.path.join(root, "disk.img"), "wb") as f:
        f.truncate(size)
        for at, length in sorted(extents):
            f.seek(at)
            # Filesystem-like: some extents hold compressed media, some text.
            f.write(noise(rng, length) if rng.random() < 0.6 else text.take(rng, length))


def page(rng, text, number, lsn):
    """An 8 KiB page: header, rows of text-like records, free space zeroed."""
    fill = rng.randint(PAGE * 6 // 10, PAGE * 95 // 100)
    header = struct.pack("<IQIHH", number, lsn, rng.getrandbits(32), fill, 1)
    body = text.take(rng, fill - len(header))
    return header + body + bytes(PAGE - fill)


def gen_db(root, rng, text, scale):
    pages = scaled(256 * MIB, scale) // PAGE
    with open(os.path.join(root, "db.dat"), "wb") as f:
        for n in range(pages):
            f.write(page(rng, text, n, 1))


def files_under(root):
    out = []
    for d, subdirs, names in os.walk(root):
        subdirs.sort()
        out.extend(os.path.join(d, n) for n in sorted(names))
    return out


def mutate(root, rng, text, scale):
    db = os.path.join(root, "db.dat")
    pages = os.path.getsize(db) // PAGE
    with open(db, "r+b") as f:
        for n in sorted(rng.sample(range(pages), scaled(pages / 100, 1))):
            f.seek(n * PAGE)
            f.write(page(rng, text, n, 2))
    small = files_under(os.path.join(root, "tree"))
    picked = rng.sample(small, scaled(300, scale, 4) + scaled(100, scale) + scaled(20, scale))
    edit = picked[: scaled(300, scale, 4)]
    touch = picked[len(edit) : len(edit) + scaled(100, scale)]
    delete = picked[len(edit) + len(touch) :]
    for i, path in enumerate(edit):
        with open(path, "rb") as f:
            data = f.read()
        if i % 2:
            data += text.take(rng, rng.randint(40, 400))
        else:
            at = rng.randrange(len(data) + 1)
            data = data[:at] + text.take(rng, rng.randint(40, 400)) + data[at + 100 :]
        write(path, data)
    now = time.time()
    for path in touch:
        os.utime(path, (now, now))
    for path in delete:
        os.remove(path)
    for i in range(scaled(50, scale)):
        write(os.path.join(root, f"tree/pkg{i % 20:02}/new{i:03}.txt"), text.take(rng, small_size(rng)))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "mutate"):
        sys.exit(__doc__)
    cmd, root = sys.argv[1], sys.argv[2]
    scale = float(os.environ.get("SCALE", "1"))
    seed = int(os.environ.get("SEED", "1"))
    text = Text(random.Random(seed))
    if cmd == "generate":
        os.makedirs(root)
        # One generator per part, so changing one part's size leaves the
        # others byte-identical.
        gen_tree(root, random.Random(seed * 10 + 1), text, scale)
        gen_blobs(root, random.Random(seed * 10 + 2), scale)
        gen_image(root, random.Random(seed * 10 + 3), text, scale)
        gen_db(root, random.Random(seed * 10 + 4), text, scale)
    else:
        mutate(root, random.Random(seed * 10 + 5), text, scale)


if __name__ == "__main__":
    main()
