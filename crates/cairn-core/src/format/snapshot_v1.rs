//! Snapshot manifests (`snapshots/<id>`).
//!
//! ```text
//! version u8 = 1 | time (i64 s, u32 ns) | root tree id [32]
//! hostname bytes | username bytes | path count u32 | path bytes × count
//! root layout u8 (0 the one path's directory, 1 one entry per path)
//! source kind u8 (0 filesystem, 1 kubernetes volume) | cluster | namespace | name (bytes)
//! tag count u32 | tag bytes × count | parent flag u8 | parent id [32] if flag = 1
//! stats: 14 × u64 (see SnapshotStats, in field order) | program version bytes
//! ```
//! Sealed as kind `Snapshot`; the id is the keyed hash of the plaintext.

use crate::codec::{Reader, Writer, expect_version};
use crate::format::tree_v1::Timestamp;
use crate::{Id, Result};

const WHAT: &str = "snapshot";
const VERSION: u8 = 1;

/// Where a snapshot's data came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Paths on a host (see the snapshot's hostname and paths).
    #[default]
    Filesystem,
    /// A Kubernetes persistent volume claim.
    KubernetesVolume {
        /// Cluster name, may be empty.
        cluster: String,
        /// Namespace of the claim.
        namespace: String,
        /// Name of the claim.
        name: String,
    },
}

/// How the root tree relates to the snapshot's paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootLayout {
    /// The snapshot has one path, a directory, and the root tree is its
    /// listing: restoring fills the target with the directory's contents.
    #[default]
    Directory,
    /// The root tree holds one entry per path, named by its last component.
    PerPath,
}

/// What a backup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotStats {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent whose metadata changed and were read again.
    pub files_changed: u64,
    /// Files whose metadata matched the parent and were not read.
    pub files_unchanged: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories whose tree changed.
    pub dirs_changed: u64,
    /// Directories whose tree was identical to the parent's.
    pub dirs_unchanged: u64,
    /// Bytes of file content read from disk.
    pub bytes_read: u64,
    /// Total size of all files in the snapshot.
    pub bytes_total: u64,
    /// Data blobs added to the repository.
    pub data_blobs_added: u64,
    /// Tree blobs added to the repository.
    pub tree_blobs_added: u64,
    /// Plaintext bytes of the blobs added.
    pub bytes_added: u64,
    /// Stored (compressed, sealed) bytes of the blobs added.
    pub bytes_stored: u64,
    /// Entries that could not be read.
    pub errors: u64,
    /// Wall-clock duration of the backup in nanoseconds.
    pub duration_nanos: u64,
}

impl SnapshotStats {
    fn fields(&self) -> [u64; 14] {
        [
            self.files_new,
            self.files_changed,
            self.files_unchanged,
            self.dirs_new,
            self.dirs_changed,
            self.dirs_unchanged,
            self.bytes_read,
            self.bytes_total,
            self.data_blobs_added,
            self.tree_blobs_added,
            self.bytes_added,
            self.bytes_stored,
            self.errors,
            self.duration_nanos,
        ]
    }
    fn from_fields(f: [u64; 14]) -> Self {
        SnapshotStats {
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
        }
    }
}

/// A snapshot manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// When the backup started.
    pub time: Timestamp,
    /// Root tree; see [`root_layout`](Self::root_layout).
    pub tree: Id,
    /// Host the backup ran on.
    pub hostname: String,
    /// User who ran it.
    pub username: String,
    /// Absolute paths backed up, as given.
    #[serde(serialize_with = "crate::format::text::bytes_list")]
    pub paths: Vec<Vec<u8>>,
    /// What the root tree holds.
    pub root_layout: RootLayout,
    /// Source identity.
    pub source: Source,
    /// User tags.
    pub tags: Vec<String>,
    /// The snapshot used to skip unchanged files.
    pub parent: Option<Id>,
    /// What the backup did.
    pub stats: SnapshotStats,
    /// Version of the program that wrote it.
    pub program_version: String,
}

impl Snapshot {
    /// The plaintext encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(512);
        w.u8(VERSION);
        w.i64(self.time.secs);
        w.u32(self.time.nanos);
        w.id(&self.tree);
        w.bytes(self.hostname.as_bytes());
        w.bytes(self.username.as_bytes());
        w.count(self.paths.len());
        for p in &self.paths {
            w.bytes(p);
        }
        w.u8(match self.root_layout {
            RootLayout::Directory => 0,
            RootLayout::PerPath => 1,
        });
        match &self.source {
            Source::Filesystem => {
                w.u8(0);
                for _ in 0..3 {
                    w.bytes(b"");
                }
            }
            Source::KubernetesVolume {
                cluster,
                namespace,
                name,
            } => {
                w.u8(1);
                w.bytes(cluster.as_bytes());
                w.bytes(namespace.as_bytes());
                w.bytes(name.as_bytes());
            }
        }
        w.count(self.tags.len());
        for t in &self.tags {
            w.bytes(t.as_bytes());
        }
        match &self.parent {
            Some(p) => {
                w.u8(1);
                w.id(p);
            }
            None => w.u8(0),
        }
        for v in self.stats.fields() {
            w.u64(v);
        }
        w.bytes(self.program_version.as_bytes());
        w.finish()
    }

    /// Decodes the plaintext.
    pub fn decode(b: &[u8]) -> Result<Snapshot> {
        let mut r = Reader::new(b, WHAT);
        expect_version(&mut r, WHAT, VERSION)?;
        let time = Timestamp::read(&mut r)?;
        let tree = r.id()?;
        let hostname = r.string()?;
        let username = r.string()?;
        let np = r.count(4)?;
        let paths = (0..np).map(|_| r.bytes()).collect::<Result<_>>()?;
        let root_layout = match r.u8()? {
            0 => RootLayout::Directory,
            1 => RootLayout::PerPath,
            l => return Err(r.err(format!("invalid root layout {l}"))),
        };
        let sk = r.u8()?;
        let (cluster, namespace, name) = (r.string()?, r.string()?, r.string()?);
        let source = match sk {
            0 if cluster.is_empty() && namespace.is_empty() && name.is_empty() => {
                Source::Filesystem
            }
            1 => Source::KubernetesVolume {
                cluster,
                namespace,
                name,
            },
            _ => return Err(r.err(format!("invalid source kind {sk}"))),
        };
        let nt = r.count(4)?;
        let tags = (0..nt).map(|_| r.string()).collect::<Result<_>>()?;
        let parent = match r.u8()? {
            0 => None,
            1 => Some(r.id()?),
            f => return Err(r.err(format!("invalid parent flag {f}"))),
        };
        let mut f = [0u64; 14];
        for v in &mut f {
            *v = r.u64()?;
        }
        let program_version = r.string()?;
        r.end()?;
        Ok(Snapshot {
            time,
            tree,
            hostname,
            username,
            paths,
            root_layout,
            source,
            tags,
            parent,
            stats: SnapshotStats::from_fields(f),
            program_version,
        })
    }
}
