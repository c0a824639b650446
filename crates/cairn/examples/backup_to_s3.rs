//! What a tool embedding cairn does: back up a directory to S3 (or any
//! location `Store::open_with` takes) with a progress line, list the
//! repository's snapshots, and restore one file of the new snapshot.
//!
//! ```sh
//! AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//! CAIRN_PASSWORD='a long passphrase' \
//! cargo run -p cairn --example backup_to_s3 -- \
//!     's3://bucket/repo?endpoint=http://127.0.0.1:3900&region=garage&allow-http=true' \
//!     /srv/data some/file.txt /tmp/file.txt
//! ```
//!
//! The repository is created on first use. Errors are told apart with
//! `cairn::Error::kind()`, as a tool would to decide what to tell its user.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn::{
    BackupOptions, Error, ErrorKind, InitOptions, Progress, Repository, Store, StoreOptions,
};

struct Args {
    url: String,
    dir: PathBuf,
    file: String,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [url, dir, file, out] = &a[..] else {
        return Err("usage: backup_to_s3 URL DIRECTORY FILE-IN-DIRECTORY OUTPUT".into());
    };
    Ok(Args {
        url: url.clone(),
        dir: PathBuf::from(dir),
        file: file.clone(),
        out: PathBuf::from(out),
    })
}

/// Opens the repository at `url`, creating it if the location is empty.
async fn open_or_create(url: &str, password: &[u8]) -> Result<Repository, Error> {
    let mut options = StoreOptions::default();
    options.create = true;
    let store = Store::open_with(url, &options)?;
    match Repository::open(store.clone(), password, Default::default()).await {
        Ok(repo) => Ok(repo),
        Err(e) => {
            let e = Error::from(e);
            if e.kind() != ErrorKind::NotFound {
                return Err(e);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let host = cairn::layers::repo::hostname();
            Ok(Repository::init(store, password, InitOptions::new(&host, "example", now)).await?)
        }
    }
}

async fn run(a: Args, password: &[u8]) -> Result<(), Error> {
    let repo = open_or_create(&a.url, password).await?;
    let progress = Arc::new(Progress::default());
    let shown = progress.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            eprint!(
                "\r{} files, {} bytes",
                shown.files.load(Ordering::Relaxed),
                shown.bytes.load(Ordering::Relaxed)
            );
        }
    });
    let mut options = BackupOptions::new(&repo, vec![a.dir.clone()]);
    options.program_version = "backup_to_s3 example".into();
    let outcome = cairn::backup(&repo, options, progress).await;
    ticker.abort();
    let outcome = outcome?;
    let st = &outcome.snapshot.stats;
    eprintln!(
        "\rsnapshot {}: {} files read, {} unchanged, {} bytes stored",
        outcome.snapshot_id.short(),
        st.files_new + st.files_changed,
        st.files_unchanged,
        outcome.writer.bytes_stored
    );
    for (id, s) in repo.list_snapshots().await? {
        println!("{} {} {}", id.short(), s.time.secs, s.hostname);
    }
    let node = cairn::resolve(&repo, &outcome.snapshot, a.file.as_bytes()).await?;
    let mut out = std::fs::File::create(&a.out)
        .map_err(|e| cairn::error::FsError::Invalid(format!("{}: {e}", a.out.display())))?;
    let n = cairn::dump(&repo, &node, &mut out).await?;
    eprintln!("restored {} ({n} bytes) to {}", a.file, a.out.display());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(usage) => {
            eprintln!("{usage}");
            return std::process::ExitCode::from(2);
        }
    };
    let Some(password) = std::env::var_os("CAIRN_PASSWORD") else {
        eprintln!("set CAIRN_PASSWORD");
        return std::process::ExitCode::from(2);
    };
    match run(a, password.as_encoded_bytes()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let advice = match e.kind() {
                ErrorKind::WrongPassword => "check the password",
                ErrorKind::PermissionDenied => "check the storage credentials",
                ErrorKind::Transient => "the storage cannot be reached; try again later",
                ErrorKind::Corrupt => "the repository is damaged; run `cairn check`",
                ErrorKind::NotFound => "something named does not exist",
                _ => "see the message",
            };
            eprintln!("error: {e} ({advice})");
            std::process::ExitCode::FAILURE
        }
    }
}
