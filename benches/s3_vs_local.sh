#!/usr/bin/env bash
# Backup and restore throughput against Garage on loopback, as a ratio to a
# local-directory repository, on the same data in one run.
#
#   benches/s3_vs_local.sh [MiB]     (default 1024)
#
# Prints one line per run (wall time, throughput, peak RSS) and the ratios
# (S3 / local, higher is better). Garage runs as scripts/garage.sh sets it
# up (no compression of cairn's ciphertext); CAIRN_GARAGE_COMPRESSION=1
# runs it with Garage's default instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
mib="${1:-1024}"
cargo build --release --locked -p cairn-cli >&2
cairn="$CARGO_TARGET_DIR/release/cairn"

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-s3bench.XXXXXX")"
trap './scripts/garage.sh stop "$work/garage"; rm -rf "$work"' EXIT
./scripts/garage.sh start "$work/garage"
# shellcheck disable=SC1091
source "$work/garage/env"

# Half incompressible, half text-like, in 64 MiB files.
mkdir -p "$work/src"
for i in $(seq 1 $((mib / 128))); do
    head -c $((64 << 20)) /dev/urandom > "$work/src/noise-$i.bin"
    head -c $((64 << 20)) < <(yes "cairn benchmark line $i with some repeated words for zstd") > "$work/src/text-$i.txt"
done
export CAIRN_PASSWORD=bench

# Wall seconds and peak RSS (MiB) of a command, as "SECONDS MIB".
measure() {
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null
    awk '{ printf "%s %.1f", $1, $2 / 1024 }' "$work/time"
}

run() { # name url
    local name="$1" url="$2"
    "$cairn" -r "$url" init -q --kdf-memory 8 --kdf-iterations 1
    local b r
    b=$(measure "$cairn" -r "$url" --no-cache backup -q "$work/src")
    r=$(measure "$cairn" -r "$url" --no-cache restore -q latest --target "$work/out-$name")
    cmp -s "$work/src/noise-1.bin" "$work/out-$name/noise-1.bin" || { echo "$name: restore differs" >&2; exit 1; }
    # Fields: name, backup seconds and MiB, restore seconds and MiB.
    echo "$name $b $r"
}

# CPU seconds the Garage server used, to show what it takes from cairn when
# both share this machine's cores.
garage_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$(cat "$work/garage/pid")/stat"; }

local_line=$(run local "$work/repo")
g0=$(garage_cpu)
s3_line=$(run s3 "${CAIRN_TEST_S3_URL/\?//bench?}")
g1=$(garage_cpu)
for line in "$local_line" "$s3_line"; do
    echo "$line" | awk -v m="$mib" '{printf "%-6s backup %.2f s (%.0f MiB/s, peak RSS %.1f MiB), restore %.2f s (%.0f MiB/s, peak RSS %.1f MiB)\n", $1 ":", $2, m/$2, $3, $4, m/$4, $5}'
done
# Fields: local backup rss restore rss s3 backup rss restore rss.
# Throughput ratio = time ratio inverted.
paste -d' ' <(echo "$local_line") <(echo "$s3_line") |
    awk '{printf "throughput ratio s3/local: backup %.2f, restore %.2f\n", $2/$7, $4/$9}'
echo "garage server CPU during the s3 runs: $(awk -v a="$g0" -v b="$g1" 'BEGIN { printf "%.2f", b - a }') s"
