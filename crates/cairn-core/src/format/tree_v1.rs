//! Trees: one blob per directory, entries sorted by name bytes.
//!
//! ```text
//! version u8 = 1 | count u32 | count × node
//! node: name bytes | kind u8 | mode u32 | uid u32 | gid u32 | user bytes | group bytes
//!       mtime (i64 s, u32 ns) | atime (i64, u32) | ctime (i64, u32)
//!       size u64 | inode u64 | device u64 | links u64 | rdev u64
//!       link target bytes | xattr count u32 | (name bytes | value bytes) × count
//!       file or block device: chunk count u32 | chunk ids [32] × count
//!       directory: subtree id [32]
//! ```

use crate::codec::{Reader, Writer, expect_version};
use crate::{Error, Id, Result};

const WHAT: &str = "tree";
const VERSION: u8 = 1;
/// Smallest possible encoded node, for bounding counts.
const MIN_NODE_LEN: usize = 4 + 1 + 12 + 8 + 36 + 40 + 4 + 4 + 1;

/// The type of a directory entry. Numeric values are part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum NodeKind {
    /// Regular file.
    File = 1,
    /// Directory.
    Dir = 2,
    /// Symbolic link.
    Symlink = 3,
    /// Named pipe.
    Fifo = 4,
    /// Character device.
    CharDevice = 5,
    /// Block device.
    BlockDevice = 6,
    /// Unix socket (recorded, never recreated).
    Socket = 7,
}

impl NodeKind {
    fn from_u8(v: u8) -> Option<NodeKind> {
        Some(match v {
            1 => NodeKind::File,
            2 => NodeKind::Dir,
            3 => NodeKind::Symlink,
            4 => NodeKind::Fifo,
            5 => NodeKind::CharDevice,
            6 => NodeKind::BlockDevice,
            7 => NodeKind::Socket,
            _ => return None,
        })
    }
}

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, serde::Serialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (may be negative).
    pub secs: i64,
    /// Nanoseconds, below 1e9.
    pub nanos: u32,
}

impl Timestamp {
    fn write(&self, w: &mut Writer) {
        w.i64(self.secs);
        w.u32(self.nanos);
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Timestamp> {
        let t = Timestamp {
            secs: r.i64()?,
            nanos: r.u32()?,
        };
        if t.nanos >= 1_000_000_000 {
            return Err(r.err(format!("nanoseconds {} out of range", t.nanos)));
        }
        Ok(t)
    }
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Xattr {
    /// Full name including namespace, e.g. `user.comment`.
    #[serde(serialize_with = "crate::format::text::bytes")]
    pub name: Vec<u8>,
    /// Raw value.
    #[serde(serialize_with = "crate::format::text::bytes")]
    pub value: Vec<u8>,
}

/// One directory entry with its metadata and content references.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// File name bytes (any bytes but `/` and NUL; not `.` or `..`).
    #[serde(serialize_with = "crate::format::text::bytes")]
    pub name: Vec<u8>,
    /// Entry type.
    pub kind: NodeKind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Owner user name, empty when unknown.
    #[serde(serialize_with = "crate::format::text::bytes")]
    pub user: Vec<u8>,
    /// Owner group name, empty when unknown.
    #[serde(serialize_with = "crate::format::text::bytes")]
    pub group: Vec<u8>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Inode number, for change detection and hard links.
    pub inode: u64,
    /// Device the entry lived on.
    pub device: u64,
    /// Hard link count.
    pub links: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Symlink target, empty otherwise.
    #[serde(serialize_with = "crate::format::text::bytes")]
    pub link_target: Vec<u8>,
    /// Extended attributes, in strictly increasing order of name.
    pub xattrs: Vec<Xattr>,
    /// Chunk ids of a file's or block device's content, in order; empty for
    /// other kinds.
    pub content: Vec<Id>,
    /// Tree id of a directory's listing: required for a directory, `None`
    /// for other kinds.
    pub subtree: Option<Id>,
}

impl Node {
    /// A node of `kind` named `name` with every other field zero or empty.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: Vec::new(),
            group: Vec::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            inode: 0,
            device: 0,
            links: 0,
            rdev: 0,
            link_target: Vec::new(),
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// True if `name` may name a tree entry.
    pub fn valid_name(name: &[u8]) -> bool {
        !name.is_empty()
            && name != b"."
            && name != b".."
            && !name.contains(&b'/')
            && !name.contains(&0)
    }

    /// Why this node cannot be encoded as itself, if it cannot: the decoder
    /// rejects these fields, and the encoding has no room for a subtree on
    /// anything but a directory or content on anything but a file or block
    /// device, so writing them would produce a tree that is unreadable or
    /// reads back as something else.
    fn encoding_problem(&self) -> Option<&'static str> {
        if !Node::valid_name(&self.name) {
            return Some("has an invalid name");
        }
        if self.mode > 0o7777 {
            return Some("has mode bits beyond 0o7777");
        }
        if [self.mtime, self.atime, self.ctime]
            .iter()
            .any(|t| t.nanos >= 1_000_000_000)
        {
            return Some("has a timestamp with nanoseconds out of range");
        }
        if self.xattrs.windows(2).any(|x| x[0].name >= x[1].name) {
            return Some("has xattrs out of order or duplicated");
        }
        let has_content = matches!(self.kind, NodeKind::File | NodeKind::BlockDevice);
        if !has_content && !self.content.is_empty() {
            return Some("has content but is not a file or block device");
        }
        match (self.kind, self.subtree) {
            (NodeKind::Dir, None) => Some("is a directory without a subtree"),
            (NodeKind::Dir, Some(_)) | (_, None) => None,
            (_, Some(_)) => Some("has a subtree but is not a directory"),
        }
    }

    fn write(&self, w: &mut Writer) {
        w.bytes(&self.name);
        w.u8(self.kind as u8);
        w.u32(self.mode);
        w.u32(self.uid);
        w.u32(self.gid);
        w.bytes(&self.user);
        w.bytes(&self.group);
        self.mtime.write(w);
        self.atime.write(w);
        self.ctime.write(w);
        w.u64(self.size);
        w.u64(self.inode);
        w.u64(self.device);
        w.u64(self.links);
        w.u64(self.rdev);
        w.bytes(&self.link_target);
        w.count(self.xattrs.len());
        for x in &self.xattrs {
            w.bytes(&x.name);
            w.bytes(&x.value);
        }
        match self.kind {
            NodeKind::File | NodeKind::BlockDevice => {
                w.count(self.content.len());
                for id in &self.content {
                    w.id(id);
                }
            }
            // `encoding_problem` has checked that a directory has a subtree.
            NodeKind::Dir => w.id(&self.subtree.unwrap_or(Id::ZERO)),
            _ => {}
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Node> {
        let name = r.bytes()?;
        if !Node::valid_name(&name) {
            return Err(r.err(format!(
                "invalid entry name {:?}",
                String::from_utf8_lossy(&name)
            )));
        }
        let k = r.u8()?;
        let kind = NodeKind::from_u8(k).ok_or_else(|| r.err(format!("unknown node kind {k}")))?;
        let mut n = Node::new(name, kind);
        n.mode = r.u32()?;
        if n.mode > 0o7777 {
            return Err(r.err(format!("mode {:o} has bits beyond 0o7777", n.mode)));
        }
        n.uid = r.u32()?;
        n.gid = r.u32()?;
        n.user = r.bytes()?;
        n.group = r.bytes()?;
        n.mtime = Timestamp::read(r)?;
        n.atime = Timestamp::read(r)?;
        n.ctime = Timestamp::read(r)?;
        n.size = r.u64()?;
        n.inode = r.u64()?;
        n.device = r.u64()?;
        n.links = r.u64()?;
        n.rdev = r.u64()?;
        n.link_target = r.bytes()?;
        let nx = r.count(8)?;
        for _ in 0..nx {
            let x = Xattr {
                name: r.bytes()?,
                value: r.bytes()?,
            };
            if n.xattrs.last().is_some_and(|p| p.name >= x.name) {
                return Err(r.err("xattr names are not in strictly increasing order"));
            }
            n.xattrs.push(x);
        }
        match kind {
            NodeKind::File | NodeKind::BlockDevice => {
                // Sized once (the count is bounded by the bytes left): a
                // collect through `Result` grows by doubling, up to twice
                // the ids of a large file in a tree of millions.
                let nc = r.count(32)?;
                n.content = Vec::with_capacity(nc);
                for _ in 0..nc {
                    n.content.push(r.id()?);
                }
            }
            NodeKind::Dir => n.subtree = Some(r.id()?),
            _ => {}
        }
        Ok(n)
    }
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tree {
    /// Entries in strictly increasing byte order of name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts entries by name; encoding requires it.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Finds an entry by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The plaintext encoding. Fails if names are invalid or not strictly
    /// sorted, or a node holds something the decoder would reject or the
    /// encoding cannot carry (see [`Node`]'s field docs), so a writer bug
    /// cannot produce an unreadable or silently altered tree.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(5 + self.nodes.len() * 160);
        w.u8(VERSION);
        w.count(self.nodes.len());
        let mut prev: Option<&[u8]> = None;
        for n in &self.nodes {
            let problem = n.encoding_problem().or_else(|| {
                prev.is_some_and(|p| p >= n.name.as_slice())
                    .then_some("is out of order or duplicated")
            });
            if let Some(problem) = problem {
                return Err(Error::InvalidParameter(format!(
                    "tree entry {:?} {problem}",
                    String::from_utf8_lossy(&n.name)
                )));
            }
            prev = Some(&n.name);
            n.write(&mut w);
        }
        Ok(w.finish())
    }

    /// Decodes the plaintext, checking names and their order.
    pub fn decode(b: &[u8]) -> Result<Tree> {
        let mut nodes: Vec<Node> = Vec::new();
        Tree::decode_each(b, |n, node| {
            nodes.reserve_exact(n - nodes.len());
            nodes.push(node);
            Ok::<(), std::convert::Infallible>(())
        })?
        .unwrap_or_else(|never| match never {});
        Ok(Tree { nodes })
    }

    /// Decodes the plaintext a node at a time, as [`Tree::decode`] does,
    /// giving each to `f` instead of holding them all (a walk that needs
    /// each node once, over trees of millions of content ids). Stops at
    /// the first error of `f`, returned inside; a decoding error is the
    /// outer one, and `f` may have seen nodes before it.
    pub fn visit<E>(
        b: &[u8],
        mut f: impl FnMut(Node) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        Tree::decode_each(b, |_, node| f(node))
    }

    /// `f` sees the count of nodes with each.
    fn decode_each<E>(
        b: &[u8],
        mut f: impl FnMut(usize, Node) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let mut r = Reader::new(b, WHAT);
        expect_version(&mut r, WHAT, VERSION)?;
        let n = r.count(MIN_NODE_LEN)?;
        let mut last: Option<Vec<u8>> = None;
        for _ in 0..n {
            let node = Node::read(&mut r)?;
            if last.as_ref().is_some_and(|p| *p >= node.name) {
                return Err(r.err("entries are not in strictly increasing name order"));
            }
            match &mut last {
                Some(p) => {
                    p.clear();
                    p.extend_from_slice(&node.name);
                }
                None => last = Some(node.name.clone()),
            }
            if let Err(e) = f(n, node) {
                return Ok(Err(e));
            }
        }
        r.end()?;
        Ok(Ok(()))
    }
}
