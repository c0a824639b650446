//! Opening a repository's storage with credentials from a Secret.
//!
//! An agent serves many repositories with different credentials at once,
//! so it cannot set environment variables: the Secret's settings are passed
//! to the store explicitly. Whoever can write the Secret is not trusted with
//! the agent's or the controller's identity, so the store is isolated: only
//! the settings in `cairn::ISOLATED_SETTINGS` are accepted (any other key is
//! refused, naming it), and nothing comes from the process environment,
//! credential files or instance metadata.

use std::collections::BTreeMap;

use cairn::{Store, StoreOptions};
use zeroize::Zeroize;

use crate::Result;

/// Storage settings from a credentials Secret: `AWS_ACCESS_KEY_ID` and the
/// like, matched case-insensitively (see `StoreOptions::settings`).
pub type Settings = BTreeMap<String, String>;

/// Opens the storage at `url` with `settings`, trusting the authorities of
/// the PEM bundle `root_certificates` besides the system's; `create` makes
/// a missing local directory (for initialising a repository).
pub fn open(
    url: &str,
    settings: &Settings,
    root_certificates: Option<Vec<u8>>,
    limit_upload_kib: Option<u64>,
    create: bool,
) -> Result<Store> {
    let mut opts = StoreOptions::default();
    opts.create = create;
    opts.limit_upload_kib = limit_upload_kib;
    opts.settings = settings.clone();
    opts.isolated = true;
    opts.root_certificates = root_certificates;
    let store = Store::open_with(url, &opts);
    wipe(&mut opts.settings);
    Ok(store?)
}

/// Overwrites the values of `settings` (credentials) in memory.
pub fn wipe(settings: &mut Settings) {
    for v in settings.values_mut() {
        v.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_settings_reach_the_s3_builder_and_typos_are_refused() {
        let mut s = Settings::new();
        s.insert("AWS_ACCESS_KEY_ID".into(), "GK123".into());
        s.insert("AWS_SECRET_ACCESS_KEY".into(), "secret".into());
        let store = open("s3://bucket/prefix?endpoint=http://127.0.0.1:9&region=garage&path-style=true&allow-http=true", &s, None, None, false)
            .expect("s3 store builds");
        assert!(store.describe().starts_with("s3://bucket/prefix"));
        s.insert("AWS_SECRET_ACCES_KEY".into(), "typo".into());
        let err = open("s3://bucket", &s, None, None, false).expect_err("typo");
        assert!(err.to_string().contains("AWS_SECRET_ACCES_KEY"), "{err}");
    }

    #[test]
    fn secret_settings_cannot_name_files_or_credential_urls() {
        let url =
            "s3://bucket?endpoint=http://127.0.0.1:9&region=r&path-style=true&allow-http=true";
        for key in [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ENDPOINT_URL_STS",
            "AWS_METADATA_ENDPOINT",
            "aws_shared_credentials_file",
            "GOOGLE_SERVICE_ACCOUNT",
            "AZURE_FEDERATED_TOKEN_FILE",
            "HOME",
        ] {
            let mut s = Settings::new();
            s.insert("AWS_ACCESS_KEY_ID".into(), "GK123".into());
            s.insert(
                key.into(),
                "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            );
            let err = open(url, &s, None, None, false).expect_err(key);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let mut s = Settings::new();
        for key in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_ENDPOINT",
        ] {
            s.insert(key.into(), "x".into());
        }
        s.insert("AWS_ALLOW_HTTP".into(), "true".into());
        s.insert("AWS_VIRTUAL_HOSTED_STYLE_REQUEST".into(), "false".into());
        assert!(open(url, &s, None, None, false).is_ok());
    }

    #[test]
    fn cloud_stores_without_keys_never_fall_back_to_ambient_credentials() {
        let err = open("gs://bucket", &Settings::new(), None, None, false).expect_err("no key");
        assert!(
            err.to_string().contains("GOOGLE_SERVICE_ACCOUNT_KEY"),
            "{err}"
        );
        let err = open("az://container", &Settings::new(), None, None, false).expect_err("no key");
        assert!(
            err.to_string().contains("AZURE_STORAGE_ACCOUNT_NAME"),
            "{err}"
        );
    }

    #[test]
    fn local_paths_open_directly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = dir.path().join("repo");
        let url = url.to_str().expect("utf-8");
        assert!(open(url, &Settings::new(), None, None, false).is_err());
        assert!(open(url, &Settings::new(), None, Some(100), true).is_ok());
    }
}
