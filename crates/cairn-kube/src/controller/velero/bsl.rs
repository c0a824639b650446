//! A Velero BackupStorageLocation → the cairn repository at
//! `<prefix>/cairn/` of its bucket: one repository per location, shared by
//! every namespace Velero backs up through it (so they deduplicate).
//!
//! The mapping follows Velero's own for its Kopia repositories
//! (`getStorageVariables`): provider `aws` (or `velero.io/aws`, or any
//! provider with `config.s3Url`) is S3; `s3Url` gives the endpoint, whose
//! `http://` turns TLS off and which may not carry a path;
//! `s3ForcePathStyle` asks for path-style requests; the credential Secret
//! holds an AWS shared credentials file whose `config.profile` section is
//! used. Whatever cairn cannot honour is refused by name, never ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::crd::{BackupRepositorySpec, Maintenance, SecretKeyRef, SecretRef};

/// The fields of a BackupStorageLocation's spec that cairn reads.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct BslSpec {
    /// `aws`, `velero.io/aws`, or another plugin's name.
    pub provider: String,
    /// The plugin's settings (`region`, `s3Url`, `s3ForcePathStyle`, …).
    pub config: BTreeMap<String, String>,
    /// The Secret key holding the credentials file.
    pub credential: Option<KeyRef>,
    /// Bucket and prefix.
    pub object_storage: ObjectStorage,
    /// `ReadWrite` (default) or `ReadOnly`.
    pub access_mode: Option<String>,
}

/// A key of a Secret in the location's namespace.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct KeyRef {
    /// The Secret.
    pub name: String,
    /// The key.
    pub key: String,
}

/// Where in the object store.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectStorage {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside it (Velero's data lives under it too).
    pub prefix: String,
    /// PEM certificates (base64) of the endpoint's authority.
    pub ca_cert: Option<String>,
    /// A Secret key holding a CA bundle.
    pub ca_cert_ref: Option<serde_json::Value>,
}

/// The Secret Velero uses when a location names none (its install's
/// `cloud-credentials`, key `cloud`).
pub const DEFAULT_CREDENTIAL: (&str, &str) = ("cloud-credentials", "cloud");

/// The folder under the location's prefix that holds cairn's repository.
pub const FOLDER: &str = "cairn";

/// How a location is used.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    /// The repository's settings.
    pub spec: BackupRepositorySpec,
    /// The location is `ReadOnly`: restores only; nothing is ever written.
    pub read_only: bool,
}

/// Settings that do not come from the location.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Defaults {
    /// The repository password's Secret (in Velero's namespace).
    pub password: SecretKeyRef,
    /// Maintenance schedule of writable locations' repositories.
    pub maintenance_schedule: Option<String>,
}

/// The repository of `bsl`, or why there is none.
pub fn location(bsl: &BslSpec, defaults: &Defaults) -> Result<Location, String> {
    let cfg = |k: &str| config(bsl, k);
    let s3 = matches!(bsl.provider.as_str(), "aws" | "velero.io/aws") || cfg("s3Url").is_some();
    if !s3 {
        return Err(format!(
            "provider {:?} is not S3: cairn moves data only through S3 locations \
             (provider aws, or one with config.s3Url)",
            bsl.provider
        ));
    }
    refuse_unsupported(bsl)?;
    let read_only = match bsl.access_mode.as_deref().unwrap_or("ReadWrite") {
        "ReadWrite" => false,
        "ReadOnly" => true,
        other => return Err(format!("accessMode {other:?}: use ReadWrite or ReadOnly")),
    };
    let (cred_name, cred_key) = match &bsl.credential {
        Some(c) if !c.name.is_empty() && !c.key.is_empty() => (c.name.clone(), c.key.clone()),
        Some(_) => return Err("credential needs both name and key".into()),
        None => (DEFAULT_CREDENTIAL.0.into(), DEFAULT_CREDENTIAL.1.into()),
    };
    let maintenance = match (&defaults.maintenance_schedule, read_only) {
        (Some(schedule), false) => Some(Maintenance {
            schedule: schedule.clone(),
            ..Default::default()
        }),
        _ => None,
    };
    Ok(Location {
        spec: BackupRepositorySpec {
            url: url(bsl)?,
            password_secret_ref: defaults.password.clone(),
            credentials_secret_ref: Some(SecretRef {
                name: cred_name,
                key: Some(cred_key),
                profile: cfg("profile").map(str::to_owned),
            }),
            initialize: !read_only,
            maintenance,
            ca_cert: bsl.object_storage.ca_cert.clone(),
            ..Default::default()
        },
        read_only,
    })
}

/// A setting of the location's `config`, trimmed; None when empty.
fn config<'a>(bsl: &'a BslSpec, k: &str) -> Option<&'a str> {
    bsl.config
        .get(k)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// Refuses what cairn cannot honour (rather than ignoring it).
fn refuse_unsupported(bsl: &BslSpec) -> Result<(), String> {
    if bsl.object_storage.ca_cert_ref.is_some() {
        return Err(
            "objectStorage.caCertRef is not supported yet: give the CA in objectStorage.caCert"
                .into(),
        );
    }
    if let Err(e) = crate::repo::ca_cert(bsl.object_storage.ca_cert.as_deref()) {
        return Err(format!("objectStorage.caCert: {e}"));
    }
    for unsupported in ["insecureSkipTLSVerify", "kmsKeyId", "serverSideEncryption"] {
        if config(bsl, unsupported).is_some_and(|v| v != "false") {
            return Err(format!("config.{unsupported} is not supported yet"));
        }
    }
    Ok(())
}

/// The repository's URL: `s3://<bucket>/<prefix>/cairn?…`.
fn url(bsl: &BslSpec) -> Result<String, String> {
    let cfg = |k: &str| config(bsl, k);
    let bucket = bsl.object_storage.bucket.trim();
    if bucket.is_empty() || bucket.contains(['/', '?', '#']) {
        return Err(format!(
            "objectStorage.bucket {bucket:?} is not a bucket name"
        ));
    }
    let mut query = Vec::new();
    match cfg("s3Url") {
        Some(url) => {
            let (endpoint, http) = endpoint(url)?;
            query.push(("endpoint", endpoint));
            query.push(("region", cfg("region").unwrap_or("us-east-1").to_owned()));
            if http {
                query.push(("allow-http", "true".into()));
            }
        }
        None => {
            let region = cfg("region").ok_or(
                "config.region is required without config.s3Url (cairn does not look it up)",
            )?;
            query.push(("region", region.to_owned()));
        }
    }
    match cfg("s3ForcePathStyle") {
        Some("true") => query.push(("path-style", "true".into())),
        None | Some("false") => {}
        Some(v) => return Err(format!("config.s3ForcePathStyle {v:?}: use true or false")),
    }
    let prefix = bsl.object_storage.prefix.trim_matches('/');
    let path = if prefix.is_empty() {
        FOLDER.to_owned()
    } else {
        format!("{prefix}/{FOLDER}")
    };
    if path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
        || path.contains(['?', '#'])
    {
        return Err(format!(
            "objectStorage.prefix {prefix:?} is not a plain path"
        ));
    }
    let query = query
        .iter()
        .map(|(k, v)| Ok(format!("{k}={}", plain(k, v)?)))
        .collect::<Result<Vec<_>, String>>()?
        .join("&");
    Ok(format!("s3://{bucket}/{path}?{query}"))
}

/// `scheme://host[:port]` of an `s3Url`, and whether it is plain HTTP.
fn endpoint(url: &str) -> Result<(String, bool), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("config.s3Url {url:?} has no scheme (http:// or https://)"))?;
    let http = match scheme.to_ascii_lowercase().as_str() {
        "http" => true,
        "https" => false,
        other => return Err(format!("config.s3Url scheme {other:?}: use http or https")),
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "config.s3Url {url:?} must be scheme://host[:port] with no path or credentials"
        ));
    }
    Ok((format!("{}://{host}", scheme.to_ascii_lowercase()), http))
}

/// A query value as it is, or why it cannot be one (cairn's URLs are not
/// percent-decoded, so a value may not hold the query's separators).
fn plain<'a>(k: &str, v: &'a str) -> Result<&'a str, String> {
    if v.is_empty() || v.contains(['&', '=', '#', '?', '%']) || v.contains(char::is_whitespace) {
        return Err(format!(
            "the {k} {v:?} holds characters a location cannot carry"
        ));
    }
    Ok(v)
}

#[cfg(test)]
#[path = "bsl_tests.rs"]
mod tests;
