//! Creating and opening repositories.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use bytes::Bytes;
use cairn_core::format::{Config, IndexFile, KeyFile};
use cairn_core::{Clock, Id, Keys, Kind, RandomSource, open};
use cairn_store::{Store, StoreError};
use futures::{StreamExt, TryStreamExt};

use crate::index::LoadBudget;
use crate::options::{InitOptions, OpenOptions};
use crate::{Damaged, Error, Index, Result, paths};

/// How many objects to fetch at once when loading index files or snapshots.
pub(crate) const LOAD_CONCURRENCY: usize = 8;

/// Listings of `index/` tried while files vanish under a concurrent prune.
const MAX_INDEX_PASSES: usize = 5;
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) master: Arc<cairn_core::MasterKey>,
    pub(crate) keys: Keys,
    pub(crate) config: Config,
    pub(crate) key_id: Id,
    pub(crate) index: RwLock<Index>,
    pub(crate) rng: Arc<dyn RandomSource>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Writer sessions this process announced and has not ended.
    pub(crate) sessions: Mutex<Vec<Arc<crate::session_handle::SessionHandle>>>,
    /// Where the index table lives (`None`: the index stays in memory).
    pub(crate) index_dir: Option<std::path::PathBuf>,
    /// Keeps a temporary index directory alive as long as the repository.
    pub(crate) _index_tmp: Option<tempfile::TempDir>,
    /// Bound on the index table's disk use.
    pub(crate) index_table_limit: u64,
    /// Whether index tables are verified while in use, and the verdicts
    /// on those opened so ([`Repository::index_checked`]).
    pub(crate) overlap_table_check: bool,
    pub(crate) table_verdicts: Mutex<Vec<Arc<crate::index::Verdict>>>,
    /// Objects left out because they are damaged.
    pub(crate) damaged: Mutex<Vec<Damaged>>,
    /// The settings in force (`settings/`), if any were ever written.
    pub(crate) settings: RwLock<Option<cairn_core::format::Settings>>,
    /// Bundles opened last (`bundles.rs`).
    pub(crate) bundles: crate::bundles::BundleCache,
    /// Tree packs' windows read last (`windows.rs`).
    pub(crate) windows: crate::windows::TreeWindows,
}

/// An open repository. Cheap to clone; clones share the index.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("store", &self.inner.store.describe())
            .field("repo_id", &self.inner.config.repo_id)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Creates a repository in an empty location.
    ///
    /// The key file is written before the config, and the config with a
    /// create-only write, so two racing `init`s cannot both succeed where the
    /// backend honours create-only writes; the loser removes its key file.
    /// The config is read back afterwards, which also catches a racing
    /// overwrite on backends that ignore the condition.
    pub async fn init(store: Store, password: &[u8], opts: InitOptions) -> Result<Repository> {
        let location = store.describe().to_owned();
        if let Some(first) = store.list("").await?.into_iter().next() {
            return Err(if first.path == paths::CONFIG {
                Error::AlreadyInitialized { location }
            } else {
                Error::NotEmpty {
                    location,
                    found: first.path,
                }
            });
        }
        let rng = opts.rng.clone();
        let clock = opts.clock.clone();
        let config = opts.config()?;
        if !opts.settings.is_empty() {
            // Checked before anything is written, and in force for the key
            // file and config as well.
            let first = crate::settings::apply(None, &opts.settings, opts.now)?;
            crate::settings::preflight(&store, &first).await?;
            store.set_policy(crate::policy_of(Some(&first)))?;
        }
        let master = Arc::new(cairn_core::MasterKey::generate(rng.as_ref()));
        let keyfile = {
            let password = zeroize::Zeroizing::new(password.to_vec());
            let (master, rng) = (master.clone(), rng.clone());
            let (kdf, now, host, user) = (opts.kdf, opts.now, opts.host.clone(), opts.user.clone());
            tokio::task::spawn_blocking(move || {
                KeyFile::create(&master, &password, kdf, now, &host, &user, rng.as_ref())
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
        };
        let key_id = keyfile.id();
        let key_path = paths::key(&key_id);
        store
            .put_new(&key_path, Bytes::from(keyfile.encode()))
            .await?;
        let keys = master.derive();
        let sealed = Bytes::from(config.seal(&keys, rng.as_ref()));
        let won = match store.put_new(paths::CONFIG, sealed).await {
            Ok(()) => {
                // Read back: a backend that ignores create-only writes may
                // have let a racing init overwrite ours.
                // If that read fails, the key file stays: the config may be
                // ours, and a config without its key is unrecoverable, while
                // a stray key file is harmless.
                let stored = store.get(paths::CONFIG).await?;
                Config::open(&keys, &stored).is_ok_and(|c| c == config)
            }
            Err(StoreError::AlreadyExists { .. }) => false,
            Err(e) => {
                let _ = store.delete(&key_path).await;
                return Err(e.into());
            }
        };
        if !won {
            let _ = store.delete(&key_path).await;
            return Err(Error::AlreadyInitialized { location });
        }
        let repo = Repository::assemble(
            store,
            master,
            config,
            key_id,
            OpenOptions {
                rng,
                clock,
                ..OpenOptions::default()
            },
        );
        if !opts.settings.is_empty() {
            repo.change_settings(&opts.settings).await?;
        }
        Ok(repo)
    }

    fn assemble(
        store: Store,
        master: Arc<cairn_core::MasterKey>,
        config: Config,
        key_id: Id,
        opts: OpenOptions,
    ) -> Repository {
        let cached = store.cache().map(|c| c.dir().join("index"));
        let (index_dir, index_tmp) = match opts.index_dir.or(cached) {
            Some(d) => (Some(d), None),
            None => match tempfile::Builder::new().prefix("cairn-index-").tempdir() {
                Ok(t) => (Some(t.path().to_owned()), Some(t)),
                Err(e) => {
                    tracing::warn!(
                        "no temporary directory for the index table, kept in memory: {e}"
                    );
                    (None, None)
                }
            },
        };
        let windows = crate::windows::TreeWindows::new(store.is_remote());
        Repository {
            inner: Arc::new(Inner {
                store,
                keys: master.derive(),
                master,
                config,
                key_id,
                index: RwLock::new(Index::default()),
                rng: opts.rng,
                clock: opts.clock,
                sessions: Mutex::new(Vec::new()),
                index_dir,
                _index_tmp: index_tmp,
                index_table_limit: opts.index_table_limit,
                overlap_table_check: opts.overlap_table_check,
                table_verdicts: Mutex::new(Vec::new()),
                damaged: Mutex::new(Vec::new()),
                settings: RwLock::new(None),
                bundles: Default::default(),
                windows,
            }),
        }
    }

    /// Opens a repository with a password and loads its index.
    pub async fn open(store: Store, password: &[u8], opts: OpenOptions) -> Result<Repository> {
        let location = store.describe().to_owned();
        let stored = match store.get(paths::CONFIG).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                // Tell a missing bucket apart from an empty location.
                store.list(paths::KEYS).await?;
                return Err(Error::NotARepository { location });
            }
            Err(e) => return Err(e.into()),
        };
        Config::check_magic(&stored)?;
        let (key_id, master, bad_keys) = unlock(&store, password).await?;
        let config = Config::open(&master.derive(), &stored)?;
        let repo = Repository::assemble(store, Arc::new(master), config, key_id, opts);
        for d in bad_keys {
            repo.note_damage(d.object, d.problem);
        }
        repo.load_settings().await?;
        repo.reload_index().await?;
        Ok(repo)
    }

    /// Lists and reads every index file; any damaged file is an error
    /// (prune must not act on a partial view).
    pub async fn read_index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let mut files = Vec::new();
        self.for_each_index_file(&Default::default(), false, |id, f| {
            files.push((id, f));
            Ok(())
        })
        .await?;
        Ok(files)
    }

    /// Lists the index files and reads each one not in `skip`, handing it
    /// to `f` as it arrives, so the caller decides what to keep in memory.
    ///
    /// Prune deletes index files only after writing the file that
    /// supersedes them, so a file that vanishes between the listing and
    /// the read means a newer file exists, possibly too new for the
    /// listing: the folder is listed again and the new files read, until a
    /// pass finds nothing missing. Returns every id the listings showed.
    ///
    /// With `tolerate_damage`, a file that cannot be opened or decoded is
    /// left out and noted ([`damaged`](Self::damaged)) instead of failing
    /// the whole load: the blobs only it lists look unindexed until
    /// `repair index` rebuilds the index from the pack headers.
    pub(crate) async fn for_each_index_file(
        &self,
        skip: &std::collections::HashSet<Id>,
        tolerate_damage: bool,
        mut f: impl FnMut(Id, IndexFile) -> Result<()>,
    ) -> Result<std::collections::HashSet<Id>> {
        let mut seen: std::collections::HashSet<Id> = skip.clone();
        let mut listed = std::collections::HashSet::new();
        for _ in 0..MAX_INDEX_PASSES {
            let fresh: Vec<(Id, u64)> = self
                .inner
                .store
                .list(paths::INDEX)
                .await?
                .iter()
                .filter_map(|o| Some((paths::id_in(paths::INDEX, &o.path)?, o.size)))
                .inspect(|(id, _)| {
                    listed.insert(*id);
                })
                .filter(|(id, _)| seen.insert(*id))
                .collect();
            let budget = LoadBudget::new();
            let budget = &budget;
            let mut read = futures::stream::iter(fresh)
                .map(|(id, size)| async move {
                    // Held until `f` has taken the file.
                    let permit = budget.take(size).await;
                    match self.read_index_file(&id).await {
                        Ok(f) => Ok((id, Ok(f), permit)),
                        Err(Error::Store(e)) if e.is_not_found() => Ok((id, Err(true), permit)),
                        Err(e) if tolerate_damage && e.is_damage() => {
                            self.note_damage(paths::index(&id), e.to_string());
                            Ok((id, Err(false), permit))
                        }
                        Err(e) => Err(e),
                    }
                })
                .buffer_unordered(LOAD_CONCURRENCY);
            let mut vanished = false;
            while let Some((id, r, permit)) = read.try_next().await? {
                match r {
                    Ok(file) => f(id, file)?,
                    Err(gone) => vanished |= gone,
                }
                drop(permit);
            }
            if !vanished {
                return Ok(listed);
            }
        }
        Err(Error::Internal(format!(
            "index files kept vanishing while being read ({MAX_INDEX_PASSES} passes); is a prune running?"
        )))
    }

    /// Reads and opens one index file.
    pub async fn read_index_file(&self, id: &Id) -> Result<IndexFile> {
        let sealed = self.inner.store.get(&paths::index(id)).await?;
        decode_index_file(&self.inner.keys, id, &sealed)
    }

    /// Objects this handle left out because they are damaged (index files,
    /// snapshots, key files), each named once, sorted.
    pub fn damaged(&self) -> Vec<Damaged> {
        let mut v = self
            .inner
            .damaged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        v.sort();
        v
    }

    /// Records a damaged object and warns about it once.
    pub(crate) fn note_damage(&self, object: String, problem: String) {
        let mut all = self.inner.damaged.lock().unwrap_or_else(|p| p.into_inner());
        if all.iter().any(|d| d.object == object) {
            return;
        }
        tracing::warn!("{object} is damaged and left out: {problem}");
        all.push(Damaged { object, problem });
    }

    /// The bound on the index table's disk use.
    pub(crate) fn index_table_limit(&self) -> u64 {
        self.inner.index_table_limit
    }

    /// The storage backend.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Deletes `path` unless it turns out retained (its Object Lock
    /// retention was extended since the caller looked): then returns until
    /// when and leaves it.
    pub(crate) async fn delete_unless_retained(
        &self,
        path: &str,
    ) -> Result<Option<std::time::SystemTime>> {
        match self.store().delete(path).await {
            Ok(()) => Ok(None),
            Err(StoreError::Locked { .. }) => {
                let until = self.store().locked_until(path).await?;
                Ok(Some(until.unwrap_or_else(std::time::SystemTime::now)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The repository config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The derived keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The id of the key file this repository was unlocked with.
    pub fn key_id(&self) -> Id {
        self.inner.key_id
    }

    /// The randomness source for this process's writes.
    pub fn rng(&self) -> &dyn RandomSource {
        self.inner.rng.as_ref()
    }

    /// The time source.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// A read view of the merged index (don't hold it across an `.await`:
    /// writers wait while it lives).
    pub fn index(&self) -> crate::IndexView<'_> {
        crate::IndexView::new(self.index_guard())
    }

    /// The merged index, for the crate's own passes.
    pub(crate) fn index_guard(&self) -> RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated
        // (updates are single inserts), so a poisoned lock is still usable.
        self.inner.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the index table lives, if anywhere.
    pub(crate) fn index_dir(&self) -> Option<&std::path::Path> {
        self.inner.index_dir.as_deref()
    }

    pub(crate) fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner.index.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens and decodes a sealed index file; a decoding error names it.
pub(crate) fn decode_index_file(keys: &Keys, id: &Id, sealed: &[u8]) -> Result<IndexFile> {
    let plain = open(keys, Kind::Index, id, sealed)?;
    IndexFile::decode(&plain).map_err(|e| {
        Error::Format(cairn_core::Error::Corrupt {
            what: "index file",
            detail: format!("{}: {e}", paths::index(id)),
        })
    })
}

/// Tries the password against every key file whose name matches its
/// content (checked before any key derivation, so a planted or damaged file
/// costs nothing). A wrong password wins over a damaged key file in the
/// error, since it is what the user can fix. Returns the key and the key
/// files that were left out as damaged.
async fn unlock(
    store: &Store,
    password: &[u8],
) -> Result<(Id, cairn_core::MasterKey, Vec<Damaged>)> {
    let listed = store.list(paths::KEYS).await?;
    let mut wrong_password = false;
    let mut damaged = Vec::new();
    let mut other_error = None;
    for o in listed {
        let Some(id) = paths::id_in(paths::KEYS, &o.path) else {
            continue;
        };
        let decoded = if o.size > KEY_FILE_MAX {
            Err(cairn_core::Error::Corrupt {
                what: "key file",
                detail: format!(
                    "{}: {} bytes, more than the {KEY_FILE_MAX} byte limit",
                    o.path, o.size
                ),
            })
        } else {
            KeyFile::decode_named(&id, &store.get(&o.path).await?)
        };
        let kf = match decoded {
            Ok(k) => k,
            Err(e) => {
                damaged.push(Damaged {
                    object: o.path.clone(),
                    problem: e.to_string(),
                });
                other_error = Some(e);
                continue;
            }
        };
        let password = zeroize::Zeroizing::new(password.to_vec());
        let r = tokio::task::spawn_blocking(move || kf.unlock(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        match r {
            Ok(master) => return Ok((id, master, damaged)),
            Err(cairn_core::Error::WrongPassword) => wrong_password = true,
            Err(e) => other_error = Some(e),
        }
    }
    Err(match other_error {
        // The password may be right for a key file that is damaged: say so.
        _ if wrong_password && !damaged.is_empty() => {
            let list: Vec<String> = damaged.iter().map(|d| d.to_string()).collect();
            Error::Key(format!(
                "no intact key file could be unlocked with this password; damaged key files \
                 were skipped: {}",
                list.join("; ")
            ))
        }
        Some(e) if !wrong_password => e.into(),
        _ if wrong_password => cairn_core::Error::WrongPassword.into(),
        _ => Error::Key(format!("{}: repository has no key files", store.describe())),
    })
}

const KEY_FILE_MAX: u64 = cairn_core::format::MAX_KEY_FILE_LEN as u64;
