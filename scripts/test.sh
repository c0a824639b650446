#!/usr/bin/env bash
# The whole test suite: formatting, lints, fuzz targets (built and run
# briefly), then every unit, property, golden, integration and end-to-end
# test, then the real-node tier: cairn's image and deploy/ on a kubelet and
# containerd started here (needs root). `.ci/run` calls exactly this.
#
#   scripts/test.sh [all]        everything (what CI runs)
#   scripts/test.sh integration  everything but the real-node tier
#   scripts/test.sh unit         formatting, lints, unit and doc tests: no
#                                servers, nothing installed, a few minutes
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
case "$tier" in
    unit | integration | all) ;;
    *)
        echo "usage: $0 [unit|integration|all]" >&2
        exit 2
        ;;
esac

# One target directory shared by every checkout, so a clean clone (as CI
# makes) reuses what an earlier run compiled.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Each step says how long the run has taken so far, so a log tells where a
# cold run (tools built, everything compiled) spends its time.
step() { printf '\n==> %s (%dm%02ds in)\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

step "cargo fmt --check"
cargo fmt --all -- --check

# One trap for every server and background install (a second EXIT trap
# would replace the first), set before the first starts; each directory is
# set as its server starts.
garage_dir=""
moto_dir=""
kube_dir=""
node_dir=""
install_dir=""
declare -A install_pid=()
cleanup() {
    local name
    for name in "${!install_pid[@]}"; do
        kill -- "-${install_pid[$name]}" 2>/dev/null || true
    done
    if [[ -n "$node_dir" ]]; then
        ./scripts/node.sh stop "$node_dir"
        ./scripts/kube.sh stop "$node_dir"
        rm -rf "$node_dir"
    fi
    if [[ -n "$kube_dir" ]]; then
        ./scripts/kube.sh stop "$kube_dir"
        rm -rf "$kube_dir"
    fi
    if [[ -n "$moto_dir" ]]; then
        ./scripts/moto.sh stop "$moto_dir"
        rm -rf "$moto_dir"
    fi
    if [[ -n "$garage_dir" ]]; then
        ./scripts/garage.sh stop "$garage_dir"
        rm -rf "$garage_dir"
    fi
    [[ -z "$install_dir" ]] || rm -rf "$install_dir"
}
trap cleanup EXIT

# The servers' tools (Garage, moto, the control plane and the kubelet) are
# built once and cached; on a cold machine they are much of the run. They
# install in the background, niced, while cargo checks and compiles: a
# build's serial stretches (a large crate, a link) leave a core idle that
# the other fills. Each server's step waits for its tool and shows its log
# if it failed. A warm cache makes each a no-op. Only builds into their
# own directories go to the background, since a failed step stops them:
# the node's Debian packages (apt, which must not be interrupted) install
# in the node's step, as before.
install_bg() {
    local name="$1"
    shift
    # setsid: a process group of its own, so cleanup can stop all of it.
    # The log ends with how long the install took.
    setsid nice -n 10 bash -c '"$@"; rc=$?; echo "($SECONDS s, exit $rc)"; exit $rc' \
        install "$@" > "$install_dir/$name.log" 2>&1 < /dev/null &
    install_pid[$name]=$!
}
install_wait() {
    local name="$1" pid="${install_pid[$1]}"
    unset "install_pid[$name]"
    if ! wait "$pid"; then
        echo "installing $name failed:" >&2
        cat "$install_dir/$name.log" >&2
        exit 1
    fi
    cat "$install_dir/$name.log"
}
if [[ "$tier" != unit ]]; then
    install_dir="$(mktemp -d "${TMPDIR:-/tmp}/cairn-installs.XXXXXX")"
    install_bg garage ./scripts/install-garage.sh
    install_bg moto ./scripts/install-moto.sh
    install_bg kube ./scripts/install-kube.sh
fi

# The test hooks (a settable clock, HTTP fault injection) exist only with
# the `testing` features, which the tests need and release builds lack.
test_features=(--features cairn-cli/testing,cairn-kube/testing)

step "cargo clippy (all targets, warnings are errors; with and without test hooks)"
cargo clippy --workspace --all-targets --locked "${test_features[@]}" -- -D warnings
cargo clippy -p cairn-cli -p cairn-kube --all-targets --locked -- -D warnings

if [[ "$tier" == unit ]]; then
    step "cargo test: unit and doc tests (the unit tier: no servers)"
    cargo test --workspace --locked "${test_features[@]}" --lib --bins
    cargo test --workspace --locked "${test_features[@]}" --doc
    cargo test -p cairn-cli --bins --locked -- test_hooks
    step "done"
    exit 0
fi

step "fuzz targets: build and a short run of each"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" ./scripts/fuzz.sh run "${FUZZ_SECONDS:-10}"

step "Garage S3 server on loopback for the storage tests"
install_wait garage
garage_dir="$(mktemp -d "${TMPDIR:-/tmp}/cairn-garage.XXXXXX")"
./scripts/garage.sh start "$garage_dir"
# shellcheck disable=SC1091
source "$garage_dir/env"
# With Garage up, tests that need S3 must run, not skip.
export CAIRN_REQUIRE_S3=1

step "moto S3 server on loopback for the archival-storage tests"
# Storage classes, restores and object lock, which Garage lacks. It takes
# any credentials, so Garage's, now in the environment, do for both.
install_wait moto
moto_dir="$(mktemp -d "${TMPDIR:-/tmp}/cairn-moto.XXXXXX")"
./scripts/moto.sh start "$moto_dir"
# shellcheck disable=SC1091
source "$moto_dir/env"
# With moto up, tests that need it must run, not skip.
export CAIRN_REQUIRE_MOTO=1

step "Kubernetes control plane on loopback for the Kubernetes tests"
install_wait kube
kube_dir="$(mktemp -d "${TMPDIR:-/tmp}/cairn-kube.XXXXXX")"
./scripts/kube.sh start "$kube_dir"
# shellcheck disable=SC1091
source "$kube_dir/env"
# With the apiserver up, tests that need it must run, not skip.
export CAIRN_REQUIRE_KUBE=1

step "Kubernetes manifests: render deploy/ and validate offline"
./scripts/validate-deploy.sh

step "FUSE for the mount tests"
./scripts/install-fuse.sh
# With fusermount3 installed (and /dev/fuse, which the test machines
# have), the mount tests must run, not skip.
export CAIRN_REQUIRE_FUSE=1

step "release builds ignore the test hooks"
cargo test -p cairn-cli --bins --locked -- test_hooks

step "cargo test (unit, property, golden, integration, end-to-end, doc)"
cargo test --workspace --locked "${test_features[@]}"

if [[ "$tier" == integration ]]; then
    step "done"
    exit 0
fi

step "cairn's image and a real node (containerd, kubelet) on a control plane of its own"
node_dir="$(mktemp -d "${TMPDIR:-/tmp}/cairn-node.XXXXXX")"
# The dev profile: its dependencies are the optimised ones the tests were
# built with, so a cold run does not build every crate again for release
# (docs/adr/0018-test-image-from-the-dev-profile.md). No test hooks.
CAIRN_IMAGE_PROFILE=dev ./scripts/image.sh "$node_dir/cairn.tar"
./scripts/kube.sh start "$node_dir" --node
# Pods reach Garage (on 127.0.0.1) through the node's bridge address.
s3_port="$(sed -n 's|.*endpoint=http://127\.0\.0\.1:\([0-9]*\).*|\1|p' <<< "$CAIRN_TEST_S3_URL")"
./scripts/node.sh start "$node_dir" "$node_dir/cairn.tar" --forward "$s3_port"
# shellcheck disable=SC1091
source "$node_dir/node-env"
# With the node up, the node tests must run, not skip.
export CAIRN_TEST_NODE=1 CAIRN_REQUIRE_NODE=1

step "cargo test: the node tier (pods on the real node)"
# The same features as above, so nothing is compiled again.
cargo test --workspace --locked "${test_features[@]}" --test node
step "done"
