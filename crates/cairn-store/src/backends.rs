//! Building object_store backends from locations, with object_store's own
//! retry, timeout and credential machinery.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
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

pub(crate) fn s3(
    url: &str,
    bucket: &str,
    prefix: &str,
    o: &S3Options,
    faults: Option<&FaultConnector>,
) -> StoreResult<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        // Client options replace earlier ones wholesale, so they go first
        // and allow-http (part of them) after.
        .with_client_options(client_options());
    if let Some(e) = &o.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &o.region {
        b = b.with_region(r);
    }
    if let Some(p) = o.path_style {
        b = b.with_virtual_hosted_style_request(!p);
    }
    let allow_http = o
        .allow_http
        .unwrap_or_else(|| std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1"));
    b = b.with_allow_http(allow_http);
    if let Some(f) = faults {
        b = b.with_http_connector(f.clone());
    }
    Ok(with_prefix(
        Arc::new(b.build().map_err(|e| invalid(url, e))?),
        prefix,
    ))
}

pub(crate) fn gcs(url: &str, bucket: &str, prefix: &str) -> StoreResult<Arc<dyn ObjectStore>> {
    let b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options());
    Ok(with_prefix(
        Arc::new(b.build().map_err(|e| invalid(url, e))?),
        prefix,
    ))
}

pub(crate) fn azure(url: &str, container: &str, prefix: &str) -> StoreResult<Arc<dyn ObjectStore>> {
    let b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry())
        .with_client_options(client_options());
    Ok(with_prefix(
        Arc::new(b.build().map_err(|e| invalid(url, e))?),
        prefix,
    ))
}
