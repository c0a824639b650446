#!/usr/bin/env python3
"""A PVC-like dataset for benches/compare/run.sh, built from real parts.

    gen_pvc.py generate DIR   write the dataset into DIR (must not exist)
    gen_pvc.py mutate DIR     the changes the incremental backup sees

Environment: SCALE (default 1.0) multiplies every count and size; SEED
(default 1) picks which files are edited. Needs Debian's postgresql (initdb,
pg_ctl, pgbench) and runs the server as the `postgres` user on a Unix socket
only (no TCP listener), started and stopped within each command.

At SCALE=1 the dataset is:
  pgdata/    a PostgreSQL 15 cluster after `pgbench -i -s 60` (~1 GiB in
             1 GiB relation segments and 16 MiB WAL segments), cleanly shut
             down so that every tool reads the same bytes
  files/     up to 45,000 real small files copied from the system: C headers,
             manual pages (gzip), documentation, Python and Perl sources,
             message catalogues, time zones
  blobs/     340 MiB of incompressible data in three files
  disk.img   1 GiB sparse image holding ~96 MiB in 1-4 MiB extents

`mutate` runs `pgbench -t 2000` (two clients, TPC-B-like), then edits 300
small files, touches 100 more, adds 50 and deletes 20.
"""

import os
import random
import shutil
import subprocess
import sys
import time

import gen_dataset as synthetic

MIB = 1 << 20
SOURCES = [
    "/usr/include",
    "/usr/share/man",
    "/usr/share/doc",
    "/usr/lib/python3.11",
    "/usr/share/perl",
    "/usr/share/locale",
    "/usr/share/zoneinfo",
    "/usr/share/i18n",
]
PG_BIN = "/usr/lib/postgresql/15/bin"


def as_postgres(*cmd):
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, stdout=subprocess.DEVNULL)


class Server:
    """The cluster in DIR/pgdata, running for the `with` block's duration."""

    def __init__(self, root):
        self.data = os.path.join(root, "pgdata")
        # The socket and the server's log live beside the dataset, not in it.
        self.sock = os.path.abspath(root) + ".pgsock"

    def __enter__(self):
        os.makedirs(self.sock, exist_ok=True)
        shutil.chown(self.sock, "postgres", "postgres")
        opts = f"-c listen_addresses='' -k {self.sock} -c max_wal_size=2GB"
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-o", opts, "-w", "-l", os.path.join(self.sock, "log"), "start")
        return self

    def pgbench(self, *args):
        as_postgres(f"{PG_BIN}/pgbench", "-h", self.sock, "-q" if args[0] == "-i" else "-n", *args, "postgres")

    def __exit__(self, *exc):
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.sock, ignore_errors=True)


def gen_pg(root, scale):
    data = os.path.join(root, "pgdata")
    os.makedirs(data)
    shutil.chown(data, "postgres", "postgres")
    as_postgres(f"{PG_BIN}/initdb", "-D", data, "--no-sync", "-A", "trust", "-U", "postgres")
    with Server(root) as pg:
        pg.pgbench("-i", "-s", str(synthetic.scaled(60, scale)))


def system_files():
    out = []
    for top in SOURCES:
        for d, subdirs, names in os.walk(top):
            subdirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) <= MIB:
                    out.append(p)
    return out


def gen_files(root, rng, scale):
    found = system_files()
    want = min(len(found), synthetic.scaled(45000, scale, 50))
    for src in sorted(rng.sample(found, want)):
        dst = os.path.join(root, "files", src.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def gen_blobs(root, rng, scale):
    for i, mib in enumerate([180, 100, 60]):
        synthetic.write(os.path.join(root, f"blobs/blob{i}.bin"), synthetic.noise(rng, synthetic.scaled(mib * MIB, scale)))


def mutate_files(root, rng, text, scale):
    small = synthetic.files_under(os.path.join(root, "files"))
    n_edit, n_touch, n_delete = synthetic.scaled(300, scale, 4), synthetic.scaled(100, scale), synthetic.scaled(20, scale)
    picked = rng.sample(small, n_edit + n_touch + n_delete)
    for i, path in enumerate(picked[:n_edit]):
        with open(path, "rb") as f:
            data = f.read()
        at = len(data) if i % 2 else rng.randrange(len(data) + 1)
        synthetic.write(path, data[:at] + text.take(rng, rng.randint(40, 400)) + data[at + (0 if i % 2 else 100) :])
    now = time.time()
    for path in picked[n_edit : n_edit + n_touch]:
        os.utime(path, (now, now))
    for path in picked[n_edit + n_touch :]:
        os.remove(path)
    for i in range(synthetic.scaled(50, scale)):
        synthetic.write(os.path.join(root, f"files/new/n{i:03}.txt"), text.take(rng, synthetic.small_size(rng)))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "mutate"):
        sys.exit(__doc__)
    cmd, root = sys.argv[1], sys.argv[2]
    scale = float(os.environ.get("SCALE", "1"))
    seed = int(os.environ.get("SEED", "1"))
    text = synthetic.Text(random.Random(seed))
    if cmd == "generate":
        os.makedirs(root)
        gen_pg(root, scale)
        gen_files(root, random.Random(seed * 10 + 1), scale)
        gen_blobs(root, random.Random(seed * 10 + 2), scale)
        synthetic.gen_image(root, random.Random(seed * 10 + 3), text, scale)
    else:
        with Server(root) as pg:
            pg.pgbench("-t", str(synthetic.scaled(2000, scale)), "-c", "2", "-j", "2")
        mutate_files(root, random.Random(seed * 10 + 5), text, scale)


if __name__ == "__main__":
    main()
