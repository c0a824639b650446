//! Opening a repository's storage with credentials from a Secret.
//!
//! An agent serves many repositories with different credentials at once,
//! so it cannot set environment variables: the Secret's settings are passed
//! to the store explicitly (on top of what the environment provides, e.g. a
//! web-identity token).

use std::collections::BTreeMap;

use cairn::{Store, StoreOptions};

use crate::Result;

/// Storage settings from a credentials Secret: `AWS_ACCESS_KEY_ID` and the
/// like, matched case-insensitively (see `StoreOptions::settings`).
pub type Settings = BTreeMap<String, String>;

/// Opens the storage at `url` with `settings`; `create` makes a missing
/// local directory (for initialising a repository).
pub fn open(
    url: &str,
    settings: &Settings,
    limit_upload_kib: Option<u64>,
    create: bool,
) -> Result<Store> {
    Ok(Store::open_with(
        url,
        &StoreOptions {
            create,
            limit_upload_kib,
            settings: settings.clone(),
            ..Default::default()
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_settings_reach_the_s3_builder_and_typos_are_refused() {
        let mut s = Settings::new();
        s.insert("AWS_ACCESS_KEY_ID".into(), "GK123".into());
        s.insert("AWS_SECRET_ACCESS_KEY".into(), "secret".into());
        s.insert("GOOGLE_SERVICE_ACCOUNT".into(), "ignored for s3".into());
        let store = open("s3://bucket/prefix?endpoint=http://127.0.0.1:9&region=garage&path-style=true&allow-http=true", &s, None, false)
            .expect("s3 store builds");
        assert!(store.describe().starts_with("s3://bucket/prefix"));
        s.insert("AWS_SECRET_ACCES_KEY".into(), "typo".into());
        let err = open("s3://bucket", &s, None, false).expect_err("typo");
        assert!(err.to_string().contains("AWS_SECRET_ACCES_KEY"), "{err}");
    }

    #[test]
    fn local_paths_open_directly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = dir.path().join("repo");
        assert!(open(url.to_str().expect("utf-8"), &Settings::new(), None, false).is_err());
        assert!(
            open(
                url.to_str().expect("utf-8"),
                &Settings::new(),
                Some(100),
                true
            )
            .is_ok()
        );
    }
}
