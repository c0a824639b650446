#!/usr/bin/env bash
# Installs the Kubernetes control plane used by the integration tests, once:
# kube-apiserver, kube-controller-manager, kube-scheduler and the kubelet
# (for the real node, scripts/node.sh) built from Debian bookworm's
# `kubernetes` source package, and etcd from the `etcd-server` .deb. The
# binaries are cached in ~/.cache/cairn/tools/kube/bin and reused by every
# later run; a rerun needs no network. A cache from an earlier version of
# this script with the same recipe keeps its binaries: only the missing
# ones are built. Why from Debian source rather than an
# upstream release download: docs/adr/0007-test-apiserver-from-debian-source.md.
#
#   scripts/install-kube.sh   prints the bin directory (kube-apiserver,
#                             kube-controller-manager, kube-scheduler,
#                             kubelet, etcd); progress on stderr
#
# Nothing is installed into the system: apt runs with a private source list,
# private package lists and a private cache, and the Go toolchain is unpacked
# from its .deb rather than installed.
set -euo pipefail
# Bump when the recipe below changes, so cached binaries are rebuilt.
recipe=1
root="${CAIRN_TOOLS:-$HOME/.cache/cairn/tools}/kube"
bin="$root/bin"
stamp="$bin/recipe"
commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

# What to build: everything when the recipe changed, else what is missing.
build=()
for cmd in "${commands[@]}"; do
    if [[ ! -x "$bin/$cmd" || "$(cat "$stamp" 2>/dev/null)" != "$recipe" ]]; then
        build+=("$cmd")
    fi
done
if [[ ${#build[@]} -eq 0 && -x "$bin/etcd" ]]; then
    echo "$bin"
    exit 0
fi

say() { printf 'install-kube: %s\n' "$*" >&2; }
say "building ${build[*]:-etcd} into $bin (5 to 20 minutes, once)"

# A fresh work area each attempt: a half-finished earlier build is not reused.
work="$root/build"
rm -rf "$work"
mkdir -p "$work"/{apt/sources,apt/lists/partial,apt/cache/archives/partial,debs,go}

# The machine's own mirrors (and so its proxy and snapshot pinning), with
# source entries added, in a private copy: the system's apt sources and
# package lists stay untouched.
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sed 's/^Types:.*/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
        > "$work/apt/sources/debian.sources"
elif [[ -f /etc/apt/sources.list ]]; then
    sed -n 's/^deb \(.*\)/deb \1\ndeb-src \1/p' /etc/apt/sources.list \
        > "$work/apt/sources/debian.list"
else
    say "no Debian apt sources found (/etc/apt/sources.list.d/debian.sources)"
    exit 1
fi
apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$work/apt/sources"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    # The unprivileged _apt user cannot write into this private tree; the
    # files are still checked against the signed Release files.
    -o "APT::Sandbox::User=$(id -un)"
    -q
)
say "apt-get update (private lists)"
apt-get "${apt_opts[@]}" update > "$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }

say "downloading the kubernetes source package and the etcd, Go and reflect2 .debs"
(
    cd "$work/debs"
    apt-get "${apt_opts[@]}" source --download-only kubernetes
    apt-get "${apt_opts[@]}" download etcd-server golang-1.19-go golang-1.19-src \
        golang-github-modern-go-reflect2-dev
) >> "$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }

# GOPATH mode (the 1.20 tree predates a working module build from vendor/),
# so the tree must sit at $GOPATH/src/k8s.io/kubernetes.
src="$work/go/src/k8s.io/kubernetes"
mkdir -p "$(dirname "$src")"
say "unpacking"
# dpkg-source cannot check the .dsc signature without debian-keyring; apt
# already checked its hashes against the signed Sources index.
dpkg-source -x "$work"/debs/kubernetes_*.dsc "$src" > "$work/unpack.log" 2>&1 \
    || { cat "$work/unpack.log" >&2; exit 1; }
for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$work/root"
done
deb_version="$(sed -n 's/^Version: //p' "$work"/debs/kubernetes_*.dsc)"
kube_version="v${deb_version##*really}"
kube_version="${kube_version%%-*}"

# Fix 1: the vendored reflect2 1.0.1 panics at run time under Go >= 1.18
# (it links to runtime internals that changed); Debian's 1.0.2 does not.
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r "$work/root/usr/share/gocode/src/github.com/modern-go/reflect2" \
    "$src/vendor/github.com/modern-go/reflect2"

# The unpacked Go finds its GOROOT from its own path (the .deb's symlinks are
# relative). GOENV=off keeps a user's go env settings out of the build.
export PATH="$work/root/usr/lib/go-1.19/bin:$PATH"
export GOPATH="$work/go" GOCACHE="$work/gocache" GOENV=off GOFLAGS=
export GO111MODULE=off CGO_ENABLED=0
cd "$src"

# Fix 2: the source package lacks pkg/generated/openapi/zz_generated.openapi.go
# (the other generated files are there). Generate it as
# Makefile.generated_files does: every package outside vendor/ (staging named
# as its vendor/ path) with a +k8s:openapi-gen tag, except code-generator and
# sample-apiserver.
say "generating the OpenAPI definitions"
nice go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
openapi_dirs="$(
    find . \( -path ./vendor -o -path './_*' -o -path './.*' \) -prune \
        -o -type f -name '*.go' -print \
        | sed 's|^\./staging/src/|vendor/|; s|^\./||' \
        | xargs grep -l '^// *+k8s:' \
        | xargs grep -l '+k8s:openapi-gen=' \
        | xargs -n1 dirname \
        | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
        | LC_ALL=C sort -u \
        | sed 's|^|k8s.io/kubernetes/|' \
        | paste -sd,
)"
nice "$work/openapi-gen" \
    -i "$openapi_dirs" \
    -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    -r "$work/openapi-violations.report" \
    > "$work/openapi-gen.log" 2>&1 || { cat "$work/openapi-gen.log" >&2; exit 1; }

# Version stamped as hack/lib/version.sh does, so clients see v1.20.x rather
# than v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version \
    k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
    major="${kube_version#v}"; major="${major%%.*}"
    minor="${kube_version#v*.}"; minor="${minor%%.*}"
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=debian-$deb_version"
done
for cmd in "${build[@]}"; do
    say "go build $cmd $kube_version (Debian $deb_version)"
    nice go build -ldflags "$ldflags" -o "$work/out/$cmd" "./cmd/$cmd"
done

mkdir -p "$bin"
# The stamp goes first: binaries of an older recipe must never be taken
# for the new one's if this copy is interrupted.
rm -f "$stamp"
for cmd in "${build[@]}"; do
    cp "$work/out/$cmd" "$bin/"
done
cp "$work/root/usr/bin/etcd" "$bin/"
{
    echo "kubernetes $deb_version"
    echo "etcd-server $(dpkg-deb -f "$work"/debs/etcd-server_*.deb Version)"
} > "$bin/versions"
echo "$recipe" > "$stamp"
cd /
rm -rf "$work"
say "installed: $(paste -sd';' "$bin/versions")"
echo "$bin"
