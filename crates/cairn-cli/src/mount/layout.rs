//! The directories a mounted repository shows above the snapshots, computed
//! from the snapshot list alone (a pure function, rebuilt on refresh):
//!
//! ```text
//! ids/<short id>/                       the snapshot's tree (the one real copy)
//! snapshots/<time>  -> ../ids/<short id>
//! snapshots/latest  -> <time of the newest>
//! hosts/<host>/<time>  -> ../../ids/<short id>
//! tags/<tag>/<time>    -> ../../ids/<short id>
//! claims/<namespace>/<claim>/<time>  -> ../../../ids/<short id>
//! ```
//!
//! Every entry but `ids/` is a relative symlink, so a snapshot is one
//! directory whatever the number of ways to reach it: the kernel caches its
//! pages once, and `find` or `du` over the mount count it once.

use std::collections::BTreeMap;

use cairn::{Id, Snapshot, Source, Timestamp};

use crate::output::time_rfc3339;

/// One entry of a layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A directory of the layout.
    Dir(Dir),
    /// A relative symlink.
    Link(Vec<u8>),
    /// A snapshot's root directory (under `ids/`).
    Snapshot(SnapshotRoot),
}

/// What a snapshot's root directory needs: its tree and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotRoot {
    /// The snapshot.
    pub(crate) id: Id,
    /// Its root tree.
    pub(crate) tree: Id,
    /// When it was taken: the directory's times.
    pub(crate) time: Timestamp,
}

/// A directory of the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dir {
    /// Entries by name.
    pub(crate) entries: BTreeMap<Vec<u8>, Entry>,
    /// The newest snapshot below it: the directory's times.
    pub(crate) time: Timestamp,
}

impl Dir {
    /// The entry at `path` (components from this directory); `None` if it
    /// is not there.
    pub(crate) fn get(&self, path: &[Vec<u8>]) -> Option<&Entry> {
        let (first, rest) = path.split_first()?;
        let entry = self.entries.get(first)?;
        match (entry, rest.is_empty()) {
            (_, true) => Some(entry),
            (Entry::Dir(d), false) => d.get(rest),
            _ => None,
        }
    }

    /// The directory at `path`, made (with its parents) if missing.
    fn dir_mut(&mut self, path: &[&[u8]]) -> &mut Dir {
        let mut dir = self;
        for comp in path {
            let entry = dir
                .entries
                .entry(comp.to_vec())
                .or_insert_with(|| Entry::Dir(Dir::default()));
            dir = match entry {
                Entry::Dir(d) => d,
                // Names below are made by this module and never collide
                // with a link or a snapshot at the same level.
                _ => unreachable!("layout directory {:?} is not a directory", comp),
            };
        }
        dir
    }

    /// Adds `name` -> `entry` at `path`, and carries `time` up every
    /// directory on the way.
    fn add(&mut self, path: &[&[u8]], name: Vec<u8>, entry: Entry, time: Timestamp) {
        let mut dir = &mut *self;
        dir.time = dir.time.max(time);
        for depth in 0..path.len() {
            dir = dir.dir_mut(&path[depth..=depth]);
            dir.time = dir.time.max(time);
        }
        dir.entries.insert(name, entry);
    }
}

/// The top-level directories, always present (empty without snapshots).
pub(crate) const TOP: [&str; 5] = ["claims", "hosts", "ids", "snapshots", "tags"];

/// The layout of `snaps` (in any order).
pub(crate) fn build(snaps: &[(Id, Snapshot)]) -> Dir {
    let mut sorted: Vec<&(Id, Snapshot)> = snaps.iter().collect();
    sorted.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    let shorts = short_names(sorted.iter().map(|(id, _)| *id));
    let times = time_names(sorted.iter().map(|(_, s)| s.time.secs));
    let mut root = Dir::default();
    for top in TOP {
        root.dir_mut(&[top.as_bytes()]);
    }
    for (((id, snap), short), time) in sorted.iter().zip(&shorts).zip(&times) {
        let root_entry = Entry::Snapshot(SnapshotRoot {
            id: *id,
            tree: snap.tree,
            time: snap.time,
        });
        let t = snap.time;
        let short = short.as_bytes();
        let time = time.as_bytes().to_vec();
        root.add(&[b"ids"], short.to_vec(), root_entry, t);
        root.add(&[b"snapshots"], time.clone(), link(1, short), t);
        let host = component(&snap.hostname);
        root.add(&[b"hosts", &host], time.clone(), link(2, short), t);
        for tag in &snap.tags {
            root.add(&[b"tags", &component(tag)], time.clone(), link(2, short), t);
        }
        if let Source::KubernetesVolume {
            namespace, name, ..
        } = &snap.source
        {
            let (ns, claim) = (component(namespace), component(name));
            root.add(&[b"claims", &ns, &claim], time.clone(), link(3, short), t);
        }
    }
    // Empty top directories take the root's time, not 1970.
    for entry in root.entries.values_mut() {
        if let Entry::Dir(d) = entry {
            d.time = d.time.max(root.time);
        }
    }
    if let Some(newest) = times.last() {
        let t = sorted.last().map(|s| s.1.time).unwrap_or_default();
        let latest = Entry::Link(newest.as_bytes().to_vec());
        root.add(&[b"snapshots"], b"latest".to_vec(), latest, t);
    }
    root
}

/// A link from `depth` levels below the root to `ids/<short>`.
fn link(depth: usize, short: &[u8]) -> Entry {
    let mut target = b"../".repeat(depth);
    target.extend_from_slice(b"ids/");
    target.extend_from_slice(short);
    Entry::Link(target)
}

/// A host, tag, namespace or claim name as one path component: `/` and
/// NUL cannot be in a name, and `.`, `..` and the empty name mean
/// something else, so they are replaced.
fn component(name: &str) -> Vec<u8> {
    let cleaned: String = name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}").into_bytes(),
        _ => cleaned.into_bytes(),
    }
}

/// Each id's 8-digit short form, or its full hex where two short forms
/// collide (one in 4 billion pairs, but then both stay reachable).
fn short_names(ids: impl Iterator<Item = Id> + Clone) -> Vec<String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids.clone() {
        *count.entry(id.short()).or_default() += 1;
    }
    ids.map(|id| match count.get(&id.short()) {
        Some(1) => id.short(),
        _ => id.to_hex(),
    })
    .collect()
}

/// Each time as RFC 3339 in UTC; the second and later snapshots of the
/// same second get `-1`, `-2`, … in order (the input is sorted by time).
fn time_names(secs: impl Iterator<Item = i64>) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    secs.map(|s| {
        let name = time_rfc3339(s);
        let n = seen.entry(name.clone()).or_default();
        *n += 1;
        match *n {
            1 => name,
            k => format!("{name}-{}", k - 1),
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(secs: i64, host: &str, tags: &[&str], source: Source) -> Snapshot {
        Snapshot {
            time: Timestamp { secs, nanos: 0 },
            tree: Id::from_bytes([secs as u8; 32]),
            hostname: host.into(),
            username: "root".into(),
            paths: vec![b"/src".to_vec()],
            root_layout: cairn::RootLayout::Directory,
            source,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            stats: cairn::SnapshotStats::default(),
            program_version: "test".into(),
        }
    }

    fn names(dir: &Dir, path: &[&str]) -> Vec<String> {
        let path: Vec<Vec<u8>> = path.iter().map(|p| p.as_bytes().to_vec()).collect();
        let dir = if path.is_empty() {
            dir
        } else {
            match dir.get(&path) {
                Some(Entry::Dir(d)) => d,
                other => panic!("{path:?} is not a directory: {other:?}"),
            }
        };
        dir.entries
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    fn target(dir: &Dir, path: &str) -> String {
        let path: Vec<Vec<u8>> = path.split('/').map(|p| p.as_bytes().to_vec()).collect();
        match dir.get(&path) {
            Some(Entry::Link(t)) => String::from_utf8_lossy(t).into_owned(),
            other => panic!("{path:?} is not a link: {other:?}"),
        }
    }

    #[test]
    fn an_empty_repository_shows_the_top_directories() {
        let root = build(&[]);
        assert_eq!(names(&root, &[]), TOP);
        assert!(names(&root, &["snapshots"]).is_empty());
    }

    #[test]
    fn every_view_links_to_the_one_copy_under_ids() {
        let claim = Source::KubernetesVolume {
            cluster: String::new(),
            namespace: "shop".into(),
            name: "db-data".into(),
        };
        let a = (
            Id::from_bytes([1; 32]),
            snap(1_795_258_853, "node-a", &["daily"], Source::Filesystem),
        );
        let b = (
            Id::from_bytes([2; 32]),
            snap(1_795_258_900, "node-b", &[], claim),
        );
        let root = build(&[b.clone(), a.clone()]);
        assert_eq!(names(&root, &["ids"]), ["01010101", "02020202"]);
        assert_eq!(
            names(&root, &["snapshots"]),
            ["2026-11-21T11:00:53Z", "2026-11-21T11:01:40Z", "latest"]
        );
        assert_eq!(target(&root, "snapshots/latest"), "2026-11-21T11:01:40Z");
        assert_eq!(
            target(&root, "snapshots/2026-11-21T11:00:53Z"),
            "../ids/01010101"
        );
        assert_eq!(names(&root, &["hosts"]), ["node-a", "node-b"]);
        assert_eq!(
            target(&root, "hosts/node-a/2026-11-21T11:00:53Z"),
            "../../ids/01010101"
        );
        assert_eq!(names(&root, &["tags"]), ["daily"]);
        assert_eq!(
            target(&root, "claims/shop/db-data/2026-11-21T11:01:40Z"),
            "../../../ids/02020202"
        );
        match root.get(&[b"ids".to_vec(), b"02020202".to_vec()]) {
            Some(Entry::Snapshot(s)) => assert_eq!((s.id, s.tree), (b.0, b.1.tree)),
            other => panic!("not a snapshot root: {other:?}"),
        }
        // Directory times follow the newest snapshot below them.
        let hosts_a = root.get(&[b"hosts".to_vec(), b"node-a".to_vec()]);
        assert!(matches!(hosts_a, Some(Entry::Dir(d)) if d.time == a.1.time));
        assert_eq!(root.time, b.1.time);
    }

    #[test]
    fn snapshots_of_the_same_second_get_distinct_names() {
        let s = |i: u8| {
            (
                Id::from_bytes([i; 32]),
                snap(1_795_258_853, "h", &[], Source::Filesystem),
            )
        };
        let root = build(&[s(3), s(1), s(2)]);
        assert_eq!(
            names(&root, &["snapshots"]),
            [
                "2026-11-21T11:00:53Z",
                "2026-11-21T11:00:53Z-1",
                "2026-11-21T11:00:53Z-2",
                "latest"
            ]
        );
        // Same-second snapshots are ordered by id, so names are stable.
        assert_eq!(
            target(&root, "snapshots/2026-11-21T11:00:53Z-2"),
            "../ids/03030303"
        );
    }

    #[test]
    fn names_that_are_not_one_component_are_made_one() {
        assert_eq!(component("a/b"), b"a_b");
        assert_eq!(component(""), b"_");
        assert_eq!(component(".."), b"_..");
        let (mut a, mut b) = ([7; 32], [7; 32]);
        a[31] = 1;
        b[31] = 2;
        let (a, b) = (Id::from_bytes(a), Id::from_bytes(b));
        let shorts = short_names([a, b].into_iter());
        assert_eq!(shorts, [a.to_hex(), b.to_hex()]);
    }
}
