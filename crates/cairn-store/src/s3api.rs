//! The few S3 requests object_store does not make: reading an object's
//! storage class, restore status and retention (HEAD), asking for a restore
//! from an archival class (RestoreObject), setting a retention
//! (PutObjectRetention), reading the bucket's Object Lock configuration,
//! and listing and deleting object versions.
//!
//! Requests are signed with object_store's own SigV4 signer
//! ([`AwsAuthorizer`]) and credentials, and sent through the same HTTP
//! connector (so test fault injection applies): no second S3 SDK
//! (docs/adr/0012-archival-storage.md).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::ClientOptions;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{CredentialProvider, HttpClient, HttpRequest, HttpRequestBody};

use crate::{StoreError, StoreResult};

mod uploads;
pub use uploads::PendingUpload;

type Credentials = Arc<dyn CredentialProvider<Credential = AwsCredential>>;

/// How to reach one bucket (and the repository's prefix in it).
#[derive(Clone)]
pub(crate) struct S3Api {
    client: HttpClient,
    credentials: Credentials,
    /// `http(s)://host[:port]/bucket` (path style) or `http(s)://bucket.host`.
    bucket_url: String,
    /// The repository's prefix in the bucket, with a trailing `/`, or empty.
    prefix: String,
    region: String,
    anonymous: bool,
    /// The store's request counters, once it has them.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for S3Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Api")
            .field("bucket_url", &self.bucket_url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Where an object stands with respect to archival storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Readable now (a hot class, or a restored copy).
    Readable,
    /// A restore was requested and has not finished.
    Restoring,
    /// In an archival class with no restore requested.
    Archived,
}

/// What a HEAD request says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStatus {
    /// The object's storage class (`STANDARD` when the server names none).
    pub storage_class: String,
    /// Whether it can be read now.
    pub availability: Availability,
    /// Its retention: mode and date (`2026-12-31T00:00:00Z`), if any.
    pub retention: Option<(String, String)>,
    /// Its size in bytes (what a restore brings back and a read fetches).
    pub size: u64,
}

/// One version or delete marker from a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Path relative to the repository root.
    pub path: String,
    /// The server's version id.
    pub version_id: String,
    /// Whether this is the current version.
    pub is_latest: bool,
    /// Whether this entry is a delete marker.
    pub is_delete_marker: bool,
    /// When it was written, as the server says (`2026-11-30T07:01:41.000Z`;
    /// empty if it said nothing): orders the versions of one key.
    pub last_modified: String,
}

/// Classes whose objects must be restored before they can be read.
pub fn is_archival_class(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE")
}

const RETRIES: u32 = 4;

impl S3Api {
    pub(crate) fn new(
        client: HttpClient,
        credentials: Credentials,
        bucket_url: String,
        prefix: &str,
        region: String,
        anonymous: bool,
    ) -> S3Api {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_matches('/'))
        };
        S3Api {
            client,
            credentials,
            bucket_url: bucket_url.trim_end_matches('/').to_owned(),
            prefix,
            region,
            anonymous,
            metrics: None,
        }
    }

    /// Counts this API's requests with the store's (as "other" requests).
    pub(crate) fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> S3Api {
        self.metrics = Some(metrics);
        self
    }

    /// The client for these requests, from the backend's connector.
    pub(crate) fn client(
        connector: &dyn object_store::client::HttpConnector,
        allow_http: bool,
        root_certificates: Option<&[u8]>,
    ) -> StoreResult<HttpClient> {
        let opts = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        let opts =
            crate::roots::with_roots("", opts, root_certificates)?.with_allow_http(allow_http);
        connector
            .connect(&opts)
            .map_err(|e| StoreError::InvalidLocation {
                url: String::new(),
                message: e.to_string(),
            })
    }

    fn url(&self, path: &str, query: &str) -> String {
        let key: String = format!("{}{path}", self.prefix)
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/");
        let sep = if query.is_empty() { "" } else { "?" };
        if key.is_empty() {
            format!("{}/{sep}{query}", self.bucket_url)
        } else {
            format!("{}/{key}{sep}{query}", self.bucket_url)
        }
    }

    /// Sends one signed request, retrying transport errors and 5xx.
    async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> StoreResult<(http::StatusCode, http::HeaderMap, Bytes)> {
        let mut attempt = 0;
        loop {
            if let Some(m) = &self.metrics {
                m.count_other();
            }
            let r = self.send_once(&method, url, headers, body.clone()).await;
            let retry = match &r {
                Err(_) => true,
                Ok((status, _, _)) => status.is_server_error(),
            };
            attempt += 1;
            if !retry || attempt >= RETRIES {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }

    async fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> StoreResult<(http::StatusCode, http::HeaderMap, Bytes)> {
        let fail = |message: String| StoreError::Backend {
            path: url.to_owned(),
            message,
        };
        let mut b = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        let mut req: HttpRequest = b
            .body(HttpRequestBody::from(body))
            .map_err(|e| fail(e.to_string()))?;
        if !self.anonymous {
            let cred = self
                .credentials
                .get_credential()
                .await
                .map_err(|e| fail(format!("credentials: {e}")))?;
            AwsAuthorizer::new(&cred, "s3", &self.region)
                .try_authorize(&mut req, None)
                .map_err(|e| fail(format!("signing: {e}")))?;
        }
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let bytes = body.bytes().await.map_err(|e| fail(e.to_string()))?;
        Ok((parts.status, parts.headers, bytes))
    }

    /// An error for a response the request did not expect.
    fn refused(path: &str, status: http::StatusCode, body: &[u8]) -> StoreError {
        let text = String::from_utf8_lossy(body);
        let code = between(&text, "<Code>", "</Code>").unwrap_or_default();
        let msg = between(&text, "<Message>", "</Message>").unwrap_or_default();
        let message = format!("{code}: {msg}, HTTP {}", status.as_u16());
        match status.as_u16() {
            404 => StoreError::NotFound {
                path: path.to_owned(),
            },
            401 | 403 if code == "AccessDenied" && msg.contains("retention") => {
                StoreError::Locked {
                    path: path.to_owned(),
                    message,
                }
            }
            401 | 403 if code == "InvalidObjectState" => StoreError::Archived {
                path: path.to_owned(),
            },
            401 | 403 => StoreError::PermissionDenied {
                path: path.to_owned(),
                message,
            },
            _ => StoreError::Backend {
                path: path.to_owned(),
                message,
            },
        }
    }

    /// Storage class, restore status and retention of one object.
    pub(crate) async fn status(&self, path: &str) -> StoreResult<ObjectStatus> {
        self.status_of(path, None).await
    }

    /// [`status`](Self::status) of one version of an object (the current
    /// one with `None`).
    pub(crate) async fn status_of(
        &self,
        path: &str,
        version_id: Option<&str>,
    ) -> StoreResult<ObjectStatus> {
        let query = version_id.map_or(String::new(), |v| format!("versionId={}", encode(v)));
        let (status, h, body) = self
            .send(
                http::Method::HEAD,
                &self.url(path, &query),
                &[],
                Bytes::new(),
            )
            .await?;
        if !status.is_success() {
            return Err(Self::refused(path, status, &body));
        }
        let header = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let storage_class = header("x-amz-storage-class").unwrap_or_else(|| "STANDARD".into());
        let availability = match header("x-amz-restore") {
            Some(r) if r.contains("ongoing-request=\"true\"") => Availability::Restoring,
            Some(_) => Availability::Readable,
            None if is_archival_class(&storage_class) => Availability::Archived,
            None => Availability::Readable,
        };
        let retention =
            header("x-amz-object-lock-mode").zip(header("x-amz-object-lock-retain-until-date"));
        let size = header("content-length")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(ObjectStatus {
            storage_class,
            availability,
            retention,
            size,
        })
    }

    /// Asks for a temporary copy of an archived object, readable for
    /// `days`, fetched at `tier` (`Expedited`, `Standard` or `Bulk`).
    /// Returns false when a restore was already under way.
    pub(crate) async fn restore(&self, path: &str, days: u32, tier: &str) -> StoreResult<bool> {
        let body = format!(
            "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>{days}</Days>\
             <GlacierJobParameters><Tier>{tier}</Tier></GlacierJobParameters></RestoreRequest>"
        );
        let (status, _, resp) = self
            .send(
                http::Method::POST,
                &self.url(path, "restore"),
                &[("content-type", "application/xml".into())],
                Bytes::from(body),
            )
            .await?;
        match status.as_u16() {
            200 | 202 => Ok(true),
            409 => Ok(false), // RestoreAlreadyInProgress
            _ => Err(Self::refused(path, status, &resp)),
        }
    }

    /// Sets an object's retention to `until` (never shortens a compliance
    /// retention: S3 refuses that, and the error is returned).
    pub(crate) async fn put_retention(
        &self,
        path: &str,
        mode: &str,
        until: SystemTime,
    ) -> StoreResult<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{mode}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            iso8601(until)
        );
        let md5 = content_md5(body.as_bytes());
        let (status, _, resp) = self
            .send(
                http::Method::PUT,
                &self.url(path, "retention"),
                &[
                    ("content-type", "application/xml".into()),
                    ("content-md5", md5),
                ],
                Bytes::from(body),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::refused(path, status, &resp))
        }
    }

    /// Whether the bucket has Object Lock enabled.
    pub(crate) async fn lock_enabled(&self) -> StoreResult<bool> {
        let url = format!("{}/?object-lock", self.bucket_url);
        let (status, _, body) = self
            .send(http::Method::GET, &url, &[], Bytes::new())
            .await?;
        let text = String::from_utf8_lossy(&body);
        if status.is_success() {
            return Ok(
                between(&text, "<ObjectLockEnabled>", "</ObjectLockEnabled>").as_deref()
                    == Some("Enabled"),
            );
        }
        // 404: ObjectLockConfigurationNotFoundError; 501: a server without
        // Object Lock (Garage) does not know the request.
        if matches!(status.as_u16(), 404 | 501) {
            return Ok(false);
        }
        Err(Self::refused("?object-lock", status, &body))
    }

    /// Every version and delete marker under `prefix` (relative to the
    /// repository root), following pagination.
    pub(crate) async fn versions(&self, prefix: &str) -> StoreResult<Vec<ObjectVersion>> {
        let markers = ("key-marker", "version-id-marker");
        self.pages(prefix, "versions", markers, parse_versions)
            .await
    }

    /// A listing (`?{kind}&prefix=…`) of `prefix`, page after page: each
    /// read by `parse`, a truncated one continued from the two `markers`
    /// query parameters it names.
    async fn pages<T>(
        &self,
        prefix: &str,
        kind: &str,
        markers: (&str, &str),
        parse: fn(&str, &str) -> Page<T>,
    ) -> StoreResult<Vec<T>> {
        let full = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut query = format!("{kind}&prefix={}", encode(&full));
            if let Some((k, v)) = &marker {
                query.push_str(&format!(
                    "&{}={}&{}={}",
                    markers.0,
                    encode(k),
                    markers.1,
                    encode(v)
                ));
            }
            let url = format!("{}/?{query}", self.bucket_url);
            let (status, _, body) = self
                .send(http::Method::GET, &url, &[], Bytes::new())
                .await?;
            if !status.is_success() {
                return Err(Self::refused(prefix, status, &body));
            }
            let page = parse(&String::from_utf8_lossy(&body), &self.prefix);
            out.extend(page.items);
            match page.next {
                // A server that names a page it named before would keep
                // this loop going for ever.
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(StoreError::Backend {
                        path: prefix.to_owned(),
                        message: format!(
                            "the {kind} listing does not advance: it names page {next:?} again"
                        ),
                    });
                }
                Some(next) => marker = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Deletes one version (or delete marker) of an object.
    pub(crate) async fn delete_version(&self, path: &str, version_id: &str) -> StoreResult<()> {
        let url = self.url(path, &format!("versionId={}", encode(version_id)));
        let (status, _, body) = self
            .send(http::Method::DELETE, &url, &[], Bytes::new())
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::refused(path, status, &body))
        }
    }
}

/// One page of a listing, and where the next starts.
struct Page<T> {
    items: Vec<T>,
    next: Option<(String, String)>,
}

/// Reads a ListObjectVersions answer. Keys outside the repository's
/// prefix are skipped; a truncated page names where to go on.
fn parse_versions(xml: &str, prefix: &str) -> Page<ObjectVersion> {
    let mut versions = Vec::new();
    for (tag, marker) in [("Version", false), ("DeleteMarker", true)] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let mut rest = xml;
        while let Some(i) = rest.find(&open) {
            let Some(j) = rest[i..].find(&close) else {
                break;
            };
            let item = &rest[i + open.len()..i + j];
            rest = &rest[i + j + close.len()..];
            let (Some(key), Some(version_id)) = (
                between(item, "<Key>", "</Key>"),
                between(item, "<VersionId>", "</VersionId>"),
            ) else {
                continue;
            };
            let Some(path) = unescape(&key).strip_prefix(prefix).map(str::to_owned) else {
                continue;
            };
            versions.push(ObjectVersion {
                path,
                version_id: unescape(&version_id),
                is_latest: between(item, "<IsLatest>", "</IsLatest>").as_deref() == Some("true"),
                is_delete_marker: marker,
                last_modified: between(item, "<LastModified>", "</LastModified>")
                    .unwrap_or_default(),
            });
        }
    }
    let truncated = between(xml, "<IsTruncated>", "</IsTruncated>").as_deref() == Some("true");
    let next = if truncated {
        between(xml, "<NextKeyMarker>", "</NextKeyMarker>")
            .zip(between(
                xml,
                "<NextVersionIdMarker>",
                "</NextVersionIdMarker>",
            ))
            .map(|(k, v)| (unescape(&k), unescape(&v)))
    } else {
        None
    };
    Page {
        items: versions,
        next,
    }
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(s[i..j].to_owned())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Percent-encodes everything but S3's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn content_md5(body: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as S3 writes dates.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an S3 date (`2026-12-31T00:00:00Z`, with or without fractions).
pub fn parse_date(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile server whose every listing page says "more after page
    /// p/a": the listing stops with an error instead of looping.
    #[tokio::test]
    async fn a_version_listing_that_does_not_advance_is_refused() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = "<ListVersionsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>p/a</NextKeyMarker><NextVersionIdMarker>1</NextVersionIdMarker>\
            <Version><Key>p/a</Key><VersionId>1</VersionId><IsLatest>true</IsLatest></Version>\
            </ListVersionsResult>";
        std::thread::spawn(move || {
            for stream in listener.incoming().take(10) {
                let Ok(mut s) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let client = S3Api::client(
            &object_store::client::ReqwestConnector::default(),
            true,
            None,
        )
        .expect("client");
        let credentials: Credentials = Arc::new(
            object_store::client::StaticCredentialProvider::new(AwsCredential {
                key_id: "k".into(),
                secret_key: "s".into(),
                token: None,
            }),
        );
        let api = S3Api::new(
            client,
            credentials,
            format!("http://{addr}/bucket"),
            "p",
            "us-east-1".into(),
            true,
        );
        let e = api.versions("").await.expect_err("refused");
        assert!(e.to_string().contains("does not advance"), "{e}");
    }

    #[test]
    fn version_listings_are_read_within_the_prefix() {
        let xml = "<ListVersionsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>p/b</NextKeyMarker><NextVersionIdMarker>v&amp;2</NextVersionIdMarker>\
            <Version><Key>p/a</Key><VersionId>1</VersionId><IsLatest>false</IsLatest>\
            <LastModified>2026-11-30T07:01:41.000Z</LastModified></Version>\
            <Version><Key>other/x</Key><VersionId>9</VersionId><IsLatest>true</IsLatest></Version>\
            <DeleteMarker><Key>p/a</Key><VersionId>2</VersionId><IsLatest>true</IsLatest></DeleteMarker>\
            </ListVersionsResult>";
        let page = parse_versions(xml, "p/");
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].path, "a");
        assert!(!page.items[0].is_latest && !page.items[0].is_delete_marker);
        assert_eq!(page.items[0].last_modified, "2026-11-30T07:01:41.000Z");
        assert_eq!(page.items[1].last_modified, "", "none given");
        assert!(page.items[1].is_latest && page.items[1].is_delete_marker);
        assert_eq!(page.next, Some(("p/b".into(), "v&2".into())));
    }

    #[test]
    fn keys_and_dates_are_spelled_as_s3_wants() {
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20Z");
        assert_eq!(parse_date("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(parse_date("2023-11-14T22:13:20.000Z"), Some(t));
        // RFC 1864: the base64 of the MD5 digest (d41d8cd9… for no bytes).
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
