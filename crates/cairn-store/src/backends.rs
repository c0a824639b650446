//! Building object_store backends from locations, with object_store's own
//! retry, timeout and credential machinery.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::ReqwestConnector;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};

use crate::FaultConnector;
use crate::s3api::S3Api;
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

/// The only settings an isolated store accepts: credentials and addressing,
/// never a file path, a credentials endpoint or a provider switch, so whoever
/// writes the settings can neither make the process read a local file nor
/// send a token to an address of their choosing.
pub const ISOLATED_SETTINGS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_ALLOW_HTTP",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
];

/// Refuses, naming them, the settings outside [`ISOLATED_SETTINGS`].
fn check_isolated(url: &str, settings: &BTreeMap<String, String>) -> StoreResult<()> {
    let refused: Vec<&str> = settings
        .keys()
        .filter(|k| !ISOLATED_SETTINGS.contains(&k.to_ascii_uppercase().as_str()))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(StoreError::InvalidLocation {
        url: url.to_owned(),
        message: format!(
            "storage setting{} {} not allowed here (allowed: {})",
            if refused.len() == 1 { "" } else { "s" },
            refused.join(", ") + if refused.len() == 1 { " is" } else { " are" },
            ISOLATED_SETTINGS.join(", ")
        ),
    })
}

/// Whether `settings` holds `key` (any case) with a non-empty value.
fn has(settings: &BTreeMap<String, String>, key: &str) -> bool {
    settings
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty())
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

/// Settings for one backend: what it is built from and how far it may
/// look beyond them.
pub(crate) struct Settings<'a> {
    /// Named like the provider's environment variables.
    pub map: &'a BTreeMap<String, String>,
    /// PEM certificates of the authorities the server's certificate may
    /// chain to, besides the system's.
    pub root_certificates: Option<&'a [u8]>,
    /// Only `map` counts, restricted to [`ISOLATED_SETTINGS`]: no process
    /// environment, no credential files, no instance metadata.
    pub isolated: bool,
}

pub(crate) fn s3(
    url: &str,
    bucket: &str,
    prefix: &str,
    o: &S3Options,
    settings: &Settings<'_>,
    faults: Option<&FaultConnector>,
) -> StoreResult<(Arc<dyn ObjectStore>, S3Api)> {
    let base = if settings.isolated {
        check_isolated(url, settings.map)?;
        // Without keys the builder would fall back to instance metadata
        // (the node's role): an isolated store without keys is anonymous.
        let anonymous = !has(settings.map, "AWS_ACCESS_KEY_ID");
        AmazonS3Builder::new().with_skip_signature(anonymous)
    } else {
        AmazonS3Builder::from_env()
    };
    let mut b = base
        .with_bucket_name(bucket)
        .with_retry(retry())
        // Client options replace earlier ones wholesale, so they go first
        // and allow-http (part of them) after.
        .with_client_options(crate::roots::with_roots(
            url,
            client_options(),
            settings.root_certificates,
        )?);
    for (k, v) in keys::<AmazonS3ConfigKey>(url, settings.map, "aws_")? {
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
    let from_env = !settings.isolated
        && std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
    match o.allow_http {
        Some(a) => b = b.with_allow_http(a),
        None if from_env => b = b.with_allow_http(true),
        None => {}
    }
    if let Some(f) = faults {
        b = b.with_http_connector(f.clone());
    }
    let api = extra_api(&b, bucket, prefix, settings, faults)?;
    let s3 = b.build().map_err(|e| invalid(url, e))?;
    let api = api(s3.credentials().clone());
    Ok((with_prefix(Arc::new(s3), prefix), api))
}

/// The API for the S3 requests object_store does not make (s3api.rs), at
/// the bucket's address as the builder `b` computes it, with the same
/// connector and trust; it takes the built store's credentials.
fn extra_api(
    b: &AmazonS3Builder,
    bucket: &str,
    prefix: &str,
    settings: &Settings<'_>,
    faults: Option<&FaultConnector>,
) -> StoreResult<impl FnOnce(object_store::aws::AwsCredentialProvider) -> S3Api + use<>> {
    let config = |k: AmazonS3ConfigKey| b.get_config_value(&k);
    let region = config(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let virtual_hosted =
        config(AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref() == Some("true");
    let allow_http = config(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| v == "true" || v == "1");
    let anonymous = config(AmazonS3ConfigKey::SkipSignature).as_deref() == Some("true");
    let bucket_url = match (config(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
        (Some(e), true) => e,
        (Some(e), false) => format!("{}/{bucket}", e.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    };
    let roots = settings.root_certificates;
    let client = match faults {
        Some(f) => S3Api::client(f, allow_http, roots)?,
        None => S3Api::client(&ReqwestConnector::default(), allow_http, roots)?,
    };
    let prefix = prefix.to_owned();
    Ok(move |credentials| S3Api::new(client, credentials, bucket_url, &prefix, region, anonymous))
}

/// Refuses isolated settings that lack one of `needed`.
fn require(url: &str, settings: &BTreeMap<String, String>, needed: &[&str]) -> StoreResult<()> {
    match needed.iter().find(|k| !has(settings, k)) {
        None => Ok(()),
        Some(k) => Err(StoreError::InvalidLocation {
            url: url.to_owned(),
            message: format!("storage setting {k} is required (ambient credentials are not used)"),
        }),
    }
}

pub(crate) fn gcs(
    url: &str,
    bucket: &str,
    prefix: &str,
    settings: &Settings<'_>,
) -> StoreResult<Arc<dyn ObjectStore>> {
    let base = if settings.isolated {
        check_isolated(url, settings.map)?;
        // Otherwise the builder reads a credentials file or asks the
        // metadata server for the node's account.
        require(url, settings.map, &["GOOGLE_SERVICE_ACCOUNT_KEY"])?;
        GoogleCloudStorageBuilder::new()
    } else {
        GoogleCloudStorageBuilder::from_env()
    };
    let mut b = base
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(crate::roots::with_roots(
            url,
            client_options(),
            settings.root_certificates,
        )?);
    for (k, v) in keys::<GoogleConfigKey>(url, settings.map, "google_")? {
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
    settings: &Settings<'_>,
) -> StoreResult<Arc<dyn ObjectStore>> {
    let base = if settings.isolated {
        check_isolated(url, settings.map)?;
        // Otherwise the builder asks instance metadata for a managed identity.
        require(
            url,
            settings.map,
            &["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"],
        )?;
        MicrosoftAzureBuilder::new()
    } else {
        MicrosoftAzureBuilder::from_env()
    };
    let mut b = base
        .with_container_name(container)
        .with_retry(retry())
        .with_client_options(crate::roots::with_roots(
            url,
            client_options(),
            settings.root_certificates,
        )?);
    for (k, v) in keys::<AzureConfigKey>(url, settings.map, "azure_")? {
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

    fn isolated(url: &str, settings: &[(&str, &str)]) -> Result<Store, String> {
        let opts = StoreOptions {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            isolated: true,
            ..Default::default()
        };
        Store::open_with(url, &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn isolated_settings_name_no_file_and_no_credentials_endpoint() {
        let s3 = "s3://bucket/prefix?endpoint=http://127.0.0.1:9&region=r&path-style=true";
        let err = isolated(
            s3,
            &[
                ("AWS_ACCESS_KEY_ID", "GK1"),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/"),
                ("aws_web_identity_token_file", "/etc/passwd"),
            ],
        )
        .expect_err("refused");
        assert!(
            err.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                && err.contains("aws_web_identity_token_file"),
            "{err}"
        );
        // Another provider's key is refused too: nothing is skipped silently.
        let err = isolated(s3, &[("GOOGLE_APPLICATION_CREDENTIALS", "/f")]).expect_err("file");
        assert!(err.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{err}");
        let ok = [
            ("AWS_ACCESS_KEY_ID", "GK1"),
            ("aws_secret_access_key", "secret"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_REGION", "r"),
            ("AWS_ALLOW_HTTP", "true"),
        ];
        assert!(isolated(s3, &ok).is_ok());
        assert!(isolated(s3, &[]).is_ok(), "anonymous");
        let err = isolated("gs://bucket", &[]).expect_err("no key");
        assert!(err.contains("GOOGLE_SERVICE_ACCOUNT_KEY"), "{err}");
        let err = isolated("az://c", &[("AZURE_STORAGE_ACCOUNT_NAME", "a")]).expect_err("no key");
        assert!(err.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{err}");
    }
}
