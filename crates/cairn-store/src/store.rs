//! [`Store`]: the repository's view of an object store.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

use crate::{Location, StoreError, StoreResult, parse_location};

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Path relative to the repository root, e.g. `data/ab/ab12…`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A repository's storage: an object store plus the description shown to users.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    describe: String,
}

impl Store {
    /// Opens the store at `url`. With `create`, a missing local directory is
    /// created (for `init`); without it, a missing directory is an error.
    pub fn open(url: &str, create: bool) -> StoreResult<Store> {
        match parse_location(url)? {
            Location::Local(dir) => {
                let invalid = |message: String| StoreError::InvalidLocation {
                    url: url.to_owned(),
                    message,
                };
                if create {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| invalid(format!("cannot create directory: {e}")))?;
                } else if !dir.is_dir() {
                    return Err(invalid(
                        "no such directory (create a repository with `cairn init`)".to_owned(),
                    ));
                }
                let dir = dir
                    .canonicalize()
                    .map_err(|e| invalid(format!("cannot resolve path: {e}")))?;
                // fsync: a backup reported complete must survive a power cut.
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| invalid(e.to_string()))?
                    .with_fsync(true);
                Ok(Store::from_object_store(
                    Arc::new(fs),
                    dir.display().to_string(),
                ))
            }
            Location::Memory => Ok(Store::memory()),
        }
    }

    /// A new, empty in-memory store.
    pub fn memory() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://".to_owned())
    }

    /// Wraps any object store (for decorators and embedders).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, describe: String) -> Store {
        Store { inner, describe }
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Where this store is, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Writes an object, replacing any existing one. Used for objects whose
    /// names are unique by construction (packs, index files, snapshots).
    pub async fn put(&self, path: &str, data: Bytes) -> StoreResult<()> {
        self.inner
            .put(&Path::from(path), PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_backend(path, e))
    }

    /// Writes an object only if none exists, where the backend can enforce
    /// it; [`StoreError::AlreadyExists`] otherwise. Backends that ignore the
    /// condition behave like [`put`](Self::put): callers must not rely on it
    /// for correctness.
    pub async fn put_new(&self, path: &str, data: Bytes) -> StoreResult<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.inner
            .put_opts(&Path::from(path), PutPayload::from_bytes(data), opts)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_backend(path, e))
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &str) -> StoreResult<Bytes> {
        let r = self
            .inner
            .get(&Path::from(path))
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        let expected = r.meta.size;
        let b = r
            .bytes()
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        check_len(path, expected, &b)?;
        Ok(b)
    }

    /// Reads `range` of an object; anything but exactly that many bytes is an error.
    pub async fn get_range(&self, path: &str, range: Range<u64>) -> StoreResult<Bytes> {
        let expected = range.end.saturating_sub(range.start);
        let b = self
            .inner
            .get_range(&Path::from(path), range)
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        check_len(path, expected, &b)?;
        Ok(b)
    }

    /// Reads the last `n` bytes of an object (or all of it, if shorter) and
    /// returns them with the object's total size.
    pub async fn get_suffix(&self, path: &str, n: u64) -> StoreResult<(Bytes, u64)> {
        let opts = GetOptions {
            range: Some(GetRange::Suffix(n)),
            ..Default::default()
        };
        let r = self
            .inner
            .get_opts(&Path::from(path), opts)
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        let size = r.meta.size;
        let expected = r.range.end.saturating_sub(r.range.start);
        let b = r
            .bytes()
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        check_len(path, expected, &b)?;
        Ok((b, size))
    }

    /// The size of an object.
    pub async fn head(&self, path: &str) -> StoreResult<u64> {
        self.inner
            .head(&Path::from(path))
            .await
            .map(|m| m.size)
            .map_err(|e| StoreError::from_backend(path, e))
    }

    /// Lists every object under `prefix` (a folder such as `snapshots`),
    /// following pagination to the end.
    pub async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectInfo>> {
        let p = Path::from(prefix);
        let prefix_opt = if prefix.is_empty() { None } else { Some(&p) };
        self.inner
            .list(prefix_opt)
            .map_ok(|m| ObjectInfo {
                path: m.location.to_string(),
                size: m.size,
            })
            .try_collect()
            .await
            .map_err(|e| StoreError::from_backend(prefix, e))
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, path: &str) -> StoreResult<()> {
        match self.inner.delete(&Path::from(path)).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::from_backend(path, e)),
        }
    }
}

fn check_len(path: &str, expected: u64, b: &Bytes) -> StoreResult<()> {
    if b.len() as u64 != expected {
        return Err(StoreError::ShortRead {
            path: path.to_owned(),
            expected,
            got: b.len() as u64,
        });
    }
    Ok(())
}
