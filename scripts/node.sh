#!/usr/bin/env bash
# A real Kubernetes node for the integration tests, joined to a control
# plane that `scripts/kube.sh start DIR --node` started: containerd (with
# runc and the bridge CNI plugin) and a kubelet registered under this
# machine's host name, running pods from images imported locally (nothing
# is ever pulled). Needs root, as a kubelet does.
#
#   scripts/node.sh start DIR [CAIRN.tar] [--forward PORT]...
#                               install if needed, start, import the pause
#                               and PostgreSQL images (built by
#                               scripts/image.sh --pause and --postgres) and
#                               cairn's (scripts/image.sh CAIRN.tar), wait
#                               until the node is Ready and schedulable;
#                               write DIR/node-env (source it)
#   scripts/node.sh stop DIR    stop the node: its containers, containerd and
#                               the kubelet, their mounts, the bridge and the
#                               NAT rule; safe to repeat
#
# Pods get addresses on a bridge private to this machine (cairn0,
# 10.244.0.0/24); the host is their gateway and nothing is forwarded
# further. The apiserver stays on 127.0.0.1: one NAT rule sends what pods
# address to the `kubernetes` Service (10.0.0.1:443) to it, so in-cluster
# clients work unchanged. Likewise each `--forward PORT` sends what pods
# address to the host's bridge address (10.244.0.1:PORT) to 127.0.0.1:PORT
# (a test's S3 server, say); no other loopback port is reachable from pods.
# The kubelet's API listens on 127.0.0.1 only (it
# refuses a loopback node address and reports the machine's own, where it
# does not listen); the apiserver reaches it through the node's Hostname
# address, which resolves to loopback (scripts/kube.sh picks the node name
# so), so logs and exec work; the tests read container logs from
# /var/log/pods all the same. The kubelet's directory is the usual
# /var/lib/kubelet (manifests mount it), so one node runs per machine;
# it is removed on stop, as are the kubelet's changes to kernel settings.
set -euo pipefail
usage() {
    echo "usage: $0 start DIR [CAIRN.tar] [--forward PORT]... | stop DIR" >&2
    exit 2
}
cmd="${1:-}"
dir="${2:-}"
[[ ( "$cmd" == start || ( "$cmd" == stop && $# -eq 2 ) ) && -n "$dir" ]] || usage
shift 2
cairn_tar=""
forward=()
while (($#)); do
    case "$1" in
        --forward)
            [[ "${2:-}" =~ ^[0-9]+$ ]] && ((${2} > 0 && ${2} < 65536)) || usage
            forward+=("$2")
            shift 2
            ;;
        *)
            [[ -z "$cairn_tar" && -f "$1" ]] || usage
            cairn_tar="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
            shift
            ;;
    esac
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kubelet_root=/var/lib/kubelet
bridge=cairn0
subnet=10.244.0
chain=CAIRN-NODE
# Kernel settings the kubelet changes on start; put back on stop.
sysctls=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
    kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
say() { printf 'node: %s\n' "$*" >&2; }

# Ends a process started for this DIR (its command line names DIR; a
# recycled pid is left alone) and waits for it, bounded, then insists.
end() {
    local pid="$1"
    tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$dir/" || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# Mount points at or below each PATH.
mounts_under() {
    local path
    for path in "$@"; do
        awk -v p="$path" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo
    done
}

# The bridge and the rules (their names are this script's own).
stop_network() {
    if iptables -t nat -S "$chain" > /dev/null 2>&1; then
        iptables -t nat -D PREROUTING -i "$bridge" -j "$chain" 2>/dev/null || true
        iptables -t nat -F "$chain"
        iptables -t nat -X "$chain"
    fi
    if iptables -S "$chain" > /dev/null 2>&1; then
        iptables -D INPUT -i "$bridge" -j "$chain" 2>/dev/null || true
        iptables -F "$chain"
        iptables -X "$chain"
    fi
    if ip link show "$bridge" > /dev/null 2>&1; then ip link delete "$bridge"; fi
}

stop() {
    local node="$dir/node" pid mnt ours=false
    if [[ "$(cat "$kubelet_root/cairn-test-node" 2>/dev/null)" == "$dir" ]]; then ours=true; fi
    [[ -d "$node" ]] || $ours || return 0
    if [[ -f "$node/kubelet.pid" ]]; then end "$(cat "$node/kubelet.pid")"; fi
    # Every container (pod sandboxes included) killed and removed while
    # containerd still runs: its shims unmount their root filesystems.
    if [[ -f "$node/containerd.pid" && -S "$node/containerd.sock" ]]; then
        local ctr=(ctr -a "$node/containerd.sock" -n k8s.io)
        for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
            "${ctr[@]}" tasks kill -s SIGKILL "$id" > /dev/null 2>&1 || true
        done
        for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
            "${ctr[@]}" tasks delete -f "$id" > /dev/null 2>&1 || true
        done
        for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
            "${ctr[@]}" containers delete "$id" > /dev/null 2>&1 || true
        done
    fi
    if [[ -f "$node/containerd.pid" ]]; then end "$(cat "$node/containerd.pid")"; fi
    # Containers that outlived a containerd that could not be asked (one
    # killed, say): every process in the pods' cgroups.
    if $ours; then
        cat /sys/fs/cgroup/pids/k8s.io/*/cgroup.procs 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    fi
    # Shims outlive containerd; theirs name its socket, under DIR.
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*$node/containerd.sock" || true); do
        end "$pid"
    done
    rm -f "$node/kubelet.pid" "$node/containerd.pid"
    # What is still mounted (volumes, pod network namespaces, shm, and the
    # kubelet's directory, which it bind-mounts onto itself to share it),
    # deepest first. Lazily: a mount that is still busy goes when it is let
    # go.
    for mnt in $(mounts_under "$node" | sort -r); do
        umount -l "$mnt" 2>/dev/null || true
    done
    # The machine-wide parts only if the running node is this DIR's.
    if $ours; then
        for mnt in $(mounts_under "$kubelet_root" | sort -r); do
            umount -l "$mnt" 2>/dev/null || true
        done
        stop_network
    fi
    # The pods' parent cgroup (containerd's namespace), once empty: rmdir
    # removes only empty cgroups.
    find /sys/fs/cgroup/*/k8s.io -depth -type d -exec rmdir {} + 2>/dev/null || true
    if [[ -f "$node/sysctls" ]]; then
        while read -r key value; do
            echo "$value" > "/proc/sys/$key" 2>/dev/null || true
        done < "$node/sysctls"
        rm -f "$node/sysctls"
    fi
    # The kubelet's directories, if this node made them; never through a
    # mount that is still there.
    if $ours; then
        if [[ -n "$(mounts_under "$kubelet_root")" ]]; then
            say "mounts remain under $kubelet_root; left in place"
        else
            rm -rf "$kubelet_root"
        fi
    fi
    while read -r path; do
        rm -rf "$path"
    done < <(cat "$node/created" 2>/dev/null || true)
    rm -f "$node/created"
}

if [[ "$cmd" == stop ]]; then
    [[ -d "$dir" ]] || exit 0
    dir="$(cd "$dir" && pwd)"
    stop
    exit 0
fi

[[ "$(id -u)" == 0 ]] || { say "a node needs root"; exit 1; }
dir="$(cd "$dir" && pwd)"
[[ -f "$dir/node-name" && -f "$dir/pki/node.token" ]] || {
    say "$dir is not a control plane started with: scripts/kube.sh start DIR --node"
    exit 1
}
# One node per machine: the kubelet's directory is fixed.
if [[ -e "$kubelet_root" ]]; then
    owner="$(cat "$kubelet_root/cairn-test-node" 2>/dev/null || true)"
    if [[ -z "$owner" ]]; then
        say "$kubelet_root exists and is not a test node's; not touching it"
        exit 1
    fi
    if [[ "$owner" != "$dir" && -f "$owner/node/kubelet.pid" ]] \
        && kill -0 "$(cat "$owner/node/kubelet.pid")" 2>/dev/null; then
        say "a test node of $owner is running; stop it first (scripts/node.sh stop $owner)"
        exit 1
    fi
    say "removing what a stopped test node left in $kubelet_root"
    (dir="$owner" && stop) || true
    if [[ -e "$kubelet_root" ]]; then
        say "$kubelet_root is still there (mounts remain?); not starting over it"
        exit 1
    fi
fi

bin="$("$here/install-node.sh")"
node="$dir/node"
mkdir -p "$node"/{cni,ipam,plugins}
trap 'rc=$?; if [[ $rc -ne 0 ]]; then stop; fi' EXIT
: > "$node/created"
for path in /var/log/pods /var/log/containers; do
    [[ -e "$path" ]] || echo "$path" >> "$node/created"
done
mkdir -p "$kubelet_root"
echo "$dir" > "$kubelet_root/cairn-test-node"
for key in "${sysctls[@]}"; do
    echo "$key $(cat "/proc/sys/$key")"
done > "$node/sysctls"

name="$(cat "$dir/node-name")"
server="$(sed -n 's/^ *server: //p' "$dir/kubeconfig")"
api_port="${server##*:}"
read -r kubelet_port healthz_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)

stop_network
# The pods' network: a bridge the CNI plugin adopts, and the way to the
# apiserver (route_localnet lets the NAT rule deliver to 127.0.0.1). Pods
# reach nothing else on loopback: what they address to 127.0.0.0/8
# themselves is dropped (the kubelet's own rules would do this too, but it
# is told to leave iptables alone).
ip link add "$bridge" type bridge
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
echo 1 > "/proc/sys/net/ipv4/conf/$bridge/route_localnet"
iptables -t nat -N "$chain"
iptables -t nat -A "$chain" -d 10.0.0.1/32 -p tcp --dport 443 \
    -j DNAT --to-destination "127.0.0.1:$api_port"
for port in "${forward[@]}"; do
    iptables -t nat -A "$chain" -d "$subnet.1/32" -p tcp --dport "$port" \
        -j DNAT --to-destination "127.0.0.1:$port"
done
iptables -t nat -A PREROUTING -i "$bridge" -j "$chain"
iptables -N "$chain"
iptables -A "$chain" -d 127.0.0.0/8 -m conntrack ! --ctstate DNAT -j DROP
iptables -I INPUT -i "$bridge" -j "$chain"
cat > "$node/cni/10-cairn.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "cairn-test",
 "plugins": [{"type": "bridge", "bridge": "$bridge", "isGateway": true,
              "ipMasq": false, "hairpinMode": true,
              "ipam": {"type": "host-local", "dataDir": "$node/ipam",
                       "ranges": [[{"subnet": "$subnet.0/24"}]],
                       "routes": [{"dst": "0.0.0.0/0"}]}}]}
JSON

# containerd with everything under DIR: its own socket, images, state and
# the pods' network namespaces. restrict_oom_score_adj: root here lacks
# CAP_SYS_RESOURCE, so runc may not lower a process's OOM score.
version="$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["version"])' "$here/../Cargo.toml")"
pause_image="cairn.test/pause:$version"
postgres_image="cairn.test/postgres:$version"
cat > "$node/containerd.toml" <<TOML
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$node/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni"
TOML
containerd --config "$node/containerd.toml" > "$node/containerd.log" 2>&1 &
echo $! > "$node/containerd.pid"
ctr=(ctr -a "$node/containerd.sock" -n k8s.io)
deadline=$((SECONDS + 30))
until "${ctr[@]}" version > /dev/null 2>&1; do
    if ! kill -0 "$(cat "$node/containerd.pid")" 2>/dev/null || ((SECONDS >= deadline)); then
        say "containerd did not start; the end of its log follows ($node/containerd.log)"
        tail -n 20 "$node/containerd.log" >&2
        exit 1
    fi
    sleep 0.1
done

"$here/image.sh" --pause "$node/pause.tar" "$pause_image" > /dev/null
"$here/image.sh" --postgres "$node/postgres.tar" "$postgres_image" > /dev/null
image=""
if [[ -n "$cairn_tar" ]]; then
    image="$(tar -xOf "$cairn_tar" index.json | python3 -c 'import json, sys
print(json.load(sys.stdin)["manifests"][0]["annotations"]["io.containerd.image.name"])')"
fi
for tar in "$node/pause.tar" "$node/postgres.tar" ${cairn_tar:+"$cairn_tar"}; do
    "${ctr[@]}" images import "$tar" > "$node/import.log" 2>&1 || {
        cat "$node/import.log" >&2
        exit 1
    }
done

# The kubelet: its own token (system:node:NAME), the cluster CA for the
# apiserver and for clients of its own API, which listens on 127.0.0.1
# only. Disk eviction thresholds are absolute: a percentage of a large,
# shared disk (1% of 250 GB) evicts the tests' pods while gigabytes are
# free. No QoS cgroups or allocatable enforcement (a VM without systemd),
# no iptables rules of its own (there is no kube-proxy to serve), and
# images are never collected: nothing could pull them back.
cat > "$node/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: cairn-test
  cluster:
    server: $server
    certificate-authority: $dir/pki/ca.crt
users:
- name: kubelet
  user:
    tokenFile: $dir/pki/node.token
contexts:
- name: kubelet
  context: {cluster: cairn-test, user: kubelet}
current-context: kubelet
YAML
cat > "$node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: 256Mi, imagefs.available: 256Mi, nodefs.inodesFree: 1%}
volumePluginDir: $node/plugins
clusterDomain: cluster.local
YAML
started=$SECONDS
since="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
"$bin/kubelet" \
    --config="$node/kubelet.yaml" \
    --kubeconfig="$node/kubeconfig" \
    --container-runtime=remote \
    --container-runtime-endpoint="unix://$node/containerd.sock" \
    --hostname-override="$name" \
    --root-dir="$kubelet_root" \
    --cert-dir="$node/pki" \
    > "$node/kubelet.log" 2>&1 &
echo $! > "$node/kubelet.pid"

# Ready as reported by this kubelet (a Node object left by an earlier
# start may still say Ready), and schedulable: the node lifecycle
# controller has taken the not-ready taint off. Bounded: 2 minutes.
api() {
    curl -sf --max-time 2 --cacert "$dir/pki/ca.crt" \
        -H "Authorization: Bearer $(cat "$dir/pki/admin.token")" "$server$1"
}
schedulable() {
    api "/api/v1/nodes/$name" | python3 -c '
import json, sys
n = json.load(sys.stdin)
ready = any(c["type"] == "Ready" and c["status"] == "True" and c["lastHeartbeatTime"] >= sys.argv[1]
            for c in n["status"].get("conditions", []))
sys.exit(0 if ready and not n["spec"].get("taints") else 1)' "$since"
}
deadline=$((SECONDS + 120))
until schedulable 2> /dev/null; do
    if ! kill -0 "$(cat "$node/kubelet.pid")" 2>/dev/null || ((SECONDS >= deadline)); then
        say "node $name did not become Ready; the end of the kubelet's log follows ($node/kubelet.log)"
        tail -n 30 "$node/kubelet.log" >&2
        exit 1
    fi
    sleep 0.2
done

cat > "$dir/node-env" <<ENV
export CAIRN_TEST_NODE_KUBECONFIG='$dir/kubeconfig'
export CAIRN_TEST_NODE_NAME='$name'
export CAIRN_TEST_NODE_PAUSE_IMAGE='$pause_image'
export CAIRN_TEST_NODE_POSTGRES_IMAGE='$postgres_image'
export CAIRN_TEST_NODE_IMAGE='$image'
export CAIRN_TEST_NODE_HOST_IP='$subnet.1'
export CAIRN_TEST_NODE_FORWARDED='${forward[*]}'
ENV
say "node $name Ready in $((SECONDS - started)) s; settings in $dir/node-env"
