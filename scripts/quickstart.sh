#!/usr/bin/env bash
# Builds cairn and backs up a directory into a local repository.
#
#   ./scripts/quickstart.sh [DIR] [REPO]
#
# DIR defaults to this source tree, REPO to ~/.cache/cairn/quickstart-repo
# (outside DIR, so the repository never backs itself up). The password comes
# from CAIRN_PASSWORD (default "change-me" for this demonstration only).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
dir="${1:-.}"
repo="${2:-$HOME/.cache/cairn/quickstart-repo}"
export CAIRN_PASSWORD="${CAIRN_PASSWORD:-change-me}"

cargo build --release --locked -p cairn-cli
cairn="$CARGO_TARGET_DIR/release/cairn"
if [ ! -e "$repo/config" ]; then
    "$cairn" -r "$repo" init
fi
"$cairn" -r "$repo" backup "$dir"
"$cairn" -r "$repo" snapshots
echo
echo "restore with: CAIRN_PASSWORD=... $cairn -r $repo restore latest --target /tmp/restored"
