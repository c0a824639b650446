//! Key management: several passwords can unlock the same master key.

use bytes::Bytes;
use cairn_core::Id;
use cairn_core::format::{KdfParams, KeyFile};

use crate::{Error, Repository, Result, paths};

/// A key file, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Key file id.
    pub id: Id,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Host recorded at creation.
    pub host: String,
    /// User recorded at creation.
    pub user: String,
    /// True for the key this process unlocked with.
    pub current: bool,
}

impl Repository {
    /// Lists the key files. A damaged key file is left out and named in
    /// [`damaged`](Self::damaged).
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for o in self.store().list(paths::KEYS).await? {
            let Some(id) = paths::id_in(paths::KEYS, &o.path) else {
                continue;
            };
            if o.size > cairn_core::format::MAX_KEY_FILE_LEN as u64 {
                self.note_damage(o.path.clone(), format!("{} bytes, too large", o.size));
                continue;
            }
            let kf = match KeyFile::decode_named(&id, &self.store().get(&o.path).await?) {
                Ok(k) => k,
                Err(e) => {
                    self.note_damage(o.path.clone(), e.to_string());
                    continue;
                }
            };
            out.push(KeyInfo {
                id,
                created: kf.created,
                host: kf.host,
                user: kf.user,
                current: id == self.key_id(),
            });
        }
        out.sort_by_key(|k| (k.created, k.id));
        Ok(out)
    }

    /// Adds a key file that unlocks this repository with `password`.
    pub async fn add_key(
        &self,
        password: &[u8],
        kdf: KdfParams,
        host: &str,
        user: &str,
        now: i64,
    ) -> Result<Id> {
        let master = self.inner.master.clone();
        let password = zeroize::Zeroizing::new(password.to_vec());
        let (host, user) = (host.to_owned(), user.to_owned());
        let rng = self.inner.rng.clone();
        let kf = tokio::task::spawn_blocking(move || {
            KeyFile::create(&master, &password, kdf, now, &host, &user, rng.as_ref())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let id = kf.id();
        self.store()
            .put_new(&paths::key(&id), Bytes::from(kf.encode()))
            .await?;
        Ok(id)
    }

    /// Removes the key file whose id starts with `prefix`. The key in use and
    /// the last key cannot be removed. A damaged key file (one that
    /// [`list_keys`](Self::list_keys) leaves out) can be removed too.
    pub async fn remove_key(&self, prefix: &str) -> Result<Id> {
        let keys = self.list_keys().await?;
        let matching: Vec<&crate::KeyInfo> = keys
            .iter()
            .filter(|k| k.id.to_hex().starts_with(prefix))
            .collect();
        if matching.is_empty() && !prefix.is_empty() {
            let damaged: Vec<Id> = self
                .damaged()
                .iter()
                .filter_map(|d| paths::id_in(paths::KEYS, &d.object))
                .filter(|id| id.to_hex().starts_with(prefix))
                .collect();
            if let [id] = damaged.as_slice() {
                self.store().delete(&paths::key(id)).await?;
                return Ok(*id);
            }
        }
        let k = match matching.as_slice() {
            [] => return Err(Error::Key(format!("no key matches {prefix:?}"))),
            [k] => *k,
            _ => return Err(Error::Key(format!("key prefix {prefix:?} is ambiguous"))),
        };
        if k.current {
            return Err(Error::Key(
                "refusing to remove the key in use; unlock with another password first".into(),
            ));
        }
        self.store().delete(&paths::key(&k.id)).await?;
        Ok(k.id)
    }

    /// Replaces the current key's password: adds a new key file, then
    /// removes the old one. Returns the new key's id.
    pub async fn change_password(
        &self,
        new_password: &[u8],
        kdf: KdfParams,
        host: &str,
        user: &str,
        now: i64,
    ) -> Result<Id> {
        let id = self.add_key(new_password, kdf, host, user, now).await?;
        self.store().delete(&paths::key(&self.key_id())).await?;
        Ok(id)
    }
}
