#!/usr/bin/env bash
# Backup memory against a repository whose index holds ENTRIES blobs
# (default ten million), compared with an empty repository: the index is a
# memory-mapped table on disk, so peak RSS should differ by a few MiB.
#
#   benches/index_scale.sh [ENTRIES] [DATA_MIB]
#
# Prints one line per run: what, seconds, peak RSS (MiB). The synthetic
# index entries point at packs that do not exist (benches/gen_index.rs):
# such a repository is only fit for this measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
entries="${1:-10000000}"
data_mib="${2:-256}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
cargo build --release --locked -p cairn-cli -p cairn-benches --bin cairn --bin gen-index >&2
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-index-scale.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench HOME="$work/home"
# The merged table takes 96 bytes per entry: ten million need more than the
# default limit of 1 GiB.
export CAIRN_INDEX_TABLE_LIMIT="${CAIRN_INDEX_TABLE_LIMIT:-4096}"
mkdir -p "$HOME" "$work/src"
# Incompressible data in 8 MiB files, so the backup looks up every chunk.
for i in $(seq 1 $((data_mib / 8))); do
    head -c $((8 << 20)) /dev/urandom >"$work/src/f$i"
done

measure() { # what, command...
    local what=$1
    shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    read -r secs kib <"$work/time"
    printf '%-44s %8.2f s %8.1f MiB\n' "$what" "$secs" "$(echo "$kib / 1024" | bc -l)"
}

"$bin/cairn" -r "$work/empty" init >/dev/null
"$bin/cairn" -r "$work/big" init >/dev/null
start=$(date +%s)
"$bin/gen-index" "$work/big" "$entries" >&2
echo "generated $entries index entries in $(($(date +%s) - start)) s" \
    "($(du -sm "$work/big/index" | cut -f1) MiB of index files)" >&2

measure "backup, empty repository" "$bin/cairn" -r "$work/empty" backup "$work/src" --quiet
measure "backup, $entries entries (builds the table)" "$bin/cairn" -r "$work/big" backup "$work/src" --quiet
echo "table: $(du -sm "$HOME/.cache/cairn/repos"/*/index | cut -f1) MiB on disk" >&2
# New data again, now with the table in place.
for i in $(seq 1 $((data_mib / 8))); do
    head -c $((8 << 20)) /dev/urandom >"$work/src/f$i"
done
measure "backup again, empty-ish repository" "$bin/cairn" -r "$work/empty" backup "$work/src" --quiet
measure "backup again, $entries entries (table built)" "$bin/cairn" -r "$work/big" backup "$work/src" --quiet
