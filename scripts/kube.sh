#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for the integration tests:
# etcd, kube-apiserver and kube-controller-manager (the latter for garbage
# collection of owner-referenced objects). There is no kubelet, so Pods are
# stored but never run; tests give them spec.nodeName. A deleted Pod that
# names a node only gets a deletionTimestamp until its kubelet confirms it
# is gone; a small reaper (DIR/pod-reaper.py) stands in for that kubelet and
# removes such Pods at once, so a Pod deleted by a test or by the garbage
# collector disappears as it would in a cluster.
#
#   scripts/kube.sh start DIR   install if needed, start, wait until the
#                               apiserver is ready and the default namespace
#                               exists; write DIR/kubeconfig (admin, static
#                               token, CA-verified TLS) and DIR/env (source it)
#   scripts/kube.sh start DIR --node
#                               the same, ready for a real node
#                               (scripts/node.sh start DIR): ServiceAccount
#                               tokens, the Node authorizer, every controller
#                               (node lifecycle, pod GC), kube-scheduler, and
#                               no reaper (the kubelet deletes its own Pods)
#   scripts/kube.sh stop DIR    stop what was started in DIR; safe to repeat
#
# DIR holds the certificates, etcd data, pids and logs; it should be fresh
# and temporary. Ports are asked from the kernel, so several instances can
# run at once. Only loopback addresses are used.
set -euo pipefail
cmd="${1:-}"
dir="${2:-}"
node="${3:-}"
[[ ( "$cmd" == start || "$cmd" == stop ) && -n "$dir" && ( -z "$node" || "$node" == --node ) ]] || {
    echo "usage: $0 start DIR [--node] | stop DIR" >&2
    exit 2
}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Everything started, under the names of its pid and log files.
components=(pod-reaper kube-scheduler kube-controller-manager kube-apiserver etcd)

stop() {
    local name pid pids=()
    for name in "${components[@]}"; do
        [[ -f "$dir/$name.pid" ]] || continue
        pid="$(cat "$dir/$name.pid")"
        # Only a process started for this DIR (its command line names DIR):
        # a recycled pid must not be killed by a second stop.
        if tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$dir/"; then
            kill "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    # All asked at once (the apiserver alone takes seconds to wind down);
    # wait for them to exit (a condition, bounded), then insist.
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    for name in "${components[@]}"; do
        rm -f "$dir/$name.pid"
    done
}

if [[ "$cmd" == stop ]]; then
    [[ -d "$dir" ]] || exit 0
    dir="$(cd "$dir" && pwd)"
    stop
    exit 0
fi

bin="$("$here/install-kube.sh")"
started=(pod-reaper kube-controller-manager kube-apiserver etcd)
if [[ -n "$node" ]]; then
    started=(kube-scheduler kube-controller-manager kube-apiserver etcd)
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# A start that fails half way stops what it had started.
stop_on_failure() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then stop; fi
}
trap stop_on_failure EXIT

# Three free loopback ports (etcd client and peer, apiserver), asked from
# the kernel.
read -r etcd_port peer_port api_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)

# Certificates: a throwaway CA, the apiserver's serving certificate (valid
# for the loopback address and the in-cluster names), and the key pair that
# signs service-account tokens.
pki="$dir/pki"
mkdir -p "$pki"
(
    cd "$pki"
    openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt \
        -days 3650 -subj "/CN=cairn-test-ca"
    openssl req -new -nodes -newkey rsa:2048 -keyout apiserver.key -out apiserver.csr \
        -subj "/CN=kube-apiserver"
    cat > apiserver.ext <<EXT
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:10.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
EXT
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 3650 -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    # The apiserver's identity towards the kubelet (exec, logs).
    openssl req -new -nodes -newkey rsa:2048 -keyout kubelet-client.key -out kubelet-client.csr \
        -subj "/O=system:masters/CN=kube-apiserver-kubelet-client"
    printf 'basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth\n' \
        > kubelet-client.ext
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 3650 -extfile kubelet-client.ext -out kubelet-client.crt
) > "$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; exit 1; }

# One admin identity: a static bearer token in the system:masters group,
# which RBAC lets do anything.
token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$token,cairn-admin,cairn-admin,system:masters" > "$pki/tokens.csv"
echo "$token" > "$pki/admin.token"
chmod 600 "$pki/tokens.csv" "$pki/admin.token"

# With a node: the kubelet's identity, a static token for
# system:node:NAME (NAME as the kubelet registers it: the host name, in
# lower case), which the Node authorizer lets do a kubelet's work and no
# more.
#
# The apiserver reaches the kubelet (for exec and logs) at the node's
# Hostname address, on loopback, where the kubelet listens: the host name
# when it resolves to 127.0.0.1 (as /etc/hosts usually says), otherwise
# `localhost`.
node_name="$(hostname | tr '[:upper:]' '[:lower:]')"
if ! getent ahostsv4 "$node_name" 2>/dev/null | grep -q '^127\.0\.0\.1 '; then
    node_name=localhost
fi
apiserver_mode=(--authorization-mode=RBAC --disable-admission-plugins=ServiceAccount)
controllers='*,-podgc'
if [[ -n "$node" ]]; then
    node_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "$node_token,system:node:$node_name,system:node:$node_name,system:nodes" >> "$pki/tokens.csv"
    (umask 077 && echo "$node_token" > "$pki/node.token")
    echo "$node_name" > "$dir/node-name"
    apiserver_mode=(--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
        --kubelet-client-certificate="$pki/kubelet-client.crt"
        --kubelet-client-key="$pki/kubelet-client.key"
        --kubelet-preferred-address-types=Hostname)
    controllers='*'
fi

cat > "$dir/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: cairn-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: cairn-admin
  user:
    token: $token
contexts:
- name: cairn-test
  context:
    cluster: cairn-test
    user: cairn-admin
    namespace: default
current-context: cairn-test
YAML
chmod 600 "$dir/kubeconfig"

# Each started directly (not in a subshell), so the recorded pid is the
# process's own and `stop` ends it. etcd wants its data directory private.
mkdir -p "$dir/etcd"
chmod 700 "$dir/etcd"
"$bin/etcd" \
    --name cairn-test \
    --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "cairn-test=http://127.0.0.1:$peer_port" \
    > "$dir/etcd.log" 2>&1 &
echo $! > "$dir/etcd.pid"

# --endpoint-reconciler-type=none: nothing else could serve the
# `kubernetes` Service, and the reconciler would otherwise publish the
# loopback address there. ServiceAccount admission is off: Pods that never
# run need no token, and it would refuse Pods in a namespace whose default
# ServiceAccount the controller manager has not made yet. With a node it
# is on (and NodeRestriction with it), so Pods get their token as in a
# cluster.
"$bin/kube-apiserver" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --insecure-port=0 \
    --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$pki/tokens.csv" \
    "${apiserver_mode[@]}" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --endpoint-reconciler-type=none \
    --allow-privileged=true \
    > "$dir/kube-apiserver.log" 2>&1 &
echo $! > "$dir/kube-apiserver.pid"

# podgc is left out without a node: it deletes Pods bound to nodes that do
# not exist, which without a kubelet is every Pod a test creates. With a
# node every controller runs: node lifecycle takes the not-ready taint off
# the node, the PV binder binds claims, the token controller fills
# ServiceAccount tokens. It serves nothing:
# --secure-port=0, and --port=0 for the deprecated insecure port, which
# would otherwise listen on all addresses.
"$bin/kube-controller-manager" \
    --kubeconfig="$dir/kubeconfig" \
    --controllers="$controllers" \
    --use-service-account-credentials=false \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port=0 \
    --port=0 \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    > "$dir/kube-controller-manager.log" 2>&1 &
echo $! > "$dir/kube-controller-manager.pid"

if [[ -n "$node" ]]; then
    # Places Pods on the node (Deployments, DaemonSets, helper Pods), as
    # in a cluster. Serves nothing, like the controller manager.
    "$bin/kube-scheduler" \
        --kubeconfig="$dir/kubeconfig" \
        --leader-elect=false \
        --bind-address=127.0.0.1 \
        --secure-port=0 \
        --port=0 \
        > "$dir/kube-scheduler.log" 2>&1 &
    echo $! > "$dir/kube-scheduler.pid"
fi

# The kubelet's last step, for Pods no kubelet runs: a Pod that is being
# deleted and is bound to a node gets a final delete with no grace period. It lists, then
# watches, and lists again whenever the watch ends. Not with a real node,
# whose kubelet does this itself once the containers are gone.
cat > "$dir/pod-reaper.py" <<'PY'
import json, ssl, sys, time, urllib.error, urllib.request

server, cafile, tokenfile = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=cafile)
auth = {"Authorization": "Bearer " + open(tokenfile).read().strip()}

def call(method, path, body=None):
    req = urllib.request.Request(server + path, method=method, headers=auth, data=body)
    req.add_header("Content-Type", "application/json")
    return urllib.request.urlopen(req, context=ctx)

def reap(pod):
    meta = pod["metadata"]
    if not meta.get("deletionTimestamp") or not pod["spec"].get("nodeName"):
        return
    opts = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]}}
    try:
        call("DELETE", "/api/v1/namespaces/%s/pods/%s" % (meta["namespace"], meta["name"]),
             json.dumps(opts).encode()).close()
    except urllib.error.HTTPError as e:
        if e.code not in (404, 409):  # already gone, or a newer Pod of that name
            print("pod-reaper: deleting %s/%s: %s" % (meta["namespace"], meta["name"], e),
                  file=sys.stderr, flush=True)

while True:
    try:
        with call("GET", "/api/v1/pods") as r:
            pods = json.load(r)
        for pod in pods["items"]:
            reap(pod)
        rv = pods["metadata"]["resourceVersion"]
        with call("GET", "/api/v1/pods?watch=1&resourceVersion=" + rv) as r:
            for line in r:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    break
                if event["type"] in ("ADDED", "MODIFIED"):
                    reap(event["object"])
    except Exception as e:  # apiserver not up yet, or the watch broke: start over
        print("pod-reaper:", e, file=sys.stderr, flush=True)
        time.sleep(1)
PY
if [[ -z "$node" ]]; then
    python3 "$dir/pod-reaper.py" "https://127.0.0.1:$api_port" "$pki/ca.crt" "$pki/admin.token" \
        > "$dir/pod-reaper.log" 2>&1 &
    echo $! > "$dir/pod-reaper.pid"
fi

api() {
    curl -sf --max-time 2 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" \
        "https://127.0.0.1:$api_port$1"
}

# The default ServiceAccount is the controller manager's work; with a node,
# so is its token, which ServiceAccount admission wants before a Pod.
ready_account() {
    if [[ -n "$node" ]]; then
        api /api/v1/namespaces/default/serviceaccounts/default | grep -q '"secrets"'
    else
        api /api/v1/namespaces/default/serviceaccounts/default > /dev/null
    fi
}

# Wait (a condition, bounded: 2 minutes) until the apiserver is ready, the
# default namespace exists, and the controller manager has run its
# controllers.
deadline=$((SECONDS + 120))
until api /readyz > /dev/null && api /api/v1/namespaces/default > /dev/null && ready_account; do
    for name in "${started[@]}"; do
        if ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
            echo "$name exited; the end of its log follows ($dir/$name.log)" >&2
            tail -n 40 "$dir/$name.log" >&2
            exit 1
        fi
    done
    if ((SECONDS >= deadline)); then
        echo "kube-apiserver was not ready within 2 minutes; logs in $dir" >&2
        exit 1
    fi
    sleep 0.1
done

cat > "$dir/env" <<ENV
export KUBECONFIG='$dir/kubeconfig'
export CAIRN_TEST_KUBECONFIG='$dir/kubeconfig'
ENV
echo "kube-apiserver listening on https://127.0.0.1:$api_port; settings in $dir/env" >&2
