//! Settings that may change after `init` (docs/FORMAT.md §17): storage
//! classes per object kind and the Object Lock retention of new objects.
//! Each change is a new create-only `settings/<id>` object with a higher
//! sequence; the highest is in force, and the store writes by it.

use std::time::Duration;

use bytes::Bytes;
use cairn_core::format::{Lock, Settings};
use cairn_core::{Compression, Id, Kind, open, seal};
use cairn_store::{Retention, StoragePolicy};

use crate::{Error, Repository, Result, paths};

/// A change to the settings: `None` keeps a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SettingsChange {
    /// Storage class of data packs (`Some("")`: the bucket's default).
    pub data_class: Option<String>,
    /// Storage class of every other object.
    pub metadata_class: Option<String>,
    /// Retention of new objects (`Some(None)`: none from now on).
    pub lock: Option<Option<Lock>>,
}

impl SettingsChange {
    /// No change yet.
    pub fn new() -> SettingsChange {
        SettingsChange::default()
    }

    /// True when the change changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }
}

/// The store policy a settings object asks for.
pub fn policy_of(s: Option<&Settings>) -> StoragePolicy {
    let Some(s) = s else {
        return StoragePolicy::default();
    };
    StoragePolicy {
        data_class: s.data_class.clone(),
        metadata_class: s.metadata_class.clone(),
        lock: s.lock.map(|l| Retention {
            mode: l.mode.s3_name().to_owned(),
            period: Duration::from_secs(l.seconds),
        }),
    }
}

impl Repository {
    /// The settings in force (`None`: defaults, no settings object yet).
    pub fn settings(&self) -> Option<Settings> {
        self.inner
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads every settings object, keeps the one with the highest
    /// sequence (ties: the larger id) and makes the store write by it. A
    /// settings object that does not open is left out and named.
    pub(crate) async fn load_settings(&self) -> Result<()> {
        let mut best: Option<(u64, Id, Settings)> = None;
        for o in self.store().list(paths::SETTINGS).await? {
            let Some(id) = paths::id_in(paths::SETTINGS, &o.path) else {
                continue;
            };
            let s = match self.read_settings(&id).await {
                Ok(s) => s,
                Err(e) if e.is_damage() => {
                    self.note_damage(o.path.clone(), e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            if best
                .as_ref()
                .is_none_or(|(seq, bid, _)| (s.sequence, id) > (*seq, *bid))
            {
                best = Some((s.sequence, id, s));
            }
        }
        let current = best.map(|(_, _, s)| s);
        self.store().set_policy(policy_of(current.as_ref()))?;
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = current;
        Ok(())
    }

    async fn read_settings(&self, id: &Id) -> Result<Settings> {
        let sealed = self.store().get(&paths::settings(id)).await?;
        let plain = open(self.keys(), Kind::Settings, id, &sealed)?;
        let corrupt = |detail: String| {
            Error::Format(cairn_core::Error::Corrupt {
                what: "settings",
                detail: format!("{}: {detail}", paths::settings(id)),
            })
        };
        // The name is the keyed hash of the content, as for snapshots.
        if self.keys().id_of(&plain) != *id {
            return Err(corrupt("content does not match its name".into()));
        }
        Settings::decode(&plain).map_err(|e| corrupt(e.to_string()))
    }

    /// Applies `change` on top of the settings in force (read again
    /// first), stores the result as a new settings object and writes by it
    /// from now on. Storage classes and a retention need an S3 store, and
    /// a retention needs a bucket with Object Lock enabled.
    pub async fn change_settings(&self, change: &SettingsChange) -> Result<Settings> {
        self.load_settings().await?;
        let old = self.settings();
        let new = apply(old.as_ref(), change, self.clock().now())?;
        preflight(self.store(), &new).await?;
        let policy = policy_of(Some(&new));
        let plain = new.encode();
        let id = self.keys().id_of(&plain);
        let sealed = seal(
            self.keys(),
            Kind::Settings,
            &id,
            &plain,
            Compression::None,
            self.rng(),
        );
        // The new policy applies to the settings object itself: a locked
        // repository's settings are locked too.
        self.store().set_policy(policy)?;
        if let Err(e) = self
            .store()
            .put_new(&paths::settings(&id), Bytes::from(sealed))
            .await
        {
            self.store().set_policy(policy_of(old.as_ref()))?;
            return Err(e.into());
        }
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(new.clone());
        Ok(new)
    }
}

/// The settings `change` makes of `old` (the defaults when `None`).
pub(crate) fn apply(old: Option<&Settings>, change: &SettingsChange, now: i64) -> Result<Settings> {
    let base = old.cloned().unwrap_or(Settings {
        sequence: 0,
        written: 0,
        data_class: String::new(),
        metadata_class: String::new(),
        lock: None,
    });
    let new = Settings {
        sequence: base.sequence + 1,
        written: now,
        data_class: change.data_class.clone().unwrap_or(base.data_class),
        metadata_class: change.metadata_class.clone().unwrap_or(base.metadata_class),
        lock: change.lock.unwrap_or(base.lock),
    };
    for class in [&new.data_class, &new.metadata_class] {
        cairn_core::format::settings_v1::check_class(class).map_err(Error::InvalidArgument)?;
    }
    if let Some(l) = new.lock {
        if l.seconds == 0 || l.seconds > cairn_core::format::settings_v1::MAX_LOCK_SECONDS {
            return Err(Error::InvalidArgument(format!(
                "a retention of {} seconds is outside 1 second to 100 years",
                l.seconds
            )));
        }
    }
    Ok(new)
}

/// Refuses settings the store cannot honour, before anything is written.
pub(crate) async fn preflight(store: &cairn_store::Store, new: &Settings) -> Result<()> {
    if policy_of(Some(new)) != StoragePolicy::default() && !store.is_s3() {
        return Err(Error::InvalidArgument(format!(
            "storage classes and object lock need an S3 repository; {} is not one",
            store.describe()
        )));
    }
    if new.lock.is_some() && !store.lock_enabled().await? {
        return Err(Error::InvalidArgument(format!(
            "the bucket of {} does not have S3 Object Lock enabled, or the server does not \
             implement it (only the bucket's owner can turn it on; versioning comes with it)",
            store.describe()
        )));
    }
    Ok(())
}
