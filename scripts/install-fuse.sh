#!/usr/bin/env bash
# Installs what `cairn mount` and its tests need at run time, once:
# fusermount3, from the machine's Debian archive (package fuse3, with
# apt-get, which needs root). cairn links no libfuse: it speaks to
# /dev/fuse itself and needs fusermount3 only to mount as a user and to
# unmount.
#
#   scripts/install-fuse.sh   progress on stderr. A rerun with fuse3 in
#                             place changes nothing and needs no network.
set -euo pipefail
say() { printf 'install-fuse: %s\n' "$*" >&2; }

if dpkg-query -W -f='${Status}' fuse3 2>/dev/null | grep -q 'ok installed' \
    && [[ -x /usr/bin/fusermount3 ]]; then
    exit 0
fi
[[ "$(id -u)" == 0 ]] || {
    say "root is needed to install fuse3 (apt-get install)"
    exit 1
}
say "apt-get install fuse3"
log=/tmp/cairn-install-fuse.log
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fuse3 \
    > "$log" 2>&1 || {
    # The package lists may be missing or stale on a fresh machine.
    apt-get update -q >> "$log" 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            fuse3 >> "$log" 2>&1
} || {
    cat "$log" >&2
    exit 1
}
