//! How open, backup and prune grow with the number of chunks in a real
//! repository, and how much of the index a client downloads again after a
//! prune (benches/prune_scale.sh).
//!
//! `prune-scale DIR CHUNKS [flat]` builds a local repository in DIR (which
//! must not exist) holding CHUNKS data blobs of 64 bytes in ten snapshots,
//! on a clock it moves, then measures, printing one tab-separated line:
//!
//! - `open_s`, `open_bytes`: a new client opening it (key, index table);
//! - `compact_s`: the first prune (it merges the backups' index files);
//! - `backup_s`: a backup of 1,000 new blobs by a client whose index table
//!   is in place (as a node agent's is between backups);
//! - `prune1_s`, `prune2_s`: after forgetting the oldest snapshot, the
//!   prune that tombstones its blobs and, a grace period later, the one
//!   that deletes their packs;
//! - `index_bytes`: the index after all that;
//! - `redownload_bytes`: what a client that had read the index before the
//!   forget downloads when it opens again (its object cache and index
//!   table kept, as the CLI and the node agent keep them);
//! - `kept_files`: index files the last prune left as they were;
//! - `prune_peak_mib`: the largest peak resident set of the three prunes;
//!   `compact_mib`, `prune1_mib`, `prune2_mib`: each one's;
//! - `check_s`, `check_peak_mib`: `check` (structure, no data read) after
//!   them, its seconds and peak resident set.
//!
//! Each prune runs as a `cairn prune` process does: in a process of its own
//! (this program, `prune-one`, under `/usr/bin/time`) that opens the
//! repository, its index table built or brought up to date then (outside
//! the times, inside the peak), and prunes.
//!
//! With `flat`, prune rewrites every index file (no stable tier), for
//! comparison. With `dirs`, every file of [`PER_DIR`] chunks sits in a
//! directory of its own (a tree per chunk: a repository of many
//! directories, as a file server's, at its extreme), tiered. Blobs are
//! tiny so that millions fit on this disk; packs are the smallest allowed
//! (64 KiB), about 590 blobs each.

use std::sync::Arc;
use std::time::Instant;

use cairn::layers::core::format::{
    Node, NodeKind, RootLayout, Snapshot, SnapshotStats, Source, Timestamp, Tree,
};
use cairn::layers::core::{Clock, FixedClock};
use cairn::layers::repo::{BlobWriter, MIN_GRACE};
use cairn::{Cache, Repository, Store};
use cairn::{CheckOptions, Create, Id, InitOptions, Kind, Maintenance, OpenOptions, PruneOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &[u8] = b"bench";
const T0: i64 = 1_800_000_000;
const SNAPSHOTS: u64 = 10;
/// The local disk the merged index may take (96 bytes per entry).
const TABLE_LIMIT: u64 = 8 << 30;
/// Chunks per file node: a snapshot's files stay well below the tree limit.
const PER_FILE: u64 = 10_000;
/// Chunks per file with `dirs`, each file in a directory of its own: a
/// tree per chunk, the most trees a number of chunks can make.
const PER_DIR: u64 = 1;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let one = args.get(1).map(String::as_str);
    if matches!(one, Some("prune-one" | "check-one")) {
        // The allocator as `cairn prune`, `cairn check` and
        // `cairn-controller maintain` set it.
        cairn::tune_allocator();
        cairn::unmap_large_buffers();
    }
    match one {
        Some("prune-one") => return prune_one(&args[2..]).await,
        Some("check-one") => return check_one(&args[2..]).await,
        _ => {}
    }
    let usage = "usage: prune-scale DIR CHUNKS [flat|dirs]";
    let dir = std::path::PathBuf::from(args.get(1).ok_or(usage)?);
    let chunks: u64 = args.get(2).ok_or(usage)?.parse()?;
    let flat = args.get(3).is_some_and(|a| a == "flat");
    let dirs = args.get(3).is_some_and(|a| a == "dirs");
    let url = dir.join("repo").to_string_lossy().into_owned();
    let clock = Arc::new(FixedClock::new(T0));
    let mut init = InitOptions::new("bench", "bench", T0);
    init.data_pack_size = Some(64 * 1024);
    init.clock = clock.clone();
    drop(Repository::init(Store::open(&url, Create::IfMissing)?, PASSWORD, init).await?);
    // The handle that backs up and prunes keeps its merged index on disk,
    // as the CLI does, and may hold ten million entries and more.
    let mut o = OpenOptions::default();
    o.clock = clock.clone();
    o.index_dir = Some(dir.join("writer"));
    o.index_table_limit = TABLE_LIMIT;
    let repo = Repository::open(Store::open(&url, Create::Never)?, PASSWORD, o).await?;
    let mut snaps = Vec::new();
    let mut next = 0u64;
    for s in 0..SNAPSHOTS {
        clock.set(T0 + s as i64 * 3600);
        let n = chunks / SNAPSHOTS + u64::from(s < chunks % SNAPSHOTS);
        snaps.push(backup(&repo, &mut next, n, dirs).await?);
    }
    // A client as the CLI and the node agent open a remote repository:
    // immutable objects (index files among them) cached on local disk, and
    // the merged index table beside them.
    let open = |client: &str| {
        let mut o = OpenOptions::default();
        o.clock = clock.clone();
        o.index_dir = Some(dir.join(client).join("index"));
        o.index_table_limit = TABLE_LIMIT;
        let cache = Cache::open(&dir.join(client).join("objects"));
        let store = Store::open(&url, Create::Never);
        async move {
            let store = store?.with_cache(Arc::new(cache?));
            Ok::<_, Error>(Repository::open(store, PASSWORD, o).await?)
        }
    };
    let t = Instant::now();
    let client = open("client").await?;
    let open_s = t.elapsed().as_secs_f64();
    let open_bytes = client.store().metrics().bytes_down;
    drop(client);

    // Each prune runs as `cairn prune` does: a process of its own that
    // opens the repository (its index table in a directory of its own)
    // and prunes; its peak resident set is the process's.
    drop(repo);
    let mut peaks: Vec<f64> = Vec::new();
    let mut prune = |now: i64| {
        let (secs, kept, deleted, mib) = prune_child(&dir, now, flat)?;
        peaks.push(mib);
        Ok::<_, Error>((secs, kept, deleted))
    };
    let (compact_s, _, _) = prune(clock.now())?;
    // A client reads the compacted index and backs up a small change, as a
    // node agent with its table in place does; then the oldest snapshot
    // goes.
    let client = open("client").await?;
    clock.set(T0 + SNAPSHOTS as i64 * 3600);
    let t = Instant::now();
    backup(&client, &mut next, 1000, dirs).await?;
    let backup_s = t.elapsed().as_secs_f64();
    drop(client);
    open("forget").await?.forget_snapshot(&snaps[0]).await?;
    clock.set(clock.now() + 60);
    let (prune1_s, _, _) = prune(clock.now())?;
    clock.set(clock.now() + MIN_GRACE + 1);
    let (prune2_s, kept_files, packs_deleted) = prune(clock.now())?;
    let (check_s, check_mib) = check_child(&dir, clock.now())?;
    let peak = peaks.iter().copied().fold(0f64, f64::max);
    let each: Vec<String> = peaks.iter().map(|m| format!("{m:.1}")).collect();
    let repo = open("forget").await?;
    let redownload_bytes = open("client").await?.store().metrics().bytes_down;
    let index = repo.store().list("index").await?;
    let index_bytes: u64 = index.iter().map(|o| o.size).sum();
    println!(
        "chunks\tpolicy\topen_s\topen_bytes\tbackup_s\tcompact_s\tprune1_s\tprune2_s\tindex_bytes\tredownload_bytes\tkept_files\tpacks_deleted\tprune_peak_mib\tcheck_s\tcheck_peak_mib\tcompact_mib\tprune1_mib\tprune2_mib"
    );
    println!(
        "{chunks}\t{}\t{open_s:.3}\t{open_bytes}\t{backup_s:.3}\t{compact_s:.3}\t{prune1_s:.3}\t{prune2_s:.3}\t{index_bytes}\t{redownload_bytes}\t{kept_files}\t{packs_deleted}\t{peak:.1}\t{check_s:.3}\t{check_mib:.1}\t{}",
        if flat {
            "flat"
        } else if dirs {
            "dirs"
        } else {
            "tiered"
        },
        each.join("\t"),
    );
    Ok(())
}

/// The repository in DIR opened as `cairn` opens it, its index table in
/// DIR/maint, on a clock fixed at NOW.
async fn open_maint(dir: &std::path::Path, now: i64) -> Result<Repository, Error> {
    let mut o = OpenOptions::default();
    o.clock = Arc::new(FixedClock::new(now));
    o.index_dir = Some(dir.join("maint"));
    o.index_table_limit = TABLE_LIMIT;
    let url = dir.join("repo").to_string_lossy().into_owned();
    Ok(Repository::open(Store::open(&url, Create::Never)?, PASSWORD, o).await?)
}

/// `prune-scale check-one DIR NOW`: `cairn check` (structure, no data read)
/// as a process of its own; prints its seconds.
async fn check_one(args: &[String]) -> Result<(), Error> {
    let usage = "usage: prune-scale check-one DIR NOW";
    let dir = std::path::PathBuf::from(args.first().ok_or(usage)?);
    let repo = open_maint(&dir, args.get(1).ok_or(usage)?.parse()?).await?;
    let t = Instant::now();
    let report = repo.check(CheckOptions::default()).await?;
    if !report.is_ok() {
        return Err(format!("check found problems: {:?}", report.errors).into());
    }
    println!("{:.3}", t.elapsed().as_secs_f64());
    Ok(())
}

/// `prune-scale prune-one DIR NOW [flat]`: one prune as a `cairn prune`
/// process runs it. Opens the repository in DIR, its index table in
/// DIR/maint, on a clock fixed at NOW; prints the prune's seconds, the
/// index files it kept and the packs it deleted.
async fn prune_one(args: &[String]) -> Result<(), Error> {
    let usage = "usage: prune-scale prune-one DIR NOW [flat]";
    let dir = std::path::PathBuf::from(args.first().ok_or(usage)?);
    let repo = open_maint(&dir, args.get(1).ok_or(usage)?.parse()?).await?;
    let mut opts = PruneOptions::default();
    opts.grace = MIN_GRACE;
    if args.get(2).is_some_and(|a| a == "flat") {
        opts.stable_index_entries = usize::MAX;
    }
    let t = Instant::now();
    let r = repo.prune(opts).await?;
    let secs = t.elapsed().as_secs_f64();
    println!("{secs:.3}\t{}\t{}", r.index_files_kept, r.packs_deleted);
    Ok(())
}

/// Runs `prune-scale OP DIR NOW EXTRA` (this program) in a child process
/// under `/usr/bin/time`: the fields it printed and its peak resident set
/// in MiB.
fn child(
    op: &str,
    dir: &std::path::Path,
    now: i64,
    extra: &str,
) -> Result<(Vec<String>, f64), Error> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%M"]).arg(exe).arg(op).arg(dir);
    cmd.arg(now.to_string()).arg(extra);
    let out = cmd.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{op} failed: {stderr}").into());
    }
    let kib: f64 = stderr.lines().last().ok_or("no peak RSS")?.trim().parse()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fields = stdout.trim().split('\t').map(str::to_owned).collect();
    Ok((fields, kib / 1024.0))
}

/// [`prune_one`] in a child process: its seconds, index files kept, packs
/// deleted, and peak resident set in MiB.
fn prune_child(
    dir: &std::path::Path,
    now: i64,
    flat: bool,
) -> Result<(f64, usize, usize, f64), Error> {
    let (f, mib) = child("prune-one", dir, now, if flat { "flat" } else { "tiered" })?;
    let [secs, kept, deleted] = &f[..] else {
        return Err(format!("prune-one printed {f:?}").into());
    };
    Ok((secs.parse()?, kept.parse()?, deleted.parse()?, mib))
}

/// [`check_one`] in a child process: its seconds and peak resident set.
fn check_child(dir: &std::path::Path, now: i64) -> Result<(f64, f64), Error> {
    let (f, mib) = child("check-one", dir, now, "")?;
    let [secs] = &f[..] else {
        return Err(format!("check-one printed {f:?}").into());
    };
    Ok((secs.parse()?, mib))
}

/// Stores `n` new 64-byte blobs (numbered from `next`) in files of
/// [`PER_FILE`] chunks under one root tree (with `dirs`, files of
/// [`PER_DIR`] chunks, each in a directory of its own under it), and saves
/// a snapshot.
async fn backup(repo: &Repository, next: &mut u64, n: u64, dirs: bool) -> Result<Id, Error> {
    let writer = BlobWriter::new(repo)?;
    let first = *next;
    *next += n;
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let mut nodes = Vec::new();
        let mut at = first;
        let per_file = if dirs { PER_DIR } else { PER_FILE };
        while at < first + n {
            let end = (at + per_file).min(first + n);
            let mut node = Node::new(format!("f{at:012}").into_bytes(), NodeKind::File);
            for i in at..end {
                let data = blake3::hash(&i.to_le_bytes());
                let mut blob = [0u8; 64];
                blob[..32].copy_from_slice(data.as_bytes());
                blob[32..].copy_from_slice(blake3::hash(data.as_bytes()).as_bytes());
                node.content.push(writer.add_blob(Kind::Data, &blob)?.0);
            }
            node.size = 64 * (end - at);
            if dirs {
                let listing = Tree { nodes: vec![node] }.encode()?;
                let mut dir = Node::new(format!("d{at:012}").into_bytes(), NodeKind::Dir);
                dir.subtree = Some(writer.add_blob(Kind::Tree, &listing)?.0);
                node = dir;
            }
            nodes.push(node);
            at = end;
        }
        let mut tree = Tree { nodes };
        tree.sort();
        let root = writer.add_blob(Kind::Tree, &tree.encode()?)?.0;
        Ok::<_, Error>((writer, root))
    })
    .await??;
    writer.finish().await?;
    let snap = Snapshot {
        time: Timestamp {
            secs: repo.clock().now(),
            nanos: 0,
        },
        tree: root,
        hostname: "bench".into(),
        username: "bench".into(),
        paths: vec![b"/data".to_vec()],
        root_layout: RootLayout::Directory,
        source: Source::Filesystem,
        tags: vec![],
        parent: None,
        stats: SnapshotStats::default(),
        program_version: "bench".into(),
    };
    Ok(repo.save_snapshot(&snap).await?)
}
