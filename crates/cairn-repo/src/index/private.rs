//! Index tables of one run's own (ADR 0021): prune decides, and check
//! verifies, against exactly the index files they read. Built like the
//! repository's table, in bounded memory, in a directory of their own
//! under the index directory (`<what>-<pid>-<random>`), removed when the
//! run ends; the table stays readable while it is mapped.

use std::path::Path;

use cairn_core::Id;
use cairn_core::format::IndexFile;

use super::load::io;
use super::{Builder, Index};
use crate::spool::{HeldFile, Spool};
use crate::{Error, Repository, Result};

/// What private tables are built for: the prefixes of their directories.
const USES: [&str; 2] = ["prune-", "check-"];

/// How long a `runs-*` directory goes unchanged before it is taken for a
/// leftover: builds before `7844d60` put their sorted runs in one, and a
/// process killed mid-build left it (a build writes a run every 2^18
/// records, so a live one changes it within seconds). Builds now write
/// unnamed files.
const OLD_RUNS: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A table of the index files added to it, being built.
pub(crate) struct PrivateTable {
    builder: Builder,
    dir: tempfile::TempDir,
    repo_id: Id,
}

impl PrivateTable {
    /// Adds the index file named `id`.
    pub(crate) fn add_file(&mut self, id: Id, file: &IndexFile) -> Result<()> {
        self.builder
            .add_file(id, file)
            .map_err(|e| io(self.dir.path(), e))
    }

    /// The index of the files added, and the guard of its directory.
    pub(crate) fn finish(self) -> Result<(Index, tempfile::TempDir)> {
        let path = self.dir.path().join("index.table");
        let unique = u64::from(std::process::id());
        let table = self
            .builder
            .finish(None, &path, &self.repo_id, unique)
            .map_err(|e| io(self.dir.path(), e))?;
        let index = Index::with_table(Some(std::sync::Arc::new(table)), Default::default());
        Ok((index, self.dir))
    }
}

impl Repository {
    /// A table of this run's own for `what` (`"prune"` or `"check"`), or
    /// `None` without an index directory. Tables left by runs whose process
    /// is gone are removed first.
    pub(crate) fn private_table(&self, what: &str) -> Option<Result<PrivateTable>> {
        let made = self.private_dir(what)?.and_then(|tmp| {
            let builder = Builder::bounded(tmp.path(), self.index_table_limit(), 0)?;
            Ok((builder, tmp))
        });
        Some(match made {
            Ok((builder, dir)) => Ok(PrivateTable {
                builder,
                dir,
                repo_id: self.config().repo_id,
            }),
            Err(e) => Err(io(self.index_dir().unwrap_or(Path::new(".")), e)),
        })
    }

    /// A directory of this run's own for `what` under the index directory
    /// (`<what>-<pid>-<random>`, removed when dropped), or `None` without
    /// an index directory. Those left by runs whose process is gone are
    /// removed first.
    pub(crate) fn private_dir(&self, what: &str) -> Option<std::io::Result<tempfile::TempDir>> {
        let dir = self.index_dir()?;
        remove_stale_tables(dir);
        let prefix = format!("{what}-{}-", std::process::id());
        Some(
            std::fs::create_dir_all(dir)
                .and_then(|()| tempfile::Builder::new().prefix(&prefix).tempdir_in(dir)),
        )
    }

    /// Every index file, read as prune reads them (see
    /// [`Repository::for_each_index_file`]), their entries in a spool on
    /// local disk (ADR 0022): in memory without an index directory, when
    /// the spool cannot be made there, or when asked (`memory`).
    pub(crate) async fn held_index_files(&self, memory: bool) -> Result<(Vec<HeldFile>, Spool)> {
        let made = (!memory).then(|| self.private_dir("prune")).flatten();
        let mut spool = match made.map(|d| d.and_then(Spool::in_dir)) {
            Some(Ok(spool)) => spool,
            Some(Err(e)) => {
                tracing::warn!("prune's index entries kept in memory: {e}");
                Spool::memory()
            }
            None => Spool::memory(),
        };
        let mut held = Vec::new();
        self.for_each_index_file(&Default::default(), false, |id, f| {
            held.push(spool.hold(id, f)?);
            Ok(())
        })
        .await?;
        spool.seal();
        Ok((held, spool))
    }

    /// An index of exactly `files`, as prune decides against it: a table of
    /// its own with an index directory, with the guard of its directory; in
    /// memory without one, when the table cannot be built there, or when
    /// asked (`memory`).
    pub(crate) fn private_index(
        &self,
        files: &[&HeldFile],
        spool: &Spool,
        memory: bool,
    ) -> Result<(Index, Option<tempfile::TempDir>)> {
        let in_memory = || -> Result<Index> {
            let mut index = Index::from_files(std::iter::empty::<(Id, &IndexFile)>());
            for f in files {
                index.add_file(f.id, &spool.file(f)?);
            }
            Ok(index)
        };
        if memory {
            return Ok((in_memory()?, None));
        }
        let Some(table) = self.private_table("prune") else {
            return Ok((in_memory()?, None));
        };
        let built = table.and_then(|mut t| {
            for f in files {
                t.add_file(f.id, &spool.file(f)?)?;
            }
            t.finish()
        });
        match built {
            Ok((index, dir)) => Ok((index, Some(dir))),
            Err(e @ Error::IndexTooLarge { .. }) => Err(e),
            Err(e) => {
                tracing::warn!("prune's index kept in memory: {e}");
                Ok((in_memory()?, None))
            }
        }
    }
}

/// Removes the table directories of runs whose process is gone (killed
/// before their directory was removed): each holds a whole table. Where
/// there is no `/proc` to ask, nothing is removed.
fn remove_stale_tables(dir: &Path) {
    let proc = Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if !proc.join("self").exists() {
        return;
    }
    for e in entries.flatten() {
        let name = e.file_name();
        let rest = name
            .to_str()
            .and_then(|n| USES.iter().find_map(|u| n.strip_prefix(u)));
        let pid = rest.and_then(|r| r.split('-').next()?.parse::<u32>().ok());
        if let Some(pid) = pid.filter(|p| !proc.join(p.to_string()).exists()) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::debug!(
                    "removing {} (process {pid} gone): {err}",
                    e.path().display()
                );
            }
        }
    }
}

/// Removes the `runs-*` directories of `dir` unchanged for [`OLD_RUNS`].
pub(crate) fn remove_old_runs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let runs = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("runs-"));
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > OLD_RUNS));
        if runs && old {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::debug!("removing {}: {err}", e.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_runs_whose_process_is_gone_are_removed_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut gone = std::process::Command::new("true").spawn().expect("spawn");
        let dead = gone.id();
        gone.wait().expect("wait");
        let names = [
            format!("prune-{dead}-abc"),
            format!("check-{dead}-abc"),
            format!("prune-{}-def", std::process::id()),
            "prune-notapid".to_owned(),
            "runs-xyz".to_owned(),
            "runs-old".to_owned(),
        ];
        for n in &names {
            std::fs::create_dir(dir.path().join(n)).expect("mkdir");
            std::fs::write(dir.path().join(n).join("index.table"), b"t").expect("write");
        }
        // An old version's runs, left two days ago; "runs-xyz" is fresh.
        let two_days = std::time::SystemTime::now() - 2 * OLD_RUNS;
        std::fs::File::open(dir.path().join("runs-old"))
            .and_then(|d| d.set_modified(two_days))
            .expect("set mtime");
        // Opening the repository removes old runs, its private directories
        // the tables of runs gone.
        remove_old_runs(dir.path());
        remove_stale_tables(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expect = names[2..5].to_vec();
        expect.sort();
        assert_eq!(left, expect);
    }
}
