#!/usr/bin/env bash
# Builds cairn's container image without a registry or a container engine,
# as an archive that `ctr -n k8s.io images import`, `docker load` and
# `skopeo copy oci-archive:OUT.tar ...` read (an OCI image layout that also
# carries Docker's manifest.json; scripts/oci-archive.py writes it).
#
#   scripts/image.sh OUT.tar [NAME]          cairn's image: cairn, cairn-agent
#                                            and cairn-controller (release
#                                            builds unless CAIRN_IMAGE_PROFILE
#                                            says dev; no test hooks) in
#                                            /usr/local/bin, the shared
#                                            libraries they link, CA
#                                            certificates, users root and
#                                            nonroot (65532, the default);
#                                            NAME defaults to
#                                            cairn.test/cairn:VERSION
#   scripts/image.sh --rootfs DIR            only the files of cairn's image,
#                                            into DIR (deploy/Dockerfile
#                                            builds the same image with it)
#   scripts/image.sh --pause OUT.tar [NAME]  a small image for pod sandboxes
#                                            and helper pods: busybox-static,
#                                            sleeping until told to stop;
#                                            NAME defaults to
#                                            cairn.test/pause:VERSION
#   scripts/image.sh --postgres OUT.tar [NAME]
#                                            PostgreSQL from the host's Debian
#                                            postgresql package (major
#                                            PG_MAJOR, default 15): its
#                                            server binaries, pgbench and
#                                            psql with the libraries ldd
#                                            lists, its share/ files and
#                                            time zones, busybox-static for
#                                            the entrypoint; user postgres
#                                            (999, the default). The
#                                            entrypoint initialises $PGDATA
#                                            (default /data/pgdata) when it
#                                            is empty, with POSTGRES_PASSWORD
#                                            for the user postgres over TCP
#                                            (scram-sha-256), then runs the
#                                            server listening on every
#                                            address; NAME defaults to
#                                            cairn.test/postgres:VERSION
#
# CAIRN_IMAGE_PROFILE picks the cargo profile of cairn's binaries: release
# (the default, what deploy/Dockerfile ships) or dev, which scripts/test.sh
# uses for the real-node tier: its dependencies are the optimised ones the
# tests already compiled, so a cold run skips a second build of every crate
# (docs/adr/0018-test-image-from-the-dev-profile.md). No profile has test
# hooks: the `testing` features are never on here.
#
# VERSION is the workspace version. The archive depends only on the
# binaries and the host's Debian files: entries are sorted, owned by root
# and dated with the last commit (SOURCE_DATE_EPOCH).
set -euo pipefail
export LC_ALL=C
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mode=cairn
case "${1:-}" in
    --pause) mode=pause; shift ;;
    --postgres) mode=postgres; shift ;;
    --rootfs) mode=rootfs; shift ;;
esac
out="${1:-}"
[[ -n "$out" && ( $# -le 1 || ( $# -eq 2 && "$mode" != rootfs ) ) ]] || {
    echo "usage: $0 [--pause|--postgres] OUT.tar [NAME] | $0 --rootfs DIR" >&2
    exit 2
}
out="$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)/$(basename "$out")"
cd "$here/.."
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"

stage="$(mktemp -d "${TMPDIR:-/tmp}/cairn-image.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"
if [[ "$mode" == rootfs ]]; then
    root="$out"
fi
mkdir -p "$root"/{etc,tmp}

# Copies FILE to the same path in the image, following symlinks.
copy_in() {
    install -D -m "$2" "$(readlink -f "$1")" "$root$1"
}

# Copies FILE and every shared library the dynamic linker would load for
# it, at the paths it looks for (the interpreter included).
copy_with_libs() {
    local lib
    [[ -e "$root$1" ]] || copy_in "$1" 0755
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
        [[ -e "$root$lib" ]] || copy_in "$lib" 0755
    done
}

busybox_in() {
    [[ -x /bin/busybox ]] && ! ldd /bin/busybox > /dev/null 2>&1 || {
        echo "image.sh: a static /bin/busybox is needed (Debian busybox-static)" >&2
        exit 1
    }
    copy_in /bin/busybox 0755
    for applet in $(/bin/busybox --list); do
        [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
    done
}

pause_rootfs() {
    busybox_in
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        > "$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
    # PID 1 gets no default signal handlers: exit on TERM explicitly, so a
    # pod using this image stops at once rather than after its grace period.
    cat > "$stage/config.json" <<'JSON'
{"Entrypoint": ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
 "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
JSON
}

postgres_rootfs() {
    local pg="/usr/lib/postgresql/${PG_MAJOR:-15}" share="/usr/share/postgresql/${PG_MAJOR:-15}" f
    [[ -x "$pg/bin/postgres" && -d "$share" ]] || {
        echo "image.sh: PostgreSQL is needed in $pg (Debian postgresql-${PG_MAJOR:-15})" >&2
        exit 1
    }
    busybox_in
    for f in postgres initdb pg_ctl pg_controldata psql pgbench; do
        copy_with_libs "$pg/bin/$f"
    done
    # Loadable modules (PL/pgSQL and the text search dictionaries, which
    # initdb installs, encoding conversions) and what they link; not the
    # JIT, whose LLVM alone would triple the image.
    while read -r f; do
        copy_with_libs "$f"
    done < <(find "$pg/lib" -name '*.so' -type f ! -name 'llvmjit*')
    mkdir -p "$root$share" "$root/usr/share/zoneinfo"
    cp -a "$share/." "$root$share/"
    rm -rf "$root$share/man"
    # Debian's build reads time zones from the system's tzdata.
    cp -a /usr/share/zoneinfo/. "$root/usr/share/zoneinfo/"
    rm -rf "$root$pg/lib/bitcode"
    printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' \
        > "$root/etc/passwd"
    printf 'root:x:0:\npostgres:x:999:\n' > "$root/etc/group"
    install -D -m 0755 /dev/stdin "$root/usr/local/bin/postgres-entrypoint" <<SH
#!/bin/sh
# Initialises \$PGDATA when empty, then runs the server as PID 1.
set -eu
: "\${PGDATA:=/data/pgdata}"
export PGDATA
if [ ! -s "\$PGDATA/PG_VERSION" ]; then
    : "\${POSTGRES_PASSWORD:?is needed to initialise \$PGDATA}"
    pwfile="\$(mktemp)"
    printf '%s\\n' "\$POSTGRES_PASSWORD" > "\$pwfile"
    $pg/bin/initdb -U postgres --pwfile="\$pwfile" --auth-local=trust \\
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C
    rm -f "\$pwfile"
    echo 'host all all 0.0.0.0/0 scram-sha-256' >> "\$PGDATA/pg_hba.conf"
fi
exec $pg/bin/postgres -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off "\$@"
SH
    cat > "$stage/config.json" <<JSON
{"Entrypoint": ["/usr/local/bin/postgres-entrypoint"],
 "User": "999:999",
 "Env": ["PATH=$pg/bin:/usr/local/bin:/usr/bin:/bin", "TZ=UTC", "PGDATA=/data/pgdata"],
 "ExposedPorts": {"5432/tcp": {}},
 "Labels": {"org.opencontainers.image.title": "postgres (Debian postgresql-${PG_MAJOR:-15})",
            "org.opencontainers.image.version": "$version"}}
JSON
}

cairn_rootfs() {
    local target="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}" bin lib
    local profile="${CAIRN_IMAGE_PROFILE:-release}" dir
    case "$profile" in
        release) dir=release ;;
        dev) dir=debug ;;
        *)
            echo "image.sh: CAIRN_IMAGE_PROFILE is release or dev, not '$profile'" >&2
            exit 2
            ;;
    esac
    echo "image.sh: cargo build --profile $profile (cairn-cli, cairn-kube; no test hooks)" >&2
    CARGO_TARGET_DIR="$target" cargo build --profile "$profile" --locked \
        -p cairn-cli -p cairn-kube >&2
    for bin in cairn cairn-agent cairn-controller; do
        install -D -m 0755 "$target/$dir/$bin" "$root/usr/local/bin/$bin"
        # Line tables help a developer's backtrace, not a cluster.
        strip --strip-debug "$root/usr/local/bin/$bin"
        # Every shared library the dynamic linker would load, at the path it
        # looks for (the interpreter included).
        for lib in $(ldd "$root/usr/local/bin/$bin" | grep -o '/[^ ]*'); do
            [[ -e "$root$lib" ]] || copy_in "$lib" 0755
        done
    done
    # Mozilla's roots as Debian's ca-certificates ships them, not the host's
    # generated bundle (which may hold locally added authorities). The S3
    # client needs the file even for http:// endpoints.
    local certs=(/usr/share/ca-certificates/mozilla/*.crt)
    [[ -f "${certs[0]}" ]] || {
        echo "image.sh: Debian's ca-certificates package is needed" >&2
        exit 1
    }
    mkdir -p "$root/etc/ssl/certs"
    cat "${certs[@]}" > "$root/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' \
        > "$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
    # Non-root unless a component asks for root (the agent's DaemonSet does).
    cat > "$stage/config.json" <<JSON
{"Entrypoint": ["/usr/local/bin/cairn-agent"],
 "User": "65532:65532",
 "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
 "Labels": {"org.opencontainers.image.title": "cairn",
            "org.opencontainers.image.version": "$version"}}
JSON
}

if [[ "$mode" == pause ]]; then
    name="${2:-cairn.test/pause:$version}"
    pause_rootfs
elif [[ "$mode" == postgres ]]; then
    name="${2:-cairn.test/postgres:$version}"
    postgres_rootfs
else
    name="${2:-cairn.test/cairn:$version}"
    cairn_rootfs
fi
chmod 0644 "$root/etc/passwd" "$root/etc/group"
find "$root" -type d -exec chmod 0755 {} +
chmod 1777 "$root/tmp"
if [[ "$mode" == rootfs ]]; then
    exit 0
fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
python3 "$here/oci-archive.py" "$root" "$out" "$name" "$stage/config.json"
echo "$name"
