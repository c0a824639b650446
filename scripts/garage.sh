#!/usr/bin/env bash
# A single-node Garage S3 server on 127.0.0.1 for the storage tests.
#
#   scripts/garage.sh start DIR   install if needed, start, lay out the
#                                 cluster, create bucket and key; write the
#                                 settings to DIR/env (source it)
#   scripts/garage.sh stop DIR    stop the server started in DIR
#
# DIR holds the config, data, metadata and log; it should be fresh and
# temporary. Only loopback addresses are used.
set -euo pipefail
cmd="${1:-}"
dir="${2:-}"
[[ ( "$cmd" == start || "$cmd" == stop ) && -n "$dir" ]] || {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ "$cmd" == stop ]]; then
    if [[ -f "$dir/pid" ]]; then
        pid="$(cat "$dir/pid")"
        kill "$pid" 2>/dev/null || true
        # Wait for it to exit (a condition, bounded), so its files can go.
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$dir/pid"
    fi
    exit 0
fi

garage="$("$here/install-garage.sh")"
mkdir -p "$dir/meta" "$dir/data"
dir="$(cd "$dir" && pwd)"

# Three free loopback ports (S3 API, RPC, admin), asked from the kernel.
read -r s3_port rpc_port admin_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)

# A level is a TOML integer; anything else ("none") a string.
compression="${CAIRN_GARAGE_COMPRESSION:-none}"
[[ "$compression" =~ ^[0-9]+$ ]] || compression="\"$compression\""
cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
# Everything cairn stores is ciphertext (compressed, if at all, before it
# was sealed): Garage's zstd would spend CPU on every block for nothing,
# CPU the server takes from cairn on a machine they share.
# CAIRN_GARAGE_COMPRESSION=1 (Garage's default) measures the difference.
compression_level = $compression
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
TOML

g() { "$garage" -c "$dir/garage.toml" "$@"; }

# Started directly (not through the g function, which would run it in a
# subshell), so the recorded pid is the server's own and `stop` ends it.
"$garage" -c "$dir/garage.toml" server > "$dir/log" 2>&1 &
echo $! > "$dir/pid"

# Wait until the node answers over RPC (a condition, not a fixed sleep).
# `node id` alone reads the local key file and can succeed before the server
# listens; `status` needs the server.
for _ in $(seq 1 600); do
    if node=$(g node id -q 2>/dev/null) && g status > /dev/null 2>&1; then break; fi
    node=""
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "garage exited; log follows" >&2
        cat "$dir/log" >&2
        exit 1
    fi
    sleep 0.1
done
[[ -n "${node:-}" ]] || { echo "garage did not start; see $dir/log" >&2; exit 1; }

g layout assign -z dc1 -c 1G "${node%%@*}" > /dev/null
g layout apply --version 1 > /dev/null
g bucket create cairn-test > /dev/null
key_out=$(g key create cairn-test-key)
key_id=$(printf '%s\n' "$key_out" | sed -n 's/^Key ID:[[:space:]]*//p' | head -n1)
secret=$(printf '%s\n' "$key_out" | sed -n 's/^Secret key:[[:space:]]*//p' | head -n1)
[[ -n "$key_id" && -n "$secret" ]] || {
    echo "could not read the new key from garage's output:" >&2
    printf '%s\n' "$key_out" >&2
    exit 1
}
g bucket allow --read --write --owner cairn-test --key "$key_id" > /dev/null

cat > "$dir/env" <<ENV
export CAIRN_TEST_S3_URL='s3://cairn-test?endpoint=http://127.0.0.1:$s3_port&region=garage&path-style=true&allow-http=true'
export AWS_ACCESS_KEY_ID='$key_id'
export AWS_SECRET_ACCESS_KEY='$secret'
export AWS_REGION='garage'
ENV
echo "garage listening on 127.0.0.1:$s3_port; settings in $dir/env" >&2
