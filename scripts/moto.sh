#!/usr/bin/env bash
# moto's S3 server on 127.0.0.1 for the archival-storage tests: storage
# classes, restores and object lock, which Garage does not implement.
#
#   scripts/moto.sh start DIR   install if needed, start, create the buckets
#                               cairn-cold (plain) and cairn-lock (object
#                               lock, hence versioned); write the settings
#                               to DIR/env (source it)
#   scripts/moto.sh stop DIR    stop the server started in DIR
#
# Restores take CAIRN_MOTO_RESTORE_DELAY seconds (default 3; see
# scripts/moto-server.py). DIR holds the log and pid; it should be fresh and
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
        # A zombie has exited too: its parent, the `start` shell, is gone,
        # and init may take a second or two to reap it.
        for _ in $(seq 1 100); do
            state="$(ps -o stat= -p "$pid" 2>/dev/null)" && [[ "$state" != Z* ]] || break
            sleep 0.1
        done
        rm -f "$dir/pid"
    fi
    exit 0
fi

py="$("$here/install-moto.sh")"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# A free loopback port, asked from the kernel.
port="$("$py" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
)"
endpoint="http://127.0.0.1:$port"

delay="${CAIRN_MOTO_RESTORE_DELAY:-3}"
"$py" "$here/moto-server.py" "$port" --restore-delay "$delay" > "$dir/log" 2>&1 &
echo $! > "$dir/pid"

# Wait until it answers (a condition, not a fixed sleep): moto imports for a
# second or two before it listens.
answers() {
    "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$endpoint/_cairn/restores" 2>/dev/null
}
ready=""
for _ in $(seq 1 300); do
    if answers; then
        ready=1
        break
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "moto exited; log follows" >&2
        cat "$dir/log" >&2
        exit 1
    fi
    sleep 0.1
done
[[ -n "$ready" ]] || { echo "moto did not start; see $dir/log" >&2; exit 1; }

# moto accepts any credentials: the tests run with Garage's in the
# environment, and without Garage any will do (but some must be set, or an
# S3 client looks for instance credentials on the network).
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-cairn-moto}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-cairn-moto}"
"$py" - "$endpoint" <<'PY'
import sys
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket="cairn-cold")
# Object lock can only be turned on when a bucket is created; it turns on
# versioning too.
s3.create_bucket(Bucket="cairn-lock", ObjectLockEnabledForBucket=True)
PY

options="endpoint=$endpoint&region=us-east-1&path-style=true&allow-http=true"
# Credentials only where none are set, so Garage's stay when both run.
cat > "$dir/env" <<ENV
export CAIRN_TEST_MOTO_ENDPOINT='$endpoint'
export CAIRN_TEST_MOTO_URL='s3://cairn-cold?$options'
export CAIRN_TEST_MOTO_LOCK_URL='s3://cairn-lock?$options'
export CAIRN_TEST_MOTO_PYTHON='$py'
export CAIRN_TEST_MOTO_RESTORE_DELAY='$delay'
export AWS_ACCESS_KEY_ID="\${AWS_ACCESS_KEY_ID:-cairn-moto}"
export AWS_SECRET_ACCESS_KEY="\${AWS_SECRET_ACCESS_KEY:-cairn-moto}"
ENV
echo "moto listening on 127.0.0.1:$port; settings in $dir/env" >&2
