//! A BackupRepository object → an open `cairn::Repository`, with the
//! password and storage settings read from its Secrets, and the local cache
//! for remote repositories kept within `spec.cacheSize`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn::{Cache, InitOptions, OpenOptions, Repository};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use zeroize::{Zeroize, Zeroizing};

use crate::crd::BackupRepository;
use crate::storage::{self, Settings};
use crate::{Error, Result};

/// Default cache size: 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// The password and storage settings of a repository; wiped from memory
/// when dropped.
#[derive(Clone)]
pub struct Credentials {
    /// The repository password.
    pub password: Zeroizing<Vec<u8>>,
    /// Storage settings (`AWS_ACCESS_KEY_ID`, …); values are wiped on drop.
    pub settings: Settings,
    /// PEM certificates of authorities to trust besides the system's.
    pub root_certificates: Option<Vec<u8>>,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        storage::wipe(&mut self.settings);
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

async fn secret(client: &Client, ns: &str, name: &str) -> Result<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::not_found("Secret", &(ns.to_owned(), name.to_owned())))
}

fn text(ns: &str, name: &str, key: &str, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        e.into_bytes().zeroize();
        Error::Secret {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            message: format!("key {key} is not UTF-8 text"),
        }
    })
}

/// Reads the password and settings Secrets of `repo` (in its namespace).
pub async fn credentials(client: &Client, repo: &BackupRepository) -> Result<Credentials> {
    let ns = repo.namespace().unwrap_or_default();
    let pw = &repo.spec.password_secret_ref;
    let key = pw.key.as_deref().unwrap_or("password");
    let mut s = secret(client, &ns, &pw.name).await?;
    let password = s
        .data
        .as_mut()
        .and_then(|d| d.get_mut(key))
        .map(|b| Zeroizing::new(std::mem::take(&mut b.0)))
        .ok_or_else(|| Error::Secret {
            namespace: ns.clone(),
            name: pw.name.clone(),
            message: format!("has no key {key:?} (the repository password)"),
        })?;
    // A trailing newline from `kubectl create secret --from-file` is not
    // part of the password (the CLI's password files behave the same).
    wipe_secret(&mut s);
    let password = trim_newline(password);
    let mut creds = Credentials {
        password,
        settings: Settings::new(),
        root_certificates: ca_cert(repo.spec.ca_cert.as_deref())?,
    };
    if let Some(c) = &repo.spec.credentials_secret_ref {
        let mut s = secret(client, &ns, &c.name).await?;
        let read = match &c.key {
            None => read_settings(&ns, &c.name, &s, &mut creds.settings),
            Some(key) => read_ini(&ns, c, key, &s, &mut creds.settings),
        };
        wipe_secret(&mut s);
        read?;
    }
    Ok(creds)
}

/// Copies a credentials Secret's keys into `settings`.
fn read_settings(ns: &str, name: &str, s: &Secret, settings: &mut Settings) -> Result<()> {
    for (k, v) in s.data.iter().flatten() {
        let mut v = Zeroizing::new(text(ns, name, k, &v.0)?);
        let trimmed = v.trim_end_matches(['\r', '\n']).len();
        v.truncate(trimmed);
        settings.insert(k.clone(), std::mem::take(&mut *v));
    }
    Ok(())
}

/// The PEM bundle of a `caCert` (base64, surrounding whitespace and line
/// breaks allowed).
pub fn ca_cert(b64: Option<&str>) -> Result<Option<Vec<u8>>> {
    use base64::Engine as _;
    let Some(b64) = b64 else {
        return Ok(None);
    };
    let text: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("caCert is not base64: {e}")))
}

/// Reads the AWS shared credentials file in `key` of a Secret.
fn read_ini(
    ns: &str,
    c: &crate::crd::SecretRef,
    key: &str,
    s: &Secret,
    settings: &mut Settings,
) -> Result<()> {
    let fail = |message: String| Error::Secret {
        namespace: ns.to_owned(),
        name: c.name.clone(),
        message,
    };
    let bytes = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| fail(format!("has no key {key:?} (an AWS credentials file)")))?;
    let text = Zeroizing::new(text(ns, &c.name, key, &bytes.0)?);
    let profile = c
        .profile
        .as_deref()
        .unwrap_or(crate::aws_ini::DEFAULT_PROFILE);
    *settings = crate::aws_ini::settings(&text, profile)
        .map_err(|why| fail(format!("key {key}: {why}")))?;
    Ok(())
}

/// Wipes the values of a Secret read from the API.
fn wipe_secret(s: &mut Secret) {
    for v in s.data.iter_mut().flat_map(|d| d.values_mut()) {
        v.0.zeroize();
    }
}

/// `v` without trailing newlines (a password file's or a Secret's).
pub(crate) fn trim_newline(mut v: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        v.pop();
    }
    v
}

/// Where the cache of `url` lives under `cache_root`.
pub fn cache_dir(cache_root: &Path, url: &str) -> PathBuf {
    cache_root.join(cairn::layers::store::cache_key(url))
}

/// `spec.cacheSize` in bytes.
pub fn cache_bytes(repo: &BackupRepository) -> Result<u64> {
    match &repo.spec.cache_size {
        None => Ok(DEFAULT_CACHE_BYTES),
        Some(q) => parse_quantity(q).ok_or_else(|| {
            Error::Invalid(format!(
                "cacheSize {q:?} is not a quantity like 512Mi or 2Gi"
            ))
        }),
    }
}

/// Parses a Kubernetes quantity of bytes: `1024`, `512Ki`, `2Gi`, `1G`, `1.5Gi`.
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult) as u64)
}

/// Opens the storage of `repo` (with its cache under `cache_root` for
/// remote repositories) and unlocks it.
pub async fn open(
    client: &Client,
    repo: &BackupRepository,
    cache_root: Option<&Path>,
    opts: OpenOptions,
) -> Result<Repository> {
    let creds = credentials(client, repo).await?;
    open_with(repo, &creds, cache_root, opts).await
}

/// [`open`] with credentials already read.
pub async fn open_with(
    repo: &BackupRepository,
    creds: &Credentials,
    cache_root: Option<&Path>,
    opts: OpenOptions,
) -> Result<Repository> {
    let cache = match cache_root {
        Some(root) if cache_bytes(repo)? > 0 => Some(root),
        _ => None,
    };
    open_url(
        &repo.spec.url,
        creds,
        cache,
        repo.spec.limit_upload_kib,
        opts,
    )
    .await
}

/// Opens the repository at `url` (with a cache under `cache_root` if it is
/// remote and a root is given) and unlocks it.
pub async fn open_url(
    url: &str,
    creds: &Credentials,
    cache_root: Option<&Path>,
    limit_upload_kib: Option<u64>,
    opts: OpenOptions,
) -> Result<Repository> {
    let mut store = storage::open(
        url,
        &creds.settings,
        creds.root_certificates.clone(),
        limit_upload_kib,
        false,
    )?;
    let remote = cairn::layers::store::parse_location(url)?.is_remote();
    if let Some(root) = cache_root.filter(|_| remote) {
        let cache = Cache::open(&cache_dir(root, url)).map_err(|e| {
            Error::Invalid(format!("cache directory under {}: {e}", root.display()))
        })?;
        store = store.with_cache(Arc::new(cache));
    }
    Repository::open(store, &creds.password, opts)
        .await
        .map_err(|source| Error::Repository {
            location: url.to_owned(),
            source,
        })
}

/// Creates a repository at `repo`'s location if there is none yet. Returns
/// true if it created one.
pub async fn initialize_if_missing(
    repo: &BackupRepository,
    creds: &Credentials,
    now: i64,
) -> Result<bool> {
    let url = &repo.spec.url;
    let store = storage::open(
        url,
        &creds.settings,
        creds.root_certificates.clone(),
        None,
        true,
    )?;
    match store.get("config").await {
        Ok(_) => return Ok(false),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    Repository::init(
        store,
        &creds.password,
        InitOptions::new("cairn-controller", "root", now),
    )
    .await
    .map_err(|source| Error::Repository {
        location: url.clone(),
        source,
    })?;
    Ok(true)
}

/// Deletes the oldest files of a cache directory until it holds at most
/// `max` bytes. The cache is safe to shrink at any time.
pub fn trim_cache(dir: &Path, max: u64) -> std::io::Result<u64> {
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.into_path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut removed = 0;
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= len;
        removed += len;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_ca_cert_is_base64_with_line_breaks_allowed() {
        assert_eq!(ca_cert(None).expect("none"), None);
        let pem = ca_cert(Some("LS0tLS1C\nRUdJTg==\n")).expect("decodes");
        assert_eq!(pem.as_deref(), Some(&b"-----BEGIN"[..]));
        let err = ca_cert(Some("-----BEGIN CERTIFICATE-----")).expect_err("PEM, not base64");
        assert!(err.to_string().contains("caCert"), "{err}");
    }

    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1024"), Some(1024));
        assert_eq!(parse_quantity("512Ki"), Some(512 * 1024));
        assert_eq!(parse_quantity("2Gi"), Some(2 << 30));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity("0"), Some(0));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("1Qi"), None);
    }

    #[test]
    fn cache_trimming_drops_the_oldest_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; 100]).expect("write");
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(t))
                .expect("mtime");
        }
        assert_eq!(trim_cache(dir.path(), 250).expect("trim"), 100);
        assert!(!dir.path().join("a").exists());
        assert!(dir.path().join("c").exists());
        assert_eq!(trim_cache(dir.path(), 1000).expect("trim"), 0);
    }

    #[test]
    fn secret_values_are_wiped_once_read() {
        let mut s = Secret {
            data: Some(
                [(
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    k8s_openapi::ByteString(b"secret\n".to_vec()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let mut settings = Settings::new();
        read_settings("ns", "creds", &s, &mut settings).expect("read");
        assert_eq!(settings["AWS_SECRET_ACCESS_KEY"], "secret");
        wipe_secret(&mut s);
        let data = s.data.expect("data");
        assert!(data.values().all(|v| v.0.iter().all(|b| *b == 0)));
        storage::wipe(&mut settings);
        assert!(settings.values().all(String::is_empty));
    }

    #[test]
    fn trailing_newlines_are_not_part_of_a_password() {
        assert_eq!(*trim_newline(Zeroizing::new(b"pw\n".to_vec())), b"pw");
        assert_eq!(*trim_newline(Zeroizing::new(b"pw".to_vec())), b"pw");
    }
}
