#!/usr/bin/env bash
# Installs what the real test node (scripts/node.sh) runs, once:
# containerd, runc, the CNI plugins, iptables and busybox-static from the
# machine's Debian archive (installed into the system with apt-get, which
# needs root, as the node itself does), and the kubelet and kube-scheduler,
# built and cached with the control plane by scripts/install-kube.sh.
#
#   scripts/install-node.sh   prints the Kubernetes bin directory; progress
#                             on stderr. A rerun with everything in place
#                             changes nothing and needs no network.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { printf 'install-node: %s\n' "$*" >&2; }

# Debian package, and a file that shows it is installed.
packages=(
    containerd:/usr/bin/containerd
    runc:/usr/sbin/runc
    containernetworking-plugins:/usr/lib/cni/bridge
    iptables:/usr/sbin/iptables
    busybox-static:/bin/busybox
)
missing=()
for entry in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${entry%%:*}" 2>/dev/null | grep -q 'ok installed' \
        || [[ ! -x "${entry#*:}" ]]; then
        missing+=("${entry%%:*}")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    [[ "$(id -u)" == 0 ]] || {
        say "root is needed to install ${missing[*]} (apt-get install)"
        exit 1
    }
    say "apt-get install ${missing[*]}"
    # Only the packages: no service is started (there is no init system
    # here to start one, and the node runs its own containerd).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        > /tmp/cairn-install-node.log 2>&1 || {
        # The package lists may be missing or stale on a fresh machine.
        apt-get update -q >> /tmp/cairn-install-node.log 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "${missing[@]}" >> /tmp/cairn-install-node.log 2>&1
    } || {
        cat /tmp/cairn-install-node.log >&2
        exit 1
    }
fi
"$here/install-kube.sh"
