#!/usr/bin/env bash
# Installs the Garage S3 server used by the storage tests, once: the binary
# is cached in ~/.cache/cairn/tools and reused by every later run.
#
#   scripts/install-garage.sh   prints the path of the garage binary
set -euo pipefail
version=2.5.0
root="${CAIRN_TOOLS:-$HOME/.cache/cairn/tools}"
bin="$root/bin/garage"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
    echo "$bin"
    exit 0
fi
echo "installing garage $version into $root (takes several minutes the first time)" >&2
# Only what a single-node test server needs: SQLite metadata and bundled C
# libraries. A separate target dir keeps it out of the project's builds.
CARGO_TARGET_DIR="${CAIRN_TOOLS_TARGET:-$HOME/.cache/cairn/tools-target}" \
    cargo install garage --version "$version" --locked --no-default-features \
    --features bundled-libs,sqlite --root "$root" >&2
echo "$bin"
