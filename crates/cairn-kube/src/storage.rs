//! Opening a repository's storage with credentials from a Secret.
//!
//! `cairn-store` reads cloud credentials from the process environment. An
//! agent serves many repositories with different credentials at once, so it
//! cannot set environment variables; instead the network backends are built
//! here with the Secret's settings passed explicitly (on top of what the
//! environment provides, e.g. a web-identity token), with the same retry and
//! timeout policy as `cairn-store`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn::layers::store::{Location, RateLimitStore, S3Options, parse_location};
use cairn::{Store, StoreOptions};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::{Error, Result};

/// Storage settings from a credentials Secret: `AWS_ACCESS_KEY_ID` and the
/// like, matched case-insensitively.
pub type Settings = BTreeMap<String, String>;

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120))
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(10),
    }
}

fn invalid(url: &str, message: impl std::fmt::Display) -> Error {
    Error::Store(cairn::StoreError::InvalidLocation {
        url: url.to_owned(),
        message: message.to_string(),
    })
}

/// Settings whose lower-cased key starts with `prefix`, parsed as `K`.
/// Unknown keys of the provider are an error (a typo must not be ignored);
/// other providers' keys are skipped.
fn keys<K: std::str::FromStr>(
    url: &str,
    settings: &Settings,
    prefix: &str,
) -> Result<Vec<(K, String)>> {
    let mut out = Vec::new();
    for (k, v) in settings {
        let k = k.to_ascii_lowercase();
        if !k.starts_with(prefix) {
            continue;
        }
        let key = k.parse::<K>().map_err(|_| {
            invalid(
                url,
                format!("unknown storage setting {}", k.to_ascii_uppercase()),
            )
        })?;
        out.push((key, v.clone()));
    }
    Ok(out)
}

fn s3(url: &str, bucket: &str, o: &S3Options, settings: &Settings) -> Result<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options());
    for (k, v) in keys::<AmazonS3ConfigKey>(url, settings, "aws_")? {
        b = b.with_config(k, v);
    }
    if let Some(e) = &o.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &o.region {
        b = b.with_region(r);
    }
    if let Some(p) = o.path_style {
        b = b.with_virtual_hosted_style_request(!p);
    }
    if let Some(a) = o.allow_http {
        b = b.with_allow_http(a);
    }
    Ok(Arc::new(b.build().map_err(|e| invalid(url, e))?))
}

fn gcs(url: &str, bucket: &str, settings: &Settings) -> Result<Arc<dyn ObjectStore>> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options());
    for (k, v) in keys::<GoogleConfigKey>(url, settings, "google_")? {
        b = b.with_config(k, v);
    }
    Ok(Arc::new(b.build().map_err(|e| invalid(url, e))?))
}

fn azure(url: &str, container: &str, settings: &Settings) -> Result<Arc<dyn ObjectStore>> {
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry())
        .with_client_options(client_options());
    for (k, v) in keys::<AzureConfigKey>(url, settings, "azure_")? {
        b = b.with_config(k, v);
    }
    Ok(Arc::new(b.build().map_err(|e| invalid(url, e))?))
}

/// Opens the storage at `url` with `settings`; `create` makes a missing
/// local directory (for initialising a repository).
pub fn open(
    url: &str,
    settings: &Settings,
    limit_upload_kib: Option<u64>,
    create: bool,
) -> Result<Store> {
    let location = parse_location(url)?;
    let (backend, prefix) = match &location {
        Location::Local(_) | Location::Memory => {
            return Ok(Store::open_with(
                url,
                &StoreOptions {
                    create,
                    limit_upload_kib,
                    ..Default::default()
                },
            )?);
        }
        Location::S3 {
            bucket,
            prefix,
            options,
        } => (s3(url, bucket, options, settings)?, prefix),
        Location::Gcs { bucket, prefix } => (gcs(url, bucket, settings)?, prefix),
        Location::Azure { container, prefix } => (azure(url, container, settings)?, prefix),
        _ => {
            return Err(invalid(
                url,
                "this kind of location is not supported by the agent",
            ));
        }
    };
    let mut store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        backend
    } else {
        Arc::new(PrefixStore::new(backend, prefix.as_str()))
    };
    if limit_upload_kib.is_some() {
        store = Arc::new(RateLimitStore::new(store, limit_upload_kib, None));
    }
    Ok(Store::from_object_store(store, url.to_owned()))
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
