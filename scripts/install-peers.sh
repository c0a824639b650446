#!/usr/bin/env bash
# Installs the peers that benches/compare/run.sh measures cairn against:
# restic and borg from Debian packages, bupstash and rustic from crates.io
# into the shared tools cache. Idempotent: whatever is already present is
# kept.
#
#   scripts/install-peers.sh    prints one "name version path" line per tool
set -euo pipefail
root="${CAIRN_TOOLS:-$HOME/.cache/cairn/tools}"

missing=()
command -v restic > /dev/null || missing+=(restic)
command -v borg > /dev/null || missing+=(borgbackup)
# GNU time reports peak RSS; the runner needs it too.
[ -x /usr/bin/time ] || missing+=(time)
bupstash="$root/bin/bupstash"
if [ ! -x "$bupstash" ]; then
    # bupstash links libsodium, found through pkg-config.
    pkg-config --exists libsodium 2> /dev/null || missing+=(libsodium-dev pkg-config)
fi
rustic="$root/bin/rustic"
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
fi

if [ ! -x "$bupstash" ]; then
    echo "installing bupstash into $root (takes several minutes the first time)" >&2
    # A separate target dir keeps it out of the project's builds.
    CARGO_TARGET_DIR="${CAIRN_TOOLS_TARGET:-$HOME/.cache/cairn/tools-target}" \
        cargo install bupstash --locked --root "$root" >&2
fi

if [ ! -x "$rustic" ]; then
    echo "installing rustic into $root (takes several minutes the first time)" >&2
    CARGO_TARGET_DIR="${CAIRN_TOOLS_TARGET:-$HOME/.cache/cairn/tools-target}" \
        cargo install rustic-rs --locked --root "$root" >&2
fi

echo "restic $(restic version | awk '{print $2}') $(command -v restic)"
echo "borg $(borg --version | awk '{print $2}') $(command -v borg)"
echo "bupstash $("$bupstash" version | sed "s/^bupstash-//") $bupstash"
echo "rustic $("$rustic" --version | awk '{print $2}') $rustic"
