#!/usr/bin/env bash
# Whole-program comparison of cairn with restic, borg, bupstash and rustic: the same
# dataset, encryption on for all, each tool's default threads and its
# recommended compression, in one run. See benches/compare/README.md.
#
#   benches/compare/run.sh                 full scale (~2 GiB, 20-40 minutes)
#   SCALE=0.05 benches/compare/run.sh      smoke run (about a minute)
#
# Environment:
#   DATASET=pvc       pvc: a PostgreSQL cluster after pgbench, real small files,
#                     blobs and a sparse image (gen_pvc.py); synthetic: text-like
#                     files and a page file (gen_dataset.py)
#   SCALE=1           dataset size multiplier
#   SEED=1            dataset seed
#   WORK=/var/tmp/cairn-compare   scratch dir (dataset, repositories, restores)
#   OUT=$WORK-results results.md, results.json and the tools' logs; kept
#   KEEP=1            keep WORK afterwards
#   TOOLS="cairn restic borg bupstash rustic"
#   CAIRN_BIN=path    measure this cairn binary instead of building one
#   CAIRN_REV=rev     build cairn from this git revision (git archive), not
#                     from the working tree
#   CARGO_TARGET_DIR  default ~/.cache/cairn/target-bench
#
# Exits nonzero if any tool fails or restores something other than the data.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
export SCALE="${SCALE:-1}" SEED="${SEED:-1}" DATASET="${DATASET:-pvc}"
case "$DATASET" in
    pvc) generator="$here/gen_pvc.py" ;;
    synthetic) generator="$here/gen_dataset.py" ;;
    *) echo "DATASET must be pvc or synthetic" >&2 && exit 2 ;;
esac
WORK="${WORK:-/var/tmp/cairn-compare}"
OUT="${OUT:-$WORK-results}"
TOOLS="${TOOLS:-cairn restic borg bupstash rustic}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target-bench}"
PASSWORD=compare-bench
export CAIRN_PASSWORD="$PASSWORD" RESTIC_PASSWORD="$PASSWORD" BORG_PASSPHRASE="$PASSWORD" \
    RUSTIC_PASSWORD="$PASSWORD"
# Settings from the caller's environment must not redirect any tool.
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_CACHE_DIR RESTIC_REPOSITORY \
    RESTIC_PASSWORD_FILE BORG_REPO BUPSTASH_REPOSITORY BUPSTASH_KEY RUSTIC_REPOSITORY \
    RUSTIC_PASSWORD_FILE RUSTIC_PASSWORD_COMMAND

log() { echo "== $*" >&2; }

if [ -e "$WORK" ]; then
    echo "$WORK exists; remove it or choose another WORK=" >&2
    exit 1
fi
mkdir -p "$WORK" "$OUT"
rm -f "$OUT"/*.log "$OUT/results.tsv"
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT

# At SCALE=1: the synthetic dataset (~1.1 GiB allocated, 2 GiB apparent) or
# the pvc one (~2.2 GiB allocated, 3 GiB apparent), one repository per tool
# (about as large as the allocated data) and one restore at a time (up to the
# apparent size: restic 0.14 does not restore holes).
gib=7; [ "$DATASET" = pvc ] && gib=11
need_kib=$(awk -v s="$SCALE" -v g="$gib" 'BEGIN { printf "%d", s * g * 1024 * 1024 }')
avail_kib=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
if [ "$avail_kib" -lt "$need_kib" ]; then
    echo "$WORK has $((avail_kib >> 20)) GiB free, the run needs about $((need_kib >> 20)) GiB" >&2
    exit 1
fi

# --- tools ------------------------------------------------------------------
"$top/scripts/install-peers.sh" > "$WORK/peers"
bupstash_bin=$(awk '$1 == "bupstash" { print $3 }' "$WORK/peers")
rustic_bin=$(awk '$1 == "rustic" { print $3 }' "$WORK/peers")
if [ -n "${CAIRN_BIN:-}" ]; then
    cairn_bin="$(realpath "$CAIRN_BIN")"
elif [ -n "${CAIRN_REV:-}" ]; then
    # Resolved once: others may commit while this builds.
    CAIRN_REV=$(git -C "$top" rev-parse --verify "$CAIRN_REV^{commit}")
    log "building cairn $CAIRN_REV (release)"
    mkdir -p "$WORK/cairn-src"
    git -C "$top" archive "$CAIRN_REV" | tar -x -C "$WORK/cairn-src"
    (cd "$WORK/cairn-src" && cargo build --release -p cairn-cli >&2)
    cairn_bin="$CARGO_TARGET_DIR/release/cairn"
else
    log "building cairn (release)"
    (cd "$top" && cargo build --release -p cairn-cli >&2)
    cairn_bin="$CARGO_TARGET_DIR/release/cairn"
fi
cairn_version="$("$cairn_bin" --version | awk '{print $2}')"
[ -z "${CAIRN_REV:-}" ] || cairn_version="$cairn_version ($(git -C "$top" rev-parse --short "$CAIRN_REV"))"

# --- dataset ----------------------------------------------------------------
data="$WORK/data"
log "generating the $DATASET dataset (SCALE=$SCALE SEED=$SEED)"
/usr/bin/time -f '%e' -o "$WORK/gen.time" python3 "$generator" generate "$data"
data_files=$(find "$data" -type f | wc -l)
data_bytes=$(du -sb "$data" | cut -f1)
data_alloc=$(du -sB1 "$data" | cut -f1)
log "dataset: $data_files files, $data_bytes bytes ($data_alloc allocated), $(cat "$WORK/gen.time") s"

results="$OUT/results.tsv"
: > "$results"
failed=0
drop_caches_ok=1
drop_caches() {
    sync
    if [ "$drop_caches_ok" = 1 ] && ! { echo 3 > /proc/sys/vm/drop_caches; } 2> /dev/null; then
        log "cannot drop the page cache (not root?): runs after the first may read from memory"
        drop_caches_ok=0
    fi
}

# measure TOOL PHASE CMD...: runs CMD on a cold page cache and records wall,
# user and system seconds and peak RSS (KiB). Output goes to OUT/TOOL-PHASE.log.
measure() {
    local tool="$1" phase="$2"
    shift 2
    local out="$OUT/$tool-$phase.log"
    drop_caches
    if /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" > "$out" 2>&1; then
        echo "$tool $phase $(tail -n 1 "$WORK/time")" >> "$results"
        log "$tool $phase: $(tail -n 1 "$WORK/time") (wall user sys rss-KiB)"
    else
        log "$tool $phase FAILED; last lines of $out:"
        tail -n 20 "$out" >&2
        echo "$tool $phase failed" >> "$results"
        failed=1
    fi
}

# Each tool keeps its repository and all of its local state (caches, send log,
# files cache) under WORK/TOOL, so nothing is shared with earlier runs. Set
# through each tool's own environment variables, so the commands below are
# plain programs that /usr/bin/time can run.
dir() { echo "$WORK/$1"; }
export CAIRN_REPOSITORY="$(dir cairn)/repo" CAIRN_CACHE_DIR="$(dir cairn)/cache"
export RESTIC_REPOSITORY="$(dir restic)/repo" RESTIC_CACHE_DIR="$(dir restic)/cache"
export BORG_REPO="$(dir borg)/repo" BORG_BASE_DIR="$(dir borg)/base"
export BUPSTASH_REPOSITORY="$(dir bupstash)/repo" BUPSTASH_KEY="$(dir bupstash)/key" \
    BUPSTASH_QUERY_CACHE="$(dir bupstash)/query-cache"
export RUSTIC_REPOSITORY="$(dir rustic)/repo" RUSTIC_CACHE_DIR="$(dir rustic)/cache"
PATH="$(dirname "$cairn_bin"):$(dirname "$bupstash_bin"):$(dirname "$rustic_bin"):$PATH"

init_tool() {
    mkdir -p "$(dir "$1")"
    case "$1" in
        # Default Argon2id parameters, zstd level 3.
        cairn) cairn init -q ;;
        # Format version 2 is the one with compression (default "auto").
        restic) restic init -q --repository-version 2 ;;
        borg) borg init -e repokey-blake2 ;;
        bupstash) bupstash new-key -o "$BUPSTASH_KEY" && bupstash init ;;
        # Repository version 2 with zstd level 3 are its defaults.
        rustic) rustic init ;;
    esac > "$OUT/$1-init.log" 2>&1 || {
        log "$1: init failed"
        cat "$OUT/$1-init.log" >&2
        exit 1
    }
}

# backup TOOL PHASE: back up the dataset, keeping each tool's summary in its
# log (bupstash prints only the new item's id, which the restore needs).
backup() {
    case "$1" in
        cairn) measure cairn "$2" cairn backup "$data" ;;
        restic) measure restic "$2" restic backup "$data" ;;
        # lz4 is borg 1.2's default; named here so the setting is visible.
        borg) measure borg "$2" borg create --stats --compression lz4 "::snap-$2" "$data" ;;
        bupstash) measure bupstash "$2" bupstash put -q --send-log "$(dir bupstash)/send-log" "$data" ;;
        rustic) measure rustic "$2" rustic backup --no-progress "$data" ;;
    esac
}

# restore TOOL: the latest snapshot into WORK/TOOL/restore.
restore() {
    local to
    to="$(dir "$1")/restore"
    mkdir -p "$to"
    case "$1" in
        cairn) measure cairn restore cairn restore -q latest --target "$to" ;;
        restic) measure restic restore restic restore -q latest --target "$to" ;;
        rustic) measure rustic restore rustic restore --no-progress latest "$to" ;;
        borg) measure borg restore sh -c 'cd "$1" && exec borg extract ::snap-incremental' _ "$to" ;;
        bupstash)
            # The id that the incremental put printed.
            measure bupstash restore bupstash restore -q --into "$to" \
                "id=$(tail -n 1 "$OUT/bupstash-incremental.log")"
            ;;
    esac
}

# The directory of TOOL's restore that holds the dataset's root.
restored_root() {
    case "$1" in
        # restic, borg and rustic keep the absolute path below the target.
        restic | borg | rustic) echo "$(dir "$1")/restore$data" ;;
        *) echo "$(dir "$1")/restore" ;;
    esac
}

manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

for t in $TOOLS; do
    init_tool "$t"
done

repo_size() { # PHASE
    for t in $TOOLS; do
        echo "$t repo_bytes_$1 $(du -sb "$(dir "$t")/repo" | cut -f1)" >> "$results"
    done
}

log "cold backups"
for t in $TOOLS; do backup "$t" cold; done
repo_size cold
log "no-change backups"
for t in $TOOLS; do backup "$t" nochange; done
repo_size nochange
log "changing the dataset"
python3 "$generator" mutate "$data"
log "incremental backups"
for t in $TOOLS; do backup "$t" incremental; done
repo_size incremental

for t in $TOOLS; do
    # Everything else under WORK/TOOL is the tool's local state.
    state=$(du -sb --exclude=repo "$(dir "$t")" | cut -f1)
    echo "$t state_bytes $state" >> "$results"
done

log "restores"
manifest "$data" > "$WORK/manifest"
for t in $TOOLS; do
    restore "$t"
    root="$(restored_root "$t")"
    manifest "$root" > "$WORK/manifest-$t" 2> /dev/null || true
    if cmp -s "$WORK/manifest-$t" "$WORK/manifest"; then
        verdict=verified
    else
        verdict=WRONG
        failed=1
    fi
    # Whether the sparse image came back sparse (allocated bytes).
    img=$(du -B1 "$root/disk.img" 2> /dev/null | cut -f1 || echo 0)
    echo "$t verified $verdict" >> "$results"
    echo "$t restored_image_alloc ${img:-0}" >> "$results"
    echo "restore $t: $verdict ($(wc -l < "$WORK/manifest-$t") files restored, $(wc -l < "$WORK/manifest") expected)"
    rm -rf "$(dir "$t")/restore"
done

cat > "$OUT/meta.tsv" << EOF
scale	$SCALE
seed	$SEED
host_cpus	$(nproc)
kernel	$(uname -r)
date	$(date -u +%Y-%m-%dT%H:%M:%SZ)
dataset	$DATASET
drop_caches	$drop_caches_ok
dataset_files	$data_files
dataset_bytes	$data_bytes
dataset_alloc	$data_alloc
tools	$TOOLS
version_cairn	$cairn_version
version_restic	$(awk '$1 == "restic" { print $2 }' "$WORK/peers")
version_borg	$(awk '$1 == "borg" { print $2 }' "$WORK/peers")
version_bupstash	$(awk '$1 == "bupstash" { print $2 }' "$WORK/peers")
version_rustic	$(awk '$1 == "rustic" { print $2 }' "$WORK/peers")
EOF
python3 "$here/report.py" "$OUT" | tee "$OUT/results.md"
echo "results: $OUT/results.md, $OUT/results.json; logs: $OUT/*.log"
exit "$failed"
