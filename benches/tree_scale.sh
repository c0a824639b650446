#!/usr/bin/env bash
# Every CLI step's time and peak RSS on a tree of many directories: DIRS
# directories (default a million) in two levels, each holding one small
# file of its own, backed up, backed up again unchanged and with a few
# changes, restored (and compared), pruned and checked, each step a
# process of its own as users run them.
#
#   benches/tree_scale.sh [DIRS]
#
# Prints one line per step: what, seconds, peak RSS (MiB), and the peak
# the step reports itself in its JSON (`peak_rss_bytes`) where it has one.
set -euo pipefail
cd "$(dirname "$0")/.."
dirs="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
# CAIRN_BIN: a cairn binary to measure instead of building one.
if [ -z "${CAIRN_BIN:-}" ]; then
    cargo build --release --locked -p cairn-cli --bin cairn >&2
fi
cairn="${CAIRN_BIN:-$CARGO_TARGET_DIR/release/cairn}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-tree-scale.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench HOME="$work/home" CAIRN_REPOSITORY="$work/repo"
mkdir -p "$HOME"

start=$(date +%s)
python3 - "$work/src" "$dirs" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04}", f"e{i % 1000:03}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f"), "w") as f:
        f.write(f"directory {i}, a file of its own\n")
EOF
echo "made $dirs directories in $(($(date +%s) - start)) s" >&2

measure() { # what, command...
    local what=$1
    shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out"
    read -r secs kib <"$work/time"
    local own
    own=$(python3 -c 'import json,sys
try:
    print("%.1f" % (json.load(open(sys.argv[1]))["peak_rss_bytes"] / 1048576))
except Exception:
    print("-")' "$work/out")
    printf '%-36s %8.2f s %8.1f MiB %8s MiB\n' "$what" "$secs" \
        "$(echo "$kib / 1024" | bc -l)" "$own"
}

printf '%-36s %10s %12s %12s\n' step wall "peak RSS" "its JSON"
"$cairn" init >/dev/null
measure "backup" "$cairn" backup "$work/src" --quiet --json
measure "backup, unchanged" "$cairn" backup "$work/src" --quiet --json
# A thousand files changed, in a thousand directories.
for i in $(seq 0 999); do
    echo "changed" >>"$work/src/d$(printf %04d $((i * dirs / 1000 / 1000)))/e$(printf %03d $((i % 1000)))/f"
done
measure "backup, 1,000 files changed" "$cairn" backup "$work/src" --quiet --json
measure "restore" "$cairn" restore latest --target "$work/restore" --json
if ! diff -rq "$work/src" "$work/restore/" >/dev/null; then
    echo "the restore differs from the source" >&2
    exit 1
fi
rm -rf "$work/restore"
measure "forget --keep-last 1" "$cairn" forget --keep-last 1 --json
measure "prune" "$cairn" prune --json
measure "check" "$cairn" check --json
