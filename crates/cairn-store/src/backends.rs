//! Building object_store backends from locations, with object_store's own
//! retry, timeout and credential machinery.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::FaultConnector;
use crate::url::S3Options;
use crate::{StoreError, StoreResult};

/// Timeouts and retries for network backends. Transient failures (5xx,
/// throttling, dropped connections) are retried with exponential backoff for
/// at most `retry_timeout`; a dead endpoint or bad credentials therefore
/// fail within about ten seconds instead of retrying for minutes.
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

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn invalid(url: &str, e: object_store::Error) -> StoreError {
    StoreError::InvalidLocation {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// The settings whose lower-cased key starts with `prefix`, parsed as the
/// provider's configuration keys; a key with the provider's prefix that it
/// does not know is an error.
fn keys<K: std::str::FromStr>(
    url: &str,
    settings: &BTreeMap<String, String>,
    prefix: &str,
) -> StoreResult<Vec<(K, String)>> {
    let mut out = Vec::new();
    for (k, v) in settings {
        let k = k.to_ascii_lowercase();
        if !k.starts_with(prefix) {
            continue;
        }
        let key = k.parse::<K>().map_err(|_| StoreError::InvalidLocation {
            url: url.to_owned(),
            message: format!("unknown storage setting {}", k.to_ascii_uppercase()),
        })?;
        out.push((key, v.clone()));
    }
    Ok(out)
}

pub(crate) fn s3(
    url: &str,
    bucket: &str,
    prefix: &str,
    o: &S3Options,
    settings: &BTreeMap<String, String>,
    faults: Option<&FaultConnector>,
) -> StoreResult<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        // Client options replace earlier ones wholesale, so they go first
        // and allow-http (part of them) after.
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
    // The URL's choice wins; otherwise the settings' or the environment's
    // AWS_ALLOW_HTTP (a setting was applied above).
    let from_env = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
    match o.allow_http {
        Some(a) => b = b.with_allow_http(a),
        None if from_env => b = b.with_allow_http(true),
        None => {}
    }
    if let Some(f) = faults {
        b = b.with_http_connector(f.clone());
    }
    Ok(with_prefix(
        Arc::new(b.build().map_err(|e| invalid(url, e))?),
        prefix,
    ))
}

pub(crate) fn gcs(
    url: &str,
    bucket: &str,
    prefix: &str,
    settings: &BTreeMap<String, String>,
) -> StoreResult<Arc<dyn ObjectStore>> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options());
    for (k, v) in keys::<GoogleConfigKey>(url, settings, "google_")? {
        b = b.with_config(k, v);
    }
    Ok(with_prefix(
        Arc::new(b.build().map_err(|e| invalid(url, e))?),
        prefix,
    ))
}

pub(crate) fn azure(
    url: &str,
    container: &str,
    prefix: &str,
    settings: &BTreeMap<String, String>,
) -> StoreResult<Arc<dyn ObjectStore>> {
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry())
        .with_client_options(client_options());
    for (k, v) in keys::<AzureConfigKey>(url, settings, "azure_")? {
        b = b.with_config(k, v);
    }
    Ok(with_prefix(
        Arc::new(b.build().map_err(|e| invalid(url, e))?),
        prefix,
    ))
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    fn open(url: &str, settings: &[(&str, &str)]) -> Result<Store, String> {
        let opts = StoreOptions {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        Store::open_with(url, &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_reach_the_backend_and_typos_are_refused() {
        let s3 = "s3://bucket/prefix?endpoint=http://127.0.0.1:9&region=r&path-style=true";
        let good = [
            ("AWS_ACCESS_KEY_ID", "GK1"),
            ("aws_secret_access_key", "secret"),
            ("GOOGLE_SERVICE_ACCOUNT", "another provider's, skipped"),
        ];
        assert!(open(s3, &good).is_ok());
        let err = open(s3, &[("AWS_SECRET_ACCES_KEY", "typo")]).expect_err("typo");
        assert!(err.contains("AWS_SECRET_ACCES_KEY"), "{err}");
        // A setting the backend validates is applied, not ignored.
        let err = open(s3, &[("AWS_ALLOW_HTTP", "maybe")]).expect_err("bad value");
        assert!(
            err.contains("maybe") || err.to_lowercase().contains("allow"),
            "{err}"
        );
        let err = open("gs://bucket", &[("GOOGLE_BUKET", "x")]).expect_err("typo");
        assert!(err.contains("GOOGLE_BUKET"), "{err}");
        let err = open("az://container", &[("AZURE_STORAGE_ACCOUNT_KEYY", "x")]).expect_err("typo");
        assert!(err.contains("AZURE_STORAGE_ACCOUNT_KEYY"), "{err}");
    }
}
