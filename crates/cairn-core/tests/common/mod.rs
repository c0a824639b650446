//! Proptest strategies shared by the property tests: every value they produce
//! satisfies the invariants the codecs document, so a round-trip failure is a
//! codec bug, not a generator artefact.

// Each test binary uses a different subset of these.
#![allow(dead_code)]

use cairn_core::format::{
    Config, IndexFile, IndexPack, Node, NodeKind, PackEntry, RootLayout, Session, SessionPurpose,
    Snapshot, SnapshotStats, Source, Timestamp, Tree, Xattr,
};
use cairn_core::{ChunkerParams, Compression, Id, Keys, Kind, MasterKey, SEAL_OVERHEAD};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;

pub(crate) const ALL_KINDS: [Kind; 9] = [
    Kind::Data,
    Kind::Tree,
    Kind::PackHeader,
    Kind::Index,
    Kind::Snapshot,
    Kind::Config,
    Kind::Session,
    Kind::Settings,
    Kind::Bundle,
];

pub(crate) const ALL_NODE_KINDS: [NodeKind; 7] = [
    NodeKind::File,
    NodeKind::Dir,
    NodeKind::Symlink,
    NodeKind::Fifo,
    NodeKind::CharDevice,
    NodeKind::BlockDevice,
    NodeKind::Socket,
];

pub(crate) fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id::from_bytes)
}

pub(crate) fn master_key() -> impl Strategy<Value = MasterKey> {
    any::<[u8; 32]>().prop_map(MasterKey::from_bytes)
}

pub(crate) fn keys() -> impl Strategy<Value = Keys> {
    master_key().prop_map(|m| m.derive())
}

pub(crate) fn kind() -> impl Strategy<Value = Kind> {
    select(&ALL_KINDS[..])
}

pub(crate) fn blob_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Data), Just(Kind::Tree)]
}

pub(crate) fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        (-5i32..=9).prop_map(Compression::Zstd)
    ]
}

/// Up to `max` bytes, half of the time random and half of the time
/// compressible (runs or a tiny alphabet) so that both the raw and the zstd
/// paths of sealing are exercised.
pub(crate) fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max),
        (any::<u8>(), 0..max).prop_map(|(b, n)| vec![b; n]),
        vec(0u8..4, 0..max),
    ]
}

pub(crate) fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

pub(crate) fn string(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

pub(crate) fn timestamp() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

/// Even sizes that satisfy `ChunkerParams::validate`, over the whole range.
pub(crate) fn chunker_params() -> impl Strategy<Value = ChunkerParams> {
    (32u32..=512 * 1024)
        .prop_flat_map(|half_min| {
            let lo = (half_min + 1).max(128);
            (Just(half_min), lo..=2 * 1024 * 1024)
        })
        .prop_flat_map(|(half_min, half_avg)| {
            let lo = (half_avg + 1).max(512);
            (
                Just(half_min),
                Just(half_avg),
                lo..=8 * 1024 * 1024,
                0u8..=3,
                any::<u64>(),
            )
        })
        .prop_map(
            |(half_min, half_avg, half_max, normalization, seed)| ChunkerParams {
                min_size: 2 * half_min,
                avg_size: 2 * half_avg,
                max_size: 2 * half_max,
                normalization,
                seed,
            },
        )
}

/// Configs that pass `Config::validate`.
pub(crate) fn config() -> impl Strategy<Value = Config> {
    let pack = 64 * 1024..=1u32 << 31;
    (
        id(),
        chunker_params(),
        -7i32..=22,
        pack.clone(),
        pack,
        any::<i64>(),
    )
        .prop_map(
            |(repo_id, chunker, compression_level, data_pack_size, tree_pack_size, created)| {
                Config {
                    version: 1,
                    repo_id,
                    chunker,
                    compression_level,
                    data_pack_size,
                    tree_pack_size,
                    created,
                }
            },
        )
}

/// Pack entries as a decoder accepts them: blob kinds, at least a sealed
/// empty blob long. Offsets are arbitrary (index files do not check them).
/// A kind an index entry may have: a blob kind, or a blob in a bundle.
pub(crate) fn entry_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Data), Just(Kind::Tree), Just(Kind::Bundle)]
}

pub(crate) fn pack_entry() -> impl Strategy<Value = PackEntry> {
    (
        entry_kind(),
        id(),
        any::<u32>(),
        SEAL_OVERHEAD as u32..=u32::MAX,
        any::<u32>(),
    )
        .prop_map(|(kind, id, offset, length, raw_length)| PackEntry {
            kind,
            id,
            offset,
            length,
            raw_length,
        })
}

/// Entries of one pack header: non-overlapping, in arbitrary order, with the
/// data length of a pack that holds them.
pub(crate) fn pack_header_entries() -> impl Strategy<Value = (Vec<PackEntry>, u64)> {
    vec(
        (
            blob_kind(),
            id(),
            0u32..64,
            SEAL_OVERHEAD as u32..1 << 20,
            any::<u32>(),
        ),
        0..24,
    )
    .prop_flat_map(|blobs| {
        let mut next = 0u32;
        let entries: Vec<PackEntry> = blobs
            .into_iter()
            .map(|(kind, id, gap, length, raw_length)| {
                let offset = next + gap;
                next = offset + length;
                PackEntry {
                    kind,
                    id,
                    offset,
                    length,
                    raw_length,
                }
            })
            .collect();
        let end = u64::from(next);
        (Just(entries).prop_shuffle(), end..end + 64)
    })
}

pub(crate) fn index_file() -> impl Strategy<Value = IndexFile> {
    (
        id(),
        any::<i64>(),
        vec(
            (id(), vec(pack_entry(), 0..6)).prop_map(|(pack, blobs)| IndexPack { pack, blobs }),
            0..5,
        ),
        vec(id(), 0..5),
        vec(id(), 0..3),
    )
        .prop_map(
            |(session, created, packs, tombstones, supersedes)| IndexFile {
                session,
                created,
                packs,
                tombstones,
                supersedes,
            },
        )
}

pub(crate) fn session() -> impl Strategy<Value = Session> {
    (
        id(),
        prop_oneof![Just(SessionPurpose::Backup), Just(SessionPurpose::Prune)],
        string(40),
        any::<u32>(),
        any::<i64>(),
        any::<u32>(),
        proptest::option::of(id()),
    )
        .prop_map(|(id, purpose, host, pid, started, age, done)| Session {
            id,
            purpose,
            host,
            pid,
            started,
            refreshed: started.saturating_add(i64::from(age)),
            done,
        })
}

/// A valid entry name: any bytes but `/` and NUL, mostly not UTF-8.
pub(crate) fn node_name() -> impl Strategy<Value = Vec<u8>> {
    vec(
        any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

/// Everything of a node but its name, consistent with its kind.
pub(crate) fn node_body() -> impl Strategy<Value = Node> {
    let owner = (any::<u32>(), any::<u32>(), bytes(8), bytes(8));
    let times = (timestamp(), timestamp(), timestamp());
    let numbers = any::<[u64; 5]>();
    // A map: names strictly increasing, as the format requires.
    let xattrs = btree_map(bytes(16), bytes(32), 0..4).prop_map(|m| {
        m.into_iter()
            .map(|(name, value)| Xattr { name, value })
            .collect::<Vec<_>>()
    });
    (
        select(&ALL_NODE_KINDS[..]),
        0u32..=0o7777,
        owner,
        times,
        numbers,
        bytes(24),
        xattrs,
        vec(id(), 0..5),
        id(),
    )
        .prop_map(
            |(
                kind,
                mode,
                (uid, gid, user, group),
                (mtime, atime, ctime),
                [size, inode, device, links, rdev],
                link_target,
                xattrs,
                content,
                subtree,
            )| {
                let mut n = Node::new(Vec::new(), kind);
                n.mode = mode;
                n.uid = uid;
                n.gid = gid;
                n.user = user;
                n.group = group;
                n.mtime = mtime;
                n.atime = atime;
                n.ctime = ctime;
                n.size = size;
                n.inode = inode;
                n.device = device;
                n.links = links;
                n.rdev = rdev;
                n.link_target = link_target;
                n.xattrs = xattrs;
                match kind {
                    NodeKind::File | NodeKind::BlockDevice => n.content = content,
                    NodeKind::Dir => n.subtree = Some(subtree),
                    _ => {}
                }
                n
            },
        )
}

/// A tree with names sorted and deduplicated (a map keyed by name).
pub(crate) fn tree(max_nodes: usize) -> impl Strategy<Value = Tree> {
    btree_map(node_name(), node_body(), 0..max_nodes).prop_map(|m| Tree {
        nodes: m
            .into_iter()
            .map(|(name, mut n)| {
                n.name = name;
                n
            })
            .collect(),
    })
}

pub(crate) fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Filesystem),
        (string(12), string(12), string(12)).prop_map(|(cluster, namespace, name)| {
            Source::KubernetesVolume {
                cluster,
                namespace,
                name,
            }
        }),
    ]
}

pub(crate) fn stats() -> impl Strategy<Value = SnapshotStats> {
    any::<[u64; 14]>().prop_map(|f| SnapshotStats {
        files_new: f[0],
        files_changed: f[1],
        files_unchanged: f[2],
        dirs_new: f[3],
        dirs_changed: f[4],
        dirs_unchanged: f[5],
        bytes_read: f[6],
        bytes_total: f[7],
        data_blobs_added: f[8],
        tree_blobs_added: f[9],
        bytes_added: f[10],
        bytes_stored: f[11],
        errors: f[12],
        duration_nanos: f[13],
    })
}

pub(crate) fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        (timestamp(), id(), string(16), string(16)),
        vec(bytes(24), 0..4),
        prop_oneof![Just(RootLayout::Directory), Just(RootLayout::PerPath)],
        source(),
        vec(string(8), 0..4),
        proptest::option::of(id()),
        stats(),
        string(12),
    )
        .prop_map(
            |(
                (time, tree, hostname, username),
                paths,
                root_layout,
                source,
                tags,
                parent,
                stats,
                program,
            )| {
                Snapshot {
                    time,
                    tree,
                    hostname,
                    username,
                    paths,
                    root_layout,
                    source,
                    tags,
                    parent,
                    stats,
                    program_version: program,
                }
            },
        )
}

/// Flips bit `bit` (counted from the first byte's least significant bit).
pub(crate) fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}
