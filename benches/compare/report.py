#!/usr/bin/env python3
"""Turns run.sh's OUT/results.tsv and OUT/meta.tsv into a Markdown table
(printed) and OUT/results.json.

    report.py OUT

Ratios compare cairn with the best peer on each row, always as
cairn / best_peer: below 1 means cairn is faster or uses less.
"""

import json
import os
import sys

PEERS = ["restic", "borg", "bupstash", "rustic"]
PHASES = ["cold", "nochange", "incremental", "restore"]
MIB = 1 << 20


def load(out):
    meta = {}
    with open(os.path.join(out, "meta.tsv")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    tools = {}
    with open(os.path.join(out, "results.tsv")) as f:
        for line in f:
            tool, key, *rest = line.split()
            t = tools.setdefault(tool, {})
            if key in PHASES:
                if rest == ["failed"]:
                    t[key] = None
                else:
                    wall, user, sys_, rss = (float(x) for x in rest)
                    t[key] = {"wall_s": wall, "user_s": user, "sys_s": sys_,
                              "cpu_s": round(user + sys_, 2), "peak_rss_kib": int(rss)}
            elif key == "verified":
                t[key] = rest[0] == "verified"
            else:
                t[key] = int(rest[0])
    return meta, tools


def rows(tools):
    """(label, kind, {tool: value}) with kind "time" or "less"."""

    def phase(p, field, scale=1.0):
        return {n: t[p][field] / scale for n, t in tools.items() if t.get(p)}

    def peak(phases):
        out = {}
        for n, t in tools.items():
            vals = [t[p]["peak_rss_kib"] for p in phases if t.get(p)]
            if vals:
                out[n] = max(vals) / 1024
        return out

    labels = {"cold": "cold backup", "nochange": "no-change backup",
              "incremental": "incremental backup", "restore": "restore"}
    out = []
    for p in PHASES:
        out.append((f"{labels[p]}, wall s", "time", phase(p, "wall_s")))
        out.append((f"{labels[p]}, CPU s", "time", phase(p, "cpu_s")))
    out.append(("restore, wall s, against restic only", "restic", phase("restore", "wall_s")))
    out.append(("peak RSS, backups, MiB", "less", peak(PHASES[:3])))
    out.append(("peak RSS, restore, MiB", "less", peak(PHASES[3:])))
    for key, label in [("repo_bytes_cold", "repository size after the first backup, MiB"),
                       ("repo_bytes_incremental", "repository size after incremental, MiB"),
                       ("state_bytes", "local cache/state, MiB")]:
        out.append((label, "less", {n: t[key] / MIB for n, t in tools.items() if key in t}))
    # What the scattered changes cost: mostly the database pages, re-stored in
    # whole chunks.
    out.append(("repository growth from incremental, MiB", "less",
                {n: (t["repo_bytes_incremental"] - t["repo_bytes_nochange"]) / MIB
                 for n, t in tools.items()
                 if "repo_bytes_incremental" in t and "repo_bytes_nochange" in t}))
    return out


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def main():
    out = sys.argv[1]
    meta, tools = load(out)
    names = ["cairn"] + [p for p in PEERS if p in tools]
    table = []
    for label, kind, vals in rows(tools):
        against = ["restic"] if kind == "restic" else PEERS
        peers = {n: v for n, v in vals.items() if n in against}
        best = min(peers, key=peers.get) if peers else None
        cairn = vals.get("cairn")
        ratio = None
        if best is not None and cairn is not None and peers[best] > 0:
            ratio = cairn / peers[best]
        table.append({"row": label, "kind": kind, "values": vals, "best_peer": best,
                      "best_value": peers.get(best), "cairn_ratio": ratio})

    versions = ", ".join(f"{n} {meta.get('version_' + n, '?')}" for n in names)
    print(f"Dataset: {meta['dataset_files']} files, {int(meta['dataset_bytes']) / MIB:.0f} MiB "
          f"({int(meta['dataset_alloc']) / MIB:.0f} MiB allocated; SCALE={meta['scale']}, "
          f"SEED={meta['seed']}); {meta['host_cpus']} CPUs; page cache dropped before "
          f"each run: {'yes' if meta['drop_caches'] == '1' else 'NO'}.")
    print(f"Versions: {versions}.")
    print(f"Dataset kind: {meta.get('dataset', 'synthetic')}.")
    print("Settings: encryption on for all; cairn zstd 3, restic compression auto "
          "(repository v2), borg repokey-blake2 with lz4 (its default), bupstash "
          "zstd:3 (its default), rustic's defaults (repository v2, zstd 3); "
          "default thread counts.")
    print()
    print("| | " + " | ".join(names) + " | best peer | cairn ratio |")
    print("|---" * (len(names) + 3) + "|")
    for r in table:
        cells = [fmt(r["values"].get(n)) for n in names]
        best = f"{fmt(r['best_value'])} ({r['best_peer']})" if r["best_peer"] else "n/a"
        ratio = fmt(r["cairn_ratio"]) if r["cairn_ratio"] is not None else "n/a"
        print(f"| {r['row']} | " + " | ".join(cells) + f" | {best} | {ratio} |")
    print()
    print("Ratios: cairn / best peer (below 1: cairn faster or smaller).")
    for n in names:
        t = tools.get(n, {})
        ok = t.get("verified")
        img = t.get("restored_image_alloc")
        print(f"- {n}: restore {'verified' if ok else 'NOT verified'}"
              + (f"; restored sparse image occupies {img / MIB:.0f} MiB" if img is not None else ""))

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "tools": tools, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
