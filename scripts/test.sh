#!/usr/bin/env bash
# The whole test suite: formatting, lints, fuzz targets (built and run
# briefly), then every unit, property, golden, integration and end-to-end
# test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# One target directory shared by every checkout, so a clean clone (as CI
# makes) reuses what an earlier run compiled.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets: build and a short run of each"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" ./scripts/fuzz.sh run "${FUZZ_SECONDS:-10}"

step "cargo test (unit, property, golden, integration, end-to-end, doc)"
cargo test --workspace --locked
