//! Temporary files of a local repository. object_store's local backend
//! writes an object to `NAME#N` (N a number) and renames it into place; a
//! process killed in between leaves the temporary file behind, and the
//! backend's listings never show it. These calls find and remove them, so
//! prune can collect what a killed backup left.

use std::path::{Path, PathBuf};

use crate::{Store, StoreError, StoreResult};

/// A temporary file: its path relative to the repository root, its size
/// and its modification time (seconds since the epoch, local clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingFile {
    /// Path relative to the repository root, e.g. `data/ab/ab12…#3`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the epoch.
    pub modified: i64,
}

/// Whether `name` is a temporary file's name: `NAME#DIGITS`.
fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((base, n)) => {
            !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

impl Store {
    /// Temporary files that killed uploads left in a local repository;
    /// always empty for other backends. Symlinks are never followed.
    pub fn staging_files(&self) -> StoreResult<Vec<StagingFile>> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut todo = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            let dir = root.join(&rel);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                // A running writer's temporary file is renamed away at any
                // moment: gone is not an error.
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error(&entry.path(), e)),
                };
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let path = rel.join(name);
                if meta.is_dir() {
                    todo.push(path);
                } else if meta.is_file() && is_staging_name(name) {
                    out.push(StagingFile {
                        path: path.to_string_lossy().into_owned(),
                        size: meta.len(),
                        modified: std::os::unix::fs::MetadataExt::mtime(&meta),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes a temporary file found by [`Store::staging_files`]. Refuses
    /// anything else: a name that is not a temporary file's, or a path
    /// that leaves the repository.
    pub fn delete_staging_file(&self, path: &str) -> StoreResult<()> {
        let invalid = |why: &str| StoreError::InvalidLocation {
            url: path.to_owned(),
            message: why.to_owned(),
        };
        let Some(root) = &self.local_root else {
            return Err(invalid("not a local repository"));
        };
        let rel = Path::new(path);
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !plain || !is_staging_name(name) {
            return Err(invalid("not a temporary file of the repository"));
        }
        let full = root.join(rel);
        match std::fs::remove_file(&full) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&full, e)),
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::InvalidLocation {
        url: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_name_hash_digits_is_a_temporary_file() {
        for name in ["abc#1", "abc#123", "a#b#7"] {
            assert!(is_staging_name(name), "{name}");
        }
        for name in ["abc", "abc#", "#12", "abc#x1", "abc#1x"] {
            assert!(!is_staging_name(name), "{name}");
        }
    }

    #[tokio::test]
    async fn killed_uploads_are_found_and_removed_and_nothing_else_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&dir.path().display().to_string(), crate::Create::Never).expect("open");
        store
            .put("data/ab/real", b"object".to_vec().into())
            .await
            .expect("put");
        std::fs::write(dir.path().join("data/ab/real#17"), b"half").expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("x#1"), b"keep").expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("data/link")).expect("symlink");

        let found = store.staging_files().expect("staging");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "data/ab/real#17");
        assert_eq!(found[0].size, 4);

        for refused in [
            "data/ab/real",
            "../x#1",
            "/etc/passwd#1",
            "data/link/x#1/..",
        ] {
            assert!(store.delete_staging_file(refused).is_err(), "{refused}");
        }
        store.delete_staging_file(&found[0].path).expect("delete");
        assert!(store.staging_files().expect("staging").is_empty());
        assert!(outside.path().join("x#1").exists());
        assert_eq!(
            &store.get("data/ab/real").await.expect("get")[..],
            b"object"
        );
        assert!(Store::memory().staging_files().expect("memory").is_empty());
    }
}
