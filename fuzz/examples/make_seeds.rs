//! Writes the seed corpora in `fuzz/seeds/<target>/`: one or two small valid
//! inputs per target, so the fuzzers start past the version and magic checks.
//! Deterministic; rerun after a format change:
//!
//! ```text
//! cd fuzz && cargo run --example make_seeds
//! ```

use std::path::Path;

use cairn_core::format::pack_v1::{self, PackEntry};
use cairn_core::format::{
    Config, IndexFile, IndexPack, KdfParams, KeyFile, Lock, LockMode, Node, NodeKind, RootLayout,
    Session, SessionPurpose, Settings, Snapshot, SnapshotStats, Source, Timestamp, Tree, Xattr,
};
use cairn_core::{Id, Kind, MasterKey, SeededRandom};

fn id(b: u8) -> Id {
    Id::from_bytes([b; 32])
}

fn tree() -> Result<Vec<u8>, cairn_core::Error> {
    let kinds = [
        (&b"a-file"[..], NodeKind::File),
        (b"b-dir", NodeKind::Dir),
        (b"c-link", NodeKind::Symlink),
        (b"d-fifo", NodeKind::Fifo),
        (b"e-chr", NodeKind::CharDevice),
        (b"f-blk", NodeKind::BlockDevice),
        (b"g-sock\xff", NodeKind::Socket),
    ];
    let nodes = kinds
        .into_iter()
        .map(|(name, kind)| {
            let mut n = Node::new(name.to_vec(), kind);
            n.mode = 0o644;
            n.user = b"root".to_vec();
            n.mtime = Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            };
            match kind {
                NodeKind::File => {
                    n.content = vec![id(1), id(2)];
                    n.xattrs = vec![Xattr {
                        name: b"user.k".to_vec(),
                        value: b"v".to_vec(),
                    }];
                }
                NodeKind::Dir => n.subtree = Some(id(3)),
                NodeKind::BlockDevice => n.content = vec![id(12)],
                NodeKind::Symlink => n.link_target = b"../x".to_vec(),
                _ => {}
            }
            n
        })
        .collect();
    Tree { nodes }.encode()
}

fn snapshots() -> [Vec<u8>; 2] {
    let mut s = Snapshot {
        time: Timestamp {
            secs: 1_700_000_000,
            nanos: 1,
        },
        tree: id(4),
        hostname: "host".into(),
        username: "user".into(),
        paths: vec![b"/home".to_vec()],
        root_layout: RootLayout::Directory,
        source: Source::Filesystem,
        tags: vec!["daily".into()],
        parent: None,
        stats: SnapshotStats {
            files_new: 1,
            ..SnapshotStats::default()
        },
        program_version: "0.1.0".into(),
    };
    let filesystem = s.encode();
    s.source = Source::KubernetesVolume {
        cluster: "c".into(),
        namespace: "ns".into(),
        name: "pvc".into(),
    };
    s.parent = Some(id(5));
    s.root_layout = RootLayout::PerPath;
    [filesystem, s.encode()]
}

fn entries() -> Vec<PackEntry> {
    vec![
        PackEntry {
            kind: Kind::Data,
            id: id(6),
            offset: 0,
            length: 100,
            raw_length: 80,
        },
        PackEntry {
            kind: Kind::Tree,
            id: id(7),
            offset: 100,
            length: 41,
            raw_length: 0,
        },
    ]
}

/// A data blob, then a bundle of two blobs (format version 2).
fn bundled_entries() -> Vec<PackEntry> {
    let mut e = entries();
    e.truncate(1);
    for n in [13, 14] {
        e.push(PackEntry {
            kind: Kind::Bundle,
            id: id(n),
            offset: 100,
            length: 120,
            raw_length: 30,
        });
    }
    e
}

fn bundle() -> Vec<u8> {
    let mut b = cairn_core::format::BundleBuilder::default();
    b.push(id(13), &[b'a'; 30]);
    b.push(id(14), b"");
    b.push(id(15), b"cairn");
    b.finish().0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rng = SeededRandom::new(1);
    let master = MasterKey::generate(&rng);
    let key_file = KeyFile::create(
        &master,
        b"password",
        KdfParams::INSECURE_FAST,
        1,
        "host",
        "user",
        &rng,
    )?;
    let header = [
        &141u64.to_le_bytes()[..],
        &pack_v1::encode_header(&entries()),
    ]
    .concat();
    let index = IndexFile {
        session: id(11),
        created: 1_700_000_000,
        packs: vec![IndexPack {
            pack: id(8),
            blobs: entries(),
        }],
        tombstones: vec![id(9)],
        supersedes: vec![id(10)],
    };
    let [fs_snapshot, k8s_snapshot] = snapshots();
    let session = Session {
        id: id(12),
        purpose: SessionPurpose::Backup,
        host: "node-a".into(),
        pid: 4242,
        started: 1_700_000_000,
        refreshed: 1_700_000_300,
        done: None,
    };
    let settings = Settings {
        sequence: 2,
        written: 1_700_000_000,
        data_class: "GLACIER".into(),
        metadata_class: "STANDARD".into(),
        lock: Some(Lock {
            mode: LockMode::Compliance,
            seconds: 30 * 86_400,
        }),
    };
    let bundled_header = [
        &220u64.to_le_bytes()[..],
        &pack_v1::encode_header(&bundled_entries()),
    ]
    .concat();
    let bundled_index = IndexFile {
        packs: vec![IndexPack {
            pack: id(8),
            blobs: bundled_entries(),
        }],
        ..index.clone()
    };
    let seeds: [(&str, &str, Vec<u8>); 13] = [
        ("bundle", "three-blobs", bundle()),
        ("pack_header", "with-a-bundle", bundled_header),
        ("index", "with-a-bundle", bundled_index.encode()),
        ("keyfile", "fast", key_file.encode()),
        ("config", "new", Config::new(1_700_000_000, &rng).encode()),
        ("pack_header", "two-blobs", header),
        ("index", "one-pack", index.encode()),
        ("session", "backup", session.encode()),
        ("settings", "glacier-compliance", settings.encode()),
        ("tree", "every-kind", tree()?),
        ("snapshot", "filesystem", fs_snapshot),
        ("snapshot", "kubernetes-with-parent", k8s_snapshot),
        ("sealed_blob", "text", b"cairn cairn cairn cairn".to_vec()),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, name, bytes) in seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
