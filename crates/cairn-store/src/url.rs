//! Repository locations.
//!
//! | URL | backend |
//! |---|---|
//! | `/path`, `rel/path`, `file:///path` | local directory |
//! | `s3://bucket[/prefix][?endpoint=URL&region=R&path-style=true&allow-http=true]` | S3 and compatibles |
//! | `gs://bucket[/prefix]` | Google Cloud Storage |
//! | `az://container[/prefix]` | Azure Blob Storage |
//! | `memory://` | in-process memory (tests) |
//!
//! Credentials and the remaining settings come from each SDK's usual
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT`, …; `GOOGLE_SERVICE_ACCOUNT`, …;
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, …). Query
//! parameters override the environment.

use std::path::PathBuf;

use crate::{StoreError, StoreResult};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A directory on a local file system.
    Local(PathBuf),
    /// An in-process memory store (tests); each open is a new empty store.
    Memory,
    /// An S3 (or S3-compatible) bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
        /// Options from the URL query.
        options: S3Options,
    },
    /// A Google Cloud Storage bucket.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// An Azure Blob Storage container.
    Azure {
        /// Container name.
        container: String,
        /// Key prefix.
        prefix: String,
    },
}

impl Location {
    /// True for stores reached over a network.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            Location::S3 { .. } | Location::Gcs { .. } | Location::Azure { .. }
        )
    }
}

/// S3 settings given in the URL query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// `endpoint=`: custom endpoint URL (MinIO, Garage, SeaweedFS, Ceph, R2).
    pub endpoint: Option<String>,
    /// `region=`: region name.
    pub region: Option<String>,
    /// `path-style=true`: path-style requests (most S3-compatible servers).
    pub path_style: Option<bool>,
    /// `allow-http=true`: permit plain HTTP (only for servers you trust).
    pub allow_http: Option<bool>,
}

fn bool_param(url: &str, key: &str, v: &str) -> StoreResult<bool> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(StoreError::InvalidLocation {
            url: url.to_owned(),
            message: format!("{key}={v:?}: expected true or false"),
        }),
    }
}

/// `key=value` pairs of a URL query, in order.
type Query = Vec<(String, String)>;

/// Splits `bucket/prefix?query` into its parts.
fn split_bucket(url: &str, rest: &str) -> StoreResult<(String, String, Query)> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(StoreError::InvalidLocation {
            url: url.to_owned(),
            message: "missing bucket or container name".into(),
        });
    }
    let mut params = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
        params.push((k.to_owned(), v.to_owned()));
    }
    Ok((
        bucket.to_owned(),
        prefix.trim_matches('/').to_owned(),
        params,
    ))
}

/// Parses a repository URL. A string without a scheme is a local path.
pub fn parse_location(url: &str) -> StoreResult<Location> {
    let invalid = |message: &str| StoreError::InvalidLocation {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    if url.is_empty() {
        return Err(invalid("empty location"));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(invalid(
                "file:// URLs need an absolute path, e.g. file:///srv/backup",
            ));
        }
        return Ok(Location::Local(PathBuf::from(rest)));
    }
    if url == "memory://" || url == "memory:" {
        return Ok(Location::Memory);
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix, params) = split_bucket(url, rest)?;
        let mut options = S3Options::default();
        for (k, v) in params {
            match k.as_str() {
                "endpoint" => options.endpoint = Some(v),
                "region" => options.region = Some(v),
                "path-style" => options.path_style = Some(bool_param(url, &k, &v)?),
                "allow-http" => options.allow_http = Some(bool_param(url, &k, &v)?),
                _ => {
                    return Err(invalid(&format!(
                        "unknown option {k:?} (known: endpoint, region, path-style, allow-http)"
                    )));
                }
            }
        }
        return Ok(Location::S3 {
            bucket,
            prefix,
            options,
        });
    }
    for (scheme, azure) in [("gs://", false), ("az://", true)] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (bucket, prefix, params) = split_bucket(url, rest)?;
            if let Some((k, _)) = params.first() {
                return Err(invalid(&format!(
                    "unknown option {k:?}: configure {scheme} through the environment"
                )));
            }
            return Ok(if azure {
                Location::Azure {
                    container: bucket,
                    prefix,
                }
            } else {
                Location::Gcs { bucket, prefix }
            });
        }
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(invalid(&format!(
                "unsupported scheme {scheme}://; use a path, file://, s3://, gs://, az:// or memory://"
            )));
        }
    }
    Ok(Location::Local(PathBuf::from(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_file_paths_are_local() {
        assert_eq!(
            parse_location("/srv/r").ok(),
            Some(Location::Local("/srv/r".into()))
        );
        assert_eq!(
            parse_location("rel/r").ok(),
            Some(Location::Local("rel/r".into()))
        );
        assert_eq!(
            parse_location("file:///srv/r").ok(),
            Some(Location::Local("/srv/r".into()))
        );
        assert_eq!(parse_location("memory://").ok(), Some(Location::Memory));
    }

    #[test]
    fn cloud_urls_parse_bucket_prefix_and_options() {
        let l = parse_location("s3://b/some/prefix/?endpoint=http://127.0.0.1:3900&region=garage&path-style=true&allow-http")
            .expect("parse");
        assert_eq!(
            l,
            Location::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into(),
                options: S3Options {
                    endpoint: Some("http://127.0.0.1:3900".into()),
                    region: Some("garage".into()),
                    path_style: Some(true),
                    allow_http: Some(true),
                }
            }
        );
        assert_eq!(
            parse_location("gs://bkt").ok(),
            Some(Location::Gcs {
                bucket: "bkt".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            parse_location("az://c/p").ok(),
            Some(Location::Azure {
                container: "c".into(),
                prefix: "p".into()
            })
        );
    }

    #[test]
    fn bad_locations_are_refused_with_a_reason() {
        for bad in [
            "",
            "file://relative",
            "ftp://host/x",
            "s3://",
            "s3:///x",
            "s3://b?colour=red",
            "s3://b?path-style=maybe",
            "gs://b?endpoint=x",
        ] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
    }
}
