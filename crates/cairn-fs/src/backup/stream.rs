//! A stream as the one file of a snapshot (`cairn backup --stdin`).

use std::io::Read;
use std::sync::atomic::Ordering;

use cairn_core::Id;
use cairn_core::format::{Node, NodeKind, Timestamp};

use super::walk::{EntryError, Walker};
use crate::{Error, Result, owners};

impl Walker {
    /// Chunks and stores `reader` as the file `name` at the root of the
    /// snapshot; returns the root tree's id. A read error is fatal: a
    /// stream cannot be read again, and a snapshot with part of it would
    /// look complete.
    pub(super) fn stream_root(
        &self,
        name: &str,
        reader: Box<dyn Read + Send>,
        time: Timestamp,
    ) -> Result<Id> {
        let mut ids = Vec::new();
        let size = self.chunk_reader(reader, &mut ids).map_err(|e| match e {
            EntryError::Fatal(e) => e,
            EntryError::Skip(w) => Error::Invalid(format!("{name}: {}", w.message)),
            EntryError::Omit(why) => Error::Invalid(format!("{name}: {why}")),
        })?;
        let mut node = Node::new(name.as_bytes().to_vec(), NodeKind::File);
        node.mode = 0o644;
        node.uid = rustix::process::getuid().as_raw();
        node.gid = rustix::process::getgid().as_raw();
        node.user = owners::user_name(node.uid);
        node.group = owners::group_name(node.gid);
        node.mtime = time;
        node.atime = time;
        node.ctime = time;
        node.size = size;
        node.links = 1;
        node.content = ids;
        self.stats.files_new.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_total.fetch_add(size, Ordering::Relaxed);
        self.progress.add(1, 0);
        self.save_tree(vec![node])
    }
}
