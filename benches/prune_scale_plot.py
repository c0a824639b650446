#!/usr/bin/env python3
"""Draws benches/prune_scale.sh's results.tsv as an SVG (no dependencies).

    prune_scale_plot.py results.tsv out.svg

Left: seconds of open, backup and the deleting prune against chunks
(log-log, tiered compaction). Right: index bytes a client downloads again
after that prune, tiered against flat, with the whole index for scale.
"""

import math
import sys

W, H, PAD = 420, 300, 50
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def load(path):
    with open(path) as f:
        head = f.readline().split()
        return [dict(zip(head, line.split())) for line in f if line.strip()]


def panel(x0, title, xs, series, ylabel):
    """One log-log panel at x offset x0; series: [(label, [y...])]."""
    ys = [y for _, vals in series for y in vals if y > 0]
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
    ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    if ly1 == ly0:
        ly1 += 1
    px = lambda x: x0 + PAD + (math.log10(x) - lx0) / max(lx1 - lx0, 1e-9) * (W - 2 * PAD)
    py = lambda y: H - PAD - (math.log10(y) - ly0) / (ly1 - ly0) * (H - 2 * PAD)
    out = [f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-size="13">{title}</text>',
           f'<rect x="{x0 + PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>',
           f'<text x="{x0 + 12}" y="{H / 2}" font-size="11" transform="rotate(-90 {x0 + 12} {H / 2})" text-anchor="middle">{ylabel}</text>',
           f'<text x="{x0 + W / 2}" y="{H - 10}" font-size="11" text-anchor="middle">chunks in the repository</text>']
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{H - PAD + 14}" font-size="9" text-anchor="middle">{x:.0e}</text>')
    for e in range(ly0, ly1 + 1):
        out.append(f'<text x="{x0 + PAD - 4}" y="{py(10 ** e) + 3:.1f}" font-size="9" text-anchor="end">1e{e}</text>')
    for i, (label, vals) in enumerate(series):
        pts = [(px(x), py(y)) for x, y in zip(xs, vals) if y > 0]
        c = COLORS[i % len(COLORS)]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (c, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)))
        out.append(f'<text x="{x0 + PAD + 6}" y="{PAD + 14 + 13 * i}" font-size="10" fill="{c}">{label}</text>')
    return out


def main():
    rows = load(sys.argv[1])
    tiered = [r for r in rows if r["policy"] == "tiered"]
    flat = {r["chunks"]: r for r in rows if r["policy"] == "flat"}
    xs = [int(r["chunks"]) for r in tiered]
    f = lambda rs, k: [float(r[k]) for r in rs]
    left = panel(0, "time (tiered compaction)", xs,
                 [("open (new client)", f(tiered, "open_s")), ("backup of 1,000 chunks", f(tiered, "backup_s")),
                  ("prune that deletes", f(tiered, "prune2_s"))], "seconds")
    right = panel(W, "index bytes downloaded again after a prune", xs,
                  [("tiered", f(tiered, "redownload_bytes")),
                   ("flat (every file rewritten)", [float(flat[r["chunks"]]["redownload_bytes"]) for r in tiered]),
                   ("whole index", f(tiered, "index_bytes"))], "bytes")
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>'] + left + right + ["</svg>"]
    with open(sys.argv[2], "w") as out:
        out.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
