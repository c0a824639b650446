//! `check` names every snapshot a problem reaches, also when snapshots
//! share trees: the walk loads each tree once, keeps only the trees that
//! reach damage, and walks those again for each snapshot. Every check
//! here merges the index in a table of its own, as checks of large
//! repositories do.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};

use cairn_core::format::{Node, NodeKind, Tree};
use cairn_core::{Id, Kind};
use cairn_repo::{BlobWriter, CheckOptions, CheckReport, Maintenance, Repository};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_pack_is_charged_to_every_snapshot_sharing_its_tree_and_no_other() {
    cairn_repo::check_in_memory_entries(0);
    let (repo, clock) = repo().await;
    let files = |seed: u64| -> Vec<(String, Vec<u8>)> {
        (0..3)
            .map(|i| (format!("f{i}"), content(seed * 10 + i, 20_000)))
            .collect()
    };
    let first = backup(&repo, "a", &files(1)).await;
    let root = repo.load_snapshot(&first).await.expect("snapshot").tree;
    clock.set(T0 + 60);
    // A second snapshot of the same tree, as an unchanged backup makes.
    let second = commit(&repo, "b", root).await;
    clock.set(T0 + 120);
    let other = backup(&repo, "c", &files(2)).await;

    // Lose the data pack holding the first tree's first file.
    let tree = repo.load_tree(&root).await.expect("tree");
    let blob = tree.nodes[0].content[0];
    let pack = repo.index().get(&blob).expect("indexed").pack;
    let listed = repo.store().list("data").await.expect("list");
    let object = listed
        .iter()
        .find(|o| o.path.contains(&pack.to_hex()))
        .expect("the pack");
    repo.store().delete(&object.path).await.expect("delete");

    let report = repo.check(CheckOptions::default()).await.expect("check");
    assert!(!report.is_ok(), "a lost pack is a problem");
    let mut expect = vec![first, second];
    expect.sort();
    let charged: Vec<_> = report
        .errors
        .iter()
        .filter(|p| !p.snapshots.is_empty())
        .collect();
    assert!(!charged.is_empty(), "{:#?}", report.errors);
    for p in charged {
        let mut named = p.snapshots.clone();
        named.sort();
        assert_eq!(named, expect, "{p:#?}");
        assert!(!named.contains(&other));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_leaves_no_table_of_its_own_behind() {
    cairn_repo::check_in_memory_entries(0);
    let (repo, clock) = repo().await;
    backup(&repo, "a", &[("f".to_owned(), content(1, 20_000))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = cairn_repo::OpenOptions::default();
    opts.clock = clock.clone();
    opts.index_dir = Some(dir.path().to_owned());
    let handle = cairn_repo::Repository::open(repo.store().clone(), PASSWORD, opts)
        .await
        .expect("open");
    let report = handle.check(CheckOptions::default()).await.expect("check");
    assert!(report.is_ok(), "{:#?}", report.errors);
    assert_eq!(report.snapshots, 1);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("index dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "index.table")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A tree of directories `dirs` (name, subtree) and files `files` (name,
/// content); blocking.
fn dir_tree(writer: &BlobWriter, dirs: &[(String, Id)], files: &[(String, Vec<Id>)]) -> Id {
    let mut nodes = Vec::new();
    for (name, sub) in dirs {
        let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
        n.subtree = Some(*sub);
        nodes.push(n);
    }
    for (name, content) in files {
        let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::File);
        n.content = content.clone();
        nodes.push(n);
    }
    let mut tree = Tree { nodes };
    tree.sort();
    let plain = tree.encode().expect("encode");
    writer.add_blob(Kind::Tree, &plain).expect("add tree").0
}

/// Twelve leaf directories of a file each, six middle ones of three
/// leaves each (overlapping), five roots of two middle ones and a leaf.
/// Leaf 3 lists a data blob never stored; middle 4 a subtree never stored.
/// Returns the roots and every data blob stored.
fn shared_trees(writer: &BlobWriter) -> (Vec<Id>, Vec<Id>) {
    let mut data = Vec::new();
    let mut leaves = Vec::new();
    for i in 0..12u64 {
        let (blob, _) = writer
            .add_blob(Kind::Data, &content(100 + i, 20_000))
            .expect("add");
        data.push(blob);
        let mut files = vec![("f".to_owned(), vec![blob])];
        if i == 3 {
            files.push(("lost".to_owned(), vec![Id::from_bytes([0xab; 32])]));
        }
        leaves.push(dir_tree(writer, &[], &files));
    }
    let mids: Vec<Id> = (0..6usize)
        .map(|j| {
            let mut dirs: Vec<(String, Id)> = (0..3)
                .map(|k| (format!("l{k}"), leaves[(2 * j + k) % 12]))
                .collect();
            if j == 4 {
                dirs.push(("gone".to_owned(), Id::from_bytes([0xcd; 32])));
            }
            dir_tree(writer, &dirs, &[])
        })
        .collect();
    let roots = (0..5usize)
        .map(|r| {
            let dirs = [
                ("a".to_owned(), mids[r]),
                ("b".to_owned(), mids[(r + 1) % 6]),
                ("c".to_owned(), leaves[(5 * r) % 12]),
            ];
            dir_tree(writer, &dirs, &[])
        })
        .collect();
    (roots, data)
}

/// Every tree and data blob snapshot `snap` reaches, walked on its own
/// (a tree that does not load is reached, not walked).
async fn reached(repo: &Repository, snap: &Id) -> HashSet<Id> {
    let root = repo.load_snapshot(snap).await.expect("snapshot").tree;
    let (mut seen, mut stack) = (HashSet::new(), vec![root]);
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        let Ok(tree) = repo.load_tree(&t).await else {
            continue;
        };
        for n in &tree.nodes {
            stack.extend(n.subtree);
            seen.extend(n.content.iter().copied());
        }
    }
    seen
}

/// The problems with the snapshots they name, sorted.
fn charged(r: &CheckReport) -> Vec<(String, Vec<Id>)> {
    let mut out: Vec<_> = r
        .errors
        .iter()
        .map(|p| {
            let mut s = p.snapshots.clone();
            s.sort();
            (p.object.clone(), s)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_sharing_trees_at_every_depth_are_charged_as_walks_of_each_find() {
    cairn_repo::check_in_memory_entries(0);
    let (repo, clock) = repo().await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let (writer, (roots, data)) = tokio::task::spawn_blocking(move || {
        let built = shared_trees(&writer);
        (writer, built)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    let mut snaps = Vec::new();
    for (i, root) in roots.iter().chain([&roots[0]]).enumerate() {
        clock.set(T0 + 60 * i as i64);
        snaps.push(commit(&repo, &format!("h{i}"), *root).await);
    }
    // Lose the data pack of leaf 7's file, and with it its neighbours'.
    let pack = repo.index().get(&data[7]).expect("indexed").pack;
    let in_pack: HashSet<Id> = data
        .iter()
        .filter(|b| repo.index().get(b).expect("indexed").pack == pack)
        .copied()
        .collect();
    let hex = pack.to_hex();
    let pack_object = format!("data/{}/{hex}", &hex[..2]);
    repo.store().delete(&pack_object).await.expect("delete");

    // What each problem's culprits are, and who reaches them on their own.
    let mut reach = HashMap::new();
    for s in &snaps {
        reach.insert(*s, reached(&repo, s).await);
    }
    let culprits = |object: &str| -> HashSet<Id> {
        if object == pack_object {
            return in_pack.clone();
        }
        let hex = object.rsplit(' ').next().expect("an id");
        HashSet::from([Id::from_hex(hex).expect("an id")])
    };
    let expect = |object: &str| -> Vec<Id> {
        let c = culprits(object);
        let named: BTreeSet<Id> = snaps
            .iter()
            .filter(|s| !reach[*s].is_disjoint(&c))
            .copied()
            .collect();
        named.into_iter().collect()
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = cairn_repo::OpenOptions::default();
    opts.clock = clock.clone();
    opts.index_dir = Some(dir.path().to_owned());
    let handle = Repository::open(repo.store().clone(), PASSWORD, opts)
        .await
        .expect("open");
    // In memory (no index directory), then with every tree on local disk.
    let in_memory = repo.check(CheckOptions::default()).await.expect("check");
    cairn_repo::check_trees_in_memory(1);
    let on_disk = handle.check(CheckOptions::default()).await.expect("check");
    cairn_repo::check_trees_in_memory(usize::MAX);
    let held = handle.check(CheckOptions::default()).await.expect("check");

    let found = charged(&in_memory);
    let objects: Vec<&str> = found.iter().map(|(o, _)| o.as_str()).collect();
    let lost = format!("data blob {}", Id::from_bytes([0xab; 32]));
    let gone = format!("tree {}", Id::from_bytes([0xcd; 32]));
    for o in [&pack_object, &lost, &gone] {
        assert!(objects.contains(&o.as_str()), "{o}: {objects:?}");
    }
    for (object, named) in &found {
        assert_eq!(named, &expect(object), "{object}");
        assert!(!named.is_empty() && named.len() < snaps.len(), "{object}");
    }
    // Every tree stored loads (the never-stored one does not), counted once.
    assert_eq!(in_memory.trees, 12 + 6 + 5);
    for other in [&on_disk, &held] {
        assert_eq!(charged(other), found);
        assert_eq!((other.trees, other.snapshots), (in_memory.trees, 6));
    }
}
