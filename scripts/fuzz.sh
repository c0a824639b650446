#!/usr/bin/env bash
# Builds every cargo-fuzz target of cairn-core's decoders, and optionally runs
# each for a while.
#
#   scripts/fuzz.sh               build all targets (what CI does)
#   scripts/fuzz.sh run SECONDS   build, then run each target for SECONDS
#
# cargo-fuzz needs nightly-only rustc flags (sanitizers, coverage passes);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Builds go to
# $CARGO_TARGET_DIR (default ~/.cache/cairn/fuzz-target), so they are cached
# across clean checkouts. New corpus entries go to fuzz/corpus/<target>
# (gitignored); fuzz/seeds/<target> is read as well. A crash leaves its input
# in fuzz/artifacts/<target>/ and makes this script fail.
set -euo pipefail

usage() {
    echo "usage: $0 [run SECONDS]" >&2
    exit 2
}

seconds=""
case "$#" in
0) ;;
2)
    [[ "$1" == run && "$2" =~ ^[0-9]+$ ]] || usage
    seconds="$2"
    ;;
*) usage ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/fuzz-target}"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cd "$root"
cargo fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$CARGO_TARGET_DIR"

[[ -n "$seconds" ]] || exit 0

for target in $(cargo fuzz list --fuzz-dir "$fuzz_dir"); do
    corpus="$fuzz_dir/corpus/$target"
    seeds="$fuzz_dir/seeds/$target"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [[ -d "$seeds" ]] && dirs+=("$seeds")
    echo "== fuzzing $target for ${seconds}s" >&2
    cargo fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$CARGO_TARGET_DIR" \
        "$target" "${dirs[@]}" -- -max_total_time="$seconds"
done
