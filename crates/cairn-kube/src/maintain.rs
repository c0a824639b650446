//! `cairn-controller maintain`: one scheduled maintenance run of a
//! repository, as the controller's maintenance Job runs it (see
//! [`crate::controller::maintenance_jobs`]). It reads the password and the
//! storage settings from files (the repository's Secrets, mounted by the
//! kubelet), prunes and checks, and writes a short JSON [`Report`] where
//! the kubelet takes a container's termination message from, so the
//! controller learns the outcome without reading logs or Secrets.

use cairn::Maintenance as _;
use std::path::{Path, PathBuf};

use cairn::{OpenOptions, PruneOptions, ReadData};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::repo::Credentials;
use crate::storage::Settings;
use crate::{Error, Result};

/// The most a termination message may hold (the kubelet keeps 4096 bytes).
pub const REPORT_LIMIT: usize = 4096;
/// Problems a report lists at most, and the longest each may be.
const MAX_PROBLEMS: usize = 10;
const MAX_PROBLEM_LEN: usize = 300;
/// Largest settings file read, and how many.
const MAX_SETTING_BYTES: u64 = 64 * 1024;
const MAX_SETTINGS: usize = 64;

/// The prune grace when the policy names none.
pub const DEFAULT_GRACE_SECS: i64 = 24 * 3600;

/// What one maintenance run is told to do.
#[derive(Debug, Clone, clap::Args)]
pub struct MaintainArgs {
    /// The repository's URL.
    #[arg(long)]
    pub url: String,
    /// File holding the repository password (a trailing newline is ignored).
    #[arg(long)]
    pub password_file: PathBuf,
    /// Directory whose files are storage settings, named like the
    /// provider's environment variables (a mounted credentials Secret).
    #[arg(long)]
    pub settings_dir: Option<PathBuf>,
    /// The settings directory holds one file, `credentials`: an AWS shared
    /// credentials file; use this profile of it.
    #[arg(long, requires = "settings_dir")]
    pub settings_aws_profile: Option<String>,
    /// The repository's `caCert`: base64 PEM certificates of the authority
    /// that signed the storage server's certificate.
    #[arg(long)]
    pub ca_cert: Option<String>,
    /// Cache directory for a remote repository's metadata.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Upload limit in KiB/s (prune's repacking).
    #[arg(long)]
    pub limit_upload_kib: Option<u64>,
    /// Prune: forgotten data is marked, and deleted by a later run once
    /// `--grace-secs` have passed.
    #[arg(long)]
    pub prune: bool,
    /// Prune's grace period in seconds (at least 3600).
    #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
    pub grace_secs: i64,
    /// Check the repository's structure.
    #[arg(long)]
    pub check: bool,
    /// Also download and verify this share of the packs (`5%`, `1/7`).
    #[arg(long)]
    pub read_data_subset: Option<String>,
    /// Then copy every snapshot the repository at this URL lacks into it.
    #[arg(long, requires = "copy_to_password_file")]
    pub copy_to_url: Option<String>,
    /// File holding the password of `--copy-to-url`.
    #[arg(long)]
    pub copy_to_password_file: Option<PathBuf>,
    /// Directory of storage settings of `--copy-to-url`.
    #[arg(long)]
    pub copy_to_settings_dir: Option<PathBuf>,
    /// As `--settings-aws-profile`, for `--copy-to-settings-dir`.
    #[arg(long, requires = "copy_to_settings_dir")]
    pub copy_to_settings_aws_profile: Option<String>,
    /// As `--ca-cert`, for `--copy-to-url`.
    #[arg(long)]
    pub copy_to_ca_cert: Option<String>,
    /// Upload limit in KiB/s for the copy.
    #[arg(long)]
    pub copy_to_limit_upload_kib: Option<u64>,
    /// Write the JSON report here as well as to standard output.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// TESTS ONLY: read the time from this file (seconds since the epoch).
    #[arg(long, hide = true)]
    pub test_now_file: Option<PathBuf>,
}

/// The outcome of a run, as the controller reads it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// True when every step ran and the check found no problem.
    pub ok: bool,
    /// Bytes of packs deleted, less the bytes repacking wrote.
    pub reclaimed_bytes: u64,
    /// Packs deleted.
    pub packs_deleted: usize,
    /// Packs rewritten without their unused blobs.
    pub packs_repacked: usize,
    /// Blobs newly marked for deletion by a later run.
    pub blobs_marked: usize,
    /// Marks not old enough to act on yet.
    pub marks_waiting: usize,
    /// Snapshots in the repository.
    pub snapshots: usize,
    /// Packs downloaded and verified.
    pub packs_read: usize,
    /// Snapshots copied into the copy target.
    #[serde(default)]
    pub snapshots_copied: usize,
    /// Bytes the copy stored in the target.
    #[serde(default)]
    pub copy_bytes_stored: u64,
    /// Objects whose Object Lock retention `lock extend` renewed: set
    /// when the repository has a lock setting, which makes the run extend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_extended: Option<usize>,
    /// The earliest retention left after extending (seconds since the
    /// epoch): the next run must come before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_earliest_until: Option<i64>,
    /// Objects prune left in place because Object Lock still retains them.
    #[serde(default)]
    pub retained_objects: usize,
    /// What the check found wrong (at most 10).
    #[serde(default)]
    pub problems: Vec<String>,
    /// Why the run could not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// One line for people.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "{} snapshots; reclaimed {}",
            self.snapshots,
            crate::crd::human(self.reclaimed_bytes)
        )];
        if self.packs_deleted + self.packs_repacked > 0 {
            parts.push(format!(
                "{} packs deleted, {} repacked",
                self.packs_deleted, self.packs_repacked
            ));
        }
        if self.blobs_marked + self.marks_waiting > 0 {
            parts.push(format!(
                "{} blobs marked, {} mark files waiting for the grace period",
                self.blobs_marked, self.marks_waiting
            ));
        }
        if let Some(n) = self.lock_extended {
            let until = self
                .lock_earliest_until
                .map(|t| format!(", retained at least until {}", lock_time(t)))
                .unwrap_or_default();
            parts.push(format!("object lock: {n} retentions extended{until}"));
        }
        if self.retained_objects > 0 {
            parts.push(format!(
                "{} objects kept while object lock retains them",
                self.retained_objects
            ));
        }
        parts.push(format!("{} packs read back", self.packs_read));
        if self.snapshots_copied > 0 {
            parts.push(format!(
                "copied {} snapshot{} ({} stored)",
                self.snapshots_copied,
                if self.snapshots_copied == 1 { "" } else { "s" },
                crate::crd::human(self.copy_bytes_stored)
            ));
        }
        match (&self.error, self.problems.len()) {
            (Some(e), _) => parts.push(format!("failed: {e}")),
            (None, 0) => parts.push("no problems".into()),
            (None, n) => parts.push(format!("{n} problems")),
        }
        parts.join("; ")
    }

    /// The report as JSON within [`REPORT_LIMIT`] bytes: problems are
    /// dropped from the end until it fits.
    pub fn to_bounded_json(&self) -> String {
        let mut r = self.clone();
        r.problems.truncate(MAX_PROBLEMS);
        for p in &mut r.problems {
            *p = crate::kubeutil::truncate(std::mem::take(p), MAX_PROBLEM_LEN);
        }
        r.error = r.error.map(|e| crate::kubeutil::truncate(e, 1000));
        loop {
            let json = serde_json::to_string(&r).unwrap_or_default();
            if json.len() <= REPORT_LIMIT || r.problems.is_empty() {
                return json;
            }
            r.problems.pop();
        }
    }

    /// Reads a report from a termination message, which whoever runs pods
    /// in the repository's namespace can write: bounded, and only the
    /// fields it knows.
    pub fn parse(message: &str) -> std::result::Result<Report, String> {
        if message.len() > REPORT_LIMIT {
            return Err(format!("report of {} bytes is too long", message.len()));
        }
        let mut r: Report =
            serde_json::from_str(message.trim()).map_err(|e| format!("unreadable report: {e}"))?;
        r.problems.truncate(MAX_PROBLEMS);
        for p in &mut r.problems {
            *p = crate::kubeutil::truncate(std::mem::take(p), MAX_PROBLEM_LEN);
        }
        Ok(r)
    }
}

pub use crate::aws_ini::CREDENTIALS_FILE as AWS_CREDENTIALS_FILE;

/// Reads the password and settings files; with `aws_profile`, the settings
/// are that profile of the directory's AWS credentials file.
fn credentials(
    password_file: &Path,
    settings_dir: Option<&Path>,
    aws_profile: Option<&str>,
) -> Result<Credentials> {
    let password = crate::repo::trim_newline(Zeroizing::new(read_bounded(password_file)?));
    let mut settings = Settings::new();
    if let (Some(dir), Some(profile)) = (settings_dir, aws_profile) {
        let path = dir.join(AWS_CREDENTIALS_FILE);
        let bytes = Zeroizing::new(read_bounded(&path)?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::Invalid(format!("{} is not UTF-8 text", path.display())))?;
        settings = crate::aws_ini::settings(text, profile)
            .map_err(|why| Error::Invalid(format!("{}: {why}", path.display())))?;
    } else if let Some(dir) = settings_dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Invalid(format!("settings directory {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A mounted Secret keeps its data under `..data` and friends.
            if name.starts_with('.') {
                continue;
            }
            if settings.len() == MAX_SETTINGS {
                return Err(Error::Invalid(format!(
                    "{} holds more than {MAX_SETTINGS} settings",
                    dir.display()
                )));
            }
            let bytes = Zeroizing::new(read_bounded(&entry.path())?);
            let value = std::str::from_utf8(&bytes)
                .map_err(|_| Error::Invalid(format!("setting {name} is not UTF-8 text")))?;
            settings.insert(name, value.trim_end_matches(['\r', '\n']).to_owned());
        }
    }
    Ok(Credentials {
        password,
        settings,
        root_certificates: None,
    })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let mut buf = Vec::new();
    file.take(MAX_SETTING_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    if buf.len() as u64 > MAX_SETTING_BYTES {
        return Err(Error::Invalid(format!(
            "{} is larger than {MAX_SETTING_BYTES} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

/// Runs the maintenance `args` ask for. Problems the check finds are in the
/// report (`ok` false); `Err` means a step could not run.
pub async fn run(args: &MaintainArgs) -> Result<Report> {
    let subset = match &args.read_data_subset {
        None => ReadData::None,
        Some(s) => ReadData::parse_subset(s)
            .ok_or_else(|| Error::Invalid(format!("--read-data-subset {s:?}: use 5% or 1/7")))?,
    };
    let mut creds = credentials(
        &args.password_file,
        args.settings_dir.as_deref(),
        args.settings_aws_profile.as_deref(),
    )?;
    creds.root_certificates = crate::repo::ca_cert(args.ca_cert.as_deref())?;
    let mut opts = OpenOptions::default();
    opts.clock = crate::clock::from_env(args.test_now_file.clone());
    let repo = crate::repo::open_url(
        &args.url,
        &creds,
        args.cache_dir.as_deref(),
        args.limit_upload_kib,
        opts,
    )
    .await?;
    drop(creds);
    let err = |source| Error::Repository {
        location: args.url.clone(),
        source,
    };
    let mut report = Report::default();
    if args.prune {
        let mut options = PruneOptions::default();
        options.grace = args.grace_secs;
        let p = repo.prune(options).await.map_err(err)?;
        report.reclaimed_bytes = p.bytes_deleted.saturating_sub(p.bytes_written);
        report.packs_deleted = p.packs_deleted;
        report.packs_repacked = p.packs_repacked;
        report.blobs_marked = p.blobs_tombstoned;
        report.marks_waiting = p.tombstone_files_waiting;
        report.snapshots = p.snapshots;
        report.retained_objects = p.retained_packs.objects + p.retained_index_files.objects;
    }
    if repo.settings().is_some_and(|s| s.lock.is_some()) {
        extend_locks(&repo, &mut report).await.map_err(err)?;
    }
    if args.check || subset != ReadData::None {
        let c = repo.check_with(subset).await.map_err(err)?;
        report.snapshots = c.snapshots;
        report.packs_read = c.packs_read;
        report.problems = c
            .errors
            .iter()
            .map(|p| format!("{}: {}", p.object, p.message))
            .collect();
    } else if !args.prune {
        report.snapshots = repo.snapshot_ids().await.map_err(err)?.len();
    }
    if let Some(url) = &args.copy_to_url {
        let (copied, stored) = copy_to(args, url, &repo).await?;
        report.snapshots_copied = copied;
        report.copy_bytes_stored = stored;
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}

/// Keeps the repository's objects retained (`cairn lock extend`); objects
/// that could not be extended are problems of the run.
async fn extend_locks(
    repo: &cairn::Repository,
    report: &mut Report,
) -> std::result::Result<(), cairn::error::RepoError> {
    let r = repo.extend_locks(&|_| {}).await?;
    report.lock_extended = Some(r.extended);
    report.lock_earliest_until = r.earliest_until;
    if r.failed > 0 {
        report.problems.push(format!(
            "object lock: the retention of {} objects could not be extended: {}",
            r.failed,
            r.errors.first().cloned().unwrap_or_default()
        ));
    }
    Ok(())
}

/// A retention date for the summary: RFC 3339, UTC.
fn lock_time(secs: i64) -> String {
    crate::crd::time_from_secs(secs).0.to_string()
}

/// Copies every snapshot of `repo` that the repository at `url` lacks
/// into it; returns how many, and the bytes stored.
async fn copy_to(args: &MaintainArgs, url: &str, repo: &cairn::Repository) -> Result<(usize, u64)> {
    let password = args
        .copy_to_password_file
        .as_deref()
        .ok_or_else(|| Error::Invalid("--copy-to-url needs --copy-to-password-file".into()))?;
    let mut creds = credentials(
        password,
        args.copy_to_settings_dir.as_deref(),
        args.copy_to_settings_aws_profile.as_deref(),
    )?;
    creds.root_certificates = crate::repo::ca_cert(args.copy_to_ca_cert.as_deref())?;
    let target = crate::repo::open_url(
        url,
        &creds,
        args.cache_dir.as_deref(),
        args.copy_to_limit_upload_kib,
        OpenOptions::default(),
    )
    .await?;
    drop(creds);
    if target.config().repo_id == repo.config().repo_id {
        return Err(Error::Invalid(format!("{url} is the repository itself")));
    }
    let err = |source| Error::Repository {
        location: url.to_owned(),
        source,
    };
    let source = repo
        .list_snapshots()
        .await
        .map_err(|source| Error::Repository {
            location: args.url.clone(),
            source,
        })?;
    let existing = target.list_snapshots().await.map_err(err)?;
    let mut plan = cairn::plan_copies(&source, &source, &existing);
    let progress = std::sync::Arc::new(cairn::Progress::default());
    let done = cairn::execute_copies(repo, &target, &mut plan, progress, |_| {}).await?;
    Ok((done.len(), done.iter().map(|c| c.writer.bytes_stored).sum()))
}

/// Runs, writes the report (also when a step failed) and returns the exit
/// code: 0 done and sound, 1 the check found problems, 2 a step failed.
pub async fn main(args: MaintainArgs) -> i32 {
    let (report, code) = match run(&args).await {
        Ok(r) if r.ok => (r, 0),
        Ok(r) => (r, 1),
        Err(e) => (
            Report {
                error: Some(e.to_string()),
                ..Report::default()
            },
            2,
        ),
    };
    let json = report.to_bounded_json();
    println!("{json}");
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, &json) {
            eprintln!("cannot write the report to {}: {e}", path.display());
            return 2;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_fit_a_termination_message_whatever_the_check_found() {
        let r = Report {
            problems: (0..500)
                .map(|i| format!("data/{i}: {}", "x".repeat(900)))
                .collect(),
            error: Some("e".repeat(5000)),
            ..Report::default()
        };
        let json = r.to_bounded_json();
        assert!(json.len() <= REPORT_LIMIT, "{} bytes", json.len());
        let back = Report::parse(&json).expect("parses");
        assert!(!back.problems.is_empty() && back.problems.len() <= MAX_PROBLEMS);
    }

    #[test]
    fn hostile_termination_messages_are_refused_or_bounded() {
        assert!(Report::parse(&"{".repeat(5000)).is_err(), "too long");
        assert!(Report::parse("not json").is_err());
        let many = serde_json::json!({
            "ok": true, "reclaimedBytes": 1, "packsDeleted": 0, "packsRepacked": 0,
            "blobsMarked": 0, "marksWaiting": 0, "snapshots": 0, "packsRead": 0,
            "problems": (0..40).map(|_| "p".repeat(80)).collect::<Vec<_>>(),
        });
        let r = Report::parse(&many.to_string()).expect("parses");
        assert_eq!(r.problems.len(), MAX_PROBLEMS);
    }

    #[test]
    fn settings_files_are_read_like_a_mounted_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("password"), "pw\n").expect("write");
        let data = d.join("settings/..2026_11_30");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("AWS_REGION"), "garage\n").expect("write");
        std::os::unix::fs::symlink("..2026_11_30", d.join("settings/..data")).expect("link");
        std::os::unix::fs::symlink("..data/AWS_REGION", d.join("settings/AWS_REGION"))
            .expect("link");
        let args = MaintainArgs {
            url: "s3://b/p".into(),
            password_file: d.join("password"),
            settings_dir: Some(d.join("settings")),
            settings_aws_profile: None,
            ca_cert: None,
            cache_dir: None,
            limit_upload_kib: None,
            prune: false,
            grace_secs: 3600,
            check: false,
            read_data_subset: None,
            copy_to_url: None,
            copy_to_password_file: None,
            copy_to_settings_dir: None,
            copy_to_settings_aws_profile: None,
            copy_to_ca_cert: None,
            copy_to_limit_upload_kib: None,
            report: None,
            test_now_file: None,
        };
        let c = credentials(&args.password_file, args.settings_dir.as_deref(), None).expect("read");
        assert_eq!(&c.password[..], b"pw");
        assert_eq!(c.settings.len(), 1);
        assert_eq!(c.settings["AWS_REGION"], "garage");
        std::fs::write(d.join("password"), vec![b'x'; 70 * 1024]).expect("write");
        assert!(
            credentials(&args.password_file, None, None).is_err(),
            "an oversized file is refused"
        );
    }

    #[test]
    fn an_aws_credentials_file_is_read_for_its_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("password"), "pw").expect("write");
        std::fs::create_dir_all(d.join("settings")).expect("mkdir");
        std::fs::write(
            d.join("settings").join(AWS_CREDENTIALS_FILE),
            "[default]\naws_access_key_id=A\naws_secret_access_key=S\n",
        )
        .expect("write");
        let c = credentials(
            &d.join("password"),
            Some(&d.join("settings")),
            Some("default"),
        )
        .expect("read");
        assert_eq!(c.settings["AWS_ACCESS_KEY_ID"], "A");
        assert_eq!(c.settings.len(), 2);
        let err = credentials(&d.join("password"), Some(&d.join("settings")), Some("prod"))
            .expect_err("no such profile");
        assert!(err.to_string().contains("[prod]"), "{err}");
    }
}
