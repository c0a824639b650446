#!/usr/bin/env bash
# How open, backup and prune times grow from 1 k to 10 M chunks, and how
# many index bytes a client downloads again after a prune, with tiered
# compaction and without (benches/prune_scale.rs):
#
#   benches/prune_scale.sh [MAX_CHUNKS]        default 1000000; 10000000 takes ~20 min
#
# Prints a table (TSV) and writes it with an SVG plot to $OUT (default
# /var/tmp/cairn-prune-scale-results): results.tsv, scale.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
max="${1:-1000000}"
OUT="${OUT:-/var/tmp/cairn-prune-scale-results}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
cargo build --release --locked -p cairn-benches --bin prune-scale >&2
bin="$CARGO_TARGET_DIR/release/prune-scale"
mkdir -p "$OUT"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-prune-scale.XXXXXX")"
trap 'rm -rf "$work"' EXIT
: > "$OUT/results.tsv"
n=1000
while [ "$n" -le "$max" ]; do
    for policy in tiered flat; do
        rm -rf "$work/run"
        out=$("$bin" "$work/run" "$n" "$policy")
        [ -s "$OUT/results.tsv" ] || echo "$out" | head -n 1 > "$OUT/results.tsv"
        echo "$out" | tail -n 1 | tee -a "$OUT/results.tsv" >&2
    done
    n=$((n * 10))
done
python3 benches/prune_scale_plot.py "$OUT/results.tsv" "$OUT/scale.svg"
column -t "$OUT/results.tsv"
